/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Jobs (see job.h): creation with the checks at the edge (names, output
 * paths confined to the output dir by job-paths.c, handed-over fds,
 * limits), the data channel of a save (a per-job socket or a socketpair),
 * the job thread, state reporting through an eventfd, progress events,
 * cancel, dismiss and the daemon-wide counters.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "control.h"
#include "job.h"
#include "job-paths.h"
#include "log.h"
#include "macro.h"
#include "session.h"
#include "shm-bitmap.h"
#include "stale-temps.h"
#include "writer-pool.h"

#define JOB_STATE_QUEUE 8       /* every state at most once per job */
#define JOB_TEXT_MAX 24

enum job_type { JOB_SAVE, JOB_RESTORE };

struct job {
        struct job_manager *m;
        struct job *next;               /* in id order */
        uint64_t id;
        enum job_type type;
        char *name;
        char *output;                   /* save: as given; restore: the file as given */
        char *path;                     /* full path of the output / input, or NULL for fd */
        char *to;                       /* QEMU restore: "unix:PATH" */
        bool native;                    /* restore: the savd native protocol */
        bool channel_fd;
        char *sock_path;                /* unix channel: the data socket */
        char data_uri[SAVD_DATA_URI_MAX];
        int listen_fd;
        sd_event_source *listen_src;
        int data_fd;
        int file_fd;                    /* handed-over output, or the opened input */

        pthread_t thread;
        bool thread_running;            /* started and not yet joined */
        atomic_bool cancelled;
        const char *cancel_reason;      /* written by the loop before the flag */

        struct savd_limits limits;
        struct save_request sreq;
        struct restore_request rreq;
        atomic_uint_fast64_t bytes_sent;

        pthread_mutex_t lock;           /* guards everything below */
        enum ctl_job_state state;
        enum ctl_job_state queue[JOB_STATE_QUEUE];      /* not yet reported */
        unsigned n_queue;
        char error[SESSION_ERR_MAX];
        char protocol[JOB_TEXT_MAX];
        char io_mode[JOB_TEXT_MAX];
        const struct shm_bitmap_header *shm;    /* mapped read-only */
        uint64_t rt_created, rt_started, rt_ended;      /* CLOCK_REALTIME usec */
        uint64_t mono_started, mono_ended;              /* CLOCK_MONOTONIC usec */

        uint64_t progress_mark;         /* loop only: figures at the last JOB_PROGRESS */
        bool progress_sent;
};

struct job_manager {
        sd_event *event;
        sd_event_source *wake_src;
        sd_event_source *timer_src;
        int wake_fd;                    /* eventfd: threads -> loop */
        int output_dir_fd;
        char *output_dir;
        char *jobs_dir;
        struct savd_limits limits;
        struct writer_config writer;
        struct buffer_cache *buffers;   /* write buffers kept between jobs */
        unsigned max_jobs;

        struct job *jobs;
        uint64_t next_id;
        unsigned n_active;
        unsigned n_ended;

        uint64_t ended_by_state[_CTL_JOB_STATE_MAX];    /* since start-up */
        uint64_t created;
        uint64_t ended_bytes;           /* "bytes" of ended jobs */
        uint64_t ended_bytes_written;

        job_event_fn emit;
        void *userdata;
        void (*shutdown_done)(void *userdata);
        void *shutdown_userdata;
};

/* ---- Small helpers ------------------------------------------------------ */

