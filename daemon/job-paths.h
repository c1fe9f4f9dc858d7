/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Where a job may read and write: paths a control client gives are
 * relative to the output directory and confined to it.  Absolute paths,
 * "..", "." and empty components are refused; every directory on the way
 * is opened with O_NOFOLLOW from the output directory's descriptor, so no
 * symbolic link is followed, and a final name that is a link, a
 * directory, a FIFO or (unless asked) an existing file is refused too.
 * Descriptors handed over instead of paths are checked for type and
 * access mode.  Errors come with a message for the client.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* A save target: *ret_path is root/rel (malloc'd) once rel is known to be
 * safe to create (or, with overwrite, to replace). */
int path_check_output(int root_fd, const char *root, const char *rel, bool overwrite,
                      char **ret_path, char *err, size_t errlen);
/* A restore source: returns an fd open for reading (a regular file) and
 * sets *ret_path, or -errno. */
int path_open_input(int root_fd, const char *root, const char *rel, char **ret_path,
                    char *err, size_t errlen);
/* fd < 0 means none was passed. */
int path_check_handed_fd(int fd, bool for_write, char *err, size_t errlen);
