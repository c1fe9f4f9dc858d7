/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The sparse in-memory file of the tests and fuzz harnesses (see
 * mem-source.h).
 */
#include "config.h"

#include <string.h>

#include "macro.h"
#include "mem-source.h"

ssize_t mem_source_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
        const struct mem_source *s = opaque;

        if (off >= s->size)
                return 0;
        len = (size_t)MIN((uint64_t)len, s->size - off);
        if (s->max_read)
                len = MIN(len, s->max_read);
        memset(buf, 0, len);
        for (size_t i = 0; i < s->n; i++) {
                const struct mem_extent *e = &s->ext[i];
                /* A fuzzed extent may claim to run past 2^64. */
                uint64_t e_end = e->off + e->len < e->off ? UINT64_MAX : e->off + e->len;
                uint64_t a = MAX(off, e->off), b = MIN(off + len, e_end);

                if (a < b)
                        memcpy((uint8_t *)buf + (a - off), e->data + (a - e->off), b - a);
        }
        return (ssize_t)len;
}
