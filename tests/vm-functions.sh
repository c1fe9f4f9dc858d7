# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers for end-to-end tests, the demo and the benchmark that run real
# QEMU VMs.  Guest RAM lives in a shared memory-backend-file, so a test can
# fill it from outside before a save and compare it after a restore.  The
# guests are paused (-S), have no NIC and no display; KVM when this process
# can use it, TCG otherwise.  Source after tests/functions.sh (or define
# $tmpdir and a cleanup trap yourself).

: "${QEMU:=qemu-system-x86_64}"
: "${QMP:=python3 ${top_srcdir:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}/tests/qmp.py}"
# QEMU's default max-bandwidth (128 MiB/s in 7.2) would be what is measured.
VM_MAX_BANDWIDTH=${VM_MAX_BANDWIDTH:-107374182400}

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
# at $tmpdir/NAME.qmp, pid in $tmpdir/NAME.pid.  VM_MACHINE picks the
# machine type (default q35); VM_DEFAULT_DEVICES=1 keeps QEMU's default
# devices (the reference files in $SAVD_TESTDATA were made with them).
vm_start()
{
        local name=$1 ram=$2 size=$3; shift 3
        local qmp=$tmpdir/$name.qmp nodefaults=(-nodefaults)
        [[ ${VM_DEFAULT_DEVICES:-0} == 1 ]] && nodefaults=()
        [[ -e $ram ]] || truncate -s "$size" "$ram"
        "$QEMU" -machine "${VM_MACHINE:-q35}",accel="${VM_ACCEL:=$(vm_accel)}" -m "$size" \
                -object memory-backend-file,id=m0,size="$size",mem-path="$ram",share=on \
                -machine memory-backend=m0 \
                -nic none -vga none -display none "${nodefaults[@]}" -S \
                -qmp unix:"$qmp",server=on,wait=off \
                -pidfile "$tmpdir/$name.pid" -daemonize "$@" \
                2>"$tmpdir/$name.err" || { cat "$tmpdir/$name.err" >&2; return 1; }
        # QEMU removes its pid file when it exits: keep our own copy.
        cp "$tmpdir/$name.pid" "$tmpdir/$name.vmpid"
        local i
        for ((i = 0; i < 100; i++)); do
                [[ -S $qmp ]] && return 0
                sleep 0.1
        done
        echo "vm_start: $name: no QMP socket" >&2
        return 1
}

vm_qmp() { local name=$1; shift; $QMP "$tmpdir/$name.qmp" "$@"; }

vm_pid() { cat "$tmpdir/$1.vmpid" 2>/dev/null; }

# vm_alive NAME: the VM's process still runs.
vm_alive() { local p; p=$(vm_pid "$1") && [[ -n $p ]] && kill -0 "$p" 2>/dev/null; }

vm_stop()
{
        local pid i
        pid=$(vm_pid "$1") || return 0
        [[ -n $pid ]] || return 0
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$tmpdir/$1.vmpid" "$tmpdir/$1.pid"
}

# vm_kill NAME: SIGKILL, as a crash would.
vm_kill()
{
        local pid
        pid=$(vm_pid "$1") || return 0
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$tmpdir/$1.vmpid" "$tmpdir/$1.pid"
}

# vm_migrate NAME URI: migrate with the bandwidth limit lifted and wait
# until QEMU reports the migration completed (non-zero if it failed).
vm_migrate()
{
        vm_qmp "$1" migrate-set-parameters "{\"max-bandwidth\": $VM_MAX_BANDWIDTH}" >/dev/null &&
        vm_qmp "$1" migrate "{\"uri\": \"$2\"}" >/dev/null &&
        vm_qmp "$1" --wait-migration
}

# vm_wait_socket PATH: until a listening socket appears (QEMU -incoming).
vm_wait_socket()
{
        local i
        for ((i = 0; i < 100; i++)); do
                [[ -S $1 ]] && return 0
                sleep 0.05
        done
        echo "no socket at $1" >&2
        return 1
}

# vm_ram_dir: a private directory for guest RAM files, on tmpfs when there
# is one (guest RAM lives in memory, not on the disk being measured).
vm_ram_dir()
{
        local base=${SAVD_RAM_DIR:-/dev/shm}
        [[ -d $base && -w $base ]] || base=$tmpdir
        mktemp -d "$base/savd-ram.XXXXXX"
}

# vm_fill_ram RAMFILE SIZE_MIB: a guest image with random, zero, repeated
# and sparse regions (quarters of the RAM), reproducible from a seed.
vm_fill_ram()
{
        python3 - "$1" "$2" <<'PY'
import random, sys
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

# vm_fill_half_random RAMFILE SIZE_MIB: the first half random, the rest
# zero (the demo's and the benchmark's guest).
vm_fill_half_random()
{
        python3 - "$1" "$2" <<'PY'
import os, sys
path, mib = sys.argv[1], int(sys.argv[2])
left = (mib << 20) // 2
with open(path, "r+b") as f:
    while left:
        n = min(left, 64 << 20)
        f.write(os.urandom(n)); left -= n
PY
}

# savd_save NAME OUTPUT: start a save job through savctl (the daemon of
# tests/functions.sh); sets $job and $uri (its data URI).
savd_save()
{
        "$SAVCTL" --socket "$sock" --json save "$1" --output "$2" >"$tmpdir/save.json" || return 1
        read -r job uri < <(python3 -c 'import json, sys
r = json.load(open(sys.argv[1])); print(r["job"], r["data-uri"])' "$tmpdir/save.json")
}
