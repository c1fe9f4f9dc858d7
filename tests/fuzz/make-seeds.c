/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Writes the seed corpora of the fuzzers (tests/fuzz/corpus/<fuzzer>/):
 * small inputs that reach deep into each parser, built from slices of the
 * QEMU reference files and with savd's own encoders, so that a fuzz run
 * starts from valid structure instead of rediscovering it.
 *
 *      make-seeds TESTDATA_DIR OUTPUT_DIR      (make fuzz-seeds)
 *      make-seeds                              (make check)
 *
 * The corpora are committed.  Without arguments, as a test, the seeds
 * are built again from $SAVD_TESTDATA and compared with the committed ones
 * in $top_srcdir/tests/fuzz/corpus: a change to an encoder or to a
 * harness's input format that leaves the corpus stale fails here.  Seeds
 * meant to be valid mapped-ram files are also verified with the reader.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "bytes.h"
#include "macro.h"
#include "mrm-layout.h"
#include "mrm-reader.h"
#include "native.h"
#include "qemu-emit.h"
#include "qemu-stream.h"
#include "testdata.h"
#include "vmdesc.h"

#define SEED_MAX        (8U << 10)      /* largest seed written */
#define PATH_MAX_LEN    4096

static const char *outdir;
static bool check_mode;                 /* compare with outdir, write nothing */
static int mismatches;

static void die(const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(EXIT_FAILURE);
}

static void compare_seed(const char *path, const void *buf, size_t len)
{
        uint8_t old[SEED_MAX + 1];
        FILE *f = fopen(path, "re");
        size_t n = f ? fread(old, 1, sizeof(old), f) : 0;

        if (!f || n != len || memcmp(old, buf, len) != 0) {
                fprintf(stderr, "seed '%s' is %s: run `make fuzz-seeds`\n", path,
                        f ? "stale" : "missing");
                mismatches++;
        }
        if (f)
                fclose(f);
}

static void write_seed(const char *fuzzer, const char *name, const void *buf, size_t len)
{
        char path[PATH_MAX_LEN];
        FILE *f;

        if (len > SEED_MAX)
                die("seed %s/%s: %zu bytes is more than %u", fuzzer, name, len, SEED_MAX);
        if (check_mode) {
                snprintf(path, sizeof(path), "%s/%s/%s", outdir, fuzzer, name);
                compare_seed(path, buf, len);
                return;
        }
        snprintf(path, sizeof(path), "%s/%s", outdir, fuzzer);
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
                die("mkdir '%s': %m", path);
        snprintf(path, sizeof(path), "%s/%s/%s", outdir, fuzzer, name);
        if (!(f = fopen(path, "we")) || fwrite(buf, 1, len, f) != len || fclose(f) != 0)
                die("write '%s': %m", path);
}

static uint8_t *read_file(const char *dir, const char *name, size_t *len)
{
        char path[PATH_MAX_LEN];
        uint8_t *buf = NULL;
        int r;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        *len = 0;
        r = test_load_file(path, 0, len, &buf);
        if (r < 0)
                die("read '%s': %s", path, strerror(-r));
        return buf;
}

/* ---- growing byte buffers ------------------------------------------- */

struct buf {
        uint8_t data[64U << 10];
        size_t len;
};

static void put(struct buf *b, const void *p, size_t n)
{
        if (b->len + n > sizeof(b->data))
                die("seed buffer overflow");
        memcpy(b->data + b->len, p, n);
        b->len += n;
}

static void put_u8(struct buf *b, uint8_t v)
{
        put(b, &v, 1);
}

static void put_u16(struct buf *b, uint16_t v)
{
        uint8_t x[2];
        put_be16(x, v);
        put(b, x, 2);
}

static void put_u32(struct buf *b, uint32_t v)
{
        uint8_t x[4];
        put_be32(x, v);
        put(b, x, 4);
}

static void put_u64(struct buf *b, uint64_t v)
{
        uint8_t x[8];
        put_be64(x, v);
        put(b, x, 8);
}

/* Append what an encoder with the snprintf convention writes. */
#define EMIT(b, fn, ...) do {                                                   \
                ssize_t _n = fn(__VA_ARGS__, (b)->data + (b)->len,              \
                                sizeof((b)->data) - (b)->len);                  \
                if (_n < 0)                                                     \
                        die("%s: %s", #fn, strerror((int)-_n));                 \
                (b)->len += (size_t)_n;                                         \
        } while (0)

