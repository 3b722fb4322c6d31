# Guest test "tcmu" (profile tcmu; host side tests/vm/test_tcmu.sh): scuse
# against the real kernel's TCMU. The images are on the host, in a 9p
# share (scuse_9p=TAG, mounted read-write on /mnt): top.qcow2 over
# mid.qcow2 over base.qcow2, vh.raw, nl.raw and nl2.raw. In order:
#   1. `scuse serve --tcmu -v`, `scuse tcmu create disk0 top.qcow2 --fabric
#      loopback`, its /dev/sdX: the whole disk read (O_DIRECT) and hashed,
#      sg_inq (the serial configfs shows), sg_readcap -l, create again (no
#      change) and with another image (refused), the image lock seen by a
#      second scuse, random O_DIRECT writes with fsync (write.sh), sg_unmap
#      then zeros read back;
#   2. kill -9 of the daemon while a writer rewrites those ranges (O_DIRECT,
#      fsync each) and a reader reads 4 MiB at a time (O_DIRECT), a restart
#      0.3 s later: both end without an error and everything reads back;
#   3. a write acknowledged without fsync, kill -9 with the daemon idle, a
#      restart, then fsync: it succeeds and the write is there;
#   4. a read that times out while the daemon is stopped (SIGSTOP): the
#      SCSI error handler's ABORT TASK reaches the daemon as a TMR entry,
#      and once it runs again the read is retried and succeeds;
#   5. a backstore made as targetcli makes it (the kernel waits for the
#      daemon's netlink replies) with a 1 MiB command ring: enable, RECONFIG
#      of the write cache, of dev_config (another image) and of the size
#      (grown); exported through tcm_loop by hand, 9000 TEST UNIT READYs
#      wrap its ring (a PAD entry), the disk is read across the wrap; a
#      size the image does not have, a missing image, rmdir;
#   6. vh.raw with 4096-byte blocks and a command policy (deny UNMAP and
#      WRITE SAME(16)) behind tcm_loop (capacity, content, sg_opcodes, the
#      refused commands), then exported through vhost-scsi: create,
#      configfs, list, delete;
#   6b. a VMDK chain served read-write (tcmu_vmdk.sh says how);
#   6c. a VHD differencing child: tcmu create -f vpc, the whole disk read,
#      a write across a block edge read back, delete;
#   7. SIGHUP (the daemon rescans and goes on serving), the whole disk
#      hashed again, delete, configfs empty, the daemon stopped with
#      SIGTERM (exit status 0).
# Markers (besides lib.sh's and write.sh's):
#   @@ RING N TEXT            daemon N's mailbox line (flags, sizes)
#   @@ UIO NAME SIZE          the UIO device sysfs shows
#   @@ SHA256 disk|final direct HEX T0 T1
#   @@ UNMAP LBA BLOCKS       unmapped (reads as zeros from now on)
#   @@ START N T / RESTART N T   daemon N started / ready (its start-up scan done)
#   @@ KILL T / RESET N BYTES|missing (BYTES: ring entries outstanding)
#   @@ KBEGIN I T, @@ KDONE I T   a kill-phase write started / fsync returned
#   @@ KWRITER rc=N, @@ KREADER rc=N READS   the kill-phase writer's and reader's status
#   @@ ACKED I OFF LEN SEED   written, not synced; @@ NOFSYNC fsync=RC data=ok|lost
#   @@ SERIAL TEXT            wwn/vpd_unit_serial of disk0
#   @@ TMR stopped|dd rc=N|logged N   the abort while the daemon is stopped
#   @@ NL STEP rc=N [...]     the targetcli-style backstore's steps
#   @@ NLRING TEXT, @@ SHA256 nl direct HEX   its mailbox line; its disk read after the wrap
#   @@ K4 DISK BYTES / SHA256 k4 direct HEX   the 4096-byte-block LUN
#   @@ VHOST STEP ok|bad ...  the vhost export's checks
#   @@ SHA256 vpc direct HEX, @@ VPWRITE I OFF LEN SEED, @@ VPREAD ok|bad   the VHD LUN
#   @@ HUP alive|dead         the daemon after SIGHUP
#   @@ CLEAN ok|bad WHAT      after delete; @@ SCUSE exit=N
. /lib/scuse/lib.sh
set -o pipefail
C=/sys/kernel/config
LIO=$C/target
HBA=$LIO/core/user_5300
seed=${scuse_seed:-1}
mount -t configfs configfs $C || die "mount configfs"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 "${scuse_9p:-host0}" /mnt ||
    die "mount 9p ${scuse_9p:-host0}"

