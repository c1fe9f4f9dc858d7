/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The data-channel sniffer: read the first SESSION_SNIFF_LEN bytes a client
 * sends and hand the channel to the session that speaks its protocol — the
 * QEMU migration stream ("QEVM") or savd's native protocol.  A QEMU multifd
 * channel (it opens with its own magic) is recognised and refused with the
 * capability to turn off; anything else is refused naming the bytes seen.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "macro.h"
#include "qemu-format.h"
#include "savd/proto.h"
#include "session.h"

/* The first word of a QEMU multifd channel (MultiFDInit_t.magic, be32). */
#define QEMU_MULTIFD_MAGIC 0x11223344U

/* Read exactly len bytes unless the peer stops early; returns the count
 * read or -errno. */
static ssize_t read_full(int fd, uint8_t *buf, size_t len)
{
        size_t got = 0;

        while (got < len) {
                ssize_t n = read(fd, buf + got, len - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        return (ssize_t)got;
}

/* "51 45 56 4d ... ("QEVM....")" for an error message. */
static void describe_bytes(const uint8_t *b, size_t n, char *out, size_t outlen)
{
        size_t pos = 0;

        out[0] = '\0';
        for (size_t i = 0; i < n && pos + 4 < outlen; i++)
                pos += (size_t)snprintf(out + pos, outlen - pos, "%s%02x", i ? " " : "", b[i]);
        if (pos + 4 >= outlen)
                return;
        pos += (size_t)snprintf(out + pos, outlen - pos, " (\"");
        for (size_t i = 0; i < n && pos + 3 < outlen; i++)
                out[pos++] = (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '"') ? (char)b[i] : '.';
        snprintf(out + pos, outlen - pos, "\")");
}

static int sniff_failed(struct save_request *req, int r, const uint8_t *b, size_t n,
                        char *err, size_t errlen)
{
        char seen[96];

        if (req->cancelled && atomic_load(req->cancelled)) {
                snprintf(err, errlen, "cancelled");
                return -ECANCELED;
        }
        if (r < 0) {
                snprintf(err, errlen, "read from the data channel: %s", strerror(-r));
                return r;
        }
        if (n == 0) {
                snprintf(err, errlen, "the client closed the data channel without sending anything");
                return -EPIPE;
        }
        describe_bytes(b, n, seen, sizeof(seen));
        snprintf(err, errlen, "the client closed the data channel after %zu bytes: %s", n, seen);
        return -EPIPE;
}

int save_session_run(struct save_request *req, char *err, size_t errlen)
{
        uint8_t b[SESSION_SNIFF_LEN];
        char seen[96];
        ssize_t n;

        _Static_assert(SESSION_SNIFF_LEN >= SAVD_NATIVE_MAGIC_LEN, "sniff covers the native magic");
        n = read_full(req->data_fd, b, sizeof(b));
        if (n < 0)
                return sniff_failed(req, (int)n, b, 0, err, errlen);
        if ((size_t)n < sizeof(b))
                return sniff_failed(req, 0, b, (size_t)n, err, errlen);

        if (get_be32(b) == QEMU_VM_FILE_MAGIC) {
                snprintf(req->protocol, sizeof(req->protocol), "qemu");
                return qemu_save_session_run(req, b, sizeof(b), err, errlen);
        }
        if (memcmp(b, SAVD_NATIVE_MAGIC, SAVD_NATIVE_MAGIC_LEN) == 0) {
                snprintf(req->protocol, sizeof(req->protocol), "native");
                return native_save_session_run(req, b, sizeof(b), err, errlen);
        }
        if (get_be32(b) == QEMU_MULTIFD_MAGIC) {
                snprintf(err, errlen, "this is a QEMU multifd channel, which savd does not take: "
                         "disable capability multifd");
                return -EPROTONOSUPPORT;
        }
        describe_bytes(b, sizeof(b), seen, sizeof(seen));
        snprintf(err, errlen, "unknown protocol on the data channel: it starts with %s; expected "
                 "a QEMU migration stream (\"QEVM\") or the savd native protocol (\"%s\")",
                 seen, SAVD_NATIVE_MAGIC);
        return -EPROTONOSUPPORT;
}
