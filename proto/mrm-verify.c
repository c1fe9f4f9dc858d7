/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Mapped-ram structural verifier.  Given a file parsed by mrm_read(), checks
 * what the parse alone does not: each block's bitmap and page slots sit
 * exactly where QEMU puts them (format notes §11.4: bitmap right after the
 * header, slots at the next 1 MiB boundary), the bitmap lies inside the
 * file, no bit is set beyond the block's pages, the file covers every set
 * slot, and the EOF/vmdesc trailer is present with valid JSON.  Bitmaps are
 * read MRM_BITMAP_CHUNK bytes at a time while counting present and zero
 * pages per block.  No I/O of its own: reads go through the callback.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "macro.h"
#include "mrm-reader.h"

static int check_block_layout(const struct mrm_file *f, const struct mrm_block *b,
                              const char *shown, struct mrm_error *err)
{
        uint64_t bitmap_end = b->bitmap_offset + b->bitmap_size;      /* checked by mrm_read */

        if (bitmap_end > f->file_size)
                return mrm_fail(err, b->header_offset + 12, -EBADMSG,
                                "block '%s': bitmap (0x%llx bytes at 0x%llx) extends beyond "
                                "the end of the file (0x%llx)", shown,
                                (unsigned long long)b->bitmap_size,
                                (unsigned long long)b->bitmap_offset,
                                (unsigned long long)f->file_size);
        if (b->bitmap_offset != b->header_offset + MAPPED_RAM_HDR_SIZE)
                return mrm_fail(err, b->header_offset + 12, -EBADMSG,
                                "block '%s': bitmap offset 0x%llx, expected 0x%llx (right "
                                "after the header)", shown,
                                (unsigned long long)b->bitmap_offset,
                                (unsigned long long)(b->header_offset + MAPPED_RAM_HDR_SIZE));
        if (b->pages_offset % MAPPED_RAM_ALIGN)
                return mrm_fail(err, b->header_offset + 20, -EBADMSG,
                                "block '%s': pages offset 0x%llx is not 1 MiB aligned", shown,
                                (unsigned long long)b->pages_offset);
        if (b->pages_offset != ROUND_UP(bitmap_end, MAPPED_RAM_ALIGN))
                return mrm_fail(err, b->header_offset + 20, -EBADMSG,
                                "block '%s': pages offset 0x%llx, expected 0x%llx (the first "
                                "1 MiB boundary after the bitmap)", shown,
                                (unsigned long long)b->pages_offset,
                                (unsigned long long)ROUND_UP(bitmap_end, MAPPED_RAM_ALIGN));
        return 0;
}

struct scan {
        uint64_t present;
        uint64_t last_set;              /* highest set page + 1, 0 if none */
};

/* Count one chunk of bitmap words starting at page first_page; bits at or
 * beyond num_pages must be clear. */
static int scan_words(const struct mrm_block *b, const uint8_t *buf, size_t n,
                      uint64_t first_page, uint64_t chunk_off, struct scan *s,
                      const char *shown, struct mrm_error *err)
{
        for (size_t i = 0; i < n; i += 8) {
                uint64_t w = get_le64(buf + i), page = first_page + i * 8;

                if (page + 64 > b->num_pages) {
                        uint64_t valid = b->num_pages - page;   /* 1..63 here */
                        uint64_t extra = w >> valid;
                        if (extra) {
                                uint64_t bit = valid + (uint64_t)__builtin_ctzll(extra);
                                return mrm_fail(err, chunk_off + i + bit / 8, -EBADMSG,
                                                "block '%s': bit for page %llu is set, beyond "
                                                "its %llu pages", shown,
                                                (unsigned long long)(page + bit),
                                                (unsigned long long)b->num_pages);
                        }
                }
                if (w) {
                        s->present += (uint64_t)__builtin_popcountll(w);
                        s->last_set = page + 64 - (uint64_t)__builtin_clzll(w);
                }
        }
        return 0;
}

static int scan_bitmap(const struct mrm_file *f, const struct mrm_block *b, uint8_t *buf,
                       mrm_pread_fn fn, void *opaque, struct mrm_block_stats *st,
                       const char *shown, struct mrm_error *err)
{
        struct scan s = {};
        int k;

        for (uint64_t off = 0; off < b->bitmap_size; off += MRM_BITMAP_CHUNK) {
                size_t n = (size_t)MIN((uint64_t)MRM_BITMAP_CHUNK, b->bitmap_size - off);
                if ((k = mrm_pread_full(fn, opaque, buf, n, b->bitmap_offset + off, err)) < 0)
                        return k;
                if ((k = scan_words(b, buf, n, off * 8, b->bitmap_offset + off, &s,
                                    shown, err)) < 0)
                        return k;
        }
        /* mrm_read() already requires the stream to continue after the
         * slots, so this holds for any parsed file; it is what a restore
         * relies on, hence checked here on its own. */
        uint64_t slot_end = b->pages_offset + s.last_set * QEMU_TPS;
        if (s.last_set && slot_end > f->file_size)
                return mrm_fail(err, slot_end - QEMU_TPS, -EBADMSG,
                                "block '%s': page %llu is present but its slot ends beyond "
                                "the end of the file (0x%llx)", shown,
                                (unsigned long long)(s.last_set - 1),
                                (unsigned long long)f->file_size);
        st->pages_present = s.present;
        st->pages_zero = b->num_pages - s.present;
        return 0;
}

static int verify_blocks(struct mrm_file *f, mrm_pread_fn fn, void *opaque,
                         struct mrm_error *err)
{
        const struct mrm_layout *l = &f->layout;
        uint64_t max_bitmap = 0;
        int k;

        for (size_t i = 0; i < l->n_blocks; i++)
                max_bitmap = MAX(max_bitmap, l->blocks[i].bitmap_size);
        _cleanup_free_ uint8_t *buf = malloc((size_t)MIN(max_bitmap, (uint64_t)MRM_BITMAP_CHUNK));
        if (!buf)
                return mrm_fail(err, 0, -ENOMEM, "out of memory");

        f->pages_present = f->pages_zero = 0;
        for (size_t i = 0; i < l->n_blocks; i++) {
                const struct mrm_block *b = &l->blocks[i];
                char shown[MRM_SHOWN_MAX];

                mrm_shown_name(shown, b->name, b->name_len);
                if ((k = check_block_layout(f, b, shown, err)) < 0 ||
                    (k = scan_bitmap(f, b, buf, fn, opaque, &f->stats[i], shown, err)) < 0)
                        return k;
                f->pages_present += f->stats[i].pages_present;
                f->pages_zero += f->stats[i].pages_zero;
        }
        return 0;
}

int mrm_verify(struct mrm_file *f, mrm_pread_fn fn, void *opaque, struct mrm_error *err)
{
        int k;

        f->verified = false;
        if (err)
                memset(err, 0, sizeof(*err));
        if (f->layout.n_blocks == 0)
                return mrm_fail(err, 0, -EINVAL, "no RAM blocks (file not read)");
        if (!f->stats) {
                f->stats = calloc(f->layout.n_blocks, sizeof(*f->stats));
                if (!f->stats)
                        return mrm_fail(err, 0, -ENOMEM, "out of memory");
        }
        if ((k = verify_blocks(f, fn, opaque, err)) < 0)
                return k;
        if (!f->vmdesc) {
                if (err)
                        *err = f->vmdesc_error;
                return -EBADMSG;
        }
        f->verified = true;
        return 0;
}
