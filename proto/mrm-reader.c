/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Mapped-ram file reader: parses the stream portion of a file written by
 * QEMU (9.0+) or savd, following the format notes §3-§7 and §11, and
 * locates the EOF/vmdesc trailer (§9).  Reads go through a small window
 * over the caller's pread callback; every field is checked before use and
 * nothing is allocated from an unchecked size.  The structural verifier is
 * in mrm-verify.c.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "macro.h"
#include "mrm-reader.h"

#define RD_WINDOW               (64U << 10)     /* stream bytes cached */
#define VMDESC_SCAN_CHUNK       (1U << 20)      /* trailer search step */
#define VMDESC_MAX_DEPTH        64              /* JSON nesting */
#define TRAILER_HDR_SIZE        6U              /* 00 06 be32 */
#define QEMU_MIG_CMD_MAX        11U             /* SWITCHOVER_START */

/* Fixed payload length of each command (format notes §6); -1 = variable. */
static const int mig_cmd_len[QEMU_MIG_CMD_MAX + 1] = {
        [0] = -2,               /* invalid */
        [1] = 0, [2] = 4, [3] = -1, [4] = 0, [5] = 0, [6] = -1,
        [7] = 4, [8] = 0, [9] = 0, [10] = -1, [11] = 0,
};

struct rd {
        mrm_pread_fn fn;
        void *opaque;
        uint64_t size;
        uint64_t pos;
        struct mrm_error *err;
        uint8_t *win;
        uint64_t win_off;
        size_t win_len;
};

int mrm_fail(struct mrm_error *e, uint64_t off, int r, const char *fmt, ...)
{
        va_list ap;

        if (e) {
                e->offset = off;
                va_start(ap, fmt);
                vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
                va_end(ap);
        }
        return r;
}

void mrm_printable(char *dst, const char *src, size_t len)
{
        for (size_t i = 0; i < len; i++)
                dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
        dst[len] = '\0';
}

void mrm_shown_name(char dst[MRM_SHOWN_MAX], const char *src, size_t len)
{
        if (len < MRM_SHOWN_MAX) {
                mrm_printable(dst, src, len);
                return;
        }
        mrm_printable(dst, src, MRM_SHOWN_MAX - 4);
        memcpy(dst + MRM_SHOWN_MAX - 4, "...", 4);
}

int mrm_pread_full(mrm_pread_fn fn, void *opaque, void *buf, size_t len, uint64_t off,
                   struct mrm_error *err)
{
        uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = fn(opaque, p, len, off);
                if (n < 0)
                        return mrm_fail(err, off, (int)n, "read failed: %s", strerror((int)-n));
                if (n == 0)
                        return mrm_fail(err, off, -EIO, "unexpected end of data while reading");
                p += n;
                off += (uint64_t)n;
                len -= (size_t)n;
        }
        return 0;
}

ssize_t mrm_mem_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
        const struct mrm_mem_source *m = opaque;

        if (off >= m->size)
                return 0;
        if (len > m->size - off)
                len = (size_t)(m->size - off);
        memcpy(buf, m->data + off, len);
        return (ssize_t)len;
}

/* Take n bytes at the cursor; the caller names what they are for the
 * truncation message. */
static int rd_bytes(struct rd *r, void *dst, size_t n, const char *what)
{
        if (n > r->size || r->pos > r->size - n)
                return mrm_fail(r->err, r->pos, -EBADMSG,
                                "truncated: %s needs %zu bytes, file ends at 0x%llx",
                                what, n, (unsigned long long)r->size);
        if (r->pos < r->win_off || r->pos + n > r->win_off + r->win_len) {
                size_t want = (size_t)MIN((uint64_t)RD_WINDOW, r->size - r->pos);
                int k = mrm_pread_full(r->fn, r->opaque, r->win, want, r->pos, r->err);
                if (k < 0)
                        return k;
                r->win_off = r->pos;
                r->win_len = want;
        }
        memcpy(dst, r->win + (r->pos - r->win_off), n);
        r->pos += n;
        return 0;
}

static int rd_u8(struct rd *r, uint8_t *v, const char *what)
{
        return rd_bytes(r, v, 1, what);
}

static int rd_be16(struct rd *r, uint16_t *v, const char *what)
{
        uint8_t b[2];
        int k = rd_bytes(r, b, sizeof(b), what);
        *v = k < 0 ? 0 : get_be16(b);
        return k;
}

