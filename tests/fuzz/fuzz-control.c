/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the JSON control protocol (proto/control.h): the
 * framing reader, the request parser with its argument checks, the typed
 * argument getters and the reply encoders, as the control server chains
 * them for every line a client sends.
 *
 * Input: two chunk sizes (0 = "the rest"), one byte choosing the object
 * size limit (0 = SAVD_CONTROL_MAX_REQUEST, else 8 * value), then the
 * bytes a client sends.  The bytes are read once in one piece and once in
 * chunks of the given sizes (each chunk in a heap buffer of its exact
 * size); both must yield the same objects, in the same order between
 * the same errors (see compare() for the one allowed difference).  For
 * every request the reply the server would send, echoing the client's
 * "id", must frame as exactly one line that reads back as a reply.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "control.h"
#include "fuzz.h"

#define PREFIX_SIZE     3U
#define ERR_SIZE        256U

/* Arguments that passed ctl_request_parse() must read back within the
 * limits of the command table; required ones are present. */
static void check_args(const struct ctl_request *req)
{
        for (const struct ctl_arg *a = req->cmd->args; a->name; a++) {
                struct json_object *v = NULL;
                bool present = req->args && json_object_object_get_ex(req->args, a->name, &v);

                require(present || !a->required);
                switch (a->type) {
                case CTL_ARG_STRING: {
                        const char *s = ctl_arg_string(req, a->name);
                        require(!s == !present);
                        if (s)
                                require(s[0] && strlen(s) <= a->max);
                        break;
                }
                case CTL_ARG_BOOL:
                        require(!present || json_object_is_type(v, json_type_boolean));
                        require(!present || ctl_arg_bool(req, a->name, false) ==
                                            ctl_arg_bool(req, a->name, true));
                        break;
                case CTL_ARG_UINT:
                        require(!present || json_object_is_type(v, json_type_int));
                        require(ctl_arg_uint(req, a->name, 0) <= a->max);
                        break;
                }
        }
}

/* The reply goes back on the same connection: it must be one line that a
 * client's reader turns back into one reply object.  Takes reply. */
static void check_reply(struct json_object *reply, enum ctl_message_kind kind)
{
        struct ctl_reader rd;
        struct json_object *back = NULL;
        char err[ERR_SIZE];
        char *text;
        size_t len, used;

        require(reply);
        require(ctl_format(reply, &text, &len) == 0);
        json_object_put(reply);
        require(len > 0 && text[len - 1] == '\n' && text[len] == '\0');
        require(memchr(text, '\n', len - 1) == NULL);
        require(ctl_reader_init(&rd, SAVD_CONTROL_MAX_REPLY) == 0);
        require(ctl_reader_feed(&rd, text, len, &used, &back, err, sizeof(err)) == 1);
        require(back && ctl_message_kind(back) == kind);
        json_object_put(back);
        ctl_reader_done(&rd);
        free(text);
}

static void handle(struct json_object *obj)
{
        struct ctl_request req;
        char err[ERR_SIZE];

        (void)ctl_message_kind(obj);
        int k = ctl_request_parse(&req, obj, err, sizeof(err));
        if (k == 0) {
                require(req.cmd && ctl_command_find(req.cmd->name) == req.cmd);
                require(ctl_command_get(req.cmd->id) == req.cmd);
                check_args(&req);
                check_reply(ctl_return_new(NULL, req.id), CTL_MSG_RETURN);
        } else {
                require(k == -EINVAL || k == -ENOSYS);
                require(memchr(err, 0, sizeof(err)) && err[0]);
                check_reply(ctl_error_new(k, err, req.id), CTL_MSG_ERROR);
        }
        ctl_request_done(&req);
}

/* What a run saw: the objects in order, the number of errors, and
 * whether an object was still incomplete at the end of the input. */
struct outcome {
        uint64_t objects;
        unsigned errors;
        bool pending;
};

/* Feed one chunk. */
static void feed(struct ctl_reader *rd, const char *buf, size_t len, struct outcome *out)
{
        while (len > 0) {
                struct json_object *obj = NULL;
                char err[ERR_SIZE] = "";
                size_t used = SIZE_MAX;
                int k = ctl_reader_feed(rd, buf, len, &used, &obj, err, sizeof(err));

                require(used <= len);
                if (k == 0) {
                        require(used == len && !obj);
                        return;
                }
                if (k == 1) {
                        require(obj && json_object_is_type(obj, json_type_object));
                        const char *s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
                        out->objects = fnv(out->objects, s, strlen(s) + 1);
                        handle(obj);
                } else {
                        require(k == -EBADMSG || k == -EMSGSIZE);
                        require(!obj && err[0]);
                        out->errors++;
                        /* keeps objects in order with the errors between them */
                        out->objects = fnv(out->objects, "", 1);
                }
                buf += used;
                len -= used;
        }
}

static void run(const uint8_t *data, size_t size, const uint8_t *sizes, size_t max,
                struct outcome *out)
{
        struct ctl_reader rd;
        size_t pos = 0, k = 0;

        *out = (struct outcome) { .objects = 0xcbf29ce484222325ULL };
        require(ctl_reader_init(&rd, max) == 0);
        while (pos < size) {
                size_t c = sizes ? sizes[k++ % 2] : 0;
                c = (c == 0 || c > size - pos) ? size - pos : c;
                char *chunk = malloc(c);
                require(chunk);
                memcpy(chunk, data + pos, c);
                feed(&rd, chunk, c, out);
                free(chunk);
                pos += c;
        }
        out->pending = ctl_reader_pending(&rd);
        ctl_reader_done(&rd);
}

/* Objects must be the same whatever the split.  Which error a bad line
 * gets may differ, and so may the moment it is noticed: json-c's
 * incremental tokenizer lets a malformed number through when it arrives
 * in pieces (the reader then refuses the object once it is complete, or
 * the line when it ends).  So an input that ends inside such a line may
 * leave one run with the error and the other still waiting. */
static void compare(const struct outcome *a, const struct outcome *b)
{
        if (a->errors == b->errors) {
                require(a->objects == b->objects && a->pending == b->pending);
                return;
        }
        const struct outcome *fewer = a->errors < b->errors ? a : b;
        const struct outcome *more = fewer == a ? b : a;
        require(more->errors == fewer->errors + 1 && fewer->pending && !more->pending);
        require(more->objects == fnv(fewer->objects, "", 1));   /* the error came last */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct outcome whole, split;

        if (size < PREFIX_SIZE)
                return 0;
        size_t max = data[2] ? (size_t)data[2] * 8 : SAVD_CONTROL_MAX_REQUEST;
        run(data + PREFIX_SIZE, size - PREFIX_SIZE, NULL, max, &whole);
        run(data + PREFIX_SIZE, size - PREFIX_SIZE, data, max, &split);
        compare(&whole, &split);
        return 0;
}
