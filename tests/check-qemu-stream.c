/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the QEMU legacy stream parser (proto/qemu-stream.c).
 *
 * Real data: the QEMU 7.2 stream of the 32 MiB "m0" guest in
 * $SAVD_TESTDATA is fed whole and in 1-, 7-, 4093-byte and random chunks
 * (same events every time); the block list, the PAGE / ZERO counts per
 * block and the section offsets were determined from the bytes by an
 * independent reading and are hard-coded here; every m0 page must match
 * the fill pattern of the testdata README.  Hand-built streams cover
 * multi-pass data -> zero -> data, CONTINUE across sections, each refusal,
 * truncation at every byte and random corruption.
 *
 * Without $SAVD_TESTDATA the hand-built cases still run and the binary
 * exits 77 (skipped) so the gap is visible.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "bytes.h"
#include "macro.h"
#include "qemu-emit.h"
#include "qemu-stream.h"
#include "stream-builder.h"
#include "test-util.h"
#include "vmdesc.h"

/* ---- running the parser --------------------------------------------------- */

struct rec {
        int type;
        uint32_t a;             /* block / section type / index */
        uint64_t b;             /* page / section id / length */
        uint64_t h;             /* hash of page data, fill */
        uint64_t offset;
};

struct run {
        struct rec *ev;
        size_t n, cap;
        struct sbuf tail;
        int err;                /* first negative return of feed, else finish */
        char msg[QSTREAM_ERR_MAX];
        bool ram_done;
        size_t n_in_caller;     /* PAGE data pointing into the fed buffer */
        size_t blocks;
        char block_names[8][SAVD_NAME_MAX + 1];
        uint64_t block_lens[8];
        struct qstream_config cfg;
};

static uint64_t fnv(const uint8_t *d, size_t n)
{
        uint64_t h = 0xcbf29ce484222325ULL;

        for (size_t i = 0; i < n; i++)
                h = (h ^ d[i]) * 0x100000001b3ULL;
        return h;
}

