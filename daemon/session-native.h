/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pieces shared by the native save and restore sessions
 * (session-native.c, session-native-restore.c): the data channel with its
 * frame decoder, descriptor queue and replies, client memory mappings,
 * and a guard that turns a SIGBUS from client memory (a memory fd cut
 * short under us) into an error instead of a crash.
 *
 * The channel reads with recvmsg(MSG_CMSG_CLOEXEC) into a buffer and
 * queues every descriptor that arrives; a frame whose header announces
 * descriptors takes them from the queue in order.  A recvmsg that comes
 * back with MSG_CTRUNC (more descriptors than one frame may carry) fails
 * the session after closing what arrived.  The first error is kept, sent
 * to the client once as an ERROR frame, and becomes the job's message.
 */
#pragma once

#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "native.h"
#include "session.h"

#define NATIVE_RBUF_SIZE        (256U << 10)    /* socket read buffer */
#define NATIVE_MAX_QUEUED_FDS   4U              /* received, not yet taken */
#define NATIVE_CMSG_FDS         4U              /* room in one recvmsg */
/* Bulk reads at least this large go straight to their destination;
 * smaller ones through the read buffer (fewer system calls). */
#define NATIVE_DIRECT_MIN       (64U << 10)

struct native_chan {
        int fd;
        atomic_bool *cancelled;
        uint8_t *rbuf;
        size_t rpos, rlen;
        struct native_decoder dec;
        int fdq[NATIVE_MAX_QUEUED_FDS];
        unsigned nfdq;
        uint64_t bytes_in;
        uint64_t *bytes_counter;        /* shared-memory counter, or NULL */
        int error;                      /* first error, 0 if none */
        bool error_sent;
        char err[SESSION_ERR_MAX];
};

int native_chan_init(struct native_chan *c, int fd, atomic_bool *cancelled,
                     uint64_t max_device_state);
void native_chan_done(struct native_chan *c);

/* Record the first error and send it to the client as an ERROR frame
 * (best effort).  Returns the first error. */
int native_chan_fail(struct native_chan *c, int r, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Read exactly n raw bytes (the magic on restore). */
int native_chan_read_raw(struct native_chan *c, void *buf, size_t n);
/* The next frame; the bulk of the previous one must have been consumed. */
int native_chan_next(struct native_chan *c, struct native_msg *m);
/* Read n bulk bytes of the current frame into dst. */
int native_chan_bulk(struct native_chan *c, void *dst, size_t n);
/* Take a queued descriptor (owned by the caller from then on). */
int native_chan_take_fd(struct native_chan *c);
int native_chan_send(struct native_chan *c, const void *buf, size_t len);
int native_chan_reply(struct native_chan *c, uint16_t request,
                      const uint64_t value[SAVD_REPLY_VALUES], const char *text);
bool native_chan_cancelled(const struct native_chan *c);

/* A client memory range [offset, offset + length) of fd, mapped shared. */
struct native_map {
        int fd;                         /* owned */
        uint64_t offset, length;
        uint8_t *addr;                  /* MAP_FAILED-free: NULL if unmapped */
        size_t map_len;
        size_t map_delta;               /* addr + map_delta = byte `offset` */
};

/* Check fd (regular file or memfd, large enough) and map the range;
 * writable for restores and dirty bitmaps.  Takes the fd in any case. */
int native_map_fd(struct native_chan *c, struct native_map *m, int fd, uint64_t offset,
                  uint64_t length, bool writable, const char *what);
void native_map_release(struct native_map *m);
static inline uint8_t *native_map_ptr(const struct native_map *m)
{
        return m->addr ? m->addr + m->map_delta : NULL;
}

/* SIGBUS guard: between native_bus_arm() and native_bus_disarm() on this
 * thread, a SIGBUS jumps back to the sigsetjmp(*jb, 0) that armed it. */
void native_bus_arm(sigjmp_buf *jb);
void native_bus_disarm(void);
