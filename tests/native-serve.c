/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * native-serve: runs the native restore session the way a daemon restore
 * job does — connect to the VMM's socket, fill its memory from FILE — for
 * the end-to-end tests and the benchmark:
 *
 *   native-serve restore FILE unix:PATH [--max-device-state N]
 *
 * Prints "restore-seconds S" and "io MODE"; exits 0 when the session
 * succeeded, 1 with its message otherwise.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "qemu-format.h"
#include "session.h"

static int connect_unix(const char *uri)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        const char *path = strncmp(uri, "unix:", 5) == 0 ? uri + 5 : uri;
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                close(fd);
                return -errno;
        }
        return fd;
}

static double now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
        struct savd_limits lim = {
                .max_blocks = SAVD_MAX_BLOCKS, .max_block_size = SAVD_MAX_BLOCK_SIZE,
                .max_inflight_bytes = 64ULL << 20, .max_device_state = 64ULL << 20,
        };
        atomic_bool cancelled = false;
        atomic_uint_fast64_t sent = 0;
        char err[SESSION_ERR_MAX] = "";
        double t0;
        int fd, r;

        if (argc == 6 && strcmp(argv[4], "--max-device-state") == 0)
                lim.max_device_state = strtoull(argv[5], NULL, 0);
        else if (argc != 4) {
                fprintf(stderr, "Usage: native-serve restore FILE unix:PATH "
                        "[--max-device-state N]\n");
                return 2;
        }
        if (strcmp(argv[1], "restore") != 0)
                return 2;
        fd = connect_unix(argv[3]);
        if (fd < 0) {
                fprintf(stderr, "connect %s: %s\n", argv[3], strerror(-fd));
                return 1;
        }
        struct restore_request req = {
                .path = argv[2], .input_fd = -1, .data_fd = fd, .limits = &lim,
                .cancelled = &cancelled, .bytes_sent = &sent,
        };
        t0 = now();
        r = native_restore_session_run(&req, err, sizeof(err));
        close(fd);
        if (r < 0) {
                fprintf(stderr, "native-serve: %s\n", err);
                return 1;
        }
        printf("restore-seconds %.3f\n", now() - t0);
        printf("bytes %llu of %llu\n", (unsigned long long)atomic_load(&sent),
               (unsigned long long)req.bytes_total);
        return 0;
}
