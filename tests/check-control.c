/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the JSON control protocol (proto/control.c): framing of a
 * byte stream into objects (newlines, back-to-back objects, one byte at a
 * time, malformed and oversized input followed by a good line), request
 * checks for every command (unknown, missing, mistyped and over-long
 * arguments), the error-class mapping, and the encoders.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "control.h"
#include "test-util.h"

/* ---- Framing ------------------------------------------------------------ */

struct feed_result {
        int n_objects;
        int n_errors;
        int last_error;
        char first_execute[64];
        char last_execute[64];
};

/* Feed buf in pieces of step bytes (0: all at once); count what comes out. */
static void feed(struct ctl_reader *r, const char *buf, size_t len, size_t step,
                 struct feed_result *res)
{
        size_t pos = 0;

        memset(res, 0, sizeof(*res));
        while (pos < len) {
                size_t n = step ? (len - pos < step ? len - pos : step) : len - pos;
                size_t off = 0;
                while (off < n) {
                        struct json_object *o = NULL, *e;
                        char err[256];
                        size_t used;
                        int rc = ctl_reader_feed(r, buf + pos + off, n - off, &used, &o, err, sizeof(err));
                        ck_assert_uint_le(used, n - off);
                        off += used;
                        if (rc < 0) {
                                res->n_errors++;
                                res->last_error = rc;
                                ck_assert(err[0] != '\0');
                                continue;
                        }
                        if (rc == 0) {
                                ck_assert_uint_eq(off, n);
                                break;
                        }
                        res->n_objects++;
                        if (json_object_object_get_ex(o, "execute", &e)) {
                                snprintf(res->last_execute, sizeof(res->last_execute), "%s",
                                         json_object_get_string(e));
                                if (res->n_objects == 1)
                                        snprintf(res->first_execute, sizeof(res->first_execute), "%s",
                                                 json_object_get_string(e));
                        }
                        json_object_put(o);
                }
                pos += n;
        }
}

static const size_t steps[] = { 0, 1, 2, 7, 4093 };

START_TEST(test_reader_lines)
{
        static const char in[] =
                "{\"execute\":\"a\"}\n"
                "  {\"execute\":\"b\",\"arguments\":{\"x\":[1,2,{\"y\":\"z\\n\"}]}}\r\n"
                "{\"execute\":\"c\"}{\"execute\":\"d\"} {\"execute\":\"e\"}\n"
                "\n\n {\"execute\":  \"f\"}";
        struct ctl_reader r;
        struct feed_result res;

        ck_assert_int_eq(ctl_reader_init(&r, SAVD_CONTROL_MAX_REQUEST), 0);
        feed(&r, in, strlen(in), steps[_i], &res);
        ck_assert_int_eq(res.n_errors, 0);
        ck_assert_int_eq(res.n_objects, 6);
        ck_assert_str_eq(res.first_execute, "a");
        ck_assert_str_eq(res.last_execute, "f");
        ck_assert(!ctl_reader_pending(&r));
        ctl_reader_done(&r);
}
END_TEST

/* After each bad line the next good one is read: the connection stays usable. */
START_TEST(test_reader_recovers)
{
        static const char in[] =
                "{bad json\n"
                "{\"execute\":\"one\"}\n"
                "[1,2,3]\n"
                "{\"execute\":\"two\"}\n"
                "42 {\"execute\":\"skipped, same line\"}\n"
                "{\"execute\": tru\n"
                "{\"execute\":\"three\"}\n"
                "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}\n"
                "{\"execute\":\"four\"}\n"
                "{\"a\":\"\xff\xfe\"}\n"
                "{\"execute\":\"five\"}\n"
                "{\"execute\":\n"              /* a newline ends the request */
                "\"six\"}\n"                    /* and this line is no object */
                "{\"execute\":\"seven\"}";
        struct ctl_reader r;
        struct feed_result res;

        ck_assert_int_eq(ctl_reader_init(&r, SAVD_CONTROL_MAX_REQUEST), 0);
        feed(&r, in, strlen(in), steps[_i], &res);
        ck_assert_int_eq(res.n_errors, 8);
        ck_assert_int_eq(res.last_error, -EBADMSG);
        ck_assert_int_eq(res.n_objects, 6);
        ck_assert_str_eq(res.first_execute, "one");
        ck_assert_str_eq(res.last_execute, "seven");
        ctl_reader_done(&r);
}
END_TEST

