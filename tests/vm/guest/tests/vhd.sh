# Guest test "vhd" (host side tests/vm/test_vhd.sh): three LUNs in one
# boot. LUN 0 is a VHD differencing child over a dynamic VHD (read-write),
# LUN 1 a VHDX read through libvhdi (read-only), LUN 2 a qcow2 overlay
# over that VHDX (read-write). Each whole disk is read (O_DIRECT) and
# hashed; then LUNs 0 and 2 take scuse_writes writes each (O_DIRECT,
# fsync), every one in a slot of its own (disk / writes), starting in the
# slot's first half at a random sector and up to half a slot long (so many
# cross a 2 MiB VHD block), read back after the caches are dropped; last
# the two written disks are hashed again. Markers:
#   @@ SHA256 LUN direct|final HEX
#   @@ WRITE LUN I OFF LEN SEED      written (dd returned 0)
#   @@ VERIFY LUN I ok|bad           read back
. /lib/scuse/lib.sh
set -o pipefail
seed=${scuse_seed:-1}
n=${scuse_writes:-12}
for l in 0 1 2; do
    wait_lun $l
    eval D$l=\$DISK
done
sha() { # LUN WHAT
    eval d=\$D$1
    s=$(dd if="/dev/$d" bs=1M iflag=direct 2>/tmp/dd.err | sha256sum) ||
        die "reading LUN $1 (/dev/$d): $(cat /tmp/dd.err)"
    mark SHA256 "$1" "$2" "${s%% *}"
}
for l in 0 1 2; do sha $l direct; done

RANDOM=$seed
: >/tmp/records
for l in 0 2; do
    eval d=\$D$l
    bytes=$(( $(cat "/sys/block/$d/size") * 512 ))
    slot=$(( bytes / n / 512 * 512 ))
    half=$(( slot / 1024 ))
    i=0
    while [ $i -lt "$n" ]; do
        off=$(( i * slot + (RANDOM % half) * 512 ))
        len=$(( (RANDOM % half + 1) * 512 ))
        gen "$l$i" "$off" "$len" "$seed" |
            dd of="/dev/$d" bs="$len" count=1 seek="$off" iflag=fullblock \
               oflag=direct,seek_bytes conv=notrunc,fsync 2>/tmp/dd.err ||
            die "LUN $l: write $i at $off+$len failed: $(cat /tmp/dd.err)"
        mark WRITE "$l" "$i" "$off" "$len" "$seed"
        echo "$l $i $off $len" >>/tmp/records
        i=$((i + 1))
    done
done

echo 3 >/proc/sys/vm/drop_caches
bad=0
while read -r l i off len; do
    eval d=\$D$l
    want=$(gen "$l$i" "$off" "$len" "$seed" | sha256sum)
    got=$(dd if="/dev/$d" bs="$len" count=1 skip="$off" iflag=direct,skip_bytes 2>/dev/null |
          sha256sum)
    if [ "$want" = "$got" ]; then
        mark VERIFY "$l" "$i" ok
    else
        mark VERIFY "$l" "$i" bad
        bad=$((bad + 1))
    fi
done </tmp/records
[ "$bad" -eq 0 ] || die "$bad ranges read back wrong"
for l in 0 2; do sha $l final; done
