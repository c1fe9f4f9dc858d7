/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * savctl's commands that talk to the daemon over the JSON control socket:
 * save, restore, wait, jobs, cancel, dismiss, stats and version.  A small
 * blocking client underneath: connect, read the greeting, send a request
 * (optionally with a descriptor), read until its reply while handing
 * events to the caller.  Output is for people by default and JSON lines
 * with --json; exit codes are those of savctl(1).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "control.h"
#include "macro.h"
#include "savctl.h"

#define CLIENT_READ_CHUNK 65536
#define PROGRESS_BAR_WIDTH 30

struct client {
        int fd;
        struct ctl_reader reader;
        char buf[CLIENT_READ_CHUNK];
        size_t len, off;
        int fd_in;                      /* a descriptor that came with a reply */
        int64_t next_id;
};

/* Called for every event while waiting for a reply or for a job. */
typedef int (*event_fn)(void *userdata, struct json_object *event);

/* ---- The client --------------------------------------------------------- */

static void client_close(struct client *c)
{
        closep(&c->fd);
        closep(&c->fd_in);
        ctl_reader_done(&c->reader);
}

static void client_take_fds(struct client *c, struct msghdr *mh)
{
        for (struct cmsghdr *h = CMSG_FIRSTHDR(mh); h; h = CMSG_NXTHDR(mh, h)) {
                if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t n = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < n; i++) {
                        int fd;
                        memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
                        if (c->fd_in < 0)
                                c->fd_in = fd;
                        else
                                close(fd);
                }
        }
}

static int client_fill(struct client *c)
{
        union {
                struct cmsghdr h;
                char b[CMSG_SPACE(sizeof(int) * SAVD_CONTROL_MAX_FDS)];
        } cm;
        struct iovec iov = { .iov_base = c->buf, .iov_len = sizeof(c->buf) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = &cm, .msg_controllen = sizeof(cm) };
        ssize_t n;

        while ((n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
                ;
        if (n < 0)
                return -errno;
        client_take_fds(c, &mh);
        if (n == 0)
                return -ECONNRESET;
        c->len = (size_t)n;
        c->off = 0;
        return 0;
}

/* The next message from the daemon, whatever its kind. */
static int client_read(struct client *c, struct json_object **ret)
{
        char err[SAVD_CONTROL_MAX_ERROR];

        for (;;) {
                if (c->off == c->len) {
                        int r = client_fill(c);
                        if (r < 0)
                                return r;
                }
                size_t used;
                int r = ctl_reader_feed(&c->reader, c->buf + c->off, c->len - c->off, &used,
                                        ret, err, sizeof(err));
                c->off += used;
                if (r > 0)
                        return 0;
                if (r < 0) {
                        fprintf(stderr, "savctl: bad message from savd: %s\n", err);
                        return -EBADMSG;
                }
        }
}

static int client_connect(struct client *c, const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct json_object *greeting = NULL;
        int r;

        *c = (struct client) { .fd = -1, .fd_in = -1, .next_id = 1 };
        if (strlen(path) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "savctl: socket path '%s' is too long\n", path);
                return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, path);
        r = ctl_reader_init(&c->reader, SAVD_CONTROL_MAX_REPLY);
        if (r < 0)
                return r;
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                fprintf(stderr, "savctl: cannot connect to savd at '%s': %m\n", path);
                return -errno;
        }
        r = client_read(c, &greeting);
        if (r < 0) {
                fprintf(stderr, "savctl: savd at '%s' closed the connection\n", path);
                return r;
        }
        enum ctl_message_kind k = ctl_message_kind(greeting);
        if (k == CTL_MSG_ERROR) {
                struct json_object *e, *d;
                json_object_object_get_ex(greeting, "error", &e);
                json_object_object_get_ex(e, "desc", &d);
                fprintf(stderr, "savctl: savd refused the connection: %s\n", json_object_get_string(d));
                r = -EACCES;
        } else if (k != CTL_MSG_GREETING) {
                fprintf(stderr, "savctl: '%s' did not greet like savd\n", path);
                r = -EPROTO;
        }
        json_object_put(greeting);
        return r;
}

