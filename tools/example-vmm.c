/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * example-vmm: a small stand-in for a VMM that uses libsavd, for tests,
 * the benchmark and as sample code.  Its "guest" is RAM in memfds (one per
 * block) filled with a reproducible pattern; an optional dirtying thread
 * keeps writing pages (random data, sometimes zeros) while a live save
 * runs, the way a running guest would, and marks them in the dirty log.
 *
 *   example-vmm save URI [options]      save through savd (URI from
 *                                       `savctl save`, or --fd N)
 *   example-vmm restore URI [options]   restore through savd (URI from
 *                                       `savctl restore --native`, or
 *                                       --fd N, or --listen PATH to
 *                                       accept a connection)
 *
 * It prints "memory-hash H" (of the final guest memory: after the last
 * pass for a save, after the restore) and "device-state-hash H", so a test
 * can compare both sides, and timing lines for the benchmark.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "savd/client.h"

#define PAGE            SAVD_NATIVE_PAGE_SIZE
#define MIB             (1ULL << 20)
#define MAX_BLOCKS      64U
#define CHUNK_PAGES     (MIB / PAGE)    /* "half" pattern granule */
#define INLINE_BATCH    256U            /* pages per savd_save_pages() call */
#define DIRTY_PAUSE_NS  20000L          /* between two writes of the dirtier */
#define FNV_OFFSET      0xcbf29ce484222325ULL
#define FNV_PRIME       0x100000001b3ULL
#define MIN(a, b)       ((a) < (b) ? (a) : (b))

enum pattern { PAT_HALF, PAT_TEST, PAT_RANDOM, PAT_ZERO };

struct block {
        char name[32];
        uint64_t size;
        int fd;
        uint8_t *mem;
        struct savd_dirty_log log;
        int index;                      /* savd's block index */
};

struct vmm {
        /* options */
        const char *uri, *listen_path, *dump;
        int fd;
        uint64_t mem_mib;
        unsigned n_blocks;
        enum pattern pattern;
        uint64_t seed;
        bool inline_pages, dirty, hash, quiet, prefault;
        unsigned passes;
        uint64_t device_state;
        uint64_t zero_pages;
        /* state */
        struct block blocks[MAX_BLOCKS];
        struct savd_client *c;
        pthread_t dirtier;
        atomic_bool stop;
        atomic_uint_fast64_t dirtied;
};

/* ---- small helpers -------------------------------------------------------- */

static uint64_t xorshift(uint64_t *s)
{
        uint64_t x = *s;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return *s = x;
}

static void fill_random(void *p, size_t len, uint64_t *s)
{
        uint64_t *w = p;

        for (size_t i = 0; i < len / 8; i++)
                w[i] = xorshift(s);
}

static double now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* FNV-1a over 64-bit words (memory: pages) or bytes (device state):
 * equal contents, equal hash. */
static uint64_t hash_mem(uint64_t h, const void *p, size_t len)
{
        const uint64_t *w = p;

        for (size_t i = 0; i < len / 8; i++)
                h = (h ^ w[i]) * FNV_PRIME;
        return h;
}

static uint64_t hash_bytes(const void *p, size_t len)
{
        const uint8_t *b = p;
        uint64_t h = FNV_OFFSET;

        for (size_t i = 0; i < len; i++)
                h = (h ^ b[i]) * FNV_PRIME;
        return h;
}

static uint64_t hash_guest(const struct vmm *v)
{
        uint64_t h = FNV_OFFSET;

        for (unsigned i = 0; i < v->n_blocks; i++)
                h = hash_mem(h, v->blocks[i].mem, v->blocks[i].size);
        return h;
}

static int die(struct vmm *v, const char *what, int r)
{
        fprintf(stderr, "example-vmm: %s: %s%s%s\n", what, strerror(-r),
                v->c && savd_client_error(v->c)[0] ? ": " : "",
                v->c ? savd_client_error(v->c) : "");
        return 1;
}

/* ---- guest memory ---------------------------------------------------------- */

static int map_block(struct block *b, const char *name, uint64_t size)
{
        snprintf(b->name, sizeof(b->name), "%s", name);
        b->size = size;
        b->log.fd = -1;
        b->fd = savd_memfd_new(name, size);
        if (b->fd < 0)
                return b->fd;
        b->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, b->fd, 0);
        return b->mem == MAP_FAILED ? -errno : 0;
}

/* Pages of the "test" pattern: every third page holds one byte value
 * (as in the QEMU reference files), the others stay zero. */
