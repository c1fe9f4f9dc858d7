/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Logging to stderr with sd-daemon "<N>" priority prefixes, so journald
 * files each line at its level when savd runs as a service.  Only daemon
 * code logs; proto/ and libraries return errors instead.
 */
#pragma once

#include <syslog.h>

extern int log_max_level;       /* LOG_INFO by default; -v raises it */

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...)   log_msg(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...)  log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)    log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)   log_msg(LOG_DEBUG, __VA_ARGS__)
