# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers for end-to-end tests and the demo that run real QEMU VMs.  Guest
# RAM lives in a shared memory-backend-file, so a test can fill it from
# outside before a save and compare it after a restore.  Source after
# tests/functions.sh (or define $tmpdir and a cleanup trap yourself).

: "${QEMU:=qemu-system-x86_64}"
: "${QMP:=python3 ${top_srcdir:-$(dirname "${BASH_SOURCE[0]}")/..}/tests/qmp.py}"

# The accelerator: KVM when this process can use it, TCG otherwise.
vm_accel()
{
        if [[ -r /dev/kvm && -w /dev/kvm ]] && \
           echo quit | timeout 20 "$QEMU" -accel kvm -machine none -nodefaults \
                   -display none -S -monitor stdio >/dev/null 2>&1; then
                echo kvm
        else
                echo tcg
        fi
}

# vm_start NAME RAMFILE SIZE [QEMU ARGS...]
# Boot a paused VM whose RAM is RAMFILE (created if missing); QMP socket
# at $tmpdir/NAME.qmp, pid in $tmpdir/NAME.pid.
vm_start()
{
        local name=$1 ram=$2 size=$3; shift 3
        local qmp=$tmpdir/$name.qmp
        [[ -e $ram ]] || truncate -s "$size" "$ram"
        "$QEMU" -machine q35,accel="${VM_ACCEL:=$(vm_accel)}" -m "$size" \
                -object memory-backend-file,id=m0,size="$size",mem-path="$ram",share=on \
                -machine memory-backend=m0 \
                -nic none -vga none -display none -nodefaults -S \
                -qmp unix:"$qmp",server=on,wait=off \
                -pidfile "$tmpdir/$name.pid" -daemonize "$@" \
                2>"$tmpdir/$name.err" || { cat "$tmpdir/$name.err" >&2; return 1; }
        local i
        for ((i = 0; i < 100; i++)); do
                [[ -S $qmp ]] && return 0
                sleep 0.1
        done
        echo "vm_start: $name: no QMP socket" >&2
        return 1
}

vm_qmp() { local name=$1; shift; $QMP "$tmpdir/$name.qmp" "$@"; }

vm_stop()
{
        local pidf=$tmpdir/$1.pid
        [[ -f $pidf ]] || return 0
        kill "$(cat "$pidf")" 2>/dev/null || true
        local i
        for ((i = 0; i < 50; i++)); do
                kill -0 "$(cat "$pidf")" 2>/dev/null || break
                sleep 0.1
        done
        kill -9 "$(cat "$pidf")" 2>/dev/null || true
        rm -f "$pidf"
}

# vm_fill_ram RAMFILE SIZE_MIB: a guest image with random, zero, repeated
# and sparse regions (quarters of the RAM), reproducible from a seed.
vm_fill_ram()
{
        python3 - "$1" "$2" <<'PY'
import os, random, sys
path, mib = sys.argv[1], int(sys.argv[2])
size = mib << 20
q = size // 4
rng = random.Random(20261125)
with open(path, "r+b") as f:
    f.seek(0)
    left = q                                   # 1: random
    while left:
        n = min(left, 8 << 20)
        f.write(rng.randbytes(n)); left -= n
    # 2: zero — RAMFILE is a fresh sparse file, so it already is
    f.seek(2 * q)                              # 3: one page repeated
    page = rng.randbytes(4096)
    f.write(page * (q // 4096))
    for i in range(0, q // 4096, 7):           # 4: sparse, every 7th page
        f.seek(3 * q + i * 4096)
        f.write(rng.randbytes(4096))
PY
}
