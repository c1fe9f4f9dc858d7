/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * savctl inspect FILE [--json] and savctl verify FILE: read a mapped-ram
 * file with the proto/ reader over pread(2), run the structural verifier,
 * and print what was found (machine, capabilities, blocks with offsets and
 * page counts, device state, vmdesc, and the native record of files saved
 * through savd's native protocol) or the first defect with its offset.
 * Exit codes: 0 valid, 4 invalid, 1 when the file cannot be opened or read.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "mrm-reader.h"
#include "native-file.h"
#include "savctl.h"

struct inspect_opts {
        const char *path;
        bool json;
};

static ssize_t fd_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
        int fd = *(const int *)opaque;
        ssize_t n;

        if (off > INT64_MAX)
                return 0;
        do
                n = pread(fd, buf, len, (off_t)off);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : n;
}

static int open_file(const char *path, int *ret_fd, uint64_t *ret_size)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;

        if (fd < 0 || fstat(fd, &st) < 0) {
                fprintf(stderr, "open '%s': %s\n", path, strerror(errno));
                return -1;
        }
        if (!S_ISREG(st.st_mode)) {
                fprintf(stderr, "open '%s': %s\n", path, strerror(EINVAL));
                return -1;
        }
        *ret_size = (uint64_t)st.st_size;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* A defect in the file (exit 4) as opposed to a failure to read it. */
static bool is_defect(int r)
{
        return r == -EBADMSG || r == -E2BIG;
}

/* Read and verify; returns the first error (0 when valid).  *read_ok says
 * whether the parse got far enough to show the layout. */
static int load(int fd, uint64_t size, struct mrm_file *f, struct mrm_error *err,
                bool *read_ok)
{
        int r = mrm_read(f, fd_pread, &fd, size, err);

        *read_ok = r >= 0;
        if (r < 0)
                return r;
        return mrm_verify(f, fd_pread, &fd, err);
}

/* The native record (files saved through savd's native protocol), if
 * any; a defect in it makes the file invalid.  Returns 0 when there is
 * one, -ENOENT when not, else the defect. */
static int load_native(int fd, const struct mrm_file *f, struct native_file_info *ni, int *r,
                       struct mrm_error *err)
{
        struct mrm_error nerr = {};
        int k = native_file_info(f, fd_pread, &fd, true, ni, &nerr);

        if (k < 0 && k != -ENOENT && *r == 0) {
                *r = k;
                *err = nerr;
        }
        return k;
}

static void print_native(const struct native_file_info *ni)
{
        if (!ni)
                return;
        printf("native:          version %" PRIu32 ", device state %" PRIu64 " bytes at 0x%"
               PRIx64 ", crc32c 0x%08" PRIx32 "\n", ni->version, ni->blob_len, ni->blob_offset,
               ni->crc32c);
}

static struct json_object *json_native(const struct mrm_file *f, const struct native_file_info *ni)
{
        struct json_object *o = json_object_new_object(), *ds = json_object_new_object();

        json_object_object_add(o, "version", json_object_new_int((int)ni->version));
        json_object_object_add(o, "vm-name", json_object_new_string(f->layout.machine));
        json_object_object_add(ds, "section-offset", json_object_new_uint64(ni->section_offset));
        json_object_object_add(ds, "blob-offset", json_object_new_uint64(ni->blob_offset));
        json_object_object_add(ds, "length", json_object_new_uint64(ni->blob_len));
        json_object_object_add(ds, "crc32c", json_object_new_uint64(ni->crc32c));
        json_object_object_add(o, "device-state", ds);
        return o;
}

