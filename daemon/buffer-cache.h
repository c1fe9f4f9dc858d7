/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Write-buffer memory kept between jobs.  Fresh anonymous memory costs a
 * page fault and the kernel zeroing every page on first touch; for a save
 * that buffers a burst of a GiB that is a quarter of a CPU-second, spent
 * on the thread that should be draining the VMM's socket.  The writer
 * pools of a daemon therefore give their buffer regions back here when a
 * job ends, and the next job with the same buffer size on the same node
 * takes them over with their pages still mapped.
 *
 * Cached regions are marked MADV_FREE: the kernel may take their pages
 * back whenever it needs memory (they then fault in as zero pages again),
 * so the cache never holds memory the host wants elsewhere.  The bytes
 * kept are bounded by the limit given at creation.  Thread-safe: pools
 * of several jobs allocate and free from their own threads.
 *
 * It also holds the daemon's budget for buffers in use: each job may fill
 * a base of buffers of its own, and buffers beyond that are charged here
 * while they hold data the disk has not taken.  Many VMMs saving at once
 * into one slow disk (a host parking all its VMs) then share one bounded
 * amount of memory instead of each holding max-inflight-bytes.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "numa-topo.h"

#define BUFFER_CACHE_MAX_REGIONS 64U    /* regions kept, whatever their size */

struct buffer_cache;

/* max_bytes: the most memory kept (0: keep nothing). */
int buffer_cache_new(struct buffer_cache **ret, uint64_t max_bytes);
/* A new limit for regions given back from now on. */
void buffer_cache_set_max(struct buffer_cache *c, uint64_t max_bytes);
/* Frees every cached region; regions still in use stay with their pools
 * (they are unmapped when given back). */
void buffer_cache_free(struct buffer_cache *c);

/* size bytes of page-aligned memory preferring topology node k: a cached
 * region of that size and node, else a fresh one (numa_topo_alloc).
 * c may be NULL.  NULL with errno set on failure.  The content is
 * undefined. */
void *buffer_cache_get(struct buffer_cache *c, const struct numa_topo *t, unsigned node,
                       size_t size);
/* Give a region from buffer_cache_get() back: cached when it fits under
 * the limit, unmapped otherwise.  c may be NULL. */
void buffer_cache_put(struct buffer_cache *c, const struct numa_topo *t, unsigned node,
                      void *p, size_t size);

/* The budget for charged buffers (UINT64_MAX, the default: no limit). */
void buffer_cache_set_budget(struct buffer_cache *c, uint64_t bytes);
/* Charge bytes to the budget: false, and nothing charged, when that would
 * exceed it.  Always true for c NULL. */
bool buffer_cache_charge(struct buffer_cache *c, uint64_t bytes);
void buffer_cache_uncharge(struct buffer_cache *c, uint64_t bytes);

struct buffer_cache_stats {
        uint64_t cached_bytes;
        uint64_t hits, misses;
        uint64_t charged_bytes;         /* buffers in use beyond the bases */
        uint64_t budget_bytes;
};
void buffer_cache_get_stats(struct buffer_cache *c, struct buffer_cache_stats *out);
