/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * TEMPORARY: stand-in for the native session (daemon/session-native.c)
 * until it exists, so that the daemon links.  It fails the job with "not
 * built".  Remove this file from Makefile.am when the real session lands.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>

#include "session.h"

int native_save_session_run(struct save_request *req, const uint8_t *sniffed, size_t n,
                            char *err, size_t errlen)
{
        snprintf(err, errlen, "native session: not built");
        return -ENOTSUP;
}

