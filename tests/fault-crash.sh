#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Crash consistency of a save.  The order savd commits a file in is taken
# from strace of one clean native save and asserted: the last data write
# (bitmaps and tail, pwrite64) -> fdatasync of the temporary file ->
# renameat2 to the final name -> fsync of the directory -> the COMPLETE
# reply on the data channel (for a QEMU stream save, up to the fsync of
# the directory and then the JOB_COMPLETED event).  Then the daemon is
# killed (SIGKILL, injected by strace on entry to the syscall, so it never
# runs) at each of those five steps, and by the test while pages are in
# flight; after each crash the output directory holds either nothing
# under the final name (kills before the rename) or a file that `savctl
# verify` accepts (kills after it), and a restarted daemon (once through
# systemd-socket-activate) completes new saves, also one under the name
# the crashed job had.  What a crash leaves behind is only the hidden
# ".NAME.XXXXXX.part" temporary file, never under a name that a reader
# could take for a save, and the restarted daemon removes those (and
# nothing else).
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires python3 strace
VMM=$top_builddir/tools/example-vmm
[[ -x $VMM ]] || fail "build tools/example-vmm first"

TRACED=(fdatasync fsync renameat renameat2 linkat sendto sendmsg pwrite64)
trace_set=$(IFS=,; echo "${TRACED[*]}")

# start_traced TRACE [STRACE OPTIONS...]: savd under strace -f, the trace
# in TRACE; $savd_pid is the daemon itself (strace's child).
start_traced()
{
        local trace=$1 i
        shift
        mkdir -p "$runtime" "$outdir"
        # LeakSanitizer (sanitizer builds) cannot work under ptrace; the
        # other tests check the same paths for leaks.
        ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
                strace -f -y -qq -s 64 -xx -o "$trace" -e trace="$trace_set" "$@" \
                "$SAVD" --foreground --runtime-dir "$runtime" --output-dir "$outdir" \
                2>>"$tmpdir/savd.log" &
        strace_pid=$!
        on_cleanup "kill $strace_pid 2>/dev/null"
        for ((i = 0; i < 200; i++)); do
                savd_pid=$(pgrep -P "$strace_pid" -x savd || true)
                [[ -n $savd_pid ]] && break
                sleep 0.05
        done
        [[ -n $savd_pid ]] || fail "savd did not start under strace"
        on_cleanup kill_daemon
        wait_ready
}

# stop_traced: SIGTERM; savd (through strace, which exits with its status)
# must exit 0.
stop_traced()
{
        local rc=0
        kill -TERM "$savd_pid"
        wait "$strace_pid" || rc=$?
        savd_pid=
        ((rc == 0)) || fail "savd under strace exited with status $rc after SIGTERM"
}

# native_save NAME OUTPUT [VMM ARGS]: a zero-copy save; the VMM's output
# goes to $tmpdir/NAME.vmm, its exit status is returned.
native_save()
{
        local name=$1 output=$2
        shift 2
        "$SAVCTL" --socket "$sock" --json save "$name" --output "$output" >"$tmpdir/job.json"
        uri=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["data-uri"])' "$tmpdir/job.json")
        "$VMM" save "$uri" --mem 24 --hash "$@" >"$tmpdir/$name.vmm" 2>&1
}

# commit_steps TRACE: one line per commit step found in TRACE, "STEP N",
# N being that syscall's ordinal among its own kind (for strace's when=).
commit_steps()
{
        python3 - "$1" "$outdir" <<'PY'
import re, sys
trace, outdir = sys.argv[1], sys.argv[2]
unhex = lambda s: re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), s)
count, steps, last_write = {}, [], None
for line in open(trace):
    m = re.match(r"\d+ +(\w+)\((.*)", line)
    if not m or "resumed>" in line:
        continue
    call, args = m.group(1), m.group(2)
    count[call] = count.get(call, 0) + 1
    n = count[call]
    text = unhex(args)
    fdpath = re.match(r"\d+<([^>]*)>", text)
    fdpath = fdpath.group(1) if fdpath else ""
    part = re.fullmatch(re.escape(outdir) + r"/\.[^/]+\.[A-Za-z0-9]{6}\.part", fdpath)
    if call == "pwrite64" and part:
        last_write = n
    elif call == "fdatasync" and part:
        steps.append(("fdatasync", n))
    elif call in ("renameat2", "renameat", "linkat") and ".part" in text:
        steps.append(("rename", n, call))
    elif call == "fsync" and fdpath == outdir:
        steps.append(("fsync-dir", n))
    elif call == "sendto":
        buf = bytes.fromhex(re.search(r'"((?:\\x[0-9a-f]{2})*)"', args).group(1).replace("\\x", ""))
        # A REPLY frame (type 0x80) answering COMPLETE (0x08).
        if len(buf) >= 18 and buf[4:6] == b"\x80\x00" and buf[16:18] == b"\x08\x00":
            steps.append(("reply", n))
    if steps and steps[-1][0] == "fdatasync" and last_write is not None:
        steps.insert(len(steps) - 1, ("last-write", last_write))
        last_write = None