static void record(struct run *r, const struct qstream_event *ev, const uint8_t *buf, size_t len)
{
        struct rec x = { .type = ev->type, .offset = ev->offset };

        switch (ev->type) {
        case QSTREAM_EV_CONFIG:
                r->cfg = *ev->config;
                break;
        case QSTREAM_EV_BLOCK:
                x.a = ev->block.index;
                x.b = ev->block.block->used_length;
                if (r->blocks < 8) {
                        strcpy(r->block_names[r->blocks], ev->block.block->name);
                        r->block_lens[r->blocks] = ev->block.block->used_length;
                }
                r->blocks++;
                break;
        case QSTREAM_EV_BLOCKS_DONE:
                x.a = ev->blocks_done.n_blocks;
                x.b = ev->blocks_done.total_bytes;
                break;
        case QSTREAM_EV_SECTION:
                x.a = ev->section.type;
                x.b = ev->section.id;
                break;
        case QSTREAM_EV_PAGE:
                x.a = ev->page.block;
                x.b = ev->page.page;
                x.h = fnv(ev->page.data, QEMU_TPS);
                if (ev->page.data >= buf && ev->page.data + QEMU_TPS <= buf + len)
                        r->n_in_caller++;
                break;
        case QSTREAM_EV_ZERO:
                x.a = ev->zero.block;
                x.b = ev->zero.page;
                x.h = ev->zero.fill;
                break;
        case QSTREAM_EV_RAM_DONE:
                r->ram_done = true;
                break;
        case QSTREAM_EV_DEVICE_TAIL:
                sb_put(&r->tail, ev->tail.data, ev->tail.len);
                return;         /* chunking decides how tails split */
        }
        if (r->n == r->cap) {
                r->cap = MAX(64, 2 * r->cap);
                r->ev = realloc(r->ev, r->cap * sizeof(*r->ev));
                ck_assert_ptr_nonnull(r->ev);
        }
        r->ev[r->n++] = x;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

/* chunk == 0: random chunk sizes of 1 .. 64 KiB; SIZE_MAX: all at once */
static void run_stream(const uint8_t *buf, size_t len, size_t chunk, struct run *r)
{
        struct qstream *p = qstream_new();
        size_t pos = 0;

        ck_assert_ptr_nonnull(p);
        memset(r, 0, sizeof(*r));
        while (pos < len && r->err == 0) {
                size_t n = chunk ? MIN(chunk, len - pos) : MIN(1 + rng() % 65536, len - pos);
                const uint8_t *c = buf + pos;

                pos += n;
                for (;;) {
                        struct qstream_event ev;
                        size_t used;
                        int k = qstream_feed(p, c, n, &used, &ev);

                        CHECK(used <= n, "consumed %zu of %zu", used, n);
                        if (k < 0) {
                                r->err = k;
                                break;
                        }
                        c += used, n -= used;
                        if (k == 0)
                                break;
                        record(r, &ev, buf, len);
                }
        }
        if (r->err == 0)
                r->err = qstream_finish(p);
        if (r->err < 0) {
                ck_assert_ptr_nonnull(qstream_error(p));
                snprintf(r->msg, sizeof(r->msg), "%s", qstream_error(p));
        } else
                ck_assert_ptr_null(qstream_error(p));
        qstream_free(p);
}

static void run_free(struct run *r)
{
        free(r->ev);
        sb_free(&r->tail);
}

/* ---- the QEMU 7.2 stream -------------------------------------------------- */

/* Determined from the bytes of q72-legacy.stream independently of savd. */
#define Q72_LEN                 0xaf86f5U
#define Q72_START_OFF           0x17U
#define Q72_PART_OFF            0xbdU
#define Q72_END_OFF             0xae5addU
#define Q72_TAIL_OFF            0xae5aefU       /* first FULL section ("timer") */
#define Q72_EOF_OFF             0xaeda35U
#define Q72_VMDESC_LEN          44218U
#define Q72_RAM_ID              2U

static const struct {
        const char *name;
        uint64_t len;
        unsigned pages, zeros;
} q72_blocks[] = {
        { "m0",                    0x2000000, 2721, 5471 },
        { "/rom@etc/acpi/tables",  0x20000,      3,   29 },
        { "pc.bios",               0x40000,     46,   18 },
        { "pc.rom",                0x20000,      0,   32 },
        { "/rom@etc/table-loader", 0x1000,       1,    0 },
        { "/rom@etc/acpi/rsdp",    0x1000,       1,    0 },
};

static uint8_t *q72;
static size_t q72_len;

static void load_q72(void)
{
        if (!q72)
                q72 = testdata_read("q72-legacy.stream", 0, &q72_len);
        ck_assert_uint_eq(q72_len, Q72_LEN);
}

static const size_t chunkings[] = { SIZE_MAX, 1, 7, 4093, 0 };

START_TEST(test_q72_chunkings)
{
        struct run whole, r;

        load_q72();
        run_stream(q72, q72_len, SIZE_MAX, &whole);
        ck_assert_msg(whole.err == 0, "%s", whole.msg);
        rng_state = 0x1234567 + _i;
        run_stream(q72, q72_len, chunkings[_i], &r);
        ck_assert_msg(r.err == 0, "chunk %zu: %s", chunkings[_i], r.msg);
        ck_assert_uint_eq(r.n, whole.n);
        for (size_t i = 0; i < r.n; i++)
                CHECK(memcmp(&r.ev[i], &whole.ev[i], sizeof(struct rec)) == 0,
                      "chunk %zu: event %zu differs", chunkings[_i], i);
        ck_assert_uint_eq(r.tail.len, whole.tail.len);
        ck_assert_mem_eq(r.tail.p, whole.tail.p, r.tail.len);
        run_free(&r);
        run_free(&whole);
}
END_TEST

static void check_q72_blocks(const struct run *r)
{
        ck_assert_uint_eq(r->blocks, ELEMENTSOF(q72_blocks));
        for (size_t i = 0; i < ELEMENTSOF(q72_blocks); i++) {
                ck_assert_str_eq(r->block_names[i], q72_blocks[i].name);
                ck_assert_uint_eq(r->block_lens[i], q72_blocks[i].len);
        }
}

/* Every page of every block arrives exactly once; counts per block. */
static void check_q72_pages(const struct run *r)
{
        unsigned pages[6] = { 0 }, zeros[6] = { 0 };
        uint8_t *seen[6];

        for (size_t b = 0; b < 6; b++)
                seen[b] = calloc(q72_blocks[b].len / QEMU_TPS, 1);
        for (size_t i = 0; i < r->n; i++) {
                const struct rec *e = &r->ev[i];

                if (e->type != QSTREAM_EV_PAGE && e->type != QSTREAM_EV_ZERO)
                        continue;
                CHECK(e->a < 6, "block %u", e->a);
                CHECK(e->b < q72_blocks[e->a].len / QEMU_TPS, "page %" PRIu64, e->b);
                CHECK(seen[e->a][e->b]++ == 0, "block %u page %" PRIu64 " twice", e->a, e->b);
                if (e->type == QSTREAM_EV_PAGE)
                        pages[e->a]++;
                else
                        zeros[e->a]++;
        }
        for (size_t b = 0; b < 6; b++) {
                ck_assert_msg(pages[b] == q72_blocks[b].pages && zeros[b] == q72_blocks[b].zeros,
                              "%s: %u pages %u zeros", q72_blocks[b].name, pages[b], zeros[b]);
                ck_assert_uint_eq(pages[b] + zeros[b], q72_blocks[b].len / QEMU_TPS);
                free(seen[b]);
        }
}

/* README: page i of m0 is (i*7+1)&0xff when i % 3 == 0, zero otherwise. */
static void check_m0_pattern(struct qstream *p, const uint8_t *buf, size_t len)
{
        unsigned checked = 0;

        for (size_t pos = 0; pos < len;) {
                struct qstream_event ev;
                size_t used;
                int k = qstream_feed(p, buf + pos, len - pos, &used, &ev);
                uint8_t want[QEMU_TPS];

                CHECK(k >= 0, "%s", qstream_error(p));
                pos += used;
                if (k == 0 || ev.type != QSTREAM_EV_PAGE || ev.page.block != 0)
                        continue;
                CHECK(ev.page.page % 3 == 0, "m0 page %" PRIu64 " has data", ev.page.page);
                memset(want, (ev.page.page * 7 + 1) & 0xff, sizeof(want));
                CHECK(memcmp(ev.page.data, want, QEMU_TPS) == 0 && want[0] != 0,
                      "m0 page %" PRIu64 " content", ev.page.page);
                checked++;
        }
        ck_assert_uint_eq(checked, 2721);
}

START_TEST(test_q72_content)
{
        struct qstream *p;
        struct run r;

        load_q72();
        run_stream(q72, q72_len, SIZE_MAX, &r);
        ck_assert_msg(r.err == 0, "%s", r.msg);
        ck_assert_str_eq(r.cfg.machine, "pc-q35-7.2");
        ck_assert_uint_eq(r.cfg.machine_len, 10);
        ck_assert(!r.cfg.has_uuid);
        check_q72_blocks(&r);
        check_q72_pages(&r);

        /* events in order: CONFIG, SECTION(START), 6 BLOCKs, BLOCKS_DONE,
         * SECTION(PART), records, SECTION(END), RAM_DONE */
        ck_assert_int_eq(r.ev[0].type, QSTREAM_EV_CONFIG);
        ck_assert_int_eq(r.ev[1].type, QSTREAM_EV_SECTION);
        ck_assert_uint_eq(r.ev[1].a, QEMU_VM_SECTION_START);
        ck_assert_uint_eq(r.ev[1].b, Q72_RAM_ID);
        ck_assert_uint_eq(r.ev[1].offset, Q72_START_OFF);
        ck_assert_int_eq(r.ev[8].type, QSTREAM_EV_BLOCKS_DONE);
        ck_assert_uint_eq(r.ev[8].a, 6);
        ck_assert_uint_eq(r.ev[8].b, 0x2082000);
        ck_assert_int_eq(r.ev[9].type, QSTREAM_EV_SECTION);
        ck_assert_uint_eq(r.ev[9].a, QEMU_VM_SECTION_PART);
        ck_assert_uint_eq(r.ev[9].offset, Q72_PART_OFF);
        ck_assert_int_eq(r.ev[r.n - 2].type, QSTREAM_EV_SECTION);
        ck_assert_uint_eq(r.ev[r.n - 2].a, QEMU_VM_SECTION_END);
        ck_assert_uint_eq(r.ev[r.n - 2].offset, Q72_END_OFF);
        ck_assert_int_eq(r.ev[r.n - 1].type, QSTREAM_EV_RAM_DONE);
        ck_assert(r.ram_done);
        /* fed whole, every page is handed out in place */
        ck_assert_uint_eq(r.n_in_caller, 2721 + 3 + 46 + 1 + 1);

        /* the tail is the stream from the first device section on */
        ck_assert_uint_eq(r.tail.len, q72_len - Q72_TAIL_OFF);
        ck_assert_mem_eq(r.tail.p, q72 + Q72_TAIL_OFF, r.tail.len);
        ck_assert_uint_eq(r.tail.p[0], QEMU_VM_SECTION_FULL);
        ck_assert_uint_eq(get_be32(r.tail.p + 1), 0);           /* section id */
        ck_assert_uint_eq(r.tail.p[5], 5);
        ck_assert_mem_eq(r.tail.p + 6, "timer", 5);

        p = qstream_new();
        check_m0_pattern(p, q72, q72_len);
        ck_assert_uint_eq(qstream_stats(p)->pages, 2772);
        ck_assert_uint_eq(qstream_stats(p)->zeros, 5550);
        ck_assert_uint_eq(qstream_stats(p)->sections, 3);
        ck_assert_uint_eq(qstream_stats(p)->offset, q72_len);
        ck_assert_uint_eq(qstream_stats(p)->tail_bytes, q72_len - Q72_TAIL_OFF);
        ck_assert_uint_eq(qstream_ram_section_id(p), Q72_RAM_ID);
        ck_assert_uint_eq(qstream_n_blocks(p), 6);
        ck_assert_str_eq(qstream_block(p, 2)->name, "pc.bios");
        ck_assert_ptr_null(qstream_block(p, 6));
        ck_assert_int_eq(qstream_finish(p), 0);
        qstream_free(p);
        run_free(&r);
}
END_TEST

START_TEST(test_q72_trailer)
{
        struct vmdesc_loc loc;
        struct json_object *o, *devs;
        struct json_tokener *tok;
        struct run r;

        load_q72();
        run_stream(q72, q72_len, 4093, &r);
        ck_assert_int_eq(r.err, 0);
        ck_assert_int_eq(vmdesc_find(r.tail.p, r.tail.len, &loc), 1);
        ck_assert_uint_eq(loc.eof_offset + Q72_TAIL_OFF, Q72_EOF_OFF);
        ck_assert_uint_eq(loc.json_len, Q72_VMDESC_LEN);
        ck_assert_uint_eq(loc.json_offset + loc.json_len, r.tail.len);
        tok = json_tokener_new();
        o = json_tokener_parse_ex(tok, (const char *)r.tail.p + loc.json_offset, loc.json_len);
        ck_assert_ptr_nonnull(o);
        ck_assert_uint_eq(json_tokener_get_parse_end(tok), loc.json_len);
        json_tokener_free(tok);
        ck_assert(json_object_object_get_ex(o, "devices", &devs));
        ck_assert_uint_eq(json_object_array_length(devs), 31);
        ck_assert_str_eq(json_object_get_string(json_object_object_get(
                                 json_object_array_get_idx(devs, 0), "name")), "timer");
        ck_assert(!json_object_object_get_ex(o, "configuration", NULL));
        json_object_put(o);
        run_free(&r);
}
END_TEST

/* Cut the stream at record boundaries (and one byte either side): no
 * RAM_DONE before the END footer, and finish() reports the truncation. */
START_TEST(test_q72_truncated)
{
        struct run whole, r;
        size_t n_cuts = 0;

        load_q72();
        run_stream(q72, q72_len, SIZE_MAX, &whole);
        for (size_t i = 0; i < whole.n; i += i < 40 ? 1 : 397) {
                for (int d = -1; d <= 1; d++) {
                        size_t cut = whole.ev[i].offset + d;

                        if (cut == 0 || cut >= Q72_TAIL_OFF)
                                continue;
                        run_stream(q72, cut, SIZE_MAX, &r);
                        ck_assert_int_eq(r.err, -EPIPE);
                        ck_assert(!r.ram_done);
                        ck_assert_ptr_nonnull(strstr(r.msg, "stream ended"));
                        run_free(&r);
                        n_cuts++;
                }
        }
        ck_assert_uint_gt(n_cuts, 100);
        run_free(&whole);
}
END_TEST

/* ---- hand-built streams ----------------------------------------------------- */

#define RAM_ID 3U

static const struct qemit_block hb_blocks[] = {
        { "pc.ram", 6, 16 * QEMU_TPS },
        { "pc.bios", 7, 2 * QEMU_TPS },
};

#define EMIT(s, call) do {                                              \
                ssize_t _n = (call);                                    \
                ck_assert_int_gt(_n, 0);                                \
        } while (0)

