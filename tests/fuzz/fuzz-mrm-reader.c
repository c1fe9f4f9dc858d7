/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the mapped-ram reader and verifier
 * (proto/mrm-reader.h).  A mapped-ram file is mostly holes (page slots are
 * 1 MiB aligned), so the input describes a sparse file rather than holding
 * one:
 *
 *      be64 file size, u8 flags,
 *      then extents: be64 offset, be16 length, length bytes
 *      (the last extent may be cut short; later extents win; the rest of
 *      the file reads as zeros)
 *
 * The file is read and, when that succeeds, verified, through an
 * in-memory pread callback.  With flag bit 0 set it is read a second time
 * through a callback that returns short reads (at most 1 + flags * 16
 * bytes); both passes must agree on the verdict, the error and the
 * figures.  A verified file must satisfy the layout rule the verifier
 * documents, checked here independently.
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "fuzz.h"
#include "macro.h"
#include "mem-source.h"
#include "mrm-reader.h"

#define HDR_SIZE        9U
#define EXT_HDR_SIZE    10U
#define FLAG_SHORT      0x01

/* The sparse file the input describes, with the storage of its extents. */
struct sparse {
        struct mem_source src;
        struct mem_extent *ext;
};

/* Split the input into extents; returns false if it is too short. */
static bool parse_input(const uint8_t *data, size_t size, struct sparse *s, uint8_t *flags)
{
        size_t max = size / EXT_HDR_SIZE + 1, pos = HDR_SIZE, n = 0;

        if (size < HDR_SIZE)
                return false;
        *flags = data[8];
        s->ext = calloc(max, sizeof(*s->ext));
        require(s->ext);
        while (pos + EXT_HDR_SIZE <= size) {
                struct mem_extent *e = &s->ext[n++];
                e->off = get_be64(data + pos);
                e->len = MIN((size_t)get_be16(data + pos + 8), size - pos - EXT_HDR_SIZE);
                e->data = data + pos + EXT_HDR_SIZE;
                pos += EXT_HDR_SIZE + e->len;
        }
        s->src = (struct mem_source) { .ext = s->ext, .n = n, .size = get_be64(data) };
        return true;
}

/* What the verifier promises about a file it accepted (format notes
 * §11.4), recomputed from the block list. */
static void check_verified(const struct mrm_file *f)
{
        const struct mrm_layout *l = &f->layout;
        uint64_t present = 0, zero = 0, total = 0;

        require(f->verified && f->stats && l->n_blocks > 0 && l->n_blocks <= SAVD_MAX_BLOCKS);
        require(f->has_vmdesc && f->vmdesc);
        require(f->vmdesc_offset + f->vmdesc_len == f->file_size);
        require(f->eof_offset + 6 == f->vmdesc_offset);
        require(f->device_offset <= f->eof_offset);
        require(f->n_caps <= SAVD_MAX_CAPS);
        for (size_t i = 0; i < l->n_blocks; i++) {
                const struct mrm_block *b = &l->blocks[i];
                require(b->name_len > 0 && b->name[b->name_len] == '\0');
                require(b->page_size == QEMU_TPS);
                require(b->used_length > 0 && b->used_length % QEMU_TPS == 0);
                require(b->used_length <= SAVD_MAX_BLOCK_SIZE);
                require(b->num_pages == b->used_length / QEMU_TPS);
                require(b->bitmap_size == DIV_ROUND_UP(b->num_pages, 64) * 8);
                require(b->bitmap_offset == b->header_offset + MAPPED_RAM_HDR_SIZE);
                require(b->bitmap_offset + b->bitmap_size <= f->file_size);
                require(b->pages_offset % MAPPED_RAM_ALIGN == 0);
                require(b->pages_offset == ROUND_UP(b->bitmap_offset + b->bitmap_size,
                                                    MAPPED_RAM_ALIGN));
                require(b->end_offset == b->pages_offset + b->used_length);
                require(b->record_offset < b->header_offset);
                require(i == 0 || b->record_offset >= l->blocks[i - 1].end_offset);
                require(f->stats[i].pages_present + f->stats[i].pages_zero == b->num_pages);
                present += f->stats[i].pages_present;
                zero += f->stats[i].pages_zero;
                total += b->used_length;
        }
        require(l->blocks[l->n_blocks - 1].end_offset <= l->ram_end_offset);
        require(l->ram_end_offset <= f->device_offset);
        require(present == f->pages_present && zero == f->pages_zero);
        require(total == l->total_bytes);
}

struct verdict {
        int read, verify;
        struct mrm_error err;
        uint64_t present, zero, device, eof;
        size_t n_blocks;
};

static void read_file(struct mem_source *s, struct verdict *v)
{
        struct mrm_file f;

        memset(v, 0, sizeof(*v));
        v->read = mrm_read(&f, mem_source_pread, s, s->size, &v->err);
        require(v->read <= 0);
        if (v->read == 0) {
                require(f.layout.n_blocks > 0);
                v->verify = mrm_verify(&f, mem_source_pread, s, &v->err);
                require(v->verify <= 0);
                if (v->verify == 0)
                        check_verified(&f);
                else
                        require(!f.verified && v->err.msg[0]);
        } else {
                require(v->err.msg[0]);
        }
        require(memchr(v->err.msg, 0, sizeof(v->err.msg)));
        v->present = f.pages_present;
        v->zero = f.pages_zero;
        v->device = f.device_offset;
        v->eof = f.eof_offset;
        v->n_blocks = f.layout.n_blocks;
        mrm_file_free(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct sparse s;
        struct verdict a, b;
        uint8_t flags;

        if (!parse_input(data, size, &s, &flags))
                return 0;
        read_file(&s.src, &a);
        if (flags & FLAG_SHORT) {
                s.src.max_read = 1 + (size_t)(flags >> 1) * 16;
                read_file(&s.src, &b);
                require(a.read == b.read && a.verify == b.verify);
                require(a.err.offset == b.err.offset && strcmp(a.err.msg, b.err.msg) == 0);
                require(a.present == b.present && a.zero == b.zero);
                require(a.device == b.device && a.eof == b.eof && a.n_blocks == b.n_blocks);
        }
        free(s.ext);
        return 0;
}
