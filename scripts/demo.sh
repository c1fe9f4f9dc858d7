#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The demo: on a fresh Debian 12 machine, as root, install what is missing,
# build, start savd in a temporary runtime directory (files on /var/tmp),
# boot a paused QEMU VM with 2 GiB of RAM (half random, half zero), save it
# through savd, verify the file, restore it through savd into a fresh QEMU,
# compare the guest RAM, and report the times next to QEMU's own
# `migrate "exec:cat > FILE"` to the same disk, measured in the same run.
# Everything it created is removed at the end.
#
# usage: bash scripts/demo.sh [--size-mib N]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${SAVD_BUILDDIR:-$top/_build}
size=2048
if [[ ${1:-} == --size-mib ]]; then
        size=$2
fi

step() { printf '%s\n' "--- $*"; }

step "installing missing Debian packages (scripts/install-deps.sh)"
"$top/scripts/install-deps.sh"

step "building savd (scripts/build.sh, log in $build/demo-build.log)"
mkdir -p "$build"
if ! "$top/scripts/build.sh" >"$build/demo-build.log" 2>&1; then
        tail -n 30 "$build/demo-build.log" >&2
        echo "demo: the build failed" >&2
        exit 1
fi

source "$top/scripts/lib-qemu.sh"
step "starting savd (runtime dir $work/run, files in $outdir)"
start_savd
step "preparing ${size} MiB of guest RAM on tmpfs"
make_guest_ram "$size"
qemu_timing demo "$size"
