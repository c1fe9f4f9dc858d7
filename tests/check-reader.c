/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the mapped-ram reader and verifier (proto/mrm-reader.c,
 * proto/mrm-verify.c).  The reference is the file QEMU 10.2 wrote for the
 * test guest ($SAVD_TESTDATA/q10-mapped-ram.mrm, see its README): every
 * block, offset and page count the reader reports is compared with values
 * read off the bytes independently, and the m0 bitmap with the fill
 * pattern the guest RAM was given.  Truncated and corrupted copies of it
 * (in memory) must be refused with the right message and offset; files
 * built with the layout encoders must read back as they were built.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "macro.h"
#include "mem-source.h"
#include "mrm-layout.h"
#include "mrm-reader.h"
#include "test-util.h"

/* ---- the QEMU 10.2 reference file ---------------------------------- */

#define Q10_SIZE        39927372ULL
#define Q10_DEVICE      0x2601031ULL
#define Q10_EOF         0x2608f77ULL
#define Q10_VMDESC_LEN  44751U

static uint8_t *q10;            /* whole file, read once in main() */

struct q10_block {
        const char *name;
        uint64_t used_length, record, header, bitmap, pages, present;
};

/* Read off the file's bytes with xxd and a short script, independently of
 * the reader; "present" counts the set bits of each bitmap. */
static const struct q10_block q10_blocks[] = {
        { "m0",                    0x2000000, 0x5f,      0x6a,      0x86,      0x100000,  2721 },
        { "/rom@etc/acpi/tables",  0x20000,   0x2100000, 0x210001d, 0x2100039, 0x2200000, 3 },
        { "pc.bios",               0x40000,   0x2220000, 0x2220010, 0x222002c, 0x2300000, 44 },
        { "pc.rom",                0x20000,   0x2340000, 0x234000f, 0x234002b, 0x2400000, 0 },
        { "/rom@etc/table-loader", 0x1000,    0x2420000, 0x242001e, 0x242003a, 0x2500000, 1 },
        { "/rom@etc/acpi/rsdp",    0x1000,    0x2501000, 0x250101b, 0x2501037, 0x2600000, 1 },
};

/* The guest pattern (testdata README): page i of m0 holds (i*7+1)&0xff
 * when i%3 == 0, zeros otherwise; QEMU skips the zero pages. */
static uint8_t m0_fill(uint64_t i)
{
        return i % 3 == 0 ? (uint8_t)((i * 7 + 1) & 0xff) : 0;
}

/* Without $SAVD_TESTDATA the file is looked for next to the source tree. */
static void load_q10(void)
{
        const char *dir = testdata_dir();
        char path[4096];
        size_t len = 0;

        snprintf(path, sizeof(path), "%s/q10-mapped-ram.mrm", dir ? dir : "../shared/testdata");
        if (test_load_file(path, 0, &len, &q10) < 0 || len != Q10_SIZE) {
                fprintf(stderr, "cannot use '%s'\n", path);
                exit(EXIT_FAILURE);
        }
}

/* Read and verify an image; returns the first error, 0 if valid. */
static int check_image(const uint8_t *data, uint64_t size, struct mrm_file *f,
                       struct mrm_error *err)
{
        struct mrm_mem_source src = { data, size };
        int r = mrm_read(f, mrm_mem_pread, &src, size, err);
        if (r < 0)
                return r;
        return mrm_verify(f, mrm_mem_pread, &src, err);
}

