/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The JSON control protocol: framing, request checks against the command
 * table, and message encoders (see control.h and control.md).  Pure
 * functions over json-c objects and byte buffers; no I/O, no logging.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "control.h"
#include "macro.h"

/* ---- Error classes ------------------------------------------------------ */

enum ctl_error_class ctl_error_class(int err)
{
        switch (err) {
        case -ENOSYS:
                return CTL_ERROR_COMMAND_NOT_FOUND;
        case -EINVAL: case -E2BIG: case -ENAMETOOLONG: case -ELOOP: case -EEXIST:
        case -ENOENT: case -ENOTDIR: case -EISDIR: case -EBADF: case -EXDEV:
        case -ENOTSOCK:
                return CTL_ERROR_INVALID_PARAMETER;
        case -EPERM: case -EACCES:
                return CTL_ERROR_PERMISSION_DENIED;
        case -ESRCH:
                return CTL_ERROR_JOB_NOT_FOUND;
        case -EMSGSIZE: case -EUSERS: case -EAGAIN: case -EMFILE: case -ENFILE:
        case -ETOOMANYREFS:
                return CTL_ERROR_LIMIT_REACHED;
        default:                        /* -EBADMSG (bad JSON) included, as in QMP */
                return CTL_ERROR_GENERIC;
        }
}

const char *ctl_error_class_name(enum ctl_error_class c)
{
        static const char *const names[] = {
                [CTL_ERROR_GENERIC] = "GenericError",
                [CTL_ERROR_COMMAND_NOT_FOUND] = "CommandNotFound",
                [CTL_ERROR_INVALID_PARAMETER] = "InvalidParameter",
                [CTL_ERROR_PERMISSION_DENIED] = "PermissionDenied",
                [CTL_ERROR_JOB_NOT_FOUND] = "JobNotFound",
                [CTL_ERROR_LIMIT_REACHED] = "LimitReached",
        };
        if ((size_t)c >= ELEMENTSOF(names))
                return names[CTL_ERROR_GENERIC];
        return names[c];
}

/* ---- Job states --------------------------------------------------------- */

static const char *const job_state_names[_CTL_JOB_STATE_MAX] = {
        [CTL_JOB_WAITING] = "waiting-for-client",
        [CTL_JOB_RUNNING] = "running",
        [CTL_JOB_FINALIZING] = "finalizing",
        [CTL_JOB_COMPLETED] = "completed",
        [CTL_JOB_FAILED] = "failed",
        [CTL_JOB_CANCELLED] = "cancelled",
};

const char *ctl_job_state_name(enum ctl_job_state s)
{
        if ((unsigned)s >= _CTL_JOB_STATE_MAX)
                return "unknown";
        return job_state_names[s];
}

int ctl_job_state_from_name(const char *name, enum ctl_job_state *ret)
{
        for (unsigned i = 0; i < _CTL_JOB_STATE_MAX; i++)
                if (strcmp(name, job_state_names[i]) == 0) {
                        *ret = i;
                        return 0;
                }
        return -EINVAL;
}

/* ---- Framing ------------------------------------------------------------ */

