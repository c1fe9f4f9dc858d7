#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Malformed input on the control socket: bad JSON, non-objects, unknown
# commands, wrong argument types, missing arguments, oversized requests,
# stray or too many descriptors.  Each gets an error reply, and the same
# connection keeps working afterwards.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires python3

start_daemon

py - <<'PY'
MAX = 64 * 1024
c = Ctl()

def usable():
    r = c.cmd("query-version")
    assert "return" in r, r

def raw_error(data, cls, match):
    c.send(data)
    r = c.reply()
    assert "error" in r, f"{data[:60]!r}: {r}"
    assert r["error"]["class"] == cls, r
    assert match in r["error"]["desc"], r
    usable()

raw_error(b"{\"execute\": \"query-version\"\n", "GenericError", "line ends before")
raw_error(b"{bad json}\n", "GenericError", "malformed JSON")
raw_error(b"[\"query-version\"]\n", "GenericError", "expected a JSON object")
raw_error(b"42\n", "GenericError", "expected a JSON object")
raw_error(b"{\"execute\":\"query-version\",}\n", "GenericError", "malformed JSON")
raw_error(b"{\"x\":\"\xff\"}\n", "GenericError", "malformed JSON")
raw_error(b"{\"a\":" + b"[" * 40 + b"\n", "GenericError", "malformed JSON")
raw_error(b"{\"arguments\":{}}\n", "InvalidParameter", "no 'execute'")
raw_error(b"{\"execute\":\"query-jobs\",\"bogus\":1}\n", "InvalidParameter", "unexpected member")

# unknown commands and arguments
c.err("no-such-command", cls="CommandNotFound", match="no-such-command")
usable()
c.err("query-jobs", {"job": 1}, cls="InvalidParameter", match="unknown argument")
# wrong types
for args, match in [
        ({"name": 1, "output": "a"}, "'name' must be a string"),
        ({"name": "a", "output": ["x"]}, "'output' must be a string"),
        ({"name": "a", "output": "a", "overwrite": "yes"}, "must be a boolean"),
        ({"name": "a", "output": "a", "channel": 1}, "'channel' must be a string"),
        ({"name": "a", "output": "a", "channel": "tcp"}, "'channel' must be"),
        ({"name": "", "output": "a"}, "must not be empty"),
        ({"name": "a\u0000b", "output": "a"}, "NUL"),
        ({"name": "a\nb", "output": "a"}, "control characters"),
        ({"name": "x" * 256, "output": "a"}, "exceeds 255"),
        ({"output": "a"}, "missing argument 'name'")]:
    c.err("save", args, cls="InvalidParameter", match=match)
    usable()
for v, match in [("1", "must be an integer"), (1.5, "must be an integer"), (-1, "negative"),
                 (2**32, "exceeds"), (None, "must be an integer"), (True, "must be an integer")]:
    c.err("query-job", {"job": v}, cls="InvalidParameter", match=match)
    usable()
c.err("query-job", {}, cls="InvalidParameter", match="missing argument")
c.err("query-job", {"job": 12345}, cls="JobNotFound", match="12345")
c.err("job-cancel", {"job": 12345}, cls="JobNotFound")
c.err("job-dismiss", {"job": 12345}, cls="JobNotFound")
c.send(b"{\"execute\":\"query-version\",\"arguments\":7}\n")
assert c.reply()["error"]["class"] == "InvalidParameter"

# the id comes back, whatever JSON it is, on replies and on errors
for i in ["abc", {"x": [1, 2]}, 3.5, None]:
    c.send({"execute": "query-version", "id": i})
    assert c.reply().get("id") == i   # null: the same as no id
c.send({"execute": "nope", "id": "E"})
r = c.reply()
assert r["id"] == "E" and r["error"]["class"] == "CommandNotFound", r

# size limit: exactly MAX bytes is fine, one more is refused
def sized(n):
    head = b"{\"execute\":\"query-version\",\"id\":\""
    return head + b"x" * (n - len(head) - 2) + b"\"}"
c.send(sized(MAX) + b"\n")
r = c.reply()
assert "return" in r and MAX - 64 < len(r["id"]) < MAX, r.keys()
c.send(sized(MAX + 1) + b"\n")
r = c.reply()
assert r["error"]["class"] == "LimitReached" and "65536" in r["error"]["desc"], r
usable()
# a huge line with no newline for a while: refused once, then usable
c.send(b"{\"a\":\"" + b"y" * (4 * MAX))
r = c.reply()
assert r["error"]["class"] == "LimitReached", r
c.send(b"y" * MAX + b"\n")
usable()

# objects without newlines, several in one write, split across writes
c.send(b"{\"execute\":\"query-version\",\"id\":1}{\"execute\":\"query-jobs\",\"id\":2}")
assert c.reply()["id"] == 1 and c.reply()["id"] == 2
c.send(b"{\"execute\":\"query-")
time.sleep(0.1)
c.send(b"version\",\"id\":3}")
assert c.reply()["id"] == 3

# descriptors: refused where no command takes them, and when too many
r1, w1 = os.pipe()
c.err("query-version", fds=[r1], cls="InvalidParameter", match="takes no file descriptors")
c.err("save", {"name": "a", "output": "x.mrm"}, fds=[r1, w1], cls="InvalidParameter",
      match="at most one")
many = [os.open("/dev/null", os.O_RDONLY) for _ in range(6)]
c.err("query-version", fds=many, cls="LimitReached", match="lost")
usable()
assert c.ok("query-jobs") == [], "a refused request created a job"
c.close()
PY

note "a client that disconnects mid-request does not disturb others"
py - <<'PY'
a = Ctl(); b = Ctl()
a.send(b"{\"execute\":\"query-")
a.close()
assert b.ok("query-stats")["clients"] >= 1
PY
"$SAVCTL" --socket "$sock" version >/dev/null
stop_daemon
