/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * See log.h.  One write per line so that lines from worker threads never
 * interleave mid-line.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "log.h"

int log_max_level = LOG_INFO;

void log_msg(int level, const char *fmt, ...)
{
        char line[1024];
        int saved = errno;      /* keep %m and the caller's errno intact */
        int n;
        va_list ap;

        if (level > log_max_level)
                return;
        n = snprintf(line, sizeof(line), "<%d>", level);
        errno = saved;
        va_start(ap, fmt);
        n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
        va_end(ap);
        if (n > (int)sizeof(line) - 2)
                n = (int)sizeof(line) - 2;
        line[n++] = '\n';
        (void)!write(STDERR_FILENO, line, (size_t)n);
        errno = saved;
}
