/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The native save session: a VMM speaking savd's native protocol
 * (proto/native.md) saves its RAM into a mapped-ram file.
 *
 * After HELLO the client registers its RAM blocks (BLOCK), optionally with
 * the memory fd of each, and sends START: the layout is then known and the
 * output file is created.  Page data reaches the file two ways:
 *
 *  - inline: PAGES frames carry the data, which is read from the socket
 *    straight into the writer engine's batch buffers (mrm_output_page);
 *    zero pages are marked in a mask and only clear their bit;
 *  - zero-copy: for blocks with a memory fd, each SCAN is a pass over the
 *    pages the client marked in its shared dirty bitmap (all pages on the
 *    first pass of a block, or with SCAN_ALL).  Holes of the memory fd
 *    (SEEK_DATA/SEEK_HOLE) and pages that read as zero clear their bit;
 *    runs of other pages, cut at 1 MiB boundaries, are written with
 *    O_DIRECT straight from our read-only mapping of the guest memory
 *    (mrm_output_write_from), each by a writer on the NUMA node the memory
 *    is on.  Passes repeat while the VM runs; a page written again goes to
 *    the same slot.  The last pass carries SCAN_FINAL (VM paused).
 *
 * DEVICE_STATE streams the VMM's blob into the file's device tail as it
 * arrives (proto/native-file.h); COMPLETE writes EOF and the vmdesc and
 * commits the file, and only then is the client told it is saved.
 *
 * Every frame is checked against the protocol's and the daemon's limits;
 * the first violation is sent to the client as an ERROR frame, fails the
 * job with the same text and removes the partial file.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "macro.h"
#include "mem-node.h"
#include "mrm-output.h"
#include "native-file.h"
#include "session-native.h"
#include "zero-scan.h"

#define PAGE                    SAVD_NATIVE_PAGE_SIZE
#define RUN_ALIGN_PAGES         ((1U << 20) / PAGE)     /* runs end at 1 MiB boundaries */
#define DEV_STAGE_SIZE          (64U << 10)             /* device-state bytes per write */
#define CANCEL_CHECK_WORDS      4096U                   /* bitmap words between checks */

enum { S_HELLO, S_BLOCKS, S_RUNNING, S_FINAL, S_DONE };

struct nblock {
        char name[SAVD_NATIVE_BLOCK_NAME_MAX + 1];
        size_t name_len;
        uint64_t length, npages;
        struct native_map mem;          /* fd < 0: inline only */
        int seek_fd;                    /* own file description for SEEK_DATA, or -1 */
        struct native_map dirty;        /* fd < 0: no dirty bitmap */
        bool scanned;
};

struct nsave {
        struct save_request *req;
        struct native_chan ch;
        char vm_name[SAVD_NATIVE_VM_NAME_MAX + 1];
        size_t vm_name_len;
        uint64_t caps;
        struct nblock *blocks;
        unsigned n_blocks, max_blocks;
        struct mrm_output *out;
        struct mem_node mn;
        int state;
        uint64_t pass;
        bool dev_done;
        uint64_t dev_len;
        uint32_t dev_crc;
        uint64_t max_device_state;
};

struct scan {
        struct nsave *s;
        struct nblock *b;
        unsigned bi;
        const uint8_t *mem;
        bool seek;
        uint64_t data_start, data_end;  /* current data extent, fd offsets */
        uint64_t run_first, run_n;
        uint64_t granule;               /* 1 MiB granule whose node is cached */
        int granule_node;
        uint64_t looked, queued, zero;
        uint64_t node_mask;             /* nodes that got writes */
};

static int output_failed(struct nsave *s, int r)
{
        const char *m = s->out ? mrm_output_error(s->out) : NULL;

        return native_chan_fail(&s->ch, r, "%s", m ? m : strerror(-r));
}

static bool has_cap(struct nsave *s, uint64_t cap, const char *frame)
{
        if (s->caps & cap)
                return true;
        native_chan_fail(&s->ch, -EPROTO, "%s needs a capability the client did not announce "
                         "in HELLO", frame);
        return false;
}

