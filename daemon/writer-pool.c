/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The writer pool (see writer-pool.h).  One thread per worker, each with
 * its own io_uring ring; the producer and the workers meet in a pool-wide
 * mutex that guards the per-worker free stacks and submission queues, so
 * the lock is taken a few times per batch (one batch is a whole buffer,
 * 1 MiB by default), never per page.
 *
 * A worker sleeps only inside io_uring_submit_and_wait().  To hear about
 * new work it keeps a read of its eventfd in flight; the producer writes
 * the eventfd when it queues onto an empty queue (a non-empty queue means
 * the worker is coming back anyway: either it has not drained the queue
 * yet or it hit the in-flight cap and waits for a completion).
 *
 * Ring setup probes what the kernel accepts instead of looking at version
 * numbers: setup flags are tried from the most to the least helpful, and
 * registered buffers or the registered fd are simply not used when
 * registration fails (e.g. RLIMIT_MEMLOCK for buffers).
 */
#include "config.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "writer-pool.h"

/* Valgrind (3.19) runs io_uring_enter() while holding its global lock, so
 * a worker sleeping in the kernel would stop every other thread.  Under
 * valgrind the workers poll instead (see wait_events()). */
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#else
#define UNDER_VALGRIND() false
#endif
#define VALGRIND_POLL_US 200

/* user_data: op in the top byte, slot index in the low 32 bits. */
enum { OP_WRITE = 1, OP_WAKE = 2 };
#define UD(op, idx) (((uint64_t)(op) << 56) | (uint32_t)(idx))
#define UD_OP(ud) ((unsigned)((ud) >> 56))
#define UD_IDX(ud) ((uint32_t)(ud))

#define NO_SLOT UINT32_MAX

enum slot_state { SLOT_FREE, SLOT_PRODUCER, SLOT_QUEUED, SLOT_INFLIGHT };

struct worker {
        struct writer_pool *pool;
        unsigned index;
        unsigned node;
        pthread_t thread;
        bool thread_started;
        int wake_fd;
        uint64_t wake_val;
        struct io_uring ring;
        bool ring_ok;
        void *mem;
        size_t mem_size;
        struct wp_req *slots;
        uint8_t *state;                 /* enum slot_state, under pool->lock */
        /* under pool->lock */
        uint32_t free_top;              /* base slots: stack linked through wp_req.next */
        uint32_t extra_top;             /* slots beyond the base, charged when taken */
        unsigned n_free;
        uint32_t q_head, q_tail;        /* FIFO linked through wp_req.next */
        uint64_t queued_bytes;          /* in the FIFO */
        uint64_t n_wakes;               /* under pool->lock */
        /* worker thread only */
        unsigned inflight;
        unsigned n_fixed_buf;           /* slots [0, n) are registered */
        bool fixed_file;
        unsigned setup_flags;
        uint64_t n_writes, n_short, n_eagain;
};

struct writer_pool {
        struct wp_params p;
        pthread_mutex_t lock;
        pthread_cond_t cond_free;       /* a slot was released */
        pthread_cond_t cond_idle;       /* outstanding dropped to 0 */
        pthread_cond_t cond_start;      /* a worker finished its setup */
        unsigned n_reported;
        int setup_error;
        char setup_msg[128];
        uint64_t outstanding;           /* slots queued or in flight */
        unsigned base_slots;            /* per worker, not charged to the budget */
        bool budget_short;              /* a take failed for the budget alone */
        bool holding;                   /* the writes trail the producer */
        uint64_t hold_per_worker;       /* queued bytes a worker leaves alone */
        int error;                      /* first write error, -errno */
        uint64_t error_offset;
        bool stopping;
        unsigned rr;
        unsigned n_workers;
        struct worker workers[];
};

static void pool_fail_locked(struct writer_pool *pool, int err, uint64_t offset)
{
        if (pool->error == 0) {
                pool->error = err;
                pool->error_offset = offset;
        }
}

/* ---- worker setup ---------------------------------------------------- */

