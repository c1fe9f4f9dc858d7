/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The shared-memory pages-written bitmap (see shm-bitmap.h for the region
 * layout).  The creating process owns a sealed memfd: its size can never
 * change, so a reader in another process that mapped it cannot be hit by
 * SIGBUS.  Bits and counters are changed with __atomic builtins because
 * writer threads and readers in other processes touch them concurrently.
 * A region handed in by another process is validated field by field
 * against the size of the fd before anything in it is trusted.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "shm-bitmap.h"

#define WORD_BITS 64U

static uint64_t words_of(uint64_t num_pages)
{
        return DIV_ROUND_UP(num_pages, WORD_BITS);
}

static size_t blocks_end(uint32_t n_blocks)
{
        return sizeof(struct shm_bitmap_header) + (size_t)n_blocks * sizeof(struct shm_bitmap_block);
}

static int region_size_for(const struct mrm_layout *l, uint64_t *ret)
{
        uint64_t size = blocks_end((uint32_t)l->n_blocks);

        for (size_t i = 0; i < l->n_blocks; i++) {
                uint64_t bytes = words_of(l->blocks[i].num_pages) * sizeof(uint64_t);

                if (add_overflows_u64(size, bytes, &size))
                        return -EOVERFLOW;
        }
        if (size > SHM_BITMAP_MAX_REGION)
                return -E2BIG;
        *ret = size;
        return 0;
}

static void fill_region(struct shm_bitmap *b, const struct mrm_layout *l)
{
        uint64_t off = blocks_end((uint32_t)l->n_blocks);
        uint64_t total = 0;

        b->hdr->magic = SHM_BITMAP_MAGIC;
        b->hdr->version = SHM_BITMAP_VERSION;
        b->hdr->n_blocks = (uint32_t)l->n_blocks;
        b->hdr->region_size = b->size;
        for (size_t i = 0; i < l->n_blocks; i++) {
                b->blocks[i].num_pages = l->blocks[i].num_pages;
                b->blocks[i].words_offset = off;
                off += words_of(l->blocks[i].num_pages) * sizeof(uint64_t);
                total += l->blocks[i].num_pages;
        }
        b->hdr->c.pages_total = total;
}

static int map_region(struct shm_bitmap *b, int fd, size_t size, bool readonly)
{
        void *p = mmap(NULL, size, readonly ? PROT_READ : PROT_READ | PROT_WRITE,
                       MAP_SHARED, fd, 0);

        if (p == MAP_FAILED)
                return -errno;
        b->fd = fd;
        b->size = size;
        b->map = p;
        b->hdr = p;
        b->blocks = (struct shm_bitmap_block *)((uint8_t *)p + sizeof(struct shm_bitmap_header));
        b->readonly = readonly;
        return 0;
}

int shm_bitmap_create(struct shm_bitmap *b, const struct mrm_layout *l)
{
        _cleanup_close_ int fd = -1;
        uint64_t size;
        int r;

        memset(b, 0, sizeof(*b));
        b->fd = -1;
        if (l->n_blocks > SAVD_MAX_BLOCKS)
                return -E2BIG;
        r = region_size_for(l, &size);
        if (r < 0)
                return r;
        fd = memfd_create("savd-bitmap", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t)size) < 0)
                return -errno;
        /* Readers in other processes map the whole region: it must never
         * shrink under them. */
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
                return -errno;
        r = map_region(b, fd, size, false);
        if (r < 0)
                return r;
        TAKE_FD(fd);
        fill_region(b, l);      /* the memfd starts zeroed: all bits clear */
        return 0;
}

static int check_header(const struct shm_bitmap_header *h, size_t size)
{
        if (h->magic != SHM_BITMAP_MAGIC)
                return -EBADMSG;
        if (h->version != SHM_BITMAP_VERSION)
                return -EPROTONOSUPPORT;
        if (h->region_size != size || h->n_blocks > SAVD_MAX_BLOCKS)
                return -EBADMSG;
        if (blocks_end(h->n_blocks) > size)
                return -EBADMSG;
        return 0;
}

/* Every block's words must lie inside the region, 8-byte aligned, after
 * the block table and after the previous block's words. */
static int check_blocks(const struct shm_bitmap *b)
{
        uint64_t min = blocks_end(b->hdr->n_blocks);
        uint64_t total = 0;

        for (uint32_t i = 0; i < b->hdr->n_blocks; i++) {
                const struct shm_bitmap_block *blk = &b->blocks[i];
                uint64_t end;

                if (blk->num_pages > SAVD_MAX_BLOCK_SIZE / QEMU_TPS)
                        return -EBADMSG;
                if (blk->words_offset % sizeof(uint64_t) != 0 || blk->words_offset < min ||
                    blk->words_offset > b->size)
                        return -EBADMSG;
                end = blk->words_offset + words_of(blk->num_pages) * sizeof(uint64_t);
                if (end > b->size)
                        return -EBADMSG;
                min = end;
                total += blk->num_pages;
        }
        if (total != b->hdr->c.pages_total)
                return -EBADMSG;
        return 0;
}

int shm_bitmap_open_fd(struct shm_bitmap *b, int fd, bool readonly)
{
        _cleanup_close_ int own = -1;
        struct stat st;
        int r;

        memset(b, 0, sizeof(*b));
        b->fd = -1;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADF;
        if (st.st_size < (off_t)sizeof(struct shm_bitmap_header) ||
            (uint64_t)st.st_size > SHM_BITMAP_MAX_REGION)
                return -EBADMSG;
        own = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (own < 0)
                return -errno;
        r = map_region(b, own, (size_t)st.st_size, readonly);
        if (r < 0)
                return r;
        TAKE_FD(own);
        r = check_header(b->hdr, b->size);
        if (r == 0)
                r = check_blocks(b);
        if (r < 0)
                shm_bitmap_close(b);
        return r;
}

