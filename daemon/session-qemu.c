/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The QEMU stream save session: a QEMU (7.2 or later) migrates into the
 * job's data channel with its legacy precopy stream, and this turns the
 * stream into a mapped-ram file as it arrives.
 *
 * The bytes go through the incremental parser (proto/qemu-stream.h).  Once
 * the RAM block list is complete the file's layout is known and the output
 * is created; from then on every PAGE record is copied into the writer
 * engine's batch buffer for its slot and every ZERO record clears the
 * page's bit, so a page that became zero in a later pass restores as zero.
 * Everything from the first device section on (device state, EOF, vmdesc)
 * is kept in memory, bounded by the job's max_device_state, because the
 * vmdesc JSON at its very end is only found once the stream has ended.  At
 * the end of the stream the vmdesc is rewritten to describe savd's
 * configuration record (it lists mapped-ram; a stream without a vmdesc
 * gets one with an empty device list), the tail is appended after the RAM
 * sections and the file is committed.
 *
 * Any failure aborts the output (no file in the final name), shuts the
 * channel down so the VMM sees its migration fail at once, and leaves a
 * message for the operator in err; the parser's refusals already say what
 * to change on the source.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "macro.h"
#include "mrm-output.h"
#include "mrm-reader.h"
#include "qemu-stream.h"
#include "session.h"
#include "vmdesc.h"

/* Bytes asked of the socket per read(): large enough that the syscall
 * cost disappears next to the copy, small enough to stay in cache. */
#define QSAVE_READ_SIZE         (256U << 10)
/* First allocation for the device tail; it doubles up to the limit. */
#define QSAVE_TAIL_INITIAL      (64U << 10)

struct qsave {
        struct save_request *req;
        struct qstream *parser;
        struct mrm_output *out;
        uint8_t *buf;                   /* QSAVE_READ_SIZE bytes */
        uint8_t *tail;                  /* device sections, EOF, vmdesc */
        size_t tail_len, tail_cap;
        uint64_t unreported;            /* bytes read before the output existed */
        char *err;
        size_t errlen;
};

