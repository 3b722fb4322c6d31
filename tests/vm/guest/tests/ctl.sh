# Guest test "ctl": disks and a CD-ROM drive that come, go, grow and
# change media while the guest runs, driven by the host through scuse's
# control socket. The guest prints "@@ STEP NAME"; the host's driver sees
# it on the console, acts, and answers by writing "ACK NAME" into a
# mailbox sector of LUN 0 (read here with O_DIRECT), so every check
# below runs after the host's command. Markers:
#   @@ DISK 0 ...                       the disk at boot
#   @@ DISK 1 sdX sgN BYTES             after lun-add (TRANSPORT_RESET/RESCAN)
#   @@ SHA256 1 direct HEX              its whole content, read with O_DIRECT
#   @@ WRITE 1 OFF LEN SEED             a write into it, synced
#   @@ GONE 1                           after lun-remove (TRANSPORT_RESET/REMOVED)
#   @@ RESIZED 0 BYTES                  after the image grew and lun-resize
#   @@ CD TYPE SENSES                   the CD-ROM LUN 2 after lun-add: its type,
#                                       what TEST UNIT READY said until GOOD
#   @@ CDCAP NAME BYTES / CDSUM NAME HEX  READ CAPACITY, sha256 of its first 64 KiB
#   @@ GUESTEJECT SENSE                 the guest's own eject while it prevents removal
#   @@ CDSTILL HEX                      after the host's eject was refused
#   @@ CDSEEN SENSES                    TEST UNIT READY after eject + insert, until GOOD
#   @@ CDFORCED SENSES                  after a forced eject, until NOT READY
# SENSES: K/AA/QQ in hex (sense key, ASC, ASCQ), GOOD for none.
. /lib/scuse/lib.sh
set -o pipefail
wait_lun 0
D0=$DISK
MAILBOX=$((31 * 2048))              # 512-byte sector 31 MiB into LUN 0

step() { # NAME: tell the host, wait for its ACK
    mark STEP "$1"
    s_i=0
    until [ "$(dd if="/dev/$D0" bs=512 skip=$MAILBOX count=1 iflag=direct 2>/dev/null |
               head -n 1)" = "ACK $1" ]; do
        [ $s_i -lt 1200 ] || die "no ACK $1 from the host after 60 s"
        usleep 50000
        s_i=$((s_i + 1))
    done
}

# sense DEV CDB...: the command's sense as K/AA/QQ (fixed or descriptor
# format, from sg_raw -vv's raw dump), GOOD when it has none.
sense() {
    sg_raw -vv "$@" 2>&1 | awk '
        /Raw sense data \(in hex\)/ { grab = 1; next }
        grab && /^[ \t]*([0-9a-f][0-9a-f][ \t]*)+$/ { for (i = 1; i <= NF; i++) b[n++] = $i; next }
        { grab = 0 }
        END {
            if (n == 0) { print "GOOD"; exit }
            if (b[0] ~ /^[7f][23]$/) printf "%s/%s/%s\n", substr(b[1], 2, 1), b[2], b[3]
            else printf "%s/%s/%s\n", substr(b[2], 2, 1), b[12], b[13]
        }'
}
# TEST UNIT READY until the answer matches (GOOD, or a key/ASC prefix),
# at most 40 times: the answers seen, space-separated.
tur_until() {
    t_seen= t_i=0
    while [ $t_i -lt 40 ]; do
        t_s=$(sense "$CD" 00 00 00 00 00 00)
        t_seen="$t_seen $t_s"
        case "$t_s" in "$1"*) break ;; esac
        usleep 50000
        t_i=$((t_i + 1))
    done
    echo $t_seen
}
cdsum() { # the sha256 of the first 64 KiB (READ(10) of 32 blocks)
    rm -f /tmp/cd.bin
    sg_raw -r 65536 -o /tmp/cd.bin "$CD" 28 00 00 00 00 00 00 00 20 00 >/dev/null 2>&1 && [ -s /tmp/cd.bin ] ||
        { echo none; return; }
    sha256sum </tmp/cd.bin | cut -d' ' -f1
}
cdcap() { sg_readcap "$CD" 2>/dev/null | sed -n 's/.*Device size: \([0-9]*\) bytes.*/\1/p'; }

# ---- a disk added, written, removed ----
step add
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

step remove
i=0
while ls -d /sys/bus/scsi/devices/*:*:*:1 >/dev/null 2>&1; do
    [ $i -lt 1200 ] || die "LUN 1 still there 60 s after lun-remove"
    usleep 50000
    i=$((i + 1))
done
[ ! -b "/dev/$D1" ] || die "/dev/$D1 is still there without its SCSI device"
mark GONE 1

# ---- LUN 0 grows ----
old=$(( $(cat /sys/block/$D0/size) * 512 ))
step resize
i=0
while [ "$(( $(cat /sys/block/$D0/size) * 512 ))" = "$old" ]; do
    [ $i -lt 400 ] || die "LUN 0 still $old bytes 20 s after lun-resize"
    usleep 20000
    i=$((i + 1))
done
mark RESIZED 0 "$(( $(cat /sys/block/$D0/size) * 512 ))"

# ---- a CD-ROM drive (through sg: this guest has no sr driver) ----
step cdadd
i=0 CD=
while [ -z "$CD" ]; do
    [ $i -lt 1200 ] || die "no SCSI device at LUN 2 60 s after lun-add"
    for d in /sys/bus/scsi/devices/*:*:*:2; do
        [ -d "$d/scsi_generic" ] || continue
        CD=/dev/$(ls "$d/scsi_generic" | head -1)
        CDTYPE=$(cat "$d/type")
    done
    [ -c "${CD:-/nonexistent}" ] || { CD=; usleep 50000; i=$((i + 1)); }
done
mark CD "$CDTYPE" "$(tur_until GOOD)"
mark CDCAP a "$(cdcap)"
mark CDSUM a "$(cdsum)"
# The guest locks the tray, then presses eject itself: refused.
[ "$(sense "$CD" 1e 00 00 00 01 00)" = GOOD ] || die "PREVENT MEDIUM REMOVAL failed"
mark GUESTEJECT "$(sense "$CD" 1b 00 00 00 02 00)"
step lockedeject
mark CDSTILL "$(tur_until GOOD | awk '{ print $NF }')" "$(cdsum)"
# Allowed again: the host swaps the disc.
[ "$(sense "$CD" 1e 00 00 00 00 00)" = GOOD ] || die "ALLOW MEDIUM REMOVAL failed"
step swap
mark CDSEEN "$(tur_until GOOD)"
mark CDCAP b "$(cdcap)"
mark CDSUM b "$(cdsum)"
# Locked again: the host forces it out.
[ "$(sense "$CD" 1e 00 00 00 01 00)" = GOOD ] || die "PREVENT MEDIUM REMOVAL failed"
step forceeject
mark CDFORCED "$(tur_until 2/)"
