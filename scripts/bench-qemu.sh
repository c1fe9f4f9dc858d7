#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Benchmark of the QEMU stream paths, one run, the same paused guest
# (default 2 GiB, half random, half zero) for every measurement:
#   save:    QEMU -> savd  vs  QEMU -> a discarding socket (socat to
#            /dev/null)  vs  QEMU's own migrate "exec:cat > FILE";
#   restore: savd -> QEMU -incoming  vs  QEMU's own -incoming
#            "exec:cat FILE" of that legacy stream file from the page cache.
# Rounds are interleaved and medians reported (the machine may be noisy).
#
# usage: scripts/bench-qemu.sh [--size-mib N] [--runs N] [--json FILE] [-- SAVD OPTIONS...]
# Files go to $SAVD_OUTPUT_BASE (default /var/tmp); binaries come from
# $SAVD_BUILDDIR (default _build/, built when missing).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${SAVD_BUILDDIR:-$top/_build}
size=2048 runs=3 json=
while (($#)); do
        case $1 in
        --size-mib) size=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --json) json=$2; shift 2 ;;
        --) shift; break ;;
        *) echo "usage: $0 [--size-mib N] [--runs N] [--json FILE] [-- SAVD OPTIONS...]" >&2; exit 2 ;;
        esac
done
for c in qemu-system-x86_64 socat python3 cmp; do
        command -v "$c" >/dev/null || { echo "bench-qemu: $c is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
[[ -x $build/savd && -x $build/savctl ]] || "$top/scripts/build.sh" >/dev/null

source "$top/scripts/lib-qemu.sh"
start_savd "$@"
make_guest_ram "$size"
echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)," \
     "kernel $(uname -r), output on $(df --output=source,fstype "$outdir" | tail -n1 | tr -s ' ')"
# The disk's own O_DIRECT ceilings on the same file system, for scale:
# savd's durable save and its restore cannot beat them.
if command -v fio >/dev/null; then
        for rw in write read; do
                fio --name=ceiling --filename="$outdir/fio.tmp" --size=1G --bs=1M --iodepth=32 \
                    --ioengine=io_uring --direct=1 --rw=$rw --output-format=json \
                    >"$work/fio-$rw.json" 2>"$work/fio-$rw.err" || { echo "fio $rw failed, no ceiling"; continue; }
                python3 -c 'import json, sys
bw = json.load(open(sys.argv[1]))["jobs"][0][sys.argv[2]]["bw_bytes"] / 2**30
print(f"fio O_DIRECT {sys.argv[2]} ceiling (1 MiB, QD 32): {bw:.2f} GiB/s")' \
                    "$work/fio-$rw.json" "$rw"
        done
        rm -f "$outdir/fio.tmp"
fi
qemu_timing bench "$size" --runs "$runs" ${json:+--json "$json"}
