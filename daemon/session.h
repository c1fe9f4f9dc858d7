/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Sessions: the code that runs one job's data path on the job's own
 * thread.  The job (daemon/job.c) owns the sockets and the lifecycle; a
 * session reads the client's bytes, drives the output or input file, and
 * returns 0 or -errno with a message for the operator in err.
 *
 * Blocking I/O is fine here: each job has its own thread, so a slow client
 * or a slow disk only holds back its own job (back-pressure reaches the
 * client through the socket).  Cancellation: the job sets *cancelled and
 * shuts the data socket down; a session checks the flag between records
 * and treats a failed read as cancellation when it is set.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrm-output.h"

#define SESSION_ERR_MAX 512
#define SESSION_SNIFF_LEN 8             /* bytes read to tell protocols apart */

/* Limits from the daemon configuration that bound what a client controls. */
struct savd_limits {
        unsigned max_blocks;            /* RAM blocks per VM */
        uint64_t max_block_size;        /* bytes per block */
        uint64_t max_inflight_bytes;    /* write buffers per job */
        uint64_t max_device_state;      /* device-state bytes kept in memory */
};

struct save_request {
        int data_fd;                    /* connected data channel (not closed) */
        struct mrm_output_options out;  /* final path or handed-over fd, writer config */
        const struct savd_limits *limits;
        atomic_bool *cancelled;
        /* Called once the output exists, so the job can read progress from
         * its shared-memory counters; may be NULL. */
        void (*output_ready)(void *job, struct mrm_output *o);
        /* Called once when the client's data has all arrived and the
         * session starts mrm_output_commit(), so the job can show the
         * "finalizing" state; may be NULL. */
        void (*finalizing)(void *job);
        void *job;
        /* Filled by the session for the job's info. */
        char protocol[16];              /* "qemu" or "native" */
        char io_mode[24];
};

struct restore_request {
        const char *path;               /* mapped-ram file to read */
        int input_fd;                   /* or an fd handed over (-1: use path) */
        int data_fd;                    /* connected to the VMM (not closed) */
        const struct savd_limits *limits;
        atomic_bool *cancelled;
        atomic_uint_fast64_t *bytes_sent;       /* progress, may be NULL */
        uint64_t bytes_total;                    /* set by the session */
        char io_mode[24];                       /* set by the session: how the file is read */
};

/* Read the first bytes, tell the protocol apart and run the matching save
 * session (QEMU stream or native).  Never leaves a file in the final name
 * unless it returns 0. */
int save_session_run(struct save_request *req, char *err, size_t errlen);
/* Sniffed: the first n bytes already read from req->data_fd. */
int qemu_save_session_run(struct save_request *req, const uint8_t *sniffed, size_t n,
                          char *err, size_t errlen);
int native_save_session_run(struct save_request *req, const uint8_t *sniffed, size_t n,
                            char *err, size_t errlen);
/* Stream a mapped-ram file into a QEMU waiting on -incoming. */
int qemu_restore_session_run(struct restore_request *req, char *err, size_t errlen);
/* Fill a native VMM's memory fds from a mapped-ram file; req->data_fd is
 * connected to a client speaking the native protocol (it sends the magic
 * and HELLO with the RESTORE flag first). */
int native_restore_session_run(struct restore_request *req, char *err, size_t errlen);
