# Guest test "lio" (profile tcmu): the kernel's own SCSI target inside the
# guest. Mounts configfs, checks that LIO and its TCMU backstore type are
# there (what scuse's TCMU tests will drive), then makes a LIO fileio LUN
# on a tmpfs file behind tcm_loop and runs the guest test "sg" against it:
# an independent SPC/SBC implementation for tests/vm/lib/sgcheck.py.
#   @@ LIO core|user|fileio|loopback ok
# Before that, what the TCMU tests will need besides: scuse itself in the
# initramfs (@@ SCUSE VERSION...) and test images from the host over 9p
# (scuse_9p=TAG: mounted on /mnt, @@ SHA256 9p FILE HEX for each file).
. /lib/scuse/lib.sh
if [ -x /usr/bin/scuse ]; then
    mark SCUSE "$(scuse --version 2>&1)"
fi
if [ -n "${scuse_9p:-}" ]; then
    mount -t 9p -o trans=virtio,version=9p2000.L,ro "$scuse_9p" /mnt || die "mount 9p $scuse_9p"
    for f in /mnt/*; do
        s=$(sha256sum <"$f") || die "read $f over 9p"
        mark SHA256 9p "${f#/mnt/}" "${s%% *}"
    done
fi
C=/sys/kernel/config/target
mount -t configfs configfs /sys/kernel/config || die "mount configfs"
[ -d "$C/core" ] || die "no LIO core in configfs"
mark LIO core ok
mkdir "$C/core/user_0" && mkdir "$C/core/user_0/probe" || die "no TCMU (user) backstore type"
rmdir "$C/core/user_0/probe" "$C/core/user_0"
mark LIO user ok
truncate -s 64M /tmp/lio.img
B=$C/core/fileio_0/disk0
mkdir -p "$B" || die "no fileio backstore"
echo "fd_dev_name=/tmp/lio.img,fd_dev_size=67108864" >"$B/control"
echo 1 >"$B/enable" || die "enable the fileio LUN"
echo 1 >"$B/attrib/emulate_tpu"
echo 1 >"$B/attrib/emulate_tpws"
echo "${scuse_lio_serial:-VMT-SG-0001}" >"$B/wwn/vpd_unit_serial"
[ ! -f "$B/wwn/vendor_id" ] || echo SCUSEVM >"$B/wwn/vendor_id"
[ ! -f "$B/wwn/product_id" ] || echo vm-test-disk >"$B/wwn/product_id"
mark LIO fileio ok
L=$C/loopback/naa.5001405000000001/tpgt_1
mkdir -p "$L" || die "no tcm_loop fabric"
echo naa.5001405000000002 >"$L/nexus" || die "tcm_loop nexus"
mkdir "$L/lun/lun_0"
ln -s "$B" "$L/lun/lun_0/disk0" || die "tcm_loop LUN"
mark LIO loopback ok
. /tests/sg.sh
