/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One mapped-ram output file being written: the file (a temporary name
 * renamed into place on commit, or an fd handed over by a client), its
 * layout, the shared-memory bitmap and the writer pool that puts page data
 * at its slots.  The only way a file becomes "complete" is
 * mrm_output_commit(): data -> bitmaps -> tail -> fdatasync -> rename ->
 * fsync(dir).  Anything else (error, abort, free without commit) removes
 * the temporary file.
 *
 * Threading: all calls come from one thread (the job's session); the
 * writer pool's worker threads run underneath.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrm-layout.h"
#include "shm-bitmap.h"

enum io_mode {
        IO_MODE_AUTO = 0,       /* O_DIRECT, else buffered (+DONTCACHE) */
        IO_MODE_DIRECT,         /* O_DIRECT or fail */
        IO_MODE_BUFFERED,       /* never O_DIRECT */
};

struct writer_config {
        unsigned n_workers;             /* 0: one per NUMA node */
        unsigned fake_nodes;            /* 0: real topology; else pretend N nodes */
        unsigned queue_depth;           /* in-flight writes per worker; 0: 32 */
        size_t buffer_size;             /* bytes per batch buffer; 0: 1 MiB */
        unsigned buffers_per_worker;    /* 0: 2 * queue_depth (bounds memory) */
        enum io_mode io_mode;
        uint64_t hold_bytes;            /* buffered before the first write (writer-pool.h) */
        struct buffer_cache *cache;     /* buffer memory kept between jobs; may be NULL */
};

struct mrm_output_options {
        const char *path;               /* final name; NULL when fd >= 0 */
        int fd;                         /* handed-over fd (not closed), or -1 */
        bool overwrite;                 /* replace an existing final name */
        struct writer_config writer;
};

struct buffer_cache;
struct mrm_output;

/* Takes ownership of *layout (computed).  On failure returns -errno and,
 * if err is non-NULL, a message naming what failed. */
int mrm_output_create(struct mrm_output **ret, struct mrm_layout *layout,
                      const struct mrm_output_options *opt, char *err, size_t errlen);

const struct mrm_layout *mrm_output_layout(const struct mrm_output *o);
struct shm_bitmap *mrm_output_bitmap(struct mrm_output *o);
/* "direct", "buffered" or "buffered+dontcache" */
const char *mrm_output_io_mode(const struct mrm_output *o);
/* Were the page slots reserved at create (daemon/slot-prealloc.h)? */
bool mrm_output_slots_reserved(const struct mrm_output *o);
/* First error text, or NULL. */
const char *mrm_output_error(const struct mrm_output *o);
/* Writer pool counters and features (struct wp_stats in writer-pool.h). */
struct wp_stats;
void mrm_output_writer_stats(struct mrm_output *o, struct wp_stats *out);

/* Where the TPS bytes of (block, page) go; the caller fills them before
 * the next call.  Batches contiguous pages into one write and sets their
 * bits when the batch is submitted (a full or non-contiguous batch, a
 * ZERO for one of its pages, a drain).  Blocks for a free buffer when the
 * disk is behind (back-pressure).  A page still in flight from an earlier
 * pass is waited for first. */
int mrm_output_page(struct mrm_output *o, unsigned block, uint64_t page, void **dst);
/* mrm_output_page() and a copy of the TPS bytes at src (streaming
 * stores: cheaper than memcpy for data only the disk reads next). */
int mrm_output_copy_page(struct mrm_output *o, unsigned block, uint64_t page, const void *src);
/* A zero page: clears the bit.  Right after a batch's data (at most
 * 16 in a row, GAP_FILL_MAX_PAGES) its slot is written as zeros with the
 * batch, so that scattered data still makes large writes; otherwise
 * nothing is written. */
int mrm_output_zero(struct mrm_output *o, unsigned block, uint64_t page);
/* Zero-copy: write npages straight from caller memory (page aligned); the
 * memory must stay valid until mrm_output_drain() returns.  Sets the bits.
 * node < 0: any worker. */
int mrm_output_write_from(struct mrm_output *o, unsigned block, uint64_t first_page,
                          uint64_t npages, const void *src, int node);
/* Submit partial batches and wait for all writes; first error or 0. */
int mrm_output_drain(struct mrm_output *o);
/* Device state, EOF and vmdesc bytes after the RAM tail, in order. */
int mrm_output_append(struct mrm_output *o, const void *buf, size_t len);
/* Make the file complete and durable; see the top of this file. */
int mrm_output_commit(struct mrm_output *o);
/* Is name (a directory entry) one of the ".<name>.XXXXXX.part" temporary
 * files an output is written to before its commit?  What a crashed savd
 * leaves behind; see remove_stale_temps(). */
bool mrm_output_is_temp_name(const char *name);
/* Stop, and remove the temporary file (no-op after commit). */
void mrm_output_abort(struct mrm_output *o);
void mrm_output_free(struct mrm_output *o);
