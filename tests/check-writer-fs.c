/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Writer-engine tests that need their own file systems, mounted in a
 * private mount namespace (so nothing leaks if a test dies): a 4 MiB tmpfs
 * that runs out of space under the writes, and a ramfs, which refuses
 * O_DIRECT.  Exits 77 (skipped) when the process may not create a mount
 * namespace or mount (not root, or a confined container).
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test-util.h"
#include "writer-util.h"

#define UMOUNT_TRIES    100
#define UMOUNT_RETRY_US 20000   /* 2 s in all before a lazy unmount */

static char *mount_fs(const char *type, const char *options)
{
        char *dir = tw_mkdtemp();

        ck_assert_msg(mount(type, dir, type, 0, options) == 0, "mount %s: %s", type, strerror(errno));
        return dir;
}

/* Whether one of this process's fds refers to something under dir: a
 * file the code under test failed to close. */
static bool fd_open_under(const char *dir)
{
        char real[PATH_MAX], link[PATH_MAX + 32], target[PATH_MAX];
        size_t n;
        struct dirent *de;
        DIR *d;
        bool found = false;

        ck_assert_ptr_nonnull(realpath(dir, real));
        n = strlen(real);
        d = opendir("/proc/self/fd");
        ck_assert_ptr_nonnull(d);
        while (!found && (de = readdir(d))) {
                ssize_t k;

                snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
                k = readlink(link, target, sizeof(target) - 1);
                if (k <= 0)
                        continue;
                target[k] = '\0';
                found = strncmp(target, real, n) == 0 && (target[n] == '/' || target[n] == '\0');
        }
        closedir(d);
        return found;
}

/* A closed io_uring ring drops its registered file asynchronously (later
 * still on a loaded machine), so the file system may stay busy for a
 * while after the output is freed.  Retry for a moment, then detach it
 * lazily (the mount namespace is private), but only when no fd of ours
 * is open there: that would be a real leak. */
static void unmount_fs(char *dir)
{
        int r, tries = 0;

        ck_assert_int_eq(tw_count_entries(dir), 0);
        while ((r = umount(dir)) < 0 && errno == EBUSY && ++tries < UMOUNT_TRIES)
                usleep(UMOUNT_RETRY_US);
        if (r < 0 && errno == EBUSY) {
                ck_assert_msg(!fd_open_under(dir), "a file under %s is still open", dir);
                fprintf(stderr, "umount %s: still busy, detaching it\n", dir);
                r = umount2(dir, MNT_DETACH);
        }
        ck_assert_msg(r == 0, "umount %s: %s", dir, strerror(errno));
        tw_rmdir(dir);
}

static struct mrm_output *create_in(const char *dir, const uint64_t *pages, size_t n,
                                    enum io_mode mode, char *path, size_t pathlen,
                                    char *err, size_t errlen, int *r)
{
        struct mrm_output_options opt = { .path = path, .fd = -1 };
        struct mrm_output *o = NULL;
        struct mrm_layout l;

        snprintf(path, pathlen, "%s/vm.mrm", dir);
        opt.writer = tw_small_config(mode);
        tw_layout(&l, pages, n);
        *r = mrm_output_create(&o, &l, &opt, err, errlen);
        return o;
}

/* 16 MiB of data pages into 4 MiB: the job fails with a message naming the
 * file, the offset and the errno; no file is left behind.  Loop index 0:
 * auto I/O mode, 1: buffered. */
