# SPDX-License-Identifier: LGPL-2.1-or-later
# Shell library for savd's end-to-end tests.  Source it from a test:
#
#   source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
#   requires python3
#   start_daemon [SAVD OPTIONS...]
#   ... drive the daemon through $sock with savctl, or with Python:
#   py - <<'PY'
#   c = Ctl(); print(c.ok("query-jobs"))
#   PY
#   stop_daemon
#
# It gives every test its own temporary directory ($tmpdir, removed on
# exit), a cleanup trap that runs registered commands in reverse order,
# `requires` (exit 77 = skipped when a tool is missing), a daemon started
# in the foreground in $tmpdir/run and $tmpdir/out that is waited for until
# its control socket answers, and `py`, which runs Python with a small
# control-socket client (class Ctl) already defined.

set -euo pipefail

: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
: "${top_builddir:=$(pwd)}"
: "${SAVD_TESTDATA:=$top_srcdir/../shared/testdata}"
SAVD=${SAVD:-$top_builddir/savd}
SAVCTL=${SAVCTL:-$top_builddir/savctl}
export top_srcdir top_builddir SAVD_TESTDATA

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/savd-test.XXXXXX")
savd_pid=
cleanup_cmds=()

# on_cleanup CMD...: run CMD when the test exits, last registered first.
on_cleanup() { cleanup_cmds+=("$*"); }