static void fill_test(struct block *b)
{
        for (uint64_t i = 0; i < b->size / PAGE; i += 3)
                memset(b->mem + i * PAGE, (int)((i * 7 + 1) & 0xff), PAGE);
}

static void fill_block(const struct vmm *v, struct block *b, uint64_t *s)
{
        switch (v->pattern) {
        case PAT_ZERO:
                break;
        case PAT_TEST:
                fill_test(b);
                break;
        case PAT_RANDOM:
                fill_random(b->mem, b->size, s);
                break;
        case PAT_HALF:
                /* 1 MiB chunks, each random or left zero (a hole), 50/50. */
                for (uint64_t off = 0; off < b->size; off += CHUNK_PAGES * PAGE)
                        if (xorshift(s) & 1)
                                fill_random(b->mem + off, (size_t)MIN(b->size - off,
                                            CHUNK_PAGES * PAGE), s);
                break;
        }
}

static int make_guest(struct vmm *v)
{
        uint64_t total = v->mem_mib * MIB, per = total / v->n_blocks / PAGE * PAGE;
        uint64_t s = v->seed | 1;

        for (unsigned i = 0; i < v->n_blocks; i++) {
                char name[32];
                uint64_t size = i + 1 == v->n_blocks ? total - per * i : per;
                int r;

                snprintf(name, sizeof(name), "ram%u", i);
                if ((r = map_block(&v->blocks[i], name, size)) < 0)
                        return r;
                fill_block(v, &v->blocks[i], &s);
        }
        return 0;
}

static void unmap_guest(struct vmm *v)
{
        for (unsigned i = 0; i < v->n_blocks; i++) {
                struct block *b = &v->blocks[i];

                if (b->mem && b->mem != MAP_FAILED)
                        munmap(b->mem, b->size);
                if (b->fd >= 0)
                        close(b->fd);
                savd_dirty_log_free(&b->log);
        }
}

/* The guest memory as one sparse file (zero pages left as holes). */
static int dump_guest(const struct vmm *v)
{
        FILE *f = fopen(v->dump, "we");
        uint64_t off = 0;

        if (!f)
                return -errno;
        for (unsigned i = 0; i < v->n_blocks; i++) {
                const struct block *b = &v->blocks[i];

                for (uint64_t p = 0; p < b->size; p += PAGE, off += PAGE) {
                        static const uint8_t zero[PAGE];

                        if (memcmp(b->mem + p, zero, PAGE) == 0)
                                continue;
                        if (fseeko(f, (off_t)off, SEEK_SET) < 0 || fwrite(b->mem + p, PAGE, 1, f) != 1)
                                break;
                }
        }
        if (ftruncate(fileno(f), (off_t)off) < 0 || fclose(f) != 0)
                return -errno;
        return 0;
}

/* ---- the dirtying thread ----------------------------------------------------- */

static void *dirty_main(void *arg)
{
        struct vmm *v = arg;
        uint64_t s = (v->seed ^ 0x9e3779b97f4a7c15ULL) | 1;
        struct timespec pause = { .tv_nsec = DIRTY_PAUSE_NS };

        while (!atomic_load(&v->stop)) {
                struct block *b = &v->blocks[xorshift(&s) % v->n_blocks];
                uint64_t page = xorshift(&s) % (b->size / PAGE);
                uint8_t *p = b->mem + page * PAGE;

                /* One write in eight zeroes the page: a page that was
                 * saved with data must then restore as zero. */
                if (xorshift(&s) % 8 == 0)
                        memset(p, 0, PAGE);
                else
                        fill_random(p, PAGE, &s);
                savd_dirty_mark(&b->log, page);
                atomic_fetch_add(&v->dirtied, 1);
                nanosleep(&pause, NULL);
        }
        return NULL;
}

/* ---- save -------------------------------------------------------------------- */

static int register_blocks(struct vmm *v)
{
        for (unsigned i = 0; i < v->n_blocks; i++) {
                struct block *b = &v->blocks[i];
                int r = savd_save_block(v->c, b->name, b->size, v->inline_pages ? -1 : b->fd, 0);

                if (r < 0)
                        return r;
                b->index = r;
                if ((r = savd_dirty_log_new(&b->log, b->size / PAGE)) < 0)
                        return r;
        }
        return savd_save_start(v->c);
}

static int track_dirty(struct vmm *v)
{
        for (unsigned i = 0; i < v->n_blocks && !v->inline_pages; i++) {
                int r = savd_save_track_dirty(v->c, (unsigned)v->blocks[i].index, &v->blocks[i].log);

                if (r < 0)
                        return r;
        }
        return 0;
}