static uint64_t now_usec(clockid_t clk)
{
        struct timespec ts;

        clock_gettime(clk, &ts);
        return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

static struct json_object *json_time(uint64_t usec)
{
        return usec ? json_object_new_double((double)usec / 1e6) : NULL;
}

static void wake_loop(struct job_manager *m)
{
        uint64_t one = 1;

        (void)!write(m->wake_fd, &one, sizeof(one));
}

static struct job *job_find(struct job_manager *m, uint64_t id)
{
        for (struct job *j = m->jobs; j; j = j->next)
                if (j->id == id)
                        return j;
        return NULL;
}

static enum ctl_job_state job_state(struct job *j)
{
        pthread_mutex_lock(&j->lock);
        enum ctl_job_state s = j->state;
        pthread_mutex_unlock(&j->lock);
        return s;
}

/* ---- State changes (any thread) ----------------------------------------- */

static void push_state_locked(struct job *j, enum ctl_job_state s)
{
        uint64_t rt = now_usec(CLOCK_REALTIME), mono = now_usec(CLOCK_MONOTONIC);

        if (s == CTL_JOB_RUNNING && !j->mono_started) {
                j->rt_started = rt;
                j->mono_started = mono;
        }
        if (ctl_job_state_ended(s)) {
                j->rt_ended = rt;
                j->mono_ended = mono;
        }
        j->state = s;
        if (j->n_queue < JOB_STATE_QUEUE)
                j->queue[j->n_queue++] = s;
}

static void job_set_state(struct job *j, enum ctl_job_state s)
{
        pthread_mutex_lock(&j->lock);
        push_state_locked(j, s);
        pthread_mutex_unlock(&j->lock);
        wake_loop(j->m);
}

/* The end of a job: r is the session's result, err its message. */
static void job_finish(struct job *j, int r, const char *err)
{
        enum ctl_job_state s;

        pthread_mutex_lock(&j->lock);
        if (j->type == JOB_SAVE && j->sreq.protocol[0])
                snprintf(j->protocol, sizeof(j->protocol), "%s", j->sreq.protocol);
        if (j->type == JOB_SAVE && j->sreq.io_mode[0])
                snprintf(j->io_mode, sizeof(j->io_mode), "%s", j->sreq.io_mode);
        if (j->type == JOB_RESTORE && j->rreq.io_mode[0])
                snprintf(j->io_mode, sizeof(j->io_mode), "%s", j->rreq.io_mode);
        if (r >= 0) {
                s = CTL_JOB_COMPLETED;
        } else if (atomic_load(&j->cancelled)) {
                s = CTL_JOB_CANCELLED;
                snprintf(j->error, sizeof(j->error), "%s", j->cancel_reason);
        } else {
                s = CTL_JOB_FAILED;
                snprintf(j->error, sizeof(j->error), "%s", err && err[0] ? err : strerror(-r));
        }
        push_state_locked(j, s);
        pthread_mutex_unlock(&j->lock);
        wake_loop(j->m);
}

/* ---- Session callbacks (job thread) ------------------------------------- */

static void on_output_ready(void *opaque, struct mrm_output *o)
{
        struct job *j = opaque;
        struct shm_bitmap *b = mrm_output_bitmap(o);
        void *map = MAP_FAILED;

        /* Our own read-only view of the counters: it stays valid after the
         * session has freed the output, so the final figures remain. */
        if (b && b->fd >= 0)
                map = mmap(NULL, sizeof(struct shm_bitmap_header), PROT_READ, MAP_SHARED, b->fd, 0);
        if (map != MAP_FAILED && ((const struct shm_bitmap_header *)map)->magic != SHM_BITMAP_MAGIC) {
                munmap(map, sizeof(struct shm_bitmap_header));
                map = MAP_FAILED;
        }
        pthread_mutex_lock(&j->lock);
        if (map != MAP_FAILED && !j->shm)
                j->shm = map;
        else if (map != MAP_FAILED)
                munmap(map, sizeof(struct shm_bitmap_header));
        snprintf(j->io_mode, sizeof(j->io_mode), "%s", mrm_output_io_mode(o));
        snprintf(j->protocol, sizeof(j->protocol), "%s", j->sreq.protocol);
        pthread_mutex_unlock(&j->lock);
}

static void on_finalizing(void *opaque)
{
        job_set_state(opaque, CTL_JOB_FINALIZING);
}

/* ---- Job threads -------------------------------------------------------- */

/* Waiting for the client's first bytes is the "waiting-for-client" state;
 * a cancel shuts the channel down, which ends the wait too. */
static bool wait_for_data(struct job *j)
{
        struct pollfd p = { .fd = j->data_fd, .events = POLLIN };

        while (poll(&p, 1, -1) < 0)
                if (errno != EINTR)
                        return false;
        return !atomic_load(&j->cancelled);
}

static void *save_thread(void *arg)
{
        struct job *j = arg;
        char err[SESSION_ERR_MAX] = "";
        int r = -ECANCELED;

        if (wait_for_data(j)) {
                job_set_state(j, CTL_JOB_RUNNING);
                r = save_session_run(&j->sreq, err, sizeof(err));
        }
        job_finish(j, r, err);
        return NULL;
}

static void *restore_thread(void *arg)
{
        struct job *j = arg;
        char err[SESSION_ERR_MAX] = "";
        int r = -ECANCELED;

        if (!j->native) {
                if (!atomic_load(&j->cancelled))
                        r = qemu_restore_session_run(&j->rreq, err, sizeof(err));
        } else if (wait_for_data(j)) {
                /* The VMM's HELLO has arrived (or its first bytes). */
                job_set_state(j, CTL_JOB_RUNNING);
                r = native_restore_session_run(&j->rreq, err, sizeof(err));
        }
        job_finish(j, r, err);
        return NULL;
}

static int job_start_thread(struct job *j, char *err, size_t errlen)
{
        int r = pthread_create(&j->thread, NULL, j->type == JOB_SAVE ? save_thread : restore_thread, j);

        if (r != 0) {
                snprintf(err, errlen, "cannot start the job thread: %s", strerror(r));
                return -r;
        }
        j->thread_running = true;
        return 0;
}

/* ---- Releasing a job ---------------------------------------------------- */

static void close_listener(struct job *j)
{
        j->listen_src = sd_event_source_disable_unref(j->listen_src);
        closep(&j->listen_fd);
        j->listen_fd = -1;
        if (j->sock_path) {
                if (unlink(j->sock_path) < 0 && errno != ENOENT)
                        log_warning("unlink '%s': %m, ignoring", j->sock_path);
                free(j->sock_path);
                j->sock_path = NULL;
        }
}

static void release_channel(struct job *j)
{
        if (j->thread_running) {
                pthread_join(j->thread, NULL);
                j->thread_running = false;
        }
        close_listener(j);
        closep(&j->data_fd);
        j->data_fd = -1;
        closep(&j->file_fd);
        j->file_fd = -1;
}

static void job_free(struct job *j)
{
        if (!j)
                return;
        release_channel(j);
        if (j->shm)
                munmap((void *)j->shm, sizeof(struct shm_bitmap_header));
        pthread_mutex_destroy(&j->lock);
        free(j->name);
        free(j->output);
        free(j->path);
        free(j->to);
        free(j);
}

static void job_unlink(struct job_manager *m, struct job *victim)
{
        for (struct job **p = &m->jobs; *p; p = &(*p)->next)
                if (*p == victim) {
                        *p = victim->next;
                        return;
                }
}

/* ---- Progress and info -------------------------------------------------- */

struct job_progress {
        uint64_t bytes, bytes_written, pages_written, pages_zero, total_pages, total_bytes;
        uint64_t throughput;            /* bytes per second of "bytes" */
};

static uint64_t shm_load(const uint64_t *p)
{
        return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void job_progress_locked(struct job *j, struct job_progress *p)
{
        *p = (struct job_progress) {};
        if (j->shm) {
                p->bytes = shm_load(&j->shm->c.bytes_received);
                p->bytes_written = shm_load(&j->shm->c.bytes_written);
                p->pages_written = shm_load(&j->shm->c.pages_written);
                p->pages_zero = shm_load(&j->shm->c.pages_zero);
                p->total_pages = shm_load(&j->shm->c.pages_total);
        }
        if (j->type == JOB_RESTORE) {
                p->bytes = atomic_load(&j->bytes_sent);
                p->total_bytes = __atomic_load_n(&j->rreq.bytes_total, __ATOMIC_RELAXED);
        }
        uint64_t start = j->mono_started;
        uint64_t end = j->mono_ended ? j->mono_ended : now_usec(CLOCK_MONOTONIC);
        if (start && end > start)
                p->throughput = (uint64_t)((double)p->bytes * 1e6 / (double)(end - start));
}

static void add_string_or_null(struct json_object *o, const char *key, const char *v)
{
        json_object_object_add(o, key, v && v[0] ? json_object_new_string(v) : NULL);
}

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
        json_object_object_add(o, key, json_object_new_uint64(v));
}

static void add_progress(struct json_object *o, const struct job_progress *p, enum job_type type)
{
        add_u64(o, "bytes", p->bytes);
        if (type == JOB_SAVE) {
                add_u64(o, "bytes-written", p->bytes_written);
                add_u64(o, "pages-written", p->pages_written);
                add_u64(o, "pages-zero", p->pages_zero);
                add_u64(o, "total-pages", p->total_pages);
        } else {
                add_u64(o, "total-bytes", p->total_bytes);
        }
        add_u64(o, "throughput", p->throughput);
}

static struct json_object *job_info_json(struct job *j)
{
        struct json_object *o = json_object_new_object();
        struct job_progress p;

        pthread_mutex_lock(&j->lock);
        job_progress_locked(j, &p);
        add_u64(o, "id", j->id);
        json_object_object_add(o, "name", json_object_new_string(j->name));
        json_object_object_add(o, "type", json_object_new_string(j->type == JOB_SAVE ? "save" : "restore"));
        json_object_object_add(o, "state", json_object_new_string(ctl_job_state_name(j->state)));
        add_string_or_null(o, "protocol", j->protocol);
        add_string_or_null(o, "io-mode", j->io_mode);
        if (j->type == JOB_SAVE) {
                json_object_object_add(o, "output", json_object_new_string(j->output));
                json_object_object_add(o, "channel", json_object_new_string(j->channel_fd ? "fd" : "unix"));
                add_string_or_null(o, "data-uri", j->data_uri);
        } else {
                json_object_object_add(o, "file", json_object_new_string(j->output));
                add_string_or_null(o, "to", j->to);
                add_string_or_null(o, "channel", j->native ? j->channel_fd ? "fd" : "unix" : NULL);
                add_string_or_null(o, "data-uri", j->data_uri);
        }
        add_progress(o, &p, j->type);
        json_object_object_add(o, "created", json_time(j->rt_created));
        json_object_object_add(o, "started", json_time(j->rt_started));
        json_object_object_add(o, "ended", json_time(j->rt_ended));
        add_string_or_null(o, "error", j->error);
        pthread_mutex_unlock(&j->lock);
        return o;
}

static void emit(struct job_manager *m, const char *name, struct json_object *data)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        m->emit(m->userdata, ctl_event_new(name, data, &ts));
}