/* A request of exactly the limit passes; one byte more is refused, the
 * rest of its line skipped, and the next line parsed. */
static char *object_of_size(size_t size)
{
        static const char head[] = "{\"execute\":\"big\",\"arguments\":{\"pad\":\"";
        static const char tail[] = "\"}}";
        char *s = malloc(size + 1);

        ck_assert(size > sizeof(head) + sizeof(tail));
        memcpy(s, head, sizeof(head) - 1);
        memset(s + sizeof(head) - 1, 'x', size - (sizeof(head) - 1) - (sizeof(tail) - 1));
        memcpy(s + size - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
        s[size] = '\0';
        return s;
}

START_TEST(test_reader_size_limit)
{
        static const char next[] = "\n{\"execute\":\"after\"}\n";
        size_t max = SAVD_CONTROL_MAX_REQUEST;
        struct ctl_reader r;
        struct feed_result res;
        char *exact = object_of_size(max), *over = object_of_size(max + 1);
        size_t step = steps[_i] == 1 ? 13 : steps[_i];      /* 1-byte steps: slow, same path */

        ck_assert_int_eq(ctl_reader_init(&r, max), 0);
        feed(&r, exact, max, step, &res);
        ck_assert_int_eq(res.n_objects, 1);
        ck_assert_int_eq(res.n_errors, 0);

        char *buf = malloc(max + 1 + sizeof(next));
        memcpy(buf, over, max + 1);
        memcpy(buf + max + 1, next, sizeof(next));
        feed(&r, buf, max + sizeof(next), step, &res);
        ck_assert_int_eq(res.n_errors, 1);
        ck_assert_int_eq(res.last_error, -EMSGSIZE);
        ck_assert_int_eq(res.n_objects, 1);
        ck_assert_str_eq(res.last_execute, "after");
        free(buf);
        free(exact);
        free(over);
        ctl_reader_done(&r);
}
END_TEST

/* An endless object with no newline is cut off at the limit, not buffered. */
START_TEST(test_reader_no_newline_flood)
{
        struct ctl_reader r;
        struct feed_result res;
        size_t len = 4 * SAVD_CONTROL_MAX_REQUEST;
        char *buf = malloc(len);

        memset(buf, ' ', len);
        memcpy(buf, "{\"a\":\"", 6);
        memset(buf + 6, 'y', len - 6);
        ck_assert_int_eq(ctl_reader_init(&r, SAVD_CONTROL_MAX_REQUEST), 0);
        feed(&r, buf, len, 8192, &res);
        ck_assert_int_eq(res.n_errors, 1);
        ck_assert_int_eq(res.last_error, -EMSGSIZE);
        ck_assert_int_eq(res.n_objects, 0);
        feed(&r, "\n{\"execute\":\"x\"}", 16, 0, &res);
        ck_assert_int_eq(res.n_objects, 1);
        free(buf);
        ctl_reader_done(&r);
}
END_TEST

/* ---- Requests ----------------------------------------------------------- */

struct request_case {
        const char *json;
        int ret;                        /* 0, -EINVAL, -ENOSYS */
        const char *err;                /* substring of the message */
        const char *command;            /* on success */
};

static const struct request_case request_cases[] = {
        { "{\"execute\":\"query-version\"}", 0, NULL, "query-version" },
        { "{\"execute\":\"query-version\",\"id\":7}", 0, NULL, "query-version" },
        { "{\"execute\":\"qmp_capabilities\",\"arguments\":{}}", 0, NULL, "qmp_capabilities" },
        { "{\"execute\":\"query-jobs\",\"id\":{\"any\":[\"thing\"]}}", 0, NULL, "query-jobs" },
        { "{\"execute\":\"query-stats\"}", 0, NULL, "query-stats" },
        { "{\"execute\":\"save\",\"arguments\":{\"name\":\"vm\",\"output\":\"a.mrm\"}}", 0, NULL, "save" },
        { "{\"execute\":\"save\",\"arguments\":{\"name\":\"vm\",\"output\":\"fd\",\"channel\":\"fd\","
          "\"overwrite\":true}}", 0, NULL, "save" },
        { "{\"execute\":\"restore\",\"arguments\":{\"file\":\"a\",\"to\":\"unix:/x\"}}", 0, NULL, "restore" },
        { "{\"execute\":\"restore\",\"arguments\":{\"file\":\"a\",\"protocol\":\"native\","
          "\"channel\":\"fd\"}}", 0, NULL, "restore" },
        { "{\"execute\":\"query-job\",\"arguments\":{\"job\":1}}", 0, NULL, "query-job" },
        { "{\"execute\":\"job-cancel\",\"arguments\":{\"job\":4294967295}}", 0, NULL, "job-cancel" },
        { "{\"execute\":\"job-dismiss\",\"arguments\":{\"job\":0}}", 0, NULL, "job-dismiss" },
        /* the envelope */
        { "[1]", -EINVAL, "must be a JSON object", NULL },
        { "{}", -EINVAL, "no 'execute'", NULL },
        { "{\"execute\":5}", -EINVAL, "'execute' must be a string", NULL },
        { "{\"execute\":\"query-jobs\",\"arguments\":[]}", -EINVAL, "'arguments' must be an object", NULL },
        { "{\"execute\":\"query-jobs\",\"extra\":1}", -EINVAL, "unexpected member 'extra'", NULL },
        { "{\"execute\":\"nope\"}", -ENOSYS, "'nope' has not been found", NULL },
        /* arguments */
        { "{\"execute\":\"query-jobs\",\"arguments\":{\"job\":1}}", -EINVAL, "unknown argument 'job'", NULL },
        { "{\"execute\":\"save\",\"arguments\":{\"output\":\"a\"}}", -EINVAL, "missing argument 'name'", NULL },
        { "{\"execute\":\"save\",\"arguments\":{\"name\":\"a\"}}", -EINVAL, "missing argument 'output'", NULL },
        { "{\"execute\":\"save\"}", -EINVAL, "missing argument 'name'", NULL },
        { "{\"execute\":\"save\",\"arguments\":{\"name\":1,\"output\":\"a\"}}", -EINVAL,
          "'name' must be a string", NULL },
        { "{\"execute\":\"save\",\"arguments\":{\"name\":\"\",\"output\":\"a\"}}", -EINVAL,
          "'name' must not be empty", NULL },
        { "{\"execute\":\"save\",\"arguments\":{\"name\":\"a\\u0000b\",\"output\":\"a\"}}", -EINVAL,
          "NUL", NULL },
        { "{\"execute\":\"save\",\"arguments\":{\"name\":\"a\",\"output\":\"a\",\"overwrite\":\"yes\"}}",
          -EINVAL, "'overwrite' must be a boolean", NULL },
        { "{\"execute\":\"save\",\"arguments\":{\"name\":\"a\",\"output\":\"a\",\"overwrite\":1}}",
          -EINVAL, "'overwrite' must be a boolean", NULL },
        { "{\"execute\":\"save\",\"arguments\":{\"name\":\"a\",\"output\":null}}", -EINVAL,
          "'output' must be a string", NULL },
        { "{\"execute\":\"query-job\",\"arguments\":{\"job\":\"1\"}}", -EINVAL, "'job' must be an integer", NULL },
        { "{\"execute\":\"query-job\",\"arguments\":{\"job\":1.0}}", -EINVAL, "'job' must be an integer", NULL },
        { "{\"execute\":\"query-job\",\"arguments\":{\"job\":-1}}", -EINVAL, "must not be negative", NULL },
        { "{\"execute\":\"query-job\",\"arguments\":{\"job\":4294967296}}", -EINVAL, "'job' exceeds", NULL },
        { "{\"execute\":\"query-job\",\"arguments\":{\"job\":18446744073709551615}}", -EINVAL,
          "'job' exceeds", NULL },
        { "{\"execute\":\"job-cancel\",\"arguments\":{}}", -EINVAL, "missing argument 'job'", NULL },
        { "{\"execute\":\"restore\",\"arguments\":{\"file\":\"a\",\"to\":true}}", -EINVAL,
          "'to' must be a string", NULL },
};

START_TEST(test_request_table)
{
        const struct request_case *t = &request_cases[_i];
        struct json_object *obj = json_tokener_parse(t->json);
        struct ctl_request req;
        char err[SAVD_CONTROL_MAX_ERROR] = "";

        ck_assert_msg(obj, "test JSON does not parse: %s", t->json);
        int r = ctl_request_parse(&req, obj, err, sizeof(err));
        ck_assert_msg(r == t->ret, "%s: got %d (%s), want %d", t->json, r, err, t->ret);
        if (t->err)
                ck_assert_msg(strstr(err, t->err), "%s: message '%s' lacks '%s'", t->json, err, t->err);
        if (t->command)
                ck_assert_str_eq(req.cmd->name, t->command);
        else
                ck_assert_ptr_null(req.cmd);
        ctl_request_done(&req);
}
END_TEST

static char *string_arg_request(const char *cmd, const char *other, const char *arg, size_t len)
{
        char *v = malloc(len + 1), *s;

        memset(v, 'n', len);
        v[len] = '\0';
        ck_assert_int_ge(asprintf(&s, "{\"execute\":\"%s\",\"arguments\":{%s\"%s\":\"%s\"}}",
                                  cmd, other, arg, v), 0);
        free(v);
        return s;
}

/* Every string argument is accepted at its limit and refused one past it. */
START_TEST(test_request_string_limits)
{
        static const struct { const char *cmd, *other, *arg; size_t max; } t[] = {
                { "save", "\"output\":\"o\",", "name", SAVD_JOB_NAME_MAX },
                { "save", "\"name\":\"n\",", "output", SAVD_CONTROL_PATH_MAX },
                { "restore", "\"to\":\"unix:/x\",", "file", SAVD_CONTROL_PATH_MAX },
                { "restore", "\"file\":\"f\",", "to", SAVD_CONTROL_PATH_MAX },
                { "restore", "\"file\":\"f\",\"to\":\"unix:/x\",", "name", SAVD_JOB_NAME_MAX },
                { "restore", "\"file\":\"f\",", "protocol", 16 },
                { "restore", "\"file\":\"f\",", "channel", 16 },
        };

        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
                for (size_t extra = 0; extra < 2; extra++) {
                        char *s = string_arg_request(t[i].cmd, t[i].other, t[i].arg, t[i].max + extra);
                        struct ctl_request req;
                        char err[SAVD_CONTROL_MAX_ERROR] = "";
                        int r = ctl_request_parse(&req, json_tokener_parse(s), err, sizeof(err));
                        ck_assert_msg(extra ? r == -EINVAL && strstr(err, "exceeds") : r == 0,
                                      "%s.%s at %zu bytes: %d %s", t[i].cmd, t[i].arg,
                                      t[i].max + extra, r, err);
                        ctl_request_done(&req);
                        free(s);
                }
        }
}
END_TEST

