/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * File loading for the tests and the test tools (see testdata.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "testdata.h"

#define TESTDATA_PATH_MAX 4096

static int pread_all(int fd, uint8_t *buf, size_t len, off_t off)
{
        for (size_t done = 0; done < len;) {
                ssize_t n = pread(fd, buf + done, len - done, off + (off_t)done);

                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EIO;    /* the file shrank under us */
                done += (size_t)n;
        }
        return 0;
}

int test_load_file(const char *path, off_t off, size_t *len, uint8_t **ret)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ uint8_t *buf = NULL;
        struct stat st;
        int r;

        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        if (off < 0)
                off = MAX(off + st.st_size, 0);
        off = MIN(off, st.st_size);
        if (*len == 0 || *len > (size_t)(st.st_size - off))
                *len = (size_t)(st.st_size - off);
        buf = malloc(MAX(*len, (size_t)1));
        if (!buf)
                return -ENOMEM;
        r = pread_all(fd, buf, *len, off);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(buf);
        return 0;
}

const char *testdata_dir(void)
{
        return getenv("SAVD_TESTDATA");
}

const char *testdata_path(const char *name)
{
        static char path[TESTDATA_PATH_MAX];
        const char *dir = testdata_dir();

        snprintf(path, sizeof(path), "%s/%s", dir ? dir : "", name);
        return path;
}

bool testdata_usable(const char *name, const char *what)
{
        const char *dir = testdata_dir();

        if (dir && access(name ? testdata_path(name) : dir, R_OK) == 0)
                return true;
        fprintf(stderr, "SAVD_TESTDATA not usable: %s\n", what);
        return false;
}