int ctl_reader_init(struct ctl_reader *r, size_t max)
{
        *r = (struct ctl_reader) { .max = max };
        r->tok = json_tokener_new_ex(SAVD_CONTROL_MAX_DEPTH);
        if (!r->tok)
                return -ENOMEM;
        /* Strict JSON, but the end of one object may be followed directly by
         * the next one: the caller feeds the rest again.  UTF-8 is checked
         * on the complete object (strings_valid()), not by json-c. */
        json_tokener_set_flags(r->tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
        return 0;
}

void ctl_reader_done(struct ctl_reader *r)
{
        if (r->tok)
                json_tokener_free(r->tok);
        r->tok = NULL;
        free(r->msg);
        r->msg = NULL;
        r->msg_size = 0;
}

bool ctl_reader_pending(const struct ctl_reader *r)
{
        return r->in_msg;
}

static bool is_space(char c)
{
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* RFC 3629 UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
        for (size_t i = 0; i < len;) {
                unsigned char c = s[i];
                uint32_t cp, min;
                size_t n;

                if (c < 0x80) {
                        i++;
                        continue;
                }
                if ((c & 0xe0) == 0xc0)
                        n = 1, cp = c & 0x1f, min = 0x80;
                else if ((c & 0xf0) == 0xe0)
                        n = 2, cp = c & 0x0f, min = 0x800;
                else if ((c & 0xf8) == 0xf0)
                        n = 3, cp = c & 0x07, min = 0x10000;
                else
                        return false;
                if (len - i - 1 < n)
                        return false;
                for (size_t k = 1; k <= n; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = cp << 6 | (s[i + k] & 0x3f);
                }
                if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += n + 1;
        }
        return true;
}

/* Every key and string of a parsed object is UTF-8.  json-c's own check
 * (JSON_TOKENER_VALIDATE_UTF8) refuses a character split between two
 * reads and any non-ASCII byte after the object in the same read, so a
 * request would be accepted or not depending on how its bytes arrived.
 * Recursion is bounded by the tokener's depth limit. */
static bool strings_valid(struct json_object *o)
{
        switch (json_object_get_type(o)) {
        case json_type_string:
                return utf8_valid((const unsigned char *)json_object_get_string(o),
                                  (size_t)json_object_get_string_len(o));
        case json_type_array:
                for (size_t i = 0; i < json_object_array_length(o); i++)
                        if (!strings_valid(json_object_array_get_idx(o, i)))
                                return false;
                return true;
        case json_type_object: {
                json_object_object_foreach(o, key, val)
                        if (!utf8_valid((const unsigned char *)key, strlen(key)) ||
                            !strings_valid(val))
                                return false;
                return true;
        }
        default:
                return true;
        }
}

/* Enter the discard state: the rest of the line is skipped. */
static int reader_fail(struct ctl_reader *r, int err)
{
        json_tokener_reset(r->tok);
        r->in_msg = false;
        r->discarding = true;
        return err;
}

/* Skip whatever precedes an object: a discarded line's rest, whitespace.
 * Returns the index of the object's first byte, or len. */
static size_t reader_skip(struct ctl_reader *r, const char *buf, size_t len, size_t i)
{
        while (i < len) {
                if (r->discarding) {
                        const char *nl = memchr(buf + i, '\n', len - i);
                        if (!nl)
                                return len;
                        r->discarding = false;
                        i = (size_t)(nl - buf) + 1;
                } else if (is_space(buf[i])) {
                        i++;
                } else {
                        break;
                }
        }
        return i;
}

#define CTL_READER_MSG_MIN     256U

/* Keep n more bytes of the current object; the caller never lets it grow
 * past max. */
static int msg_append(struct ctl_reader *r, const char *p, size_t n)
{
        size_t need = r->msg_bytes + n;

        if (need > r->msg_size) {
                size_t size = MAX(r->msg_size * 2, (size_t)CTL_READER_MSG_MIN);
                size = MAX(MIN(size, r->max), need);
                char *m = realloc(r->msg, size);
                if (!m)
                        return -ENOMEM;
                r->msg = m;
                r->msg_size = size;
        }
        memcpy(r->msg + r->msg_bytes, p, n);
        r->msg_bytes += n;
        return 0;
}

/* json-c's incremental parse accepts some malformed input when it arrives
 * split ("{\"job\":1" then "-5}" reads as job 1), so once the tokenizer has
 * found the end of an object, the object's bytes are parsed again in one
 * piece and that result counts. */
static struct json_object *parse_whole(struct ctl_reader *r, enum json_tokener_error *jerr)
{
        struct json_object *o;

        json_tokener_reset(r->tok);
        o = json_tokener_parse_ex(r->tok, r->msg, (int)r->msg_bytes);
        *jerr = json_tokener_get_error(r->tok);
        if (o && json_tokener_get_parse_end(r->tok) != r->msg_bytes) {
                json_object_put(o);
                o = NULL;
                *jerr = json_tokener_error_parse_unexpected;
        }
        if (!o && *jerr == json_tokener_continue)
                *jerr = json_tokener_error_parse_eof;
        return o;
}

/* Feed the current object's bytes from buf[*i]: up to the end of the line
 * and never more than the limit allows, so an oversized object is noticed
 * before it is buffered.  Returns 1 (object done), 0 (more needed, *i
 * advanced) or -errno; *i is where the next byte is in every case. */
static int reader_parse(struct ctl_reader *r, const char *buf, size_t len, size_t *i,
                        struct json_object **ret, char *err, size_t errlen)
{
        size_t n = MIN(len - *i, r->max - r->msg_bytes);
        const char *nl = memchr(buf + *i, '\n', n);
        size_t part = nl ? (size_t)(nl - (buf + *i)) : n;

        if (part > 0) {
                struct json_object *o = json_tokener_parse_ex(r->tok, buf + *i, (int)part);
                enum json_tokener_error jerr = json_tokener_get_error(r->tok);
                size_t used = json_tokener_get_parse_end(r->tok);

                if (o || jerr != json_tokener_continue) {
                        *i += used;
                        if (o) {
                                json_object_put(o);
                                if (msg_append(r, buf + *i - used, used) < 0) {
                                        snprintf(err, errlen, "out of memory");
                                        return reader_fail(r, -ENOMEM);
                                }
                                o = parse_whole(r, &jerr);
                        }
                        if (!o) {
                                snprintf(err, errlen, "malformed JSON: %s", json_tokener_error_desc(jerr));
                                return reader_fail(r, -EBADMSG);
                        }
                        if (!strings_valid(o)) {
                                json_object_put(o);
                                snprintf(err, errlen, "malformed JSON: invalid utf-8 string");
                                return reader_fail(r, -EBADMSG);
                        }
                        r->in_msg = false;
                        json_tokener_reset(r->tok);
                        *ret = o;
                        return 1;
                }
                if (msg_append(r, buf + *i, part) < 0) {
                        snprintf(err, errlen, "out of memory");
                        return reader_fail(r, -ENOMEM);
                }
                *i += part;
        }
        if (nl) {
                /* The line ended first: that was the whole request. */
                snprintf(err, errlen, "the line ends before its JSON object is complete");
                *i += 1;
                json_tokener_reset(r->tok);
                r->in_msg = false;
                return -EBADMSG;
        }
        return 0;
}

int ctl_reader_feed(struct ctl_reader *r, const char *buf, size_t len, size_t *consumed,
                    struct json_object **ret, char *err, size_t errlen)
{
        size_t i = 0;
        int rc;

        *ret = NULL;
        for (;;) {
                if (!r->in_msg) {
                        i = reader_skip(r, buf, len, i);
                        if (i == len)
                                break;
                        if (buf[i] != '{') {
                                snprintf(err, errlen, "expected a JSON object, got '%c'",
                                         (buf[i] >= 0x20 && buf[i] < 0x7f) ? buf[i] : '?');
                                *consumed = i + 1;
                                return reader_fail(r, -EBADMSG);
                        }
                        r->in_msg = true;
                        r->msg_bytes = 0;
                }
                if (i == len)
                        break;
                if (r->msg_bytes >= r->max) {
                        snprintf(err, errlen, "request exceeds %zu bytes", r->max);
                        *consumed = i;
                        return reader_fail(r, -EMSGSIZE);
                }
                rc = reader_parse(r, buf, len, &i, ret, err, errlen);
                if (rc != 0) {
                        *consumed = i;
                        return rc;
                }
        }
        *consumed = len;
        return 0;
}

/* ---- Command table ------------------------------------------------------ */

static const struct ctl_arg args_none[] = { {} };

static const struct ctl_arg args_save[] = {
        { "name",      CTL_ARG_STRING, true,  SAVD_JOB_NAME_MAX },
        { "output",    CTL_ARG_STRING, true,  SAVD_CONTROL_PATH_MAX },
        { "channel",   CTL_ARG_STRING, false, 16 },
        { "overwrite", CTL_ARG_BOOL,   false, 0 },
        {}
};

/* Which of "to" and "channel" a restore needs depends on "protocol":
 * ctl_restore_args() checks the combination. */
static const struct ctl_arg args_restore[] = {
        { "file",     CTL_ARG_STRING, true,  SAVD_CONTROL_PATH_MAX },
        { "to",       CTL_ARG_STRING, false, SAVD_CONTROL_PATH_MAX },
        { "name",     CTL_ARG_STRING, false, SAVD_JOB_NAME_MAX },
        { "protocol", CTL_ARG_STRING, false, 16 },
        { "channel",  CTL_ARG_STRING, false, 16 },
        {}
};

static const struct ctl_arg args_job[] = {
        { "job", CTL_ARG_UINT, true, SAVD_JOB_ID_MAX },
        {}
};

static const struct ctl_command commands[_CTL_CMD_MAX] = {
        { "qmp_capabilities", CTL_CMD_QMP_CAPABILITIES, args_none },
        { "query-version",    CTL_CMD_QUERY_VERSION,    args_none },
        { "save",             CTL_CMD_SAVE,             args_save },
        { "restore",          CTL_CMD_RESTORE,          args_restore },
        { "query-jobs",       CTL_CMD_QUERY_JOBS,       args_none },
        { "query-job",        CTL_CMD_QUERY_JOB,        args_job },
        { "job-cancel",       CTL_CMD_JOB_CANCEL,       args_job },
        { "job-dismiss",      CTL_CMD_JOB_DISMISS,      args_job },
        { "query-stats",      CTL_CMD_QUERY_STATS,      args_none },
};

const struct ctl_command *ctl_command_find(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        return NULL;
}

const struct ctl_command *ctl_command_get(enum ctl_command_id id)
{
        if ((unsigned)id >= _CTL_CMD_MAX)
                return NULL;
        return &commands[id];
}

/* ---- Requests ----------------------------------------------------------- */

static const struct ctl_arg *arg_spec(const struct ctl_command *cmd, const char *name)
{
        for (const struct ctl_arg *a = cmd->args; a->name; a++)
                if (strcmp(a->name, name) == 0)
                        return a;
        return NULL;
}

static int check_string(const struct ctl_arg *a, struct json_object *v, char *err, size_t errlen)
{
        if (!json_object_is_type(v, json_type_string)) {
                snprintf(err, errlen, "argument '%s' must be a string", a->name);
                return -EINVAL;
        }
        size_t len = (size_t)json_object_get_string_len(v);
        if (len == 0) {
                snprintf(err, errlen, "argument '%s' must not be empty", a->name);
                return -EINVAL;
        }
        if (len > a->max) {
                snprintf(err, errlen, "argument '%s' exceeds %" PRIu64 " bytes", a->name, a->max);
                return -EINVAL;
        }
        if (strlen(json_object_get_string(v)) != len) {
                snprintf(err, errlen, "argument '%s' contains a NUL character", a->name);
                return -EINVAL;
        }
        return 0;
}

static int check_uint(const struct ctl_arg *a, struct json_object *v, char *err, size_t errlen)
{
        if (!json_object_is_type(v, json_type_int)) {
                snprintf(err, errlen, "argument '%s' must be an integer", a->name);
                return -EINVAL;
        }
        /* json-c keeps integers above INT64_MAX as uint64. */
        int64_t s = json_object_get_int64(v);
        if (s < 0) {
                snprintf(err, errlen, "argument '%s' must not be negative", a->name);
                return -EINVAL;
        }
        uint64_t u = json_object_get_uint64(v);
        if (u > a->max) {
                snprintf(err, errlen, "argument '%s' exceeds %" PRIu64, a->name, a->max);
                return -EINVAL;
        }
        return 0;
}

static int check_arg(const struct ctl_arg *a, struct json_object *v, char *err, size_t errlen)
{
        switch (a->type) {
        case CTL_ARG_STRING:
                return check_string(a, v, err, errlen);
        case CTL_ARG_UINT:
                return check_uint(a, v, err, errlen);
        case CTL_ARG_BOOL:
                if (!json_object_is_type(v, json_type_boolean)) {
                        snprintf(err, errlen, "argument '%s' must be a boolean", a->name);
                        return -EINVAL;
                }
                return 0;
        }
        return -EINVAL;
}

static int check_args(const struct ctl_command *cmd, struct json_object *args,
                      char *err, size_t errlen)
{
        if (args) {
                json_object_object_foreach(args, key, val) {
                        const struct ctl_arg *a = arg_spec(cmd, key);
                        if (!a) {
                                snprintf(err, errlen, "%s: unknown argument '%s'", cmd->name, key);
                                return -EINVAL;
                        }
                        int r = check_arg(a, val, err, errlen);
                        if (r < 0)
                                return r;
                }
        }
        for (const struct ctl_arg *a = cmd->args; a->name; a++)
                if (a->required && !(args && json_object_object_get_ex(args, a->name, NULL))) {
                        snprintf(err, errlen, "%s: missing argument '%s'", cmd->name, a->name);
                        return -EINVAL;
                }
        return 0;
}

/* The envelope: only "execute", "arguments" and "id" are allowed. */
static int check_envelope(struct ctl_request *req, const char **execute, char *err, size_t errlen)
{
        struct json_object *exe = NULL;

        json_object_object_foreach(req->obj, key, val) {
                if (strcmp(key, "execute") == 0)
                        exe = val;
                else if (strcmp(key, "arguments") == 0)
                        req->args = val;
                else if (strcmp(key, "id") != 0) {
                        snprintf(err, errlen, "unexpected member '%s' in the request", key);
                        return -EINVAL;
                }
        }
        if (!exe) {
                snprintf(err, errlen, "the request has no 'execute' member");
                return -EINVAL;
        }
        if (!json_object_is_type(exe, json_type_string)) {
                snprintf(err, errlen, "'execute' must be a string");
                return -EINVAL;
        }
        if (req->args && !json_object_is_type(req->args, json_type_object)) {
                snprintf(err, errlen, "'arguments' must be an object");
                return -EINVAL;
        }
        *execute = json_object_get_string(exe);
        return 0;
}

int ctl_request_parse(struct ctl_request *req, struct json_object *obj, char *err, size_t errlen)
{
        const char *execute;
        int r;

        *req = (struct ctl_request) { .obj = obj };
        if (!json_object_is_type(obj, json_type_object)) {
                snprintf(err, errlen, "the request must be a JSON object");
                return -EINVAL;
        }
        json_object_object_get_ex(obj, "id", &req->id);
        r = check_envelope(req, &execute, err, errlen);
        if (r < 0)
                return r;
        const struct ctl_command *cmd = ctl_command_find(execute);
        if (!cmd) {
                snprintf(err, errlen, "the command '%.64s' has not been found", execute);
                return -ENOSYS;
        }
        r = check_args(cmd, req->args, err, errlen);
        if (r < 0)
                return r;
        req->cmd = cmd;
        return 0;
}

void ctl_request_done(struct ctl_request *req)
{
        json_object_put(req->obj);
        *req = (struct ctl_request) {};
}

static struct json_object *arg_get(const struct ctl_request *req, const char *name)
{
        struct json_object *v = NULL;

        if (req->args)
                json_object_object_get_ex(req->args, name, &v);
        return v;
}

const char *ctl_arg_string(const struct ctl_request *req, const char *name)
{
        struct json_object *v = arg_get(req, name);
        return v ? json_object_get_string(v) : NULL;
}

bool ctl_arg_bool(const struct ctl_request *req, const char *name, bool def)
{
        struct json_object *v = arg_get(req, name);
        return v ? json_object_get_boolean(v) : def;
}

uint64_t ctl_arg_uint(const struct ctl_request *req, const char *name, uint64_t def)
{
        struct json_object *v = arg_get(req, name);
        return v ? json_object_get_uint64(v) : def;
}

/* ---- Arguments that depend on each other -------------------------------- */

int ctl_restore_args(const struct ctl_request *req, struct ctl_restore_args *ret,
                     char *err, size_t errlen)
{
        const char *protocol = ctl_arg_string(req, "protocol");
        const char *channel = ctl_arg_string(req, "channel");

        *ret = (struct ctl_restore_args) {
                .file = ctl_arg_string(req, "file"),
                .to = ctl_arg_string(req, "to"),
                .name = ctl_arg_string(req, "name"),
        };
        if (protocol && strcmp(protocol, "native") == 0)
                ret->native = true;
        else if (protocol && strcmp(protocol, "qemu") != 0) {
                snprintf(err, errlen, "'protocol' must be \"qemu\" or \"native\", got '%s'", protocol);
                return -EINVAL;
        }
        if (channel && strcmp(channel, "fd") == 0)
                ret->channel_fd = true;
        else if (channel && strcmp(channel, "unix") != 0) {
                snprintf(err, errlen, "'channel' must be \"unix\" or \"fd\", got '%s'", channel);
                return -EINVAL;
        }
        /* QEMU waits on -incoming, so savd connects to it; a native VMM
         * connects to savd, over a channel savd hands out. */
        if (!ret->native && !ret->to) {
                snprintf(err, errlen, "restore: missing argument 'to' (the QEMU -incoming "
                         "socket; a native VMM restores with \"protocol\": \"native\")");
                return -EINVAL;
        }
        if (!ret->native && channel) {
                snprintf(err, errlen, "restore: 'channel' is for \"protocol\": \"native\"; "
                         "a QEMU restore connects to 'to'");
                return -EINVAL;
        }
        if (ret->native && ret->to) {
                snprintf(err, errlen, "restore: 'to' is for \"protocol\": \"qemu\"; a native "
                         "VMM connects to the data channel that the reply names");
                return -EINVAL;
        }
        return 0;
}

/* ---- Encoders ----------------------------------------------------------- */

struct json_object *ctl_version_new(const char *version)
{
        unsigned v[3] = {};
        char package[64];

        (void)sscanf(version, "%u.%u.%u", &v[0], &v[1], &v[2]);
        struct json_object *num = json_object_new_object();
        json_object_object_add(num, "major", json_object_new_int((int)v[0]));
        json_object_object_add(num, "minor", json_object_new_int((int)v[1]));
        json_object_object_add(num, "micro", json_object_new_int((int)v[2]));

        snprintf(package, sizeof(package), "savd %.40s", version);
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "savd", num);
        json_object_object_add(o, "package", json_object_new_string(package));
        return o;
}

