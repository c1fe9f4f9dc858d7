/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The legacy precopy stream parser (format notes §3 - §10).  One state per
 * fixed-size field group; take() gathers a group either straight from the
 * caller's buffer (the common case, no copy) or, when it straddles two
 * chunks, in the parser's own buffer.  Every value the stream controls is
 * checked here, once, against a named limit.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "macro.h"
#include "qemu-stream.h"

enum state {
        ST_HEADER,      /* be32 magic, be32 version */
        ST_CFG,         /* 0x07, be32 machine name length */
        ST_CFG_NAME,    /* machine name */
        ST_CFG_NEXT,    /* peek: 0x05 = subsection, else configuration done */
        ST_SUB_HDR,     /* 0x05, name length */
        ST_SUB_NAME,    /* name, be32 version */
        ST_CAPS_COUNT,  /* be32 */
        ST_CAP_LEN,
        ST_CAP_NAME,
        ST_UUID,        /* 16 bytes */
        ST_PAGE_BITS,   /* be32 */
        ST_ITEM,        /* type byte of the next top-level item */
        ST_SEC_HDR,     /* START/FULL: be32 id, idstr length */
        ST_SEC_IDSTR,   /* idstr, be32 instance, be32 version */
        ST_SEC_ID,      /* PART/END: be32 id */
        ST_CMD,         /* be16 cmd, be16 len */
        ST_CMD_DATA,    /* len bytes, skipped */
        ST_RAM_WORD,    /* be64 offset | flags */
        ST_BLK_LEN,     /* block list: idstr length */
        ST_BLK_NAME,    /* idstr, be64 used_length */
        ST_REC_LEN,     /* page record: idstr length */
        ST_REC_NAME,    /* idstr */
        ST_ZERO_FILL,   /* 1 byte */
        ST_PAGE_DATA,   /* QEMU_TPS bytes */
        ST_FOOTER,      /* 0x7e, be32 section id */
        ST_TAIL,        /* device state, EOF, vmdesc: passed through */
};

static const char *const state_what[] = {
        [ST_HEADER] = "the stream header",
        [ST_CFG] = "the configuration record",
        [ST_CFG_NAME] = "the configuration record's machine name",
        [ST_CFG_NEXT] = "the configuration record",
        [ST_SUB_HDR] = "a configuration subsection",
        [ST_SUB_NAME] = "a configuration subsection",
        [ST_CAPS_COUNT] = "the capability list",
        [ST_CAP_LEN] = "the capability list",
        [ST_CAP_NAME] = "the capability list",
        [ST_UUID] = "the uuid subsection",
        [ST_PAGE_BITS] = "the target-page-bits subsection",
        [ST_ITEM] = "the section list",
        [ST_SEC_HDR] = "a section header",
        [ST_SEC_IDSTR] = "a section header",
        [ST_SEC_ID] = "a section header",
        [ST_CMD] = "a command",
        [ST_CMD_DATA] = "a command",
        [ST_RAM_WORD] = "a RAM record",
        [ST_BLK_LEN] = "the RAM block list",
        [ST_BLK_NAME] = "the RAM block list",
        [ST_REC_LEN] = "a RAM page record",
        [ST_REC_NAME] = "a RAM page record",
        [ST_ZERO_FILL] = "a zero-page record",
        [ST_PAGE_DATA] = "a page record's data",
        [ST_FOOTER] = "a section footer",
        [ST_TAIL] = "the device state",
};

/* Commands (0x08) of the stream, format notes §6. */
enum {
        MIG_CMD_OPEN_RETURN_PATH = 1,
        MIG_CMD_PING = 2,
        MIG_CMD_POSTCOPY_ADVISE = 3,
        MIG_CMD_POSTCOPY_LISTEN = 4,
        MIG_CMD_POSTCOPY_RUN = 5,
        MIG_CMD_POSTCOPY_RAM_DISCARD = 6,
        MIG_CMD_PACKAGED = 7,
        MIG_CMD_ENABLE_COLO = 8,
        MIG_CMD_POSTCOPY_RESUME = 9,
        MIG_CMD_RECV_BITMAP = 10,
        MIG_CMD_SWITCHOVER_START = 11,
};

#define QEMU_PAGE_BITS          12U     /* log2(QEMU_TPS) */
#define QSTREAM_INITIAL_BLOCKS  8U

struct input {
        const uint8_t *buf;
        size_t len, pos;
};