START_TEST(test_request_id_kept_on_error)
{
        struct ctl_request req;
        char err[SAVD_CONTROL_MAX_ERROR];
        int r = ctl_request_parse(&req, json_tokener_parse("{\"execute\":\"nope\",\"id\":\"abc\"}"),
                                  err, sizeof(err));

        ck_assert_int_eq(r, -ENOSYS);
        ck_assert_ptr_nonnull(req.id);
        ck_assert_str_eq(json_object_get_string(req.id), "abc");
        ctl_request_done(&req);
}
END_TEST

START_TEST(test_request_accessors)
{
        struct ctl_request req;
        char err[SAVD_CONTROL_MAX_ERROR];

        ck_assert_int_eq(ctl_request_parse(&req, json_tokener_parse(
                "{\"execute\":\"save\",\"arguments\":{\"name\":\"vm\",\"output\":\"o\",\"overwrite\":true}}"),
                err, sizeof(err)), 0);
        ck_assert_str_eq(ctl_arg_string(&req, "name"), "vm");
        ck_assert_ptr_null(ctl_arg_string(&req, "channel"));
        ck_assert(ctl_arg_bool(&req, "overwrite", false));
        ctl_request_done(&req);

        ck_assert_int_eq(ctl_request_parse(&req, json_tokener_parse(
                "{\"execute\":\"query-job\",\"arguments\":{\"job\":4000000000}}"), err, sizeof(err)), 0);
        ck_assert_uint_eq(ctl_arg_uint(&req, "job", 0), 4000000000ULL);
        ck_assert_uint_eq(ctl_arg_uint(&req, "nothing", 9), 9);
        ctl_request_done(&req);
}
END_TEST

