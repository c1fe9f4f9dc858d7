/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Removing what crashed saves left behind (see stale-temps.h).  Each
 * directory is opened with O_NOFOLLOW relative to its parent's descriptor,
 * so the walk stays inside the output directory whatever links are in it.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "mrm-output.h"
#include "stale-temps.h"

static bool is_dot_or_dotdot(const char *n)
{
        return n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'));
}

static unsigned walk(int dfd, unsigned depth);

static unsigned visit(int dfd, const struct dirent *de, unsigned depth)
{
        struct stat st;

        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return 0;
        if (S_ISDIR(st.st_mode)) {
                if (depth >= STALE_TEMPS_MAX_DEPTH)
                        return 0;
                int sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                return sub < 0 ? 0 : walk(sub, depth + 1);
        }
        if (!S_ISREG(st.st_mode) || !mrm_output_is_temp_name(de->d_name))
                return 0;
        if (unlinkat(dfd, de->d_name, 0) < 0) {
                log_warning("cannot remove the stale temporary file '%s': %m", de->d_name);
                return 0;
        }
        log_info("removed '%s' (%llu bytes), left by a save that never completed",
                 de->d_name, (unsigned long long)st.st_size);
        return 1;
}

/* Takes ownership of dfd. */
static unsigned walk(int dfd, unsigned depth)
{
        DIR *d = fdopendir(dfd);
        struct dirent *de;
        unsigned n = 0;

        if (!d) {
                close(dfd);
                return 0;
        }
        while ((de = readdir(d)))
                if (!is_dot_or_dotdot(de->d_name))
                        n += visit(dirfd(d), de, depth);
        closedir(d);
        return n;
}

unsigned remove_stale_temps(int root_fd)
{
        /* A descriptor of its own: readdir() moves the offset. */
        int dfd = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        return dfd < 0 ? 0 : walk(dfd, 0);
}
