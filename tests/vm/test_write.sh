#!/usr/bin/env bash
# Issue 5 point 4b: the guest writes at random offsets of the top of a
# 3-layer chain with O_DIRECT and fsync, reads every range back, powers
# off. On the host: `qemu-img check` is clean, the backing files are
# untouched, and `qemu-img compare` finds the image equal to the expected
# raw image: the chain before the run plus every write the guest reported
# (@@ WRITE I OFF LEN SEED), replayed with the same data generator.
# Knobs: SCUSE_VM_WRITES (default 48), SCUSE_VM_SEED (default: random).
. "$(dirname "$0")/lib/vm.sh"
vm_require_disk_path
vm_guest

nw=${SCUSE_VM_WRITES:-48}
seed=${SCUSE_VM_SEED:-$((RANDOM * 32768 + RANDOM + 1))}
case_begin "random O_DIRECT writes into a 3-layer chain (seed $seed, $nw writes)"
vm_make_chain "$T/img"
qemu-img convert -O raw "$T/img/top.qcow2" "$T/want.raw"
backing=$(cd "$T/img" && sha256sum base.qcow2 mid.qcow2)
vm_lun 0 "$T/img/top.qcow2" "format=qcow2,serial=VMT-WRITE"
vm_boot write write "scuse_seed=$seed" "scuse_writes=$nw"
if vm_check_boot write write; then
    n=0
    while read -r i off len s; do
        gen "$i" "$off" "$len" "$s" | dd of="$T/want.raw" bs=512 seek=$((off / 512)) \
            conv=notrunc status=none
        n=$((n + 1))
    done < <(vm_markers write WRITE)
    [ "$n" -eq "$nw" ] || fail "the guest reported $n writes, $nw asked"
    ok=$(vm_markers write VERIFY | grep -c ' ok$' || true)
    [ "$ok" -eq "$nw" ] || fail "the guest read back $ok of $nw ranges correctly"
    [ "$(vm_markers write WRITES)" = "$nw" ] || fail "no '@@ WRITES $nw' from the guest"
fi
if ! out=$(qemu-img check "$T/img/top.qcow2" 2>&1); then
    fail "qemu-img check of the written top: $out"
fi
if ! out=$(qemu-img compare -f qcow2 -F raw "$T/img/top.qcow2" "$T/want.raw" 2>&1); then
    fail "image content differs from what the guest wrote: $out"
fi
[ "$backing" = "$(cd "$T/img" && sha256sum base.qcow2 mid.qcow2)" ] ||
    fail "a backing file changed"
case_end
finish
