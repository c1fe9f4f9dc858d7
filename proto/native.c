/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Native protocol frames (see native.h).  The decoder is a three-state
 * machine: HEADER (collect 16 bytes), HEAD (collect the part of the payload
 * that is parsed: fixed fields plus names, text or zero mask) and BULK (pass
 * the rest through).  PAGES needs its fixed part before it knows the size
 * of its zero mask, so its head is collected in two steps.  Checks happen
 * as soon as the bytes that carry a value are in: a hostile length is
 * refused before anything is buffered for it.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "macro.h"
#include "native.h"

enum { D_HEADER, D_HEAD, D_BULK, D_FAILED };

#define HELLO_SIZE      sizeof(struct savd_hello)
#define BLOCK_SIZE      sizeof(struct savd_block)
#define DIRTY_SIZE      sizeof(struct savd_dirty)
#define PAGES_SIZE      sizeof(struct savd_pages)
#define REPLY_SIZE      sizeof(struct savd_reply)
#define ERROR_SIZE      sizeof(struct savd_error)
#define HDR             SAVD_FRAME_HEADER_SIZE

_Static_assert(sizeof(struct savd_frame_header) == SAVD_FRAME_HEADER_SIZE, "header size");
_Static_assert(HELLO_SIZE == 24 && BLOCK_SIZE == 24 && DIRTY_SIZE == 16 && PAGES_SIZE == 16,
               "wire sizes");
_Static_assert(REPLY_SIZE == 72 && ERROR_SIZE == 8, "wire sizes");

