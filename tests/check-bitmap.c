/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the shared-memory pages-written bitmap
 * (daemon/shm-bitmap.c): single bits and ranges across 64-bit word
 * boundaries, concurrent updates from several threads, a second read-only
 * mapping of the memfd as another process would open it (mapped without
 * write permission, updates through the first mapping show up live), and rejection
 * of regions with a bad magic, version, size or block table.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "macro.h"
#include "shm-bitmap.h"
#include "test-util.h"

/* Blocks of 130 pages (3 words, last one partial), 64 pages (exactly one
 * word) and 1 page. */
static const uint64_t block_pages[] = { 130, 64, 1 };

static void make_layout(struct mrm_layout *l)
{
        static const char *names[] = { "pc.ram", "pc.rom", "tiny" };

        ck_assert_int_eq(mrm_layout_init(l, "pc-q35-7.2", 10, 2), 0);
        for (size_t i = 0; i < ELEMENTSOF(block_pages); i++)
                ck_assert_int_eq(mrm_layout_add_block(l, names[i], strlen(names[i]),
                                                      block_pages[i] * QEMU_TPS, QEMU_TPS), 0);
        ck_assert_int_eq(mrm_layout_compute(l), 0);
}

static void make_bitmap(struct shm_bitmap *b)
{
        struct mrm_layout l;

        make_layout(&l);
        ck_assert_int_eq(shm_bitmap_create(b, &l), 0);
        mrm_layout_free(&l);
}

START_TEST(test_create_layout)
{
        struct shm_bitmap b;

        make_bitmap(&b);
        ck_assert_uint_eq(b.hdr->magic, SHM_BITMAP_MAGIC);
        ck_assert_uint_eq(b.hdr->version, SHM_BITMAP_VERSION);
        ck_assert_uint_eq(b.hdr->n_blocks, 3);
        ck_assert_uint_eq(b.hdr->c.pages_total, 130 + 64 + 1);
        ck_assert_uint_eq(b.hdr->region_size, b.size);
        ck_assert_uint_eq(shm_bitmap_num_words(&b, 0), 3);
        ck_assert_uint_eq(shm_bitmap_num_words(&b, 1), 1);
        ck_assert_uint_eq(shm_bitmap_num_words(&b, 2), 1);
        /* Blocks follow each other without gaps or overlap. */
        ck_assert_uint_eq(b.blocks[1].words_offset, b.blocks[0].words_offset + 3 * 8);
        ck_assert_uint_eq(b.blocks[2].words_offset, b.blocks[1].words_offset + 8);
        ck_assert_uint_eq(b.size, b.blocks[2].words_offset + 8);
        for (unsigned i = 0; i < 3; i++)
                ck_assert_uint_eq(shm_bitmap_count(&b, i), 0);
        /* Sealed: a reader's mapping can never be cut short. */
        ck_assert_int_eq(ftruncate(b.fd, 0), -1);
        ck_assert_int_eq(errno, EPERM);
        ck_assert_int_ne(fcntl(b.fd, F_GETFD) & FD_CLOEXEC, 0);
        shm_bitmap_close(&b);
}
END_TEST

START_TEST(test_bits_across_words)
{
        static const uint64_t pages[] = { 0, 1, 63, 64, 65, 127, 128, 129 };
        struct shm_bitmap b;
        uint64_t *w;

        make_bitmap(&b);
        for (size_t i = 0; i < ELEMENTSOF(pages); i++)
                shm_bitmap_set(&b, 0, pages[i]);
        shm_bitmap_set(&b, 0, 63);              /* setting twice is a no-op */
        ck_assert_uint_eq(shm_bitmap_count(&b, 0), ELEMENTSOF(pages));
        w = shm_bitmap_words(&b, 0);
        ck_assert_uint_eq(w[0], 0x8000000000000003ULL);
        ck_assert_uint_eq(w[1], 0x8000000000000003ULL);
        ck_assert_uint_eq(w[2], 0x3ULL);
        for (uint64_t p = 0; p < 130; p++) {
                bool want = false;

                for (size_t i = 0; i < ELEMENTSOF(pages); i++)
                        want |= pages[i] == p;
                ck_assert_int_eq(shm_bitmap_test(&b, 0, p), want);
        }
        shm_bitmap_clear(&b, 0, 64);
        shm_bitmap_clear(&b, 0, 63);
        shm_bitmap_clear(&b, 0, 100);           /* already clear */
        ck_assert_uint_eq(w[0], 0x3ULL);
        ck_assert_uint_eq(w[1], 0x8000000000000002ULL);
        ck_assert_uint_eq(shm_bitmap_count(&b, 0), ELEMENTSOF(pages) - 2);
        /* Other blocks are untouched. */
        ck_assert_uint_eq(shm_bitmap_count(&b, 1), 0);
        shm_bitmap_set(&b, 1, 63);
        shm_bitmap_set(&b, 2, 0);
        ck_assert_uint_eq(*shm_bitmap_words(&b, 1), 0x8000000000000000ULL);
        ck_assert_uint_eq(*shm_bitmap_words(&b, 2), 1);
        ck_assert_uint_eq(w[2], 0x3ULL);
        shm_bitmap_close(&b);
}
END_TEST