struct json_object *ctl_greeting_new(const char *version)
{
        struct json_object *qmp = json_object_new_object();
        json_object_object_add(qmp, "version", ctl_version_new(version));
        json_object_object_add(qmp, "capabilities", json_object_new_array());

        struct json_object *g = json_object_new_object();
        json_object_object_add(g, "QMP", qmp);
        return g;
}

static void add_id(struct json_object *msg, struct json_object *id)
{
        if (id)
                json_object_object_add(msg, "id", json_object_get(id));
}

struct json_object *ctl_return_new(struct json_object *ret, struct json_object *id)
{
        struct json_object *msg = json_object_new_object();
        json_object_object_add(msg, "return", ret ? ret : json_object_new_object());
        add_id(msg, id);
        return msg;
}

struct json_object *ctl_error_new(int err, const char *desc, struct json_object *id)
{
        struct json_object *e = json_object_new_object();
        json_object_object_add(e, "class",
                               json_object_new_string(ctl_error_class_name(ctl_error_class(err))));
        json_object_object_add(e, "desc", json_object_new_string(desc));

        struct json_object *msg = json_object_new_object();
        json_object_object_add(msg, "error", e);
        add_id(msg, id);
        return msg;
}

struct json_object *ctl_event_new(const char *name, struct json_object *data,
                                  const struct timespec *ts)
{
        struct json_object *t = json_object_new_object();
        json_object_object_add(t, "seconds", json_object_new_int64(ts->tv_sec));
        json_object_object_add(t, "microseconds", json_object_new_int64(ts->tv_nsec / 1000));

        struct json_object *msg = json_object_new_object();
        json_object_object_add(msg, "event", json_object_new_string(name));
        json_object_object_add(msg, "data", data ? data : json_object_new_object());
        json_object_object_add(msg, "timestamp", t);
        return msg;
}