# start_daemon: daemon N+1 in the background (SP, LOG), ready once its
# start-up scan is done.
N=0
start_daemon() {
    N=$((N + 1))
    LOG=/tmp/scuse$N.log
    mark START $N "$(up)"
    scuse serve --tcmu -v >"$LOG" 2>&1 &
    SP=$!
    i=0
    while ! grep -q 'tcmu: serving [0-9]* devices' "$LOG"; do
        kill -0 $SP 2>/dev/null || die "scuse serve $N exited: $(tail -n 3 "$LOG")"
        [ $i -lt 400 ] || die "scuse serve $N not ready after 20 s"
        usleep 50000
        i=$((i + 1))
    done
}
# wait_log PATTERN: until the current daemon's log has it (10 s).
wait_log() {
    i=0
    while ! grep -q "$1" "$LOG"; do
        [ $i -lt 200 ] || die "daemon $N never logged '$1'"
        usleep 50000
        i=$((i + 1))
    done
}
ring_line() { mark RING $N "$(sed -n 's/.*disk0 (uio[0-9]*): mailbox //p' "$LOG" | tail -1)"; }
kill9() {
    kill -9 $SP
    wait $SP 2>/dev/null
}
sha_disk() { # WHAT: the whole disk through O_DIRECT
    t0=$(up)
    s=$(dd if="/dev/$DISK" bs=1M iflag=direct 2>/tmp/dd.err | sha256sum) ||
        die "reading /dev/$DISK: $(cat /tmp/dd.err)"
    mark SHA256 "$1" direct "${s%% *}" "$t0" "$(up)"
}
# other_disk NAME: wait for a SCSI disk at LUN 0 other than $DISK0 (a
# second tcm_loop target); sets DISK and SG.
other_disk() {
    i=0 DISK= SG=
    while [ -z "$SG" ] || [ ! -b "/dev/$DISK" ] || [ ! -c "$SG" ]; do
        for d in /sys/bus/scsi/devices/*:*:*:0/block/*; do
            [ -e "$d" ] && [ "${d##*/}" != "$DISK0" ] && DISK=${d##*/}
        done
        [ -z "$DISK" ] || SG=/dev/$(ls /sys/block/$DISK/device/scsi_generic 2>/dev/null | head -1)
        [ $i -lt 400 ] || die "no disk for $1 after 20 s"
        usleep 50000
        i=$((i + 1))
    done
}
gone() { # wait until /sys/block/$DISK is gone (5 s)
    i=0
    while [ -e "/sys/block/$DISK" ] && [ $i -lt 100 ]; do usleep 50000; i=$((i + 1)); done
}
readback() { # I OFF LEN SEED -> 0 when the disk holds gen's bytes there
    [ "$(gen "$1" "$2" "$3" "$4" | sha256sum)" = \
      "$(dd if="/dev/$DISK" bs="$3" count=1 skip="$2" iflag=direct,skip_bytes 2>/dev/null |
         sha256sum)" ]
}

# --- 1. a loopback LUN on the qcow2 chain -----------------------------------
start_daemon
section create_disk scuse tcmu create disk0 /mnt/top.qcow2 --fabric loopback ||
    die "scuse tcmu create disk0"
wait_lun 0
wait_log 'disk0 (uio[0-9]*): mailbox'
ring_line
for u in /sys/class/uio/uio*; do
    mark UIO "$(cat "$u/name")" "$(cat "$u/maps/map0/size")"
done
sha_disk disk
section inq sg_inq "$SG"
section readcap sg_readcap -l "$SG"
mark SERIAL "$(cat $HBA/disk0/wwn/vpd_unit_serial)"
section create_again scuse tcmu create disk0 /mnt/top.qcow2 --fabric loopback
section create_other scuse tcmu create disk0 /mnt/vh.raw --fabric loopback
# The daemon holds QEMU's write lock on the image (OFD locks, over 9p).
section lock scuse io -f qcow2 /mnt/top.qcow2 -c 'write 0 512'
sh /tests/write.sh || die "random writes (write.sh)"
# Two clusters over base data (0x22): zeros after UNMAP (LBPRZ).
lba=34816 blocks=512
section unmap sg_unmap --force --lba=$lba --num=$blocks "$SG" || die "sg_unmap"
mark UNMAP $lba $blocks
[ "$(dd if="/dev/$DISK" bs=512 skip=$lba count=$blocks iflag=direct 2>/dev/null | sha256sum)" = \
  "$(head -c $((blocks * 512)) /dev/zero | sha256sum)" ] || die "the unmapped range does not read zeros"