/* ---- QEMU stream seeds ------------------------------------------------ */

/* Offsets in the QEMU 7.2 stream, found with the parser itself. */
struct q72_marks {
        uint64_t blocks_done;   /* BLOCKS_DONE: the block list ends here */
        uint64_t first_part;    /* first PART section header */
        uint64_t ram_end;       /* END section header */
        uint64_t tail;          /* first device state byte */
};

static void find_marks(const uint8_t *s, size_t len, struct q72_marks *m)
{
        struct qstream *p = qstream_new();
        size_t pos = 0;

        memset(m, 0, sizeof(*m));
        while (p && pos < len && !m->tail) {
                struct qstream_event ev;
                size_t used;
                int r = qstream_feed(p, s + pos, len - pos, &used, &ev);
                if (r < 0)
                        die("q72 stream: %s", qstream_error(p));
                pos += used;
                if (r == 0)
                        break;
                if (ev.type == QSTREAM_EV_BLOCKS_DONE)
                        m->blocks_done = pos;
                else if (ev.type == QSTREAM_EV_SECTION && ev.section.type == QEMU_VM_SECTION_PART &&
                         !m->first_part)
                        m->first_part = ev.offset;
                else if (ev.type == QSTREAM_EV_SECTION && ev.section.type == QEMU_VM_SECTION_END)
                        m->ram_end = ev.offset;
                else if (ev.type == QSTREAM_EV_DEVICE_TAIL)
                        m->tail = ev.offset;
        }
        if (!p || !m->blocks_done || !m->first_part || !m->ram_end || !m->tail)
                die("q72 stream: landmarks not found");
        qstream_free(p);
}

/* The START section ends with EOS (8) and a footer (5) after the list. */
#define START_TAIL      13U

static void stream_seed(const char *name, const uint8_t chunks[4], const struct buf *s)
{
        struct buf *b = calloc(1, sizeof(*b));

        if (!b)
                die("out of memory");
        put(b, chunks, 4);
        put(b, s->data, s->len);
        write_seed("qemu-stream", name, b->data, b->len);
        free(b);
}

static void q72_seeds(const char *testdata)
{
        static const uint8_t whole[4] = { 0, 0, 0, 0 }, small[4] = { 1, 7, 64, 255 },
                             odd[4] = { 13, 200, 3, 0 };
        struct buf *b = calloc(1, sizeof(*b));
        struct q72_marks m;
        size_t len;
        uint8_t *s = read_file(testdata, "q72-legacy.stream", &len);

        if (!b)
                die("out of memory");
        find_marks(s, len, &m);
        uint64_t prologue = m.blocks_done + START_TAIL;

        /* The start of the stream: configuration, block list, first pages. */
        put(b, s, 6000);
        stream_seed("q72-head", whole, b);
        stream_seed("q72-head-chunked", small, b);

        /* The prologue, then the start of the first PART section. */
        b->len = 0;
        put(b, s, prologue);
        put(b, s + m.first_part, 3000);
        stream_seed("q72-part", odd, b);

        /* The prologue, the END section and the first device sections. */
        b->len = 0;
        put(b, s, prologue);
        put(b, s + m.ram_end, m.tail - m.ram_end);
        put(b, s + m.tail, 2000);
        stream_seed("q72-end-tail", whole, b);
        free(b);
        free(s);
}

/* A complete small stream from savd's encoders: two blocks, pages, zero
 * pages and CONTINUE records over a START, a PART and an END section,
 * a device section, EOF and a vmdesc trailer. */
enum cfg_kind {
        CFG_PLAIN,
        CFG_UUID,
        CFG_CAPS,               /* a capability subsection (refused by savd) */
        CFG_PAGE_BITS,          /* a target-page-bits subsection */
};

static void put_subsection(struct buf *b, const char *name)
{
        put_u8(b, QEMU_VM_SUBSECTION);
        put_u8(b, (uint8_t)strlen(name));
        put(b, name, strlen(name));
        put_u32(b, 1);          /* version */
}

