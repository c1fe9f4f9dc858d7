#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The load test (scripts/load-test.sh) scaled down for `make check`: 8
# concurrent native zero-copy saves of 64 MiB each through one daemon
# while 64 control clients poll query-jobs; every save completes, every
# poller gets only answers, every file verifies and two of them restore
# to the saved memory.  No fio ceiling and no throughput assertion here.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires python3
JOBS=8 SIZE_MIB=64 POLLERS=64 RESTORES=2 FIO=0 \
        bash "$top_srcdir/scripts/load-test.sh" "$tmpdir" >"$tmpdir/load.log" 2>&1 ||
        { cat "$tmpdir/load.log"; fail "load test failed"; }
cat "$tmpdir/load.log"
assert_contains "$tmpdir/load.log" "load: 8 saves completed"
assert_contains "$tmpdir/load.log" "load: all 8 files verify"
[[ $(grep -c 'restores to the saved memory' "$tmpdir/load.log") == 2 ]] || fail "not 2 restores checked"
assert_contains "$tmpdir/load.log" "load: passed"
