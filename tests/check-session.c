/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the QEMU sessions (daemon/session-qemu.c,
 * daemon/restore-qemu.c) and of the page reader under the restore
 * (daemon/mrm-input.c), driven over a socketpair without the daemon: a
 * thread plays the VMM, the session runs on the test's thread and writes
 * real files.
 *
 * Real data: the QEMU 7.2 stream of the 32 MiB "m0" guest is saved, and
 * the file must match the mapped-ram file QEMU 10.2 wrote of the same
 * guest block for block (names, lengths, offsets relative to the header,
 * bitmaps; pc.bios is the one exception: each QEMU ships its own firmware
 * image), hold the README's page pattern, keep the device state verbatim
 * and carry a vmdesc that describes mapped-ram.  Both that file and QEMU's
 * own are restored into a stream that the parser reads back to the same
 * guest memory and device state.
 *
 * Hand-built streams cover several passes (a page data -> zero -> data,
 * another data -> zero), CONTINUE records across sections, refusals
 * (xbzrle, compress, postcopy, x-ignore-shared, another iterative section,
 * an unknown flag), streams cut short, limits, cancellation, a file that
 * fails verification (refused before a byte is sent) and a VMM that goes
 * away mid-restore.  Every failed save must leave no file behind and shut
 * the channel so that the VMM notices.
 *
 * Without $SAVD_TESTDATA the hand-built cases still run and the binary
 * exits 77 (skipped).
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "bytes.h"
#include "macro.h"
#include "mrm-input.h"
#include "mrm-reader.h"
#include "qemu-emit.h"
#include "qemu-stream.h"
#include "session.h"
#include "stream-builder.h"
#include "test-util.h"
#include "vmdesc.h"

#define MAX_TEST_BLOCKS 8

static char workdir[256];

static char *work_path(const char *name)
{
        static char p[4096];

        snprintf(p, sizeof(p), "%s/%s", workdir, name);
        return p;
}

/* The work directory holds nothing: no final file, no temporary one. */
static void assert_workdir_empty(void)
{
        DIR *d = opendir(workdir);
        struct dirent *de;

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)))
                ck_assert_msg(strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0,
                              "'%s' left in the output directory", de->d_name);
        closedir(d);
}

static void setup_workdir(void)
{
        const char *t = getenv("TMPDIR");

        snprintf(workdir, sizeof(workdir), "%s/check-session.XXXXXX", t ? t : "/tmp");
        ck_assert_ptr_nonnull(mkdtemp(workdir));
}

static void teardown_workdir(void)
{
        DIR *d = opendir(workdir);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")))
                        (void)unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
        (void)rmdir(workdir);
}

/* ---- the save session over a socketpair ------------------------------------- */

static const struct savd_limits default_limits = {
        .max_blocks = SAVD_MAX_BLOCKS,
        .max_block_size = SAVD_MAX_BLOCK_SIZE,
        .max_inflight_bytes = 64ULL << 20,
        .max_device_state = 64ULL << 20,
};

/* The VMM's side: sends the stream, optionally cancels the job half way
 * the way the job does (flag, then shutdown of the session's end). */
struct feeder {
        int fd;
        const uint8_t *data;
        size_t len, chunk;
        size_t cancel_at;               /* 0: never */
        atomic_bool *cancelled;
        int session_fd;
        size_t sent;
        bool send_failed;
};

static void *feeder_main(void *arg)
{
        struct feeder *f = arg;

        while (f->sent < f->len) {
                if (f->cancel_at && f->sent >= f->cancel_at) {
                        atomic_store(f->cancelled, true);
                        shutdown(f->session_fd, SHUT_RDWR);
                        break;
                }
                size_t n = MIN(f->chunk, f->len - f->sent);
                if (f->cancel_at)
                        n = MIN(n, f->cancel_at - f->sent);
                ssize_t k = send(f->fd, f->data + f->sent, n, MSG_NOSIGNAL);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        f->send_failed = true;
                        break;
                }
                f->sent += (size_t)k;
        }
        shutdown(f->fd, SHUT_WR);
        return NULL;
}

struct save_result {
        int r;
        char err[SESSION_ERR_MAX];
        char io_mode[24];
        unsigned ready_calls, finalizing_calls;
        const struct shm_bitmap_header *shm;
        struct shm_bitmap_counters c;
        bool peer_closed;               /* the session shut the channel */
        size_t sent;
};

static void on_ready(void *job, struct mrm_output *o)
{
        struct save_result *res = job;
        struct shm_bitmap *b = mrm_output_bitmap(o);

        res->ready_calls++;
        /* A view of our own, like the job's: it outlives the output. */
        void *m = mmap(NULL, sizeof(struct shm_bitmap_header), PROT_READ, MAP_SHARED, b->fd, 0);
        ck_assert_ptr_ne(m, MAP_FAILED);
        res->shm = m;
}

static void on_finalizing(void *job)
{
        ((struct save_result *)job)->finalizing_calls++;
}

struct save_opts {
        const struct savd_limits *limits;
        size_t chunk;                   /* bytes per send; 0: 64 KiB */
        size_t cancel_at;
        int out_fd;                     /* or -1: output at path */
        enum io_mode io_mode;
};

static void run_save(const uint8_t *data, size_t len, const char *path, const struct save_opts *o,
                     struct save_result *res)
{
        atomic_bool cancelled = false;
        uint8_t sniff[SESSION_SNIFF_LEN];
        struct pollfd p;
        pthread_t t;
        int sv[2];

        memset(res, 0, sizeof(*res));
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        struct feeder f = {
                .fd = sv[1], .data = data, .len = len, .chunk = o->chunk ? o->chunk : 65536,
                .cancel_at = o->cancel_at, .cancelled = &cancelled, .session_fd = sv[0],
        };
        ck_assert_int_eq(pthread_create(&t, NULL, feeder_main, &f), 0);
        /* What the sniffer in session.c does before it picks the session. */
        size_t got = 0;
        while (got < sizeof(sniff)) {
                ssize_t k = read(sv[0], sniff + got, sizeof(sniff) - got);
                ck_assert_int_gt(k, 0);
                got += (size_t)k;
        }
        struct save_request req = {
                .data_fd = sv[0],
                .out = { .path = o->out_fd >= 0 ? NULL : path, .fd = o->out_fd,
                         .writer = { .io_mode = o->io_mode } },
                .limits = o->limits ? o->limits : &default_limits,
                .cancelled = &cancelled,
                .output_ready = on_ready,
                .finalizing = on_finalizing,
                .job = res,
        };
        res->r = qemu_save_session_run(&req, sniff, sizeof(sniff), res->err, sizeof(res->err));
        snprintf(res->io_mode, sizeof(res->io_mode), "%s", req.io_mode);
        p = (struct pollfd) { .fd = sv[1], .events = POLLIN | POLLRDHUP };
        ck_assert_int_ge(poll(&p, 1, 0), 0);
        res->peer_closed = p.revents & (POLLRDHUP | POLLHUP);
        close(sv[0]);
        pthread_join(t, NULL);
        close(sv[1]);
        res->sent = f.sent;
        if (res->shm) {
                res->c = res->shm->c;
                munmap((void *)res->shm, sizeof(struct shm_bitmap_header));
                res->shm = NULL;
        }
}