static void hb_prologue(struct sbuf *s)
{
        const struct qemit_config c = { .machine = "pc-q35-7.2", .machine_len = 10 };
        uint8_t tmp[256];
        ssize_t n;

        n = qemit_header(tmp, sizeof(tmp));
        ck_assert_int_eq(n, 8);
        sb_put(s, tmp, n);
        n = qemit_config(&c, tmp, sizeof(tmp));
        ck_assert_int_gt(n, 0);
        sb_put(s, tmp, n);
}

static void hb_start(struct sbuf *s)
{
        ssize_t n = qemit_ram_start(RAM_ID, hb_blocks, 2, NULL, 0);

        ck_assert_int_gt(n, 0);
        ck_assert_int_eq(qemit_ram_start(RAM_ID, hb_blocks, 2, sb_grow(s, n), n), n);
}

static void hb_part(struct sbuf *s)
{
        EMIT(s, qemit_part_header(RAM_ID, sb_grow(s, 5), 5));
}

static void hb_page(struct sbuf *s, struct qemit_cursor *c, size_t blk, uint64_t pg, uint8_t fill)
{
        uint8_t tmp[QEMIT_PAGE_HEADER_MAX];
        ssize_t n = qemit_page_header(c, hb_blocks, 2, blk, pg, tmp, sizeof(tmp));

        ck_assert_int_gt(n, 0);
        sb_put(s, tmp, n);
        memset(sb_grow(s, QEMU_TPS), fill, QEMU_TPS);
}

static void hb_zero(struct sbuf *s, struct qemit_cursor *c, size_t blk, uint64_t pg)
{
        uint8_t tmp[QEMIT_PAGE_HEADER_MAX + 1];
        ssize_t n = qemit_zero_page(c, hb_blocks, 2, blk, pg, tmp, sizeof(tmp));

        ck_assert_int_gt(n, 0);
        sb_put(s, tmp, n);
}

static void hb_eos(struct sbuf *s)
{
        EMIT(s, qemit_section_tail(RAM_ID, sb_grow(s, 13), 13));
}

static void hb_end(struct sbuf *s)
{
        EMIT(s, qemit_ram_end(RAM_ID, sb_grow(s, 18), 18));
}

static const char hb_json[] = "{\"page_size\": 4096, \"devices\": [{\"name\": \"dev\"}]}";

/* A FULL device section (opaque to the parser), EOF and vmdesc. */
static void hb_devices(struct sbuf *s)
{
        sb_u8(s, QEMU_VM_SECTION_FULL);
        sb_be32(s, 7);
        sb_counted(s, "dev");
        sb_be32(s, 0);
        sb_be32(s, 1);
        sb_put(s, "\x01\x02\x03\x00\x7e", 5);   /* payload that looks like a footer */
        sb_u8(s, QEMU_VM_SECTION_FOOTER);
        sb_be32(s, 7);
        vmdesc_put_prefix(sb_grow(s, VMDESC_PREFIX_SIZE), strlen(hb_json));
        sb_put(s, hb_json, strlen(hb_json));
}

/* One pass over pc.ram (pages 1, 5 data, the rest zero) and pc.bios. */
static void hb_pass1(struct sbuf *s, struct qemit_cursor *c)
{
        hb_part(s);
        for (uint64_t i = 0; i < 16; i++) {
                if (i == 1 || i == 5)
                        hb_page(s, c, 0, i, 0x10 + i);
                else
                        hb_zero(s, c, 0, i);
        }
        hb_page(s, c, 1, 0, 0xb0);
        hb_page(s, c, 1, 1, 0xb1);
        hb_eos(s);
}

/* A complete good stream; *end_off / *tail_off receive the offsets of the
 * byte after the END footer and of the device tail. */
