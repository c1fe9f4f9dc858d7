/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The JSON control protocol of savd (QMP conventions; proto/control.md is
 * the reference): a framing reader that turns a byte stream into JSON
 * objects, the request parser with its command table and argument type
 * checks, and the encoders for the greeting, replies, errors and events.
 *
 * No I/O and no logging here: the daemon and savctl do the socket work.
 * Every error is a -errno plus a message for the peer; the mapping from
 * -errno to the QMP error class lives in ctl_error_class() and nowhere
 * else.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct json_object;
struct json_tokener;

/* Limits on what a control client controls. */
#define SAVD_CONTROL_MAX_REQUEST   (64U * 1024)    /* bytes of one request object */
#define SAVD_CONTROL_MAX_DEPTH     16              /* JSON nesting of a request */
#define SAVD_CONTROL_MAX_FDS       4               /* fds passed with one request */
#define SAVD_CONTROL_MAX_REPLY     (16U << 20)     /* bytes of one reply (client side) */
#define SAVD_CONTROL_MAX_ERROR     512             /* bytes of an error text */
#define SAVD_JOB_NAME_MAX          255             /* "name" of a job */
#define SAVD_CONTROL_PATH_MAX      4095            /* "output", "file", "to" */
#define SAVD_JOB_ID_MAX            UINT32_MAX      /* "job" */

/* ---- Error classes ------------------------------------------------------ */

enum ctl_error_class {
        CTL_ERROR_GENERIC,              /* "GenericError" */
        CTL_ERROR_COMMAND_NOT_FOUND,    /* "CommandNotFound" */
        CTL_ERROR_INVALID_PARAMETER,    /* "InvalidParameter" */
        CTL_ERROR_PERMISSION_DENIED,    /* "PermissionDenied" */
        CTL_ERROR_JOB_NOT_FOUND,        /* "JobNotFound" */
        CTL_ERROR_LIMIT_REACHED,        /* "LimitReached" */
};

/* The one place where an internal -errno becomes a wire error class. */
enum ctl_error_class ctl_error_class(int err);
const char *ctl_error_class_name(enum ctl_error_class c);

/* ---- Job states (shared by the daemon and savctl) ----------------------- */

enum ctl_job_state {
        CTL_JOB_WAITING,                /* "waiting-for-client" */
        CTL_JOB_RUNNING,                /* "running" */
        CTL_JOB_FINALIZING,             /* "finalizing" */
        CTL_JOB_COMPLETED,              /* "completed" */
        CTL_JOB_FAILED,                 /* "failed" */
        CTL_JOB_CANCELLED,              /* "cancelled" */
        _CTL_JOB_STATE_MAX,
};

const char *ctl_job_state_name(enum ctl_job_state s);
/* -EINVAL for an unknown name. */
int ctl_job_state_from_name(const char *name, enum ctl_job_state *ret);
static inline bool ctl_job_state_ended(enum ctl_job_state s)
{
        return s >= CTL_JOB_COMPLETED;
}

#define CTL_EVENT_JOB_STATUS_CHANGE "JOB_STATUS_CHANGE"
#define CTL_EVENT_JOB_PROGRESS      "JOB_PROGRESS"
#define CTL_EVENT_JOB_COMPLETED     "JOB_COMPLETED"

/* ---- Framing: bytes in, JSON objects out -------------------------------- */

/* One JSON object per line: a newline before the object is complete is an
 * error.  Objects that are not followed by a newline are accepted too (the
 * tokenizer finds their end), so several may share a line.  After a
 * malformed or oversized object the reader skips to the next newline, so
 * the following line is read afresh. */
struct ctl_reader {
        struct json_tokener *tok;
        size_t max;                     /* bytes per object */
        size_t msg_bytes;               /* bytes of the current object so far */
        bool in_msg;
        bool discarding;                /* skipping to the next newline */
        char *msg;                      /* those bytes, parsed again in one piece */
        size_t msg_size;                /* allocated for msg (at most max) */
};

int ctl_reader_init(struct ctl_reader *r, size_t max);
void ctl_reader_done(struct ctl_reader *r);
/* Consume bytes of buf.  Returns 1 with *ret (owned by the caller) when an
 * object is complete, 0 when all of buf was consumed without completing
 * one, or -EBADMSG (malformed, not an object, not UTF-8) / -EMSGSIZE
 * (over max) / -ENOMEM with a message in err.  *consumed says how many
 * bytes were used in every case; call again with the rest.  The verdict
 * does not depend on how the bytes are split between calls. */
int ctl_reader_feed(struct ctl_reader *r, const char *buf, size_t len, size_t *consumed,
                    struct json_object **ret, char *err, size_t errlen);
