/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Small helpers shared by every part of savd: cleanup attributes for
 * automatic release of memory and descriptors, ownership transfer, and a
 * few arithmetic helpers.  Nothing here does I/O beyond close().
 */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

static inline void freep(void *p)
{
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd)
{
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

/* Hand an owned pointer or fd on and leave the cleanup variable empty. */
#define TAKE_PTR(p) ({ __typeof__(p) _p = (p); (p) = NULL; _p; })
#define TAKE_FD(fd) ({ int _fd = (fd); (fd) = -1; _fd; })

#define DIV_ROUND_UP(x, y) (((x) + (y) - 1) / (y))
#define ROUND_UP(x, a) (DIV_ROUND_UP((x), (a)) * (a))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* a + b without wrap-around; returns false on overflow. */
static inline int add_overflows_u64(uint64_t a, uint64_t b, uint64_t *sum)
{
        return __builtin_add_overflow(a, b, sum);
}
