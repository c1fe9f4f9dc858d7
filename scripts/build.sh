#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Configure and build savd out of tree in _build/ (or $SAVD_BUILDDIR).
# Extra arguments go to configure.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${SAVD_BUILDDIR:-$top/_build}

cd "$top"
[[ -x configure && configure -nt configure.ac && Makefile.in -nt Makefile.am ]] || autoreconf -fi
mkdir -p "$build"
cd "$build"
if [[ ! -f config.status ]] || [[ $# -gt 0 ]]; then
        "$top/configure" -q --enable-werror "$@"
fi
make -j"$(nproc)"