static void emit_status(struct job_manager *m, struct job *j, enum ctl_job_state s)
{
        struct json_object *d = json_object_new_object();

        add_u64(d, "id", j->id);
        json_object_object_add(d, "name", json_object_new_string(j->name));
        json_object_object_add(d, "status", json_object_new_string(ctl_job_state_name(s)));
        emit(m, CTL_EVENT_JOB_STATUS_CHANGE, d);
}

/* ---- Loop side: reports from the threads -------------------------------- */

static void job_ended(struct job_manager *m, struct job *j)
{
        struct job_progress p;

        release_channel(j);
        pthread_mutex_lock(&j->lock);
        job_progress_locked(j, &p);
        enum ctl_job_state s = j->state;
        pthread_mutex_unlock(&j->lock);

        m->n_active--;
        m->n_ended++;
        m->ended_by_state[s]++;
        m->ended_bytes += p.bytes;
        m->ended_bytes_written += p.bytes_written;
        if (s == CTL_JOB_COMPLETED)
                log_info("job %" PRIu64 " '%s': completed, %" PRIu64 " bytes", j->id, j->name, p.bytes);
        else if (s == CTL_JOB_CANCELLED)
                log_notice("job %" PRIu64 " '%s': %s", j->id, j->name, j->error);
        else
                log_notice("job %" PRIu64 " '%s': failed: %s", j->id, j->name, j->error);
        emit(m, CTL_EVENT_JOB_COMPLETED, job_info_json(j));
}