/* ---- restore: protocol, channel and "to" together ------------------------- */

struct restore_case {
        const char *args;               /* the "arguments" object */
        int ret;
        const char *err;                /* substring of the message */
        bool native, channel_fd;
        const char *to;
};

static const struct restore_case restore_cases[] = {
        { "{\"file\":\"f\",\"to\":\"unix:/q\"}", 0, NULL, false, false, "unix:/q" },
        { "{\"file\":\"f\",\"to\":\"unix:/q\",\"protocol\":\"qemu\"}", 0, NULL, false, false, "unix:/q" },
        { "{\"file\":\"f\",\"protocol\":\"native\"}", 0, NULL, true, false, NULL },
        { "{\"file\":\"f\",\"protocol\":\"native\",\"channel\":\"unix\"}", 0, NULL, true, false, NULL },
        { "{\"file\":\"fd\",\"protocol\":\"native\",\"channel\":\"fd\"}", 0, NULL, true, true, NULL },
        { "{\"file\":\"f\"}", -EINVAL, "missing argument 'to'", false, false, NULL },
        { "{\"file\":\"f\",\"protocol\":\"qemu\"}", -EINVAL, "missing argument 'to'", false, false, NULL },
        { "{\"file\":\"f\",\"protocol\":\"Native\"}", -EINVAL, "'protocol' must be", false, false, NULL },
        { "{\"file\":\"f\",\"protocol\":\"native\",\"channel\":\"tcp\"}", -EINVAL,
          "'channel' must be", false, false, NULL },
        { "{\"file\":\"f\",\"protocol\":\"native\",\"to\":\"unix:/q\"}", -EINVAL,
          "'to' is for", false, false, NULL },
        { "{\"file\":\"f\",\"to\":\"unix:/q\",\"channel\":\"unix\"}", -EINVAL,
          "'channel' is for", false, false, NULL },
};

