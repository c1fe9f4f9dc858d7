/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Legacy precopy stream encoders.  Each public function first validates
 * its input and computes the exact size, then writes through a small
 * cursor (struct out) that cannot overrun the size it was given.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "bytes.h"
#include "macro.h"
#include "qemu-emit.h"

struct out {
        uint8_t *p;
};

static void put_u8(struct out *o, uint8_t v)
{
        *o->p++ = v;
}

static void put32(struct out *o, uint32_t v)
{
        put_be32(o->p, v);
        o->p += 4;
}

static void put64(struct out *o, uint64_t v)
{
        put_be64(o->p, v);
        o->p += 8;
}

static void put_bytes(struct out *o, const void *b, size_t n)
{
        memcpy(o->p, b, n);
        o->p += n;
}

/* QEMU's counted string: one length byte, then the bytes. */
static void put_counted(struct out *o, const char *s, size_t n)
{
        put_u8(o, (uint8_t)n);
        put_bytes(o, s, n);
}

/* Common tail of every encoder: the size query, the bounds check. */
static ssize_t room(size_t need, uint8_t *buf, size_t size)
{
        if (buf && size < need)
                return -ENOBUFS;
        return (ssize_t)need;
}

ssize_t qemit_header(uint8_t *buf, size_t size)
{
        ssize_t r = room(QEMIT_HEADER_SIZE, buf, size);

        if (r > 0 && buf) {
                put_be32(buf, QEMU_VM_FILE_MAGIC);
                put_be32(buf + 4, QEMU_VM_FILE_VERSION);
        }
        return r;
}

/* ---- configuration record -------------------------------------------- */

static bool keep_cap(const char *cap)
{
        return strcmp(cap, MAPPED_RAM_CAP) != 0;
}

static size_t subsection_hdr_size(const char *name)
{
        return 1 + 1 + strlen(name) + 4;
}

static void put_subsection_hdr(struct out *o, const char *name)
{
        put_u8(o, QEMU_VM_SUBSECTION);
        put_counted(o, name, strlen(name));
        put32(o, 1);
}

/* Size of the capabilities subsection (0 when it is left out), or -EINVAL. */
static ssize_t caps_size(const struct qemit_config *c, uint32_t *kept)
{
        size_t sz = 4;

        *kept = 0;
        if (c->n_caps > SAVD_MAX_CAPS || (c->n_caps && !c->caps))
                return -EINVAL;
        for (size_t i = 0; i < c->n_caps; i++) {
                size_t n = c->caps[i] ? strlen(c->caps[i]) : 0;

                if (n == 0 || n > SAVD_NAME_MAX)
                        return -EINVAL;
                if (keep_cap(c->caps[i])) {
                        (*kept)++;
                        sz += 1 + n;
                }
        }
        return *kept ? (ssize_t)(subsection_hdr_size(QEMU_CFG_SUB_CAPS) + sz) : 0;
}

ssize_t qemit_config(const struct qemit_config *c, uint8_t *buf, size_t size)
{
        struct out o = { buf };
        uint32_t kept;
        ssize_t caps, r;
        size_t need;

        if (!c->machine || c->machine_len == 0 || c->machine_len > SAVD_MACHINE_NAME_MAX)
                return -EINVAL;
        if ((caps = caps_size(c, &kept)) < 0)
                return caps;
        need = 1 + 4 + c->machine_len + (size_t)caps;
        if (c->uuid)
                need += subsection_hdr_size(QEMU_CFG_SUB_UUID) + QEMU_UUID_LEN;
        if ((r = room(need, buf, size)) < 0 || !buf)
                return r;

        put_u8(&o, QEMU_VM_CONFIGURATION);
        put32(&o, (uint32_t)c->machine_len);
        put_bytes(&o, c->machine, c->machine_len);
        if (kept) {
                put_subsection_hdr(&o, QEMU_CFG_SUB_CAPS);
                put32(&o, kept);
                for (size_t i = 0; i < c->n_caps; i++)
                        if (keep_cap(c->caps[i]))
                                put_counted(&o, c->caps[i], strlen(c->caps[i]));
        }
        if (c->uuid) {
                put_subsection_hdr(&o, QEMU_CFG_SUB_UUID);
                put_bytes(&o, c->uuid, QEMU_UUID_LEN);
        }
        return r;
}

/* ---- RAM sections ---------------------------------------------------- */

static bool block_ok(const struct qemit_block *b)
{
        return b->name && b->name_len > 0 && b->name_len <= SAVD_NAME_MAX &&
               b->used_length > 0 && b->used_length % QEMU_TPS == 0 &&
               b->used_length <= SAVD_MAX_BLOCK_SIZE;
}

