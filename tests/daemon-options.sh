#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Command line and configuration file: every bad option, value or key is
# refused with one precise message and exit status 2; the file's values
# apply and the command line overrides them; SIGHUP reloads what can be
# reloaded, keeps what cannot, and survives a broken file.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires python3

# bad: ARGS... -- MESSAGE
bad()
{
        local args=() msg
        while [[ $1 != -- ]]; do args+=("$1"); shift; done
        msg=$2
        expect_status 2 "$SAVD" --foreground --runtime-dir "$runtime" --output-dir "$outdir" "${args[@]}"
        [[ $(wc -l <"$tmpdir/err") == 1 ]] || fail "more than one line for ${args[*]}: $(cat "$tmpdir/err")"
        assert_contains "$tmpdir/err" "$msg"
}
mkdir -p "$runtime" "$outdir"

note "bad options and values"
bad --bogus -- "unknown option '--bogus'"
bad -x -- "unknown option '-x'"
bad --writers -- "needs a value"
bad extra-arg -- "unexpected argument 'extra-arg'"
bad --writers abc -- "--writers: 'writers' must be a non-negative integer, got 'abc'"
bad --writers -1 -- "--writers: 'writers' must be a non-negative integer"
bad --writers 100000 -- "'writers' must be between 0 and 256"
bad --max-jobs 0 -- "'max-jobs' must be between 1"
bad --io-mode fast -- "'io-mode' must be \"auto\", \"direct\" or \"buffered\", got 'fast'"
bad --fake-numa-nodes 65 -- "'fake-numa-nodes' must be between 0 and 64"
bad --runtime-dir relative/dir -- "'runtime-dir' must be an absolute path"
bad --config "$tmpdir/nonexistent.conf" -- "nonexistent.conf': No such file or directory"

note "bad configuration files"
conf() { printf '%s\n' "$1" >"$tmpdir/c.conf"; bad --config "$tmpdir/c.conf" -- "$2"; }
conf '{"writers": 2, "colour": "blue"}' "unknown key 'colour'"
conf '{"writers": "2"}' "'writers' must be a non-negative integer"
conf '{"max-clients": 0}' "'max-clients' must be between 1 and"
conf '{"max-inflight-bytes": 1048576}' "'max-inflight-bytes' must be between 8388608"
conf '{"max-buffer-bytes": 70000000000}' "'max-buffer-bytes' must be between 0 and 68719476736"
conf '{"absorb-bytes": -1}' "'absorb-bytes'"
conf '{"absorb-bytes": 70000000000}' "'absorb-bytes' must be between 0 and 68719476736"
conf '{"max-block-size": 100}' "'max-block-size' must be between 4096"
conf '{"max-blocks": 5000}' "'max-blocks' must be between 1 and 1024"
conf '{"log-level": "chatty"}' "'log-level' must be one of"
conf '{"log-level": 9}' "'log-level' must be between 0 and 7"
conf '{"allow-groups": "savd"}' "'allow-groups' must be an array"
conf '{"allow-groups": [1]}' "'allow-groups' entry 0 is not a string"
conf '{"control-socket-mode": "0999"}' "'control-socket-mode' must be an octal mode"
conf '{"control-socket-mode": 432}' "'control-socket-mode' must be a string"
conf '{"output-dir": "var/lib"}' "'output-dir' must be an absolute path"
conf '{"writers": 2' "malformed JSON"
conf '["writers"]' "must be a JSON object"
conf '{"writers": 1} {"writers": 2}' "unexpected text after the configuration object"
note "a start-up failure (not a usage error) exits 1"
expect_status 1 "$SAVD" --foreground --runtime-dir "$runtime" --output-dir "$tmpdir/missing"
assert_contains "$tmpdir/err" "output directory '$tmpdir/missing': No such file or directory"
[[ ! -e $sock ]] || fail "control socket left behind"

note "a valid file with comments; the command line wins over it"
cat >"$tmpdir/savd.conf" <<CONF
/* a comment */
{
  // another
  "runtime-dir": "$runtime",
  "output-dir": "$outdir",
  "max-jobs": 1,
  "writers": 3,
  "io-mode": "buffered",
  "log-level": "notice",
  "allow-groups": []
}
CONF
start_daemon_args --config "$tmpdir/savd.conf" --max-jobs 2
py - <<'PY'
c = Ctl()
a = c.ok("save", {"name": "a", "output": "a.mrm"})
b = c.ok("save", {"name": "b", "output": "b.mrm"})
c.err("save", {"name": "c", "output": "c.mrm"}, cls="LimitReached", match="max-jobs is 2")
PY
# log-level notice: the info line "job ... save to" is not logged
grep -q "save to" "$tmpdir/savd.log" && fail "log-level notice not applied"

note "SIGHUP: log level and limits reload; the directories do not"
cat >"$tmpdir/savd.conf" <<CONF
{ "runtime-dir": "$runtime", "max-jobs": 1, "log-level": "debug", "output-dir": "/nonexistent" }
CONF
kill -HUP "$savd_pid"
for ((i = 0; i < 200; i++)); do grep -q "configuration reloaded" "$tmpdir/savd.log" && break; sleep 0.05; done
assert_contains "$tmpdir/savd.log" "configuration reloaded (log level debug, max-jobs 2"
assert_contains "$tmpdir/savd.log" "'output-dir' cannot change without a restart"
py - <<'PY'
c = Ctl()
c.err("save", {"name": "c", "output": "c.mrm"}, cls="LimitReached", match="max-jobs is 2")
PY

note "SIGHUP with a broken file: the old configuration stays"
echo '{"max-jobs": "many"}' >"$tmpdir/savd.conf"
kill -HUP "$savd_pid"
for ((i = 0; i < 200; i++)); do grep -q "keeping the current configuration" "$tmpdir/savd.log" && break; sleep 0.05; done
assert_contains "$tmpdir/savd.log" "reload: config '$tmpdir/savd.conf': 'max-jobs' must be a non-negative integer; keeping"
expect_status 0 "$SAVCTL" --socket "$sock" jobs
assert_contains "$tmpdir/out.txt" "waiting-for-client"
stop_daemon

note "a second daemon on the same runtime dir is refused"
start_daemon
expect_status 1 "$SAVD" --foreground --runtime-dir "$runtime" --output-dir "$outdir"
assert_contains "$tmpdir/err" "another savd is listening"
stop_daemon

note "without --foreground savd detaches once ready"
"$SAVD" --runtime-dir "$runtime" --output-dir "$outdir" 2>>"$tmpdir/savd.log"
[[ -s $runtime/savd.pid ]] || fail "no pid file"
savd_pid=$(cat "$runtime/savd.pid")
expect_status 0 "$SAVCTL" --socket "$sock" version
kill -TERM "$savd_pid"
for ((i = 0; i < 200; i++)); do kill -0 "$savd_pid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$savd_pid" 2>/dev/null && fail "the detached savd did not stop"
savd_pid=
[[ ! -e $runtime/savd.pid ]] || fail "pid file left behind"
