/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Runs a fuzz harness over its committed corpus without libFuzzer, so
 * that every `make check` (and the sanitizer and valgrind runs) replays
 * the seeds and the inputs that once found a bug, with all the harness's
 * invariants.  Linked with one harness; FUZZ_TARGET names its corpus.
 *
 *      replay-<target> [FILE|DIR]...   (default: $top_srcdir/tests/fuzz/corpus/<target>)
 *
 * Exits 0 when every input ran (a failed invariant aborts), 1 when an
 * input cannot be read or none was found.
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FUZZ_TARGET
#error "FUZZ_TARGET must name the harness"
#endif

#define REPLAY_INPUT_MAX        (1U << 20)      /* larger inputs are not ours */
#define REPLAY_PATH_MAX         4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path, unsigned *n)
{
        struct stat st;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0 || fstat(fd, &st) < 0 || st.st_size > REPLAY_INPUT_MAX) {
                fprintf(stderr, "cannot use '%s'\n", path);
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        /* An exact-size copy: the harness must not read past the input. */
        uint8_t *buf = malloc(st.st_size ? (size_t)st.st_size : 1);
        ssize_t got = buf ? read(fd, buf, (size_t)st.st_size) : -1;
        close(fd);
        if (got != st.st_size) {
                fprintf(stderr, "read '%s' failed\n", path);
                free(buf);
                return -1;
        }
        LLVMFuzzerTestOneInput(buf, (size_t)st.st_size);
        free(buf);
        (*n)++;
        return 0;
}

static int replay_path(const char *path, unsigned *n)
{
        char sub[REPLAY_PATH_MAX];
        struct dirent *e;
        struct stat st;
        DIR *d;
        int r = 0;

        if (stat(path, &st) < 0) {
                fprintf(stderr, "cannot find '%s'\n", path);
                return -1;
        }
        if (!S_ISDIR(st.st_mode))
                return replay_file(path, n);
        if (!(d = opendir(path)))
                return -1;
        while ((e = readdir(d)))
                if (e->d_name[0] != '.') {
                        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
                        r |= replay_file(sub, n);
                }
        closedir(d);
        return r;
}

int main(int argc, char **argv)
{
        char dflt[REPLAY_PATH_MAX];
        const char *src = getenv("top_srcdir");
        unsigned n = 0;
        int r = 0;

        if (argc < 2) {
                snprintf(dflt, sizeof(dflt), "%s/tests/fuzz/corpus/%s", src ? src : ".",
                         FUZZ_TARGET);
                r = replay_path(dflt, &n);
        }
        for (int i = 1; i < argc; i++)
                r |= replay_path(argv[i], &n);
        printf("%s: %u inputs replayed\n", FUZZ_TARGET, n);
        return r < 0 || n == 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