static void built_stream(struct buf *b, enum cfg_kind kind, bool with_cmd)
{
        static const uint8_t id[QEMU_UUID_LEN] = { 0x12, 0x34, 0x56, 0x78, 1, 2, 3, 4,
                                                   5, 6, 7, 8, 9, 10, 11, 12 };
        static const char json[] = "{\"page_size\":4096,\"devices\":[{\"name\":\"timer\","
                                   "\"instance_id\":0,\"vmsd_name\":\"timer\",\"version\":2}]}";
        const struct qemit_block blocks[] = {
                { "pc.ram", 6, 4 * QEMU_TPS },
                { "/rom@etc/acpi/tables", 20, QEMU_TPS },
        };
        static const char *const caps[] = { "x-ignore-shared", "events" };
        struct qemit_config cfg = { "pc-q35-7.2", 10, NULL, 0, kind == CFG_UUID ? id : NULL };
        struct qemit_cursor cur = {};
        uint8_t page[QEMU_TPS], prefix[VMDESC_PREFIX_SIZE];

        b->len = 0;
        b->len += (size_t)qemit_header(b->data + b->len, sizeof(b->data) - b->len);
        if (kind == CFG_CAPS) {
                cfg.caps = caps;
                cfg.n_caps = ELEMENTSOF(caps);
        }
        EMIT(b, qemit_config, &cfg);
        if (kind == CFG_PAGE_BITS) {
                put_subsection(b, QEMU_CFG_SUB_PAGEBITS);
                put_u32(b, 12);
        }
        if (with_cmd) {                 /* OPEN_RETURN_PATH, then PING 7 */
                put_u8(b, QEMU_VM_COMMAND);
                put_u16(b, 1);
                put_u16(b, 0);
                put_u8(b, QEMU_VM_COMMAND);
                put_u16(b, 2);
                put_u16(b, 4);
                put_u32(b, 7);
        }
        EMIT(b, qemit_ram_start, 2, blocks, 2);
        EMIT(b, qemit_part_header, 2);
        memset(page, 0xa5, sizeof(page));
        EMIT(b, qemit_page_header, &cur, blocks, 2, 0, 1);
        put(b, page, sizeof(page));
        EMIT(b, qemit_zero_page, &cur, blocks, 2, 0, 2);
        EMIT(b, qemit_zero_page, &cur, blocks, 2, 1, 0);
        EMIT(b, qemit_section_tail, 2);
        EMIT(b, qemit_ram_end, 2);
        /* a FULL device section: "timer" instance 0 version 2, 8 bytes */
        put_u8(b, QEMU_VM_SECTION_FULL);
        put_u32(b, 3);
        put_u8(b, 5);
        put(b, "timer", 5);
        put_u32(b, 0);
        put_u32(b, 2);
        put_u64(b, 0x0102030405060708ULL);
        put_u8(b, QEMU_VM_SECTION_FOOTER);
        put_u32(b, 3);
        vmdesc_put_prefix(prefix, sizeof(json) - 1);
        put(b, prefix, sizeof(prefix));
        put(b, json, sizeof(json) - 1);
}

static void built_stream_seeds(void)
{
        static const uint8_t whole[4] = { 0, 0, 0, 0 }, bytes[4] = { 1, 1, 1, 1 },
                             odd[4] = { 5, 255, 0, 0 };
        struct buf *b = calloc(1, sizeof(*b));

        if (!b)
                die("out of memory");
        built_stream(b, CFG_PLAIN, false);
        stream_seed("built-plain", whole, b);
        built_stream(b, CFG_UUID, false);
        stream_seed("built-uuid-bytewise", bytes, b);
        built_stream(b, CFG_PLAIN, true);
        stream_seed("built-commands", odd, b);
        built_stream(b, CFG_CAPS, false);
        stream_seed("built-caps", whole, b);
        built_stream(b, CFG_PAGE_BITS, false);
        stream_seed("built-page-bits", odd, b);
        free(b);
}

/* ---- mapped-ram reader seeds (sparse file description) ---------------- */

struct sparse {
        struct buf b;
};

static void sparse_begin(struct sparse *s, uint64_t file_size, uint8_t flags)
{
        s->b.len = 0;
        put_u64(&s->b, file_size);
        put_u8(&s->b, flags);
}

static void sparse_extent(struct sparse *s, uint64_t off, const void *data, size_t len)
{
        if (len > UINT16_MAX)
                die("extent too long");
        put_u64(&s->b, off);
        put_u16(&s->b, (uint16_t)len);
        put(&s->b, data, len);
}

