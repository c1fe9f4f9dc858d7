/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reading a mapped-ram file back (see mrm-input.h).
 *
 * Two descriptors: the buffered one (the caller's, or opened from path)
 * for the reader, the verifier, the bitmaps and the device state; and,
 * where the file system accepts it, an O_DIRECT one opened anew through
 * /proc/self/fd, so that a descriptor handed over by a client keeps its
 * own flags.  Page slots are 1 MiB-aligned and runs are whole pages, so
 * every page read is O_DIRECT-safe.
 *
 * Into its own buffers (read_pages), a read spans short runs of absent
 * pages too (at most GAP_MAX_PAGES in a row) and hands the consumer only
 * the present runs inside it: a guest whose data is scattered, a page in
 * three say, is read in large reads instead of one 4 KiB read per page.
 * Reading into a caller's memory never spans a gap: the slots of absent
 * pages may hold stale data that must not land there.
 *
 * The read engine keeps up to queue_depth reads in flight in a ring of
 * slots and hands them to the consumer in submission order (file order),
 * so a consumer that streams pages on sees them sorted, and a slot is
 * reused only once its run was delivered.  Short reads are resubmitted
 * from where they stopped, -EAGAIN is retried; the first error stops new
 * reads, the ones in flight are waited for, and the error is returned.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "macro.h"
#include "mrm-input.h"
#include "shm-bitmap.h"

/* Valgrind does not see the kernel fill io_uring read buffers: tell it. */
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define MARK_READ(p, n) VALGRIND_MAKE_MEM_DEFINED((p), (n))
#else
#define MARK_READ(p, n) do { } while (0)
#endif

/* Absent pages a read may span (see above). */
#define GAP_MAX_PAGES 16U

struct rd_slot {
        struct mrm_run run;             /* what is read: runs and the gaps between */
        uint8_t *own;                   /* read_pages: this slot's buffer */
        uint64_t *gap;                  /* read_pages: bit i, page first + i is absent */
        bool has_gap;
        size_t len, done;
        bool complete;                  /* read (or failed), not yet delivered */
};

/* Where the search for present pages stands, and which part of the
 * current block's bitmap is loaded. */
struct bm_cursor {
        size_t block;
        uint64_t page;                  /* next page to look at */
        uint64_t chunk_first;           /* page of bit 0 of the chunk */
        uint64_t chunk_pages;           /* 0: nothing loaded for this block */
};

struct mrm_input {
        struct mrm_file file;
        int fd;                         /* buffered */
        bool own_fd;
        int dfd;                        /* O_DIRECT, or -1 */
        char *display;
        unsigned qd;
        size_t read_size;
        bool have_ring;
        struct io_uring ring;
        struct rd_slot *slots;          /* qd entries */
        uint8_t *chunk;                 /* MRM_BITMAP_CHUNK bytes of bitmap */
        char mode[24];
        bool syscall_failed;            /* a pread itself failed, not the file */
        int error;
        char errmsg[MRM_INPUT_ERR_MAX];
};

struct engine {
        void *const *dest;              /* read_into: per block; NULL: own buffers */
        mrm_run_fn fn;
        void *opaque;
        struct bm_cursor cur;
        unsigned head, n_busy;
        bool more;
        int r;                          /* first error */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
        va_list ap;

        if (!err || errlen == 0)
                return;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
}

/* Remember the first read error with the file, offset and errno. */
static int read_error(struct mrm_input *in, int r, uint64_t off)
{
        if (!in->error) {
                in->error = r;
                snprintf(in->errmsg, sizeof(in->errmsg), "read '%s' at offset 0x%" PRIx64 ": %s",
                         in->display, off, r == -EIO ? "the file ends early" : strerror(-r));
        }
        return r;
}

static ssize_t fd_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
        struct mrm_input *in = opaque;
        ssize_t n;

        if (off > INT64_MAX)
                return 0;
        do
                n = pread(in->fd, buf, len, (off_t)off);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                in->syscall_failed = true;
                return -errno;
        }
        return n;
}

int mrm_input_pread(struct mrm_input *in, void *buf, size_t len, uint64_t off)
{
        uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = fd_pread(in, p, len, off);

                if (n < 0)
                        return read_error(in, (int)n, off);
                if (n == 0)
                        return read_error(in, -EIO, off);
                p += n;
                len -= (size_t)n;
                off += (uint64_t)n;
        }
        return 0;
}

const struct mrm_file *mrm_input_file(const struct mrm_input *in)
{
        return &in->file;
}

const char *mrm_input_io_mode(const struct mrm_input *in)
{
        return in->mode;
}