static int want_state(struct nsave *s, const struct native_msg *m, int lo, int hi)
{
        static const char *const what[] = {
                [S_HELLO] = "before HELLO", [S_BLOCKS] = "before START",
                [S_RUNNING] = "after START", [S_FINAL] = "after the final SCAN",
                [S_DONE] = "after COMPLETE",
        };

        if (s->state >= lo && s->state <= hi)
                return 0;
        return native_chan_fail(&s->ch, -EPROTO, "%s is not allowed %s",
                                native_frame_name(m->type), what[s->state]);
}

/* ---- HELLO, BLOCK, START ---------------------------------------------------- */

static int on_hello(struct nsave *s, const struct native_msg *m)
{
        const struct native_hello *h = &m->u.hello;
        const struct savd_limits *lim = s->req->limits;
        uint64_t v[SAVD_REPLY_VALUES] = { 0 };

        if (m->type != SAVD_FRAME_HELLO)
                return native_chan_fail(&s->ch, -EPROTO, "expected HELLO first, got %s",
                                        native_frame_name(m->type));
        if (h->version < SAVD_NATIVE_VERSION)
                return native_chan_fail(&s->ch, -EPROTONOSUPPORT, "protocol version %u is not "
                                        "supported (savd speaks %u)", h->version,
                                        SAVD_NATIVE_VERSION);
        if (h->page_size != PAGE)
                return native_chan_fail(&s->ch, -EINVAL, "page size %u is not supported: savd "
                                        "saves %u-byte pages", h->page_size, PAGE);
        if (m->flags & SAVD_HELLO_RESTORE)
                return native_chan_fail(&s->ch, -EINVAL, "this data channel belongs to a save "
                                        "job, but the client asked to restore");
        if (h->name_len == 0)
                return native_chan_fail(&s->ch, -EINVAL, "HELLO: a VM name is required");
        memcpy(s->vm_name, h->name, h->name_len + 1);
        s->vm_name_len = h->name_len;
        s->caps = h->caps & SAVD_CAP_ALL;
        s->state = S_BLOCKS;
        v[0] = SAVD_NATIVE_VERSION;
        v[1] = SAVD_CAP_ALL;
        v[2] = s->max_blocks;
        v[3] = MIN(lim->max_block_size, SAVD_NATIVE_MAX_BLOCK_SIZE);
        v[4] = s->max_device_state;
        v[5] = SAVD_NATIVE_MAX_PAGES;
        return native_chan_reply(&s->ch, SAVD_FRAME_HELLO, v, NULL);
}

/* Our own open file description of the memory, so that SEEK_DATA does not
 * move the client's file position. */
static int reopen_for_seek(int fd)
{
        char proc[64];

        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        return open(proc, O_RDONLY | O_CLOEXEC | O_NOCTTY);
}

static int check_block(struct nsave *s, const struct native_block *nb)
{
        uint64_t max = MIN(s->req->limits->max_block_size, SAVD_NATIVE_MAX_BLOCK_SIZE);

        if (s->n_blocks >= s->max_blocks)
                return native_chan_fail(&s->ch, -E2BIG, "more than %u blocks", s->max_blocks);
        if (nb->length > max)
                return native_chan_fail(&s->ch, -E2BIG, "block '%s' of 0x%" PRIx64 " bytes "
                                        "exceeds the limit of 0x%" PRIx64, nb->name, nb->length,
                                        max);
        for (unsigned i = 0; i < s->n_blocks; i++)
                if (s->blocks[i].name_len == nb->name_len &&
                    memcmp(s->blocks[i].name, nb->name, nb->name_len) == 0)
                        return native_chan_fail(&s->ch, -EEXIST, "block '%s' is registered "
                                                "twice", nb->name);
        return 0;
}