/* A command that may stand between sections: PING with a be32 payload. */
static void put_ping(struct buf *b, uint32_t v)
{
        put_u8(b, QEMU_VM_COMMAND);
        put_u16(b, 2);
        put_u16(b, 4);
        put_u32(b, v);
}

#define PING_SIZE       9U
#define PAGE_BITS_SIZE  (2U + sizeof(QEMU_CFG_SUB_PAGEBITS) - 1 + 4 + 4)

/*
 * The prologue of l, whose machine name is PING_SIZE + PAGE_BITS_SIZE
 * bytes longer than needed, rewritten with a name that much shorter plus a
 * target-page-bits subsection and a PING command before the RAM section:
 * the same size, so every offset of the layout still holds.
 */
static void prologue_with_extras(const struct mrm_layout *l, struct buf *out)
{
        struct buf *p = calloc(1, sizeof(*p));
        size_t short_len = l->machine_len - PING_SIZE - PAGE_BITS_SIZE, start;

        if (!p)
                die("out of memory");
        p->len = mrm_encode_prologue(l, p->data);
        /* START "ram": 01, be32 id, 03 "ram" */
        for (start = 0; start + 8 <= p->len; start++)
                if (p->data[start] == QEMU_VM_SECTION_START &&
                    get_be32(p->data + start + 1) == l->ram_section_id &&
                    memcmp(p->data + start + 5, "\x03ram", 4) == 0)
                        break;
        size_t subs = QEMIT_HEADER_SIZE + 5 + l->machine_len;
        if (start + 8 > p->len || start < subs)
                die("prologue: START not found");
        out->len = 0;
        put(out, p->data, QEMIT_HEADER_SIZE);
        put_u8(out, QEMU_VM_CONFIGURATION);
        put_u32(out, (uint32_t)short_len);
        put(out, l->machine, short_len);
        put(out, p->data + subs, start - subs);         /* the capabilities */
        put_subsection(out, QEMU_CFG_SUB_PAGEBITS);
        put_u32(out, 12);
        put_ping(out, 7);
        put(out, p->data + start, p->len - start);
        if (out->len != p->len)
                die("prologue: size changed");
        free(p);
}

/* A file laid out by savd's own layout code: prologue (or the one given),
 * each block's record and bitmap (with the given bit pattern), the RAM
 * tail, optionally a command, a few bytes of device state, EOF and
 * vmdesc. */
static void built_mrm(struct sparse *s, const struct mrm_layout *l, uint8_t flags,
                      uint64_t bitmap_word, const char *json, const struct buf *prologue,
                      bool tail_cmd)
{
        uint8_t rec[512], dev[32];
        struct buf *tmp = calloc(1, sizeof(*tmp));
        uint64_t dev_at = l->device_offset + (tail_cmd ? PING_SIZE : 0);

        if (!tmp)
                die("out of memory");
        uint64_t size = dev_at + sizeof(dev) + mrm_trailer_size(strlen(json));
        sparse_begin(s, size, flags);
        if (prologue) {
                sparse_extent(s, 0, prologue->data, prologue->len);
        } else {
                tmp->len = mrm_encode_prologue(l, tmp->data);
                sparse_extent(s, 0, tmp->data, tmp->len);
        }
        for (size_t i = 0; i < l->n_blocks; i++) {
                const struct mrm_block *b = &l->blocks[i];
                size_t n = mrm_encode_block_record(b, rec);
                sparse_extent(s, b->record_offset, rec, n);
                uint8_t word[8];
                put_le64(word, b->num_pages >= 64 ? bitmap_word :
                                bitmap_word & ((1ULL << b->num_pages) - 1));
                sparse_extent(s, b->bitmap_offset, word, sizeof(word));
        }
        tmp->len = mrm_encode_ram_tail(l, tmp->data);
        if (tail_cmd)
                put_ping(tmp, 9);
        sparse_extent(s, l->ram_end_offset, tmp->data, tmp->len);
        memset(dev, 0, sizeof(dev));
        dev[0] = QEMU_VM_SECTION_FULL;
        sparse_extent(s, dev_at, dev, sizeof(dev));
        tmp->len = mrm_encode_trailer(json, strlen(json), tmp->data);
        sparse_extent(s, dev_at + sizeof(dev), tmp->data, tmp->len);
        free(tmp);
}

