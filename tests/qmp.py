#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Minimal QMP client for savd's end-to-end tests and demo.

  qmp.py SOCKET COMMAND [JSON-ARGUMENTS] [--fd FILE-OR-FD]
  qmp.py SOCKET --wait-migration [--timeout S]   (source or destination)

Prints the "return" value as JSON; exits 1 with the error on stderr when
QEMU answers with an error.  --fd sends a descriptor with the command
(SCM_RIGHTS), as `getfd` needs.
"""
import argparse
import json
import os
import socket
import sys
import time


class QMP:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self._read()                    # greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, args=None, fd=None):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        data = json.dumps(msg).encode() + b"\n"
        if fd is not None:
            socket.send_fds(self.sock, [data], [fd])
        else:
            self.sock.sendall(data)
        while True:
            reply = self._read()
            if "event" in reply:
                continue
            if "error" in reply:
                raise RuntimeError(f"{name}: {reply['error'].get('desc')}")
            return reply.get("return")


def wait_migration(q, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = q.cmd("query-migrate")
        status = info.get("status", "none")
        if status == "completed":
            return info
        if status in ("failed", "cancelled"):
            raise RuntimeError(f"migration {status}: {info.get('error-desc', '')}")
        # A destination reports its state through query-status instead.
        if status == "none":
            st = q.cmd("query-status")
            if st.get("status") not in ("inmigrate", "prelaunch"):
                return {"status": "completed", "vm-status": st.get("status")}
        time.sleep(0.05)
    raise TimeoutError("migration did not finish in time")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("socket")
    ap.add_argument("command", nargs="?")
    ap.add_argument("arguments", nargs="?")
    ap.add_argument("--fd")
    ap.add_argument("--wait-migration", action="store_true")
    ap.add_argument("--timeout", type=float, default=300)
    a = ap.parse_args()
    q = QMP(a.socket)
    try:
        if a.wait_migration:
            print(json.dumps(wait_migration(q, a.timeout)))
            return 0
        fd = None
        if a.fd is not None:
            fd = int(a.fd) if a.fd.isdigit() else os.open(a.fd, os.O_RDWR)
        args = json.loads(a.arguments) if a.arguments else None
        print(json.dumps(q.cmd(a.command, args, fd)))
        return 0
    except (RuntimeError, TimeoutError, EOFError) as e:
        print(f"qmp: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