static int failf(struct native_decoder *d, int r, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int failf(struct native_decoder *d, int r, const char *fmt, ...)
{
        va_list ap;
        int n;

        n = snprintf(d->errmsg, sizeof(d->errmsg), "frame at byte %llu: ",
                     (unsigned long long)d->frame_offset);
        va_start(ap, fmt);
        vsnprintf(d->errmsg + n, sizeof(d->errmsg) - (size_t)n, fmt, ap);
        va_end(ap);
        d->state = D_FAILED;
        d->error = r;
        return r;
}

const char *native_frame_name(unsigned type)
{
        switch (type) {
        case SAVD_FRAME_HELLO: return "HELLO";
        case SAVD_FRAME_BLOCK: return "BLOCK";
        case SAVD_FRAME_START: return "START";
        case SAVD_FRAME_DIRTY: return "DIRTY";
        case SAVD_FRAME_PAGES: return "PAGES";
        case SAVD_FRAME_SCAN: return "SCAN";
        case SAVD_FRAME_DEVICE_STATE: return "DEVICE_STATE";
        case SAVD_FRAME_COMPLETE: return "COMPLETE";
        case SAVD_FRAME_REPLY: return "REPLY";
        case SAVD_FRAME_ERROR: return "ERROR";
        default: return "unknown";
        }
}

void native_decoder_init(struct native_decoder *d, uint64_t max_device_state)
{
        memset(d, 0, sizeof(*d));
        d->max_device_state = MIN(max_device_state, SAVD_NATIVE_MAX_DEVICE_STATE);
        d->state = D_HEADER;
        d->need = HDR;
}

const char *native_decoder_error(const struct native_decoder *d)
{
        return d->errmsg;
}

uint64_t native_decoder_bulk_left(const struct native_decoder *d)
{
        return d->state == D_BULK ? d->bulk_left : 0;
}

bool native_decoder_idle(const struct native_decoder *d)
{
        return d->state == D_HEADER && d->have == 0;
}

/* ---- header ------------------------------------------------------------- */

struct type_rule {
        uint16_t flags;                 /* allowed flag bits */
        uint32_t max_fds;
        uint32_t min_fds;
        uint32_t head;                  /* fixed payload bytes */
        bool variable;                  /* a counted name/text follows the head */
        uint32_t var_max;
};

static bool type_rule(unsigned type, struct type_rule *r)
{
        memset(r, 0, sizeof(*r));
        switch (type) {
        case SAVD_FRAME_HELLO:
                *r = (struct type_rule) { SAVD_HELLO_RESTORE, 0, 0, HELLO_SIZE, true,
                                          SAVD_NATIVE_VM_NAME_MAX };
                return true;
        case SAVD_FRAME_BLOCK:
                *r = (struct type_rule) { 0, SAVD_NATIVE_MAX_FDS, 0, BLOCK_SIZE, true,
                                          SAVD_NATIVE_BLOCK_NAME_MAX };
                return true;
        case SAVD_FRAME_DIRTY:
                *r = (struct type_rule) { 0, 1, 1, DIRTY_SIZE, false, 0 };
                return true;
        case SAVD_FRAME_PAGES:
                *r = (struct type_rule) { 0, 0, 0, PAGES_SIZE, false, 0 };
                return true;
        case SAVD_FRAME_SCAN:
                r->flags = SAVD_SCAN_FINAL | SAVD_SCAN_ALL;
                return true;
        case SAVD_FRAME_START:
        case SAVD_FRAME_COMPLETE:
        case SAVD_FRAME_DEVICE_STATE:
                return true;
        case SAVD_FRAME_REPLY:
                *r = (struct type_rule) { 0, 0, 0, REPLY_SIZE, true, SAVD_NATIVE_TEXT_MAX };
                return true;
        case SAVD_FRAME_ERROR:
                *r = (struct type_rule) { 0, 0, 0, ERROR_SIZE, true, SAVD_NATIVE_TEXT_MAX };
                return true;
        default:
                return false;
        }
}

static int check_length(struct native_decoder *d, unsigned type, const struct type_rule *t,
                        uint32_t len)
{
        const char *name = native_frame_name(type);

        if (type == SAVD_FRAME_DEVICE_STATE) {
                if (len > d->max_device_state)
                        return failf(d, -E2BIG, "DEVICE_STATE of %u bytes exceeds the limit of "
                                     "%llu", len, (unsigned long long)d->max_device_state);
                return 0;
        }
        if (type == SAVD_FRAME_PAGES) {
                uint64_t max = PAGES_SIZE + NATIVE_MASK_MAX +
                               (uint64_t)SAVD_NATIVE_MAX_PAGES * SAVD_NATIVE_PAGE_SIZE;
                if (len < PAGES_SIZE + 1 || len > max)
                        return failf(d, len > max ? -E2BIG : -EBADMSG,
                                     "PAGES payload of %u bytes (limit %llu)", len,
                                     (unsigned long long)max);
                return 0;
        }
        if (len < t->head || len > t->head + (t->variable ? t->var_max : 0))
                return failf(d, len > t->head ? -E2BIG : -EBADMSG,
                             "%s payload of %u bytes, expected %u%s", name, len, t->head,
                             t->variable ? " plus a name or text" : "");
        return 0;
}

static int parse_header(struct native_decoder *d)
{
        uint32_t len = get_le32(d->buf), nfds = get_le32(d->buf + 8);
        uint16_t type = get_le16(d->buf + 4), flags = get_le16(d->buf + 6);
        struct type_rule t;
        int r;

        if (!type_rule(type, &t))
                return failf(d, -EBADMSG, "unknown frame type 0x%04x", type);
        if (get_le32(d->buf + 12) != 0)
                return failf(d, -EBADMSG, "%s: reserved header field is not 0",
                             native_frame_name(type));
        if (flags & ~t.flags)
                return failf(d, -EBADMSG, "%s: unknown flags 0x%04x", native_frame_name(type),
                             flags & ~t.flags);
        if (nfds > t.max_fds || nfds < t.min_fds)
                return failf(d, nfds > SAVD_NATIVE_MAX_FDS ? -E2BIG : -EBADMSG,
                             "%s says %u descriptors are attached, expected %u%s",
                             native_frame_name(type), nfds, t.min_fds,
                             t.max_fds > t.min_fds ? " or 1" : "");
        if ((r = check_length(d, type, &t, len)) < 0)
                return r;
        if (type == SAVD_FRAME_DEVICE_STATE) {
                d->need = HDR;          /* nothing parsed: all bulk */
                return 0;
        }
        d->need = HDR + (type == SAVD_FRAME_PAGES ? PAGES_SIZE : len);
        return 0;
}

/* ---- payloads ------------------------------------------------------------ */

static int copy_name(struct native_decoder *d, const char *what, const uint8_t *src,
                     size_t len, size_t min, char *dst)
{
        if (len < min)
                return failf(d, -EBADMSG, "%s is empty", what);
        if (memchr(src, 0, len))
                return failf(d, -EBADMSG, "%s contains a NUL byte", what);
        memcpy(dst, src, len);
        dst[len] = '\0';
        return 0;
}

static int parse_hello(struct native_decoder *d, uint32_t len, struct native_hello *h)
{
        const uint8_t *p = d->buf + HDR;

        h->version = get_le32(p);
        h->page_size = get_le32(p + 4);
        h->caps = get_le64(p + 8);
        h->name_len = get_le16(p + 16);
        if (get_le16(p + 18) || get_le32(p + 20))
                return failf(d, -EBADMSG, "HELLO: reserved field is not 0");
        if (HELLO_SIZE + h->name_len != len)
                return failf(d, -EBADMSG, "HELLO: name of %u bytes in a payload of %u",
                             h->name_len, len);
        return copy_name(d, "HELLO: the VM name", p + HELLO_SIZE, h->name_len, 0, h->name);
}

static int parse_block(struct native_decoder *d, uint32_t len, struct native_block *b)
{
        const uint8_t *p = d->buf + HDR;

        b->length = get_le64(p);
        b->fd_offset = get_le64(p + 8);
        b->name_len = get_le16(p + 16);
        if (get_le16(p + 18) || get_le32(p + 20))
                return failf(d, -EBADMSG, "BLOCK: reserved field is not 0");
        if (BLOCK_SIZE + b->name_len != len)
                return failf(d, -EBADMSG, "BLOCK: name of %u bytes in a payload of %u",
                             b->name_len, len);
        if (b->length == 0 || b->length % SAVD_NATIVE_PAGE_SIZE ||
            b->fd_offset % SAVD_NATIVE_PAGE_SIZE)
                return failf(d, -EBADMSG, "BLOCK: length 0x%llx and offset 0x%llx must be "
                             "non-zero multiples of %u", (unsigned long long)b->length,
                             (unsigned long long)b->fd_offset, SAVD_NATIVE_PAGE_SIZE);
        if (b->length > SAVD_NATIVE_MAX_BLOCK_SIZE ||
            b->fd_offset > SAVD_NATIVE_MAX_BLOCK_SIZE * SAVD_NATIVE_MAX_BLOCKS)
                return failf(d, -E2BIG, "BLOCK: length 0x%llx or offset 0x%llx exceeds the "
                             "limit", (unsigned long long)b->length,
                             (unsigned long long)b->fd_offset);
        return copy_name(d, "BLOCK: the block name", p + BLOCK_SIZE, b->name_len, 1, b->name);
}

static int parse_dirty(struct native_decoder *d, struct native_dirty *x)
{
        const uint8_t *p = d->buf + HDR;

        x->block = get_le32(p);
        x->offset = get_le64(p + 8);
        if (get_le32(p + 4))
                return failf(d, -EBADMSG, "DIRTY: reserved field is not 0");
        if (x->offset % 8 || x->offset > SAVD_NATIVE_MAX_BLOCK_SIZE)
                return failf(d, -EBADMSG, "DIRTY: bitmap offset 0x%llx is not a multiple of 8 "
                             "below the limit", (unsigned long long)x->offset);
        return 0;
}

static int parse_text(struct native_decoder *d, const char *what, const uint8_t *src,
                      uint16_t text_len, uint32_t fixed, uint32_t len, char *dst)
{
        if (fixed + text_len != len)
                return failf(d, -EBADMSG, "%s: text of %u bytes in a payload of %u", what,
                             text_len, len);
        memcpy(dst, src, text_len);
        dst[text_len] = '\0';
        return 0;
}

static int parse_reply(struct native_decoder *d, uint32_t len, struct native_reply *x)
{
        const uint8_t *p = d->buf + HDR;

        x->request = get_le16(p);
        x->text_len = get_le16(p + 2);
        if (get_le32(p + 4))
                return failf(d, -EBADMSG, "REPLY: reserved field is not 0");
        for (unsigned i = 0; i < SAVD_REPLY_VALUES; i++)
                x->value[i] = get_le64(p + 8 + 8 * i);
        return parse_text(d, "REPLY", p + REPLY_SIZE, x->text_len, REPLY_SIZE, len, x->text);
}

static int parse_error(struct native_decoder *d, uint32_t len, struct native_error *x)
{
        const uint8_t *p = d->buf + HDR;

        x->code = get_le32(p);
        x->text_len = get_le16(p + 4);
        if (get_le16(p + 6))
                return failf(d, -EBADMSG, "ERROR: reserved field is not 0");
        return parse_text(d, "ERROR", p + ERROR_SIZE, x->text_len, ERROR_SIZE, len, x->text);
}

/* PAGES, step 1: the fixed part says how long the zero mask is. */
static int parse_pages_fixed(struct native_decoder *d, uint32_t len)
{
        const uint8_t *p = d->buf + HDR;
        uint32_t npages = get_le32(p + 4);
        uint64_t first = get_le64(p + 8);

        if (npages == 0 || npages > SAVD_NATIVE_MAX_PAGES)
                return failf(d, npages ? -E2BIG : -EBADMSG,
                             "PAGES: %u pages (1 to %u per frame)", npages, SAVD_NATIVE_MAX_PAGES);
        if (first > SAVD_NATIVE_MAX_BLOCK_SIZE / SAVD_NATIVE_PAGE_SIZE)
                return failf(d, -E2BIG, "PAGES: first page 0x%llx exceeds the limit",
                             (unsigned long long)first);
        if (len < PAGES_SIZE + (npages + 7) / 8)
                return failf(d, -EBADMSG, "PAGES: payload of %u bytes has no room for the zero "
                             "mask of %u pages", len, npages);
        d->need = HDR + PAGES_SIZE + (npages + 7) / 8;
        return 0;
}

/* PAGES, step 2: the mask is in; the length must match its data pages. */
static int parse_pages(struct native_decoder *d, uint32_t len, struct native_pages *x)
{
        const uint8_t *p = d->buf + HDR;
        uint32_t mask_len, zeros = 0;

        x->block = get_le32(p);
        x->npages = get_le32(p + 4);
        x->first_page = get_le64(p + 8);
        mask_len = (x->npages + 7) / 8;
        memset(x->zero_mask, 0, sizeof(x->zero_mask));
        memcpy(x->zero_mask, p + PAGES_SIZE, mask_len);
        if (x->npages % 8 && (x->zero_mask[mask_len - 1] >> (x->npages % 8)))
                return failf(d, -EBADMSG, "PAGES: zero-mask bits set past page %u", x->npages);
        for (uint32_t i = 0; i < mask_len; i++)
                zeros += (uint32_t)__builtin_popcount(x->zero_mask[i]);
        x->ndata = x->npages - zeros;
        if ((uint64_t)PAGES_SIZE + mask_len + (uint64_t)x->ndata * SAVD_NATIVE_PAGE_SIZE != len)
                return failf(d, -EBADMSG, "PAGES: payload of %u bytes, but %u data pages need "
                             "%llu", len, x->ndata,
                             (unsigned long long)PAGES_SIZE + mask_len +
                             (uint64_t)x->ndata * SAVD_NATIVE_PAGE_SIZE);
        return 0;
}

static void fill_common(const struct native_decoder *d, struct native_msg *m)
{
        memset(m, 0, offsetof(struct native_msg, u));
        m->length = get_le32(d->buf);
        m->type = get_le16(d->buf + 4);
        m->flags = get_le16(d->buf + 6);
        m->nfds = get_le32(d->buf + 8);
}

/* The head of the frame is complete: parse it.  Returns 1 when the frame
 * is ready, 0 when more head bytes are needed (PAGES step 1), or -errno. */
static int parse_head(struct native_decoder *d, struct native_msg *m)
{
        uint32_t len = get_le32(d->buf);
        int r = 0;

        fill_common(d, m);
        switch (m->type) {
        case SAVD_FRAME_HELLO: r = parse_hello(d, len, &m->u.hello); break;
        case SAVD_FRAME_BLOCK: r = parse_block(d, len, &m->u.block); break;
        case SAVD_FRAME_DIRTY: r = parse_dirty(d, &m->u.dirty); break;
        case SAVD_FRAME_REPLY: r = parse_reply(d, len, &m->u.reply); break;
        case SAVD_FRAME_ERROR: r = parse_error(d, len, &m->u.error); break;
        case SAVD_FRAME_PAGES:
                if (d->need == HDR + PAGES_SIZE) {
                        r = parse_pages_fixed(d, len);
                        return r < 0 ? r : 0;
                }
                r = parse_pages(d, len, &m->u.pages);
                break;
        default:
                break;
        }
        if (r < 0)
                return r;
        m->bulk = len - (d->need - HDR);
        return 1;
}

/* ---- the state machine --------------------------------------------------- */

static int frame_ready(struct native_decoder *d, struct native_msg *m)
{
        d->bulk_left = m->bulk;
        d->have = 0;
        d->need = HDR;
        d->state = m->bulk ? D_BULK : D_HEADER;
        return NATIVE_FRAME;
}


/* Move bytes into buf until it holds d->need; returns true when it does. */
static bool collect(struct native_decoder *d, const uint8_t *buf, size_t len, size_t *pos)
{
        size_t n = MIN(d->need - d->have, len - *pos);

        memcpy(d->buf + d->have, buf + *pos, n);
        d->have += n;
        *pos += n;
        d->offset += n;
        return d->have == d->need;
}

static int bulk_chunk(struct native_decoder *d, const uint8_t *buf, size_t len, size_t *pos,
                      struct native_msg *m)
{
        size_t n = (size_t)MIN((uint64_t)(len - *pos), d->bulk_left);

        memset(m, 0, offsetof(struct native_msg, u));
        m->data = buf + *pos;
        m->data_len = n;
        *pos += n;
        d->offset += n;
        d->bulk_left -= n;
        if (d->bulk_left == 0)
                d->state = D_HEADER;
        return NATIVE_DATA;
}

static int decode(struct native_decoder *d, const uint8_t *buf, size_t len, size_t *pos,
                  struct native_msg *m)
{
        int r;

        for (;;) {
                switch (d->state) {
                case D_BULK:
                        if (*pos == len)
                                return NATIVE_NEED_MORE;
                        return bulk_chunk(d, buf, len, pos, m);
                case D_HEADER:
                        if (d->have == 0)
                                d->frame_offset = d->offset;
                        if (!collect(d, buf, len, pos))
                                return NATIVE_NEED_MORE;
                        if ((r = parse_header(d)) < 0)
                                return r;
                        d->state = D_HEAD;
                        break;
                case D_HEAD:
                        if (d->have < d->need && !collect(d, buf, len, pos))
                                return NATIVE_NEED_MORE;
                        r = parse_head(d, m);
                        if (r < 0)
                                return r;
                        if (r > 0)
                                return frame_ready(d, m);
                        break;          /* PAGES: now the zero mask */
                default:
                        return d->error;
                }
        }
}

int native_decode(struct native_decoder *d, const uint8_t *buf, size_t len, size_t *used,
                  struct native_msg *msg)
{
        size_t pos = 0;
        int r = decode(d, buf, len, &pos, msg);

        *used = pos;
        return r;
}

int native_decoder_skip_bulk(struct native_decoder *d, uint64_t n)
{
        if (d->state != D_BULK || n > d->bulk_left)
                return -EINVAL;
        d->bulk_left -= n;
        d->offset += n;
        if (d->bulk_left == 0)
                d->state = D_HEADER;
        return 0;
}

/* ---- encoders ------------------------------------------------------------ */

static size_t put_header(uint8_t *buf, uint16_t type, uint16_t flags, uint32_t nfds,
                         uint64_t len)
{
        put_le32(buf, (uint32_t)len);
        put_le16(buf + 4, type);
        put_le16(buf + 6, flags);
        put_le32(buf + 8, nfds);
        put_le32(buf + 12, 0);
        return HDR;
}

size_t native_encode_hello(uint8_t *buf, uint16_t flags, uint64_t caps, const char *name,
                           size_t name_len)
{
        uint8_t *p = buf + HDR;

        if (name_len > SAVD_NATIVE_VM_NAME_MAX || (flags & ~SAVD_HELLO_RESTORE))
                return 0;
        put_header(buf, SAVD_FRAME_HELLO, flags, 0, HELLO_SIZE + name_len);
        memset(p, 0, HELLO_SIZE);
        put_le32(p, SAVD_NATIVE_VERSION);
        put_le32(p + 4, SAVD_NATIVE_PAGE_SIZE);
        put_le64(p + 8, caps);
        put_le16(p + 16, (uint16_t)name_len);
        memcpy(p + HELLO_SIZE, name, name_len);
        return HDR + HELLO_SIZE + name_len;
}

size_t native_encode_block(uint8_t *buf, uint64_t length, uint64_t fd_offset, const char *name,
                           size_t name_len, bool with_fd)
{
        uint8_t *p = buf + HDR;

        if (name_len == 0 || name_len > SAVD_NATIVE_BLOCK_NAME_MAX)
                return 0;
        put_header(buf, SAVD_FRAME_BLOCK, 0, with_fd ? 1 : 0, BLOCK_SIZE + name_len);
        memset(p, 0, BLOCK_SIZE);
        put_le64(p, length);
        put_le64(p + 8, fd_offset);
        put_le16(p + 16, (uint16_t)name_len);
        memcpy(p + BLOCK_SIZE, name, name_len);
        return HDR + BLOCK_SIZE + name_len;
}

size_t native_encode_empty(uint8_t *buf, uint16_t type, uint16_t flags)
{
        if (type != SAVD_FRAME_START && type != SAVD_FRAME_SCAN && type != SAVD_FRAME_COMPLETE)
                return 0;
        return put_header(buf, type, flags, 0, 0);
}

size_t native_encode_dirty(uint8_t *buf, uint32_t block, uint64_t offset)
{
        uint8_t *p = buf + HDR;

        put_header(buf, SAVD_FRAME_DIRTY, 0, 1, DIRTY_SIZE);
        put_le32(p, block);
        put_le32(p + 4, 0);
        put_le64(p + 8, offset);
        return HDR + DIRTY_SIZE;
}

size_t native_encode_pages(uint8_t *buf, uint32_t block, uint64_t first_page, uint32_t npages,
                           const uint8_t *mask)
{
        uint8_t *p = buf + HDR;
        uint32_t mask_len = (npages + 7) / 8, zeros = 0;

        if (npages == 0 || npages > SAVD_NATIVE_MAX_PAGES)
                return 0;
        memset(p + PAGES_SIZE, 0, mask_len);
        if (mask)
                memcpy(p + PAGES_SIZE, mask, mask_len);
        for (uint32_t i = 0; i < npages; i++)
                zeros += native_mask_test(p + PAGES_SIZE, i);
        put_header(buf, SAVD_FRAME_PAGES, 0, 0,
                   PAGES_SIZE + mask_len + (uint64_t)(npages - zeros) * SAVD_NATIVE_PAGE_SIZE);
        put_le32(p, block);
        put_le32(p + 4, npages);
        put_le64(p + 8, first_page);
        return HDR + PAGES_SIZE + mask_len;
}

size_t native_encode_device_state(uint8_t *buf, uint64_t len)
{
        if (len > SAVD_NATIVE_MAX_DEVICE_STATE)
                return 0;
        return put_header(buf, SAVD_FRAME_DEVICE_STATE, 0, 0, len);
}

size_t native_encode_reply(uint8_t *buf, uint16_t request, const uint64_t value[SAVD_REPLY_VALUES],
                           const char *text, size_t text_len)
{
        uint8_t *p = buf + HDR;

        if (text_len > SAVD_NATIVE_TEXT_MAX)
                return 0;
        put_header(buf, SAVD_FRAME_REPLY, 0, 0, REPLY_SIZE + text_len);
        put_le16(p, request);
        put_le16(p + 2, (uint16_t)text_len);
        put_le32(p + 4, 0);
        for (unsigned i = 0; i < SAVD_REPLY_VALUES; i++)
                put_le64(p + 8 + 8 * i, value ? value[i] : 0);
        if (text_len)
                memcpy(p + REPLY_SIZE, text, text_len);
        return HDR + REPLY_SIZE + text_len;
}

size_t native_encode_error(uint8_t *buf, uint32_t code, const char *text, size_t text_len)
{
        uint8_t *p = buf + HDR;

        text_len = MIN(text_len, (size_t)SAVD_NATIVE_TEXT_MAX);
        put_header(buf, SAVD_FRAME_ERROR, 0, 0, ERROR_SIZE + text_len);
        put_le32(p, code);
        put_le16(p + 4, (uint16_t)text_len);
        put_le16(p + 6, 0);
        if (text_len)
                memcpy(p + ERROR_SIZE, text, text_len);
        return HDR + ERROR_SIZE + text_len;
}
