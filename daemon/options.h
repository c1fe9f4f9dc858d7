/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's command line.  Values are checked here with the same code
 * that checks the configuration file (conf.c), so a bad value gets one
 * precise error and exit status 2 before anything starts.  The overrides
 * are kept as strings so that a reload (SIGHUP) can apply them again on
 * top of the re-read file.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "conf.h"

#define SAVD_OPTIONS_MAX_SET 16

struct savd_options {
        const char *config_path;        /* --config, or NULL */
        bool foreground;
        unsigned verbose;               /* -v count */
        struct {
                const char *key;
                const char *value;
        } set[SAVD_OPTIONS_MAX_SET];
        unsigned n_set;
};

/* Returns 0 to run, 1 when --help or --version was printed (exit 0), or
 * -EINVAL with a message naming the bad option or value (exit 2). */
int options_parse(struct savd_options *o, int argc, char **argv, char *err, size_t errlen);
/* Defaults, then the configuration file, then the command line. */
int options_build_config(const struct savd_options *o, struct savd_config *c,
                         char *err, size_t errlen);
