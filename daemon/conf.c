/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Configuration keys, their types and limits, and the two ways values
 * arrive: typed JSON from the configuration file and strings from the
 * command line.  Errors name the key and what was wrong with its value.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "conf.h"
#include "macro.h"

enum key_type {
        KEY_PATH,               /* absolute path string */
        KEY_UINT,               /* integer in [min, max] */
        KEY_U64,                /* integer in [min, max], 64 bits */
        KEY_IO_MODE,            /* "auto" | "direct" | "buffered" */
        KEY_LOG_LEVEL,          /* name or 0..7 */
        KEY_GROUPS,             /* array of group names */
        KEY_MODE,               /* octal permission string, e.g. "0660" */
};

struct config_key {
        const char *name;
        enum key_type type;
        size_t offset;
        uint64_t min, max;
};

#define K(n, t, field, lo, hi) { n, t, offsetof(struct savd_config, field), lo, hi }

static const struct config_key keys[] = {
        K("runtime-dir",         KEY_PATH,      runtime_dir, 0, 0),
        K("output-dir",          KEY_PATH,      output_dir, 0, 0),
        K("log-level",           KEY_LOG_LEVEL, log_level, 0, 0),
        K("writers",             KEY_UINT,      writers, 0, SAVD_CONFIG_MAX_WRITERS),
        K("fake-numa-nodes",     KEY_UINT,      fake_numa_nodes, 0, SAVD_CONFIG_MAX_FAKE_NODES),
        K("io-mode",             KEY_IO_MODE,   io_mode, 0, 0),
        K("max-jobs",            KEY_UINT,      max_jobs, 1, SAVD_CONFIG_MAX_JOBS),
        K("max-inflight-bytes",  KEY_U64,       max_inflight_bytes,
          SAVD_CONFIG_MIN_INFLIGHT, SAVD_CONFIG_MAX_INFLIGHT),
        K("max-buffer-bytes",    KEY_U64,       max_buffer_bytes, 0, SAVD_CONFIG_MAX_INFLIGHT),
        K("absorb-bytes",        KEY_U64,       absorb_bytes, 0, SAVD_CONFIG_MAX_INFLIGHT),
        K("max-blocks",          KEY_UINT,      max_blocks, 1, SAVD_MAX_BLOCKS),
        K("max-block-size",      KEY_U64,       max_block_size, QEMU_TPS, SAVD_MAX_BLOCK_SIZE),
        K("max-clients",         KEY_UINT,      max_clients, 1, SAVD_CONFIG_MAX_CLIENTS),
        K("allow-groups",        KEY_GROUPS,    allow_groups, 0, SAVD_CONFIG_MAX_GROUPS),
        K("control-socket-mode", KEY_MODE,      control_socket_mode, 0, 0777),
};

static const char *const io_mode_names[] = {
        [IO_MODE_AUTO] = "auto",
        [IO_MODE_DIRECT] = "direct",
        [IO_MODE_BUFFERED] = "buffered",
};