START_TEST(test_ranges)
{
        struct shm_bitmap b;
        uint64_t *w;

        make_bitmap(&b);
        w = shm_bitmap_words(&b, 0);
        shm_bitmap_set_range(&b, 0, 60, 10);    /* 60..69 spans words 0 and 1 */
        ck_assert_uint_eq(w[0], 0xF000000000000000ULL);
        ck_assert_uint_eq(w[1], 0x3FULL);
        ck_assert_uint_eq(shm_bitmap_count(&b, 0), 10);
        ck_assert(bitmap_words_any_in_range(w, 69, 1));
        ck_assert(!bitmap_words_any_in_range(w, 70, 60));
        ck_assert(!bitmap_words_any_in_range(w, 0, 60));
        ck_assert(bitmap_words_any_in_range(w, 0, 61));
        shm_bitmap_set_range(&b, 0, 0, 130);    /* whole block, partial last word */
        ck_assert_uint_eq(w[0], UINT64_MAX);
        ck_assert_uint_eq(w[1], UINT64_MAX);
        ck_assert_uint_eq(w[2], 0x3ULL);        /* nothing past num_pages */
        shm_bitmap_clear_range(&b, 0, 1, 128);
        ck_assert_uint_eq(w[0], 1);
        ck_assert_uint_eq(w[1], 0);
        ck_assert_uint_eq(w[2], 0x2ULL);
        shm_bitmap_set_range(&b, 1, 0, 64);     /* exactly one full word */
        ck_assert_uint_eq(*shm_bitmap_words(&b, 1), UINT64_MAX);
        ck_assert_uint_eq(*shm_bitmap_words(&b, 2), 0);
        shm_bitmap_close(&b);
}
END_TEST

#define N_THREADS 4
#define ROUNDS 200

struct thread_arg {
        struct shm_bitmap *b;
        unsigned id;
};

/* Thread t owns pages p with p % N_THREADS == t: all threads hit the same
 * words at once, so a non-atomic read-modify-write would lose bits. */
static void *hammer(void *opaque)
{
        struct thread_arg *a = opaque;

        for (int round = 0; round < ROUNDS; round++) {
                for (uint64_t p = a->id; p < 130; p += N_THREADS)
                        shm_bitmap_set(a->b, 0, p);
                for (uint64_t p = a->id; p < 130; p += N_THREADS)
                        if (round != ROUNDS - 1 || p % 2)
                                shm_bitmap_clear(a->b, 0, p);
                shm_counter_add(&a->b->hdr->c.pages_written, 1);
        }
        return NULL;
}

START_TEST(test_threads)
{
        struct thread_arg args[N_THREADS];
        pthread_t th[N_THREADS];
        struct shm_bitmap_counters c;
        struct shm_bitmap b;

        make_bitmap(&b);
        for (unsigned i = 0; i < N_THREADS; i++) {
                args[i] = (struct thread_arg){ &b, i };
                ck_assert_int_eq(pthread_create(&th[i], NULL, hammer, &args[i]), 0);
        }
        for (unsigned i = 0; i < N_THREADS; i++)
                pthread_join(th[i], NULL);
        /* After the last round exactly the even pages stay set. */
        ck_assert_uint_eq(shm_bitmap_count(&b, 0), 65);
        for (uint64_t p = 0; p < 130; p++)
                ck_assert_int_eq(shm_bitmap_test(&b, 0, p), p % 2 == 0);
        shm_bitmap_snapshot(&b, &c);
        ck_assert_uint_eq(c.pages_written, N_THREADS * ROUNDS);
        ck_assert_uint_eq(c.pages_total, 195);
        shm_bitmap_close(&b);
}
END_TEST

/* The permissions column of /proc/self/maps for the mapping at addr. */
static const char *map_perms(const void *addr)
{
        static char perms[8];
        char line[512];
        FILE *f = fopen("/proc/self/maps", "re");

        ck_assert_ptr_nonnull(f);
        perms[0] = '\0';
        while (fgets(line, sizeof(line), f)) {
                unsigned long start, end;

                if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) == 3 &&
                    (uintptr_t)addr >= start && (uintptr_t)addr < end)
                        break;
                perms[0] = '\0';
        }
        fclose(f);
        return perms;
}

START_TEST(test_open_readonly)
{
        struct shm_bitmap b, ro;

        make_bitmap(&b);
        shm_bitmap_set(&b, 0, 129);
        shm_counter_add(&b.hdr->c.bytes_written, 4096);
        ck_assert_int_eq(shm_bitmap_open_fd(&ro, b.fd, true), 0);
        ck_assert(ro.readonly);
        ck_assert_int_ne(ro.fd, b.fd);          /* its own descriptor */
        ck_assert_ptr_ne(ro.map, b.map);
        ck_assert_uint_eq(ro.hdr->n_blocks, 3);
        ck_assert(shm_bitmap_test(&ro, 0, 129));
        ck_assert_uint_eq(ro.hdr->c.bytes_written, 4096);
        /* Live: later updates through the writer's mapping show up. */
        shm_bitmap_set(&b, 1, 5);
        shm_counter_add(&b.hdr->c.pages_written, 7);
        ck_assert(shm_bitmap_test(&ro, 1, 5));
        ck_assert_uint_eq(ro.hdr->c.pages_written, 7);
        /* The mapping really is read-only and shared. */
        ck_assert_str_eq(map_perms(ro.map), "r--s");
        ck_assert_str_eq(map_perms(b.map), "rw-s");
        ck_assert(!shm_bitmap_test(&b, 0, 1));
        shm_bitmap_close(&ro);
        /* Closing the reader leaves the writer's fd alone. */
        ck_assert_int_ge(fcntl(b.fd, F_GETFD), 0);
        shm_bitmap_close(&b);
}
END_TEST

