#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# systemd integration: socket activation through systemd-socket-activate
# (a stream socket is taken; another kind is refused and savd binds its
# own), READY/STATUS/RELOADING/WATCHDOG/STOPPING on a real NOTIFY_SOCKET,
# and systemd-analyze verify on the units.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires python3 systemd-socket-activate systemd-analyze
mkdir -p "$runtime" "$outdir"

note "socket activation: the listening socket comes from the manager"
systemd-socket-activate -l "$sock" "$SAVD" --foreground --runtime-dir "$runtime" \
        --output-dir "$outdir" 2>>"$tmpdir/savd.log" &
savd_pid=$!
on_cleanup kill_daemon
wait_ready                               # the first connection starts savd
expect_status 0 "$SAVCTL" --socket "$sock" jobs
assert_contains "$tmpdir/savd.log" "control socket from the service manager (fd 3)"
stop_daemon
[[ -S $sock ]] || fail "savd removed the manager's socket"
rm -f "$sock"

note "socket activation with a socket of the wrong kind: refused, savd binds its own"
systemd-socket-activate --seqpacket -l "$tmpdir/seq.sock" "$SAVD" --foreground \
        --runtime-dir "$runtime" --output-dir "$outdir" 2>>"$tmpdir/savd.log" &
savd_pid=$!
py - "$tmpdir/seq.sock" <<'PY'
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])                   # wakes the activator, which starts savd
PY
wait_ready
assert_contains "$tmpdir/savd.log" "is not a listening AF_UNIX stream socket, closing it"
assert_contains "$tmpdir/savd.log" "listening on $sock"
stop_daemon

note "sd_notify: READY, STATUS, RELOADING, WATCHDOG, STOPPING on a real NOTIFY_SOCKET"
py - "$SAVD" "$runtime" "$outdir" "$tmpdir/notify.sock" "$tmpdir/savd.log" <<'PY'
import subprocess
savd, runtime, outdir, nsock, log = sys.argv[1:]
n = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
n.bind(nsock)
n.settimeout(HANG_GUARD)
env = dict(os.environ, NOTIFY_SOCKET=nsock, WATCHDOG_USEC="400000")
p = subprocess.Popen([savd, "--foreground", "--runtime-dir", runtime, "--output-dir", outdir],
                     env=env, stderr=open(log, "a"))
seen = []

def until(pred, what):
    """Read notifications until one satisfies pred."""
    while True:
        try:
            m = n.recv(4096).decode()
        except socket.timeout:
            raise AssertionError(f"no {what}; got {seen}")
        seen.append(m)
        fields = dict(l.split("=", 1) for l in m.splitlines() if "=" in l)
        if pred(fields):
            return fields

r = until(lambda f: "READY" in f, "READY=1")
assert r["READY"] == "1" and "jobs active" in r["STATUS"] and "0 control clients" in r["STATUS"], r
# READY comes only once the control socket answers
c = Ctl()
assert c.ok("query-version")
until(lambda f: f.get("WATCHDOG") == "1", "WATCHDOG=1")
until(lambda f: f.get("WATCHDOG") == "1", "a second WATCHDOG=1")
# live counters: the status follows the connected client and a new job
j = c.ok("save", {"name": "st", "output": "st.mrm"})
r = until(lambda f: "1 jobs active (1 waiting" in f.get("STATUS", ""), "STATUS with the job")
assert "1 control clients" in r["STATUS"], r
p.send_signal(1)
until(lambda f: f.get("RELOADING") == "1", "RELOADING=1")
until(lambda f: f.get("READY") == "1", "READY=1 after the reload")
p.terminate()
r = until(lambda f: f.get("STOPPING") == "1", "STOPPING=1")
assert p.wait(HANG_GUARD) == 0
assert c.wait_job(j["job"])["state"] == "cancelled"
PY

note "systemd-analyze verify accepts the units"
mkdir -p "$tmpdir/units"
sed -e "s|@sbindir@|$top_builddir|g" -e "s|@sysconfdir@|/etc|g" \
        "$top_srcdir/systemd/savd.service.in" >"$tmpdir/units/savd.service"
cp "$top_srcdir/systemd/savd.socket" "$tmpdir/units/"
(cd "$tmpdir/units" && systemd-analyze verify --man=no ./savd.service ./savd.socket) \
        >"$tmpdir/verify.log" 2>&1 || { cat "$tmpdir/verify.log"; fail "systemd-analyze verify failed"; }
[[ ! -s $tmpdir/verify.log ]] || { cat "$tmpdir/verify.log"; fail "systemd-analyze verify warned"; }
grep -q '^Type=notify$' "$tmpdir/units/savd.service" || fail "not Type=notify"
grep -q '^WatchdogSec=' "$tmpdir/units/savd.service" || fail "no WatchdogSec"
