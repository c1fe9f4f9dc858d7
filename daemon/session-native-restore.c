/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The native restore session: fill a native VMM's guest memory from a
 * mapped-ram file (proto/native.md, "Restore").
 *
 * A restore job with "protocol": "native" runs it once the VMM is on the
 * job's data channel (daemon/job.c).  The client opens with the magic and
 * HELLO (flag RESTORE); a QEMU stream or a save HELLO there is refused
 * with a message that says so.  savd opens and verifies the file, reads
 * and checks the device-state blob (CRC-32C) -- a file that fails either
 * check sends the client nothing but the ERROR -- then answers with what
 * it holds (VM name, number of blocks, device-state size) and one BLOCK
 * frame per RAM block.  The client hands over a memory fd for every block
 * (BLOCK, same name and length) and sends START.  savd then makes the
 * pages the file has no data for read as zero (punching holes where the
 * memory holds anything; memory that is still a hole, such as a fresh
 * memfd, is left alone and memory the VMM prefaulted stays in place for
 * the data), reads the present pages with O_DIRECT through io_uring
 * straight into the shared mapping, several reads in flight
 * (daemon/mrm-input.h), sends the blob in a DEVICE_STATE frame and
 * finishes with a REPLY to START.
 *
 * Files saved from a QEMU stream restore too (no device state then): the
 * blocks are the same mapped-ram blocks.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "macro.h"
#include "mrm-input.h"
#include "native-file.h"
#include "qemu-format.h"
#include "session-native.h"

#define RESTORE_QUEUE_DEPTH     32U
#define RESTORE_READ_SIZE       (1U << 20)

struct rblock {
        struct native_map mem;          /* fd < 0: not given yet */
};

struct nrestore {
        struct restore_request *req;
        struct native_chan ch;
        struct mrm_input *in;
        const struct mrm_file *f;
        struct rblock *blocks;
        unsigned given;
        struct native_file_info dev;
        bool has_dev;
        uint8_t *blob;
        uint64_t pages_read;
};

/* Our own file description of a client's fd (for lseek), or -1. */
static int reopen_for_seek(int fd)
{
        char proc[64];

        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        return open(proc, O_RDONLY | O_CLOEXEC | O_NOCTTY);
}

static int file_failed(struct nrestore *s, int r)
{
        const char *m = s->in ? mrm_input_error(s->in) : NULL;

        return native_chan_fail(&s->ch, r, "read '%s': %s", s->req->path,
                                m ? m : strerror(-r));
}

/* ---- HELLO and the file ------------------------------------------------------ */

static int read_hello(struct nrestore *s, struct native_msg *m)
{
        char magic[SAVD_NATIVE_MAGIC_LEN];
        int r;

        if ((r = native_chan_read_raw(&s->ch, magic, sizeof(magic))) < 0)
                return r;
        if (get_be32(magic) == QEMU_VM_FILE_MAGIC)
                return native_chan_fail(&s->ch, -EPROTO, "the client sent a QEMU migration "
                                        "stream, but this data channel belongs to a native "
                                        "restore job (a QEMU restore names its -incoming "
                                        "socket in 'to')");
        if (memcmp(magic, SAVD_NATIVE_MAGIC, sizeof(magic)) != 0)
                return native_chan_fail(&s->ch, -EPROTO, "the client did not open with the "
                                        "savd native protocol magic \"%s\"", SAVD_NATIVE_MAGIC);
        if ((r = native_chan_next(&s->ch, m)) < 0)
                return r;
        if (m->type != SAVD_FRAME_HELLO)
                return native_chan_fail(&s->ch, -EPROTO, "expected HELLO first, got %s",
                                        native_frame_name(m->type));
        if (m->u.hello.version < SAVD_NATIVE_VERSION || m->u.hello.page_size != SAVD_NATIVE_PAGE_SIZE)
                return native_chan_fail(&s->ch, -EPROTONOSUPPORT, "protocol version %u with "
                                        "page size %u is not supported (savd: version %u, %u)",
                                        m->u.hello.version, m->u.hello.page_size,
                                        SAVD_NATIVE_VERSION, SAVD_NATIVE_PAGE_SIZE);
        if (!(m->flags & SAVD_HELLO_RESTORE))
                return native_chan_fail(&s->ch, -EINVAL, "this data channel belongs to a "
                                        "restore job, but the client asked to save");
        return 0;
}

