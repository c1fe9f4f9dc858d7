#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Native saves through the real daemon, with the example VMM (libsavd) as
# the client: a zero-copy live save with a thread dirtying guest memory,
# and an inline save over a data channel handed back as a descriptor; each
# file verifies, `savctl inspect` shows its VM name and device state, and
# the restore (tests/native-serve, as a restore job runs it) gives the VMM
# the final guest memory and device state again.  A client that sends a
# hostile frame fails its own job only, while another save runs next to it.
# A file whose device state was damaged no longer verifies.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/vmm-functions.sh"
requires python3
VMM=$top_builddir/tools/example-vmm
SERVE=$top_builddir/tests/native-serve
[[ -x $VMM && -x $SERVE ]] || fail "build tools/example-vmm and tests/native-serve first"
export VMM TMPD=$tmpdir OUTDIR=$outdir

start_daemon

# job_uri NAME OUTPUT: start a save job, print "ID URI".
job_uri()
{
        "$SAVCTL" --socket "$sock" --json save "$1" --output "$2" >"$tmpdir/job.json"
        python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["job"], r["data-uri"])' \
                "$tmpdir/job.json"
}

# restore_into_vmm FILE OUT: the example VMM listens, native-serve fills it.
restore_into_vmm()
{
        local vsock=$tmpdir/vmm.sock
        rm -f "$vsock"
        "$VMM" restore --listen "$vsock" --hash >"$2" 2>&1 &
        local vpid=$!
        on_cleanup "kill $vpid 2>/dev/null"
        local i
        for ((i = 0; i < 200; i++)); do [[ -S $vsock ]] && break; sleep 0.05; done
        "$SERVE" restore "$1" "unix:$vsock" >"$tmpdir/serve.out" 2>&1 ||
                { cat "$tmpdir/serve.out" "$2"; fail "native restore of $1 failed"; }
        wait "$vpid" || { cat "$2"; fail "example-vmm restore failed"; }
}

note "zero-copy live save: 3 blocks, a dirtying thread, 4 passes"
read -r job uri < <(job_uri live live.mrm)
"$VMM" save "$uri" --mem 48 --blocks 3 --dirty --passes 4 --device-state 5000 --hash \
        >"$tmpdir/live.out" || fail "example-vmm save failed"
"$SAVCTL" --socket "$sock" wait "$job" >/dev/null || fail "job $job did not complete"
expect_status 0 "$SAVCTL" verify "$outdir/live.mrm"
"$SAVCTL" inspect "$outdir/live.mrm" >"$tmpdir/inspect.txt"
assert_contains "$tmpdir/inspect.txt" "machine:         example-vmm"
assert_contains "$tmpdir/inspect.txt" "native:          version 1, device state 5000 bytes"
"$SAVCTL" inspect --json "$outdir/live.mrm" >"$tmpdir/inspect.json"
py - "$job" <<'PY'
c = Ctl()
info = c.ok("query-job", {"job": int(sys.argv[1])})
assert info["state"] == "completed" and info["protocol"] == "native", info
assert info["bytes"] > 0 and info["pages-written"] > 0 and info["pages-zero"] > 0, info
j = json.load(open(os.path.join(os.environ["TMPD"], "inspect.json")))
assert j["valid"] and j["machine"] == "example-vmm", j
assert j["native"]["version"] == 1 and j["native"]["device-state"]["length"] == 5000, j["native"]
assert [b["name"] for b in j["blocks"]] == ["ram0", "ram1", "ram2"], j["blocks"]
PY
restore_into_vmm "$outdir/live.mrm" "$tmpdir/live-restore.out"
same_guest "$tmpdir/live.out" "$tmpdir/live-restore.out"

note "inline save over a data channel handed back as a descriptor"
py - <<'PY'
import subprocess
c = Ctl()
n = len(c.fds)
r = c.ok("save", {"name": "inline", "output": "inline.mrm", "channel": "fd"})
assert r["data-fd"] is True and len(c.fds) == n + 1, r
ch = c.fds.pop()
out = open(os.path.join(os.environ["TMPD"], "inline.out"), "w")
p = subprocess.run([os.environ["VMM"], "save", "--fd", str(ch), "--inline", "--mem", "16",
                    "--pattern", "test", "--hash"], pass_fds=[ch], stdout=out)
os.close(ch)
assert p.returncode == 0, p
info = c.wait_job(r["job"])
assert info["state"] == "completed" and info["protocol"] == "native", info
PY
expect_status 0 "$SAVCTL" verify "$outdir/inline.mrm"
restore_into_vmm "$outdir/inline.mrm" "$tmpdir/inline-restore.out"
[[ $(vmm_field memory-hash "$tmpdir/inline.out") == "$(vmm_field memory-hash "$tmpdir/inline-restore.out")" ]] ||
        fail "inline save did not restore to the same memory"

note "a hostile client fails its own job; a save next to it completes"
py - <<'PY'
import struct, subprocess
c = Ctl()
bad = c.ok("save", {"name": "hostile", "output": "hostile.mrm"})
good = c.ok("save", {"name": "good", "output": "good.mrm"})
p = subprocess.Popen([os.environ["VMM"], "save", good["data-uri"], "--mem", "32", "--quiet"],
                     stdout=subprocess.DEVNULL)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(data_path(bad["data-uri"]))
hello = struct.pack("<IIQHHI", 1, 4096, 15, 2, 0, 0) + b"vm"
s.sendall(b"SAVDNAT1" + struct.pack("<IHHII", len(hello), 1, 0, 0, 0) + hello)
s.sendall(struct.pack("<IHHII", 0, 0x99, 0, 0, 0))         # no such frame type
s.settimeout(HANG_GUARD)
got = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
assert b"unknown frame type 0x0099" in got, got       # the ERROR frame
info = c.wait_job(bad["job"])
assert info["state"] == "failed" and "unknown frame type 0x0099" in info["error"], info
assert p.wait(HANG_GUARD) == 0
info = c.wait_job(good["job"])
assert info["state"] == "completed", info
assert not os.path.exists(os.path.join(os.environ["OUTDIR"], "hostile.mrm"))
PY
expect_status 0 "$SAVCTL" verify "$outdir/good.mrm"

note "a damaged device state makes the file invalid"
cp "$outdir/live.mrm" "$tmpdir/damaged.mrm"
off=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["native"]["device-state"]["blob-offset"])' \
        "$tmpdir/inspect.json")
printf 'X' | dd of="$tmpdir/damaged.mrm" bs=1 seek="$off" conv=notrunc status=none
expect_status 4 "$SAVCTL" verify "$tmpdir/damaged.mrm"
assert_contains "$tmpdir/err" "CRC-32C"

stop_daemon
