#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A QEMU that dies in the middle: killed (SIGKILL) during a save, the job
# fails with a message saying the stream ended early and no file appears
# under the output's name; killed during a restore, the restore job fails
# saying the VMM went away.  Either way the daemon goes on serving: a new
# save completes and verifies.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/vm-functions.sh"
requires python3 "$QEMU"
SIZE_MIB=256
stream=$SAVD_TESTDATA/q72-legacy.stream

ramdir=$(vm_ram_dir)
on_cleanup "rm -rf '$ramdir'"
start_daemon
export VM_ACCEL=${VM_ACCEL:-$(vm_accel)} OUTDIR=$outdir

truncate -s ${SIZE_MIB}M "$ramdir/src.ram"
vm_fill_ram "$ramdir/src.ram" $SIZE_MIB
on_cleanup vm_stop src
vm_start src "$ramdir/src.ram" ${SIZE_MIB}M

note "QEMU killed mid-save: the job fails, no file"
savd_save victim victim.mrm
# Slow enough (about 140 MiB of data at 32 MB/s) to be caught mid-way.
vm_qmp src migrate-set-parameters '{"max-bandwidth": 32000000}' >/dev/null
vm_qmp src migrate "{\"uri\": \"$uri\"}" >/dev/null
py - "$job" "$(vm_pid src)" <<'PY'
job, qemu = int(sys.argv[1]), int(sys.argv[2])
c = Ctl()
info = c.ok("query-job", {"job": job})
if info["bytes"] < (1 << 20):
    c.event(lambda e: e["event"] == "JOB_PROGRESS" and e["data"]["id"] == job and
            e["data"]["bytes"] >= (1 << 20))
os.kill(qemu, 9)
info = c.wait_job(job)
assert info["state"] == "failed", info
assert "stream ended" in info["error"], info
left = os.listdir(os.environ["OUTDIR"])
assert left == [], left
print("job failed:", info["error"])
PY
vm_kill src
expect_status 0 "$SAVCTL" --socket "$sock" version

note "QEMU killed mid-restore: the job fails"
[[ -r $stream ]] || skip "no $stream"
savd_save small small.mrm
py - "$uri" "$stream" <<'PY'
push(sys.argv[1], sys.argv[2])
PY
expect_status 0 "$SAVCTL" --socket "$sock" wait "$job"
on_cleanup vm_stop dst
VM_MACHINE=pc-q35-7.2 vm_start dst "$ramdir/dst.ram" 32M -incoming "unix:$tmpdir/in.sock"
vm_wait_socket "$tmpdir/in.sock"
# Stopped, QEMU reads nothing: the restore fills the socket and waits.
kill -STOP "$(vm_pid dst)"
py - "$tmpdir/in.sock" "$(vm_pid dst)" <<'PY'
c = Ctl()
job = c.ok("restore", {"file": "small.mrm", "to": "unix:" + sys.argv[1]})["job"]
info = c.ok("query-job", {"job": job})
if info["bytes"] == 0:
    c.event(lambda e: e["event"] == "JOB_PROGRESS" and e["data"]["id"] == job and e["data"]["bytes"] > 0)
os.kill(int(sys.argv[2]), 9)
info = c.wait_job(job)
assert info["state"] == "failed", info
assert "closed the connection" in info["error"], info
print("job failed:", info["error"])
PY
vm_kill dst

note "the daemon is healthy: a new save completes"
savd_save after after.mrm
py - "$uri" "$stream" <<'PY'
push(sys.argv[1], sys.argv[2])
PY
expect_status 0 "$SAVCTL" --socket "$sock" wait "$job"
expect_status 0 "$SAVCTL" verify "$outdir/after.mrm"
stop_daemon
