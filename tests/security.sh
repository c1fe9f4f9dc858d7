#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The service's confinement as systemd rates it: `systemd-analyze security
# --offline` on the installed unit must stay at or below an exposure of
# 1.5 ("SAFE" band; 0.8 when this test was written, see
# tests/RELIABILITY.md for the table), and the settings the rating rests
# on must stay: no capabilities, AF_UNIX only, no network, a system call
# allow list without @privileged, no new privileges.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires systemd-analyze python3
mkdir -p "$tmpdir/units"
sed -e "s|@sbindir@|$top_builddir|g" -e "s|@sysconfdir@|/etc|g" \
        "$top_srcdir/systemd/savd.service.in" >"$tmpdir/units/savd.service"
cp "$top_srcdir/systemd/savd.socket" "$tmpdir/units/"
cd "$tmpdir/units"
systemd-analyze security --offline=true --no-pager ./savd.service >"$tmpdir/security.txt" 2>&1 ||
        { cat "$tmpdir/security.txt"; skip "systemd-analyze security --offline does not work here"; }
tail -n 1 "$tmpdir/security.txt"
score=$(sed -n 's/.*Overall exposure level for savd.service: \([0-9.]*\).*/\1/p' "$tmpdir/security.txt")
[[ -n $score ]] || { cat "$tmpdir/security.txt"; fail "no overall exposure level"; }
python3 -c 'import sys; sys.exit(float(sys.argv[1]) > 1.5)' "$score" || fail "exposure $score > 1.5"
for want in "CapabilityBoundingSet=~CAP_SYS_ADMIN" "PrivateNetwork=" "NoNewPrivileges=" \
            "SystemCallFilter=~@privileged" "RestrictAddressFamilies=~AF_(INET|INET6)" \
            "User=/DynamicUser=" "MemoryDenyWriteExecute=" "ProtectSystem="; do
        grep -qF "✓ $want " "$tmpdir/security.txt" || { cat "$tmpdir/security.txt"; fail "not confined: $want"; }
done