static int rd_be32(struct rd *r, uint32_t *v, const char *what)
{
        uint8_t b[4];
        int k = rd_bytes(r, b, sizeof(b), what);
        *v = k < 0 ? 0 : get_be32(b);
        return k;
}

static int rd_be64(struct rd *r, uint64_t *v, const char *what)
{
        uint8_t b[8];
        int k = rd_bytes(r, b, sizeof(b), what);
        *v = k < 0 ? 0 : get_be64(b);
        return k;
}

/* Counted string into a SAVD_NAME_MAX + 1 buffer, NUL-terminated. */
static int rd_counted(struct rd *r, char *out, uint8_t *len, const char *what)
{
        int k = rd_u8(r, len, what);
        if (k < 0)
                return k;
        k = rd_bytes(r, out, *len, what);
        if (k < 0)
                return k;
        out[*len] = '\0';
        return 0;
}

static int parse_header(struct rd *r)
{
        uint32_t magic, version;
        int k;

        if ((k = rd_be32(r, &magic, "file magic")) < 0)
                return k;
        if (magic != QEMU_VM_FILE_MAGIC)
                return mrm_fail(r->err, 0, -EBADMSG,
                                "bad magic 0x%08x, not a QEMU migration file", magic);
        if ((k = rd_be32(r, &version, "file version")) < 0)
                return k;
        if (version != QEMU_VM_FILE_VERSION)
                return mrm_fail(r->err, 4, -EBADMSG,
                                "unsupported file version %u, expected %u",
                                version, QEMU_VM_FILE_VERSION);
        return 0;
}

static int parse_caps(struct rd *r, struct mrm_file *f)
{
        uint64_t list_at = r->pos, at;
        uint32_t count;
        bool mapped_ram = false;
        int k;

        if ((k = rd_be32(r, &count, "capability count")) < 0)
                return k;
        if (count > SAVD_MAX_CAPS)
                return mrm_fail(r->err, list_at, -E2BIG,
                                "capability count %u exceeds the limit of %u",
                                count, SAVD_MAX_CAPS);
        for (uint32_t i = 0; i < count; i++) {
                struct mrm_cap *c = &f->caps[i];
                at = r->pos;
                if ((k = rd_counted(r, c->name, &c->len, "capability name")) < 0)
                        return k;
                f->n_caps = i + 1;
                if (strcmp(c->name, MAPPED_RAM_CAP) == 0 && c->len == strlen(MAPPED_RAM_CAP)) {
                        mapped_ram = true;
                        continue;
                }
                char name[MRM_SHOWN_MAX];
                mrm_shown_name(name, c->name, c->len);
                /* x-ignore-shared puts a GPA before each header that QEMU's
                 * own mapped-ram loader does not read (format notes §11.10). */
                return mrm_fail(r->err, at, -EBADMSG, "capability '%s' is not supported "
                                "in a mapped-ram file", name);
        }
        if (!mapped_ram)
                return mrm_fail(r->err, list_at, -EBADMSG,
                                "capability list does not contain 'mapped-ram'");
        return 0;
}

static int parse_subsection(struct rd *r, struct mrm_file *f, unsigned *seen)
{
        uint64_t at = r->pos;
        char name[SAVD_NAME_MAX + 1], shown[MRM_SHOWN_MAX];
        uint8_t len, type;
        uint32_t version;
        unsigned bit;
        int k;

        if ((k = rd_u8(r, &type, "subsection")) < 0 ||
            (k = rd_counted(r, name, &len, "subsection name")) < 0 ||
            (k = rd_be32(r, &version, "subsection version")) < 0)
                return k;
        mrm_shown_name(shown, name, len);
        if (strcmp(name, QEMU_CFG_SUB_CAPS) == 0)
                bit = 1;
        else if (strcmp(name, QEMU_CFG_SUB_UUID) == 0)
                bit = 2;
        else if (strcmp(name, QEMU_CFG_SUB_PAGEBITS) == 0)
                bit = 4;
        else
                return mrm_fail(r->err, at, -EBADMSG, "unknown configuration subsection '%s'",
                                shown);
        if (strlen(name) != len || (*seen & bit))
                return mrm_fail(r->err, at, -EBADMSG, "duplicate or malformed subsection '%s'",
                                shown);
        *seen |= bit;
        if (version != 1)
                return mrm_fail(r->err, at + 2 + len, -EBADMSG,
                                "subsection '%s' has version %u, expected 1", shown, version);

        if (bit == 1)
                return parse_caps(r, f);
        if (bit == 2) {
                uint8_t uuid[QEMU_UUID_LEN];
                if ((k = rd_bytes(r, uuid, sizeof(uuid), "uuid")) < 0)
                        return k;
                return mrm_layout_set_uuid(&f->layout, uuid);
        }
        at = r->pos;
        if ((k = rd_be32(r, &f->page_bits, "target page bits")) < 0)
                return k;
        f->has_page_bits = true;
        if (f->page_bits != 12)
                return mrm_fail(r->err, at, -EBADMSG,
                                "target page bits %u, only 12 (4096-byte pages) is supported",
                                f->page_bits);
        return 0;
}

