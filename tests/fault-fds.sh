#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Descriptors a native client hands the real daemon are checked before
# savd maps them: as a block's memory a pipe, a socket, a directory, a
# memfd shorter than the block, a write-only descriptor; as a dirty bitmap
# a read-only file.  Each is refused with an ERROR frame and a failed job
# whose message names the descriptor's role and what is wrong with it; no
# file is created and the daemon goes on serving (a good save follows).
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires python3
export OUTDIR=$outdir TMPD=$tmpdir

start_daemon

py - <<'PY'
import struct
HELLO, BLOCK, START, DIRTY, SCAN, COMPLETE, REPLY, ERROR = 1, 2, 3, 4, 6, 8, 0x80, 0x81
PAGE, MIB = 4096, 1 << 20

frame, read_frame = native_frame, native_read_frame

def reply(s, req):
    t, body = read_frame(s)
    assert t == REPLY and struct.unpack("<H", body[:2])[0] == req, (t, body)

def memfd(size):
    fd = os.memfd_create("guest", os.MFD_CLOEXEC)
    os.ftruncate(fd, size)
    return fd

def attempt(c, name, block_fd=None, bitmap_fd=None):
    """A save whose block (or bitmap) descriptor is block_fd (bitmap_fd);
    returns the ERROR frame's text and the failed job's message."""
    r = c.ok("save", {"name": name, "output": name + ".mrm"})
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(HANG_GUARD)
    s.connect(data_path(r["data-uri"]))
    s.sendall(b"SAVDNAT1" + frame(HELLO, struct.pack("<IIQHHI", 1, PAGE, 0x2 | 0x4, 2, 0, 0) + b"vm"))
    reply(s, HELLO)
    fd = block_fd if block_fd is not None else memfd(MIB)
    socket.send_fds(s, [frame(BLOCK, struct.pack("<QQHHI", MIB, 0, 1, 0, 0) + b"a", nfds=1)], [fd])
    if bitmap_fd is not None:
        reply(s, BLOCK)
        s.sendall(frame(START))
        reply(s, START)
        socket.send_fds(s, [frame(DIRTY, struct.pack("<IIQ", 0, 0, 0), nfds=1)], [bitmap_fd])
    t, body = read_frame(s)
    assert t == ERROR, (name, t, body)
    code, n = struct.unpack("<IH", body[:6])
    text = body[8:8 + n].decode()
    s.close()
    info = c.wait_job(r["job"])
    assert info["state"] == "failed" and text in info["error"], (name, text, info)
    assert name + ".mrm" not in os.listdir(os.environ["OUTDIR"]), name
    print(f"{name}: errno {code}: {text}")
    return code, text

c = Ctl()
p = os.pipe()
code, text = attempt(c, "pipe", p[0])
assert code == 9 and "is not a memfd or regular file" in text and "'a'" in text, text
a, b = socket.socketpair()
code, text = attempt(c, "socket", a.fileno())
assert code == 9 and "is not a memfd or regular file" in text, text
d = os.open(os.environ["TMPD"], os.O_RDONLY | os.O_DIRECTORY)
code, text = attempt(c, "directory", d)
assert code == 9 and "is not a memfd or regular file" in text, text
code, text = attempt(c, "short", memfd(4 * PAGE))
assert code == 34 and "holds 16384 bytes, less than offset 0x0 + length 0x100000" in text, text
wo = os.open(f"/proc/self/fd/{memfd(MIB)}", os.O_WRONLY)
code, text = attempt(c, "writeonly", wo)
assert code == 9 and "is not open for reading" in text, text
path = os.path.join(os.environ["TMPD"], "bitmap")
with open(path, "wb") as f:
    f.truncate(PAGE)
ro = os.open(path, os.O_RDONLY)
code, text = attempt(c, "robitmap", bitmap_fd=ro)
assert code == 9 and "is not open for reading and writing" in text, text
assert any(j["name"] == "robitmap" for j in c.ok("query-jobs"))
PY

note "a good zero-copy save after all that"
"$SAVCTL" --socket "$sock" --json save good --output good.mrm >"$tmpdir/job.json"
read -r job uri < <(python3 -c 'import json, sys
r = json.load(open(sys.argv[1])); print(r["job"], r["data-uri"])' "$tmpdir/job.json")
"$top_builddir/tools/example-vmm" save "$uri" --mem 8 --quiet >/dev/null || fail "good save failed"
expect_status 0 "$SAVCTL" --socket "$sock" wait "$job"
expect_status 0 "$SAVCTL" verify "$outdir/good.mrm"
stop_daemon
