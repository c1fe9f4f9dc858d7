#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Job life cycle through the control socket, independent of what the
# sessions do with a real stream: data sockets (mode, one connection,
# removal), the sniffer's refusals (unknown bytes, a QEMU multifd
# channel, an empty channel), the fd channel handed back with SCM_RIGHTS,
# events, cancel while waiting, dismiss, query errors, the max-jobs limit,
# and SIGTERM with jobs open.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires python3
export OUTDIR=$outdir

echo '{"max-jobs": 9, "max-buffer-bytes": 123456789}' >"$tmpdir/savd.conf"
start_daemon --config "$tmpdir/savd.conf"

py - <<'PY'
import stat
c = Ctl()

note = lambda *a: print("---", *a, flush=True)

note("a save job waits for its client on a 0600 socket")
j = c.ok("save", {"name": "garbage", "output": "g.mrm"})
path = data_path(j["data-uri"])
assert path == os.path.join(os.path.dirname(SOCK), "jobs", f"{j['job']}.sock"), j
st = os.stat(path)
assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
e = c.job_event("JOB_STATUS_CHANGE", j["job"])
assert e["data"]["status"] == "waiting-for-client" and e["data"]["name"] == "garbage", e
info = c.ok("query-job", {"job": j["job"]})
assert info["state"] == "waiting-for-client" and info["type"] == "save", info
assert info["output"] == "g.mrm" and info["channel"] == "unix" and info["data-uri"] == j["data-uri"], info

note("unknown bytes on the data channel fail the job, naming them")
s1 = socket.socket(socket.AF_UNIX); s1.connect(path)
# one connection per job: the socket is gone once the client is in
s2 = socket.socket(socket.AF_UNIX)
s1.sendall(b"GARBAGE!and more")
s1.settimeout(HANG_GUARD)
try:
    assert s1.recv(1) == b""      # savd closes the channel when the job ends
except ConnectionResetError:      # ... with our unread bytes in it
    pass
s1.close()
done = c.wait_job(j["job"])
assert done["state"] == "failed", done
assert "47 41 52 42 41 47 45 21" in done["error"] and "GARBAGE!" in done["error"], done["error"]
assert "QEVM" in done["error"], done["error"]
assert not os.path.exists(path), "data socket left behind"
try:
    s2.connect(path)
    raise AssertionError("a second connection to a used data socket succeeded")
except (FileNotFoundError, ConnectionRefusedError):
    pass
assert os.listdir(os.environ["OUTDIR"]) == [], os.listdir(os.environ["OUTDIR"])

note("status events arrive in order: waiting-for-client, running, failed")
j = c.ok("save", {"name": "multifd", "output": "m.mrm"})
push_bytes(j["data-uri"], bytes.fromhex("11223344 00000001") + bytes(64))
states = []
while not states or states[-1] != "failed":
    states.append(c.job_event("JOB_STATUS_CHANGE", j["job"])["data"]["status"])
assert states == ["waiting-for-client", "running", "failed"], states
done = c.wait_job(j["job"])
assert "multifd" in done["error"] and "disable capability multifd" in done["error"], done

note("an empty channel, and a short one")
j = c.ok("save", {"name": "empty", "output": "e.mrm"})
push_bytes(j["data-uri"], b"")
assert "without sending anything" in c.wait_job(j["job"])["error"]
j = c.ok("save", {"name": "short", "output": "s.mrm"})
push_bytes(j["data-uri"], b"QEV")
assert "after 3 bytes" in c.wait_job(j["job"])["error"]

note("the fd channel: a socketpair end comes back with the reply")
before = len(c.fds)
j = c.ok("save", {"name": "fdchan", "output": "f.mrm", "channel": "fd"})
assert j.get("data-fd") is True and "data-uri" not in j, j
assert len(c.fds) == before + 1, "no descriptor with the reply"
fd = c.fds.pop()
assert stat.S_ISSOCK(os.fstat(fd).st_mode)
ch = socket.socket(fileno=fd)
ch.sendall(b"NOTQEMU-")
ch.shutdown(socket.SHUT_WR)
done = c.wait_job(j["job"])
assert done["state"] == "failed" and "NOTQEMU-" in done["error"] and done["channel"] == "fd", done
ch.close()

note("cancel while waiting: cancelled, socket removed; then dismiss")
j = c.ok("save", {"name": "waiter", "output": "w.mrm"})
path = data_path(j["data-uri"])
assert os.path.exists(path)
assert c.ok("job-cancel", {"job": j["job"]}) == {}
done = c.wait_job(j["job"])
assert done["state"] == "cancelled" and "by request" in done["error"], done
assert not os.path.exists(path)
c.err("job-cancel", {"job": j["job"]}, cls="InvalidParameter", match="already ended")
jobs = [x["id"] for x in c.ok("query-jobs")]
assert j["job"] in jobs
assert c.ok("job-dismiss", {"job": j["job"]}) == {}
c.err("query-job", {"job": j["job"]}, cls="JobNotFound")
assert j["job"] not in [x["id"] for x in c.ok("query-jobs")]

note("a job that has not ended cannot be dismissed")
j = c.ok("save", {"name": "busy", "output": "b.mrm"})
c.err("job-dismiss", {"job": j["job"]}, match="not ended")
c.ok("job-cancel", {"job": j["job"]})
c.wait_job(j["job"])

note("two jobs may not write the same output")
j = c.ok("save", {"name": "one", "output": "same.mrm"})
c.err("save", {"name": "two", "output": "same.mrm"}, match="being written by job")
c.ok("job-cancel", {"job": j["job"]})
c.wait_job(j["job"])

