/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers shared by the Check unit tests (see test-util.h).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "test-util.h"

uint8_t *test_read_file(const char *path, size_t *len)
{
        uint8_t *d = NULL;
        int r;

        *len = 0;
        r = test_load_file(path, 0, len, &d);
        ck_assert_msg(r == 0, "read '%s': %s", path, strerror(-r));
        return d;
}

uint8_t *testdata_read(const char *name, off_t off, size_t *len)
{
        const char *path = testdata_path(name);
        uint8_t *d = NULL;
        int r = test_load_file(path, off, len, &d);

        ck_assert_msg(r == 0, "read '%s': %s", path, strerror(-r));
        return d;
}

size_t test_parse_hex(const char *s, uint8_t *out, size_t max)
{
        size_t n = 0;

        while (*s) {
                char *end;
                unsigned long v = strtoul(s, &end, 16), rep = 1;

                ck_assert_ptr_ne(end, s);
                if (*end == '*')
                        rep = strtoul(end + 1, &end, 10);
                ck_assert_uint_le(n + rep, max);
                memset(out + n, (int)v, rep);
                n += rep;
                s = end;
                while (*s == ' ')
                        s++;
        }
        return n;
}

int test_run_suite(Suite *s, bool complete)
{
        SRunner *sr = srunner_create(s);
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        if (failed)
                return EXIT_FAILURE;
        return complete ? EXIT_SUCCESS : EXIT_SKIP;
}
