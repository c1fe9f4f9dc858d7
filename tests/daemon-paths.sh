#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Output and input paths stay inside the output directory: absolute paths,
# "..", ".", empty components, symbolic links (as a directory on the way or
# as the final name) and existing files (unless overwrite is asked for)
# are all refused before any job exists, and nothing outside is touched.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires python3

start_daemon
outside=$tmpdir/outside
mkdir -p "$outside" "$outdir/sub" "$outdir/sub/deeper"
echo precious >"$outside/victim"
ln -s "$outside" "$outdir/dirlink"
ln -s "$outside/victim" "$outdir/filelink"
ln -s "$outside/new" "$outdir/dangling"
echo old >"$outdir/exists.mrm"
mkdir "$outdir/adir"
mkfifo "$outdir/fifo"

OUTDIR=$outdir OUTSIDE=$outside py - <<'PY'
c = Ctl()
bad = [
    ("/etc/passwd",            "InvalidParameter", "absolute paths"),
    (os.environ["OUTSIDE"] + "/x", "InvalidParameter", "absolute paths"),
    ("../x.mrm",               "InvalidParameter", "'..'"),
    ("sub/../../x.mrm",        "InvalidParameter", "'..'"),
    ("sub/../x.mrm",           "InvalidParameter", "'..'"),
    ("./x.mrm",                "InvalidParameter", "'.'"),
    ("..",                     "InvalidParameter", "'..'"),
    ("sub//x.mrm",             "InvalidParameter", "empty path component"),
    ("sub/",                   "InvalidParameter", "empty path component"),
    ("dirlink/x.mrm",          "InvalidParameter", "symbolic link"),
    ("sub/../dirlink/x.mrm",   "InvalidParameter", "'..'"),
    ("filelink",               "InvalidParameter", "symbolic link"),
    ("dangling",               "InvalidParameter", "symbolic link"),
    ("missing/x.mrm",          "InvalidParameter", "does not exist"),
    ("exists.mrm/x",           "InvalidParameter", "exists.mrm"),
    ("exists.mrm",             "InvalidParameter", "already exists"),
    ("adir",                   "InvalidParameter", "not a regular file"),
    ("fifo",                   "InvalidParameter", "not a regular file"),
    ("x" * 256,                "InvalidParameter", "over-long path component"),
]
for path, cls, match in bad:
    c.err("save", {"name": "vm", "output": path}, cls=cls, match=match)
    # the same path as an overwrite target is no better, except an existing file
    if path != "exists.mrm":
        c.err("save", {"name": "vm", "output": path, "overwrite": True}, cls=cls)
assert c.ok("query-jobs") == [], "a refused request created a job"

# restore reads by the same rules
for path, match in [("/etc/passwd", "absolute"), ("../outside/victim", "'..'"),
                    ("filelink", "symbolic link"), ("dirlink/victim", "symbolic link"),
                    ("adir", "not a regular file"), ("fifo", "not a regular file"),
                    ("nothere.mrm", "does not exist")]:
    c.err("restore", {"file": path, "to": "unix:/nonexistent.sock"}, cls="InvalidParameter", match=match)
assert c.ok("query-jobs") == []

# what is allowed: a new name, a name in a real subdirectory, an overwrite
for path, ow in [("new.mrm", False), ("sub/deeper/new.mrm", False), ("exists.mrm", True)]:
    j = c.ok("save", {"name": "vm", "output": path, "overwrite": ow})
    info = c.ok("query-job", {"job": j["job"]})
    assert info["output"] == path, info
    c.ok("job-cancel", {"job": j["job"]})
    assert c.wait_job(j["job"])["state"] == "cancelled"
PY

note "nothing outside was touched, nothing new inside"
[[ $(cat "$outside/victim") == precious ]] || fail "the symlink target changed"
[[ ! -e $outside/new && ! -e $outside/x && ! -e $tmpdir/x.mrm ]] || fail "a file appeared outside"
[[ $(cat "$outdir/exists.mrm") == old ]] || fail "exists.mrm changed without a save"
[[ -z $(find "$outdir" -name '*.part' -o -name 'new.mrm') ]] || fail "files left: $(find "$outdir")"
stop_daemon
