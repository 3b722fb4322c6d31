# Guest test "optical": CD-ROM LUNs through Linux's sr driver, side by
# side with QEMU's scsi-cd. The host (tests/vm/test_optical.sh) attaches
#   scuse (vendor SCUSE):   LUN 0 an ISO, LUN 1 a CUE/BIN, LUN 2 an empty drive
#   QEMU scsi-cd (QEMU):    the same ISO
# and judges every marker (tests/vm/lib/optcheck.py):
#   @@ CD WHO LUN srN sgN             each drive found (WHO: scuse or qemu)
#   @@ BEGIN/END WHO_NAME             one raw CDB's answer (sg_raw -vv)
#   @@ FILE scuse NAME SHA256         the mounted ISO's files
#   @@ SHA256 cue_data HEX BLOCKS     the CUE's data track read through sr
. /lib/scuse/lib.sh
set -o pipefail

# Every CD drive of both controllers: vendor, LUN, block and sg device.
find_drives() {
    n=0
    for d in /sys/bus/scsi/devices/*:*:*:*; do
        [ "$(cat "$d/type" 2>/dev/null)" = 5 ] || continue
        [ -d "$d/block" ] && [ -d "$d/scsi_generic" ] || continue
        n=$((n + 1))
    done
    echo "$n"
}
i=0
while [ "$(find_drives)" -lt 4 ] && [ "$i" -lt 400 ]; do
    usleep 50000
    i=$((i + 1))
done
for d in /sys/bus/scsi/devices/*:*:*:*; do
    [ "$(cat "$d/type" 2>/dev/null)" = 5 ] || continue
    [ -d "$d/block" ] || continue
    v=$(cat "$d/vendor")
    case "$v" in
    SCUSE*) who=scuse ;;
    QEMU*) who=qemu ;;
    *) who=other ;;
    esac
    lun=${d##*:}
    blk=$(ls "$d/block" | head -1)
    sg=$(ls "$d/scsi_generic" | head -1)
    mark CD "$who" "$lun" "$blk" "$sg" "$(cat "$d/removable" 2>/dev/null)"
    eval "BLK_${who}_$lun=$blk SG_${who}_$lun=/dev/$sg"
done
[ -n "${SG_scuse_0:-}" ] && [ -n "${SG_scuse_1:-}" ] && [ -n "${SG_scuse_2:-}" ] &&
    [ -n "${SG_qemu_0:-}" ] || die "not every CD drive appeared ($(find_drives) of 4)"

# The same CDBs to both ISO drives: the host compares the answers.
ask() { # NAME LEN CDB...
    name=$1 len=$2
    shift 2
    if [ "$len" = 0 ]; then set -- -vv "@" "$@"; else set -- -vv -r "$len" "@" "$@"; fi
    section "scuse_$name" sg_raw $(echo "$@" | sed "s|@|$SG_scuse_0|")
    section "qemu_$name" sg_raw $(echo "$@" | sed "s|@|$SG_qemu_0|")
}
ask tur 0 00 00 00 00 00 00
ask inquiry 96 12 00 00 00 60 00
ask vpd00 255 12 01 00 00 ff 00
ask vpd80 255 12 01 80 00 ff 00
ask vpd83 255 12 01 83 00 ff 00
ask vpdb0 255 12 01 b0 00 ff 00
ask readcap 8 25 00 00 00 00 00 00 00 00 00
ask modesense6_2a 128 1a 00 2a 00 80 00
ask modesense10_2a 128 5a 08 2a 00 00 00 00 00 80 00
ask modesense10_all 512 5a 08 3f 00 00 00 00 02 00 00
ask getconfig 512 46 00 00 00 00 00 00 02 00 00
ask getconfig_mrw 16 46 00 00 28 00 00 00 00 10 00
ask gesn 8 4a 01 00 00 10 00 00 00 08 00
ask toc0 252 43 00 00 00 00 00 00 00 fc 00
ask toc0_msf 252 43 02 00 00 00 00 00 00 fc 00
ask toc1 12 43 00 01 00 00 00 00 00 0c 00
ask toc1_ctl40 12 43 00 00 00 00 00 00 00 0c 40
ask toc2 252 43 02 02 00 00 00 00 00 fc 00
ask toc_track2 252 43 00 00 00 00 00 02 00 fc 00
ask discinfo 34 51 00 00 00 00 00 00 00 22 00
ask trackinfo 36 52 01 00 00 00 01 00 00 24 00
ask mechstatus 8 bd 00 00 00 00 00 00 00 00 08 00 00
ask getperf 24 ac 00 00 00 00 00 00 00 00 01 00 00
ask setspeed 0 bb 00 ff ff ff ff 00 00 00 00 00 00
ask readcd_user 2048 be 00 00 00 00 10 00 00 01 10 00 00
ask read10_16 2048 28 00 00 00 00 10 00 00 01 00
ask rsoc 4096 a3 0c 00 00 00 00 00 00 10 00 00 00
ask write10 2048 2a 00 00 00 00 10 00 00 00 00
ask unknown 0 ff 00 00 00 00 00 00 00 00 00

# The ISO through sr and iso9660: every file's digest.
mkdir -p /mnt/iso
mount -t iso9660 -o ro "/dev/$BLK_scuse_0" /mnt/iso || die "mount -t iso9660 /dev/$BLK_scuse_0 failed"
mark SIZE scuse "$(cat "/sys/block/$BLK_scuse_0/size")" "$(cat "/sys/block/$BLK_scuse_0/ro")"
for f in $(cd /mnt/iso && find . -type f | sort); do
    sum=$(sha256sum <"/mnt/iso/$f") || die "reading $f from the ISO failed"
    mark FILE scuse "${f#./}" "${sum%% *}"
done
umount /mnt/iso

# The CUE/BIN: its TOC (raw, LBA and MSF), track information, a whole raw
# sector of the data track, and the data track through sr.
section cue_toc0 sg_raw -vv -r 804 "$SG_scuse_1" 43 00 00 00 00 00 00 03 24 00
section cue_toc0_msf sg_raw -vv -r 804 "$SG_scuse_1" 43 02 00 00 00 00 00 03 24 00
section cue_toc2 sg_raw -vv -r 1100 "$SG_scuse_1" 43 02 02 00 00 00 00 04 4c 00
section cue_discinfo sg_raw -vv -r 34 "$SG_scuse_1" 51 00 00 00 00 00 00 00 22 00
section cue_trackinfo2 sg_raw -vv -r 36 "$SG_scuse_1" 52 01 00 00 00 02 00 00 24 00
section cue_readcd_raw sg_raw -vv -r 2352 "$SG_scuse_1" be 00 00 00 00 10 00 00 01 f8 00 00
n=${scuse_cue_data_blocks:-0}
sum=$(dd if="/dev/$BLK_scuse_1" bs=2048 count="$n" iflag=direct 2>/tmp/dd.err | sha256sum) ||
    die "reading the CUE's data track failed: $(cat /tmp/dd.err)"
mark SHA256 cue_data "${sum%% *}" "$n"
# READ(10) on the audio track: refused (ILLEGAL MODE FOR THIS TRACK).
a=$(printf '%08x' "${scuse_cue_audio_lba:-0}" | sed 's/../& /g')
section cue_read_audio sg_raw -vv -r 2048 "$SG_scuse_1" 28 00 $a 00 00 01 00

# The empty drive: not ready, tray closed; GESN says no medium.
section empty_tur sg_raw -vv "$SG_scuse_2" 00 00 00 00 00 00
section empty_gesn sg_raw -vv -r 8 "$SG_scuse_2" 4a 01 00 00 10 00 00 00 08 00
section empty_readcap sg_raw -vv -r 8 "$SG_scuse_2" 25 00 00 00 00 00 00 00 00 00
section empty_inquiry sg_raw -vv -r 36 "$SG_scuse_2" 12 00 00 00 24 00

# The guest's own tray, on scuse's ISO drive (last: it ends with the
# disc out): a locked door refuses the eject; unlocked, the tray opens.
section lock_prevent sg_raw -vv "$SG_scuse_0" 1e 00 00 00 01 00
section lock_eject sg_raw -vv "$SG_scuse_0" 1b 00 00 00 02 00
section lock_allow sg_raw -vv "$SG_scuse_0" 1e 00 00 00 00 00
section lock_eject2 sg_raw -vv "$SG_scuse_0" 1b 00 00 00 02 00
section lock_tur sg_raw -vv "$SG_scuse_0" 00 00 00 00 00 00
section lock_load sg_raw -vv "$SG_scuse_0" 1b 00 00 00 03 00
section lock_tur2 sg_raw -vv "$SG_scuse_0" 00 00 00 00 00 00
exit 0
