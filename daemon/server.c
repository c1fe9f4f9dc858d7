/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The control server (see server.h): listeners, connections, framing,
 * descriptor passing, peer checks, command dispatch and event broadcast.
 * Requests are checked by proto/control.c; the commands themselves are
 * thin wrappers around job.c.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <systemd/sd-daemon.h>

#include "control.h"
#include "log.h"
#include "macro.h"
#include "server.h"

#define SERVER_MAX_LISTENERS 8
#define SERVER_ACCEPT_PAUSE_USEC 200000ULL  /* after EMFILE: let fds drain */

struct out_msg {
        struct out_msg *next;
        char *buf;
        size_t len, off;
        int fd;                         /* sent with the first byte, or -1 */
};

struct pending_fd {
        int fd;
        uint64_t pos;                   /* stream offset of the bytes it came with */
};

struct conn {
        struct server *s;
        struct conn *prev, *next;
        int fd;
        sd_event_source *src;
        struct ucred cred;
        struct ctl_reader reader;
        uint64_t rx_pos;                /* bytes received so far */
        struct pending_fd fds[SAVD_CONTROL_MAX_FDS];
        unsigned n_fds;
        bool fds_lost;                  /* some fds were dropped at lost_pos */
        uint64_t lost_pos;
        struct out_msg *out, **out_tail;
        size_t out_bytes;
        bool read_eof;
        bool dead;
};

struct server {
        sd_event *event;
        struct job_manager *jobs;
        int listen_fds[SERVER_MAX_LISTENERS];
        sd_event_source *listen_src[SERVER_MAX_LISTENERS];
        unsigned n_listeners;
        sd_event_source *pause_src;
        char *bound_path;               /* the socket savd bound itself, or NULL */

        struct conn *conns;
        unsigned n_conns;
        struct conn *dead;              /* freed from a defer source */
        sd_event_source *reap_src;

        unsigned max_clients;
        gid_t *allowed_gids;
        size_t n_allowed_gids;

        uint64_t started_usec;          /* CLOCK_MONOTONIC */
        uint64_t accepted, refused_peer, refused_full;
};

/* ---- Output ------------------------------------------------------------- */

static void conn_close(struct conn *c);

static void out_msg_free(struct out_msg *m)
{
        closep(&m->fd);
        free(m->buf);
        free(m);
}

static void conn_update_events(struct conn *c)
{
        uint32_t ev = (c->read_eof ? 0 : EPOLLIN) | (c->out ? EPOLLOUT : 0);

        (void)sd_event_source_set_io_events(c->src, ev);
}

static ssize_t send_with_fd(int sock, const char *buf, size_t len, int fd)
{
        union {
                struct cmsghdr h;
                char b[CMSG_SPACE(sizeof(int))];
        } cm = {};
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (fd >= 0) {
                mh.msg_control = &cm;
                mh.msg_controllen = sizeof(cm);
                struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
                h->cmsg_level = SOL_SOCKET;
                h->cmsg_type = SCM_RIGHTS;
                h->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(h), &fd, sizeof(int));
        }
        return sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static int conn_flush(struct conn *c)
{
        while (c->out) {
                struct out_msg *m = c->out;
                ssize_t n = send_with_fd(c->fd, m->buf + m->off, m->len - m->off, m->fd);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                if (n < 0)
                        return -errno;
                closep(&m->fd);         /* it went with the first byte */
                m->fd = -1;
                m->off += (size_t)n;
                c->out_bytes -= (size_t)n;
                if (m->off == m->len) {
                        c->out = m->next;
                        if (!c->out)
                                c->out_tail = &c->out;
                        out_msg_free(m);
                }
        }
        conn_update_events(c);
        return 0;
}

/* Queue bytes (taken) and an optional fd (taken) for the client. */
static void conn_queue(struct conn *c, char *buf, size_t len, int fd)
{
        struct out_msg *m;

        if (c->dead) {
                free(buf);
                closep(&fd);
                return;
        }
        if (c->out_bytes + len > SAVD_CONTROL_MAX_OUTPUT || !(m = calloc(1, sizeof(*m)))) {
                log_warning("control client pid %d: not reading its messages, closing", (int)c->cred.pid);
                free(buf);
                closep(&fd);
                conn_close(c);
                return;
        }
        *m = (struct out_msg) { .buf = buf, .len = len, .fd = fd };
        *c->out_tail = m;
        c->out_tail = &m->next;
        c->out_bytes += len;
        if (conn_flush(c) < 0)
                conn_close(c);
}

