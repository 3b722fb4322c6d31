#!/usr/bin/env bash
# Issue 14: optical LUNs (MMC) served by `scuse serve --lun N=IMG,device=cdrom`.
#  1. SeaBIOS boots an El Torito ISO made here by xorriso (no-emulation
#     boot image mbr/eltorito.S): the image asks the BIOS for the drive's
#     sector size and reads the volume descriptor; the console proves it.
#  2. One Linux guest (profile optical: sr_mod, isofs) with scuse's drives
#     (LUN 0 the same ISO, LUN 1 a CUE/BIN of a data track and two audio
#     tracks, LUN 2 an empty drive) and QEMU's scsi-cd on the same ISO:
#       - every MMC/SPC answer of scuse's ISO drive side by side with
#         QEMU's, each difference named and explained (lib/optcheck.py);
#       - the ISO mounted through sr (iso9660): every file's sha256 equals
#         the host's;
#       - the CUE's TOC (raw READ TOC, LBA and MSF) equals what libcdio's
#         cd-info reads from the sheet; its data track read through sr
#         equals what bchunk extracts from the BIN (and the ISO it was
#         made of); a whole raw sector equals the BIN's bytes; audio is
#         refused to READ(10);
#       - the empty drive: NOT READY, MEDIUM NOT PRESENT (tray closed);
#       - the guest's PREVENT keeps its eject out; ALLOW, eject, load.
. "$(dirname "$0")/lib/vm.sh"
vm_require_disk_path
need as ld xorriso bchunk cd-info

case_begin "the disc images"
as --32 -o "$T/eltorito.o" "$VM_DIR/mbr/eltorito.S"
ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o "$T/eltorito.bin" "$T/eltorito.o"
[ "$(stat -c %s "$T/eltorito.bin")" = 2048 ] || setup_error "the boot image is not 2048 bytes"
mkdir -p "$T/iso/boot" "$T/iso/data/deep"
cp "$T/eltorito.bin" "$T/iso/boot/"
head -c 3000000 /dev/urandom >"$T/iso/data/big.bin"
head -c 70001 /dev/urandom >"$T/iso/data/deep/odd.bin"
echo "scuse optical test" >"$T/iso/readme.txt"
volid="SCUSE_$RANDOM$RANDOM"
xorriso -as mkisofs -quiet -R -V "$volid" -b boot/eltorito.bin -no-emul-boot -boot-load-size 4 \
    -o "$T/test.iso" "$T/iso" 2>"$T/xorriso.err" || setup_error "xorriso: $(cat "$T/xorriso.err")"
# The CUE/BIN: track 1 Mode 1/2352 around a small ISO of its own, track 2
# audio with a 2 s INDEX 00 pregap, track 3 audio; one BIN (libcdio, the
# TOC's oracle, reads one-file sheets only).
mkdir -p "$T/cuesrc"
head -c 300000 /dev/urandom >"$T/cuesrc/payload.bin"
xorriso -as mkisofs -quiet -V CUEDATA -o "$T/data.iso" "$T/cuesrc" 2>>"$T/xorriso.err" ||
    setup_error "xorriso: $(cat "$T/xorriso.err")"
