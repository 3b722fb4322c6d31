#!/usr/bin/env bash
# Issue 5 point 4c: sg3_utils in the guest against LUN 0 (a writable
# 3-layer chain with a configured identity): sg_inq (standard, VPD 00, 80,
# 83, B0, B1, B2), sg_readcap (10 and 16), sg_luns, sg_modes, sg_opcodes
# (RSOC, RTMF), sg_turs, sg_get_lba_status, sg_unmap, sg_write_same,
# sg_compare_and_write, sg_verify, sg_sync. lib/sgcheck.py judges every
# output against the --lun options and the image, and the data commands on
# the image itself (before/after conversions); `qemu-img check` must be
# clean after the run.
. "$(dirname "$0")/lib/vm.sh"
vm_require_disk_path
vm_guest

VENDOR=SCUSEVM PRODUCT=vm-test-disk SERIAL=VMT-SG-0001 WWN=0x5000c50015ea71ac
case_begin "sg3_utils probes of one LUN"
vm_make_chain "$T/img"
qemu-img convert -O raw "$T/img/top.qcow2" "$T/before.raw"
vm_lun 0 "$T/img/top.qcow2" \
    "format=qcow2,serial=$SERIAL,wwn=$WWN,vendor=$VENDOR,product=$PRODUCT,discard=unmap,cache=writeback"
vm_boot sg sg
if vm_check_boot sg sg; then
    qemu-img convert -O raw "$T/img/top.qcow2" "$T/after.raw"
    if ! "$PYTHON" -S "$VM_LIB/sgcheck.py" --log "$T/sg.log" --disk "$SCUSE_VM_DISK" \
            --vendor "$VENDOR" --product "$PRODUCT" --serial "$SERIAL" --wwn "$WWN" \
            --size $((64 << 20)) --block-size 512 --cluster-size 65536 \
            --before "$T/before.raw" --after "$T/after.raw" --map "$T/img/top.map.json" \
            >"$T/sgcheck.out"; then
        grep -E '^FAIL' "$T/sgcheck.out" | sed 's/^/  /' >&2
        fail "sgcheck: $(tail -n 1 "$T/sgcheck.out") (all checks in $T/sgcheck.out)"
    fi
    echo "  $(grep -c '^ok' "$T/sgcheck.out") checks ok, $(grep -c '^n/a' "$T/sgcheck.out") n/a for $SCUSE_VM_DISK"
fi
if ! out=$(qemu-img check "$T/img/top.qcow2" 2>&1); then
    fail "qemu-img check after the sg commands: $out"
fi
case_end
finish
