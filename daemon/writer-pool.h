/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A pool of writer threads for one output file.  Each worker is placed on
 * a NUMA node, owns an io_uring ring, a set of node-local aligned buffers
 * (registered with the ring when the kernel lets us) and the output fd
 * (registered too).  The producer takes a request slot with a buffer
 * (wp_get), fills it, and hands it back (wp_submit); the worker writes it
 * at its file offset and calls the completion hook on its own thread.
 * Back-pressure: wp_get blocks while every slot is queued or in flight, so
 * memory is bounded by workers * slots * buffer_size.
 *
 * A pool may hold writes back (hold_bytes): the workers then write only
 * what is queued beyond the last hold_bytes, so the disk trails the
 * producer by that much, until wp_drain or until the producer has to wait
 * for a slot; from then on they write everything.  A VMM streaming faster
 * than the disk hands over a stream of up to hold_bytes without the write
 * path taking CPU from it, and a larger one with that much less.
 *
 * The first failed write stops the pool: its errno and file offset are
 * kept, requests still queued are dropped, and every later wp_get,
 * wp_submit and wp_drain returns that error.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer-cache.h"
#include "numa-topo.h"

/* Limits on the pool's configuration. */
#define WP_MAX_WORKERS          256U
#define WP_MAX_QUEUE_DEPTH      1024U
#define WP_MAX_SLOTS            4096U           /* buffers per worker */
#define WP_MAX_BUFFER_SIZE      (64U << 20)
/* Per worker, the first WP_BASE_BYTES of buffers are the base: always
 * available and registered with the ring.  Buffers beyond it are charged
 * to the daemon's budget (buffer-cache.h) while in use; when the budget is
 * spent, wp_get waits (retrying every WP_BUDGET_RETRY_NS) as it does for
 * the disk.  Zero-copy requests (src set) are charged alike although they
 * leave their buffer untouched: the base alone keeps enough of them in
 * flight for the disk. */
#define WP_BASE_BYTES           (64U << 20)
#define WP_BUDGET_RETRY_NS      2000000L
#define WP_BUFFER_ALIGN         4096U           /* O_DIRECT-safe alignment */

struct wp_req {
        /* set by the pool */
        unsigned worker;
        unsigned slot;
        void *buf;                      /* this slot's buffer, buffer_size bytes */
        /* set by the producer before wp_submit */
        const void *src;                /* NULL: write from buf */
        uint64_t offset;                /* file offset */
        size_t len;
        uint64_t tag[4];                /* for the completion hook */
        /* private */
        size_t done;
        uint32_t next;
};

/* Called on a worker thread after a request was written completely. */
typedef void (*wp_complete_fn)(void *opaque, const struct wp_req *r);

struct wp_params {
        const struct numa_topo *topo;
        struct buffer_cache *cache;     /* where buffer memory comes from; may be NULL */
        unsigned n_workers;             /* >= 1; worker i runs on node i % n_nodes */
        unsigned queue_depth;           /* in-flight writes per worker */
        unsigned slots_per_worker;      /* buffers per worker (>= 1) */
        size_t buffer_size;             /* multiple of WP_BUFFER_ALIGN */
        int fd;                         /* output file, open for writing */
        int rw_flags;                   /* RWF_* for every write (e.g. RWF_DONTCACHE) */
        bool no_fixed_buffers;          /* do not register buffers */
        uint64_t hold_bytes;            /* queue this much before writing; 0: none */
        wp_complete_fn complete;
        void *opaque;
};

struct wp_stats {
        uint64_t writes;                /* write SQEs submitted (incl. resubmits) */
        uint64_t short_writes;
        uint64_t eagain;
        uint64_t wakes;                 /* eventfd wake-ups sent to workers */
        unsigned fixed_buffers;         /* workers using registered buffers */
        unsigned fixed_file;            /* workers using the registered fd */
        unsigned setup_flags;           /* IORING_SETUP_* accepted by worker 0 */
};

struct writer_pool;

/* Starts the workers; fails (-errno) if any worker cannot set up its ring
 * or buffers, with a short reason in err. */
int wp_new(struct writer_pool **ret, const struct wp_params *p, char *err, size_t errlen);
/* Stops the workers after the queued writes finished (or failed). */
void wp_free(struct writer_pool *pool);

unsigned wp_n_workers(const struct writer_pool *pool);
unsigned wp_worker_node(const struct writer_pool *pool, unsigned worker);

/* A free request slot of worker (or of any worker, round-robin, when
 * worker < 0); blocks until one is free.  Returns -errno once the pool
 * failed. */
int wp_get(struct writer_pool *pool, int worker, struct wp_req **ret);
/* wp_get without waiting: -EAGAIN when no slot is free (or the budget
 * allows none). */
int wp_try_get(struct writer_pool *pool, int worker, struct wp_req **ret);
/* Give an unused slot back without writing it. */
void wp_put(struct writer_pool *pool, struct wp_req *r);
/* Queue r (offset, len and optionally src set) to its worker. */
int wp_submit(struct writer_pool *pool, struct wp_req *r);
/* Fail the pool with -ECANCELED (unless it failed already): queued
 * requests are dropped, writes in flight finish. */
void wp_cancel(struct writer_pool *pool);
/* Wait until nothing is queued or in flight (ending the hold); the first
 * error or 0. */
int wp_drain(struct writer_pool *pool);
/* The first error (0 if none) and the file offset it happened at. */
int wp_error(struct writer_pool *pool, uint64_t *offset);
void wp_get_stats(struct writer_pool *pool, struct wp_stats *out);
