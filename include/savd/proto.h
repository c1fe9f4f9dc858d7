/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * savd's native VMM protocol: the wire definitions shared by the daemon
 * and its clients.  For now only the magic that opens a native data
 * channel, so that the daemon's sniffer can tell it apart from a QEMU
 * migration stream (which starts with "QEVM").
 */
#pragma once

/* The first 8 bytes a native client sends on a data channel. */
#define SAVD_NATIVE_MAGIC       "SAVDNAT1"
#define SAVD_NATIVE_MAGIC_LEN   8
