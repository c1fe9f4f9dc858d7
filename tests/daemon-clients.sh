#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Many control clients: 64 at once, all served correctly and all seeing
# the same events; then a flood beyond max-clients: the extra ones get a
# LimitReached error and are closed, the others keep working, and a place
# that frees up is taken again.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires python3

echo '{"max-clients": 70}' >"$tmpdir/savd.conf"
start_daemon --config "$tmpdir/savd.conf"

note "64 concurrent clients"
py - <<'PY'
N, ROUNDS = 64, 20
clients = [Ctl() for _ in range(N)]
assert clients[0].ok("query-stats")["clients"] == N
errors = []
barrier = threading.Barrier(N)

def work(i, c):
    try:
        barrier.wait(HANG_GUARD)
        for r in range(ROUNDS):
            c.send({"execute": "query-version", "id": f"{i}-{r}-a"})
            c.send({"execute": "query-jobs", "id": f"{i}-{r}-b"})
            a, b = c.reply(), c.reply()
            assert a["id"] == f"{i}-{r}-a" and "return" in a, a
            assert b["id"] == f"{i}-{r}-b" and isinstance(b["return"], list), b
    except Exception as e:
        errors.append(f"client {i}: {e!r}")

threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(clients)]
for t in threads: t.start()
for t in threads: t.join()
assert not errors, errors

# every client sees every job's events
j = clients[0].ok("save", {"name": "shared", "output": "shared.mrm"})
clients[0].ok("job-cancel", {"job": j["job"]})
for c in clients:
    assert c.wait_job(j["job"])["state"] == "cancelled"
for c in clients: c.close()
PY

note "a flood beyond max-clients (70) is bounded"
py - <<'PY'
import errno
keep = [Ctl() for _ in range(70)]
refused = 0
for _ in range(30):
    c = Ctl(greet=False)
    m = c.read()
    assert m.get("error", {}).get("class") == "LimitReached" and "max-clients" in m["error"]["desc"], m
    try:
        assert c.read() is None
    except EOFError:
        refused += 1
    c.close()
assert refused == 30
assert keep[5].ok("query-stats")["clients"] == 70
keep.pop().close()
deadline = time.time() + HANG_GUARD
while True:          # the daemon notices the closed one on its next loop turn
    c = Ctl(greet=False)
    m = c.read()
    if "QMP" in m:
        break
    c.close()
    assert time.time() < deadline
assert c.ok("query-version")
for k in keep: assert k.ok("query-version")
PY
expect_status 0 "$SAVCTL" --socket "$sock" stats
stop_daemon
