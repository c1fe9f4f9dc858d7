/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Path confinement for jobs (see job-paths.h).  The walk is done with
 * openat(O_NOFOLLOW | O_DIRECTORY) one component at a time from the
 * output directory's descriptor; the resulting full path is what the
 * engine later creates its temporary file next to.  The output directory
 * belongs to savd, so nobody else can swap a checked directory for a link
 * between the check and the creation.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "job-paths.h"
#include "macro.h"

/* Why openat() of a path component failed, in words. */
static int component_error(int dfd, const char *rel, const char *comp, int e,
                           char *err, size_t errlen)
{
        struct stat st;

        if (fstatat(dfd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
                snprintf(err, errlen, "'%s': '%s' is a symbolic link, which savd does not follow",
                         rel, comp);
                return -ELOOP;
        }
        if (e == ENOENT)
                snprintf(err, errlen, "'%s': '%s' does not exist in the output directory", rel, comp);
        else
                snprintf(err, errlen, "'%s': '%s': %s", rel, comp, strerror(e));
        return -e;
}

/* Open the directory that holds rel's last component, walking from the
 * output dir one component at a time without following symbolic links.
 * Absolute paths, "..", "." and empty components are refused. */
static int open_parent(int root_fd, const char *rel, int *ret_dfd, const char **ret_base,
                       char *err, size_t errlen)
{
        _cleanup_close_ int dfd = -1;
        const char *p = rel;

        if (rel[0] == '/') {
                snprintf(err, errlen, "'%s': absolute paths are not allowed; give a path relative "
                         "to the output directory", rel);
                return -EINVAL;
        }
        dfd = fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
        if (dfd < 0)
                return -errno;
        for (;;) {
                const char *slash = strchr(p, '/');
                size_t len = slash ? (size_t)(slash - p) : strlen(p);
                char comp[NAME_MAX + 1];

                if (len == 0 || len > NAME_MAX) {
                        snprintf(err, errlen, "'%s': %s path component", rel, len ? "over-long" : "empty");
                        return len ? -ENAMETOOLONG : -EINVAL;
                }
                memcpy(comp, p, len);
                comp[len] = '\0';
                if (strcmp(comp, "..") == 0 || strcmp(comp, ".") == 0) {
                        snprintf(err, errlen, "'%s': '%s' components are not allowed", rel, comp);
                        return -EINVAL;
                }
                if (!slash) {
                        *ret_base = p;
                        *ret_dfd = TAKE_FD(dfd);
                        return 0;
                }
                int fd = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return component_error(dfd, rel, comp, errno, err, errlen);
                close(dfd);
                dfd = fd;
                p = slash + 1;
        }
}

int path_check_output(int root_fd, const char *root, const char *rel, bool overwrite,
                      char **ret_path, char *err, size_t errlen)
{
        _cleanup_close_ int dfd = -1;
        const char *base;
        struct stat st;
        int r = open_parent(root_fd, rel, &dfd, &base, err, errlen);

        if (r < 0)
                return r;
        if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                if (S_ISLNK(st.st_mode)) {
                        snprintf(err, errlen, "'%s' is a symbolic link, which savd neither follows "
                                 "nor replaces", rel);
                        return -ELOOP;
                }
                if (!S_ISREG(st.st_mode)) {
                        snprintf(err, errlen, "'%s' exists and is not a regular file", rel);
                        return -EEXIST;
                }
                if (!overwrite) {
                        snprintf(err, errlen, "'%s' already exists (pass \"overwrite\": true to "
                                 "replace it)", rel);
                        return -EEXIST;
                }
        } else if (errno != ENOENT) {
                snprintf(err, errlen, "'%s': %s", rel, strerror(errno));
                return -errno;
        }
        if (asprintf(ret_path, "%s/%s", root, rel) < 0)
                return -ENOMEM;
        return 0;
}

int path_open_input(int root_fd, const char *root, const char *rel, char **ret_path,
                    char *err, size_t errlen)
{
        _cleanup_close_ int dfd = -1, fd = -1;
        const char *base;
        struct stat st;
        int r = open_parent(root_fd, rel, &dfd, &base, err, errlen);

        if (r < 0)
                return r;
        /* O_NONBLOCK: a FIFO planted in the output dir must not hang us. */
        fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return component_error(dfd, rel, base, errno, err, errlen);
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                snprintf(err, errlen, "'%s' is not a regular file", rel);
                return -EINVAL;
        }
        if (fcntl(fd, F_SETFL, 0) < 0)
                return -errno;
        if (asprintf(ret_path, "%s/%s", root, rel) < 0)
                return -ENOMEM;
        return TAKE_FD(fd);
}

/* A descriptor handed over by a client: a regular file open the right way. */
int path_check_handed_fd(int fd, bool for_write, char *err, size_t errlen)
{
        const char *what = for_write ? "output" : "input";
        struct stat st;
        int fl;

        if (fd < 0) {
                snprintf(err, errlen, "\"fd\" needs a file descriptor passed with the request "
                         "(SCM_RIGHTS)");
                return -EBADF;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                snprintf(err, errlen, "the %s file descriptor is not a regular file", what);
                return -EINVAL;
        }
        fl = fcntl(fd, F_GETFL);
        if (fl < 0 || (for_write && (fl & O_ACCMODE) == O_RDONLY) ||
            (!for_write && (fl & O_ACCMODE) == O_WRONLY)) {
                snprintf(err, errlen, "the %s file descriptor is not open for %s", what,
                         for_write ? "writing" : "reading");
                return -EBADF;
        }
        return 0;
}