START_TEST(test_q10_accepted)
{
        struct mrm_file f;
        struct mrm_error err;

        int r = check_image(q10, Q10_SIZE, &f, &err);
        ck_assert_msg(r == 0, "%s at 0x%llx", err.msg, (unsigned long long)err.offset);
        ck_assert(f.verified);
        ck_assert_str_eq(f.layout.machine, "pc-q35-7.2");
        ck_assert_uint_eq(f.n_caps, 1);
        ck_assert_str_eq(f.caps[0].name, "mapped-ram");
        ck_assert(!f.layout.has_uuid);
        ck_assert(!f.has_page_bits);
        ck_assert_uint_eq(f.layout.ram_section_id, 1);
        ck_assert_uint_eq(f.ram_offset, 0x46);
        ck_assert_uint_eq(f.layout.prologue_size, 0x5f);
        ck_assert_uint_eq(f.layout.total_bytes, 0x2082000);
        ck_assert_uint_eq(f.layout.n_blocks, ELEMENTSOF(q10_blocks));

        uint64_t present = 0, pages = 0;
        for (size_t i = 0; i < ELEMENTSOF(q10_blocks); i++) {
                const struct q10_block *e = &q10_blocks[i];
                const struct mrm_block *b = &f.layout.blocks[i];
                ck_assert_str_eq(b->name, e->name);
                ck_assert_uint_eq(b->name_len, strlen(e->name));
                ck_assert_uint_eq(b->used_length, e->used_length);
                ck_assert_uint_eq(b->page_size, 4096);
                ck_assert_uint_eq(b->num_pages, e->used_length / 4096);
                ck_assert_uint_eq(b->record_offset, e->record);
                ck_assert_uint_eq(b->header_offset, e->header);
                ck_assert_uint_eq(b->bitmap_offset, e->bitmap);
                ck_assert_uint_eq(b->bitmap_size, DIV_ROUND_UP(b->num_pages, 64) * 8);
                ck_assert_uint_eq(b->pages_offset, e->pages);
                ck_assert_uint_eq(b->end_offset, e->pages + e->used_length);
                ck_assert_uint_eq(f.stats[i].pages_present, e->present);
                ck_assert_uint_eq(f.stats[i].pages_zero, b->num_pages - e->present);
                present += e->present;
                pages += b->num_pages;
        }
        ck_assert_uint_eq(f.pages_present, present);
        ck_assert_uint_eq(f.pages_zero, pages - present);

        ck_assert_uint_eq(f.layout.ram_end_offset, 0x2601000);
        ck_assert_uint_eq(f.n_ram_sections, 2);         /* one PART, one END */
        ck_assert(f.has_ram_end);
        ck_assert_uint_eq(f.n_commands, 0);
        ck_assert_uint_eq(f.device_offset, Q10_DEVICE);
        ck_assert_uint_eq(f.layout.device_offset, Q10_DEVICE);
        ck_assert_uint_eq(f.layout.ram_tail_size, Q10_DEVICE - 0x2601000);
        ck_assert_uint_eq(q10[Q10_DEVICE], QEMU_VM_SECTION_FULL);
        ck_assert_uint_eq(f.eof_offset, Q10_EOF);
        ck_assert(f.has_vmdesc);
        ck_assert_uint_eq(f.vmdesc_offset, Q10_EOF + 6);
        ck_assert_uint_eq(f.vmdesc_len, Q10_VMDESC_LEN);
        ck_assert_uint_eq(f.vmdesc_offset + f.vmdesc_len, Q10_SIZE);

        struct json_object *v;
        ck_assert(json_object_object_get_ex(f.vmdesc, "page_size", &v));
        ck_assert_int_eq(json_object_get_int(v), 4096);
        ck_assert(json_object_object_get_ex(f.vmdesc, "configuration", &v));
        ck_assert(json_object_object_get_ex(f.vmdesc, "devices", &v));
        ck_assert(json_object_is_type(v, json_type_array));
        mrm_file_free(&f);
}
END_TEST

/* The m0 bitmap is exactly the guest pattern, and the slots the reader
 * points at hold the pattern bytes. */
START_TEST(test_q10_m0_pattern)
{
        struct mrm_file f;
        struct mrm_error err;
        uint64_t expect = 0;

        ck_assert_int_eq(check_image(q10, Q10_SIZE, &f, &err), 0);
        const struct mrm_block *b = &f.layout.blocks[0];
        for (uint64_t i = 0; i < b->num_pages; i++) {
                const uint8_t *bm = q10 + b->bitmap_offset;
                bool set = bm[i / 8] & (1U << (i % 8));
                ck_assert_msg(set == (m0_fill(i) != 0), "m0 page %llu", (unsigned long long)i);
                if (!set)
                        continue;
                expect++;
                const uint8_t *slot = q10 + b->pages_offset + i * QEMU_TPS;
                ck_assert_uint_eq(slot[0], m0_fill(i));
                ck_assert_uint_eq(slot[QEMU_TPS - 1], m0_fill(i));
        }
        ck_assert_uint_eq(f.stats[0].pages_present, expect);
        mrm_file_free(&f);
}
END_TEST

/* A callback that returns one byte per call: the reader must cope with
 * short reads anywhere. */
static ssize_t trickle_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
        return mrm_mem_pread(opaque, buf, len ? 1 : 0, off);
}

START_TEST(test_short_reads)
{
        struct mrm_mem_source src = { q10, Q10_SIZE };
        struct mrm_file f;
        struct mrm_error err;

        ck_assert_int_eq(mrm_read(&f, trickle_pread, &src, Q10_SIZE, &err), 0);
        ck_assert_int_eq(mrm_verify(&f, trickle_pread, &src, &err), 0);
        ck_assert_uint_eq(f.pages_present, 2770);
        mrm_file_free(&f);
}
END_TEST

struct failing_src {
        struct mrm_mem_source mem;
        uint64_t fail_from;
};

static ssize_t failing_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
        struct failing_src *s = opaque;
        if (off + len > s->fail_from)
                return -EIO;
        return mrm_mem_pread(&s->mem, buf, len, off);
}

START_TEST(test_read_error)
{
        static const uint64_t at[] = { 0, 0x70, 0x2100010, 0x2608000, Q10_SIZE - 10 };
        struct failing_src src = { { q10, Q10_SIZE }, 0 };
        struct mrm_file f;
        struct mrm_error err;

        for (size_t i = 0; i < ELEMENTSOF(at); i++) {
                src.fail_from = at[i];
                int r = mrm_read(&f, failing_pread, &src, Q10_SIZE, &err);
                if (r == 0)
                        r = mrm_verify(&f, failing_pread, &src, &err);
                ck_assert_int_eq(r, -EIO);
                ck_assert_msg(strstr(err.msg, "read failed"), "%s", err.msg);
                mrm_file_free(&f);
        }
}
END_TEST

/* ---- truncation ------------------------------------------------------ */