static void hb_good(struct sbuf *s, size_t *ram_end)
{
        struct qemit_cursor c = { 0 };

        hb_prologue(s);
        hb_start(s);
        hb_pass1(s, &c);
        hb_end(s);
        if (ram_end)
                *ram_end = s->len;
        hb_devices(s);
}

static size_t count_type(const struct run *r, int type)
{
        size_t n = 0;

        for (size_t i = 0; i < r->n; i++)
                n += r->ev[i].type == type;
        return n;
}

START_TEST(test_hb_good)
{
        struct sbuf s = { 0 };
        struct vmdesc_loc loc;
        size_t ram_end;
        struct run r, r1;

        hb_good(&s, &ram_end);
        run_stream(s.p, s.len, SIZE_MAX, &r);
        ck_assert_msg(r.err == 0, "%s", r.msg);
        ck_assert(r.ram_done);
        ck_assert_uint_eq(count_type(&r, QSTREAM_EV_PAGE), 4);
        ck_assert_uint_eq(count_type(&r, QSTREAM_EV_ZERO), 14);
        ck_assert_uint_eq(count_type(&r, QSTREAM_EV_SECTION), 3);
        ck_assert_uint_eq(r.tail.len, s.len - ram_end);
        ck_assert_mem_eq(r.tail.p, s.p + ram_end, r.tail.len);
        ck_assert_int_eq(vmdesc_find(r.tail.p, r.tail.len, &loc), 1);
        ck_assert_uint_eq(loc.json_len, strlen(hb_json));

        run_stream(s.p, s.len, 1, &r1);
        ck_assert_int_eq(r1.err, 0);
        ck_assert_uint_eq(r1.n, r.n);
        ck_assert_mem_eq(r1.ev, r.ev, r.n * sizeof(struct rec));
        ck_assert_uint_eq(r1.n_in_caller, 0);           /* 1-byte chunks: all gathered */
        run_free(&r1);
        run_free(&r);
        sb_free(&s);
}
END_TEST

/* pc.ram page 5: data in pass 1, zero in pass 2, data again in END.  The
 * events must come in that order so the consumer ends with the data. */
START_TEST(test_hb_multipass)
{
        struct sbuf s = { 0 };
        struct qemit_cursor c = { 0 };
        uint64_t model[16] = { 0 };     /* hash of the latest content, 0 = zero */
        size_t seq = 0;
        struct run r;
        uint8_t page[QEMU_TPS];

        hb_prologue(&s);
        hb_start(&s);
        hb_pass1(&s, &c);
        hb_part(&s);
        hb_zero(&s, &c, 0, 5);
        hb_page(&s, &c, 0, 7, 0x77);
        hb_eos(&s);
        /* END with records, then its EOS */
        sb_u8(&s, QEMU_VM_SECTION_END);
        sb_be32(&s, RAM_ID);
        hb_page(&s, &c, 0, 5, 0x55);
        hb_eos(&s);
        hb_devices(&s);

        run_stream(s.p, s.len, 3, &r);
        ck_assert_msg(r.err == 0, "%s", r.msg);
        for (size_t i = 0; i < r.n; i++) {
                const struct rec *e = &r.ev[i];

                if (e->type == QSTREAM_EV_PAGE && e->a == 0)
                        model[e->b] = e->h;
                else if (e->type == QSTREAM_EV_ZERO && e->a == 0)
                        model[e->b] = 0;
                if (e->a == 0 && e->b == 5 &&
                    (e->type == QSTREAM_EV_PAGE || e->type == QSTREAM_EV_ZERO)) {
                        static const int order[] = { QSTREAM_EV_PAGE, QSTREAM_EV_ZERO, QSTREAM_EV_PAGE };
                        ck_assert_uint_lt(seq, 3);
                        ck_assert_int_eq(e->type, order[seq++]);
                }
        }
        ck_assert_uint_eq(seq, 3);
        memset(page, 0x55, sizeof(page));
        ck_assert_uint_eq(model[5], fnv(page, sizeof(page)));
        memset(page, 0x77, sizeof(page));
        ck_assert_uint_eq(model[7], fnv(page, sizeof(page)));
        memset(page, 0x11, sizeof(page));
        ck_assert_uint_eq(model[1], fnv(page, sizeof(page)));
        ck_assert_uint_eq(model[0], 0);
        ck_assert_uint_eq(count_type(&r, QSTREAM_EV_SECTION), 4);
        run_free(&r);
        sb_free(&s);
}
END_TEST

/* The current block carries across sections: a CONTINUE record first in a
 * PART section refers to the block named in the previous one. */
START_TEST(test_hb_continue_across)
{
        struct sbuf s = { 0 };
        struct qemit_cursor c = { 0 };
        size_t rec_off;
        struct run r;

        hb_prologue(&s);
        hb_start(&s);
        hb_pass1(&s, &c);               /* ends in pc.bios */
        hb_part(&s);
        rec_off = s.len;
        hb_page(&s, &c, 1, 1, 0xcc);    /* CONTINUE: still pc.bios */
        hb_eos(&s);
        hb_part(&s);
        hb_zero(&s, &c, 1, 0);          /* CONTINUE again, in the next section */
        hb_eos(&s);
        hb_end(&s);
        hb_devices(&s);
        ck_assert_uint_eq(get_be64(s.p + rec_off), QEMU_TPS | RAM_SAVE_FLAG_PAGE | RAM_SAVE_FLAG_CONTINUE);

        run_stream(s.p, s.len, SIZE_MAX, &r);
        ck_assert_msg(r.err == 0, "%s", r.msg);
        ck_assert_int_eq(r.ev[r.n - 6].type, QSTREAM_EV_SECTION);
        ck_assert_int_eq(r.ev[r.n - 5].type, QSTREAM_EV_PAGE);
        ck_assert_uint_eq(r.ev[r.n - 5].a, 1);
        ck_assert_uint_eq(r.ev[r.n - 5].b, 1);
        ck_assert_int_eq(r.ev[r.n - 4].type, QSTREAM_EV_SECTION);
        ck_assert_int_eq(r.ev[r.n - 3].type, QSTREAM_EV_ZERO);
        ck_assert_uint_eq(r.ev[r.n - 3].a, 1);
        ck_assert_uint_eq(r.ev[r.n - 3].b, 0);
        run_free(&r);
        sb_free(&s);
}
END_TEST

/* Accepted extras: uuid and target-page-bits 12 subsections, commands
 * OPEN_RETURN_PATH, PING and SWITCHOVER_START, a non-zero ZERO fill, no
 * device sections at all. */