int ctl_format(struct json_object *msg, char **ret, size_t *len)
{
        size_t n;
        const char *s = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN |
                                                          JSON_C_TO_STRING_NOSLASHESCAPE, &n);
        if (!s)
                return -ENOMEM;
        char *buf = malloc(n + 2);
        if (!buf)
                return -ENOMEM;
        memcpy(buf, s, n);
        buf[n] = '\n';
        buf[n + 1] = '\0';             /* for callers that want a C string */
        *ret = buf;
        *len = n + 1;
        return 0;
}

enum ctl_message_kind ctl_message_kind(struct json_object *msg)
{
        struct json_object *v;

        if (!json_object_is_type(msg, json_type_object))
                return CTL_MSG_INVALID;
        if (json_object_object_get_ex(msg, "return", &v))
                return CTL_MSG_RETURN;
        if (json_object_object_get_ex(msg, "error", &v))
                return json_object_is_type(v, json_type_object) ? CTL_MSG_ERROR : CTL_MSG_INVALID;
        if (json_object_object_get_ex(msg, "event", &v))
                return json_object_is_type(v, json_type_string) ? CTL_MSG_EVENT : CTL_MSG_INVALID;
        if (json_object_object_get_ex(msg, "QMP", &v))
                return CTL_MSG_GREETING;
        return CTL_MSG_INVALID;
}