/* A copy of a valid region in a fresh memfd, damaged by the caller. */
static int copy_region(const struct shm_bitmap *b, size_t size, uint8_t **img)
{
        int fd = memfd_create("bad", MFD_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        *img = calloc(1, MAX(size, b->size));
        ck_assert_ptr_nonnull(*img);
        memcpy(*img, b->map, MIN(size, b->size));
        return fd;
}

static int open_damaged(const struct shm_bitmap *b, size_t size,
                        void (*damage)(uint8_t *img, size_t size))
{
        struct shm_bitmap out;
        uint8_t *img;
        int fd = copy_region(b, size, &img);
        int r;

        if (damage)
                damage(img, size);
        ck_assert_int_eq(pwrite(fd, img, size, 0), (ssize_t)size);
        r = shm_bitmap_open_fd(&out, fd, true);
        if (r == 0)
                shm_bitmap_close(&out);
        free(img);
        close(fd);
        return r;
}

static void bad_magic(uint8_t *img, size_t size) { img[0] ^= 0xff; }
static void bad_version(uint8_t *img, size_t size) { ((struct shm_bitmap_header *)img)->version = 99; }
static void bad_region(uint8_t *img, size_t size) { ((struct shm_bitmap_header *)img)->region_size += 8; }
static void many_blocks(uint8_t *img, size_t size) { ((struct shm_bitmap_header *)img)->n_blocks = 100000; }

static struct shm_bitmap_block *blk(uint8_t *img, unsigned i)
{
        return (struct shm_bitmap_block *)(img + sizeof(struct shm_bitmap_header)) + i;
}

static void words_outside(uint8_t *img, size_t size) { blk(img, 2)->words_offset = size; }
static void words_huge(uint8_t *img, size_t size) { blk(img, 0)->words_offset = UINT64_MAX - 7; }
static void words_overlap(uint8_t *img, size_t size) { blk(img, 1)->words_offset -= 8; }
static void words_unaligned(uint8_t *img, size_t size) { blk(img, 1)->words_offset += 1; }
static void pages_grow(uint8_t *img, size_t size) { blk(img, 2)->num_pages = 65; }
static void pages_total(uint8_t *img, size_t size) { ((struct shm_bitmap_header *)img)->c.pages_total++; }

START_TEST(test_open_rejects)
{
        struct shm_bitmap b, out;
        int fd;

        make_bitmap(&b);
        ck_assert_int_eq(open_damaged(&b, b.size, NULL), 0);     /* the control */
        ck_assert_int_eq(open_damaged(&b, b.size, bad_magic), -EBADMSG);
        ck_assert_int_eq(open_damaged(&b, b.size, bad_version), -EPROTONOSUPPORT);
        ck_assert_int_eq(open_damaged(&b, b.size, bad_region), -EBADMSG);
        ck_assert_int_eq(open_damaged(&b, b.size, many_blocks), -EBADMSG);
        ck_assert_int_eq(open_damaged(&b, b.size, words_outside), -EBADMSG);
        ck_assert_int_eq(open_damaged(&b, b.size, words_huge), -EBADMSG);
        ck_assert_int_eq(open_damaged(&b, b.size, words_overlap), -EBADMSG);
        ck_assert_int_eq(open_damaged(&b, b.size, words_unaligned), -EBADMSG);
        ck_assert_int_eq(open_damaged(&b, b.size, pages_grow), -EBADMSG);
        ck_assert_int_eq(open_damaged(&b, b.size, pages_total), -EBADMSG);
        /* Truncated: the fd is shorter than the region says. */
        ck_assert_int_eq(open_damaged(&b, b.size - 8, NULL), -EBADMSG);
        ck_assert_int_eq(open_damaged(&b, 16, NULL), -EBADMSG);
        /* Not a regular file. */
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        ck_assert_int_eq(shm_bitmap_open_fd(&out, fd, true), -EBADF);
        close(fd);
        shm_bitmap_close(&b);
}
END_TEST

static Suite *bitmap_suite(void)
{
        Suite *s = suite_create("shm-bitmap");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_create_layout);
        tcase_add_test(tc, test_bits_across_words);
        tcase_add_test(tc, test_ranges);
        tcase_add_test(tc, test_threads);
        tcase_add_test(tc, test_open_readonly);
        tcase_add_test(tc, test_open_rejects);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return test_run_suite(bitmap_suite(), true);
}