struct qstream {
        enum state state;
        int error;                      /* sticky -errno */
        char errmsg[QSTREAM_ERR_MAX];
        uint64_t rec_offset;            /* where the current record began */

        /* gathering of the current field group */
        size_t have;
        uint8_t gather[QEMU_TPS];

        struct qstream_config cfg;
        uint32_t caps_left;
        uint8_t name_len;               /* pending counted-string length */
        uint16_t cmd;
        uint32_t skip_left;

        /* sections */
        uint8_t sec_type;
        uint32_t sec_id;
        bool ram_started, ram_ended, have_mem_size, blocks_done;
        uint32_t ram_id;
        uint64_t total_bytes, total_left;

        /* page records */
        uint64_t rec_flags, rec_addr;
        bool have_cur;
        uint32_t cur_block;

        struct qstream_block *blocks;
        size_t n_blocks, n_alloc;

        enum qstream_event_type pending;        /* 0: none */
        struct qstream_stats stats;
};

static uint64_t in_offset(const struct qstream *p, const struct input *in)
{
        return p->stats.offset + in->pos;
}

__attribute__((format(printf, 3, 4)))
static int fail(struct qstream *p, int err, const char *fmt, ...)
{
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(p->errmsg, sizeof(p->errmsg), fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < sizeof(p->errmsg))
                snprintf(p->errmsg + n, sizeof(p->errmsg) - n,
                         " (record at stream offset %" PRIu64 ")", p->rec_offset);
        p->error = err;
        return err;
}

/* Gather exactly n bytes (n <= sizeof(gather)).  Returns them once all are
 * there, NULL while the input ran out first. */
static const uint8_t *take(struct qstream *p, struct input *in, size_t n)
{
        size_t avail = in->len - in->pos, c;
        const uint8_t *r;

        if (p->have == 0 && avail >= n) {
                r = in->buf + in->pos;
                in->pos += n;
                return r;
        }
        c = MIN(n - p->have, avail);
        memcpy(p->gather + p->have, in->buf + in->pos, c);
        p->have += c;
        in->pos += c;
        if (p->have < n)
                return NULL;
        p->have = 0;
        return p->gather;
}

/* Mark the start of a record for error messages and event offsets. */
static void record_start(struct qstream *p, const struct input *in)
{
        if (p->have == 0)
                p->rec_offset = in_offset(p, in);
}

/* ---- header and configuration ------------------------------------- */

static int st_header(struct qstream *p, struct input *in)
{
        const uint8_t *b;
        uint32_t v;

        record_start(p, in);
        if (!(b = take(p, in, 8)))
                return 0;
        if (get_be32(b) != QEMU_VM_FILE_MAGIC)
                return fail(p, -EBADMSG, "not a QEMU migration stream (bad magic 0x%08" PRIx32 ")",
                            get_be32(b));
        v = get_be32(b + 4);
        if (v == 2)
                return fail(p, -EPROTONOSUPPORT, "obsolete QEMU stream version 2");
        if (v != QEMU_VM_FILE_VERSION)
                return fail(p, -EPROTONOSUPPORT, "unsupported QEMU stream version %" PRIu32, v);
        p->state = ST_CFG;
        return 0;
}

static int st_cfg(struct qstream *p, struct input *in)
{
        const uint8_t *b;
        uint32_t len;

        record_start(p, in);
        if (!(b = take(p, in, 5)))
                return 0;
        if (b[0] != QEMU_VM_CONFIGURATION)
                return fail(p, -EBADMSG,
                            "configuration record missing (type 0x%02x after the header): "
                            "the source must send it (migration property send-configuration)",
                            b[0]);
        len = get_be32(b + 1);
        if (len == 0)
                return fail(p, -EBADMSG, "empty machine type name in the configuration record");
        if (len > SAVD_MACHINE_NAME_MAX)
                return fail(p, -E2BIG, "machine type name of %" PRIu32 " bytes exceeds the limit of %u",
                            len, SAVD_MACHINE_NAME_MAX);
        p->cfg.machine_len = len;
        p->state = ST_CFG_NAME;
        return 0;
}

static int st_cfg_name(struct qstream *p, struct input *in)
{
        const uint8_t *b;

        if (!(b = take(p, in, p->cfg.machine_len)))
                return 0;
        memcpy(p->cfg.machine, b, p->cfg.machine_len);
        p->cfg.machine[p->cfg.machine_len] = '\0';
        p->cfg.page_bits = QEMU_PAGE_BITS;
        p->state = ST_CFG_NEXT;
        return 0;
}

