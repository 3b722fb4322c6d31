#!/usr/bin/env bash
# Issue 5 point 4a: the guest reads the whole disk of a 3-layer qcow2 chain
# (compressed and zero clusters in the top) with O_DIRECT and through the
# page cache; both sha256 must equal the host's `qemu-img convert -O raw`
# digest, and the disk size the image's virtual size. The LUN is served
# read-only: the guest must not change the chain (files checked too).
. "$(dirname "$0")/lib/vm.sh"
vm_require_disk_path
vm_guest

case_begin "whole-disk sha256 of a 3-layer chain"
vm_make_chain "$T/img"
qemu-img convert -O raw "$T/img/top.qcow2" "$T/want.raw"
want=$(sha256sum <"$T/want.raw" | cut -d' ' -f1)
size=$(stat -c %s "$T/want.raw")
before=$(cd "$T/img" && sha256sum base.qcow2 mid.qcow2 top.qcow2)
vm_lun 0 "$T/img/top.qcow2" "format=qcow2,readonly,serial=VMT-READ"
vm_boot read read
if vm_check_boot read read; then
    read -r _ _ _ bytes <<<"$(vm_markers read DISK)"
    [ "$bytes" = "$size" ] || fail "the guest sees $bytes bytes, the image has $size"
    for how in direct buffered; do
        got=$(vm_markers read SHA256 | awk -v h="$how" '$2 == h { print $3 }')
        [ "$got" = "$want" ] || fail "$how read: guest sha256 $got, qemu-img convert $want"
    done
    echo "  guest read the disk in $(vm_markers read SHA256 | awk '$2 == "direct" { print $5 - $4 }') s (O_DIRECT), boot $VM_SECS s"
fi
after=$(cd "$T/img" && sha256sum base.qcow2 mid.qcow2 top.qcow2)
[ "$before" = "$after" ] || fail "a read-only LUN's image files changed"
case_end
finish