/* Send msg (taken) with an optional fd (taken). */
static void conn_send(struct conn *c, struct json_object *msg, int fd)
{
        char *buf;
        size_t len;

        if (ctl_format(msg, &buf, &len) < 0) {
                closep(&fd);
                conn_close(c);
        } else {
                conn_queue(c, buf, len, fd);
        }
        json_object_put(msg);
}

static void conn_send_error(struct conn *c, int err, const char *desc, struct json_object *id)
{
        conn_send(c, ctl_error_new(err, desc, id), -1);
}

void server_broadcast(void *userdata, struct json_object *msg)
{
        struct server *s = userdata;
        char *buf;
        size_t len;

        if (ctl_format(msg, &buf, &len) >= 0) {
                for (struct conn *c = s->conns, *next; c; c = next) {
                        next = c->next;
                        char *copy = malloc(len);
                        if (copy) {
                                memcpy(copy, buf, len);
                                conn_queue(c, copy, len, -1);
                        }
                }
                free(buf);
        }
        json_object_put(msg);
}

/* ---- Connection life ---------------------------------------------------- */

static int on_reap(sd_event_source *src, void *userdata)
{
        struct server *s = userdata;

        while (s->dead) {
                struct conn *c = s->dead;
                s->dead = c->next;
                free(c);
        }
        return 0;
}

/* Release everything now; the struct itself goes from a defer source, so
 * that callers up the stack may still look at c->dead. */
static void conn_close(struct conn *c)
{
        struct server *s = c->s;

        if (c->dead)
                return;
        c->dead = true;
        c->src = sd_event_source_disable_unref(c->src);
        closep(&c->fd);
        ctl_reader_done(&c->reader);
        for (unsigned i = 0; i < c->n_fds; i++)
                closep(&c->fds[i].fd);
        while (c->out) {
                struct out_msg *m = c->out;
                c->out = m->next;
                out_msg_free(m);
        }
        if (c->prev)
                c->prev->next = c->next;
        else
                s->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        s->n_conns--;
        c->next = s->dead;
        s->dead = c;
        (void)sd_event_source_set_enabled(s->reap_src, SD_EVENT_ONESHOT);
}

/* ---- Descriptors passed with requests ----------------------------------- */

static void conn_lose_fds(struct conn *c, uint64_t pos)
{
        if (!c->fds_lost) {
                c->fds_lost = true;
                c->lost_pos = pos;
        }
}

/* Keep the fds of one recvmsg(), tagged with the stream offset of its
 * first byte: the request whose bytes span that offset gets them. */
static void conn_take_fds(struct conn *c, struct msghdr *mh)
{
        for (struct cmsghdr *h = CMSG_FIRSTHDR(mh); h; h = CMSG_NXTHDR(mh, h)) {
                if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t n = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < n; i++) {
                        int fd;
                        memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
                        if (c->n_fds < SAVD_CONTROL_MAX_FDS && !(mh->msg_flags & MSG_CTRUNC)) {
                                c->fds[c->n_fds++] = (struct pending_fd) { fd, c->rx_pos };
                        } else {
                                close(fd);
                                conn_lose_fds(c, c->rx_pos);
                        }
                }
        }
        if (mh->msg_flags & MSG_CTRUNC)
                conn_lose_fds(c, c->rx_pos);
}

/* Move the fds that arrived before offset end into out[]; returns how many. */
static unsigned conn_claim_fds(struct conn *c, uint64_t end, int *out)
{
        unsigned n = 0, keep = 0;

        for (unsigned i = 0; i < c->n_fds; i++) {
                if (c->fds[i].pos < end)
                        out[n++] = c->fds[i].fd;
                else
                        c->fds[keep++] = c->fds[i];
        }
        c->n_fds = keep;
        return n;
}

static bool conn_claim_lost(struct conn *c, uint64_t end)
{
        if (!c->fds_lost || c->lost_pos >= end)
                return false;
        c->fds_lost = false;
        return true;
}

/* ---- Commands ----------------------------------------------------------- */

