#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The slower CI runs, each in its own build directory next to _build:
#
#   san   the whole `make check` with ASan + UBSan (--enable-sanitizers)
#         in _build-san;
#   fuzz  the libFuzzer harnesses built with clang (--enable-fuzzer) in
#         _build-fuzz, each run FUZZ_TIME seconds (default 25) over its
#         seed corpus by `make fuzz-smoke`; a crash fails the run.
#
#   scripts/ci-extra.sh [san] [fuzz]        (no argument: both)
#
# Each step prints its wall time; on failure the logs that say why.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)
: "${FUZZ_TIME:=25}"

cd "$top"
[[ -x configure && configure -nt configure.ac && Makefile.in -nt Makefile.am ]] || autoreconf -fi

# configure_in DIR ARGS...: a fresh configure unless DIR is configured.
configure_in()
{
        local dir=$1
        shift
        mkdir -p "$top/$dir"
        cd "$top/$dir"
        [[ -f config.status ]] || "$top/configure" -q --enable-werror "$@"
}

# The log of every failed test of the build directory we are in.
show_failures()
{
        local log
        for log in $(find . -name '*.log' ! -name config.log ! -name test-suite.log); do
                grep -qE ':test-result: (FAIL|ERROR)' "${log%.log}.trs" 2>/dev/null || continue
                echo "=== $log"
                tail -n 80 "$log"
        done
}

run_san()
{
        configure_in _build-san --enable-sanitizers
        make -j"$jobs"
        # LeakSanitizer is on by default; a UBSan report is fatal
        # (-fno-sanitize-recover), with a stack trace.
        UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
                make -j"$jobs" check || { show_failures; return 1; }
}

run_fuzz()
{
        command -v clang >/dev/null || { echo "ci-extra: fuzz needs clang" >&2; return 1; }
        configure_in _build-fuzz CC=clang --enable-fuzzer
        make -j"$jobs"
        make fuzz-smoke FUZZ_TIME="$FUZZ_TIME"
}

# step NAME: run run_NAME in a subshell and report its wall time.
step()
{
        local start=$SECONDS rc=0
        echo "ci-extra: $1"
        (run_"$1") || rc=$?
        echo "ci-extra: $1 $( ((rc == 0)) && echo passed || echo FAILED) in $((SECONDS - start)) s"
        return "$rc"
}

steps=("$@")
((${#steps[@]})) || steps=(san fuzz)
status=0
for s in "${steps[@]}"; do
        case $s in
        san|fuzz) step "$s" || status=1 ;;
        *) echo "usage: $0 [san] [fuzz]" >&2; exit 2 ;;
        esac
done
exit "$status"
