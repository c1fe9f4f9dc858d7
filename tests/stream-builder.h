/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A growable byte buffer for building QEMU streams (and other wire data)
 * by hand in the tests: append raw bytes, big-endian integers, counted
 * strings or whatever an snprintf-style encoder writes.  Running out of
 * memory fails the test.
 */
#pragma once

#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sbuf {
        uint8_t *p;
        size_t len, cap;
};

/* Makes room for n more bytes at the end and returns where they go. */
uint8_t *sb_grow(struct sbuf *s, size_t n);
void sb_put(struct sbuf *s, const void *d, size_t n);
void sb_u8(struct sbuf *s, uint8_t v);
void sb_be16(struct sbuf *s, uint16_t v);
void sb_be32(struct sbuf *s, uint32_t v);
void sb_be64(struct sbuf *s, uint64_t v);
/* A length byte (the low 8 bits of strlen), then the string. */
void sb_counted(struct sbuf *s, const char *str);
void sb_free(struct sbuf *s);

/* Append what an snprintf-style encoder writes: call_with_buf is a call
 * that may use buf and size (a 4 KiB scratch buffer) and returns the
 * length written, > 0. */
#define SB_EMIT(s, call_with_buf) do {                                  \
                uint8_t _b[4096];                                       \
                uint8_t *buf = _b;                                      \
                size_t size = sizeof(_b);                               \
                ssize_t _n = (call_with_buf);                           \
                ck_assert_int_gt(_n, 0);                                \
                sb_put((s), _b, (size_t)_n);                            \
        } while (0)