for s in steps:
    print(*s)
PY
}

note "the commit order, from strace of a clean save"
start_traced "$tmpdir/clean.trace"
native_save clean clean.mrm || { cat "$tmpdir/clean.vmm"; fail "clean save failed"; }
expect_status 0 "$SAVCTL" --socket "$sock" wait "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["job"])' "$tmpdir/job.json")"
stop_traced
commit_steps "$tmpdir/clean.trace" >"$tmpdir/steps"
cat "$tmpdir/steps"
[[ $(cut -d' ' -f1 "$tmpdir/steps" | paste -sd' ') == "last-write fdatasync rename fsync-dir reply" ]] ||
        fail "commit order is not: data, fdatasync, rename, fsync(dir), reply"
expect_status 0 "$SAVCTL" verify "$outdir/clean.mrm"
rename_call=$(awk '$1 == "rename" { print $3 }' "$tmpdir/steps")

note "the same order for a QEMU stream: the reply is the JOB_COMPLETED event"
stream=$SAVD_TESTDATA/q72-legacy.stream
if [[ -r $stream ]]; then
        start_traced "$tmpdir/qemu.trace"
        py - "$stream" <<'PY'
c = Ctl()
r = c.ok("save", {"name": "q", "output": "q.mrm"})
push(r["data-uri"], sys.argv[1])
assert c.wait_job(r["job"])["state"] == "completed"
PY
        stop_traced
        expect_status 0 "$SAVCTL" verify "$outdir/q.mrm"
        python3 - "$tmpdir/qemu.trace" "$outdir" <<'PY' || fail "QEMU save: wrong commit order"
import re, sys
trace, outdir = sys.argv[1], sys.argv[2]
unhex = lambda s: re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), s)
part = re.escape(outdir) + r"/\.q\.mrm\.[A-Za-z0-9]{6}\.part>"
order = []
for line in open(trace):
    t = unhex(line)
    if re.search(r"\bfdatasync\(\d+<" + part, t):
        order.append("fdatasync")
    elif re.search(r"\brenameat2?\(.*\.q\.mrm\.[A-Za-z0-9]{6}\.part\".*\"q\.mrm\"", t):
        order.append("rename")
    elif re.search(r"\bfsync\(\d+<" + re.escape(outdir) + ">", t):
        order.append("fsync-dir")
    elif re.search(r"\bsendmsg\(", t) and "JOB_COMPLETED" in t and order and order[-1] == "fsync-dir":
        order.append("event")
print("QEMU save:", " ".join(order))
assert order == ["fdatasync", "rename", "fsync-dir", "event"], order
PY
fi

# crash_at STEP SYSCALL: kill savd on entry to the commit step STEP.
crash_at()
{
        local step=$1 call=$2 n name=crash-$1
        n=$(awk -v s="$step" '$1 == s { print $2 }' "$tmpdir/steps")
        start_traced "$tmpdir/$step.trace" -e inject="$call":signal=KILL:when="$n"
        native_save "$name" "$name.mrm" && fail "the VMM saw a complete save though savd was killed at $step"
        wait "$strace_pid" 2>/dev/null || true
        savd_pid=
        # The killed syscall is the last one of its kind in the trace (the
        # last data write is recognised by the fdatasync after it, which a
        # kill there prevents: count the writes instead).
        if [[ $step == last-write ]]; then
                [[ $(grep -c " pwrite64(" "$tmpdir/$step.trace") == "$n" ]] ||
                        fail "the kill did not happen at the last data write (pwrite64 #$n)"
        else
                commit_steps "$tmpdir/$step.trace" | grep -q "^$step $n" ||
                        fail "the kill did not happen at $step (call $call #$n)"
        fi
}

# after_crash NAME STATE: STATE "none" (nothing under the final name) or
# "valid" (a file that verifies); any other file is a temporary one.
after_crash()
{
        local name=$1 want=$2 f
        if [[ $want == none ]]; then
                [[ ! -e $outdir/$name.mrm ]] || fail "$name.mrm exists after a crash before the rename"
        else
                [[ -e $outdir/$name.mrm ]] || fail "$name.mrm missing after a crash after the rename"
                expect_status 0 "$SAVCTL" verify "$outdir/$name.mrm"
        fi
        for f in "$outdir"/.* "$outdir"/*; do
                f=${f##*/}
                [[ $f == . || $f == .. || $f == '*' || $f == '.*' ]] && continue
                [[ $f =~ ^[^.].*\.mrm$ || $f =~ ^\..+\.[A-Za-z0-9]{6}\.part$ ]] ||
                        fail "unexpected file after a crash: $f"
        done
}

