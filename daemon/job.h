/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Jobs: one save or restore each, with an id, a state machine
 * (waiting-for-client -> running -> finalizing -> completed | failed |
 * cancelled), a thread that runs the session with blocking I/O, progress
 * read from the job's shared-memory counters, and events for the control
 * clients.
 *
 * A native restore has a data channel like a save's and the same states;
 * a QEMU restore starts in "running" (savd connects to QEMU).
 *
 * Threading: every function here runs on the event loop.  A job's thread
 * only runs the session and reports state changes through an eventfd that
 * the loop watches; the loop turns them into events, joins the thread and
 * releases the job's descriptors.  Cancelling sets the job's atomic flag
 * and shuts its data channel down, which makes the session fail and remove
 * its temporary file.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "conf.h"

struct json_object;
struct job_manager;

#define SAVD_MAX_ENDED_JOBS     256U    /* ended jobs kept for queries */
#define SAVD_PROGRESS_INTERVAL_USEC 1000000ULL  /* JOB_PROGRESS at most this often */
#define SAVD_DATA_URI_MAX       128
#define SAVD_MAX_DEVICE_STATE   (64ULL << 20)   /* device-state bytes a session keeps */
/* Bytes per writer buffer, so the most one write carries: 4 MiB writes
 * cost savd ~12% less CPU than 1 MiB ones in a QEMU stream save (ext4
 * allocates and converts extents per write). */
#define SAVD_WRITER_BUFFER      (4U << 20)

/* Receives each event (owned by the callee). */
typedef void (*job_event_fn)(void *userdata, struct json_object *event);

int job_manager_new(struct job_manager **ret, sd_event *e, const struct savd_config *cfg,
                    job_event_fn emit, void *userdata, char *err, size_t errlen);
void job_manager_free(struct job_manager *m);
/* Limits and writer settings for the jobs created from now on. */
void job_manager_set_config(struct job_manager *m, const struct savd_config *cfg);

struct job_save_params {
        const char *name;
        const char *output;             /* relative to the output dir, or "fd" */
        int output_fd;                  /* output "fd": the job takes it over */
        bool channel_fd;                /* hand back a socketpair end */
        bool overwrite;
};

struct job_save_result {
        uint64_t id;
        char data_uri[SAVD_DATA_URI_MAX];       /* "unix:PATH"; empty for channel fd */
        int data_fd;                    /* channel fd: for the caller to send and close */
};

/* A QEMU restore connects to "to" and runs at once.  A native restore
 * waits for the VMM on a data channel of its own, as a save does (a
 * per-job socket or a socketpair), and fills the memory fds the VMM hands
 * over there. */
struct job_restore_params {
        const char *name;               /* may be NULL: the file name */
        const char *file;               /* relative to the output dir, or "fd" */
        int input_fd;                   /* file "fd": the job takes it over */
        const char *to;                 /* qemu: "unix:PATH" of a QEMU -incoming */
        bool native;                    /* the savd native protocol */
        bool channel_fd;                /* native: hand back a socketpair end */
};

/* Both return -errno with a message for the client; params' fds are taken
 * over (closed on failure as well).  A restore's data_uri / data_fd are
 * set for a native restore only (else "" and -1). */
int job_save(struct job_manager *m, struct job_save_params *p, struct job_save_result *res,
             char *err, size_t errlen);
int job_restore(struct job_manager *m, struct job_restore_params *p, struct job_save_result *res,
                char *err, size_t errlen);

int job_info(struct job_manager *m, uint64_t id, struct json_object **ret);      /* -ESRCH */
struct json_object *job_list(struct job_manager *m);
int job_cancel(struct job_manager *m, uint64_t id, char *err, size_t errlen);
int job_dismiss(struct job_manager *m, uint64_t id, char *err, size_t errlen);
/* Counters for query-stats (jobs by state, totals, bytes). */
struct json_object *job_stats(struct job_manager *m);
/* One line for STATUS=. */
void job_status_line(struct job_manager *m, char *buf, size_t len);
/* Cancel every job; done() runs once all of them have ended. */
void job_shutdown(struct job_manager *m, void (*done)(void *userdata), void *userdata);