static const struct save_opts plain = { .out_fd = -1 };

/* A failed save: an error that says `what`, nothing left on disk, the
 * channel shut so that the VMM sees its migration fail. */
static void assert_save_refused(const struct save_result *res, const char *what)
{
        ck_assert_int_lt(res->r, 0);
        ck_assert_msg(strstr(res->err, what), "error '%s' lacks '%s'", res->err, what);
        ck_assert_msg(res->peer_closed, "the channel was not shut: %s", res->err);
        assert_workdir_empty();
}

/* ---- reading files back ------------------------------------------------------ */

static ssize_t fd_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
        ssize_t n = pread(*(int *)opaque, buf, len, (off_t)off);

        return n < 0 ? -errno : n;
}

struct opened {
        int fd;
        struct mrm_file f;
};

static void open_verified(const char *path, struct opened *o)
{
        struct mrm_error e = {};
        struct stat st;
        int r;

        memset(o, 0, sizeof(*o));
        o->fd = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_msg(o->fd >= 0, "open %s: %m", path);
        ck_assert_int_eq(fstat(o->fd, &st), 0);
        r = mrm_read(&o->f, fd_pread, &o->fd, (uint64_t)st.st_size, &e);
        ck_assert_msg(r == 0, "%s: read: %s at 0x%llx", path, e.msg, (unsigned long long)e.offset);
        r = mrm_verify(&o->f, fd_pread, &o->fd, &e);
        ck_assert_msg(r == 0, "%s: verify: %s at 0x%llx", path, e.msg, (unsigned long long)e.offset);
}

static void close_opened(struct opened *o)
{
        mrm_file_free(&o->f);
        close(o->fd);
}

static uint8_t *read_at(int fd, uint64_t off, size_t len)
{
        uint8_t *d = malloc(MAX(len, (size_t)1));

        ck_assert_ptr_nonnull(d);
        ck_assert_int_eq(pread(fd, d, len, (off_t)off), (ssize_t)len);
        return d;
}

static bool bit_set(const uint8_t *bitmap, uint64_t page)
{
        return (bitmap[page / 8] >> (page % 8)) & 1;
}

static struct json_object *member(struct json_object *o, const char *key)
{
        struct json_object *v = NULL;

        ck_assert_msg(json_object_object_get_ex(o, key, &v), "no '%s'", key);
        return v;
}

/* ---- a restored stream, read back by the parser ------------------------------- */

struct image {
        size_t n_blocks;                /* kept, at most MAX_TEST_BLOCKS */
        size_t total_blocks;
        char names[MAX_TEST_BLOCKS][SAVD_NAME_MAX + 1];
        uint64_t lens[MAX_TEST_BLOCKS];
        uint8_t *mem[MAX_TEST_BLOCKS];
        struct qstream_config cfg;
        uint64_t pages, zeros, sections;
        struct sbuf tail;
        int finish;
        char msg[QSTREAM_ERR_MAX];
};

static void image_event(struct image *im, const struct qstream_event *ev)
{
        switch (ev->type) {
        case QSTREAM_EV_CONFIG:
                im->cfg = *ev->config;
                break;
        case QSTREAM_EV_BLOCK:
                im->total_blocks++;
                if (im->n_blocks == MAX_TEST_BLOCKS)
                        break;          /* counted, not kept */
                strcpy(im->names[im->n_blocks], ev->block.block->name);
                im->lens[im->n_blocks] = ev->block.block->used_length;
                im->mem[im->n_blocks] = calloc(1, ev->block.block->used_length);
                ck_assert_ptr_nonnull(im->mem[im->n_blocks]);
                im->n_blocks++;
                break;
        case QSTREAM_EV_SECTION:
                im->sections++;
                break;
        case QSTREAM_EV_PAGE:
                if (ev->page.block < im->n_blocks)
                        memcpy(im->mem[ev->page.block] + ev->page.page * QEMU_TPS, ev->page.data,
                               QEMU_TPS);
                im->pages++;
                break;
        case QSTREAM_EV_ZERO:
                if (ev->zero.block < im->n_blocks)
                        memset(im->mem[ev->zero.block] + ev->zero.page * QEMU_TPS, 0, QEMU_TPS);
                im->zeros++;
                break;
        case QSTREAM_EV_DEVICE_TAIL:
                sb_put(&im->tail, ev->tail.data, ev->tail.len);
                break;
        default:
                break;
        }
}

static void parse_image(const uint8_t *d, size_t len, struct image *im)
{
        struct qstream *p = qstream_new();

        memset(im, 0, sizeof(*im));
        ck_assert_ptr_nonnull(p);
        for (;;) {
                struct qstream_event ev;
                size_t used = 0;
                int r = qstream_feed(p, d, len, &used, &ev);

                ck_assert_msg(r >= 0, "restored stream refused: %s", qstream_error(p));
                d += used;
                len -= used;
                if (r == 0)
                        break;
                image_event(im, &ev);
        }
        im->finish = qstream_finish(p);
        if (im->finish < 0)
                snprintf(im->msg, sizeof(im->msg), "%s", qstream_error(p));
        qstream_free(p);
}

static void image_free(struct image *im)
{
        for (size_t i = 0; i < im->n_blocks; i++)
                free(im->mem[i]);
        free(im->tail.p);
}

/* ---- the restore session over a socketpair ------------------------------------ */

/* The VMM's side of a restore: reads everything (or gives up after
 * close_after bytes) and closes, as QEMU does once it has loaded. */
struct sink {
        int fd;
        size_t close_after;             /* 0: read to the end */
        struct sbuf got;
};

static void *sink_main(void *arg)
{
        struct sink *s = arg;
        uint8_t buf[65536];

        for (;;) {
                size_t want = sizeof(buf);
                if (s->close_after)
                        want = MIN(want, s->close_after - s->got.len);
                ssize_t k = want ? read(s->fd, buf, want) : 0;
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                sb_put(&s->got, buf, (size_t)k);
        }
        close(s->fd);
        return NULL;
}

struct restore_result {
        int r;
        char err[SESSION_ERR_MAX];
        uint64_t bytes_sent, bytes_total;
        struct sbuf got;
};

