#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Native-protocol benchmark: zero-copy save and native restore of a guest
# through savd, against the disk's O_DIRECT ceilings and against QEMU 7.2's
# own migration of the same RAM.
#
#   scripts/bench-native.sh [DIR] [GUEST_MIB]     (defaults: /var/tmp 2048)
#
# In one run, on the file system of DIR:
#   1. fio writes GUEST_MIB/2 MiB (the data the save writes) with io_uring,
#      O_DIRECT, 1 MiB blocks, queue depth 32 and a final fsync: the write
#      ceiling; then reads it back the same way: the read ceiling;
#   2. the real daemon saves the example VMM's guest (tools/example-vmm:
#      GUEST_MIB of memfd RAM, 1 MiB chunks half random, half zero) zero-
#      copy: data throughput = page bytes written / time from START to the
#      durable COMPLETE; wall time = connect to COMPLETE;
#   3. the saved file is restored into a new example VMM through the daemon
#      (a restore job with "protocol": "native", `savctl restore --native`):
#      read throughput = page bytes read / time from START to the final
#      reply; once into RAM the VMM populated beforehand (as with a VMM's
#      preallocation option: the figure compared with fio, whose buffers
#      are populated too), once into fresh RAM (the kernel then allocates
#      every page during the reads);
#   4. QEMU 7.2 (paused, the same RAM content in a memory-backend-file,
#      bandwidth limit lifted) migrates to a socket that discards
#      everything (`migrate unix:`): its total-time.
# Steps 1-3 run REPEAT times (default 3), fio right before savd each time
# (the disk's speed drifts); printed: each round's figures, the medians of
# the ratios and the targets (save >= 0.90 of the write ceiling, wall time
# <= 0.5 of QEMU's, restore >= 0.85 of the read ceiling).  Needs fio, socat, python3, qemu-system-x86_64, a built tree
# (SAVD_BUILDDIR, default _build) and about 2 GUEST_MIB of free memory.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
export top_srcdir=$top
export top_builddir=${SAVD_BUILDDIR:-$top/_build}
dir=${1:-/var/tmp}
mib=${2:-2048}
data_mib=$((mib / 2))

source "$top/tests/functions.sh"
source "$top/tests/vm-functions.sh"
requires fio socat python3 qemu-system-x86_64
VMM=$top_builddir/tools/example-vmm
[[ -x $VMM && -x $SAVD ]] || fail "build first: make -C $top_builddir all"
[[ -d $dir && -w $dir ]] || fail "'$dir' is not a writable directory"
work=$(mktemp -d "$dir/savd-bench-native.XXXXXX")
on_cleanup "rm -rf '$work'"

field() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }
ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }

# MiB/s of an fio run: rw (write|read) over $work/fio.dat.
fio_mibs()
{
        local extra=()
        [[ $1 == write ]] && extra=(--end_fsync=1)
        fio --name=ceiling --filename="$work/fio.dat" --ioengine=io_uring --direct=1 --bs=1M \
            --iodepth=32 --rw="$1" --size="${data_mib}M" "${extra[@]}" --output-format=json \
            >"$work/fio.json"
        python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0][sys.argv[2]]