static int parse_configuration(struct rd *r, struct mrm_file *f)
{
        char machine[SAVD_MACHINE_NAME_MAX + 1];
        uint64_t at = r->pos;
        uint32_t len;
        uint8_t type;
        unsigned seen = 0;
        int k;

        if ((k = rd_u8(r, &type, "configuration")) < 0)
                return k;
        if (type != QEMU_VM_CONFIGURATION)
                return mrm_fail(r->err, at, -EBADMSG,
                                "configuration section missing (type 0x%02x)", type);
        at = r->pos;
        if ((k = rd_be32(r, &len, "machine name length")) < 0)
                return k;
        if (len == 0 || len > SAVD_MACHINE_NAME_MAX)
                return mrm_fail(r->err, at, len ? -E2BIG : -EBADMSG,
                                "machine name length %u outside 1..%u", len,
                                SAVD_MACHINE_NAME_MAX);
        if ((k = rd_bytes(r, machine, len, "machine name")) < 0)
                return k;
        /* The section id is filled in when the START section is read. */
        if ((k = mrm_layout_init(&f->layout, machine, len, UINT32_MAX)) < 0)
                return mrm_fail(r->err, at, k, "bad machine name");

        for (;;) {
                uint8_t next;
                if ((k = rd_u8(r, &next, "section type")) < 0)
                        return k;
                r->pos--;
                if (next != QEMU_VM_SUBSECTION)
                        break;
                if ((k = parse_subsection(r, f, &seen)) < 0)
                        return k;
        }
        if (!(seen & 1))
                return mrm_fail(r->err, r->pos, -EBADMSG,
                                "configuration has no capabilities subsection (mapped-ram off)");
        return 0;
}

static int parse_command(struct rd *r, struct mrm_file *f)
{
        uint64_t at = r->pos;
        uint16_t cmd, len;
        uint8_t type;
        int k;

        if (f->n_commands >= MRM_MAX_COMMANDS)
                return mrm_fail(r->err, at, -E2BIG, "more than %u commands", MRM_MAX_COMMANDS);
        if ((k = rd_u8(r, &type, "command")) < 0 ||
            (k = rd_be16(r, &cmd, "command")) < 0 ||
            (k = rd_be16(r, &len, "command length")) < 0)
                return k;
        if (cmd == 0 || cmd > QEMU_MIG_CMD_MAX)
                return mrm_fail(r->err, at, -EBADMSG, "unknown command 0x%x", cmd);
        if (mig_cmd_len[cmd] >= 0 && len != mig_cmd_len[cmd])
                return mrm_fail(r->err, at, -EBADMSG, "command 0x%x has length %u, expected %d",
                                cmd, len, mig_cmd_len[cmd]);
        if ((uint64_t)len > r->size - r->pos)
                return mrm_fail(r->err, r->pos, -EBADMSG,
                                "truncated: command payload of %u bytes", len);
        r->pos += len;
        f->n_commands++;
        return 0;
}

static int parse_footer(struct rd *r, uint32_t id)
{
        uint64_t at = r->pos;
        uint8_t type;
        uint32_t got;
        int k;

        if ((k = rd_u8(r, &type, "section footer")) < 0)
                return k;
        if (type != QEMU_VM_SECTION_FOOTER)
                return mrm_fail(r->err, at, -EBADMSG,
                                "missing section footer (0x%02x instead of 0x7e)", type);
        if ((k = rd_be32(r, &got, "section footer id")) < 0)
                return k;
        if (got != id)
                return mrm_fail(r->err, at + 1, -EBADMSG,
                                "section footer id %u does not match section id %u", got, id);
        return 0;
}

