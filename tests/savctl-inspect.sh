#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# savctl inspect / verify end to end: the mapped-ram file written by QEMU
# 10.2 must be reported valid with its exact blocks and page counts (text
# and JSON); corrupted and truncated copies in a temporary directory must
# be refused with exit code 4 and the defect's offset; a missing file is
# exit code 1.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires python3

qfile=$SAVD_TESTDATA/q10-mapped-ram.mrm
out=$tmpdir/out.txt
err=$tmpdir/err

# run EXPECTED_RC savctl-args...: output in $out and $err
run() { expect_status "$1" "$SAVCTL" "${@:2}"; }

# has_line REGEX: some line of $out matches (extended regex)
has_line() { grep -Eq -- "$1" "$out" || { cat "$out" >&2; fail "no line matches '$1'"; }; }

patch() {       # patch FILE OFFSET BYTES (printf format)
        printf "$3" | dd of="$1" bs=1 seek=$(($2)) conv=notrunc status=none
}

[[ -r $qfile ]] || fail "missing $qfile"

# The QEMU file as it is.
run 0 verify "$qfile"
[[ $(cat "$out") == "$qfile: valid (6 blocks, 2770 pages present)" ]] ||
        fail "verify output: $(cat "$out")"

run 0 inspect "$qfile"
assert_contains "$out" "machine:         pc-q35-7.2"
assert_contains "$out" "capabilities:    mapped-ram"
assert_contains "$out" "ram section id:  1"
assert_contains "$out" "blocks:          6, 0x2082000 bytes"
has_line '^  m0 +0x2000000 +4096 +0x86 +0x100000 +2721 +5471$'
has_line '^  pc.bios +0x40000 +4096 +0x222002c +0x2300000 +44 +20$'
has_line '^  pc.rom +0x20000 +4096 +0x234002b +0x2400000 +0 +32$'
assert_contains "$out" "pages:           2770 present, 5552 zero"
assert_contains "$out" "device state:    offset 0x2601031, 32582 bytes"
assert_contains "$out" "vmdesc:          44751 bytes at 0x2608f7d"
assert_contains "$out" "status:          valid"

# JSON, by the command's option and by the global one.
for args in "inspect --json $qfile" "--json inspect $qfile"; do
        run 0 $args
        python3 - "$out" <<'EOF' || fail "JSON of '$args'"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["valid"] is True and d["machine"] == "pc-q35-7.2", d
assert d["capabilities"] == ["mapped-ram"] and d["uuid"] is None
b = {x["name"]: x for x in d["blocks"]}
assert list(b) == ["m0", "/rom@etc/acpi/tables", "pc.bios", "pc.rom",
                   "/rom@etc/table-loader", "/rom@etc/acpi/rsdp"]
m0 = b["m0"]
assert (m0["used-length"], m0["bitmap-offset"], m0["pages-offset"]) == (0x2000000, 0x86, 0x100000)
assert (m0["pages-present"], m0["pages-zero"]) == (2721, 5471)
assert b["/rom@etc/acpi/rsdp"]["pages-offset"] == 0x2600000
assert d["pages-present"] == 2770 and d["device-offset"] == 0x2601031
assert d["device-size"] == 32582 and d["vmdesc-size"] == 44751
EOF
done

# A corrupted header version: refused with the field's offset.
bad=$tmpdir/bad.mrm
cp --sparse=always "$qfile" "$bad"
patch "$bad" 0x6d '\x02'
run 4 verify "$bad"
assert_contains "$err" "$bad: invalid: block 'm0': MappedRamHeader version 2, expected 1 at offset 0x6a"
run 4 inspect --json "$bad"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["valid"] is False and d["error"]["offset"] == 0x6a' \
        "$out" || fail "JSON error"

# A bit set beyond a one-page block.
cp --sparse=always "$qfile" "$bad"
patch "$bad" 0x2501037 '\x03'
run 4 verify "$bad"
assert_contains "$err" "bit for page 1 is set, beyond its 1 pages at offset 0x2501037"

# A broken vmdesc: inspect still shows the layout, then the defect.
cp --sparse=always "$qfile" "$bad"
patch "$bad" 0x2608f7d '#'
run 4 inspect "$bad"
assert_contains "$out" "device state:    offset 0x2601031"
assert_contains "$err" "vmdesc JSON is not valid"

# Truncated inside the RAM tail and inside the device state.
cp --sparse=always "$qfile" "$bad"
truncate -s $((0x2601010)) "$bad"
run 4 verify "$bad"
assert_contains "$err" "invalid: truncated"
cp --sparse=always "$qfile" "$bad"
truncate -s $((0x2605000)) "$bad"
run 4 verify "$bad"
assert_contains "$err" "missing EOF and vmdesc trailer"

# Not a file at all, and bad usage.
run 1 verify "$tmpdir/nonexistent"
assert_contains "$err" "open '$tmpdir/nonexistent': No such file or directory"
run 1 inspect "$tmpdir"
run 2 verify
run 2 verify "$qfile" extra

echo "savctl-inspect: ok"
