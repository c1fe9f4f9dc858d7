/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the mapped-ram layout (proto/mrm-layout.c).  The main test
 * rebuilds the worked example of the format notes (§14: machine
 * pc-i440fx-9.2, blocks pc.ram 2 MiB and pc.bios 256 KiB, RAM section id
 * 2) as a complete file image in memory and compares every row of the
 * table there, byte for byte, including the EOF marker and the vmdesc JSON,
 * and reads it back with the reader.  The rest checks the validation of
 * names, lengths and limits.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "macro.h"
#include "mrm-layout.h"
#include "mrm-reader.h"
#include "test-util.h"

#define EX_FILE_SIZE 0x4401B9U

static const char ex_json[] =
        "{\"configuration\": {\"vmsd_name\": \"configuration\", \"version\": 1, "
        "\"fields\": [{\"name\": \"len\", \"type\": \"uint32\", \"size\": 4}, "
        "{\"name\": \"name\", \"type\": \"buffer\", \"size\": 13}], "
        "\"subsections\": [{\"vmsd_name\": \"configuration/capabilities\", "
        "\"version\": 1, \"fields\": [{\"name\": \"caps_count\", \"type\": "
        "\"uint32\", \"size\": 4}, {\"name\": \"capabilities\", \"type\": "
        "\"capability\", \"size\": 11}]}]}, \"page_size\": 4096, \"devices\": []}";

static void example_layout(struct mrm_layout *l)
{
        ck_assert_int_eq(mrm_layout_init(l, "pc-i440fx-9.2", 13, 2), 0);
        ck_assert_int_eq(mrm_layout_add_block(l, "pc.ram", 6, 0x200000, QEMU_TPS), 0);
        ck_assert_int_eq(mrm_layout_add_block(l, "pc.bios", 7, 0x40000, QEMU_TPS), 0);
        ck_assert_int_eq(mrm_layout_compute(l), 0);
}

/* The complete example file: stream pieces from the encoders, bitmaps and
 * page contents as chosen in the example, holes as zeros. */
static uint8_t *example_image(const struct mrm_layout *l)
{
        uint8_t *img = calloc(1, EX_FILE_SIZE);
        ck_assert_ptr_nonnull(img);

        ck_assert_uint_eq(mrm_encode_prologue(l, img), mrm_prologue_size(l));
        for (size_t i = 0; i < l->n_blocks; i++) {
                const struct mrm_block *b = &l->blocks[i];
                ck_assert_uint_eq(mrm_encode_block_record(b, img + b->record_offset),
                                  mrm_block_record_size(b));
        }
        const struct mrm_block *ram = &l->blocks[0], *bios = &l->blocks[1];
        put_le64(img + ram->bitmap_offset, 0x1);                /* page 0 */
        put_le64(img + ram->bitmap_offset + 4 * 8, 0x3);        /* pages 256, 257 */
        memset(img + ram->pages_offset, 0xA0, QEMU_TPS);
        memset(img + ram->pages_offset + 256 * QEMU_TPS, 0xA1, QEMU_TPS);
        memset(img + ram->pages_offset + 257 * QEMU_TPS, 0xA2, QEMU_TPS);
        put_le64(img + bios->bitmap_offset, UINT64_MAX);
        for (unsigned i = 0; i < 64; i++)
                memset(img + bios->pages_offset + (uint64_t)i * QEMU_TPS,
                       0xB0 + i % 16, QEMU_TPS);

        ck_assert_uint_eq(mrm_encode_ram_tail(l, img + l->ram_end_offset),
                          mrm_ram_tail_size());
        ck_assert_uint_eq(mrm_encode_trailer(ex_json, strlen(ex_json), img + l->device_offset),
                          mrm_trailer_size(strlen(ex_json)));
        return img;
}

