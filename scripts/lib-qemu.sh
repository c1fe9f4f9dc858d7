# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by scripts/demo.sh and scripts/bench-qemu.sh: a savd of its own in
# temporary directories (runtime dir under /tmp, output on $SAVD_OUTPUT_BASE,
# default /var/tmp), a guest RAM file on tmpfs, and a cleanup trap that
# stops savd and removes everything.  Source it with $top and $build set.

: "${SAVD_OUTPUT_BASE:=/var/tmp}"
work=$(mktemp -d "${TMPDIR:-/tmp}/savd-qemu.XXXXXX")
ramdir=$(mktemp -d "${SAVD_RAM_DIR:-/dev/shm}/savd-ram.XXXXXX")
outdir=$(mktemp -d "$SAVD_OUTPUT_BASE/savd-out.XXXXXX")
savd_pid=

lib_cleanup()
{
        local rc=$?
        set +e
        if [[ -n $savd_pid ]]; then
                kill -TERM "$savd_pid" 2>/dev/null
                wait "$savd_pid" 2>/dev/null
        fi
        if ((rc != 0)) && [[ -s $work/savd.log ]]; then
                echo "--- savd log:" >&2
                tail -n 20 "$work/savd.log" >&2
        fi
        rm -rf "$work" "$ramdir" "$outdir"
        exit "$rc"
}
trap lib_cleanup EXIT
trap 'exit 130' INT TERM

# start_savd [SAVD OPTIONS...]: until its control socket answers.
start_savd()
{
        local i
        "$build/savd" --foreground --runtime-dir "$work/run" --output-dir "$outdir" "$@" \
                2>>"$work/savd.log" &
        savd_pid=$!
        for ((i = 0; i < 200; i++)); do
                "$build/savctl" --socket "$work/run/control.sock" version >/dev/null 2>&1 && return 0
                kill -0 "$savd_pid" 2>/dev/null || break
                sleep 0.05
        done
        echo "savd did not start; its log:" >&2
        cat "$work/savd.log" >&2
        return 1
}

# make_guest_ram SIZE_MIB: $ramdir/src.ram, the first half random, the
# rest zero.
make_guest_ram()
{
        truncate -s "$1M" "$ramdir/src.ram"
        python3 - "$ramdir/src.ram" "$1" <<'PY'
import os, sys
path, mib = sys.argv[1], int(sys.argv[2])
left = (mib << 20) // 2
with open(path, "r+b") as f:
    while left:
        n = min(left, 64 << 20)
        f.write(os.urandom(n)); left -= n
PY
}

# qemu_timing MODE SIZE_MIB [ARGS...]: scripts/qemu-timing.py against
# this savd.
qemu_timing()
{
        local mode=$1 size=$2; shift 2
        python3 "$top/scripts/qemu-timing.py" "$mode" --socket "$work/run/control.sock" \
                --output-dir "$outdir" --ram "$ramdir/src.ram" --size-mib "$size" \
                --workdir "$work" --savctl "$build/savctl" "$@"
}
