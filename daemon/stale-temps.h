/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Temporary files left in the output directory by a savd that did not
 * exit cleanly (killed, host crash): a save is written to a hidden
 * ".<name>.XXXXXX.part" file and renamed only once complete, so such a
 * file is never a valid save, just disk space.  savd removes them when it
 * starts, before it accepts a job, so none of them can belong to a job of
 * this process.
 */
#pragma once

#define STALE_TEMPS_MAX_DEPTH 16U       /* subdirectory levels searched */

/* Walks the directory tree under root_fd (not following symbolic links,
 * at most STALE_TEMPS_MAX_DEPTH levels) and unlinks every regular file
 * whose name mrm_output_is_temp_name() recognises.  Returns the number
 * removed; failures are logged and skipped. */
unsigned remove_stale_temps(int root_fd);