struct cmd_ctx {
        struct conn *c;
        const struct ctl_request *req;
        int *fds;                       /* claimed by the handler: set to -1 */
        unsigned n_fds;
        int reply_fd;                   /* sent with the reply */
        struct json_object *ret;
        char *err;
        size_t errlen;
};

static int take_one_fd(struct cmd_ctx *x, int *ret)
{
        *ret = -1;
        if (x->n_fds > 1) {
                snprintf(x->err, x->errlen, "%s takes at most one file descriptor, got %u",
                         x->req->cmd->name, x->n_fds);
                return -EINVAL;
        }
        if (x->n_fds == 1) {
                *ret = x->fds[0];
                x->fds[0] = -1;
        }
        return 0;
}

static int cmd_save(struct server *s, struct cmd_ctx *x)
{
        const char *channel = ctl_arg_string(x->req, "channel");
        struct job_save_params p = {
                .name = ctl_arg_string(x->req, "name"),
                .output = ctl_arg_string(x->req, "output"),
                .overwrite = ctl_arg_bool(x->req, "overwrite", false),
        };
        struct job_save_result res;
        int r;

        if (channel && strcmp(channel, "unix") != 0 && strcmp(channel, "fd") != 0) {
                snprintf(x->err, x->errlen, "'channel' must be \"unix\" or \"fd\", got '%s'", channel);
                return -EINVAL;
        }
        p.channel_fd = channel && strcmp(channel, "fd") == 0;
        r = take_one_fd(x, &p.output_fd);
        if (r < 0)
                return r;
        r = job_save(s->jobs, &p, &res, x->err, x->errlen);
        if (r < 0)
                return r;
        x->ret = json_object_new_object();
        json_object_object_add(x->ret, "job", json_object_new_uint64(res.id));
        if (p.channel_fd)
                json_object_object_add(x->ret, "data-fd", json_object_new_boolean(true));
        else
                json_object_object_add(x->ret, "data-uri", json_object_new_string(res.data_uri));
        x->reply_fd = res.data_fd;
        return 0;
}

static int cmd_restore(struct server *s, struct cmd_ctx *x)
{
        struct ctl_restore_args a;
        struct job_restore_params p;
        struct job_save_result res;
        int r = ctl_restore_args(x->req, &a, x->err, x->errlen);

        if (r < 0)
                return r;
        p = (struct job_restore_params) {
                .name = a.name, .file = a.file, .to = a.to,
                .native = a.native, .channel_fd = a.channel_fd,
        };
        r = take_one_fd(x, &p.input_fd);
        if (r < 0)
                return r;
        r = job_restore(s->jobs, &p, &res, x->err, x->errlen);
        if (r < 0)
                return r;
        x->ret = json_object_new_object();
        json_object_object_add(x->ret, "job", json_object_new_uint64(res.id));
        if (a.native && a.channel_fd)
                json_object_object_add(x->ret, "data-fd", json_object_new_boolean(true));
        else if (a.native)
                json_object_object_add(x->ret, "data-uri", json_object_new_string(res.data_uri));
        x->reply_fd = res.data_fd;
        return 0;
}

static int cmd_job(struct server *s, struct cmd_ctx *x)
{
        uint64_t id = ctl_arg_uint(x->req, "job", 0);
        int r;

        switch (x->req->cmd->id) {
        case CTL_CMD_QUERY_JOB:
                r = job_info(s->jobs, id, &x->ret);
                if (r == -ESRCH)
                        snprintf(x->err, x->errlen, "job %" PRIu64 " not found", id);
                return r;
        case CTL_CMD_JOB_CANCEL:
                return job_cancel(s->jobs, id, x->err, x->errlen);
        default:
                return job_dismiss(s->jobs, id, x->err, x->errlen);
        }
}

static uint64_t mono_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

static struct json_object *stats_json(struct server *s)
{
        struct json_object *o = job_stats(s->jobs);

        json_object_object_add(o, "clients", json_object_new_int((int)s->n_conns));
        json_object_object_add(o, "clients-accepted", json_object_new_uint64(s->accepted));
        json_object_object_add(o, "clients-refused",
                               json_object_new_uint64(s->refused_peer + s->refused_full));
        json_object_object_add(o, "uptime", json_object_new_uint64((mono_usec() - s->started_usec) / 1000000));
        return o;
}

