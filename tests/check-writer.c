/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tests of the writer engine (daemon/mrm-output.c, daemon/writer-pool.c)
 * on the file system of the build tree: multi-block files with data and
 * zero pages written through O_DIRECT and through buffered writes, read
 * back with plain pread and compared byte by byte (prologue, block
 * records, bitmaps, every set slot, RAM tail, appended bytes) and run
 * through the mapped-ram verifier; several passes over the same pages;
 * the temporary name and when the final name appears; abort; refusing to
 * overwrite; an fd handed over by a client; zero-copy writes; several
 * workers on a fake two-node topology; the writer pool alone: workers,
 * errors, the buffer budget and writes held back.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "macro.h"
#include "test-util.h"
#include "writer-pool.h"
#include "writer-util.h"

#define OUT "out.mrm"

struct job {
        char *dir;
        char path[PATH_MAX];
        struct mrm_layout l;            /* a copy for checking */
        struct tw_model m;
        struct mrm_output *o;
        uint64_t n_written, n_zero;
};

static void job_start(struct job *j, const uint64_t *pages, size_t n,
                      const struct writer_config *c)
{
        struct mrm_output_options opt = { .fd = -1 };
        struct mrm_layout give;
        char err[512] = "";

        memset(j, 0, sizeof(*j));
        j->dir = tw_mkdtemp();
        snprintf(j->path, sizeof(j->path), "%s/%s", j->dir, OUT);
        tw_layout(&j->l, pages, n);
        tw_layout(&give, pages, n);
        tw_model_init(&j->m, &j->l);
        opt.path = j->path;
        opt.writer = *c;
        ck_assert_msg(mrm_output_create(&j->o, &give, &opt, err, sizeof(err)) == 0, "%s", err);
}

static void job_page(struct job *j, unsigned block, uint64_t page, unsigned pass)
{
        tw_page(j->o, &j->m, block, page, pass);
        j->n_written++;
}

static void job_zero(struct job *j, unsigned block, uint64_t page)
{
        tw_zero(j->o, &j->m, block, page);
        j->n_zero++;
}

static mode_t current_umask(void)
{
        mode_t m = umask(022);

        umask(m);
        return m;
}

