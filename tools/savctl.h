/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * savctl: shared definitions of the command-line tool.  Each command lives
 * in a file of its own and has the signature below; savctl.c only parses
 * the global options and dispatches.
 */
#pragma once

#include <stdbool.h>

/* Exit codes (documented in savctl(1)). */
enum {
        SAVCTL_EXIT_OK = 0,
        SAVCTL_EXIT_FAILED = 1,         /* the job or the check failed */
        SAVCTL_EXIT_USAGE = 2,          /* bad command line */
        SAVCTL_EXIT_CONNECT = 3,        /* cannot reach the daemon */
        SAVCTL_EXIT_INVALID = 4,        /* verify: the file is not valid */
};

struct savctl_ctx {
        const char *socket_path;        /* control socket */
        bool json;                      /* machine-readable output */
};

typedef int (*savctl_cmd_fn)(const struct savctl_ctx *ctx, int argc, char **argv);

/* argv[0] is the command name in every command. */
int savctl_cmd_inspect(const struct savctl_ctx *ctx, int argc, char **argv);
int savctl_cmd_verify(const struct savctl_ctx *ctx, int argc, char **argv);
/* tools/cmd-control.c: commands that talk to the daemon. */
int savctl_cmd_save(const struct savctl_ctx *ctx, int argc, char **argv);
int savctl_cmd_restore(const struct savctl_ctx *ctx, int argc, char **argv);
int savctl_cmd_wait(const struct savctl_ctx *ctx, int argc, char **argv);
int savctl_cmd_jobs(const struct savctl_ctx *ctx, int argc, char **argv);
int savctl_cmd_cancel(const struct savctl_ctx *ctx, int argc, char **argv);
int savctl_cmd_dismiss(const struct savctl_ctx *ctx, int argc, char **argv);
int savctl_cmd_stats(const struct savctl_ctx *ctx, int argc, char **argv);
int savctl_cmd_version(const struct savctl_ctx *ctx, int argc, char **argv);
