/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pages-written bitmap of one save job, kept in a memfd so that another
 * process (savctl, a management agent) can map it read-only and watch
 * progress.  Every writer thread updates it with atomic operations.
 *
 * Region layout (host byte order, documented for readers in other
 * processes; all offsets from the start of the memfd):
 *   struct shm_bitmap_header
 *   struct shm_bitmap_block   blocks[n_blocks]
 *   uint64_t                  words[...]   each block's bitmap, 64 pages a
 *                                          word, bit i%64 of word i/64,
 *                                          exactly as written to the file
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrm-layout.h"

#define SHM_BITMAP_MAGIC   0x5356444d42495431ULL     /* "SVDMBIT1" */
#define SHM_BITMAP_VERSION 1U
/* Largest region accepted from another process (1 bit per page: 1 GiB of
 * bitmap describes 32 TiB of RAM). */
#define SHM_BITMAP_MAX_REGION (1ULL << 30)

struct shm_bitmap_counters {
        uint64_t pages_written;         /* data pages whose write completed */
        uint64_t pages_zero;            /* zero pages seen (bit cleared) */
        uint64_t bytes_written;         /* page bytes whose write completed */
        uint64_t bytes_received;        /* bytes read from the client */
        uint64_t pages_total;           /* sum of num_pages over blocks */
};

struct shm_bitmap_header {
        uint64_t magic;
        uint32_t version;
        uint32_t n_blocks;
        uint64_t region_size;
        struct shm_bitmap_counters c;   /* updated with __atomic builtins */
};

struct shm_bitmap_block {
        uint64_t num_pages;
        uint64_t words_offset;          /* byte offset of word 0 in the region */
};

struct shm_bitmap {
        int fd;                         /* memfd, CLOEXEC */
        size_t size;
        void *map;
        struct shm_bitmap_header *hdr;
        struct shm_bitmap_block *blocks;
        bool readonly;
};

/* Create for a computed layout; all bits clear. */
int shm_bitmap_create(struct shm_bitmap *b, const struct mrm_layout *l);
/* Map an existing region (from another process); checks magic and sizes. */
int shm_bitmap_open_fd(struct shm_bitmap *b, int fd, bool readonly);
void shm_bitmap_close(struct shm_bitmap *b);

uint64_t *shm_bitmap_words(const struct shm_bitmap *b, unsigned block);
void shm_bitmap_set(struct shm_bitmap *b, unsigned block, uint64_t page);
void shm_bitmap_clear(struct shm_bitmap *b, unsigned block, uint64_t page);
bool shm_bitmap_test(const struct shm_bitmap *b, unsigned block, uint64_t page);
uint64_t shm_bitmap_count(const struct shm_bitmap *b, unsigned block);
uint64_t shm_bitmap_num_words(const struct shm_bitmap *b, unsigned block);
/* Pages [first, first + n) of a block; the caller checks the range. */
void shm_bitmap_set_range(struct shm_bitmap *b, unsigned block, uint64_t first, uint64_t n);
void shm_bitmap_clear_range(struct shm_bitmap *b, unsigned block, uint64_t first, uint64_t n);

/* The same atomic range operations on any array of 64-bit bitmap words
 * (bit i%64 of word i/64), e.g. the writer's private in-flight bitmap. */
void bitmap_words_set_range(uint64_t *words, uint64_t first, uint64_t n);
void bitmap_words_clear_range(uint64_t *words, uint64_t first, uint64_t n);
bool bitmap_words_any_in_range(const uint64_t *words, uint64_t first, uint64_t n);
/* The first bit >= from (of n) that is set (want) or clear, or n. */
uint64_t bitmap_words_next(const uint64_t *words, uint64_t n, uint64_t from, bool want);

/* Atomic counter helpers: which is a pointer into b->hdr->c. */
static inline void shm_counter_add(uint64_t *which, uint64_t n)
{
        __atomic_fetch_add(which, n, __ATOMIC_RELAXED);
}
void shm_bitmap_snapshot(const struct shm_bitmap *b, struct shm_bitmap_counters *out);