static void assert_truncated_refused(uint64_t size)
{
        struct mrm_file f;
        struct mrm_error err;

        int r = check_image(q10, size, &f, &err);
        ck_assert_msg(r == -EBADMSG, "size 0x%llx: r=%d '%s'", (unsigned long long)size, r,
                      err.msg);
        ck_assert_msg(err.msg[0] != '\0', "size 0x%llx: no message", (unsigned long long)size);
        ck_assert_msg(err.offset <= size, "size 0x%llx: offset 0x%llx past the end",
                      (unsigned long long)size, (unsigned long long)err.offset);
        mrm_file_free(&f);
}

START_TEST(test_truncated)
{
        /* Every byte of the prologue and the first block record. */
        for (uint64_t s = 0; s <= 0x90; s++)
                assert_truncated_refused(s);
        /* Every block boundary, one byte either side. */
        for (size_t i = 0; i < ELEMENTSOF(q10_blocks); i++) {
                const struct q10_block *e = &q10_blocks[i];
                const uint64_t pts[] = { e->record, e->header, e->bitmap, e->pages,
                                         e->pages + e->used_length };
                for (size_t k = 0; k < ELEMENTSOF(pts); k++)
                        for (uint64_t d = 0; d < 3; d++)
                                assert_truncated_refused(pts[k] - 1 + d);
        }
        /* The RAM tail, device state and trailer. */
        for (uint64_t s = 0x2601000; s <= Q10_DEVICE + 1; s++)
                assert_truncated_refused(s);
        for (uint64_t s = Q10_EOF - 2; s <= Q10_EOF + 8; s++)
                assert_truncated_refused(s);
        assert_truncated_refused(Q10_SIZE - 1);
        /* And 60 spread over the whole file. */
        for (uint64_t k = 1; k <= 60; k++)
                assert_truncated_refused(Q10_SIZE / 61 * k + k * 7);
}
END_TEST

/* ---- corruption of single fields ------------------------------------- */

struct corruption {
        const char *what;
        uint64_t off;
        const char *bytes;      /* hex, "*N" repeats */
        int error;
        const char *msg;        /* substring */
        uint64_t err_off;
};

#define NO_OFF UINT64_MAX

