/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libsavd: the client side of savd's native VMM protocol (savd/proto.h,
 * described in proto/native.md).  A VMM links it to save its guest RAM
 * into a mapped-ram file through savd, zero-copy when it hands over the
 * memory fds of its RAM blocks, and to restore such a file straight into
 * its memory fds.
 *
 * Save, zero-copy and live:
 *
 *     struct savd_client *c;
 *     savd_connect(&c, data_uri);              // from `savctl save`
 *     savd_save_hello(c, "vm1", SAVD_CAP_ALL);
 *     int ram = savd_save_block(c, "ram0", size, memfd, 0);
 *     savd_save_start(c);                      // the file now exists
 *     struct savd_dirty_log log;
 *     savd_dirty_log_new(&log, size / SAVD_NATIVE_PAGE_SIZE);
 *     savd_save_track_dirty(c, ram, &log);
 *     savd_save_pass(c, 0, &st);               // first pass: every page
 *     ...guest runs, the VMM calls savd_dirty_mark(&log, page) after
 *     each write; repeat savd_save_pass(c, 0, &st) while st.pages_queued
 *     is large...
 *     pause the VM; savd_save_pass(c, SAVD_SCAN_FINAL, &st);
 *     savd_save_device_state(c, blob, len);
 *     savd_save_complete(c, &res);             // durable when this returns 0
 *     savd_client_free(c);
 *
 * Inline (no fds): savd_save_block(c, name, size, -1, 0) and
 * savd_save_pages() instead of the passes.
 *
 * Restore through the daemon: `restore {"file": F, "protocol": "native"}`
 * on the control socket (`savctl restore F --native`) returns a data URI
 * (or, with "channel": "fd", a connected descriptor), and
 *
 *     savd_connect(&c, data_uri);              // or savd_client_from_fd(&c, fd)
 *     savd_restore_hello(c, &info);            // blocks of the file
 *     for each info.blocks[i]: create memory, savd_restore_block(c, ...)
 *     savd_restore_run(c, &blob, &blob_len, &res);
 *
 * Memory handed to savd must be a memfd or a regular file (savd maps it
 * shared) and must stay at least as large as registered until the save or
 * restore finished; savd_memfd_new() makes one sealed against shrinking.
 * Functions return 0 (or a non-negative value) on success and a negative
 * errno on failure; savd_client_error() then says what happened (for an
 * ERROR from savd, its text).  After a failure the connection is unusable
 * except for savd_client_free().  One thread uses a client at a time.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <savd/proto.h>

#ifdef __cplusplus
extern "C" {
#endif

struct savd_client;

/* Connect to a data URI ("unix:PATH", or a plain socket path): the one a
 * save or native restore job of savd returned. */
int savd_connect(struct savd_client **ret, const char *uri);
/* Use a connected stream socket (taken over: closed by savd_client_free). */
int savd_client_from_fd(struct savd_client **ret, int fd);
void savd_client_free(struct savd_client *c);
/* Text of the last failure ("" if none). */
const char *savd_client_error(const struct savd_client *c);

/* What savd told in its reply to HELLO. */
struct savd_server_info {
        uint32_t version;
        uint64_t caps;
        uint64_t max_blocks;
        uint64_t max_block_size;
        uint64_t max_device_state;
        uint32_t max_pages_per_frame;
};
const struct savd_server_info *savd_client_server(const struct savd_client *c);

/* ---- save ---- */

/* caps: SAVD_CAP_* the client will use. */
int savd_save_hello(struct savd_client *c, const char *vm_name, uint64_t caps);
/* Register a RAM block before savd_save_start(); mem_fd < 0 for inline
 * pages only.  Returns the block index (>= 0). */
int savd_save_block(struct savd_client *c, const char *name, uint64_t length, int mem_fd,
                    uint64_t fd_offset);
int savd_save_start(struct savd_client *c);

/* A shared dirty bitmap: one bit per page, in a memfd savd maps too. */
struct savd_dirty_log {
        int fd;
        uint64_t *words;
        uint64_t npages;
        size_t size;                    /* bytes mapped */
};
int savd_dirty_log_new(struct savd_dirty_log *log, uint64_t npages);
void savd_dirty_log_free(struct savd_dirty_log *log);
/* Mark a page dirty; call after the page's new content is in memory. */
static inline void savd_dirty_mark(struct savd_dirty_log *log, uint64_t page)
{
        __atomic_fetch_or(&log->words[page / 64], 1ULL << (page % 64), __ATOMIC_RELEASE);
}
/* Hand the bitmap of a block with a memory fd to savd. */
int savd_save_track_dirty(struct savd_client *c, unsigned block, const struct savd_dirty_log *log);

/* Inline pages [first_page, first_page + npages) of a block from data
 * (npages * SAVD_NATIVE_PAGE_SIZE bytes); zero pages travel as mask bits. */
int savd_save_pages(struct savd_client *c, unsigned block, uint64_t first_page,
                    uint64_t npages, const void *data);

struct savd_pass_stats {
        uint64_t pass;                  /* 1, 2, ... */
        uint64_t pages_dirty;           /* pages looked at */
        uint64_t pages_queued;          /* pages being written */
        uint64_t pages_zero;
        uint64_t bytes_queued;
        uint64_t node_mask;             /* bit n: pages went to NUMA node n's writers */
};
/* One zero-copy pass over the dirty pages of blocks with memory fds
 * (every page on a block's first pass, or with SAVD_SCAN_ALL);
 * SAVD_SCAN_FINAL for the last one, with the VM paused. */
int savd_save_pass(struct savd_client *c, unsigned flags, struct savd_pass_stats *st);
int savd_save_device_state(struct savd_client *c, const void *blob, size_t len);

struct savd_save_result {
        uint64_t pages_written;
        uint64_t pages_zero;
        uint64_t bytes_written;
        uint64_t file_size;
        char io_mode[32];
};
/* Finish: returns 0 once the file is complete and on disk. */
int savd_save_complete(struct savd_client *c, struct savd_save_result *res);

/* ---- restore ---- */

struct savd_restore_block {
        char name[SAVD_NATIVE_BLOCK_NAME_MAX + 1];
        uint64_t length;
};
struct savd_restore_info {
        char vm_name[SAVD_NATIVE_VM_NAME_MAX + 1];
        uint64_t device_state_len;
        unsigned n_blocks;
        const struct savd_restore_block *blocks;        /* owned by the client */
};
int savd_restore_hello(struct savd_client *c, struct savd_restore_info *info);
/* Memory for one of info->blocks: length bytes at fd_offset of mem_fd,
 * open read-write. */
int savd_restore_block(struct savd_client *c, const char *name, int mem_fd, uint64_t fd_offset);

struct savd_restore_result {
        uint64_t pages_read;
        uint64_t pages_zero;
        uint64_t bytes_read;
        char io_mode[32];
};
/* Fill the memory; *blob (malloc'ed, may be NULL when empty) receives the
 * device state. */
int savd_restore_run(struct savd_client *c, void **blob, size_t *blob_len,
                     struct savd_restore_result *res);

/* ---- memory ---- */

/* A memfd of size bytes, sealed against shrinking (MFD_CLOEXEC).  Returns
 * the fd or a negative errno. */
int savd_memfd_new(const char *name, uint64_t size);

#ifdef __cplusplus
}
#endif