START_TEST(test_enospc)
{
        static const enum io_mode modes[] = { IO_MODE_AUTO, IO_MODE_BUFFERED };
        static const uint64_t pages[] = { 4096 };
        char *dir = mount_fs("tmpfs", "size=4m");
        char path[PATH_MAX], err[512] = "", want[PATH_MAX + 32];
        struct tw_model m;
        struct mrm_layout l;
        struct mrm_output *o;
        const char *msg;
        int r;

        o = create_in(dir, pages, 1, modes[_i], path, sizeof(path), err, sizeof(err), &r);
        ck_assert_msg(r == 0, "%s", err);
        tw_layout(&l, pages, 1);
        tw_model_init(&m, &l);
        for (uint64_t p = 0; p < pages[0]; p++) {
                void *dst;

                r = mrm_output_page(o, 0, p, &dst);
                if (r < 0)
                        break;
                tw_fill_page(dst, 0, p, 1);
        }
        if (r == 0)
                r = mrm_output_commit(o);
        ck_assert_int_eq(r, -ENOSPC);
        ck_assert_int_eq(mrm_output_commit(o), -ENOSPC);        /* fails fast */
        msg = mrm_output_error(o);
        ck_assert_ptr_nonnull(msg);
        snprintf(want, sizeof(want), "write '%s' at offset 0x", path);
        ck_assert_msg(strstr(msg, want) && strstr(msg, "No space left on device"), "%s", msg);
        ck_assert_int_eq(access(path, F_OK), -1);
        mrm_output_free(o);
        tw_model_free(&m);
        mrm_layout_free(&l);
        unmount_fs(dir);        /* also checks that no temporary file is left */
}
END_TEST

/* ramfs has no O_DIRECT: auto mode falls back to buffered writes and the
 * file is still right; forcing direct fails with a clear error. */
START_TEST(test_no_direct)
{
        static const uint64_t pages[] = { 200, 30 };
        char *dir = mount_fs("ramfs", NULL);
        char path[PATH_MAX], err[512] = "";
        struct tw_model m;
        struct mrm_layout l;
        struct mrm_output *o;
        uint8_t *tail;
        size_t tail_len = tw_trailer(&tail);
        int r, fd;

        o = create_in(dir, pages, 2, IO_MODE_DIRECT, path, sizeof(path), err, sizeof(err), &r);
        ck_assert_int_eq(r, -EINVAL);
        ck_assert_msg(strstr(err, "O_DIRECT") && strstr(err, path), "%s", err);
        ck_assert_int_eq(tw_count_entries(dir), 0);

        o = create_in(dir, pages, 2, IO_MODE_AUTO, path, sizeof(path), err, sizeof(err), &r);
        ck_assert_msg(r == 0, "%s", err);
        ck_assert_str_eq(mrm_output_io_mode(o), "buffered");
        tw_layout(&l, pages, 2);
        tw_model_init(&m, &l);
        for (uint64_t p = 0; p < 200; p += 2)
                tw_page(o, &m, 0, p, 1);
        for (uint64_t p = 0; p < 30; p++)
                tw_page(o, &m, 1, p, 2);
        tw_zero(o, &m, 1, 29);
        ck_assert_int_eq(mrm_output_append(o, tail, tail_len), 0);
        ck_assert_int_eq(mrm_output_commit(o), 0);
        mrm_output_free(o);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        tw_check_file(fd, &l, &m, tail, tail_len);
        close(fd);
        unlink(path);
        free(tail);
        tw_model_free(&m);
        mrm_layout_free(&l);
        unmount_fs(dir);
}
END_TEST

/* A private mount namespace, or a reason to skip. */
static int setup_namespace(void)
{
        if (geteuid() != 0) {
                fprintf(stderr, "check-writer-fs: needs root to mount, skipped\n");
                return -EPERM;
        }
        if (unshare(CLONE_NEWNS) < 0 || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0) {
                fprintf(stderr, "check-writer-fs: no private mount namespace (%s), skipped\n",
                        strerror(errno));
                return -errno;
        }
        return 0;
}

int main(void)
{
        Suite *s = suite_create("writer-fs");
        TCase *tc = tcase_create("fs");

        if (setup_namespace() < 0)
                return EXIT_SKIP;
        tcase_set_timeout(tc, 120);
        tcase_add_loop_test(tc, test_enospc, 0, 2);
        tcase_add_test(tc, test_no_direct);
        suite_add_tcase(s, tc);
        return test_run_suite(s, true);
}
