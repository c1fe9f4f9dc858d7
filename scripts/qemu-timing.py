#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Time QEMU saves and restores through savd against QEMU's own ways.

Used by scripts/demo.sh (one save and restore, checked, with a short
report) and scripts/bench-qemu.sh (several rounds of every way, medians).
A running savd is expected (its control socket and output directory are
arguments); the guest RAM file is prepared by the caller.

  qemu-timing.py demo  --socket S --output-dir D --ram FILE --size-mib N --workdir W
  qemu-timing.py bench --socket S --output-dir D --ram FILE --size-mib N --workdir W [--runs N]

Every VM is a fresh paused QEMU (-S, -nic none, no display) whose RAM is a
shared memory-backend-file, started with KVM when /dev/kvm works.  Times
are wall-clock seconds measured here:
  save "QEMU done":   from `migrate` until QEMU reports it completed;
  save "durable":    until the data is on disk (savd: the job completed,
                     which happens after fdatasync; exec:cat: fsync of the
                     file after QEMU is done);
  restore:           from starting the incoming stream until the destination
                     QEMU has loaded it.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests"))
from qmp import QMP  # noqa: E402

QEMU = os.environ.get("QEMU", "qemu-system-x86_64")
POLL = 0.005                    # seconds between status polls
HANG_GUARD = 600                # seconds; only against hangs
BANDWIDTH = 100 << 30           # QEMU's own limit (128 MiB/s in 7.2) lifted
GiB = 1 << 30


def accel():
    try:
        r = subprocess.run([QEMU, "-accel", "kvm", "-machine", "none", "-nodefaults",
                            "-display", "none", "-S", "-monitor", "stdio"],
                           input=b"quit\n", capture_output=True, timeout=20)
        return "kvm" if r.returncode == 0 and os.access("/dev/kvm", os.W_OK) else "tcg"
    except (OSError, subprocess.TimeoutExpired):
        return "tcg"


class Savd:
    """A control-socket connection (proto/control.md)."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(HANG_GUARD)
        self.s.connect(path)
        self.buf = b""
        self._read()                    # greeting

    def _read(self):
        while b"\n" not in self.buf:
            data = self.s.recv(65536)
            if not data:
                raise EOFError("savd closed the control connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, args):
        self.s.sendall(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        while True:
            m = self._read()
            if "event" in m:
                continue
            if "error" in m:
                raise RuntimeError(f"savd {name}: {m['error']['desc']}")
            return m["return"]

    def wait_job(self, job):
        """Poll until the job ends; returns its info."""
        deadline = time.monotonic() + HANG_GUARD
        while time.monotonic() < deadline:
            info = self.cmd("query-job", {"job": job})
            if info["state"] in ("completed", "failed", "cancelled"):
                return info
            time.sleep(POLL)
        raise TimeoutError(f"savd job {job} did not end")


class VM:
    running = []                # stopped at exit whatever happened

    def __init__(self, work, name, ram, size_mib, accel_, *extra):
        self.qmp_path = os.path.join(work, name + ".qmp")
        for p in (self.qmp_path,):
            if os.path.exists(p):
                os.unlink(p)
        if not os.path.exists(ram):
            with open(ram, "wb") as f:
                f.truncate(size_mib << 20)
        self.err = open(os.path.join(work, name + ".err"), "wb")
        self.p = subprocess.Popen(
            [QEMU, "-machine", f"q35,accel={accel_}", "-m", f"{size_mib}M",
             "-object", f"memory-backend-file,id=m0,size={size_mib}M,mem-path={ram},share=on",
             "-machine", "memory-backend=m0", "-nic", "none", "-vga", "none",
             "-display", "none", "-nodefaults", "-S",
             "-qmp", f"unix:{self.qmp_path},server=on,wait=off", *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.err)
        VM.running.append(self)
        for _ in range(200):
            if os.path.exists(self.qmp_path):
                break
            if self.p.poll() is not None:
                raise RuntimeError(f"QEMU {name} exited: see {self.err.name}")
            time.sleep(0.05)
        self.q = QMP(self.qmp_path)

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self.err.close()
        if self in VM.running:
            VM.running.remove(self)

    def migrate(self, uri):
        """QEMU's own time for the migration (ms) and the wall time."""
        self.q.cmd("migrate-set-parameters", {"max-bandwidth": BANDWIDTH})
        t0 = time.monotonic()
        self.q.cmd("migrate", {"uri": uri})
        while True:
            info = self.q.cmd("query-migrate")
            if info.get("status") == "completed":
                return time.monotonic() - t0, info
            if info.get("status") in ("failed", "cancelled"):
                raise RuntimeError(f"migration {info.get('status')}: {info.get('error-desc', '')}")
            if time.monotonic() - t0 > HANG_GUARD:
                raise TimeoutError("migration did not finish")
            time.sleep(POLL)

    def wait_loaded(self, t0):
        """Until the destination has loaded the incoming stream."""
        while True:
            st = self.q.cmd("query-status")["status"]
            if st != "inmigrate":
                if st in ("paused", "prelaunch", "running", "postmigrate"):
                    return time.monotonic() - t0
                raise RuntimeError(f"destination ended in state {st}")
            if self.p.poll() is not None:
                raise RuntimeError(f"destination QEMU exited: see {self.err.name}")
            if time.monotonic() - t0 > HANG_GUARD:
                raise TimeoutError("incoming migration did not finish")
            time.sleep(POLL)