START_TEST(test_example_offsets)
{
        struct mrm_layout l;
        example_layout(&l);

        ck_assert_uint_eq(l.total_bytes, 0x240000);
        ck_assert_uint_eq(l.prologue_size, 0x62);
        ck_assert_uint_eq(mrm_prologue_size(&l), 0x62);

        const struct mrm_block *r = &l.blocks[0], *b = &l.blocks[1];
        ck_assert_uint_eq(r->num_pages, 512);
        ck_assert_uint_eq(r->record_offset, 0x62);
        ck_assert_uint_eq(r->header_offset, 0x71);
        ck_assert_uint_eq(r->bitmap_offset, 0x8D);
        ck_assert_uint_eq(r->bitmap_size, 64);
        ck_assert_uint_eq(r->pages_offset, 0x100000);
        ck_assert_uint_eq(r->end_offset, 0x300000);
        ck_assert_uint_eq(mrm_block_record_size(r), 0x71 + 28 - 0x62);

        ck_assert_uint_eq(b->num_pages, 64);
        ck_assert_uint_eq(b->record_offset, 0x300000);
        ck_assert_uint_eq(b->header_offset, 0x300010);
        ck_assert_uint_eq(b->bitmap_offset, 0x30002C);
        ck_assert_uint_eq(b->bitmap_size, 8);
        ck_assert_uint_eq(b->pages_offset, 0x400000);
        ck_assert_uint_eq(b->end_offset, 0x440000);

        ck_assert_uint_eq(l.ram_end_offset, 0x440000);
        ck_assert_uint_eq(l.ram_tail_size, 31);
        ck_assert_uint_eq(mrm_ram_tail_size(), 31);
        ck_assert_uint_eq(l.device_offset, 0x44001F);
        ck_assert_uint_eq(l.device_offset + mrm_trailer_size(strlen(ex_json)), EX_FILE_SIZE);
        mrm_layout_free(&l);
}
END_TEST

/* One row of the §14 table.  Exactly one of hex/str/fill/special says
 * what the bytes are. */
enum row_kind { ROW_HEX, ROW_STR, ROW_FILL, ROW_BIOS_PAGES, ROW_JSON };

struct row {
        uint64_t off, len;
        enum row_kind kind;
        const char *text;       /* ROW_HEX: "01 00*31" (*N repeats); ROW_STR: ASCII */
        int fill;
};

#define HEX(o, n, h)  { (o), (n), ROW_HEX, (h), 0 }
#define STR(o, n, s)  { (o), (n), ROW_STR, (s), 0 }
#define FILL(o, n, b) { (o), (n), ROW_FILL, NULL, (b) }

static const struct row ex_rows[] = {
        HEX(0x000000, 4, "51 45 56 4D"),
        HEX(0x000004, 4, "00 00 00 03"),
        HEX(0x000008, 1, "07"),
        HEX(0x000009, 4, "00 00 00 0D"),
        STR(0x00000D, 13, "pc-i440fx-9.2"),
        HEX(0x00001A, 1, "05"),
        HEX(0x00001B, 1, "1A"),
        STR(0x00001C, 26, "configuration/capabilities"),
        HEX(0x000036, 4, "00 00 00 01"),
        HEX(0x00003A, 4, "00 00 00 01"),
        HEX(0x00003E, 1, "0A"),
        STR(0x00003F, 10, "mapped-ram"),
        HEX(0x000049, 1, "01"),
        HEX(0x00004A, 4, "00 00 00 02"),
        HEX(0x00004E, 4, "03 72 61 6D"),
        HEX(0x000052, 4, "00 00 00 00"),
        HEX(0x000056, 4, "00 00 00 04"),
        HEX(0x00005A, 8, "00 00 00 00 00 24 00 04"),
        HEX(0x000062, 7, "06 70 63 2E 72 61 6D"),
        HEX(0x000069, 8, "00 00 00 00 00 20 00 00"),
        HEX(0x000071, 4, "00 00 00 01"),
        HEX(0x000075, 8, "00 00 00 00 00 00 10 00"),
        HEX(0x00007D, 8, "00 00 00 00 00 00 00 8D"),
        HEX(0x000085, 8, "00 00 00 00 00 10 00 00"),
        HEX(0x00008D, 64, "01 00*31 03 00*31"),
        FILL(0x0000CD, 0xFFF33, 0),
        FILL(0x100000, 0x1000, 0xA0),
        FILL(0x101000, 0xFF000, 0),
        FILL(0x200000, 0x1000, 0xA1),
        FILL(0x201000, 0x1000, 0xA2),
        FILL(0x202000, 0xFE000, 0),
        HEX(0x300000, 8, "07 70 63 2E 62 69 6F 73"),
        HEX(0x300008, 8, "00 00 00 00 00 04 00 00"),
        HEX(0x300010, 4, "00 00 00 01"),
        HEX(0x300014, 8, "00 00 00 00 00 00 10 00"),
        HEX(0x30001C, 8, "00 00 00 00 00 30 00 2C"),
        HEX(0x300024, 8, "00 00 00 00 00 40 00 00"),
        HEX(0x30002C, 8, "FF FF FF FF FF FF FF FF"),
        FILL(0x300034, 0xFFFCC, 0),
        { 0x400000, 0x40000, ROW_BIOS_PAGES, NULL, 0 },
        HEX(0x440000, 8, "00 00 00 00 00 00 00 10"),
        HEX(0x440008, 5, "7E 00 00 00 02"),
        HEX(0x44000D, 5, "03 00 00 00 02"),
        HEX(0x440012, 8, "00 00 00 00 00 00 00 10"),
        HEX(0x44001A, 5, "7E 00 00 00 02"),
        HEX(0x44001F, 1, "00"),
        HEX(0x440020, 1, "06"),
        HEX(0x440021, 4, "00 00 01 94"),
        { 0x440025, 404, ROW_JSON, NULL, 0 },
};