static void job_report(struct job_manager *m, struct job *j)
{
        enum ctl_job_state q[JOB_STATE_QUEUE];
        unsigned n;

        pthread_mutex_lock(&j->lock);
        n = j->n_queue;
        memcpy(q, j->queue, n * sizeof(q[0]));
        j->n_queue = 0;
        pthread_mutex_unlock(&j->lock);

        for (unsigned i = 0; i < n; i++) {
                emit_status(m, j, q[i]);
                if (ctl_job_state_ended(q[i]))
                        job_ended(m, j);
        }
}

/* Forget the oldest ended jobs beyond the limit. */
static void prune_ended(struct job_manager *m)
{
        for (struct job *j = m->jobs, *next; j && m->n_ended > SAVD_MAX_ENDED_JOBS; j = next) {
                next = j->next;
                if (!j->thread_running && ctl_job_state_ended(job_state(j)) && !j->n_queue) {
                        job_unlink(m, j);
                        job_free(j);
                        m->n_ended--;
                }
        }
}

static void check_shutdown(struct job_manager *m)
{
        if (m->shutdown_done && m->n_active == 0) {
                void (*done)(void *) = m->shutdown_done;
                m->shutdown_done = NULL;
                done(m->shutdown_userdata);
        }
}

static int on_wake(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct job_manager *m = userdata;
        uint64_t v;

        (void)!read(fd, &v, sizeof(v));
        for (struct job *j = m->jobs; j; j = j->next)
                job_report(m, j);
        prune_ended(m);
        check_shutdown(m);
        return 0;
}

static int on_progress_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct job_manager *m = userdata;

        for (struct job *j = m->jobs; j; j = j->next) {
                struct job_progress p;
                pthread_mutex_lock(&j->lock);
                enum ctl_job_state st = j->state;
                job_progress_locked(j, &p);
                pthread_mutex_unlock(&j->lock);
                if (ctl_job_state_ended(st) || st == CTL_JOB_WAITING)
                        continue;
                /* Only news is sent: a stalled client makes no events. */
                uint64_t mark = p.bytes + p.pages_written + p.pages_zero;
                if (j->progress_sent && mark == j->progress_mark)
                        continue;
                j->progress_mark = mark;
                j->progress_sent = true;

                struct json_object *d = json_object_new_object();
                add_u64(d, "id", j->id);
                json_object_object_add(d, "status", json_object_new_string(ctl_job_state_name(st)));
                add_progress(d, &p, j->type);
                emit(m, CTL_EVENT_JOB_PROGRESS, d);
        }
        sd_event_source_set_time(s, usec + SAVD_PROGRESS_INTERVAL_USEC);
        return 0;
}

/* ---- Checks at the edge ------------------------------------------------- */

static int check_name(const char *name, char *err, size_t errlen)
{
        for (const unsigned char *c = (const unsigned char *)name; *c; c++)
                if (*c < 0x20 || *c == 0x7f) {
                        snprintf(err, errlen, "'name' must not contain control characters");
                        return -EINVAL;
                }
        return 0;
}

static int check_can_start(struct job_manager *m, const char *name, char *err, size_t errlen)
{
        if (m->shutdown_done) {
                snprintf(err, errlen, "savd is shutting down");
                return -ESHUTDOWN;
        }
        if (m->n_active >= m->max_jobs) {
                snprintf(err, errlen, "too many jobs at once (max-jobs is %u)", m->max_jobs);
                return -EAGAIN;
        }
        return check_name(name, err, errlen);
}

static struct job *job_writing(struct job_manager *m, const char *path)
{
        for (struct job *j = m->jobs; j; j = j->next)
                if (j->type == JOB_SAVE && j->path && strcmp(j->path, path) == 0 &&
                    !ctl_job_state_ended(job_state(j)))
                        return j;
        return NULL;
}

/* ---- Creating jobs ------------------------------------------------------ */

static struct job *job_new(struct job_manager *m, enum job_type type, const char *name)
{
        struct job *j = calloc(1, sizeof(*j));

        if (!j)
                return NULL;
        j->m = m;
        j->type = type;
        j->id = m->next_id++;
        j->listen_fd = j->data_fd = j->file_fd = -1;
        atomic_init(&j->cancelled, false);
        atomic_init(&j->bytes_sent, 0);
        pthread_mutex_init(&j->lock, NULL);
        j->limits = m->limits;
        j->rt_created = now_usec(CLOCK_REALTIME);
        j->name = strdup(name);
        if (!j->name) {
                job_free(j);
                return NULL;
        }
        return j;
}

static inline void job_freep(struct job **j)
{
        job_free(*j);
}

static void job_add(struct job_manager *m, struct job *j)
{
        struct job **p = &m->jobs;

        while (*p)
                p = &(*p)->next;
        *p = j;
        m->n_active++;
        m->created++;
        wake_loop(m);           /* report the first state */
}