static void put_section_tail(struct out *o, uint32_t section_id)
{
        put64(o, RAM_SAVE_FLAG_EOS);
        put_u8(o, QEMU_VM_SECTION_FOOTER);
        put32(o, section_id);
}

ssize_t qemit_ram_start(uint32_t section_id, const struct qemit_block *blocks, size_t n_blocks,
                        uint8_t *buf, size_t size)
{
        const size_t hdr = 1 + 4 + 1 + strlen(QEMU_RAM_IDSTR) + 4 + 4;
        struct out o = { buf };
        size_t need = hdr + 8 + QEMIT_SECTION_TAIL_SIZE;
        uint64_t total = 0;
        ssize_t r;

        if (n_blocks == 0 || n_blocks > SAVD_MAX_BLOCKS || !blocks)
                return -EINVAL;
        for (size_t i = 0; i < n_blocks; i++) {
                if (!block_ok(&blocks[i]))
                        return -EINVAL;
                total += blocks[i].used_length;         /* <= 2^54: no overflow */
                need += 1 + blocks[i].name_len + 8;
        }
        if ((r = room(need, buf, size)) < 0 || !buf)
                return r;

        put_u8(&o, QEMU_VM_SECTION_START);
        put32(&o, section_id);
        put_counted(&o, QEMU_RAM_IDSTR, strlen(QEMU_RAM_IDSTR));
        put32(&o, 0);                   /* instance */
        put32(&o, QEMU_RAM_VERSION);
        put64(&o, total | RAM_SAVE_FLAG_MEM_SIZE);
        for (size_t i = 0; i < n_blocks; i++) {
                put_counted(&o, blocks[i].name, blocks[i].name_len);
                put64(&o, blocks[i].used_length);
        }
        put_section_tail(&o, section_id);
        return r;
}

ssize_t qemit_part_header(uint32_t section_id, uint8_t *buf, size_t size)
{
        struct out o = { buf };
        ssize_t r = room(QEMIT_PART_HEADER_SIZE, buf, size);

        if (r > 0 && buf) {
                put_u8(&o, QEMU_VM_SECTION_PART);
                put32(&o, section_id);
        }
        return r;
}

/* Shared by PAGE and ZERO: the record word and, when the block changes,
 * its name.  extra = bytes of the record that follow the header here. */
static ssize_t record(struct qemit_cursor *cur, const struct qemit_block *blocks,
                      size_t n_blocks, size_t block, uint64_t page, uint64_t flag,
                      size_t extra, uint8_t *buf, size_t size)
{
        const struct qemit_block *b;
        struct out o = { buf };
        bool cont;
        ssize_t r;

        if (!cur || !blocks || block >= n_blocks)
                return -EINVAL;
        b = &blocks[block];
        if (!block_ok(b) || page >= b->used_length / QEMU_TPS)
                return -EINVAL;
        cont = cur->valid && cur->block == block;
        if ((r = room(8 + (cont ? 0 : 1 + b->name_len) + extra, buf, size)) < 0 || !buf)
                return r;
        put64(&o, page * QEMU_TPS | flag | (cont ? RAM_SAVE_FLAG_CONTINUE : 0));
        if (!cont)
                put_counted(&o, b->name, b->name_len);
        cur->valid = true;
        cur->block = block;
        return r;
}

ssize_t qemit_page_header(struct qemit_cursor *cur, const struct qemit_block *blocks,
                          size_t n_blocks, size_t block, uint64_t page,
                          uint8_t *buf, size_t size)
{
        return record(cur, blocks, n_blocks, block, page, RAM_SAVE_FLAG_PAGE, 0, buf, size);
}

ssize_t qemit_zero_page(struct qemit_cursor *cur, const struct qemit_block *blocks,
                        size_t n_blocks, size_t block, uint64_t page,
                        uint8_t *buf, size_t size)
{
        ssize_t r = record(cur, blocks, n_blocks, block, page, RAM_SAVE_FLAG_ZERO, 1, buf, size);

        if (r > 0 && buf)
                buf[r - 1] = 0;         /* fill byte */
        return r;
}

ssize_t qemit_section_tail(uint32_t section_id, uint8_t *buf, size_t size)
{
        struct out o = { buf };
        ssize_t r = room(QEMIT_SECTION_TAIL_SIZE, buf, size);

        if (r > 0 && buf)
                put_section_tail(&o, section_id);
        return r;
}

ssize_t qemit_ram_end(uint32_t section_id, uint8_t *buf, size_t size)
{
        struct out o = { buf };
        ssize_t r = room(QEMIT_RAM_END_SIZE, buf, size);

        if (r > 0 && buf) {
                put_u8(&o, QEMU_VM_SECTION_END);
                put32(&o, section_id);
                put_section_tail(&o, section_id);
        }
        return r;
}