static void expected_row(const struct row *r, uint8_t *exp)
{
        switch (r->kind) {
        case ROW_HEX:
                ck_assert_uint_eq(test_parse_hex(r->text, exp, r->len), r->len);
                break;
        case ROW_STR:
                ck_assert_uint_eq(strlen(r->text), r->len);
                memcpy(exp, r->text, r->len);
                break;
        case ROW_FILL:
                memset(exp, r->fill, r->len);
                break;
        case ROW_BIOS_PAGES:
                for (uint64_t i = 0; i < r->len; i++)
                        exp[i] = (uint8_t)(0xB0 + (i / QEMU_TPS) % 16);
                break;
        case ROW_JSON:
                ck_assert_uint_eq(strlen(ex_json), r->len);
                memcpy(exp, ex_json, r->len);
                break;
        }
}

START_TEST(test_example_bytes)
{
        struct mrm_layout l;
        example_layout(&l);
        _cleanup_free_ uint8_t *img = example_image(&l);
        _cleanup_free_ uint8_t *exp = malloc(0x100000);
        ck_assert_ptr_nonnull(exp);

        /* The rows tile the whole file without gaps. */
        uint64_t next = 0;
        for (size_t i = 0; i < ELEMENTSOF(ex_rows); i++) {
                const struct row *r = &ex_rows[i];
                ck_assert_msg(r->off == next, "row %zu at 0x%llx, expected 0x%llx",
                              i, (unsigned long long)r->off, (unsigned long long)next);
                ck_assert_uint_le(r->len, 0x100000);
                expected_row(r, exp);
                if (memcmp(img + r->off, exp, r->len) != 0)
                        for (uint64_t k = 0; k < r->len; k++)
                                ck_assert_msg(img[r->off + k] == exp[k],
                                              "byte 0x%llx: 0x%02x, expected 0x%02x",
                                              (unsigned long long)(r->off + k),
                                              img[r->off + k], exp[k]);
                next = r->off + r->len;
        }
        ck_assert_uint_eq(next, EX_FILE_SIZE);
        mrm_layout_free(&l);
}
END_TEST

/* The example file is valid for the reader, with the pages chosen there. */
START_TEST(test_example_reads_back)
{
        struct mrm_layout l;
        example_layout(&l);
        _cleanup_free_ uint8_t *img = example_image(&l);
        struct mrm_mem_source src = { img, EX_FILE_SIZE };
        struct mrm_file f;
        struct mrm_error err;

        int r = mrm_read(&f, mrm_mem_pread, &src, EX_FILE_SIZE, &err);
        if (r == 0)
                r = mrm_verify(&f, mrm_mem_pread, &src, &err);
        ck_assert_msg(r == 0, "%s at 0x%llx", err.msg, (unsigned long long)err.offset);
        ck_assert_uint_eq(f.layout.n_blocks, 2);
        ck_assert_uint_eq(f.stats[0].pages_present, 3);
        ck_assert_uint_eq(f.stats[0].pages_zero, 509);
        ck_assert_uint_eq(f.stats[1].pages_present, 64);
        ck_assert_uint_eq(f.layout.blocks[1].pages_offset, 0x400000);
        ck_assert_uint_eq(f.device_offset, 0x44001F);
        ck_assert_uint_eq(f.eof_offset, 0x44001F);
        ck_assert_uint_eq(f.vmdesc_len, 404);
        mrm_file_free(&f);
        mrm_layout_free(&l);
}
END_TEST