static const struct corruption corruptions[] = {
        { "magic", 0, "51 45 56 4E", -EBADMSG, "bad magic", 0 },
        { "version", 4, "00 00 00 02", -EBADMSG, "unsupported file version 2", 4 },
        { "config byte", 8, "06", -EBADMSG, "configuration section missing", 8 },
        { "machine length 0", 9, "00 00 00 00", -EBADMSG, "machine name length 0", 9 },
        { "machine length huge", 9, "FF FF FF FF", -E2BIG, "machine name length 4294967295", 9 },
        { "subsection name length", 0x18, "19", -EBADMSG, "unknown configuration subsection", 0x17 },
        { "subsection version", 0x33, "00 00 00 02", -EBADMSG, "version 2, expected 1", 0x33 },
        { "caps count huge", 0x37, "FF FF FF FF", -E2BIG, "capability count", 0x37 },
        { "caps count 0", 0x37, "00 00 00 00", -EBADMSG, "does not contain 'mapped-ram'", 0x37 },
        { "unknown cap", 0x3c, "6E", -EBADMSG, "capability 'napped-ram'", 0x3b },
        { "START type", 0x46, "04", -EBADMSG, "expected the START section", 0x46 },
        { "RAM section id 0", 0x47, "00 00 00 00", -EBADMSG, "RAM section id is 0", 0x47 },
        { "idstr", 0x4d, "6F", -EBADMSG, "first section is 'rom'", 0x4b },
        { "RAM version", 0x53, "00 00 00 05", -EBADMSG, "version 5", 0x4f },
        { "MEM_SIZE flags", 0x5e, "08", -EBADMSG, "expected MEM_SIZE", 0x57 },
        { "block total larger", 0x5d, "30", -EBADMSG, "empty RAM block name", 0x2601000 },
        { "block total smaller", 0x5d, "10", -EBADMSG, "where EOS was expected", 0x2501000 },
        { "block total huge", 0x57, "FF FF FF FF FF FF F0 04", -E2BIG, "RAM total size", 0x57 },
        { "name length 0", 0x5f, "00", -EBADMSG, "empty RAM block name", 0x5f },
        { "name length 255", 0x5f, "FF", -EBADMSG, "not a non-zero multiple", 0x15f },
        { "used_length unaligned", 0x62, "00 00 00 00 02 00 08 00", -EBADMSG,
          "not a non-zero multiple", 0x62 },
        { "used_length huge", 0x62, "FF FF FF FF FF FF F0 00", -E2BIG, "exceeds the limit", 0x62 },
        { "used_length beyond total", 0x62, "00 00 00 00 04 00 00 00", -EBADMSG,
          "exceeds the rest of the RAM total", 0x62 },
        { "header version 0", 0x6a, "00 00 00 00", -EBADMSG, "MappedRamHeader version 0", 0x6a },
        { "header version 2", 0x6a, "00 00 00 02", -EBADMSG, "MappedRamHeader version 2", 0x6a },
        { "page_size 0", 0x6e, "00*8", -EBADMSG, "page size 0, expected 4096", 0x6e },
        { "page_size 64k", 0x6e, "00 00 00 00 00 01 00 00", -EBADMSG, "page size 65536", 0x6e },
        { "bitmap offset overflow", 0x76, "FF*8", -EBADMSG, "overflows", 0x76 },
        { "bitmap beyond EOF", 0x76, "00 00 00 00 02 61 3D 40", -EBADMSG,
          "extends beyond the end of the file", 0x76 },
        { "bitmap misplaced", 0x76, "00 00 00 00 00 00 00 87", -EBADMSG,
          "bitmap offset 0x87, expected 0x86", 0x76 },
        { "pages offset unaligned", 0x7e, "00 00 00 00 00 10 08 00", -EBADMSG,
          "not page aligned", 0x7e },
        { "pages offset before header", 0x7e, "00*8", -EBADMSG, "lies before the end", 0x7e },
        { "pages offset huge", 0x7e, "FF FF FF FF FF FF F0 00", -EBADMSG,
          "beyond the end of the file", 0x7e },
        { "set slot beyond EOF", 0x250102f, "00 00 00 00 03 00 00 00", -EBADMSG,
          "page slots end at 0x3001000, beyond the end of the file", 0x250102f },
        { "set bit beyond used_length (1 page)", 0x2501037, "03", -EBADMSG,
          "bit for page 1 is set, beyond its 1 pages", 0x2501037 },
        { "set bit beyond used_length (32 pages)", 0x2100039 + 7, "80", -EBADMSG,
          "bit for page 63 is set", 0x2100039 + 7 },
        { "START EOS", 0x2601006, "02 00", -EBADMSG, "where EOS was expected", 0x2601000 },
        { "footer byte", 0x2601008, "7F", -EBADMSG, "missing section footer", 0x2601008 },
        { "footer id", 0x2601009, "00 00 00 02", -EBADMSG,
          "footer id 2 does not match section id 1", 0x2601009 },
        { "END footer id", 0x260102d, "02", -EBADMSG, "footer id", 0x260102d },
        { "PART id", 0x260100e, "00 00 00 05", -EBADMSG,
          "section id 5 is not the RAM section (1)", 0x260100e },
        { "tail type", 0x260100d, "09", -EBADMSG, "unknown section type 0x09", 0x260100d },
        { "PART after END", 0x260100d, "03", -EBADMSG, "RAM section after its END", 0x260101f },
        { "command 0", 0x260100d, "08 00 00 00 00", -EBADMSG, "unknown command 0x0", 0x260100d },
        { "command 12", 0x260100d, "08 00 0C 00 00", -EBADMSG, "unknown command 0xc", 0x260100d },
        { "command length", 0x260100d, "08 00 0B FF FF", -EBADMSG,
          "has length 65535, expected 0", 0x260100d },
        { "missing vmdesc", Q10_EOF + 1, "07", -EBADMSG, "missing EOF and vmdesc", Q10_SIZE },
        { "vmdesc length huge", Q10_EOF + 2, "FF FF FF FF", -EBADMSG, "missing EOF and vmdesc",
          Q10_SIZE },
        { "vmdesc length short", Q10_EOF + 5, "CE", -EBADMSG, "missing EOF and vmdesc", Q10_SIZE },
        { "bad JSON", Q10_EOF + 6, "23", -EBADMSG, "vmdesc JSON is not valid", Q10_EOF + 6 },
        { "JSON cut short", Q10_SIZE - 1, "20", -EBADMSG, "vmdesc JSON is not valid: incomplete",
          NO_OFF },
        { "JSON with NUL", Q10_EOF + 6 + 200, "00", -EBADMSG, "contains a NUL byte",
          Q10_EOF + 6 + 200 },
        { "JSON trailing garbage", Q10_EOF + 6, "7B 7D", -EBADMSG, "not a single object",
          Q10_EOF + 8 },
        { "JSON not an object", Q10_EOF + 6, "5B 5D 20*20", -EBADMSG, "not a single object",
          Q10_EOF + 6 + 22 },
};

START_TEST(test_corrupted)
{
        const struct corruption *c = &corruptions[_i];
        uint8_t patch[64];
        struct mrm_file f;
        struct mrm_error err;

        size_t n = test_parse_hex(c->bytes, patch, sizeof(patch));
        uint8_t saved[64];
        memcpy(saved, q10 + c->off, n);
        memcpy(q10 + c->off, patch, n);
        int r = check_image(q10, Q10_SIZE, &f, &err);
        memcpy(q10 + c->off, saved, n);

        ck_assert_msg(r == c->error, "%s: r=%d '%s' at 0x%llx", c->what, r, err.msg,
                      (unsigned long long)err.offset);
        ck_assert_msg(strstr(err.msg, c->msg), "%s: message '%s', expected '%s'", c->what,
                      err.msg, c->msg);
        if (c->err_off != NO_OFF)
                ck_assert_msg(err.offset == c->err_off, "%s: offset 0x%llx, expected 0x%llx",
                              c->what, (unsigned long long)err.offset,
                              (unsigned long long)c->err_off);
        else
                ck_assert_uint_ge(err.offset, Q10_EOF + 6);
        mrm_file_free(&f);
}
END_TEST

/* QEMU 10.x may put commands (SWITCHOVER_START, PING...) among the RAM
 * sections: the 18-byte PART section becomes two 9-byte PINGs. */