const char *mrm_input_error(const struct mrm_input *in)
{
        return in->error ? in->errmsg : NULL;
}

void mrm_input_free(struct mrm_input *in)
{
        if (!in)
                return;
        if (in->have_ring)
                io_uring_queue_exit(&in->ring);
        for (unsigned i = 0; in->slots && i < in->qd; i++) {
                free(in->slots[i].own);
                free(in->slots[i].gap);
        }
        free(in->slots);
        free(in->chunk);
        mrm_file_free(&in->file);
        if (in->dfd >= 0)
                close(in->dfd);
        if (in->own_fd && in->fd >= 0)
                close(in->fd);
        free(in->display);
        free(in);
}

static void mrm_input_freep(struct mrm_input **in)
{
        mrm_input_free(*in);
}

/* ---- Opening ------------------------------------------------------------ */

static int check_options(struct mrm_input *in, const struct mrm_input_options *opt,
                         char *err, size_t errlen)
{
        in->qd = opt->queue_depth ? opt->queue_depth : MRM_INPUT_DEFAULT_QUEUE_DEPTH;
        in->read_size = opt->read_size ? opt->read_size : MRM_INPUT_DEFAULT_READ_SIZE;
        if (in->qd > MRM_INPUT_MAX_QUEUE_DEPTH || in->read_size > MRM_INPUT_MAX_READ_SIZE ||
            in->read_size % QEMU_TPS != 0) {
                set_err(err, errlen, "input: queue depth 1..%u and read size a multiple of %u "
                        "up to %u bytes", MRM_INPUT_MAX_QUEUE_DEPTH, QEMU_TPS, MRM_INPUT_MAX_READ_SIZE);
                return -EINVAL;
        }
        return 0;
}

static int open_file(struct mrm_input *in, int fd, const char *path, uint64_t *size,
                     char *err, size_t errlen)
{
        struct stat st;

        in->display = strdup(path ? path : "(handed-over fd)");
        if (!in->display)
                return -ENOMEM;
        if (fd < 0) {
                if (!path)
                        return -EINVAL;
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0) {
                        set_err(err, errlen, "open '%s': %s", path, strerror(errno));
                        return -errno;
                }
                in->own_fd = true;
        }
        in->fd = fd;
        if (fstat(fd, &st) < 0) {
                set_err(err, errlen, "stat '%s': %s", in->display, strerror(errno));
                return -errno;
        }
        if (!S_ISREG(st.st_mode)) {
                set_err(err, errlen, "'%s' is not a regular file", in->display);
                return -EINVAL;
        }
        *size = (uint64_t)st.st_size;
        return 0;
}

static int check_limits(const struct mrm_input *in, const struct mrm_input_options *opt,
                        struct mrm_error *e)
{
        const struct mrm_layout *l = &in->file.layout;
        unsigned max_blocks = opt->max_blocks ? opt->max_blocks : SAVD_MAX_BLOCKS;
        uint64_t max_size = opt->max_block_size ? opt->max_block_size : SAVD_MAX_BLOCK_SIZE;

        if (l->n_blocks > max_blocks)
                return mrm_fail(e, l->n_blocks ? l->blocks[0].record_offset : 0, -E2BIG,
                                "%zu RAM blocks, more than max-blocks (%u)", l->n_blocks, max_blocks);
        for (size_t i = 0; i < l->n_blocks; i++)
                if (l->blocks[i].used_length > max_size) {
                        char name[MRM_SHOWN_MAX];
                        mrm_shown_name(name, l->blocks[i].name, l->blocks[i].name_len);
                        return mrm_fail(e, l->blocks[i].record_offset, -E2BIG,
                                        "block '%s' is %" PRIu64 " bytes, more than max-block-size "
                                        "(%" PRIu64 ")", name, l->blocks[i].used_length, max_size);
                }
        return 0;
}

static int read_and_verify(struct mrm_input *in, uint64_t size, const struct mrm_input_options *opt,
                           char *err, size_t errlen)
{
        struct mrm_error e = {};
        int r;

        r = mrm_read(&in->file, fd_pread, in, size, &e);
        if (r == 0)
                r = check_limits(in, opt, &e);
        if (r == 0)
                r = mrm_verify(&in->file, fd_pread, in, &e);
        /* A file shorter than what it describes is a defect of the file;
         * a failing read(2) is not. */
        if (r == -EBADMSG || r == -E2BIG || (r == -EIO && !in->syscall_failed))
                set_err(err, errlen, "'%s' is not a valid mapped-ram file: %s (at offset 0x%" PRIx64 ")",
                        in->display, e.msg, e.offset);
        else if (r < 0)
                set_err(err, errlen, "cannot read '%s': %s (at offset 0x%" PRIx64 ")",
                        in->display, e.msg[0] ? e.msg : strerror(-r), e.offset);
        return r;
}