/* A RAM record word that must be EOS: mapped-ram sections carry no page
 * records (format notes §11.2). */
static int parse_eos(struct rd *r)
{
        uint64_t at = r->pos, w;
        int k;

        if ((k = rd_be64(r, &w, "RAM EOS record")) < 0)
                return k;
        if (w != RAM_SAVE_FLAG_EOS)
                return mrm_fail(r->err, at, -EBADMSG,
                                "RAM record 0x%016llx where EOS was expected",
                                (unsigned long long)w);
        return 0;
}

/* The MappedRamHeader of block b at the cursor; leaves the cursor at the
 * next record (the stream jump, format notes §11.2). */
static int parse_block_header(struct rd *r, struct mrm_block *b, const char *shown)
{
        uint8_t h[MAPPED_RAM_HDR_SIZE];
        int k;

        b->header_offset = r->pos;
        if ((k = rd_bytes(r, h, sizeof(h), "MappedRamHeader")) < 0)
                return k;
        uint32_t version = get_be32(h);
        b->page_size = get_be64(h + 4);
        b->bitmap_offset = get_be64(h + 12);
        b->pages_offset = get_be64(h + 20);
        b->num_pages = b->used_length / QEMU_TPS;
        b->bitmap_size = DIV_ROUND_UP(b->num_pages, 64) * 8;

        if (version != MAPPED_RAM_HDR_VERSION)
                return mrm_fail(r->err, b->header_offset, -EBADMSG,
                                "block '%s': MappedRamHeader version %u, expected %u",
                                shown, version, MAPPED_RAM_HDR_VERSION);
        if (b->page_size != QEMU_TPS)
                return mrm_fail(r->err, b->header_offset + 4, -EBADMSG,
                                "block '%s': page size %llu, expected %u", shown,
                                (unsigned long long)b->page_size, QEMU_TPS);
        uint64_t bitmap_end;
        if (add_overflows_u64(b->bitmap_offset, b->bitmap_size, &bitmap_end))
                return mrm_fail(r->err, b->header_offset + 12, -EBADMSG,
                                "block '%s': bitmap offset 0x%llx overflows", shown,
                                (unsigned long long)b->bitmap_offset);
        if (b->pages_offset & QEMU_TPS_MASK)
                return mrm_fail(r->err, b->header_offset + 20, -EBADMSG,
                                "block '%s': pages offset 0x%llx is not page aligned", shown,
                                (unsigned long long)b->pages_offset);
        /* The stream continues after the slots, so they must lie ahead of
         * the header: this also guarantees the parse moves forward. */
        if (b->pages_offset < r->pos)
                return mrm_fail(r->err, b->header_offset + 20, -EBADMSG,
                                "block '%s': pages offset 0x%llx lies before the end of "
                                "its header", shown, (unsigned long long)b->pages_offset);
        if (add_overflows_u64(b->pages_offset, b->used_length, &b->end_offset) ||
            b->end_offset >= r->size)
                return mrm_fail(r->err, b->header_offset + 20, -EBADMSG,
                                "block '%s': page slots end at 0x%llx, beyond the end of "
                                "the file (0x%llx)", shown,
                                (unsigned long long)(b->pages_offset + b->used_length),
                                (unsigned long long)r->size);
        r->pos = b->end_offset;
        return 0;
}

