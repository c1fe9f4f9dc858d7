/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The tests' growable byte buffer (see stream-builder.h).
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "macro.h"
#include "stream-builder.h"

#define SB_MIN_GROWTH 4096U

uint8_t *sb_grow(struct sbuf *s, size_t n)
{
        if (s->len + n > s->cap) {
                s->cap = MAX(2 * s->cap, s->len + n + SB_MIN_GROWTH);
                s->p = realloc(s->p, s->cap);
                ck_assert_ptr_nonnull(s->p);
        }
        s->len += n;
        return s->p + s->len - n;
}

void sb_put(struct sbuf *s, const void *d, size_t n)
{
        if (n)
                memcpy(sb_grow(s, n), d, n);
}

void sb_u8(struct sbuf *s, uint8_t v)
{
        *sb_grow(s, 1) = v;
}

void sb_be16(struct sbuf *s, uint16_t v)
{
        put_be16(sb_grow(s, 2), v);
}

void sb_be32(struct sbuf *s, uint32_t v)
{
        put_be32(sb_grow(s, 4), v);
}

void sb_be64(struct sbuf *s, uint64_t v)
{
        put_be64(sb_grow(s, 8), v);
}

void sb_counted(struct sbuf *s, const char *str)
{
        size_t n = strlen(str);

        sb_u8(s, (uint8_t)n);   /* over 255 bytes: a bad record */
        sb_put(s, str, n);
}

void sb_free(struct sbuf *s)
{
        free(s->p);
        *s = (struct sbuf){ 0 };
}
