/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Short writes in the writer engine, made real with RLIMIT_FSIZE: a write
 * that crosses the limit is cut short at it (no signal), and the write of
 * the rest, which then starts at the limit, fails with EFBIG.  The limit
 * is per process, so it binds the pool's threads and io_uring's io-wq
 * workers alike; each case sets it in a child of its own (SIGXFSZ
 * ignored) and sends what it saw back through a pipe, so the assertions
 * run in the test process and the limit never reaches another case.
 *
 * One batch of 16 pages (a 64 KiB write) goes to the first slots of a
 * block, with the limit 40 KiB into them: the writer must take the short
 * write, count it, resubmit the remainder from the advanced offset and
 * then fail the job with a message naming the file, that offset and the
 * errno, leaving no file behind.
 *
 * Not covered here: a short write whose remainder then succeeds, and
 * -EAGAIN.  Nothing on a local file system produces either on demand
 * (io_uring finishes a partial buffered write itself in io-wq before it
 * posts the completion, and RWF_NOWAIT fails every retry alike).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test-util.h"
#include "writer-pool.h"
#include "writer-util.h"

#define SHORT_PAGES     16U                     /* one 64 KiB buffer */
#define LIMIT_INTO      (10U * QEMU_TPS)        /* where the limit cuts it */

/* What the child saw. */
struct short_result {
        int create, commit, commit_again;
        char create_err[256];
        char msg[PATH_MAX + 128];
        struct wp_stats stats;
        bool final_exists;
        char io_mode[32];
};

static void child_write(const char *path, enum io_mode mode, uint64_t limit,
                        struct short_result *res)
{
        static const uint64_t pages[] = { 64 };
        struct mrm_output_options opt = { .path = path, .fd = -1 };
        struct rlimit rl = { limit, RLIM_INFINITY };
        struct mrm_output *o = NULL;
        struct mrm_layout l;
        const char *msg;
        void *dst;

        opt.writer = tw_small_config(mode);
        tw_layout(&l, pages, 1);
        res->create = mrm_output_create(&o, &l, &opt, res->create_err, sizeof(res->create_err));
        if (res->create < 0)
                return;
        /* Only now: creating writes the RAM tail, which lies past every
         * slot.  The limit is on the offset of a write, not the file size. */
        if (signal(SIGXFSZ, SIG_IGN) == SIG_ERR || setrlimit(RLIMIT_FSIZE, &rl) < 0)
                _exit(2);
        snprintf(res->io_mode, sizeof(res->io_mode), "%s", mrm_output_io_mode(o));
        for (uint64_t p = 0; p < SHORT_PAGES; p++) {
                if (mrm_output_page(o, 0, p, &dst) < 0)
                        break;
                tw_fill_page(dst, 0, p, 1);
        }
        res->commit = mrm_output_commit(o);
        res->commit_again = mrm_output_commit(o);
        msg = mrm_output_error(o);
        snprintf(res->msg, sizeof(res->msg), "%s", msg ? msg : "");
        mrm_output_writer_stats(o, &res->stats);
        res->final_exists = access(path, F_OK) == 0;
        mrm_output_free(o);
}

/* Runs child_write() in a child; fails the test unless it reported. */
static void run_child(const char *path, enum io_mode mode, uint64_t limit,
                      struct short_result *res)
{
        int fds[2], status;
        pid_t pid;

        ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                struct short_result r = { 0 };

                close(fds[0]);
                child_write(path, mode, limit, &r);
                _exit(write(fds[1], &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 3);
        }
        close(fds[1]);
        ssize_t n = read(fds[0], res, sizeof(*res));
        close(fds[0]);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status 0x%x", status);
        ck_assert_int_eq(n, (ssize_t)sizeof(*res));
}

/* Loop index 0: auto I/O mode (O_DIRECT where the build tree allows it),
 * 1: buffered. */
START_TEST(test_short_then_efbig)
{
        static const enum io_mode modes[] = { IO_MODE_AUTO, IO_MODE_BUFFERED };
        static const uint64_t pages[] = { 64 };
        char *dir = tw_mkdtemp();
        char path[PATH_MAX], want[PATH_MAX + 64];
        struct short_result res;
        struct mrm_layout l;
        uint64_t at;

        tw_layout(&l, pages, 1);
        at = l.blocks[0].pages_offset + LIMIT_INTO;
        mrm_layout_free(&l);
        snprintf(path, sizeof(path), "%s/vm.mrm", dir);
        run_child(path, modes[_i], at, &res);

        ck_assert_msg(res.create == 0, "%s", res.create_err);
        fprintf(stderr, "short write, %s: %s\n", res.io_mode, res.msg);
        ck_assert_int_eq(res.commit, -EFBIG);
        ck_assert_int_eq(res.commit_again, -EFBIG);     /* the error stays */
        snprintf(want, sizeof(want), "write '%s' at offset 0x%" PRIx64 ": %s", path, at,
                 strerror(EFBIG));
        ck_assert_str_eq(res.msg, want);
        /* The 64 KiB write came back short once, and its remainder was
         * submitted again (the write that failed). */
        ck_assert_uint_eq(res.stats.short_writes, 1);
        ck_assert_uint_ge(res.stats.writes, 2);
        ck_assert(!res.final_exists);
        tw_rmdir(dir);          /* fails if a temporary file was left */
}
END_TEST

/* Without the limit the same writes leave a complete file: the failure
 * above is the limit's doing, not the setup's. */
START_TEST(test_no_limit)
{
        char *dir = tw_mkdtemp();
        char path[PATH_MAX];
        struct short_result res;

        snprintf(path, sizeof(path), "%s/vm.mrm", dir);
        run_child(path, IO_MODE_AUTO, RLIM_INFINITY, &res);
        ck_assert_msg(res.create == 0, "%s", res.create_err);
        ck_assert_msg(res.commit == 0, "%s", res.msg);
        ck_assert_uint_eq(res.stats.short_writes, 0);
        ck_assert(res.final_exists);
        ck_assert_int_eq(unlink(path), 0);
        tw_rmdir(dir);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("writer-short");
        TCase *tc = tcase_create("rlimit-fsize");

        tcase_set_timeout(tc, 120);
        tcase_add_loop_test(tc, test_short_then_efbig, 0, 2);
        tcase_add_test(tc, test_no_limit);
        suite_add_tcase(s, tc);
        return test_run_suite(s, true);
}
