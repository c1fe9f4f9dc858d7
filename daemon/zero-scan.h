/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Zero-page detection for the zero-copy save path: is a 4 KiB page of
 * guest memory all zero?  Non-zero pages (the common case for data) are
 * told apart after the first 64 bytes; zero pages are read once, in 256-
 * byte steps of OR-ed vector registers, so the check runs at memory
 * bandwidth and never writes.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define ZERO_SCAN_PAGE 4096U

/* p: ZERO_SCAN_PAGE bytes at any address. */
bool zero_page(const void *p);
/* Scalar reference (tests compare the two). */
bool zero_page_scalar(const void *p);
