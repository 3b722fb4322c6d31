#!/usr/bin/env bash
# Issue 5 point 4d: two LUNs and two request queues (-smp 2,
# num_queues=2). LUN 0 is a read-only 3-layer qcow2 chain, LUN 1 a
# writable raw image. The guest must find both (REPORT LUNS lists both),
# see two blk-mq queues on each, read both whole disks at once from two
# CPUs (sha256 = the host's), write into LUN 1 from both CPUs at once, and
# take interrupts on both request queues.
. "$(dirname "$0")/lib/vm.sh"
vm_require_disk_path
vm_guest

seed=$((RANDOM + 1))
case_begin "two LUNs, two queues, two CPUs"
vm_make_chain "$T/img"
qemu-img convert -O raw "$T/img/top.qcow2" "$T/want0.raw"
head -c 32M /dev/urandom >"$T/lun1.raw"
cp "$T/lun1.raw" "$T/want1.raw"
want0=$(sha256sum <"$T/want0.raw" | cut -d' ' -f1)
want1=$(sha256sum <"$T/lun1.raw" | cut -d' ' -f1)
vm_lun 0 "$T/img/top.qcow2" "format=qcow2,readonly,serial=VMT-MQ-0"
vm_lun 1 "$T/lun1.raw" "format=raw,serial=VMT-MQ-1"
VM_SMP=2 VM_QUEUES=2 vm_boot multi multi "scuse_seed=$seed"
if vm_check_boot multi multi; then
    for l in 0 1; do
        q=$(vm_markers multi QUEUES | awk -v l=$l '$1 == l { print $2 }')
        [ "$q" = 2 ] || fail "LUN $l: the guest has $q blk-mq queues, 2 expected"
    done
    luns=$(sed -n '/^@@ BEGIN luns$/,/^@@ END luns/p' "$T/multi.log" | grep -Eo '^ +[0-9a-f]{16}' | tr -d ' ' | sort | tr '\n' ' ')
    [ "$luns" = "0000000000000000 0001000000000000 " ] || fail "REPORT LUNS from LUN 0: '$luns'"
    got0=$(vm_markers multi SHA256 | awk '$1 == 0 { print $3 }')
    got1=$(vm_markers multi SHA256 | awk '$1 == 1 { print $3 }')
    [ "$got0" = "$want0" ] || fail "LUN 0: guest sha256 $got0, qemu-img convert $want0"
    [ "$got1" = "$want1" ] || fail "LUN 1: guest sha256 $got1, the raw file $want1"
    n=0
    while read -r i off len s; do
        gen "$i" "$off" "$len" "$s" | dd of="$T/want1.raw" bs=512 seek=$((off / 512)) conv=notrunc status=none
        n=$((n + 1))
    done < <(vm_markers multi WRITE)
    [ "$n" = 2 ] || fail "the guest reported $n writes into LUN 1, 2 expected"
    cmp -s "$T/lun1.raw" "$T/want1.raw" || fail "LUN 1's file differs from what the guest wrote"
    irqs=$(vm_markers multi IRQ | awk '$2 > 0' | wc -l)
    [ "$irqs" -ge 2 ] || fail "interrupts on $irqs request queue(s), 2 expected: $(vm_markers multi IRQ | tr '\n' ' ')"
    echo "  request queue interrupts: $(vm_markers multi IRQ | tr '\n' ' ')"
fi
if ! out=$(qemu-img check "$T/img/top.qcow2" 2>&1); then
    fail "qemu-img check of LUN 0's image: $out"
fi
case_end
finish
