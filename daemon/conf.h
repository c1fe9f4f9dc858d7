/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's configuration: defaults, the JSON configuration file
 * (--config; unknown keys rejected), and the settings the command line
 * overrides.  Each key has one table entry with its type and limits, so a
 * file value and a command-line value are checked by the same code and
 * give the same precise error.  See savd.conf(5).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mrm-output.h"
#include "qemu-format.h"

#define SAVD_DEFAULT_RUNTIME_DIR        "/run/savd"
#define SAVD_DEFAULT_OUTPUT_DIR         "/var/lib/savd"
#define SAVD_DEFAULT_GROUP              "savd"
#define SAVD_DEFAULT_MAX_JOBS           16U
#define SAVD_DEFAULT_MAX_CLIENTS        128U
#define SAVD_DEFAULT_MAX_INFLIGHT       (1ULL << 30)
#define SAVD_DEFAULT_SOCKET_MODE        0660U
/* max-buffer-bytes: an eighth of the host's RAM, at most 4 GiB. */
#define SAVD_DEFAULT_MAX_BUFFER_CAP     (4ULL << 30)
#define SAVD_DEFAULT_MAX_BUFFER_DIV     8U
/* absorb-bytes unset: all of max-inflight-bytes. */
#define SAVD_ABSORB_DEFAULT             UINT64_MAX

/* Limits on the values themselves. */
#define SAVD_CONFIG_MAX_FILE            (1U << 20)      /* bytes of the config file */
#define SAVD_CONFIG_MAX_WRITERS         256U
#define SAVD_CONFIG_MAX_FAKE_NODES      64U
#define SAVD_CONFIG_MAX_JOBS            4096U
#define SAVD_CONFIG_MAX_CLIENTS         65536U
#define SAVD_CONFIG_MAX_GROUPS          64U
#define SAVD_CONFIG_MIN_INFLIGHT        (8ULL << 20)    /* two writer buffers */
#define SAVD_CONFIG_MAX_INFLIGHT        (64ULL << 30)
#define SAVD_CONFIG_MAX_PATH            1024U           /* runtime-dir, output-dir */

struct savd_config {
        char *runtime_dir;
        char *output_dir;
        int log_level;                  /* syslog priority */
        unsigned writers;               /* 0: one per NUMA node */
        unsigned fake_numa_nodes;       /* 0: the real topology */
        enum io_mode io_mode;
        unsigned max_jobs;              /* jobs not ended, at once */
        uint64_t max_inflight_bytes;    /* write buffers per job */
        uint64_t max_buffer_bytes;      /* all jobs' buffers beyond their base */
        uint64_t absorb_bytes;          /* of a QEMU stream, before writing */
        unsigned max_blocks;
        uint64_t max_block_size;
        unsigned max_clients;           /* control connections */
        char **allow_groups;            /* group names */
        size_t n_allow_groups;
        bool allow_groups_set;          /* false: the default ["savd"] */
        unsigned control_socket_mode;
};

void config_init(struct savd_config *c);
void config_done(struct savd_config *c);

/* Merge a JSON configuration file into c. */
int config_load_file(struct savd_config *c, const char *path, char *err, size_t errlen);
/* Merge a JSON text (the body of a configuration file). */
int config_load_json(struct savd_config *c, const char *text, size_t len,
                     char *err, size_t errlen);
/* Set one key from a command-line string, e.g. ("writers", "4"). */
int config_set_string(struct savd_config *c, const char *key, const char *value,
                      char *err, size_t errlen);

const char *config_io_mode_name(enum io_mode m);
const char *config_log_level_name(int level);
