#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Native restores through the real daemon (`restore` with "protocol":
# "native"), with the example VMM (libsavd) as the client on both sides:
# a zero-copy live save (pages zeroed after the first pass among them) is
# restored into fresh memfds over the per-job data socket and over a
# socketpair handed back with the reply, and the guest memory is compared
# byte for byte.  Cancel while waiting for the VMM and while running; a
# client that asks to save, or sends a QEMU stream, on a restore channel
# fails that job with a clear message and the daemon goes on; a missing
# file is refused in the reply, a damaged one fails the job before the VMM
# is sent anything but the error.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/vmm-functions.sh"
requires python3 cmp
VMM=$top_builddir/tools/example-vmm
[[ -x $VMM ]] || fail "build tools/example-vmm first"
export VMM TMPD=$tmpdir OUTDIR=$outdir

start_daemon

note "zero-copy live save through savd: 3 blocks, a dirtying thread, 16 pages zeroed"
"$SAVCTL" --socket "$sock" save live --output live.mrm >"$tmpdir/save.txt"
{ read -r uri; read -r _ job; } <"$tmpdir/save.txt"
"$VMM" save "$uri" --mem 48 --blocks 3 --dirty --passes 3 --zero-pages 16 --device-state 7000 \
        --hash --dump "$tmpdir/saved.img" >"$tmpdir/saved.out" || fail "example-vmm save failed"
"$SAVCTL" --socket "$sock" wait "$job" >/dev/null || fail "save job $job did not complete"
[[ $(vmm_field pages-zeroed "$tmpdir/saved.out") == 16 ]] || fail "no page was zeroed after the first pass"
expect_status 0 "$SAVCTL" verify "$outdir/live.mrm"

note "savctl restore --native: the data URI, then the VMM restores from it"
expect_status 2 "$SAVCTL" --socket "$sock" restore live.mrm
expect_status 2 "$SAVCTL" --socket "$sock" restore live.mrm --native --to unix:/x
"$SAVCTL" --socket "$sock" restore live.mrm --native >"$tmpdir/restore.txt"
{ read -r ruri; read -r _ rjob; } <"$tmpdir/restore.txt"
[[ $ruri == unix:$runtime/jobs/$rjob.sock ]] || fail "data URI '$ruri' for job '$rjob'"
py - "$rjob" "$ruri" <<'PY'
import stat
c = Ctl()
job, uri = int(sys.argv[1]), sys.argv[2]
info = c.ok("query-job", {"job": job})
assert info["type"] == "restore" and info["state"] == "waiting-for-client", info
assert info["protocol"] == "native" and info["channel"] == "unix" and info["data-uri"] == uri, info
assert info["to"] is None and info["file"] == "live.mrm", info
st = os.stat(data_path(uri))
assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
PY
"$VMM" restore "$ruri" --hash --dump "$tmpdir/restored.img" >"$tmpdir/restored.out" ||
        fail "example-vmm restore failed: $(cat "$tmpdir/restored.out")"
