/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Zero-page check (see zero-scan.h).  GCC/Clang vector extensions keep it
 * portable: the compiler turns the 32-byte vector ORs into SSE2/AVX (or
 * NEON) instructions for whatever the build targets.  Memory is only read
 * through const pointers and may change under us (a running guest): the
 * answer is then stale, which the dirty bitmap takes care of.
 */
#include "config.h"

#include <stdint.h>

#include "zero-scan.h"

/* aligned(1): callers may pass any address (libsavd's inline pages). */
typedef uint64_t vec_u64 __attribute__((vector_size(32), may_alias, aligned(1)));
typedef uint64_t u64_alias __attribute__((may_alias, aligned(1)));

#define VEC_PER_STEP 8U                 /* 8 x 32 bytes OR-ed per step */

bool zero_page(const void *p)
{
        const u64_alias *w = p;
        const vec_u64 *v = p;

        /* Most data pages have a non-zero word near the start. */
        if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7])
                return false;
        for (size_t i = 0; i < ZERO_SCAN_PAGE / sizeof(vec_u64); i += VEC_PER_STEP) {
                vec_u64 acc = v[i] | v[i + 1] | v[i + 2] | v[i + 3] |
                              v[i + 4] | v[i + 5] | v[i + 6] | v[i + 7];

                if (acc[0] | acc[1] | acc[2] | acc[3])
                        return false;
        }
        return true;
}

bool zero_page_scalar(const void *p)
{
        const uint8_t *b = p;

        for (size_t i = 0; i < ZERO_SCAN_PAGE; i++)
                if (b[i])
                        return false;
        return true;
}
