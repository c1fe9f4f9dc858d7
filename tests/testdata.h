/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Loading files for the tests and the test tools: a whole file or a range
 * of it into memory, and the reference files from real QEMU in the
 * directory $SAVD_TESTDATA names (set by `make check`).  No libcheck here:
 * the fuzz seed generator links it too, so errors come back as -errno.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Reads *len bytes of path from off into a new buffer (*ret, at least one
 * byte allocated, for free()).  off < 0 counts from the end of the file
 * (clamped to its start); *len == 0, or more than there is, means up to
 * the end, and *len says how much was read. */
int test_load_file(const char *path, off_t off, size_t *len, uint8_t **ret);

/* $SAVD_TESTDATA, or NULL when it is not set. */
const char *testdata_dir(void);

/* name inside $SAVD_TESTDATA ("" when unset), in a static buffer that the
 * next call overwrites. */
const char *testdata_path(const char *name);

/* Whether $SAVD_TESTDATA is set and name in it (NULL: the directory
 * itself) can be read; when not, tells stderr that what (the cases that
 * need it) is not run. */
bool testdata_usable(const char *name, const char *what);
