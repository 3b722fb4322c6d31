# Guest test "boot": what a boot needs of the disk and no more, for the
# boot-time comparison: wait for LUN 0, read its first 16 MiB with
# O_DIRECT, power off.
. /lib/scuse/lib.sh
set -o pipefail
wait_lun 0
dd if="/dev/$DISK" of=/dev/null bs=1M count=16 iflag=direct 2>/tmp/dd.err ||
    die "read of /dev/$DISK failed: $(cat /tmp/dd.err)"
mark BOOTED "$(up)"
