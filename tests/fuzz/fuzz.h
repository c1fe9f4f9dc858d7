/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What every fuzz harness shares: the libFuzzer entry point, an invariant
 * check that aborts (libFuzzer and the corpus replay both report an abort
 * as a failure, with the input that caused it) and the FNV-1a hash that
 * reduces an outcome to numbers two runs can compare; feeding an input to
 * an incremental decoder in pieces.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define require(cond) do {                                                      \
                if (!(cond)) {                                                  \
                        fprintf(stderr, "%s:%d: invariant failed: %s\n",        \
                                __FILE__, __LINE__, #cond);                     \
                        abort();                                                \
                }                                                               \
        } while (0)

/* FNV-1a of buf, continuing from h. */
static inline uint64_t fnv(uint64_t h, const void *buf, size_t len)
{
        const uint8_t *b = buf;

        for (size_t i = 0; i < len; i++)
                h = (h ^ b[i]) * 0x100000001b3ULL;
        return h;
}

/* Hands data to feed in chunks of the sizes in sizes[] (taken in turn; 0,
 * or more than is left, means the rest; sizes NULL: one piece), each
 * copied to a heap buffer of exactly its size so that the sanitizers catch
 * a read past its end.  Stops at the first feed that returns false;
 * returns what the last one returned (true when there was nothing). */
static inline bool fuzz_feed_chunks(const uint8_t *data, size_t size, const uint8_t *sizes,
                                    size_t n_sizes, void *opaque,
                                    bool (*feed)(void *opaque, const uint8_t *buf, size_t len))
{
        size_t pos = 0, k = 0;
        bool ok = true;

        while (ok && pos < size) {
                size_t c = sizes ? sizes[k++ % n_sizes] : 0;
                uint8_t *chunk;

                c = (c == 0 || c > size - pos) ? size - pos : c;
                chunk = malloc(c);
                require(chunk);
                memcpy(chunk, data + pos, c);
                ok = feed(opaque, chunk, c);
                free(chunk);
                pos += c;
        }
        return ok;
}