/* One aligned O_DIRECT read tells whether the file system takes it. */
static int probe_direct(int dfd)
{
        void *buf = NULL;
        ssize_t n;

        if (posix_memalign(&buf, MRM_INPUT_ALIGN, MRM_INPUT_ALIGN) != 0)
                return -ENOMEM;
        do
                n = pread(dfd, buf, MRM_INPUT_ALIGN, 0);
        while (n < 0 && errno == EINTR);
        int r = n < 0 ? -errno : 0;
        free(buf);
        return r;
}

static int setup_direct(struct mrm_input *in, enum io_mode mode, char *err, size_t errlen)
{
        char proc[64];
        int dfd, r;

        if (mode == IO_MODE_BUFFERED)
                return 0;
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", in->fd);
        dfd = open(proc, O_RDONLY | O_DIRECT | O_CLOEXEC | O_NOCTTY);
        r = dfd < 0 ? -errno : probe_direct(dfd);
        if (r == 0) {
                in->dfd = dfd;
                return 0;
        }
        if (dfd >= 0)
                close(dfd);
        if (mode == IO_MODE_DIRECT) {
                set_err(err, errlen, "'%s': O_DIRECT reads refused: %s", in->display, strerror(-r));
                return r;
        }
        return 0;       /* buffered it is: tmpfs and friends */
}

static int setup_engine(struct mrm_input *in, const struct mrm_input_options *opt,
                        char *err, size_t errlen)
{
        in->slots = calloc(in->qd, sizeof(*in->slots));
        in->chunk = malloc(MRM_BITMAP_CHUNK);
        if (!in->slots || !in->chunk) {
                set_err(err, errlen, "out of memory");
                return -ENOMEM;
        }
        /* Without io_uring (old kernel, seccomp) pread(2) does the job. */
        if (!opt->no_uring && io_uring_queue_init(in->qd, &in->ring, 0) == 0)
                in->have_ring = true;
        snprintf(in->mode, sizeof(in->mode), "%s+%s", in->dfd >= 0 ? "direct" : "buffered",
                 in->have_ring ? "uring" : "pread");
        return 0;
}

int mrm_input_open(struct mrm_input **ret, int fd, const char *path,
                   const struct mrm_input_options *opt, char *err, size_t errlen)
{
        static const struct mrm_input_options defaults = {};
        _cleanup_(mrm_input_freep) struct mrm_input *in = calloc(1, sizeof(*in));
        uint64_t size = 0;
        int r;

        if (!in)
                return -ENOMEM;
        in->fd = in->dfd = -1;
        if (!opt)
                opt = &defaults;
        r = check_options(in, opt, err, errlen);
        if (r == 0)
                r = open_file(in, fd, path, &size, err, errlen);
        if (r == 0)
                r = read_and_verify(in, size, opt, err, errlen);
        if (r == 0)
                r = setup_direct(in, opt->io_mode, err, errlen);
        if (r == 0)
                r = setup_engine(in, opt, err, errlen);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(in);
        return 0;
}

/* ---- Finding runs of present pages -------------------------------------- */

static int load_chunk(struct mrm_input *in, struct bm_cursor *c, uint64_t page)
{
        const struct mrm_block *b = &in->file.layout.blocks[c->block];
        uint64_t word = page / 64;
        uint64_t bytes = MIN(b->bitmap_size - word * 8, (uint64_t)MRM_BITMAP_CHUNK);
        int r = mrm_input_pread(in, in->chunk, bytes, b->bitmap_offset + word * 8);

        if (r < 0)
                return r;
        c->chunk_first = word * 64;
        c->chunk_pages = MIN(bytes * 8, b->num_pages - c->chunk_first);
        return 0;
}

/* The first page in [from, limit) whose bit is `set`, or limit.  Bitmap
 * words are little-endian 64-bit (x86-64 QEMU writes host words). */