START_TEST(test_uuid_prologue)
{
        static const uint8_t uuid[QEMU_UUID_LEN] = {
                0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
                0x0f, 0xed, 0xcb, 0xa9, 0x87, 0x65, 0x43, 0x21 };
        struct mrm_layout l;
        uint8_t buf[256];

        ck_assert_int_eq(mrm_layout_init(&l, "pc-q35-7.2", 10, 7), 0);
        ck_assert_int_eq(mrm_layout_set_uuid(&l, uuid), 0);
        ck_assert_int_eq(mrm_layout_add_block(&l, "m0", 2, 0x2000000, QEMU_TPS), 0);
        ck_assert_int_eq(mrm_layout_compute(&l), 0);

        /* header 8, config 1+4+10, caps 47, uuid 1+1+18+4+16, START 17, word 8 */
        size_t n = mrm_encode_prologue(&l, buf);
        ck_assert_uint_eq(n, 8 + 15 + 47 + 40 + 17 + 8);
        ck_assert_uint_eq(n, mrm_prologue_size(&l));
        ck_assert_uint_eq(l.blocks[0].record_offset, n);

        const uint8_t *u = buf + 8 + 15 + 47;
        ck_assert_uint_eq(u[0], QEMU_VM_SUBSECTION);
        ck_assert_uint_eq(u[1], 18);
        ck_assert_int_eq(memcmp(u + 2, "configuration/uuid", 18), 0);
        ck_assert_uint_eq(get_be32(u + 20), 1);
        ck_assert_int_eq(memcmp(u + 24, uuid, 16), 0);
        ck_assert_uint_eq(u[40], QEMU_VM_SECTION_START);
        ck_assert_uint_eq(get_be32(u + 41), 7);
        ck_assert_uint_eq(get_be64(buf + n - 8), 0x2000000 | RAM_SAVE_FLAG_MEM_SIZE);

        /* Same guest as the QEMU 10.2 test file: m0 lands where QEMU put it
         * relative to its header. */
        ck_assert_uint_eq(l.blocks[0].bitmap_offset, l.blocks[0].header_offset + 28);
        ck_assert_uint_eq(l.blocks[0].bitmap_size, 1024);
        ck_assert_uint_eq(l.blocks[0].pages_offset, 0x100000);
        mrm_layout_free(&l);
}
END_TEST

START_TEST(test_init_validation)
{
        struct mrm_layout l;
        char big[SAVD_MACHINE_NAME_MAX + 2];
        memset(big, 'm', sizeof(big));

        ck_assert_int_eq(mrm_layout_init(&l, "pc", 2, 0), -EINVAL);
        ck_assert_int_eq(mrm_layout_init(&l, "pc", 0, 1), -EINVAL);
        ck_assert_int_eq(mrm_layout_init(&l, big, SAVD_MACHINE_NAME_MAX + 1, 1), -E2BIG);
        ck_assert_int_eq(mrm_layout_init(&l, big, SAVD_MACHINE_NAME_MAX, 1), 0);
        ck_assert_uint_eq(l.machine_len, SAVD_MACHINE_NAME_MAX);
        ck_assert_uint_eq(l.machine[SAVD_MACHINE_NAME_MAX], '\0');
        /* No blocks: nothing to lay out. */
        ck_assert_int_eq(mrm_layout_compute(&l), -EINVAL);
        mrm_layout_free(&l);
}
END_TEST

START_TEST(test_block_validation)
{
        struct mrm_layout l;
        char name[SAVD_NAME_MAX + 2];
        memset(name, 'n', sizeof(name));

        ck_assert_int_eq(mrm_layout_init(&l, "pc", 2, 1), 0);
        ck_assert_int_eq(mrm_layout_add_block(&l, "a", 0, 4096, QEMU_TPS), -EINVAL);
        ck_assert_int_eq(mrm_layout_add_block(&l, name, SAVD_NAME_MAX + 1, 4096, QEMU_TPS), -E2BIG);
        ck_assert_int_eq(mrm_layout_add_block(&l, "a", 1, 0, QEMU_TPS), -EINVAL);
        ck_assert_int_eq(mrm_layout_add_block(&l, "a", 1, 4097, QEMU_TPS), -EINVAL);
        ck_assert_int_eq(mrm_layout_add_block(&l, "a", 1, 4096, 0), -EINVAL);
        ck_assert_int_eq(mrm_layout_add_block(&l, "a", 1, 65536, 65536), -EINVAL);
        ck_assert_int_eq(mrm_layout_add_block(&l, "a", 1, SAVD_MAX_BLOCK_SIZE + QEMU_TPS,
                                              QEMU_TPS), -E2BIG);
        ck_assert_uint_eq(l.n_blocks, 0);

        ck_assert_int_eq(mrm_layout_add_block(&l, name, SAVD_NAME_MAX, SAVD_MAX_BLOCK_SIZE,
                                              QEMU_TPS), 0);
        ck_assert_int_eq(mrm_layout_add_block(&l, "a", 1, 4096, QEMU_TPS), 0);
        ck_assert_int_eq(mrm_layout_add_block(&l, "a", 1, 8192, QEMU_TPS), -EINVAL);
        /* A name that is a prefix of another one is a different block. */
        ck_assert_int_eq(mrm_layout_add_block(&l, name, 3, 4096, QEMU_TPS), 0);
        ck_assert_int_eq(mrm_layout_find_block(&l, "a", 1), 1);
        ck_assert_int_eq(mrm_layout_find_block(&l, name, 3), 2);
        ck_assert_int_eq(mrm_layout_find_block(&l, name, 4), -ENOENT);
        ck_assert_int_eq(mrm_layout_find_block(&l, name, SAVD_NAME_MAX), 0);
        ck_assert_int_eq(mrm_layout_compute(&l), 0);
        ck_assert_uint_eq(l.blocks[0].bitmap_size, (SAVD_MAX_BLOCK_SIZE / QEMU_TPS) / 8);
        ck_assert_uint_eq(l.total_bytes, SAVD_MAX_BLOCK_SIZE + 2 * 4096);
        mrm_layout_free(&l);
}
END_TEST