static int open_file(struct nrestore *s)
{
        const struct savd_limits *lim = s->req->limits;
        struct mrm_input_options opt = {
                .queue_depth = RESTORE_QUEUE_DEPTH,
                .read_size = RESTORE_READ_SIZE,
                .max_blocks = MIN(lim->max_blocks, SAVD_NATIVE_MAX_BLOCKS),
                .max_block_size = MIN(lim->max_block_size, SAVD_NATIVE_MAX_BLOCK_SIZE),
        };
        char err[SESSION_ERR_MAX];
        int r;

        r = mrm_input_open(&s->in, s->req->input_fd, s->req->path, &opt, err, sizeof(err));
        if (r < 0)
                return native_chan_fail(&s->ch, r, "%s", err);
        s->f = mrm_input_file(s->in);
        snprintf(s->req->io_mode, sizeof(s->req->io_mode), "%s", mrm_input_io_mode(s->in));
        s->blocks = calloc(MAX(s->f->layout.n_blocks, (size_t)1), sizeof(*s->blocks));
        if (!s->blocks)
                return native_chan_fail(&s->ch, -ENOMEM, "out of memory");
        for (size_t i = 0; i < s->f->layout.n_blocks; i++)
                s->blocks[i].mem.fd = -1;
        return 0;
}

static ssize_t input_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
        int r = mrm_input_pread(opaque, buf, len, off);

        return r < 0 ? r : (ssize_t)len;
}

/* The native record, if the file has one, and its blob, checked. */
static int load_device_state(struct nrestore *s)
{
        uint64_t max = MIN(s->req->limits->max_device_state, SAVD_NATIVE_MAX_DEVICE_STATE);
        struct mrm_error e = { 0 };
        int r = native_file_info(s->f, input_pread, s->in, false, &s->dev, &e);

        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return native_chan_fail(&s->ch, r, "'%s': %s at offset 0x%" PRIx64,
                                        s->req->path, e.msg, e.offset);
        if (s->dev.blob_len > max)
                return native_chan_fail(&s->ch, -E2BIG, "'%s': device state of %" PRIu64
                                        " bytes exceeds the limit of %" PRIu64, s->req->path,
                                        s->dev.blob_len, max);
        s->has_dev = true;
        if (!(s->blob = malloc(MAX(s->dev.blob_len, (uint64_t)1))))
                return native_chan_fail(&s->ch, -ENOMEM, "out of memory");
        if ((r = mrm_input_pread(s->in, s->blob, (size_t)s->dev.blob_len, s->dev.blob_offset)) < 0)
                return file_failed(s, r);
        if (native_crc32c(0, s->blob, (size_t)s->dev.blob_len) != s->dev.crc32c)
                return native_chan_fail(&s->ch, -EBADMSG, "'%s': the device state does not "
                                        "match its CRC-32C", s->req->path);
        return 0;
}

static int send_file_info(struct nrestore *s)
{
        const struct mrm_layout *l = &s->f->layout;
        uint64_t v[SAVD_REPLY_VALUES] = { 0 };
        uint8_t frame[NATIVE_HEAD_MAX];
        int r;

        v[0] = SAVD_NATIVE_VERSION;
        v[1] = SAVD_CAP_MEMFD | SAVD_CAP_DEVICE_STATE;
        v[2] = l->n_blocks;
        v[3] = SAVD_NATIVE_MAX_BLOCK_SIZE;
        v[4] = s->has_dev ? s->dev.blob_len : 0;
        v[6] = l->n_blocks;
        v[7] = v[4];
        if ((r = native_chan_reply(&s->ch, SAVD_FRAME_HELLO, v, l->machine)) < 0)
                return r;
        for (size_t i = 0; i < l->n_blocks; i++) {
                const struct mrm_block *b = &l->blocks[i];
                size_t n = native_encode_block(frame, b->used_length, 0, b->name, b->name_len, false);

                if ((r = native_chan_send(&s->ch, frame, n)) < 0)
                        return native_chan_fail(&s->ch, r, "write to the data channel: %s",
                                                strerror(-r));
        }
        return 0;
}

