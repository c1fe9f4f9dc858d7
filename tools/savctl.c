/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * savctl: the command-line client of savd.  Parses the global options and
 * hands the rest of the command line to the command's own function.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "savctl.h"

#define SAVCTL_DEFAULT_SOCKET "/run/savd/control.sock"

struct savctl_command {
        const char *name;
        savctl_cmd_fn fn;
        const char *usage;
};

static const struct savctl_command commands[] = {
        { "inspect", savctl_cmd_inspect, "inspect FILE [--json]" },
        { "verify",  savctl_cmd_verify,  "verify FILE" },
        { "save",    savctl_cmd_save,    "save NAME --output FILE|--output-fd N [--overwrite] [--wait]" },
        { "restore", savctl_cmd_restore, "restore FILE --to unix:PATH|--native [--wait]" },
        { "wait",    savctl_cmd_wait,    "wait ID" },
        { "jobs",    savctl_cmd_jobs,    "jobs" },
        { "cancel",  savctl_cmd_cancel,  "cancel ID" },
        { "dismiss", savctl_cmd_dismiss, "dismiss ID" },
        { "stats",   savctl_cmd_stats,   "stats" },
        { "version", savctl_cmd_version, "version" },
};

static void usage(FILE *f)
{
        fprintf(f, "usage: savctl [--socket PATH] [--json] COMMAND [ARGS]\n\ncommands:\n");
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                fprintf(f, "  %s\n", commands[i].usage);
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "socket", required_argument, NULL, 's' },
                { "json",   no_argument,       NULL, 'j' },
                { "help",   no_argument,       NULL, 'h' },
                {}
        };
        struct savctl_ctx ctx = { .socket_path = SAVCTL_DEFAULT_SOCKET };
        int c;

        /* "+" stops at the command name: its options are its own. */
        while ((c = getopt_long(argc, argv, "+s:jh", opts, NULL)) >= 0) {
                switch (c) {
                case 's': ctx.socket_path = optarg; break;
                case 'j': ctx.json = true; break;
                case 'h': usage(stdout); return SAVCTL_EXIT_OK;
                default: usage(stderr); return SAVCTL_EXIT_USAGE;
                }
        }
        if (optind >= argc) {
                usage(stderr);
                return SAVCTL_EXIT_USAGE;
        }
        int first = optind;
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                if (strcmp(argv[first], commands[i].name) == 0) {
                        optind = 0;     /* the command runs getopt afresh */
                        return commands[i].fn(&ctx, argc - first, argv + first);
                }
        fprintf(stderr, "savctl: unknown command '%s'\n", argv[optind]);
        usage(stderr);
        return SAVCTL_EXIT_USAGE;
}
