/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The native record of a mapped-ram file (see native-file.h): encoders for
 * the device-state section and the vmdesc JSON, the reader that finds and
 * checks them, and CRC-32C for the blob (SSE4.2 instruction when the CPU
 * has it, a table otherwise).
 */
#include "config.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "macro.h"
#include "native-file.h"
#include "savd/proto.h"
#include "vmdesc.h"

#define CRC_CHUNK       (1U << 20)      /* blob bytes read at a time */
#define CRC32C_POLY     0x82f63b78U     /* reflected Castagnoli polynomial */

/* ---- CRC-32C -------------------------------------------------------------- */

static uint32_t crc_table[256];
static int crc_table_ready;

static void crc_table_init(void)
{
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;
                for (int k = 0; k < 8; k++)
                        c = (c >> 1) ^ (c & 1 ? CRC32C_POLY : 0);
                crc_table[i] = c;
        }
        __atomic_store_n(&crc_table_ready, 1, __ATOMIC_RELEASE);
}

static uint32_t crc_soft(uint32_t c, const uint8_t *p, size_t len)
{
        if (!__atomic_load_n(&crc_table_ready, __ATOMIC_ACQUIRE))
                crc_table_init();       /* idempotent: racing threads write the same */
        while (len--)
                c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
        return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t c, const uint8_t *p, size_t len)
{
        uint64_t c64 = c;

        for (; len >= 8; len -= 8, p += 8) {
                uint64_t v;
                memcpy(&v, p, 8);
                c64 = __builtin_ia32_crc32di(c64, v);
        }
        c = (uint32_t)c64;
        while (len--)
                c = __builtin_ia32_crc32qi(c, *p++);
        return c;
}
#endif

uint32_t native_crc32c(uint32_t crc, const void *buf, size_t len)
{
        uint32_t c = ~crc;

#if defined(__x86_64__)
        if (__builtin_cpu_supports("sse4.2"))
                return ~crc_hw(c, buf, len);
#endif
        return ~crc_soft(c, buf, len);
}

/* ---- the device-state section --------------------------------------------- */

size_t native_encode_dev_header(uint8_t buf[NATIVE_DEV_HEADER_SIZE], uint64_t blob_len)
{
        uint8_t *p = buf;
        size_t n = sizeof(NATIVE_DEV_IDSTR) - 1;

        *p++ = QEMU_VM_SECTION_FULL;
        put_be32(p, NATIVE_DEV_SECTION_ID);
        p += 4;
        *p++ = (uint8_t)n;
        memcpy(p, NATIVE_DEV_IDSTR, n);
        p += n;
        put_be32(p, 0);                 /* instance */
        put_be32(p + 4, NATIVE_DEV_VERSION);
        put_be64(p + 8, blob_len);
        return (size_t)(p + 16 - buf);
}

size_t native_encode_dev_footer(uint8_t buf[NATIVE_DEV_FOOTER_SIZE])
{
        buf[0] = QEMU_VM_SECTION_FOOTER;
        put_be32(buf + 1, NATIVE_DEV_SECTION_ID);
        return NATIVE_DEV_FOOTER_SIZE;
}

/* ---- vmdesc ------------------------------------------------------------- */

static struct json_object *field(const char *name, const char *type, uint64_t size)
{
        struct json_object *o = json_object_new_object();

        json_object_object_add(o, "name", json_object_new_string(name));
        json_object_object_add(o, "type", json_object_new_string(type));
        json_object_object_add(o, "size", json_object_new_uint64(size));
        return o;
}

/* The section described the way QEMU describes a device in vmdesc. */
static struct json_object *device_json(uint64_t blob_len)
{
        struct json_object *d = json_object_new_object(), *fields = json_object_new_array();

        json_object_object_add(d, "name", json_object_new_string(NATIVE_DEV_IDSTR));
        json_object_object_add(d, "instance_id", json_object_new_int(0));
        json_object_object_add(d, "vmsd_name", json_object_new_string(NATIVE_DEV_IDSTR));
        json_object_object_add(d, "version", json_object_new_int(NATIVE_DEV_VERSION));
        json_object_array_add(fields, field("length", "uint64", 8));
        json_object_array_add(fields, field("data", "buffer", blob_len));
        json_object_object_add(d, "fields", fields);
        return d;
}

static struct json_object *native_json(uint64_t offset, uint64_t blob_len, uint32_t crc)
{
        struct json_object *n = json_object_new_object(), *ds = json_object_new_object();

        json_object_object_add(n, "version", json_object_new_int(NATIVE_FILE_VERSION));
        json_object_object_add(ds, "offset", json_object_new_uint64(offset));
        json_object_object_add(ds, "length", json_object_new_uint64(blob_len));
        json_object_object_add(ds, "crc32c", json_object_new_uint64(crc));
        json_object_object_add(n, "device-state", ds);
        return n;
}

int native_vmdesc_json(uint64_t section_offset, uint64_t blob_len, uint32_t crc,
                       size_t machine_len, char **ret, size_t *ret_len)
{
        static const char *const caps[] = { MAPPED_RAM_CAP };
        const struct vmdesc_config cfg = {
                .machine_len = machine_len, .caps = caps, .n_caps = 1,
        };
        struct json_object *o = json_object_new_object(), *devs = json_object_new_array();
        const char *s;
        int r;

        if (!o || !devs) {
                json_object_put(o);
                json_object_put(devs);
                return -ENOMEM;
        }
        json_object_object_add(o, "page_size", json_object_new_int(QEMU_TPS));
        json_object_array_add(devs, device_json(blob_len));
        json_object_object_add(o, "devices", devs);
        json_object_object_add(o, NATIVE_JSON_KEY, native_json(section_offset, blob_len, crc));
        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        /* The same "configuration" description QEMU 9+ puts first. */
        r = s ? vmdesc_rewrite(s, strlen(s), &cfg, ret, ret_len) : -ENOMEM;
        json_object_put(o);
        return r;
}