static int on_block(struct nsave *s, const struct native_msg *m)
{
        const struct native_block *nb = &m->u.block;
        uint64_t v[SAVD_REPLY_VALUES] = { 0 };
        char what[SAVD_NATIVE_BLOCK_NAME_MAX + 32];
        struct nblock *b;
        int r;

        if ((r = want_state(s, m, S_BLOCKS, S_BLOCKS)) < 0 || (r = check_block(s, nb)) < 0)
                return r;
        if (m->nfds && !has_cap(s, SAVD_CAP_MEMFD, "BLOCK with a memory fd"))
                return s->ch.error;
        b = &s->blocks[s->n_blocks];
        memset(b, 0, sizeof(*b));
        b->mem.fd = b->dirty.fd = b->seek_fd = -1;
        memcpy(b->name, nb->name, nb->name_len + 1);
        b->name_len = nb->name_len;
        b->length = nb->length;
        b->npages = nb->length / PAGE;
        s->n_blocks++;
        if (m->nfds) {
                snprintf(what, sizeof(what), "the memory fd of block '%s'", b->name);
                r = native_map_fd(&s->ch, &b->mem, native_chan_take_fd(&s->ch), nb->fd_offset,
                                  nb->length, false, what);
                if (r < 0)
                        return r;
                b->seek_fd = reopen_for_seek(b->mem.fd);
        }
        v[0] = s->n_blocks - 1;
        return native_chan_reply(&s->ch, SAVD_FRAME_BLOCK, v, NULL);
}

static int create_output(struct nsave *s)
{
        struct mrm_layout l;
        char err[SESSION_ERR_MAX] = "";
        int r;

        r = mrm_layout_init(&l, s->vm_name, s->vm_name_len, NATIVE_RAM_SECTION_ID);
        for (unsigned i = 0; r == 0 && i < s->n_blocks; i++)
                r = mrm_layout_add_block(&l, s->blocks[i].name, s->blocks[i].name_len,
                                         s->blocks[i].length, PAGE);
        if (r == 0)
                r = mrm_layout_compute(&l);
        if (r < 0) {
                mrm_layout_free(&l);
                return native_chan_fail(&s->ch, r, "file layout: %s", strerror(-r));
        }
        /* The VMM waits for each pass to be written: holding the writes
         * back (absorb-bytes, for QEMU streams) would only delay them. */
        s->req->out.writer.hold_bytes = 0;
        r = mrm_output_create(&s->out, &l, &s->req->out, err, sizeof(err));
        if (r < 0)
                return native_chan_fail(&s->ch, r, "%s", err);
        snprintf(s->req->io_mode, sizeof(s->req->io_mode), "%s", mrm_output_io_mode(s->out));
        /* From now on the job's progress counts the bytes we receive. */
        s->ch.bytes_counter = &mrm_output_bitmap(s->out)->hdr->c.bytes_received;
        shm_counter_add(s->ch.bytes_counter, s->ch.bytes_in);
        if (s->req->output_ready)
                s->req->output_ready(s->req->job, s->out);
        return 0;
}

static int on_start(struct nsave *s, const struct native_msg *m)
{
        uint64_t v[SAVD_REPLY_VALUES] = { 0 };
        int r;

        if ((r = want_state(s, m, S_BLOCKS, S_BLOCKS)) < 0)
                return r;
        if (s->n_blocks == 0)
                return native_chan_fail(&s->ch, -EINVAL, "START without any BLOCK");
        if ((r = create_output(s)) < 0)
                return r;
        s->state = S_RUNNING;
        for (unsigned i = 0; i < s->n_blocks; i++)
                v[0] += s->blocks[i].npages;
        return native_chan_reply(&s->ch, SAVD_FRAME_START, v, mrm_output_io_mode(s->out));
}

/* ---- DIRTY, PAGES ------------------------------------------------------------ */

static int on_dirty(struct nsave *s, const struct native_msg *m)
{
        const struct native_dirty *d = &m->u.dirty;
        uint64_t v[SAVD_REPLY_VALUES] = { 0 };
        char what[SAVD_NATIVE_BLOCK_NAME_MAX + 40];
        struct nblock *b;
        int fd = native_chan_take_fd(&s->ch), r;

        if ((r = want_state(s, m, S_BLOCKS, S_RUNNING)) < 0 ||
            !has_cap(s, SAVD_CAP_DIRTY, "DIRTY")) {
                close(fd);
                return r < 0 ? r : s->ch.error;
        }
        if (d->block >= s->n_blocks || s->blocks[d->block].mem.fd < 0 ||
            s->blocks[d->block].dirty.fd >= 0) {
                close(fd);
                return native_chan_fail(&s->ch, -EINVAL, "DIRTY for block %u: %s", d->block,
                                        d->block >= s->n_blocks ? "no such block" :
                                        s->blocks[d->block].mem.fd < 0 ?
                                        "the block has no memory fd" : "it has a bitmap already");
        }
        b = &s->blocks[d->block];
        snprintf(what, sizeof(what), "the dirty bitmap of block '%s'", b->name);
        r = native_map_fd(&s->ch, &b->dirty, fd, d->offset, DIV_ROUND_UP(b->npages, 64) * 8,
                          true, what);
        if (r < 0)
                return r;
        v[0] = b->dirty.length;
        return native_chan_reply(&s->ch, SAVD_FRAME_DIRTY, v, NULL);
}

