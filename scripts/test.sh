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
if ! make -j"$(nproc)" check; then
        # Show why: the log of every failed test.
        for log in $(find . -name '*.log' ! -name config.log ! -name test-suite.log); do
                grep -qE '^(FAIL|ERROR)' "${log%.log}.trs" 2>/dev/null && { echo "=== $log"; tail -n 60 "$log"; }
        done
        exit 1
fi
