/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sd_notify wrappers (see notify.h).  Failures to notify are logged at
 * debug level and otherwise ignored: the daemon works without a manager.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "log.h"
#include "notify.h"

#define NOTIFY_STATUS_MAX 256

static char last_status[NOTIFY_STATUS_MAX];

static void notify_send(const char *msg)
{
        int r = sd_notify(0, msg);
        if (r < 0)
                log_debug("sd_notify: %s, ignoring", strerror(-r));
}

static void send_with_status(const char *what, const char *status)
{
        char msg[NOTIFY_STATUS_MAX + 32];

        snprintf(last_status, sizeof(last_status), "%s", status ? status : "");
        snprintf(msg, sizeof(msg), "%s\nSTATUS=%s", what, last_status);
        notify_send(msg);
}

void notify_ready(const char *status)
{
        send_with_status("READY=1", status);
}

void notify_stopping(const char *status)
{
        send_with_status("STOPPING=1", status);
}

void notify_reloading(void)
{
        /* systemd 252 knows RELOADING=1/READY=1 around a reload. */
        notify_send("RELOADING=1");
}

void notify_status(const char *status)
{
        char msg[NOTIFY_STATUS_MAX + 16];

        if (strncmp(status, last_status, sizeof(last_status)) == 0)
                return;
        snprintf(last_status, sizeof(last_status), "%s", status);
        snprintf(msg, sizeof(msg), "STATUS=%s", last_status);
        notify_send(msg);
}