/* Inline: send every page (first pass) or the pages marked dirty. */
static int inline_pass(struct vmm *v, bool all)
{
        for (unsigned i = 0; i < v->n_blocks; i++) {
                struct block *b = &v->blocks[i];
                uint64_t npages = b->size / PAGE;

                for (uint64_t p = 0; p < npages; p += 64) {
                        uint64_t w = __atomic_exchange_n(&b->log.words[p / 64], 0, __ATOMIC_ACQ_REL);
                        uint64_t n = MIN(64, npages - p);
                        int r;

                        if (!all && !w)
                                continue;
                        /* Whole words keep it simple: 64 pages at most. */
                        r = savd_save_pages(v->c, (unsigned)b->index, p, n, b->mem + p * PAGE);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int one_pass(struct vmm *v, unsigned n, bool final)
{
        struct savd_pass_stats st = { 0 };
        int r;

        if (v->inline_pages)
                r = inline_pass(v, n == 1);
        else
                r = savd_save_pass(v->c, final ? SAVD_SCAN_FINAL : 0, &st);
        if (r == 0 && !v->quiet && !v->inline_pages)
                printf("pass %" PRIu64 ": %" PRIu64 " pages looked at, %" PRIu64 " written, %"
                       PRIu64 " zero%s\n", st.pass, st.pages_dirty, st.pages_queued,
                       st.pages_zero, final ? " (final)" : "");
        return r;
}

/* After the first pass: zero pages that were saved with data, so that
 * the file must end up saying "zero" for them. */
static void zero_saved_pages(struct vmm *v)
{
        static const uint8_t zero[PAGE];
        uint64_t done = 0;

        for (unsigned i = 0; i < v->n_blocks && done < v->zero_pages; i++) {
                struct block *b = &v->blocks[i];

                for (uint64_t p = 0; p < b->size / PAGE && done < v->zero_pages; p++) {
                        if (memcmp(b->mem + p * PAGE, zero, PAGE) == 0)
                                continue;
                        memset(b->mem + p * PAGE, 0, PAGE);
                        savd_dirty_mark(&b->log, p);
                        done++;
                }
        }
        printf("pages-zeroed %" PRIu64 "\n", done);
}

static int run_passes(struct vmm *v)
{
        unsigned live = v->dirty ? (v->passes ? v->passes : 3) : v->passes;
        int r = 0;

        if (v->zero_pages && live == 0)
                live = 1;               /* a pass with data, then the zeroing */
        if (v->dirty && pthread_create(&v->dirtier, NULL, dirty_main, v) != 0)
                return -EAGAIN;
        for (unsigned n = 1; n <= live; n++) {
                if ((r = one_pass(v, n, false)) < 0)
                        break;
                if (n == 1 && v->zero_pages)
                        zero_saved_pages(v);
        }
        if (v->dirty) {
                /* "Pause the VM" before the final pass. */
                atomic_store(&v->stop, true);
                pthread_join(v->dirtier, NULL);
        }
        if (r < 0)
                return r;
        return one_pass(v, live + 1, true);
}

static void *make_blob(const struct vmm *v)
{
        uint64_t s = (v->seed * 31 + 7) | 1;
        uint8_t *b = malloc(v->device_state ? v->device_state : 1);

        for (uint64_t i = 0; b && i < v->device_state; i++)
                b[i] = (uint8_t)xorshift(&s);
        return b;
}

static int connect_client(struct vmm *v)
{
        if (v->fd >= 0)
                return savd_client_from_fd(&v->c, v->fd);
        return savd_connect(&v->c, v->uri);
}

static void report_save(const struct vmm *v, const struct savd_save_result *res, double t0,
                        double t_start, double t_end)
{
        double data_s = t_end - t_start;

        printf("save: %" PRIu64 " bytes of data written, %" PRIu64 " pages, %" PRIu64
               " zero, io %s\n", res->bytes_written, res->pages_written, res->pages_zero,
               res->io_mode);
        printf("save-seconds %.3f\n", t_end - t0);
        printf("save-data-seconds %.3f\n", data_s);
        printf("save-data-mib-per-s %.1f\n", data_s > 0 ? (double)res->bytes_written / MIB / data_s : 0.0);
        if (v->dirty)
                printf("pages-dirtied %" PRIu64 "\n", (uint64_t)atomic_load(&v->dirtied));
}

static int do_save(struct vmm *v)
{
        struct savd_save_result res = { 0 };
        void *blob = NULL;
        double t0, t_start, t_end;
        int r;

        if ((r = make_guest(v)) < 0)
                return die(v, "guest memory", r);
        if (!(blob = make_blob(v)))
                return die(v, "device state", -ENOMEM);
        t0 = now();
        if ((r = connect_client(v)) < 0)
                return die(v, "connect", r);
        r = savd_save_hello(v->c, "example-vmm", SAVD_CAP_ALL);
        if (r == 0)
                r = register_blocks(v);
        t_start = now();
        if (r == 0)
                r = track_dirty(v);
        if (r == 0)
                r = run_passes(v);
        if (r == 0 && v->device_state)
                r = savd_save_device_state(v->c, blob, v->device_state);
        if (r == 0)
                r = savd_save_complete(v->c, &res);
        t_end = now();
        if (r < 0) {
                free(blob);
                return die(v, "save", r);
        }
        report_save(v, &res, t0, t_start, t_end);
        if (v->hash)
                printf("memory-hash %016" PRIx64 "\n", hash_guest(v));
        printf("device-state-hash %016" PRIx64 "\n", hash_bytes(blob, v->device_state));
        free(blob);
        if (v->dump && (r = dump_guest(v)) < 0)
                return die(v, "dump", r);
        return 0;
}

/* ---- restore ------------------------------------------------------------------- */

static int accept_one(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int l, fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (l < 0)
                return -errno;
        unlink(path);
        if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0) {
                int r = -errno;
                close(l);
                return r;
        }
        fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                fd = -errno;
        close(l);
        unlink(path);
        return fd;
}

static int restore_blocks(struct vmm *v, const struct savd_restore_info *info)
{
        if (info->n_blocks > MAX_BLOCKS)
                return -E2BIG;
        v->n_blocks = info->n_blocks;
        for (unsigned i = 0; i < info->n_blocks; i++) {
                struct block *b = &v->blocks[i];
                int r = map_block(b, "restore", info->blocks[i].length);

                snprintf(b->name, sizeof(b->name), "%.31s", info->blocks[i].name);
                /* Like a VMM told to preallocate guest RAM: every page
                 * present before the restore. */
                if (r == 0 && v->prefault && madvise(b->mem, b->size, MADV_POPULATE_WRITE) < 0)
                        memset(b->mem, 0, b->size);
                if (r == 0)
                        r = savd_restore_block(v->c, info->blocks[i].name, b->fd, 0);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int do_restore(struct vmm *v)
{
        struct savd_restore_info info;
        struct savd_restore_result res = { 0 };
        void *blob = NULL;
        size_t len = 0;
        double t0, t_run = 0, t_end = 0;
        int r;

        if (v->listen_path && (v->fd = accept_one(v->listen_path)) < 0)
                return die(v, "accept", v->fd);
        t0 = now();
        if ((r = connect_client(v)) < 0)
                return die(v, "connect", r);
        r = savd_restore_hello(v->c, &info);
        if (r == 0)
                r = restore_blocks(v, &info);
        t_run = now();
        if (r == 0)
                r = savd_restore_run(v->c, &blob, &len, &res);
        t_end = now();
        if (r < 0)
                return die(v, "restore", r);
        printf("vm-name %s\n", info.vm_name);
        printf("restore: %" PRIu64 " bytes read, %" PRIu64 " pages, %" PRIu64 " zero, io %s\n",
               res.bytes_read, res.pages_read, res.pages_zero, res.io_mode);
        printf("restore-seconds %.3f\n", t_end - t0);
        printf("restore-data-seconds %.3f\n", t_end - t_run);
        printf("restore-data-mib-per-s %.1f\n", t_end > t_run ?
               (double)res.bytes_read / MIB / (t_end - t_run) : 0.0);
        if (v->hash)
                printf("memory-hash %016" PRIx64 "\n", hash_guest(v));
        printf("device-state-hash %016" PRIx64 "\n", hash_bytes(blob, len));
        free(blob);
        if (v->dump && (r = dump_guest(v)) < 0)
                return die(v, "dump", r);
        return 0;
}

/* ---- options ------------------------------------------------------------------ */

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: example-vmm save URI|--fd N [options]\n"
                "       example-vmm restore URI|--fd N|--listen PATH [options]\n"
                "  --fd N              a connected data channel instead of URI\n"
                "  --listen PATH       (restore) accept savd's connection on PATH\n"
                "  --mem MIB           guest RAM (default 64)\n"
                "  --blocks N          RAM blocks (default 1, at most %u)\n"
                "  --pattern P         half (default: 1 MiB chunks, random or zero),\n"
                "                      test, random or zero\n"
                "  --seed N            pattern seed (default 1)\n"
                "  --inline            send pages inline instead of memory fds\n"
                "  --dirty             dirty pages from a thread during live passes\n"
                "  --passes N          live passes before the final one\n"
                "  --device-state N    bytes of device state (default 4096)\n"
                "  --zero-pages N      (save) zero N pages with data after the first pass\n"
                "  --hash              print the memory hash\n"
                "  --dump FILE         write the final guest memory to FILE\n"
                "  --prefault          (restore) populate guest RAM before the restore\n"
                "  --quiet             no per-pass lines\n", MAX_BLOCKS);
}

static int parse_pattern(const char *s, enum pattern *p)
{
        static const char *const names[] = { "half", "test", "random", "zero" };

        for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                if (strcmp(s, names[i]) == 0) {
                        *p = (enum pattern)i;
                        return 0;
                }
        return -EINVAL;
}

static int parse_opt(struct vmm *v, int c, const char *arg)
{
        char *end = NULL;
        unsigned long long n = arg ? strtoull(arg, &end, 0) : 0;
        bool num_ok = arg && *arg && end && !*end;

        switch (c) {
        case 'f': v->fd = (int)n; return num_ok ? 0 : -EINVAL;
        case 'l': v->listen_path = arg; return 0;
        case 'm': v->mem_mib = n; return num_ok && n > 0 ? 0 : -EINVAL;
        case 'b': v->n_blocks = (unsigned)n; return num_ok && n > 0 && n <= MAX_BLOCKS ? 0 : -EINVAL;
        case 'p': return parse_pattern(arg, &v->pattern);
        case 's': v->seed = n; return num_ok ? 0 : -EINVAL;
        case 'i': v->inline_pages = true; return 0;
        case 'd': v->dirty = true; return 0;
        case 'P': v->passes = (unsigned)n; return num_ok ? 0 : -EINVAL;
        case 'D': v->device_state = n; return num_ok ? 0 : -EINVAL;
        case 'H': v->hash = true; return 0;
        case 'o': v->dump = arg; return 0;
        case 'q': v->quiet = true; return 0;
        case 'F': v->prefault = true; return 0;
        case 'z': v->zero_pages = n; return num_ok ? 0 : -EINVAL;
        default: return -EINVAL;
        }
}

static int parse_args(struct vmm *v, int argc, char **argv)
{
        static const struct option opts[] = {
                { "fd", required_argument, NULL, 'f' }, { "listen", required_argument, NULL, 'l' },
                { "mem", required_argument, NULL, 'm' }, { "blocks", required_argument, NULL, 'b' },
                { "pattern", required_argument, NULL, 'p' }, { "seed", required_argument, NULL, 's' },
                { "inline", no_argument, NULL, 'i' }, { "dirty", no_argument, NULL, 'd' },
                { "passes", required_argument, NULL, 'P' },
                { "device-state", required_argument, NULL, 'D' },
                { "hash", no_argument, NULL, 'H' }, { "dump", required_argument, NULL, 'o' },
                { "quiet", no_argument, NULL, 'q' }, { "help", no_argument, NULL, 'h' },
                { "prefault", no_argument, NULL, 'F' },
                { "zero-pages", required_argument, NULL, 'z' },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                if (c == 'h') {
                        usage(stdout);
                        exit(0);
                }
                if (parse_opt(v, c, optarg) < 0)
                        return -EINVAL;
        }
        if (optind < argc)
                v->uri = argv[optind++];
        return optind == argc ? 0 : -EINVAL;
}

int main(int argc, char **argv)
{
        struct vmm v = {
                .fd = -1, .mem_mib = 64, .n_blocks = 1, .pattern = PAT_HALF, .seed = 1,
                .device_state = 4096,
        };
        const char *mode = argc > 1 ? argv[1] : "";
        int rc;

        setvbuf(stdout, NULL, _IOLBF, 0);
        for (unsigned i = 0; i < MAX_BLOCKS; i++)
                v.blocks[i].fd = v.blocks[i].log.fd = -1;
        if (argc < 2 || parse_args(&v, argc - 1, argv + 1) < 0 ||
            (strcmp(mode, "save") == 0 && !v.uri && v.fd < 0) ||
            (strcmp(mode, "restore") == 0 && !v.uri + !v.listen_path + (v.fd < 0) != 2) ||
            (strcmp(mode, "save") != 0 && strcmp(mode, "restore") != 0)) {
                usage(stderr);
                return 2;
        }
        rc = strcmp(mode, "save") == 0 ? do_save(&v) : do_restore(&v);
        savd_client_free(v.c);
        unmap_guest(&v);
        return rc;
}
