# Guest test "demo" (samples/demo_vm.sh): what the guest sees of the disk
# at LUN 0 and what it does with it, for a person to read.
#   @@ BEGIN identity ... @@ END      sg_inq: vendor, product, revision, serial
#   @@ BEGIN vpd83 ... @@ END         sg_vpd device identification (NAA)
#   @@ SHA256 0 direct HEX ...        the whole disk, read with O_DIRECT
#   @@ WROTE LBA TEXT                 one block written (O_DIRECT, fsync)
#   @@ READBACK LBA TEXT              that block read again, caches dropped
. /lib/scuse/lib.sh
set -o pipefail
wait_lun 0
section identity sg_inq "$SG"
section vpd83 sg_vpd --page=di "$SG"
t0=$(up)
sum=$(dd if="/dev/$DISK" bs=1M iflag=direct 2>/dev/null | sha256sum) || die "read of /dev/$DISK failed"
mark SHA256 0 direct "${sum%% *}" "$t0" "$(up)"
lba=${scuse_demo_lba:-2048}
text="hello from the guest: written at uptime $(up) s"
printf '%-511s\n' "$text" | dd of="/dev/$DISK" bs=512 seek="$lba" oflag=direct conv=notrunc,fsync 2>/dev/null ||
    die "write to /dev/$DISK failed"
mark WROTE "$lba" "$text"
echo 3 >/proc/sys/vm/drop_caches
back=$(dd if="/dev/$DISK" bs=512 skip="$lba" count=1 iflag=direct 2>/dev/null | head -n 1 | sed 's/ *$//')
mark READBACK "$lba" "$back"
[ "$back" = "$text" ] || die "read back '$back'"
