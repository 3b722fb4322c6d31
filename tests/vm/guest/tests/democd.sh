# Guest test "democd" (samples/demo_cd.sh, profile optical): what the guest
# sees of the CD-ROM drive at LUN 0, for a person to read.
#   @@ BEGIN identity ... @@ END      sg_inq of the drive (PDT cd/dvd, RMB)
#   @@ BEGIN toc ... @@ END           its table of contents (sg_raw READ TOC)
#   @@ FILE NAME SHA256               every file of the mounted ISO
. /lib/scuse/lib.sh
set -o pipefail
wait_lun 0
section identity sg_inq "$SG"
section toc sg_raw -r 252 "$SG" 43 00 00 00 00 00 00 00 fc 00
mkdir -p /mnt/cd
mount -t iso9660 -o ro "/dev/$DISK" /mnt/cd || die "mount -t iso9660 /dev/$DISK failed"
mark MOUNTED "/dev/$DISK" "$(cat "/sys/block/$DISK/size")"
for f in $(cd /mnt/cd && find . -type f | sort); do
    s=$(sha256sum <"/mnt/cd/$f") || die "reading $f"
    mark FILE "${f#./}" "${s%% *}"
done
umount /mnt/cd