static int client_send(struct client *c, struct json_object *req, int fd)
{
        char *buf;
        size_t len, off = 0;
        int r = ctl_format(req, &buf, &len);

        if (r < 0)
                return r;
        while (off < len) {
                union {
                        struct cmsghdr h;
                        char b[CMSG_SPACE(sizeof(int))];
                } cm = {};
                struct iovec iov = { .iov_base = buf + off, .iov_len = len - off };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
                if (fd >= 0 && off == 0) {
                        mh.msg_control = &cm;
                        mh.msg_controllen = sizeof(cm);
                        struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
                        *h = (struct cmsghdr) { .cmsg_len = CMSG_LEN(sizeof(int)),
                                                .cmsg_level = SOL_SOCKET, .cmsg_type = SCM_RIGHTS };
                        memcpy(CMSG_DATA(h), &fd, sizeof(int));
                }
                ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        break;
                }
                off += (size_t)n;
        }
        free(buf);
        return r;
}

static const char *error_desc(struct json_object *msg)
{
        struct json_object *e, *d;

        if (json_object_object_get_ex(msg, "error", &e) && json_object_object_get_ex(e, "desc", &d))
                return json_object_get_string(d);
        return "unknown error";
}

/* Run one command: *ret gets the "return" value (owned).  Events that
 * arrive meanwhile go to on_event (may be NULL).  Returns 0, -EREMOTEIO
 * after printing the daemon's error, or another -errno. */
static int client_call(struct client *c, const char *cmd, struct json_object *args, int fd,
                       struct json_object **ret, event_fn on_event, void *userdata)
{
        struct json_object *req = json_object_new_object();
        int64_t id = c->next_id++;
        int r;

        json_object_object_add(req, "execute", json_object_new_string(cmd));
        if (args)
                json_object_object_add(req, "arguments", args);
        json_object_object_add(req, "id", json_object_new_int64(id));
        r = client_send(c, req, fd);
        json_object_put(req);
        if (r < 0) {
                fprintf(stderr, "savctl: sending to savd: %s\n", strerror(-r));
                return r;
        }
        for (;;) {
                struct json_object *msg, *mid;
                r = client_read(c, &msg);
                if (r < 0) {
                        fprintf(stderr, "savctl: lost the connection to savd\n");
                        return r;
                }
                enum ctl_message_kind k = ctl_message_kind(msg);
                if (k == CTL_MSG_EVENT && on_event)
                        on_event(userdata, msg);
                bool mine = json_object_object_get_ex(msg, "id", &mid) && json_object_get_int64(mid) == id;
                if ((k == CTL_MSG_RETURN || k == CTL_MSG_ERROR) && (mine || !mid)) {
                        if (k == CTL_MSG_ERROR) {
                                fprintf(stderr, "savctl: %s: %s\n", cmd, error_desc(msg));
                                json_object_put(msg);
                                return -EREMOTEIO;
                        }
                        json_object_object_get_ex(msg, "return", ret);
                        json_object_get(*ret);
                        json_object_put(msg);
                        return 0;
                }
                json_object_put(msg);
        }
}

/* Connect, run one command, close; exit code for savctl. */
static int simple_call(const struct savctl_ctx *ctx, const char *cmd, struct json_object *args,
                       struct json_object **ret)
{
        struct client c;
        int r = client_connect(&c, ctx->socket_path);

        if (r < 0) {
                json_object_put(args);
                client_close(&c);
                return r == -EACCES ? SAVCTL_EXIT_FAILED : SAVCTL_EXIT_CONNECT;
        }
        r = client_call(&c, cmd, args, -1, ret, NULL, NULL);
        client_close(&c);
        return r < 0 ? SAVCTL_EXIT_FAILED : SAVCTL_EXIT_OK;
}

/* ---- Formatting --------------------------------------------------------- */

static const char *fmt_bytes(uint64_t b, char *buf, size_t len)
{
        static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
        double v = (double)b;
        size_t u = 0;

        while (v >= 1024 && u + 1 < ELEMENTSOF(units)) {
                v /= 1024;
                u++;
        }
        snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
        return buf;
}

static uint64_t get_u64(struct json_object *o, const char *key)
{
        struct json_object *v;

        return json_object_object_get_ex(o, key, &v) ? json_object_get_uint64(v) : 0;
}

static const char *get_str(struct json_object *o, const char *key)
{
        struct json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static void print_json(struct json_object *o)
{
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                      JSON_C_TO_STRING_NOSLASHESCAPE));
        fflush(stdout);
}

