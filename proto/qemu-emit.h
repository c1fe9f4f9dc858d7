/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Encoders for QEMU's legacy precopy stream, the stream savd sends into a
 * QEMU waiting on -incoming when it restores a mapped-ram file (format
 * notes §3 - §7): header, configuration record, the "ram" START section
 * with its block list (no MappedRamHeaders), PART headers, page record
 * headers (named for the first page of a block, CONTINUE after that), EOS
 * with footer and the END section.  Device state, EOF and vmdesc are the
 * saved tail, copied verbatim by the caller.
 *
 * Every encoder follows the snprintf pattern: with buf == NULL it returns
 * the number of bytes it would write; otherwise it writes them and returns
 * the count, -ENOBUFS when size is too small, or -EINVAL for input outside
 * the format's or savd's limits (checked before anything is written).
 * No I/O, no logging.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "qemu-format.h"

#define QEMIT_HEADER_SIZE       8U                      /* magic + version */
#define QEMIT_PART_HEADER_SIZE  5U                      /* type + be32 id */
#define QEMIT_PAGE_HEADER_MAX   (8U + 1U + SAVD_NAME_MAX)       /* word + counted name */
#define QEMIT_SECTION_TAIL_SIZE 13U                     /* EOS + footer */
#define QEMIT_RAM_END_SIZE      (5U + QEMIT_SECTION_TAIL_SIZE)  /* END, EOS, footer */

struct qemit_config {
        const char *machine;            /* machine type name, not NUL-terminated */
        size_t machine_len;             /* 1 .. SAVD_MACHINE_NAME_MAX */
        /* Capabilities the saved stream listed.  "mapped-ram" is dropped
         * (the destination loads a plain stream); the subsection is
         * written only when something else remains. */
        const char *const *caps;
        size_t n_caps;                  /* <= SAVD_MAX_CAPS */
        const uint8_t *uuid;            /* QEMU_UUID_LEN bytes, or NULL */
};

struct qemit_block {
        const char *name;               /* not NUL-terminated */
        size_t name_len;                /* 1 .. SAVD_NAME_MAX */
        uint64_t used_length;           /* positive multiple of QEMU_TPS */
};

/* Which block the previous page record named: QEMU's loader resolves a
 * CONTINUE record against it (format notes §7.5).  Zero-initialise one per
 * stream and pass it to every page/zero header. */
struct qemit_cursor {
        bool valid;
        size_t block;
};

ssize_t qemit_header(uint8_t *buf, size_t size);
ssize_t qemit_config(const struct qemit_config *c, uint8_t *buf, size_t size);
/* START "ram" (instance 0, version 4), MEM_SIZE block list, EOS, footer. */
ssize_t qemit_ram_start(uint32_t section_id, const struct qemit_block *blocks, size_t n_blocks,
                        uint8_t *buf, size_t size);
ssize_t qemit_part_header(uint32_t section_id, uint8_t *buf, size_t size);
/* The header of a PAGE record for page index `page` of blocks[block]; the
 * caller sends QEMU_TPS bytes of page data right after it. */
ssize_t qemit_page_header(struct qemit_cursor *cur, const struct qemit_block *blocks,
                          size_t n_blocks, size_t block, uint64_t page,
                          uint8_t *buf, size_t size);
/* A complete ZERO record (header + fill byte 0). */
ssize_t qemit_zero_page(struct qemit_cursor *cur, const struct qemit_block *blocks,
                        size_t n_blocks, size_t block, uint64_t page,
                        uint8_t *buf, size_t size);
/* EOS and the footer that close a START, PART or END section. */
ssize_t qemit_section_tail(uint32_t section_id, uint8_t *buf, size_t size);
/* A whole END section: header, EOS, footer. */
ssize_t qemit_ram_end(uint32_t section_id, uint8_t *buf, size_t size);
