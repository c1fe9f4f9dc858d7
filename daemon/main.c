/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * savd: the daemon's entry point.  Parse the command line and the
 * configuration, set up the control server and the job manager on an
 * sd-event loop, tell the service manager we are ready, run the loop, and
 * on SIGTERM cancel the jobs, wait for them and exit 0.  SIGHUP reloads
 * the configuration (what can change without a restart, see savd(8)).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "job.h"
#include "log.h"
#include "macro.h"
#include "notify.h"
#include "options.h"
#include "server.h"

#define SAVD_STATUS_INTERVAL_USEC 1000000ULL
#define SAVD_PID_FILE "savd.pid"
#define SAVD_NOFILE_MAX 65536U          /* soft fd limit we ask for */

struct daemon {
        const struct savd_options *opts;
        struct savd_config cfg;
        sd_event *event;
        struct server *server;
        struct job_manager *jobs;
        sd_event_source *status_src;
        char *pid_file;
        bool stopping;
};

/* ---- Signals ------------------------------------------------------------ */

static void jobs_done(void *userdata)
{
        struct daemon *d = userdata;

        log_info("all jobs ended, exiting");
        sd_event_exit(d->event, 0);
}

static int on_terminate(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        struct daemon *d = userdata;

        if (d->stopping)
                return 0;
        d->stopping = true;
        log_info("received %s, cancelling jobs", strsignal((int)si->ssi_signo));
        notify_stopping("stopping: cancelling jobs");
        job_shutdown(d->jobs, jobs_done, d);
        return 0;
}

static void reload_keep(struct savd_config *n, char **field, char *current, const char *key)
{
        if (strcmp(*field, current) != 0)
                log_warning("reload: '%s' cannot change without a restart; keeping '%s'", key, current);
        free(*field);
        *field = strdup(current);
}

static int on_reload(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        struct daemon *d = userdata;
        struct savd_config n;
        char err[512] = "";

        notify_reloading();
        if (options_build_config(d->opts, &n, err, sizeof(err)) < 0 ||
            server_apply_config(d->server, &n, err, sizeof(err)) < 0) {
                log_error("reload: %s; keeping the current configuration", err);
                config_done(&n);
                notify_ready(NULL);
                return 0;
        }
        reload_keep(&n, &n.runtime_dir, d->cfg.runtime_dir, "runtime-dir");
        reload_keep(&n, &n.output_dir, d->cfg.output_dir, "output-dir");
        job_manager_set_config(d->jobs, &n);
        log_max_level = n.log_level;
        config_done(&d->cfg);
        d->cfg = n;
        log_info("configuration reloaded (log level %s, max-jobs %u, max-clients %u)",
                 config_log_level_name(n.log_level), n.max_jobs, n.max_clients);
        notify_ready(NULL);
        return 0;
}

static void status_line(struct daemon *d, char *buf, size_t len)
{
        char jobs[200];

        job_status_line(d->jobs, jobs, sizeof(jobs));
        snprintf(buf, len, "%s; %u control clients", jobs, server_clients(d->server));
}

static int on_status_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        char status[256];

        status_line(userdata, status, sizeof(status));
        notify_status(status);
        return sd_event_source_set_time(s, usec + SAVD_STATUS_INTERVAL_USEC);
}

/* ---- Set-up ------------------------------------------------------------- */

static int mkdir_p(const char *path, mode_t mode)
{
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *slash = strchr(p + 1, '/');; slash = strchr(slash + 1, '/')) {
                if (slash)
                        *slash = '\0';
                if (mkdir(p, mode) == 0) {
                        if (chmod(p, mode) < 0)         /* past the umask */
                                return -errno;
                } else if (errno != EEXIST) {
                        return -errno;
                }
                if (!slash)
                        return 0;
                *slash = '/';
        }
}

static void process_setup(void)
{
        struct rlimit rl;
        sigset_t ss;

        /* New sockets and files never start out open to other users; the
         * code narrows or widens each one explicitly. */
        umask(0027);
        signal(SIGPIPE, SIG_IGN);
        /* A file size limit (RLIMIT_FSIZE) must fail the write that crosses
         * it with EFBIG, failing that job only, not kill the daemon. */
        signal(SIGXFSZ, SIG_IGN);
        /* Blocked before any thread exists, so only the loop sees them. */
        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigaddset(&ss, SIGHUP);
        sigprocmask(SIG_BLOCK, &ss, NULL);
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < MIN(rl.rlim_max, SAVD_NOFILE_MAX)) {
                rl.rlim_cur = MIN(rl.rlim_max, SAVD_NOFILE_MAX);
                (void)setrlimit(RLIMIT_NOFILE, &rl);
        }
}