static int ring_setup(struct worker *w, unsigned entries)
{
        static const unsigned tries[] = {
                IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
                IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
                IORING_SETUP_COOP_TASKRUN,
                0,
        };
        int r = -EINVAL;

        /* Polling needs completions posted without entering the ring. */
        for (size_t i = UNDER_VALGRIND() ? ELEMENTSOF(tries) - 1 : 0; i < ELEMENTSOF(tries); i++) {
                struct io_uring_params params = { .flags = tries[i] };

                r = io_uring_queue_init_params(entries, &w->ring, &params);
                if (r == 0) {
                        w->setup_flags = tries[i];
                        w->ring_ok = true;
                        return 0;
                }
                if (r != -EINVAL)
                        break;
        }
        return r;
}

static int probe_ops(struct worker *w, bool *have_fixed)
{
        struct io_uring_probe *probe = io_uring_get_probe_ring(&w->ring);
        bool ok;

        if (!probe)
                return -EOPNOTSUPP;
        ok = io_uring_opcode_supported(probe, IORING_OP_WRITE) &&
             io_uring_opcode_supported(probe, IORING_OP_READ);
        *have_fixed = io_uring_opcode_supported(probe, IORING_OP_WRITE_FIXED);
        io_uring_free_probe(probe);
        return ok ? 0 : -EOPNOTSUPP;
}

/* Put a slot on its free stack; a slot beyond the base that was taken
 * (charged) gives its charge back. */
static void push_free_locked(struct worker *w, uint32_t slot, bool charged)
{
        struct writer_pool *pool = w->pool;
        struct wp_req *r = &w->slots[slot];

        w->state[slot] = SLOT_FREE;
        if (slot < pool->base_slots) {
                r->next = w->free_top;
                w->free_top = slot;
        } else {
                r->next = w->extra_top;
                w->extra_top = slot;
                if (charged)
                        buffer_cache_uncharge(pool->p.cache, pool->p.buffer_size);
        }
        w->n_free++;
}

static int alloc_slots(struct worker *w)
{
        const struct wp_params *p = &w->pool->p;
        unsigned n = p->slots_per_worker;

        w->mem_size = (size_t)n * p->buffer_size;
        w->mem = buffer_cache_get(p->cache, p->topo, w->node, w->mem_size);
        if (!w->mem)
                return -errno;
        w->slots = calloc(n, sizeof(*w->slots));
        w->state = calloc(n, 1);
        if (!w->slots || !w->state)
                return -ENOMEM;
        w->free_top = w->extra_top = NO_SLOT;
        w->n_free = 0;
        for (unsigned i = n; i-- > 0;) {
                struct wp_req *r = &w->slots[i];

                r->worker = w->index;
                r->slot = i;
                r->buf = (uint8_t *)w->mem + (size_t)i * p->buffer_size;
                push_free_locked(w, i, false);  /* before the thread shares it */
        }
        w->q_head = w->q_tail = NO_SLOT;
        return 0;
}

/* Registered buffers and fd are optimisations: failure is not an error.
 * Registering pins (and faults in) the memory at once, so only the base
 * slots (WP_BASE_BYTES) are registered: the rest stays untouched until a
 * burst needs it, and is written with plain writes. */
static void register_resources(struct worker *w, bool have_fixed)
{
        const struct wp_params *p = &w->pool->p;
        unsigned n = w->pool->base_slots;

        if (io_uring_register_files(&w->ring, &p->fd, 1) == 0)
                w->fixed_file = true;
        if (!have_fixed || p->no_fixed_buffers)
                return;
        _cleanup_free_ struct iovec *iov = calloc(n, sizeof(*iov));
        if (!iov)
                return;
        for (unsigned i = 0; i < n; i++) {
                iov[i].iov_base = w->slots[i].buf;
                iov[i].iov_len = p->buffer_size;
        }
        if (io_uring_register_buffers(&w->ring, iov, n) == 0)
                w->n_fixed_buf = n;
}

static int worker_setup(struct worker *w, const char **what)
{
        const struct wp_params *p = &w->pool->p;
        unsigned entries = 4;
        bool have_fixed = false;
        int r;

        (void)numa_topo_bind_thread(p->topo, w->node);  /* locality only */
        while (entries < p->queue_depth + 2)
                entries *= 2;
        *what = "io_uring setup";
        r = ring_setup(w, entries);
        if (r < 0)
                return r;
        *what = "io_uring probe (write/read opcodes)";
        r = probe_ops(w, &have_fixed);
        if (r < 0)
                return r;
        *what = "allocating write buffers";
        r = alloc_slots(w);
        if (r < 0)
                return r;
        register_resources(w, have_fixed);
        return 0;
}