START_TEST(test_hb_extras)
{
        static const uint8_t uuid[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
        struct sbuf s = { 0 };
        struct qemit_cursor c = { 0 };
        size_t ram_end;
        struct run r;
        uint8_t page[QEMU_TPS];

        sb_be32(&s, QEMU_VM_FILE_MAGIC);
        sb_be32(&s, 3);
        sb_u8(&s, QEMU_VM_CONFIGURATION);
        sb_be32(&s, 3);
        sb_put(&s, "pc2", 3);
        sb_u8(&s, QEMU_VM_SUBSECTION);
        sb_counted(&s, QEMU_CFG_SUB_PAGEBITS);
        sb_be32(&s, 1);
        sb_be32(&s, 12);
        sb_u8(&s, QEMU_VM_SUBSECTION);
        sb_counted(&s, QEMU_CFG_SUB_UUID);
        sb_be32(&s, 1);
        sb_put(&s, uuid, 16);
        sb_u8(&s, QEMU_VM_COMMAND);
        sb_be16(&s, 1);
        sb_be16(&s, 0);
        sb_u8(&s, QEMU_VM_COMMAND);
        sb_be16(&s, 2);
        sb_be16(&s, 4);
        sb_be32(&s, 0xdeadbeef);
        hb_start(&s);
        hb_pass1(&s, &c);
        hb_part(&s);
        sb_be64(&s, 3 * QEMU_TPS | RAM_SAVE_FLAG_ZERO);
        sb_counted(&s, "pc.ram");
        sb_u8(&s, 0x5a);
        hb_eos(&s);
        sb_u8(&s, QEMU_VM_COMMAND);
        sb_be16(&s, 11);
        sb_be16(&s, 0);
        hb_end(&s);
        ram_end = s.len;
        vmdesc_put_prefix(sb_grow(&s, VMDESC_PREFIX_SIZE), strlen(hb_json));
        sb_put(&s, hb_json, strlen(hb_json));

        run_stream(s.p, s.len, 5, &r);
        ck_assert_msg(r.err == 0, "%s", r.msg);
        ck_assert_str_eq(r.cfg.machine, "pc2");
        ck_assert(r.cfg.has_uuid);
        ck_assert_mem_eq(r.cfg.uuid, uuid, 16);
        ck_assert_uint_eq(r.cfg.page_bits, 12);
        ck_assert_int_eq(r.ev[r.n - 3].type, QSTREAM_EV_PAGE);  /* fill 0x5a */
        ck_assert_uint_eq(r.ev[r.n - 3].b, 3);
        memset(page, 0x5a, sizeof(page));
        ck_assert_uint_eq(r.ev[r.n - 3].h, fnv(page, sizeof(page)));
        ck_assert_uint_eq(r.tail.len, s.len - ram_end);
        ck_assert_uint_eq(r.tail.p[0], QEMU_VM_EOF);
        run_free(&r);
        sb_free(&s);
}
END_TEST

/* Every prefix of a good stream: no RAM_DONE before the END footer,
 * finish() fails until the tail began, and the trailer is found only when
 * the stream is whole (or cut right after the EOF byte). */
START_TEST(test_hb_truncated_everywhere)
{
        struct sbuf s = { 0 };
        size_t ram_end;
        struct run r;

        hb_good(&s, &ram_end);
        for (size_t cut = 0; cut <= s.len; cut++) {
                struct vmdesc_loc loc;
                int k;

                run_stream(s.p, cut, SIZE_MAX, &r);
                CHECK(r.ram_done == (cut >= ram_end), "cut %zu", cut);
                if (cut <= ram_end) {
                        CHECK(r.err == -EPIPE, "cut %zu: %d", cut, r.err);
                        CHECK(strstr(r.msg, "stream ended") && strstr(r.msg, "stream offset"),
                              "cut %zu: %s", cut, r.msg);
                } else {
                        CHECK(r.err == 0, "cut %zu: %s", cut, r.msg);
                        k = vmdesc_find(r.tail.p, r.tail.len, &loc);
                        if (cut == s.len)
                                CHECK(k == 1, "whole stream: %d", k);
                        else if (cut == s.len - strlen(hb_json) - 5)
                                CHECK(k == 0, "cut after EOF: %d", k);
                        else
                                CHECK(k < 0 || loc.json_len == 0, "cut %zu", cut);
                }
                run_free(&r);
        }
        sb_free(&s);
}
END_TEST

/* Random corruption: never a crash or an out-of-bounds access (run under
 * valgrind / ASan), an error always comes with a message. */
START_TEST(test_hb_corrupted)
{
        struct sbuf s = { 0 };
        unsigned failed = 0;
        struct run r;

        hb_good(&s, NULL);
        rng_state = 42;
        for (int i = 0; i < 3000; i++) {
                uint8_t *m = malloc(s.len);
                size_t len = s.len;

                memcpy(m, s.p, s.len);
                for (int k = 1 + rng() % 4; k > 0; k--)
                        m[rng() % 400] ^= 1 << (rng() % 8);   /* mostly headers */
                if (rng() % 4 == 0)
                        len = rng() % s.len;
                run_stream(m, len, 1 + rng() % 64, &r);
                if (r.err < 0) {
                        failed++;
                        CHECK(strstr(r.msg, "stream offset"), "%s", r.msg);
                }
                run_free(&r);
                free(m);
        }
        ck_assert_uint_gt(failed, 1000);
        sb_free(&s);
}
END_TEST

/* ---- refusals -------------------------------------------------------------- */

static void cfg_caps(struct sbuf *s, const char *cap)
{
        sb_be32(s, QEMU_VM_FILE_MAGIC);
        sb_be32(s, 3);
        sb_u8(s, QEMU_VM_CONFIGURATION);
        sb_be32(s, 2);
        sb_put(s, "pc", 2);
        sb_u8(s, QEMU_VM_SUBSECTION);
        sb_counted(s, QEMU_CFG_SUB_CAPS);
        sb_be32(s, 1);
        sb_be32(s, 1);
        sb_counted(s, cap);
}

/* prologue + START + one named page record word of the given flags */
static void ram_word(struct sbuf *s, uint64_t word)
{
        struct qemit_cursor c = { 0 };

        hb_prologue(s);
        hb_start(s);
        hb_part(s);
        hb_page(s, &c, 0, 0, 1);
        sb_be64(s, word);
        sb_counted(s, "pc.ram");
        memset(sb_grow(s, 64), 0, 64);
}

static void command(struct sbuf *s, uint16_t cmd, uint16_t len)
{
        hb_prologue(s);
        sb_u8(s, QEMU_VM_COMMAND);
        sb_be16(s, cmd);
        sb_be16(s, len);
        memset(sb_grow(s, len), 0, len);
        hb_start(s);
}

static void start_named(struct sbuf *s, const char *idstr, uint32_t version)
{
        hb_prologue(s);
        sb_u8(s, QEMU_VM_SECTION_START);
        sb_be32(s, 9);
        sb_counted(s, idstr);
        sb_be32(s, 0);
        sb_be32(s, version);
        sb_be64(s, 0x1000 | RAM_SAVE_FLAG_MEM_SIZE);
}

/* START with a hand-written block list: names and lengths, total given */
static void blocklist(struct sbuf *s, uint64_t total, const char *const *names,
                      const uint64_t *lens, size_t n)
{
        hb_prologue(s);
        sb_u8(s, QEMU_VM_SECTION_START);
        sb_be32(s, RAM_ID);
        sb_counted(s, "ram");
        sb_be32(s, 0);
        sb_be32(s, 4);
        sb_be64(s, total | RAM_SAVE_FLAG_MEM_SIZE);
        for (size_t i = 0; i < n; i++) {
                sb_counted(s, names[i]);
                sb_be64(s, lens[i]);
        }
        sb_be64(s, RAM_SAVE_FLAG_EOS);
        sb_u8(s, QEMU_VM_SECTION_FOOTER);
        sb_be32(s, RAM_ID);
}

static void v_magic(struct sbuf *s) { sb_put(s, "QEVN\0\0\0\3", 8); }
static void v_version2(struct sbuf *s) { sb_put(s, "QEVM\0\0\0\2", 8); }
static void v_version4(struct sbuf *s) { sb_put(s, "QEVM\0\0\0\4\7", 9); }
static void v_noconfig(struct sbuf *s) { sb_put(s, "QEVM\0\0\0\3", 8); hb_start(s); }
static void v_cap_ignore_shared(struct sbuf *s) { cfg_caps(s, "x-ignore-shared"); }
static void v_cap_mapped_ram(struct sbuf *s) { cfg_caps(s, "mapped-ram"); }
static void v_cap_unknown(struct sbuf *s) { cfg_caps(s, "frobnicate"); }

static void v_caps_count(struct sbuf *s)
{
        cfg_caps(s, "x");
        put_be32(s->p + s->len - 6, SAVD_MAX_CAPS + 1);
}

static void v_machine_long(struct sbuf *s)
{
        sb_put(s, "QEVM\0\0\0\3\7", 9);
        sb_be32(s, SAVD_MACHINE_NAME_MAX + 1);
        memset(sb_grow(s, 300), 'a', 300);
}

static void v_machine_empty(struct sbuf *s)
{
        sb_put(s, "QEVM\0\0\0\3\7", 9);
        sb_be32(s, 0);
}

static void subsection(struct sbuf *s, const char *name, uint32_t version, uint32_t val)
{
        sb_put(s, "QEVM\0\0\0\3\7\0\0\0\2pc", 15);
        sb_u8(s, QEMU_VM_SUBSECTION);
        sb_counted(s, name);
        sb_be32(s, version);
        sb_be32(s, val);
}

static void v_page_bits(struct sbuf *s) { subsection(s, QEMU_CFG_SUB_PAGEBITS, 1, 16); }
static void v_sub_unknown(struct sbuf *s) { subsection(s, "configuration/frob", 1, 0); }
static void v_sub_version(struct sbuf *s) { subsection(s, QEMU_CFG_SUB_PAGEBITS, 2, 12); }
static void v_multifd_flush(struct sbuf *s) { ram_word(s, RAM_SAVE_FLAG_MULTIFD_FLUSH); }
static void v_compress(struct sbuf *s) { ram_word(s, RAM_SAVE_FLAG_COMPRESS_PAGE); }
static void v_xbzrle(struct sbuf *s) { ram_word(s, 0x1000 | RAM_SAVE_FLAG_XBZRLE); }
static void v_hook(struct sbuf *s) { ram_word(s, RAM_SAVE_FLAG_HOOK); }
static void v_flag_combo(struct sbuf *s) { ram_word(s, RAM_SAVE_FLAG_ZERO | RAM_SAVE_FLAG_PAGE); }
static void v_flag_full(struct sbuf *s) { ram_word(s, RAM_SAVE_FLAG_FULL); }
static void v_flag_unknown(struct sbuf *s) { ram_word(s, 0x400); }
static void v_eos_continue(struct sbuf *s) { ram_word(s, RAM_SAVE_FLAG_EOS | RAM_SAVE_FLAG_CONTINUE); }
static void v_mem_size_part(struct sbuf *s) { ram_word(s, 0x1000 | RAM_SAVE_FLAG_MEM_SIZE); }
static void v_offset_beyond(struct sbuf *s) { ram_word(s, 16 * QEMU_TPS | RAM_SAVE_FLAG_PAGE); }
static void v_unknown_block(struct sbuf *s)
{
        ram_word(s, RAM_SAVE_FLAG_ZERO);
        s->p[s->len - 64 - 6] = 'P';          /* "Pc.ram" */
}
static void v_empty_rec_name(struct sbuf *s)
{
        ram_word(s, RAM_SAVE_FLAG_ZERO);
        s->p[s->len - 64 - 7] = 0;
}

static void v_no_pages(struct sbuf *s)     /* what a 7.2 multifd source sends */
{
        hb_prologue(s);
        hb_start(s);
        hb_part(s);
        hb_eos(s);
        hb_end(s);
        hb_devices(s);
}

static void v_postcopy_advise(struct sbuf *s) { command(s, 3, 16); }
static void v_postcopy_listen(struct sbuf *s) { command(s, 4, 0); }
static void v_postcopy_run(struct sbuf *s) { command(s, 5, 0); }
static void v_postcopy_discard(struct sbuf *s) { command(s, 6, 8); }
static void v_packaged(struct sbuf *s) { command(s, 7, 4); }
static void v_colo(struct sbuf *s) { command(s, 8, 0); }
static void v_resume(struct sbuf *s) { command(s, 9, 0); }
static void v_cmd_zero(struct sbuf *s) { command(s, 0, 0); }
static void v_cmd_unknown(struct sbuf *s) { command(s, 12, 0); }
static void v_cmd_len(struct sbuf *s) { command(s, 2, 3); }
static void v_cmd_len2(struct sbuf *s) { command(s, 1, 1); }
static void v_block_mig(struct sbuf *s) { start_named(s, "block", 1); }
static void v_dirty_bitmap(struct sbuf *s) { start_named(s, "dirty-bitmap", 1); }
static void v_vfio(struct sbuf *s) { start_named(s, "0000:00:02.0/vfio", 1); }
static void v_other_iter(struct sbuf *s) { start_named(s, "frob", 1); }
static void v_ram_version(struct sbuf *s) { start_named(s, "ram", 3); }

static void v_ram_instance(struct sbuf *s)
{
        start_named(s, "ram", 4);
        put_be32(s->p + s->len - 16, 1);
}

static void v_part_unknown(struct sbuf *s)
{
        hb_prologue(s);
        hb_start(s);
        sb_u8(s, QEMU_VM_SECTION_PART);
        sb_be32(s, RAM_ID + 1);
}

static void v_end_unknown(struct sbuf *s)
{
        hb_prologue(s);
        hb_start(s);
        sb_u8(s, QEMU_VM_SECTION_END);
        sb_be32(s, 0);
}

static void v_part_before_start(struct sbuf *s)
{
        hb_prologue(s);
        hb_part(s);
}

static void v_after_end(struct sbuf *s)
{
        struct qemit_cursor c = { 0 };

        hb_prologue(s);
        hb_start(s);
        hb_pass1(s, &c);
        hb_end(s);
        hb_part(s);
}

static void v_second_start(struct sbuf *s)
{
        hb_prologue(s);
        hb_start(s);
        hb_start(s);
}

static void v_section_type(struct sbuf *s)
{
        hb_prologue(s);
        sb_u8(s, 0x09);
}

static void v_subsection_top(struct sbuf *s)
{
        hb_prologue(s);
        hb_start(s);
        sb_u8(s, QEMU_VM_SUBSECTION);
}

static void v_footer_missing(struct sbuf *s)
{
        hb_prologue(s);
        hb_start(s);
        s->p[s->len - 5] = 0x7f;
}

static void v_footer_mismatch(struct sbuf *s)
{
        hb_prologue(s);
        hb_start(s);
        put_be32(s->p + s->len - 4, RAM_ID + 1);
}

static void v_continue_first(struct sbuf *s)
{
        hb_prologue(s);
        hb_start(s);
        hb_part(s);
        sb_be64(s, RAM_SAVE_FLAG_ZERO | RAM_SAVE_FLAG_CONTINUE);
        sb_u8(s, 0);
}

static void v_page_before_blocks(struct sbuf *s)
{
        hb_prologue(s);
        sb_put(s, "\1\0\0\0\3\3ram\0\0\0\0\0\0\0\4", 17);
        sb_be64(s, RAM_SAVE_FLAG_ZERO);
}

static void v_eos_before_blocks(struct sbuf *s)
{
        hb_prologue(s);
        sb_put(s, "\1\0\0\0\3\3ram\0\0\0\0\0\0\0\4", 17);
        sb_be64(s, RAM_SAVE_FLAG_EOS);
}

static void v_mem_size_zero(struct sbuf *s)
{
        blocklist(s, 0, NULL, NULL, 0);
}

static void v_sum_exceeds(struct sbuf *s)
{
        static const char *const n[] = { "a", "b" };
        static const uint64_t l[] = { 0x2000, 0x2000 };

        blocklist(s, 0x3000, n, l, 2);
}

static void v_sum_short(struct sbuf *s)
{
        static const char *const n[] = { "a", "b" };
        static const uint64_t l[] = { 0x2000, 0x2000 };

        blocklist(s, 0x5000, n, l, 2);   /* EOS word read as a block name */
}

static void v_block_unaligned(struct sbuf *s)
{
        static const char *const n[] = { "a" };
        static const uint64_t l[] = { 0x1800 };

        blocklist(s, 0x2000, n, l, 1);
}

static void v_block_empty_len(struct sbuf *s)
{
        static const char *const n[] = { "a", "b" };
        static const uint64_t l[] = { 0, 0x1000 };

        blocklist(s, 0x1000, n, l, 2);
}

static void v_block_noname(struct sbuf *s)
{
        static const char *const n[] = { "" };
        static const uint64_t l[] = { 0x1000 };

        blocklist(s, 0x1000, n, l, 1);
}

static void v_block_dup(struct sbuf *s)
{
        static const char *const n[] = { "a", "a" };
        static const uint64_t l[] = { 0x1000, 0x1000 };

        blocklist(s, 0x2000, n, l, 2);
}

static void v_block_huge(struct sbuf *s)
{
        static const char *const n[] = { "a" };
        static const uint64_t l[] = { 2 * SAVD_MAX_BLOCK_SIZE };

        blocklist(s, 2 * SAVD_MAX_BLOCK_SIZE, n, l, 1);
}

static void v_too_many_blocks(struct sbuf *s)
{
        const size_t n = SAVD_MAX_BLOCKS + 1;
        const char **names = calloc(n, sizeof(char *));
        uint64_t *lens = calloc(n, sizeof(uint64_t));
        char (*buf)[8] = calloc(n, 8);

        for (size_t i = 0; i < n; i++) {
                snprintf(buf[i], 8, "b%zu", i);
                names[i] = buf[i];
                lens[i] = QEMU_TPS;
        }
        blocklist(s, n * QEMU_TPS, names, lens, n);
        free(names);
        free(lens);
        free(buf);
}

static void v_eof_early(struct sbuf *s)
{
        hb_prologue(s);
        hb_start(s);
        sb_u8(s, QEMU_VM_EOF);
}

static void v_eof_no_ram(struct sbuf *s)
{
        hb_prologue(s);
        sb_u8(s, QEMU_VM_EOF);
}

static void v_full_early(struct sbuf *s)
{
        hb_prologue(s);
        hb_start(s);
        sb_u8(s, QEMU_VM_SECTION_FULL);
        sb_be32(s, 5);
        sb_counted(s, "virtio-mem");
        sb_be32(s, 0);
        sb_be32(s, 1);
}

static void v_empty_idstr(struct sbuf *s)
{
        hb_prologue(s);
        sb_put(s, "\1\0\0\0\3\0", 6);
}

static const struct refusal {
        const char *name;
        void (*build)(struct sbuf *s);
        int err;
        const char *text;
} refusals[] = {
        { "bad magic", v_magic, -EBADMSG, "not a QEMU migration stream" },
        { "version 2", v_version2, -EPROTONOSUPPORT, "obsolete" },
        { "version 4", v_version4, -EPROTONOSUPPORT, "unsupported QEMU stream version 4" },
        { "no configuration", v_noconfig, -EBADMSG, "configuration record missing" },
        { "machine name too long", v_machine_long, -E2BIG, "machine type name" },
        { "machine name empty", v_machine_empty, -EBADMSG, "empty machine type name" },
        { "x-ignore-shared", v_cap_ignore_shared, -EOPNOTSUPP, "disable x-ignore-shared" },
        { "mapped-ram", v_cap_mapped_ram, -EOPNOTSUPP, "disable mapped-ram" },
        { "unknown capability", v_cap_unknown, -EOPNOTSUPP, "unknown capability 'frobnicate'" },
        { "too many capabilities", v_caps_count, -E2BIG, "capabilities listed" },
        { "target page bits", v_page_bits, -EOPNOTSUPP, "target page size 2^16" },
        { "unknown subsection", v_sub_unknown, -EBADMSG, "subsection 'configuration/frob'" },
        { "subsection version", v_sub_version, -EBADMSG, "has version 2" },
        { "multifd flush", v_multifd_flush, -EOPNOTSUPP, "disable capability multifd" },
        { "no page records", v_no_pages, -EOPNOTSUPP, "disable multifd" },
        { "compress", v_compress, -EOPNOTSUPP, "disable capability compress" },
        { "xbzrle", v_xbzrle, -EOPNOTSUPP, "disable capability xbzrle" },
        { "rdma hook", v_hook, -EOPNOTSUPP, "RDMA" },
        { "zero|page", v_flag_combo, -EBADMSG, "unknown combination of RAM flags 0x00a" },
        { "obsolete full flag", v_flag_full, -EBADMSG, "unknown combination of RAM flags 0x001" },
        { "flag 0x400", v_flag_unknown, -EBADMSG, "unknown combination of RAM flags 0x400" },
        { "eos|continue", v_eos_continue, -EBADMSG, "unknown combination of RAM flags 0x030" },
        { "block list in PART", v_mem_size_part, -EBADMSG, "outside the START section" },
        { "page offset beyond block", v_offset_beyond, -EBADMSG, "beyond block 'pc.ram'" },
        { "unknown block", v_unknown_block, -EBADMSG, "unknown RAM block 'Pc.ram'" },
        { "record names empty block", v_empty_rec_name, -EBADMSG, "empty name" },
        { "postcopy advise", v_postcopy_advise, -EOPNOTSUPP, "disable postcopy-ram" },
        { "postcopy listen", v_postcopy_listen, -EOPNOTSUPP, "POSTCOPY_LISTEN" },
        { "postcopy run", v_postcopy_run, -EOPNOTSUPP, "POSTCOPY_RUN" },
        { "postcopy discard", v_postcopy_discard, -EOPNOTSUPP, "disable postcopy-ram" },
        { "packaged", v_packaged, -EOPNOTSUPP, "PACKAGED" },
        { "postcopy resume", v_resume, -EOPNOTSUPP, "disable postcopy-ram" },
        { "colo", v_colo, -EOPNOTSUPP, "disable x-colo" },
        { "command 0", v_cmd_zero, -EBADMSG, "unknown command 0x0000" },
        { "command 12", v_cmd_unknown, -EBADMSG, "unknown command 0x000c" },
        { "ping length", v_cmd_len, -EBADMSG, "has length 3, expected 4" },
        { "return path length", v_cmd_len2, -EBADMSG, "has length 1, expected 0" },
        { "block migration", v_block_mig, -EOPNOTSUPP, "disable block migration" },
        { "dirty bitmaps", v_dirty_bitmap, -EOPNOTSUPP, "disable capability dirty-bitmaps" },
        { "vfio", v_vfio, -EOPNOTSUPP, "VFIO" },
        { "other iterative", v_other_iter, -EOPNOTSUPP, "iterative section 'frob'" },
        { "ram version", v_ram_version, -EOPNOTSUPP, "RAM section version 3" },
        { "ram instance", v_ram_instance, -EBADMSG, "instance 1" },
        { "PART unknown id", v_part_unknown, -EBADMSG, "PART section for unknown section id 4" },
        { "END unknown id", v_end_unknown, -EBADMSG, "END section for unknown section id 0" },
        { "PART before START", v_part_before_start, -EBADMSG, "unknown section id 3" },
        { "PART after END", v_after_end, -EBADMSG, "after its END" },
        { "second START", v_second_start, -EBADMSG, "second START" },
        { "section type 9", v_section_type, -EBADMSG, "unknown section type 0x09" },
        { "subsection at top level", v_subsection_top, -EBADMSG, "unknown section type 0x05" },
        { "footer missing", v_footer_missing, -EBADMSG, "footer missing" },
        { "footer mismatch", v_footer_mismatch, -EBADMSG, "footer names section 4" },
        { "CONTINUE without block", v_continue_first, -EBADMSG, "no current block" },
        { "page before block list", v_page_before_blocks, -EBADMSG, "before the RAM block list" },
        { "EOS before block list", v_eos_before_blocks, -EBADMSG, "before its block list" },
        { "total 0", v_mem_size_zero, -EBADMSG, "total size of 0" },
        { "sum exceeds total", v_sum_exceeds, -EBADMSG, "exceed the total" },
        { "sum short of total", v_sum_short, -EBADMSG, "empty name" },
        { "unaligned block", v_block_unaligned, -EBADMSG, "not a positive multiple" },
        { "zero-length block", v_block_empty_len, -EBADMSG, "not a positive multiple" },
        { "empty block name", v_block_noname, -EBADMSG, "empty name" },
        { "duplicate block", v_block_dup, -EBADMSG, "listed twice" },
        { "block too large", v_block_huge, -E2BIG, "exceeds the limit" },
        { "too many blocks", v_too_many_blocks, -E2BIG, "more than 1024 RAM blocks" },
        { "EOF before END", v_eof_early, -EBADMSG, "EOF marker before" },
        { "EOF without RAM", v_eof_no_ram, -EBADMSG, "without a RAM section" },
        { "device before RAM end", v_full_early, -EOPNOTSUPP, "device section 'virtio-mem'" },
        { "empty idstr", v_empty_idstr, -EBADMSG, "empty idstr" },
};

START_TEST(test_refusal)
{
        const struct refusal *t = &refusals[_i];
        struct sbuf s = { 0 };
        struct run r;

        t->build(&s);
        for (int pass = 0; pass < 2; pass++) {
                run_stream(s.p, s.len, pass ? 1 : SIZE_MAX, &r);
                ck_assert_msg(r.err == t->err, "%s: got %d (%s), want %d", t->name, r.err,
                              r.msg, t->err);
                ck_assert_msg(strstr(r.msg, t->text), "%s: message '%s' lacks '%s'",
                              t->name, r.msg, t->text);
                ck_assert_msg(strstr(r.msg, "stream offset"), "%s: %s", t->name, r.msg);
                if (t->build != v_after_end)
                        ck_assert(!r.ram_done);
                run_free(&r);
        }
        sb_free(&s);
}
END_TEST

/* The error is sticky and qstream_finish() repeats it. */
START_TEST(test_sticky_error)
{
        struct qstream *p = qstream_new();
        struct qstream_event ev;
        size_t used;

        ck_assert_int_eq(qstream_feed(p, (const uint8_t *)"QEVN0000", 8, &used, &ev), -EBADMSG);
        ck_assert_int_eq(qstream_feed(p, (const uint8_t *)"QEVM", 4, &used, &ev), -EBADMSG);
        ck_assert_uint_eq(used, 0);
        ck_assert_int_eq(qstream_finish(p), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(qstream_error(p), "bad magic"));
        qstream_free(p);

        p = qstream_new();
        ck_assert_int_eq(qstream_feed(p, (const uint8_t *)"QEVM", 4, &used, &ev), 0);
        ck_assert_uint_eq(used, 4);
        ck_assert_int_eq(qstream_finish(p), -EPIPE);
        ck_assert_ptr_nonnull(strstr(qstream_error(p), "the stream header"));
        qstream_free(p);
}
END_TEST

static Suite *suite(bool with_data)
{
        Suite *s = suite_create("qemu-stream");
        TCase *tc = tcase_create("hand-built");

        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_hb_good);
        tcase_add_test(tc, test_hb_multipass);
        tcase_add_test(tc, test_hb_continue_across);
        tcase_add_test(tc, test_hb_extras);
        tcase_add_test(tc, test_hb_truncated_everywhere);
        tcase_add_test(tc, test_hb_corrupted);
        tcase_add_loop_test(tc, test_refusal, 0, ELEMENTSOF(refusals));
        tcase_add_test(tc, test_sticky_error);
        suite_add_tcase(s, tc);
        if (with_data) {
                tc = tcase_create("qemu-7.2");
                tcase_set_timeout(tc, 300);
                tcase_add_loop_test(tc, test_q72_chunkings, 0, ELEMENTSOF(chunkings));
                tcase_add_test(tc, test_q72_content);
                tcase_add_test(tc, test_q72_trailer);
                tcase_add_test(tc, test_q72_truncated);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void)
{
        bool with_data = testdata_usable(NULL, "QEMU 7.2 stream cases not run");

        return test_run_suite(suite(with_data), with_data);
}