START_TEST(test_commands_in_tail)
{
        static const uint8_t pings[18] = {
                0x08, 0x00, 0x02, 0x00, 0x04, 1, 2, 3, 4,
                0x08, 0x00, 0x02, 0x00, 0x04, 5, 6, 7, 8 };
        uint8_t saved[sizeof(pings)];
        struct mrm_file f;
        struct mrm_error err;

        memcpy(saved, q10 + 0x260100d, sizeof(saved));
        memcpy(q10 + 0x260100d, pings, sizeof(pings));
        int r = check_image(q10, Q10_SIZE, &f, &err);
        memcpy(q10 + 0x260100d, saved, sizeof(saved));

        ck_assert_msg(r == 0, "%s", err.msg);
        ck_assert_uint_eq(f.n_commands, 2);
        ck_assert_uint_eq(f.n_ram_sections, 1);
        ck_assert_uint_eq(f.device_offset, Q10_DEVICE);
        mrm_file_free(&f);
}
END_TEST

/* Random byte changes in the parsed regions: any outcome but a crash, a
 * hang or an error without a message. */
START_TEST(test_random_corruption)
{
        static const uint64_t regions[][2] = {
                { 0, 0x190 }, { 0x2100000, 0x2100060 }, { 0x2501000, 0x2501040 },
                { 0x2601000, 0x2601040 }, { Q10_EOF, Q10_EOF + 64 }, { Q10_SIZE - 64, Q10_SIZE },
        };
        unsigned seed = 12345;
        unsigned refused = 0;

        for (unsigned iter = 0; iter < 3000; iter++) {
                const uint64_t *g = regions[rand_r(&seed) % ELEMENTSOF(regions)];
                uint64_t off = g[0] + (uint64_t)rand_r(&seed) % (g[1] - g[0]);
                uint8_t old = q10[off];
                struct mrm_file f;
                struct mrm_error err;

                q10[off] = (uint8_t)rand_r(&seed);
                int r = check_image(q10, Q10_SIZE, &f, &err);
                q10[off] = old;
                if (r < 0) {
                        refused++;
                        ck_assert_msg(r == -EBADMSG || r == -E2BIG, "r=%d at 0x%llx", r,
                                      (unsigned long long)off);
                        ck_assert(err.msg[0] != '\0');
                }
                mrm_file_free(&f);
        }
        ck_assert_uint_gt(refused, 1000);
}
END_TEST

/* ---- files built with the layout encoders ---------------------------- */

struct built {
        uint8_t *data;
        uint64_t size;
};

struct build_opts {
        const uint8_t *between;         /* after the START footer, before END */
        size_t between_len;
        const uint8_t *device;          /* device state before EOF */
        size_t device_len;
        const char *json;               /* vmdesc; NULL: no trailer at all */
};

/* Bit i set for pages i % 5 == 0; their slots filled with (i | 1). */
static bool built_bit(uint64_t i)
{
        return i % 5 == 0;
}

static void build(const struct mrm_layout *l, const struct build_opts *o, struct built *out)
{
        uint8_t tail[64];
        size_t json_len = o->json ? strlen(o->json) : 0;
        uint64_t size = l->ram_end_offset + l->ram_tail_size + o->between_len + o->device_len +
                        (o->json ? mrm_trailer_size(json_len) : 0);
        uint8_t *p = calloc(1, size);
        ck_assert_ptr_nonnull(p);

        mrm_encode_prologue(l, p);
        for (size_t i = 0; i < l->n_blocks; i++) {
                const struct mrm_block *b = &l->blocks[i];
                mrm_encode_block_record(b, p + b->record_offset);
                for (uint64_t k = 0; k < b->num_pages; k++) {
                        if (!built_bit(k))
                                continue;
                        p[b->bitmap_offset + k / 8] |= (uint8_t)(1U << (k % 8));
                        memset(p + b->pages_offset + k * QEMU_TPS, (int)(k | 1), QEMU_TPS);
                }
        }
        size_t n = mrm_encode_ram_tail(l, tail);
        uint64_t off = l->ram_end_offset;
        memcpy(p + off, tail, 13);              /* START EOS + footer */
        off += 13;
        if (o->between_len)
                memcpy(p + off, o->between, o->between_len);
        off += o->between_len;
        memcpy(p + off, tail + 13, n - 13);     /* END section */
        off += n - 13;
        if (o->device_len)
                memcpy(p + off, o->device, o->device_len);
        off += o->device_len;
        if (o->json)
                off += mrm_encode_trailer(o->json, json_len, p + off);
        ck_assert_uint_eq(off, size);
        out->data = p;
        out->size = size;
}

static const char small_json[] = "{\"page_size\": 4096, \"devices\": []}";

/* globalstate "paused" as QEMU 10.2 encodes it (format notes §14). */
static void globalstate(uint8_t *d, size_t *len)
{
        uint8_t *p = d;
        *p++ = QEMU_VM_SECTION_FULL;
        put_be32(p, 30);
        p += 4;
        *p++ = 11;
        memcpy(p, "globalstate", 11);
        p += 11;
        put_be32(p, 0);                 /* instance */
        put_be32(p + 4, 1);             /* version */
        put_be32(p + 8, 7);             /* strlen("paused") + 1 */
        p += 12;
        memset(p, 0, 32);
        memcpy(p, "paused", 6);
        p += 32;
        *p++ = 1;
        *p++ = 0;
        memset(p, 0, 66);
        p += 66;
        *p++ = QEMU_VM_SECTION_FOOTER;
        put_be32(p, 30);
        p += 4;
        *len = (size_t)(p - d);
}

