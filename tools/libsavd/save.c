/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libsavd: saving (see savd/client.h).  Every request but PAGES waits for
 * savd's reply, so an error shows up at the call that caused it; PAGES
 * frames stream without replies and a refusal shows up at the next call.
 * Inline pages are sent with sendmsg() straight from the caller's memory
 * (frame head, then each run of non-zero pages), zero pages only as mask
 * bits.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "client-internal.h"
#include "macro.h"
#include "zero-scan.h"

#define PAGE SAVD_NATIVE_PAGE_SIZE

_Static_assert(PAGE == ZERO_SCAN_PAGE, "page sizes agree");

static int request(struct savd_client *c, const uint8_t *frame, size_t n, int fd,
                   uint16_t type)
{
        int r = client_send(c, frame, n, fd);

        return r < 0 ? r : client_expect_reply(c, type);
}

int savd_save_hello(struct savd_client *c, const char *vm_name, uint64_t caps)
{
        return client_hello(c, 0, caps, vm_name);
}

int savd_save_block(struct savd_client *c, const char *name, uint64_t length, int mem_fd,
                    uint64_t fd_offset)
{
        uint8_t frame[NATIVE_HEAD_MAX];
        size_t n = native_encode_block(frame, length, fd_offset, name, strlen(name), mem_fd >= 0);
        int r;

        if (n == 0)
                return client_fail(c, -EINVAL, "block name must have 1 to %u bytes",
                                   SAVD_NATIVE_BLOCK_NAME_MAX);
        if ((r = request(c, frame, n, mem_fd, SAVD_FRAME_BLOCK)) < 0)
                return r;
        return (int)c->msg.u.reply.value[0];
}

int savd_save_start(struct savd_client *c)
{
        uint8_t frame[NATIVE_HEAD_MAX];

        return request(c, frame, native_encode_empty(frame, SAVD_FRAME_START, 0), -1,
                       SAVD_FRAME_START);
}

int savd_save_track_dirty(struct savd_client *c, unsigned block, const struct savd_dirty_log *log)
{
        uint8_t frame[NATIVE_HEAD_MAX];

        return request(c, frame, native_encode_dirty(frame, block, 0), log->fd, SAVD_FRAME_DIRTY);
}

/* One PAGES frame of at most SAVD_NATIVE_MAX_PAGES pages. */
static int send_pages(struct savd_client *c, unsigned block, uint64_t first, uint32_t npages,
                      const uint8_t *data)
{
        uint8_t head[NATIVE_HEAD_MAX], mask[NATIVE_MASK_MAX] = { 0 };
        struct iovec iov[1 + SAVD_NATIVE_MAX_PAGES];
        int n = 1;

        for (uint32_t i = 0; i < npages; i++) {
                const uint8_t *p = data + (size_t)i * PAGE;

                if (zero_page(p)) {
                        native_mask_set(mask, i);
                        continue;
                }
                if (n > 1 && (uint8_t *)iov[n - 1].iov_base + iov[n - 1].iov_len == p)
                        iov[n - 1].iov_len += PAGE;
                else
                        iov[n++] = (struct iovec) { .iov_base = (void *)p, .iov_len = PAGE };
        }
        iov[0].iov_base = head;
        iov[0].iov_len = native_encode_pages(head, block, first, npages, mask);
        return client_sendv(c, iov, n, -1);
}

int savd_save_pages(struct savd_client *c, unsigned block, uint64_t first_page,
                    uint64_t npages, const void *data)
{
        uint32_t per = c->server.max_pages_per_frame ? c->server.max_pages_per_frame
                                                     : SAVD_NATIVE_MAX_PAGES;
        const uint8_t *p = data;
        int r;

        for (uint64_t done = 0; done < npages;) {
                uint32_t k = (uint32_t)MIN((uint64_t)per, npages - done);

                if ((r = send_pages(c, block, first_page + done, k, p + done * PAGE)) < 0)
                        return r;
                done += k;
        }
        return client_check(c);
}

int savd_save_pass(struct savd_client *c, unsigned flags, struct savd_pass_stats *st)
{
        uint8_t frame[NATIVE_HEAD_MAX];
        const uint64_t *v = c->msg.u.reply.value;
        size_t n = native_encode_empty(frame, SAVD_FRAME_SCAN, (uint16_t)flags);
        int r;

        if (flags & ~(unsigned)(SAVD_SCAN_FINAL | SAVD_SCAN_ALL))
                return client_fail(c, -EINVAL, "unknown pass flags 0x%x", flags);
        if ((r = request(c, frame, n, -1, SAVD_FRAME_SCAN)) < 0)
                return r;
        if (st)
                *st = (struct savd_pass_stats) {
                        .pass = v[0], .pages_dirty = v[1], .pages_queued = v[2],
                        .pages_zero = v[3], .bytes_queued = v[4], .node_mask = v[5],
                };
        return 0;
}

int savd_save_device_state(struct savd_client *c, const void *blob, size_t len)
{
        uint8_t head[NATIVE_HEAD_MAX];
        struct iovec iov[2] = {
                { .iov_base = head, .iov_len = native_encode_device_state(head, len) },
                { .iov_base = (void *)blob, .iov_len = len },
        };
        int r;

        if (iov[0].iov_len == 0)
                return client_fail(c, -E2BIG, "device state larger than the protocol allows");
        if ((r = client_sendv(c, iov, len ? 2 : 1, -1)) < 0)
                return r;
        return client_expect_reply(c, SAVD_FRAME_DEVICE_STATE);
}

int savd_save_complete(struct savd_client *c, struct savd_save_result *res)
{
        uint8_t frame[NATIVE_HEAD_MAX];
        const struct native_reply *rep = &c->msg.u.reply;
        int r = request(c, frame, native_encode_empty(frame, SAVD_FRAME_COMPLETE, 0), -1,
                        SAVD_FRAME_COMPLETE);

        if (r < 0)
                return r;
        if (res) {
                *res = (struct savd_save_result) {
                        .pages_written = rep->value[0], .pages_zero = rep->value[1],
                        .bytes_written = rep->value[2], .file_size = rep->value[3],
                };
                client_copy_text(res->io_mode, sizeof(res->io_mode), rep->text);
        }
        return 0;
}