static int on_pages(struct nsave *s, const struct native_msg *m)
{
        const struct native_pages *p = &m->u.pages;
        struct nblock *b;
        int r;

        if ((r = want_state(s, m, S_RUNNING, S_RUNNING)) < 0)
                return r;
        if (!has_cap(s, SAVD_CAP_INLINE, "PAGES"))
                return s->ch.error;
        if (p->block >= s->n_blocks)
                return native_chan_fail(&s->ch, -EINVAL, "PAGES for block %u: no such block",
                                        p->block);
        b = &s->blocks[p->block];
        if (p->first_page >= b->npages || p->npages > b->npages - p->first_page)
                return native_chan_fail(&s->ch, -ERANGE, "PAGES %" PRIu64 "+%u are outside "
                                        "block '%s' (%" PRIu64 " pages)", p->first_page,
                                        p->npages, b->name, b->npages);
        for (uint32_t i = 0; i < p->npages; i++) {
                void *dst;

                if (native_mask_test(p->zero_mask, i)) {
                        r = mrm_output_zero(s->out, p->block, p->first_page + i);
                        if (r < 0)
                                return output_failed(s, r);
                        continue;
                }
                r = mrm_output_page(s->out, p->block, p->first_page + i, &dst);
                if (r < 0)
                        return output_failed(s, r);
                if ((r = native_chan_bulk(&s->ch, dst, PAGE)) < 0)
                        return r;
        }
        return 0;
}

/* ---- SCAN: one zero-copy pass -------------------------------------------------- */

/* Is page p of the block in a hole of its memory fd (reads as zero
 * without our touching it)?  Pages are asked in increasing order. */
static bool in_hole(struct scan *sc, uint64_t p)
{
        uint64_t off = sc->b->mem.offset + p * PAGE;
        off_t ds, de;

        if (!sc->seek)
                return false;
        if (off < sc->data_end)
                return off < sc->data_start;
        ds = lseek(sc->b->seek_fd, (off_t)off, SEEK_DATA);
        if (ds < 0 && errno == ENXIO) {
                sc->data_start = sc->data_end = UINT64_MAX;
                return true;
        }
        de = ds < 0 ? -1 : lseek(sc->b->seek_fd, ds, SEEK_HOLE);
        if (de < 0) {
                sc->seek = false;       /* not supported here: look at every page */
                return false;
        }
        sc->data_start = (uint64_t)ds;
        sc->data_end = (uint64_t)de;
        return off < sc->data_start;
}

static int run_node(struct scan *sc)
{
        uint64_t g = sc->run_first / RUN_ALIGN_PAGES;

        if (g != sc->granule) {
                sc->granule = g;
                sc->granule_node = mem_node_of(&sc->s->mn, sc->mem + sc->run_first * PAGE,
                                               sc->b->mem.offset + sc->run_first * PAGE);
        }
        return sc->granule_node;
}

static int flush_run(struct scan *sc)
{
        struct nsave *s = sc->s;
        uint64_t bytes = sc->run_n * PAGE;
        int node, r;

        if (sc->run_n == 0)
                return 0;
        node = run_node(sc);
        r = mrm_output_write_from(s->out, sc->bi, sc->run_first, sc->run_n,
                                  sc->mem + sc->run_first * PAGE, node);
        if (r < 0)
                return output_failed(s, r);
        sc->queued += sc->run_n;
        if (node >= 0 && node < 64)
                sc->node_mask |= 1ULL << node;
        shm_counter_add(s->ch.bytes_counter, bytes);
        sc->run_n = 0;
        return 0;
}

