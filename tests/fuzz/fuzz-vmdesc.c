/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the vmdesc trailer code (proto/vmdesc.h).
 *
 * Input: two bytes choosing the configuration record to describe (machine
 * name length, capabilities, uuid), then bytes that are used twice: as the
 * end of a device tail for vmdesc_find(), and as the JSON for
 * vmdesc_rewrite().  A successful rewrite must be one compact JSON object
 * starting with "configuration", must be accepted again by vmdesc_rewrite()
 * and come out unchanged (rewriting is idempotent), and must be found by
 * vmdesc_find() once framed as a trailer.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "fuzz.h"
#include "macro.h"
#include "vmdesc.h"

#define PREFIX_SIZE     2U
#define CONFIG_PREFIX   "{\"configuration\":"

static char long_cap[SAVD_NAME_MAX + 1];        /* the longest name allowed */
static const char *const cap_pool[] = { "mapped-ram", "x-ignore-shared", "\"quoted\\\"", long_cap };

/* Byte 0: machine name length (0 and 257 are invalid on purpose);
 * byte 1: bits 0-5 number of caps (up to 63, plus one past the limit when
 * all are set), bit 6 uuid, bit 7 a NULL cap list. */
static void make_config(const uint8_t *p, struct vmdesc_config *cfg, const char **caps)
{
        size_t n = p[1] & 0x3f;

        memset(long_cap, 'c', SAVD_NAME_MAX);
        if (n == 0x3f)
                n = SAVD_MAX_CAPS + 1;
        for (size_t i = 0; i < n; i++)
                caps[i] = cap_pool[i % ELEMENTSOF(cap_pool)];
        *cfg = (struct vmdesc_config) {
                .machine_len = p[0] == 0xff ? SAVD_MACHINE_NAME_MAX + 1 : p[0],
                .caps = (p[1] & 0x80) ? NULL : caps,
                .n_caps = n,
                .has_uuid = p[1] & 0x40,
        };
}

static bool config_valid(const struct vmdesc_config *cfg)
{
        return cfg->machine_len > 0 && cfg->machine_len <= SAVD_MACHINE_NAME_MAX &&
               cfg->n_caps <= SAVD_MAX_CAPS && (cfg->n_caps == 0 || cfg->caps);
}

static void check_find(const uint8_t *buf, size_t len)
{
        struct vmdesc_loc loc;
        int k = vmdesc_find(buf, len, &loc);

        require(k == 1 || k == 0 || k == -EBADMSG);
        if (k < 0)
                return;
        require(loc.eof_offset < len && buf[loc.eof_offset] == 0);
        require(loc.json_offset + loc.json_len == len);
        if (k == 0) {
                require(loc.eof_offset == len - 1 && loc.json_len == 0);
                return;
        }
        require(loc.json_offset == loc.eof_offset + VMDESC_PREFIX_SIZE);
        require(loc.json_len > 0 && loc.json_len <= SAVD_MAX_VMDESC && buf[loc.json_offset] == '{');
}

/* The rewritten document framed as the end of a device tail. */
static void check_framed(const char *out, size_t out_len)
{
        uint8_t *t = malloc(out_len + VMDESC_PREFIX_SIZE + 1);
        struct vmdesc_loc loc;

        require(t);
        t[0] = 0x04;                    /* some device state before EOF */
        vmdesc_put_prefix(t + 1, (uint32_t)out_len);
        memcpy(t + 1 + VMDESC_PREFIX_SIZE, out, out_len);
        require(vmdesc_find(t, out_len + VMDESC_PREFIX_SIZE + 1, &loc) == 1);
        require(loc.eof_offset == 1 && loc.json_len == out_len);
        free(t);
}

static void check_rewrite(const char *json, size_t len, const struct vmdesc_config *cfg)
{
        char *out = NULL, *again = NULL;
        size_t out_len = 0, again_len = 0;
        int k = vmdesc_rewrite(json, len, cfg, &out, &out_len);

        if (!config_valid(cfg)) {
                require(k == -EINVAL);
                return;
        }
        require(k == 0 || k == -EBADMSG || k == -E2BIG);
        if (k < 0)
                return;
        require(out && strlen(out) == out_len && out_len <= SAVD_MAX_VMDESC);
        require(strncmp(out, CONFIG_PREFIX, strlen(CONFIG_PREFIX)) == 0);
        require(memchr(out, '\n', out_len) == NULL);
        check_framed(out, out_len);

        k = vmdesc_rewrite(out, out_len, cfg, &again, &again_len);
        require(k == 0);
        require(again_len == out_len && memcmp(again, out, out_len) == 0);
        free(again);
        free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *caps[SAVD_MAX_CAPS + 1];
        struct vmdesc_config cfg;

        if (size < PREFIX_SIZE)
                return 0;
        make_config(data, &cfg, caps);
        data += PREFIX_SIZE;
        size -= PREFIX_SIZE;

        check_find(data, size);

        /* An exact-size copy, so that reading past the JSON is caught. */
        char *json = malloc(size ? size : 1);
        require(json);
        memcpy(json, data, size);
        check_rewrite(json, size, &cfg);
        free(json);
        return 0;
}
