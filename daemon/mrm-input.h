/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reading a mapped-ram file back for a restore.  mrm_input_open() opens the
 * file (a second, O_DIRECT descriptor for the page slots where the file
 * system takes it), parses and verifies it with the proto/ reader and
 * refuses it before anything else happens if it is not valid.  Then the
 * present pages -- runs of set bits, each run cut into reads of at most
 * read_size bytes, never crossing a block -- are read with several reads in
 * flight through io_uring (or pread(2) where io_uring is not available):
 *
 *  - mrm_input_read_pages() reads into the input's own aligned buffers and
 *    hands each run to a callback in file order (a consumer that streams
 *    the pages on, such as a restore into QEMU's -incoming);
 *  - mrm_input_read_into() reads straight into memory the caller gives for
 *    each block (a restore into guest memory), page slots at their page
 *    index; pages whose bit is clear are not read, so that memory keeps
 *    what it held (zero, for fresh guest memory).
 *
 * Memory is bounded whatever the file says: queue_depth buffers of
 * read_size bytes (read_pages only) and one bitmap chunk of
 * MRM_BITMAP_CHUNK bytes; bitmaps are read a chunk at a time.
 *
 * Threading: one thread uses an input at a time.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrm-output.h"         /* enum io_mode */
#include "mrm-reader.h"

#define MRM_INPUT_ALIGN                 4096U           /* O_DIRECT buffer alignment */
#define MRM_INPUT_DEFAULT_QUEUE_DEPTH   8U
#define MRM_INPUT_MAX_QUEUE_DEPTH       128U
#define MRM_INPUT_DEFAULT_READ_SIZE     (2U << 20)
#define MRM_INPUT_MAX_READ_SIZE         (64U << 20)
#define MRM_INPUT_ERR_MAX               512U

struct mrm_input_options {
        enum io_mode io_mode;           /* AUTO: O_DIRECT if possible, else buffered */
        unsigned queue_depth;           /* reads in flight; 0: default */
        size_t read_size;               /* bytes per read, multiple of 4096; 0: default */
        bool no_uring;                  /* pread(2) even when io_uring works (tests) */
        /* Limits on what the file declares; 0: the format's own. */
        unsigned max_blocks;
        uint64_t max_block_size;
};

/* A run of present pages of one block, read and ready. */
struct mrm_run {
        unsigned block;                 /* index in the file's layout */
        uint64_t first_page;
        uint64_t npages;
        uint64_t offset;                /* file offset of the first page's slot */
        void *data;                     /* npages * QEMU_TPS bytes */
};

/* Returns 0 to go on, or a negative errno that stops the reading (and is
 * what mrm_input_read_*() then return). */
typedef int (*mrm_run_fn)(void *opaque, const struct mrm_run *run);

struct mrm_input;

/*
 * Open fd (not closed, not changed: O_DIRECT goes on a descriptor of our
 * own) or, when fd < 0, path; path also names the file in messages.
 * Returns 0, or -errno with a message in err: -EBADMSG / -E2BIG for a file
 * that is not a valid mapped-ram file (the message names the defect and
 * its offset), -EINVAL for bad options, else what the system said.
 */
int mrm_input_open(struct mrm_input **ret, int fd, const char *path,
                   const struct mrm_input_options *opt, char *err, size_t errlen);
void mrm_input_free(struct mrm_input *in);

/* The parsed and verified file: layout, capabilities, page counts per
 * block, device_offset, file_size, vmdesc. */
const struct mrm_file *mrm_input_file(const struct mrm_input *in);
/* "direct" or "buffered", then "+uring" or "+pread". */
const char *mrm_input_io_mode(const struct mrm_input *in);
/* The first read error (names the file, offset and errno), or NULL. */
const char *mrm_input_error(const struct mrm_input *in);

int mrm_input_read_pages(struct mrm_input *in, mrm_run_fn fn, void *opaque);
/* dest[i]: at least used_length bytes for block i, MRM_INPUT_ALIGN
 * aligned, or NULL to skip that block.  fn may be NULL. */
int mrm_input_read_into(struct mrm_input *in, void *const *dest, mrm_run_fn fn, void *opaque);

/* Exactly len bytes at off through the buffered descriptor (stream parts
 * of the file such as the device state); -EIO past the end. */
int mrm_input_pread(struct mrm_input *in, void *buf, size_t len, uint64_t off);