static int visit(struct scan *sc, uint64_t p)
{
        int r;

        sc->looked++;
        if (in_hole(sc, p) || zero_page(sc->mem + p * PAGE)) {
                if ((r = flush_run(sc)) < 0)
                        return r;
                sc->zero++;
                r = mrm_output_zero(sc->s->out, sc->bi, p);
                return r < 0 ? output_failed(sc->s, r) : 0;
        }
        if (sc->run_n && p == sc->run_first + sc->run_n && p % RUN_ALIGN_PAGES != 0) {
                sc->run_n++;
                return 0;
        }
        if ((r = flush_run(sc)) < 0)
                return r;
        sc->run_first = p;
        sc->run_n = 1;
        return 0;
}

/* The dirty bits of word wi, taken (cleared) atomically; every page of
 * the word on a full pass.  Bits past the block's end are ignored. */
static uint64_t take_word(const struct scan *sc, uint64_t *words, uint64_t wi, uint64_t nwords,
                          bool full)
{
        uint64_t w = full ? ~0ULL : 0;

        if (!full && __atomic_load_n(&words[wi], __ATOMIC_RELAXED))
                w = __atomic_exchange_n(&words[wi], 0, __ATOMIC_ACQ_REL);
        if (wi == nwords - 1 && sc->b->npages % 64)
                w &= (1ULL << (sc->b->npages % 64)) - 1;
        return w;
}

static int scan_guarded(struct scan *sc, bool full)
{
        uint64_t *words = (uint64_t *)native_map_ptr(&sc->b->dirty);
        uint64_t nwords = DIV_ROUND_UP(sc->b->npages, 64);
        int r;

        /* Bits set from here on belong to the next pass. */
        if (full && words)
                for (uint64_t i = 0; i < nwords; i++)
                        __atomic_store_n(&words[i], 0, __ATOMIC_RELEASE);
        for (uint64_t wi = 0; wi < nwords; wi++) {
                uint64_t w = take_word(sc, words, wi, nwords, full);

                while (w) {
                        if ((r = visit(sc, wi * 64 + (uint64_t)__builtin_ctzll(w))) < 0)
                                return r;
                        w &= w - 1;
                }
                if (wi % CANCEL_CHECK_WORDS == 0 && native_chan_cancelled(&sc->s->ch))
                        return native_chan_fail(&sc->s->ch, -ECANCELED, "cancelled");
        }
        return flush_run(sc);
}

static int scan_block(struct nsave *s, unsigned bi, struct scan *sc, bool full)
{
        sigjmp_buf jb;
        int r;

        sc->b = &s->blocks[bi];
        sc->bi = bi;
        sc->mem = native_map_ptr(&sc->b->mem);
        sc->seek = sc->b->seek_fd >= 0;
        sc->data_start = sc->data_end = 0;
        sc->run_n = 0;
        sc->granule = UINT64_MAX;
        if (sigsetjmp(jb, 0)) {
                native_bus_disarm();
                return native_chan_fail(&s->ch, -EFAULT, "the memory of block '%s' became "
                                        "inaccessible during the scan (SIGBUS): was its memory "
                                        "fd or dirty bitmap truncated?", s->blocks[bi].name);
        }
        native_bus_arm(&jb);
        r = scan_guarded(sc, full);
        native_bus_disarm();
        return r;
}

static int on_scan(struct nsave *s, const struct native_msg *m)
{
        uint64_t v[SAVD_REPLY_VALUES] = { 0 };
        struct scan sc = { .s = s };
        int r;

        if ((r = want_state(s, m, S_RUNNING, S_RUNNING)) < 0)
                return r;
        if (!has_cap(s, SAVD_CAP_MEMFD, "SCAN"))
                return s->ch.error;
        for (unsigned i = 0; i < s->n_blocks; i++) {
                struct nblock *b = &s->blocks[i];
                bool full = (m->flags & SAVD_SCAN_ALL) || !b->scanned || b->dirty.fd < 0;

                if (b->mem.fd < 0)
                        continue;
                if ((r = scan_block(s, i, &sc, full)) < 0)
                        return r;
                b->scanned = true;
        }
        s->pass++;
        if (m->flags & SAVD_SCAN_FINAL)
                s->state = S_FINAL;
        v[0] = s->pass;
        v[1] = sc.looked;
        v[2] = sc.queued;
        v[3] = sc.zero;
        v[4] = sc.queued * PAGE;
        v[5] = sc.node_mask;
        return native_chan_reply(&s->ch, SAVD_FRAME_SCAN, v, NULL);
}

