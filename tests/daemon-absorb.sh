#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# absorb-bytes: while a QEMU stream arrives, the disk trails it.  The test
# guest's stream is sent up to 3 MiB and paused there: with the default
# (the disk trails by max-inflight-bytes) savd has received it all and
# written none of it; with "absorb-bytes": 0 it writes while the sender
# waits.  Either way the save completes, once the rest arrives, into a
# file that verifies.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires python3
stream=$SAVD_TESTDATA/q72-legacy.stream
[[ -r $stream ]] || skip "no $stream"
export STREAM=$stream

# paused_save MODE: held (nothing written while paused) or writing.
paused_save()
{
        py - "$1" <<'PY'
mode = sys.argv[1]
c = Ctl()
r = c.ok("save", {"name": mode, "output": mode + ".mrm"})
# 3 MiB of the stream carry pages from more than 8 MiB of the guest's RAM
# (a page in three is data): more than two full 4 MiB writes.
pause, resume = 3 << 20, threading.Event()
t = threading.Thread(target=push, args=(r["data-uri"], os.environ["STREAM"], pause, resume))
t.start()

def info():
    return [j for j in c.ok("query-jobs") if j["id"] == r["job"]][0]

def wait_for(what, pred):
    deadline = time.monotonic() + HANG_GUARD
    while not pred(info()):
        assert time.monotonic() < deadline, f"{mode}: no {what}: {info()}"
        time.sleep(0.02)

wait_for("bytes received", lambda i: i["bytes"] >= pause)
if mode == "held":
    time.sleep(0.3)             # writes, were they not held, would be done
    i = info()
    assert i["bytes-written"] == 0, f"written while the stream was paused: {i}"
else:
    wait_for("write while the stream was paused", lambda i: i["bytes-written"] > 0)
resume.set()
done = c.wait_job(r["job"])
t.join(HANG_GUARD)
assert done["state"] == "completed", done
assert done["bytes"] == os.path.getsize(os.environ["STREAM"]) and done["bytes-written"] > 0, done
print(f"{mode}: {done['bytes-written']} bytes written once the stream ended")
PY
}

note "default: the disk trails the stream, nothing is written while it pauses"
start_daemon
paused_save held
expect_status 0 "$SAVCTL" verify "$outdir/held.mrm"
stop_daemon

note "absorb-bytes 0: pages are written as they arrive"
echo '{"absorb-bytes": 0}' >"$tmpdir/savd.conf"
start_daemon --config "$tmpdir/savd.conf"
paused_save writing
expect_status 0 "$SAVCTL" verify "$outdir/writing.mrm"
cmp "$outdir/held.mrm" "$outdir/writing.mrm" || fail "the two saves of the same stream differ"
stop_daemon