static int st_cfg_next(struct qstream *p, struct input *in, struct qstream_event *ev)
{
        if (in->buf[in->pos] == QEMU_VM_SUBSECTION) {
                p->state = ST_SUB_HDR;
                return 0;
        }
        /* The byte belongs to the next item: leave it in place. */
        p->state = ST_ITEM;
        ev->type = QSTREAM_EV_CONFIG;
        ev->offset = p->rec_offset;
        ev->config = &p->cfg;
        return 1;
}

static int st_sub_hdr(struct qstream *p, struct input *in)
{
        const uint8_t *b;

        if (!(b = take(p, in, 2)))
                return 0;
        if (b[1] == 0)
                return fail(p, -EBADMSG, "configuration subsection with an empty name");
        p->name_len = b[1];
        p->state = ST_SUB_NAME;
        return 0;
}

static bool name_is(const uint8_t *b, size_t len, const char *s)
{
        return len == strlen(s) && memcmp(b, s, len) == 0;
}

static int st_sub_name(struct qstream *p, struct input *in)
{
        const uint8_t *b;
        size_t n = p->name_len;
        uint32_t version;

        if (!(b = take(p, in, n + 4)))
                return 0;
        version = get_be32(b + n);
        if (name_is(b, n, QEMU_CFG_SUB_CAPS))
                p->state = ST_CAPS_COUNT;
        else if (name_is(b, n, QEMU_CFG_SUB_UUID))
                p->state = ST_UUID;
        else if (name_is(b, n, QEMU_CFG_SUB_PAGEBITS))
                p->state = ST_PAGE_BITS;
        else
                return fail(p, -EBADMSG, "unknown configuration subsection '%.*s'", (int)n, b);
        if (version != 1)
                return fail(p, -EBADMSG, "configuration subsection '%.*s' has version %" PRIu32
                            ", expected 1", (int)n, b, version);
        return 0;
}

static int st_caps_count(struct qstream *p, struct input *in)
{
        const uint8_t *b;
        uint32_t n;

        if (!(b = take(p, in, 4)))
                return 0;
        n = get_be32(b);
        if (n > SAVD_MAX_CAPS)
                return fail(p, -E2BIG, "%" PRIu32 " capabilities listed, the limit is %u",
                            n, SAVD_MAX_CAPS);
        p->caps_left = n;
        p->state = n ? ST_CAP_LEN : ST_CFG_NEXT;
        return 0;
}

static int st_cap_len(struct qstream *p, struct input *in)
{
        const uint8_t *b;

        if (!(b = take(p, in, 1)))
                return 0;
        if (b[0] == 0)
                return fail(p, -EBADMSG, "capability with an empty name");
        p->name_len = b[0];
        p->state = ST_CAP_NAME;
        return 0;
}

/* Every capability QEMU lists changes what the stream or the destination
 * must do, so none of them can pass through a conversion unchanged. */
static int st_cap_name(struct qstream *p, struct input *in)
{
        const uint8_t *b;
        int n = p->name_len;

        if (!(b = take(p, in, p->name_len)))
                return 0;
        if (name_is(b, n, "x-ignore-shared"))
                return fail(p, -EOPNOTSUPP, "capability x-ignore-shared is not supported yet: "
                            "disable x-ignore-shared on the source");
        if (name_is(b, n, MAPPED_RAM_CAP))
                return fail(p, -EOPNOTSUPP, "the source has capability mapped-ram on: "
                            "disable mapped-ram, savd expects a plain precopy stream");
        return fail(p, -EOPNOTSUPP, "unknown capability '%.*s' in the configuration record: "
                    "disable it on the source", n, b);
}

static int st_uuid(struct qstream *p, struct input *in)
{
        const uint8_t *b;

        if (!(b = take(p, in, QEMU_UUID_LEN)))
                return 0;
        memcpy(p->cfg.uuid, b, QEMU_UUID_LEN);
        p->cfg.has_uuid = true;
        p->state = ST_CFG_NEXT;
        return 0;
}

static int st_page_bits(struct qstream *p, struct input *in)
{
        const uint8_t *b;
        uint32_t bits;

        if (!(b = take(p, in, 4)))
                return 0;
        bits = get_be32(b);
        if (bits != QEMU_PAGE_BITS)
                return fail(p, -EOPNOTSUPP, "target page size 2^%" PRIu32 " is not supported "
                            "(only %u-byte target pages)", bits, QEMU_TPS);
        p->state = ST_CFG_NEXT;
        return 0;
}

