#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Real saves through the daemon: the QEMU 7.2 stream of the test guest
# ($SAVD_TESTDATA/q72-legacy.stream) pushed into a job's data channel must
# become a file that `savctl verify` accepts.  Covers savctl save --wait,
# an existing output (refused, then overwritten on request), fd handoff
# both ways (output fd in, data-channel fd out), cancel mid-job and
# SIGTERM mid-job (no file left either way), and 8 jobs at once.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires python3
stream=$SAVD_TESTDATA/q72-legacy.stream
[[ -r $stream ]] || skip "no $stream"
export STREAM=$stream OUTDIR=$outdir TMPD=$tmpdir

start_daemon

note "savctl save --wait: the data URI first, then the result"
"$SAVCTL" --socket "$sock" save vm1 --output vm1.mrm --wait >"$tmpdir/save.out" 2>"$tmpdir/save.err" &
saver=$!
for ((i = 0; i < 200; i++)); do [[ -s $tmpdir/save.out ]] && break; sleep 0.05; done
uri=$(head -n1 "$tmpdir/save.out")
[[ $uri == unix:$runtime/jobs/*.sock ]] || fail "first line is not the data URI: '$uri'"
py - "$uri" <<'PY'
push(sys.argv[1], os.environ["STREAM"])
PY
rc=0; wait "$saver" || rc=$?
((rc == 0)) || { cat "$tmpdir/save.out" "$tmpdir/save.err"; fail "savctl save --wait exited $rc"; }
assert_contains "$tmpdir/save.out" ": completed"
expect_status 0 "$SAVCTL" verify "$outdir/vm1.mrm"
[[ -z $(find "$outdir" -name '.*') ]] || fail "temporary files left: $(ls -a "$outdir")"

note "the job's info after a save"
py - <<'PY'
c = Ctl()
info = [j for j in c.ok("query-jobs") if j["name"] == "vm1"][0]
size = os.path.getsize(os.environ["STREAM"])
assert info["state"] == "completed" and info["error"] is None, info
assert info["protocol"] == "qemu" and info["io-mode"] in ("direct", "buffered", "buffered+dontcache"), info
assert info["bytes"] == size, (info["bytes"], size)
assert info["total-pages"] > 0 and info["pages-written"] > 0, info
assert info["started"] and info["ended"] and info["ended"] >= info["started"], info
st = c.ok("query-stats")
assert st["jobs-ended"]["completed"] == 1 and st["bytes"] >= size, st
PY

note "an existing output is refused; --overwrite replaces it"
expect_status 1 "$SAVCTL" --socket "$sock" save vm1 --output vm1.mrm
assert_contains "$tmpdir/err" "already exists"
"$SAVCTL" --socket "$sock" --json save vm1 --output vm1.mrm --overwrite --wait >"$tmpdir/save.out" &
saver=$!
for ((i = 0; i < 200; i++)); do [[ -s $tmpdir/save.out ]] && break; sleep 0.05; done
py - <<'PY'
r = json.loads(open(os.path.join(os.environ["TMPD"], "save.out")).readline())
push(r["data-uri"], os.environ["STREAM"])
PY
wait "$saver" || fail "savctl save --overwrite --wait failed"
expect_status 0 "$SAVCTL" verify "$outdir/vm1.mrm"

note "fd handoff both ways: output fd in, data-channel fd out"
mkdir -m 0700 "$tmpdir/private"
py - "$tmpdir/private/handed.mrm" <<'PY'
c = Ctl()
out = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
n = len(c.fds)
r = c.ok("save", {"name": "handed", "output": "fd", "channel": "fd"}, fds=[out])
os.close(out)
assert r["data-fd"] is True and len(c.fds) == n + 1, r
ch = socket.socket(fileno=c.fds.pop())
push(ch, os.environ["STREAM"])
info = c.wait_job(r["job"])
assert info["state"] == "completed", info
assert info["output"] == "fd" and info["channel"] == "fd", info
PY
expect_status 0 "$SAVCTL" verify "$tmpdir/private/handed.mrm"

note "cancel mid-job: the partial file is removed"
py - <<'PY'
c = Ctl()
r = c.ok("save", {"name": "cancelme", "output": "cancelled.mrm"})
half = os.path.getsize(os.environ["STREAM"]) // 2
t = threading.Thread(target=push, args=(r["data-uri"], os.environ["STREAM"], half))
t.start()
e = c.event(lambda e: e["event"] == "JOB_PROGRESS" and e["data"]["id"] == r["job"] and
            (e["data"]["bytes"] > 0 or e["data"]["pages-written"] > 0))
c.ok("job-cancel", {"job": r["job"]})
info = c.wait_job(r["job"])
t.join(HANG_GUARD)
assert not t.is_alive(), "the data client was not released"
assert info["state"] == "cancelled" and "by request" in info["error"], info
left = os.listdir(os.environ["OUTDIR"])
assert "cancelled.mrm" not in left and not [f for f in left if f.startswith(".")], left
PY

note "8 jobs at once"
py - <<'PY'
c = Ctl()
jobs = [c.ok("save", {"name": f"par{i}", "output": f"par{i}.mrm"}) for i in range(8)]
threads = [threading.Thread(target=push, args=(j["data-uri"], os.environ["STREAM"])) for j in jobs]
for t in threads: t.start()
for j in jobs:
    info = c.wait_job(j["job"])
    assert info["state"] == "completed", info
for t in threads: t.join(HANG_GUARD)
PY
for i in 0 1 2 3 4 5 6 7; do
        expect_status 0 "$SAVCTL" verify "$outdir/par$i.mrm"
done
cmp "$outdir/par0.mrm" "$outdir/par7.mrm" || fail "the same stream gave different files"

note "SIGTERM mid-job: the job is cancelled, the file removed, exit 0"
py - "$savd_pid" <<'PY'
c = Ctl()
r = c.ok("save", {"name": "term", "output": "term.mrm"})
half = os.path.getsize(os.environ["STREAM"]) // 2
t = threading.Thread(target=push, args=(r["data-uri"], os.environ["STREAM"], half))
t.start()
c.event(lambda e: e["event"] == "JOB_PROGRESS" and e["data"]["id"] == r["job"] and
        (e["data"]["bytes"] > 0 or e["data"]["pages-written"] > 0))
os.kill(int(sys.argv[1]), 15)
info = c.wait_job(r["job"])
assert info["state"] == "cancelled" and "shutting down" in info["error"], info
t.join(HANG_GUARD)
PY
wait_daemon
[[ ! -e $outdir/term.mrm && -z $(find "$outdir" -name '.*') ]] || fail "files left: $(ls -a "$outdir")"