static int parse_block(struct rd *r, struct mrm_file *f, uint64_t *remaining)
{
        struct mrm_layout *l = &f->layout;
        uint64_t at = r->pos, used_length;
        char name[SAVD_NAME_MAX + 1], shown[MRM_SHOWN_MAX];
        uint8_t len;
        int k;

        if (l->n_blocks >= SAVD_MAX_BLOCKS)
                return mrm_fail(r->err, at, -E2BIG, "more than %u RAM blocks", SAVD_MAX_BLOCKS);
        if ((k = rd_counted(r, name, &len, "RAM block name")) < 0)
                return k;
        mrm_shown_name(shown, name, len);
        if (len == 0)
                return mrm_fail(r->err, at, -EBADMSG, "empty RAM block name");
        if (mrm_layout_find_block(l, name, len) >= 0)
                return mrm_fail(r->err, at, -EBADMSG, "duplicate RAM block '%s'", shown);
        uint64_t len_at = r->pos;
        if ((k = rd_be64(r, &used_length, "RAM block length")) < 0)
                return k;
        if (used_length == 0 || (used_length & QEMU_TPS_MASK))
                return mrm_fail(r->err, len_at, -EBADMSG,
                                "block '%s': length 0x%llx is not a non-zero multiple of %u",
                                shown, (unsigned long long)used_length, QEMU_TPS);
        if (used_length > SAVD_MAX_BLOCK_SIZE)
                return mrm_fail(r->err, len_at, -E2BIG,
                                "block '%s': length 0x%llx exceeds the limit of 0x%llx", shown,
                                (unsigned long long)used_length, SAVD_MAX_BLOCK_SIZE);
        if (used_length > *remaining)
                return mrm_fail(r->err, len_at, -EBADMSG,
                                "block '%s': length 0x%llx exceeds the rest of the RAM "
                                "total (0x%llx)", shown, (unsigned long long)used_length,
                                (unsigned long long)*remaining);
        if ((k = mrm_layout_add_block(l, name, len, used_length, QEMU_TPS)) < 0)
                return mrm_fail(r->err, at, k, "block '%s': %s", shown, strerror(-k));
        *remaining -= used_length;

        struct mrm_block *b = &l->blocks[l->n_blocks - 1];
        b->record_offset = at;
        return parse_block_header(r, b, shown);
}

static int parse_ram_start(struct rd *r, struct mrm_file *f)
{
        struct mrm_layout *l = &f->layout;
        char idstr[SAVD_NAME_MAX + 1], shown[MRM_SHOWN_MAX];
        uint32_t id, instance, version;
        uint8_t type, len;
        uint64_t w;
        int k;

        f->ram_offset = r->pos;
        if ((k = rd_u8(r, &type, "section type")) < 0)
                return k;
        if (type != QEMU_VM_SECTION_START)
                return mrm_fail(r->err, f->ram_offset, -EBADMSG,
                                "expected the START section of 'ram', found type 0x%02x", type);
        if ((k = rd_be32(r, &id, "section id")) < 0 ||
            (k = rd_counted(r, idstr, &len, "section name")) < 0 ||
            (k = rd_be32(r, &instance, "instance id")) < 0 ||
            (k = rd_be32(r, &version, "section version")) < 0)
                return k;
        mrm_shown_name(shown, idstr, len);
        if (len != strlen(QEMU_RAM_IDSTR) || strcmp(idstr, QEMU_RAM_IDSTR) != 0)
                return mrm_fail(r->err, f->ram_offset + 5, -EBADMSG,
                                "first section is '%s', expected 'ram'", shown);
        /* PART/END are bound by id and unseen handlers have id 0 (§4). */
        if (id == 0)
                return mrm_fail(r->err, f->ram_offset + 1, -EBADMSG, "RAM section id is 0");
        if (instance != 0 || version != QEMU_RAM_VERSION)
                return mrm_fail(r->err, f->ram_offset + 5 + 1 + len, -EBADMSG,
                                "RAM section instance %u version %u, expected 0 and %u",
                                instance, version, QEMU_RAM_VERSION);
        l->ram_section_id = id;

        uint64_t w_at = r->pos;
        if ((k = rd_be64(r, &w, "MEM_SIZE record")) < 0)
                return k;
        if ((w & QEMU_TPS_MASK) != RAM_SAVE_FLAG_MEM_SIZE)
                return mrm_fail(r->err, w_at, -EBADMSG,
                                "first RAM record has flags 0x%llx, expected MEM_SIZE",
                                (unsigned long long)(w & QEMU_TPS_MASK));
        uint64_t total = w & ~QEMU_TPS_MASK;
        if (total == 0)
                return mrm_fail(r->err, w_at, -EBADMSG, "RAM total size is 0");
        if (total / SAVD_MAX_BLOCKS > SAVD_MAX_BLOCK_SIZE)
                return mrm_fail(r->err, w_at, -E2BIG, "RAM total size 0x%llx exceeds the limit",
                                (unsigned long long)total);
        l->total_bytes = total;
        l->prologue_size = r->pos;

        uint64_t remaining = total;
        while (remaining > 0)
                if ((k = parse_block(r, f, &remaining)) < 0)
                        return k;
        l->ram_end_offset = r->pos;
        if ((k = parse_eos(r)) < 0)
                return k;
        return parse_footer(r, id);
}

