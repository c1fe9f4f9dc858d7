/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libsavd: memory a VMM shares with savd — guest RAM in a memfd sealed
 * against shrinking (savd maps it; a shrunk file would fault), and the
 * dirty bitmap of a block, also a memfd, mapped by both sides.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "macro.h"
#include "savd/client.h"

int savd_memfd_new(const char *name, uint64_t size)
{
        int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t)size) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

int savd_dirty_log_new(struct savd_dirty_log *log, uint64_t npages)
{
        size_t size = ROUND_UP(DIV_ROUND_UP(npages, 64) * 8, (size_t)4096);
        void *p;

        memset(log, 0, sizeof(*log));
        log->fd = savd_memfd_new("savd-dirty", size);
        if (log->fd < 0)
                return log->fd;
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, log->fd, 0);
        if (p == MAP_FAILED) {
                int r = -errno;
                close(log->fd);
                log->fd = -1;
                return r;
        }
        log->words = p;
        log->npages = npages;
        log->size = size;
        return 0;
}

void savd_dirty_log_free(struct savd_dirty_log *log)
{
        if (log->words)
                munmap(log->words, log->size);
        if (log->fd >= 0)
                close(log->fd);
        log->words = NULL;
        log->fd = -1;
}