static int qsave_fail(struct qsave *s, int r, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int qsave_fail(struct qsave *s, int r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(s->err, s->errlen, fmt, ap);
        va_end(ap);
        return r;
}

static bool cancelled(const struct qsave *s)
{
        return s->req->cancelled && atomic_load(s->req->cancelled);
}

/* An error from the output: its own message names the file and offset. */
static int output_failed(struct qsave *s, int r)
{
        const char *m = s->out ? mrm_output_error(s->out) : NULL;

        if (cancelled(s))
                return qsave_fail(s, -ECANCELED, "cancelled");
        return qsave_fail(s, r, "%s", m ? m : strerror(-r));
}

static void count_received(struct qsave *s, size_t n)
{
        if (!s->out) {
                s->unreported += n;
                return;
        }
        shm_counter_add(&mrm_output_bitmap(s->out)->hdr->c.bytes_received, n);
}

/* ---- The output, once the block list is known ------------------------- */

static int check_block(struct qsave *s, const struct qstream_event *ev)
{
        const struct savd_limits *lim = s->req->limits;
        const struct qstream_block *b = ev->block.block;
        char name[MRM_SHOWN_MAX];

        if (ev->block.index >= lim->max_blocks)
                return qsave_fail(s, -E2BIG, "the VM has more than %u RAM blocks (max-blocks)",
                                  lim->max_blocks);
        if (b->used_length > lim->max_block_size) {
                mrm_shown_name(name, b->name, b->name_len);     /* the VMM chose it */
                return qsave_fail(s, -E2BIG, "RAM block '%s' is %" PRIu64 " bytes, more than "
                                  "max-block-size (%" PRIu64 ")", name, b->used_length,
                                  lim->max_block_size);
        }
        return 0;
}

static int build_layout(struct qsave *s, struct mrm_layout *l)
{
        const struct qstream_config *c = qstream_config(s->parser);
        int r;

        if (c->machine_len == 0)
                return qsave_fail(s, -EBADMSG, "the stream has no configuration record, so the "
                                  "machine type a mapped-ram file records is unknown");
        r = mrm_layout_init(l, c->machine, c->machine_len, qstream_ram_section_id(s->parser));
        if (r == 0 && c->has_uuid)
                r = mrm_layout_set_uuid(l, c->uuid);
        for (size_t i = 0; r == 0 && i < qstream_n_blocks(s->parser); i++) {
                const struct qstream_block *b = qstream_block(s->parser, i);
                r = mrm_layout_add_block(l, b->name, b->name_len, b->used_length, QEMU_TPS);
        }
        if (r == 0)
                r = mrm_layout_compute(l);
        if (r < 0)
                return qsave_fail(s, r, "cannot lay out a mapped-ram file for this stream: %s",
                                  strerror(-r));
        return 0;
}

static int create_output(struct qsave *s)
{
        struct mrm_layout l = {};
        int r;

        r = build_layout(s, &l);
        if (r < 0) {
                mrm_layout_free(&l);
                return r;
        }
        r = mrm_output_create(&s->out, &l, &s->req->out, s->err, s->errlen);
        if (r < 0)
                return r;
        snprintf(s->req->io_mode, sizeof(s->req->io_mode), "%s", mrm_output_io_mode(s->out));
        if (s->req->output_ready)
                s->req->output_ready(s->req->job, s->out);
        count_received(s, s->unreported);
        s->unreported = 0;
        return 0;
}

/* ---- Records ---------------------------------------------------------- */

static int keep_tail(struct qsave *s, const uint8_t *data, size_t len)
{
        uint64_t limit = s->req->limits->max_device_state;

        if (len > limit - MIN(limit, s->tail_len))
                return qsave_fail(s, -E2BIG, "the device state after the RAM is larger than "
                                  "savd keeps (%" PRIu64 " bytes)", limit);
        if (s->tail_len + len > s->tail_cap) {
                size_t cap = MAX(s->tail_cap, (size_t)QSAVE_TAIL_INITIAL);
                while (cap < s->tail_len + len)
                        cap *= 2;
                cap = (size_t)MIN((uint64_t)cap, limit);
                uint8_t *p = realloc(s->tail, cap);
                if (!p)
                        return qsave_fail(s, -ENOMEM, "out of memory for the device state");
                s->tail = p;
                s->tail_cap = cap;
        }
        memcpy(s->tail + s->tail_len, data, len);
        s->tail_len += len;
        return 0;
}

static int put_page(struct qsave *s, const struct qstream_event *ev)
{
        int r = mrm_output_copy_page(s->out, ev->page.block, ev->page.page, ev->page.data);

        return r < 0 ? output_failed(s, r) : 0;
}

static int handle_event(struct qsave *s, const struct qstream_event *ev)
{
        int r;

        /* The parser delivers pages only after the block list. */
        if ((ev->type == QSTREAM_EV_PAGE || ev->type == QSTREAM_EV_ZERO) && !s->out)
                return qsave_fail(s, -EBADMSG, "page record before the output exists");
        switch (ev->type) {
        case QSTREAM_EV_BLOCK:
                return check_block(s, ev);
        case QSTREAM_EV_BLOCKS_DONE:
                return create_output(s);
        case QSTREAM_EV_PAGE:
                return put_page(s, ev);
        case QSTREAM_EV_ZERO:
                r = mrm_output_zero(s->out, ev->zero.block, ev->zero.page);
                return r < 0 ? output_failed(s, r) : 0;
        case QSTREAM_EV_DEVICE_TAIL:
                return keep_tail(s, ev->tail.data, ev->tail.len);
        case QSTREAM_EV_CONFIG:
        case QSTREAM_EV_SECTION:
        case QSTREAM_EV_RAM_DONE:
                return 0;
        }
        return 0;
}

/* Until the parser wants more bytes: it returns 0 only once all of buf is
 * used, and an event that was pending from the last chunk comes first. */
static int feed(struct qsave *s, const uint8_t *buf, size_t len)
{
        for (;;) {
                struct qstream_event ev;
                size_t used = 0;
                int r = qstream_feed(s->parser, buf, len, &used, &ev);

                if (r < 0)
                        return qsave_fail(s, r, "%s", qstream_error(s->parser));
                if (r == 0)
                        return 0;
                buf += used;
                len -= used;
                r = handle_event(s, &ev);
                if (r < 0)
                        return r;
        }
}

/* ---- The end of the stream ---------------------------------------------- */

/* A vmdesc for a stream that came without one (a source machine with
 * suppress-vmdesc): QEMU ignores its content, but a mapped-ram file ends
 * with one, and this one at least describes the configuration record. */
#define QSAVE_EMPTY_VMDESC "{\"page_size\":4096,\"devices\":[]}"

/* Device sections, then EOF and a vmdesc that describes our configuration
 * record (mapped-ram listed). */
static int append_tail(struct qsave *s)
{
        const struct mrm_layout *l = mrm_output_layout(s->out);
        static const char *const caps[] = { MAPPED_RAM_CAP };
        const struct vmdesc_config vc = {
                .machine_len = l->machine_len, .caps = caps, .n_caps = 1, .has_uuid = l->has_uuid,
        };
        _cleanup_free_ char *json = NULL;
        uint8_t prefix[VMDESC_PREFIX_SIZE];
        struct vmdesc_loc loc;
        size_t json_len;
        int r;

        r = vmdesc_find(s->tail, s->tail_len, &loc);
        if (r < 0)
                return qsave_fail(s, r, "the stream does not end with EOF and a vmdesc trailer "
                                  "(%zu bytes of device state arrived): was it cut short?", s->tail_len);
        if (r == 0)
                r = vmdesc_rewrite(QSAVE_EMPTY_VMDESC, strlen(QSAVE_EMPTY_VMDESC), &vc, &json, &json_len);
        else
                r = vmdesc_rewrite((const char *)s->tail + loc.json_offset, loc.json_len, &vc,
                                   &json, &json_len);
        if (r < 0)
                return qsave_fail(s, r, "the vmdesc JSON at the end of the stream cannot be "
                                  "rewritten: %s", r == -EBADMSG ? "it is not a vmdesc" : strerror(-r));
        vmdesc_put_prefix(prefix, (uint32_t)json_len);
        r = mrm_output_append(s->out, s->tail, loc.eof_offset);
        if (r == 0)
                r = mrm_output_append(s->out, prefix, sizeof(prefix));
        if (r == 0)
                r = mrm_output_append(s->out, json, json_len);
        return r < 0 ? output_failed(s, r) : 0;
}

static int finish(struct qsave *s)
{
        int r = feed(s, s->buf, 0);     /* an event still pending */

        if (r < 0)
                return r;
        r = qstream_finish(s->parser);
        if (r == -EPIPE)
                return qsave_fail(s, r, "the data channel closed before the migration was "
                                  "complete: %s", qstream_error(s->parser));
        if (r < 0)
                return qsave_fail(s, r, "%s", qstream_error(s->parser));
        if (!s->out)
                return qsave_fail(s, -EPIPE, "the stream ended before its RAM block list");
        r = append_tail(s);
        if (r < 0)
                return r;
        if (s->req->finalizing)
                s->req->finalizing(s->req->job);
        r = mrm_output_commit(s->out);
        return r < 0 ? output_failed(s, r) : 0;
}

static int read_failed(struct qsave *s, int r)
{
        if (cancelled(s))
                return qsave_fail(s, -ECANCELED, "cancelled");
        return qsave_fail(s, r, "read from the data channel after %" PRIu64 " bytes: %s",
                          qstream_stats(s->parser)->offset, strerror(-r));
}

static int receive(struct qsave *s)
{
        for (;;) {
                ssize_t n = read(s->req->data_fd, s->buf, QSAVE_READ_SIZE);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return read_failed(s, -errno);
                if (cancelled(s))
                        return qsave_fail(s, -ECANCELED, "cancelled");
                if (n == 0)
                        return finish(s);
                count_received(s, (size_t)n);
                int r = feed(s, s->buf, (size_t)n);
                if (r < 0)
                        return r;
        }
}

static void qsave_done(struct qsave *s, int r)
{
        if (r < 0) {
                if (s->out)
                        mrm_output_abort(s->out);
                /* The VMM sees its migration fail now, not when the job
                 * is reaped. */
                (void)shutdown(s->req->data_fd, SHUT_RDWR);
        }
        mrm_output_free(s->out);
        qstream_free(s->parser);
        free(s->buf);
        free(s->tail);
}

int qemu_save_session_run(struct save_request *req, const uint8_t *sniffed, size_t n,
                          char *err, size_t errlen)
{
        struct qsave s = { .req = req, .err = err, .errlen = errlen };
        int r;

        s.parser = qstream_new();
        s.buf = malloc(QSAVE_READ_SIZE);
        if (!s.parser || !s.buf)
                r = qsave_fail(&s, -ENOMEM, "out of memory");
        else {
                count_received(&s, n);
                r = feed(&s, sniffed, n);
                if (r == 0)
                        r = receive(&s);
        }
        qsave_done(&s, r);
        return r;
}
