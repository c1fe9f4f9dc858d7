/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the legacy stream encoders (proto/qemu-emit.c) and of the
 * vmdesc trailer code (proto/vmdesc.c).
 *
 * Real data: re-encoding the QEMU 7.2 stream from the parser's events
 * (header, configuration, START block list, PART, page and zero records
 * with CONTINUE, END) plus its device tail must give the file back byte
 * for byte; rewriting its vmdesc for savd's configuration record must give
 * exactly the "configuration" object QEMU 10.2 wrote into its own
 * mapped-ram file of the same guest, with "devices" unchanged.
 * Hand-built cases pin the bytes from the format notes (§5 observed
 * subsections, §14 block list) and the encoders' limits.
 *
 * Without $SAVD_TESTDATA the hand-built cases still run and the binary
 * exits 77 (skipped).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
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

/* ---- re-encoding the QEMU 7.2 stream -------------------------------------- */

struct reenc {
        struct sbuf out;
        struct qemit_block blocks[8];
        char names[8][SAVD_NAME_MAX + 1];
        size_t n_blocks;
        struct qemit_cursor cur;
        uint32_t id;
        uint8_t sec_type;
        size_t sec_records;
};

/* Append what an encoder writes (asked for its size first). */
#define APPEND(e, fn, ...) do {                                                 \
                ssize_t _n = fn(__VA_ARGS__, NULL, 0);                          \
                CHECK(_n > 0, #fn ": %zd", _n);                                 \
                CHECK(fn(__VA_ARGS__, sb_grow(&(e)->out, _n), _n) == _n,        \
                      #fn " size");                                             \
        } while (0)

static void append_header(struct reenc *e)
{
        uint8_t *d = sb_grow(&e->out, QEMIT_HEADER_SIZE);

        CHECK(qemit_header(d, QEMIT_HEADER_SIZE) == QEMIT_HEADER_SIZE, "header");
}

static void close_section(struct reenc *e)
{
        if (e->sec_type == QEMU_VM_SECTION_PART)
                APPEND(e, qemit_section_tail, e->id);
}

static void reencode_event(struct reenc *e, const struct qstream_event *ev)
{
        const struct qstream_config *c;

        switch (ev->type) {
        case QSTREAM_EV_CONFIG:
                c = ev->config;
                append_header(e);
                APPEND(e, qemit_config, &(struct qemit_config){
                        .machine = c->machine, .machine_len = c->machine_len,
                        .uuid = c->has_uuid ? c->uuid : NULL });
                break;
        case QSTREAM_EV_BLOCK:
                ck_assert_uint_lt(e->n_blocks, 8);
                strcpy(e->names[e->n_blocks], ev->block.block->name);
                e->blocks[e->n_blocks] = (struct qemit_block){
                        e->names[e->n_blocks], ev->block.block->name_len,
                        ev->block.block->used_length };
                e->n_blocks++;
                break;
        case QSTREAM_EV_BLOCKS_DONE:
                APPEND(e, qemit_ram_start, e->id, e->blocks, e->n_blocks);
                break;
        case QSTREAM_EV_SECTION:
                close_section(e);
                e->id = ev->section.id;
                e->sec_type = ev->section.type;
                e->sec_records = 0;
                if (ev->section.type == QEMU_VM_SECTION_PART)
                        APPEND(e, qemit_part_header, e->id);
                break;
        case QSTREAM_EV_PAGE:
                APPEND(e, qemit_page_header, &e->cur, e->blocks, e->n_blocks,
                       ev->page.block, ev->page.page);
                memcpy(sb_grow(&e->out, QEMU_TPS), ev->page.data, QEMU_TPS);
                e->sec_records++;
                break;
        case QSTREAM_EV_ZERO:
                APPEND(e, qemit_zero_page, &e->cur, e->blocks, e->n_blocks,
                       ev->zero.block, ev->zero.page);
                e->sec_records++;
                break;
        case QSTREAM_EV_RAM_DONE:
                /* the END section of a paused guest carries no records */
                CHECK(e->sec_type == QEMU_VM_SECTION_END && e->sec_records == 0, "END records");
                APPEND(e, qemit_ram_end, e->id);
                break;
        case QSTREAM_EV_DEVICE_TAIL:
                memcpy(sb_grow(&e->out, ev->tail.len), ev->tail.data, ev->tail.len);
                break;
        }
}

START_TEST(test_q72_reencode)
{
        struct qstream *p = qstream_new();
        struct reenc e = { 0 };
        size_t len = 0;
        uint8_t *s = testdata_read("q72-legacy.stream", 0, &len);

        for (size_t pos = 0; pos < len;) {
                struct qstream_event ev;
                size_t used;
                int k = qstream_feed(p, s + pos, MIN(len - pos, 100000), &used, &ev);

                CHECK(k >= 0, "%s", qstream_error(p));
                pos += used;
                if (k > 0)
                        reencode_event(&e, &ev);
        }
        ck_assert_int_eq(qstream_finish(p), 0);
        ck_assert_uint_eq(e.n_blocks, 6);
        /* header and configuration, START, first PART record, then the whole */
        ck_assert_mem_eq(e.out.p, s, 0x17);                       /* header, configuration */
        ck_assert_mem_eq(e.out.p + 0x17, s + 0x17, 0xbd - 0x17); /* START with the block list */
        ck_assert_mem_eq(e.out.p + 0xbd, s + 0xbd, 5 + 8 + 1 + 2); /* PART, first named record */
        ck_assert_uint_eq(e.out.len, len);
        ck_assert_mem_eq(e.out.p, s, len);
        sb_free(&e.out);
        free(s);
        qstream_free(p);
}
END_TEST

/* ---- hand-built encoder cases ---------------------------------------------- */

START_TEST(test_header)
{
        uint8_t b[8];

        ck_assert_int_eq(qemit_header(NULL, 0), 8);
        ck_assert_int_eq(qemit_header(b, 7), -ENOBUFS);
        ck_assert_int_eq(qemit_header(b, 8), 8);
        ck_assert_mem_eq(b, "QEVM\0\0\0\3", 8);
}
END_TEST

/* Format notes §5: the bytes QEMU 7.2 wrote with x-ignore-shared and
 * validate-uuid on.  mapped-ram is dropped from the list. */
START_TEST(test_config_subsections)
{
        static const uint8_t uuid[16] = { 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
        static const char *const caps[] = { "mapped-ram", "x-ignore-shared" };
        static const uint8_t want[] =
                "\x07\0\0\0\x0dpc-i440fx-7.2"
                "\x05\x1a" "configuration/capabilities" "\0\0\0\x01" "\0\0\0\x01"
                "\x0f" "x-ignore-shared"
                "\x05\x12" "configuration/uuid" "\0\0\0\x01"
                "\xde\xad\xbe\xef\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c";
        struct qemit_config c = { "pc-i440fx-7.2", 13, caps, 2, uuid };
        uint8_t b[256];
        ssize_t n = qemit_config(&c, NULL, 0);

        ck_assert_int_eq(n, sizeof(want) - 1);
        ck_assert_int_eq(qemit_config(&c, b, n - 1), -ENOBUFS);
        ck_assert_int_eq(qemit_config(&c, b, sizeof(b)), n);
        ck_assert_mem_eq(b, want, n);

        /* only mapped-ram, no uuid: no subsection at all */
        c.n_caps = 1;
        c.uuid = NULL;
        ck_assert_int_eq(qemit_config(&c, b, sizeof(b)), 1 + 4 + 13);
        ck_assert_mem_eq(b, want, 1 + 4 + 13);
}
END_TEST

START_TEST(test_config_invalid)
{
        static const char *const empty[] = { "" };
        char longname[SAVD_MACHINE_NAME_MAX + 2];
        struct qemit_config c = { "pc", 0 };
        uint8_t b[512];

        ck_assert_int_eq(qemit_config(&c, b, sizeof(b)), -EINVAL);
        memset(longname, 'a', sizeof(longname));
        c = (struct qemit_config){ longname, SAVD_MACHINE_NAME_MAX + 1 };
        ck_assert_int_eq(qemit_config(&c, NULL, 0), -EINVAL);
        c.machine_len = SAVD_MACHINE_NAME_MAX;
        ck_assert_int_eq(qemit_config(&c, b, sizeof(b)), 5 + SAVD_MACHINE_NAME_MAX);
        c.caps = empty;
        c.n_caps = 1;
        ck_assert_int_eq(qemit_config(&c, b, sizeof(b)), -EINVAL);
        c.n_caps = SAVD_MAX_CAPS + 1;
        ck_assert_int_eq(qemit_config(&c, b, sizeof(b)), -EINVAL);
}
END_TEST

/* Format notes §14 without the MappedRamHeaders: pc.ram 2 MiB, pc.bios
 * 256 KiB, section id 2. */
START_TEST(test_ram_start)
{
        static const struct qemit_block blocks[] = {
                { "pc.ram", 6, 0x200000 }, { "pc.bios", 7, 0x40000 },
        };
        static const uint8_t want[] =
                "\x01\0\0\0\x02\x03ram\0\0\0\0\0\0\0\x04"
                "\0\0\0\0\0\x24\0\x04"
                "\x06pc.ram\0\0\0\0\0\x20\0\0"
                "\x07pc.bios\0\0\0\0\0\x04\0\0"
                "\0\0\0\0\0\0\0\x10"
                "\x7e\0\0\0\x02";
        struct qemit_block bad = { "x", 1, 0x1800 };
        uint8_t b[256];
        ssize_t n = qemit_ram_start(2, blocks, 2, NULL, 0);

        ck_assert_int_eq(n, sizeof(want) - 1);
        ck_assert_int_eq(qemit_ram_start(2, blocks, 2, b, n - 1), -ENOBUFS);
        ck_assert_int_eq(qemit_ram_start(2, blocks, 2, b, sizeof(b)), n);
        ck_assert_mem_eq(b, want, n);
        ck_assert_int_eq(qemit_ram_start(2, blocks, 0, b, sizeof(b)), -EINVAL);
        ck_assert_int_eq(qemit_ram_start(2, &bad, 1, b, sizeof(b)), -EINVAL);
        bad.used_length = 0;
        ck_assert_int_eq(qemit_ram_start(2, &bad, 1, b, sizeof(b)), -EINVAL);
        bad = (struct qemit_block){ "x", 0, 0x1000 };
        ck_assert_int_eq(qemit_ram_start(2, &bad, 1, b, sizeof(b)), -EINVAL);
        bad = (struct qemit_block){ "x", 1, 2 * SAVD_MAX_BLOCK_SIZE };
        ck_assert_int_eq(qemit_ram_start(2, &bad, 1, b, sizeof(b)), -EINVAL);
}
END_TEST

/* Named for the first record of a block, CONTINUE while it stays the
 * same, named again on every change; a size query leaves the cursor. */
START_TEST(test_page_headers)
{
        static const struct qemit_block blocks[] = {
                { "pc.ram", 6, 0x200000 }, { "pc.bios", 7, 0x40000 },
        };
        struct qemit_cursor cur = { 0 };
        uint8_t b[QEMIT_PAGE_HEADER_MAX + 1];

        ck_assert_int_eq(qemit_page_header(&cur, blocks, 2, 0, 3, NULL, 0), 15);
        ck_assert(!cur.valid);
        ck_assert_int_eq(qemit_page_header(&cur, blocks, 2, 0, 3, b, 14), -ENOBUFS);
        ck_assert(!cur.valid);
        ck_assert_int_eq(qemit_page_header(&cur, blocks, 2, 0, 3, b, sizeof(b)), 15);
        ck_assert_mem_eq(b, "\0\0\0\0\0\0\x30\x08\x06pc.ram", 15);
        ck_assert_int_eq(qemit_page_header(&cur, blocks, 2, 0, 4, b, sizeof(b)), 8);
        ck_assert_mem_eq(b, "\0\0\0\0\0\0\x40\x28", 8);
        ck_assert_int_eq(qemit_zero_page(&cur, blocks, 2, 0, 511, b, sizeof(b)), 9);
        ck_assert_mem_eq(b, "\0\0\0\0\0\x1f\xf0\x22\0", 9);
        ck_assert_int_eq(qemit_zero_page(&cur, blocks, 2, 1, 0, b, sizeof(b)), 17);
        ck_assert_mem_eq(b, "\0\0\0\0\0\0\0\x02\x07pc.bios\0", 17);
        ck_assert_int_eq(qemit_page_header(&cur, blocks, 2, 0, 0, b, sizeof(b)), 15);
        ck_assert_mem_eq(b, "\0\0\0\0\0\0\0\x08\x06pc.ram", 15);

        ck_assert_int_eq(qemit_page_header(&cur, blocks, 2, 0, 512, b, sizeof(b)), -EINVAL);
        ck_assert_int_eq(qemit_page_header(&cur, blocks, 2, 2, 0, b, sizeof(b)), -EINVAL);
        ck_assert_int_eq(qemit_zero_page(NULL, blocks, 2, 0, 0, b, sizeof(b)), -EINVAL);
}
END_TEST

START_TEST(test_section_pieces)
{
        uint8_t b[32];

        ck_assert_int_eq(qemit_part_header(7, b, sizeof(b)), 5);
        ck_assert_mem_eq(b, "\x02\0\0\0\x07", 5);
        ck_assert_int_eq(qemit_section_tail(7, b, sizeof(b)), 13);
        ck_assert_mem_eq(b, "\0\0\0\0\0\0\0\x10\x7e\0\0\0\x07", 13);
        ck_assert_int_eq(qemit_ram_end(7, b, sizeof(b)), QEMIT_RAM_END_SIZE);
        ck_assert_mem_eq(b, "\x03\0\0\0\x07\0\0\0\0\0\0\0\x10\x7e\0\0\0\x07", 18);
        ck_assert_int_eq(qemit_ram_end(7, b, 17), -ENOBUFS);
        ck_assert_int_eq(qemit_part_header(7, b, 4), -ENOBUFS);
        ck_assert_int_eq(qemit_section_tail(7, b, 12), -ENOBUFS);
}
END_TEST

/* What the encoders write, the parser reads back. */
START_TEST(test_emit_parse)
{
        static const uint8_t uuid[16] = { 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6 };
        static const char *const caps[] = { "mapped-ram" };
        static const struct qemit_block blocks[] = { { "a", 1, 0x3000 }, { "bb", 2, 0x1000 } };
        const struct qemit_config c = { "pc-q35-9.2", 10, caps, 1, uuid };
        struct qemit_cursor cur = { 0 };
        struct reenc e = { 0 };
        int types[32], n = 0, pages = 0;
        struct qstream *p = qstream_new();
        size_t pos = 0;

        append_header(&e);
        APPEND(&e, qemit_config, &c);
        APPEND(&e, qemit_ram_start, 5, blocks, 2);
        APPEND(&e, qemit_part_header, 5);
        for (uint64_t pg = 0; pg < 3; pg++) {
                APPEND(&e, qemit_page_header, &cur, blocks, 2, 0, pg);
                memset(sb_grow(&e.out, QEMU_TPS), 0xa0 + pg, QEMU_TPS);
        }
        APPEND(&e, qemit_zero_page, &cur, blocks, 2, 1, 0);
        APPEND(&e, qemit_section_tail, 5);
        APPEND(&e, qemit_ram_end, 5);
        vmdesc_put_prefix(sb_grow(&e.out, VMDESC_PREFIX_SIZE), 2);
        memcpy(sb_grow(&e.out, 2), "{}", 2);

        while (pos < e.out.len) {
                struct qstream_event ev;
                size_t used;
                int k = qstream_feed(p, e.out.p + pos, e.out.len - pos, &used, &ev);

                ck_assert_msg(k >= 0, "%s", qstream_error(p));
                pos += used;
                if (k == 0)
                        continue;
                ck_assert_int_lt(n, 32);
                types[n++] = ev.type;
                if (ev.type == QSTREAM_EV_CONFIG) {
                        ck_assert_str_eq(ev.config->machine, "pc-q35-9.2");
                        ck_assert(ev.config->has_uuid);
                        ck_assert_mem_eq(ev.config->uuid, uuid, 16);
                }
                if (ev.type == QSTREAM_EV_PAGE) {
                        ck_assert_uint_eq(ev.page.block, 0);
                        ck_assert_uint_eq(ev.page.page, pages);
                        ck_assert_uint_eq(ev.page.data[QEMU_TPS - 1], 0xa0 + pages);
                        pages++;
                }
        }
        ck_assert_int_eq(qstream_finish(p), 0);
        ck_assert_int_eq(n, 13);
        ck_assert_int_eq(types[4], QSTREAM_EV_BLOCKS_DONE);
        ck_assert_int_eq(types[8], QSTREAM_EV_PAGE);
        ck_assert_int_eq(types[9], QSTREAM_EV_ZERO);
        ck_assert_int_eq(types[11], QSTREAM_EV_RAM_DONE);
        ck_assert_int_eq(types[12], QSTREAM_EV_DEVICE_TAIL);
        ck_assert_int_eq(pages, 3);
        qstream_free(p);
        sb_free(&e.out);
}
END_TEST

/* ---- vmdesc ----------------------------------------------------------------- */

static struct json_object *parse(const char *s, size_t n)
{
        struct json_tokener *tok = json_tokener_new();
        struct json_object *o = json_tokener_parse_ex(tok, s, n);

        ck_assert_msg(o && json_tokener_get_parse_end(tok) == n, "bad JSON");
        json_tokener_free(tok);
        return o;
}

/* The vmdesc JSON at the end of a file (its last `window` bytes). */
static struct json_object *file_vmdesc(const char *name, char **raw, size_t *raw_len)
{
        size_t len = SAVD_MAX_VMDESC + VMDESC_PREFIX_SIZE;
        struct vmdesc_loc loc;
        uint8_t *d = testdata_read(name, -(off_t)len, &len);
        struct json_object *o;

        ck_assert_int_eq(vmdesc_find(d, len, &loc), 1);
        o = parse((const char *)d + loc.json_offset, loc.json_len);
        if (raw) {
                *raw = malloc(loc.json_len);
                memcpy(*raw, d + loc.json_offset, loc.json_len);
                *raw_len = loc.json_len;
        }
        free(d);
        return o;
}

static struct json_object *get(struct json_object *o, const char *key)
{
        struct json_object *v = NULL;

        ck_assert_msg(json_object_object_get_ex(o, key, &v), "no key %s", key);
        return v;
}

START_TEST(test_vmdesc_q72_as_q10)
{
        static const char *const caps[] = { MAPPED_RAM_CAP };
        const struct vmdesc_config cfg = { .machine_len = 10, .caps = caps, .n_caps = 1 };
        struct json_object *q72, *q10, *out;
        char *raw, *res;
        size_t raw_len, res_len;

        q72 = file_vmdesc("q72-legacy.stream", &raw, &raw_len);
        q10 = file_vmdesc("q10-mapped-ram.mrm", NULL, NULL);
        ck_assert(!json_object_object_get_ex(q72, "configuration", NULL));

        ck_assert_int_eq(vmdesc_rewrite(raw, raw_len, &cfg, &res, &res_len), 0);
        ck_assert_uint_eq(strlen(res), res_len);
        ck_assert_msg(strncmp(res, "{\"configuration\":{\"vmsd_name\":\"configuration\",", 46) == 0,
                      "%.80s", res);
        ck_assert_ptr_null(strstr(res, "\\/"));         /* "/" kept as is */
        ck_assert_ptr_null(strchr(res, '\n'));
        out = parse(res, res_len);

        /* exactly what QEMU 10.2 wrote for the same machine and capability */
        ck_assert(json_object_equal(get(out, "configuration"), get(q10, "configuration")));
        ck_assert(json_object_equal(get(out, "devices"), get(q72, "devices")));
        ck_assert(json_object_equal(get(out, "page_size"), get(q72, "page_size")));
        ck_assert_int_eq(json_object_object_length(out), 3);

        json_object_put(out);
        json_object_put(q10);
        json_object_put(q72);
        free(res);
        free(raw);
}
END_TEST

START_TEST(test_vmdesc_uuid_and_none)
{
        static const char in[] = "{\"configuration\":{\"x\":1},\"page_size\":4096,"
                                 "\"devices\":[{\"name\":\"0000:00:1f.2/ich9_ahci\"}],\"extra\":true}";
        static const char *const caps[] = { "mapped-ram" };
        struct vmdesc_config cfg = { .machine_len = 13, .caps = caps, .n_caps = 1, .has_uuid = true };
        struct json_object *o, *subs, *f;
        char *res;
        size_t n;

        ck_assert_int_eq(vmdesc_rewrite(in, strlen(in), &cfg, &res, &n), 0);
        ck_assert_str_eq(res,
                "{\"configuration\":{\"vmsd_name\":\"configuration\",\"version\":1,\"fields\":["
                "{\"name\":\"len\",\"type\":\"uint32\",\"size\":4},"
                "{\"name\":\"name\",\"type\":\"buffer\",\"size\":13}],\"subsections\":["
                "{\"vmsd_name\":\"configuration/capabilities\",\"version\":1,\"fields\":["
                "{\"name\":\"caps_count\",\"type\":\"uint32\",\"size\":4},"
                "{\"name\":\"capabilities\",\"type\":\"capability\",\"size\":11}]},"
                "{\"vmsd_name\":\"configuration/uuid\",\"version\":1,\"fields\":["
                "{\"name\":\"uuid.data\",\"array_len\":16,\"type\":\"uint8\",\"size\":1}]}]},"
                "\"page_size\":4096,\"devices\":[{\"name\":\"0000:00:1f.2/ich9_ahci\"}],"
                "\"extra\":true}");
        o = parse(res, n);
        subs = get(get(o, "configuration"), "subsections");
        ck_assert_uint_eq(json_object_array_length(subs), 2);
        f = json_object_array_get_idx(get(json_object_array_get_idx(subs, 1), "fields"), 0);
        ck_assert_int_eq(json_object_get_int(get(f, "array_len")), 16);
        json_object_put(o);

        /* rewriting again replaces, never duplicates; no subsections key
         * when there is nothing to describe */
        cfg = (struct vmdesc_config){ .machine_len = 4 };
        {
                char *again;
                size_t m;

                ck_assert_int_eq(vmdesc_rewrite(res, n, &cfg, &again, &m), 0);
                o = parse(again, m);
                ck_assert(!json_object_object_get_ex(get(o, "configuration"), "subsections", NULL));
                ck_assert_int_eq(json_object_object_length(o), 4);
                ck_assert_ptr_nonnull(strstr(again, "\"size\":4}]},\"page_size\""));
                json_object_put(o);
                free(again);
        }
        free(res);
}
END_TEST

START_TEST(test_vmdesc_rewrite_refusals)
{
        static const struct {
                const char *json;
                int err;
        } cases[] = {
                { "", -EBADMSG },
                { "not json", -EBADMSG },
                { "[1,2]", -EBADMSG },
                { "{\"page_size\":4096}", -EBADMSG },
                { "{\"devices\":[]}", -EBADMSG },
                { "{\"page_size\":\"4096\",\"devices\":[]}", -EBADMSG },
                { "{\"page_size\":4096,\"devices\":{}}", -EBADMSG },
                { "{\"page_size\":4096,\"devices\":[]} x", -EBADMSG },
                { "{\"page_size\":4096,\"devices\":[]", -EBADMSG },
        };
        static const char with_nul[] = "{\"page_size\":1,\"devices\":[]}";
        const struct vmdesc_config cfg = { .machine_len = 3 };
        char deep[2 * 100 + 64], *res = NULL;
        size_t n;
        int k = 0;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                ck_assert_msg(vmdesc_rewrite(cases[i].json, strlen(cases[i].json), &cfg, &res, &n) ==
                              cases[i].err, "case %zu", i);
        /* nesting deeper than VMDESC_MAX_DEPTH */
        k += sprintf(deep + k, "{\"page_size\":1,\"devices\":[");
        for (int i = 0; i < 100; i++)
                deep[k++] = '[';
        for (int i = 0; i < 100; i++)
                deep[k++] = ']';
        k += sprintf(deep + k, "]}");
        ck_assert_int_eq(vmdesc_rewrite(deep, k, &cfg, &res, &n), -EBADMSG);
        /* embedded NUL */
        ck_assert_int_eq(vmdesc_rewrite(with_nul, sizeof(with_nul), &cfg, &res, &n), -EBADMSG);
        ck_assert_int_eq(vmdesc_rewrite(with_nul, sizeof(with_nul) - 1, &cfg, &res, &n), 0);
        free(res);
        res = NULL;
        ck_assert_int_eq(vmdesc_rewrite("{\"page_size\":1,\"devices\":[]}", 28,
                                        &(struct vmdesc_config){ 0 }, &res, &n), -EINVAL);
        ck_assert_int_eq(vmdesc_rewrite("{}", SAVD_MAX_VMDESC + 1, &cfg, &res, &n), -E2BIG);
        ck_assert_ptr_null(res);
        ck_assert_int_eq(vmdesc_rewrite("{\"page_size\":1,\"devices\":[]}", 28, &cfg, &res, &n), 0);
        free(res);
}
END_TEST

/* Trailers built by hand: lengths whose be32 holds NUL bytes in every
 * position, cut-off streams, a stream without vmdesc. */
START_TEST(test_vmdesc_find)
{
        static const size_t json_lens[] = { 2, 255, 256, 65536, 65537 + 256 };
        struct vmdesc_loc loc;
        uint8_t *b;

        for (size_t i = 0; i < ELEMENTSOF(json_lens); i++) {
                size_t jl = json_lens[i], len = 7 + VMDESC_PREFIX_SIZE + jl;

                b = malloc(len);
                memcpy(b, "\x04\0\0\0\x01\0\x06", 7);   /* device bytes, NUL and 0x06 inside */
                vmdesc_put_prefix(b + 7, jl);
                memset(b + 13, ' ', jl);
                b[13] = '{';
                b[len - 1] = '}';
                ck_assert_int_eq(vmdesc_find(b, len, &loc), 1);
                ck_assert_uint_eq(loc.eof_offset, 7);
                ck_assert_uint_eq(loc.json_offset, 13);
                ck_assert_uint_eq(loc.json_len, jl);
                ck_assert_int_eq(vmdesc_find(b, len - 1, &loc), -EBADMSG);
                ck_assert_int_eq(vmdesc_find(b, 8, &loc), 0);           /* cut after EOF */
                ck_assert_uint_eq(loc.eof_offset, 7);
                ck_assert_uint_eq(loc.json_len, 0);
                free(b);
        }
        ck_assert_int_eq(vmdesc_find((const uint8_t *)"", 0, &loc), -EBADMSG);
        ck_assert_int_eq(vmdesc_find((const uint8_t *)"\x06{}", 3, &loc), -EBADMSG);
        ck_assert_int_eq(vmdesc_find((const uint8_t *)"\0", 1, &loc), 0);
        ck_assert_int_eq(vmdesc_find((const uint8_t *)"\0\x06\0\0\0\x02{}", 8, &loc), 1);
        ck_assert_int_eq(vmdesc_find((const uint8_t *)"\0\x06\0\0\0\x02[]", 8, &loc), -EBADMSG);
        ck_assert_int_eq(vmdesc_find((const uint8_t *)"\0\x06\0\0\0\x03{}", 8, &loc), -EBADMSG);
}
END_TEST

START_TEST(test_vmdesc_too_long)
{
        size_t jl = SAVD_MAX_VMDESC + 1, len = 1 + VMDESC_PREFIX_SIZE + jl;
        uint8_t *b = malloc(len);
        struct vmdesc_loc loc;

        b[0] = 0x42;
        vmdesc_put_prefix(b + 1, jl);
        memset(b + 7, ' ', jl);
        b[7] = '{';
        b[len - 1] = '}';
        ck_assert_int_eq(vmdesc_find(b, len, &loc), -EBADMSG);
        free(b);
}
END_TEST

static Suite *suite(bool with_data)
{
        Suite *s = suite_create("qemu-emit");
        TCase *tc = tcase_create("encoders");

        tcase_add_test(tc, test_header);
        tcase_add_test(tc, test_config_subsections);
        tcase_add_test(tc, test_config_invalid);
        tcase_add_test(tc, test_ram_start);
        tcase_add_test(tc, test_page_headers);
        tcase_add_test(tc, test_section_pieces);
        tcase_add_test(tc, test_emit_parse);
        suite_add_tcase(s, tc);
        tc = tcase_create("vmdesc");
        tcase_add_test(tc, test_vmdesc_uuid_and_none);
        tcase_add_test(tc, test_vmdesc_rewrite_refusals);
        tcase_add_test(tc, test_vmdesc_find);
        tcase_add_test(tc, test_vmdesc_too_long);
        suite_add_tcase(s, tc);
        if (with_data) {
                tc = tcase_create("qemu-files");
                tcase_set_timeout(tc, 120);
                tcase_add_test(tc, test_q72_reencode);
                tcase_add_test(tc, test_vmdesc_q72_as_q10);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void)
{
        bool with_data = testdata_usable(NULL, "QEMU file cases not run");

        return test_run_suite(suite(with_data), with_data);
}
