/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A sparse file in memory, as a pread callback for the mapped-ram reader
 * (mrm_pread_fn in mrm-reader.h): a size and a few extents of data, zeros
 * everywhere else.  A mapped-ram file is mostly holes (page slots are
 * 1 MiB aligned), so tests and fuzz harnesses describe one this way rather
 * than hold it.  Optionally every read is cut short, to check that the
 * reader copes.  No libcheck: the fuzz harnesses use it too.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct mem_extent {
        uint64_t off;
        const uint8_t *data;
        size_t len;             /* may reach past the end of the file */
};

struct mem_source {
        const struct mem_extent *ext;   /* where extents overlap, later ones win */
        size_t n;
        uint64_t size;                  /* reads from here on return 0 (EOF) */
        size_t max_read;                /* > 0: no read returns more */
};

/* pread on a struct mem_source (opaque): returns the bytes copied, fewer
 * than asked at the end of the file or beyond max_read. */
ssize_t mem_source_pread(void *opaque, void *buf, size_t len, uint64_t off);