/* PART/END sections of "ram" (each only EOS + footer) and commands, up to
 * the first byte that starts the device state or the EOF marker. */
static int parse_ram_tail(struct rd *r, struct mrm_file *f)
{
        uint32_t ram_id = f->layout.ram_section_id;
        int k;

        for (;;) {
                uint64_t at = r->pos;
                uint8_t type;
                uint32_t id;

                if ((k = rd_u8(r, &type, "section type")) < 0)
                        return k;
                switch (type) {
                case QEMU_VM_EOF:
                case QEMU_VM_SECTION_START:
                case QEMU_VM_SECTION_FULL:
                        f->device_offset = at;
                        r->pos = at;
                        return 0;
                case QEMU_VM_COMMAND:
                        r->pos = at;
                        if ((k = parse_command(r, f)) < 0)
                                return k;
                        continue;
                case QEMU_VM_SECTION_PART:
                case QEMU_VM_SECTION_END:
                        break;
                default:
                        return mrm_fail(r->err, at, -EBADMSG, "unknown section type 0x%02x",
                                        type);
                }
                if (f->has_ram_end)
                        return mrm_fail(r->err, at, -EBADMSG, "RAM section after its END");
                if (f->n_ram_sections >= MRM_MAX_RAM_SECTIONS)
                        return mrm_fail(r->err, at, -E2BIG, "more than %u RAM sections",
                                        MRM_MAX_RAM_SECTIONS);
                if ((k = rd_be32(r, &id, "section id")) < 0)
                        return k;
                if (id != ram_id)
                        return mrm_fail(r->err, at + 1, -EBADMSG,
                                        "section id %u is not the RAM section (%u)", id, ram_id);
                if ((k = parse_eos(r)) < 0 || (k = parse_footer(r, id)) < 0)
                        return k;
                f->n_ram_sections++;
                f->has_ram_end = type == QEMU_VM_SECTION_END;
        }
}

/* Scan [lo, size) backwards for "00 06 be32 N" followed by exactly N bytes
 * up to the end of the file.  Returns 1 and the position, 0 if absent. */
static int find_trailer(struct rd *r, uint64_t lo, uint64_t *pos)
{
        _cleanup_free_ uint8_t *buf = NULL;
        uint64_t size = r->size;
        int k;

        if (size - lo < TRAILER_HDR_SIZE)
                return 0;
        if (size - lo - TRAILER_HDR_SIZE > SAVD_MAX_VMDESC)
                lo = size - TRAILER_HDR_SIZE - SAVD_MAX_VMDESC;
        buf = malloc(VMDESC_SCAN_CHUNK + TRAILER_HDR_SIZE);
        if (!buf)
                return -ENOMEM;

        /* Candidates p in [lo, size - 6]; each chunk holds p..p+5. */
        uint64_t end = size - TRAILER_HDR_SIZE + 1;
        while (end > lo) {
                uint64_t start = end - MIN((uint64_t)VMDESC_SCAN_CHUNK, end - lo);
                size_t n = (size_t)(end - start) + TRAILER_HDR_SIZE - 1;
                if ((k = mrm_pread_full(r->fn, r->opaque, buf, n, start, r->err)) < 0)
                        return k;
                for (uint64_t p = end; p-- > start;) {
                        const uint8_t *c = buf + (p - start);
                        if (c[0] == QEMU_VM_EOF && c[1] == QEMU_VM_VMDESCRIPTION &&
                            get_be32(c + 2) == size - p - TRAILER_HDR_SIZE) {
                                *pos = p;
                                return 1;
                        }
                }
                end = start;
        }
        return 0;
}

