# Part of guest test "tcmu" (sourced by tcmu.sh, in the same boot; host
# side tests/vm/lib/tcmu_vmdk.sh): a VMDK chain served read-write through
# the kernel's TCMU. /mnt/vtop.vmdk (zeroed grains, monolithicSparse) over
# /mnt/vbase.vmdk (twoGbMaxExtentSparse), made and filled by qemu-img and
# qemu-io on the host. `scuse tcmu create vm0 ... -f vmdk --fabric
# loopback`: the whole disk hashed (O_DIRECT), writes with fsync over
# every kind of grain (zeroed, parent-backed, unallocated, allocated,
# crossing grains, the last sector), each read back after the caches are
# dropped, the disk hashed again, delete. Uses tcmu.sh's daemon and
# helpers; leaves DISK/SG as they were.
# Markers:
#   @@ VMDK disk BYTES                 the LUN's size
#   @@ SHA256 vmdk|vmdk_final direct HEX T0 T1
#   @@ VWRITE I OFF LEN SEED           written with fsync (the host replays it)
#   @@ VVERIFY I ok|bad                read back after drop_caches
DISK0=$DISK SG0=$SG
section vmdk_create scuse tcmu create vm0 /mnt/vtop.vmdk -f vmdk --fabric loopback ||
    die "scuse tcmu create vm0"
other_disk vm0
mark VMDK disk "$(($(cat /sys/block/$DISK/size) * 512))"
sha_disk vmdk
# OFF LEN: over zeroed grains over parent data; across a zeroed and a
# written grain; into the parent's data (child unallocated); 1 MiB where
# neither has data; unaligned over zeroed grains; the disk's last sector.
i=0
for w in "51200 512" "1044480 8704" "16769024 65536" "31457280 1048576" \
         "41943552 1536" "67108352 512"; do
    set -- $w
    gen $((3000 + i)) "$1" "$2" "$seed" |
        dd of="/dev/$DISK" bs="$2" count=1 seek="$1" iflag=fullblock \
           oflag=direct,seek_bytes conv=notrunc,fsync 2>/tmp/dd.err ||
        die "vmdk write $i at $1+$2: $(cat /tmp/dd.err)"
    mark VWRITE $((3000 + i)) "$1" "$2" "$seed"
    echo "$i $1 $2" >>/tmp/vrecords
    i=$((i + 1))
done
echo 3 >/proc/sys/vm/drop_caches
while read -r j off len; do
    if readback $((3000 + j)) "$off" "$len" "$seed"; then
        mark VVERIFY $((3000 + j)) ok
    else
        mark VVERIFY $((3000 + j)) bad
    fi
done </tmp/vrecords
sha_disk vmdk_final
section vmdk_delete scuse tcmu delete vm0 || die "scuse tcmu delete vm0"
gone
DISK=$DISK0 SG=$SG0
