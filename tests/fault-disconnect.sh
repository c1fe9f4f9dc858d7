#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A data client that goes away at every phase of a save.  For the QEMU
# stream, prefixes of the real QEMU 7.2 stream ($SAVD_TESTDATA/
# q72-legacy.stream) cut where a parse of it says each phase starts or
# ends: no byte at all, inside and right after the magic, inside the
# configuration record, inside the block list, inside a page, after the
# last page before the EOS record, before the device tail, and inside the
# vmdesc trailer; cut after the EOF byte (no vmdesc, which is optional) the
# stream must give a file that verifies.  For the native
# protocol, a client written here frame by frame stops before the first
# byte, inside the magic, after it, after HELLO, after BLOCK, after START,
# inside a PAGES frame, after the pages, after DEVICE_STATE (before
# COMPLETE).  Every time the job fails with a message, nothing appears
# under the final name and no temporary file is left, and the daemon
# answers query-jobs; at the end the whole stream and the whole native
# exchange still give files that verify.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires python3
stream=$SAVD_TESTDATA/q72-legacy.stream
[[ -r $stream ]] || skip "no $stream"
export STREAM=$stream OUTDIR=$outdir

start_daemon

read -r -d '' CUT_LIB <<'PY' || true
import struct

def no_leftovers(name):
    left = os.listdir(os.environ["OUTDIR"])
    assert name not in left, f"{name} exists after a failed save: {left}"
    assert not [f for f in left if f.startswith(".")], f"temporary files left: {left}"

def check_failed(c, job, what):
    info = c.wait_job(job)
    assert info["state"] == "failed", (what, info)
    assert info["error"], (what, info)
    assert any(j["id"] == job for j in c.ok("query-jobs")), what
    print(f"{what}: {info['error']}")
    return info
PY
export CUT_LIB

note "QEMU stream cut at each phase"
py - <<'PY'
exec(os.environ["CUT_LIB"])
data = open(os.environ["STREAM"], "rb").read()

def qemu_phases(d):
    """Offsets inside the stream where its phases begin, from a walk of it."""
    cuts = {"no byte": 0, "inside the magic": 2, "after the magic": 4, "after the header": 8}
    assert d[:8] == b"QEVM\0\0\0\3" and d[8] == 0x07
    cuts["inside the configuration"] = 8 + 5 + struct.unpack(">I", d[9:13])[0] // 2
    p = 13 + struct.unpack(">I", d[9:13])[0]
    ram_id, page_cut, last_eos, paged = None, None, None, False
    while True:
        t = d[p]
        if t in (1, 4):
            sid, n = struct.unpack(">IB", d[p + 1:p + 6])
            name = d[p + 6:p + 6 + n]
            if name != b"ram":
                cuts["before the device tail"] = p
                break
            ram_id, p = sid, p + 6 + n + 8
        elif t in (2, 3):
            assert struct.unpack(">I", d[p + 1:p + 5])[0] == ram_id
            p += 5
        elif t == 8:
            p += 5 + struct.unpack(">H", d[p + 3:p + 5])[0]
            continue
        else:
            raise AssertionError(f"unexpected byte {t:#x} at {p}")
        while True:                              # RAM records up to EOS
            w = struct.unpack(">Q", d[p:p + 8])[0]
            flags, rec = w & 0xfff, p
            p += 8
            if flags & 0x004:
                total = w & ~0xfff
                cuts["inside the block list"] = p + 3
                while total:
                    n = d[p]
                    total -= struct.unpack(">Q", d[p + 1 + n:p + 9 + n])[0]
                    p += 9 + n
                continue
            if flags & 0x010:
                if paged:                        # the EOS right after the last page
                    last_eos, paged = rec, False
                p += 5                           # EOS, then the footer
                assert d[p - 5] == 0x7e
                break
            if not flags & 0x020:
                p += 1 + d[p]
            if flags & 0x002:
                p += 1
            elif flags & 0x008:
                page_cut, paged = page_cut or p + 1000, True
                p += 4096
            else:
                raise AssertionError(f"record {w:#x} at {rec}")
    cuts["inside a page"] = page_cut
    cuts["after the last page, before EOS"] = last_eos
    # The vmdesc trailer: 0x06 be32 len JSON, closing the stream.
    for q in range(len(d) - 6, 0, -1):
        if d[q] == 0x06 and q + 5 + struct.unpack(">I", d[q + 1:q + 5])[0] == len(d):
            assert d[q - 1] == 0x00
            cuts["after EOF, before the vmdesc"] = q
            cuts["inside the vmdesc"] = q + 5 + (len(d) - q - 5) // 2
            break
    return cuts