_cleanup()
{
        local rc=$? i
        set +e
        for ((i = ${#cleanup_cmds[@]} - 1; i >= 0; i--)); do
                eval "${cleanup_cmds[i]}"
        done
        if ((rc != 0)) && [[ -s $tmpdir/savd.log ]]; then
                echo "--- savd log:" >&2
                tail -n 40 "$tmpdir/savd.log" >&2
        fi
        rm -rf "$tmpdir"
        exit "$rc"
}
trap _cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }
note() { echo "--- $*"; }

# requires CMD...: skip the test unless every CMD is available.
requires()
{
        local c
        for c in "$@"; do
                command -v "$c" >/dev/null 2>&1 || skip "requires $c"
        done
}

requires_root() { ((EUID == 0)) || skip "requires root"; }

# expect_fail CMD...: CMD must exit non-zero; its stderr is in $tmpdir/err.
expect_fail()
{
        if "$@" >"$tmpdir/out.txt" 2>"$tmpdir/err"; then
                fail "expected failure: $*"
        fi
        return 0
}

# expect_status N CMD...: CMD must exit with status N.
expect_status()
{
        local want=$1 rc=0
        shift
        "$@" >"$tmpdir/out.txt" 2>"$tmpdir/err" || rc=$?
        ((rc == want)) || { cat "$tmpdir/err" >&2; fail "'$*' exited $rc, expected $want"; }
}

# assert_contains FILE TEXT
assert_contains()
{
        grep -qF -- "$2" "$1" || { echo "--- $1:" >&2; cat "$1" >&2; fail "'$1' lacks '$2'"; }
}

# ---- The daemon -------------------------------------------------------------

runtime=$tmpdir/run
outdir=$tmpdir/out
sock=$runtime/control.sock
export SAVD_SOCK=$sock

# wait_ready [PID]: until the control socket answers (or savd dies).
wait_ready()
{
        local pid=${1:-$savd_pid} i
        for ((i = 0; i < 200; i++)); do
                kill -0 "$pid" 2>/dev/null || fail "savd exited during start-up"
                "$SAVCTL" --socket "$sock" version >/dev/null 2>&1 && return 0
                sleep 0.05
        done
        fail "savd did not answer on $sock"
}

kill_daemon()
{
        [[ -n $savd_pid ]] || return 0
        kill -KILL "$savd_pid" 2>/dev/null
        wait "$savd_pid" 2>/dev/null
        savd_pid=
}

# start_daemon [OPTIONS...]: savd --foreground in $runtime / $outdir.
start_daemon()
{
        start_daemon_args --runtime-dir "$runtime" --output-dir "$outdir" "$@"
}

# start_daemon_args OPTIONS...: the same with only these options (the
# runtime dir must still be $runtime for $sock).
start_daemon_args()
{
        mkdir -p "$runtime" "$outdir"
        "$SAVD" --foreground "$@" 2>>"$tmpdir/savd.log" &
        savd_pid=$!
        on_cleanup kill_daemon
        wait_ready
}

# wait_daemon: savd (told to stop already) must exit with status 0 within 10 s.
wait_daemon()
{
        local i rc=0
        for ((i = 0; i < 200; i++)); do
                kill -0 "$savd_pid" 2>/dev/null || break
                sleep 0.05
        done
        kill -0 "$savd_pid" 2>/dev/null && fail "savd did not stop within 10 s of SIGTERM"
        wait "$savd_pid" || rc=$?
        savd_pid=
        ((rc == 0)) || fail "savd exited with status $rc after SIGTERM"
}

# stop_daemon: SIGTERM must stop savd, with status 0, within 10 s.
stop_daemon()
{
        kill -TERM "$savd_pid"
        wait_daemon
}

# ---- Python control client --------------------------------------------------

read -r -d '' SAVD_PY_PRELUDE <<'PY' || true
import json, os, socket, sys, threading, time

SOCK = os.environ["SAVD_SOCK"]
TESTDATA = os.environ.get("SAVD_TESTDATA", "")
HANG_GUARD = 60         # seconds; only against hangs, never a measurement

class Ctl:
    """A control connection: send requests, read replies, collect events."""
    def __init__(self, path=SOCK, greet=True):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(HANG_GUARD)
        self.s.connect(path)
        self.buf = b""
        self.fds = []
        self.events = []
        self.next_id = 1
        if greet:
            g = self.read()
            assert "QMP" in g, f"no greeting: {g}"
            self.greeting = g

    def close(self):
        self.s.close()

    def send(self, data, fds=()):
        if isinstance(data, (dict, list)):
            data = json.dumps(data) + "\n"
        if isinstance(data, str):
            data = data.encode()
        if fds:
            socket.send_fds(self.s, [data], list(fds))
        else:
            self.s.sendall(data)

    def read(self):
        """The next message of any kind."""
        while b"\n" not in self.buf:
            data, fds, _, _ = socket.recv_fds(self.s, 65536, 8)
            self.fds += fds
            if not data:
                raise EOFError("savd closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def reply(self):
        """The next reply; events met on the way are kept."""
        while True:
            m = self.read()
            if "event" in m:
                self.events.append(m)
                continue
            return m

    def cmd(self, name, args=None, fds=()):
        req = {"execute": name, "id": self.next_id}
        self.next_id += 1
        if args is not None:
            req["arguments"] = args
        self.send(req, fds)
        r = self.reply()
        assert r.get("id") == req["id"], f"reply {r} does not answer {req}"
        return r

    def ok(self, name, args=None, fds=()):
        r = self.cmd(name, args, fds)
        assert "return" in r, f"{name} {args}: {r}"
        return r["return"]

    def err(self, name, args=None, cls=None, match=None, fds=()):
        r = self.cmd(name, args, fds)
        assert "error" in r, f"{name} {args}: expected an error, got {r}"
        e = r["error"]
        assert cls is None or e["class"] == cls, f"{name} {args}: class {e}, want {cls}"
        assert match is None or match in e["desc"], f"{name} {args}: '{e['desc']}' lacks '{match}'"
        return e

    def event(self, pred):
        """The first event (kept or new) for which pred(event) is true."""
        for i, e in enumerate(self.events):
            if pred(e):
                return self.events.pop(i)
        while True:
            m = self.read()
            if "event" not in m:
                raise AssertionError(f"unexpected message {m}")
            if pred(m):
                return m
            self.events.append(m)

    def job_event(self, name, job, status=None):
        return self.event(lambda e: e["event"] == name and e["data"]["id"] == job and
                          (status is None or e["data"].get("status") == status))

    def wait_job(self, job):
        """The job's final info, from its JOB_COMPLETED event."""
        return self.job_event("JOB_COMPLETED", job)["data"]

def data_path(uri):
    assert uri.startswith("unix:"), uri
    return uri[5:]

def push(target, src, pause_at=None, resume=None, chunk=65536):
    """Send the file src into target (a data URI or a connected socket);
    with pause_at, stop after that many bytes until resume (an Event) is
    set, or until savd closes the channel.  Returns the bytes sent."""
    if isinstance(target, str):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(data_path(target))
    else:
        s = target
    sent = 0
    try:
        with open(src, "rb") as f:
            while True:
                if pause_at is not None and sent >= pause_at:
                    if resume is None or not resume.wait(HANG_GUARD):
                        s.settimeout(HANG_GUARD)
                        s.recv(1)      # returns when savd shuts the channel
                        return sent
                    pause_at = None
                n = chunk if pause_at is None else min(chunk, pause_at - sent)
                b = f.read(n)
                if not b:
                    break
                s.sendall(b)
                sent += len(b)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(HANG_GUARD)
        s.recv(1)                     # savd closes when the job ends
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        s.close()
    return sent

def push_bytes(uri, data):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(data_path(uri))
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(HANG_GUARD)
        s.recv(1)
    except (BrokenPipeError, ConnectionResetError):
        pass
    s.close()

# Native protocol frames (proto/native.md): a 16-byte little-endian
# header (payload length, type, flags, descriptors, reserved), then the
# payload.
def native_frame(t, payload=b"", flags=0, nfds=0):
    import struct
    return struct.pack("<IHHII", len(payload), t, flags, nfds, 0) + payload

def native_read_frame(s):
    """(type, payload) of the next frame from socket s."""
    import struct
    hdr = b""
    while len(hdr) < 16:
        b = s.recv(16 - len(hdr))
        if not b:
            raise EOFError("savd closed the channel")
        hdr += b
    n, t = struct.unpack("<IH", hdr[:6])
    body = b""
    while len(body) < n:
        b = s.recv(n - len(body))
        assert b, "short frame"
        body += b
    return t, body
PY
export SAVD_PY_PRELUDE

# py CODE [ARGS...]: run CODE after the prelude above (sys.argv[1:] = ARGS);
# CODE "-" reads it from standard input (a quoted here-document).
py()
{
        local code=$1
        shift
        [[ $code != - ]] || code=$(cat)
        python3 -c "$SAVD_PY_PRELUDE"$'\n'"$code" "$@"
}