static void layout_q10_like(struct mrm_layout *l, bool uuid)
{
        static const struct { const char *name; uint64_t len; } blocks[] = {
                { "m0", 0x2000000 }, { "/rom@etc/acpi/tables", 0x20000 },
                { "pc.bios", 0x40000 }, { "pc.rom", 0x20000 },
                { "/rom@etc/table-loader", 0x1000 }, { "/rom@etc/acpi/rsdp", 0x1000 },
        };
        static const uint8_t id[QEMU_UUID_LEN] = { 0xde, 0xad, 0xbe, 0xef };

        if (mrm_layout_init(l, "pc-q35-7.2", 10, 1) < 0 || (uuid && mrm_layout_set_uuid(l, id) < 0))
                die("layout init");
        for (size_t i = 0; i < ELEMENTSOF(blocks); i++)
                if (mrm_layout_add_block(l, blocks[i].name, strlen(blocks[i].name),
                                         blocks[i].len, QEMU_TPS) < 0)
                        die("layout block");
        if (mrm_layout_compute(l) < 0)
                die("layout compute");
}

static void check_valid(const struct sparse *s, const char *name)
{
        /* The seeds meant to be valid must be: parse them as the harness does. */
        const uint8_t *d = s->b.data;
        uint64_t size = get_be64(d);
        uint8_t *img = calloc(1, (size_t)size);
        size_t pos = 9;
        struct mrm_mem_source src = { img, size };
        struct mrm_file f;
        struct mrm_error err;

        if (!img)
                die("out of memory");
        while (pos + 10 <= s->b.len) {
                uint64_t off = get_be64(d + pos);
                size_t n = get_be16(d + pos + 8);
                memcpy(img + off, d + pos + 10, n);
                pos += 10 + n;
        }
        if (mrm_read(&f, mrm_mem_pread, &src, size, &err) < 0 ||
            mrm_verify(&f, mrm_mem_pread, &src, &err) < 0)
                die("seed %s is not valid: %s at 0x%llx", name, err.msg,
                    (unsigned long long)err.offset);
        mrm_file_free(&f);
        free(img);
}

static void mrm_seeds(void)
{
        static const char vmdesc[] = "{\"page_size\":4096,\"devices\":[]}";
        struct sparse *s = calloc(1, sizeof(*s));
        struct mrm_layout l;

        if (!s)
                die("out of memory");
        layout_q10_like(&l, false);
        built_mrm(s, &l, 0, 0x9249249249249249ULL, vmdesc, NULL, false);
        check_valid(s, "q10-like");
        write_seed("mrm-reader", "q10-like", s->b.data, s->b.len);
        built_mrm(s, &l, 0x21, 0x1, vmdesc, NULL, true);
        check_valid(s, "q10-like-short-reads");
        write_seed("mrm-reader", "q10-like-short-reads", s->b.data, s->b.len);
        mrm_layout_free(&l);

        layout_q10_like(&l, true);
        built_mrm(s, &l, 0, ~0ULL, "{\"configuration\":{},\"page_size\":4096,\"devices\":[{}]}",
                  NULL, false);
        check_valid(s, "uuid-all-present");
        write_seed("mrm-reader", "uuid-all-present", s->b.data, s->b.len);
        mrm_layout_free(&l);

        /* one single-page block */
        if (mrm_layout_init(&l, "pc", 2, 7) < 0 || mrm_layout_add_block(&l, "b", 1, QEMU_TPS, QEMU_TPS) < 0 ||
            mrm_layout_compute(&l) < 0)
                die("layout");
        built_mrm(s, &l, 0x03, 0x1, vmdesc, NULL, false);
        check_valid(s, "one-page");
        write_seed("mrm-reader", "one-page", s->b.data, s->b.len);
        mrm_layout_free(&l);

        /* target-page-bits and a command in the stream portion */
        static const char name[] = "pc-q35-7.2" "........................" ".........................";
        struct buf *pro = calloc(1, sizeof(*pro));
        if (!pro || sizeof(name) - 1 != 10 + PING_SIZE + PAGE_BITS_SIZE ||
            mrm_layout_init(&l, name, sizeof(name) - 1, 2) < 0 ||
            mrm_layout_add_block(&l, "pc.ram", 6, 64 * QEMU_TPS, QEMU_TPS) < 0 ||
            mrm_layout_compute(&l) < 0)
                die("layout");
        prologue_with_extras(&l, pro);
        built_mrm(s, &l, 0, 0x8000000000000001ULL, vmdesc, pro, true);
        check_valid(s, "page-bits-commands");
        write_seed("mrm-reader", "page-bits-commands", s->b.data, s->b.len);
        mrm_layout_free(&l);
        free(pro);
        free(s);
}