static int find_bit(struct mrm_input *in, struct bm_cursor *c, bool set, uint64_t from,
                    uint64_t limit, uint64_t *pos)
{
        uint64_t p = from;

        while (p < limit) {
                if (p < c->chunk_first || p - c->chunk_first >= c->chunk_pages) {
                        int r = load_chunk(in, c, p);
                        if (r < 0)
                                return r;
                }
                uint64_t idx = p - c->chunk_first;
                uint64_t w = get_le64(in->chunk + (idx / 64) * 8);
                if (!set)
                        w = ~w;
                w &= ~0ULL << (idx % 64);
                if (w) {
                        p = c->chunk_first + (idx / 64) * 64 + (uint64_t)__builtin_ctzll(w);
                        break;
                }
                p = c->chunk_first + (idx / 64 + 1) * 64;
        }
        *pos = MIN(p, limit);
        return 0;
}

/* Stretch a run [first, *end) over short gaps, up to limit, noting them
 * in s->gap. */
static int span_gaps(struct mrm_input *in, struct bm_cursor *c, struct rd_slot *s,
                     uint64_t first, uint64_t limit, uint64_t *end)
{
        while (*end < limit) {
                uint64_t window = MIN(limit, *end + GAP_MAX_PAGES + 1), next;
                int r = find_bit(in, c, true, *end, window, &next);

                if (r < 0)
                        return r;
                if (next >= window)
                        break;
                bitmap_words_set_range(s->gap, *end - first, next - *end);
                s->has_gap = true;
                r = find_bit(in, c, false, next + 1, limit, end);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The next run of set bits in file order (with short gaps, into our own
 * buffers), at most read_size bytes and within one block.  1: s->run
 * filled; 0: no more; -errno. */
static int next_extent(struct mrm_input *in, struct engine *e, struct rd_slot *s)
{
        const struct mrm_layout *l = &in->file.layout;
        struct bm_cursor *c = &e->cur;
        uint64_t max = in->read_size / QEMU_TPS;

        for (; c->block < l->n_blocks; c->block++, c->page = 0, c->chunk_pages = 0) {
                const struct mrm_block *b = &l->blocks[c->block];
                uint64_t first, end;
                int r;

                if (e->dest && !e->dest[c->block])
                        continue;
                r = find_bit(in, c, true, c->page, b->num_pages, &first);
                if (r < 0)
                        return r;
                if (first >= b->num_pages)
                        continue;
                r = find_bit(in, c, false, first + 1, MIN(b->num_pages, first + max), &end);
                s->has_gap = false;
                if (r == 0 && !e->dest) {
                        bitmap_words_clear_range(s->gap, 0, max);
                        r = span_gaps(in, c, s, first, MIN(b->num_pages, first + max), &end);
                }
                if (r < 0)
                        return r;
                s->run = (struct mrm_run) {
                        .block = (unsigned)c->block, .first_page = first, .npages = end - first,
                        .offset = b->pages_offset + first * QEMU_TPS,
                };
                c->page = end;
                return 1;
        }
        return 0;
}

/* ---- The read engine ---------------------------------------------------- */

static int page_fd(const struct mrm_input *in)
{
        return in->dfd >= 0 ? in->dfd : in->fd;
}

static int submit_read(struct mrm_input *in, unsigned idx)
{
        struct rd_slot *s = &in->slots[idx];
        struct io_uring_sqe *sqe = io_uring_get_sqe(&in->ring);
        int r;

        if (!sqe)       /* cannot happen: the ring has qd entries */
                return -EBUSY;
        io_uring_prep_read(sqe, page_fd(in), (uint8_t *)s->run.data + s->done,
                           (unsigned)(s->len - s->done), s->run.offset + s->done);
        io_uring_sqe_set_data64(sqe, idx);
        do
                r = io_uring_submit(&in->ring);
        while (r == -EINTR || r == -EAGAIN);
        return r < 0 ? r : 0;
}

/* Without a ring the read happens right here. */
static int read_sync(struct mrm_input *in, struct rd_slot *s)
{
        while (s->done < s->len) {
                ssize_t n = pread(page_fd(in), (uint8_t *)s->run.data + s->done, s->len - s->done,
                                  (off_t)(s->run.offset + s->done));
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n <= 0)
                        return read_error(in, n < 0 ? -errno : -EIO, s->run.offset + s->done);
                s->done += (size_t)n;
        }
        return 0;
}

static void slot_failed(struct engine *e, struct rd_slot *s, int r)
{
        s->complete = true;
        if (e->r == 0)
                e->r = r;
        e->more = false;
}

static void start_slot(struct mrm_input *in, struct engine *e, unsigned idx)
{
        struct rd_slot *s = &in->slots[idx];
        int r;

        s->run.data = e->dest ? (uint8_t *)e->dest[s->run.block] + s->run.first_page * QEMU_TPS : s->own;
        s->len = s->run.npages * QEMU_TPS;
        s->done = 0;
        s->complete = false;
        e->n_busy++;
        if (!in->have_ring) {
                r = read_sync(in, s);
                s->complete = true;
        } else {
                r = submit_read(in, idx);
                if (r < 0)
                        r = read_error(in, r, s->run.offset);
        }
        if (r < 0)
                slot_failed(e, s, r);
}

/* One completion: done, resubmitted (short read, -EAGAIN) or failed. */
static void reap(struct mrm_input *in, struct engine *e)
{
        struct io_uring_cqe *cqe;
        int r = io_uring_wait_cqe(&in->ring, &cqe);

        if (r == -EINTR || r == -EAGAIN)
                return;
        if (r < 0) {
                /* The ring itself is broken: nothing in flight will come
                 * back, so stop waiting for it. */
                read_error(in, r, 0);
                for (unsigned i = 0; i < e->n_busy; i++)
                        slot_failed(e, &in->slots[(e->head + i) % in->qd], r);
                return;
        }
        unsigned idx = (unsigned)io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&in->ring, cqe);
        struct rd_slot *s = &in->slots[idx];
        if (res > 0) {
                MARK_READ((uint8_t *)s->run.data + s->done, (size_t)res);
                s->done += (size_t)res;
        }
        if (res == -EAGAIN || res == -EINTR || (res > 0 && s->done < s->len))
                r = submit_read(in, idx);
        else if (res <= 0)
                r = res < 0 ? res : -EIO;
        else
                s->complete = true;
        if (r < 0)
                slot_failed(e, s, read_error(in, r, s->run.offset + s->done));
}