START_TEST(test_max_blocks)
{
        struct mrm_layout l;
        char name[16];

        ck_assert_int_eq(mrm_layout_init(&l, "pc", 2, 1), 0);
        for (unsigned i = 0; i < SAVD_MAX_BLOCKS; i++) {
                int n = snprintf(name, sizeof(name), "b%u", i);
                ck_assert_int_eq(mrm_layout_add_block(&l, name, (size_t)n, 4096, QEMU_TPS), 0);
        }
        ck_assert_int_eq(mrm_layout_add_block(&l, "extra", 5, 4096, QEMU_TPS), -E2BIG);
        ck_assert_int_eq(mrm_layout_compute(&l), 0);

        /* Each one-page block: record, bitmap word, then its own 1 MiB slot. */
        for (size_t i = 1; i < l.n_blocks; i++) {
                const struct mrm_block *p = &l.blocks[i - 1], *b = &l.blocks[i];
                ck_assert_uint_eq(b->record_offset, p->pages_offset + 4096);
                ck_assert_uint_eq(b->pages_offset, p->pages_offset + MAPPED_RAM_ALIGN);
        }
        ck_assert_int_eq(mrm_layout_find_block(&l, "b1023", 5), 1023);
        mrm_layout_free(&l);
}
END_TEST

/* A bitmap that ends exactly on a 1 MiB boundary keeps pages_offset there. */
START_TEST(test_aligned_bitmap_end)
{
        struct mrm_layout l;
        ck_assert_int_eq(mrm_layout_init(&l, "pc", 2, 1), 0);
        ck_assert_int_eq(mrm_layout_add_block(&l, "x", 1, 4096, QEMU_TPS), 0);
        ck_assert_int_eq(mrm_layout_compute(&l), 0);
        /* Choose the second block's length so that its bitmap ends at 2 MiB. */
        uint64_t hdr2 = l.blocks[0].end_offset + 1 + 3 + 8;
        uint64_t bitmap_bytes = 2 * MAPPED_RAM_ALIGN - (hdr2 + 28);
        ck_assert_uint_eq(bitmap_bytes % 8, 0);
        ck_assert_int_eq(mrm_layout_add_block(&l, "yyy", 3, bitmap_bytes * 8 * QEMU_TPS,
                                              QEMU_TPS), 0);
        ck_assert_int_eq(mrm_layout_compute(&l), 0);
        ck_assert_uint_eq(l.blocks[1].bitmap_offset + l.blocks[1].bitmap_size,
                          2 * MAPPED_RAM_ALIGN);
        ck_assert_uint_eq(l.blocks[1].pages_offset, 2 * MAPPED_RAM_ALIGN);
        mrm_layout_free(&l);
}
END_TEST

static Suite *layout_suite(void)
{
        Suite *s = suite_create("layout");
        TCase *tc = tcase_create("layout");

        tcase_add_test(tc, test_example_offsets);
        tcase_add_test(tc, test_example_bytes);
        tcase_add_test(tc, test_example_reads_back);
        tcase_add_test(tc, test_uuid_prologue);
        tcase_add_test(tc, test_init_validation);
        tcase_add_test(tc, test_block_validation);
        tcase_add_test(tc, test_max_blocks);
        tcase_add_test(tc, test_aligned_bitmap_end);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return test_run_suite(layout_suite(), true);
}