static void two_blocks(struct mrm_layout *l, bool uuid)
{
        static const uint8_t u[QEMU_UUID_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                                  13, 14, 15, 16 };
        ck_assert_int_eq(mrm_layout_init(l, "pc-q35-10.2", 11, 9), 0);
        if (uuid)
                mrm_layout_set_uuid(l, u);
        ck_assert_int_eq(mrm_layout_add_block(l, "pc.ram", 6, 0x300000, QEMU_TPS), 0);
        ck_assert_int_eq(mrm_layout_add_block(l, "pc.bios", 7, 0x41000, QEMU_TPS), 0);
        ck_assert_int_eq(mrm_layout_compute(l), 0);
}

START_TEST(test_round_trip)
{
        struct mrm_layout l;
        struct built img;
        struct mrm_file f;
        struct mrm_error err;
        uint8_t dev[256];
        size_t dev_len;

        two_blocks(&l, true);
        globalstate(dev, &dev_len);
        struct build_opts o = { .device = dev, .device_len = dev_len, .json = small_json };
        build(&l, &o, &img);

        int r = check_image(img.data, img.size, &f, &err);
        ck_assert_msg(r == 0, "%s at 0x%llx", err.msg, (unsigned long long)err.offset);
        ck_assert_str_eq(f.layout.machine, "pc-q35-10.2");
        ck_assert(f.layout.has_uuid);
        ck_assert_int_eq(memcmp(f.layout.uuid, l.uuid, QEMU_UUID_LEN), 0);
        ck_assert_uint_eq(f.layout.ram_section_id, 9);
        ck_assert_uint_eq(f.layout.total_bytes, l.total_bytes);
        ck_assert_uint_eq(f.layout.prologue_size, l.prologue_size);
        ck_assert_uint_eq(f.layout.ram_end_offset, l.ram_end_offset);
        ck_assert_uint_eq(f.layout.ram_tail_size, l.ram_tail_size);
        ck_assert_uint_eq(f.device_offset, l.device_offset);
        ck_assert_uint_eq(f.eof_offset, l.device_offset + dev_len);
        ck_assert_uint_eq(f.vmdesc_len, strlen(small_json));
        ck_assert_uint_eq(f.n_ram_sections, 1);
        ck_assert_uint_eq(f.layout.n_blocks, 2);
        for (size_t i = 0; i < 2; i++) {
                const struct mrm_block *a = &l.blocks[i], *b = &f.layout.blocks[i];
                ck_assert_str_eq(a->name, b->name);
                ck_assert_uint_eq(a->used_length, b->used_length);
                ck_assert_uint_eq(a->num_pages, b->num_pages);
                ck_assert_uint_eq(a->record_offset, b->record_offset);
                ck_assert_uint_eq(a->header_offset, b->header_offset);
                ck_assert_uint_eq(a->bitmap_offset, b->bitmap_offset);
                ck_assert_uint_eq(a->bitmap_size, b->bitmap_size);
                ck_assert_uint_eq(a->pages_offset, b->pages_offset);
                ck_assert_uint_eq(a->end_offset, b->end_offset);
                ck_assert_uint_eq(f.stats[i].pages_present, DIV_ROUND_UP(a->num_pages, 5));
                ck_assert_uint_eq(f.stats[i].pages_zero,
                                  a->num_pages - DIV_ROUND_UP(a->num_pages, 5));
        }
        /* pc.bios has 65 pages: page 65..127 bits live in its second word. */
        ck_assert_uint_eq(f.layout.blocks[1].bitmap_size, 16);
        mrm_file_free(&f);

        /* Without the uuid the file is 40 bytes shorter up front and still reads. */
        free(img.data);
        mrm_layout_free(&l);
        two_blocks(&l, false);
        o.device_len = 0;
        build(&l, &o, &img);
        ck_assert_int_eq(check_image(img.data, img.size, &f, &err), 0);
        ck_assert(!f.layout.has_uuid);
        ck_assert_uint_eq(f.eof_offset, l.device_offset);
        mrm_file_free(&f);
        mrm_layout_free(&l);
        free(img.data);
}
END_TEST

/* Defects only a consistent file can show: pages offset misplaced with
 * the stream continuing where it says. */
