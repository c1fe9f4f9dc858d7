#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Peer credentials: with the control socket opened to everyone (mode
# 0666), only root, savd's own user and members of an allowed group get
# served; anyone else gets a PermissionDenied error and is disconnected.
# Allowed groups count as primary or supplementary groups, and a reload
# (SIGHUP) changes them.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires setpriv
requires_root
PY3=/usr/bin/python3
[[ -x $PY3 ]] || skip "requires $PY3"
getent group nogroup >/dev/null || skip "requires group nogroup"
nobody=65534 nogroup=$(getent group nogroup | cut -d: -f3) other=100
[[ $(getent group "$other" | cut -d: -f3) == "$other" ]] || skip "requires group $other"

chmod 0755 "$tmpdir"
cat >"$tmpdir/savd.conf" <<CONF
{ "control-socket-mode": "0666", "allow-groups": ["nogroup"] }
CONF
start_daemon --config "$tmpdir/savd.conf"
[[ $(stat -c %a "$sock") == 666 ]] || fail "control socket mode $(stat -c %a "$sock")"

as() { setpriv --reuid="$1" --regid="$2" "${@:3}"; }

note "a peer outside the allowed groups is refused"
expect_status 1 as $nobody $other --clear-groups "$SAVCTL" --socket "$sock" jobs
assert_contains "$tmpdir/err" "permission denied"
as $nobody $other --clear-groups $PY3 - "$sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
try:
    s.sendall(b'{"execute":"query-jobs"}\n')
except BrokenPipeError:
    pass
data = b""
while True:
    try:
        b = s.recv(4096)
    except ConnectionResetError:
        break
    if not b:
        break
    data += b
lines = data.splitlines()
assert len(lines) == 1, lines                 # one error, no greeting, then closed
e = json.loads(lines[0])["error"]
assert e["class"] == "PermissionDenied" and "uid 65534" in e["desc"], e
PY

note "primary or supplementary membership of an allowed group is enough"
expect_status 0 as $nobody "$nogroup" --clear-groups "$SAVCTL" --socket "$sock" jobs
expect_status 0 as $nobody $other --groups="$nogroup" "$SAVCTL" --socket "$sock" jobs

note "root is always allowed"
expect_status 0 "$SAVCTL" --socket "$sock" jobs
expect_status 0 "$SAVCTL" --socket "$sock" stats
assert_contains "$tmpdir/out.txt" "clients-refused: 2"

note "SIGHUP: allow-groups reloaded"
cat >"$tmpdir/savd.conf" <<CONF
{ "control-socket-mode": "0666", "allow-groups": [] }
CONF
kill -HUP "$savd_pid"
for ((i = 0; i < 200; i++)); do
        grep -q "configuration reloaded" "$tmpdir/savd.log" && break
        sleep 0.05
done
assert_contains "$tmpdir/savd.log" "configuration reloaded"
expect_status 1 as $nobody "$nogroup" --clear-groups "$SAVCTL" --socket "$sock" jobs
assert_contains "$tmpdir/err" "permission denied"
expect_status 0 "$SAVCTL" --socket "$sock" jobs
stop_daemon
