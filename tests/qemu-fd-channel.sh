#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The fd data channel with a real QEMU: savd hands back one end of a
# socketpair with the `save` reply ("channel": "fd"), management passes it
# to QEMU with `getfd` and QEMU migrates to `fd:NAME` — savd needs no
# socket path QEMU can reach.  The restore goes to a QEMU started with
# `-incoming defer` that is told `migrate-incoming unix:SOCK` afterwards.
# Guest RAM must come back byte for byte.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/vm-functions.sh"
requires python3 "$QEMU" cmp
SIZE_MIB=256

ramdir=$(vm_ram_dir)
on_cleanup "rm -rf '$ramdir'"
start_daemon
export VM_ACCEL=${VM_ACCEL:-$(vm_accel)} TESTS_DIR=$top_srcdir/tests

truncate -s ${SIZE_MIB}M "$ramdir/src.ram"
vm_fill_ram "$ramdir/src.ram" $SIZE_MIB
on_cleanup vm_stop src
vm_start src "$ramdir/src.ram" ${SIZE_MIB}M

note "save: the channel fd goes from savd to QEMU (getfd + migrate fd:savd)"
py - "$tmpdir/src.qmp" <<'PY'
sys.path.insert(0, os.environ["TESTS_DIR"])
from qmp import QMP, wait_migration
c = Ctl()
n = len(c.fds)
r = c.ok("save", {"name": "fdvm", "output": "fdvm.mrm", "channel": "fd"})
assert r["data-fd"] is True and len(c.fds) == n + 1, r
ch = c.fds.pop()
q = QMP(sys.argv[1])
q.cmd("getfd", {"fdname": "savd"}, fd=ch)
os.close(ch)                       # QEMU holds its own copy now
q.cmd("migrate-set-parameters", {"max-bandwidth": 100 << 30})
q.cmd("migrate", {"uri": "fd:savd"})
info = c.wait_job(r["job"])
assert info["state"] == "completed", info
assert info["channel"] == "fd" and info["data-uri"] is None and info["protocol"] == "qemu", info
assert wait_migration(q, HANG_GUARD)["status"] == "completed"
PY
expect_status 0 "$SAVCTL" verify "$outdir/fdvm.mrm"

note "restore into QEMU -incoming defer, then migrate-incoming unix:SOCK"
on_cleanup vm_stop dst
vm_start dst "$ramdir/dst.ram" ${SIZE_MIB}M -incoming defer
vm_qmp dst migrate-incoming "{\"uri\": \"unix:$tmpdir/in.sock\"}" >/dev/null
vm_wait_socket "$tmpdir/in.sock"
expect_status 0 "$SAVCTL" --socket "$sock" restore fdvm.mrm --to "unix:$tmpdir/in.sock" --wait
vm_qmp dst --wait-migration >/dev/null || fail "the destination did not load the stream"
cmp "$ramdir/src.ram" "$ramdir/dst.ram" || fail "guest RAM differs after the restore"
stop_daemon