static int parse_vmdesc_json(struct rd *r, struct mrm_file *f)
{
        _cleanup_free_ char *json = malloc(f->vmdesc_len ? f->vmdesc_len : 1);
        struct json_tokener *tok;
        int k;

        if (!json)
                return -ENOMEM;
        if ((k = mrm_pread_full(r->fn, r->opaque, json, f->vmdesc_len, f->vmdesc_offset,
                                r->err)) < 0)
                return k;
        const char *nul = memchr(json, 0, f->vmdesc_len);
        if (nul)
                return mrm_fail(&f->vmdesc_error, f->vmdesc_offset + (uint64_t)(nul - json),
                                0, "vmdesc JSON contains a NUL byte");

        tok = json_tokener_new_ex(VMDESC_MAX_DEPTH);
        if (!tok)
                return -ENOMEM;
        struct json_object *o = json_tokener_parse_ex(tok, json, (int)f->vmdesc_len);
        enum json_tokener_error jerr = json_tokener_get_error(tok);
        size_t end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);

        if (!o || jerr != json_tokener_success) {
                json_object_put(o);
                return mrm_fail(&f->vmdesc_error, f->vmdesc_offset + end, 0,
                                "vmdesc JSON is not valid: %s",
                                jerr == json_tokener_continue ? "incomplete"
                                : json_tokener_error_desc(jerr));
        }
        while (end < f->vmdesc_len && strchr(" \t\r\n", json[end]))
                end++;
        if (end != f->vmdesc_len || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return mrm_fail(&f->vmdesc_error, f->vmdesc_offset + end, 0,
                                "vmdesc JSON is not a single object");
        }
        f->vmdesc = o;
        return 0;
}

static int parse_trailer(struct rd *r, struct mrm_file *f)
{
        uint64_t p;
        int k = find_trailer(r, f->device_offset, &p);

        if (k < 0)
                return k;
        if (k == 0) {
                mrm_fail(&f->vmdesc_error, r->size, 0,
                         "missing EOF and vmdesc trailer (00 06 be32 N + N bytes of JSON)");
                return 0;
        }
        f->has_vmdesc = true;
        f->eof_offset = p;
        f->vmdesc_offset = p + TRAILER_HDR_SIZE;
        f->vmdesc_len = (uint32_t)(r->size - f->vmdesc_offset);
        return parse_vmdesc_json(r, f);
}

int mrm_read(struct mrm_file *f, mrm_pread_fn fn, void *opaque, uint64_t file_size,
             struct mrm_error *err)
{
        _cleanup_free_ uint8_t *win = malloc(RD_WINDOW);
        struct rd r = {
                .fn = fn, .opaque = opaque, .size = file_size, .err = err, .win = win,
        };
        int k;

        memset(f, 0, sizeof(*f));
        f->file_size = file_size;
        f->eof_offset = UINT64_MAX;
        if (err)
                memset(err, 0, sizeof(*err));
        if (!win)
                return mrm_fail(err, 0, -ENOMEM, "out of memory");

        if ((k = parse_header(&r)) < 0 || (k = parse_configuration(&r, f)) < 0)
                return k;
        for (;;) {
                uint8_t type;
                if ((k = rd_u8(&r, &type, "section type")) < 0)
                        return k;
                r.pos--;
                if (type != QEMU_VM_COMMAND)
                        break;
                if ((k = parse_command(&r, f)) < 0)
                        return k;
        }
        if ((k = parse_ram_start(&r, f)) < 0 || (k = parse_ram_tail(&r, f)) < 0)
                return k;
        f->layout.ram_tail_size = f->device_offset - f->layout.ram_end_offset;
        f->layout.device_offset = f->device_offset;

        if ((k = parse_trailer(&r, f)) < 0)
                return k == -ENOMEM ? mrm_fail(err, f->device_offset, k, "out of memory") : k;
        return 0;
}

void mrm_file_free(struct mrm_file *f)
{
        mrm_layout_free(&f->layout);
        json_object_put(f->vmdesc);
        f->vmdesc = NULL;
        free(f->stats);
        f->stats = NULL;
}

size_t mrm_trailer_size(size_t json_len)
{
        return TRAILER_HDR_SIZE + json_len;
}

size_t mrm_encode_trailer(const char *json, size_t json_len, uint8_t *buf)
{
        buf[0] = QEMU_VM_EOF;
        buf[1] = QEMU_VM_VMDESCRIPTION;
        put_be32(buf + 2, (uint32_t)json_len);
        memcpy(buf + TRAILER_HDR_SIZE, json, json_len);
        return TRAILER_HDR_SIZE + json_len;
}
