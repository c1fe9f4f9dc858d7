/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libsavd: connections, frame I/O and errors (see savd/client.h).  The
 * frames are the ones proto/native.c encodes and decodes for the daemon,
 * built into this library.  When savd refuses something it sends an ERROR
 * frame and closes; a send that fails because of that still picks the
 * ERROR up, so the caller learns why rather than "broken pipe".
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client-internal.h"
#include "macro.h"

int client_fail(struct savd_client *c, int r, const char *fmt, ...)
{
        va_list ap;

        if (c->error)
                return c->error;
        c->error = r < 0 ? r : -EIO;
        va_start(ap, fmt);
        vsnprintf(c->err, sizeof(c->err), fmt, ap);
        va_end(ap);
        return c->error;
}

const char *savd_client_error(const struct savd_client *c)
{
        return c ? c->err : "no client";
}

const struct savd_server_info *savd_client_server(const struct savd_client *c)
{
        return &c->server;
}

void client_copy_text(char *dst, size_t size, const char *src)
{
        size_t n = strnlen(src, size - 1);

        memcpy(dst, src, n);
        dst[n] = '\0';
}

int client_check(struct savd_client *c)
{
        return c->error;
}

int savd_client_from_fd(struct savd_client **ret, int fd)
{
        struct savd_client *c = calloc(1, sizeof(*c));

        if (!c || !(c->rbuf = malloc(CLIENT_RBUF_SIZE))) {
                free(c);
                close(fd);
                return -ENOMEM;
        }
        c->fd = fd;
        native_decoder_init(&c->dec, SAVD_NATIVE_MAX_DEVICE_STATE);
        *ret = c;
        return 0;
}

int savd_connect(struct savd_client **ret, const char *uri)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        const char *path = strncmp(uri, "unix:", 5) == 0 ? uri + 5 : uri;
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return savd_client_from_fd(ret, fd);
}

void savd_client_free(struct savd_client *c)
{
        if (!c)
                return;
        if (c->fd >= 0)
                close(c->fd);
        free(c->rbuf);
        free(c->rblocks);
        free(c);
}

/* ---- receiving ---------------------------------------------------------- */

static int fill(struct savd_client *c, int flags)
{
        ssize_t n;

        do
                n = recv(c->fd, c->rbuf, CLIENT_RBUF_SIZE, flags);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        if (n == 0)
                return -EPIPE;
        c->rpos = 0;
        c->rlen = (size_t)n;
        return 0;
}

static int got_error_frame(struct savd_client *c)
{
        const struct native_error *e = &c->msg.u.error;
        int code = e->code > 0 && e->code < 4096 ? -(int)e->code : -EIO;

        return client_fail(c, code, "savd: %s", e->text);
}

/* One frame; flags for recv (MSG_DONTWAIT when only looking for an ERROR
 * that may already be there). */
static int read_frame(struct savd_client *c, int flags)
{
        for (;;) {
                size_t used;
                int r;

                if (c->rpos == c->rlen && (r = fill(c, flags)) < 0)
                        return r;
                r = native_decode(&c->dec, c->rbuf + c->rpos, c->rlen - c->rpos, &used, &c->msg);
                c->rpos += used;
                if (r < 0)
                        return client_fail(c, r, "bad frame from savd: %s",
                                           native_decoder_error(&c->dec));
                if (r == NATIVE_FRAME)
                        return c->msg.type == SAVD_FRAME_ERROR ? got_error_frame(c) : 0;
                if (r == NATIVE_DATA)
                        return client_fail(c, -EPROTO, "unexpected data from savd");
        }
}

int client_read_frame(struct savd_client *c)
{
        int r;

        if (c->error)
                return c->error;
        r = read_frame(c, 0);
        if (r < 0 && !c->error)
                return client_fail(c, r, "read from savd: %s", r == -EPIPE ?
                                   "savd closed the connection" : strerror(-r));
        return r;
}

int client_expect_reply(struct savd_client *c, uint16_t request)
{
        int r = client_read_frame(c);

        if (r < 0)
                return r;
        if (c->msg.type != SAVD_FRAME_REPLY || c->msg.u.reply.request != request)
                return client_fail(c, -EPROTO, "savd answered %s (to %s) where the reply to %s "
                                   "was due", native_frame_name(c->msg.type),
                                   native_frame_name(c->msg.u.reply.request),
                                   native_frame_name(request));
        return 0;
}

