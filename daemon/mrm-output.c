/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One mapped-ram output file (see mrm-output.h).
 *
 * Two descriptors point at the file: the data fd, opened with O_DIRECT when
 * the file system accepts it, through which the writer pool puts page data
 * at its 1 MiB-aligned slots; and the stream fd, always buffered, for the
 * small unaligned pieces (prologue, block records, bitmaps, RAM tail,
 * device state).  The two never share a 4 KiB page: slot regions start on
 * 1 MiB boundaries and end on page boundaries where the next block record
 * begins.  The file is sized to the end of the RAM tail at creation, so
 * data writes never extend it.
 *
 * The producer (one session thread) fills batches of contiguous pages of
 * one block straight into a pool buffer.  A private in-flight bitmap per
 * block (set when a page joins a batch, cleared by the worker when the
 * write completed) stops two writes to the same slot from racing: a page
 * that is still in flight is waited for before it is queued again.
 *
 * A short run of ZERO records between two data pages does not end the
 * batch: those slots are written as zeros with their bits left clear, so
 * the bitmap is the one QEMU would write and a loader never reads them.
 * Scattered data (a page in three, say) then goes to the disk in large
 * writes instead of one 4 KiB write per page, which some disks and file
 * systems (every write splitting an unwritten extent) take ten times
 * longer over.  Only pages this stream just said are zero are filled: a
 * page the stream did not mention keeps what an earlier pass wrote.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "macro.h"
#include "mrm-output.h"
#include "numa-topo.h"
#include "page-copy.h"
#include "slot-prealloc.h"
#include "writer-pool.h"

#ifndef RWF_DONTCACHE
#define RWF_DONTCACHE 0x00000080
#endif

#define OUT_ERR_MAX             512
#define DEFAULT_QUEUE_DEPTH     32U
#define DEFAULT_BUFFER_SIZE     (1U << 20)
#define TMP_NAME_TRIES          64
#define TMP_NAME_PREFIX_MAX     200     /* keeps ".<name>.XXXXXX.part" < NAME_MAX */

enum { TAG_BLOCK, TAG_PAGE, TAG_NPAGES, TAG_NDATA };
/* Zero pages a batch may carry between two data pages: each costs 4 KiB
 * of disk bandwidth, a write saved costs far more on slow devices. */
#define GAP_FILL_MAX_PAGES      16U

struct batch {
        struct wp_req *req;             /* NULL: no open batch */
        unsigned block;
        uint64_t first;
        uint64_t n;                     /* pages in the buffer */
        uint64_t n_data;                /* up to the last data page: what is written */
        unsigned n_gap;                 /* zero pages filled */
        uint64_t *gap;                  /* bit i: page first + i is a filled zero */
};

struct mrm_output {
        struct mrm_layout layout;
        struct shm_bitmap bm;
        uint64_t **inflight;            /* per block, private */
        struct numa_topo topo;
        struct writer_pool *pool;
        int sfd;                        /* stream bytes, buffered */
        int dfd;                        /* page data, O_DIRECT if possible */
        bool own_sfd;
        int dirfd;                      /* temp-file case only */
        char *final_name;               /* in dirfd */
        char *tmp_name;                 /* in dirfd; NULL once renamed */
        char *display;                  /* for messages */
        bool overwrite;
        bool direct;
        bool dontcache;
        bool reserved;                  /* slots fallocate()d (slot-prealloc.h) */
        size_t buffer_size;
        struct batch cur;
        unsigned *node_rr;              /* per node round-robin cursor */
        uint64_t append_off;
        int error;
        char errmsg[OUT_ERR_MAX];
        bool committed;
        bool truncate_on_abort;         /* handed fd, once emptied */
};

/* ---- small helpers ---------------------------------------------------- */

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
        const uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = pwrite(fd, p, len, (off_t)off);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t)n;
                off += (uint64_t)n;
        }
        return 0;
}

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