static void run_restore(const char *path, int fd, size_t close_after, struct restore_result *res)
{
        atomic_bool cancelled = false;
        atomic_uint_fast64_t sent = 0;
        pthread_t t;
        int sv[2];

        memset(res, 0, sizeof(*res));
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        struct sink s = { .fd = sv[1], .close_after = close_after };
        ck_assert_int_eq(pthread_create(&t, NULL, sink_main, &s), 0);
        struct restore_request req = {
                .path = path, .input_fd = fd, .data_fd = sv[0], .limits = &default_limits,
                .cancelled = &cancelled, .bytes_sent = &sent,
        };
        res->r = qemu_restore_session_run(&req, res->err, sizeof(res->err));
        close(sv[0]);
        pthread_join(t, NULL);
        res->bytes_sent = atomic_load(&sent);
        res->bytes_total = req.bytes_total;
        res->got = s.got;
}

/* ---- the QEMU 7.2 stream and QEMU 10.2's file of the same guest ------------- */

#define Q72_NAME        "q72-legacy.stream"
#define Q10_NAME        "q10-mapped-ram.mrm"
#define M0_PAGES        8192U

/* The README's fill pattern of m0. */
static uint8_t m0_fill(uint64_t page)
{
        return page % 3 == 0 ? (uint8_t)((page * 7 + 1) & 0xff) : 0;
}

static void check_m0(const uint8_t *mem)
{
        for (uint64_t i = 0; i < M0_PAGES; i++) {
                const uint8_t *p = mem + i * QEMU_TPS;
                uint8_t v = m0_fill(i);
                for (size_t k = 0; k < QEMU_TPS; k += 512)
                        CHECK(p[k] == v && p[QEMU_TPS - 1] == v, "m0 page %llu: 0x%02x, want 0x%02x",
                              (unsigned long long)i, p[k], v);
        }
}

/* The stream's device sections and its vmdesc JSON, found from the end. */
struct q72_tail {
        uint8_t *stream;
        size_t len;
        size_t dev_off, eof_off;        /* in the stream */
        struct vmdesc_loc loc;          /* relative to dev_off */
};

static void load_q72(struct q72_tail *q)
{
        struct qstream *p = qstream_new();
        size_t used, pos = 0;
        struct qstream_event ev;

        q->stream = test_read_file(testdata_path(Q72_NAME), &q->len);
        /* Where the parser's device tail starts. */
        while (pos < q->len) {
                int r = qstream_feed(p, q->stream + pos, q->len - pos, &used, &ev);
                ck_assert_int_ge(r, 0);
                pos += used;
                if (r == 0)
                        break;
        }
        q->dev_off = q->len - qstream_stats(p)->tail_bytes;
        qstream_free(p);
        ck_assert_int_eq(vmdesc_find(q->stream + q->dev_off, q->len - q->dev_off, &q->loc), 1);
        q->eof_off = q->dev_off + q->loc.eof_offset;
}

static void save_q72(const struct q72_tail *q, const char *name, const struct save_opts *o)
{
        struct save_result res;

        run_save(q->stream, q->len, work_path(name), o, &res);
        ck_assert_msg(res.r == 0, "save: %s", res.err);
        ck_assert_uint_eq(res.ready_calls, 1);
        ck_assert_uint_eq(res.finalizing_calls, 1);
        ck_assert(!res.peer_closed);
        /* The shared-memory counters saw every byte and every page. */
        ck_assert_uint_eq(res.c.bytes_received, q->len);
        ck_assert_uint_eq(res.c.pages_written, 2772);
        ck_assert_uint_eq(res.c.pages_zero, 8322 - 2772);
        ck_assert_uint_eq(res.c.bytes_written, 2772ULL * QEMU_TPS);
        ck_assert_uint_eq(res.c.pages_total, 8322);
}

/* Same blocks, same offsets relative to each block's header, same bitmaps
 * (pc.bios aside: it is each QEMU version's own firmware). */
static void compare_layouts(const struct opened *a, const struct opened *b)
{
        const struct mrm_layout *la = &a->f.layout, *lb = &b->f.layout;

        ck_assert_uint_eq(la->n_blocks, lb->n_blocks);
        for (size_t i = 0; i < la->n_blocks; i++) {
                const struct mrm_block *x = &la->blocks[i], *y = &lb->blocks[i];
                ck_assert_str_eq(x->name, y->name);
                ck_assert_uint_eq(x->used_length, y->used_length);
                ck_assert_uint_eq(x->page_size, y->page_size);
                ck_assert_uint_eq(x->bitmap_offset - x->header_offset, y->bitmap_offset - y->header_offset);
                ck_assert_uint_eq(x->pages_offset - x->header_offset, y->pages_offset - y->header_offset);
                ck_assert_uint_eq(x->bitmap_size, y->bitmap_size);
                if (strcmp(x->name, "pc.bios") == 0)
                        continue;
                uint8_t *ba = read_at(a->fd, x->bitmap_offset, x->bitmap_size);
                uint8_t *bb = read_at(b->fd, y->bitmap_offset, y->bitmap_size);
                ck_assert_msg(memcmp(ba, bb, x->bitmap_size) == 0, "bitmaps of '%s' differ", x->name);
                ck_assert_uint_eq(a->f.stats[i].pages_present, b->f.stats[i].pages_present);
                free(ba);
                free(bb);
        }
}

static void check_m0_slots(const struct opened *o)
{
        const struct mrm_block *m0 = &o->f.layout.blocks[0];
        uint8_t *bm = read_at(o->fd, m0->bitmap_offset, m0->bitmap_size);
        uint8_t *pages = read_at(o->fd, m0->pages_offset, m0->used_length);

        ck_assert_str_eq(m0->name, "m0");
        for (uint64_t i = 0; i < M0_PAGES; i++) {
                CHECK(bit_set(bm, i) == (m0_fill(i) != 0), "m0 page %llu: bit %d",
                      (unsigned long long)i, bit_set(bm, i));
                CHECK(pages[i * QEMU_TPS] == m0_fill(i) || !bit_set(bm, i), "m0 slot %llu",
                      (unsigned long long)i);
        }
        free(bm);
        free(pages);
}

/* Saves the QEMU 7.2 stream and opens the result and QEMU 10.2's file of
 * the same guest, both verified. */
static void save_q72_and_open(struct q72_tail *q, struct opened *ours, struct opened *qemu)
{
        load_q72(q);
        save_q72(q, "q72.mrm", &plain);
        open_verified(work_path("q72.mrm"), ours);
        open_verified(testdata_path(Q10_NAME), qemu);
}