/* ---- Waiting for a job -------------------------------------------------- */

static bool state_ended(const char *name)
{
        enum ctl_job_state s;

        return name && ctl_job_state_from_name(name, &s) == 0 && ctl_job_state_ended(s);
}

struct waiter {
        uint64_t id;
        bool tty;                       /* draw a bar instead of lines */
        bool json;
        bool bar_drawn;
        struct json_object *final;      /* the JOB_COMPLETED data */
};

static unsigned percent(struct json_object *d)
{
        uint64_t total = get_u64(d, "total-pages"), done = get_u64(d, "pages-written") +
                         get_u64(d, "pages-zero");

        if (!total) {
                total = get_u64(d, "total-bytes");
                done = get_u64(d, "bytes");
        }
        /* Pages sent again in later passes count twice: never claim 100
         * before the job says so. */
        return total ? (unsigned)MIN(99, done * 100 / total) : 0;
}

static void show_progress(struct waiter *w, struct json_object *d)
{
        char b1[32], b2[32];
        uint64_t bytes = get_u64(d, "bytes"), tput = get_u64(d, "throughput");
        unsigned pct = percent(d);

        if (w->json) {
                return;
        } else if (w->tty) {
                char bar[PROGRESS_BAR_WIDTH + 1];
                unsigned fill = pct * PROGRESS_BAR_WIDTH / 100;
                memset(bar, '#', fill);
                memset(bar + fill, '.', PROGRESS_BAR_WIDTH - fill);
                bar[PROGRESS_BAR_WIDTH] = '\0';
                printf("\r[%s] %3u%%  %s  %s/s   ", bar, pct, fmt_bytes(bytes, b1, sizeof(b1)),
                       fmt_bytes(tput, b2, sizeof(b2)));
                w->bar_drawn = true;
        } else {
                printf("job %" PRIu64 ": %s, %s, %s/s\n", w->id, get_str(d, "status") ?: "running",
                       fmt_bytes(bytes, b1, sizeof(b1)), fmt_bytes(tput, b2, sizeof(b2)));
        }
        fflush(stdout);
}

static int on_wait_event(void *userdata, struct json_object *ev)
{
        struct waiter *w = userdata;
        struct json_object *d;
        const char *name = get_str(ev, "event");

        if (!json_object_object_get_ex(ev, "data", &d) || get_u64(d, "id") != w->id || !name)
                return 0;
        if (strcmp(name, CTL_EVENT_JOB_PROGRESS) == 0)
                show_progress(w, d);
        else if (strcmp(name, CTL_EVENT_JOB_STATUS_CHANGE) == 0 && !w->tty && !w->json &&
                 !state_ended(get_str(d, "status")))    /* the end gets its own line */
                printf("job %" PRIu64 ": %s\n", w->id, get_str(d, "status") ?: "?");
        else if (strcmp(name, CTL_EVENT_JOB_COMPLETED) == 0 && !w->final)
                w->final = json_object_get(d);
        fflush(stdout);
        return 0;
}

static int print_final(struct waiter *w, struct json_object *info)
{
        const char *state = get_str(info, "state") ?: "?";
        bool ok = strcmp(state, "completed") == 0;
        char b1[32], b2[32];

        if (w->bar_drawn)
                printf("\n");
        if (w->json) {
                print_json(info);
        } else if (ok) {
                printf("job %" PRIu64 ": completed, %s at %s/s\n", w->id,
                       fmt_bytes(get_u64(info, "bytes"), b1, sizeof(b1)),
                       fmt_bytes(get_u64(info, "throughput"), b2, sizeof(b2)));
        } else {
                printf("job %" PRIu64 ": %s: %s\n", w->id, state, get_str(info, "error") ?: "no reason given");
        }
        fflush(stdout);
        return ok ? SAVCTL_EXIT_OK : SAVCTL_EXIT_FAILED;
}