# --- 2. kill -9 during I/O, restart -------------------------------------------
# The writer rewrites the ranges write.sh wrote (clusters allocated by now:
# the rewrites change no qcow2 metadata, so a kill in the middle of one
# cannot leak clusters and qemu-img check must stay clean).
: >/tmp/kprogress
(
    i=0
    while read -r j off len; do
        k=$((1000 + j))
        mark KBEGIN $k "$(up)"
        gen $k "$off" "$len" "$seed" |
            dd of="/dev/$DISK" bs="$len" count=1 seek="$off" iflag=fullblock \
               oflag=direct,seek_bytes conv=notrunc,fsync 2>/tmp/kdd.err ||
            { mark FAIL "kill-phase write $k at $off+$len: $(cat /tmp/kdd.err)"; exit 1; }
        mark WRITE $k "$off" "$len" "$seed"
        mark KDONE $k "$(up)"
        echo $k >>/tmp/kprogress
        i=$((i + 1))
    done </tmp/records
) &
WP=$!
: >/tmp/rgo
(
    n=0
    while [ -f /tmp/rgo ]; do
        dd if="/dev/$DISK" of=/dev/null bs=1M count=4 skip=$((n % 16 * 4)) iflag=direct \
            2>/tmp/rdd.err || { mark FAIL "kill-phase read $n: $(cat /tmp/rdd.err)"; exit 1; }
        n=$((n + 1))
    done
    echo $n >/tmp/reads
) &
RP=$!
i=0
while [ "$(wc -l </tmp/kprogress)" -lt 4 ]; do
    [ $i -lt 400 ] || die "the kill-phase writer made no progress"
    usleep 20000
    i=$((i + 1))
done
mark KILL "$(up)"
kill9
usleep 300000               # commands queue on a ring nobody serves
start_daemon
mark RESTART $N "$(up)"
b=$(sed -n 's/.*disk0 (uio[0-9]*): found at start-up: ring reset, \([0-9]*\) bytes .*/\1/p' "$LOG")
mark RESET $N "${b:-missing}"
ring_line
wait $WP
mark KWRITER "rc=$?"
rm /tmp/rgo
wait $RP
mark KREADER "rc=$?" "$(cat /tmp/reads 2>/dev/null)"
echo 3 >/proc/sys/vm/drop_caches
while read -r j off len; do
    readback $((1000 + j)) "$off" "$len" "$seed" || die "kill-phase write $((1000 + j)) reads back wrong"
done </tmp/records

# --- 3. acknowledged, not synced, daemon killed: fsync after the restart -----
# A 256 KiB slot no write touched, past the chain's allocations (41 MiB):
# the write allocates clusters in the top image.
s=255
while [ $s -ge 170 ] && awk -v s=$s '{ if (int($2 / 262144) == s) f = 1 } END { exit !f }' /tmp/records; do
    s=$((s - 1))
done
off=$((s * 262144 + 65536)) len=65536
gen 2000 $off $len "$seed" |
    dd of="/dev/$DISK" bs=$len count=1 seek=$off iflag=fullblock oflag=direct,seek_bytes \
       conv=notrunc 2>/tmp/dd.err || die "write 2000: $(cat /tmp/dd.err)"
mark ACKED 2000 $off $len "$seed"
kill9
start_daemon
dd if=/dev/null of="/dev/$DISK" conv=notrunc,fsync 2>/dev/null
frc=$?
echo 3 >/proc/sys/vm/drop_caches
if readback 2000 $off $len "$seed"; then
    mark NOFSYNC "fsync=$frc" data=ok
    mark WRITE 2000 $off $len "$seed"
else
    mark NOFSYNC "fsync=$frc" data=lost
fi

# --- 4. ABORT TASK while the daemon is stopped ---------------------------------
echo 1 >/sys/block/$DISK/device/timeout
kill -STOP $SP
mark TMR stopped
dd if="/dev/$DISK" of=/dev/null bs=64k count=1 skip=3 iflag=direct 2>/dev/null &
DP=$!
i=0
while ! dmesg | grep -q 'ABORT_TASK: Found referenced'; do
    [ $i -lt 400 ] || break
    usleep 50000
    i=$((i + 1))