cuts = qemu_phases(data)
assert len(cuts) == 11, cuts
assert len(set(cuts.values())) == len(cuts), cuts      # each phase its own offset
cuts = dict(sorted(cuts.items(), key=lambda kv: kv[1]))
c = Ctl()
for i, (what, off) in enumerate(cuts.items()):
    name = f"cut{i}.mrm"
    r = c.ok("save", {"name": f"cut{i}", "output": name})
    push_bytes(r["data-uri"], data[:off])
    if what.startswith("after EOF"):
        # The vmdesc trailer is optional (machines with suppress-vmdesc
        # have none): this prefix is a whole stream and must be saved.
        info = c.wait_job(r["job"])
        assert info["state"] == "completed", info
        print(f"{what} ({off} bytes): {info['state']}")
        continue
    check_failed(c, r["job"], f"{what} ({off} bytes)")
    no_leftovers(name)
r = c.ok("save", {"name": "whole", "output": "whole.mrm"})
push_bytes(r["data-uri"], data)
info = c.wait_job(r["job"])
assert info["state"] == "completed", info
PY
expect_status 0 "$SAVCTL" verify "$outdir/whole.mrm"
expect_status 0 "$SAVCTL" verify "$outdir/cut9.mrm"      # the stream without its vmdesc

note "native protocol cut at each phase"
py - <<'PY'
exec(os.environ["CUT_LIB"])
HELLO, BLOCK, START, PAGES, DEVICE_STATE, COMPLETE, REPLY, ERROR = 1, 2, 3, 5, 7, 8, 0x80, 0x81
MAGIC = b"SAVDNAT1"
PAGE = 4096
NPAGES = 64                                      # one 256 KiB block
mem = bytes((i * 13 + 1) & 0xff for i in range(256)) * (NPAGES * PAGE // 256)

frame, read_frame = native_frame, native_read_frame

def pages_frame(first, n):
    mask = bytes((n + 7) // 8)                   # no zero page
    return frame(PAGES, struct.pack("<IIQ", 0, n, first) + mask +
                 mem[first * PAGE:(first + n) * PAGE])

def expect_reply(s, req):
    t, body = read_frame(s)
    assert t == REPLY, (t, body)
    assert struct.unpack("<H", body[:2])[0] == req, body

# The whole exchange, each step with the reply it waits for (or None).
steps = [
    ("inside the magic", MAGIC[:4], None),
    ("after the magic", MAGIC[4:], None),
    ("inside HELLO", frame(HELLO, struct.pack("<IIQHHI", 1, PAGE, 0x1 | 0x8, 2, 0, 0) + b"vm")[:20], None),
    ("after HELLO", frame(HELLO, struct.pack("<IIQHHI", 1, PAGE, 0x1 | 0x8, 2, 0, 0) + b"vm")[20:], HELLO),
    ("after BLOCK", frame(BLOCK, struct.pack("<QQHHI", NPAGES * PAGE, 0, 4, 0, 0) + b"ram0"), BLOCK),
    ("after START", frame(START), START),
    ("inside PAGES", pages_frame(0, 32)[:16 + 16 + 4 + 5000], None),
    ("after the pages", pages_frame(0, 32)[16 + 16 + 4 + 5000:] + pages_frame(32, 32), None),
    ("after DEVICE_STATE, before COMPLETE", frame(DEVICE_STATE, b"devstate" * 100), DEVICE_STATE),
]

def run(c, name, stop):
    """A save that sends steps[:stop] and goes away; stop None: all, then COMPLETE."""
    r = c.ok("save", {"name": name, "output": name + ".mrm"})
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(HANG_GUARD)
    s.connect(data_path(r["data-uri"]))
    for _, data, reply in steps[:stop]:
        s.sendall(data)
        if reply is not None:
            expect_reply(s, reply)
    if stop is None:
        s.sendall(frame(COMPLETE))
        expect_reply(s, COMPLETE)
    s.close()
    return r["job"]

c = Ctl()
for i in range(len(steps) + 1):
    job = run(c, f"nat{i}", i)
    check_failed(c, job, steps[i - 1][0] if i else "before the first byte")
    no_leftovers(f"nat{i}.mrm")
job = run(c, "natwhole", None)
info = c.wait_job(job)
assert info["state"] == "completed" and info["protocol"] == "native", info
PY
expect_status 0 "$SAVCTL" verify "$outdir/natwhole.mrm"
"$SAVCTL" inspect "$outdir/natwhole.mrm" >"$tmpdir/inspect.txt"
assert_contains "$tmpdir/inspect.txt" "device state 800 bytes"

stop_daemon