/* Block until job id ends, on an open client. */
static int wait_job(struct client *c, uint64_t id, bool json)
{
        struct waiter w = { .id = id, .tty = !json && isatty(STDOUT_FILENO), .json = json };
        struct json_object *args = json_object_new_object(), *info = NULL;
        int r;

        json_object_object_add(args, "job", json_object_new_uint64(id));
        r = client_call(c, "query-job", args, -1, &info, on_wait_event, &w);
        if (r < 0)
                return SAVCTL_EXIT_FAILED;
        /* Ended before we asked: the reply says how.  Otherwise every
         * event from now on reaches this connection. */
        while (!w.final && !state_ended(get_str(info, "state"))) {
                struct json_object *msg;
                if (client_read(c, &msg) < 0) {
                        fprintf(stderr, "savctl: lost the connection to savd\n");
                        json_object_put(info);
                        return SAVCTL_EXIT_FAILED;
                }
                if (ctl_message_kind(msg) == CTL_MSG_EVENT)
                        on_wait_event(&w, msg);
                json_object_put(msg);
        }
        r = print_final(&w, w.final ? w.final : info);
        json_object_put(w.final);
        json_object_put(info);
        return r;
}

/* ---- Commands ----------------------------------------------------------- */

static int parse_id(const char *s, uint64_t *ret)
{
        char *end;

        if (!s || s[0] < '0' || s[0] > '9')
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end || v > SAVD_JOB_ID_MAX)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* getopt for a command: only --json and what the command adds. */
static int want_json(const struct savctl_ctx *ctx, int argc, char **argv, int nargs,
                     const char *usage)
{
        static const struct option opts[] = { { "json", no_argument, NULL, 'j' }, {} };
        bool json = ctx->json;
        int c;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                if (c != 'j') {
                        fprintf(stderr, "usage: savctl %s\n", usage);
                        return -EINVAL;
                }
                json = true;
        }
        if (argc - optind != nargs) {
                fprintf(stderr, "usage: savctl %s\n", usage);
                return -EINVAL;
        }
        return json;
}

struct save_opts {
        const char *name, *output;
        int output_fd;
        bool wait, overwrite, json;
};

static int parse_save(const struct savctl_ctx *ctx, int argc, char **argv, struct save_opts *o)
{
        static const struct option opts[] = {
                { "output",    required_argument, NULL, 'o' },
                { "output-fd", required_argument, NULL, 'F' },
                { "wait",      no_argument,       NULL, 'w' },
                { "overwrite", no_argument,       NULL, 'f' },
                { "json",      no_argument,       NULL, 'j' },
                {}
        };
        uint64_t fd;
        int c;

        *o = (struct save_opts) { .output_fd = -1, .json = ctx->json };
        while ((c = getopt_long(argc, argv, "o:", opts, NULL)) >= 0) {
                switch (c) {
                case 'o': o->output = optarg; break;
                case 'F':
                        if (parse_id(optarg, &fd) < 0 || fd > INT32_MAX) {
                                fprintf(stderr, "savctl save: --output-fd: '%s' is not a descriptor\n", optarg);
                                return -EINVAL;
                        }
                        o->output_fd = (int)fd;
                        o->output = "fd";
                        break;
                case 'w': o->wait = true; break;
                case 'f': o->overwrite = true; break;
                case 'j': o->json = true; break;
                default: return -EINVAL;
                }
        }
        if (argc - optind != 1 || !o->output) {
                fprintf(stderr, "usage: savctl save NAME --output FILE|--output-fd N [--overwrite] [--wait]\n");
                return -EINVAL;
        }
        o->name = argv[optind];
        return 0;
}

int savctl_cmd_save(const struct savctl_ctx *ctx, int argc, char **argv)
{
        struct json_object *args = json_object_new_object(), *ret = NULL;
        struct save_opts o;
        struct client c;
        int r;

        if (parse_save(ctx, argc, argv, &o) < 0) {
                json_object_put(args);
                return SAVCTL_EXIT_USAGE;
        }
        json_object_object_add(args, "name", json_object_new_string(o.name));
        json_object_object_add(args, "output", json_object_new_string(o.output));
        if (o.overwrite)
                json_object_object_add(args, "overwrite", json_object_new_boolean(true));
        if (client_connect(&c, ctx->socket_path) < 0) {
                json_object_put(args);
                client_close(&c);
                return SAVCTL_EXIT_CONNECT;
        }
        r = client_call(&c, "save", args, o.output_fd, &ret, NULL, NULL);
        if (r < 0) {
                client_close(&c);
                return SAVCTL_EXIT_FAILED;
        }
        /* The data URI first, on its own line, and at once: the caller
         * reads it to start the migration while we wait. */
        if (o.json)
                print_json(ret);
        else
                printf("%s\njob %" PRIu64 "\n", get_str(ret, "data-uri") ?: "", get_u64(ret, "job"));
        fflush(stdout);
        r = o.wait ? wait_job(&c, get_u64(ret, "job"), o.json) : SAVCTL_EXIT_OK;
        json_object_put(ret);
        client_close(&c);
        return r;
}

