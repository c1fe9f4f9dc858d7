/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared helpers of the writer-engine tests (see writer-util.h).
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "macro.h"
#include "mrm-reader.h"
#include "writer-util.h"

void tw_layout(struct mrm_layout *l, const uint64_t *pages, size_t n)
{
        ck_assert_int_le(n, TW_MAX_BLOCKS);
        ck_assert_int_eq(mrm_layout_init(l, "pc-q35-7.2", 10, 2), 0);
        for (size_t i = 0; i < n; i++) {
                char name[24];

                snprintf(name, sizeof(name), "b%zu", i);
                ck_assert_int_eq(mrm_layout_add_block(l, name, strlen(name),
                                                      pages[i] * QEMU_TPS, QEMU_TPS), 0);
        }
        ck_assert_int_eq(mrm_layout_compute(l), 0);
}

void tw_model_init(struct tw_model *m, const struct mrm_layout *l)
{
        memset(m, 0, sizeof(*m));
        m->n_blocks = l->n_blocks;
        for (size_t i = 0; i < l->n_blocks; i++) {
                m->num_pages[i] = l->blocks[i].num_pages;
                m->pass[i] = calloc(l->blocks[i].num_pages, 1);
                ck_assert_ptr_nonnull(m->pass[i]);
        }
}

void tw_model_free(struct tw_model *m)
{
        for (size_t i = 0; i < m->n_blocks; i++)
                free(m->pass[i]);
        memset(m, 0, sizeof(*m));
}

void tw_fill_page(void *dst, unsigned block, uint64_t page, unsigned pass)
{
        uint64_t x = (page + 1) * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)block << 48) ^
                     ((uint64_t)pass << 40) ^ 0x5DEECE66DULL;
        uint64_t *w = dst;

        for (size_t i = 0; i < QEMU_TPS / 8; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                w[i] = x;
        }
}

void tw_page(struct mrm_output *o, struct tw_model *m, unsigned block, uint64_t page, unsigned pass)
{
        void *dst = NULL;

        ck_assert_int_eq(mrm_output_page(o, block, page, &dst), 0);
        ck_assert_ptr_nonnull(dst);
        tw_fill_page(dst, block, page, pass);
        m->pass[block][page] = (uint8_t)pass;
}

void tw_zero(struct mrm_output *o, struct tw_model *m, unsigned block, uint64_t page)
{
        ck_assert_int_eq(mrm_output_zero(o, block, page), 0);
        m->pass[block][page] = 0;
}

struct writer_config tw_small_config(enum io_mode mode)
{
        return (struct writer_config){
                .n_workers = 2,
                .queue_depth = 4,
                .buffer_size = 64 << 10,
                .buffers_per_worker = 8,
                .io_mode = mode,
        };
}

char *tw_mkdtemp(void)
{
        char *dir = strdup("tw-XXXXXX");

        ck_assert_ptr_nonnull(dir);
        ck_assert_ptr_nonnull(mkdtemp(dir));
        return dir;
}

int tw_count_entries(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *e;
        int n = 0;

        ck_assert_ptr_nonnull(d);
        while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                        n++;
        closedir(d);
        return n;
}

void tw_rmdir(char *dir)
{
        ck_assert_int_eq(tw_count_entries(dir), 0);
        ck_assert_int_eq(rmdir(dir), 0);
        free(dir);
}

static void read_exact(int fd, void *buf, size_t len, uint64_t off)
{
        ck_assert_int_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
}

static void check_bytes(int fd, const void *want, size_t len, uint64_t off)
{
        _cleanup_free_ uint8_t *got = malloc(len ? len : 1);

        ck_assert_ptr_nonnull(got);
        read_exact(fd, got, len, off);
        ck_assert_msg(memcmp(got, want, len) == 0, "bytes differ at offset 0x%llx",
                      (unsigned long long)off);
}