note("restore: refused when nobody listens; a job when QEMU does")
open(os.path.join(os.environ["OUTDIR"], "in.mrm"), "wb").write(b"x" * 4096)
c.err("restore", {"file": "in.mrm", "to": "unix:/nonexistent/q.sock"}, match="connect to")
c.err("restore", {"file": "in.mrm", "to": "tcp:1.2.3.4:5"}, cls="InvalidParameter", match="unix:PATH")
c.err("restore", {"file": "missing.mrm", "to": "unix:/x"}, cls="InvalidParameter", match="does not exist")
q = socket.socket(socket.AF_UNIX)
qpath = os.path.join(os.environ["OUTDIR"], "..", "fake-qemu.sock")
q.bind(qpath); q.listen(1)
r = c.ok("restore", {"file": "in.mrm", "to": "unix:" + qpath})
q.settimeout(HANG_GUARD)
conn, _ = q.accept()             # savd connected to "QEMU"
info = c.ok("query-job", {"job": r["job"]})
assert info["type"] == "restore" and info["file"] == "in.mrm" and info["to"] == "unix:" + qpath, info
assert info["name"] == "in.mrm" and info["state"] in ("running", "failed", "completed"), info
conn.close()
c.wait_job(r["job"])
q.close()

note("max-jobs (9): the tenth open job is refused; 9 wait at once")
open_jobs = [c.ok("save", {"name": f"vm{i}", "output": f"vm{i}.mrm"})["job"] for i in range(9)]
c.err("save", {"name": "vm9", "output": "vm9.mrm"}, cls="LimitReached", match="max-jobs")
st = c.ok("query-stats")
assert st["jobs"]["waiting-for-client"] == 9, st
assert st["buffers"]["budget-bytes"] == 123456789 and st["buffers"]["charged-bytes"] == 0, st
c.ok("job-cancel", {"job": open_jobs[0]})
c.wait_job(open_jobs[0])
extra = c.ok("save", {"name": "vm9", "output": "vm9.mrm"})["job"]

PY

note "savctl: save, jobs, cancel, wait, dismiss; --output-fd hands a descriptor over"
# make room: one of the nine waiting jobs goes, another comes back at the end
py - <<'PY'
c = Ctl()
j = [j for j in c.ok("query-jobs") if j["state"] == "waiting-for-client"][0]
c.ok("job-cancel", {"job": j["id"]})
c.wait_job(j["id"])
PY
"$SAVCTL" --socket "$sock" save by-savctl --output sv.mrm >"$tmpdir/sv.out"
uri=$(sed -n 1p "$tmpdir/sv.out")
id=$(sed -n 's/^job //p' "$tmpdir/sv.out")
[[ $uri == "unix:$runtime/jobs/$id.sock" ]] || fail "savctl save printed: $(cat "$tmpdir/sv.out")"
[[ -S ${uri#unix:} ]] || fail "no data socket at $uri"
expect_status 0 "$SAVCTL" --socket "$sock" jobs
grep -E "^$id +save +waiting-for-client +by-savctl " "$tmpdir/out.txt" >/dev/null || fail "jobs: $(cat "$tmpdir/out.txt")"
expect_status 0 "$SAVCTL" --socket "$sock" cancel "$id"
assert_contains "$tmpdir/out.txt" "job $id: cancel requested"
expect_status 1 "$SAVCTL" --socket "$sock" wait "$id"
assert_contains "$tmpdir/out.txt" "job $id: cancelled: cancelled by request"
expect_status 1 "$SAVCTL" --socket "$sock" --json wait "$id"
py - "$tmpdir/out.txt" <<'PY'
info = json.load(open(sys.argv[1]))
assert info["state"] == "cancelled" and info["name"] == "by-savctl", info
PY
expect_status 0 "$SAVCTL" --socket "$sock" dismiss "$id"
expect_status 1 "$SAVCTL" --socket "$sock" wait "$id"
assert_contains "$tmpdir/err" "not found"
expect_status 2 "$SAVCTL" --socket "$sock" cancel abc
expect_status 2 "$SAVCTL" --socket "$sock" save noout
expect_status 1 "$SAVCTL" --socket "$sock" save bad --output ../x.mrm
assert_contains "$tmpdir/err" "'..' components are not allowed"
"$SAVCTL" --socket "$sock" --json save handed --output-fd 3 3>"$tmpdir/handed.mrm" >"$tmpdir/sv.out"
py - "$tmpdir/sv.out" <<'PY'
r = json.load(open(sys.argv[1]))
c = Ctl()
info = c.ok("query-job", {"job": r["job"]})
assert info["output"] == "fd" and r["data-uri"] == info["data-uri"], (r, info)
c.ok("job-cancel", {"job": r["job"]})
assert c.wait_job(r["job"])["state"] == "cancelled"
c.ok("save", {"name": "again", "output": "again.mrm"})
PY

note "SIGTERM with jobs waiting: all cancelled, exit 0, sockets removed"
py - "$savd_pid" <<'PY'
c = Ctl()
jobs = [j for j in c.ok("query-jobs") if j["state"] == "waiting-for-client"]
assert len(jobs) == 9, [j["state"] for j in c.ok("query-jobs")]
os.kill(int(sys.argv[1]), 15)
for j in jobs:
    done = c.wait_job(j["id"])
    assert done["state"] == "cancelled" and "shutting down" in done["error"], done
PY
wait_daemon
ls "$runtime/jobs" | grep -q . && fail "data sockets left: $(ls "$runtime/jobs")"
[[ -z $(ls "$outdir" | grep -v '^in.mrm$') ]] || fail "files left in the output dir: $(ls -a "$outdir")"