/* ---- BLOCK, START ------------------------------------------------------------ */

static int on_block(struct nrestore *s, const struct native_msg *m)
{
        const struct native_block *nb = &m->u.block;
        const struct mrm_layout *l = &s->f->layout;
        uint64_t v[SAVD_REPLY_VALUES] = { 0 };
        char what[SAVD_NATIVE_BLOCK_NAME_MAX + 32];
        int i = mrm_layout_find_block(l, nb->name, nb->name_len), r;

        if (m->nfds != 1)
                return native_chan_fail(&s->ch, -EINVAL, "BLOCK '%s' without a memory fd: a "
                                        "restore fills the client's memory fds", nb->name);
        if (i < 0)
                return native_chan_fail(&s->ch, -ENOENT, "the file has no block '%s'", nb->name);
        if (l->blocks[i].used_length != nb->length)
                return native_chan_fail(&s->ch, -EINVAL, "block '%s' is 0x%" PRIx64 " bytes in "
                                        "the file, the client has 0x%" PRIx64, nb->name,
                                        l->blocks[i].used_length, nb->length);
        if (s->blocks[i].mem.fd >= 0)
                return native_chan_fail(&s->ch, -EEXIST, "block '%s' given twice", nb->name);
        snprintf(what, sizeof(what), "the memory fd of block '%s'", nb->name);
        r = native_map_fd(&s->ch, &s->blocks[i].mem, native_chan_take_fd(&s->ch), nb->fd_offset,
                          nb->length, true, what);
        if (r < 0)
                return r;
        s->given++;
        v[0] = (uint64_t)i;
        return native_chan_reply(&s->ch, SAVD_FRAME_BLOCK, v, NULL);
}

static int check_all_given(struct nrestore *s)
{
        const struct mrm_layout *l = &s->f->layout;

        for (size_t i = 0; i < l->n_blocks; i++)
                if (s->blocks[i].mem.fd < 0)
                        return native_chan_fail(&s->ch, -EINVAL, "START before the memory of "
                                                "block '%s' was given", l->blocks[i].name);
        if (s->ch.nfdq)
                return native_chan_fail(&s->ch, -EPROTO, "%u descriptors arrived that no frame "
                                        "announced", s->ch.nfdq);
        return 0;
}

/* ---- zero pages: cleared on a thread of their own ------------------------------- */

/* Pages the file has no data for must read as zero.  A thread of its own
 * punches holes over them (where the memory holds anything) while the
 * reads fill the pages that have data: the two touch different pages. */
struct clearer {
        struct nrestore *s;
        int file_fd;                    /* our own, for pread of the bitmaps */
        bool no_punch;                  /* hole punching refused: write zeros */
        int r;
        char err[SESSION_ERR_MAX];
        pthread_t thread;
};

/* Where the memory fd has data (allocated pages), asked with SEEK_DATA /
 * SEEK_HOLE on a file description of our own, in increasing offsets. */
struct data_cursor {
        int fd;                         /* -1: unknown, assume data everywhere */
        uint64_t start, end;            /* current data extent */
};

static bool has_data(struct data_cursor *d, uint64_t off, uint64_t end)
{
        off_t ds, de;

        if (d->fd < 0)
                return true;
        if (off >= d->end) {
                ds = lseek(d->fd, (off_t)off, SEEK_DATA);
                if (ds < 0 && errno == ENXIO) {
                        d->start = d->end = UINT64_MAX;
                        return false;
                }
                de = ds < 0 ? -1 : lseek(d->fd, ds, SEEK_HOLE);
                if (de < 0) {
                        close(d->fd);
                        d->fd = -1;
                        return true;
                }
                d->start = (uint64_t)ds;
                d->end = (uint64_t)de;
        }
        return d->start < end;
}