static void format_uuid(char out[37], const uint8_t u[QEMU_UUID_LEN])
{
        snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
                 "%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4], u[5], u[6],
                 u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

static void print_caps(const struct mrm_file *f)
{
        printf("capabilities:    ");
        for (size_t i = 0; i < f->n_caps; i++) {
                char name[SAVD_NAME_MAX + 1];
                mrm_printable(name, f->caps[i].name, f->caps[i].len);
                printf("%s%s", i ? ", " : "", name);
        }
        printf("\n");
}

static void print_blocks(const struct mrm_file *f)
{
        const struct mrm_layout *l = &f->layout;
        int w = 4;

        for (size_t i = 0; i < l->n_blocks; i++)
                w = MAX(w, (int)l->blocks[i].name_len);
        printf("blocks:          %zu, 0x%" PRIx64 " bytes\n", l->n_blocks, l->total_bytes);
        printf("  %-*s %12s %9s %13s %13s %9s %9s\n", w, "name", "used_length", "page_size",
               "bitmap_offset", "pages_offset", "present", "zero");
        for (size_t i = 0; i < l->n_blocks; i++) {
                const struct mrm_block *b = &l->blocks[i];
                char name[SAVD_NAME_MAX + 1], present[24] = "?", zero[24] = "?";

                mrm_printable(name, b->name, b->name_len);
                if (f->verified) {
                        snprintf(present, sizeof(present), "%" PRIu64, f->stats[i].pages_present);
                        snprintf(zero, sizeof(zero), "%" PRIu64, f->stats[i].pages_zero);
                }
                printf("  %-*s %#12" PRIx64 " %9" PRIu64 " %#13" PRIx64 " %#13" PRIx64
                       " %9s %9s\n", w, name, b->used_length, b->page_size, b->bitmap_offset,
                       b->pages_offset, present, zero);
        }
}

static void print_text(const char *path, const struct mrm_file *f,
                       const struct native_file_info *ni)
{
        char uuid[37];

        printf("file:            %s\n", path);
        printf("size:            %" PRIu64 " bytes\n", f->file_size);
        printf("machine:         %s\n", f->layout.machine);
        print_caps(f);
        if (f->layout.has_uuid)
                format_uuid(uuid, f->layout.uuid);
        printf("uuid:            %s\n", f->layout.has_uuid ? uuid : "none");
        printf("ram section id:  %" PRIu32 "\n", f->layout.ram_section_id);
        print_blocks(f);
        if (f->verified)
                printf("pages:           %" PRIu64 " present, %" PRIu64 " zero\n",
                       f->pages_present, f->pages_zero);
        printf("device state:    offset 0x%" PRIx64, f->device_offset);
        if (f->eof_offset != UINT64_MAX)
                printf(", %" PRIu64 " bytes\n", f->eof_offset - f->device_offset);
        else
                printf(", end unknown\n");
        if (f->has_vmdesc)
                printf("vmdesc:          %" PRIu32 " bytes at 0x%" PRIx64 "\n",
                       f->vmdesc_len, f->vmdesc_offset);
        else
                printf("vmdesc:          none\n");
        print_native(ni);
}

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
        json_object_object_add(o, key, json_object_new_uint64(v));
}

static struct json_object *json_block(const struct mrm_file *f, size_t i)
{
        const struct mrm_block *b = &f->layout.blocks[i];
        struct json_object *o = json_object_new_object();
        char name[SAVD_NAME_MAX + 1];

        mrm_printable(name, b->name, b->name_len);
        json_object_object_add(o, "name", json_object_new_string(name));
        add_u64(o, "used-length", b->used_length);
        add_u64(o, "page-size", b->page_size);
        add_u64(o, "num-pages", b->num_pages);
        add_u64(o, "record-offset", b->record_offset);
        add_u64(o, "header-offset", b->header_offset);
        add_u64(o, "bitmap-offset", b->bitmap_offset);
        add_u64(o, "bitmap-size", b->bitmap_size);
        add_u64(o, "pages-offset", b->pages_offset);
        add_u64(o, "end-offset", b->end_offset);
        if (f->verified) {
                add_u64(o, "pages-present", f->stats[i].pages_present);
                add_u64(o, "pages-zero", f->stats[i].pages_zero);
        }
        return o;
}

static void json_layout(struct json_object *o, const struct mrm_file *f)
{
        struct json_object *caps = json_object_new_array(), *blocks = json_object_new_array();
        char uuid[37];

        json_object_object_add(o, "machine", json_object_new_string(f->layout.machine));
        for (size_t i = 0; i < f->n_caps; i++) {
                char name[SAVD_NAME_MAX + 1];
                mrm_printable(name, f->caps[i].name, f->caps[i].len);
                json_object_array_add(caps, json_object_new_string(name));
        }
        json_object_object_add(o, "capabilities", caps);
        if (f->layout.has_uuid)
                format_uuid(uuid, f->layout.uuid);
        json_object_object_add(o, "uuid", f->layout.has_uuid ? json_object_new_string(uuid) : NULL);
        add_u64(o, "ram-section-id", f->layout.ram_section_id);
        add_u64(o, "total-bytes", f->layout.total_bytes);
        for (size_t i = 0; i < f->layout.n_blocks; i++)
                json_object_array_add(blocks, json_block(f, i));
        json_object_object_add(o, "blocks", blocks);
        if (f->verified) {
                add_u64(o, "pages-present", f->pages_present);
                add_u64(o, "pages-zero", f->pages_zero);
        }
        add_u64(o, "device-offset", f->device_offset);
        if (f->eof_offset != UINT64_MAX) {
                add_u64(o, "device-size", f->eof_offset - f->device_offset);
                add_u64(o, "eof-offset", f->eof_offset);
        }
        if (f->has_vmdesc) {
                add_u64(o, "vmdesc-offset", f->vmdesc_offset);
                add_u64(o, "vmdesc-size", f->vmdesc_len);
        }
}