static int setup_loop(struct daemon *d)
{
        int r = sd_event_default(&d->event);

        if (r >= 0)
                r = sd_event_add_signal(d->event, NULL, SIGTERM, on_terminate, d);
        if (r >= 0)
                r = sd_event_add_signal(d->event, NULL, SIGINT, on_terminate, d);
        if (r >= 0)
                r = sd_event_add_signal(d->event, NULL, SIGHUP, on_reload, d);
        if (r >= 0)
                r = sd_event_add_time_relative(d->event, &d->status_src, CLOCK_MONOTONIC,
                                               SAVD_STATUS_INTERVAL_USEC, 0, on_status_timer, d);
        if (r >= 0)
                r = sd_event_source_set_enabled(d->status_src, SD_EVENT_ON);
        if (r >= 0)
                r = sd_event_set_watchdog(d->event, true);
        if (r < 0)
                log_error("event loop: %s", strerror(-r));
        else if (r > 0)
                log_debug("watchdog enabled");
        return r;
}

static int setup(struct daemon *d)
{
        char err[512] = "";
        int r;

        r = mkdir_p(d->cfg.runtime_dir, 0755);
        if (r < 0) {
                log_error("runtime directory '%s': %s", d->cfg.runtime_dir, strerror(-r));
                return r;
        }
        r = setup_loop(d);
        if (r < 0)
                return r;
        r = server_new(&d->server, d->event, &d->cfg, err, sizeof(err));
        if (r >= 0)
                r = job_manager_new(&d->jobs, d->event, &d->cfg, server_broadcast, d->server,
                                    err, sizeof(err));
        if (r < 0) {
                log_error("%s", err[0] ? err : strerror(-r));
                return r;
        }
        server_set_jobs(d->server, d->jobs);
        return 0;
}

static void teardown(struct daemon *d)
{
        job_manager_free(d->jobs);
        server_free(d->server);
        sd_event_source_disable_unref(d->status_src);
        sd_event_unref(d->event);
        if (d->pid_file) {
                (void)unlink(d->pid_file);
                free(d->pid_file);
        }
        config_done(&d->cfg);
}

/* ---- Detaching ---------------------------------------------------------- */

/* Without --foreground the parent waits until the child is ready (or has
 * failed), so that `savd && savctl ...` works and errors reach the shell. */
static int detach(int *ready_fd)
{
        int p[2];
        char c;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid > 0) {
                close(p[1]);
                ssize_t n;
                while ((n = read(p[0], &c, 1)) < 0 && errno == EINTR)
                        ;
                _exit(n == 1 ? 0 : 1);
        }
        close(p[0]);
        setsid();
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
                dup2(null, STDIN_FILENO);
                dup2(null, STDOUT_FILENO);
                close(null);
        }
        *ready_fd = p[1];
        return 0;
}

static void write_pid_file(struct daemon *d)
{
        char buf[32];
        int n;

        if (asprintf(&d->pid_file, "%s/%s", d->cfg.runtime_dir, SAVD_PID_FILE) < 0) {
                d->pid_file = NULL;
                return;
        }
        _cleanup_close_ int fd = open(d->pid_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
        if (fd < 0 || write(fd, buf, (size_t)n) != n)
                log_warning("pid file '%s': %m, ignoring", d->pid_file);
}

/* ---- main --------------------------------------------------------------- */

static int run(struct daemon *d)
{
        char status[256];
        int ready_fd = -1, r;

        process_setup();
        if (!d->opts->foreground && detach(&ready_fd) < 0) {
                log_error("cannot detach: %m");
                return 1;
        }
        r = setup(d);
        if (r >= 0) {
                if (ready_fd >= 0) {
                        write_pid_file(d);
                        (void)!write(ready_fd, "R", 1);
                        closep(&ready_fd);
                }
                status_line(d, status, sizeof(status));
                notify_ready(status);
                log_info("savd %s ready (output dir %s)", SAVD_VERSION, d->cfg.output_dir);
                r = sd_event_loop(d->event);
                if (r < 0)
                        log_error("event loop: %s", strerror(-r));
                notify_stopping("stopping");
        }
        closep(&ready_fd);
        teardown(d);
        return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
        struct savd_options opts;
        struct daemon d = { .opts = &opts };
        char err[512] = "";
        int r;

        r = options_parse(&opts, argc, argv, err, sizeof(err));
        if (r > 0)
                return 0;
        if (r >= 0)
                r = options_build_config(&opts, &d.cfg, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "savd: %s\n", err);
                config_done(&d.cfg);
                return 2;
        }
        log_max_level = d.cfg.log_level;
        return run(&d);
}
