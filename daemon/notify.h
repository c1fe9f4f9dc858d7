/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Talking to the service manager (sd_notify): READY=1 once the control
 * socket answers, STATUS= with live counters, STOPPING=1 on the way out.
 * Watchdog pings come from the event loop itself (sd_event_set_watchdog),
 * so they stop when the loop hangs.  Without NOTIFY_SOCKET every call is
 * a no-op.
 */
#pragma once

void notify_ready(const char *status);
void notify_stopping(const char *status);
void notify_reloading(void);
/* Sends STATUS= only when the text changed since the last call. */
void notify_status(const char *status);
