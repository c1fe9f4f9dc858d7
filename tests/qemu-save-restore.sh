#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A real QEMU saved through savd and restored through savd: a paused 1 GiB
# guest whose RAM holds random, zero, repeated and sparse regions migrates
# to the job's data socket (`migrate unix:<data-uri>`); the file must pass
# `savctl verify`, stay within RAM size plus the per-block overhead, keep
# zero pages as holes, and restore (`savctl restore --to unix:SOCK`) into a
# fresh QEMU started with `-incoming unix:SOCK` so that the guest RAM is
# byte for byte what it was.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/vm-functions.sh"
requires python3 "$QEMU" cmp
SIZE_MIB=1024

ramdir=$(vm_ram_dir)
on_cleanup "rm -rf '$ramdir'"
start_daemon

export VM_ACCEL=${VM_ACCEL:-$(vm_accel)}
note "boot a paused ${SIZE_MIB} MiB guest ($VM_ACCEL)"
truncate -s ${SIZE_MIB}M "$ramdir/src.ram"
vm_fill_ram "$ramdir/src.ram" $SIZE_MIB
on_cleanup vm_stop src
vm_start src "$ramdir/src.ram" ${SIZE_MIB}M

note "save through savd: migrate unix:<data-uri>"
savd_save vm1 vm1.mrm
[[ $uri == unix:$runtime/jobs/$job.sock ]] || fail "unexpected data URI '$uri'"
vm_migrate src "$uri" >"$tmpdir/migrate.json" || fail "QEMU's migration failed"
expect_status 0 "$SAVCTL" --socket "$sock" wait "$job"

note "the job and the file"
py - "$job" <<'PY'
c = Ctl()
info = c.ok("query-job", {"job": int(sys.argv[1])})
assert info["state"] == "completed" and info["error"] is None, info
assert info["protocol"] == "qemu", info
assert info["io-mode"] in ("direct", "buffered", "buffered+dontcache"), info
assert info["pages-written"] > 0 and info["pages-zero"] > 0, info
assert info["bytes-written"] == info["pages-written"] * 4096, info
PY
expect_status 0 "$SAVCTL" verify "$outdir/vm1.mrm"
"$SAVCTL" inspect --json "$outdir/vm1.mrm" >"$tmpdir/inspect.json"
python3 - "$outdir/vm1.mrm" "$tmpdir/inspect.json" $SIZE_MIB <<'PY'
import json, os, sys
path, info, mib = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3])
st = os.stat(path)
ram = info["total-bytes"]                         # every block's used length
assert ram >= mib << 20, ram
# Per block: its record, header and bitmap, and at most 1 MiB of alignment;
# then the RAM tail, device state and vmdesc.
overhead = sum(1 << 20 for b in info["blocks"]) + st.st_size - info["device-offset"]
assert st.st_size <= ram + overhead, (st.st_size, ram, overhead)
# Zero regions are holes: a quarter of this guest's RAM is zero.  (The
# zeros between the data of its "every 7th page" quarter are written as
# zeros, in large writes, and stay allocated.)
assert st.st_blocks * 512 < 0.80 * ram, (st.st_blocks * 512, ram)
m0 = info["blocks"][0]
assert m0["name"] == "m0" and m0["used-length"] == mib << 20, m0
assert m0["pages-zero"] > 0.40 * m0["num-pages"], m0
print(f"file {st.st_size} bytes for {ram} bytes of RAM, {st.st_blocks * 512} allocated")
PY

note "restore through savd into a fresh QEMU (-incoming unix:SOCK)"
on_cleanup vm_stop dst
vm_start dst "$ramdir/dst.ram" ${SIZE_MIB}M -incoming "unix:$tmpdir/in.sock"
vm_wait_socket "$tmpdir/in.sock"
expect_status 0 "$SAVCTL" --socket "$sock" restore vm1.mrm --to "unix:$tmpdir/in.sock" --wait
vm_qmp dst --wait-migration >/dev/null || fail "the destination did not load the stream"
vm_qmp dst query-status >"$tmpdir/status.json"
assert_contains "$tmpdir/status.json" '"running": false'
cmp "$ramdir/src.ram" "$ramdir/dst.ram" || fail "guest RAM differs after the restore"

note "the restore job's figures"
py - <<'PY'
c = Ctl()
info = [j for j in c.ok("query-jobs") if j["type"] == "restore"][0]
assert info["state"] == "completed", info
assert info["bytes"] == info["total-bytes"] > 0, info
assert info["protocol"] == "qemu" and info["io-mode"].split("+")[0] in ("direct", "buffered"), info
PY
stop_daemon
