#!/usr/bin/env bash
# Issue 5 point 4f: a Linux boot through the disk path under test against
# QEMU's own virtio-scsi + scsi-hd (cache=none, aio=threads) on the same
# image, with the same guest (scuse_test=boot: find the disk, read 16 MiB,
# power off), runs interleaved. Prints each boot-to-poweroff time (QEMU
# start to exit), the medians and their ratio (the goal for scuse: at most
# 1.05). Pass/fail judges only that every boot worked, never the ratio.
# With SCUSE_VM_DISK=scsi-hd both sides are scsi-hd (checks the harness).
# Knob: SCUSE_VM_BOOT_RUNS (boots per side, default 3).
. "$(dirname "$0")/lib/vm.sh"
vm_require_disk_path
vm_guest

runs=${SCUSE_VM_BOOT_RUNS:-3}
side_a=$SCUSE_VM_DISK
side_b=scsi-hd
case_begin "boot time: $side_a against $side_b, $runs boots each"
vm_make_chain "$T/img"
vm_lun 0 "$T/img/top.qcow2" "format=qcow2,readonly,serial=VMT-BOOT"
declare -a times_a=() times_b=()
for ((r = 1; r <= runs; r++)); do
    for side in a b; do
        if [ $side = a ]; then SCUSE_VM_DISK=$side_a; else SCUSE_VM_DISK=$side_b; fi
        vm_boot "boot-$side$r" boot
        if vm_check_boot "boot-$side$r" boot; then
            if [ $side = a ]; then times_a+=("$VM_SECS"); else times_b+=("$VM_SECS"); fi
            printf '  run %d %-8s %6.2f s (guest powered off at %s s uptime)\n' "$r" "$SCUSE_VM_DISK" \
                "$VM_SECS" "$(vm_markers "boot-$side$r" POWEROFF)"
        fi
    done
done
SCUSE_VM_DISK=$side_a
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
if [ ${#times_a[@]} -eq "$runs" ] && [ ${#times_b[@]} -eq "$runs" ]; then
    ma=$(median "${times_a[@]}")
    mb=$(median "${times_b[@]}")
    ratio=$(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.3f", a / b }')
    echo "  median boot-to-poweroff: $side_a $ma s, $side_b $mb s"
    echo "  BOOT RATIO $side_a/$side_b = $ratio (goal for scuse: <= 1.05; $runs runs each, TCG)"
    echo "$side_a $ma $side_b $mb $ratio" >"$T/ratio"
fi
case_end
finish