done
kill -CONT $SP
wait $DP
mark TMR dd "rc=$?"
echo 30 >/sys/block/$DISK/device/timeout
wait_log 'disk0 (uio[0-9]*): ABORT TASK naming'
mark TMR logged "$(sed -n 's/.*disk0 (uio[0-9]*): ABORT TASK naming //p' "$LOG")"

# --- 5. netlink replies: a backstore made as targetcli makes it ---------------
# nl_reply_supported is left alone: the daemon asked (SET_FEATURES), so
# the kernel waits for its replies to ADDED, RECONFIG and REMOVED.
D=$LIO/core/user_7/nl0
mkdir -p $D || die "mkdir $D"
echo "dev_config=scuse/raw@/mnt/nl.raw,dev_size=$(stat -c %s /mnt/nl.raw),cmd_ring_size_mb=1" \
    >$D/control
echo 1 >$D/enable
mark NL added "rc=$?" "nl_reply_supported=$(cat $D/attrib/nl_reply_supported)" \
    "served=$(grep -c 'user_7/nl0 (uio[0-9]*): serving /mnt/nl.raw' "$LOG")"
mark NLRING "$(sed -n 's/.*user_7\/nl0 (uio[0-9]*): mailbox //p' "$LOG")"
echo 1 >$D/attrib/emulate_write_cache
mark NL reconfig_wc "rc=$?" "logged=$(grep -c 'user_7/nl0 (uio[0-9]*): write cache on' "$LOG")"
# echo keeps its newline: the kernel passes it on, in the event and the UIO name.
echo "scuse/raw@/mnt/nl2.raw" >$D/attrib/dev_config
mark NL reconfig_cfg "rc=$?" "logged=$(grep -c 'user_7/nl0 (uio[0-9]*): now serving /mnt/nl2.raw' "$LOG")"
truncate -s $(($(stat -c %s /mnt/nl2.raw) * 2)) /mnt/nl2.raw
echo $(stat -c %s /mnt/nl2.raw) >$D/attrib/dev_size
mark NL reconfig_size "rc=$?" "size=$(cat $D/attrib/dev_size)"
DISK0=$DISK SG0=$SG
L=$LIO/loopback/naa.5001405000000077/tpgt_1
mkdir -p $L && echo naa.5001405000000078 >$L/nexus && mkdir $L/lun/lun_0 &&
    ln -s $D $L/lun/lun_0/nl0 || die "the tcm_loop export of nl0"
other_disk nl0
section turs sg_turs -n 9000 "$SG"
sha_disk nl
rm $L/lun/lun_0/nl0 && rmdir $L/lun/lun_0 && echo NULL >$L/nexus && rmdir $L &&
    rmdir ${L%/tpgt_1} || die "removing the tcm_loop export of nl0"
gone
DISK=$DISK0 SG=$SG0
echo $(($(stat -c %s /mnt/nl2.raw) * 2)) >$D/attrib/dev_size 2>/tmp/nl.err
mark NL reconfig_size_bad "rc=$?" "$(cat /tmp/nl.err)"
B=$LIO/core/user_7/nl1
mkdir -p $B
echo "dev_config=scuse/raw@/mnt/missing.raw,dev_size=1048576" >$B/control
echo 1 >$B/enable 2>/tmp/nl.err
mark NL added_missing "rc=$?" "$(cat /tmp/nl.err)"
rmdir $B
rmdir $D
mark NL removed "rc=$?" \
    "$(sed -n 's/.*user_7\/nl0 (uio[0-9]*): no longer served (\(.*\))$/\1/p' "$LOG")"
rmdir $LIO/core/user_7
mark NL refused "$(grep -c 'the kernel refused' "$LOG")"

# --- 6. 4096-byte blocks, then a vhost-scsi export (configfs only: no nested VM) --
section k4_create scuse tcmu create k4 /mnt/vh.raw --fabric loopback --block-size 4096 \
    --policy deny=UNMAP:WRITE_SAME_16 || die "scuse tcmu create k4"