/* The stream portion of the real QEMU 10.2 file, up to the first device
 * section, with its bitmaps; the device state cut to 64 bytes and the
 * vmdesc replaced by a short one. */
static void q10_seed(const char *testdata)
{
        static const char vmdesc[] = "{\"page_size\":4096,\"devices\":[]}";
        struct sparse *s = calloc(1, sizeof(*s));
        struct mrm_mem_source src;
        struct mrm_file f;
        struct mrm_error err;
        uint8_t trailer[64];
        size_t len;
        uint8_t *q = read_file(testdata, "q10-mapped-ram.mrm", &len);

        if (!s)
                die("out of memory");
        src = (struct mrm_mem_source) { q, len };
        if (mrm_read(&f, mrm_mem_pread, &src, len, &err) < 0)
                die("q10: %s", err.msg);
        uint64_t dev = f.device_offset, size = dev + 64 + mrm_trailer_size(strlen(vmdesc));
        sparse_begin(s, size, 0);
        sparse_extent(s, 0, q, f.layout.blocks[0].bitmap_offset);
        for (size_t i = 0; i < f.layout.n_blocks; i++) {
                const struct mrm_block *b = &f.layout.blocks[i];
                if (i > 0)
                        sparse_extent(s, b->record_offset, q + b->record_offset,
                                      b->bitmap_offset - b->record_offset);
                sparse_extent(s, b->bitmap_offset, q + b->bitmap_offset, b->bitmap_size);
        }
        sparse_extent(s, f.layout.ram_end_offset, q + f.layout.ram_end_offset,
                      dev + 64 - f.layout.ram_end_offset);
        size_t n = mrm_encode_trailer(vmdesc, strlen(vmdesc), trailer);
        sparse_extent(s, dev + 64, trailer, n);
        check_valid(s, "q10-stream-part");
        write_seed("mrm-reader", "q10-stream-part", s->b.data, s->b.len);
        mrm_file_free(&f);
        free(q);
        free(s);
}

/* ---- vmdesc seeds ----------------------------------------------------- */

/* The first devices of the QEMU 10.2 file's vmdesc, with its
 * "configuration" description. */
static void vmdesc_q10_seed(const char *testdata)
{
        size_t len;
        uint8_t *q = read_file(testdata, "q10-mapped-ram.mrm", &len);
        struct mrm_mem_source src = { q, len };
        struct mrm_file f;
        struct mrm_error err;
        struct json_object *devs, *cut;

        if (mrm_read(&f, mrm_mem_pread, &src, len, &err) < 0 || !f.vmdesc ||
            !json_object_object_get_ex(f.vmdesc, "devices", &devs))
                die("q10 vmdesc");
        cut = json_object_new_array();
        for (size_t i = 0; i < 3 && i < json_object_array_length(devs); i++)
                json_object_array_add(cut, json_object_get(json_object_array_get_idx(devs, i)));
        json_object_object_add(f.vmdesc, "devices", cut);
        const char *s = json_object_to_json_string_ext(f.vmdesc, JSON_C_TO_STRING_PLAIN |
                                                       JSON_C_TO_STRING_NOSLASHESCAPE);
        struct buf *b = calloc(1, sizeof(*b));
        if (!b)
                die("out of memory");
        put_u8(b, 10);          /* machine name length */
        put_u8(b, 1);           /* one capability, no uuid */
        put(b, s, strlen(s));
        write_seed("vmdesc", "q10-first-devices", b->data, b->len);

        /* The same framed as the end of a device tail. */
        b->len = 2;
        uint8_t prefix[VMDESC_PREFIX_SIZE];
        put_u8(b, QEMU_VM_SECTION_FOOTER);
        put_u32(b, 9);
        vmdesc_put_prefix(prefix, (uint32_t)strlen(s));
        put(b, prefix, sizeof(prefix));
        put(b, s, strlen(s));
        b->data[1] = 0x42;      /* uuid, two capabilities */
        write_seed("vmdesc", "q10-framed", b->data, b->len);
        free(b);
        mrm_file_free(&f);
        free(q);
}