/* ---- worker loop ----------------------------------------------------- */

static struct io_uring_sqe *get_sqe(struct worker *w)
{
        struct io_uring_sqe *sqe;

        while (!(sqe = io_uring_get_sqe(&w->ring)))
                (void)io_uring_submit(&w->ring);
        return sqe;
}

static void arm_wake(struct worker *w)
{
        struct io_uring_sqe *sqe = get_sqe(w);

        io_uring_prep_read(sqe, w->wake_fd, &w->wake_val, sizeof(w->wake_val), 0);
        sqe->user_data = UD(OP_WAKE, 0);
}

static void prep_write(struct worker *w, struct wp_req *r)
{
        const struct wp_params *p = &w->pool->p;
        struct io_uring_sqe *sqe = get_sqe(w);
        const uint8_t *src = (const uint8_t *)(r->src ? r->src : r->buf) + r->done;
        unsigned len = (unsigned)(r->len - r->done);
        uint64_t off = r->offset + r->done;
        int fd = w->fixed_file ? 0 : p->fd;

        if (!r->src && r->slot < w->n_fixed_buf)
                io_uring_prep_write_fixed(sqe, fd, src, len, off, (int)r->slot);
        else
                io_uring_prep_write(sqe, fd, src, len, off);
        if (w->fixed_file)
                sqe->flags |= IOSQE_FIXED_FILE;
        sqe->rw_flags = p->rw_flags;
        sqe->user_data = UD(OP_WRITE, r->slot);
        w->n_writes++;
}

/* Give finished slots (a list linked through next) back in one go. */
static void release_list(struct worker *w, uint32_t head, unsigned n)
{
        struct writer_pool *pool = w->pool;

        if (n == 0)
                return;
        pthread_mutex_lock(&pool->lock);
        while (head != NO_SLOT) {
                struct wp_req *r = &w->slots[head];

                head = r->next;
                push_free_locked(w, r->slot, true);
        }
        pool->outstanding -= n;
        if (pool->outstanding == 0)
                pthread_cond_broadcast(&pool->cond_idle);
        pthread_cond_broadcast(&pool->cond_free);
        pthread_mutex_unlock(&pool->lock);
}

struct done_list {
        uint32_t head;
        unsigned n;
};

static void done_push(struct worker *w, struct done_list *d, struct wp_req *r)
{
        r->next = d->head;
        d->head = r->slot;
        d->n++;
}

/* Pop queued requests up to the in-flight cap; drop them after a failure. */
static bool take_queued(struct worker *w, struct done_list *dropped)
{
        struct writer_pool *pool = w->pool;
        bool stop;

        pthread_mutex_lock(&pool->lock);
        while (w->q_head != NO_SLOT) {
                struct wp_req *r = &w->slots[w->q_head];

                if (!pool->error && (w->inflight >= pool->p.queue_depth ||
                                     (pool->holding && w->queued_bytes <= pool->hold_per_worker)))
                        break;
                w->q_head = r->next;
                w->queued_bytes -= r->len;
                if (w->q_head == NO_SLOT)
                        w->q_tail = NO_SLOT;
                if (pool->error) {
                        done_push(w, dropped, r);
                        continue;
                }
                w->state[r->slot] = SLOT_INFLIGHT;
                r->done = 0;
                w->inflight++;
                prep_write(w, r);
        }
        stop = pool->stopping && w->q_head == NO_SLOT;
        pthread_mutex_unlock(&pool->lock);
        return stop;
}

static void write_failed(struct worker *w, struct wp_req *r, int res, struct done_list *d)
{
        pthread_mutex_lock(&w->pool->lock);
        pool_fail_locked(w->pool, res, r->offset + r->done);
        pthread_mutex_unlock(&w->pool->lock);
        w->inflight--;
        done_push(w, d, r);
}

static void write_completed(struct worker *w, struct wp_req *r, int res, struct done_list *d)
{
        const struct wp_params *p = &w->pool->p;

        if (res == -EAGAIN || res == -EINTR) {
                w->n_eagain++;
                prep_write(w, r);
                return;
        }
        if (res < 0 || (res == 0 && r->len > r->done)) {
                /* A write that makes no progress would loop forever. */
                write_failed(w, r, res < 0 ? res : -EIO, d);
                return;
        }
        r->done += (size_t)res;
        if (r->done < r->len) {
                w->n_short++;
                prep_write(w, r);
                return;
        }
        w->inflight--;
        if (p->complete)
                p->complete(p->opaque, r);
        done_push(w, d, r);
}

