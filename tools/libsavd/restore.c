/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libsavd: restoring (see savd/client.h).  savd describes the file (VM
 * name, blocks, device-state size) in its reply to HELLO and one BLOCK
 * frame per block; the client answers with a memory fd per block and
 * START, then receives the device state and the final reply.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client-internal.h"
#include "macro.h"

static int read_blocks(struct savd_client *c, uint64_t n)
{
        if (n == 0 || n > SAVD_NATIVE_MAX_BLOCKS)
                return client_fail(c, -EPROTO, "savd announced %llu blocks",
                                   (unsigned long long)n);
        c->rblocks = calloc(n, sizeof(*c->rblocks));
        if (!c->rblocks)
                return client_fail(c, -ENOMEM, "out of memory");
        for (uint64_t i = 0; i < n; i++) {
                int r = client_read_frame(c);

                if (r < 0)
                        return r;
                if (c->msg.type != SAVD_FRAME_BLOCK)
                        return client_fail(c, -EPROTO, "savd sent %s where BLOCK %llu of %llu "
                                           "was due", native_frame_name(c->msg.type),
                                           (unsigned long long)i + 1, (unsigned long long)n);
                memcpy(c->rblocks[i].name, c->msg.u.block.name, c->msg.u.block.name_len + 1);
                c->rblocks[i].length = c->msg.u.block.length;
        }
        c->n_rblocks = (unsigned)n;
        return 0;
}

int savd_restore_hello(struct savd_client *c, struct savd_restore_info *info)
{
        const struct native_reply *rep = &c->msg.u.reply;
        int r;

        c->restore = true;
        if ((r = client_hello(c, SAVD_HELLO_RESTORE, SAVD_CAP_MEMFD | SAVD_CAP_DEVICE_STATE, "")) < 0)
                return r;
        memset(info, 0, sizeof(*info));
        client_copy_text(info->vm_name, sizeof(info->vm_name), rep->text);
        c->dev_len = rep->value[7];
        if (c->dev_len > SAVD_NATIVE_MAX_DEVICE_STATE)
                return client_fail(c, -EPROTO, "savd announced %llu bytes of device state",
                                   (unsigned long long)c->dev_len);
        if ((r = read_blocks(c, rep->value[6])) < 0)
                return r;
        info->device_state_len = c->dev_len;
        info->n_blocks = c->n_rblocks;
        info->blocks = c->rblocks;
        return 0;
}

int savd_restore_block(struct savd_client *c, const char *name, int mem_fd, uint64_t fd_offset)
{
        uint8_t frame[NATIVE_HEAD_MAX];
        uint64_t length = 0;
        size_t n;
        int r;

        for (unsigned i = 0; i < c->n_rblocks; i++)
                if (strcmp(c->rblocks[i].name, name) == 0)
                        length = c->rblocks[i].length;
        if (length == 0)
                return client_fail(c, -ENOENT, "the file has no block '%s'", name);
        n = native_encode_block(frame, length, fd_offset, name, strlen(name), true);
        if ((r = client_send(c, frame, n, mem_fd)) < 0)
                return r;
        return client_expect_reply(c, SAVD_FRAME_BLOCK);
}

static int read_device_state(struct savd_client *c, void **blob, size_t *blob_len)
{
        void *b = NULL;
        int r = client_read_frame(c);

        if (r < 0)
                return r;
        if (c->msg.type != SAVD_FRAME_DEVICE_STATE || c->msg.bulk != c->dev_len)
                return client_fail(c, -EPROTO, "savd sent %s where DEVICE_STATE of %llu bytes "
                                   "was due", native_frame_name(c->msg.type),
                                   (unsigned long long)c->dev_len);
        if (c->dev_len && !(b = malloc(c->dev_len)))
                return client_fail(c, -ENOMEM, "out of memory");
        if (c->dev_len && (r = client_read_bulk(c, b, c->dev_len)) < 0) {
                free(b);
                return r;
        }
        *blob = b;
        *blob_len = c->dev_len;
        return 0;
}

int savd_restore_run(struct savd_client *c, void **blob, size_t *blob_len,
                     struct savd_restore_result *res)
{
        uint8_t frame[NATIVE_HEAD_MAX];
        const struct native_reply *rep = &c->msg.u.reply;
        void *b = NULL;
        size_t len = 0;
        int r;

        *blob = NULL;
        *blob_len = 0;
        if ((r = client_send(c, frame, native_encode_empty(frame, SAVD_FRAME_START, 0), -1)) < 0 ||
            (r = read_device_state(c, &b, &len)) < 0)
                return r;
        if ((r = client_expect_reply(c, SAVD_FRAME_START)) < 0) {
                free(b);
                return r;
        }
        if (res) {
                *res = (struct savd_restore_result) {
                        .pages_read = rep->value[0], .pages_zero = rep->value[1],
                        .bytes_read = rep->value[2],
                };
                client_copy_text(res->io_mode, sizeof(res->io_mode), rep->text);
        }
        *blob = b;
        *blob_len = len;
        return 0;
}