"$PYTHON" -S - "$T/data.iso" "$T/disc.bin" "$T/disc.cue" <<'EOF' || setup_error "cannot make the BIN"
import os, sys
iso = open(sys.argv[1], "rb").read()
n = len(iso) // 2048
bcd = lambda v: (v // 10) << 4 | v % 10
out = bytearray()
for i in range(n):                  # sync, BCD header, user data, EDC/ECC left 0
    a = i + 150
    out += bytes([0] + [0xff] * 10 + [0, bcd(a // 4500), bcd(a // 75 % 60), bcd(a % 75), 1])
    out += iso[i * 2048:(i + 1) * 2048] + bytes(288)
out += os.urandom(2352 * (150 + 200 + 120))
open(sys.argv[2], "wb").write(out)
t = lambda f: "%02d:%02d:%02d" % (f // 4500, f // 75 % 60, f % 75)
open(sys.argv[3], "w").write(
    'REM scuse test_optical\r\nFILE "disc.bin" BINARY\r\n'
    "  TRACK 01 MODE1/2352\r\n    INDEX 01 00:00:00\r\n"
    "  TRACK 02 AUDIO\r\n    INDEX 00 %s\r\n    INDEX 01 %s\r\n"
    "  TRACK 03 AUDIO\r\n    INDEX 01 %s\r\n" % (t(n), t(n + 150), t(n + 350)))
EOF
data_blocks=$(( $(stat -c %s "$T/data.iso") / 2048 ))
audio_lba=$((data_blocks + 150))
(cd "$T" && bchunk disc.bin disc.cue track >bchunk.log 2>&1) || setup_error "bchunk: $(tail -n 2 "$T/bchunk.log")"
cmp -s "$T/track01.iso" "$T/data.iso" || fail "bchunk's track 1 is not the ISO the BIN was made of"
cd-info --no-header --no-device-info --no-disc-mode --no-analyze --cue-file "$T/disc.cue" \
    >"$T/cd-info.txt" 2>&1 || setup_error "cd-info: $(tail -n 3 "$T/cd-info.txt")"
case_end

case_begin "SeaBIOS boots the El Torito ISO through scuse"
vm_lun 0 "$T/test.iso" "device=cdrom,serial=VMT-CD"
VM_FIRMWARE_ARGS=(-device isa-debug-exit,iobase=0xf4,iosize=0x04 -boot strict=on)
vm_boot cdboot ""
[ "$VM_RC" = 33 ] || fail "QEMU exited $VM_RC, 33 (isa-debug-exit 0x10) expected: $(grep SCUSE-CD "$T/cdboot.log" | tr '\n' ' ') $(head -n 2 "$T/cdboot.qemu.err")"
grep -q '^SCUSE-CD start drive=E' "$T/cdboot.log" || fail "the BIOS did not boot from a CD drive (E0h...)"
[ "$(sed -n 's/^SCUSE-CD bps=//p' "$T/cdboot.log")" = 0800 ] ||
    fail "the BIOS reports $(sed -n 's/^SCUSE-CD bps=//p' "$T/cdboot.log") bytes a sector, 0800 expected"
[ "$(sed -n 's/^SCUSE-CD volid=//p' "$T/cdboot.log")" = "$volid" ] ||
    fail "the boot image read the volume id '$(sed -n 's/^SCUSE-CD volid=//p' "$T/cdboot.log")', '$volid' expected"
echo "  firmware boot from the ISO: $VM_SECS s"
case_end

case_begin "Linux sr: scuse's drives beside QEMU's scsi-cd"
vm_guest optical
vm_luns_clear
vm_lun 0 "$T/test.iso" "device=cdrom,format=raw"
vm_lun 1 "$T/disc.cue" "device=cdrom,format=cue"
vm_lun 2 "" "device=cdrom"
VM_EXTRA_ARGS=(-drive "file=$T/test.iso,if=none,id=qcd,media=cdrom,readonly=on,format=raw"
               -device virtio-scsi-pci,id=qscsi -device scsi-cd,drive=qcd,bus=qscsi.0)
vm_boot optical optical "scuse_cue_data_blocks=$data_blocks" "scuse_cue_audio_lba=$audio_lba"
if vm_check_boot optical optical; then
    (cd "$T/iso" && find . -type f | sort | while read -r f; do
        echo "${f#./} $(sha256sum <"$f" | cut -d' ' -f1)"; done) >"$T/files.txt"
    "$PYTHON" "$VM_LIB/optcheck.py" --log "$T/optical.log" --files "$T/files.txt" \
        --iso "$T/test.iso" --cd-info "$T/cd-info.txt" --data-iso "$T/track01.iso" \
        --bin "$T/disc.bin" --audio-lba "$audio_lba" >"$T/optcheck.txt" 2>&1 || true
    { grep -v '^ok ' "$T/optcheck.txt" || true; } | sed 's/^/  /'
    echo "  $(grep -c '^ok ' "$T/optcheck.txt") checks passed; boot $VM_SECS s"
    while read -r line; do fail "$line"; done < <(grep '^FAIL' "$T/optcheck.txt" || true)
    grep -q '^ok ' "$T/optcheck.txt" || fail "optcheck.py checked nothing: $(tail -n 3 "$T/optcheck.txt")"
fi
case_end
finish