static void job_commit_and_check(struct job *j)
{
        _cleanup_free_ uint8_t *tail = NULL;
        size_t tail_len = tw_trailer(&tail);
        struct shm_bitmap_counters c;
        struct stat st;
        int fd;

        ck_assert_int_eq(mrm_output_append(j->o, tail, tail_len), 0);
        /* Not complete yet: only the temporary file exists. */
        ck_assert_int_eq(lstat(j->path, &st), -1);
        ck_assert_int_eq(errno, ENOENT);
        ck_assert_int_eq(tw_count_entries(j->dir), 1);
        ck_assert_int_eq(mrm_output_commit(j->o), 0);
        ck_assert_ptr_null(mrm_output_error(j->o));
        shm_bitmap_snapshot(mrm_output_bitmap(j->o), &c);
        ck_assert_uint_eq(c.pages_written, j->n_written);
        ck_assert_uint_eq(c.bytes_written, j->n_written * QEMU_TPS);
        ck_assert_uint_eq(c.pages_zero, j->n_zero);
        /* Complete: the final name and nothing else. */
        ck_assert_int_eq(tw_count_entries(j->dir), 1);
        ck_assert_int_eq(lstat(j->path, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        ck_assert_uint_eq(st.st_mode & 07777, 0640 & ~current_umask());
        fd = open(j->path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        tw_check_file(fd, &j->l, &j->m, tail, tail_len);
        close(fd);
}

static void job_end(struct job *j)
{
        mrm_output_free(j->o);
        unlink(j->path);
        tw_model_free(&j->m);
        mrm_layout_free(&j->l);
        tw_rmdir(j->dir);
}

static uint64_t rnd_next(uint64_t *s)
{
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

/* Runs of data pages, zero pages and untouched pages of random lengths. */
static void write_mixed(struct job *j, unsigned block, unsigned pass, uint64_t seed)
{
        uint64_t n = j->l.blocks[block].num_pages, s = seed | 1;

        for (uint64_t p = 0; p < n;) {
                uint64_t run = 1 + rnd_next(&s) % 40, kind = rnd_next(&s) % 3;

                for (uint64_t end = MIN(n, p + run); p < end; p++) {
                        if (kind == 0)
                                job_page(j, block, p, pass);
                        else if (kind == 1)
                                job_zero(j, block, p);
                }
        }
}

static const uint64_t three_blocks[] = { 2048 + 7, 64, 300 };

/* Loop index: 0 = auto (O_DIRECT here), 1 = forced buffered, 2 = forced direct. */
START_TEST(test_multi_block)
{
        static const enum io_mode modes[] = { IO_MODE_AUTO, IO_MODE_BUFFERED, IO_MODE_DIRECT };
        struct writer_config c = tw_small_config(modes[_i]);
        const char *mode;
        struct job j;

        job_start(&j, three_blocks, 3, &c);
        mode = mrm_output_io_mode(j.o);
        if (modes[_i] == IO_MODE_BUFFERED)
                ck_assert_msg(strcmp(mode, "buffered") == 0 || strcmp(mode, "buffered+dontcache") == 0,
                              "mode %s", mode);
        else
                ck_assert_str_eq(mode, "direct");
        for (unsigned b = 0; b < 3; b++)
                write_mixed(&j, b, 1, 0x1234 + b);
        job_commit_and_check(&j);
        job_end(&j);
}
END_TEST

/* The default configuration (one worker per node, 1 MiB buffers). */
START_TEST(test_default_config)
{
        struct writer_config c = { .io_mode = IO_MODE_AUTO };
        static const uint64_t pages[] = { 4096 };
        struct job j;

        job_start(&j, pages, 1, &c);
        write_mixed(&j, 0, 1, 77);
        job_commit_and_check(&j);
        job_end(&j);
}
END_TEST

START_TEST(test_multipass)
{
        struct writer_config c = tw_small_config(IO_MODE_AUTO);
        static const uint64_t pages[] = { 512, 40 };
        uint64_t s = 99;
        struct job j;

        job_start(&j, pages, 2, &c);
        /* Same page twice in a row: the second write waits for the first. */
        job_page(&j, 0, 5, 1);
        job_page(&j, 0, 5, 2);
        /* Written, then zero: the bit ends clear. */
        job_page(&j, 0, 6, 1);
        job_zero(&j, 0, 6);
        /* Zero, then written: the bit ends set with the data. */
        job_zero(&j, 0, 7);
        job_page(&j, 0, 7, 3);
        ck_assert_int_eq(mrm_output_drain(j.o), 0);
        ck_assert(!shm_bitmap_test(mrm_output_bitmap(j.o), 0, 6));
        ck_assert(shm_bitmap_test(mrm_output_bitmap(j.o), 0, 7));
        /* Three passes of random decisions, like a live guest. */
        for (unsigned pass = 4; pass <= 6; pass++)
                for (unsigned b = 0; b < 2; b++)
                        for (uint64_t p = 0; p < pages[b]; p++) {
                                uint64_t k = rnd_next(&s) % 4;

                                if (k == 0)
                                        job_page(&j, b, p, pass);
                                else if (k == 1)
                                        job_zero(&j, b, p);
                        }
        job_commit_and_check(&j);
        job_end(&j);
}
END_TEST

START_TEST(test_abort)
{
        struct writer_config c = tw_small_config(IO_MODE_AUTO);
        static const uint64_t pages[] = { 256 };
        void *dst;
        struct job j;

        job_start(&j, pages, 1, &c);
        for (uint64_t p = 0; p < 200; p++)
                job_page(&j, 0, p, 1);
        ck_assert_int_eq(tw_count_entries(j.dir), 1);
        mrm_output_abort(j.o);
        ck_assert_int_eq(tw_count_entries(j.dir), 0);
        ck_assert_int_eq(mrm_output_page(j.o, 0, 0, &dst), -ECANCELED);
        ck_assert_int_eq(mrm_output_commit(j.o), -ECANCELED);
        ck_assert_ptr_nonnull(mrm_output_error(j.o));
        job_end(&j);

        /* Freed without commit: the same. */
        job_start(&j, pages, 1, &c);
        job_page(&j, 0, 1, 1);
        mrm_output_free(j.o);
        j.o = NULL;
        ck_assert_int_eq(tw_count_entries(j.dir), 0);
        job_end(&j);
}
END_TEST

static void write_file(const char *path, const char *s)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
        close(fd);
}

static void check_file_is(const char *path, const char *s)
{
        char buf[64] = "";
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(read(fd, buf, sizeof(buf) - 1), (ssize_t)strlen(s));
        ck_assert_str_eq(buf, s);
        close(fd);
}

static int try_create(const char *path, bool overwrite, char *err, size_t errlen,
                      struct mrm_output **o)
{
        static const uint64_t pages[] = { 16 };
        struct mrm_output_options opt = {
                .path = path, .fd = -1, .overwrite = overwrite,
                .writer = tw_small_config(IO_MODE_AUTO),
        };
        struct mrm_layout l;

        tw_layout(&l, pages, 1);
        return mrm_output_create(o, &l, &opt, err, errlen);
}

START_TEST(test_overwrite)
{
        char *dir = tw_mkdtemp();
        char path[PATH_MAX], link[PATH_MAX], target[PATH_MAX], err[512] = "";
        struct mrm_output *o = NULL;
        struct stat st;

        snprintf(path, sizeof(path), "%s/" OUT, dir);
        write_file(path, "old");
        ck_assert_int_eq(try_create(path, false, err, sizeof(err), &o), -EEXIST);
        ck_assert_msg(strstr(err, path) && strstr(err, "already exists"), "%s", err);
        check_file_is(path, "old");
        ck_assert_int_eq(tw_count_entries(dir), 1);
        /* Asked to overwrite: replaced, but only on commit. */
        ck_assert_int_eq(try_create(path, true, err, sizeof(err), &o), 0);
        check_file_is(path, "old");
        ck_assert_int_eq(mrm_output_commit(o), 0);
        mrm_output_free(o);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_gt((uint64_t)st.st_size, 1 << 20);
        ck_assert_int_eq(unlink(path), 0);

        /* A symlink in the final name is never followed. */
        snprintf(link, sizeof(link), "%s/link.mrm", dir);
        snprintf(target, sizeof(target), "%s/target", dir);
        write_file(target, "target");
        ck_assert_int_eq(symlink("target", link), 0);
        ck_assert_int_eq(try_create(link, false, err, sizeof(err), &o), -EEXIST);
        ck_assert_int_eq(try_create(link, true, err, sizeof(err), &o), 0);
        ck_assert_int_eq(mrm_output_commit(o), 0);
        mrm_output_free(o);
        ck_assert_int_eq(lstat(link, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        check_file_is(target, "target");
        unlink(link);
        unlink(target);
        tw_rmdir(dir);
}
END_TEST

START_TEST(test_handed_fd)
{
        static const uint64_t pages[] = { 600 };
        _cleanup_free_ uint8_t *tail = NULL;
        size_t tail_len = tw_trailer(&tail);
        char *dir = tw_mkdtemp();
        char path[PATH_MAX], err[512] = "";
        struct mrm_output_options opt = { .writer = tw_small_config(IO_MODE_AUTO) };
        struct mrm_layout l, give;
        struct tw_model m;
        struct mrm_output *o;
        struct stat st;
        int fd;

        snprintf(path, sizeof(path), "%s/handed.mrm", dir);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, 64 << 20), 0);   /* old, longer content */
        tw_layout(&l, pages, 1);
        tw_layout(&give, pages, 1);
        tw_model_init(&m, &l);
        opt.fd = fd;
        ck_assert_msg(mrm_output_create(&o, &give, &opt, err, sizeof(err)) == 0, "%s", err);
        ck_assert_str_eq(mrm_output_io_mode(o), "direct");
        for (uint64_t p = 0; p < 600; p += 1 + p % 3)
                tw_page(o, &m, 0, p, 1);
        ck_assert_int_eq(mrm_output_append(o, tail, tail_len), 0);
        ck_assert_int_eq(mrm_output_commit(o), 0);
        mrm_output_free(o);
        /* The client's fd stays open and the file where it was. */
        ck_assert_int_ge(fcntl(fd, F_GETFD), 0);
        tw_check_file(fd, &l, &m, tail, tail_len);
        ck_assert_int_eq(tw_count_entries(dir), 1);

        /* Aborted: the client's file is emptied, never left looking whole. */
        tw_layout(&give, pages, 1);
        ck_assert_int_eq(mrm_output_create(&o, &give, &opt, err, sizeof(err)), 0);
        tw_page(o, &m, 0, 0, 1);
        mrm_output_free(o);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_size, 0);
        close(fd);

        /* Not writable, not a regular file. */
        fd = open(path, O_RDONLY | O_CLOEXEC);
        tw_layout(&give, pages, 1);
        opt.fd = fd;
        ck_assert_int_eq(mrm_output_create(&o, &give, &opt, err, sizeof(err)), -EBADF);
        ck_assert_msg(strstr(err, "not a regular file open for writing"), "%s", err);
        close(fd);
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        tw_layout(&give, pages, 1);
        opt.fd = fd;
        ck_assert_int_eq(mrm_output_create(&o, &give, &opt, err, sizeof(err)), -EBADF);
        close(fd);

        unlink(path);
        tw_model_free(&m);
        mrm_layout_free(&l);
        tw_rmdir(dir);
}
END_TEST

static void *aligned_pages(unsigned block, uint64_t first, uint64_t n, unsigned pass)
{
        void *p = NULL;

        ck_assert_int_eq(posix_memalign(&p, 4096, n * QEMU_TPS), 0);
        for (uint64_t i = 0; i < n; i++)
                tw_fill_page((uint8_t *)p + i * QEMU_TPS, block, first + i, pass);
        return p;
}

static void record_range(struct job *j, unsigned block, uint64_t first, uint64_t n, unsigned pass)
{
        memset(j->m.pass[block] + first, pass, n);
        j->n_written += n;
}

/* Zero-copy writes from caller memory, several workers on a fake 2-node
 * topology, mixed with batched pages. */
START_TEST(test_write_from_fake_numa)
{
        struct writer_config c = tw_small_config(IO_MODE_AUTO);
        static const uint64_t pages[] = { 1024, 128 };
        _cleanup_free_ void *a = aligned_pages(0, 10, 300, 1);
        _cleanup_free_ void *b = aligned_pages(0, 100, 50, 2);
        _cleanup_free_ void *d = aligned_pages(1, 0, 128, 1);
        struct job j;

        c.n_workers = 4;
        c.fake_nodes = 2;
        job_start(&j, pages, 2, &c);
        ck_assert_int_eq(mrm_output_write_from(j.o, 0, 10, 300, a, 0), 0);
        record_range(&j, 0, 10, 300, 1);
        /* Overlaps pages still in flight: waits, then rewrites them. */
        ck_assert_int_eq(mrm_output_write_from(j.o, 0, 100, 50, b, 1), 0);
        record_range(&j, 0, 100, 50, 2);
        ck_assert_int_eq(mrm_output_write_from(j.o, 1, 0, 128, d, 5), 0);
        record_range(&j, 1, 0, 128, 1);
        for (uint64_t p = 500; p < 1024; p++)
                job_page(&j, 0, p, 3);
        job_zero(&j, 0, 120);
        ck_assert_int_eq(mrm_output_write_from(j.o, 0, 0, 1, (uint8_t *)a + 1, -1), -EINVAL);
        ck_assert_int_eq(mrm_output_write_from(j.o, 0, 1000, 25, a, -1), -ERANGE);
        ck_assert_int_eq(mrm_output_drain(j.o), 0);
        job_commit_and_check(&j);
        job_end(&j);
}
END_TEST

START_TEST(test_bad_calls)
{
        struct writer_config c = tw_small_config(IO_MODE_AUTO);
        static const uint64_t pages[] = { 16, 8 };
        struct mrm_output_options opt = { .fd = -1, .writer = c };
        char err[512] = "", path[PATH_MAX], *dir;
        struct mrm_output *o;
        struct mrm_layout l;
        void *dst;
        struct job j;

        job_start(&j, pages, 2, &c);
        ck_assert_int_eq(mrm_output_page(j.o, 0, 16, &dst), -ERANGE);
        ck_assert_int_eq(mrm_output_page(j.o, 2, 0, &dst), -EINVAL);
        ck_assert_int_eq(mrm_output_zero(j.o, 1, 8), -ERANGE);
        ck_assert_ptr_null(mrm_output_error(j.o));      /* caller mistakes are not job errors */
        job_commit_and_check(&j);
        ck_assert_int_eq(mrm_output_page(j.o, 0, 0, &dst), -EALREADY);
        ck_assert_int_eq(mrm_output_commit(j.o), -EALREADY);
        mrm_output_abort(j.o);                          /* no-op after commit */
        ck_assert_int_eq(access(j.path, F_OK), 0);
        job_end(&j);

        /* Neither a path nor an fd. */
        tw_layout(&l, pages, 2);
        ck_assert_int_eq(mrm_output_create(&o, &l, &opt, err, sizeof(err)), -EINVAL);
        /* A writer configuration out of its limits: nothing left behind. */
        dir = tw_mkdtemp();
        snprintf(path, sizeof(path), "%s/bad-config.mrm", dir);
        opt.path = path;
        opt.writer.buffer_size = 1000;
        tw_layout(&l, pages, 2);
        ck_assert_int_eq(mrm_output_create(&o, &l, &opt, err, sizeof(err)), -EINVAL);
        tw_rmdir(dir);
        /* A directory that does not exist. */
        opt.writer = c;
        opt.path = "no-such-dir/x.mrm";
        tw_layout(&l, pages, 2);
        ck_assert_int_eq(mrm_output_create(&o, &l, &opt, err, sizeof(err)), -ENOENT);
        ck_assert_msg(strstr(err, "no-such-dir/x.mrm"), "%s", err);
}
END_TEST

/* ---- the writer pool on its own ----------------------------------------- */

struct pool_probe {
        pthread_mutex_t lock;
        pthread_t thread_of[4];
        unsigned done_by[4];
        bool mixed;                     /* a worker ran on two threads */
};

static void probe_complete(void *opaque, const struct wp_req *r)
{
        struct pool_probe *p = opaque;

        pthread_mutex_lock(&p->lock);
        if (p->done_by[r->worker]++ == 0)
                p->thread_of[r->worker] = pthread_self();
        else if (!pthread_equal(p->thread_of[r->worker], pthread_self()))
                p->mixed = true;
        pthread_mutex_unlock(&p->lock);
}

/* Loop index 0: registered buffers; 1: plain writes. */
struct budget_waiter {
        struct writer_pool *pool;
        struct wp_req *req;
        int r;
};

static void *budget_wait(void *arg)
{
        struct budget_waiter *bw = arg;

        bw->r = wp_get(bw->pool, -1, &bw->req);
        return NULL;
}

/* Request i of n, len bytes at offset i * len, was all byte i + 1. */
static void check_numbered_requests(int fd, unsigned n, size_t len)
{
        _cleanup_free_ uint8_t *got = malloc(len);

        ck_assert_ptr_nonnull(got);
        for (unsigned i = 0; i < n; i++) {
                ck_assert_int_eq(pread(fd, got, len, (off_t)(i * len)), (ssize_t)len);
                for (size_t k = 0; k < len; k++)
                        ck_assert_uint_eq(got[k], i + 1);
        }
}

START_TEST(test_pool_workers)
{
        struct pool_probe probe = { .lock = PTHREAD_MUTEX_INITIALIZER };
        struct numa_topo topo;
        struct writer_pool *pool;
        struct wp_stats st;
        char name[] = "pool-XXXXXX", err[256] = "";
        int fd = mkostemp(name, O_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(numa_topo_init(&topo, 2), 0);
        ck_assert_uint_eq(topo.n_nodes, 2);
        struct wp_params p = {
                .topo = &topo, .n_workers = 4, .queue_depth = 2, .slots_per_worker = 3,
                .buffer_size = 8192, .fd = fd, .no_fixed_buffers = _i == 1,
                .complete = probe_complete, .opaque = &probe,
        };
        ck_assert_msg(wp_new(&pool, &p, err, sizeof(err)) == 0, "%s", err);
        for (unsigned w = 0; w < 4; w++)
                ck_assert_uint_eq(wp_worker_node(pool, w), w % 2);
        /* 40 writes, each pinned to a worker, each 8 KiB of its own byte. */
        for (unsigned i = 0; i < 40; i++) {
                struct wp_req *r;

                ck_assert_int_eq(wp_get(pool, (int)(i % 4), &r), 0);
                ck_assert_uint_eq(r->worker, i % 4);
                ck_assert_uint_eq((uintptr_t)r->buf % WP_BUFFER_ALIGN, 0);
                memset(r->buf, (int)i + 1, 8192);
                r->offset = (uint64_t)i * 8192;
                r->len = 8192;
                ck_assert_int_eq(wp_submit(pool, r), 0);
        }
        ck_assert_int_eq(wp_drain(pool), 0);
        wp_get_stats(pool, &st);
        ck_assert_uint_eq(st.fixed_buffers, _i == 0 ? 4 : 0);
        ck_assert_uint_ge(st.writes, 40);
        wp_free(pool);
        ck_assert(!probe.mixed);
        for (unsigned w = 0; w < 4; w++)
                ck_assert_uint_eq(probe.done_by[w], 10);
        for (unsigned w = 0; w < 4; w++)
                for (unsigned k = w + 1; k < 4; k++)
                        ck_assert(!pthread_equal(probe.thread_of[w], probe.thread_of[k]));
        check_numbered_requests(fd, 40, 8192);
        close(fd);
        unlink(name);
}
END_TEST

/* A failed write (here: a descriptor opened read-only) fails the pool with
 * its errno and offset; later calls fail fast. */
START_TEST(test_pool_error)
{
        struct numa_topo topo;
        struct writer_pool *pool;
        struct wp_req *r;
        char name[] = "pool-XXXXXX", err[256] = "";
        uint64_t off = 0;
        int fd = mkostemp(name, O_CLOEXEC), rfd;

        ck_assert_int_ge(fd, 0);
        rfd = open(name, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(rfd, 0);
        ck_assert_int_eq(numa_topo_init(&topo, 0), 0);
        struct wp_params p = {
                .topo = &topo, .n_workers = 1, .queue_depth = 2, .slots_per_worker = 2,
                .buffer_size = 4096, .fd = rfd,
        };
        ck_assert_msg(wp_new(&pool, &p, err, sizeof(err)) == 0, "%s", err);
        ck_assert_int_eq(wp_get(pool, -1, &r), 0);
        r->offset = 0x3000;
        r->len = 4096;
        ck_assert_int_eq(wp_submit(pool, r), 0);
        ck_assert_int_eq(wp_drain(pool), -EBADF);
        ck_assert_int_eq(wp_error(pool, &off), -EBADF);
        ck_assert_uint_eq(off, 0x3000);
        ck_assert_int_eq(wp_get(pool, -1, &r), -EBADF);
        wp_free(pool);
        close(rfd);
        close(fd);
        unlink(name);
}
END_TEST

/* Buffer memory kept between jobs: the second job reuses the first one's
 * regions (with their old page contents), and its file still holds
 * exactly what the second job wrote, copied with streaming stores. */
START_TEST(test_buffer_cache)
{
        static const uint64_t pages[] = { 700, 33 };
        struct writer_config c = tw_small_config(IO_MODE_AUTO);
        struct buffer_cache_stats st;
        struct buffer_cache *cache;
        uint8_t *page = aligned_alloc(QEMU_TPS, QEMU_TPS);

        ck_assert_ptr_nonnull(page);
        ck_assert_int_eq(buffer_cache_new(&cache, 16 << 20), 0);
        c.cache = cache;
        for (unsigned pass = 1; pass <= 2; pass++) {
                struct job j;
                uint64_t s = pass;

                job_start(&j, pages, 2, &c);
                for (unsigned b = 0; b < 2; b++)
                        for (uint64_t p = 0; p < pages[b]; p++) {
                                if (rnd_next(&s) % 3 == 0) {
                                        job_zero(&j, b, p);
                                        continue;
                                }
                                tw_fill_page(page, b, p, pass);
                                ck_assert_int_eq(mrm_output_copy_page(j.o, b, p, page), 0);
                                j.m.pass[b][p] = (uint8_t)pass;
                                j.n_written++;
                        }
                job_commit_and_check(&j);
                job_end(&j);
                buffer_cache_get_stats(cache, &st);
                /* Both workers' regions (8 x 64 KiB each) came back. */
                ck_assert_uint_eq(st.cached_bytes, 2 * 8 * (64 << 10));
                ck_assert_uint_eq(st.misses, 2);       /* the first job's */
                ck_assert_uint_eq(st.hits, pass == 1 ? 0 : 2);
        }
        /* Under a lower limit a region given back is unmapped, not kept. */
        struct numa_topo t;
        ck_assert_int_eq(numa_topo_init(&t, 0), 0);
        void *p = buffer_cache_get(cache, &t, 0, 1 << 20);
        ck_assert_ptr_nonnull(p);
        buffer_cache_set_max(cache, st.cached_bytes);
        buffer_cache_put(cache, &t, 0, p, 1 << 20);
        buffer_cache_get_stats(cache, &st);
        ck_assert_uint_eq(st.cached_bytes, 2 * 8 * (64 << 10));
        ck_assert_uint_eq(st.misses, 3);
        buffer_cache_free(cache);
        free(page);
}
END_TEST

/* Zero pages between data pages travel in the data's write, as zeros,
 * with their bits clear; a page the stream does not mention keeps what an
 * earlier pass wrote; trailing zeros are not written.  The buffers come
 * from a job that filled them with data: a filled zero that kept a
 * buffer's old bytes, or was not written, would show in slots 1 and 2. */
START_TEST(test_gap_fill)
{
        static const uint64_t pages[] = { 64 };
        static const uint8_t zero[QEMU_TPS];
        struct writer_config c = tw_small_config(IO_MODE_AUTO);
        struct buffer_cache *cache;
        struct wp_stats ws;
        uint8_t slot[QEMU_TPS];
        uint64_t writes;
        struct job j;
        int fd;

        ck_assert_int_eq(buffer_cache_new(&cache, 16 << 20), 0);
        c.cache = cache;
        job_start(&j, pages, 1, &c);
        for (uint64_t p = 0; p < 64; p++)
                job_page(&j, 0, p, 1);
        job_commit_and_check(&j);
        job_end(&j);

        job_start(&j, pages, 1, &c);
        for (uint64_t p = 0; p < 10; p++)
                job_page(&j, 0, p, 1);
        ck_assert_int_eq(mrm_output_drain(j.o), 0);
        mrm_output_writer_stats(j.o, &ws);
        writes = ws.writes;
        job_page(&j, 0, 0, 2);                  /* one write: pages 0-3 */
        job_zero(&j, 0, 1);
        job_zero(&j, 0, 2);
        job_page(&j, 0, 3, 2);
        job_page(&j, 0, 5, 2);                  /* 4 unmentioned: a new write */
        for (uint64_t p = 6; p < 27; p++)       /* too many zeros to carry */
                job_zero(&j, 0, p);
        job_page(&j, 0, 27, 2);
        job_zero(&j, 0, 28);
        job_commit_and_check(&j);
        mrm_output_writer_stats(j.o, &ws);
        ck_assert_uint_eq(ws.writes - writes, 3);
        fd = open(j.path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        for (uint64_t p = 1; p <= 2; p++) {
                ck_assert_int_eq(pread(fd, slot, sizeof(slot),
                                       (off_t)(j.l.blocks[0].pages_offset + p * QEMU_TPS)),
                                 sizeof(slot));
                ck_assert(memcmp(slot, zero, sizeof(slot)) == 0);
        }
        close(fd);
        job_end(&j);
        buffer_cache_free(cache);
}
END_TEST

/* The names a restarted daemon removes: only what create_temp() makes. */
START_TEST(test_temp_names)
{
        static const struct { const char *name; bool temp; } t[] = {
                { ".vm.mrm.AbC123.part", true },
                { ".x.a1b2c3.part", true },
                { ".a.b.c.000000.part", true },
                { "vm.mrm.AbC123.part", false },        /* not hidden */
                { ".vm.mrm.AbC12.part", false },        /* 5 random characters */
                { ".vm.mrm.AbC1234.part", false },      /* 7 */
                { ".vm.mrmAbC123.part", false },        /* no dot before them */
                { ".vm.mrm.AbC-23.part", false },
                { ".vm.mrm.AbC123.part~", false },
                { "..AbC123.part", false },             /* no name */
                { ".AbC123.part", false },
                { ".part", false },
                { "", false },
        };

        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
                ck_assert_msg(mrm_output_is_temp_name(t[i].name) == t[i].temp, "'%s'", t[i].name);
}
END_TEST

/* O_DIRECT outputs reserve their slots and give the unused ones back on
 * commit: the file takes the space of the pages it holds, not of the
 * RAM, and a page written and then zeroed leaves no stale data behind. */
START_TEST(test_sparse_after_commit)
{
        static const uint64_t pages[] = { 8192 };       /* 32 MiB of RAM */
        struct writer_config c = tw_small_config(IO_MODE_AUTO);
        uint8_t slot[QEMU_TPS], zero[QEMU_TPS] = { 0 };
        struct statfs sf;
        struct stat st;
        struct job j;
        int fd;

        job_start(&j, pages, 1, &c);
        for (uint64_t p = 0; p < 256; p++)              /* 1 MiB of data */
                job_page(&j, 0, p, 1);
        job_page(&j, 0, 5000, 1);
        ck_assert_int_eq(mrm_output_drain(j.o), 0);
        job_zero(&j, 0, 5000);
        for (uint64_t p = 256; p < 8192; p += 7)
                job_zero(&j, 0, p);
        job_commit_and_check(&j);
        fd = open(j.path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(pread(fd, slot, sizeof(slot), (off_t)(j.l.blocks[0].pages_offset +
                                                               5000 * QEMU_TPS)), sizeof(slot));
        close(fd);
        /* Here (the build tree) that is ext4 with room to spare, where
         * O_DIRECT outputs reserve; elsewhere nothing to check. */
        ck_assert_int_eq(statfs(j.dir, &sf), 0);
        if ((sf.f_type == EXT4_SUPER_MAGIC || sf.f_type == XFS_SUPER_MAGIC) &&
            strcmp(mrm_output_io_mode(j.o), "direct") == 0)
                ck_assert(mrm_output_slots_reserved(j.o));
        if (mrm_output_slots_reserved(j.o)) {
                /* 1 MiB of pages, the header and bitmap before them, the
                 * tail after: far below the 32 MiB a full reservation
                 * holds (file systems round allocations up a little). */
                ck_assert_msg((uint64_t)st.st_blocks * 512 < 4 * 1024 * 1024,
                              "%llu bytes allocated", (unsigned long long)st.st_blocks * 512);
                ck_assert(memcmp(slot, zero, sizeof(slot)) == 0);
        }
        job_end(&j);
}
END_TEST

/* Two pools share one budget: each has its base of buffers (4 here, 16
 * MiB each), and buffers beyond it only while the budget (2 buffers)
 * lasts; what one pool gives back, the other can take.  Slots are taken
 * and given back without writing, so nothing depends on the disk. */
START_TEST(test_pool_budget)
{
        enum { BUF = 16 << 20, BASE = WP_BASE_BYTES / BUF, SLOTS = BASE + 4 };
        struct pool_probe probe[2] = {
                { .lock = PTHREAD_MUTEX_INITIALIZER }, { .lock = PTHREAD_MUTEX_INITIALIZER },
        };
        struct numa_topo topo;
        struct buffer_cache *cache;
        struct writer_pool *pool[2];
        struct wp_req *held[2][SLOTS], *r;
        struct buffer_cache_stats st;
        char name[] = "budget-XXXXXX", err[256] = "";
        int fd = mkostemp(name, O_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(numa_topo_init(&topo, 0), 0);
        ck_assert_int_eq(buffer_cache_new(&cache, 0), 0);
        buffer_cache_set_budget(cache, 2 * (uint64_t)BUF);
        struct wp_params p = {
                .topo = &topo, .cache = cache, .n_workers = 1, .queue_depth = 2,
                .slots_per_worker = SLOTS, .buffer_size = BUF, .fd = fd,
                .no_fixed_buffers = true, .complete = probe_complete,
        };
        for (int k = 0; k < 2; k++) {
                p.opaque = &probe[k];
                ck_assert_msg(wp_new(&pool[k], &p, err, sizeof(err)) == 0, "%s", err);
        }
        /* Pool 0: its base, then the whole budget, then no more. */
        for (int i = 0; i < BASE + 2; i++)
                ck_assert_int_eq(wp_try_get(pool[0], -1, &held[0][i]), 0);
        ck_assert_int_eq(wp_try_get(pool[0], -1, &r), -EAGAIN);
        buffer_cache_get_stats(cache, &st);
        ck_assert_uint_eq(st.charged_bytes, 2 * (uint64_t)BUF);
        /* Pool 1: its base is its own; beyond it the budget is spent. */
        for (int i = 0; i < BASE; i++)
                ck_assert_int_eq(wp_try_get(pool[1], -1, &held[1][i]), 0);
        ck_assert_int_eq(wp_try_get(pool[1], -1, &r), -EAGAIN);
        /* A buffer pool 0 gives back is pool 1's to take. */
        wp_put(pool[0], held[0][BASE + 1]);
        ck_assert_int_eq(wp_try_get(pool[1], -1, &held[1][BASE]), 0);
        ck_assert_int_eq(wp_try_get(pool[0], -1, &r), -EAGAIN);
        /* A blocking wp_get waits for budget another pool frees. */
        struct budget_waiter bw = { .pool = pool[0] };
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, budget_wait, &bw), 0);
        wp_put(pool[1], held[1][BASE]);
        ck_assert_int_eq(pthread_join(t, NULL), 0);
        ck_assert_int_eq(bw.r, 0);
        held[0][BASE + 1] = bw.req;
        /* Everything back: nothing stays charged. */
        for (int i = 0; i < BASE + 2; i++)
                wp_put(pool[0], held[0][i]);
        for (int i = 0; i < BASE; i++)
                wp_put(pool[1], held[1][i]);
        buffer_cache_get_stats(cache, &st);
        ck_assert_uint_eq(st.charged_bytes, 0);
        for (int k = 0; k < 2; k++)
                wp_free(pool[k]);
        buffer_cache_free(cache);
        close(fd);
        unlink(name);
}
END_TEST

/* ---- holding writes back (wp_params.hold_bytes) ---- */

struct hold_probe {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        unsigned written;
};

static void hold_complete(void *opaque, const struct wp_req *r)
{
        struct hold_probe *h = opaque;

        (void)r;
        pthread_mutex_lock(&h->lock);
        h->written++;
        pthread_cond_broadcast(&h->cond);
        pthread_mutex_unlock(&h->lock);
}

/* Writes completed once there are `want` or ms milliseconds passed. */
static unsigned hold_written(struct hold_probe *h, unsigned want, long ms)
{
        struct timespec ts;
        unsigned n;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&h->lock);
        while (h->written < want && pthread_cond_timedwait(&h->cond, &h->lock, &ts) == 0)
                ;
        n = h->written;
        pthread_mutex_unlock(&h->lock);
        return n;
}

/* Exactly n writes: n arrive (however slow the machine), and in 50 ms
 * (long enough for a worker that should not hold to have written) no
 * more. */
static void hold_expect_written(struct hold_probe *h, unsigned n)
{
        ck_assert_uint_eq(hold_written(h, n, 30000), n);
        ck_assert_uint_eq(hold_written(h, n + 1, 50), n);
}

static void hold_submit(struct writer_pool *pool, unsigned i)
{
        struct wp_req *r;

        ck_assert_int_eq(wp_get(pool, -1, &r), 0);
        memset(r->buf, (int)i + 1, 4096);
        r->offset = (uint64_t)i * 4096;
        r->len = 4096;
        ck_assert_int_eq(wp_submit(pool, r), 0);
}

/* Loop index 0: the disk trails the producer by hold_bytes (4 buffers)
 * until wp_drain.  1: a hold larger than all the slots ends when the
 * producer waits for one (else it would wait forever); the test times out
 * if it does not. */
START_TEST(test_pool_hold)
{
        struct hold_probe h = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
        struct numa_topo topo;
        struct writer_pool *pool;
        char name[] = "hold-XXXXXX", err[256] = "";
        unsigned n = _i == 0 ? 6 : 12;
        int fd = mkostemp(name, O_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(numa_topo_init(&topo, 0), 0);
        struct wp_params p = {
                .topo = &topo, .n_workers = 1, .queue_depth = 2, .slots_per_worker = 8,
                .buffer_size = 4096, .fd = fd, .hold_bytes = _i == 0 ? 4 * 4096 : 1 << 30,
                .complete = hold_complete, .opaque = &h,
        };
        ck_assert_msg(wp_new(&pool, &p, err, sizeof(err)) == 0, "%s", err);
        for (unsigned i = 0; i < 4; i++)
                hold_submit(pool, i);
        hold_expect_written(&h, 0);
        if (_i == 0) {
                /* Each request beyond the hold lets the oldest one go. */
                for (unsigned i = 4; i < n; i++) {
                        hold_submit(pool, i);
                        hold_expect_written(&h, i - 3);
                }
        } else {
                for (unsigned i = 4; i < n; i++)
                        hold_submit(pool, i);
        }
        ck_assert_int_eq(wp_drain(pool), 0);
        ck_assert_uint_eq(h.written, n);
        wp_free(pool);
        check_numbered_requests(fd, n, 4096);
        close(fd);
        unlink(name);
}
END_TEST

static Suite *writer_suite(void)
{
        Suite *s = suite_create("writer");
        TCase *tc = tcase_create("output");

        tcase_set_timeout(tc, 120);
        tcase_add_loop_test(tc, test_multi_block, 0, 3);
        tcase_add_test(tc, test_default_config);
        tcase_add_test(tc, test_multipass);
        tcase_add_test(tc, test_abort);
        tcase_add_test(tc, test_overwrite);
        tcase_add_test(tc, test_handed_fd);
        tcase_add_test(tc, test_write_from_fake_numa);
        tcase_add_test(tc, test_bad_calls);
        tcase_add_test(tc, test_buffer_cache);
        tcase_add_test(tc, test_gap_fill);
        tcase_add_test(tc, test_temp_names);
        tcase_add_test(tc, test_sparse_after_commit);
        suite_add_tcase(s, tc);
        tc = tcase_create("pool");
        tcase_add_loop_test(tc, test_pool_workers, 0, 2);
        tcase_add_test(tc, test_pool_error);
        tcase_add_test(tc, test_pool_budget);
        tcase_add_loop_test(tc, test_pool_hold, 0, 2);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return test_run_suite(writer_suite(), true);
}