class Bench:
    def __init__(self, a):
        self.a = a
        self.accel = accel()
        self.savd = Savd(a.socket)
        self.dst_ram = os.path.join(os.path.dirname(a.ram), "dst.ram")
        self.stream = os.path.join(a.output_dir, "qemu-exec-cat.stream")
        self.n = 0

    def vm(self, name, ram, *extra):
        return VM(self.a.workdir, name, ram, self.a.size_mib, self.accel, *extra)

    def fresh_dst(self, *extra):
        if os.path.exists(self.dst_ram):
            os.unlink(self.dst_ram)
        return self.vm("dst", self.dst_ram, *extra)

    # ---- saves ----

    def save_discard(self):
        sock = os.path.join(self.a.workdir, "discard.sock")
        if os.path.exists(sock):
            os.unlink(sock)
        sink = subprocess.Popen(["socat", "-b", "262144", "-u", f"UNIX-LISTEN:{sock}",
                                 "OPEN:/dev/null"])
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.01)
        vm = self.vm("src", self.a.ram)
        try:
            t, _ = vm.migrate(f"unix:{sock}")
        finally:
            vm.stop()
            sink.wait()
        return {"qemu": t}

    def save_cat(self):
        if os.path.exists(self.stream):
            os.unlink(self.stream)
        vm = self.vm("src", self.a.ram)
        try:
            t0 = time.monotonic()
            t, _ = vm.migrate(f"exec:cat > {self.stream}")
            fd = os.open(self.stream, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
            durable = time.monotonic() - t0
        finally:
            vm.stop()
        return {"qemu": t, "durable": durable, "size": os.path.getsize(self.stream)}

    def save_savd(self, name):
        path = os.path.join(self.a.output_dir, name)
        if os.path.exists(path):
            os.unlink(path)
        vm = self.vm("src", self.a.ram)
        try:
            r = self.savd.cmd("save", {"name": "bench", "output": name})
            t0 = time.monotonic()
            t, _ = vm.migrate(r["data-uri"])
            info = self.savd.wait_job(r["job"])
            durable = time.monotonic() - t0
        finally:
            vm.stop()
        if info["state"] != "completed":
            raise RuntimeError(f"savd save {info['state']}: {info['error']}")
        st = os.stat(path)
        return {"qemu": t, "durable": durable, "size": st.st_size, "allocated": st.st_blocks * 512,
                "io-mode": info["io-mode"]}

    # ---- restores ----

    def restore_cat(self):
        with open(self.stream, "rb") as f:          # into the page cache
            while f.read(8 << 20):
                pass
        vm = self.fresh_dst("-incoming", "defer")
        try:
            t0 = time.monotonic()
            vm.q.cmd("migrate-incoming", {"uri": f"exec:cat {self.stream}"})
            return {"load": vm.wait_loaded(t0)}
        finally:
            vm.stop()

    def restore_savd(self, name, keep=False):
        sock = os.path.join(self.a.workdir, "in.sock")
        if os.path.exists(sock):
            os.unlink(sock)
        vm = self.fresh_dst("-incoming", "defer")
        try:
            vm.q.cmd("migrate-incoming", {"uri": f"unix:{sock}"})
            t0 = time.monotonic()
            r = self.savd.cmd("restore", {"file": name, "to": f"unix:{sock}"})
            t = vm.wait_loaded(t0)
            info = self.savd.wait_job(r["job"])
            if info["state"] != "completed":
                raise RuntimeError(f"savd restore {info['state']}: {info['error']}")
        finally:
            if not keep:
                vm.stop()
        return {"load": t, "vm": vm}


def same_ram(a, b):
    return subprocess.run(["cmp", "-s", a, b]).returncode == 0


def gib_s(size, t):
    return size / GiB / t if t > 0 else float("inf")


def demo(a):
    b = Bench(a)
    size = a.size_mib << 20
    print(f"savd demo: a paused {a.size_mib} MiB QEMU guest (half random, half zero), "
          f"{b.accel}, files in {a.output_dir}", flush=True)
    # QEMU's own save first: the first migration of a freshly written guest
    # RAM file is the slowest on some hosts, and savd's first save already
    # pays for faulting in its buffers.
    print("  QEMU's own migrate \"exec:cat > FILE\" to the same disk ...", flush=True)
    c = b.save_cat()
    os.unlink(b.stream)
    print("  saving through savd ...", flush=True)
    s = b.save_savd("demo.mrm")
    v = subprocess.run([a.savctl, "verify", os.path.join(a.output_dir, "demo.mrm")],
                       capture_output=True, text=True)
    if v.returncode != 0:
        raise RuntimeError(f"savctl verify failed: {v.stdout}{v.stderr}")
    print("  " + v.stdout.strip(), flush=True)
    print("  restoring through savd into a fresh QEMU ...", flush=True)
    r = b.restore_savd("demo.mrm", keep=True)
    ok = same_ram(a.ram, b.dst_ram)
    r["vm"].stop()
    if not ok:
        raise RuntimeError("guest RAM differs after the restore")
    print("  guest RAM after the restore: identical", flush=True)
    os.unlink(os.path.join(a.output_dir, "demo.mrm"))
    print()
    print(f"  save through savd:        {s['durable']:6.2f} s  {gib_s(size, s['durable']):5.2f} GiB/s of RAM"
          f"   (QEMU done after {s['qemu']:.2f} s; on disk, fdatasync'ed; io {s['io-mode']})")
    print(f"  restore through savd:     {r['load']:6.2f} s  {gib_s(size, r['load']):5.2f} GiB/s of RAM"
          f"   (until QEMU had loaded it)")
    print(f"  file: {s['size'] / GiB:.2f} GiB for {a.size_mib / 1024:.2f} GiB of RAM, "
          f"{s['allocated'] / GiB:.2f} GiB allocated (zero pages are holes)")
    print(f"  QEMU exec:cat > FILE:     {c['qemu']:6.2f} s  {gib_s(size, c['qemu']):5.2f} GiB/s of RAM"
          f"   (QEMU done; {c['durable']:.2f} s until fsync'ed; stream {c['size'] / GiB:.2f} GiB)")


def bench(a):
    b = Bench(a)
    size = a.size_mib << 20
    res = {k: [] for k in ("discard", "cat", "savd", "load-cat", "load-savd")}
    print(f"QEMU benchmark: {a.size_mib} MiB guest (half random, half zero), "
          f"{subprocess.run([QEMU, '--version'], capture_output=True, text=True).stdout.splitlines()[0]}, "
          f"{b.accel}, files in {a.output_dir}, {a.runs} rounds", flush=True)
    for i in range(a.runs):
        # Interleaved, so that a noisy moment hits every way alike.
        res["discard"].append(b.save_discard())
        res["cat"].append(b.save_cat())
        res["savd"].append(b.save_savd("bench.mrm"))
        res["load-cat"].append(b.restore_cat())
        r = b.restore_savd("bench.mrm", keep=i == 0)
        if i == 0:
            ok = same_ram(a.ram, b.dst_ram)
            r["vm"].stop()
            if not ok:
                raise RuntimeError("guest RAM differs after the savd restore")
        del r["vm"]
        res["load-savd"].append(r)
        print(f"  round {i + 1}: discard {res['discard'][-1]['qemu']:.2f} s, "
              f"exec:cat {res['cat'][-1]['qemu']:.2f} s (durable {res['cat'][-1]['durable']:.2f}), "
              f"savd {res['savd'][-1]['qemu']:.2f} s (durable {res['savd'][-1]['durable']:.2f}); "
              f"load exec:cat {res['load-cat'][-1]['load']:.2f} s, savd {res['load-savd'][-1]['load']:.2f} s",
              flush=True)
    for f in (b.stream, os.path.join(a.output_dir, "bench.mrm")):
        if os.path.exists(f):
            os.unlink(f)

    def med(k, f):
        return statistics.median(x[f] for x in res[k])
    d, c, s = med("discard", "qemu"), med("cat", "qemu"), med("savd", "qemu")
    cd, sd = med("cat", "durable"), med("savd", "durable")
    lc, ls = med("load-cat", "load"), med("load-savd", "load")
    out = {
        "size-mib": a.size_mib, "rounds": a.runs, "accel": b.accel,
        "save": {"discard": d, "exec-cat": c, "exec-cat-durable": cd, "savd": s, "savd-durable": sd,
                 "savd-io-mode": res["savd"][0]["io-mode"]},
        "restore": {"exec-cat-page-cache": lc, "savd": ls},
        "ratios": {"savd/discard": s / d, "savd/exec-cat": s / c, "restore savd/exec-cat": ls / lc},
    }
    print()
    print(f"medians of {a.runs} rounds ({a.size_mib} MiB guest):")
    print("  save                          QEMU done   GiB/s   durable")
    print(f"    QEMU -> discarding socket  {d:8.2f} s  {gib_s(size, d):6.2f}         -")
    print(f"    QEMU -> exec:cat > FILE    {c:8.2f} s  {gib_s(size, c):6.2f}  {cd:6.2f} s (+fsync)")
    print(f"    QEMU -> savd               {s:8.2f} s  {gib_s(size, s):6.2f}  {sd:6.2f} s (job completed)")
    print(f"    savd / discard = {s / d:.2f} (target <= 1.10); savd / exec:cat = {s / c:.2f} (target < 1); "
          f"durable: savd / exec:cat+fsync = {sd / cd:.2f}")
    print("  restore (until QEMU has loaded the guest)")
    print(f"    QEMU -incoming exec:cat FILE (page cache)  {lc:6.2f} s  {gib_s(size, lc):6.2f} GiB/s")
    print(f"    savd -> QEMU -incoming unix:SOCK          {ls:6.2f} s  {gib_s(size, ls):6.2f} GiB/s")
    print(f"    savd / exec:cat = {ls / lc:.2f} (target <= 1.10)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("demo", "bench"))
    ap.add_argument("--socket", required=True)
    ap.add_argument("--output-dir", required=True)
    ap.add_argument("--ram", required=True)
    ap.add_argument("--size-mib", type=int, required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--savctl", default="savctl")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args()
    try:
        demo(a) if a.mode == "demo" else bench(a)
    except (RuntimeError, TimeoutError, EOFError, OSError) as e:
        print(f"qemu-timing: {e}", file=sys.stderr)
        return 1
    finally:
        for vm in list(VM.running):
            vm.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