struct restore_opts {
        const char *file, *to;
        bool native, wait, json;
};

static int parse_restore(const struct savctl_ctx *ctx, int argc, char **argv, struct restore_opts *o)
{
        static const struct option opts[] = {
                { "to",     required_argument, NULL, 't' },
                { "native", no_argument,       NULL, 'n' },
                { "wait",   no_argument,       NULL, 'w' },
                { "json",   no_argument,       NULL, 'j' },
                {}
        };
        int c;

        *o = (struct restore_opts) { .json = ctx->json };
        while ((c = getopt_long(argc, argv, "t:", opts, NULL)) >= 0) {
                switch (c) {
                case 't': o->to = optarg; break;
                case 'n': o->native = true; break;
                case 'w': o->wait = true; break;
                case 'j': o->json = true; break;
                default: return -EINVAL;
                }
        }
        /* Exactly one of --to (QEMU) and --native. */
        if (argc - optind != 1 || !o->to == !o->native) {
                fprintf(stderr, "usage: savctl restore FILE --to unix:PATH|--native [--wait]\n");
                return -EINVAL;
        }
        o->file = argv[optind];
        return 0;
}

int savctl_cmd_restore(const struct savctl_ctx *ctx, int argc, char **argv)
{
        struct json_object *args, *ret = NULL;
        struct restore_opts o;
        struct client c;
        int r;

        if (parse_restore(ctx, argc, argv, &o) < 0)
                return SAVCTL_EXIT_USAGE;
        if (client_connect(&c, ctx->socket_path) < 0) {
                client_close(&c);
                return SAVCTL_EXIT_CONNECT;
        }
        args = json_object_new_object();
        json_object_object_add(args, "file", json_object_new_string(o.file));
        if (o.native)
                json_object_object_add(args, "protocol", json_object_new_string("native"));
        else
                json_object_object_add(args, "to", json_object_new_string(o.to));
        r = client_call(&c, "restore", args, -1, &ret, NULL, NULL);
        if (r < 0) {
                client_close(&c);
                return SAVCTL_EXIT_FAILED;
        }
        /* Native: the data URI first, on its own line and at once, for the
         * VMM to connect to while we wait (as for save). */
        if (o.json)
                print_json(ret);
        else if (o.native)
                printf("%s\njob %" PRIu64 "\n", get_str(ret, "data-uri") ?: "", get_u64(ret, "job"));
        else
                printf("job %" PRIu64 "\n", get_u64(ret, "job"));
        fflush(stdout);
        r = o.wait ? wait_job(&c, get_u64(ret, "job"), o.json) : SAVCTL_EXIT_OK;
        json_object_put(ret);
        client_close(&c);
        return r;
}

int savctl_cmd_wait(const struct savctl_ctx *ctx, int argc, char **argv)
{
        uint64_t id;
        struct client c;
        int json = want_json(ctx, argc, argv, 1, "wait ID [--json]"), r;

        if (json < 0)
                return SAVCTL_EXIT_USAGE;
        if (parse_id(argv[optind], &id) < 0) {
                fprintf(stderr, "savctl wait: '%s' is not a job id\n", argv[optind]);
                return SAVCTL_EXIT_USAGE;
        }
        if (client_connect(&c, ctx->socket_path) < 0) {
                client_close(&c);
                return SAVCTL_EXIT_CONNECT;
        }
        r = wait_job(&c, id, json);
        client_close(&c);
        return r;
}

static void print_job_line(struct json_object *j)
{
        char b1[32], b2[32];
        const char *err = get_str(j, "error");

        printf("%-5" PRIu64 " %-8s %-19s %-20s %10s %10s/s  %s%s%s\n", get_u64(j, "id"),
               get_str(j, "type") ?: "?", get_str(j, "state") ?: "?", get_str(j, "name") ?: "",
               fmt_bytes(get_u64(j, "bytes"), b1, sizeof(b1)),
               fmt_bytes(get_u64(j, "throughput"), b2, sizeof(b2)),
               get_str(j, "output") ?: get_str(j, "file") ?: "", err ? ": " : "", err ?: "");
}

