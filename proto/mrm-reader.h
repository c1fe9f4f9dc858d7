/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Mapped-ram file reader and verifier.  The reader parses the stream
 * portion of a mapped-ram file (header, configuration, RAM block list with
 * MappedRamHeaders following the stream jumps, the RAM tail of EOS/PART/END
 * sections and commands) up to the first device section, and locates the
 * EOF marker and the vmdesc JSON trailer at the end of the file.  The
 * verifier then checks the structure: offsets against the QEMU layout rule,
 * bitmaps (read in bounded chunks) and that the file covers every set page
 * slot, and counts present and zero pages per block.
 *
 * Neither does I/O itself: all reads go through a pread-style callback, so
 * the same code runs on a file descriptor, a memory image or a fuzzer
 * input.  Every value the file controls is checked against a named limit
 * before it is used; memory allocated is bounded by those limits, never by
 * an unchecked field.  Errors come back as -errno plus a message naming the
 * defect and the file offset where it was found.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mrm-layout.h"
#include "qemu-format.h"

struct json_object;

/* Read up to len bytes at off into buf.  Returns the number of bytes read
 * (short only at the end of the data; 0 at or past it) or -errno. */
typedef ssize_t (*mrm_pread_fn)(void *opaque, void *buf, size_t len, uint64_t off);

/* Limits of the reader itself (on top of qemu-format.h). */
#define MRM_MAX_COMMANDS        64U             /* 0x08 items in the stream portion */
#define MRM_MAX_RAM_SECTIONS    4096U           /* PART/END sections after START */
#define MRM_BITMAP_CHUNK        (1U << 20)      /* bitmap bytes read at a time */
#define MRM_ERROR_MSG_MAX       256U

struct mrm_error {
        uint64_t offset;                /* file offset of the defect */
        char msg[MRM_ERROR_MSG_MAX];    /* what is wrong, no offset in it */
};

struct mrm_cap {
        char name[SAVD_NAME_MAX + 1];   /* NUL-terminated copy */
        uint8_t len;
};

/* Per-block bitmap statistics, filled by mrm_verify(). */
struct mrm_block_stats {
        uint64_t pages_present;         /* bits set */
        uint64_t pages_zero;            /* bits clear (within num_pages) */
};

struct mrm_file {
        /* Blocks with every offset as found in the file.  For each block,
         * page_size, bitmap_offset and pages_offset come from its header;
         * num_pages and bitmap_size derive from used_length / QEMU_TPS;
         * end_offset = pages_offset + used_length.  ram_end_offset is the
         * START section's EOS, device_offset as below. */
        struct mrm_layout layout;
        uint64_t file_size;

        size_t n_caps;
        struct mrm_cap caps[SAVD_MAX_CAPS];
        bool has_page_bits;
        uint32_t page_bits;

        size_t n_commands;              /* commands before device state */
        size_t n_ram_sections;          /* PART and END sections of "ram" */
        bool has_ram_end;               /* an END section was seen */
        uint64_t ram_offset;            /* START "ram" section byte */

        uint64_t device_offset;         /* first byte after the RAM sections */
        uint64_t eof_offset;            /* EOF byte; UINT64_MAX if not found */
        bool has_vmdesc;                /* 00 06 be32 N + N bytes end the file */
        uint64_t vmdesc_offset;         /* first JSON byte */
        uint32_t vmdesc_len;
        struct json_object *vmdesc;     /* parsed JSON, NULL if not valid */
        struct mrm_error vmdesc_error;  /* why vmdesc is NULL */

        bool verified;                  /* mrm_verify() succeeded */
        struct mrm_block_stats *stats;  /* layout.n_blocks entries, or NULL */
        uint64_t pages_present;         /* totals over all blocks */
        uint64_t pages_zero;
};

/* Parse the file.  Fails on any defect in the stream portion; a missing
 * or malformed vmdesc is recorded (has_vmdesc, vmdesc, vmdesc_error) and
 * left to mrm_verify().  Errors: -EBADMSG for a defect in the file,
 * -E2BIG for a value past a named limit, else the callback's -errno or
 * -ENOMEM.  On failure *err says what and where; *f must still be
 * released with mrm_file_free(). */
int mrm_read(struct mrm_file *f, mrm_pread_fn fn, void *opaque, uint64_t file_size,
             struct mrm_error *err);

/* Check the structure of a file mrm_read() accepted and fill the
 * per-block page statistics.  Returns 0 when the file is a valid
 * mapped-ram file; errors as for mrm_read(). */
int mrm_verify(struct mrm_file *f, mrm_pread_fn fn, void *opaque, struct mrm_error *err);

void mrm_file_free(struct mrm_file *f);

/* The file's trailer: EOF byte, then 0x06 be32 N and N bytes of JSON. */
size_t mrm_trailer_size(size_t json_len);
size_t mrm_encode_trailer(const char *json, size_t json_len, uint8_t *buf);

/* Fill *e (when not NULL) and return r. */
int mrm_fail(struct mrm_error *e, uint64_t off, int r, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* Read exactly len bytes or fail with a message in *err. */
int mrm_pread_full(mrm_pread_fn fn, void *opaque, void *buf, size_t len, uint64_t off,
                   struct mrm_error *err);
/* Copy len bytes of a name from a file, non-printable bytes as '?', into
 * dst (len + 1 bytes) for messages and terminals. */
void mrm_printable(char *dst, const char *src, size_t len);
/* The same for quoting a name in an error message: cut to fit
 * MRM_SHOWN_MAX bytes, ending in "..." when cut. */
#define MRM_SHOWN_MAX           64U
void mrm_shown_name(char dst[MRM_SHOWN_MAX], const char *src, size_t len);

/* pread callback over a memory image; opaque points at this. */
struct mrm_mem_source {
        const uint8_t *data;
        uint64_t size;
};
ssize_t mrm_mem_pread(void *opaque, void *buf, size_t len, uint64_t off);
