/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * savd's native VMM protocol: the wire definitions shared by the daemon
 * and its clients (proto/native.md is the full description).
 *
 * A native data channel is a UNIX stream socket.  The client (the VMM)
 * first sends the 8-byte magic, which tells the daemon's sniffer it is not
 * a QEMU migration stream ("QEVM"), then frames.  Every frame is a 16-byte
 * header followed by `length` payload bytes.  All integers on the wire are
 * little-endian.  Descriptors (guest memory, dirty bitmaps) travel with
 * SCM_RIGHTS on the sendmsg() that carries the first byte of their frame;
 * the header says how many there are.
 *
 * Every value a peer controls has a named limit below; a frame that breaks
 * one is answered with an ERROR frame and the channel is closed.
 */
#pragma once

#include <stdint.h>

/* The first 8 bytes a native client sends on a data channel. */
#define SAVD_NATIVE_MAGIC       "SAVDNAT1"
#define SAVD_NATIVE_MAGIC_LEN   8
#define SAVD_NATIVE_VERSION     1U
/* The only page size: mapped-ram files of x86-64 guests use 4 KiB pages. */
#define SAVD_NATIVE_PAGE_SIZE   4096U

/* Frame header (16 bytes, little-endian). */
struct savd_frame_header {
        uint32_t length;                /* payload bytes after the header */
        uint16_t type;                  /* enum savd_frame_type */
        uint16_t flags;                 /* per type; unknown bits must be 0 */
        uint32_t nfds;                  /* descriptors attached to this frame */
        uint32_t reserved;              /* 0 */
} __attribute__((packed));
#define SAVD_FRAME_HEADER_SIZE  16U

enum savd_frame_type {
        /* client -> savd (BLOCK and DEVICE_STATE also savd -> client on restore) */
        SAVD_FRAME_HELLO        = 0x01,
        SAVD_FRAME_BLOCK        = 0x02,
        SAVD_FRAME_START        = 0x03,
        SAVD_FRAME_DIRTY        = 0x04,
        SAVD_FRAME_PAGES        = 0x05,
        SAVD_FRAME_SCAN         = 0x06,
        SAVD_FRAME_DEVICE_STATE = 0x07,
        SAVD_FRAME_COMPLETE     = 0x08,
        /* savd -> client */
        SAVD_FRAME_REPLY        = 0x80,
        SAVD_FRAME_ERROR        = 0x81,
};

/* HELLO flags */
#define SAVD_HELLO_RESTORE      0x0001U /* the client wants its memory filled */
/* SCAN flags */
#define SAVD_SCAN_FINAL         0x0001U /* the last pass: the VM is paused */
#define SAVD_SCAN_ALL           0x0002U /* every page, whatever the dirty bitmap says */

/* Capabilities (HELLO from the client: what it will use; REPLY to HELLO:
 * what savd offers). */
#define SAVD_CAP_INLINE         (1ULL << 0)     /* PAGES frames */
#define SAVD_CAP_MEMFD          (1ULL << 1)     /* BLOCK with a memory fd (zero-copy) */
#define SAVD_CAP_DIRTY          (1ULL << 2)     /* DIRTY bitmaps, SCAN passes */
#define SAVD_CAP_DEVICE_STATE   (1ULL << 3)
#define SAVD_CAP_ALL            ((1ULL << 4) - 1)

/* HELLO payload; followed by name_len bytes of VM name (not NUL-terminated).
 * The VM name becomes the machine name of the file's configuration record. */
struct savd_hello {
        uint32_t version;               /* SAVD_NATIVE_VERSION */
        uint32_t page_size;             /* SAVD_NATIVE_PAGE_SIZE */
        uint64_t caps;
        uint16_t name_len;
        uint16_t reserved0;
        uint32_t reserved1;
} __attribute__((packed));

/* BLOCK payload; followed by name_len bytes of block name.  With nfds = 1
 * the memory of the block is bytes [fd_offset, fd_offset + length) of the
 * descriptor (a memfd sealed with F_SEAL_SHRINK). */
struct savd_block {
        uint64_t length;                /* bytes, multiple of the page size */
        uint64_t fd_offset;             /* multiple of the page size */
        uint16_t name_len;
        uint16_t reserved0;
        uint32_t reserved1;
} __attribute__((packed));

/* DIRTY payload, nfds = 1: the block's dirty bitmap is the 64-bit
 * little-endian words at byte `offset` of the descriptor (bit p % 64 of
 * word p / 64 = page p dirty).  The client sets bits (atomic OR); savd
 * takes them with an atomic exchange when it scans. */
struct savd_dirty {
        uint32_t block;
        uint32_t reserved;
        uint64_t offset;                /* multiple of 8 */
} __attribute__((packed));

/* PAGES payload: pages [first_page, first_page + npages) of a block.  Then
 * a zero mask of (npages + 7) / 8 bytes (bit i % 8 of byte i / 8 set: page
 * first_page + i is zero and carries no data), then page_size bytes for
 * each page whose mask bit is clear, in order. */
struct savd_pages {
        uint32_t block;
        uint32_t npages;
        uint64_t first_page;
} __attribute__((packed));

/* REPLY payload; followed by text_len bytes of text.  value[] per request:
 *   HELLO:     0 version, 1 capabilities, 2 max blocks, 3 max block size,
 *              4 max device-state bytes, 5 max pages per PAGES frame;
 *              restore only: 6 blocks in the file, 7 device-state bytes,
 *              text = the VM (machine) name of the file
 *   BLOCK:     0 block index
 *   START:     save: 0 total pages; text = the I/O mode;
 *              restore: 0 pages read, 1 pages zero, 2 bytes read; text = I/O mode
 *   DIRTY:     0 bitmap bytes mapped
 *   SCAN:      0 pass number (1, 2, ...), 1 pages looked at, 2 pages
 *              queued for writing, 3 zero pages, 4 bytes queued,
 *              5 bitmask of the NUMA nodes whose writers got pages
 *   DEVICE_STATE: 0 bytes stored
 *   COMPLETE:  0 pages written, 1 zero pages, 2 bytes written, 3 file size;
 *              text = the I/O mode */
#define SAVD_REPLY_VALUES       8U
struct savd_reply {
        uint16_t request;               /* frame type answered */
        uint16_t text_len;
        uint32_t reserved;
        uint64_t value[SAVD_REPLY_VALUES];
} __attribute__((packed));

/* ERROR payload; followed by text_len bytes of message.  savd closes the
 * channel after sending it. */
struct savd_error {
        uint32_t code;                  /* a Linux errno value, e.g. 22 = EINVAL */
        uint16_t text_len;
        uint16_t reserved;
} __attribute__((packed));

/* Limits (the daemon's configuration may set lower ones; REPLY to HELLO
 * says which apply). */
#define SAVD_NATIVE_VM_NAME_MAX         256U            /* bytes of VM name */
#define SAVD_NATIVE_BLOCK_NAME_MAX      255U            /* bytes of block name */
#define SAVD_NATIVE_TEXT_MAX            1024U           /* REPLY/ERROR text */
#define SAVD_NATIVE_MAX_BLOCKS          1024U
#define SAVD_NATIVE_MAX_BLOCK_SIZE      (16ULL << 40)   /* 16 TiB */
#define SAVD_NATIVE_MAX_PAGES           256U            /* pages per PAGES frame */
#define SAVD_NATIVE_MAX_DEVICE_STATE    (1ULL << 30)    /* DEVICE_STATE payload */
#define SAVD_NATIVE_MAX_FDS             1U              /* descriptors per frame */