static int on_data_connect(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct job *j = userdata;
        char err[SESSION_ERR_MAX];
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

        if (c < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_warning("job %" PRIu64 ": accept on '%s': %m, ignoring", j->id, j->sock_path);
                return 0;
        }
        /* One connection per job: a second one (a multifd channel, say)
         * is refused by the closed socket rather than left hanging. */
        j->data_fd = j->sreq.data_fd = j->rreq.data_fd = c;
        close_listener(j);
        log_debug("job %" PRIu64 ": client connected", j->id);
        int r = job_start_thread(j, err, sizeof(err));
        if (r < 0)
                job_finish(j, r, err);
        return 0;
}

static int job_listen(struct job_manager *m, struct job *j, char *err, size_t errlen)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int r;

        r = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%" PRIu64 ".sock", m->jobs_dir, j->id);
        if (r < 0 || (size_t)r >= sizeof(sa.sun_path)) {
                snprintf(err, errlen, "the runtime directory's path is too long for a socket");
                return -ENAMETOOLONG;
        }
        j->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (j->listen_fd < 0)
                goto fail;
        (void)unlink(sa.sun_path);
        /* The umask (0027) keeps the socket out of other users' reach
         * until the chmod narrows it to 0600. */
        if (bind(j->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                goto fail;
        if (!(j->sock_path = strdup(sa.sun_path)))
                return -ENOMEM;
        if (chmod(sa.sun_path, 0600) < 0 || listen(j->listen_fd, 1) < 0)
                goto fail;
        r = sd_event_add_io(m->event, &j->listen_src, j->listen_fd, EPOLLIN, on_data_connect, j);
        if (r < 0) {
                snprintf(err, errlen, "data socket: %s", strerror(-r));
                return r;
        }
        snprintf(j->data_uri, sizeof(j->data_uri), "unix:%s", sa.sun_path);
        return 0;
fail:
        r = -errno;
        snprintf(err, errlen, "data socket '%s': %s", sa.sun_path, strerror(errno));
        return r;
}

/* The data channel of a job that waits for its client: a socketpair (the
 * other end in *peer, for the reply) or a per-job listening socket. */
static int job_open_channel(struct job_manager *m, struct job *j, bool channel_fd, int *peer,
                            char *err, size_t errlen)
{
        int sv[2];

        j->channel_fd = channel_fd;
        if (!channel_fd)
                return job_listen(m, j, err, errlen);
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
                snprintf(err, errlen, "socketpair: %s", strerror(errno));
                return -errno;
        }
        j->data_fd = sv[0];
        *peer = sv[1];
        return 0;
}

/* Channel fd: the thread starts now and waits for the first bytes;
 * channel unix: once the client connected (on_data_connect). */
static int job_wait_for_client(struct job *j, char *err, size_t errlen)
{
        j->state = CTL_JOB_WAITING;
        j->queue[j->n_queue++] = CTL_JOB_WAITING;
        return j->channel_fd ? job_start_thread(j, err, errlen) : 0;
}

static void setup_save_request(struct job_manager *m, struct job *j, bool overwrite)
{
        j->sreq = (struct save_request) {
                .data_fd = j->data_fd,
                .out = {
                        .path = j->path,
                        .fd = j->file_fd,
                        .overwrite = overwrite,
                        .writer = m->writer,
                },
                .limits = &j->limits,
                .cancelled = &j->cancelled,
                .output_ready = on_output_ready,
                .finalizing = on_finalizing,
                .job = j,
        };
}

/* Where the output goes: a checked path, or the handed-over fd. */
static int save_target(struct job_manager *m, const struct job_save_params *p, int ofd,
                       char **ret_path, char *err, size_t errlen)
{
        int r;

        if (strcmp(p->output, "fd") == 0)
                return path_check_handed_fd(ofd, true, err, errlen);
        if (ofd >= 0) {
                snprintf(err, errlen, "a file descriptor was passed but 'output' is not \"fd\"");
                return -EINVAL;
        }
        r = path_check_output(m->output_dir_fd, m->output_dir, p->output, p->overwrite, ret_path,
                              err, errlen);
        if (r < 0)
                return r;
        struct job *other = job_writing(m, *ret_path);
        if (other) {
                snprintf(err, errlen, "'%s' is being written by job %" PRIu64, p->output, other->id);
                return -EBUSY;
        }
        return 0;
}

int job_save(struct job_manager *m, struct job_save_params *p, struct job_save_result *res,
             char *err, size_t errlen)
{
        _cleanup_close_ int ofd = TAKE_FD(p->output_fd), peer = -1;
        _cleanup_(job_freep) struct job *j = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        r = check_can_start(m, p->name, err, errlen);
        if (r >= 0)
                r = save_target(m, p, ofd, &path, err, errlen);
        if (r < 0)
                return r;
        if (!(j = job_new(m, JOB_SAVE, p->name)) || !(j->output = strdup(p->output)))
                return -ENOMEM;
        j->path = TAKE_PTR(path);
        j->file_fd = TAKE_FD(ofd);
        r = job_open_channel(m, j, p->channel_fd, &peer, err, errlen);
        if (r < 0)
                return r;
        setup_save_request(m, j, p->overwrite);
        r = job_wait_for_client(j, err, errlen);
        if (r < 0)
                return r;

        log_info("job %" PRIu64 " '%s': save to %s, data channel %s", j->id, j->name,
                 j->path ? j->path : "a handed-over fd", p->channel_fd ? "fd" : j->data_uri);
        res->id = j->id;
        snprintf(res->data_uri, sizeof(res->data_uri), "%s", j->data_uri);
        res->data_fd = TAKE_FD(peer);
        job_add(m, TAKE_PTR(j));
        return 0;
}

