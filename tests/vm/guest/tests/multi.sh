# Guest test "multi": two LUNs behind one controller with two request
# queues (-smp 2, num_queues=2). Prints:
#   @@ DISK 0|1 ...                      both LUNs found
#   @@ QUEUES LUN N                      blk-mq hardware queues of the disk
#   @@ BEGIN luns ... @@ END luns rc=N   REPORT LUNS from LUN 0
#   @@ SHA256 LUN direct HEX             whole-disk reads, one per CPU, at once
#   @@ WRITE I OFF LEN SEED              two writes into LUN 1, one per CPU, at once
#   @@ IRQ NAME COUNT                    interrupts of each request queue
. /lib/scuse/lib.sh
set -o pipefail
wait_lun 0
D0=$DISK S0=$SG
wait_lun 1
D1=$DISK
for l in 0 1; do
    eval d=\$D$l
    mark QUEUES "$l" "$(ls "/sys/block/$d/mq" | wc -l)"
done
section luns sg_luns "$S0"

# One reader per CPU: each CPU submits on its own queue.
for l in 0 1; do
    eval d=\$D$l
    taskset "$((l + 1))" sh -c "dd if=/dev/$d bs=1M iflag=direct 2>/dev/null | sha256sum >/tmp/sum$l" &
done
wait
for l in 0 1; do
    read -r s _ </tmp/sum$l
    mark SHA256 "$l" direct "$s"
done

seed=${scuse_seed:-1}
half=$(( $(cat "/sys/block/$D1/size") * 256 ))
for c in 0 1; do
    off=$(( c * half + 4096 * (c + 1) ))
    len=$(( 1048576 + 512 * (c + 3) ))
    (gen "$c" "$off" "$len" "$seed" |
        taskset "$((c + 1))" dd of="/dev/$D1" bs="$len" count=1 seek="$off" iflag=fullblock \
            oflag=direct,seek_bytes conv=notrunc,fsync 2>/dev/null &&
        echo "$c $off $len $seed" >"/tmp/w$c") &
done
wait
for c in 0 1; do
    [ -s "/tmp/w$c" ] || die "write $c into LUN 1 failed"
    mark WRITE $(cat "/tmp/w$c")
done
grep -E 'virtio[0-9]+-request' /proc/interrupts | while read -r irq rest; do
    n=0
    for w in $rest; do
        case "$w" in *[!0-9]*) break ;; *) n=$((n + w)) ;; esac
    done
    mark IRQ "${irq%:}" "$n"
done
