/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Frames of savd's native VMM protocol (include/savd/proto.h): encoders,
 * and an incremental decoder that does no I/O and no logging.
 *
 * The decoder is fed whatever bytes arrived, in any split, and hands back
 * one event at a time: a frame whose fixed part and small variable part
 * (names, zero mask, text) are complete and checked, or a chunk of the
 * frame's bulk data (the page data of PAGES, the blob of DEVICE_STATE),
 * which it never buffers: bulk chunks point into the caller's bytes, or
 * the caller reads them straight into their destination and tells the
 * decoder with native_decoder_skip_bulk().  Everything a frame says is
 * checked against the limits of proto.h before it is returned; a bad frame
 * fails the decoder for good with -EBADMSG (malformed) or -E2BIG (over a
 * limit) and a message.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "savd/proto.h"

#define NATIVE_MASK_MAX         ((SAVD_NATIVE_MAX_PAGES + 7) / 8)
/* Largest frame part the decoder buffers (header + fixed part + names,
 * text or zero mask); also the buffer size encoders need. */
#define NATIVE_HEAD_MAX         (SAVD_FRAME_HEADER_SIZE + sizeof(struct savd_reply) + \
                                 SAVD_NATIVE_TEXT_MAX)
#define NATIVE_ERR_MAX          160U

enum native_event {
        NATIVE_NEED_MORE = 0,   /* every byte given was used; feed more */
        NATIVE_FRAME = 1,       /* msg describes a frame; msg->bulk bytes follow */
        NATIVE_DATA = 2,        /* msg->data, msg->data_len: next bulk bytes */
};

struct native_hello {
        uint32_t version;
        uint32_t page_size;
        uint64_t caps;
        uint16_t name_len;
        char name[SAVD_NATIVE_VM_NAME_MAX + 1];         /* NUL-terminated */
};

struct native_block {
        uint64_t length;
        uint64_t fd_offset;
        uint16_t name_len;
        char name[SAVD_NATIVE_BLOCK_NAME_MAX + 1];      /* NUL-terminated */
};

struct native_dirty {
        uint32_t block;
        uint64_t offset;
};

struct native_pages {
        uint32_t block;
        uint32_t npages;
        uint64_t first_page;
        uint32_t ndata;                 /* pages with data (mask bit clear) */
        uint8_t zero_mask[NATIVE_MASK_MAX];
};

struct native_reply {
        uint16_t request;
        uint64_t value[SAVD_REPLY_VALUES];
        uint16_t text_len;
        char text[SAVD_NATIVE_TEXT_MAX + 1];            /* NUL-terminated */
};

struct native_error {
        uint32_t code;
        uint16_t text_len;
        char text[SAVD_NATIVE_TEXT_MAX + 1];            /* NUL-terminated */
};

struct native_msg {
        uint16_t type;
        uint16_t flags;
        uint32_t nfds;
        uint32_t length;                /* payload bytes */
        uint64_t bulk;                  /* payload bytes delivered as NATIVE_DATA */
        const uint8_t *data;            /* NATIVE_DATA */
        size_t data_len;
        union {
                struct native_hello hello;
                struct native_block block;
                struct native_dirty dirty;
                struct native_pages pages;
                struct native_reply reply;
                struct native_error error;
        } u;
};

struct native_decoder {
        uint64_t max_device_state;      /* DEVICE_STATE payload limit */
        int state;
        uint8_t buf[NATIVE_HEAD_MAX];
        size_t have;                    /* bytes in buf */
        size_t need;                    /* bytes buf must hold for the next step */
        uint64_t bulk_left;
        uint64_t offset;                /* bytes consumed since init */
        uint64_t frame_offset;          /* where the current frame started */
        int error;
        char errmsg[NATIVE_ERR_MAX];
};

void native_decoder_init(struct native_decoder *d, uint64_t max_device_state);
/* Use bytes of buf[0, len); *used says how many.  Returns enum
 * native_event or -errno (the decoder is then failed for good). */
int native_decode(struct native_decoder *d, const uint8_t *buf, size_t len, size_t *used,
                  struct native_msg *msg);
/* n bulk bytes of the current frame were read by the caller directly. */
int native_decoder_skip_bulk(struct native_decoder *d, uint64_t n);
uint64_t native_decoder_bulk_left(const struct native_decoder *d);
/* True between frames (no partial frame buffered, no bulk pending). */
bool native_decoder_idle(const struct native_decoder *d);
/* Why the decoder failed ("" if it did not). */
const char *native_decoder_error(const struct native_decoder *d);
/* Name of a frame type for messages ("PAGES"), or "unknown". */
const char *native_frame_name(unsigned type);

/* Zero-mask helpers: bit i of mask. */
static inline bool native_mask_test(const uint8_t *mask, uint32_t i)
{
        return mask[i / 8] & (1U << (i % 8));
}
static inline void native_mask_set(uint8_t *mask, uint32_t i)
{
        mask[i / 8] |= (uint8_t)(1U << (i % 8));
}

/* Encoders: each writes a whole frame (or, for PAGES and DEVICE_STATE, the
 * header and fixed part; the bulk data follows) into buf, which holds at
 * least NATIVE_HEAD_MAX bytes, and returns its size; 0 when an argument
 * breaks a limit. */
size_t native_encode_hello(uint8_t *buf, uint16_t flags, uint64_t caps, const char *name,
                           size_t name_len);
size_t native_encode_block(uint8_t *buf, uint64_t length, uint64_t fd_offset, const char *name,
                           size_t name_len, bool with_fd);
size_t native_encode_empty(uint8_t *buf, uint16_t type, uint16_t flags);   /* START, SCAN, COMPLETE */
size_t native_encode_dirty(uint8_t *buf, uint32_t block, uint64_t offset);
/* mask: (npages + 7) / 8 bytes, or NULL for no zero pages. */
size_t native_encode_pages(uint8_t *buf, uint32_t block, uint64_t first_page, uint32_t npages,
                           const uint8_t *mask);
size_t native_encode_device_state(uint8_t *buf, uint64_t len);
size_t native_encode_reply(uint8_t *buf, uint16_t request, const uint64_t value[SAVD_REPLY_VALUES],
                           const char *text, size_t text_len);
/* text is cut to SAVD_NATIVE_TEXT_MAX bytes. */
size_t native_encode_error(uint8_t *buf, uint32_t code, const char *text, size_t text_len);
