# Guest test "ctl": disks that come, go and grow while the guest runs,
# driven by the host through scuse's control socket. The host watches the
# console for each STEP and acts; the guest waits for the effect:
#   @@ DISK 0 ...                       the disk at boot
#   @@ STEP add                         host: lun-add LUN 1 (a qcow2)
#   @@ DISK 1 sdX sgN BYTES             it appeared (TRANSPORT_RESET/RESCAN)
#   @@ SHA256 1 direct HEX              its whole content, read with O_DIRECT
#   @@ WRITE 1 OFF LEN SEED             a write into it, synced
#   @@ STEP remove                      host: lun-remove LUN 1
#   @@ GONE 1                           its SCSI device left (TRANSPORT_RESET/REMOVED)
#   @@ STEP resize BYTES                host: the raw image of LUN 0 grows, lun-resize
#   @@ RESIZED 0 BYTES                  the new size (PARAM_CHANGE)
. /lib/scuse/lib.sh
set -o pipefail
wait_lun 0
D0=$DISK

mark STEP add
wait_lun 1 60
D1=$DISK
s=$(dd if="/dev/$D1" bs=1M iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1) ||
    die "reading LUN 1 failed"
mark SHA256 1 direct "$s"
seed=${scuse_seed:-1}
off=$((3 * 1048576 + 4096)) len=$((256 * 1024 + 512))
gen 1 "$off" "$len" "$seed" |
    dd of="/dev/$D1" bs="$len" count=1 seek="$off" iflag=fullblock oflag=direct,seek_bytes \
        conv=notrunc,fsync 2>/dev/null || die "writing LUN 1 failed"
mark WRITE 1 "$off" "$len" "$seed"

mark STEP remove
i=0
while ls -d /sys/bus/scsi/devices/*:*:*:1 >/dev/null 2>&1; do
    [ $i -lt 1200 ] || die "LUN 1 still there 60 s after lun-remove"
    usleep 50000
    i=$((i + 1))
done
[ ! -b "/dev/$D1" ] || die "/dev/$D1 is still there without its SCSI device"
mark GONE 1

old=$(( $(cat /sys/block/$D0/size) * 512 ))
mark STEP resize "$old"
i=0
while [ "$(( $(cat /sys/block/$D0/size) * 512 ))" = "$old" ]; do
    [ $i -lt 400 ] || die "LUN 0 still $old bytes 20 s after lun-resize"
    usleep 20000
    i=$((i + 1))
done
mark RESIZED 0 "$(( $(cat /sys/block/$D0/size) * 512 ))"
