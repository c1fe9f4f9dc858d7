/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Mapped-ram file layout.  Validates the machine name and the block list
 * against savd's limits, derives every file offset exactly as QEMU does
 * (format notes §11.4: header, bitmap right after it, 1 MiB-aligned page
 * slots, the stream continuing at pages_offset + used_length), and encodes
 * the sequential stream pieces: the prologue (file header, configuration
 * record, START "ram" with its MEM_SIZE word), each block record and the
 * RAM tail (EOS + footer, END section).  The layout starts at file offset
 * 0.  Pure computation: no I/O, no logging.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "macro.h"
#include "mrm-layout.h"

/* Fixed sizes of the pieces the prologue is made of (format notes §5, §4). */
#define FILE_HEADER_SIZE        8U      /* magic + version */
#define SECTION_START_RAM_SIZE  (1U + 4U + 1U + 3U + 4U + 4U)
#define SECTION_FOOTER_SIZE     5U      /* 0x7E + be32 id */
#define SECTION_PART_HDR_SIZE   5U      /* type + be32 id */
#define RAM_WORD_SIZE           8U
#define SUBSECTION_HDR_SIZE(namelen) (1U + 1U + (namelen) + 4U)

static size_t caps_subsection_size(void)
{
        return SUBSECTION_HDR_SIZE(strlen(QEMU_CFG_SUB_CAPS)) +
               4U + 1U + strlen(MAPPED_RAM_CAP);
}

static size_t uuid_subsection_size(void)
{
        return SUBSECTION_HDR_SIZE(strlen(QEMU_CFG_SUB_UUID)) + QEMU_UUID_LEN;
}

int mrm_layout_init(struct mrm_layout *l, const char *machine, size_t machine_len,
                    uint32_t ram_section_id)
{
        memset(l, 0, sizeof(*l));
        if (!machine || machine_len == 0 || ram_section_id == 0)
                return -EINVAL;
        if (machine_len > SAVD_MACHINE_NAME_MAX)
                return -E2BIG;
        memcpy(l->machine, machine, machine_len);
        l->machine[machine_len] = '\0';
        l->machine_len = (uint32_t)machine_len;
        l->ram_section_id = ram_section_id;
        return 0;
}

int mrm_layout_set_uuid(struct mrm_layout *l, const uint8_t uuid[QEMU_UUID_LEN])
{
        memcpy(l->uuid, uuid, QEMU_UUID_LEN);
        l->has_uuid = true;
        return 0;
}

int mrm_layout_find_block(const struct mrm_layout *l, const char *name, size_t name_len)
{
        for (size_t i = 0; i < l->n_blocks; i++)
                if (l->blocks[i].name_len == name_len &&
                    memcmp(l->blocks[i].name, name, name_len) == 0)
                        return (int)i;
        return -ENOENT;
}

static int check_block(const struct mrm_layout *l, size_t name_len,
                       uint64_t used_length, uint64_t page_size)
{
        if (name_len == 0 || page_size != QEMU_TPS)
                return -EINVAL;
        if (used_length == 0 || used_length % page_size != 0)
                return -EINVAL;
        if (name_len > SAVD_NAME_MAX || used_length > SAVD_MAX_BLOCK_SIZE)
                return -E2BIG;
        if (l->n_blocks >= SAVD_MAX_BLOCKS)
                return -E2BIG;
        return 0;
}

/* Size of the blocks array while it holds n blocks: 4, then doubling. */
static size_t blocks_capacity(size_t n)
{
        size_t c = 4;
        while (c < n)
                c *= 2;
        return c;
}

int mrm_layout_add_block(struct mrm_layout *l, const char *name, size_t name_len,
                         uint64_t used_length, uint64_t page_size)
{
        int r = check_block(l, name_len, used_length, page_size);
        if (r < 0)
                return r;
        if (!name)
                return -EINVAL;
        if (mrm_layout_find_block(l, name, name_len) >= 0)
                return -EINVAL;         /* QEMU looks blocks up by name */

        /* Grow by doubling; n_blocks is bounded by SAVD_MAX_BLOCKS. */
        size_t n = l->n_blocks;
        if (!l->blocks || n == blocks_capacity(n)) {
                size_t cap = l->blocks ? n * 2 : 4;
                struct mrm_block *nb = realloc(l->blocks, cap * sizeof(*nb));
                if (!nb)
                        return -ENOMEM;
                l->blocks = nb;
        }

        struct mrm_block *b = &l->blocks[n];
        memset(b, 0, sizeof(*b));
        memcpy(b->name, name, name_len);
        b->name[name_len] = '\0';
        b->name_len = (uint8_t)name_len;
        b->used_length = used_length;
        b->page_size = page_size;
        l->n_blocks = n + 1;
        return 0;
}

/* Place one block whose record starts at @off; returns where the next
 * record starts (format notes §11.4). */
static uint64_t place_block(struct mrm_block *b, uint64_t off)
{
        b->num_pages = b->used_length / b->page_size;
        b->record_offset = off;
        b->header_offset = off + 1 + b->name_len + 8;
        b->bitmap_offset = b->header_offset + MAPPED_RAM_HDR_SIZE;
        b->bitmap_size = DIV_ROUND_UP(b->num_pages, 64) * 8;
        b->pages_offset = ROUND_UP(b->bitmap_offset + b->bitmap_size, MAPPED_RAM_ALIGN);
        b->end_offset = b->pages_offset + b->used_length;
        return b->end_offset;
}