/* ---- sections and commands ----------------------------------------- */

static int st_item(struct qstream *p, struct input *in)
{
        uint8_t t = in->buf[in->pos];

        record_start(p, in);
        if (p->ram_ended && (t == QEMU_VM_SECTION_FULL || t == QEMU_VM_EOF)) {
                /* Device state starts here; the byte is part of it. */
                p->state = ST_TAIL;
                return 0;
        }
        in->pos++;
        p->sec_type = t;
        switch (t) {
        case QEMU_VM_SECTION_START:
        case QEMU_VM_SECTION_FULL:
                p->state = ST_SEC_HDR;
                return 0;
        case QEMU_VM_SECTION_PART:
        case QEMU_VM_SECTION_END:
                p->state = ST_SEC_ID;
                return 0;
        case QEMU_VM_COMMAND:
                p->state = ST_CMD;
                return 0;
        case QEMU_VM_EOF:
                if (!p->ram_started)
                        return fail(p, -EBADMSG, "stream ended (EOF marker) without a RAM section");
                return fail(p, -EBADMSG, "EOF marker before the RAM section's END section");
        default:
                return fail(p, -EBADMSG, "unknown section type 0x%02x", t);
        }
}

static int st_sec_hdr(struct qstream *p, struct input *in)
{
        const uint8_t *b;

        if (!(b = take(p, in, 5)))
                return 0;
        p->sec_id = get_be32(b);
        if (b[4] == 0)
                return fail(p, -EBADMSG, "section %" PRIu32 " has an empty idstr", p->sec_id);
        p->name_len = b[4];
        p->state = ST_SEC_IDSTR;
        return 0;
}

/* What to tell the operator about an iterative section other than RAM. */
static const char *iterative_hint(const uint8_t *name, size_t n)
{
        if (name_is(name, n, "block"))
                return "disable block migration (capability block / migrate -b)";
        if (name_is(name, n, "dirty-bitmap"))
                return "disable capability dirty-bitmaps";
        if (memmem(name, n, "vfio", 4))
                return "VFIO device state cannot be saved through savd: detach the device";
        return "remove the device or feature that registers it";
}

static int emit_section(struct qstream *p, struct qstream_event *ev)
{
        p->stats.sections++;
        p->state = ST_RAM_WORD;
        ev->type = QSTREAM_EV_SECTION;
        ev->offset = p->rec_offset;
        ev->section.type = p->sec_type;
        ev->section.id = p->sec_id;
        return 1;
}

static int st_sec_idstr(struct qstream *p, struct input *in, struct qstream_event *ev)
{
        const uint8_t *b;
        int n = p->name_len;
        uint32_t instance, version;

        if (!(b = take(p, in, p->name_len + 8U)))
                return 0;
        instance = get_be32(b + n);
        version = get_be32(b + n + 4);
        if (p->sec_type == QEMU_VM_SECTION_FULL)
                return fail(p, -EOPNOTSUPP, "device section '%.*s' arrives before the RAM section "
                            "ended; savd cannot parse device state (early-setup devices such as "
                            "virtio-mem are not supported)", n, b);
        if (!name_is(b, n, QEMU_RAM_IDSTR))
                return fail(p, -EOPNOTSUPP, "iterative section '%.*s' is not supported: %s",
                            n, b, iterative_hint(b, n));
        if (p->ram_started)
                return fail(p, -EBADMSG, "second START section for 'ram'");
        if (instance != 0)
                return fail(p, -EBADMSG, "RAM section with instance %" PRIu32 ", expected 0", instance);
        if (version != QEMU_RAM_VERSION)
                return fail(p, -EOPNOTSUPP, "RAM section version %" PRIu32 " is not supported "
                            "(expected %u)", version, QEMU_RAM_VERSION);
        p->ram_started = true;
        p->ram_id = p->sec_id;
        return emit_section(p, ev);
}

static int st_sec_id(struct qstream *p, struct input *in, struct qstream_event *ev)
{
        const uint8_t *b;

        if (!(b = take(p, in, 4)))
                return 0;
        p->sec_id = get_be32(b);
        if (!p->ram_started || p->sec_id != p->ram_id)
                return fail(p, -EBADMSG, "%s section for unknown section id %" PRIu32,
                            p->sec_type == QEMU_VM_SECTION_PART ? "PART" : "END", p->sec_id);
        if (p->ram_ended)
                return fail(p, -EBADMSG, "RAM section %" PRIu32 " continues after its END section",
                            p->sec_id);
        return emit_section(p, ev);
}

