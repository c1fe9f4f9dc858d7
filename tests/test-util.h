/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Small helpers shared by the Check unit tests: a quiet assertion for hot
 * loops, loading files (failing the test when that does not work), hex
 * patterns for corruption tables and the usual main().
 */
#pragma once

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"
#include "testdata.h"

#define EXIT_SKIP 77

/* Check records the location of every passing ck_assert (a write to its
 * log), so loops over millions of records test with this instead. */
#define CHECK(cond, ...) do {                                           \
                if (_unlikely_(!(cond)))                                \
                        ck_abort_msg(__VA_ARGS__);                      \
        } while (0)

/* The whole of path; fails the test if it cannot be read. */
uint8_t *test_read_file(const char *path, size_t *len);

/* *len bytes at off of name in $SAVD_TESTDATA, as test_load_file() counts
 * them; fails the test if the file cannot be read. */
uint8_t *testdata_read(const char *name, off_t off, size_t *len);

/* Expands "01 00*31 03" (hex bytes, "*N" repeats the one before) into
 * out; returns the number of bytes. */
size_t test_parse_hex(const char *s, uint8_t *out, size_t max);

/* Runs every test of s (and frees it).  Returns EXIT_FAILURE when one
 * failed, else EXIT_SUCCESS, or EXIT_SKIP when !complete: some cases could
 * not run (no test data), which `make check` should show. */
int test_run_suite(Suite *s, bool complete);