int mrm_layout_compute(struct mrm_layout *l)
{
        /* Bounds: 1024 blocks of at most 16 TiB each stay far below 2^64,
         * so none of the sums below can wrap. */
        if (l->n_blocks == 0 || l->machine_len == 0 || l->ram_section_id == 0)
                return -EINVAL;

        l->prologue_size = mrm_prologue_size(l);
        l->total_bytes = 0;
        uint64_t off = l->prologue_size;
        for (size_t i = 0; i < l->n_blocks; i++) {
                l->total_bytes += l->blocks[i].used_length;
                off = place_block(&l->blocks[i], off);
        }
        l->ram_end_offset = off;
        l->ram_tail_size = mrm_ram_tail_size();
        l->device_offset = off + l->ram_tail_size;
        return 0;
}

void mrm_layout_free(struct mrm_layout *l)
{
        free(l->blocks);
        l->blocks = NULL;
        l->n_blocks = 0;
}

size_t mrm_prologue_size(const struct mrm_layout *l)
{
        return FILE_HEADER_SIZE + 1U + 4U + l->machine_len +
               caps_subsection_size() +
               (l->has_uuid ? uuid_subsection_size() : 0) +
               SECTION_START_RAM_SIZE + RAM_WORD_SIZE;
}

static uint8_t *put_counted(uint8_t *p, const char *s, size_t len)
{
        *p++ = (uint8_t)len;
        memcpy(p, s, len);
        return p + len;
}

static uint8_t *put_subsection_hdr(uint8_t *p, const char *name)
{
        *p++ = QEMU_VM_SUBSECTION;
        p = put_counted(p, name, strlen(name));
        put_be32(p, 1);                 /* every configuration subsection is v1 */
        return p + 4;
}

static uint8_t *encode_configuration(const struct mrm_layout *l, uint8_t *p)
{
        *p++ = QEMU_VM_CONFIGURATION;
        put_be32(p, l->machine_len);
        p += 4;
        memcpy(p, l->machine, l->machine_len);
        p += l->machine_len;

        /* Capabilities: exactly "mapped-ram" (format notes §13 rule 2). */
        p = put_subsection_hdr(p, QEMU_CFG_SUB_CAPS);
        put_be32(p, 1);
        p += 4;
        p = put_counted(p, MAPPED_RAM_CAP, strlen(MAPPED_RAM_CAP));

        if (l->has_uuid) {
                p = put_subsection_hdr(p, QEMU_CFG_SUB_UUID);
                memcpy(p, l->uuid, QEMU_UUID_LEN);
                p += QEMU_UUID_LEN;
        }
        return p;
}

size_t mrm_encode_prologue(const struct mrm_layout *l, uint8_t *buf)
{
        uint8_t *p = buf;
        uint64_t total = 0;

        for (size_t i = 0; i < l->n_blocks; i++)
                total += l->blocks[i].used_length;

        put_be32(p, QEMU_VM_FILE_MAGIC);
        put_be32(p + 4, QEMU_VM_FILE_VERSION);
        p += FILE_HEADER_SIZE;
        p = encode_configuration(l, p);

        *p++ = QEMU_VM_SECTION_START;
        put_be32(p, l->ram_section_id);
        p += 4;
        p = put_counted(p, QEMU_RAM_IDSTR, strlen(QEMU_RAM_IDSTR));
        put_be32(p, 0);                 /* instance */
        put_be32(p + 4, QEMU_RAM_VERSION);
        p += 8;
        put_be64(p, total | RAM_SAVE_FLAG_MEM_SIZE);
        p += RAM_WORD_SIZE;
        return (size_t)(p - buf);
}

size_t mrm_block_record_size(const struct mrm_block *b)
{
        return 1U + b->name_len + 8U + MAPPED_RAM_HDR_SIZE;
}

size_t mrm_encode_block_record(const struct mrm_block *b, uint8_t *buf)
{
        uint8_t *p = put_counted(buf, b->name, b->name_len);

        put_be64(p, b->used_length);
        p += 8;
        put_be32(p, MAPPED_RAM_HDR_VERSION);
        put_be64(p + 4, b->page_size);
        put_be64(p + 12, b->bitmap_offset);
        put_be64(p + 20, b->pages_offset);
        p += MAPPED_RAM_HDR_SIZE;
        return (size_t)(p - buf);
}

size_t mrm_ram_tail_size(void)
{
        /* START: EOS + footer; END: header, EOS, footer. */
        return RAM_WORD_SIZE + SECTION_FOOTER_SIZE +
               SECTION_PART_HDR_SIZE + RAM_WORD_SIZE + SECTION_FOOTER_SIZE;
}

static uint8_t *put_eos_footer(uint8_t *p, uint32_t id)
{
        put_be64(p, RAM_SAVE_FLAG_EOS);
        p += RAM_WORD_SIZE;
        *p++ = QEMU_VM_SECTION_FOOTER;
        put_be32(p, id);
        return p + 4;
}

size_t mrm_encode_ram_tail(const struct mrm_layout *l, uint8_t *buf)
{
        uint8_t *p = put_eos_footer(buf, l->ram_section_id);

        *p++ = QEMU_VM_SECTION_END;
        put_be32(p, l->ram_section_id);
        p += 4;
        p = put_eos_footer(p, l->ram_section_id);
        return (size_t)(p - buf);
}