/* True when bytes of an unfinished object are buffered. */
bool ctl_reader_pending(const struct ctl_reader *r);

/* ---- Requests ----------------------------------------------------------- */

enum ctl_command_id {
        CTL_CMD_QMP_CAPABILITIES,
        CTL_CMD_QUERY_VERSION,
        CTL_CMD_SAVE,
        CTL_CMD_RESTORE,
        CTL_CMD_QUERY_JOBS,
        CTL_CMD_QUERY_JOB,
        CTL_CMD_JOB_CANCEL,
        CTL_CMD_JOB_DISMISS,
        CTL_CMD_QUERY_STATS,
        _CTL_CMD_MAX,
};

enum ctl_arg_type {
        CTL_ARG_STRING,                 /* max: bytes; no NUL, not empty */
        CTL_ARG_BOOL,
        CTL_ARG_UINT,                   /* max: largest value */
};

struct ctl_arg {
        const char *name;
        enum ctl_arg_type type;
        bool required;
        uint64_t max;
};

struct ctl_command {
        const char *name;
        enum ctl_command_id id;
        const struct ctl_arg *args;     /* ends with a NULL name */
};

const struct ctl_command *ctl_command_find(const char *name);
const struct ctl_command *ctl_command_get(enum ctl_command_id id);

struct ctl_request {
        struct json_object *obj;        /* owned: the whole request */
        const struct ctl_command *cmd;  /* set when parsing succeeded */
        struct json_object *args;       /* borrowed from obj; NULL if absent */
        struct json_object *id;         /* borrowed from obj; NULL if absent */
};

/* Takes ownership of obj (even on failure: release with ctl_request_done).
 * Checks the envelope, finds the command and checks every argument
 * against its table: unknown, missing and mistyped arguments, sizes.
 * Returns 0, -EINVAL (bad envelope or argument) or -ENOSYS (unknown
 * command), with a message.  req->id is set whenever the request carried
 * one, so that even an error reply can echo it. */
int ctl_request_parse(struct ctl_request *req, struct json_object *obj, char *err, size_t errlen);
void ctl_request_done(struct ctl_request *req);

/* Typed accessors for arguments that passed ctl_request_parse(). */
const char *ctl_arg_string(const struct ctl_request *req, const char *name);
bool ctl_arg_bool(const struct ctl_request *req, const char *name, bool def);
uint64_t ctl_arg_uint(const struct ctl_request *req, const char *name, uint64_t def);

/* The arguments of a restore request that passed ctl_request_parse(),
 * with what the table cannot say checked too: "protocol" is "qemu"
 * (default: "to" required, no "channel") or "native" ("channel" "unix"
 * (default) or "fd", no "to").  Strings are borrowed from req.  Returns 0
 * or -EINVAL with a message. */
struct ctl_restore_args {
        const char *file;
        const char *to;                 /* qemu: "unix:PATH" as given */
        const char *name;               /* NULL when not given */
        bool native;
        bool channel_fd;                /* native: hand back a socketpair end */
};
int ctl_restore_args(const struct ctl_request *req, struct ctl_restore_args *ret,
                     char *err, size_t errlen);

/* ---- Messages the server sends ------------------------------------------ */

/* {"savd": {"major": X, "minor": Y, "micro": Z}, "package": "savd X.Y.Z"} from
 * a version string "X.Y.Z" (missing or bad numbers count as 0). */
struct json_object *ctl_version_new(const char *version);
/* {"QMP": {"version": ctl_version_new(version), "capabilities": []}} */
struct json_object *ctl_greeting_new(const char *version);
/* {"return": ret, "id": id}; takes ret (NULL: {}), id is borrowed (may be NULL). */
struct json_object *ctl_return_new(struct json_object *ret, struct json_object *id);
/* {"error": {"class": ctl_error_class(err), "desc": desc}, "id": id} */
struct json_object *ctl_error_new(int err, const char *desc, struct json_object *id);
/* {"event": name, "data": data, "timestamp": {"seconds", "microseconds"}}; takes data. */
struct json_object *ctl_event_new(const char *name, struct json_object *data,
                                  const struct timespec *ts);

/* Compact text plus the terminating newline (and a NUL after it, not
 * counted in *len); *ret is malloc'd. */
int ctl_format(struct json_object *msg, char **ret, size_t *len);

/* ---- Messages the client receives --------------------------------------- */

enum ctl_message_kind {
        CTL_MSG_INVALID,
        CTL_MSG_GREETING,
        CTL_MSG_RETURN,
        CTL_MSG_ERROR,
        CTL_MSG_EVENT,
};

enum ctl_message_kind ctl_message_kind(struct json_object *msg);