static int dispatch(struct server *s, struct cmd_ctx *x)
{
        enum ctl_command_id id = x->req->cmd->id;

        if (x->n_fds > 0 && id != CTL_CMD_SAVE && id != CTL_CMD_RESTORE) {
                snprintf(x->err, x->errlen, "%s takes no file descriptors", x->req->cmd->name);
                return -EINVAL;
        }
        switch (id) {
        case CTL_CMD_QMP_CAPABILITIES:
                return 0;
        case CTL_CMD_QUERY_VERSION:
                x->ret = ctl_version_new(SAVD_VERSION);
                return 0;
        case CTL_CMD_SAVE:
                return cmd_save(s, x);
        case CTL_CMD_RESTORE:
                return cmd_restore(s, x);
        case CTL_CMD_QUERY_JOBS:
                x->ret = job_list(s->jobs);
                return 0;
        case CTL_CMD_QUERY_JOB:
        case CTL_CMD_JOB_CANCEL:
        case CTL_CMD_JOB_DISMISS:
                return cmd_job(s, x);
        case CTL_CMD_QUERY_STATS:
                x->ret = stats_json(s);
                return 0;
        default:
                snprintf(x->err, x->errlen, "command not implemented");
                return -ENOSYS;
        }
}

/* One complete request object (taken) that ended at stream offset end. */
static void conn_handle(struct conn *c, struct json_object *obj, uint64_t end)
{
        char err[SAVD_CONTROL_MAX_ERROR] = "";
        int fds[SAVD_CONTROL_MAX_FDS];
        struct ctl_request req;
        unsigned n_fds = conn_claim_fds(c, end, fds);
        bool lost = conn_claim_lost(c, end);
        struct cmd_ctx x = { .c = c, .req = &req, .fds = fds, .n_fds = n_fds, .reply_fd = -1,
                             .err = err, .errlen = sizeof(err) };
        int r = ctl_request_parse(&req, obj, err, sizeof(err));

        if (r >= 0 && lost) {
                snprintf(err, sizeof(err), "file descriptors were lost: at most %u may be passed "
                         "with one request", SAVD_CONTROL_MAX_FDS);
                r = -ETOOMANYREFS;
        }
        if (r >= 0)
                r = dispatch(c->s, &x);
        if (r < 0) {
                json_object_put(x.ret);
                closep(&x.reply_fd);
                log_debug("control client pid %d: %s", (int)c->cred.pid, err);
                conn_send_error(c, r, err[0] ? err : strerror(-r), req.id);
        } else {
                conn_send(c, ctl_return_new(x.ret, req.id), x.reply_fd);
        }
        for (unsigned i = 0; i < n_fds; i++)
                closep(&fds[i]);
        ctl_request_done(&req);
}

/* ---- Reading ------------------------------------------------------------ */

static void conn_process(struct conn *c, const char *buf, size_t n)
{
        size_t off = 0;

        while (off < n && !c->dead) {
                char err[SAVD_CONTROL_MAX_ERROR];
                struct json_object *obj;
                size_t used;
                int r = ctl_reader_feed(&c->reader, buf + off, n - off, &used, &obj, err, sizeof(err));

                off += used;
                if (r == 0)
                        break;
                if (r < 0) {
                        int fds[SAVD_CONTROL_MAX_FDS];
                        unsigned k = conn_claim_fds(c, c->rx_pos + off, fds);
                        while (k)
                                close(fds[--k]);
                        (void)conn_claim_lost(c, c->rx_pos + off);
                        conn_send_error(c, r, err, NULL);
                        continue;
                }
                conn_handle(c, obj, c->rx_pos + off);
        }
        c->rx_pos += n;
}

static int conn_read(struct conn *c)
{
        char buf[SAVD_CONTROL_READ_CHUNK];
        union {
                struct cmsghdr h;
                char b[CMSG_SPACE(sizeof(int) * SAVD_CONTROL_MAX_FDS)];
        } cm;
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = &cm, .msg_controllen = sizeof(cm) };
        ssize_t n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);

        if (n < 0)
                return (errno == EAGAIN || errno == EINTR) ? 0 : -errno;
        conn_take_fds(c, &mh);
        if (n == 0) {
                c->read_eof = true;
                return 0;
        }
        conn_process(c, buf, (size_t)n);
        return 0;
}