START_TEST(test_misplaced_pages)
{
        static const struct { int64_t shift; const char *msg; } cases[] = {
                { -4096, "is not 1 MiB aligned" },
                { (int64_t)MAPPED_RAM_ALIGN, "(the first 1 MiB boundary after the bitmap)" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct mrm_layout l;
                struct built img;
                struct mrm_file f;
                struct mrm_error err;

                two_blocks(&l, false);
                struct mrm_block *b = &l.blocks[1];
                b->pages_offset += (uint64_t)cases[i].shift;
                b->end_offset += (uint64_t)cases[i].shift;
                l.ram_end_offset += (uint64_t)cases[i].shift;
                l.device_offset += (uint64_t)cases[i].shift;
                struct build_opts o = { .json = small_json };
                build(&l, &o, &img);

                ck_assert_int_eq(check_image(img.data, img.size, &f, &err), -EBADMSG);
                ck_assert_msg(strstr(err.msg, cases[i].msg), "%s", err.msg);
                ck_assert_uint_eq(err.offset, b->header_offset + 20);
                mrm_file_free(&f);
                mrm_layout_free(&l);
                free(img.data);
        }
}
END_TEST

START_TEST(test_duplicate_block)
{
        struct mrm_layout l;
        struct built img;
        struct mrm_file f;
        struct mrm_error err;

        ck_assert_int_eq(mrm_layout_init(&l, "pc", 2, 1), 0);
        ck_assert_int_eq(mrm_layout_add_block(&l, "aa", 2, 4096, QEMU_TPS), 0);
        ck_assert_int_eq(mrm_layout_add_block(&l, "ab", 2, 4096, QEMU_TPS), 0);
        ck_assert_int_eq(mrm_layout_compute(&l), 0);
        struct build_opts o = { .json = small_json };
        build(&l, &o, &img);
        img.data[l.blocks[1].record_offset + 2] = 'a';

        ck_assert_int_eq(check_image(img.data, img.size, &f, &err), -EBADMSG);
        ck_assert_str_eq(err.msg, "duplicate RAM block 'aa'");
        ck_assert_uint_eq(err.offset, l.blocks[1].record_offset);
        mrm_file_free(&f);
        mrm_layout_free(&l);
        free(img.data);
}
END_TEST

/* Commands and PART sections between START and END, up to the limits. */
START_TEST(test_tail_limits)
{
        static const uint8_t cmd[5] = { 0x08, 0x00, 0x0B, 0x00, 0x00 };
        static const uint8_t part[18] = { 0x02, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0x10,
                                          0x7E, 0, 0, 0, 9 };
        const struct { const uint8_t *item; size_t len; unsigned n; int r; } cases[] = {
                { cmd, sizeof(cmd), MRM_MAX_COMMANDS, 0 },
                { cmd, sizeof(cmd), MRM_MAX_COMMANDS + 1, -E2BIG },
                { part, sizeof(part), MRM_MAX_RAM_SECTIONS - 1, 0 },    /* + END */
                { part, sizeof(part), MRM_MAX_RAM_SECTIONS, -E2BIG },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct mrm_layout l;
                struct built img;
                struct mrm_file f;
                struct mrm_error err;
                _cleanup_free_ uint8_t *between = malloc(cases[i].len * cases[i].n);

                ck_assert_ptr_nonnull(between);
                for (unsigned k = 0; k < cases[i].n; k++)
                        memcpy(between + k * cases[i].len, cases[i].item, cases[i].len);
                two_blocks(&l, false);
                struct build_opts o = { .between = between,
                                        .between_len = cases[i].len * cases[i].n,
                                        .json = small_json };
                build(&l, &o, &img);
                int r = check_image(img.data, img.size, &f, &err);
                ck_assert_msg(r == cases[i].r, "case %zu: %d %s", i, r, err.msg);
                if (r == 0)
                        ck_assert_uint_eq(f.device_offset, img.size - mrm_trailer_size(strlen(small_json)));
                else
                        ck_assert_uint_eq(err.offset, l.ram_end_offset + 13 +
                                          cases[i].len * (cases[i].n - (cases[i].item == cmd)));
                mrm_file_free(&f);
                mrm_layout_free(&l);
                free(img.data);
        }
}
END_TEST

/* A command before the START section.  The layout is computed for a
 * machine name 5 bytes longer, so the 5-byte command keeps every offset. */
START_TEST(test_command_before_start)
{
        struct mrm_layout l, shortname;
        struct built img;
        struct mrm_file f;
        struct mrm_error err;
        uint8_t pro[512];

        ck_assert_int_eq(mrm_layout_init(&l, "pc-q35-10.2-xxxx", 16, 9), 0);
        ck_assert_int_eq(mrm_layout_add_block(&l, "pc.ram", 6, 0x100000, QEMU_TPS), 0);
        ck_assert_int_eq(mrm_layout_compute(&l), 0);
        struct build_opts o = { .json = small_json };
        build(&l, &o, &img);

        ck_assert_int_eq(mrm_layout_init(&shortname, "pc-q35-10.2", 11, 9), 0);
        ck_assert_int_eq(mrm_layout_add_block(&shortname, "pc.ram", 6, 0x100000, QEMU_TPS), 0);
        size_t n = mrm_encode_prologue(&shortname, pro);
        size_t start = n - 17 - 8;              /* START header + MEM_SIZE word */
        ck_assert_uint_eq(n + 5, l.prologue_size);
        memcpy(img.data, pro, start);
        memcpy(img.data + start, "\x08\x00\x0b\x00\x00", 5);
        memcpy(img.data + start + 5, pro + start, n - start);

        int r = check_image(img.data, img.size, &f, &err);
        ck_assert_msg(r == 0, "%s at 0x%llx", err.msg, (unsigned long long)err.offset);
        ck_assert_str_eq(f.layout.machine, "pc-q35-10.2");
        ck_assert_uint_eq(f.n_commands, 1);
        ck_assert_uint_eq(f.ram_offset, start + 5);
        mrm_file_free(&f);
        mrm_layout_free(&l);
        mrm_layout_free(&shortname);
        free(img.data);
}
END_TEST

/* ---- SAVD_MAX_BLOCKS over a sparse source ---------------------------- */

#define EXTENT_DATA_MAX 128

/* A sparse file (mem-source.h) with room for the bytes of its extents. */
struct sparse_file {
        struct mem_source src;
        struct mem_extent *ext;
        uint8_t (*data)[EXTENT_DATA_MAX];
};

static void sparse_file_free(struct sparse_file *s)
{
        free(s->ext);
        free(s->data);
}

/* Encoded bytes (at most EXTENT_DATA_MAX) for extent e, at off. */
static uint8_t *extent_at(struct sparse_file *s, struct mem_extent *e, uint64_t off)
{
        uint8_t *d = s->data[e - s->ext];

        e->off = off;
        e->data = d;
        return d;
}

/* n one-page blocks: a valid file for n <= SAVD_MAX_BLOCKS, and one with
 * an extra record in the stream otherwise. */
static void many_blocks(unsigned n, struct sparse_file *s, struct mrm_layout *l)
{
        char name[16];
        uint8_t *d;

        ck_assert_int_eq(mrm_layout_init(l, "pc", 2, 1), 0);
        for (unsigned i = 0; i < MIN(n, SAVD_MAX_BLOCKS); i++) {
                int k = snprintf(name, sizeof(name), "b%04u", i);
                ck_assert_int_eq(mrm_layout_add_block(l, name, (size_t)k, QEMU_TPS, QEMU_TPS), 0);
        }
        ck_assert_int_eq(mrm_layout_compute(l), 0);

        s->ext = calloc(n + 3, sizeof(*s->ext));
        s->data = calloc(n + 3, sizeof(*s->data));
        ck_assert(s->ext && s->data);
        struct mem_extent *e = s->ext;
        d = extent_at(s, e, 0);
        e->len = mrm_encode_prologue(l, d);
        put_be64(d + e->len - 8, (uint64_t)n * QEMU_TPS | RAM_SAVE_FLAG_MEM_SIZE);
        e++;
        uint64_t end = 0;
        for (unsigned i = 0; i < n; i++, e++) {
                struct mrm_block b = {};
                if (i < l->n_blocks) {
                        b = l->blocks[i];
                } else {        /* the same rule, one block too many */
                        b.name_len = (uint8_t)snprintf(b.name, sizeof(b.name), "b%04u", i);
                        b.used_length = b.page_size = QEMU_TPS;
                        b.record_offset = end;
                        b.header_offset = end + 1 + b.name_len + 8;
                        b.bitmap_offset = b.header_offset + 28;
                        b.pages_offset = ROUND_UP(b.bitmap_offset + 8, MAPPED_RAM_ALIGN);
                }
                e->len = mrm_encode_block_record(&b, extent_at(s, e, b.record_offset));
                end = b.pages_offset + b.used_length;
        }
        e->len = mrm_encode_ram_tail(l, extent_at(s, e, end));
        e++;
        e->len = mrm_encode_trailer("{}", 2, extent_at(s, e, end + l->ram_tail_size));
        s->src = (struct mem_source) {
                .ext = s->ext, .n = (size_t)(e - s->ext) + 1, .size = e->off + e->len,
        };
}

START_TEST(test_max_blocks)
{
        struct sparse_file s;
        struct mrm_layout l;
        struct mrm_file f;
        struct mrm_error err;

        many_blocks(SAVD_MAX_BLOCKS, &s, &l);
        ck_assert_int_eq(mrm_read(&f, mem_source_pread, &s.src, s.src.size, &err), 0);
        ck_assert_int_eq(mrm_verify(&f, mem_source_pread, &s.src, &err), 0);
        ck_assert_uint_eq(f.layout.n_blocks, SAVD_MAX_BLOCKS);
        ck_assert_uint_eq(f.pages_zero, SAVD_MAX_BLOCKS);
        ck_assert_uint_eq(f.pages_present, 0);
        mrm_file_free(&f);
        sparse_file_free(&s);
        mrm_layout_free(&l);

        many_blocks(SAVD_MAX_BLOCKS + 1, &s, &l);
        ck_assert_int_eq(mrm_read(&f, mem_source_pread, &s.src, s.src.size, &err), -E2BIG);
        ck_assert_str_eq(err.msg, "more than 1024 RAM blocks");
        ck_assert_uint_eq(err.offset, s.ext[SAVD_MAX_BLOCKS + 1].off);
        mrm_file_free(&f);
        sparse_file_free(&s);
        mrm_layout_free(&l);
}
END_TEST

static Suite *reader_suite(void)
{
        Suite *s = suite_create("reader");
        TCase *tc = tcase_create("qemu-file");

        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_q10_accepted);
        tcase_add_test(tc, test_q10_m0_pattern);
        tcase_add_test(tc, test_short_reads);
        tcase_add_test(tc, test_read_error);
        tcase_add_test(tc, test_truncated);
        tcase_add_loop_test(tc, test_corrupted, 0, (int)ELEMENTSOF(corruptions));
        tcase_add_test(tc, test_commands_in_tail);
        tcase_add_test(tc, test_random_corruption);
        suite_add_tcase(s, tc);

        tc = tcase_create("built");
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_round_trip);
        tcase_add_test(tc, test_misplaced_pages);
        tcase_add_test(tc, test_duplicate_block);
        tcase_add_test(tc, test_tail_limits);
        tcase_add_test(tc, test_command_before_start);
        tcase_add_test(tc, test_max_blocks);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        int r;

        load_q10();
        r = test_run_suite(reader_suite(), true);
        free(q10);
        return r;
}