other_disk k4
mark K4 "$DISK" "$(($(cat /sys/block/$DISK/size) * 512))" "$(cat /sys/block/$DISK/queue/logical_block_size)"
sha_disk k4
# Its command policy, kept in dev_config: absent from RSOC, refused with
# INVALID COMMAND OPERATION CODE (vh.raw stays as it was).
section k4_config cat $HBA/k4/attrib/dev_config
section k4_opcodes sg_opcodes "$SG"
section k4_unmap sg_unmap --force --lba=0 --num=1 "$SG"
head -c 4096 /dev/zero >/tmp/z4k
section k4_ws16 sg_raw -v -s 4096 -i /tmp/z4k "$SG" 93 00 00 00 00 00 00 00 00 00 00 00 00 01 00 00
section k4_delete scuse tcmu delete k4
gone
DISK=$DISK0 SG=$SG0

section vhost_create scuse tcmu create vh0 /mnt/vh.raw >/tmp/vh.out 2>&1
vrc=$?
cat /tmp/vh.out
W=$(sed -n 's/^vhost-scsi target \(naa\.[0-9a-f]*\), TPG 1, LUN 0$/\1/p' /tmp/vh.out)
V=$LIO/vhost/$W/tpgt_1
link=$(readlink -f "$V/lun/lun_0/vh0" 2>/dev/null)
nexus=$(cat "$V/nexus" 2>/dev/null)
if [ $vrc -eq 0 ] && [ -n "$W" ] && [ "$link" = "$HBA/vh0" ] && [ "$(cat $HBA/vh0/enable)" = 1 ] &&
   [ "${nexus#naa.}" != "$nexus" ]; then
    mark VHOST create ok "$W" "nexus=$nexus"
else
    mark VHOST create bad "rc=$vrc wwpn=$W link=$link nexus=$nexus"
fi
wait_log 'user_5300/vh0 (uio[0-9]*): serving /mnt/vh.raw'
section vhost_list scuse tcmu list
section vhost_delete scuse tcmu delete vh0
if [ ! -e "$LIO/vhost/$W" ] && [ ! -e $HBA/vh0 ]; then
    mark VHOST delete ok
else
    mark VHOST delete bad "$(ls -d "$LIO/vhost/$W" $HBA/vh0 2>&1 | tr '\n' ' ')"
fi
wait_log 'user_5300/vh0 (uio[0-9]*): no longer served'

# --- 6b. a VMDK chain, read and written (tcmu_vmdk.sh) --------------------------
. /tests/tcmu_vmdk.sh
# --- 6c. a VHD differencing child (vp/child.vhd over vp/base.vhd): tcmu
# create -f vpc, the whole disk, a write across a 2 MiB block edge read
# back, delete -----------------------------------------------------------------
section vpc_create scuse tcmu create vp0 /mnt/vp/child.vhd -f vpc --fabric loopback ||
    die "scuse tcmu create vp0 -f vpc"
other_disk vp0
section vpc_config cat $HBA/vp0/attrib/dev_config
sha_disk vpc
off=$((4 * 1048576 - 1536)) len=5120
gen 3000 $off $len "$seed" | dd of="/dev/$DISK" bs=$len count=1 seek=$off iflag=fullblock \
    oflag=direct,seek_bytes conv=notrunc,fsync 2>/tmp/dd.err || die "vp0 write: $(cat /tmp/dd.err)"
mark VPWRITE 3000 $off $len "$seed"
echo 3 >/proc/sys/vm/drop_caches
readback 3000 $off $len "$seed" && mark VPREAD ok || mark VPREAD bad
section vpc_delete scuse tcmu delete vp0
gone
DISK=$DISK0 SG=$SG0

# --- 7. SIGHUP (the daemon looks for devices again and goes on), the whole
# disk again, then everything removed ------------------------------------------
kill -HUP $SP
wait_log 'SIGHUP: looking for devices again'
kill -0 $SP 2>/dev/null && mark HUP alive || mark HUP dead
sha_disk final
section delete_disk scuse tcmu delete disk0 || die "scuse tcmu delete disk0"
i=0
while [ -e "/sys/block/$DISK" ] && [ $i -lt 100 ]; do usleep 50000; i=$((i + 1)); done
left=$(ls -d $HBA $LIO/loopback/naa.* /sys/class/uio/uio* "/sys/block/$DISK" 2>/dev/null | tr '\n' ' ')
[ -z "$left" ] && mark CLEAN ok || mark CLEAN bad "$left"
kill -TERM $SP
wait $SP
mark SCUSE "exit=$?"
n=1
while [ $n -le $N ]; do
    section "log$n" cat /tmp/scuse$n.log
    n=$((n + 1))
done