static int on_conn_io(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct conn *c = userdata;

        if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->read_eof && conn_read(c) < 0) {
                conn_close(c);
                return 0;
        }
        if (c->dead)
                return 0;
        if (conn_flush(c) < 0 || (c->read_eof && !c->out))
                conn_close(c);
        return 0;
}

/* ---- Accepting ---------------------------------------------------------- */

static bool gid_allowed(const struct server *s, gid_t gid)
{
        for (size_t i = 0; i < s->n_allowed_gids; i++)
                if (s->allowed_gids[i] == gid)
                        return true;
        return false;
}

/* Root, savd's own user, or a member (primary or supplementary group at
 * connect time) of an allowed group. */
static bool peer_allowed(const struct server *s, int fd, const struct ucred *uc)
{
        _cleanup_free_ gid_t *groups = NULL;
        socklen_t len = 64 * sizeof(gid_t);

        if (uc->uid == 0 || uc->uid == geteuid() || gid_allowed(s, uc->gid))
                return true;
        if (s->n_allowed_gids == 0)
                return false;
        for (;;) {
                gid_t *g = realloc(groups, len);
                if (!g)
                        return false;
                groups = g;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
                        break;
                if (errno != ERANGE || len > SAVD_PEER_MAX_GROUPS * sizeof(gid_t))
                        return false;
        }
        for (size_t i = 0; i < len / sizeof(gid_t); i++)
                if (gid_allowed(s, groups[i]))
                        return true;
        return false;
}

/* An error line for a client we will not serve, then close. */
static void refuse(int fd, int err, const char *desc)
{
        struct json_object *msg = ctl_error_new(err, desc, NULL);
        char *buf;
        size_t len;

        if (ctl_format(msg, &buf, &len) >= 0) {
                (void)!send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                free(buf);
        }
        json_object_put(msg);
        close(fd);
}

static int conn_new(struct server *s, int fd, const struct ucred *uc)
{
        struct conn *c = calloc(1, sizeof(*c));
        int r;

        if (!c)
                return -ENOMEM;
        *c = (struct conn) { .s = s, .fd = fd, .cred = *uc };
        c->out_tail = &c->out;
        r = ctl_reader_init(&c->reader, SAVD_CONTROL_MAX_REQUEST);
        if (r >= 0)
                r = sd_event_add_io(s->event, &c->src, fd, EPOLLIN, on_conn_io, c);
        if (r < 0) {
                ctl_reader_done(&c->reader);
                free(c);
                return r;
        }
        c->next = s->conns;
        if (s->conns)
                s->conns->prev = c;
        s->conns = c;
        s->n_conns++;
        s->accepted++;
        conn_send(c, ctl_greeting_new(SAVD_VERSION), -1);
        return 0;
}

static void accept_one(struct server *s, int fd)
{
        struct ucred uc;
        socklen_t len = sizeof(uc);
        char msg[160];

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0) {
                log_warning("SO_PEERCRED: %m, closing the connection");
                close(fd);
                return;
        }
        if (!peer_allowed(s, fd, &uc)) {
                s->refused_peer++;
                log_notice("control connection from uid %u gid %u pid %d refused: not allowed",
                           uc.uid, uc.gid, (int)uc.pid);
                snprintf(msg, sizeof(msg), "permission denied: uid %u is not root and not in a "
                         "group savd allows", uc.uid);
                refuse(fd, -EACCES, msg);
                return;
        }
        if (s->n_conns >= s->max_clients) {
                s->refused_full++;
                log_debug("control connection from pid %d refused: %u clients", (int)uc.pid, s->n_conns);
                snprintf(msg, sizeof(msg), "too many clients (max-clients is %u)", s->max_clients);
                refuse(fd, -EUSERS, msg);
                return;
        }
        if (conn_new(s, fd, &uc) < 0) {
                log_warning("control connection: out of resources, closing it");
                close(fd);
        }
}

static int on_pause_end(sd_event_source *src, uint64_t usec, void *userdata)
{
        struct server *s = userdata;

        for (unsigned i = 0; i < s->n_listeners; i++)
                (void)sd_event_source_set_enabled(s->listen_src[i], SD_EVENT_ON);
        return 0;
}