print("%.1f" % (j["bw_bytes"] / 2**20))' "$work/fio.json" "$1"
}

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)," \
     "$(awk '/MemTotal/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
echo "target:  $dir ($(findmnt -no FSTYPE --target "$dir") on $(findmnt -no SOURCE --target "$dir"))," \
     "guest $mib MiB, $data_mib MiB of it data"

# save_round: one zero-copy save through a fresh daemon; sets save_mibs,
# save_wall, save_io.  The first round also dumps the guest RAM for QEMU.
save_round()
{
        local dump=()
        [[ -e $ramdir/ram ]] || dump=(--dump "$ramdir/ram")
        rm -rf "$work/out"
        mkdir -p "$work/out"
        start_daemon_args --runtime-dir "$runtime" --output-dir "$work/out"
        "$SAVCTL" --socket "$sock" --json save bench --output bench.mrm >"$work/save.json"
        read -r job uri < <(python3 -c 'import json, sys
r = json.load(open(sys.argv[1])); print(r["job"], r["data-uri"])' "$work/save.json")
        "$VMM" save "$uri" --mem "$mib" --pattern half --quiet "${dump[@]}" >"$work/save.out"
        "$SAVCTL" --socket "$sock" wait "$job" >/dev/null || fail "the save job failed"
        "$SAVCTL" verify "$work/out/bench.mrm" >/dev/null || fail "the saved file does not verify"
        stop_daemon
        save_mibs=$(field save-data-mib-per-s "$work/save.out")
        save_wall=$(field save-seconds "$work/save.out")
        save_io=$(sed -n 's/.*, io \(.*\)$/\1/p' "$work/save.out")
}

# restore_mibs [--prefault]: MiB/s of page data from START to the final
# reply, into a new example VMM (its RAM populated first with --prefault).
restore_mibs()
{
        local rjob ruri
        start_daemon_args --runtime-dir "$runtime" --output-dir "$work/out" >/dev/null
        "$SAVCTL" --socket "$sock" restore bench.mrm --native >"$work/restore.txt"
        { read -r ruri; read -r _ rjob; } <"$work/restore.txt"
        "$VMM" restore "$ruri" "$@" >"$work/restore.out" || fail "example-vmm restore failed"
        "$SAVCTL" --socket "$sock" wait "$rjob" >/dev/null || fail "the restore job failed"
        stop_daemon
        field restore-data-mib-per-s "$work/restore.out"
}

# Let the disk finish what earlier steps left behind (the host may still be
# writing back) before the next measurement starts.
settle() { sync; sleep "${SETTLE:-3}"; }

median() { python3 -c 'import statistics, sys; print("%.2f" % statistics.median(map(float, sys.argv[1:])))' "$@"; }

ramdir=$(vm_ram_dir)
on_cleanup "rm -rf '$ramdir'"
rounds=${REPEAT:-3}
declare -a r_save r_wall r_rpf r_rfresh
printf '%-6s %10s %10s %6s %10s %10s %6s %10s %6s\n' round "fio-write" "save" ratio \
        "fio-read" "rest-pf" ratio "rest-fresh" ratio
for ((k = 1; k <= rounds; k++)); do
        # fio and savd back to back, so that both see the same disk; fio's
        # file is written after savd's, so that if the host caches recent
        # writes, fio's reads gain from it at least as much as savd's; each
        # step starts on a settled disk
        settle; save_round
        settle; fio_write=$(fio_mibs write)
        settle; fio_read=$(fio_mibs read)
        rm -f "$work/fio.dat"
        settle; restore_pf=$(restore_mibs --prefault)
        settle; restore_fresh=$(restore_mibs)
        r_save+=("$(ratio "$save_mibs" "$fio_write")")
        r_wall+=("$save_wall")
        r_rpf+=("$(ratio "$restore_pf" "$fio_read")")
        r_rfresh+=("$(ratio "$restore_fresh" "$fio_read")")
        printf '%-6s %10s %10s %6s %10s %10s %6s %10s %6s\n' "$k" "$fio_write" "$save_mibs" \
                "${r_save[-1]}" "$fio_read" "$restore_pf" "${r_rpf[-1]}" "$restore_fresh" \
                "${r_rfresh[-1]}"
done
restore_io=$(sed -n 's/.*, io \(.*\)$/\1/p' "$work/restore.out")
rm -rf "$work/out"

note "QEMU 7.2 migrate unix: to a discarding socket (a first run, then $rounds measured)"
# The first migration of a freshly written RAM file is the slowest on some
# hosts (twice as slow here): it is not counted.
qemu_discard_s()
{
        local qsock=$work/discard.sock spid
        rm -f "$qsock"
        socat -u "UNIX-LISTEN:$qsock" OPEN:/dev/null &
        spid=$!
        vm_start bench "$ramdir/ram" "${mib}M"
        vm_wait_socket "$qsock"
        vm_migrate bench "unix:$qsock" >"$work/qemu.json"
        vm_stop bench
        wait "$spid" 2>/dev/null || true
        python3 -c 'import json, sys; print("%.3f" % (json.load(open(sys.argv[1]))["total-time"] / 1000))' \
                "$work/qemu.json"
}
on_cleanup "vm_stop bench"
declare -a r_qemu
qemu_discard_s >/dev/null
for ((k = 1; k <= rounds; k++)); do
        r_qemu+=("$(qemu_discard_s)")
done
echo "QEMU discard rounds: ${r_qemu[*]} s"
qemu_s=$(median "${r_qemu[@]}")

wall=$(median "${r_wall[@]}")
echo
echo "medians over $rounds rounds (units: MiB/s, seconds):"
printf '  zero-copy save data / fio write ceiling:    %s (target >= 0.90), io %s\n' \
        "$(median "${r_save[@]}")" "$save_io"
printf '  save wall time / QEMU 7.2 migrate unix:     %s s / %s s = %s (target <= 0.5)\n' \
        "$wall" "$qemu_s" "$(ratio "$wall" "$qemu_s")"
printf '    (writing %s MiB at the fio ceiling alone takes %s s)\n' "$data_mib" \
        "$(python3 -c "import sys; print('%.3f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$data_mib" "$fio_write")"
printf '  restore into prefaulted RAM / fio read:     %s (target >= 0.85), io %s\n' \
        "$(median "${r_rpf[@]}")" "$restore_io"
printf '  restore into fresh RAM / fio read:          %s (the kernel populates every page)\n' \
        "$(median "${r_rfresh[@]}")"