for step in last-write fdatasync rename fsync-dir reply; do
        case $step in
        last-write) call=pwrite64 want=none ;;
        fdatasync) call=fdatasync want=none ;;
        rename) call=$rename_call want=none ;;
        fsync-dir) call=fsync want=valid ;;
        reply) call=sendto want=valid ;;
        esac
        note "SIGKILL on entry to $call ($step): expect $want"
        crash_at "$step" "$call"
        after_crash "crash-$step" "$want"
        left=$(ls -a "$outdir" | grep -c '\.part$' || true)
        note "left behind: $left temporary file(s)"
        # Each crash_at starts a new daemon, which removes what the crash
        # before it left: at most this crash's own file is there.
        expect=0
        [[ $want == none ]] && expect=1
        ((left == expect)) || fail "$left temporary files after the $step crash, expected $expect"
done
for step in last-write fdatasync rename; do
        grep -q "removed '\.crash-$step\.mrm\.[A-Za-z0-9]\{6\}\.part'" "$tmpdir/savd.log" ||
                fail "the next daemon did not remove the temporary file of the $step crash"
done
# What the restart must and must not remove: a temporary file in a
# subdirectory goes; a name that only looks alike, a link and a
# directory with a temporary file's name stay.
mkdir -p "$outdir/sub/deeper"
: >"$outdir/sub/deeper/.vm.AbC123.part"
: >"$outdir/keep.part"
: >"$outdir/.vm.toolong7.part"
ln -s /etc/hostname "$outdir/.link.AbC123.part"
mkdir "$outdir/.dir.AbC123.part"

note "restart: stale temporary files removed; new saves work, also under a name a crashed job had"
start_daemon
for f in "$outdir"/.*.part "$outdir"/sub/deeper/.*.part; do
        [[ -f $f && ! -L $f ]] || continue
        [[ ${f##*/} == .vm.toolong7.part ]] && continue
        fail "temporary file $f still there after the restart"
done
[[ -e $outdir/keep.part && -e $outdir/.vm.toolong7.part && -L $outdir/.link.AbC123.part &&
   -d $outdir/.dir.AbC123.part ]] || fail "the restart removed a file that is not a temporary file"
grep -q "removed 1 temporary file left in" "$tmpdir/savd.log" ||
        fail "the daemon did not log the temporary file it removed"
rm -rf "$outdir/sub" "$outdir/keep.part" "$outdir/.vm.toolong7.part" "$outdir/.link.AbC123.part" \
        "$outdir/.dir.AbC123.part"
native_save crash-fdatasync crash-fdatasync.mrm || { cat "$tmpdir/crash-fdatasync.vmm"; fail "save after restart failed"; }
expect_status 0 "$SAVCTL" --socket "$sock" wait "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["job"])' "$tmpdir/job.json")"
expect_status 0 "$SAVCTL" verify "$outdir/crash-fdatasync.mrm"

note "SIGKILL while pages are in flight"
"$SAVCTL" --socket "$sock" --json save inflight --output inflight.mrm >"$tmpdir/job.json"
read -r job uri < <(python3 -c 'import json, sys
r = json.load(open(sys.argv[1])); print(r["job"], r["data-uri"])' "$tmpdir/job.json")
"$VMM" save "$uri" --mem 512 --pattern random --passes 20 --dirty --quiet >/dev/null 2>&1 &
vmm=$!
py - "$job" "$savd_pid" <<'PY'
job, pid = int(sys.argv[1]), int(sys.argv[2])
c = Ctl()
# Polled, not waited for as a JOB_PROGRESS event (at most one a second):
# the save must still be running when the first pages have been written.
while True:
    info = c.ok("query-job", {"job": job})
    assert info["state"] in ("waiting-for-client", "running"), info
    if info["bytes-written"] > 0:
        break
    time.sleep(0.01)
os.kill(pid, 9)
print(f"killed with {info['bytes-written']} bytes written")
PY
wait "$savd_pid" 2>/dev/null || true
savd_pid=
wait "$vmm" && fail "the VMM completed a save whose daemon was killed"
after_crash inflight none

note "restart through systemd-socket-activate; the crashed names are reusable"
if command -v systemd-socket-activate >/dev/null; then
        rm -f "$sock"
        systemd-socket-activate -l "$sock" "$SAVD" --foreground --runtime-dir "$runtime" \
                --output-dir "$outdir" 2>>"$tmpdir/savd.log" &
        savd_pid=$!
        on_cleanup kill_daemon
        wait_ready
else
        start_daemon
fi
native_save inflight inflight.mrm || { cat "$tmpdir/inflight.vmm"; fail "save after the second restart failed"; }
expect_status 0 "$SAVCTL" --socket "$sock" wait "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["job"])' "$tmpdir/job.json")"
expect_status 0 "$SAVCTL" verify "$outdir/inflight.mrm"
after_crash inflight valid
ls -a "$outdir" | grep '\.part$' && fail "the in-flight crash's temporary file survived the restart"
stop_daemon
