/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Command-line parsing for savd (see options.h and savd(8)).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "options.h"

static void help(void)
{
        printf("usage: savd [OPTIONS]\n\n"
               "  --config FILE          JSON configuration file (see savd.conf(5))\n"
               "  --runtime-dir DIR      control and data sockets (default %s)\n"
               "  --output-dir DIR       where saved files go (default %s)\n"
               "  --foreground           do not detach\n"
               "  -v, --verbose          log debug messages\n"
               "  --writers N            writer threads per job (0: one per NUMA node)\n"
               "  --fake-numa-nodes N    pretend the machine has N NUMA nodes\n"
               "  --io-mode MODE         auto, direct or buffered\n"
               "  --max-jobs N           jobs running at once\n"
               "  --help, --version\n",
               SAVD_DEFAULT_RUNTIME_DIR, SAVD_DEFAULT_OUTPUT_DIR);
}

enum {
        OPT_CONFIG = 0x100,
        OPT_FOREGROUND,
        OPT_VERSION,
        OPT_SETTING,            /* the long option's name is the config key */
};

static const struct option long_opts[] = {
        { "config",          required_argument, NULL, OPT_CONFIG },
        { "foreground",      no_argument,       NULL, OPT_FOREGROUND },
        { "verbose",         no_argument,       NULL, 'v' },
        { "help",            no_argument,       NULL, 'h' },
        { "version",         no_argument,       NULL, OPT_VERSION },
        { "runtime-dir",     required_argument, NULL, OPT_SETTING },
        { "output-dir",      required_argument, NULL, OPT_SETTING },
        { "writers",         required_argument, NULL, OPT_SETTING },
        { "fake-numa-nodes", required_argument, NULL, OPT_SETTING },
        { "io-mode",         required_argument, NULL, OPT_SETTING },
        { "max-jobs",        required_argument, NULL, OPT_SETTING },
        {}
};

/* Check the value now, on a scratch configuration, so that the error
 * names the option rather than a setting deep in the start-up. */
static int add_setting(struct savd_options *o, const char *key, const char *value,
                       char *err, size_t errlen)
{
        struct savd_config scratch;
        char msg[256];
        int r;

        if (o->n_set >= SAVD_OPTIONS_MAX_SET) {
                snprintf(err, errlen, "too many options");
                return -EINVAL;
        }
        config_init(&scratch);
        r = config_set_string(&scratch, key, value, msg, sizeof(msg));
        config_done(&scratch);
        if (r < 0) {
                snprintf(err, errlen, "--%s: %s", key, msg);
                return -EINVAL;
        }
        o->set[o->n_set].key = key;
        o->set[o->n_set].value = value;
        o->n_set++;
        return 0;
}

int options_parse(struct savd_options *o, int argc, char **argv, char *err, size_t errlen)
{
        int c, idx;

        *o = (struct savd_options) {};
        opterr = 0;             /* our own message, one line, exit 2 */
        optind = 1;
        while ((c = getopt_long(argc, argv, ":vh", long_opts, &idx)) >= 0) {
                switch (c) {
                case OPT_CONFIG: o->config_path = optarg; break;
                case OPT_FOREGROUND: o->foreground = true; break;
                case 'v': o->verbose++; break;
                case 'h': help(); return 1;
                case OPT_VERSION: printf("savd %s\n", SAVD_VERSION); return 1;
                case OPT_SETTING:
                        if (add_setting(o, long_opts[idx].name, optarg, err, errlen) < 0)
                                return -EINVAL;
                        break;
                case ':':
                        if (optopt)
                                snprintf(err, errlen, "option '-%c' needs a value", optopt);
                        else
                                snprintf(err, errlen, "option '%s' needs a value", argv[optind - 1]);
                        return -EINVAL;
                default:
                        if (optopt)
                                snprintf(err, errlen, "unknown option '-%c'", optopt);
                        else
                                snprintf(err, errlen, "unknown option '%s'", argv[optind - 1]);
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
                return -EINVAL;
        }
        return 0;
}

int options_build_config(const struct savd_options *o, struct savd_config *c,
                         char *err, size_t errlen)
{
        int r;

        config_init(c);
        if (o->config_path) {
                r = config_load_file(c, o->config_path, err, errlen);
                if (r < 0)
                        return r;
        }
        for (unsigned i = 0; i < o->n_set; i++) {
                char msg[256];
                r = config_set_string(c, o->set[i].key, o->set[i].value, msg, sizeof(msg));
                if (r < 0) {
                        snprintf(err, errlen, "--%s: %s", o->set[i].key, msg);
                        return r;
                }
        }
        if (o->verbose)
                c->log_level = LOG_DEBUG;
        return 0;
}