/* Record the first error of the job; later calls fail fast with it. */
static int fail(struct mrm_output *o, int r, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int fail(struct mrm_output *o, int r, const char *fmt, ...)
{
        va_list ap;

        if (o->error)
                return o->error;
        o->error = r;
        va_start(ap, fmt);
        vsnprintf(o->errmsg, sizeof(o->errmsg), fmt, ap);
        va_end(ap);
        return r;
}

static int fail_pool(struct mrm_output *o, int r)
{
        uint64_t off = 0;
        int perr = wp_error(o->pool, &off);

        if (perr < 0 && perr != -ECANCELED)
                return fail(o, perr, "write '%s' at offset 0x%" PRIx64 ": %s",
                            o->display, off, strerror(-perr));
        return fail(o, r, "write '%s': %s", o->display, strerror(-r));
}

const struct mrm_layout *mrm_output_layout(const struct mrm_output *o)
{
        return &o->layout;
}

struct shm_bitmap *mrm_output_bitmap(struct mrm_output *o)
{
        return &o->bm;
}

const char *mrm_output_io_mode(const struct mrm_output *o)
{
        if (o->direct)
                return "direct";
        return o->dontcache ? "buffered+dontcache" : "buffered";
}

bool mrm_output_slots_reserved(const struct mrm_output *o)
{
        return o->reserved;
}

const char *mrm_output_error(const struct mrm_output *o)
{
        return o->error ? o->errmsg : NULL;
}

void mrm_output_writer_stats(struct mrm_output *o, struct wp_stats *out)
{
        wp_get_stats(o->pool, out);
}

/* ---- opening the file ------------------------------------------------- */

static int split_path(struct mrm_output *o, const char *path, char *err, size_t errlen)
{
        const char *slash = strrchr(path, '/');
        const char *base = slash ? slash + 1 : path;
        _cleanup_free_ char *dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
        _cleanup_free_ char *name = strdup(base);

        if (!dir || !name)
                return -ENOMEM;
        if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
                set_err(err, errlen, "output '%s' does not name a file", path);
                return -EINVAL;
        }
        o->dirfd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (o->dirfd < 0) {
                int r = -errno;
                set_err(err, errlen, "open directory of '%s': %s", path, strerror(-r));
                return r;
        }
        o->final_name = TAKE_PTR(name);
        return 0;
}

