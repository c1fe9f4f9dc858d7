/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The QEMU restore session: stream a mapped-ram file into a QEMU waiting
 * on -incoming, as the legacy precopy stream any QEMU (7.2 included)
 * loads.
 *
 * The file is read and verified first (mrm-input.h); a file that is not
 * valid is refused before a single byte goes to the VMM.  Then:
 *
 *   header, configuration (machine and uuid kept, mapped-ram dropped from
 *   the capability list), START "ram" with the block list (no
 *   MappedRamHeaders) closed by EOS, one PART section holding a PAGE record
 *   for every set bit (the first page of a block names it, the others are
 *   CONTINUE records) closed by EOS, an END section with only EOS, and the
 *   file's device state, EOF and vmdesc exactly as they are in the file.
 *
 * Pages whose bit is clear are not sent: QEMU's fresh guest memory is
 * already zero there.  Page data is read with large O_DIRECT reads, several
 * in flight, and sent with one sendmsg() per batch of pages (a header and
 * the page's bytes as two iovecs each), so nothing is copied in between.
 * Once everything is sent the session waits (bounded) for QEMU to close
 * the channel, which it does when it has loaded the whole stream.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "macro.h"
#include "mrm-input.h"
#include "qemu-emit.h"
#include "session.h"

/* Pages per sendmsg(): two iovecs each, within IOV_MAX (1024). */
#define RESTORE_BATCH_PAGES     256U
/* Device state read and sent at a time. */
#define RESTORE_TAIL_CHUNK      (1U << 20)
/* How long QEMU may take to close the channel after the last byte: it
 * closes it once it has loaded the stream, which takes milliseconds. */
#define RESTORE_CLOSE_WAIT_MS   30000

struct qrestore {
        struct restore_request *req;
        struct mrm_input *in;
        const struct mrm_file *f;
        struct qemit_block *blocks;
        struct qemit_cursor cursor;
        uint32_t section_id;
        uint8_t hdr[RESTORE_BATCH_PAGES * 8U + QEMIT_PAGE_HEADER_MAX];
        struct iovec iov[2 * RESTORE_BATCH_PAGES];
        char *err;
        size_t errlen;
};

static int qr_fail(struct qrestore *s, int r, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int qr_fail(struct qrestore *s, int r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(s->err, s->errlen, fmt, ap);
        va_end(ap);
        return r;
}

static bool cancelled(const struct qrestore *s)
{
        return s->req->cancelled && atomic_load(s->req->cancelled);
}

/* ---- Sending ------------------------------------------------------------ */

static int send_failed(struct qrestore *s, int r)
{
        if (cancelled(s))
                return qr_fail(s, -ECANCELED, "cancelled");
        if (r == -EPIPE || r == -ECONNRESET)
                return qr_fail(s, r, "the VMM closed the connection after %" PRIu64 " bytes "
                               "(its log says why, e.g. a different machine type or device set)",
                               s->req->bytes_sent ? atomic_load(s->req->bytes_sent) : 0);
        return qr_fail(s, r, "send to the VMM: %s", strerror(-r));
}

static int send_iov(struct qrestore *s, struct iovec *iov, size_t n)
{
        while (n > 0) {
                struct msghdr mh = { .msg_iov = iov, .msg_iovlen = n };
                ssize_t k = sendmsg(s->req->data_fd, &mh, MSG_NOSIGNAL);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return send_failed(s, -errno);
                if (s->req->bytes_sent)
                        atomic_fetch_add(s->req->bytes_sent, (uint64_t)k);
                /* Skip what went out; a partial iovec is advanced in place. */
                while (n > 0 && (size_t)k >= iov->iov_len) {
                        k -= (ssize_t)iov->iov_len;
                        iov++;
                        n--;
                }
                if (n > 0) {
                        iov->iov_base = (uint8_t *)iov->iov_base + k;
                        iov->iov_len -= (size_t)k;
                }
        }
        return cancelled(s) ? send_failed(s, -ECANCELED) : 0;
}

static int send_buf(struct qrestore *s, const void *buf, size_t len)
{
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

        return send_iov(s, &iov, 1);
}

/* ---- The stream --------------------------------------------------------- */

static int setup_blocks(struct qrestore *s)
{
        const struct mrm_layout *l = &s->f->layout;

        s->blocks = calloc(MAX(l->n_blocks, (size_t)1), sizeof(*s->blocks));
        if (!s->blocks)
                return qr_fail(s, -ENOMEM, "out of memory");
        for (size_t i = 0; i < l->n_blocks; i++)
                s->blocks[i] = (struct qemit_block) {
                        .name = l->blocks[i].name, .name_len = l->blocks[i].name_len,
                        .used_length = l->blocks[i].used_length,
                };
        s->section_id = l->ram_section_id;
        return 0;
}

/* The stream up to the first page record; with buf NULL only its size. */
static ssize_t encode_prologue(struct qrestore *s, uint8_t *buf, size_t size)
{
        const struct mrm_file *f = s->f;
        const char *caps[SAVD_MAX_CAPS];
        struct qemit_config c = {
                .machine = f->layout.machine, .machine_len = f->layout.machine_len,
                .caps = caps, .n_caps = f->n_caps,
                .uuid = f->layout.has_uuid ? f->layout.uuid : NULL,
        };
        size_t used = 0;
        ssize_t k;

        for (size_t i = 0; i < f->n_caps; i++)
                caps[i] = f->caps[i].name;
        for (int piece = 0; piece < 4; piece++) {
                uint8_t *p = buf ? buf + used : NULL;
                size_t left = buf ? size - used : 0;
                switch (piece) {
                case 0:  k = qemit_header(p, left); break;
                case 1:  k = qemit_config(&c, p, left); break;
                case 2:  k = qemit_ram_start(s->section_id, s->blocks, f->layout.n_blocks, p, left); break;
                default: k = qemit_part_header(s->section_id, p, left); break;
                }
                if (k < 0)
                        return k;
                used += (size_t)k;
        }
        return (ssize_t)used;
}

/* Exactly the bytes the session sends, for the job's progress. */
static uint64_t stream_size(const struct qrestore *s, size_t prologue)
{
        const struct mrm_file *f = s->f;
        uint64_t n = prologue + QEMIT_SECTION_TAIL_SIZE + QEMIT_RAM_END_SIZE;

        for (size_t i = 0; i < f->layout.n_blocks; i++) {
                uint64_t present = f->stats[i].pages_present;
                if (present > 0)
                        n += 1 + f->layout.blocks[i].name_len + present * (8 + QEMU_TPS);
        }
        return n + (f->file_size - f->device_offset);
}

static int send_prologue(struct qrestore *s)
{
        _cleanup_free_ uint8_t *buf = NULL;
        ssize_t n = encode_prologue(s, NULL, 0);

        if (n > 0 && !(buf = malloc((size_t)n)))
                return qr_fail(s, -ENOMEM, "out of memory");
        if (n > 0)
                n = encode_prologue(s, buf, (size_t)n);
        if (n < 0)
                return qr_fail(s, (int)n, "the file's configuration or block list cannot be "
                               "sent as a QEMU stream: %s", strerror((int)-n));
        __atomic_store_n(&s->req->bytes_total, stream_size(s, (size_t)n), __ATOMIC_RELAXED);
        return send_buf(s, buf, (size_t)n);
}

/* One run of present pages: a record header and the page, per page. */
static int send_run(void *opaque, const struct mrm_run *run)
{
        struct qrestore *s = opaque;
        const uint8_t *data = run->data;

        for (uint64_t done = 0; done < run->npages;) {
                size_t n = (size_t)MIN(run->npages - done, (uint64_t)RESTORE_BATCH_PAGES), used = 0;
                for (size_t i = 0; i < n; i++) {
                        ssize_t h = qemit_page_header(&s->cursor, s->blocks, s->f->layout.n_blocks,
                                                      run->block, run->first_page + done + i,
                                                      s->hdr + used, sizeof(s->hdr) - used);
                        if (h < 0)
                                return qr_fail(s, (int)h, "cannot encode a page record: %s",
                                               strerror((int)-h));
                        s->iov[2 * i] = (struct iovec) { s->hdr + used, (size_t)h };
                        s->iov[2 * i + 1] = (struct iovec) { (void *)(data + (done + i) * QEMU_TPS), QEMU_TPS };
                        used += (size_t)h;
                }
                int r = send_iov(s, s->iov, 2 * n);
                if (r < 0)
                        return r;
                done += n;
        }
        return 0;
}

static int send_pages(struct qrestore *s)
{
        int r = mrm_input_read_pages(s->in, send_run, s);

        if (r < 0 && mrm_input_error(s->in) && !s->err[0])
                return qr_fail(s, r, "%s", mrm_input_error(s->in));
        if (r < 0 && !s->err[0])
                return qr_fail(s, r, "reading the pages: %s", strerror(-r));
        return r;
}

static int send_ram_end(struct qrestore *s)
{
        uint8_t buf[QEMIT_SECTION_TAIL_SIZE + QEMIT_RAM_END_SIZE];
        ssize_t a = qemit_section_tail(s->section_id, buf, sizeof(buf));
        ssize_t b = a < 0 ? a : qemit_ram_end(s->section_id, buf + a, sizeof(buf) - (size_t)a);

        if (b < 0)
                return qr_fail(s, (int)b, "cannot encode the RAM END section: %s", strerror((int)-b));
        return send_buf(s, buf, (size_t)(a + b));
}

/* Device sections, EOF and vmdesc, verbatim from the file. */
static int send_device_tail(struct qrestore *s)
{
        _cleanup_free_ uint8_t *buf = malloc(RESTORE_TAIL_CHUNK);
        uint64_t off = s->f->device_offset, end = s->f->file_size;

        if (!buf)
                return qr_fail(s, -ENOMEM, "out of memory");
        while (off < end) {
                size_t n = (size_t)MIN(end - off, (uint64_t)RESTORE_TAIL_CHUNK);
                int r = mrm_input_pread(s->in, buf, n, off);
                if (r < 0)
                        return qr_fail(s, r, "%s", mrm_input_error(s->in));
                r = send_buf(s, buf, n);
                if (r < 0)
                        return r;
                off += n;
        }
        return 0;
}

/* QEMU closes the channel once it has loaded everything (or failed). */
static int wait_peer_close(struct qrestore *s)
{
        struct pollfd p = { .fd = s->req->data_fd, .events = POLLIN };
        char sink[256];

        (void)shutdown(s->req->data_fd, SHUT_WR);
        for (;;) {
                int k = poll(&p, 1, RESTORE_CLOSE_WAIT_MS);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return 0;       /* still open: everything was sent anyway */
                ssize_t n = recv(s->req->data_fd, sink, sizeof(sink), MSG_DONTWAIT);
                if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                        return cancelled(s) ? send_failed(s, -ECANCELED) : 0;
        }
}

static int open_input(struct qrestore *s)
{
        const struct savd_limits *lim = s->req->limits;
        struct mrm_input_options o = {
                .max_blocks = lim ? lim->max_blocks : 0,
                .max_block_size = lim ? lim->max_block_size : 0,
        };
        int r = mrm_input_open(&s->in, s->req->input_fd, s->req->path, &o, s->err, s->errlen);

        if (r < 0)
                return r;
        snprintf(s->req->io_mode, sizeof(s->req->io_mode), "%s", mrm_input_io_mode(s->in));
        s->f = mrm_input_file(s->in);
        return setup_blocks(s);
}

int qemu_restore_session_run(struct restore_request *req, char *err, size_t errlen)
{
        struct qrestore s = { .req = req, .err = err, .errlen = errlen };
        int r;

        err[0] = '\0';
        r = open_input(&s);
        if (r == 0)
                r = send_prologue(&s);
        if (r == 0)
                r = send_pages(&s);
        if (r == 0)
                r = send_ram_end(&s);
        if (r == 0)
                r = send_device_tail(&s);
        if (r == 0)
                r = wait_peer_close(&s);
        if (r < 0)      /* QEMU sees the incoming migration fail now */
                (void)shutdown(req->data_fd, SHUT_RDWR);
        mrm_input_free(s.in);
        free(s.blocks);
        return r;
}