"$SAVCTL" --socket "$sock" --json wait "$rjob" >"$tmpdir/rjob.json" || fail "restore job $rjob did not complete"
same_guest "$tmpdir/saved.out" "$tmpdir/restored.out"
cmp "$tmpdir/saved.img" "$tmpdir/restored.img" || fail "restored memory differs from the saved memory"
[[ ! -e ${ruri#unix:} ]] || fail "the data socket is still there after the job"
py - "$tmpdir/rjob.json" <<'PY'
info = json.load(open(sys.argv[1]))
assert info["state"] == "completed" and info["error"] is None, info
assert info["bytes"] > 0 and info["bytes"] == info["total-bytes"], info
assert info["io-mode"] and info["started"] and info["ended"], info
PY

note "channel fd: the data channel comes with the reply"
py - <<'PY'
import subprocess
c = Ctl()
n = len(c.fds)
r = c.ok("restore", {"file": "live.mrm", "protocol": "native", "channel": "fd", "name": "by-fd"})
assert r["data-fd"] is True and "data-uri" not in r and len(c.fds) == n + 1, r
ch = c.fds.pop()
assert c.ok("query-job", {"job": r["job"]})["state"] == "waiting-for-client"
out = open(os.path.join(os.environ["TMPD"], "fd.out"), "w")
p = subprocess.run([os.environ["VMM"], "restore", "--fd", str(ch), "--hash",
                    "--dump", os.path.join(os.environ["TMPD"], "fd.img")], pass_fds=[ch], stdout=out)
os.close(ch)
assert p.returncode == 0, p
info = c.wait_job(r["job"])
assert info["state"] == "completed" and info["channel"] == "fd" and info["data-uri"] is None, info
assert info["name"] == "by-fd" and info["protocol"] == "native", info
states = [e["data"]["status"] for e in c.events
          if e["event"] == "JOB_STATUS_CHANGE" and e["data"]["id"] == r["job"]]
assert states == ["waiting-for-client", "running", "completed"], states
PY
same_guest "$tmpdir/saved.out" "$tmpdir/fd.out"
cmp "$tmpdir/saved.img" "$tmpdir/fd.img" || fail "memory restored over channel fd differs"

note "cancel while waiting for the VMM (both channels) and while running"
py - <<'PY'
import struct
c = Ctl()
# waiting, channel unix: the socket goes away, nobody can connect any more
r = c.ok("restore", {"file": "live.mrm", "protocol": "native"})
c.ok("job-cancel", {"job": r["job"]})
info = c.wait_job(r["job"])
assert info["state"] == "cancelled" and info["error"] == "cancelled by request", info
assert not os.path.exists(data_path(r["data-uri"]))
# waiting, channel fd: the VMM's end sees the channel close
r = c.ok("restore", {"file": "live.mrm", "protocol": "native", "channel": "fd"})
ch = socket.socket(fileno=c.fds.pop())
c.ok("job-cancel", {"job": r["job"]})
info = c.wait_job(r["job"])
assert info["state"] == "cancelled", info
ch.settimeout(HANG_GUARD)
assert ch.recv(1) == b""
ch.close()
# running: HELLO sent, savd described the file, the VMM stalls
r = c.ok("restore", {"file": "live.mrm", "protocol": "native"})
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(data_path(r["data-uri"]))
hello = struct.pack("<IIQHHI", 1, 4096, 2, 2, 0, 0) + b"vm"
s.sendall(b"SAVDNAT1" + struct.pack("<IHHII", len(hello), 1, 1, 0, 0) + hello)
s.settimeout(HANG_GUARD)
hdr = s.recv(16, socket.MSG_WAITALL)
assert struct.unpack("<IHHII", hdr)[1] == 0x80, hdr    # the REPLY to HELLO
c.job_event("JOB_STATUS_CHANGE", r["job"], "running")
c.ok("job-cancel", {"job": r["job"]})
info = c.wait_job(r["job"])
assert info["state"] == "cancelled" and info["error"] == "cancelled by request", info
while s.recv(65536):
    pass                                            # savd closed the channel
s.close()
PY

note "a save HELLO or a QEMU stream on a restore channel fails that job only"
py - <<'PY'
import subprocess
c = Ctl()
r = c.ok("restore", {"file": "live.mrm", "protocol": "native"})
p = subprocess.run([os.environ["VMM"], "save", r["data-uri"], "--mem", "4"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
assert p.returncode != 0 and "belongs to a restore job" in p.stderr, p
info = c.wait_job(r["job"])
assert info["state"] == "failed" and "belongs to a restore job" in info["error"], info
r = c.ok("restore", {"file": "live.mrm", "protocol": "native"})
push_bytes(r["data-uri"], b"QEVM\0\0\0\3" + b"\0" * 64)
info = c.wait_job(r["job"])
assert info["state"] == "failed" and "QEMU migration stream" in info["error"], info
assert c.ok("query-version")["package"].startswith("savd ")
assert c.ok("query-stats")["jobs"]["running"] == 0
PY

note "a missing file is refused; a damaged one fails the job, the VMM gets only the error"
cp "$outdir/live.mrm" "$outdir/short.mrm"
truncate -s 65536 "$outdir/short.mrm"
expect_status 4 "$SAVCTL" verify "$outdir/short.mrm"
py - <<'PY'
import subprocess
c = Ctl()
c.err("restore", {"file": "nope.mrm", "protocol": "native"}, cls="InvalidParameter", match="does not exist")
c.err("restore", {"file": "live.mrm", "protocol": "vmm"}, cls="InvalidParameter", match="'protocol'")
c.err("restore", {"file": "live.mrm", "protocol": "native", "to": "unix:/x"},
      cls="InvalidParameter", match="'to' is for")
c.err("restore", {"file": "live.mrm"}, cls="InvalidParameter", match="missing argument 'to'")
c.err("restore", {"file": "live.mrm", "to": "unix:/x", "channel": "fd"},
      cls="InvalidParameter", match="'channel' is for")
r = c.ok("restore", {"file": "short.mrm", "protocol": "native"})
p = subprocess.run([os.environ["VMM"], "restore", r["data-uri"]],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
assert p.returncode != 0 and "short.mrm" in p.stderr, p
assert "memory-hash" not in p.stdout and "restore:" not in p.stdout, p.stdout
info = c.wait_job(r["job"])
assert info["state"] == "failed" and "short.mrm" in info["error"], info
assert info["error"] in p.stderr, (info["error"], p.stderr)
assert info["bytes"] == 0, info
PY
note "a damaged device state is found before the VMM's memory is touched"
"$SAVCTL" inspect --json "$outdir/live.mrm" >"$tmpdir/inspect.json"
off=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["native"]["device-state"]["blob-offset"])' \
        "$tmpdir/inspect.json")
cp "$outdir/live.mrm" "$outdir/crc.mrm"
printf 'X' | dd of="$outdir/crc.mrm" bs=1 seek="$off" conv=notrunc status=none
"$SAVCTL" --socket "$sock" restore crc.mrm --native >"$tmpdir/crc.txt"
{ read -r curi; read -r _ cjob; } <"$tmpdir/crc.txt"
expect_fail "$VMM" restore "$curi"
assert_contains "$tmpdir/err" "CRC-32C"
expect_status 1 "$SAVCTL" --socket "$sock" wait "$cjob"
"$SAVCTL" --socket "$sock" --json jobs >"$tmpdir/jobs.json"
py - "$cjob" "$tmpdir/jobs.json" <<'PY'
jobs = {j["id"]: j for j in json.load(open(sys.argv[2]))}
info = jobs[int(sys.argv[1])]
assert info["state"] == "failed" and "CRC-32C" in info["error"] and info["bytes"] == 0, info
PY

stop_daemon
