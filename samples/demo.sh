#!/usr/bin/env bash
# The demo (`./build.sh demo`): a sample qcow2 chain served to a real
# guest. It makes a three-layer chain under
# samples/out-vm/, starts `scuse serve --vhost-user-scsi` on it, boots the
# test guest of tests/vm (QEMU under TCG), shows the guest's console (the
# disk identity it sees, the digest of what it read against the host's, a
# write and its read-back), stops everything and prints `scuse check`.
#
#   SCUSE=build/scuse bash samples/demo.sh
#   SCUSE_VM_DISK=scsi-hd bash samples/demo.sh     # QEMU's own virtio-scsi
#                                                   # serves the disk instead
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
export SCUSE=${SCUSE:-$top/build/scuse}
export SCUSE_VM_CACHE=${SCUSE_VM_CACHE:-$top/build/vm-cache}
export SCUSE_TEST_TMP=$here/out-vm
# shellcheck source=../tests/vm/lib/vm.sh
. "$top/tests/vm/lib/vm.sh"             # the guest harness; cds to out-vm/

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '   %s\n' "$@"; }
vm_require_disk_path
[ -x "$SCUSE" ] || { echo "demo: $SCUSE not built (./build.sh)" >&2; exit 1; }

say "A sample chain made with qemu-img (base <- mid <- top)"
vm_make_chain "$T/layers"
"$SCUSE" info --backing-chain "$T/layers/top.qcow2" | grep -E '^(image|virtual size|backing file):' | sed 's/^/   /'
qemu-img convert -O raw "$T/layers/top.qcow2" "$T/host.raw"
host_sum=$(sha256sum <"$T/host.raw" | cut -d' ' -f1)
rm -f "$T/host.raw"
show "host: qemu-img convert -O raw | sha256sum = $host_sum"

say "The test guest (Debian packages, cached in $SCUSE_VM_CACHE)"
vm_guest
show "kernel $(basename "$(dirname "$VMLINUX")")/vmlinux, $(basename "$INITRD")"

WWN=0x5000c5005ca1ab1e
vm_lun 0 "$T/layers/top.qcow2" "format=qcow2,serial=DEMO-0001,wwn=$WWN,vendor=SCUSE,product=demo-disk"
if [ "$SCUSE_VM_DISK" = vhost ]; then
    say "Serving it: scuse serve (vhost-user-scsi), then QEMU"
    vm_serve_cmd "$T/demo.sock" "$T/demo.serve.pid"
    show "$(printf '%q ' "${SERVE_CMD[@]}")"
else
    say "Serving it: QEMU's own virtio-scsi + scsi-hd (SCUSE_VM_DISK=scsi-hd)"
fi
lba=4096
vm_boot demo demo "scuse_demo_lba=$lba"
stopped="QEMU ran $VM_SECS s (TCG) and exited $VM_RC"
[ "$SCUSE_VM_DISK" != vhost ] || stopped+="; scuse serve --once exited $VM_SERVE_RC"
show "$stopped"

say "The guest's console"
sed -n '/^@@ BEGIN identity$/,/^@@ END identity/p' "$T/demo.log" |
    grep -E 'identification:|revision level:|serial number:|PDT=' | sed 's/^ */   guest: /'
sed -n '/^@@ BEGIN vpd83$/,/^@@ END vpd83/p' "$T/demo.log" | grep -A1 -E 'designator type: NAA' |
    tail -n 1 | sed 's/^ */   guest: VPD 83 NAA /'
guest_sum=$(vm_markers demo SHA256 | awk '{ print $3 }')
show "guest: read the whole disk with O_DIRECT: sha256 $guest_sum"
if [ -n "$guest_sum" ] && [ "$guest_sum" = "$host_sum" ]; then
    show "       = the host's qemu-img convert digest"
else
    show "       DIFFERS from the host's $host_sum"
fi
show "guest: wrote LBA $(vm_markers demo WROTE)"
show "guest: read back LBA $(vm_markers demo READBACK)"
vm_check_boot demo demo || true

say "On the host, after the VM"
"$SCUSE" convert -O raw "$T/layers/top.qcow2" "$T/after.raw"
show "scuse convert, LBA $lba: $(dd if="$T/after.raw" bs=512 skip=$lba count=1 status=none | head -n 1 | sed 's/ *$//')"
rm -f "$T/after.raw"
echo "   scuse check layers/top.qcow2:"
rc=0
"$SCUSE" check "$T/layers/top.qcow2" | sed 's/^/     /' || rc=$?
echo "   qemu-img check (the judge):"
qemu-img check "$T/layers/top.qcow2" | sed 's/^/     /' || rc=1
[ "$FAILS" -eq 0 ] && [ "$rc" -eq 0 ] || { echo "demo: something failed (logs in $T)" >&2; exit 1; }
vm_cleanup
echo
echo "demo: done (console in $T/demo.log)"
