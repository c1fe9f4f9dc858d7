/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The native data channel and client memory (see session-native.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "session-native.h"

/* ---- the channel ---------------------------------------------------------- */

int native_chan_init(struct native_chan *c, int fd, atomic_bool *cancelled,
                     uint64_t max_device_state)
{
        memset(c, 0, sizeof(*c));
        c->fd = fd;
        c->cancelled = cancelled;
        native_decoder_init(&c->dec, max_device_state);
        c->rbuf = malloc(NATIVE_RBUF_SIZE);
        return c->rbuf ? 0 : -ENOMEM;
}

void native_chan_done(struct native_chan *c)
{
        for (unsigned i = 0; i < c->nfdq; i++)
                close(c->fdq[i]);
        c->nfdq = 0;
        free(c->rbuf);
        c->rbuf = NULL;
}

bool native_chan_cancelled(const struct native_chan *c)
{
        return c->cancelled && atomic_load(c->cancelled);
}

int native_chan_send(struct native_chan *c, const void *buf, size_t len)
{
        const uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

int native_chan_fail(struct native_chan *c, int r, const char *fmt, ...)
{
        uint8_t frame[NATIVE_HEAD_MAX];
        va_list ap;
        size_t n;

        if (c->error)
                return c->error;
        c->error = r < 0 ? r : -EIO;
        va_start(ap, fmt);
        vsnprintf(c->err, sizeof(c->err), fmt, ap);
        va_end(ap);
        if (native_chan_cancelled(c)) {
                snprintf(c->err, sizeof(c->err), "cancelled");
                c->error = -ECANCELED;
        }
        if (!c->error_sent && c->error != -ECANCELED) {
                c->error_sent = true;
                n = native_encode_error(frame, (uint32_t)-c->error, c->err, strlen(c->err));
                (void)native_chan_send(c, frame, n);
        }
        return c->error;
}

static int queue_fds(struct native_chan *c, struct msghdr *mh)
{
        int extra = 0;

        for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                int *fds = (int *)CMSG_DATA(cm);

                for (size_t i = 0; i < n; i++) {
                        if (c->nfdq < NATIVE_MAX_QUEUED_FDS)
                                c->fdq[c->nfdq++] = fds[i];
                        else {
                                close(fds[i]);
                                extra++;
                        }
                }
        }
        if (mh->msg_flags & MSG_CTRUNC)
                return native_chan_fail(c, -EPROTO, "descriptor data was truncated: more than "
                                        "%u descriptors sent at once", NATIVE_CMSG_FDS);
        if (extra)
                return native_chan_fail(c, -EPROTO, "more than %u descriptors sent ahead of "
                                        "the frames that use them", NATIVE_MAX_QUEUED_FDS);
        return 0;
}

/* One recvmsg into buf; returns bytes (> 0) or -errno (EOF is an error:
 * the protocol always ends with savd's reply). */
static ssize_t chan_recv(struct native_chan *c, void *buf, size_t len)
{
        union {
                char b[CMSG_SPACE(sizeof(int) * NATIVE_CMSG_FDS)];
                struct cmsghdr align;
        } cbuf;
        struct iovec iov = { .iov_base = buf, .iov_len = len };
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1,
                .msg_control = cbuf.b, .msg_controllen = sizeof(cbuf.b),
        };
        ssize_t n;
        int r;

        if (c->error)
                return c->error;
        do
                n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR && !native_chan_cancelled(c));
        if (n < 0)
                return native_chan_fail(c, -errno, "read from the data channel: %m");
        if ((r = queue_fds(c, &mh)) < 0)
                return r;
        if (n == 0)
                return native_chan_fail(c, -EPIPE, "the client closed the data channel in the "
                                        "middle of the protocol");
        c->bytes_in += (uint64_t)n;
        if (c->bytes_counter)
                __atomic_fetch_add(c->bytes_counter, (uint64_t)n, __ATOMIC_RELAXED);
        return n;
}

