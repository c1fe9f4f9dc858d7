#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The reference files from real QEMU ($SAVD_TESTDATA, see its README) with
# a real QEMU 7.2 on the other end:
#  - the mapped-ram file QEMU 10.2 wrote restores through savd (the file
#    handed over as a descriptor) into QEMU 7.2 started as the README says,
#    and the guest RAM hashes to the README's sha256;
#  - the QEMU 7.2 stream of the same guest saved through savd gives a file
#    laid out like QEMU 10.2's, block for block, which restores into QEMU
#    7.2 with the same hash.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/vm-functions.sh"
requires python3 "$QEMU" sha256sum
q10=$SAVD_TESTDATA/q10-mapped-ram.mrm
q72=$SAVD_TESTDATA/q72-legacy.stream
[[ -r $q10 && -r $q72 ]] || skip "no reference files in '$SAVD_TESTDATA'"
want=3a0212fd9f36fde37668c810952b5bc350dd87b852f52d90cefbe1bcaaa0fd40

ramdir=$(vm_ram_dir)
on_cleanup "rm -rf '$ramdir'"
start_daemon
# The guest of the README: -machine pc-q35-7.2 -m 32 -nic none -vga none -S,
# RAM in memory-backend-file m0, QEMU's default devices.
export VM_ACCEL=${VM_ACCEL:-$(vm_accel)} VM_MACHINE=pc-q35-7.2 VM_DEFAULT_DEVICES=1

# restore_into NAME ARGS-FOR-THE-RESTORE-COMMAND: a fresh QEMU 7.2 loads
# what savd sends; its RAM must hash to the README's value.
restore_into()
{
        local name=$1; shift
        on_cleanup vm_stop "$name"
        vm_start "$name" "$ramdir/$name.ram" 32M -incoming "unix:$tmpdir/$name.sock"
        vm_wait_socket "$tmpdir/$name.sock"
        py - "$tmpdir/$name.sock" "$@" <<'PY'
sock, file = sys.argv[1], sys.argv[2]
c = Ctl()
args = {"to": "unix:" + sock}
if file.startswith("/"):
    fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
    r = c.ok("restore", dict(args, file="fd"), fds=[fd])
    os.close(fd)
else:
    r = c.ok("restore", dict(args, file=file))
info = c.wait_job(r["job"])
assert info["state"] == "completed", info
assert info["bytes"] == info["total-bytes"], info
PY
        vm_qmp "$name" --wait-migration >/dev/null || fail "QEMU did not load the stream"
        local got
        got=$(sha256sum <"$ramdir/$name.ram" | cut -d' ' -f1)
        [[ $got == "$want" ]] || fail "$name: guest RAM hashes to $got, expected $want"
        vm_stop "$name"
}

note "QEMU 10.2's mapped-ram file restores into QEMU 7.2 ($VM_ACCEL)"
restore_into from-q10 "$q10"

note "QEMU 7.2's stream, saved through savd, is laid out like QEMU 10.2's file"
savd_save q72 q72.mrm
py - "$uri" "$q72" <<'PY'
push(sys.argv[1], sys.argv[2])
PY
expect_status 0 "$SAVCTL" --socket "$sock" wait "$job"
"$SAVCTL" inspect --json "$outdir/q72.mrm" >"$tmpdir/ours.json"
"$SAVCTL" inspect --json "$q10" >"$tmpdir/qemu.json"
python3 - "$tmpdir/ours.json" "$tmpdir/qemu.json" <<'PY'
import json, sys
ours, qemu = (json.load(open(p)) for p in sys.argv[1:3])
assert ours["valid"] and ours["machine"] == qemu["machine"] == "pc-q35-7.2", ours
assert ours["capabilities"] == qemu["capabilities"] == ["mapped-ram"], ours
assert len(ours["blocks"]) == len(qemu["blocks"]) == 6
for a, b in zip(ours["blocks"], qemu["blocks"]):
    for k in ("name", "used-length", "page-size", "num-pages", "bitmap-size"):
        assert a[k] == b[k], (k, a, b)
    for k in ("bitmap-offset", "pages-offset", "end-offset"):
        assert a[k] - a["header-offset"] == b[k] - b["header-offset"], (k, a, b)
    # pc.bios holds each QEMU version's own firmware.
    if a["name"] != "pc.bios":
        assert (a["pages-present"], a["pages-zero"]) == (b["pages-present"], b["pages-zero"]), (a, b)
PY

note "and restores into QEMU 7.2 to the same guest RAM"
restore_into from-q72 q72.mrm
stop_daemon
