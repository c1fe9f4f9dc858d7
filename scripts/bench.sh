#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Writer-engine benchmark against the disk's O_DIRECT ceiling.
#
#   scripts/bench.sh DIR [GiB ...]        (default sizes: 4 8)
#
# For each size N, on the file system of DIR and in the same run:
#   1. fio writes N GiB with io_uring, O_DIRECT, 1 MiB blocks, queue depth
#      32, and a final fsync (the ceiling: what the disk does when nothing
#      but writing happens);
#   2. bench-engine writes a mapped-ram file whose RAM is N GiB of random
#      pages and N GiB of zero pages through the engine, O_DIRECT, and
#      commits it (bitmaps, fdatasync, rename), once copying every page
#      into the engine's buffers and once zero-copy.
# Both figures include making the data durable, so they compare like with
# like.  Printed: both throughputs, their ratio (engine data GiB/s / fio
# GiB/s), the engine's CPU per GiB and its peak RSS.  Run two sizes to see
# that RSS does not grow with N.  REPEAT=k repeats each pair k times (disk
# throughput in virtual machines varies from run to run).  Needs fio,
# python3 and about 3 N GiB free in DIR; files are removed afterwards.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${SAVD_BUILDDIR:-$top/_build}
bench=$build/bench/bench-engine

die() { echo "bench: $*" >&2; exit 1; }

(($# >= 1)) || die "usage: $0 DIR [GiB ...]"
dir=$1
shift
sizes=("$@")
((${#sizes[@]})) || sizes=(4 8)
repeat=${REPEAT:-1}
[[ -d $dir && -w $dir ]] || die "'$dir' is not a writable directory"
command -v fio >/dev/null || die "fio is not installed (Debian: apt-get install fio)"
command -v python3 >/dev/null || die "python3 is not installed"
[[ -x $bench ]] || "$top/scripts/build.sh" >/dev/null
[[ -x $bench ]] || die "no $bench after building"

fio_file=$dir/savd-bench-fio.$$
fio_json=$(mktemp)
trap 'rm -f "$fio_file" "$fio_json"' EXIT

# GiB/s of an fio run (the write bandwidth fio reports includes end_fsync).
fio_ceiling() {
        rm -f "$fio_file"
        fio --name=ceiling --filename="$fio_file" --ioengine=io_uring --direct=1 \
            --bs=1M --iodepth=32 --rw=write --size="$1G" --end_fsync=1 \
            --output-format=json >"$fio_json"
        rm -f "$fio_file"
        python3 -c 'import json, sys
w = json.load(open(sys.argv[1]))["jobs"][0]["write"]
print("%.4f" % (w["bw_bytes"] / 2**30))' "$fio_json"
}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)," \
     "$(awk '/MemTotal/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
echo "target:  $dir ($(findmnt -no FSTYPE --target "$dir") on $(findmnt -no SOURCE --target "$dir"))"
printf '%6s %10s %10s %13s %7s %13s %14s %9s %10s\n' \
        GiB path "fio GiB/s" "engine GiB/s" ratio "CPU s/GiB" "copy s/GiB" "RSS MiB" "io mode"
for gib in "${sizes[@]}"; do
        for ((i = 0; i < repeat; i++)); do
                ceiling=$(fio_ceiling "$gib")
                for path in copy zero-copy; do
                        opt=()
                        [[ $path == zero-copy ]] && opt=(--zero-copy)
                        out=$("$bench" --dir "$dir" --gib "$gib" "${opt[@]}")
                        line=$(grep '^RESULT' <<<"$out") || die "bench-engine failed: $out"
                        engine=$(field data_gib_s "$line")
                        printf '%6s %10s %10.3f %13.3f %7.2f %13.3f %14.3f %9.1f %10s\n' "$gib" "$path" \
                                "$ceiling" "$engine" \
                                "$(awk -v a="$engine" -v b="$ceiling" 'BEGIN { print a / b }')" \
                                "$(field cpu_s_per_gib "$line")" "$(field copy_cpu_s_per_gib "$line")" \
                                "$(awk -v k="$(field maxrss_kib "$line")" 'BEGIN { print k / 1024 }')" \
                                "$(field io_mode "$line")"
                done
        done
done
echo "ratio = engine data GiB/s / fio GiB/s (fio measured just before, same file system);"
echo "CPU = user+system of the whole engine process per GiB of data.  Path \"copy\": each"
echo "page is copied from memory into a write buffer (mrm_output_copy_page, as the QEMU"
echo "session does); \"copy s/GiB\" is that copy measured alone, the data source's share."
echo "Path \"zero-copy\": the engine writes straight from the source memory"
echo "(mrm_output_write_from, as native saves do).  RSS includes the 64 MiB source pool."