static int postcopy_refused(struct qstream *p, const char *what)
{
        return fail(p, -EOPNOTSUPP, "postcopy command %s: postcopy is not supported, "
                    "disable postcopy-ram on the source", what);
}

static int st_cmd(struct qstream *p, struct input *in)
{
        static const char *const postcopy_names[] = {
                [MIG_CMD_POSTCOPY_ADVISE] = "POSTCOPY_ADVISE",
                [MIG_CMD_POSTCOPY_LISTEN] = "POSTCOPY_LISTEN",
                [MIG_CMD_POSTCOPY_RUN] = "POSTCOPY_RUN",
                [MIG_CMD_POSTCOPY_RAM_DISCARD] = "POSTCOPY_RAM_DISCARD",
                [MIG_CMD_PACKAGED] = "PACKAGED",
                [MIG_CMD_POSTCOPY_RESUME] = "POSTCOPY_RESUME",
                [MIG_CMD_RECV_BITMAP] = "RECV_BITMAP",
        };
        const uint8_t *b;
        uint16_t len, expect;

        if (!(b = take(p, in, 4)))
                return 0;
        p->cmd = get_be16(b);
        len = get_be16(b + 2);
        switch (p->cmd) {
        case MIG_CMD_OPEN_RETURN_PATH:
        case MIG_CMD_SWITCHOVER_START:
                expect = 0;
                break;
        case MIG_CMD_PING:
                expect = 4;
                break;
        case MIG_CMD_ENABLE_COLO:
                return fail(p, -EOPNOTSUPP, "COLO is not supported: disable x-colo on the source");
        default:
                if (p->cmd < ELEMENTSOF(postcopy_names) && postcopy_names[p->cmd])
                        return postcopy_refused(p, postcopy_names[p->cmd]);
                return fail(p, -EBADMSG, "unknown command 0x%04x", p->cmd);
        }
        if (len != expect)
                return fail(p, -EBADMSG, "command 0x%04x has length %u, expected %u",
                            p->cmd, len, expect);
        p->skip_left = len;
        p->state = len ? ST_CMD_DATA : ST_ITEM;
        return 0;
}

static int st_cmd_data(struct qstream *p, struct input *in)
{
        size_t c = MIN((size_t)p->skip_left, in->len - in->pos);

        in->pos += c;
        p->skip_left -= c;
        if (p->skip_left == 0)
                p->state = ST_ITEM;
        return 0;
}

/* ---- RAM payload ------------------------------------------------------ */

static int ram_flags_refused(struct qstream *p, uint64_t flags)
{
        uint64_t kind = flags & ~(uint64_t)RAM_SAVE_FLAG_CONTINUE;

        switch (kind) {
        case RAM_SAVE_FLAG_XBZRLE:
                return fail(p, -EOPNOTSUPP, "XBZRLE-encoded page: disable capability xbzrle on the source");
        case RAM_SAVE_FLAG_COMPRESS_PAGE:
                return fail(p, -EOPNOTSUPP, "compressed page: disable capability compress on the source");
        case RAM_SAVE_FLAG_MULTIFD_FLUSH:
                return fail(p, -EOPNOTSUPP, "multifd flush marker: pages travel on multifd channels "
                            "savd does not receive; disable capability multifd on the source");
        case RAM_SAVE_FLAG_HOOK:
                return fail(p, -EOPNOTSUPP, "RDMA hook record: RDMA migration is not supported, "
                            "use a unix: or fd: URI");
        default:
                return fail(p, -EBADMSG, "unknown combination of RAM flags 0x%03" PRIx64, flags);
        }
}

static int check_page_offset(struct qstream *p)
{
        const struct qstream_block *blk = &p->blocks[p->cur_block];

        if (p->rec_addr >= blk->used_length)
                return fail(p, -EBADMSG, "page offset 0x%" PRIx64 " is beyond block '%s' "
                            "(length 0x%" PRIx64 ")", p->rec_addr, blk->name, blk->used_length);
        p->state = p->rec_flags & RAM_SAVE_FLAG_ZERO ? ST_ZERO_FILL : ST_PAGE_DATA;
        return 0;
}

static int ram_page_record(struct qstream *p)
{
        if (!p->blocks_done)
                return fail(p, -EBADMSG, "page record before the RAM block list");
        if (!(p->rec_flags & RAM_SAVE_FLAG_CONTINUE)) {
                p->state = ST_REC_LEN;
                return 0;
        }
        if (!p->have_cur)
                return fail(p, -EBADMSG, "CONTINUE page record with no current block");
        return check_page_offset(p);
}