int native_chan_read_raw(struct native_chan *c, void *buf, size_t n)
{
        uint8_t *p = buf;

        while (n > 0) {
                ssize_t k = chan_recv(c, p, n);

                if (k < 0)
                        return (int)k;
                p += k;
                n -= (size_t)k;
        }
        return 0;
}

static int decoder_failed(struct native_chan *c, int r)
{
        return native_chan_fail(c, r, "native protocol: %s", native_decoder_error(&c->dec));
}

int native_chan_next(struct native_chan *c, struct native_msg *m)
{
        for (;;) {
                size_t used;
                int r;

                if (c->rpos == c->rlen) {
                        ssize_t n = chan_recv(c, c->rbuf, NATIVE_RBUF_SIZE);

                        if (n < 0)
                                return (int)n;
                        c->rpos = 0;
                        c->rlen = (size_t)n;
                }
                r = native_decode(&c->dec, c->rbuf + c->rpos, c->rlen - c->rpos, &used, m);
                c->rpos += used;
                if (r < 0)
                        return decoder_failed(c, r);
                if (r == NATIVE_DATA)
                        return native_chan_fail(c, -EPROTO, "internal: bulk data left unread");
                if (r == NATIVE_FRAME) {
                        if (m->nfds > c->nfdq)
                                return native_chan_fail(c, -EPROTO, "%s announces %u "
                                                        "descriptors, %u arrived",
                                                        native_frame_name(m->type), m->nfds,
                                                        c->nfdq);
                        return 0;
                }
        }
}

int native_chan_bulk(struct native_chan *c, void *dst, size_t n)
{
        uint8_t *p = dst;

        while (n > 0) {
                struct native_msg m;
                size_t used;
                int r;

                if (c->rpos == c->rlen && n < NATIVE_DIRECT_MIN) {
                        /* Small pieces (a page): one large read serves many. */
                        ssize_t k = chan_recv(c, c->rbuf, NATIVE_RBUF_SIZE);

                        if (k < 0)
                                return (int)k;
                        c->rpos = 0;
                        c->rlen = (size_t)k;
                }
                if (c->rpos == c->rlen) {
                        /* Nothing buffered: read straight into the destination. */
                        uint64_t left = native_decoder_bulk_left(&c->dec);
                        ssize_t k;

                        if (left == 0)
                                return native_chan_fail(c, -EPROTO, "internal: bulk overrun");
                        k = chan_recv(c, p, (size_t)MIN((uint64_t)n, left));
                        if (k < 0)
                                return (int)k;
                        if ((r = native_decoder_skip_bulk(&c->dec, (uint64_t)k)) < 0)
                                return native_chan_fail(c, r, "internal: bulk accounting");
                        p += k;
                        n -= (size_t)k;
                        continue;
                }
                r = native_decode(&c->dec, c->rbuf + c->rpos, MIN(n, c->rlen - c->rpos), &used, &m);
                c->rpos += used;
                if (r != NATIVE_DATA)
                        return native_chan_fail(c, -EPROTO, "internal: expected bulk data");
                memcpy(p, m.data, m.data_len);
                p += m.data_len;
                n -= m.data_len;
        }
        return 0;
}

int native_chan_take_fd(struct native_chan *c)
{
        int fd;

        if (c->nfdq == 0)
                return -EBADF;
        fd = c->fdq[0];
        memmove(c->fdq, c->fdq + 1, (c->nfdq - 1) * sizeof(int));
        c->nfdq--;
        return fd;
}

int native_chan_reply(struct native_chan *c, uint16_t request,
                      const uint64_t value[SAVD_REPLY_VALUES], const char *text)
{
        uint8_t frame[NATIVE_HEAD_MAX];
        size_t n = native_encode_reply(frame, request, value, text ? text : "",
                                       text ? MIN(strlen(text), (size_t)SAVD_NATIVE_TEXT_MAX) : 0);
        int r = native_chan_send(c, frame, n);

        if (r == -EPIPE || r == -ECONNRESET)
                return native_chan_fail(c, r, "the client closed the data channel before "
                                        "reading savd's reply to %s", native_frame_name(request));
        if (r < 0)
                return native_chan_fail(c, r, "write to the data channel: %s", strerror(-r));
        return 0;
}