static int connect_unix(const char *path, char *err, size_t errlen)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;

        if (!path[0] || strlen(path) >= sizeof(sa.sun_path)) {
                snprintf(err, errlen, "'to': the socket path must be 1 to %zu bytes",
                         sizeof(sa.sun_path) - 1);
                return -EINVAL;
        }
        strcpy(sa.sun_path, path);
        /* Non-blocking so that a peer with a full listen queue cannot
         * stall the loop; the job thread then uses it blocking. */
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int e = errno;
                snprintf(err, errlen, "connect to '%s': %s", path,
                         e == EAGAIN ? "its listen queue is full" : strerror(e));
                return -e;
        }
        if (fcntl(fd, F_SETFL, 0) < 0)
                return -errno;
        return TAKE_FD(fd);
}

static int restore_source(struct job_manager *m, struct job_restore_params *p, int *fd,
                          char **path, char *err, size_t errlen)
{
        if (strcmp(p->file, "fd") == 0)
                return path_check_handed_fd(*fd, false, err, errlen);
        if (*fd >= 0) {
                snprintf(err, errlen, "a file descriptor was passed but 'file' is not \"fd\"");
                return -EINVAL;
        }
        int r = path_open_input(m->output_dir_fd, m->output_dir, p->file, path, err, errlen);
        if (r < 0)
                return r;
        *fd = r;
        return 0;
}

static void setup_restore_request(struct job *j)
{
        j->rreq = (struct restore_request) {
                .path = j->path ? j->path : "(handed-over fd)",
                .input_fd = j->file_fd,
                .data_fd = j->data_fd,
                .limits = &j->limits,
                .cancelled = &j->cancelled,
                .bytes_sent = &j->bytes_sent,
        };
        snprintf(j->protocol, sizeof(j->protocol), "%s", j->native ? "native" : "qemu");
}

int job_restore(struct job_manager *m, struct job_restore_params *p, struct job_save_result *res,
                char *err, size_t errlen)
{
        _cleanup_close_ int ifd = TAKE_FD(p->input_fd), dfd = -1, peer = -1;
        _cleanup_(job_freep) struct job *j = NULL;
        _cleanup_free_ char *path = NULL;
        const char *name = p->name ? p->name : p->file;
        int r;

        *res = (struct job_save_result) { .data_fd = -1 };
        r = check_can_start(m, name, err, errlen);
        if (r < 0)
                return r;
        if (!p->native && (!p->to || strncmp(p->to, "unix:", 5) != 0)) {
                snprintf(err, errlen, "'to' must be \"unix:PATH\" (a QEMU -incoming socket)");
                return -EINVAL;
        }
        r = restore_source(m, p, &ifd, &path, err, errlen);
        if (r < 0)
                return r;
        /* QEMU waits on -incoming: connect now, so that a refusal is the
         * reply.  A native VMM connects to us instead. */
        if (!p->native && (dfd = connect_unix(p->to + 5, err, errlen)) < 0)
                return dfd;
        if (!(j = job_new(m, JOB_RESTORE, name)) || !(j->output = strdup(p->file)) ||
            (p->to && !(j->to = strdup(p->to))))
                return -ENOMEM;
        j->path = TAKE_PTR(path);
        j->file_fd = TAKE_FD(ifd);
        j->data_fd = TAKE_FD(dfd);
        j->native = p->native;
        if (p->native && (r = job_open_channel(m, j, p->channel_fd, &peer, err, errlen)) < 0)
                return r;
        setup_restore_request(j);
        if (p->native) {
                r = job_wait_for_client(j, err, errlen);
        } else {
                push_state_locked(j, CTL_JOB_RUNNING);
                r = job_start_thread(j, err, errlen);
        }
        if (r < 0)
                return r;
        log_info("job %" PRIu64 " '%s': restore %s to %s", j->id, j->name, j->rreq.path,
                 j->to ? j->to : p->channel_fd ? "a native VMM, data channel fd" : j->data_uri);
        res->id = j->id;
        snprintf(res->data_uri, sizeof(res->data_uri), "%s", j->data_uri);
        res->data_fd = TAKE_FD(peer);
        job_add(m, TAKE_PTR(j));
        return 0;
}

/* ---- Queries and control ------------------------------------------------ */

int job_info(struct job_manager *m, uint64_t id, struct json_object **ret)
{
        struct job *j = job_find(m, id);

        if (!j)
                return -ESRCH;
        *ret = job_info_json(j);
        return 0;
}

struct json_object *job_list(struct job_manager *m)
{
        struct json_object *a = json_object_new_array();

        for (struct job *j = m->jobs; j; j = j->next)
                json_object_array_add(a, job_info_json(j));
        return a;
}

static void job_request_cancel(struct job *j, const char *reason)
{
        if (atomic_load(&j->cancelled))
                return;
        j->cancel_reason = reason;
        atomic_store(&j->cancelled, true);
        if (j->thread_running)
                (void)shutdown(j->data_fd, SHUT_RDWR);    /* wakes the session */
        else
                job_finish(j, -ECANCELED, NULL);         /* never started */
}

static int job_lookup(struct job_manager *m, uint64_t id, struct job **ret, char *err, size_t errlen)
{
        *ret = job_find(m, id);
        if (!*ret) {
                snprintf(err, errlen, "job %" PRIu64 " not found", id);
                return -ESRCH;
        }
        return 0;
}

