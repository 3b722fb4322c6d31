# Guest test "liocd" (profile tcmucd): the guest test "lio" (LIO, tcm_loop,
# then "sg" against a LIO fileio LUN), then a cdrom backstore served by
# scuse inside the guest: `scuse serve --tcmu`, `scuse tcmu create cd0
# /mnt/test.iso --fabric loopback --device cdrom`; the sr device that
# appears is mounted (iso9660) and its files hashed.
#   @@ CD tcmu srN sgN TYPE RO
#   @@ FILE tcmu NAME SHA256
. /tests/lio.sh
set -o pipefail
scuse serve --tcmu -v >/tmp/scuse-cd.log 2>&1 &
SP=$!
i=0
while ! grep -q 'tcmu: serving [0-9]* devices' /tmp/scuse-cd.log; do
    kill -0 $SP 2>/dev/null || die "scuse serve --tcmu exited: $(tail -n 3 /tmp/scuse-cd.log)"
    [ $i -lt 400 ] || die "scuse serve --tcmu not ready after 20 s"
    usleep 50000
    i=$((i + 1))
done
section cd_create scuse tcmu create cd0 /mnt/test.iso --fabric loopback --device cdrom ||
    die "scuse tcmu create --device cdrom"
i=0 CD=
while [ -z "$CD" ] && [ $i -lt 400 ]; do
    for d in /sys/bus/scsi/devices/*:*:*:*; do
        [ "$(cat "$d/type" 2>/dev/null)" = 5 ] && [ -d "$d/block" ] && CD=$d
    done
    usleep 50000
    i=$((i + 1))
done
[ -n "$CD" ] || die "no CD-ROM device after 20 s: $(tail -n 3 /tmp/scuse-cd.log)"
BLK=$(ls "$CD/block" | head -1)
SGD=/dev/$(ls "$CD/scsi_generic" | head -1)
mark CD tcmu "$BLK" "${SGD#/dev/}" "$(cat "$CD/type")" "$(cat "/sys/block/$BLK/ro")" \
    "$(cat "/sys/block/$BLK/size")"
section cd_inquiry sg_raw -vv -r 36 "$SGD" 12 00 00 00 24 00
section cd_toc sg_raw -vv -r 20 "$SGD" 43 00 00 00 00 00 00 00 14 00
mkdir -p /tmp/cd
mount -t iso9660 -o ro "/dev/$BLK" /tmp/cd || die "mount -t iso9660 /dev/$BLK"
for f in $(cd /tmp/cd && find . -type f | sort); do
    s=$(sha256sum <"/tmp/cd/$f") || die "reading $f from the CD"
    mark FILE tcmu "${f#./}" "${s%% *}"
done
umount /tmp/cd
section cd_delete scuse tcmu delete cd0
kill $SP
wait $SP
mark CDSERVE "rc=$?"