/* ---- DEVICE_STATE, COMPLETE ------------------------------------------------------ */

static int append(struct nsave *s, const void *buf, size_t len)
{
        int r = mrm_output_append(s->out, buf, len);

        return r < 0 ? output_failed(s, r) : 0;
}

/* The device-state section, its blob streamed from the channel (len bytes
 * of bulk), or empty when from_channel is false. */
static int write_device_state(struct nsave *s, uint64_t len, bool from_channel)
{
        uint8_t hdr[NATIVE_DEV_HEADER_SIZE], foot[NATIVE_DEV_FOOTER_SIZE];
        _cleanup_free_ uint8_t *buf = NULL;
        uint32_t crc = 0;
        int r;

        if ((r = append(s, hdr, native_encode_dev_header(hdr, len))) < 0)
                return r;
        if (from_channel && len > 0 && !(buf = malloc(DEV_STAGE_SIZE)))
                return native_chan_fail(&s->ch, -ENOMEM, "out of memory");
        for (uint64_t done = 0; done < len;) {
                size_t n = (size_t)MIN((uint64_t)DEV_STAGE_SIZE, len - done);

                if ((r = native_chan_bulk(&s->ch, buf, n)) < 0 || (r = append(s, buf, n)) < 0)
                        return r;
                crc = native_crc32c(crc, buf, n);
                done += n;
        }
        if ((r = append(s, foot, native_encode_dev_footer(foot))) < 0)
                return r;
        s->dev_done = true;
        s->dev_len = len;
        s->dev_crc = crc;
        return 0;
}

static int on_device_state(struct nsave *s, const struct native_msg *m)
{
        uint64_t v[SAVD_REPLY_VALUES] = { 0 };
        int r;

        if ((r = want_state(s, m, S_RUNNING, S_FINAL)) < 0)
                return r;
        if (!has_cap(s, SAVD_CAP_DEVICE_STATE, "DEVICE_STATE"))
                return s->ch.error;
        if (s->dev_done)
                return native_chan_fail(&s->ch, -EEXIST, "DEVICE_STATE sent twice");
        if ((r = write_device_state(s, m->bulk, true)) < 0)
                return r;
        v[0] = m->bulk;
        return native_chan_reply(&s->ch, SAVD_FRAME_DEVICE_STATE, v, NULL);
}

static int write_trailer(struct nsave *s, uint64_t *file_size)
{
        const struct mrm_layout *l = mrm_output_layout(s->out);
        _cleanup_free_ char *json = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t jlen = 0, n;
        int r;

        r = native_vmdesc_json(l->device_offset, s->dev_len, s->dev_crc, s->vm_name_len,
                               &json, &jlen);
        if (r < 0)
                return native_chan_fail(&s->ch, r, "vmdesc: %s", strerror(-r));
        if (!(buf = malloc(mrm_trailer_size(jlen))))
                return native_chan_fail(&s->ch, -ENOMEM, "out of memory");
        n = mrm_encode_trailer(json, jlen, buf);
        *file_size = l->device_offset + NATIVE_DEV_HEADER_SIZE + s->dev_len +
                     NATIVE_DEV_FOOTER_SIZE + n;
        return append(s, buf, n);
}

static bool any_memfd(const struct nsave *s)
{
        for (unsigned i = 0; i < s->n_blocks; i++)
                if (s->blocks[i].mem.fd >= 0)
                        return true;
        return false;
}

static int on_complete(struct nsave *s, const struct native_msg *m)
{
        uint64_t v[SAVD_REPLY_VALUES] = { 0 };
        struct shm_bitmap_counters c;
        uint64_t size = 0;
        int r;

        if ((r = want_state(s, m, S_RUNNING, S_FINAL)) < 0)
                return r;
        if (s->state != S_FINAL && any_memfd(s))
                return native_chan_fail(&s->ch, -EPROTO, "COMPLETE before the final pass "
                                        "(SCAN with the FINAL flag)");
        if (s->ch.nfdq)
                return native_chan_fail(&s->ch, -EPROTO, "%u descriptors arrived that no frame "
                                        "announced", s->ch.nfdq);
        if (!s->dev_done && (r = write_device_state(s, 0, false)) < 0)
                return r;
        if ((r = write_trailer(s, &size)) < 0)
                return r;
        if (s->req->finalizing)
                s->req->finalizing(s->req->job);
        if ((r = mrm_output_commit(s->out)) < 0)
                return output_failed(s, r);
        s->state = S_DONE;
        shm_bitmap_snapshot(mrm_output_bitmap(s->out), &c);
        v[0] = c.pages_written;
        v[1] = c.pages_zero;
        v[2] = c.bytes_written;
        v[3] = size;
        /* The file is complete and durable: a client that went away before
         * reading this does not make it less so. */
        const char *mode = mrm_output_io_mode(s->out);
        uint8_t frame[NATIVE_HEAD_MAX];
        (void)native_chan_send(&s->ch, frame, native_encode_reply(frame, SAVD_FRAME_COMPLETE, v,
                                                                  mode, strlen(mode)));
        return 0;
}