/* ---- reading it back -------------------------------------------------------- */

static int get_u64(const struct json_object *o, const char *key, uint64_t *v)
{
        struct json_object *x;

        if (!json_object_object_get_ex(o, key, &x) || !json_object_is_type(x, json_type_int))
                return -EBADMSG;
        if (json_object_get_int64(x) < 0 && json_object_get_uint64(x) == 0)
                return -EBADMSG;
        *v = json_object_get_uint64(x);
        return 0;
}

static int parse_record(const struct mrm_file *f, struct native_file_info *info,
                        struct mrm_error *err)
{
        struct json_object *n, *ds;
        uint64_t version, crc;
        uint64_t at = f->vmdesc_offset;

        if (!f->vmdesc || !json_object_object_get_ex(f->vmdesc, NATIVE_JSON_KEY, &n))
                return -ENOENT;
        if (!json_object_is_type(n, json_type_object) || get_u64(n, "version", &version) < 0)
                return mrm_fail(err, at, -EBADMSG, "vmdesc \"%s\" has no numeric version",
                                NATIVE_JSON_KEY);
        if (version != NATIVE_FILE_VERSION)
                return mrm_fail(err, at, -EBADMSG, "vmdesc \"%s\" version %llu, expected %u",
                                NATIVE_JSON_KEY, (unsigned long long)version,
                                NATIVE_FILE_VERSION);
        if (!json_object_object_get_ex(n, "device-state", &ds) ||
            !json_object_is_type(ds, json_type_object) ||
            get_u64(ds, "offset", &info->section_offset) < 0 ||
            get_u64(ds, "length", &info->blob_len) < 0 || get_u64(ds, "crc32c", &crc) < 0 ||
            crc > UINT32_MAX)
                return mrm_fail(err, at, -EBADMSG, "vmdesc \"%s\" lacks a valid device-state "
                                "offset, length and crc32c", NATIVE_JSON_KEY);
        info->version = (uint32_t)version;
        info->crc32c = (uint32_t)crc;
        return 0;
}

/* The section must start where the device tail starts and end at EOF. */
static int check_section(const struct mrm_file *f, mrm_pread_fn fn, void *opaque,
                         struct native_file_info *info, struct mrm_error *err)
{
        uint8_t want[NATIVE_DEV_HEADER_SIZE], got[NATIVE_DEV_HEADER_SIZE];
        uint8_t wfoot[NATIVE_DEV_FOOTER_SIZE], gfoot[NATIVE_DEV_FOOTER_SIZE];
        uint64_t off = info->section_offset;
        int k;

        if (off != f->device_offset || info->blob_len > SAVD_NATIVE_MAX_DEVICE_STATE ||
            f->eof_offset == UINT64_MAX ||
            off + NATIVE_DEV_HEADER_SIZE + info->blob_len + NATIVE_DEV_FOOTER_SIZE != f->eof_offset)
                return mrm_fail(err, off, -EBADMSG, "native device state (%llu bytes at 0x%llx) "
                                "does not fill the device tail 0x%llx..0x%llx",
                                (unsigned long long)info->blob_len, (unsigned long long)off,
                                (unsigned long long)f->device_offset,
                                (unsigned long long)f->eof_offset);
        native_encode_dev_header(want, info->blob_len);
        if ((k = mrm_pread_full(fn, opaque, got, sizeof(got), off, err)) < 0)
                return k;
        if (memcmp(want, got, sizeof(want)) != 0)
                return mrm_fail(err, off, -EBADMSG, "native device-state section header does "
                                "not match its vmdesc record");
        info->blob_offset = off + NATIVE_DEV_HEADER_SIZE;
        native_encode_dev_footer(wfoot);
        if ((k = mrm_pread_full(fn, opaque, gfoot, sizeof(gfoot),
                                info->blob_offset + info->blob_len, err)) < 0)
                return k;
        if (memcmp(wfoot, gfoot, sizeof(wfoot)) != 0)
                return mrm_fail(err, info->blob_offset + info->blob_len, -EBADMSG,
                                "native device-state section has no valid footer");
        return 0;
}

static int check_crc(const struct native_file_info *info, mrm_pread_fn fn, void *opaque,
                     struct mrm_error *err)
{
        _cleanup_free_ uint8_t *buf = malloc(CRC_CHUNK);
        uint32_t crc = 0;
        int k;

        if (!buf)
                return mrm_fail(err, info->blob_offset, -ENOMEM, "out of memory");
        for (uint64_t done = 0; done < info->blob_len;) {
                size_t n = (size_t)MIN((uint64_t)CRC_CHUNK, info->blob_len - done);

                if ((k = mrm_pread_full(fn, opaque, buf, n, info->blob_offset + done, err)) < 0)
                        return k;
                crc = native_crc32c(crc, buf, n);
                done += n;
        }
        if (crc != info->crc32c)
                return mrm_fail(err, info->blob_offset, -EBADMSG, "native device state has "
                                "CRC-32C 0x%08x, its record says 0x%08x", crc, info->crc32c);
        return 0;
}

int native_file_info(const struct mrm_file *f, mrm_pread_fn fn, void *opaque, bool crc,
                     struct native_file_info *info, struct mrm_error *err)
{
        int k;

        memset(info, 0, sizeof(*info));
        if ((k = parse_record(f, info, err)) < 0)
                return k;
        if ((k = check_section(f, fn, opaque, info, err)) < 0)
                return k;
        return crc ? check_crc(info, fn, opaque, err) : 0;
}
