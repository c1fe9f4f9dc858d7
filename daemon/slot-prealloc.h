/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reserving the page slots of an output file before the data arrives.
 *
 * An O_DIRECT write into a hole makes ext4 (and XFS) allocate blocks, which
 * needs the inode lock exclusively: io_uring then hands every write to a
 * kernel worker thread, and the workers queue (spinning) on that lock.
 * Writes into blocks reserved beforehand with fallocate() are overwrites:
 * they run under the shared lock, most of them straight from the
 * submitting thread.  Reserving takes disk space for the whole RAM, zero
 * pages included, so on commit the slots whose bit is clear (never
 * written, or written and then zeroed) are punched out again, in runs of
 * at least SLOTS_PUNCH_MIN_PAGES: every punch splits an extent, and a
 * guest whose data is scattered a page here and there needed hundreds of
 * thousands of them, each a journal update (over 30 s for a 2 GiB guest
 * with data in every third page).  Shorter runs stay reserved; they read
 * as zeros and their bits say they are not there.
 *
 * Only ext4 and XFS are reserved on (tmpfs would allocate memory for the
 * whole RAM; copy-on-write file systems allocate on every write anyway).
 * Both steps are optimisations: another file system, or too little free
 * space, just means writing without it.  Since a reservation
 * holds space that other jobs on the same file system might need for
 * their data until this job commits, it is only made when at least as
 * much again stays free, and 1/SLOTS_RESERVE_KEEP_FREE_DIV of the file
 * system on top of that.
 */
#pragma once

#include "mrm-layout.h"
#include "shm-bitmap.h"

#define SLOTS_RESERVE_KEEP_FREE_DIV 8U
#define SLOTS_PUNCH_MIN_PAGES       16U         /* 64 KiB */

/* Reserve every block's slots in fd.  0 when all are reserved; otherwise
 * -errno, with whatever was reserved released again. */
int slots_reserve(int fd, const struct mrm_layout *l);
/* Punch out the slots of pages whose bit is clear in bm, where at least
 * SLOTS_PUNCH_MIN_PAGES of them are in a row.  Returns 0 or the first
 * -errno. */
int slots_release_unset(int fd, const struct mrm_layout *l, struct shm_bitmap *bm);