START_TEST(test_q72_save_matches_q10)
{
        struct q72_tail q;
        struct opened ours, qemu;

        save_q72_and_open(&q, &ours, &qemu);

        ck_assert_str_eq(ours.f.layout.machine, "pc-q35-7.2");
        ck_assert_uint_eq(ours.f.layout.ram_section_id, 2);     /* the stream's */
        ck_assert_uint_eq(ours.f.n_caps, 1);
        ck_assert_str_eq(ours.f.caps[0].name, "mapped-ram");
        ck_assert(!ours.f.layout.has_uuid);
        compare_layouts(&ours, &qemu);
        check_m0_slots(&ours);

        /* Device sections byte for byte, then EOF and a vmdesc. */
        size_t dev_len = q.eof_off - q.dev_off;
        ck_assert_uint_eq(ours.f.eof_offset - ours.f.device_offset, dev_len);
        uint8_t *dev = read_at(ours.fd, ours.f.device_offset, dev_len);
        ck_assert_mem_eq(dev, q.stream + q.dev_off, dev_len);
        free(dev);
        ck_assert(ours.f.has_vmdesc);
        ck_assert_uint_eq(ours.f.vmdesc_offset + ours.f.vmdesc_len, ours.f.file_size);
        close_opened(&ours);
        close_opened(&qemu);
        free(q.stream);
}
END_TEST

/* The vmdesc now describes the configuration as QEMU 10.2 does for its
 * own file, and the device descriptions are the stream's. */
START_TEST(test_q72_save_vmdesc)
{
        struct q72_tail q;
        struct opened ours, qemu;

        save_q72_and_open(&q, &ours, &qemu);
        ck_assert_ptr_nonnull(ours.f.vmdesc);
        ck_assert_ptr_nonnull(qemu.f.vmdesc);
        ck_assert(json_object_equal(member(ours.f.vmdesc, "configuration"),
                                    member(qemu.f.vmdesc, "configuration")));

        char *text = strndup((const char *)q.stream + q.dev_off + q.loc.json_offset, q.loc.json_len);
        struct json_object *orig = json_tokener_parse(text);
        ck_assert_ptr_nonnull(orig);
        free(text);
        ck_assert(json_object_equal(member(ours.f.vmdesc, "devices"), member(orig, "devices")));
        ck_assert(json_object_equal(member(ours.f.vmdesc, "page_size"), member(orig, "page_size")));
        json_object_put(orig);
        close_opened(&ours);
        close_opened(&qemu);
        free(q.stream);
}
END_TEST