/* Pages [a, c) of block i: a hole where the memory holds anything. */
static void clear_run(struct clearer *z, size_t i, struct data_cursor *d, uint64_t a, uint64_t c)
{
        struct native_map *m = &z->s->blocks[i].mem;
        uint64_t off = m->offset + a * QEMU_TPS, len = (c - a) * QEMU_TPS;

        if (!has_data(d, off, off + len))
                return;
        if (!z->no_punch &&
            fallocate(m->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
                return;
        z->no_punch = true;     /* e.g. a file system without holes: write zeros */
        memset(native_map_ptr(m) + a * QEMU_TPS, 0, len);
}

static int read_bitmap(struct clearer *z, const struct mrm_block *b, uint8_t *buf, size_t len,
                       uint64_t off)
{
        for (size_t done = 0; done < len;) {
                ssize_t n = pread(z->file_fd, buf + done, len - done, (off_t)(off + done));

                if (n <= 0) {
                        int r = n < 0 ? -errno : -EIO;

                        snprintf(z->err, sizeof(z->err), "read the bitmap of block '%s' in '%s': "
                                 "%s", b->name, z->s->req->path, strerror(-r));
                        return r;
                }
                done += (size_t)n;
        }
        return 0;
}

/* Every run of clear bits of block i's bitmap, read a chunk at a time. */
static int clear_block_guarded(struct clearer *z, size_t i, uint8_t *chunk)
{
        const struct mrm_block *b = &z->s->f->layout.blocks[i];
        struct data_cursor d = { .fd = reopen_for_seek(z->s->blocks[i].mem.fd) };
        uint64_t per = (uint64_t)MRM_BITMAP_CHUNK * 8, run = UINT64_MAX;
        int r = 0;

        for (uint64_t first = 0; r == 0 && first < b->num_pages; first += per) {
                uint64_t n = MIN(per, b->num_pages - first);

                r = read_bitmap(z, b, chunk, DIV_ROUND_UP(n, 64) * 8, b->bitmap_offset + first / 8);
                for (uint64_t p = 0; r == 0 && p < n; p++) {
                        bool set = (get_le64(chunk + (p / 64) * 8) >> (p % 64)) & 1;

                        if (!set && run == UINT64_MAX)
                                run = first + p;
                        else if (set && run != UINT64_MAX) {
                                clear_run(z, i, &d, run, first + p);
                                run = UINT64_MAX;
                        }
                }
        }
        if (r == 0 && run != UINT64_MAX)
                clear_run(z, i, &d, run, b->num_pages);
        if (d.fd >= 0)
                close(d.fd);
        return r;
}

static int clear_block(struct clearer *z, size_t i, uint8_t *chunk)
{
        sigjmp_buf jb;
        int r;

        if (sigsetjmp(jb, 0)) {
                native_bus_disarm();
                snprintf(z->err, sizeof(z->err), "the memory of block '%s' became inaccessible "
                         "(SIGBUS)", z->s->f->layout.blocks[i].name);
                return -EFAULT;
        }
        native_bus_arm(&jb);
        r = clear_block_guarded(z, i, chunk);
        native_bus_disarm();
        return r;
}

static void *clear_main(void *arg)
{
        struct clearer *z = arg;
        uint8_t *chunk = malloc(MRM_BITMAP_CHUNK);

        z->r = chunk ? 0 : -ENOMEM;
        if (!chunk)
                snprintf(z->err, sizeof(z->err), "out of memory");
        for (size_t i = 0; z->r == 0 && i < z->s->f->layout.n_blocks; i++)
                z->r = clear_block(z, i, chunk);
        free(chunk);
        return NULL;
}

static int clearer_start(struct nrestore *s, struct clearer *z)
{
        int r;

        *z = (struct clearer) { .s = s };
        z->file_fd = s->req->input_fd >= 0 ? fcntl(s->req->input_fd, F_DUPFD_CLOEXEC, 3)
                                           : open(s->req->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (z->file_fd < 0)
                return native_chan_fail(&s->ch, -errno, "open '%s': %m", s->req->path);
        r = pthread_create(&z->thread, NULL, clear_main, z);
        if (r != 0) {
                close(z->file_fd);
                return native_chan_fail(&s->ch, -r, "cannot start a thread: %s", strerror(r));
        }
        return 0;
}

static int clearer_join(struct nrestore *s, struct clearer *z)
{
        pthread_join(z->thread, NULL);
        close(z->file_fd);
        return z->r < 0 ? native_chan_fail(&s->ch, z->r, "%s", z->err) : 0;
}

/* ---- reading --------------------------------------------------------------------- */

static int on_run(void *opaque, const struct mrm_run *run)
{
        struct nrestore *s = opaque;

        s->pages_read += run->npages;
        if (s->req->bytes_sent)
                atomic_fetch_add(s->req->bytes_sent, run->npages * QEMU_TPS);
        return native_chan_cancelled(&s->ch) ? -ECANCELED : 0;
}

static int read_pages(struct nrestore *s)
{
        size_t n = s->f->layout.n_blocks;
        _cleanup_free_ void **dest = calloc(MAX(n, (size_t)1), sizeof(void *));
        struct clearer z;
        int r, rz;

        if (!dest)
                return native_chan_fail(&s->ch, -ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++)
                dest[i] = native_map_ptr(&s->blocks[i].mem);
        if ((r = clearer_start(s, &z)) < 0)
                return r;
        r = mrm_input_read_into(s->in, dest, on_run, s);
        rz = clearer_join(s, &z);
        if (r < 0)
                return r == -ECANCELED ? native_chan_fail(&s->ch, r, "cancelled") : file_failed(s, r);
        return rz;
}

static int on_start(struct nrestore *s)
{
        uint64_t v[SAVD_REPLY_VALUES] = { 0 };
        uint64_t len = s->has_dev ? s->dev.blob_len : 0;
        uint8_t hdr[SAVD_FRAME_HEADER_SIZE];
        int r;

        if ((r = check_all_given(s)) < 0 || (r = read_pages(s)) < 0)
                return r;
        native_encode_device_state(hdr, len);
        if ((r = native_chan_send(&s->ch, hdr, sizeof(hdr))) < 0 ||
            (len && (r = native_chan_send(&s->ch, s->blob, (size_t)len)) < 0))
                return native_chan_fail(&s->ch, r, "write to the data channel: %s", strerror(-r));
        if (s->req->bytes_sent)
                atomic_fetch_add(s->req->bytes_sent, len);
        v[0] = s->pages_read;
        v[1] = s->f->pages_present + s->f->pages_zero - s->pages_read;
        v[2] = s->pages_read * QEMU_TPS;
        return native_chan_reply(&s->ch, SAVD_FRAME_START, v, mrm_input_io_mode(s->in));
}

static int run(struct nrestore *s)
{
        struct native_msg *m = malloc(sizeof(*m));
        int r;

        if (!m)
                return native_chan_fail(&s->ch, -ENOMEM, "out of memory");
        r = read_hello(s, m);
        if (r == 0)
                r = open_file(s);
        if (r == 0)
                r = load_device_state(s);
        if (r == 0) {
                s->req->bytes_total = s->f->pages_present * QEMU_TPS +
                                      (s->has_dev ? s->dev.blob_len : 0);
                r = send_file_info(s);
        }
        while (r == 0) {
                if ((r = native_chan_next(&s->ch, m)) < 0)
                        break;
                if (m->type == SAVD_FRAME_START) {
                        r = on_start(s);
                        break;
                }
                if (m->type != SAVD_FRAME_BLOCK || s->given >= s->f->layout.n_blocks)
                        r = native_chan_fail(&s->ch, -EPROTO, "%s is not allowed while the "
                                             "client gives its memory", native_frame_name(m->type));
                else
                        r = on_block(s, m);
        }
        free(m);
        return r;
}

int native_restore_session_run(struct restore_request *req, char *err, size_t errlen)
{
        struct nrestore s = { .req = req };
        int r;

        r = native_chan_init(&s.ch, req->data_fd, req->cancelled, 0);
        if (r == 0)
                r = run(&s);
        else
                snprintf(s.ch.err, sizeof(s.ch.err), "out of memory");
        if (r < 0)
                snprintf(err, errlen, "%s", s.ch.err[0] ? s.ch.err : strerror(-r));
        if (s.blocks)
                for (size_t i = 0; i < s.f->layout.n_blocks; i++)
                        native_map_release(&s.blocks[i].mem);
        free(s.blocks);
        free(s.blob);
        mrm_input_free(s.in);
        native_chan_done(&s.ch);
        return r;
}
