/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * TEMPORARY: stand-ins for the sessions (daemon/session-qemu.c,
 * daemon/session-native.c, daemon/restore-qemu.c) until they exist, so
 * that the daemon links.  Each fails the job with "not built".  Remove
 * this file from Makefile.am when the real sessions land.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>

#include "session.h"

int qemu_save_session_run(struct save_request *req, const uint8_t *sniffed, size_t n,
                          char *err, size_t errlen)
{
        snprintf(err, errlen, "QEMU stream session: not built");
        return -ENOTSUP;
}

int native_save_session_run(struct save_request *req, const uint8_t *sniffed, size_t n,
                            char *err, size_t errlen)
{
        snprintf(err, errlen, "native session: not built");
        return -ENOTSUP;
}

int qemu_restore_session_run(struct restore_request *req, char *err, size_t errlen)
{
        snprintf(err, errlen, "QEMU restore session: not built");
        return -ENOTSUP;
}