/* ---- client memory ---------------------------------------------------------- */

void native_map_release(struct native_map *m)
{
        if (m->addr)
                munmap(m->addr, m->map_len);
        m->addr = NULL;
        if (m->fd >= 0)
                close(m->fd);
        m->fd = -1;
}

static int check_fd(struct native_chan *c, int fd, uint64_t offset, uint64_t length,
                    bool writable, const char *what)
{
        struct stat st;
        int fl = fcntl(fd, F_GETFL);

        if (fl < 0 || fstat(fd, &st) < 0)
                return native_chan_fail(c, -errno, "%s: %m", what);
        if (!S_ISREG(st.st_mode))
                return native_chan_fail(c, -EBADF, "%s is not a memfd or regular file", what);
        if ((fl & O_ACCMODE) == O_WRONLY || (writable && (fl & O_ACCMODE) != O_RDWR))
                return native_chan_fail(c, -EBADF, "%s is not open for %s", what,
                                        writable ? "reading and writing" : "reading");
        if (offset + length < offset || (uint64_t)st.st_size < offset + length)
                return native_chan_fail(c, -ERANGE, "%s holds %lld bytes, less than offset "
                                        "0x%llx + length 0x%llx", what, (long long)st.st_size,
                                        (unsigned long long)offset, (unsigned long long)length);
        return 0;
}

int native_map_fd(struct native_chan *c, struct native_map *m, int fd, uint64_t offset,
                  uint64_t length, bool writable, const char *what)
{
        uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
        void *p;
        int r;

        memset(m, 0, sizeof(*m));
        m->fd = fd;
        m->offset = offset;
        m->length = length;
        if ((r = check_fd(c, fd, offset, length, writable, what)) < 0)
                return r;
        m->map_delta = (size_t)(offset % pg);
        m->map_len = (size_t)(length + m->map_delta);
        p = mmap(NULL, m->map_len, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd,
                 (off_t)(offset - m->map_delta));
        if (p == MAP_FAILED)
                return native_chan_fail(c, -errno, "map %s: %m", what);
        m->addr = p;
        return 0;
}

/* ---- SIGBUS guard ------------------------------------------------------------ */

static __thread sigjmp_buf *bus_jmp;
static struct sigaction bus_prev;
static pthread_once_t bus_once = PTHREAD_ONCE_INIT;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
        sigjmp_buf *jb = bus_jmp;

        if (jb) {
                bus_jmp = NULL;
                siglongjmp(*jb, 1);
        }
        /* Not ours: what would have happened without us. */
        if (bus_prev.sa_flags & SA_SIGINFO)
                bus_prev.sa_sigaction(sig, si, uc);
        else if (bus_prev.sa_handler != SIG_DFL && bus_prev.sa_handler != SIG_IGN)
                bus_prev.sa_handler(sig);
        else {
                signal(SIGBUS, SIG_DFL);
                raise(SIGBUS);
        }
}

static void bus_install(void)
{
        struct sigaction sa = { .sa_sigaction = on_sigbus };

        /* SA_NODEFER: leaving the handler by siglongjmp(jb, 0-mask) must not
         * leave SIGBUS blocked. */
        sa.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        (void)sigaction(SIGBUS, &sa, &bus_prev);
}

void native_bus_arm(sigjmp_buf *jb)
{
        sigset_t bus;

        pthread_once(&bus_once, bus_install);
        /* A SIGBUS raised while blocked kills the process whatever the
         * handler: make sure this thread takes it. */
        sigemptyset(&bus);
        sigaddset(&bus, SIGBUS);
        pthread_sigmask(SIG_UNBLOCK, &bus, NULL);
        bus_jmp = jb;
}

void native_bus_disarm(void)
{
        bus_jmp = NULL;
}
