#!/usr/bin/env bash
# The optical demo (`./build.sh demo-cd`): an ISO made here with xorriso,
# with an El Torito boot image (tests/vm/mbr/eltorito.S), served by
# `scuse serve --lun 0=demo.iso,device=cdrom`:
#  1. SeaBIOS boots it (QEMU under TCG): the boot image prints what the
#     BIOS told it (the drive, 2048-byte sectors) and the volume label it
#     read through scuse;
#  2. the test guest of tests/vm mounts it through Linux's sr driver and
#     hashes its files, next to the host's digests.
#
#   SCUSE=build/scuse bash samples/demo_cd.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
export SCUSE=${SCUSE:-$top/build/scuse}
export SCUSE_VM_CACHE=${SCUSE_VM_CACHE:-$top/build/vm-cache}
export SCUSE_TEST_TMP=$here/out-cd
export SCUSE_VM_DISK=vhost
# shellcheck source=../tests/vm/lib/vm.sh
. "$top/tests/vm/lib/vm.sh"             # the guest harness; cds to out-cd/
need as ld xorriso

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '   %s\n' "$@"; }
vm_require_disk_path
[ -x "$SCUSE" ] || { echo "demo-cd: $SCUSE not built (./build.sh)" >&2; exit 1; }

say "A bootable ISO made with xorriso"
as --32 -o "$T/eltorito.o" "$top/tests/vm/mbr/eltorito.S"
ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o "$T/eltorito.bin" "$T/eltorito.o"
mkdir -p "$T/iso/boot" "$T/iso/docs"
cp "$T/eltorito.bin" "$T/iso/boot/"
cp "$top/README.md" "$T/iso/docs/README.md"
head -c 2M /dev/urandom >"$T/iso/random.bin"
xorriso -as mkisofs -quiet -R -V SCUSE_DEMO_CD -b boot/eltorito.bin -no-emul-boot \
    -boot-load-size 4 -o "$T/demo.iso" "$T/iso" 2>/dev/null
show "$(stat -c %s "$T/demo.iso") bytes, volume SCUSE_DEMO_CD, El Torito no-emulation boot image"

vm_lun 0 "$T/demo.iso" "device=cdrom,serial=DEMO-CD-01"
say "SeaBIOS boots it from scuse serve"
vm_serve_cmd "$T/cdboot.sock" "$T/cdboot.serve.pid"
show "$(printf '%q ' "${SERVE_CMD[@]}")"
VM_FIRMWARE_ARGS=(-device isa-debug-exit,iobase=0xf4,iosize=0x04 -boot strict=on)
vm_boot cdboot ""
grep '^SCUSE-CD' "$T/cdboot.log" | sed 's/^/   console: /'
show "QEMU exited $VM_RC (33: the boot image's isa-debug-exit) after $VM_SECS s"
[ "$VM_RC" = 33 ] || fail "the firmware boot did not end in the boot image"

say "Linux mounts it through sr (the test guest of tests/vm)"
vm_guest optical
vm_boot democd democd
sed -n '/^@@ BEGIN identity$/,/^@@ END identity/p' "$T/democd.log" |
    grep -E 'identification:|PDT=' | sed 's/^ */   guest: /'
show "guest: mounted $(vm_markers democd MOUNTED | awk '{ print $1 ", " $2 * 512 " bytes" }')"
vm_markers democd FILE | while read -r f sum; do
    if [ ! -f "$T/iso/$f" ]; then
        show "guest: $f $sum (made by xorriso)"
        continue
    fi
    want=$(sha256sum <"$T/iso/$f" | cut -d' ' -f1)
    show "guest: $f $sum $([ "$sum" = "$want" ] && echo '= host' || echo "DIFFERS from the host's $want")"
done
vm_check_boot democd democd || true
[ "$FAILS" -eq 0 ] || { echo "demo-cd: something failed (logs in $T)" >&2; exit 1; }
vm_cleanup
echo
echo "demo-cd: done (consoles in $T/cdboot.log, $T/democd.log)"
