#!/usr/bin/env bash
# Issue 11 point 3: a guest reads and writes a VMDK chain (a zeroed-grain
# monolithicSparse child over a twoGbMaxExtentSparse parent, both made
# and filled by qemu-img/qemu-io; zeroed grains over parent data in the
# child). Two boots, as test_read.sh and test_write.sh:
#   read   the LUN read-only: the guest's sha256 of the whole disk (O_DIRECT
#          and buffered) = the host's `qemu-img convert -O raw`; the files
#          are unchanged
#   write  random O_DIRECT writes with fsync, read back by the guest; on the
#          host `qemu-img compare` with the replayed writes, `qemu-img
#          check -f vmdk` clean, the parent unchanged (its CID too, so
#          QEMU still accepts the child)
# Knobs: SCUSE_VM_WRITES (default 32), SCUSE_VM_SEED (default: random).
. "$(dirname "$0")/lib/vm.sh"
vm_require_disk_path
vm_guest

make_chain() { # DIR
    local d=$1
    mkdir -p "$d"
    head -c 1M /dev/urandom >"$d/random.bin"
    qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse "$d/base.vmdk" 64M
    qio -f vmdk -c 'write -P 0x11 0 8M' -c 'write -P 0x22 16M 4M' -c "write -s $d/random.bin 10M 1M" \
        -c 'write -P 0x23 40M 2M' "$d/base.vmdk"
    qemu-img create -q -f vmdk -o zeroed_grain=on -b base.vmdk -F vmdk "$d/top.vmdk" 64M
    qio -f vmdk -c 'write -z 0 1M' -c 'write -P 0x66 1M 64k' -c 'write -z 40M 512k' \
        -c "write -s $d/random.bin 12M 1M" -c 'write -P 0x67 20M 100k' "$d/top.vmdk"
    rm -f "$d/random.bin"
}

case_begin "whole-disk sha256 of a VMDK chain"
make_chain "$T/r"
qemu-img convert -O raw "$T/r/top.vmdk" "$T/want.raw"
want=$(sha256sum <"$T/want.raw" | cut -d' ' -f1)
size=$(stat -c %s "$T/want.raw")
before=$(cd "$T/r" && sha256sum ./*.vmdk)
vm_lun 0 "$T/r/top.vmdk" "format=vmdk,readonly,serial=VMT-VMDKR"
vm_boot vread read
if vm_check_boot vread read; then
    read -r _ _ _ bytes <<<"$(vm_markers vread DISK)"
    [ "$bytes" = "$size" ] || fail "the guest sees $bytes bytes, the image has $size"
    for how in direct buffered; do
        got=$(vm_markers vread SHA256 | awk -v h="$how" '$2 == h { print $3 }')
        [ "$got" = "$want" ] || fail "$how read: guest sha256 $got, qemu-img convert $want"
    done
fi
[ "$before" = "$(cd "$T/r" && sha256sum ./*.vmdk)" ] || fail "a read-only LUN's image files changed"
case_end
rm -f "$T/want.raw"

nw=${SCUSE_VM_WRITES:-32}
seed=${SCUSE_VM_SEED:-$((RANDOM * 32768 + RANDOM + 1))}
vm_luns_clear
case_begin "random O_DIRECT writes into a VMDK chain (seed $seed, $nw writes)"
make_chain "$T/w"
qemu-img convert -O raw "$T/w/top.vmdk" "$T/want.raw"
parent=$(cd "$T/w" && sha256sum base*.vmdk)
vm_lun 0 "$T/w/top.vmdk" "format=vmdk,serial=VMT-VMDKW"
vm_boot vwrite write "scuse_seed=$seed" "scuse_writes=$nw"
if vm_check_boot vwrite write; then
    n=0
    while read -r i off len s; do
        gen "$i" "$off" "$len" "$s" | dd of="$T/want.raw" bs=512 seek=$((off / 512)) \
            conv=notrunc status=none
        n=$((n + 1))
    done < <(vm_markers vwrite WRITE)
    [ "$n" -eq "$nw" ] || fail "the guest reported $n writes, $nw asked"
    ok=$(vm_markers vwrite VERIFY | grep -c ' ok$' || true)
    [ "$ok" -eq "$nw" ] || fail "the guest read back $ok of $nw ranges correctly"
fi
if ! out=$(qemu-img check -f vmdk "$T/w/top.vmdk" 2>&1); then
    fail "qemu-img check of the written child: $out"
fi
if ! out=$(qemu-img compare -f vmdk -F raw "$T/w/top.vmdk" "$T/want.raw" 2>&1); then
    fail "image content differs from what the guest wrote: $out"
fi
[ "$parent" = "$(cd "$T/w" && sha256sum base*.vmdk)" ] || fail "the parent changed"
case_end
finish
