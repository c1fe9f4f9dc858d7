/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Benchmark of the writer engine: writes a mapped-ram file for a VM whose
 * RAM is half random pages, half zero pages (alternating runs) through
 * mrm_output, from memory, and reports the data throughput (bytes of
 * non-zero pages written / wall time from create to a durable commit),
 * the CPU time per GiB of data (user + system of every thread of the
 * process, kernel io workers included) and the peak RSS.  The page
 * contents come from a fixed random pool generated before the clock
 * starts, so the figure measures the engine and the disk, not a random
 * number generator.  scripts/bench.sh runs it next to fio.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "mrm-output.h"
#include "page-copy.h"
#include "writer-pool.h"

#define GIB (1ULL << 30)
#define POOL_SIZE (64U << 20)           /* random source pages */
#define MAX_GIB 4096U
#define MAX_BLOCKS 64U

struct bench {
        const char *dir;
        double gib;                     /* data (non-zero) GiB to write */
        uint64_t run_pages;             /* length of each data / zero run */
        unsigned n_blocks;
        bool keep;
        bool zero_copy;                 /* mrm_output_write_from, no copy */
        struct writer_config wc;
};

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: bench-engine --dir DIR [options]\n"
                "  --dir DIR          where the file is written (removed afterwards)\n"
                "  --gib N            GiB of data pages to write (default 1); the VM\n"
                "                     has as many zero pages again\n"
                "  --run-pages N      pages per data run and per zero run (default 256)\n"
                "  --blocks N         RAM blocks the VM is split into (default 1)\n"
                "  --workers N        writer threads (default: one per NUMA node)\n"
                "  --fake-nodes N     pretend N NUMA nodes\n"
                "  --queue-depth N    in-flight writes per worker (default 32)\n"
                "  --buffer-kib N     bytes per batch buffer in KiB (default 1024)\n"
                "  --buffers N        buffers per worker (default 2 * queue depth)\n"
                "  --io-mode MODE     auto, direct or buffered (default direct)\n"
                "  --zero-copy        hand data runs to the engine in place\n"
                "                     (mrm_output_write_from) instead of copying\n"
                "                     each page into its buffer (mrm_output_copy_page)\n"
                "  --keep             keep the file\n");
}

static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s || *end || v > max)
                return -EINVAL;
        *out = v;
        return 0;
}

static int parse_mode(const char *s, enum io_mode *m)
{
        if (strcmp(s, "auto") == 0)
                *m = IO_MODE_AUTO;
        else if (strcmp(s, "direct") == 0)
                *m = IO_MODE_DIRECT;
        else if (strcmp(s, "buffered") == 0)
                *m = IO_MODE_BUFFERED;
        else
                return -EINVAL;
        return 0;
}

static int parse_opt(struct bench *b, int c, const char *arg)
{
        uint64_t v = 0;
        int r = 0;

        switch (c) {
        case 'd': b->dir = arg; return 0;
        case 'k': b->keep = true; return 0;
        case 'z': b->zero_copy = true; return 0;
        case 'm': return parse_mode(arg, &b->wc.io_mode);
        case 'g':
                b->gib = strtod(arg, NULL);
                return b->gib > 0 && b->gib <= MAX_GIB ? 0 : -EINVAL;
        case 'r': r = parse_uint(arg, 1U << 20, &v); b->run_pages = v; break;
        case 'b': r = parse_uint(arg, MAX_BLOCKS, &v); b->n_blocks = (unsigned)v; break;
        case 'w': r = parse_uint(arg, WP_MAX_WORKERS, &v); b->wc.n_workers = (unsigned)v; break;
        case 'f': r = parse_uint(arg, 64, &v); b->wc.fake_nodes = (unsigned)v; break;
        case 'q': r = parse_uint(arg, WP_MAX_QUEUE_DEPTH, &v); b->wc.queue_depth = (unsigned)v; break;
        case 's': r = parse_uint(arg, WP_MAX_BUFFER_SIZE >> 10, &v); b->wc.buffer_size = v << 10; break;
        case 'n': r = parse_uint(arg, WP_MAX_SLOTS, &v); b->wc.buffers_per_worker = (unsigned)v; break;
        default: return -EINVAL;
        }
        if (r == 0 && v == 0)
                r = -EINVAL;
        return r;
}