/* ---- the session --------------------------------------------------------------- */

static int dispatch(struct nsave *s, const struct native_msg *m)
{
        if (s->state == S_HELLO)
                return on_hello(s, m);
        switch (m->type) {
        case SAVD_FRAME_BLOCK: return on_block(s, m);
        case SAVD_FRAME_START: return on_start(s, m);
        case SAVD_FRAME_DIRTY: return on_dirty(s, m);
        case SAVD_FRAME_PAGES: return on_pages(s, m);
        case SAVD_FRAME_SCAN: return on_scan(s, m);
        case SAVD_FRAME_DEVICE_STATE: return on_device_state(s, m);
        case SAVD_FRAME_COMPLETE: return on_complete(s, m);
        default:
                return native_chan_fail(&s->ch, -EPROTO, "a client does not send %s frames",
                                        native_frame_name(m->type));
        }
}

static int run(struct nsave *s)
{
        struct native_msg *m = malloc(sizeof(*m));
        int r = 0;

        if (!m)
                return native_chan_fail(&s->ch, -ENOMEM, "out of memory");
        while (s->state != S_DONE) {
                if ((r = native_chan_next(&s->ch, m)) < 0 || (r = dispatch(s, m)) < 0)
                        break;
        }
        free(m);
        return r;
}

static void free_blocks(struct nsave *s)
{
        for (unsigned i = 0; i < s->n_blocks; i++) {
                native_map_release(&s->blocks[i].mem);
                native_map_release(&s->blocks[i].dirty);
                if (s->blocks[i].seek_fd >= 0)
                        close(s->blocks[i].seek_fd);
        }
        free(s->blocks);
}

static int setup(struct nsave *s, struct save_request *req, const uint8_t *sniffed, size_t n)
{
        const struct savd_limits *lim = req->limits;
        int r;

        s->req = req;
        s->max_blocks = MIN(lim->max_blocks, SAVD_NATIVE_MAX_BLOCKS);
        s->max_device_state = MIN(lim->max_device_state, SAVD_NATIVE_MAX_DEVICE_STATE);
        r = native_chan_init(&s->ch, req->data_fd, req->cancelled, s->max_device_state);
        if (r < 0)
                return native_chan_fail(&s->ch, r, "out of memory");
        s->ch.bytes_in = n;
        if (n != SAVD_NATIVE_MAGIC_LEN || memcmp(sniffed, SAVD_NATIVE_MAGIC, n) != 0)
                return native_chan_fail(&s->ch, -EPROTO, "not the native protocol magic");
        if ((r = mem_node_init(&s->mn, req->out.writer.fake_nodes)) < 0)
                return native_chan_fail(&s->ch, r, "NUMA topology: %s", strerror(-r));
        s->blocks = calloc(MAX(s->max_blocks, 1U), sizeof(*s->blocks));
        if (!s->blocks)
                return native_chan_fail(&s->ch, -ENOMEM, "out of memory");
        return 0;
}

int native_save_session_run(struct save_request *req, const uint8_t *sniffed, size_t n,
                            char *err, size_t errlen)
{
        struct nsave s = { 0 };
        int r;

        r = setup(&s, req, sniffed, n);
        if (r == 0)
                r = run(&s);
        if (r < 0)
                snprintf(err, errlen, "%s", s.ch.err[0] ? s.ch.err : strerror(-r));
        mrm_output_free(s.out);         /* removes the file unless committed */
        free_blocks(&s);
        native_chan_done(&s.ch);
        return r;
}
