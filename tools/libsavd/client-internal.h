/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libsavd internals shared by its files: the client object, frame I/O and
 * error reporting.  Not installed.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "native.h"
#include "savd/client.h"

#define CLIENT_RBUF_SIZE        (64U << 10)
#define CLIENT_ERR_MAX          (SAVD_NATIVE_TEXT_MAX + 64U)

struct savd_client {
        int fd;
        struct native_decoder dec;
        uint8_t *rbuf;
        size_t rpos, rlen;
        struct native_msg msg;          /* the last frame read */
        int error;                      /* first failure, sticky */
        char err[CLIENT_ERR_MAX];
        bool hello_done;
        bool restore;
        struct savd_server_info server;
        /* restore */
        struct savd_restore_block *rblocks;
        unsigned n_rblocks;
        uint64_t dev_len;
};

/* Record the first failure (message printf-style); returns it. */
int client_fail(struct savd_client *c, int r, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Send iov (all of it); fd >= 0 travels with the first byte. */
int client_sendv(struct savd_client *c, struct iovec *iov, int iovcnt, int fd);
int client_send(struct savd_client *c, const void *buf, size_t len, int fd);
/* The next frame into c->msg (an ERROR from savd becomes the failure). */
int client_read_frame(struct savd_client *c);
/* The next frame must be the REPLY to `request`. */
int client_expect_reply(struct savd_client *c, uint16_t request);
/* Read n bulk bytes of the current frame. */
int client_read_bulk(struct savd_client *c, void *dst, size_t n);
/* The magic and HELLO. */
int client_hello(struct savd_client *c, uint16_t flags, uint64_t caps, const char *name);
/* Copy text from savd into a fixed-size field, cut to fit. */
void client_copy_text(char *dst, size_t size, const char *src);
/* Usable for a new request? */
int client_check(struct savd_client *c);
