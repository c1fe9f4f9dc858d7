#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Real write errors, with no hook in the daemon: a save larger than the
# file system it goes to (a 64 MiB ext4 image mounted through a loop
# device) fails with ENOSPC, and a save past the daemon's file size limit
# (RLIMIT_FSIZE set on the running daemon with prlimit) fails with EFBIG.
# Each time the job fails with a message naming the error and the file,
# nothing appears under the final name, no temporary file is left, and the
# same daemon then completes a smaller save that verifies.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires python3 mkfs.ext4 mount umount prlimit
requires_root
VMM=$top_builddir/tools/example-vmm
[[ -x $VMM ]] || fail "build tools/example-vmm first"

# The small file system, inside the output directory so the daemon may
# write there; skipped only when this machine has no loop devices.
mkdir -p "$outdir/small"
truncate -s 64M "$tmpdir/small.img"
mkfs.ext4 -q -F "$tmpdir/small.img"
mount -o loop "$tmpdir/small.img" "$outdir/small" 2>"$tmpdir/mount.err" ||
        skip "cannot loop-mount an ext4 image: $(cat "$tmpdir/mount.err")"
on_cleanup "umount '$outdir/small' 2>/dev/null || umount -l '$outdir/small'"
rmdir "$outdir/small/lost+found"

start_daemon

# save_with_vmm NAME OUTPUT VMM-ARGS...: one native zero-copy save; prints
# the job id; the VMM's exit status is that of the save.
save_with_vmm()
{
        local name=$1 output=$2 id uri
        shift 2
        "$SAVCTL" --socket "$sock" --json save "$name" --output "$output" >"$tmpdir/job.json"
        read -r id uri < <(python3 -c 'import json, sys
r = json.load(open(sys.argv[1])); print(r["job"], r["data-uri"])' "$tmpdir/job.json")
        echo "$id"
        "$VMM" save "$uri" --quiet "$@" >"$tmpdir/vmm.out" 2>"$tmpdir/vmm.err"
}

# job_failed ID TEXT...: the job failed and its error contains every TEXT.
job_failed()
{
        local id=$1
        shift
        # The VMM may hear of the error before the job has ended.
        expect_fail "$SAVCTL" --socket "$sock" wait "$id"
        "$SAVCTL" --socket "$sock" --json jobs >"$tmpdir/jobs.json"
        python3 - "$id" "$tmpdir/jobs.json" "$@" <<'PY' || fail "job $id: wrong state or message"
import json, sys
job, path, texts = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
info = [j for j in json.load(open(path)) if j["id"] == job][0]
assert info["state"] == "failed", info
for t in texts:
    assert t in info["error"], (t, info["error"])
print(f"job {job} failed: {info['error']}")
PY
}

# no_files DIR NAME: neither NAME nor any hidden (temporary) file in DIR.
no_files()
{
        [[ ! -e $1/$2 ]] || fail "$1/$2 exists after a failed save"
        [[ -z $(find "$1" -mindepth 1 -name '.*') ]] || fail "temporary files left: $(ls -a "$1")"
}

note "ENOSPC: a 160 MiB random guest into a 64 MiB file system"
id=$(save_with_vmm big small/big.mrm --mem 160 --pattern random) &&
        fail "the save into a full file system succeeded"
assert_contains "$tmpdir/vmm.err" "No space left on device"
job_failed "$id" "No space left on device" "small/big.mrm"
no_files "$outdir/small" big.mrm
grep -F "'big': failed:" "$tmpdir/savd.log" | grep -F "$outdir/small/big.mrm" | grep -qF "No space left on device" ||
        fail "the daemon's log does not name the error and the file"
expect_status 0 "$SAVCTL" --socket "$sock" version

note "the same daemon completes a save on another file system"
id=$(save_with_vmm ok ok.mrm --mem 32 --hash) || { cat "$tmpdir/vmm.err"; fail "save after ENOSPC failed"; }
expect_status 0 "$SAVCTL" --socket "$sock" wait "$id"
expect_status 0 "$SAVCTL" verify "$outdir/ok.mrm"

note "the space of the failed save is free again at once: a save that fits succeeds there"
id=$(save_with_vmm fits small/fits.mrm --mem 40 --pattern random) ||
        { cat "$tmpdir/vmm.err"; df "$outdir/small"; fail "save into the emptied file system failed"; }
expect_status 0 "$SAVCTL" --socket "$sock" wait "$id"
expect_status 0 "$SAVCTL" verify "$outdir/small/fits.mrm"
rm -f "$outdir/small/fits.mrm"

note "EFBIG: RLIMIT_FSIZE of 16 MiB on the running daemon, a 48 MiB random guest"
prlimit --pid "$savd_pid" --fsize=$((16 << 20)):   # soft limit only
id=$(save_with_vmm limited limited.mrm --mem 48 --pattern random) &&
        fail "a save past RLIMIT_FSIZE succeeded"
kill -0 "$savd_pid" || fail "savd died at its file size limit"
job_failed "$id" "File too large" "limited.mrm"
no_files "$outdir" limited.mrm
prlimit --pid "$savd_pid" --fsize=unlimited:
id=$(save_with_vmm again again.mrm --mem 48 --pattern random) ||
        { cat "$tmpdir/vmm.err"; fail "save after lifting the limit failed"; }
expect_status 0 "$SAVCTL" --socket "$sock" wait "$id"
expect_status 0 "$SAVCTL" verify "$outdir/again.mrm"

stop_daemon