static int st_ram_word(struct qstream *p, struct input *in)
{
        const uint8_t *b;
        uint64_t w;

        record_start(p, in);
        if (!(b = take(p, in, 8)))
                return 0;
        w = get_be64(b);
        p->rec_flags = w & QEMU_TPS_MASK;
        p->rec_addr = w & ~QEMU_TPS_MASK;
        switch (p->rec_flags & ~(uint64_t)RAM_SAVE_FLAG_CONTINUE) {
        case RAM_SAVE_FLAG_ZERO:
        case RAM_SAVE_FLAG_PAGE:
                return ram_page_record(p);
        }
        if (p->rec_flags == RAM_SAVE_FLAG_MEM_SIZE) {
                if (p->sec_type != QEMU_VM_SECTION_START || p->have_mem_size)
                        return fail(p, -EBADMSG, "RAM block list outside the START section");
                if (p->rec_addr == 0)
                        return fail(p, -EBADMSG, "RAM block list with a total size of 0");
                p->have_mem_size = true;
                p->total_bytes = p->total_left = p->rec_addr;
                p->state = ST_BLK_LEN;
                return 0;
        }
        if (p->rec_flags == RAM_SAVE_FLAG_EOS) {
                if (!p->blocks_done)
                        return fail(p, -EBADMSG, "RAM section ends before its block list");
                p->state = ST_FOOTER;
                return 0;
        }
        return ram_flags_refused(p, p->rec_flags);
}

static int st_blk_len(struct qstream *p, struct input *in)
{
        const uint8_t *b;

        record_start(p, in);
        if (!(b = take(p, in, 1)))
                return 0;
        if (b[0] == 0)
                return fail(p, -EBADMSG, "RAM block with an empty name");
        p->name_len = b[0];
        p->state = ST_BLK_NAME;
        return 0;
}

static int find_block(const struct qstream *p, const uint8_t *name, size_t n)
{
        for (size_t i = 0; i < p->n_blocks; i++)
                if (p->blocks[i].name_len == n && memcmp(p->blocks[i].name, name, n) == 0)
                        return (int)i;
        return -ENOENT;
}

static int check_block(struct qstream *p, const uint8_t *name, int n, uint64_t len)
{
        if (p->n_blocks >= SAVD_MAX_BLOCKS)
                return fail(p, -E2BIG, "more than %u RAM blocks", SAVD_MAX_BLOCKS);
        if (find_block(p, name, n) >= 0)
                return fail(p, -EBADMSG, "RAM block '%.*s' listed twice", n, name);
        if (len == 0 || len % QEMU_TPS)
                return fail(p, -EBADMSG, "RAM block '%.*s' has length 0x%" PRIx64
                            ", not a positive multiple of %u", n, name, len, QEMU_TPS);
        if (len > SAVD_MAX_BLOCK_SIZE)
                return fail(p, -E2BIG, "RAM block '%.*s' of 0x%" PRIx64 " bytes exceeds the "
                            "limit of 0x%llx", n, name, len, SAVD_MAX_BLOCK_SIZE);
        if (len > p->total_left)
                return fail(p, -EBADMSG, "RAM block lengths exceed the total 0x%" PRIx64
                            " announced by the block list", p->total_bytes);
        return 0;
}

static int add_block(struct qstream *p, const uint8_t *name, uint8_t n, uint64_t len)
{
        struct qstream_block *blk;

        if (p->n_blocks == p->n_alloc) {
                size_t na = p->n_alloc ? 2 * p->n_alloc : QSTREAM_INITIAL_BLOCKS;
                void *nb = reallocarray(p->blocks, MIN(na, (size_t)SAVD_MAX_BLOCKS), sizeof(*blk));

                if (!nb)
                        return fail(p, -ENOMEM, "out of memory for the RAM block table");
                p->blocks = nb;
                p->n_alloc = MIN(na, (size_t)SAVD_MAX_BLOCKS);
        }
        blk = &p->blocks[p->n_blocks++];
        memcpy(blk->name, name, n);
        blk->name[n] = '\0';
        blk->name_len = n;
        blk->used_length = len;
        blk->num_pages = len / QEMU_TPS;
        return 0;
}

