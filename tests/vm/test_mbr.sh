#!/usr/bin/env bash
# Issue 5 point 4e: SeaBIOS boots a boot sector from a qcow2 served over
# the disk path. The sector (mbr/boot.S) reads the first 1 MiB through
# INT 13h, prints its dword sum and the marker string of LBA 1 on COM1 and
# exits QEMU through isa-debug-exit with status 33. The disk: the sector,
# a random marker, random data and a zero range, converted to a compressed
# qcow2 (compressed, plain and unallocated clusters).
. "$(dirname "$0")/lib/vm.sh"
vm_require_disk_path
need as ld   # the boot sector is assembled (tests/lib/need.sh: skip without)

case_begin "SeaBIOS boots a qcow2 boot sector"
as --32 -o "$T/boot.o" "$VM_DIR/mbr/boot.S"
ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o "$T/boot.bin" "$T/boot.o"
[ "$(stat -c %s "$T/boot.bin")" = 512 ] || setup_error "boot sector is not 512 bytes"
marker="scuse-mbr-$RANDOM$RANDOM"
head -c 2M /dev/urandom >"$T/disk.raw"
dd if=/dev/zero of="$T/disk.raw" bs=64k seek=8 count=4 conv=notrunc status=none
dd if="$T/boot.bin" of="$T/disk.raw" conv=notrunc status=none
printf '%s\0' "$marker" | dd of="$T/disk.raw" bs=512 seek=1 conv=notrunc status=none
qemu-img convert -c -f raw -O qcow2 "$T/disk.raw" "$T/disk.qcow2"
want=$("$PYTHON" -S -c '
import struct, sys
d = open(sys.argv[1], "rb").read(1 << 20)
print("%08X" % (sum(struct.unpack("<%dI" % (len(d) // 4), d)) & 0xffffffff))' "$T/disk.raw")

vm_lun 0 "$T/disk.qcow2" "format=qcow2,readonly,serial=VMT-MBR"
VM_FIRMWARE_ARGS=(-device isa-debug-exit,iobase=0xf4,iosize=0x04 -boot strict=on)
vm_boot mbr ""
[ "$VM_RC" = 33 ] || fail "QEMU exited $VM_RC, 33 (isa-debug-exit 0x10) expected: $(grep SCUSE-MBR "$T/mbr.log" | tr '\n' ' ') $(head -n 2 "$T/mbr.qemu.err")"
got=$(sed -n 's/^SCUSE-MBR sum=//p' "$T/mbr.log")
[ "$got" = "$want" ] || fail "the boot sector summed $got, the host $want"
got=$(sed -n 's/^SCUSE-MBR marker=//p' "$T/mbr.log")
[ "$got" = "$marker" ] || fail "the boot sector read the marker '$got', '$marker' expected"
echo "  firmware boot: $VM_SECS s"
case_end
finish