/* Out of descriptors: stop accepting for a moment instead of spinning. */
static void pause_accepting(struct server *s)
{
        log_warning("accept on the control socket: %m; pausing");
        for (unsigned i = 0; i < s->n_listeners; i++)
                (void)sd_event_source_set_enabled(s->listen_src[i], SD_EVENT_OFF);
        (void)sd_event_source_set_time_relative(s->pause_src, SERVER_ACCEPT_PAUSE_USEC);
        (void)sd_event_source_set_enabled(s->pause_src, SD_EVENT_ONESHOT);
}

static int on_accept(sd_event_source *src, int lfd, uint32_t revents, void *userdata)
{
        struct server *s = userdata;

        for (unsigned batch = 0; batch < 64; batch++) {
                int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0) {
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                                pause_accepting(s);
                        else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                log_warning("accept on the control socket: %m, ignoring");
                        break;
                }
                accept_one(s, fd);
        }
        return 0;
}

/* ---- Listeners ---------------------------------------------------------- */

static int add_listener(struct server *s, int fd)
{
        int r;

        if (s->n_listeners >= SERVER_MAX_LISTENERS)
                return -E2BIG;
        r = fcntl(fd, F_GETFL);
        if (r < 0 || fcntl(fd, F_SETFL, r | O_NONBLOCK) < 0)
                return -errno;
        r = sd_event_add_io(s->event, &s->listen_src[s->n_listeners], fd, EPOLLIN, on_accept, s);
        if (r < 0)
                return r;
        s->listen_fds[s->n_listeners++] = fd;
        return 0;
}

/* Socket activation: take every fd that is a listening AF_UNIX stream
 * socket; close and report anything else. */
static int listen_from_manager(struct server *s)
{
        int n = sd_listen_fds(true);

        if (n < 0)
                log_warning("sd_listen_fds: %s, ignoring", strerror(-n));
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0) {
                        log_warning("fd %d from the service manager is not a listening AF_UNIX "
                                    "stream socket, closing it", fd);
                        close(fd);
                } else if (add_listener(s, fd) < 0) {
                        log_warning("fd %d from the service manager: cannot listen on it, closing it", fd);
                        close(fd);
                } else {
                        log_info("control socket from the service manager (fd %d)", fd);
                }
        }
        return (int)s->n_listeners;
}

/* A socket file that nobody listens on is a leftover: remove it.  One
 * that answers belongs to a running daemon: refuse to start. */
static int clear_stale_socket(const struct sockaddr_un *sa, char *err, size_t errlen)
{
        _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (probe >= 0 && connect(probe, (const struct sockaddr *)sa, sizeof(*sa)) == 0) {
                snprintf(err, errlen, "another savd is listening on '%s'", sa->sun_path);
                return -EADDRINUSE;
        }
        if (unlink(sa->sun_path) < 0 && errno != ENOENT) {
                snprintf(err, errlen, "unlink '%s': %s", sa->sun_path, strerror(errno));
                return -errno;
        }
        return 0;
}

static void socket_access(struct server *s, const char *path, unsigned mode)
{
        if (chmod(path, mode) < 0)
                log_warning("chmod '%s': %m, ignoring", path);
        /* The socket's group is the first allowed group, so that the mode's
         * group bits mean what allow-groups says. */
        if (geteuid() == 0 && s->n_allowed_gids > 0 && chown(path, 0, s->allowed_gids[0]) < 0)
                log_warning("chown '%s': %m, ignoring", path);
}

static int bind_control(struct server *s, const struct savd_config *cfg, char *err, size_t errlen)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        int r;

        r = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", cfg->runtime_dir,
                     SAVD_CONTROL_SOCKET_NAME);
        if (r < 0 || (size_t)r >= sizeof(sa.sun_path)) {
                snprintf(err, errlen, "runtime-dir '%s' is too long for a socket path", cfg->runtime_dir);
                return -ENAMETOOLONG;
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                goto fail;
        r = clear_stale_socket(&sa, err, errlen);
        if (r < 0)
                return r;
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                goto fail;
        if (!(s->bound_path = strdup(sa.sun_path)))
                return -ENOMEM;
        socket_access(s, sa.sun_path, cfg->control_socket_mode);
        if (listen(fd, SOMAXCONN) < 0)
                goto fail;
        r = add_listener(s, fd);
        if (r < 0) {
                snprintf(err, errlen, "control socket: %s", strerror(-r));
                return r;
        }
        TAKE_FD(fd);
        log_info("listening on %s", sa.sun_path);
        return 0;
fail:
        r = -errno;
        snprintf(err, errlen, "control socket '%s': %s", sa.sun_path, strerror(errno));
        return r;
}

