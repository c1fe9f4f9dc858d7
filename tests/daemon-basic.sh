#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The daemon starts, greets, answers the simple queries through the
# control socket and savctl, keeps its sockets where and how it should,
# and stops cleanly on SIGTERM.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires python3

expect_status 0 "$SAVD" --help
assert_contains "$tmpdir/out.txt" "--runtime-dir"
expect_status 0 "$SAVD" --version
assert_contains "$tmpdir/out.txt" "savd "

note "no daemon yet: savctl cannot connect (exit 3)"
expect_status 3 "$SAVCTL" --socket "$sock" jobs
assert_contains "$tmpdir/err" "cannot connect"

start_daemon
[[ -S $sock ]] || fail "no control socket"
[[ $(stat -c %a "$sock") == 660 ]] || fail "control socket mode $(stat -c %a "$sock")"
[[ -d $runtime/jobs ]] || fail "no jobs directory"

note "savctl version / stats / jobs"
expect_status 0 "$SAVCTL" --socket "$sock" version
assert_contains "$tmpdir/out.txt" "savctl "
assert_contains "$tmpdir/out.txt" "savd "
expect_status 0 "$SAVCTL" --socket "$sock" --json version
py 'import json; v = json.load(open(sys.argv[1])); assert v["savd"]["major"] >= 0 and v["package"].startswith("savd "), v' \
        "$tmpdir/out.txt"
expect_status 0 "$SAVCTL" --socket "$sock" stats
assert_contains "$tmpdir/out.txt" "uptime: "
assert_contains "$tmpdir/out.txt" "jobs.running: 0"
expect_status 0 "$SAVCTL" --socket "$sock" jobs --json
[[ $(cat "$tmpdir/out.txt") == "[]" ]] || fail "jobs: $(cat "$tmpdir/out.txt")"

note "greeting and queries over the raw protocol"
py - <<'PY'
c = Ctl()
v = c.greeting["QMP"]
assert v["capabilities"] == [], v
assert set(v["version"]["savd"]) == {"major", "minor", "micro"}, v
assert c.ok("qmp_capabilities") == {}
assert c.ok("query-version") == v["version"]
s = c.ok("query-stats")
for k in ("jobs", "jobs-ended", "jobs-created", "bytes", "bytes-written", "clients", "uptime"):
    assert k in s, (k, s)
assert s["clients"] == 1, s
assert s["jobs"]["waiting-for-client"] == 0 and s["jobs-created"] == 0, s
assert c.ok("query-jobs") == []
r = c.cmd("query-version")
assert r["id"] == 5 and "return" in r, r
PY

stop_daemon
[[ ! -e $sock ]] || fail "control socket left behind after exit"
assert_contains "$tmpdir/savd.log" "<6>"