static int check_final_name(struct mrm_output *o, char *err, size_t errlen)
{
        struct stat st;

        if (fstatat(o->dirfd, o->final_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                int r = -errno;

                if (r == -ENOENT)
                        return 0;
                set_err(err, errlen, "stat '%s': %s", o->display, strerror(-r));
                return r;
        }
        if (!o->overwrite) {
                set_err(err, errlen, "output '%s' already exists", o->display);
                return -EEXIST;
        }
        if (S_ISDIR(st.st_mode)) {
                set_err(err, errlen, "output '%s' is a directory", o->display);
                return -EISDIR;
        }
        return 0;
}

#define TMP_SUFFIX ".part"
#define TMP_RANDOM_LEN 6

bool mrm_output_is_temp_name(const char *name)
{
        size_t len = strlen(name), sfx = strlen(TMP_SUFFIX);
        const char *rnd;

        /* "." + at least one byte of name + "." + 6 random + ".part" */
        if (name[0] != '.' || len < 1 + 1 + 1 + TMP_RANDOM_LEN + sfx ||
            strcmp(name + len - sfx, TMP_SUFFIX) != 0)
                return false;
        rnd = name + len - sfx - TMP_RANDOM_LEN;
        if (rnd[-1] != '.')
                return false;
        for (int i = 0; i < TMP_RANDOM_LEN; i++)
                if (!isalnum((unsigned char)rnd[i]))
                        return false;
        return true;
}

static void random_suffix(char out[TMP_RANDOM_LEN + 1])
{
        static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        uint8_t rnd[TMP_RANDOM_LEN];

        if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
                for (size_t i = 0; i < sizeof(rnd); i++)
                        rnd[i] = (uint8_t)(rand() ^ (int)getpid());
        for (size_t i = 0; i < sizeof(rnd); i++)
                out[i] = chars[rnd[i] % (sizeof(chars) - 1)];
        out[TMP_RANDOM_LEN] = '\0';
}

/* ".<name>.XXXXXX.part" next to the final name, created exclusively. */
static int create_temp(struct mrm_output *o, char *err, size_t errlen)
{
        char tmp[256], sfx[TMP_RANDOM_LEN + 1];
        int r;

        for (int i = 0; i < TMP_NAME_TRIES; i++) {
                random_suffix(sfx);
                snprintf(tmp, sizeof(tmp), ".%.*s.%s" TMP_SUFFIX, (int)TMP_NAME_PREFIX_MAX,
                         o->final_name, sfx);
                o->sfd = openat(o->dirfd, tmp,
                                O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
                if (o->sfd >= 0) {
                        o->own_sfd = true;
                        o->tmp_name = strdup(tmp);
                        return o->tmp_name ? 0 : -ENOMEM;
                }
                if (errno != EEXIST)
                        break;
        }
        r = -errno;
        set_err(err, errlen, "create temporary file for '%s': %s", o->display, strerror(-r));
        return r;
}

static int open_path(struct mrm_output *o, const char *path, char *err, size_t errlen)
{
        int r;

        o->display = strdup(path);
        if (!o->display)
                return -ENOMEM;
        r = split_path(o, path, err, errlen);
        if (r < 0)
                return r;
        r = check_final_name(o, err, errlen);
        if (r < 0)
                return r;
        return create_temp(o, err, errlen);
}

/* A client's fd: a regular file we may write, emptied first.  If it was
 * opened with O_DIRECT or O_APPEND, small positioned writes would fail or
 * land elsewhere, so the stream bytes go through a plain reopen. */
static int open_handed_fd(struct mrm_output *o, int fd, char *err, size_t errlen)
{
        char proc[64], target[256];
        struct stat st;
        ssize_t n;
        int fl;

        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        n = readlink(proc, target, sizeof(target) - 1);
        target[n > 0 ? n : 0] = '\0';
        if (asprintf(&o->display, "%s%sfd %d", target, n > 0 ? ", " : "", fd) < 0) {
                o->display = NULL;
                return -ENOMEM;
        }
        fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fstat(fd, &st) < 0) {
                int r = -errno;

                set_err(err, errlen, "output %s: %s", o->display, strerror(-r));
                return r;
        }
        if (!S_ISREG(st.st_mode) || (fl & O_ACCMODE) == O_RDONLY) {
                set_err(err, errlen, "output %s is not a regular file open for writing", o->display);
                return -EBADF;
        }
        o->sfd = fd;
        if (fl & (O_DIRECT | O_APPEND)) {
                o->sfd = open(proc, O_WRONLY | O_CLOEXEC);
                if (o->sfd < 0) {
                        int r = -errno;

                        set_err(err, errlen, "reopen output %s without O_DIRECT/O_APPEND: %s",
                                o->display, strerror(-r));
                        return r;
                }
                o->own_sfd = true;
        }
        if (ftruncate(o->sfd, 0) < 0) {
                int r = -errno;

                set_err(err, errlen, "truncate output %s: %s", o->display, strerror(-r));
                return r;
        }
        return 0;
}

/* ---- I/O mode --------------------------------------------------------- */

/* Errors that mean "this file system (or this fd) will not do O_DIRECT",
 * as opposed to a real failure of the file. */
static bool direct_refused(int r)
{
        return r == -EINVAL || r == -EOPNOTSUPP || r == -EACCES || r == -EPERM;
}

/* One aligned write of zeros at offset 0 (later overwritten by the
 * prologue): some file systems accept O_DIRECT at open but not at write. */
static int probe_direct(int fd)
{
        _cleanup_free_ void *buf = NULL;
        ssize_t n;

        buf = aligned_alloc(WP_BUFFER_ALIGN, WP_BUFFER_ALIGN);
        if (!buf)
                return -ENOMEM;
        memset(buf, 0, WP_BUFFER_ALIGN);
        n = pwrite(fd, buf, WP_BUFFER_ALIGN, 0);
        if (n < 0)
                return -errno;
        return n == WP_BUFFER_ALIGN ? 0 : -EIO;
}

static int open_direct(struct mrm_output *o)
{
        _cleanup_close_ int fd = -1;
        char proc[64];
        int r;

        if (o->tmp_name)
                fd = openat(o->dirfd, o->tmp_name, O_WRONLY | O_DIRECT | O_NOFOLLOW | O_CLOEXEC);
        else {
                snprintf(proc, sizeof(proc), "/proc/self/fd/%d", o->sfd);
                fd = open(proc, O_WRONLY | O_DIRECT | O_CLOEXEC);
        }
        if (fd < 0)
                return -errno;
        r = probe_direct(fd);
        if (r < 0)
                return r;
        o->dfd = TAKE_FD(fd);
        return 0;
}

static int setup_io(struct mrm_output *o, enum io_mode mode, char *err, size_t errlen)
{
        int r;

        if (mode != IO_MODE_BUFFERED) {
                r = open_direct(o);
                if (r == 0) {
                        o->direct = true;
                        return 0;
                }
                if (mode == IO_MODE_DIRECT || !direct_refused(r)) {
                        set_err(err, errlen, "O_DIRECT write to '%s': %s", o->display, strerror(-r));
                        return r;
                }
        }
        o->dfd = fcntl(o->sfd, F_DUPFD_CLOEXEC, 3);
        if (o->dfd < 0) {
                r = -errno;
                set_err(err, errlen, "dup output fd: %s", strerror(-r));
                return r;
        }
        return 0;
}

/* In buffered mode the prologue doubles as the RWF_DONTCACHE probe: a
 * kernel or file system without uncached writes refuses the flag. */
static int write_prologue(struct mrm_output *o)
{
        size_t n = mrm_prologue_size(&o->layout);
        _cleanup_free_ uint8_t *buf = malloc(n);
        size_t done = 0;

        if (!buf)
                return -ENOMEM;
        mrm_encode_prologue(&o->layout, buf);
        if (!o->direct) {
                struct iovec iov = { .iov_base = buf, .iov_len = n };
                ssize_t w = pwritev2(o->sfd, &iov, 1, 0, RWF_DONTCACHE);

                if (w >= 0) {
                        o->dontcache = true;
                        done = (size_t)w;
                } else if (errno != EOPNOTSUPP && errno != EINVAL)
                        return -errno;
        }
        return pwrite_all(o->sfd, buf + done, n - done, done);
}

/* Prologue, every block record and the RAM tail: after this the file
 * covers every slot, so data writes never extend it. */
static int write_stream_pieces(struct mrm_output *o, char *err, size_t errlen)
{
        uint8_t rec[1 + SAVD_NAME_MAX + 8 + MAPPED_RAM_HDR_SIZE + 64];
        _cleanup_free_ uint8_t *tail = malloc(mrm_ram_tail_size());
        int r;

        if (!tail)
                return -ENOMEM;
        r = write_prologue(o);
        for (size_t i = 0; r == 0 && i < o->layout.n_blocks; i++) {
                const struct mrm_block *b = &o->layout.blocks[i];
                size_t n = mrm_encode_block_record(b, rec);

                r = pwrite_all(o->sfd, rec, n, b->record_offset);
        }
        if (r == 0) {
                size_t n = mrm_encode_ram_tail(&o->layout, tail);

                r = pwrite_all(o->sfd, tail, n, o->layout.ram_end_offset);
        }
        if (r < 0)
                set_err(err, errlen, "write '%s': %s", o->display, strerror(-r));
        o->append_off = o->layout.device_offset;
        return r;
}

/* ---- writer pool ------------------------------------------------------ */

/* Runs on a worker thread once a batch is on disk (or in the page cache). */
static void on_complete(void *opaque, const struct wp_req *r)
{
        struct mrm_output *o = opaque;
        unsigned block = (unsigned)r->tag[TAG_BLOCK];

        bitmap_words_clear_range(o->inflight[block], r->tag[TAG_PAGE], r->tag[TAG_NPAGES]);
        /* Page data: the zeros a batch carries are not counted. */
        shm_counter_add(&o->bm.hdr->c.pages_written, r->tag[TAG_NDATA]);
        shm_counter_add(&o->bm.hdr->c.bytes_written, r->tag[TAG_NDATA] * QEMU_TPS);
}

static int setup_pool(struct mrm_output *o, const struct writer_config *c, char *err, size_t errlen)
{
        struct wp_params p = { 0 };
        int r;

        r = numa_topo_init(&o->topo, c->fake_nodes);
        if (r < 0) {
                set_err(err, errlen, "fake NUMA nodes: at most %u", NUMA_TOPO_MAX_NODES);
                return r;
        }
        p.topo = &o->topo;
        p.cache = c->cache;
        p.n_workers = c->n_workers ? c->n_workers : o->topo.n_nodes;
        p.queue_depth = c->queue_depth ? c->queue_depth : DEFAULT_QUEUE_DEPTH;
        p.buffer_size = c->buffer_size ? c->buffer_size : DEFAULT_BUFFER_SIZE;
        p.slots_per_worker = c->buffers_per_worker ? c->buffers_per_worker : 2 * p.queue_depth;
        p.fd = o->dfd;
        p.rw_flags = o->dontcache ? RWF_DONTCACHE : 0;
        p.hold_bytes = c->hold_bytes;
        p.complete = on_complete;
        p.opaque = o;
        o->buffer_size = p.buffer_size;
        o->cur.gap = calloc(p.buffer_size / QEMU_TPS / 64 + 1, sizeof(uint64_t));
        if (!o->cur.gap)
                return -ENOMEM;
        o->node_rr = calloc(o->topo.n_nodes, sizeof(*o->node_rr));
        if (!o->node_rr)
                return -ENOMEM;
        return wp_new(&o->pool, &p, err, errlen);
}

static int alloc_bitmaps(struct mrm_output *o)
{
        int r = shm_bitmap_create(&o->bm, &o->layout);

        if (r < 0)
                return r;
        o->inflight = calloc(o->layout.n_blocks ? o->layout.n_blocks : 1, sizeof(*o->inflight));
        if (!o->inflight)
                return -ENOMEM;
        for (size_t i = 0; i < o->layout.n_blocks; i++) {
                o->inflight[i] = calloc(shm_bitmap_num_words(&o->bm, (unsigned)i), sizeof(uint64_t));
                if (!o->inflight[i])
                        return -ENOMEM;
        }
        return 0;
}

/* ---- the data path ---------------------------------------------------- */

static int check_usable(const struct mrm_output *o)
{
        if (o->error)
                return o->error;
        return o->committed ? -EALREADY : 0;
}

static int check_range(const struct mrm_output *o, unsigned block, uint64_t first, uint64_t n)
{
        if (block >= o->layout.n_blocks || n == 0)
                return -EINVAL;
        if (first >= o->layout.blocks[block].num_pages ||
            n > o->layout.blocks[block].num_pages - first)
                return -ERANGE;
        return 0;
}

static uint64_t slot_offset(const struct mrm_output *o, unsigned block, uint64_t page)
{
        return o->layout.blocks[block].pages_offset + page * QEMU_TPS;
}

static int submit_req(struct mrm_output *o, struct wp_req *r, unsigned block,
                      uint64_t first, uint64_t n, uint64_t n_data)
{
        int err;

        r->offset = slot_offset(o, block, first);
        r->len = n * QEMU_TPS;
        r->tag[TAG_BLOCK] = block;
        r->tag[TAG_PAGE] = first;
        r->tag[TAG_NPAGES] = n;
        r->tag[TAG_NDATA] = n_data;
        page_copy_fence();              /* pages copied with streaming stores */
        err = wp_submit(o->pool, r);
        return err < 0 ? fail_pool(o, err) : 0;
}

/* The bits of a batch's data pages: the runs between its filled zeros. */
static void set_data_bits(struct mrm_output *o, struct batch *b)
{
        for (uint64_t i = bitmap_words_next(b->gap, b->n_data, 0, false); i < b->n_data;) {
                uint64_t end = bitmap_words_next(b->gap, b->n_data, i, true);

                shm_bitmap_set_range(&o->bm, b->block, b->first + i, end - i);
                i = bitmap_words_next(b->gap, b->n_data, end, false);
        }
        bitmap_words_clear_range(b->gap, 0, b->n);
        b->n_gap = 0;
}

/* A ZERO record right after the open batch's last page, while the run of
 * zeros is short and the buffer has room: the batch carries the page as
 * zeros (see the top of this file). */
static bool gap_fill(struct mrm_output *o, unsigned block, uint64_t page)
{
        struct batch *b = &o->cur;

        if (!b->req || b->block != block || b->first + b->n != page ||
            b->n - b->n_data >= GAP_FILL_MAX_PAGES || (b->n + 1) * QEMU_TPS > o->buffer_size)
                return false;
        /* An earlier pass's write to the slot must not overlap ours: its
         * completion would mark the page idle while ours is in flight. */
        if (bitmap_words_any_in_range(o->inflight[block], page, 1))
                return false;
        /* Never the old content of a reused buffer: it may be another VM's. */
        memset((uint8_t *)b->req->buf + b->n * QEMU_TPS, 0, QEMU_TPS);
        bitmap_words_set_range(b->gap, b->n, 1);
        b->n++;
        b->n_gap++;
        return true;
}

static int batch_submit(struct mrm_output *o)
{
        struct batch *b = &o->cur;
        struct wp_req *r = b->req;
        uint64_t inner_gaps;

        if (!r)
                return 0;
        b->req = NULL;
        /* Zeros after the last data page are not written at all. */
        inner_gaps = b->n_gap - (b->n - b->n_data);
        /* Bits are set per batch, not per page: a locked instruction
         * waits for the streaming stores of the page copied before it, so
         * one per page cost as much as the copy itself.  A ZERO record for
         * a page of the open batch submits the batch first (see
         * mrm_output_zero), so the order of PAGE and ZERO still rules. */
        bitmap_words_set_range(o->inflight[b->block], b->first, b->n_data);
        if (b->n_gap == 0)
                shm_bitmap_set_range(&o->bm, b->block, b->first, b->n_data);
        else
                set_data_bits(o, b);
        return submit_req(o, r, b->block, b->first, b->n_data, b->n_data - inner_gaps);
}

static int flush_and_drain(struct mrm_output *o)
{
        int r = batch_submit(o);

        if (r < 0)
                return r;
        r = wp_drain(o->pool);
        return r < 0 ? fail_pool(o, r) : 0;
}

static bool batch_continues(const struct mrm_output *o, unsigned block, uint64_t page)
{
        const struct batch *b = &o->cur;

        return b->req && b->block == block && b->first + b->n == page &&
               (b->n + 1) * QEMU_TPS <= o->buffer_size;
}

/* Do pages [first, first + n) of block overlap the batch being filled? */
static bool in_open_batch(const struct mrm_output *o, unsigned block, uint64_t first, uint64_t n)
{
        const struct batch *b = &o->cur;

        return b->req && b->block == block && first < b->first + b->n && b->first < first + n;
}

/* Is a page of the range still being written, or about to be? */
static bool range_busy(const struct mrm_output *o, unsigned block, uint64_t first, uint64_t n)
{
        return in_open_batch(o, block, first, n) ||
               bitmap_words_any_in_range(o->inflight[block], first, n);
}

static int batch_start(struct mrm_output *o, unsigned block, uint64_t page)
{
        int r = batch_submit(o);

        if (r < 0)
                return r;
        r = wp_get(o->pool, -1, &o->cur.req);
        if (r < 0)
                return fail_pool(o, r);
        o->cur.block = block;
        o->cur.first = page;
        o->cur.n = o->cur.n_data = 0;
        return 0;
}

int mrm_output_page(struct mrm_output *o, unsigned block, uint64_t page, void **dst)
{
        int r = check_usable(o);

        if (r == 0)
                r = check_range(o, block, page, 1);
        if (r < 0)
                return r;
        /* The slot is still being written by an earlier pass (or sits in
         * the open batch): let that write finish first. */
        if (range_busy(o, block, page, 1)) {
                r = flush_and_drain(o);
                if (r < 0)
                        return r;
        }
        if (!batch_continues(o, block, page)) {
                r = batch_start(o, block, page);
                if (r < 0)
                        return r;
        }
        *dst = (uint8_t *)o->cur.req->buf + o->cur.n * QEMU_TPS;
        o->cur.n_data = ++o->cur.n;
        return 0;
}

int mrm_output_copy_page(struct mrm_output *o, unsigned block, uint64_t page, const void *src)
{
        void *dst;
        int r = mrm_output_page(o, block, page, &dst);

        if (r == 0)
                page_copy(dst, src);
        return r;
}

int mrm_output_zero(struct mrm_output *o, unsigned block, uint64_t page)
{
        int r = check_usable(o);

        if (r == 0)
                r = check_range(o, block, page, 1);
        if (r < 0)
                return r;
        /* The page's bit is set when its batch is submitted: do that now
         * so that the clear comes after it.  Stale data may stay in the
         * slot: the bitmap rules. */
        if (in_open_batch(o, block, page, 1)) {
                r = batch_submit(o);
                if (r < 0)
                        return r;
        } else
                (void)gap_fill(o, block, page);
        shm_bitmap_clear(&o->bm, block, page);
        shm_counter_add(&o->bm.hdr->c.pages_zero, 1);
        return 0;
}

/* Workers of topology node k are k, k + n_nodes, ...; take them in turn. */
static int worker_for_node(struct mrm_output *o, int node)
{
        unsigned nodes = o->topo.n_nodes, workers = wp_n_workers(o->pool);
        unsigned k, count;

        if (node < 0)
                return -1;
        k = (unsigned)node % nodes;
        if (k >= workers)
                return (int)(k % workers);
        count = (workers - k + nodes - 1) / nodes;
        return (int)(k + nodes * (o->node_rr[k]++ % count));
}

int mrm_output_write_from(struct mrm_output *o, unsigned block, uint64_t first_page,
                          uint64_t npages, const void *src, int node)
{
        uint64_t per_req = o->buffer_size / QEMU_TPS;
        int r = check_usable(o);

        if (r == 0)
                r = check_range(o, block, first_page, npages);
        if (r == 0 && (uintptr_t)src % WP_BUFFER_ALIGN != 0)
                r = -EINVAL;
        if (r < 0)
                return r;
        if (range_busy(o, block, first_page, npages)) {
                r = flush_and_drain(o);
                if (r < 0)
                        return r;
        }
        for (uint64_t done = 0; done < npages;) {
                uint64_t n = MIN(per_req, npages - done);
                struct wp_req *req;

                r = wp_get(o->pool, worker_for_node(o, node), &req);
                if (r < 0)
                        return fail_pool(o, r);
                req->src = (const uint8_t *)src + done * QEMU_TPS;
                bitmap_words_set_range(o->inflight[block], first_page + done, n);
                shm_bitmap_set_range(&o->bm, block, first_page + done, n);
                r = submit_req(o, req, block, first_page + done, n, n);
                if (r < 0)
                        return r;
                done += n;
        }
        return 0;
}

int mrm_output_drain(struct mrm_output *o)
{
        int r = check_usable(o);

        return r < 0 ? r : flush_and_drain(o);
}

int mrm_output_append(struct mrm_output *o, const void *buf, size_t len)
{
        int r = check_usable(o);

        if (r < 0)
                return r;
        r = pwrite_all(o->sfd, buf, len, o->append_off);
        if (r < 0)
                return fail(o, r, "write '%s' at offset 0x%" PRIx64 ": %s",
                            o->display, o->append_off, strerror(-r));
        o->append_off += len;
        return 0;
}

/* ---- commit, abort ---------------------------------------------------- */

static int write_bitmaps(struct mrm_output *o)
{
        for (size_t i = 0; i < o->layout.n_blocks; i++) {
                const struct mrm_block *b = &o->layout.blocks[i];
                uint64_t bytes = shm_bitmap_num_words(&o->bm, (unsigned)i) * sizeof(uint64_t);
                int r;

                if (bytes != b->bitmap_size)
                        return -EINVAL;
                /* Host-order words, exactly as QEMU stores them. */
                r = pwrite_all(o->sfd, shm_bitmap_words(&o->bm, (unsigned)i), bytes, b->bitmap_offset);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The file ends with the last appended byte (the RAM tail at least). */
static int set_final_size(struct mrm_output *o)
{
        struct stat st;

        if (fstat(o->sfd, &st) < 0)
                return -errno;
        if ((uint64_t)st.st_size != o->append_off && ftruncate(o->sfd, (off_t)o->append_off) < 0)
                return -errno;
        return 0;
}

static int rename_noreplace(struct mrm_output *o)
{
        if (renameat2(o->dirfd, o->tmp_name, o->dirfd, o->final_name, RENAME_NOREPLACE) == 0)
                return 0;
        if (errno != EINVAL)
                return -errno;
        /* File system without RENAME_NOREPLACE: link() never replaces. */
        if (linkat(o->dirfd, o->tmp_name, o->dirfd, o->final_name, 0) < 0)
                return -errno;
        (void)unlinkat(o->dirfd, o->tmp_name, 0);
        return 0;
}

static int publish(struct mrm_output *o)
{
        int r;

        if (!o->tmp_name)
                return 0;       /* handed fd: durable is complete */
        if (o->overwrite)
                r = renameat(o->dirfd, o->tmp_name, o->dirfd, o->final_name) < 0 ? -errno : 0;
        else
                r = rename_noreplace(o);
        if (r < 0)
                return r;
        free(o->tmp_name);
        o->tmp_name = NULL;
        if (fsync(o->dirfd) < 0) {
                r = -errno;
                /* Not durable, so not complete: take the name back. */
                (void)unlinkat(o->dirfd, o->final_name, 0);
                return r;
        }
        return 0;
}

int mrm_output_commit(struct mrm_output *o)
{
        int r = check_usable(o);

        if (r < 0)
                return r;
        r = flush_and_drain(o);
        if (r < 0)
                return r;
        if (o->reserved) {
                r = slots_release_unset(o->sfd, &o->layout, &o->bm);
                if (r < 0)
                        return fail(o, r, "release the unused slots of '%s': %s", o->display,
                                    strerror(-r));
        }
        r = write_bitmaps(o);
        if (r < 0)
                return fail(o, r, "write bitmaps of '%s': %s", o->display, strerror(-r));
        r = set_final_size(o);
        if (r == 0 && fdatasync(o->sfd) < 0)
                r = -errno;
        if (r < 0)
                return fail(o, r, "flush '%s' to disk: %s", o->display, strerror(-r));
        r = publish(o);
        if (r < 0)
                return fail(o, r, "rename temporary file into '%s': %s", o->display, strerror(-r));
        o->committed = true;
        return 0;
}

void mrm_output_abort(struct mrm_output *o)
{
        if (o->committed)
                return;
        if (o->pool) {
                if (o->cur.req) {
                        wp_put(o->pool, o->cur.req);
                        o->cur.req = NULL;
                }
                wp_cancel(o->pool);
                (void)wp_drain(o->pool);
        }
        (void)fail(o, -ECANCELED, "output '%s' aborted", o->display ? o->display : "");
        if (o->tmp_name) {
                (void)unlinkat(o->dirfd, o->tmp_name, 0);
                free(o->tmp_name);
                o->tmp_name = NULL;
        } else if (o->truncate_on_abort)
                (void)!ftruncate(o->sfd, 0);    /* never leave a partial file looking whole */
        o->truncate_on_abort = false;
}

void mrm_output_free(struct mrm_output *o)
{
        if (!o)
                return;
        mrm_output_abort(o);
        wp_free(o->pool);
        if (o->dfd >= 0)
                close(o->dfd);
        if (o->own_sfd && o->sfd >= 0)
                close(o->sfd);
        if (o->dirfd >= 0)
                close(o->dirfd);
        if (o->inflight)
                for (size_t i = 0; i < o->layout.n_blocks; i++)
                        free(o->inflight[i]);
        free(o->inflight);
        free(o->node_rr);
        free(o->cur.gap);
        shm_bitmap_close(&o->bm);
        mrm_layout_free(&o->layout);
        free(o->final_name);
        free(o->display);
        free(o);
}

static void mrm_output_freep(struct mrm_output **o)
{
        mrm_output_free(*o);
}

/* ---- create ----------------------------------------------------------- */

static struct mrm_output *output_alloc(struct mrm_layout *layout)
{
        struct mrm_output *o = calloc(1, sizeof(*o));

        if (!o)
                return NULL;
        o->layout = *layout;
        memset(layout, 0, sizeof(*layout));
        o->sfd = o->dfd = o->dirfd = -1;
        o->bm.fd = -1;
        return o;
}

static int open_output(struct mrm_output *o, const struct mrm_output_options *opt,
                       char *err, size_t errlen)
{
        int r;

        if (opt->path)
                return open_path(o, opt->path, err, errlen);
        r = open_handed_fd(o, opt->fd, err, errlen);
        if (r == 0)
                o->truncate_on_abort = true;
        return r;
}

int mrm_output_create(struct mrm_output **ret, struct mrm_layout *layout,
                      const struct mrm_output_options *opt, char *err, size_t errlen)
{
        _cleanup_(mrm_output_freep) struct mrm_output *o = output_alloc(layout);
        int r;

        if (!o) {
                mrm_layout_free(layout);
                return -ENOMEM;
        }
        set_err(err, errlen, "out of memory");
        if (!opt->path == (opt->fd < 0) || o->layout.device_offset == 0) {
                set_err(err, errlen, "output: need either a path or an fd, and a computed layout");
                return -EINVAL;
        }
        o->overwrite = opt->overwrite;
        r = alloc_bitmaps(o);
        if (r < 0) {
                set_err(err, errlen, "shared-memory bitmap: %s", strerror(-r));
                return r;
        }
        r = open_output(o, opt, err, errlen);
        if (r == 0)
                r = setup_io(o, opt->writer.io_mode, err, errlen);
        if (r == 0)
                r = write_stream_pieces(o, err, errlen);
        /* Only O_DIRECT writes gain (buffered ones allocate at writeback);
         * too little space for the whole RAM just means no reservation. */
        if (r == 0 && o->direct)
                o->reserved = slots_reserve(o->sfd, &o->layout) == 0;
        if (r == 0)
                r = setup_pool(o, &opt->writer, err, errlen);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}
