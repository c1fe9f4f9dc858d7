/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Incremental parser for QEMU's legacy precopy migration stream (what QEMU
 * 7.2 and later send on "migrate unix:PATH" without mapped-ram): header,
 * configuration record, the "ram" START block list, PAGE / ZERO records of
 * every pass (CONTINUE records resolved against the current block, which
 * carries across sections), EOS and section footers, the END section, and
 * then everything from the first device section on as opaque "tail" bytes.
 *
 * The parser does no I/O and no logging.  It is fed arbitrary chunks (one
 * byte at a time works) and hands back one event per call.  Memory is
 * bounded whatever the VM size: a 4 KiB gather buffer and the block table
 * (at most SAVD_MAX_BLOCKS entries); there is no per-page state.
 *
 * Streams savd cannot convert faithfully are refused with a message for the
 * operator that says what to change on the source (multifd, compress,
 * xbzrle, postcopy, x-ignore-shared, other iterative sections, ...).
 *
 * Typical use:
 *
 *      while (len > 0) {
 *              size_t used;
 *              r = qstream_feed(p, buf, len, &used, &ev);
 *              if (r < 0)
 *                      fail(qstream_error(p));
 *              buf += used, len -= used;
 *              if (r > 0)
 *                      handle(&ev);
 *      }
 *      ... at end of input: qstream_finish(p)
 *
 * Events are never lost when a chunk ends: one that became ready together
 * with another (BLOCKS_DONE after the last BLOCK) is returned by the next
 * call, before any byte of that call is looked at.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qemu-format.h"

#define QSTREAM_ERR_MAX 320

struct qstream;

enum qstream_event_type {
        /* Configuration record parsed (after any subsections). */
        QSTREAM_EV_CONFIG = 1,
        /* One RAM block of the MEM_SIZE list, in stream order. */
        QSTREAM_EV_BLOCK,
        /* The block list is complete (lengths add up to the total). */
        QSTREAM_EV_BLOCKS_DONE,
        /* A RAM section header (START, PART or END) was read. */
        QSTREAM_EV_SECTION,
        /* A page with data: TPS bytes. */
        QSTREAM_EV_PAGE,
        /* A zero page: the page's content is all zero. */
        QSTREAM_EV_ZERO,
        /* The RAM END section and its footer were consumed. */
        QSTREAM_EV_RAM_DONE,
        /* Stream bytes from the first device section (or the EOF byte) on,
         * verbatim.  Device state is not self-describing, so the parser
         * passes them through; the consumer keeps them and, at the end of
         * input, finds EOF and the vmdesc trailer from the end. */
        QSTREAM_EV_DEVICE_TAIL,
};

struct qstream_config {
        char machine[SAVD_MACHINE_NAME_MAX + 1];        /* NUL-terminated */
        uint32_t machine_len;
        bool has_uuid;
        uint8_t uuid[QEMU_UUID_LEN];
        unsigned page_bits;     /* 12: anything else is refused */
};

struct qstream_block {
        char name[SAVD_NAME_MAX + 1];   /* NUL-terminated */
        uint8_t name_len;
        uint64_t used_length;           /* multiple of QEMU_TPS, > 0 */
        uint64_t num_pages;
};

struct qstream_event {
        enum qstream_event_type type;
        uint64_t offset;                /* stream offset of the record */
        union {
                /* CONFIG: valid for the parser's lifetime */
                const struct qstream_config *config;
                /* BLOCK: the pointer is valid until the next qstream_feed();
                 * after BLOCKS_DONE use qstream_block() */
                struct {
                        uint32_t index;
                        const struct qstream_block *block;
                } block;
                struct {
                        uint32_t n_blocks;
                        uint64_t total_bytes;
                } blocks_done;
                struct {
                        uint8_t type;   /* QEMU_VM_SECTION_START/PART/END */
                        uint32_t id;
                } section;
                /* PAGE: data points either into the caller's buffer (when
                 * the page was contiguous there) or into the parser; valid
                 * until the next qstream_feed() call either way. */
                struct {
                        uint32_t block;
                        uint64_t page;          /* page index in the block */
                        const uint8_t *data;    /* QEMU_TPS bytes */
                } page;
                /* ZERO: fill is always 0 here; a record with a non-zero
                 * fill byte (accepted by QEMU 7.2) is delivered as a PAGE
                 * whose bytes all hold that value. */
                struct {
                        uint32_t block;
                        uint64_t page;
                        uint8_t fill;
                } zero;
                /* DEVICE_TAIL: points into the caller's buffer */
                struct {
                        const uint8_t *data;
                        size_t len;
                } tail;
        };
};

struct qstream_stats {
        uint64_t offset;        /* stream bytes consumed */
        uint64_t pages;         /* PAGE events */
        uint64_t zeros;         /* ZERO events */
        uint64_t sections;      /* RAM sections (START + PARTs + END) */
        uint64_t tail_bytes;    /* DEVICE_TAIL bytes */
};

/* Returns NULL only when out of memory. */
struct qstream *qstream_new(void);
void qstream_free(struct qstream *p);

/*
 * Consume bytes from buf until an event is ready or buf is used up.
 * *consumed is always set: the caller continues with buf + *consumed.
 * Returns 1 with *ev filled, 0 when every byte was used and more input is
 * needed, or -errno when the stream is refused (the error is sticky;
 * qstream_error() says why, naming the record and its stream offset):
 *   -EBADMSG          malformed stream
 *   -EOPNOTSUPP       a feature savd cannot convert (the message says what
 *                     to change on the source)
 *   -EPROTONOSUPPORT  stream version other than 3
 *   -E2BIG            a named limit exceeded
 *   -ENOMEM
 * A call with len == 0 may still return a pending event.
 */
int qstream_feed(struct qstream *p, const uint8_t *buf, size_t len,
                 size_t *consumed, struct qstream_event *ev);

/*
 * End of input.  Returns 0 when the stream reached its device tail (the
 * parser cannot tell whether the tail itself is complete: check it with
 * vmdesc_find()), -EPIPE when it ended earlier (inside a record, before
 * the RAM END section, or right after it), or the sticky error.
 */
int qstream_finish(struct qstream *p);

/* The refusal or truncation message, or NULL while all is well. */
const char *qstream_error(const struct qstream *p);

const struct qstream_config *qstream_config(const struct qstream *p);
size_t qstream_n_blocks(const struct qstream *p);
const struct qstream_block *qstream_block(const struct qstream *p, size_t index);
const struct qstream_stats *qstream_stats(const struct qstream *p);
/* The RAM section id chosen by the source (valid after the START event). */
uint32_t qstream_ram_section_id(const struct qstream *p);
