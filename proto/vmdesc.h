/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The vmdesc trailer of a QEMU stream (format notes §9): after the EOF
 * byte 0x00 comes 0x06, be32 N and N bytes of JSON describing every device
 * section.  QEMU's loader ignores the JSON, but tools that read migration
 * files (scripts/analyze-migration.py) need it, and since QEMU 9 it starts
 * with a "configuration" object describing the configuration record.
 *
 * vmdesc_find() locates EOF and the trailer at the end of the device tail
 * savd kept from a stream; vmdesc_rewrite() replaces the "configuration"
 * description with one for the configuration record savd writes (json-c).
 * No I/O, no logging.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qemu-format.h"

#define VMDESC_PREFIX_SIZE      6U      /* EOF byte, 0x06, be32 length */
#define VMDESC_MAX_DEPTH        64      /* JSON nesting accepted */

struct vmdesc_loc {
        size_t eof_offset;      /* the EOF byte */
        size_t json_offset;     /* first JSON byte (== len when absent) */
        size_t json_len;        /* 0 when absent */
};

/*
 * buf[0..len) must end where the stream ends.  Finds the last
 * "00 06 be32(N) JSON[N]" that ends exactly at len (N <= SAVD_MAX_VMDESC,
 * the JSON an object without NUL bytes).  Returns 1 when found, 0 when
 * there is no trailer but the range ends with the EOF byte (a source with
 * suppress-vmdesc), -EBADMSG otherwise (e.g. the stream was cut short).
 */
int vmdesc_find(const uint8_t *buf, size_t len, struct vmdesc_loc *loc);

/* Writes the EOF byte, 0x06 and be32 json_len. */
void vmdesc_put_prefix(uint8_t buf[VMDESC_PREFIX_SIZE], uint32_t json_len);

/* The configuration record being described. */
struct vmdesc_config {
        size_t machine_len;             /* bytes of the machine type name */
        const char *const *caps;        /* names as listed in the record */
        size_t n_caps;                  /* 0: no capabilities subsection */
        bool has_uuid;                  /* uuid subsection present */
};

/*
 * Parse json[0..len) (a vmdesc object with "page_size" and a "devices"
 * array) and build the same document starting with a "configuration"
 * object for cfg, shaped as QEMU 9+ writes it; an existing
 * "configuration" is replaced, every other member is kept unchanged and
 * in order.  On success *ret is a malloc'ed, NUL-terminated compact JSON
 * string of *ret_len bytes.  Returns 0, -EBADMSG (not a vmdesc), -E2BIG
 * (larger than SAVD_MAX_VMDESC, in or out), -EINVAL (bad cfg) or -ENOMEM.
 */
int vmdesc_rewrite(const char *json, size_t len, const struct vmdesc_config *cfg,
                   char **ret, size_t *ret_len);