START_TEST(test_restore_args)
{
        const struct restore_case *t = &restore_cases[_i];
        struct ctl_restore_args a;
        struct ctl_request req;
        char err[SAVD_CONTROL_MAX_ERROR] = "", *json;

        ck_assert_int_ge(asprintf(&json, "{\"execute\":\"restore\",\"arguments\":%s}", t->args), 0);
        ck_assert_int_eq(ctl_request_parse(&req, json_tokener_parse(json), err, sizeof(err)), 0);
        int r = ctl_restore_args(&req, &a, err, sizeof(err));
        ck_assert_msg(r == t->ret, "%s: got %d (%s), want %d", t->args, r, err, t->ret);
        if (t->err)
                ck_assert_msg(strstr(err, t->err), "%s: message '%s' lacks '%s'", t->args, err, t->err);
        if (r == 0) {
                ck_assert_str_eq(a.file, json_object_get_string(json_object_object_get(req.args, "file")));
                ck_assert_int_eq(a.native, t->native);
                ck_assert_int_eq(a.channel_fd, t->channel_fd);
                if (t->to)
                        ck_assert_str_eq(a.to, t->to);
                else
                        ck_assert_ptr_null(a.to);
                ck_assert_ptr_null(a.name);
        }
        ctl_request_done(&req);
        free(json);
}
END_TEST

/* ---- Errors, encoders --------------------------------------------------- */

START_TEST(test_error_classes)
{
        static const struct { int err; const char *cls; } t[] = {
                { -EINVAL, "InvalidParameter" }, { -EEXIST, "InvalidParameter" },
                { -ELOOP, "InvalidParameter" }, { -ENOSYS, "CommandNotFound" },
                { -EACCES, "PermissionDenied" }, { -EPERM, "PermissionDenied" },
                { -ESRCH, "JobNotFound" }, { -EMSGSIZE, "LimitReached" },
                { -EUSERS, "LimitReached" }, { -EAGAIN, "LimitReached" },
                { -EBADMSG, "GenericError" }, { -EIO, "GenericError" }, { -12345, "GenericError" },
        };

        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
                struct json_object *e = ctl_error_new(t[i].err, "why", NULL), *o, *c;
                ck_assert(json_object_object_get_ex(e, "error", &o));
                ck_assert(json_object_object_get_ex(o, "class", &c));
                ck_assert_str_eq(json_object_get_string(c), t[i].cls);
                ck_assert(!json_object_object_get_ex(e, "id", NULL));
                ck_assert_int_eq(ctl_message_kind(e), CTL_MSG_ERROR);
                json_object_put(e);
        }
}
END_TEST

