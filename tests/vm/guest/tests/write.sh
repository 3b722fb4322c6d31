# Guest test "write": writes at random offsets of LUN 0 with O_DIRECT and
# fsync (SYNCHRONIZE CACHE after each), then reads every range back with
# O_DIRECT after dropping the caches.
#
# The disk is cut in slots of scuse_slot_kib KiB (default 256); each write
# takes its own slot (so no two overlap and each can be read back), starts
# at a random 512-byte block in the slot's first half and is 1 to
# slot/2 / 512 blocks long: sub-cluster, cluster-crossing and unaligned
# writes over whatever the image holds there. Data: lib.sh gen(), which the
# host replays. Markers:
#   @@ WRITE I OFF LEN SEED      written (dd returned 0)
#   @@ VERIFY I ok|bad           read back after the caches were dropped
#   @@ WRITES N                  all written and verified
. /lib/scuse/lib.sh
set -o pipefail
wait_lun 0
seed=${scuse_seed:-1}
RANDOM=$seed
n=${scuse_writes:-48}
slot=$(( ${scuse_slot_kib:-256} * 1024 ))
bytes=$(( $(cat "/sys/block/$DISK/size") * 512 ))
nslots=$(( bytes / slot ))
half=$(( slot / 1024 ))                 # 512-byte blocks in half a slot
[ "$nslots" -ge "$n" ] || die "disk of $bytes bytes has $nslots slots, fewer than $n writes"

used=" "
i=0
: >/tmp/records
while [ "$i" -lt "$n" ]; do
    s=$(( (RANDOM * 32768 + RANDOM) % nslots ))
    case "$used" in *" $s "*) continue ;; esac
    used="$used$s "
    off=$(( s * slot + (RANDOM % half) * 512 ))
    len=$(( (RANDOM % half + 1) * 512 ))
    gen "$i" "$off" "$len" "$seed" |
        dd of="/dev/$DISK" bs="$len" count=1 seek="$off" iflag=fullblock \
           oflag=direct,seek_bytes conv=notrunc,fsync 2>/tmp/dd.err ||
        die "write $i at $off+$len failed: $(cat /tmp/dd.err)"
    mark WRITE "$i" "$off" "$len" "$seed"
    echo "$i $off $len" >>/tmp/records
    i=$((i + 1))
done

echo 3 >/proc/sys/vm/drop_caches
bad=0
while read -r i off len; do
    want=$(gen "$i" "$off" "$len" "$seed" | sha256sum)
    got=$(dd if="/dev/$DISK" bs="$len" count=1 skip="$off" iflag=direct,skip_bytes 2>/tmp/dd.err |
          sha256sum) || die "read back $i at $off+$len failed: $(cat /tmp/dd.err)"
    if [ "$want" = "$got" ]; then
        mark VERIFY "$i" ok
    else
        mark VERIFY "$i" bad
        bad=$((bad + 1))
    fi
done </tmp/records
[ "$bad" -eq 0 ] || die "$bad ranges read back wrong"
mark WRITES "$n"