static int st_blk_name(struct qstream *p, struct input *in, struct qstream_event *ev)
{
        const uint8_t *b;
        uint8_t n = p->name_len;
        uint64_t len;
        int r;

        if (!(b = take(p, in, n + 8U)))
                return 0;
        len = get_be64(b + n);
        if ((r = check_block(p, b, n, len)) < 0 || (r = add_block(p, b, n, len)) < 0)
                return r;
        p->total_left -= len;
        if (p->total_left == 0) {
                p->blocks_done = true;
                p->pending = QSTREAM_EV_BLOCKS_DONE;
                p->state = ST_RAM_WORD;
        } else
                p->state = ST_BLK_LEN;
        ev->type = QSTREAM_EV_BLOCK;
        ev->offset = p->rec_offset;
        ev->block.index = p->n_blocks - 1;
        ev->block.block = &p->blocks[p->n_blocks - 1];
        return 1;
}

static int st_rec_len(struct qstream *p, struct input *in)
{
        const uint8_t *b;

        if (!(b = take(p, in, 1)))
                return 0;
        if (b[0] == 0)
                return fail(p, -EBADMSG, "page record names a block with an empty name");
        p->name_len = b[0];
        p->state = ST_REC_NAME;
        return 0;
}

static int st_rec_name(struct qstream *p, struct input *in)
{
        const uint8_t *b;
        int idx;

        if (!(b = take(p, in, p->name_len)))
                return 0;
        idx = find_block(p, b, p->name_len);
        if (idx < 0)
                return fail(p, -EBADMSG, "page record for unknown RAM block '%.*s'",
                            (int)p->name_len, b);
        p->cur_block = idx;
        p->have_cur = true;
        return check_page_offset(p);
}

static int st_zero_fill(struct qstream *p, struct input *in, struct qstream_event *ev)
{
        const uint8_t *b;

        if (!(b = take(p, in, 1)))
                return 0;
        p->state = ST_RAM_WORD;
        ev->offset = p->rec_offset;
        if (b[0] != 0) {
                /* QEMU 7.2 fills the page with the byte; keep that meaning. */
                memset(p->gather, b[0], QEMU_TPS);
                p->stats.pages++;
                ev->type = QSTREAM_EV_PAGE;
                ev->page.block = p->cur_block;
                ev->page.page = p->rec_addr / QEMU_TPS;
                ev->page.data = p->gather;
                return 1;
        }
        p->stats.zeros++;
        ev->type = QSTREAM_EV_ZERO;
        ev->zero.block = p->cur_block;
        ev->zero.page = p->rec_addr / QEMU_TPS;
        ev->zero.fill = 0;
        return 1;
}

static int st_page_data(struct qstream *p, struct input *in, struct qstream_event *ev)
{
        const uint8_t *b;

        if (!(b = take(p, in, QEMU_TPS)))
                return 0;
        p->stats.pages++;
        p->state = ST_RAM_WORD;
        ev->type = QSTREAM_EV_PAGE;
        ev->offset = p->rec_offset;
        ev->page.block = p->cur_block;
        ev->page.page = p->rec_addr / QEMU_TPS;
        ev->page.data = b;
        return 1;
}

static int st_footer(struct qstream *p, struct input *in, struct qstream_event *ev)
{
        const uint8_t *b;

        record_start(p, in);
        if (!(b = take(p, in, 5)))
                return 0;
        if (b[0] != QEMU_VM_SECTION_FOOTER)
                return fail(p, -EBADMSG, "section footer missing after section %" PRIu32
                            " (byte 0x%02x instead of 0x7e)", p->sec_id, b[0]);
        if (get_be32(b + 1) != p->sec_id)
                return fail(p, -EBADMSG, "section footer names section %" PRIu32
                            " but closes section %" PRIu32, get_be32(b + 1), p->sec_id);
        p->state = ST_ITEM;
        if (p->sec_type != QEMU_VM_SECTION_END)
                return 0;
        /* A 7.2 source with multifd sends its pages on other connections
         * and only block list and EOS markers here. */
        if (p->stats.pages + p->stats.zeros == 0)
                return fail(p, -EOPNOTSUPP, "the RAM section carried no page records: the source "
                            "probably has capability multifd on; disable multifd");
        p->ram_ended = true;
        ev->type = QSTREAM_EV_RAM_DONE;
        ev->offset = p->rec_offset;
        return 1;
}

static int st_tail(struct qstream *p, struct input *in, struct qstream_event *ev)
{
        ev->type = QSTREAM_EV_DEVICE_TAIL;
        ev->offset = in_offset(p, in);
        ev->tail.data = in->buf + in->pos;
        ev->tail.len = in->len - in->pos;
        p->stats.tail_bytes += ev->tail.len;
        in->pos = in->len;
        return 1;
}