/* ---- Configuration ------------------------------------------------------ */

static int resolve_group(const char *name, gid_t *gid, char *err, size_t errlen)
{
        char *end;
        unsigned long v = strtoul(name, &end, 10);

        if (name[0] >= '0' && name[0] <= '9' && !*end && v < UINT32_MAX) {
                *gid = (gid_t)v;
                return 0;
        }
        struct group *g = getgrnam(name);       /* only the loop thread resolves */
        if (!g) {
                snprintf(err, errlen, "allow-groups: unknown group '%s'", name);
                return -ENOENT;
        }
        *gid = g->gr_gid;
        return 0;
}

static int resolve_groups(const struct savd_config *cfg, gid_t **ret, size_t *n,
                          char *err, size_t errlen)
{
        _cleanup_free_ gid_t *gids = calloc(MAX(cfg->n_allow_groups, 1), sizeof(gid_t));
        size_t k = 0;

        if (!gids)
                return -ENOMEM;
        if (!cfg->allow_groups_set) {
                struct group *g = getgrnam(SAVD_DEFAULT_GROUP);  /* used only if it exists */
                if (g)
                        gids[k++] = g->gr_gid;
        }
        for (size_t i = 0; i < cfg->n_allow_groups; i++) {
                int r = resolve_group(cfg->allow_groups[i], &gids[k], err, errlen);
                if (r < 0)
                        return r;
                k++;
        }
        *ret = TAKE_PTR(gids);
        *n = k;
        return 0;
}

int server_apply_config(struct server *s, const struct savd_config *cfg, char *err, size_t errlen)
{
        gid_t *gids;
        size_t n;
        int r = resolve_groups(cfg, &gids, &n, err, errlen);

        if (r < 0)
                return r;
        free(s->allowed_gids);
        s->allowed_gids = gids;
        s->n_allowed_gids = n;
        s->max_clients = cfg->max_clients;
        if (s->bound_path)
                socket_access(s, s->bound_path, cfg->control_socket_mode);
        return 0;
}

/* ---- Life --------------------------------------------------------------- */

int server_new(struct server **ret, sd_event *e, const struct savd_config *cfg,
               char *err, size_t errlen)
{
        struct server *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(e);
        s->started_usec = mono_usec();
        r = server_apply_config(s, cfg, err, errlen);
        if (r >= 0)
                r = sd_event_add_defer(e, &s->reap_src, on_reap, s);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->reap_src, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_time_relative(e, &s->pause_src, CLOCK_MONOTONIC,
                                               SERVER_ACCEPT_PAUSE_USEC, 0, on_pause_end, s);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->pause_src, SD_EVENT_OFF);
        if (r < 0) {
                if (!err[0])
                        snprintf(err, errlen, "event loop: %s", strerror(-r));
                server_free(s);
                return r;
        }
        if (listen_from_manager(s) == 0) {
                r = bind_control(s, cfg, err, errlen);
                if (r < 0) {
                        server_free(s);
                        return r;
                }
        }
        *ret = s;
        return 0;
}

void server_set_jobs(struct server *s, struct job_manager *m)
{
        s->jobs = m;
}

unsigned server_clients(const struct server *s)
{
        return s->n_conns;
}

void server_free(struct server *s)
{
        if (!s)
                return;
        while (s->conns)
                conn_close(s->conns);
        on_reap(NULL, s);
        for (unsigned i = 0; i < s->n_listeners; i++) {
                sd_event_source_disable_unref(s->listen_src[i]);
                close(s->listen_fds[i]);
        }
        if (s->bound_path && unlink(s->bound_path) < 0 && errno != ENOENT)
                log_warning("unlink '%s': %m, ignoring", s->bound_path);
        free(s->bound_path);
        sd_event_source_disable_unref(s->reap_src);
        sd_event_source_disable_unref(s->pause_src);
        free(s->allowed_gids);
        sd_event_unref(s->event);
        free(s);
}