int job_cancel(struct job_manager *m, uint64_t id, char *err, size_t errlen)
{
        struct job *j;
        int r = job_lookup(m, id, &j, err, errlen);

        if (r < 0)
                return r;
        enum ctl_job_state s = job_state(j);
        if (ctl_job_state_ended(s)) {
                snprintf(err, errlen, "job %" PRIu64 " has already ended (%s)", id, ctl_job_state_name(s));
                return -EINVAL;
        }
        log_info("job %" PRIu64 " '%s': cancel requested", j->id, j->name);
        job_request_cancel(j, "cancelled by request");
        return 0;
}

int job_dismiss(struct job_manager *m, uint64_t id, char *err, size_t errlen)
{
        struct job *j;
        int r = job_lookup(m, id, &j, err, errlen);

        if (r < 0)
                return r;
        /* Ended, and the end already reported (the thread is joined). */
        if (j->thread_running || !ctl_job_state_ended(job_state(j)) || j->n_queue) {
                snprintf(err, errlen, "job %" PRIu64 " has not ended yet", id);
                return -EINVAL;
        }
        job_unlink(m, j);
        job_free(j);
        m->n_ended--;
        return 0;
}

/* Write-buffer memory: what running jobs hold beyond their base, the
 * budget for it, and what is kept for the next jobs. */
static struct json_object *buffer_stats(struct job_manager *m)
{
        struct json_object *o = json_object_new_object();
        struct buffer_cache_stats bs;

        buffer_cache_get_stats(m->buffers, &bs);
        add_u64(o, "charged-bytes", bs.charged_bytes);
        add_u64(o, "budget-bytes", bs.budget_bytes);
        add_u64(o, "cached-bytes", bs.cached_bytes);
        return o;
}

struct json_object *job_stats(struct job_manager *m)
{
        unsigned by_state[_CTL_JOB_STATE_MAX] = {};
        uint64_t bytes = m->ended_bytes, written = m->ended_bytes_written;
        struct json_object *o = json_object_new_object(), *states = json_object_new_object();
        struct json_object *ended = json_object_new_object();

        for (struct job *j = m->jobs; j; j = j->next) {
                struct job_progress p;
                pthread_mutex_lock(&j->lock);
                by_state[j->state]++;
                if (!ctl_job_state_ended(j->state)) {
                        job_progress_locked(j, &p);
                        bytes += p.bytes;
                        written += p.bytes_written;
                }
                pthread_mutex_unlock(&j->lock);
        }
        for (unsigned s = 0; s < _CTL_JOB_STATE_MAX; s++) {
                json_object_object_add(states, ctl_job_state_name(s), json_object_new_int(by_state[s]));
                if (ctl_job_state_ended(s))
                        add_u64(ended, ctl_job_state_name(s), m->ended_by_state[s]);
        }
        json_object_object_add(o, "jobs", states);
        json_object_object_add(o, "jobs-ended", ended);
        add_u64(o, "jobs-created", m->created);
        json_object_object_add(o, "buffers", buffer_stats(m));
        add_u64(o, "bytes", bytes);
        add_u64(o, "bytes-written", written);
        return o;
}

void job_status_line(struct job_manager *m, char *buf, size_t len)
{
        unsigned active = 0, waiting = 0;
        uint64_t written = m->ended_bytes_written;

        for (struct job *j = m->jobs; j; j = j->next) {
                struct job_progress p;
                pthread_mutex_lock(&j->lock);
                if (!ctl_job_state_ended(j->state)) {
                        active++;
                        waiting += j->state == CTL_JOB_WAITING;
                        job_progress_locked(j, &p);
                        written += p.bytes_written;
                }
                pthread_mutex_unlock(&j->lock);
        }
        snprintf(buf, len, "%u jobs active (%u waiting for a client), %" PRIu64 " completed, "
                 "%" PRIu64 " failed, %" PRIu64 " MiB written", active, waiting,
                 m->ended_by_state[CTL_JOB_COMPLETED], m->ended_by_state[CTL_JOB_FAILED],
                 written >> 20);
}

void job_shutdown(struct job_manager *m, void (*done)(void *userdata), void *userdata)
{
        m->shutdown_done = done;
        m->shutdown_userdata = userdata;
        for (struct job *j = m->jobs; j; j = j->next)
                if (!ctl_job_state_ended(job_state(j)))
                        job_request_cancel(j, "cancelled because savd is shutting down");
        check_shutdown(m);
}

/* ---- The manager -------------------------------------------------------- */