int client_read_bulk(struct savd_client *c, void *dst, size_t n)
{
        uint8_t *p = dst;

        while (n > 0) {
                size_t used;
                int r;

                if (c->rpos == c->rlen && (r = fill(c, 0)) < 0)
                        return client_fail(c, r, "read from savd: %s", strerror(-r));
                r = native_decode(&c->dec, c->rbuf + c->rpos, MIN(n, c->rlen - c->rpos), &used,
                                  &c->msg);
                c->rpos += used;
                if (r != NATIVE_DATA)
                        return client_fail(c, -EPROTO, "savd sent less data than announced");
                memcpy(p, c->msg.data, c->msg.data_len);
                p += c->msg.data_len;
                n -= c->msg.data_len;
        }
        return 0;
}

/* ---- sending -------------------------------------------------------------- */

/* A send failed: if savd explained why before closing, say that. */
static int send_failed(struct savd_client *c, int r)
{
        if (read_frame(c, MSG_DONTWAIT) < 0 && c->error)
                return c->error;
        return client_fail(c, r, "write to savd: %s", strerror(-r));
}

static void advance(struct iovec **iov, int *iovcnt, size_t n)
{
        while (n > 0 && *iovcnt > 0) {
                size_t k = MIN(n, (*iov)->iov_len);

                (*iov)->iov_base = (uint8_t *)(*iov)->iov_base + k;
                (*iov)->iov_len -= k;
                n -= k;
                if ((*iov)->iov_len == 0) {
                        (*iov)++;
                        (*iovcnt)--;
                }
        }
}

int client_sendv(struct savd_client *c, struct iovec *iov, int iovcnt, int fd)
{
        union {
                char b[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } cbuf;

        if (c->error)
                return c->error;
        while (iovcnt > 0) {
                struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };
                ssize_t n;

                if (fd >= 0) {
                        struct cmsghdr *cm;

                        memset(&cbuf, 0, sizeof(cbuf));
                        mh.msg_control = cbuf.b;
                        mh.msg_controllen = sizeof(cbuf.b);
                        cm = CMSG_FIRSTHDR(&mh);
                        cm->cmsg_level = SOL_SOCKET;
                        cm->cmsg_type = SCM_RIGHTS;
                        cm->cmsg_len = CMSG_LEN(sizeof(int));
                        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
                }
                n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return send_failed(c, -errno);
                fd = -1;                /* it went with the first byte */
                advance(&iov, &iovcnt, (size_t)n);
        }
        return 0;
}

int client_send(struct savd_client *c, const void *buf, size_t len, int fd)
{
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

        return client_sendv(c, &iov, 1, fd);
}

int client_hello(struct savd_client *c, uint16_t flags, uint64_t caps, const char *name)
{
        uint8_t frame[SAVD_NATIVE_MAGIC_LEN + NATIVE_HEAD_MAX];
        const struct native_reply *rep = &c->msg.u.reply;
        size_t n;
        int r;

        if (c->hello_done)
                return client_fail(c, -EALREADY, "HELLO was sent already");
        memcpy(frame, SAVD_NATIVE_MAGIC, SAVD_NATIVE_MAGIC_LEN);
        n = native_encode_hello(frame + SAVD_NATIVE_MAGIC_LEN, flags, caps, name, strlen(name));
        if (n == 0)
                return client_fail(c, -EINVAL, "VM name longer than %u bytes",
                                   SAVD_NATIVE_VM_NAME_MAX);
        c->hello_done = true;
        if ((r = client_send(c, frame, SAVD_NATIVE_MAGIC_LEN + n, -1)) < 0 ||
            (r = client_expect_reply(c, SAVD_FRAME_HELLO)) < 0)
                return r;
        c->server = (struct savd_server_info) {
                .version = (uint32_t)rep->value[0], .caps = rep->value[1],
                .max_blocks = rep->value[2], .max_block_size = rep->value[3],
                .max_device_state = rep->value[4],
                .max_pages_per_frame = (uint32_t)MIN(rep->value[5], (uint64_t)SAVD_NATIVE_MAX_PAGES),
        };
        return 0;
}