static void text_seed(const char *fuzzer, const char *name, const char *prefix, size_t plen,
                      const char *text)
{
        struct buf *b = calloc(1, sizeof(*b));

        if (!b)
                die("out of memory");
        put(b, prefix, plen);
        put(b, text, strlen(text));
        write_seed(fuzzer, name, b->data, b->len);
        free(b);
}

static void vmdesc_seeds(void)
{
        text_seed("vmdesc", "minimal", "\x01\x00", 2, "{\"page_size\":4096,\"devices\":[]}");
        text_seed("vmdesc", "qemu-shaped", "\x20\x43", 2,
                  "{\"configuration\":{\"vmsd_name\":\"configuration\",\"version\":1,"
                  "\"fields\":[{\"name\":\"len\",\"type\":\"uint32\",\"size\":4}]},"
                  "\"page_size\":4096,\"devices\":[{\"name\":\"timer\",\"instance_id\":0,"
                  "\"vmsd_name\":\"timer\",\"version\":2,\"fields\":[{\"name\":\"cpu_ticks_offset\","
                  "\"type\":\"int64\",\"size\":8},{\"name\":\"d\",\"array_len\":3,\"type\":\"uint8\","
                  "\"size\":1}],\"subsections\":[{\"vmsd_name\":\"timer/dock\",\"version\":1,"
                  "\"fields\":[]}]}],\"extra\":[1.5e3,-0.0,true,null,\"\\u00e9\\n\"]}");
        /* a tail without vmdesc (suppress-vmdesc): device bytes, then EOF */
        write_seed("vmdesc", "suppressed", "\xff\x3f\x04\x00\x00\x00\x01\x00", 8);
}

/* ---- native frame seeds ------------------------------------------------ */

static void native_frames(struct buf *b, bool reply_side)
{
        static const uint64_t values[SAVD_REPLY_VALUES] = { 1, SAVD_CAP_ALL, 1024, 1ULL << 44 };
        uint8_t f[NATIVE_HEAD_MAX], mask[1] = { 0x0d }, page[SAVD_NATIVE_PAGE_SIZE];

        if (reply_side) {
                put(b, f, native_encode_reply(f, SAVD_FRAME_HELLO, values, "pc-q35", 6));
                put(b, f, native_encode_block(f, 4 * SAVD_NATIVE_PAGE_SIZE, 0, "pc.ram", 6, false));
                put(b, f, native_encode_device_state(f, 3));
                put(b, "dev", 3);
                put(b, f, native_encode_error(f, EIO, "write failed", 12));
                return;
        }
        put(b, f, native_encode_hello(f, 0, SAVD_CAP_ALL, "vm1", 3));
        put(b, f, native_encode_block(f, 4 * SAVD_NATIVE_PAGE_SIZE, 0, "pc.ram", 6, true));
        put(b, f, native_encode_block(f, SAVD_NATIVE_PAGE_SIZE, 1 << 20, "/rom@etc/acpi/tables",
                                      20, false));
        put(b, f, native_encode_empty(f, SAVD_FRAME_START, 0));
        put(b, f, native_encode_dirty(f, 0, 64));
        /* pages 0..3 of block 0: 0, 2 and 3 zero, page 1 with data */
        put(b, f, native_encode_pages(f, 0, 0, 4, mask));
        memset(page, 0x5a, sizeof(page));
        put(b, page, sizeof(page));
        put(b, f, native_encode_empty(f, SAVD_FRAME_SCAN, SAVD_SCAN_FINAL | SAVD_SCAN_ALL));
        put(b, f, native_encode_device_state(f, 16));
        put(b, "device-state-16b", 16);
        put(b, f, native_encode_empty(f, SAVD_FRAME_COMPLETE, 0));
}

static void native_seeds(void)
{
        struct buf *b = calloc(1, sizeof(*b));

        if (!b)
                die("out of memory");
        put(b, "\0\0\0\0\x28", 5);         /* whole; 1 MiB device state */
        native_frames(b, false);
        write_seed("native", "save-session", b->data, b->len);
        b->len = 0;
        put(b, "\x01\x03\x10\x00\x29", 5); /* split; bulk taken by the caller */
        native_frames(b, false);
        write_seed("native", "save-session-zero-copy", b->data, b->len);
        b->len = 0;
        put(b, "\x07\x00\x00\x00\x00", 5);
        native_frames(b, true);
        write_seed("native", "restore-replies", b->data, b->len);
        free(b);
}

/* ---- control protocol seeds ------------------------------------------- */