void shm_bitmap_close(struct shm_bitmap *b)
{
        if (b->map)
                munmap(b->map, b->size);
        if (b->fd >= 0)
                close(b->fd);
        memset(b, 0, sizeof(*b));
        b->fd = -1;
}

uint64_t *shm_bitmap_words(const struct shm_bitmap *b, unsigned block)
{
        return (uint64_t *)((uint8_t *)b->map + b->blocks[block].words_offset);
}

uint64_t shm_bitmap_num_words(const struct shm_bitmap *b, unsigned block)
{
        return words_of(b->blocks[block].num_pages);
}

void shm_bitmap_set(struct shm_bitmap *b, unsigned block, uint64_t page)
{
        uint64_t *w = shm_bitmap_words(b, block) + page / WORD_BITS;

        __atomic_fetch_or(w, 1ULL << (page % WORD_BITS), __ATOMIC_RELAXED);
}

void shm_bitmap_clear(struct shm_bitmap *b, unsigned block, uint64_t page)
{
        uint64_t *w = shm_bitmap_words(b, block) + page / WORD_BITS;

        __atomic_fetch_and(w, ~(1ULL << (page % WORD_BITS)), __ATOMIC_RELAXED);
}

bool shm_bitmap_test(const struct shm_bitmap *b, unsigned block, uint64_t page)
{
        const uint64_t *w = shm_bitmap_words(b, block) + page / WORD_BITS;

        return (__atomic_load_n(w, __ATOMIC_RELAXED) >> (page % WORD_BITS)) & 1;
}

/* Mask of bits [from, to) within one word, 0 <= from < to <= 64. */
static uint64_t word_mask(unsigned from, unsigned to)
{
        uint64_t hi = to == WORD_BITS ? UINT64_MAX : (1ULL << to) - 1;

        return hi & ~((1ULL << from) - 1);
}

void bitmap_words_set_range(uint64_t *words, uint64_t first, uint64_t n)
{
        uint64_t end = first + n;

        while (first < end) {
                unsigned from = (unsigned)(first % WORD_BITS);
                unsigned to = (unsigned)MIN((uint64_t)WORD_BITS, from + (end - first));

                __atomic_fetch_or(&words[first / WORD_BITS], word_mask(from, to), __ATOMIC_RELAXED);
                first += to - from;
        }
}

void bitmap_words_clear_range(uint64_t *words, uint64_t first, uint64_t n)
{
        uint64_t end = first + n;

        while (first < end) {
                unsigned from = (unsigned)(first % WORD_BITS);
                unsigned to = (unsigned)MIN((uint64_t)WORD_BITS, from + (end - first));

                __atomic_fetch_and(&words[first / WORD_BITS], ~word_mask(from, to), __ATOMIC_RELAXED);
                first += to - from;
        }
}

bool bitmap_words_any_in_range(const uint64_t *words, uint64_t first, uint64_t n)
{
        uint64_t end = first + n;

        while (first < end) {
                unsigned from = (unsigned)(first % WORD_BITS);
                unsigned to = (unsigned)MIN((uint64_t)WORD_BITS, from + (end - first));

                if (__atomic_load_n(&words[first / WORD_BITS], __ATOMIC_RELAXED) & word_mask(from, to))
                        return true;
                first += to - from;
        }
        return false;
}

void shm_bitmap_set_range(struct shm_bitmap *b, unsigned block, uint64_t first, uint64_t n)
{
        bitmap_words_set_range(shm_bitmap_words(b, block), first, n);
}

void shm_bitmap_clear_range(struct shm_bitmap *b, unsigned block, uint64_t first, uint64_t n)
{
        bitmap_words_clear_range(shm_bitmap_words(b, block), first, n);
}

uint64_t shm_bitmap_count(const struct shm_bitmap *b, unsigned block)
{
        const uint64_t *w = shm_bitmap_words(b, block);
        uint64_t n = shm_bitmap_num_words(b, block), count = 0;

        for (uint64_t i = 0; i < n; i++)
                count += (uint64_t)__builtin_popcountll(__atomic_load_n(&w[i], __ATOMIC_RELAXED));
        return count;
}

void shm_bitmap_snapshot(const struct shm_bitmap *b, struct shm_bitmap_counters *out)
{
        const struct shm_bitmap_counters *c = &b->hdr->c;

        out->pages_written = __atomic_load_n(&c->pages_written, __ATOMIC_RELAXED);
        out->pages_zero = __atomic_load_n(&c->pages_zero, __ATOMIC_RELAXED);
        out->bytes_written = __atomic_load_n(&c->bytes_written, __ATOMIC_RELAXED);
        out->bytes_received = __atomic_load_n(&c->bytes_received, __ATOMIC_RELAXED);
        out->pages_total = __atomic_load_n(&c->pages_total, __ATOMIC_RELAXED);
}

uint64_t bitmap_words_next(const uint64_t *words, uint64_t n, uint64_t from, bool want)
{
        uint64_t p = from;

        while (p < n) {
                uint64_t base = p & ~(uint64_t)(WORD_BITS - 1);
                uint64_t word = __atomic_load_n(&words[p / WORD_BITS], __ATOMIC_RELAXED);

                if (!want)
                        word = ~word;
                word &= ~0ULL << (p % WORD_BITS);
                if (word)
                        return MIN(n, base + (uint64_t)__builtin_ctzll(word));
                p = base + WORD_BITS;
        }
        return n;
}
