#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Install the Debian 12 packages savd needs to build, test and run its
# demo — only those that are missing.  Run as root.
set -euo pipefail

packages=(
        gcc make autoconf automake libtool pkg-config
        liburing-dev libnuma-dev libsystemd-dev libjson-c-dev check
        qemu-system-x86 fio socat python3 systemd util-linux e2fsprogs
        valgrind clang libclang-rt-14-dev strace
)

missing=()
for p in "${packages[@]}"; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [[ $status == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
        echo "install-deps: all ${#packages[@]} packages present"
        exit 0
fi
if ((EUID != 0)); then
        echo "install-deps: missing packages: ${missing[*]} (run as root to install)" >&2
        exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