static void reap(struct worker *w)
{
        struct done_list d = { NO_SLOT, 0 };
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;

        io_uring_for_each_cqe(&w->ring, head, cqe) {
                n++;
                if (UD_OP(cqe->user_data) == OP_WAKE)
                        arm_wake(w);
                else
                        write_completed(w, &w->slots[UD_IDX(cqe->user_data)], cqe->res, &d);
        }
        io_uring_cq_advance(&w->ring, n);
        release_list(w, d.head, d.n);
}

/* io_uring_enter failed for a reason other than a transient one: nothing
 * more can be written by this worker.  Fail the pool and give back every
 * slot it holds; the kernel keeps what is still in flight pinned until the
 * ring is torn down. */
static void worker_abort(struct worker *w, int err)
{
        struct writer_pool *pool = w->pool;
        unsigned n = 0;

        pthread_mutex_lock(&pool->lock);
        pool_fail_locked(pool, err, 0);
        for (unsigned i = 0; i < pool->p.slots_per_worker; i++) {
                if (w->state[i] != SLOT_QUEUED && w->state[i] != SLOT_INFLIGHT)
                        continue;
                push_free_locked(w, i, true);
                n++;
        }
        w->q_head = w->q_tail = NO_SLOT;
        w->queued_bytes = 0;
        pool->outstanding -= n;
        pthread_cond_broadcast(&pool->cond_idle);
        pthread_cond_broadcast(&pool->cond_free);
        pthread_mutex_unlock(&pool->lock);
}

/* Submit what is prepared and wait for at least one completion. */
static int wait_events(struct worker *w)
{
        struct io_uring_cqe *cqe;
        int r;

        if (!UNDER_VALGRIND())
                return io_uring_submit_and_wait(&w->ring, 1);
        r = io_uring_submit(&w->ring);
        if (r >= 0 && io_uring_peek_cqe(&w->ring, &cqe) != 0)
                usleep(VALGRIND_POLL_US);       /* lets other threads run */
        return r < 0 ? r : 0;
}

static void worker_loop(struct worker *w)
{
        arm_wake(w);
        for (;;) {
                struct done_list dropped = { NO_SLOT, 0 };
                bool stop = take_queued(w, &dropped);
                int r;

                release_list(w, dropped.head, dropped.n);
                if (stop && w->inflight == 0)
                        break;
                r = wait_events(w);
                if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY && r != -ETIME) {
                        worker_abort(w, r);
                        break;
                }
                reap(w);
        }
}

static void report_setup(struct worker *w, int r, const char *what)
{
        struct writer_pool *pool = w->pool;

        pthread_mutex_lock(&pool->lock);
        if (r < 0 && pool->setup_error == 0) {
                pool->setup_error = r;
                snprintf(pool->setup_msg, sizeof(pool->setup_msg), "worker %u: %s: %s",
                         w->index, what, strerror(-r));
        }
        pool->n_reported++;
        pthread_cond_broadcast(&pool->cond_start);
        pthread_mutex_unlock(&pool->lock);
}

/* On the worker's own thread, before it exits.  The rings are
 * IORING_SETUP_SINGLE_ISSUER: only this thread may unregister, and a ring
 * closed after its thread is gone is torn down by the kernel in the
 * background, which can take minutes.  Until then it keeps the output
 * file (an unlinked failed output keeps its blocks: a full file system
 * stays full) and keeps the buffers pinned.  Dropping them here, and
 * closing the ring from the thread that used it, frees them at once. */
static void close_ring(struct worker *w)
{
        if (!w->ring_ok)
                return;
        if (w->fixed_file)
                (void)io_uring_unregister_files(&w->ring);
        if (w->n_fixed_buf)
                (void)io_uring_unregister_buffers(&w->ring);
        io_uring_queue_exit(&w->ring);
        w->ring_ok = false;
}