/* The present runs of a read that spanned gaps, one by one. */
static int deliver_runs(struct engine *e, struct rd_slot *s)
{
        const struct mrm_run *all = &s->run;
        uint64_t n = all->npages, i = bitmap_words_next(s->gap, n, 0, false);
        int r = 0;

        while (i < n && r == 0) {
                uint64_t end = bitmap_words_next(s->gap, n, i, true);
                struct mrm_run part = {
                        .block = all->block, .first_page = all->first_page + i,
                        .npages = end - i, .offset = all->offset + i * QEMU_TPS,
                        .data = (uint8_t *)all->data + i * QEMU_TPS,
                };

                r = e->fn(e->opaque, &part);
                i = bitmap_words_next(s->gap, n, end, false);
        }
        return r;
}

static void deliver(struct mrm_input *in, struct engine *e)
{
        struct rd_slot *s = &in->slots[e->head];

        if (e->r == 0 && e->fn) {
                int r = s->has_gap ? deliver_runs(e, s) : e->fn(e->opaque, &s->run);
                if (r < 0) {
                        e->r = r;
                        e->more = false;
                }
        }
        s->complete = false;
        e->head = (e->head + 1) % in->qd;
        e->n_busy--;
}

static int engine_run(struct mrm_input *in, struct engine *e)
{
        e->more = true;
        while (e->more || e->n_busy > 0) {
                while (e->more && e->n_busy < in->qd) {
                        unsigned idx = (e->head + e->n_busy) % in->qd;
                        int k = next_extent(in, e, &in->slots[idx]);
                        if (k <= 0) {
                                e->more = false;
                                if (k < 0 && e->r == 0)
                                        e->r = k;
                                break;
                        }
                        start_slot(in, e, idx);
                }
                if (e->n_busy == 0)
                        break;
                if (in->slots[e->head].complete)
                        deliver(in, e);
                else
                        reap(in, e);
        }
        return e->r;
}

int mrm_input_read_pages(struct mrm_input *in, mrm_run_fn fn, void *opaque)
{
        struct engine e = { .fn = fn, .opaque = opaque };

        for (unsigned i = 0; i < in->qd; i++) {
                struct rd_slot *s = &in->slots[i];

                if (!s->gap && !(s->gap = calloc(in->read_size / QEMU_TPS / 64 + 1, sizeof(uint64_t))))
                        return -ENOMEM;
                if (!s->own && posix_memalign((void **)&s->own, MRM_INPUT_ALIGN, in->read_size) != 0) {
                        s->own = NULL;
                        return -ENOMEM;
                }
        }
        return engine_run(in, &e);
}

int mrm_input_read_into(struct mrm_input *in, void *const *dest, mrm_run_fn fn, void *opaque)
{
        struct engine e = { .dest = dest, .fn = fn, .opaque = opaque };

        for (size_t i = 0; i < in->file.layout.n_blocks; i++)
                if ((uintptr_t)dest[i] % MRM_INPUT_ALIGN != 0)
                        return -EINVAL;
        return engine_run(in, &e);
}
