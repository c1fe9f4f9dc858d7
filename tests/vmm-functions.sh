# SPDX-License-Identifier: LGPL-2.1-or-later
# Sourced by the tests that drive tools/example-vmm (after functions.sh):
# reading its "key value" report lines and comparing two of its guests.

# vmm_field KEY FILE: the value of the report line "KEY VALUE" in FILE.
vmm_field() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }

# same_guest SAVED RESTORED: two example-vmm reports describe the same
# guest (memory and device-state hashes) and the VM name came back.
same_guest()
{
        local k a b
        for k in memory-hash device-state-hash; do
                a=$(vmm_field "$k" "$1") b=$(vmm_field "$k" "$2")
                [[ -n $a && $a == "$b" ]] || fail "$k after restore: '$b', saved '$a'"
        done
        [[ $(vmm_field vm-name "$2") == example-vmm ]] || fail "VM name not restored"
}