static const char *const log_level_names[] = {
        [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
        [LOG_ERR] = "error", [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
        [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

const char *config_io_mode_name(enum io_mode m)
{
        return (size_t)m < ELEMENTSOF(io_mode_names) ? io_mode_names[m] : "?";
}

const char *config_log_level_name(int level)
{
        return level >= 0 && (size_t)level < ELEMENTSOF(log_level_names) ?
                log_level_names[level] : "?";
}

/* Saves of many VMs at once must not take the memory the host needs
 * (the VMs being saved still hold theirs). */
static uint64_t default_max_buffer(void)
{
        long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
        uint64_t ram = pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;

        return MIN(ram / SAVD_DEFAULT_MAX_BUFFER_DIV, SAVD_DEFAULT_MAX_BUFFER_CAP);
}

void config_init(struct savd_config *c)
{
        *c = (struct savd_config) {
                .runtime_dir = strdup(SAVD_DEFAULT_RUNTIME_DIR),
                .output_dir = strdup(SAVD_DEFAULT_OUTPUT_DIR),
                .log_level = LOG_INFO,
                .io_mode = IO_MODE_AUTO,
                .max_jobs = SAVD_DEFAULT_MAX_JOBS,
                .max_inflight_bytes = SAVD_DEFAULT_MAX_INFLIGHT,
                .max_buffer_bytes = default_max_buffer(),
                .absorb_bytes = SAVD_ABSORB_DEFAULT,
                .max_blocks = SAVD_MAX_BLOCKS,
                .max_block_size = SAVD_MAX_BLOCK_SIZE,
                .max_clients = SAVD_DEFAULT_MAX_CLIENTS,
                .control_socket_mode = SAVD_DEFAULT_SOCKET_MODE,
        };
}

static void free_groups(struct savd_config *c)
{
        for (size_t i = 0; i < c->n_allow_groups; i++)
                free(c->allow_groups[i]);
        free(c->allow_groups);
        c->allow_groups = NULL;
        c->n_allow_groups = 0;
}

void config_done(struct savd_config *c)
{
        free(c->runtime_dir);
        free(c->output_dir);
        free_groups(c);
        *c = (struct savd_config) {};
}

static const struct config_key *find_key(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (strcmp(keys[i].name, name) == 0)
                        return &keys[i];
        return NULL;
}

/* ---- Typed setters (shared by both sources) ----------------------------- */

static int set_path(struct savd_config *c, const struct config_key *k, const char *v,
                    char *err, size_t errlen)
{
        char **field = (char **)((char *)c + k->offset);

        if (v[0] != '/') {
                snprintf(err, errlen, "'%s' must be an absolute path, got '%s'", k->name, v);
                return -EINVAL;
        }
        if (strlen(v) > SAVD_CONFIG_MAX_PATH) {
                snprintf(err, errlen, "'%s' is longer than %u bytes", k->name, SAVD_CONFIG_MAX_PATH);
                return -EINVAL;
        }
        char *copy = strdup(v);
        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

static int set_number(struct savd_config *c, const struct config_key *k, uint64_t v,
                      char *err, size_t errlen)
{
        if (v < k->min || v > k->max) {
                snprintf(err, errlen, "'%s' must be between %" PRIu64 " and %" PRIu64
                         ", got %" PRIu64, k->name, k->min, k->max, v);
                return -ERANGE;
        }
        if (k->type == KEY_U64)
                *(uint64_t *)((char *)c + k->offset) = v;
        else
                *(unsigned *)((char *)c + k->offset) = (unsigned)v;
        return 0;
}

static int set_io_mode(struct savd_config *c, const char *v, char *err, size_t errlen)
{
        for (size_t i = 0; i < ELEMENTSOF(io_mode_names); i++)
                if (strcmp(v, io_mode_names[i]) == 0) {
                        c->io_mode = (enum io_mode)i;
                        return 0;
                }
        snprintf(err, errlen, "'io-mode' must be \"auto\", \"direct\" or \"buffered\", got '%s'", v);
        return -EINVAL;
}

static int set_log_level(struct savd_config *c, const char *v, char *err, size_t errlen)
{
        for (size_t i = 0; i < ELEMENTSOF(log_level_names); i++)
                if (strcmp(v, log_level_names[i]) == 0) {
                        c->log_level = (int)i;
                        return 0;
                }
        if (v[0] >= '0' && v[0] <= '7' && v[1] == '\0') {
                c->log_level = v[0] - '0';
                return 0;
        }
        snprintf(err, errlen, "'log-level' must be one of error, warning, notice, info, debug "
                 "(or 0..7), got '%s'", v);
        return -EINVAL;
}

static int set_mode(struct savd_config *c, const char *v, char *err, size_t errlen)
{
        char *end;
        unsigned long m;

        errno = 0;
        m = strtoul(v, &end, 8);
        if (errno || end == v || *end || m > 0777 || v[0] == '-' || v[0] == '+') {
                snprintf(err, errlen, "'control-socket-mode' must be an octal mode such as "
                         "\"0660\", got '%s'", v);
                return -EINVAL;
        }
        c->control_socket_mode = (unsigned)m;
        return 0;
}

static int add_group(struct savd_config *c, const char *name, char *err, size_t errlen)
{
        if (c->n_allow_groups >= SAVD_CONFIG_MAX_GROUPS) {
                snprintf(err, errlen, "'allow-groups' lists more than %u groups",
                         SAVD_CONFIG_MAX_GROUPS);
                return -E2BIG;
        }
        if (!name[0] || strlen(name) > 255) {
                snprintf(err, errlen, "'allow-groups' has an empty or over-long group name");
                return -EINVAL;
        }
        char **g = realloc(c->allow_groups, (c->n_allow_groups + 1) * sizeof(*g));
        if (!g)
                return -ENOMEM;
        c->allow_groups = g;
        if (!(g[c->n_allow_groups] = strdup(name)))
                return -ENOMEM;
        c->n_allow_groups++;
        return 0;
}

/* A string value for a key of any type but KEY_GROUPS ("a,b" there). */
static int parse_uint(const char *v, uint64_t *ret)
{
        char *end;

        if (v[0] < '0' || v[0] > '9')
                return -EINVAL;
        errno = 0;
        unsigned long long u = strtoull(v, &end, 10);
        if (errno || *end)
                return -EINVAL;
        *ret = u;
        return 0;
}

static int set_from_string(struct savd_config *c, const struct config_key *k, const char *v,
                           char *err, size_t errlen)
{
        uint64_t u;

        switch (k->type) {
        case KEY_PATH:
                return set_path(c, k, v, err, errlen);
        case KEY_UINT:
        case KEY_U64:
                if (parse_uint(v, &u) < 0) {
                        snprintf(err, errlen, "'%s' must be a non-negative integer, got '%s'",
                                 k->name, v);
                        return -EINVAL;
                }
                return set_number(c, k, u, err, errlen);
        case KEY_IO_MODE:
                return set_io_mode(c, v, err, errlen);
        case KEY_LOG_LEVEL:
                return set_log_level(c, v, err, errlen);
        case KEY_MODE:
                return set_mode(c, v, err, errlen);
        case KEY_GROUPS:
                break;
        }
        return -EINVAL;
}

int config_set_string(struct savd_config *c, const char *key, const char *value,
                      char *err, size_t errlen)
{
        const struct config_key *k = find_key(key);

        if (!k) {
                snprintf(err, errlen, "unknown setting '%s'", key);
                return -EINVAL;
        }
        if (k->type == KEY_GROUPS) {
                _cleanup_free_ char *copy = strdup(value);
                char *save = NULL;
                if (!copy)
                        return -ENOMEM;
                free_groups(c);
                c->allow_groups_set = true;
                for (char *g = strtok_r(copy, ",", &save); g; g = strtok_r(NULL, ",", &save)) {
                        int r = add_group(c, g, err, errlen);
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        return set_from_string(c, k, value, err, errlen);
}

/* ---- JSON values -------------------------------------------------------- */

static int set_groups_json(struct savd_config *c, struct json_object *v, char *err, size_t errlen)
{
        if (!json_object_is_type(v, json_type_array)) {
                snprintf(err, errlen, "'allow-groups' must be an array of group names");
                return -EINVAL;
        }
        free_groups(c);
        c->allow_groups_set = true;
        for (size_t i = 0; i < json_object_array_length(v); i++) {
                struct json_object *g = json_object_array_get_idx(v, i);
                if (!json_object_is_type(g, json_type_string)) {
                        snprintf(err, errlen, "'allow-groups' entry %zu is not a string", i);
                        return -EINVAL;
                }
                int r = add_group(c, json_object_get_string(g), err, errlen);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int set_json(struct savd_config *c, const struct config_key *k, struct json_object *v,
                    char *err, size_t errlen)
{
        switch (k->type) {
        case KEY_GROUPS:
                return set_groups_json(c, v, err, errlen);
        case KEY_UINT:
        case KEY_U64:
                if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
                        snprintf(err, errlen, "'%s' must be a non-negative integer", k->name);
                        return -EINVAL;
                }
                return set_number(c, k, json_object_get_uint64(v), err, errlen);
        case KEY_LOG_LEVEL:
                if (json_object_is_type(v, json_type_int)) {
                        int64_t l = json_object_get_int64(v);
                        if (l < 0 || l > LOG_DEBUG) {
                                snprintf(err, errlen, "'log-level' must be between 0 and 7");
                                return -ERANGE;
                        }
                        c->log_level = (int)l;
                        return 0;
                }
                break;
        default:
                break;
        }
        if (!json_object_is_type(v, json_type_string)) {
                snprintf(err, errlen, "'%s' must be a string", k->name);
                return -EINVAL;
        }
        return set_from_string(c, k, json_object_get_string(v), err, errlen);
}

int config_load_json(struct savd_config *c, const char *text, size_t len, char *err, size_t errlen)
{
        struct json_tokener *tok = json_tokener_new();
        struct json_object *root;
        int r = 0;

        if (!tok)
                return -ENOMEM;
        /* Not strict: comments are welcome in a configuration file. */
        root = json_tokener_parse_ex(tok, text, (int)len);
        if (!root) {
                enum json_tokener_error e = json_tokener_get_error(tok);
                snprintf(err, errlen, "malformed JSON at byte %zu: %s",
                         json_tokener_get_parse_end(tok),
                         e == json_tokener_continue ? "unexpected end" : json_tokener_error_desc(e));
                json_tokener_free(tok);
                return -EINVAL;
        }
        size_t end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        while (end < len && text[end] && strchr(" \t\r\n", text[end]))
                end++;
        if (end < len) {
                snprintf(err, errlen, "unexpected text after the configuration object at byte %zu", end);
                r = -EINVAL;
                goto out;
        }
        if (!json_object_is_type(root, json_type_object)) {
                snprintf(err, errlen, "the configuration must be a JSON object");
                r = -EINVAL;
                goto out;
        }
        json_object_object_foreach(root, key, val) {
                const struct config_key *k = find_key(key);
                if (!k) {
                        snprintf(err, errlen, "unknown key '%s'", key);
                        r = -EINVAL;
                        goto out;
                }
                r = set_json(c, k, val, err, errlen);
                if (r < 0)
                        goto out;
        }
out:
        json_object_put(root);
        return r;
}

int config_load_file(struct savd_config *c, const char *path, char *err, size_t errlen)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t len = 0;

        if (fd < 0 || fstat(fd, &st) < 0) {
                snprintf(err, errlen, "open '%s': %s", path, strerror(errno));
                return -errno;
        }
        if (!S_ISREG(st.st_mode) || st.st_size > SAVD_CONFIG_MAX_FILE) {
                snprintf(err, errlen, "'%s': not a regular file of at most %u bytes",
                         path, SAVD_CONFIG_MAX_FILE);
                return -EINVAL;
        }
        buf = malloc((size_t)st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (len < (size_t)st.st_size) {
                ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        snprintf(err, errlen, "read '%s': %s", path, strerror(errno));
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        char msg[256];
        int r = config_load_json(c, buf, len, msg, sizeof(msg));
        if (r < 0)
                snprintf(err, errlen, "config '%s': %s", path, msg);
        return r;
}