static void check_stream_pieces(int fd, const struct mrm_layout *l)
{
        uint8_t buf[4096];

        ck_assert_uint_le(mrm_prologue_size(l), sizeof(buf));
        ck_assert_uint_eq(mrm_encode_prologue(l, buf), mrm_prologue_size(l));
        check_bytes(fd, buf, mrm_prologue_size(l), 0);
        for (size_t i = 0; i < l->n_blocks; i++) {
                size_t n = mrm_encode_block_record(&l->blocks[i], buf);

                check_bytes(fd, buf, n, l->blocks[i].record_offset);
        }
        check_bytes(fd, buf, mrm_encode_ram_tail(l, buf), l->ram_end_offset);
}

static void check_block(int fd, const struct mrm_block *b, unsigned idx, const uint8_t *pass)
{
        _cleanup_free_ uint8_t *bm = malloc(b->bitmap_size);
        uint8_t want[QEMU_TPS], got[QEMU_TPS];

        ck_assert_ptr_nonnull(bm);
        read_exact(fd, bm, b->bitmap_size, b->bitmap_offset);
        for (uint64_t w = 0; w < b->bitmap_size / 8; w++) {
                uint64_t expect = 0;

                for (uint64_t bit = 0; bit < 64 && w * 64 + bit < b->num_pages; bit++)
                        if (pass[w * 64 + bit])
                                expect |= 1ULL << bit;
                ck_assert_msg(get_le64(bm + w * 8) == expect,
                              "block %u bitmap word %llu: %016llx, want %016llx", idx,
                              (unsigned long long)w, (unsigned long long)get_le64(bm + w * 8),
                              (unsigned long long)expect);
        }
        for (uint64_t p = 0; p < b->num_pages; p++) {
                if (!pass[p])
                        continue;
                tw_fill_page(want, idx, p, pass[p]);
                read_exact(fd, got, QEMU_TPS, b->pages_offset + p * QEMU_TPS);
                ck_assert_msg(memcmp(got, want, QEMU_TPS) == 0,
                              "block %u page %llu: slot does not hold pass %u", idx,
                              (unsigned long long)p, pass[p]);
        }
}

static ssize_t fd_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
        ssize_t n = pread(*(int *)opaque, buf, len, (off_t)off);

        return n < 0 ? -errno : n;
}

static void check_with_reader(int fd, const struct mrm_layout *l, const struct tw_model *m)
{
        struct mrm_file f;
        struct mrm_error e = { 0 };
        struct stat st;
        uint64_t present = 0;

        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_msg(mrm_read(&f, fd_pread, &fd, (uint64_t)st.st_size, &e) == 0,
                      "reader: %s at 0x%llx", e.msg, (unsigned long long)e.offset);
        ck_assert_msg(mrm_verify(&f, fd_pread, &fd, &e) == 0,
                      "verifier: %s at 0x%llx", e.msg, (unsigned long long)e.offset);
        ck_assert_uint_eq(f.layout.n_blocks, l->n_blocks);
        for (size_t i = 0; i < l->n_blocks; i++) {
                ck_assert_uint_eq(f.layout.blocks[i].pages_offset, l->blocks[i].pages_offset);
                ck_assert_uint_eq(f.layout.blocks[i].bitmap_offset, l->blocks[i].bitmap_offset);
                for (uint64_t p = 0; p < m->num_pages[i]; p++)
                        present += m->pass[i][p] != 0;
        }
        ck_assert_uint_eq(f.pages_present, present);
        mrm_file_free(&f);
}

void tw_check_file(int fd, const struct mrm_layout *l, const struct tw_model *m,
                   const void *tail, size_t tail_len)
{
        struct stat st;

        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_uint_eq((uint64_t)st.st_size, l->device_offset + tail_len);
        check_stream_pieces(fd, l);
        for (size_t i = 0; i < l->n_blocks; i++)
                check_block(fd, &l->blocks[i], (unsigned)i, m->pass[i]);
        if (tail_len)
                check_bytes(fd, tail, tail_len, l->device_offset);
        if (tail_len)
                check_with_reader(fd, l, m);
}

size_t tw_trailer(uint8_t **buf)
{
        static const char json[] = "{\"page_size\": 4096, \"devices\": []}";
        size_t n = mrm_trailer_size(strlen(json));

        *buf = malloc(n);
        ck_assert_ptr_nonnull(*buf);
        ck_assert_uint_eq(mrm_encode_trailer(json, strlen(json), *buf), n);
        return n;
}
