/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Constants of QEMU's migration stream and of the mapped-ram file layout,
 * as described in the project's format notes (legacy precopy stream of QEMU
 * 7.2, mapped-ram files of QEMU 9.0 - 10.x), plus the limits savd applies
 * to every value a stream or a file controls.
 */
#pragma once

#include <stdint.h>

#define QEMU_VM_FILE_MAGIC      0x5145564DU     /* "QEVM" */
#define QEMU_VM_FILE_VERSION    3U

/* Top-level item type bytes. */
enum {
        QEMU_VM_EOF             = 0x00,
        QEMU_VM_SECTION_START   = 0x01,
        QEMU_VM_SECTION_PART    = 0x02,
        QEMU_VM_SECTION_END     = 0x03,
        QEMU_VM_SECTION_FULL    = 0x04,
        QEMU_VM_SUBSECTION      = 0x05,
        QEMU_VM_VMDESCRIPTION   = 0x06,
        QEMU_VM_CONFIGURATION   = 0x07,
        QEMU_VM_COMMAND         = 0x08,
        QEMU_VM_SECTION_FOOTER  = 0x7e,
};

/* RAM record flags (low bits of the be64 record word). */
enum {
        RAM_SAVE_FLAG_FULL          = 0x001,
        RAM_SAVE_FLAG_ZERO          = 0x002,
        RAM_SAVE_FLAG_MEM_SIZE      = 0x004,
        RAM_SAVE_FLAG_PAGE          = 0x008,
        RAM_SAVE_FLAG_EOS           = 0x010,
        RAM_SAVE_FLAG_CONTINUE      = 0x020,
        RAM_SAVE_FLAG_XBZRLE        = 0x040,
        RAM_SAVE_FLAG_HOOK          = 0x080,
        RAM_SAVE_FLAG_COMPRESS_PAGE = 0x100,
        RAM_SAVE_FLAG_MULTIFD_FLUSH = 0x200,
};

#define QEMU_RAM_IDSTR          "ram"
#define QEMU_RAM_VERSION        4U
#define QEMU_TPS                4096U           /* x86-64 target page size */
#define QEMU_TPS_MASK           ((uint64_t)QEMU_TPS - 1)

#define MAPPED_RAM_HDR_VERSION  1U
#define MAPPED_RAM_HDR_SIZE     28U
#define MAPPED_RAM_ALIGN        0x100000ULL     /* 1 MiB: slot alignment */
#define MAPPED_RAM_CAP          "mapped-ram"

#define QEMU_CFG_SUB_CAPS       "configuration/capabilities"
#define QEMU_CFG_SUB_UUID       "configuration/uuid"
#define QEMU_CFG_SUB_PAGEBITS   "configuration/target-page-bits"
#define QEMU_UUID_LEN           16U

/* Limits on what a stream or file controls. */
#define SAVD_NAME_MAX           255U            /* counted string */
#define SAVD_MACHINE_NAME_MAX   256U            /* configuration machine type */
#define SAVD_MAX_BLOCKS         1024U           /* RAM blocks per VM */
#define SAVD_MAX_BLOCK_SIZE     (16ULL << 40)   /* 16 TiB per block */
#define SAVD_MAX_CAPS           64U             /* capabilities listed */
#define SAVD_MAX_VMDESC         (16U << 20)     /* vmdesc JSON bytes */
#define SAVD_MAX_COMMAND_LEN    65535U          /* be16 anyway */