START_TEST(test_encoders)
{
        struct json_object *id = json_object_new_int(42), *m, *v;
        struct timespec ts = { .tv_sec = 1700000000, .tv_nsec = 123456789 };
        char *buf;
        size_t len;

        m = ctl_greeting_new("1.2.3");
        ck_assert_int_eq(ctl_format(m, &buf, &len), 0);
        ck_assert_str_eq(buf, "{\"QMP\":{\"version\":{\"savd\":{\"major\":1,\"minor\":2,\"micro\":3},"
                         "\"package\":\"savd 1.2.3\"},\"capabilities\":[]}}\n");
        ck_assert_uint_eq(len, strlen(buf));
        ck_assert_int_eq(ctl_message_kind(m), CTL_MSG_GREETING);
        free(buf);
        json_object_put(m);

        m = ctl_return_new(NULL, id);
        ck_assert_int_eq(ctl_format(m, &buf, &len), 0);
        ck_assert_str_eq(buf, "{\"return\":{},\"id\":42}\n");
        ck_assert_int_eq(ctl_message_kind(m), CTL_MSG_RETURN);
        free(buf);
        json_object_put(m);

        m = ctl_error_new(-EINVAL, "line\nbreak \"quoted\"", id);
        ck_assert_int_eq(ctl_format(m, &buf, &len), 0);
        ck_assert_str_eq(buf, "{\"error\":{\"class\":\"InvalidParameter\",\"desc\":\"line\\nbreak "
                         "\\\"quoted\\\"\"},\"id\":42}\n");
        ck_assert_ptr_null(memchr(buf, '\n', len - 1));        /* one line, always */
        free(buf);
        json_object_put(m);

        m = ctl_event_new(CTL_EVENT_JOB_PROGRESS, NULL, &ts);
        ck_assert_int_eq(ctl_message_kind(m), CTL_MSG_EVENT);
        ck_assert(json_object_object_get_ex(m, "timestamp", &v));
        ck_assert(json_object_object_get_ex(v, "microseconds", &v));
        ck_assert_int_eq(json_object_get_int(v), 123456);
        json_object_put(m);

        m = json_tokener_parse("{\"something\":1}");
        ck_assert_int_eq(ctl_message_kind(m), CTL_MSG_INVALID);
        json_object_put(m);
        json_object_put(id);
}
END_TEST

START_TEST(test_job_states)
{
        enum ctl_job_state s;

        for (unsigned i = 0; i < _CTL_JOB_STATE_MAX; i++) {
                ck_assert_int_eq(ctl_job_state_from_name(ctl_job_state_name(i), &s), 0);
                ck_assert_uint_eq(s, i);
        }
        ck_assert_str_eq(ctl_job_state_name(CTL_JOB_WAITING), "waiting-for-client");
        ck_assert(!ctl_job_state_ended(CTL_JOB_FINALIZING));
        ck_assert(ctl_job_state_ended(CTL_JOB_CANCELLED));
        ck_assert_int_eq(ctl_job_state_from_name("paused", &s), -EINVAL);
        for (unsigned i = 0; i < _CTL_CMD_MAX; i++)
                ck_assert_ptr_eq(ctl_command_find(ctl_command_get(i)->name), ctl_command_get(i));
}
END_TEST

static Suite *control_suite(void)
{
        Suite *s = suite_create("control");
        TCase *t = tcase_create("framing");

        tcase_set_timeout(t, 60);
        tcase_add_loop_test(t, test_reader_lines, 0, sizeof(steps) / sizeof(steps[0]));
        tcase_add_loop_test(t, test_reader_recovers, 0, sizeof(steps) / sizeof(steps[0]));
        tcase_add_loop_test(t, test_reader_size_limit, 0, sizeof(steps) / sizeof(steps[0]));
        tcase_add_test(t, test_reader_no_newline_flood);
        suite_add_tcase(s, t);

        t = tcase_create("requests");
        tcase_add_loop_test(t, test_request_table, 0, sizeof(request_cases) / sizeof(request_cases[0]));
        tcase_add_test(t, test_request_string_limits);
        tcase_add_test(t, test_request_id_kept_on_error);
        tcase_add_test(t, test_request_accessors);
        tcase_add_loop_test(t, test_restore_args, 0, sizeof(restore_cases) / sizeof(restore_cases[0]));
        suite_add_tcase(s, t);

        t = tcase_create("messages");
        tcase_add_test(t, test_error_classes);
        tcase_add_test(t, test_encoders);
        tcase_add_test(t, test_job_states);
        suite_add_tcase(s, t);
        return s;
}

int main(void)
{
        return test_run_suite(control_suite(), true);
}