static void *worker_main(void *arg)
{
        struct worker *w = arg;
        const char *what = "";
        char name[16];
        int r;

        snprintf(name, sizeof(name), "savd-wr%u", w->index);
        (void)pthread_setname_np(pthread_self(), name);
        r = worker_setup(w, &what);
        report_setup(w, r, what);
        if (r == 0)
                worker_loop(w);     /* wp_new stops it if another worker failed */
        close_ring(w);
        return NULL;
}

/* ---- producer side --------------------------------------------------- */

static void wake(struct worker *w)
{
        uint64_t one = 1;

        /* Cannot fail short of a bug: the counter never nears overflow. */
        (void)!write(w->wake_fd, &one, sizeof(one));
}

/* The hold ends once, for good: every worker writes its whole queue. */
static void release_hold_locked(struct writer_pool *pool)
{
        if (!pool->holding)
                return;
        pool->holding = false;
        for (unsigned i = 0; i < pool->n_workers; i++)
                if (pool->workers[i].thread_started)
                        wake(&pool->workers[i]);
}

static int check_params(const struct wp_params *p)
{
        if (!p->topo || p->fd < 0)
                return -EINVAL;
        if (p->n_workers == 0 || p->n_workers > WP_MAX_WORKERS)
                return -EINVAL;
        if (p->queue_depth == 0 || p->queue_depth > WP_MAX_QUEUE_DEPTH)
                return -EINVAL;
        if (p->slots_per_worker == 0 || p->slots_per_worker > WP_MAX_SLOTS)
                return -EINVAL;
        if (p->buffer_size == 0 || p->buffer_size > WP_MAX_BUFFER_SIZE ||
            p->buffer_size % WP_BUFFER_ALIGN != 0)
                return -EINVAL;
        return 0;
}

static struct writer_pool *pool_alloc(const struct wp_params *p)
{
        struct writer_pool *pool = calloc(1, sizeof(*pool) + p->n_workers * sizeof(struct worker));
        pthread_condattr_t ca;

        if (!pool)
                return NULL;
        pool->p = *p;
        pool->n_workers = p->n_workers;
        pool->holding = p->hold_bytes > 0;
        pool->hold_per_worker = p->hold_bytes / p->n_workers;
        pool->base_slots = (unsigned)MIN((size_t)p->slots_per_worker,
                                         MAX((size_t)1, WP_BASE_BYTES / p->buffer_size));
        pthread_mutex_init(&pool->lock, NULL);
        /* Budget waits time out on the monotonic clock. */
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&pool->cond_free, &ca);
        pthread_condattr_destroy(&ca);
        pthread_cond_init(&pool->cond_idle, NULL);
        pthread_cond_init(&pool->cond_start, NULL);
        for (unsigned i = 0; i < p->n_workers; i++) {
                struct worker *w = &pool->workers[i];

                w->pool = pool;
                w->index = i;
                w->node = i % p->topo->n_nodes;
                w->wake_fd = -1;
                w->q_head = w->q_tail = w->free_top = w->extra_top = NO_SLOT;
        }
        return pool;
}