/* Small sends, an output fd handed over, and buffered writes: same file. */
START_TEST(test_q72_save_variants)
{
        struct q72_tail q;
        size_t a_len, b_len;

        load_q72(&q);
        save_q72(&q, "a.mrm", &plain);
        int fd = open(work_path("b.mrm"), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        struct save_opts o = { .chunk = 4093, .out_fd = fd, .io_mode = IO_MODE_BUFFERED };
        save_q72(&q, "b.mrm", &o);
        close(fd);
        uint8_t *a = test_read_file(work_path("a.mrm"), &a_len);
        uint8_t *b = test_read_file(work_path("b.mrm"), &b_len);
        ck_assert_uint_eq(a_len, b_len);
        ck_assert(memcmp(a, b, a_len) == 0);
        free(a);
        free(b);
        free(q.stream);
}
END_TEST

/* The saved file and QEMU's own both restore to the guest's memory, and
 * the device state goes out exactly as it is in the file. */
static void restore_and_check(const char *path, bool by_fd)
{
        struct restore_result res;
        struct image im;
        struct opened o;
        int fd = by_fd ? open(path, O_RDONLY | O_CLOEXEC) : -1;

        run_restore(path, fd, 0, &res);
        if (fd >= 0)
                close(fd);
        ck_assert_msg(res.r == 0, "restore %s: %s", path, res.err);
        ck_assert_uint_eq(res.got.len, res.bytes_sent);
        ck_assert_uint_eq(res.bytes_total, res.bytes_sent);

        parse_image(res.got.p, res.got.len, &im);
        ck_assert_msg(im.finish == 0, "%s", im.msg);
        ck_assert_str_eq(im.cfg.machine, "pc-q35-7.2");
        ck_assert_uint_eq(im.zeros, 0);         /* holes are not sent */
        open_verified(path, &o);
        ck_assert_uint_eq(im.pages, o.f.pages_present);
        ck_assert_uint_eq(im.n_blocks, o.f.layout.n_blocks);
        for (size_t i = 0; i < im.n_blocks; i++) {
                ck_assert_str_eq(im.names[i], o.f.layout.blocks[i].name);
                ck_assert_uint_eq(im.lens[i], o.f.layout.blocks[i].used_length);
        }
        check_m0(im.mem[0]);
        uint8_t *tail = read_at(o.fd, o.f.device_offset, o.f.file_size - o.f.device_offset);
        ck_assert_uint_eq(im.tail.len, o.f.file_size - o.f.device_offset);
        ck_assert(memcmp(im.tail.p, tail, im.tail.len) == 0);
        free(tail);
        close_opened(&o);
        image_free(&im);
        free(res.got.p);
}

START_TEST(test_restore_q10)
{
        restore_and_check(testdata_path(Q10_NAME), _i == 1);
}
END_TEST

START_TEST(test_restore_saved_q72)
{
        struct q72_tail q;

        load_q72(&q);
        save_q72(&q, "q72.mrm", &plain);
        restore_and_check(work_path("q72.mrm"), false);
        free(q.stream);
}
END_TEST

/* ---- hand-built streams ------------------------------------------------------ */

static const struct qemit_block hb_blocks[] = {
        { .name = "pc.ram", .name_len = 6, .used_length = 256 * QEMU_TPS },
        { .name = "extra", .name_len = 5, .used_length = 16 * QEMU_TPS },
};
#define HB_ID 3U
#define HB_DEVICE_JSON "{\"page_size\":4096,\"devices\":[{\"name\":\"timer\",\"instance_id\":0," \
        "\"vmsd_name\":\"timer\",\"version\":2,\"fields\":[{\"name\":\"v\",\"type\":\"uint64\",\"size\":8}]}]}"

struct hb {
        struct sbuf s;
        struct qemit_cursor cur;
};

static void hb_prologue(struct hb *h, const char *cap)
{
        const char *caps[] = { cap };
        struct qemit_config c = { .machine = "pc-q35-7.2", .machine_len = 10,
                                  .caps = caps, .n_caps = cap ? 1 : 0 };

        memset(h, 0, sizeof(*h));
        SB_EMIT(&h->s, qemit_header(buf, size));
        SB_EMIT(&h->s, qemit_config(&c, buf, size));
        SB_EMIT(&h->s, qemit_ram_start(HB_ID, hb_blocks, 2, buf, size));
}

static void hb_part(struct hb *h)
{
        SB_EMIT(&h->s, qemit_part_header(HB_ID, buf, size));
}

static void hb_page(struct hb *h, size_t block, uint64_t page, uint8_t fill)
{
        SB_EMIT(&h->s, qemit_page_header(&h->cur, hb_blocks, 2, block, page, buf, size));
        memset(sb_grow(&h->s, QEMU_TPS), fill, QEMU_TPS);
}

static void hb_zero(struct hb *h, size_t block, uint64_t page)
{
        SB_EMIT(&h->s, qemit_zero_page(&h->cur, hb_blocks, 2, block, page, buf, size));
}

static void hb_close(struct hb *h)
{
        SB_EMIT(&h->s, qemit_section_tail(HB_ID, buf, size));
}

/* END, one device section, EOF, vmdesc. */
static void hb_epilogue(struct hb *h)
{
        SB_EMIT(&h->s, qemit_ram_end(HB_ID, buf, size));
        sb_u8(&h->s, QEMU_VM_SECTION_FULL);
        sb_be32(&h->s, 7);
        sb_counted(&h->s, "timer");
        sb_be32(&h->s, 0);
        sb_be32(&h->s, 2);
        sb_be64(&h->s, 0x1122334455667788ULL);
        sb_u8(&h->s, QEMU_VM_SECTION_FOOTER);
        sb_be32(&h->s, 7);
        sb_u8(&h->s, QEMU_VM_EOF);
        sb_u8(&h->s, QEMU_VM_VMDESCRIPTION);
        sb_be32(&h->s, strlen(HB_DEVICE_JSON));
        sb_put(&h->s, HB_DEVICE_JSON, strlen(HB_DEVICE_JSON));
}

/* Three passes: page 0 data -> zero -> data, page 1 rewritten, page 3
 * data -> zero, page 2 never sent; "extra" page 5 once.  The cursor makes
 * records in later sections CONTINUE records of the block named before. */
static void hb_multipass(struct hb *h)
{
        hb_prologue(h, NULL);
        hb_part(h);
        hb_page(h, 0, 0, 0xa1);
        hb_page(h, 0, 1, 0xb1);
        hb_page(h, 0, 3, 0xf1);
        hb_page(h, 1, 5, 0x51);
        hb_close(h);
        hb_part(h);
        hb_zero(h, 0, 0);
        hb_page(h, 0, 1, 0xc1);
        hb_zero(h, 0, 3);
        hb_close(h);
        hb_part(h);
        hb_page(h, 0, 0, 0xe1);
        hb_close(h);
        hb_epilogue(h);
}

static void check_page(const uint8_t *mem, uint64_t page, uint8_t v)
{
        for (size_t k = 0; k < QEMU_TPS; k++)
                CHECK(mem[page * QEMU_TPS + k] == v, "page %llu byte %zu: 0x%02x, want 0x%02x",
                      (unsigned long long)page, k, mem[page * QEMU_TPS + k], v);
}

START_TEST(test_multipass)
{
        struct save_result res;
        struct restore_result rr;
        struct opened o;
        struct image im;
        struct hb h;

        hb_multipass(&h);
        run_save(h.s.p, h.s.len, work_path("mp.mrm"), &plain, &res);
        ck_assert_msg(res.r == 0, "%s", res.err);
        ck_assert_uint_eq(res.c.bytes_received, h.s.len);
        open_verified(work_path("mp.mrm"), &o);
        ck_assert_uint_eq(o.f.layout.ram_section_id, HB_ID);
        ck_assert_uint_eq(o.f.stats[0].pages_present, 2);
        ck_assert_uint_eq(o.f.stats[1].pages_present, 1);
        uint8_t *bm = read_at(o.fd, o.f.layout.blocks[0].bitmap_offset, 8);
        ck_assert_uint_eq(get_le64(bm), 0x3);           /* pages 0 and 1 */
        free(bm);
        close_opened(&o);

        run_restore(work_path("mp.mrm"), -1, 0, &rr);
        ck_assert_msg(rr.r == 0, "%s", rr.err);
        parse_image(rr.got.p, rr.got.len, &im);
        ck_assert_msg(im.finish == 0, "%s", im.msg);
        ck_assert_uint_eq(im.pages, 3);
        check_page(im.mem[0], 0, 0xe1);
        check_page(im.mem[0], 1, 0xc1);
        check_page(im.mem[0], 2, 0);
        check_page(im.mem[0], 3, 0);    /* written, then zero: stays zero */
        check_page(im.mem[1], 5, 0x51);
        /* The device section, EOF and the (rewritten) vmdesc go out verbatim. */
        ck_assert_uint_ge(im.tail.len, 27);
        ck_assert_uint_eq(im.tail.p[0], QEMU_VM_SECTION_FULL);
        ck_assert_uint_eq(get_be64(im.tail.p + 1 + 4 + 6 + 8), 0x1122334455667788ULL);
        ck_assert_ptr_nonnull(memmem(im.tail.p, im.tail.len, "\"configuration/capabilities\"", 28));
        image_free(&im);
        free(rr.got.p);
        free(h.s.p);
}
END_TEST

/* A stream without a vmdesc (suppress-vmdesc): the file still ends with
 * one, describing the configuration and no devices. */
START_TEST(test_no_vmdesc)
{
        struct save_result res;
        struct opened o;
        struct hb h;

        hb_multipass(&h);
        h.s.len -= 1 + 4 + strlen(HB_DEVICE_JSON);
        run_save(h.s.p, h.s.len, work_path("nv.mrm"), &plain, &res);
        ck_assert_msg(res.r == 0, "%s", res.err);
        open_verified(work_path("nv.mrm"), &o);
        ck_assert(o.f.has_vmdesc);
        ck_assert_ptr_nonnull(o.f.vmdesc);
        ck_assert_uint_eq(json_object_array_length(member(o.f.vmdesc, "devices")), 0);
        ck_assert_ptr_nonnull(member(o.f.vmdesc, "configuration"));
        /* The device section is there all the same. */
        ck_assert_uint_eq(o.f.eof_offset - o.f.device_offset, 32);
        close_opened(&o);
        free(h.s.p);
}
END_TEST

/* Many blocks with the longest names: a block list far larger than any
 * fixed buffer would hold, both ways. */
#define MANY_BLOCKS 300

START_TEST(test_many_long_blocks)
{
        static char names[MANY_BLOCKS][SAVD_NAME_MAX + 1];
        struct qemit_block blocks[MANY_BLOCKS];
        struct qemit_config c = { .machine = "pc-q35-7.2", .machine_len = 10 };
        struct qemit_cursor cur = {};
        struct save_result res;
        struct restore_result rr;
        struct image im;
        struct sbuf st = {};
        uint8_t *big = malloc(1 << 20);

        ck_assert_ptr_nonnull(big);
        for (size_t i = 0; i < MANY_BLOCKS; i++) {
                memset(names[i], 'a' + i % 26, SAVD_NAME_MAX);
                snprintf(names[i], 8, "%05zu", i);
                names[i][5] = '-';
                blocks[i] = (struct qemit_block) { names[i], SAVD_NAME_MAX, 2 * QEMU_TPS };
        }
        SB_EMIT(&st, qemit_header(buf, size));
        SB_EMIT(&st, qemit_config(&c, buf, size));
        ssize_t n = qemit_ram_start(HB_ID, blocks, MANY_BLOCKS, big, 1 << 20);
        ck_assert_int_gt(n, 64 << 10);
        sb_put(&st, big, (size_t)n);
        SB_EMIT(&st, qemit_part_header(HB_ID, buf, size));
        for (size_t i = 0; i < MANY_BLOCKS; i++) {
                n = qemit_page_header(&cur, blocks, MANY_BLOCKS, i, 1, big, 1 << 20);
                ck_assert_int_gt(n, 0);
                sb_put(&st, big, (size_t)n);
                memset(sb_grow(&st, QEMU_TPS), (int)(i % 251) + 1, QEMU_TPS);
        }
        SB_EMIT(&st, qemit_section_tail(HB_ID, buf, size));
        SB_EMIT(&st, qemit_ram_end(HB_ID, buf, size));
        sb_u8(&st, QEMU_VM_EOF);
        free(big);

        run_save(st.p, st.len, work_path("many.mrm"), &plain, &res);
        ck_assert_msg(res.r == 0, "%s", res.err);
        run_restore(work_path("many.mrm"), -1, 0, &rr);
        ck_assert_msg(rr.r == 0, "%s", rr.err);
        ck_assert_uint_eq(rr.bytes_total, rr.got.len);
        parse_image(rr.got.p, rr.got.len, &im);
        ck_assert_msg(im.finish == 0, "%s", im.msg);
        ck_assert_uint_eq(im.pages, MANY_BLOCKS);
        ck_assert_uint_eq(im.total_blocks, MANY_BLOCKS);
        for (size_t i = 0; i < MAX_TEST_BLOCKS; i++) {
                ck_assert_mem_eq(im.names[i], names[i], SAVD_NAME_MAX);
                check_page(im.mem[i], 0, 0);
                check_page(im.mem[i], 1, (uint8_t)(i % 251 + 1));
        }
        image_free(&im);
        free(rr.got.p);
        free(st.p);
}
END_TEST

/* ---- refusals ---------------------------------------------------------------- */

enum refusal {
        R_XBZRLE, R_COMPRESS, R_UNKNOWN_FLAG, R_IGNORE_SHARED, R_POSTCOPY, R_ITERATIVE,
        R_MULTIFD, R_BAD_FOOTER, _R_MAX
};

static const char *const refusal_text[_R_MAX] = {
        [R_XBZRLE] = "xbzrle",
        [R_COMPRESS] = "compress",
        [R_UNKNOWN_FLAG] = "unknown combination of RAM flags",
        [R_IGNORE_SHARED] = "x-ignore-shared",
        [R_POSTCOPY] = "postcopy",
        [R_ITERATIVE] = "iterative section 'block'",
        [R_MULTIFD] = "multifd",
        [R_BAD_FOOTER] = "footer",
};

static void hb_record(struct hb *h, uint64_t flags)
{
        sb_be64(&h->s, flags);
        sb_counted(&h->s, "pc.ram");
        memset(sb_grow(&h->s, 64), 0x5a, 64);
}

static void build_refusal(struct hb *h, enum refusal which)
{
        hb_prologue(h, which == R_IGNORE_SHARED ? "x-ignore-shared" : NULL);
        switch (which) {
        case R_POSTCOPY:
                sb_u8(&h->s, QEMU_VM_COMMAND);
                sb_be16(&h->s, 3);              /* POSTCOPY_ADVISE */
                sb_be16(&h->s, 16);
                memset(sb_grow(&h->s, 16), 0, 16);
                break;
        case R_ITERATIVE:
                sb_u8(&h->s, QEMU_VM_SECTION_START);
                sb_be32(&h->s, 9);
                sb_counted(&h->s, "block");
                sb_be32(&h->s, 0);
                sb_be32(&h->s, 1);
                break;
        case R_BAD_FOOTER:
                hb_part(h);
                hb_page(h, 0, 0, 1);
                sb_be64(&h->s, RAM_SAVE_FLAG_EOS);
                sb_u8(&h->s, QEMU_VM_SECTION_FOOTER);
                sb_be32(&h->s, HB_ID + 1);
                break;
        default:
                hb_part(h);
                hb_page(h, 0, 0, 1);
                hb_record(h, which == R_XBZRLE ? RAM_SAVE_FLAG_XBZRLE :
                             which == R_COMPRESS ? RAM_SAVE_FLAG_COMPRESS_PAGE :
                             which == R_MULTIFD ? RAM_SAVE_FLAG_MULTIFD_FLUSH : 0x400);
                break;
        }
        /* Plenty more: the refusal must not wait for the end. */
        for (int i = 0; i < 64; i++)
                memset(sb_grow(&h->s, 65536), 0, 65536);
}

START_TEST(test_refusals)
{
        struct save_result res;
        struct hb h;

        build_refusal(&h, (enum refusal)_i);
        run_save(h.s.p, h.s.len, work_path("refused.mrm"), &plain, &res);
        assert_save_refused(&res, refusal_text[_i]);
        ck_assert_uint_lt(res.sent, h.s.len);   /* refused before the end */
        free(h.s.p);
}
END_TEST

/* Cut at record boundaries and inside records: never a file. */
START_TEST(test_truncated)
{
        struct save_result res;
        struct hb h;
        size_t full;

        hb_multipass(&h);
        full = h.s.len;
        size_t j = strlen(HB_DEVICE_JSON);
        /* Inside the header, the configuration, the block list, a page
         * record, later passes, the device section; right before EOF;
         * inside the vmdesc prefix; the JSON missing or one byte short.
         * (A cut right after EOF is a stream without vmdesc: valid.) */
        const size_t cuts[] = { 10, 20, 60, 130, 4200, full / 2, full - j - 6 - 10,
                                full - j - 6, full - j - 4, full - j, full - 1 };
        for (size_t i = 0; i < ELEMENTSOF(cuts); i++) {
                run_save(h.s.p, cuts[i], work_path("cut.mrm"), &plain, &res);
                ck_assert_msg(res.r < 0, "cut at %zu accepted", cuts[i]);
                ck_assert_msg(res.err[0], "cut at %zu: no message", cuts[i]);
                ck_assert_msg(res.peer_closed, "cut at %zu: channel not shut", cuts[i]);
                assert_workdir_empty();
        }
        free(h.s.p);
}
END_TEST

START_TEST(test_limits)
{
        struct q72_tail q;
        struct save_result res;
        struct savd_limits lim = default_limits;
        struct save_opts o = { .limits = &lim, .out_fd = -1 };

        load_q72(&q);
        lim.max_device_state = 4096;
        run_save(q.stream, q.len, work_path("l.mrm"), &o, &res);
        assert_save_refused(&res, "device state");
        lim = default_limits;
        lim.max_blocks = 3;
        run_save(q.stream, q.len, work_path("l.mrm"), &o, &res);
        assert_save_refused(&res, "max-blocks");
        lim = default_limits;
        lim.max_block_size = 1 << 20;
        run_save(q.stream, q.len, work_path("l.mrm"), &o, &res);
        assert_save_refused(&res, "'m0' is 33554432 bytes, more than max-block-size");
        free(q.stream);
}
END_TEST

START_TEST(test_cancel)
{
        struct q72_tail q;
        struct save_result res;
        struct save_opts o = { .cancel_at = 4 << 20, .out_fd = -1 };

        load_q72(&q);
        run_save(q.stream, q.len, work_path("c.mrm"), &o, &res);
        ck_assert_int_eq(res.r, -ECANCELED);
        ck_assert_str_eq(res.err, "cancelled");
        assert_workdir_empty();
        free(q.stream);
}
END_TEST

/* An output fd handed over is emptied again when the save fails. */
START_TEST(test_failed_fd_output)
{
        struct save_result res;
        struct save_opts o = { .out_fd = -1 };
        struct hb h;
        struct stat st;

        build_refusal(&h, R_XBZRLE);
        o.out_fd = open(work_path("handed.mrm"), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        ck_assert_int_ge(o.out_fd, 0);
        run_save(h.s.p, h.s.len, NULL, &o, &res);
        ck_assert_int_lt(res.r, 0);
        ck_assert_int_eq(fstat(o.out_fd, &st), 0);
        ck_assert_int_eq(st.st_size, 0);
        close(o.out_fd);
        unlink(work_path("handed.mrm"));
        free(h.s.p);
}
END_TEST

/* ---- restore refusals and failures --------------------------------------------- */

static void copy_file(const char *from, const char *to)
{
        size_t len;
        uint8_t *d = test_read_file(from, &len);
        int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, d, len), (ssize_t)len);
        close(fd);
        free(d);
}