void job_manager_set_config(struct job_manager *m, const struct savd_config *cfg)
{
        unsigned n = cfg->writers ? cfg->writers : cfg->fake_numa_nodes ? cfg->fake_numa_nodes : 1;
        uint64_t per_worker = cfg->max_inflight_bytes / n / SAVD_WRITER_BUFFER;

        m->max_jobs = cfg->max_jobs;
        m->limits = (struct savd_limits) {
                .max_blocks = cfg->max_blocks,
                .max_block_size = cfg->max_block_size,
                .max_inflight_bytes = cfg->max_inflight_bytes,
                .max_device_state = SAVD_MAX_DEVICE_STATE,
        };
        m->writer = (struct writer_config) {
                .n_workers = cfg->writers,
                .fake_nodes = cfg->fake_numa_nodes,
                .io_mode = cfg->io_mode,
                .buffer_size = SAVD_WRITER_BUFFER,
                /* max-inflight-bytes is what a job may hold in memory that
                 * the disk has not taken yet: it lets a VMM that sends faster
                 * than the disk writes finish at its own speed.  At least two
                 * buffers, so that filling and writing overlap. */
                .buffers_per_worker = (unsigned)MIN(MAX(2, per_worker), WP_MAX_SLOTS),
                /* Writing while QEMU sends takes CPU from it (and, in a
                 * virtual machine, time from the hypervisor): the disk
                 * trails a QEMU stream by this much. */
                .hold_bytes = MIN(cfg->absorb_bytes, cfg->max_inflight_bytes),
        };
        /* One job's worth of buffers stays mapped (reclaimable) after a job,
         * so the next save does not fault and zero it in again. */
        m->writer.cache = m->buffers;
        buffer_cache_set_max(m->buffers, cfg->max_inflight_bytes);
        buffer_cache_set_budget(m->buffers, cfg->max_buffer_bytes);
}

/* Data sockets left over by a daemon that did not exit cleanly. */
static void remove_stale_sockets(const char *dir)
{
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *d;
        struct dirent *de;

        if (dfd < 0 || !(d = fdopendir(dfd)))
                return;
        dfd = -1;
        while ((de = readdir(d))) {
                size_t l = strlen(de->d_name);
                if (l > 5 && strcmp(de->d_name + l - 5, ".sock") == 0 && de->d_type == DT_SOCK)
                        (void)unlinkat(dirfd(d), de->d_name, 0);
        }
        closedir(d);
}

static int manager_dirs(struct job_manager *m, const struct savd_config *cfg, char *err, size_t errlen)
{
        struct stat st;

        m->output_dir = realpath(cfg->output_dir, NULL);
        if (!m->output_dir ||
            (m->output_dir_fd = open(m->output_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
                snprintf(err, errlen, "output directory '%s': %s", cfg->output_dir, strerror(errno));
                return -errno;
        }
        if (asprintf(&m->jobs_dir, "%s/jobs", cfg->runtime_dir) < 0)
                return -ENOMEM;
        if (mkdir(m->jobs_dir, 0755) < 0 && errno != EEXIST) {
                snprintf(err, errlen, "mkdir '%s': %s", m->jobs_dir, strerror(errno));
                return -errno;
        }
        if (lstat(m->jobs_dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
                snprintf(err, errlen, "'%s' is not a directory owned by savd's user", m->jobs_dir);
                return -ENOTDIR;
        }
        remove_stale_sockets(m->jobs_dir);
        unsigned n = remove_stale_temps(m->output_dir_fd);
        if (n > 0)
                log_notice("removed %u temporary file%s left in '%s' by saves that never "
                           "completed", n, n == 1 ? "" : "s", m->output_dir);
        return 0;
}

int job_manager_new(struct job_manager **ret, sd_event *e, const struct savd_config *cfg,
                    job_event_fn emitfn, void *userdata, char *err, size_t errlen)
{
        struct job_manager *m = calloc(1, sizeof(*m));
        int r;

        if (!m)
                return -ENOMEM;
        *m = (struct job_manager) {
                .event = sd_event_ref(e), .wake_fd = -1, .output_dir_fd = -1,
                .next_id = 1, .emit = emitfn, .userdata = userdata,
        };
        r = buffer_cache_new(&m->buffers, cfg->max_inflight_bytes);
        if (r < 0) {
                snprintf(err, errlen, "out of memory");
                goto fail;
        }
        job_manager_set_config(m, cfg);
        r = manager_dirs(m, cfg, err, errlen);
        if (r < 0)
                goto fail;
        m->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (m->wake_fd < 0) {
                r = -errno;
                snprintf(err, errlen, "eventfd: %s", strerror(errno));
                goto fail;
        }
        r = sd_event_add_io(e, &m->wake_src, m->wake_fd, EPOLLIN, on_wake, m);
        if (r >= 0)
                r = sd_event_add_time_relative(e, &m->timer_src, CLOCK_MONOTONIC,
                                               SAVD_PROGRESS_INTERVAL_USEC, 0, on_progress_timer, m);
        if (r >= 0)
                r = sd_event_source_set_enabled(m->timer_src, SD_EVENT_ON);
        if (r < 0) {
                snprintf(err, errlen, "event loop: %s", strerror(-r));
                goto fail;
        }
        *ret = m;
        return 0;
fail:
        job_manager_free(m);
        return r;
}

void job_manager_free(struct job_manager *m)
{
        if (!m)
                return;
        /* Jobs still running are cancelled and waited for: nothing may
         * outlive the manager. */
        for (struct job *j = m->jobs; j; j = j->next)
                if (!ctl_job_state_ended(job_state(j)))
                        job_request_cancel(j, "cancelled because savd is shutting down");
        while (m->jobs) {
                struct job *j = m->jobs;
                m->jobs = j->next;
                job_free(j);
        }
        sd_event_source_disable_unref(m->wake_src);
        sd_event_source_disable_unref(m->timer_src);
        buffer_cache_free(m->buffers);
        closep(&m->wake_fd);
        closep(&m->output_dir_fd);
        free(m->output_dir);
        free(m->jobs_dir);
        sd_event_unref(m->event);
        free(m);
}
