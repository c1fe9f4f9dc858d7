#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The whole test suite from a fresh checkout: install what is missing,
# build, run `make check`.  Extra arguments go to configure.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${SAVD_BUILDDIR:-$top/_build}

"$top/scripts/install-deps.sh"
"$top/scripts/build.sh" "$@"
cd "$build"
status=0
make -j"$(nproc)" check || status=$?

# Each Check binary's own summary line, then one closing line for the run.
for log in tests/check-*.log; do
        sed -n "s|^\([0-9]*%: Checks:.*\)|check: ${log%.log}: \1|p" "$log"
done
read -r pass fail skip < <(awk '/^# (PASS|FAIL|SKIP|XFAIL|XPASS|ERROR):/ { v[$2] = $3 }
        END { print v["PASS:"]+0, v["FAIL:"]+v["ERROR:"]+v["XPASS:"]+0, v["SKIP:"]+0 }' test-suite.log)
echo "tests: $pass passed, $fail failed, $skip skipped"
if ((status != 0)); then
        # Show why: the log of every failed test.
        for log in $(find . -name '*.log' ! -name config.log ! -name test-suite.log); do
                grep -qE ':test-result: (FAIL|ERROR)' "${log%.log}.trs" 2>/dev/null && { echo "=== $log"; tail -n 60 "$log"; }
        done
        exit 1
fi