static void print_json(const char *path, uint64_t size, const struct mrm_file *f,
                       bool read_ok, int r, const struct mrm_error *err,
                       const struct native_file_info *ni)
{
        struct json_object *o = json_object_new_object();

        json_object_object_add(o, "file", json_object_new_string(path));
        add_u64(o, "size", size);
        json_object_object_add(o, "valid", json_object_new_boolean(r == 0));
        if (r < 0) {
                struct json_object *e = json_object_new_object();
                json_object_object_add(e, "message", json_object_new_string(err->msg));
                add_u64(e, "offset", err->offset);
                json_object_object_add(o, "error", e);
        }
        if (read_ok)
                json_layout(o, f);
        if (ni)
                json_object_object_add(o, "native", json_native(f, ni));
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
}

static int exit_code(const char *path, int r, const struct mrm_error *err)
{
        if (r == 0)
                return SAVCTL_EXIT_OK;
        if (is_defect(r)) {
                fprintf(stderr, "%s: invalid: %s at offset 0x%" PRIx64 "\n", path, err->msg,
                        err->offset);
                return SAVCTL_EXIT_INVALID;
        }
        fprintf(stderr, "read '%s': %s (at offset 0x%" PRIx64 ")\n", path,
                err->msg[0] ? err->msg : strerror(-r), err->offset);
        return SAVCTL_EXIT_FAILED;
}

static int parse_args(const struct savctl_ctx *ctx, int argc, char **argv,
                      struct inspect_opts *o)
{
        static const struct option opts[] = {
                { "json", no_argument, NULL, 'j' },
                {}
        };
        int c;

        o->json = ctx->json;
        while ((c = getopt_long(argc, argv, "j", opts, NULL)) >= 0) {
                if (c != 'j')
                        return -EINVAL;
                o->json = true;
        }
        if (argc - optind != 1) {
                fprintf(stderr, "%s: expected exactly one FILE\n", argv[0]);
                return -EINVAL;
        }
        o->path = argv[optind];
        return 0;
}

static int run(const struct savctl_ctx *ctx, int argc, char **argv, bool inspect)
{
        _cleanup_close_ int fd = -1;
        struct inspect_opts o;
        struct mrm_file f;
        struct mrm_error err = {};
        uint64_t size;
        bool read_ok;

        if (parse_args(ctx, argc, argv, &o) < 0)
                return SAVCTL_EXIT_USAGE;
        if (open_file(o.path, &fd, &size) < 0)
                return SAVCTL_EXIT_FAILED;

        int r = load(fd, size, &f, &err, &read_ok);
        struct native_file_info native;
        const struct native_file_info *ni = NULL;
        if (read_ok && load_native(fd, &f, &native, &r, &err) == 0)
                ni = &native;
        if (o.json)
                print_json(o.path, size, &f, read_ok, r, &err, ni);
        else if (inspect && read_ok) {
                print_text(o.path, &f, ni);
                if (r == 0)
                        printf("status:          valid\n");
        }
        else if (r == 0)
                printf("%s: valid (%zu blocks, %" PRIu64 " pages present)\n", o.path,
                       f.layout.n_blocks, f.pages_present);
        mrm_file_free(&f);
        if (o.json && is_defect(r))
                return SAVCTL_EXIT_INVALID;
        return exit_code(o.path, r, &err);
}

int savctl_cmd_inspect(const struct savctl_ctx *ctx, int argc, char **argv)
{
        return run(ctx, argc, argv, true);
}

int savctl_cmd_verify(const struct savctl_ctx *ctx, int argc, char **argv)
{
        return run(ctx, argc, argv, false);
}
