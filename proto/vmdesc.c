/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Finding and rewriting the vmdesc JSON trailer.  The "configuration"
 * object mirrors what QEMU 9+ writes for its configuration vmstate: the
 * fields "len" (uint32) and "name" (buffer of the machine name's length),
 * then one object per subsection present, in record order.  Arrays of
 * equal elements appear once with "array_len", as QEMU's vmdesc writer
 * compresses them (format notes §9, §14).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "bytes.h"
#include "macro.h"
#include "vmdesc.h"

static bool trailer_at(const uint8_t *buf, size_t len, size_t e)
{
        size_t n;

        if (e + VMDESC_PREFIX_SIZE >= len || buf[e] != QEMU_VM_EOF ||
            buf[e + 1] != QEMU_VM_VMDESCRIPTION)
                return false;
        n = get_be32(buf + e + 2);
        return n == len - e - VMDESC_PREFIX_SIZE && n <= SAVD_MAX_VMDESC &&
               buf[e + VMDESC_PREFIX_SIZE] == '{';
}

int vmdesc_find(const uint8_t *buf, size_t len, struct vmdesc_loc *loc)
{
        const uint8_t *nul;
        size_t x;

        if (len == 0 || !(nul = memrchr(buf, 0, len)))
                return -EBADMSG;
        /* JSON holds no NUL byte, so the EOF byte is the last NUL or at most
         * five bytes before it (inside be32 N there may be more). */
        x = (size_t)(nul - buf);
        for (size_t e = x + 1; e-- > (x >= 5 ? x - 5 : 0);) {
                if (!trailer_at(buf, len, e))
                        continue;
                loc->eof_offset = e;
                loc->json_offset = e + VMDESC_PREFIX_SIZE;
                loc->json_len = len - loc->json_offset;
                return 1;
        }
        if (buf[len - 1] != QEMU_VM_EOF)
                return -EBADMSG;
        loc->eof_offset = len - 1;
        loc->json_offset = len;
        loc->json_len = 0;
        return 0;
}

void vmdesc_put_prefix(uint8_t buf[VMDESC_PREFIX_SIZE], uint32_t json_len)
{
        buf[0] = QEMU_VM_EOF;
        buf[1] = QEMU_VM_VMDESCRIPTION;
        put_be32(buf + 2, json_len);
}

/* ---- building the "configuration" description ------------------------- */

static void json_putp(struct json_object **o)
{
        json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_putp)

/* Adds val under key, taking ownership of val in every case. */
static int add(struct json_object *obj, const char *key, struct json_object *val)
{
        if (!val)
                return -ENOMEM;
        if (json_object_object_add(obj, key, val) < 0) {
                json_object_put(val);
                return -ENOMEM;
        }
        return 0;
}

static int append(struct json_object *arr, struct json_object *val)
{
        if (!val)
                return -ENOMEM;
        if (json_object_array_add(arr, val) < 0) {
                json_object_put(val);
                return -ENOMEM;
        }
        return 0;
}

/* {"name": N, ["array_len": A,] "type": T, "size": S} */
static struct json_object *field(const char *name, size_t array_len, const char *type,
                                 size_t size)
{
        _cleanup_json_ struct json_object *f = json_object_new_object();

        if (!f || add(f, "name", json_object_new_string(name)) < 0 ||
            (array_len > 1 && add(f, "array_len", json_object_new_int64(array_len)) < 0) ||
            add(f, "type", json_object_new_string(type)) < 0 ||
            add(f, "size", json_object_new_int64(size)) < 0)
                return NULL;
        return TAKE_PTR(f);
}

/* {"vmsd_name": V, "version": 1, "fields": [f1, f2]} */
static struct json_object *vmsd(const char *name, struct json_object *f1,
                                struct json_object *f2)
{
        _cleanup_json_ struct json_object *a = f1, *b = f2;
        _cleanup_json_ struct json_object *o = json_object_new_object();
        _cleanup_json_ struct json_object *fields = json_object_new_array();

        if (!o || !fields || !a || (f2 && !b))
                return NULL;
        if (append(fields, TAKE_PTR(a)) < 0 || (b && append(fields, TAKE_PTR(b)) < 0))
                return NULL;
        if (add(o, "vmsd_name", json_object_new_string(name)) < 0 ||
            add(o, "version", json_object_new_int(1)) < 0 ||
            add(o, "fields", TAKE_PTR(fields)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static struct json_object *caps_vmsd(const struct vmdesc_config *cfg)
{
        /* vmstate_info_capability writes a counted string; QEMU describes
         * the array by its first element. */
        return vmsd(QEMU_CFG_SUB_CAPS, field("caps_count", 0, "uint32", 4),
                    field("capabilities", cfg->n_caps, "capability", 1 + strlen(cfg->caps[0])));
}

static struct json_object *uuid_vmsd(void)
{
        return vmsd(QEMU_CFG_SUB_UUID, field("uuid.data", QEMU_UUID_LEN, "uint8", 1), NULL);
}

static struct json_object *config_vmsd(const struct vmdesc_config *cfg)
{
        _cleanup_json_ struct json_object *o = NULL, *subs = NULL;

        o = vmsd("configuration", field("len", 0, "uint32", 4),
                 field("name", 0, "buffer", cfg->machine_len));
        if (!o)
                return NULL;
        if (cfg->n_caps == 0 && !cfg->has_uuid)
                return TAKE_PTR(o);
        if (!(subs = json_object_new_array()))
                return NULL;
        if ((cfg->n_caps && append(subs, caps_vmsd(cfg)) < 0) ||
            (cfg->has_uuid && append(subs, uuid_vmsd()) < 0))
                return NULL;
        if (add(o, "subsections", TAKE_PTR(subs)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static int check_config(const struct vmdesc_config *cfg)
{
        if (cfg->machine_len == 0 || cfg->machine_len > SAVD_MACHINE_NAME_MAX ||
            cfg->n_caps > SAVD_MAX_CAPS || (cfg->n_caps && !cfg->caps))
                return -EINVAL;
        for (size_t i = 0; i < cfg->n_caps; i++)
                if (!cfg->caps[i] || !cfg->caps[i][0] || strlen(cfg->caps[i]) > SAVD_NAME_MAX)
                        return -EINVAL;
        return 0;
}

/* ---- parsing and rewriting -------------------------------------------- */

static int parse_vmdesc(const char *json, size_t len, struct json_object **ret)
{
        struct json_tokener *tok;
        struct json_object *o, *v;
        bool complete;

        if (len > SAVD_MAX_VMDESC)
                return -E2BIG;
        if (memchr(json, 0, len))
                return -EBADMSG;
        if (!(tok = json_tokener_new_ex(VMDESC_MAX_DEPTH)))
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        o = json_tokener_parse_ex(tok, json, (int)len);
        complete = json_tokener_get_error(tok) == json_tokener_success &&
                   json_tokener_get_parse_end(tok) == len;
        json_tokener_free(tok);
        if (!o || !complete || !json_object_is_type(o, json_type_object) ||
            !json_object_object_get_ex(o, "devices", &v) || !json_object_is_type(v, json_type_array) ||
            !json_object_object_get_ex(o, "page_size", &v) || !json_object_is_type(v, json_type_int)) {
                json_object_put(o);
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}

int vmdesc_rewrite(const char *json, size_t len, const struct vmdesc_config *cfg,
                   char **ret, size_t *ret_len)
{
        _cleanup_json_ struct json_object *in = NULL, *out = NULL;
        const char *s;
        size_t n;
        char *copy;
        int r;

        if ((r = check_config(cfg)) < 0 || (r = parse_vmdesc(json, len, &in)) < 0)
                return r;
        if (!(out = json_object_new_object()) || add(out, "configuration", config_vmsd(cfg)) < 0)
                return -ENOMEM;
        json_object_object_foreach(in, key, val) {
                if (strcmp(key, "configuration") == 0)
                        continue;
                if (add(out, key, json_object_get(val)) < 0)
                        return -ENOMEM;
        }
        s = json_object_to_json_string_length(out, JSON_C_TO_STRING_PLAIN |
                                              JSON_C_TO_STRING_NOSLASHESCAPE, &n);
        if (!s)
                return -ENOMEM;
        if (n > SAVD_MAX_VMDESC)
                return -E2BIG;
        if (!(copy = malloc(n + 1)))
                return -ENOMEM;
        memcpy(copy, s, n + 1);
        *ret = copy;
        *ret_len = n;
        return 0;
}
