/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * How a file saved through the native protocol records what QEMU's format
 * has no place for (proto/native.md, "The file"): the file stays a plain
 * mapped-ram file; the VM name is the machine name of its configuration
 * record; the VMM's device-state blob is one device section in QEMU's own
 * section syntax,
 *
 *   0x04 FULL, be32 section id 2, counted "savd-native/device-state",
 *   be32 instance 0, be32 version 1, be64 N, N blob bytes, 0x7E be32 2
 *
 * right after the RAM END section; then EOF and a vmdesc JSON that lists
 * that device like QEMU lists its own and adds
 *
 *   "savd-native": {"version": 1, "device-state":
 *                   {"offset": O, "length": N, "crc32c": C}}
 *
 * (O = the section's first byte).  Structure checkers see an ordinary
 * device tail; QEMU itself would stop at the unknown section with a clear
 * error naming it.  No I/O (reads go through mrm_pread_fn), no logging.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrm-reader.h"

#define NATIVE_FILE_VERSION     1U
#define NATIVE_RAM_SECTION_ID   1U
#define NATIVE_DEV_SECTION_ID   2U
#define NATIVE_DEV_IDSTR        "savd-native/device-state"
#define NATIVE_DEV_VERSION      1U
#define NATIVE_JSON_KEY         "savd-native"
/* Section bytes before the blob: type, id, counted idstr, instance,
 * version, be64 length. */
#define NATIVE_DEV_HEADER_SIZE  (1U + 4U + 1U + sizeof(NATIVE_DEV_IDSTR) - 1U + 4U + 4U + 8U)
#define NATIVE_DEV_FOOTER_SIZE  5U

struct native_file_info {
        uint32_t version;
        uint64_t section_offset;        /* the FULL byte */
        uint64_t blob_offset;
        uint64_t blob_len;
        uint32_t crc32c;                /* as recorded */
};

/* CRC-32C (Castagnoli) of buf, continuing from crc (start with 0). */
uint32_t native_crc32c(uint32_t crc, const void *buf, size_t len);

size_t native_encode_dev_header(uint8_t buf[NATIVE_DEV_HEADER_SIZE], uint64_t blob_len);
size_t native_encode_dev_footer(uint8_t buf[NATIVE_DEV_FOOTER_SIZE]);

/* The vmdesc JSON of a native file (machine_len: bytes of the VM name in
 * the configuration record).  *ret is malloc'ed and NUL-terminated. */
int native_vmdesc_json(uint64_t section_offset, uint64_t blob_len, uint32_t crc,
                       size_t machine_len, char **ret, size_t *ret_len);

/* Find the native record of a file mrm_read() accepted: -ENOENT when the
 * file has none (e.g. written from a QEMU stream), -EBADMSG when the
 * record or the section it points at is malformed (message in *err), 0
 * when *info is filled and the section bytes match it.  With check_crc
 * the blob is read (in bounded chunks) and its CRC compared. */
int native_file_info(const struct mrm_file *f, mrm_pread_fn fn, void *opaque, bool check_crc,
                     struct native_file_info *info, struct mrm_error *err);