static void poke(const char *path, uint64_t off, uint8_t v)
{
        int fd = open(path, O_WRONLY | O_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(pwrite(fd, &v, 1, (off_t)off), 1);
        close(fd);
}

/* Defects that verification finds: nothing may reach the VMM. */
START_TEST(test_restore_refuses_invalid)
{
        struct restore_result res;
        struct opened o;
        struct hb h;
        struct save_result sr;

        hb_multipass(&h);
        run_save(h.s.p, h.s.len, work_path("v.mrm"), &plain, &sr);
        ck_assert_msg(sr.r == 0, "%s", sr.err);
        open_verified(work_path("v.mrm"), &o);
        uint64_t hdr = o.f.layout.blocks[0].header_offset;
        uint64_t bitmap1 = o.f.layout.blocks[1].bitmap_offset;
        close_opened(&o);

        if (_i == 0)
                poke(work_path("v.mrm"), hdr + 3, 2);          /* header version 2 */
        else if (_i == 1)
                poke(work_path("v.mrm"), bitmap1 + 2, 0x80);   /* bit 23 of a 16-page block */
        else
                ck_assert_int_eq(truncate(work_path("v.mrm"), (off_t)hdr + 4096), 0);
        run_restore(work_path("v.mrm"), -1, 0, &res);
        ck_assert_int_lt(res.r, 0);
        ck_assert_msg(strstr(res.err, "not a valid mapped-ram file"), "%s", res.err);
        ck_assert_uint_eq(res.got.len, 0);
        ck_assert_uint_eq(res.bytes_sent, 0);
        free(res.got.p);
        free(h.s.p);
}
END_TEST

START_TEST(test_restore_peer_gone)
{
        struct restore_result res;

        run_restore(testdata_path(Q10_NAME), -1, 100000, &res);
        ck_assert_int_lt(res.r, 0);
        ck_assert_msg(strstr(res.err, "closed the connection"), "%s", res.err);
        ck_assert_uint_eq(res.got.len, 100000);
        free(res.got.p);
}
END_TEST

/* ---- the page reader ----------------------------------------------------------- */

static const struct mrm_input_options reader_opts[] = {
        { 0 },
        { .no_uring = true },
        { .io_mode = IO_MODE_BUFFERED },
        { .queue_depth = 2, .read_size = 3 * QEMU_TPS },
        { .queue_depth = 1, .read_size = QEMU_TPS, .no_uring = true },
        { .io_mode = IO_MODE_DIRECT, .queue_depth = 16, .read_size = 16U << 20 },
};

struct collect {
        const struct mrm_file *f;
        size_t read_size;
        uint64_t pages, last_offset, runs;
        uint8_t *m0;                    /* read_pages copy of m0 */
        int fail_at;                    /* return an error at this run; 0: never */
};

static int collect_run(void *opaque, const struct mrm_run *run)
{
        struct collect *c = opaque;
        const struct mrm_block *b = &c->f->layout.blocks[run->block];

        c->runs++;
        if (c->fail_at && c->runs == (uint64_t)c->fail_at)
                return -ENOTRECOVERABLE;
        CHECK(run->offset >= c->last_offset, "runs out of file order");
        CHECK(run->npages > 0 && run->npages * QEMU_TPS <= c->read_size, "run of %llu pages",
              (unsigned long long)run->npages);
        CHECK(run->first_page + run->npages <= b->num_pages, "run past the block");
        CHECK(run->offset == b->pages_offset + run->first_page * QEMU_TPS, "run offset");
        c->last_offset = run->offset;
        c->pages += run->npages;
        if (run->block == 0 && c->m0)
                memcpy(c->m0 + run->first_page * QEMU_TPS, run->data, run->npages * QEMU_TPS);
        return 0;
}

START_TEST(test_reader)
{
        const struct mrm_input_options *opt = &reader_opts[_i];
        char err[MRM_INPUT_ERR_MAX] = "";
        struct mrm_input *in = NULL;
        int r = mrm_input_open(&in, -1, testdata_path(Q10_NAME), opt, err, sizeof(err));

        ck_assert_msg(r == 0, "%s", err);
        const struct mrm_file *f = mrm_input_file(in);
        const char *mode = mrm_input_io_mode(in);
        ck_assert_msg(strstr(mode, opt->no_uring ? "+pread" : "+uring"), "%s", mode);
        if (opt->io_mode == IO_MODE_BUFFERED)
                ck_assert_str_eq(mode, "buffered+uring");
        if (opt->io_mode == IO_MODE_DIRECT)
                ck_assert_str_eq(mode, "direct+uring");

        /* Own buffers, file order, the data as the file holds it. */
        struct collect c = { .f = f, .read_size = opt->read_size ? opt->read_size : MRM_INPUT_DEFAULT_READ_SIZE };
        c.m0 = calloc(1, f->layout.blocks[0].used_length);
        ck_assert_int_eq(mrm_input_read_pages(in, collect_run, &c), 0);
        ck_assert_uint_eq(c.pages, f->pages_present);
        check_m0(c.m0);

        /* Straight into caller memory, one block left out. */
        void *dest[MAX_TEST_BLOCKS] = {};
        ck_assert_uint_le(f->layout.n_blocks, MAX_TEST_BLOCKS);
        for (size_t i = 0; i < f->layout.n_blocks; i++)
                if (i != 2)
                        ck_assert_int_eq(posix_memalign(&dest[i], MRM_INPUT_ALIGN,
                                                        f->layout.blocks[i].used_length), 0);
        for (size_t i = 0; i < f->layout.n_blocks; i++)
                if (dest[i])
                        memset(dest[i], 0, f->layout.blocks[i].used_length);
        struct collect c2 = { .f = f, .read_size = c.read_size };
        ck_assert_int_eq(mrm_input_read_into(in, dest, collect_run, &c2), 0);
        ck_assert_uint_eq(c2.pages, f->pages_present - f->stats[2].pages_present);
        check_m0(dest[0]);
        for (size_t i = 0; i < f->layout.n_blocks; i++)
                free(dest[i]);
        free(c.m0);
        mrm_input_free(in);
}
END_TEST

START_TEST(test_reader_errors)
{
        char err[MRM_INPUT_ERR_MAX] = "";
        struct mrm_input *in = NULL;
        const struct mrm_input_options small = { .max_block_size = 1 << 20 };
        const struct mrm_input_options bad = { .read_size = 1000 };

        /* A callback error stops the reading and comes back. */
        ck_assert_int_eq(mrm_input_open(&in, -1, testdata_path(Q10_NAME), NULL, err, sizeof(err)), 0);
        struct collect c = { .f = mrm_input_file(in), .read_size = MRM_INPUT_DEFAULT_READ_SIZE,
                             .fail_at = 2 };
        ck_assert_int_eq(mrm_input_read_pages(in, collect_run, &c), -ENOTRECOVERABLE);
        ck_assert_uint_eq(c.runs, 2);
        /* Unaligned caller memory is refused. */
        void *dest[MAX_TEST_BLOCKS] = { (void *)(uintptr_t)4097 };
        ck_assert_int_eq(mrm_input_read_into(in, dest, NULL, NULL), -EINVAL);
        mrm_input_free(in);

        ck_assert_int_eq(mrm_input_open(&in, -1, testdata_path(Q10_NAME), &small, err, sizeof(err)), -E2BIG);
        ck_assert_msg(strstr(err, "'m0' is 33554432 bytes, more than max-block-size"), "%s", err);
        ck_assert_int_eq(mrm_input_open(&in, -1, testdata_path(Q10_NAME), &bad, err, sizeof(err)), -EINVAL);
        ck_assert_int_eq(mrm_input_open(&in, -1, testdata_path(Q72_NAME), NULL, err, sizeof(err)), -EBADMSG);
        ck_assert_msg(strstr(err, "not a valid mapped-ram file"), "%s", err);
}
END_TEST

/* A file system without O_DIRECT (ramfs, mounted in a private mount
 * namespace of this forked test): AUTO falls back, DIRECT says so.
 * Without the rights to mount, there is nothing to test. */
START_TEST(test_reader_no_direct)
{
        const struct mrm_input_options direct = { .io_mode = IO_MODE_DIRECT };
        char err[MRM_INPUT_ERR_MAX] = "", path[4096];
        struct mrm_input *in = NULL;

        if (unshare(CLONE_NEWNS) < 0 || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("ramfs", workdir, "ramfs", 0, NULL) < 0) {
                fprintf(stderr, "test_reader_no_direct: cannot mount a ramfs (%m), not tested\n");
                return;
        }
        snprintf(path, sizeof(path), "%s/q10.mrm", workdir);
        copy_file(testdata_path(Q10_NAME), path);
        ck_assert_int_eq(mrm_input_open(&in, -1, path, NULL, err, sizeof(err)), 0);
        ck_assert_str_eq(mrm_input_io_mode(in), "buffered+uring");
        struct collect c = { .f = mrm_input_file(in), .read_size = MRM_INPUT_DEFAULT_READ_SIZE };
        ck_assert_int_eq(mrm_input_read_pages(in, collect_run, &c), 0);
        ck_assert_uint_eq(c.pages, 2770);
        mrm_input_free(in);
        ck_assert_int_eq(mrm_input_open(&in, -1, path, &direct, err, sizeof(err)), -EINVAL);
        ck_assert_msg(strstr(err, "O_DIRECT"), "%s", err);
        unlink(path);
        umount(workdir);
}
END_TEST

/* ---- the suite ------------------------------------------------------------------ */

static TCase *tcase(Suite *s, const char *name)
{
        TCase *tc = tcase_create(name);

        tcase_add_checked_fixture(tc, setup_workdir, teardown_workdir);
        tcase_set_timeout(tc, 120);     /* against hangs only */
        suite_add_tcase(s, tc);
        return tc;
}

static Suite *suite(bool with_data)
{
        Suite *s = suite_create("session");
        TCase *tc = tcase(s, "hand-built");

        tcase_add_test(tc, test_multipass);
        tcase_add_test(tc, test_no_vmdesc);
        tcase_add_test(tc, test_many_long_blocks);
        tcase_add_loop_test(tc, test_refusals, 0, _R_MAX);
        tcase_add_test(tc, test_truncated);
        tcase_add_test(tc, test_failed_fd_output);
        tcase_add_loop_test(tc, test_restore_refuses_invalid, 0, 3);
        if (!with_data)
                return s;
        tc = tcase(s, "qemu-data");
        tcase_add_test(tc, test_q72_save_matches_q10);
        tcase_add_test(tc, test_q72_save_vmdesc);
        tcase_add_test(tc, test_q72_save_variants);
        tcase_add_loop_test(tc, test_restore_q10, 0, 2);
        tcase_add_test(tc, test_restore_saved_q72);
        tcase_add_test(tc, test_limits);
        tcase_add_test(tc, test_cancel);
        tcase_add_test(tc, test_restore_peer_gone);
        tc = tcase(s, "reader");
        tcase_add_loop_test(tc, test_reader, 0, ELEMENTSOF(reader_opts));
        tcase_add_test(tc, test_reader_errors);
        tcase_add_test(tc, test_reader_no_direct);
        return s;
}

int main(void)
{
        bool with_data = testdata_usable(NULL, "only the hand-built cases run");

        return test_run_suite(suite(with_data), with_data);
}
