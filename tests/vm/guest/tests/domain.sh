# Guest test "domain": every SCSI disk the guest finds (the LUNs of one or
# more vhost-user-scsi controllers set up from a libvirt domain), as the
# kernel shows it. Expects scuse_disks=N disks. Prints, per disk (keyed by
# its unit serial number, which the host gave each one):
#   @@ DD SERIAL sdX H:C:T:L vendor|model|ro|lbs|pbs|cache_type|rotational|bytes|wwid
#   @@ SHA256 SERIAL direct HEX           the whole disk read with O_DIRECT
#   @@ WRITE SERIAL OFF LEN SEED          a write done (writable disks), read back
#   @@ ROWRITE SERIAL refused|accepted    a write tried on a read-only disk
. /lib/scuse/lib.sh
set -o pipefail
want=${scuse_disks:-1}
seed=${scuse_seed:-1}
i=0
found=0
while [ "$i" -lt 400 ]; do
    found=$(ls -d /sys/bus/scsi/devices/*:*:*:*/block 2>/dev/null | wc -l)
    [ "$found" -ge "$want" ] && break
    usleep 50000
    i=$((i + 1))
done
[ "$found" -ge "$want" ] || die "found $found disks, $want expected"
for dev in /sys/bus/scsi/devices/*:*:*:*; do
    [ -d "$dev/block" ] || continue
    d=$(ls "$dev/block" | head -1)
    sg=$(ls "$dev/scsi_generic" | head -1)
    serial=$(sg_inq -p 0x80 "/dev/$sg" 2>/dev/null | sed -n 's/^ *Unit serial number: *//p')
    [ -n "$serial" ] || die "$d: no unit serial number"
    q=/sys/block/$d/queue
    mark DD "$serial" "$d" "$(basename "$dev")" \
        "$(cat "$dev/vendor" | sed 's/ *$//')|$(cat "$dev/model" | sed 's/ *$//')|$(cat /sys/block/$d/ro)|$(cat $q/logical_block_size)|$(cat $q/physical_block_size)|$(cat "$dev/scsi_disk/"*/cache_type)|$(cat $q/rotational)|$(( $(cat /sys/block/$d/size) * 512 ))|$(cat "$dev/wwid")"
    s=$(dd if="/dev/$d" bs=1M iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
    mark SHA256 "$serial" direct "$s"
    off=1048576
    len=8192
    if [ "$(cat /sys/block/$d/ro)" = 1 ]; then
        if gen 0 "$off" "$len" "$seed" | dd of="/dev/$d" bs="$len" count=1 seek="$off" \
            oflag=direct,seek_bytes conv=notrunc,fsync 2>/dev/null; then
            mark ROWRITE "$serial" accepted
        else
            mark ROWRITE "$serial" refused
        fi
        continue
    fi
    gen 1 "$off" "$len" "$seed" | dd of="/dev/$d" bs="$len" count=1 seek="$off" iflag=fullblock \
        oflag=direct,seek_bytes conv=notrunc,fsync 2>/dev/null || die "$d: write failed"
    got=$(dd if="/dev/$d" bs="$len" count=1 skip="$off" iflag=direct,skip_bytes 2>/dev/null | sha256sum | cut -d' ' -f1)
    exp=$(gen 1 "$off" "$len" "$seed" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$exp" ] || die "$d: the write did not read back"
    mark WRITE "$serial" "$off" "$len" "$seed"
done
