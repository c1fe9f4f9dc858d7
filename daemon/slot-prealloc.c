/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Slot reservation for output files (see slot-prealloc.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>

#include "macro.h"
#include "qemu-format.h"
#include "slot-prealloc.h"

#define WORD_BITS 64U

static int punch(int fd, uint64_t off, uint64_t len)
{
        if (len == 0)
                return 0;
        return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0 ?
               -errno : 0;
}

/* Only where reserving turns allocating writes into overwrites: on
 * tmpfs fallocate() would allocate (and zero) memory for the whole RAM,
 * and copy-on-write file systems allocate on every write anyway. */
static bool worth_reserving(int fd)
{
        struct statfs sf;

        if (fstatfs(fd, &sf) < 0)
                return false;
        return sf.f_type == EXT4_SUPER_MAGIC || sf.f_type == XFS_SUPER_MAGIC;
}

/* Would reserving total bytes leave the file system roomy enough that
 * other jobs writing there now cannot run out of space because of it? */
static int enough_room(int fd, uint64_t total)
{
        struct statvfs sv;
        uint64_t avail, size;

        if (fstatvfs(fd, &sv) < 0)
                return -errno;
        avail = (uint64_t)sv.f_bavail * sv.f_frsize;
        size = (uint64_t)sv.f_blocks * sv.f_frsize;
        return avail / 2 >= total && avail - total >= size / SLOTS_RESERVE_KEEP_FREE_DIV ? 0 : -ENOSPC;
}

int slots_reserve(int fd, const struct mrm_layout *l)
{
        uint64_t total = 0;
        int r;

        if (!worth_reserving(fd))
                return -EOPNOTSUPP;
        for (size_t i = 0; i < l->n_blocks; i++)
                total += l->blocks[i].used_length;
        r = enough_room(fd, total);
        if (r < 0)
                return r;
        for (size_t i = 0; i < l->n_blocks; i++) {
                const struct mrm_block *b = &l->blocks[i];

                if (b->used_length == 0)
                        continue;
                if (fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)b->pages_offset,
                              (off_t)b->used_length) == 0)
                        continue;
                r = -errno;
                /* Give back what was taken, including a partial range. */
                for (size_t k = 0; k <= i; k++)
                        (void)punch(fd, l->blocks[k].pages_offset, l->blocks[k].used_length);
                return r;
        }
        return 0;
}

int slots_release_unset(int fd, const struct mrm_layout *l, struct shm_bitmap *bm)
{
        for (size_t i = 0; i < l->n_blocks; i++) {
                const struct mrm_block *b = &l->blocks[i];
                const uint64_t *w = shm_bitmap_words(bm, (unsigned)i);
                uint64_t n = b->num_pages;

                for (uint64_t p = bitmap_words_next(w, n, 0, false); p < n;) {
                        uint64_t end = bitmap_words_next(w, n, p, true);
                        int r = 0;

                        if (end - p >= SLOTS_PUNCH_MIN_PAGES)
                                r = punch(fd, b->pages_offset + p * QEMU_TPS, (end - p) * QEMU_TPS);
                        if (r < 0)
                                return r;
                        p = bitmap_words_next(w, n, end, false);
                }
        }
        return 0;
}