static void control_seeds(void)
{
        text_seed("control", "session", "\x00\x00\x00", 3,
                  "{\"execute\":\"qmp_capabilities\"}\n"
                  "{\"execute\":\"query-version\",\"id\":1}\n"
                  "{\"execute\":\"save\",\"arguments\":{\"name\":\"vm1\",\"output\":\"vm1.mrm\","
                  "\"channel\":\"unix\",\"overwrite\":true},\"id\":\"a\"}\n"
                  "{\"execute\":\"restore\",\"arguments\":{\"file\":\"vm1.mrm\",\"to\":\"unix\","
                  "\"name\":\"r\"},\"id\":[1,{\"x\":null}]}\n"
                  "{\"execute\":\"query-jobs\"}\r\n"
                  "{\"execute\":\"query-job\",\"arguments\":{\"job\":4294967295}}\n"
                  "{\"execute\":\"job-cancel\",\"arguments\":{\"job\":1}}"
                  "{\"execute\":\"job-dismiss\",\"arguments\":{\"job\":1}}\n"
                  "{\"execute\":\"query-stats\",\"id\":2.5}\n");
        text_seed("control", "errors", "\x01\x05\x00", 3,
                  "{\"execute\":\"nope\"}\n"
                  "{\"execute\":\"save\",\"arguments\":{\"name\":\"\",\"output\":\"a\\u0000b\"}}\n"
                  "{\"execute\":\"query-job\",\"arguments\":{\"job\":-1}}\n"
                  "{\"execute\":\"query-job\",\"arguments\":{\"job\":18446744073709551615}}\n"
                  "{\"execute\":1,\"bogus\":2}\n"
                  "{\"execute\":\"save\",\"arguments\":[]}\n"
                  "[1,2]\n"
                  "{\"execute\":\"query-jobs\"\n"
                  "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":{\"j\":{\"k\":"
                  "{\"l\":{\"m\":{\"n\":{\"o\":{\"p\":{\"q\":1}}}}}}}}}}}}}}}}}\n"
                  "{\"execute\":\"query-version\",\"id\":\"\\ud800\"}\n"
                  "  \t{\"execute\":\"query-version\"}  x\n");
        text_seed("control", "oversized", "\x07\x00\x04", 3,
                  "{\"execute\":\"save\",\"arguments\":{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaa\","
                  "\"output\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}}\n"
                  "{\"execute\":\"query-jobs\"}\n");
        text_seed("control", "server-messages", "\x00\x00\x00", 3,
                  "{\"QMP\":{\"version\":{\"savd\":{\"major\":0,\"minor\":1,\"micro\":0},"
                  "\"package\":\"savd 0.1.0\"},\"capabilities\":[]}}\n"
                  "{\"return\":{},\"id\":1}\n"
                  "{\"error\":{\"class\":\"GenericError\",\"desc\":\"x\"}}\n"
                  "{\"event\":\"JOB_STATUS_CHANGE\",\"data\":{\"job\":1,\"status\":\"running\"},"
                  "\"timestamp\":{\"seconds\":1,\"microseconds\":2}}\n");
}

int main(int argc, char **argv)
{
        static char corpus[PATH_MAX_LEN];
        const char *testdata = argc == 3 ? argv[1] : getenv("SAVD_TESTDATA");
        const char *src = getenv("top_srcdir");

        if (argc == 3) {
                outdir = argv[2];
                if (mkdir(outdir, 0755) < 0 && errno != EEXIST)
                        die("mkdir '%s': %m", outdir);
        } else if (argc == 1 && testdata && src) {
                snprintf(corpus, sizeof(corpus), "%s/tests/fuzz/corpus", src);
                outdir = corpus;
                check_mode = true;
        } else {
                die("usage: %s TESTDATA_DIR OUTPUT_DIR\n"
                    "   or: SAVD_TESTDATA=DIR top_srcdir=DIR %s", argv[0], argv[0]);
        }
        q72_seeds(testdata);
        built_stream_seeds();
        mrm_seeds();
        q10_seed(testdata);
        vmdesc_q10_seed(testdata);
        vmdesc_seeds();
        control_seeds();
        native_seeds();
        if (mismatches)
                fprintf(stderr, "%d seed(s) differ from what the encoders produce now\n",
                        mismatches);
        return mismatches ? EXIT_FAILURE : EXIT_SUCCESS;
}