/* ---- driver -------------------------------------------------------------- */

/* Advance by one state transition.  Called only with input left. */
static int step(struct qstream *p, struct input *in, struct qstream_event *ev)
{
        switch (p->state) {
        case ST_HEADER:         return st_header(p, in);
        case ST_CFG:            return st_cfg(p, in);
        case ST_CFG_NAME:       return st_cfg_name(p, in);
        case ST_CFG_NEXT:       return st_cfg_next(p, in, ev);
        case ST_SUB_HDR:        return st_sub_hdr(p, in);
        case ST_SUB_NAME:       return st_sub_name(p, in);
        case ST_CAPS_COUNT:     return st_caps_count(p, in);
        case ST_CAP_LEN:        return st_cap_len(p, in);
        case ST_CAP_NAME:       return st_cap_name(p, in);
        case ST_UUID:           return st_uuid(p, in);
        case ST_PAGE_BITS:      return st_page_bits(p, in);
        case ST_ITEM:           return st_item(p, in);
        case ST_SEC_HDR:        return st_sec_hdr(p, in);
        case ST_SEC_IDSTR:      return st_sec_idstr(p, in, ev);
        case ST_SEC_ID:         return st_sec_id(p, in, ev);
        case ST_CMD:            return st_cmd(p, in);
        case ST_CMD_DATA:       return st_cmd_data(p, in);
        case ST_RAM_WORD:       return st_ram_word(p, in);
        case ST_BLK_LEN:        return st_blk_len(p, in);
        case ST_BLK_NAME:       return st_blk_name(p, in, ev);
        case ST_REC_LEN:        return st_rec_len(p, in);
        case ST_REC_NAME:       return st_rec_name(p, in);
        case ST_ZERO_FILL:      return st_zero_fill(p, in, ev);
        case ST_PAGE_DATA:      return st_page_data(p, in, ev);
        case ST_FOOTER:         return st_footer(p, in, ev);
        case ST_TAIL:           return st_tail(p, in, ev);
        }
        return fail(p, -EINVAL, "internal error: parser state %d", (int)p->state);
}

static int emit_pending(struct qstream *p, struct qstream_event *ev)
{
        ev->type = p->pending;
        ev->offset = p->rec_offset;
        ev->blocks_done.n_blocks = p->n_blocks;
        ev->blocks_done.total_bytes = p->total_bytes;
        p->pending = 0;
        return 1;
}

int qstream_feed(struct qstream *p, const uint8_t *buf, size_t len,
                 size_t *consumed, struct qstream_event *ev)
{
        struct input in = { .buf = buf, .len = len, .pos = 0 };
        int r = 0;

        *consumed = 0;
        if (p->error)
                return p->error;
        if (p->pending)
                return emit_pending(p, ev);
        while (r == 0 && in.pos < in.len)
                r = step(p, &in, ev);
        p->stats.offset += in.pos;
        *consumed = in.pos;
        return r;
}

int qstream_finish(struct qstream *p)
{
        if (p->error)
                return p->error;
        if (p->state == ST_TAIL)
                return 0;
        p->rec_offset = p->stats.offset - p->have;
        if (p->ram_ended)
                return fail(p, -EPIPE, "stream ended after the RAM section, before device state "
                            "and EOF");
        return fail(p, -EPIPE, "stream ended inside %s%s", state_what[p->state],
                    p->ram_started ? " before the RAM section was complete" : "");
}

struct qstream *qstream_new(void)
{
        return calloc(1, sizeof(struct qstream));
}

void qstream_free(struct qstream *p)
{
        if (!p)
                return;
        free(p->blocks);
        free(p);
}

const char *qstream_error(const struct qstream *p)
{
        return p->error ? p->errmsg : NULL;
}

const struct qstream_config *qstream_config(const struct qstream *p)
{
        return &p->cfg;
}

size_t qstream_n_blocks(const struct qstream *p)
{
        return p->n_blocks;
}

const struct qstream_block *qstream_block(const struct qstream *p, size_t index)
{
        return index < p->n_blocks ? &p->blocks[index] : NULL;
}

const struct qstream_stats *qstream_stats(const struct qstream *p)
{
        return &p->stats;
}

uint32_t qstream_ram_section_id(const struct qstream *p)
{
        return p->ram_id;
}
