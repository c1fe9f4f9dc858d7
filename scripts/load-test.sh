#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Load test (not part of `make check`): JOBS concurrent native zero-copy
# saves of SIZE_MIB each (example-vmm, memfd guests, half random in 1 MiB
# chunks, each with its own seed) through one daemon, while POLLERS
# control clients poll query-jobs as fast as savd answers them.  Printed:
# the aggregate data throughput of the saves (bytes written / time from
# the first job starting, i.e. its VMM connecting, to the last job ending,
# as the jobs' own timestamps say), the fio
# O_DIRECT write ceiling of the same file system measured in the same run
# (io_uring, 1 MiB, QD 32, the same amount of data, end_fsync), their
# ratio, and the number of query-jobs answers.  Then every file must pass
# `savctl verify` and the first RESTORES files must restore through the
# native protocol into a VMM whose memory hash is the saved one.
#
#   scripts/load-test.sh [DIR]        (default /var/tmp)
#   env: JOBS=8 SIZE_MIB=1024 POLLERS=64 RESTORES=2 FIO=1
#        SAVD_BUILDDIR (default _build)
#
# Needs python3, fio (unless FIO=0), a built tree (all + tests/native-serve)
# and about JOBS * SIZE_MIB of memory and JOBS * SIZE_MIB / 2 of disk.
# Exits non-zero when a save fails, a file does not verify, a restore
# differs or a poller got an error.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
export top_srcdir=${top_srcdir:-$top}
export top_builddir=${top_builddir:-${SAVD_BUILDDIR:-$top/_build}}
dir=${1:-/var/tmp}
: "${JOBS:=8}" "${SIZE_MIB:=1024}" "${POLLERS:=64}" "${RESTORES:=2}" "${FIO:=1}"

source "$top_srcdir/tests/functions.sh"
requires python3
((FIO == 0)) || requires fio
VMM=$top_builddir/tools/example-vmm
SERVE=$top_builddir/tests/native-serve
[[ -x $VMM && -x $SERVE && -x $SAVD ]] ||
        fail "build first: make -C $top_builddir all tests/native-serve"
[[ -d $dir && -w $dir ]] || fail "'$dir' is not a writable directory"
work=$(mktemp -d "$dir/savd-load.XXXXXX")
on_cleanup "rm -rf '$work'"
field() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }

echo "load: $JOBS saves x $SIZE_MIB MiB (half random), $POLLERS pollers, output in $work"
echo "load: $(nproc) CPUs, $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, $(uname -r)," \
        "file system $(df --output=fstype "$work" | tail -n1) on $(df --output=source "$work" | tail -n1)"

start_daemon_args --runtime-dir "$runtime" --output-dir "$work"

# The saves and the pollers: one Python process drives them all and
# prints "RESULT bytes seconds polls".
export VMM WORK=$work JOBS SIZE_MIB POLLERS
py - >"$tmpdir/load.out" <<'PY'
import subprocess
n, mib, npoll = int(os.environ["JOBS"]), int(os.environ["SIZE_MIB"]), int(os.environ["POLLERS"])
work = os.environ["WORK"]
stop = threading.Event()
polls, poll_errors = [0] * npoll, []

def poller(i):
    try:
        c = Ctl()
        while not stop.is_set():
            jobs = c.ok("query-jobs")
            assert isinstance(jobs, list)
            polls[i] += 1
        c.close()
    except Exception as e:          # reported below, fails the run
        poll_errors.append(f"poller {i}: {e!r}")

threads = [threading.Thread(target=poller, args=(i,)) for i in range(npoll)]
for t in threads:
    t.start()
c = Ctl()
jobs = [c.ok("save", {"name": f"load{i}", "output": f"load{i}.mrm"}) for i in range(n)]
start = time.monotonic()
vmms = [subprocess.Popen([os.environ["VMM"], "save", j["data-uri"], "--mem", str(mib),
                          "--seed", str(i + 1), "--hash", "--quiet"],
                         stdout=open(os.path.join(work, f"load{i}.vmm"), "w"))
        for i, j in enumerate(jobs)]
infos = [c.wait_job(j["job"]) for j in jobs]
seconds = time.monotonic() - start
codes = [p.wait() for p in vmms]
stop.set()
for t in threads:
    t.join(HANG_GUARD)
for i, info in enumerate(infos):
    assert info["state"] == "completed" and codes[i] == 0, (info, codes[i])
assert not poll_errors, poll_errors
written = sum(i["bytes-written"] for i in infos)
# The saves' own span: first job started (its VMM connected, guest memory
# already filled) to last job ended; the wall time includes the filling.
span = max(i["ended"] for i in infos) - min(i["started"] for i in infos)
print("RESULT", written, f"{span:.3f}", sum(polls), min(polls), f"{seconds:.3f}")
PY
read -r _ bytes secs polls minpolls wall < <(grep '^RESULT' "$tmpdir/load.out")
stop_daemon
gibs=$(python3 -c "import sys; print('%.3f' % (int(sys.argv[1]) / float(sys.argv[2]) / 2**30))" "$bytes" "$secs")
echo "load: $JOBS saves completed: $((bytes >> 20)) MiB of page data in $secs s = $gibs GiB/s aggregate"
echo "load: (first job started to last job ended; $wall s including the VMMs filling guest memory)"
echo "load: $polls query-jobs answers to $POLLERS pollers during the saves (the slowest poller got $minpolls)"

if ((FIO)); then
        sync
        fio --name=ceiling --filename="$work/fio.dat" --ioengine=io_uring --direct=1 --bs=1M \
                --iodepth=32 --rw=write --size="$((bytes >> 20))M" --end_fsync=1 \
                --output-format=json >"$tmpdir/fio.json"
        rm -f "$work/fio.dat"
        fio=$(python3 -c 'import json, sys
w = json.load(open(sys.argv[1]))["jobs"][0]["write"]; print("%.3f" % (w["bw_bytes"] / 2**30))' "$tmpdir/fio.json")
        echo "load: fio ceiling (io_uring, O_DIRECT, 1 MiB, QD 32, $((bytes >> 20)) MiB, end_fsync): $fio GiB/s"
        echo "load: ratio aggregate / fio = $(python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$gibs" "$fio")"
fi

for ((i = 0; i < JOBS; i++)); do
        "$SAVCTL" verify "$work/load$i.mrm" >/dev/null || fail "load$i.mrm does not verify"
done
echo "load: all $JOBS files verify"

for ((i = 0; i < RESTORES && i < JOBS; i++)); do
        vsock=$tmpdir/vmm$i.sock
        "$VMM" restore --listen "$vsock" --hash >"$tmpdir/restore$i.out" 2>&1 &
        vpid=$!
        for ((k = 0; k < 200; k++)); do [[ -S $vsock ]] && break; sleep 0.05; done
        "$SERVE" restore "$work/load$i.mrm" "unix:$vsock" >"$tmpdir/serve$i.out" 2>&1 ||
                { cat "$tmpdir/serve$i.out"; fail "restore of load$i.mrm failed"; }
        wait "$vpid" || { cat "$tmpdir/restore$i.out"; fail "example-vmm restore $i failed"; }
        a=$(field memory-hash "$work/load$i.vmm") b=$(field memory-hash "$tmpdir/restore$i.out")
        [[ -n $a && $a == "$b" ]] || fail "load$i: restored memory hash $b, saved $a"
        echo "load: load$i.mrm restores to the saved memory (hash $a)"
done
echo "load: passed"