static int parse_args(struct bench *b, int argc, char **argv)
{
        static const struct option opts[] = {
                { "dir", required_argument, NULL, 'd' },
                { "gib", required_argument, NULL, 'g' },
                { "run-pages", required_argument, NULL, 'r' },
                { "blocks", required_argument, NULL, 'b' },
                { "workers", required_argument, NULL, 'w' },
                { "fake-nodes", required_argument, NULL, 'f' },
                { "queue-depth", required_argument, NULL, 'q' },
                { "buffer-kib", required_argument, NULL, 's' },
                { "buffers", required_argument, NULL, 'n' },
                { "io-mode", required_argument, NULL, 'm' },
                { "keep", no_argument, NULL, 'k' },
                { "zero-copy", no_argument, NULL, 'z' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        int c;

        *b = (struct bench){ .gib = 1, .run_pages = 256, .n_blocks = 1 };
        b->wc.io_mode = IO_MODE_DIRECT;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                if (c == 'h') {
                        usage(stdout);
                        exit(EXIT_SUCCESS);
                }
                if (parse_opt(b, c, optarg) < 0) {
                        fprintf(stderr, "bench-engine: bad option or value (see --help)\n");
                        return -EINVAL;
                }
        }
        if (!b->dir || optind != argc) {
                usage(stderr);
                return -EINVAL;
        }
        return 0;
}

/* Two pages of RAM per page of data; blocks as equal as the page count
 * allows, each a whole number of runs. */
static int make_layout(const struct bench *b, struct mrm_layout *l)
{
        uint64_t data_pages = (uint64_t)(b->gib * (double)GIB) / QEMU_TPS;
        uint64_t pair = 2 * b->run_pages;
        uint64_t pairs = DIV_ROUND_UP(data_pages, b->run_pages);
        uint64_t per_block = DIV_ROUND_UP(pairs, b->n_blocks);
        int r = mrm_layout_init(l, "pc-q35-7.2", 10, 2);

        for (unsigned i = 0; r == 0 && i < b->n_blocks && pairs > 0; i++) {
                uint64_t n = MIN(per_block, pairs);
                char name[32];

                snprintf(name, sizeof(name), i ? "ram%u" : "pc.ram", i);
                r = mrm_layout_add_block(l, name, strlen(name), n * pair * QEMU_TPS, QEMU_TPS);
                pairs -= n;
        }
        return r < 0 ? r : mrm_layout_compute(l);
}

static uint8_t *random_pool(void)
{
        uint64_t *p = aligned_alloc(QEMU_TPS, POOL_SIZE), x = 0x9E3779B97F4A7C15ULL;

        if (!p)
                return NULL;
        for (size_t i = 0; i < POOL_SIZE / 8; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                p[i] = x;
        }
        return (uint8_t *)p;
}

static double now(void)
{
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* The same runs, data handed over in place: each run comes from the
 * pool (which outlives the job), so nothing is copied. */
static int write_runs(struct mrm_output *o, const struct bench *b, const uint8_t *pool,
                      uint64_t *data_pages)
{
        const struct mrm_layout *l = mrm_output_layout(o);
        uint64_t pool_runs = POOL_SIZE / QEMU_TPS / b->run_pages, k = 0;
        int r;

        if (pool_runs == 0)
                return -EINVAL;
        for (unsigned blk = 0; blk < l->n_blocks; blk++)
                for (uint64_t p = 0; p < l->blocks[blk].num_pages; p += b->run_pages) {
                        uint64_t n = MIN(b->run_pages, l->blocks[blk].num_pages - p);

                        if ((p / b->run_pages) % 2) {
                                for (uint64_t i = 0; i < n; i++)
                                        if ((r = mrm_output_zero(o, blk, p + i)) < 0)
                                                return r;
                                continue;
                        }
                        r = mrm_output_write_from(o, blk, p, n, pool + (k++ * 7 % pool_runs) *
                                                  b->run_pages * QEMU_TPS, -1);
                        if (r < 0)
                                return r;
                        *data_pages += n;
                }
        return 0;
}

/* Data run, zero run, data run, ... over every block. */
static int write_pages(struct mrm_output *o, const struct bench *b, const uint8_t *pool,
                       uint64_t *data_pages)
{
        const struct mrm_layout *l = mrm_output_layout(o);
        uint64_t k = 0;
        int r;

        for (unsigned blk = 0; blk < l->n_blocks; blk++)
                for (uint64_t p = 0; p < l->blocks[blk].num_pages; p++) {
                        if ((p / b->run_pages) % 2) {
                                r = mrm_output_zero(o, blk, p);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        /* An odd page stride walks the whole pool. */
                        r = mrm_output_copy_page(o, blk, p,
                                                 pool + (k++ * 7 % (POOL_SIZE / QEMU_TPS)) * QEMU_TPS);
                        if (r < 0)
                                return r;
                }
        *data_pages = k;
        return 0;
}

struct result {
        uint64_t data_pages;
        double wall, cpu;
        double copy_cpu;                /* the same copies without the engine */
        long maxrss_kib;
        char mode[32];
        struct wp_stats st;
};

#define COPY_TARGET (64U << 20)

/* CPU time of just the page copies of the copy path (same source, same
 * order, into 64 MiB of aligned buffers like the engine's): what the data
 * source costs, so that the engine's own share can be told apart. */
static int copy_baseline(const uint8_t *pool, struct result *res)
{
        uint8_t *dst = aligned_alloc(QEMU_TPS, COPY_TARGET);
        double c0;

        if (!dst)
                return -ENOMEM;
        memset(dst, 0, COPY_TARGET);
        c0 = cpu_seconds();
        for (uint64_t k = 0; k < res->data_pages; k++)
                page_copy(dst + k % (COPY_TARGET / QEMU_TPS) * QEMU_TPS,
                          pool + (k * 7 % (POOL_SIZE / QEMU_TPS)) * QEMU_TPS);
        page_copy_fence();
        res->copy_cpu = cpu_seconds() - c0;
        /* Keep the copies from being optimised away. */
        __asm__ volatile("" : : "r"(dst) : "memory");
        free(dst);
        return 0;
}

static int run(const struct bench *b, const uint8_t *pool, const char *path, struct result *res)
{
        struct mrm_output_options opt = { .path = path, .fd = -1, .writer = b->wc };
        struct mrm_output *o = NULL;
        struct mrm_layout l;
        char err[512] = "";
        double t0, c0;
        int r;

        r = make_layout(b, &l);
        if (r < 0) {
                fprintf(stderr, "bench-engine: layout: %s\n", strerror(-r));
                return r;
        }
        c0 = cpu_seconds();
        t0 = now();
        r = mrm_output_create(&o, &l, &opt, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "bench-engine: %s\n", err);
                return r;
        }
        snprintf(res->mode, sizeof(res->mode), "%s", mrm_output_io_mode(o));
        if (b->zero_copy)
                r = write_runs(o, b, pool, &res->data_pages);
        else
                r = write_pages(o, b, pool, &res->data_pages);
        if (r == 0)
                r = mrm_output_commit(o);
        res->wall = now() - t0;
        res->cpu = cpu_seconds() - c0;
        mrm_output_writer_stats(o, &res->st);
        if (r < 0)
                fprintf(stderr, "bench-engine: %s\n", mrm_output_error(o) ?: strerror(-r));
        mrm_output_free(o);
        return r;
}

static long maxrss_kib(void)
{
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        return ru.ru_maxrss;
}

static void report(const struct bench *b, const struct result *res)
{
        double data = (double)res->data_pages * QEMU_TPS / (double)GIB;

        printf("engine: %.2f GiB data (+ %.2f GiB zero pages) in %.2f s, io mode %s, %s path\n",
               data, data, res->wall, res->mode, b->zero_copy ? "zero-copy" : "copy");
        printf("engine: data throughput %.3f GiB/s, CPU %.3f core-s/GiB, max RSS %.1f MiB\n",
               data / res->wall, res->cpu / data, (double)res->maxrss_kib / 1024);
        if (!b->zero_copy)
                printf("engine: of which copying pages from memory %.3f core-s/GiB (measured "
                       "alone), engine and kernel %.3f core-s/GiB\n",
                       res->copy_cpu / data, (res->cpu - res->copy_cpu) / data);
        printf("engine: %llu writes, %llu worker wake-ups, %llu short writes, %llu EAGAIN, "
               "registered buffers %s, io_uring setup flags 0x%x\n",
               (unsigned long long)res->st.writes, (unsigned long long)res->st.wakes,
               (unsigned long long)res->st.short_writes, (unsigned long long)res->st.eagain,
               res->st.fixed_buffers ? "yes" : "no", res->st.setup_flags);
        printf("RESULT data_bytes=%llu wall_s=%.3f data_gib_s=%.4f cpu_s=%.3f cpu_s_per_gib=%.4f "
               "copy_cpu_s_per_gib=%.4f maxrss_kib=%ld io_mode=%s run_pages=%llu path=%s\n",
               (unsigned long long)res->data_pages * QEMU_TPS, res->wall, data / res->wall,
               res->cpu, res->cpu / data, res->copy_cpu / data, res->maxrss_kib, res->mode,
               (unsigned long long)b->run_pages, b->zero_copy ? "zero-copy" : "copy");
}

int main(int argc, char **argv)
{
        _cleanup_free_ uint8_t *pool = NULL;
        struct result res = { 0 };
        struct bench b;
        char path[4096];
        int r;

        if (parse_args(&b, argc, argv) < 0)
                return 2;
        pool = random_pool();
        if (!pool)
                return 1;
        snprintf(path, sizeof(path), "%s/savd-bench-%d.mrm", b.dir, (int)getpid());
        r = run(&b, pool, path, &res);
        res.maxrss_kib = maxrss_kib();
        if (r == 0 && !b.zero_copy)
                r = copy_baseline(pool, &res);
        if (r == 0)
                report(&b, &res);
        if (!b.keep)
                unlink(path);
        return r < 0 ? 1 : 0;
}