int savctl_cmd_jobs(const struct savctl_ctx *ctx, int argc, char **argv)
{
        struct json_object *ret = NULL;
        int json = want_json(ctx, argc, argv, 0, "jobs [--json]"), r;

        if (json < 0)
                return SAVCTL_EXIT_USAGE;
        r = simple_call(ctx, "query-jobs", NULL, &ret);
        if (r != SAVCTL_EXIT_OK)
                return r;
        if (json) {
                print_json(ret);
        } else {
                printf("%-5s %-8s %-19s %-20s %10s %12s  %s\n", "ID", "TYPE", "STATE", "NAME",
                       "BYTES", "RATE", "FILE");
                for (size_t i = 0; i < json_object_array_length(ret); i++)
                        print_job_line(json_object_array_get_idx(ret, i));
        }
        json_object_put(ret);
        return SAVCTL_EXIT_OK;
}

/* cancel and dismiss: one job id, an empty reply. */
static int job_command(const struct savctl_ctx *ctx, int argc, char **argv, const char *cmd,
                       const char *done)
{
        struct json_object *args, *ret = NULL;
        char usage[64];
        uint64_t id;
        int json, r;

        snprintf(usage, sizeof(usage), "%s ID", argv[0]);
        json = want_json(ctx, argc, argv, 1, usage);
        if (json < 0)
                return SAVCTL_EXIT_USAGE;
        if (parse_id(argv[optind], &id) < 0) {
                fprintf(stderr, "savctl %s: '%s' is not a job id\n", argv[0], argv[optind]);
                return SAVCTL_EXIT_USAGE;
        }
        args = json_object_new_object();
        json_object_object_add(args, "job", json_object_new_uint64(id));
        r = simple_call(ctx, cmd, args, &ret);
        if (r == SAVCTL_EXIT_OK && json)
                print_json(ret);
        else if (r == SAVCTL_EXIT_OK)
                printf("job %" PRIu64 ": %s\n", id, done);
        json_object_put(ret);
        return r;
}

int savctl_cmd_cancel(const struct savctl_ctx *ctx, int argc, char **argv)
{
        return job_command(ctx, argc, argv, "job-cancel", "cancel requested");
}

int savctl_cmd_dismiss(const struct savctl_ctx *ctx, int argc, char **argv)
{
        return job_command(ctx, argc, argv, "job-dismiss", "dismissed");
}

static void print_object(const char *prefix, struct json_object *o)
{
        json_object_object_foreach(o, key, val) {
                if (json_object_is_type(val, json_type_object)) {
                        char p[128];
                        snprintf(p, sizeof(p), "%s%s.", prefix, key);
                        print_object(p, val);
                } else {
                        printf("%s%s: %s\n", prefix, key, json_object_get_string(val));
                }
        }
}

int savctl_cmd_stats(const struct savctl_ctx *ctx, int argc, char **argv)
{
        struct json_object *ret = NULL;
        int json = want_json(ctx, argc, argv, 0, "stats [--json]"), r;

        if (json < 0)
                return SAVCTL_EXIT_USAGE;
        r = simple_call(ctx, "query-stats", NULL, &ret);
        if (r == SAVCTL_EXIT_OK && json)
                print_json(ret);
        else if (r == SAVCTL_EXIT_OK)
                print_object("", ret);
        json_object_put(ret);
        return r;
}

int savctl_cmd_version(const struct savctl_ctx *ctx, int argc, char **argv)
{
        struct json_object *ret = NULL;
        int json = want_json(ctx, argc, argv, 0, "version [--json]"), r;

        if (json < 0)
                return SAVCTL_EXIT_USAGE;
        if (!json)
                printf("savctl %s\n", SAVD_VERSION);
        fflush(stdout);
        r = simple_call(ctx, "query-version", NULL, &ret);
        if (r == SAVCTL_EXIT_OK && json) {
                json_object_object_add(ret, "savctl", json_object_new_string(SAVD_VERSION));
                print_json(ret);
        } else if (r == SAVCTL_EXIT_OK) {
                printf("%s\n", get_str(ret, "package") ?: "savd ?");
        }
        json_object_put(ret);
        return r;
}
