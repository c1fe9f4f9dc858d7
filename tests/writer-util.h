/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers shared by the writer-engine tests: a small multi-block layout,
 * page contents that differ per block, page and pass, a model of what each
 * slot should hold, and a checker that reads a finished file back with
 * plain pread and compares every byte that matters against the model, the
 * layout encoders and the mapped-ram reader/verifier.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrm-layout.h"
#include "mrm-output.h"

#define TW_MAX_BLOCKS 4

/* What the file must say about each page: 0 = bit clear, v > 0 = bit set
 * and the slot holds the contents of pass v. */
struct tw_model {
        size_t n_blocks;
        uint64_t num_pages[TW_MAX_BLOCKS];
        uint8_t *pass[TW_MAX_BLOCKS];
};

/* Blocks of the given page counts, named "b0", "b1", ...; machine
 * "pc-q35-7.2", RAM section id 2. */
void tw_layout(struct mrm_layout *l, const uint64_t *pages, size_t n);
void tw_model_init(struct tw_model *m, const struct mrm_layout *l);
void tw_model_free(struct tw_model *m);

/* Deterministic 4096 bytes for (block, page, pass). */
void tw_fill_page(void *dst, unsigned block, uint64_t page, unsigned pass);

/* Write / zero one page through o and record it in m. */
void tw_page(struct mrm_output *o, struct tw_model *m, unsigned block, uint64_t page, unsigned pass);
void tw_zero(struct mrm_output *o, struct tw_model *m, unsigned block, uint64_t page);

/* A small, quick writer configuration (64 KiB buffers, depth 4). */
struct writer_config tw_small_config(enum io_mode mode);

/* A fresh directory under the current one (the build tree); removed with
 * tw_rmdir() which also fails the test if anything is left in it. */
char *tw_mkdtemp(void);
void tw_rmdir(char *dir);
/* Number of entries in dir other than . and .. */
int tw_count_entries(const char *dir);

/* Check the file at fd (size, prologue, block records, RAM tail, bitmaps,
 * every set slot, tail bytes) against layout and model; tail/tail_len are
 * the bytes appended after the RAM tail.  Also runs mrm_read/mrm_verify. */
void tw_check_file(int fd, const struct mrm_layout *l, const struct tw_model *m,
                   const void *tail, size_t tail_len);
/* The EOF + vmdesc trailer appended by the tests (valid for the verifier). */
size_t tw_trailer(uint8_t **buf);