/* Workers never take signals: the daemon handles them with signalfd. */
static int start_workers(struct writer_pool *pool)
{
        sigset_t all, old;
        int r = 0;

        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        for (unsigned i = 0; i < pool->n_workers; i++) {
                struct worker *w = &pool->workers[i];

                w->wake_fd = eventfd(0, EFD_CLOEXEC);
                if (w->wake_fd < 0) {
                        r = -errno;
                        break;
                }
                r = -pthread_create(&w->thread, NULL, worker_main, w);
                if (r < 0)
                        break;
                w->thread_started = true;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return r;
}

static unsigned started_workers(const struct writer_pool *pool)
{
        unsigned n = 0;

        for (unsigned i = 0; i < pool->n_workers; i++)
                n += pool->workers[i].thread_started;
        return n;
}

int wp_new(struct writer_pool **ret, const struct wp_params *p, char *err, size_t errlen)
{
        struct writer_pool *pool;
        unsigned started;
        int r;

        r = check_params(p);
        if (r < 0) {
                snprintf(err, errlen, "invalid writer configuration");
                return r;
        }
        pool = pool_alloc(p);
        if (!pool)
                return -ENOMEM;
        r = start_workers(pool);
        started = started_workers(pool);
        pthread_mutex_lock(&pool->lock);
        while (pool->n_reported < started)
                pthread_cond_wait(&pool->cond_start, &pool->lock);
        if (r < 0)
                snprintf(err, errlen, "starting writer threads: %s", strerror(-r));
        else if (pool->setup_error < 0) {
                r = pool->setup_error;
                snprintf(err, errlen, "%s", pool->setup_msg);
        }
        pthread_mutex_unlock(&pool->lock);
        if (r < 0) {
                wp_free(pool);
                return r;
        }
        *ret = pool;
        return 0;
}

static void worker_destroy(struct worker *w)
{
        /* A worker whose thread never started still has its ring. */
        if (w->ring_ok)
                io_uring_queue_exit(&w->ring);
        if (w->wake_fd >= 0)
                close(w->wake_fd);
        buffer_cache_put(w->pool->p.cache, w->pool->p.topo, w->node, w->mem, w->mem_size);
        free(w->slots);
        free(w->state);
}

void wp_free(struct writer_pool *pool)
{
        if (!pool)
                return;
        pthread_mutex_lock(&pool->lock);
        pool->stopping = true;
        pool->holding = false;          /* the workers are woken below */
        pthread_mutex_unlock(&pool->lock);
        for (unsigned i = 0; i < pool->n_workers; i++) {
                struct worker *w = &pool->workers[i];

                if (!w->thread_started)
                        continue;
                wake(w);
                pthread_join(w->thread, NULL);
        }
        for (unsigned i = 0; i < pool->n_workers; i++)
                worker_destroy(&pool->workers[i]);
        pthread_cond_destroy(&pool->cond_start);
        pthread_cond_destroy(&pool->cond_idle);
        pthread_cond_destroy(&pool->cond_free);
        pthread_mutex_destroy(&pool->lock);
        free(pool);
}

unsigned wp_n_workers(const struct writer_pool *pool)
{
        return pool->n_workers;
}

unsigned wp_worker_node(const struct writer_pool *pool, unsigned worker)
{
        return pool->workers[worker].node;
}

/* A base slot if one is free, else a slot beyond the base if the budget
 * allows one more buffer. */
static struct wp_req *pop_free_locked(struct worker *w)
{
        struct writer_pool *pool = w->pool;
        uint32_t *top = &w->free_top;
        struct wp_req *r;

        if (*top == NO_SLOT) {
                top = &w->extra_top;
                if (*top == NO_SLOT)
                        return NULL;
                if (!buffer_cache_charge(pool->p.cache, pool->p.buffer_size)) {
                        pool->budget_short = true;
                        return NULL;
                }
        }
        r = &w->slots[*top];
        *top = r->next;
        w->n_free--;
        w->state[r->slot] = SLOT_PRODUCER;
        return r;
}

static struct wp_req *take_slot_locked(struct writer_pool *pool, int worker)
{
        if (worker >= 0)
                return pop_free_locked(&pool->workers[(unsigned)worker % pool->n_workers]);
        for (unsigned i = 0; i < pool->n_workers; i++) {
                unsigned k = (pool->rr + i) % pool->n_workers;
                struct wp_req *r = pop_free_locked(&pool->workers[k]);

                if (r) {
                        pool->rr = k + 1;
                        return r;
                }
        }
        return NULL;
}

/* Until a slot of this pool is released, or for a short while when only
 * the budget held us back: another job's pool frees budget without
 * signalling this one. */
static void wait_for_slot_locked(struct writer_pool *pool)
{
        struct timespec ts;

        if (!pool->budget_short) {
                pthread_cond_wait(&pool->cond_free, &pool->lock);
                return;
        }
        pool->budget_short = false;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += WP_BUDGET_RETRY_NS;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        (void)pthread_cond_timedwait(&pool->cond_free, &pool->lock, &ts);
}

static int get_slot(struct writer_pool *pool, int worker, bool wait, struct wp_req **ret)
{
        struct wp_req *r = NULL;
        int err;

        pthread_mutex_lock(&pool->lock);
        while (!(err = pool->error) && !(r = take_slot_locked(pool, worker))) {
                /* Only written slots come back: holding on would wait
                 * forever. */
                release_hold_locked(pool);
                if (!wait)
                        break;
                wait_for_slot_locked(pool);
        }
        pthread_mutex_unlock(&pool->lock);
        if (!r && err == 0)
                return -EAGAIN;
        if (err < 0) {
                if (r)
                        wp_put(pool, r);
                return err;
        }
        r->src = NULL;
        r->len = 0;
        r->done = 0;
        *ret = r;
        return 0;
}

int wp_get(struct writer_pool *pool, int worker, struct wp_req **ret)
{
        return get_slot(pool, worker, true, ret);
}

int wp_try_get(struct writer_pool *pool, int worker, struct wp_req **ret)
{
        return get_slot(pool, worker, false, ret);
}

void wp_put(struct writer_pool *pool, struct wp_req *r)
{
        struct worker *w = &pool->workers[r->worker];

        pthread_mutex_lock(&pool->lock);
        push_free_locked(w, r->slot, true);
        pthread_cond_broadcast(&pool->cond_free);
        pthread_mutex_unlock(&pool->lock);
}

int wp_submit(struct writer_pool *pool, struct wp_req *r)
{
        struct worker *w = &pool->workers[r->worker];
        bool wake_worker = false;
        int err;

        if (r->len == 0 || (!r->src && r->len > pool->p.buffer_size)) {
                wp_put(pool, r);
                return -EINVAL;
        }
        pthread_mutex_lock(&pool->lock);
        err = pool->error;
        if (err == 0) {
                w->state[r->slot] = SLOT_QUEUED;
                r->next = NO_SLOT;
                /* A worker with queued requests takes them all. */
                wake_worker = w->q_head == NO_SLOT;
                if (wake_worker)
                        w->q_head = r->slot;
                else
                        w->slots[w->q_tail].next = r->slot;
                w->q_tail = r->slot;
                pool->outstanding++;
                w->queued_bytes += r->len;
                /* Holding, the worker has work once its queue grows past
                 * its share of the hold. */
                if (pool->holding)
                        wake_worker = w->queued_bytes > pool->hold_per_worker &&
                                    w->queued_bytes - r->len <= pool->hold_per_worker;
                w->n_wakes += wake_worker;
        }
        pthread_mutex_unlock(&pool->lock);
        if (err < 0) {
                wp_put(pool, r);
                return err;
        }
        if (wake_worker)
                wake(w);
        return 0;
}

void wp_cancel(struct writer_pool *pool)
{
        pthread_mutex_lock(&pool->lock);
        pool_fail_locked(pool, -ECANCELED, 0);
        pthread_cond_broadcast(&pool->cond_free);
        pthread_mutex_unlock(&pool->lock);
        /* Wake every worker so that its queue is dropped now. */
        for (unsigned i = 0; i < pool->n_workers; i++)
                if (pool->workers[i].thread_started)
                        wake(&pool->workers[i]);
}

int wp_drain(struct writer_pool *pool)
{
        int err;

        pthread_mutex_lock(&pool->lock);
        release_hold_locked(pool);
        while (pool->outstanding > 0)
                pthread_cond_wait(&pool->cond_idle, &pool->lock);
        err = pool->error;
        pthread_mutex_unlock(&pool->lock);
        return err;
}

int wp_error(struct writer_pool *pool, uint64_t *offset)
{
        int err;

        pthread_mutex_lock(&pool->lock);
        err = pool->error;
        if (offset)
                *offset = pool->error_offset;
        pthread_mutex_unlock(&pool->lock);
        return err;
}

/* Counters of running workers are read without their lock: statistics
 * only, a torn value is harmless on 64-bit hosts. */
void wp_get_stats(struct writer_pool *pool, struct wp_stats *out)
{
        memset(out, 0, sizeof(*out));
        out->setup_flags = pool->workers[0].setup_flags;
        for (unsigned i = 0; i < pool->n_workers; i++) {
                const struct worker *w = &pool->workers[i];

                out->writes += __atomic_load_n(&w->n_writes, __ATOMIC_RELAXED);
                out->short_writes += __atomic_load_n(&w->n_short, __ATOMIC_RELAXED);
                out->eagain += __atomic_load_n(&w->n_eagain, __ATOMIC_RELAXED);
                out->wakes += __atomic_load_n(&w->n_wakes, __ATOMIC_RELAXED);
                out->fixed_buffers += w->n_fixed_buf > 0;
                out->fixed_file += w->fixed_file;
        }
}
