/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Mapped-ram file layout: where every byte of a mapped-ram file goes,
 * computed from the machine name and the list of RAM blocks, plus encoders
 * for the sequential stream pieces between the page regions.  Pure
 * computation: no I/O, no logging.
 *
 * File shape (format notes §11.2):
 *   prologue  = header, configuration (capabilities: mapped-ram [, uuid]),
 *               START "ram", MEM_SIZE word
 *   per block = counted name, be64 used_length, MappedRamHeader  (at
 *               block->record_offset), bitmap (at bitmap_offset), hole,
 *               page slots (at pages_offset)
 *   ram tail  = EOS + footer at ram_end_offset, then END section (EOS +
 *               footer); device state, EOF and vmdesc follow.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qemu-format.h"

struct mrm_block {
        char name[SAVD_NAME_MAX + 1];   /* NUL-terminated copy */
        uint8_t name_len;
        uint64_t used_length;           /* bytes, multiple of page_size */
        uint64_t page_size;             /* QEMU_TPS */
        /* derived by mrm_layout_compute() */
        uint64_t num_pages;
        uint64_t record_offset;         /* counted name starts here */
        uint64_t header_offset;         /* MappedRamHeader starts here */
        uint64_t bitmap_offset;
        uint64_t bitmap_size;           /* bytes, 64-bit words */
        uint64_t pages_offset;          /* 1 MiB aligned */
        uint64_t end_offset;            /* pages_offset + used_length */
};

struct mrm_layout {
        char machine[SAVD_MACHINE_NAME_MAX + 1];
        uint32_t machine_len;
        bool has_uuid;
        uint8_t uuid[QEMU_UUID_LEN];
        uint32_t ram_section_id;        /* non-zero */
        size_t n_blocks;
        struct mrm_block *blocks;       /* owned */
        /* derived */
        uint64_t total_bytes;           /* sum of used_length */
        uint64_t prologue_size;         /* bytes before blocks[0].record_offset */
        uint64_t ram_end_offset;        /* EOS of the START section */
        uint64_t ram_tail_size;         /* START EOS+footer, END section */
        uint64_t device_offset;         /* first byte after the RAM tail */
};

/* Create an empty layout; blocks are added with mrm_layout_add_block(). */
int mrm_layout_init(struct mrm_layout *l, const char *machine, size_t machine_len,
                    uint32_t ram_section_id);
int mrm_layout_set_uuid(struct mrm_layout *l, const uint8_t uuid[QEMU_UUID_LEN]);
int mrm_layout_add_block(struct mrm_layout *l, const char *name, size_t name_len,
                         uint64_t used_length, uint64_t page_size);
/* Derive every offset from blocks starting at file offset 0. */
int mrm_layout_compute(struct mrm_layout *l);
void mrm_layout_free(struct mrm_layout *l);

/* Byte counts and encoders for the sequential pieces.  Each encoder
 * writes exactly the returned size into buf (caller sizes it with the
 * matching *_size function). */
size_t mrm_prologue_size(const struct mrm_layout *l);
size_t mrm_encode_prologue(const struct mrm_layout *l, uint8_t *buf);
size_t mrm_block_record_size(const struct mrm_block *b);     /* name..header */
size_t mrm_encode_block_record(const struct mrm_block *b, uint8_t *buf);
size_t mrm_ram_tail_size(void);
size_t mrm_encode_ram_tail(const struct mrm_layout *l, uint8_t *buf);

/* Lookup by name; returns the index or -ENOENT. */
int mrm_layout_find_block(const struct mrm_layout *l, const char *name, size_t name_len);
