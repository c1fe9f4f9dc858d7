/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Write-buffer memory kept between jobs (see buffer-cache.h).  A small
 * array of regions under one mutex: lookups happen once per writer pool,
 * not per write, so nothing cleverer is needed.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "buffer-cache.h"
#include "macro.h"

struct region {
        void *p;
        size_t size;
        int real_node;          /* numa_topo_real_node(): -1 without NUMA */
};

struct buffer_cache {
        pthread_mutex_t lock;
        uint64_t max_bytes;
        uint64_t cached_bytes;
        uint64_t hits, misses;
        _Atomic uint64_t budget;        /* for charged buffers */
        _Atomic uint64_t charged;
        unsigned n;
        struct region r[BUFFER_CACHE_MAX_REGIONS];
};

int buffer_cache_new(struct buffer_cache **ret, uint64_t max_bytes)
{
        struct buffer_cache *c = calloc(1, sizeof(*c));

        if (!c)
                return -ENOMEM;
        pthread_mutex_init(&c->lock, NULL);
        c->max_bytes = max_bytes;
        c->budget = UINT64_MAX;
        *ret = c;
        return 0;
}

void buffer_cache_set_max(struct buffer_cache *c, uint64_t max_bytes)
{
        pthread_mutex_lock(&c->lock);
        c->max_bytes = max_bytes;
        pthread_mutex_unlock(&c->lock);
}

void buffer_cache_free(struct buffer_cache *c)
{
        if (!c)
                return;
        for (unsigned i = 0; i < c->n; i++)
                numa_topo_free(c->r[i].p, c->r[i].size);
        pthread_mutex_destroy(&c->lock);
        free(c);
}

/* Removes and returns a cached region of exactly this size and node. */
static void *take_locked(struct buffer_cache *c, int real_node, size_t size)
{
        for (unsigned i = c->n; i-- > 0;) {
                struct region *r = &c->r[i];
                void *p = r->p;

                if (r->size != size || r->real_node != real_node)
                        continue;
                c->cached_bytes -= size;
                *r = c->r[--c->n];
                return p;
        }
        return NULL;
}

void *buffer_cache_get(struct buffer_cache *c, const struct numa_topo *t, unsigned node,
                       size_t size)
{
        void *p = NULL;

        if (c) {
                pthread_mutex_lock(&c->lock);
                p = take_locked(c, numa_topo_real_node(t, node), size);
                if (p)
                        c->hits++;
                else
                        c->misses++;
                pthread_mutex_unlock(&c->lock);
        }
        return p ? p : numa_topo_alloc(t, node, size);
}

void buffer_cache_put(struct buffer_cache *c, const struct numa_topo *t, unsigned node,
                      void *p, size_t size)
{
        bool kept = false;

        if (!p)
                return;
        if (c) {
                pthread_mutex_lock(&c->lock);
                if (c->n < BUFFER_CACHE_MAX_REGIONS && c->cached_bytes <= c->max_bytes &&
                    size <= c->max_bytes - c->cached_bytes) {
                        /* Reclaimable at the kernel's will; a no-op error
                         * (old kernel) only means the pages stay put. */
                        (void)madvise(p, size, MADV_FREE);
                        c->r[c->n++] = (struct region) {
                                .p = p, .size = size, .real_node = numa_topo_real_node(t, node),
                        };
                        c->cached_bytes += size;
                        kept = true;
                }
                pthread_mutex_unlock(&c->lock);
        }
        if (!kept)
                numa_topo_free(p, size);
}

void buffer_cache_set_budget(struct buffer_cache *c, uint64_t bytes)
{
        atomic_store_explicit(&c->budget, bytes, memory_order_relaxed);
}

bool buffer_cache_charge(struct buffer_cache *c, uint64_t bytes)
{
        uint64_t budget, cur;

        if (!c)
                return true;
        budget = atomic_load_explicit(&c->budget, memory_order_relaxed);
        cur = atomic_load_explicit(&c->charged, memory_order_relaxed);
        do {
                if (cur > budget || bytes > budget - cur)
                        return false;
        } while (!atomic_compare_exchange_weak_explicit(&c->charged, &cur, cur + bytes,
                                                        memory_order_relaxed, memory_order_relaxed));
        return true;
}

void buffer_cache_uncharge(struct buffer_cache *c, uint64_t bytes)
{
        if (c)
                atomic_fetch_sub_explicit(&c->charged, bytes, memory_order_relaxed);
}

void buffer_cache_get_stats(struct buffer_cache *c, struct buffer_cache_stats *out)
{
        *out = (struct buffer_cache_stats) {};
        if (!c)
                return;
        pthread_mutex_lock(&c->lock);
        out->cached_bytes = c->cached_bytes;
        out->hits = c->hits;
        out->misses = c->misses;
        pthread_mutex_unlock(&c->lock);
        out->charged_bytes = atomic_load_explicit(&c->charged, memory_order_relaxed);
        out->budget_bytes = atomic_load_explicit(&c->budget, memory_order_relaxed);
}
