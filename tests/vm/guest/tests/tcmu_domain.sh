# Guest test "tcmu_domain" (profile tcmu; host side tests/vm/test_tcmu_domain.sh):
# `scuse tcmu up/down` against the real kernel's LIO, TCMU and vhost-scsi
# fabric. /mnt (9p, read-write) holds vs.xml, a domain `scuse domain
# --transport vhost-scsi --socket-dir /tmp/scuse` wrote on the host, and
# its images. In order:
#   1. busybox syslogd, then `scuse tcmu serve --log=syslog -v`;
#   2. up, its configfs state; up again: the same state; the daemon serves
#      each backstore as a domain's disk;
#   3. the I/O check through the loopback fabric (vhost-scsi needs a VM in
#      this VM, which the guest has no QEMU for): a tcm_loop port linking
#      the same backstores at the same LUNs; each disk's identity, block
#      size, write protection, cache mode and content as its <disk> says,
#      a write to the writable one;
#   4. down (the loopback port goes too, its LUNs linking the backstores);
#      nothing left; down again: success, nothing;
#   5. a half-made state as a crash leaves it (a backstore directory never
#      configured, a port with an empty LUN): down removes it; the same
#      state, then up: the state of 2; down;
#   6. SIGTERM: the daemon exits 0; its lines are in syslog.
# Markers:
#   @@ STATE N TEXT      configfs after step N (one marker line per entry)
#   @@ SAME 2|5 yes|no   the state equals the first up's
#   @@ SERVED NAME       the daemon logged serving NAME as a domain's disk
#   @@ VHOST MODULE yes|no, @@ LEFT N TEXT   what is left after a down ("" = nothing)
#   @@ LUN U DISK BYTES BLOCK RO CACHE       the loopback disk at LUN U
#   @@ SHA256 lunU direct HEX T0 T1, @@ WRITE ...   (write.sh's form)
#   @@ SYSLOG N          lines of the daemon's in syslog; @@ DAEMON exit=N
. /lib/scuse/lib.sh
set -o pipefail
C=/sys/kernel/config
LIO=$C/target
HBA=$LIO/core/user_5300
W=${scuse_wwpn:?}
mount -t configfs configfs $C || die "mount configfs"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 "${scuse_9p:-host0}" /mnt ||
    die "mount 9p"
[ -e /sys/module/vhost_scsi ] && mark VHOST MODULE yes || mark VHOST MODULE no

# 1. syslog and the daemon
syslogd -n -O /tmp/messages &
SL=$!
i=0
while [ ! -S /dev/log ] && [ $i -lt 100 ]; do usleep 50000; i=$((i + 1)); done
scuse tcmu serve --log=syslog -v >/tmp/daemon.out 2>&1 &
SP=$!
i=0
while ! grep -q 'tcmu: serving [0-9]* devices' /tmp/messages 2>/dev/null; do
    kill -0 $SP 2>/dev/null || die "scuse tcmu serve exited: $(cat /tmp/daemon.out)"
    [ $i -lt 400 ] || die "scuse tcmu serve not ready after 20 s"
    usleep 50000
    i=$((i + 1))
done

# state N: everything scuse made under configfs, with the attributes
# that say what it is
state() {
    for p in $(find $HBA $LIO/vhost/naa.* $LIO/loopback/naa.* -maxdepth 5 2>/dev/null |
               grep -Ev '/(attrib|pr|statistics|alua|wwn|action|alua_tg_pt_gp|acls|auth|fabric_statistics|param|np)(/|$)' | sort); do
        if [ -L "$p" ]; then
            echo "$p -> $(readlink -f "$p")"
        elif [ -d "$p" ]; then
            echo "$p/"
        fi
    done
    for d in $HBA/*/; do
        [ -d "$d" ] || continue
        echo "${d%/} enable=$(cat "$d/enable") config=$(cat "$d/attrib/dev_config")" \
             "bs=$(cat "$d/attrib/hw_block_size") wc=$(cat "$d/attrib/emulate_write_cache")" \
             "size=$(cat "$d/attrib/dev_size")"
    done
    for n in $LIO/vhost/naa.*/tpgt_*/nexus; do
        [ -e "$n" ] && echo "$n=$(cat "$n" 2>/dev/null)"
    done
}
mark_state() { state >/tmp/state$1; while read -r l; do mark STATE "$1" "$l"; done </tmp/state$1; }
left() { # what scuse made that is still there
    ls -d $HBA $LIO/vhost/naa.* $LIO/loopback/naa.* /sys/class/uio/uio* /tmp/scuse/vs.tcmu.xml \
        2>/dev/null | tr '\n' ' '
}

# 2. up, up again
section up1 scuse tcmu up /mnt/vs.xml || die "scuse tcmu up"
mark_state 2
section up2 scuse tcmu up /mnt/vs.xml || die "scuse tcmu up, again"
state >/tmp/state2b
section list scuse tcmu list
cmp -s /tmp/state2 /tmp/state2b && mark SAME 2 yes || { mark SAME 2 no; diff /tmp/state2 /tmp/state2b; }
for n in vs-scsi0-0 vs-scsi0-2; do
    i=0
    while ! grep -q "user_5300/$n (uio[0-9]*): serving /tmp/scuse/vs.tcmu.xml (a domain's disk" /tmp/messages; do
        [ $i -lt 200 ] || break
        usleep 50000
        i=$((i + 1))
    done
    grep -q "user_5300/$n (uio[0-9]*): serving /tmp/scuse/vs.tcmu.xml (a domain's disk" /tmp/messages &&
        mark SERVED $n
done

# 3. I/O through tcm_loop: the same backstores at the same LUNs
L=$LIO/loopback/naa.5001405000000091/tpgt_1
mkdir -p $L && echo naa.5001405000000092 >$L/nexus || die "the loopback port"
for u in 0 2; do
    mkdir $L/lun/lun_$u && ln -s $HBA/vs-scsi0-$u $L/lun/lun_$u/vs-scsi0-$u || die "loopback LUN $u"
done
for u in 0 2; do
    wait_lun $u
    eval "DISK$u=$DISK SG$u=$SG"
    sd=$(ls -d /sys/bus/scsi/devices/*:*:*:$u/scsi_disk/* | head -1)
    mark LUN $u "$DISK" "$(($(cat /sys/block/$DISK/size) * 512))" \
        "$(cat /sys/block/$DISK/queue/logical_block_size)" "$(cat /sys/block/$DISK/ro)" \
        "$(cat "$sd/cache_type" | tr ' ' _)"
    section inq$u sg_inq "$SG"
    section vpd$u sg_vpd -p sn "$SG"
    t0=$(up)
    s=$(dd if="/dev/$DISK" bs=1M iflag=direct 2>/tmp/dd.err | sha256sum) || die "reading LUN $u: $(cat /tmp/dd.err)"
    mark SHA256 lun$u direct "${s%% *}" "$t0" "$(up)"
done
DISK=$DISK0
gen 1 1048576 65536 7 | dd of=/dev/$DISK bs=65536 seek=16 oflag=direct conv=fsync 2>/tmp/dd.err ||
    die "write to LUN 0: $(cat /tmp/dd.err)"
mark WRITE 1 1048576 65536 7
echo 3 >/proc/sys/vm/drop_caches
[ "$(gen 1 1048576 65536 7 | sha256sum)" = "$(dd if=/dev/$DISK bs=65536 skip=16 count=1 iflag=direct 2>/dev/null | sha256sum)" ] &&
    mark READBACK ok || mark READBACK bad
section rowrite dd if=/dev/zero of=/dev/$DISK2 bs=4096 count=1 oflag=direct

# 4. down (the loopback LUNs go with the backstores), down again
section down1 scuse tcmu down /mnt/vs.xml
i=0
while [ -e /sys/block/$DISK0 ] && [ $i -lt 100 ]; do usleep 50000; i=$((i + 1)); done
mark LEFT 4 "$(left)"
section down2 scuse tcmu down /mnt/vs.xml
mark LEFT 4b "$(left)"

# 5. a crash's leftovers: down removes them; up repairs them
half() {
    mkdir -p $HBA/vs-scsi0-0 $LIO/vhost/$W/tpgt_1/lun/lun_2
}
half
mark HALF "$(left)"
section down3 scuse tcmu down /mnt/vs.xml
mark LEFT 5 "$(left)"
half
section up3 scuse tcmu up /mnt/vs.xml
state >/tmp/state5
cmp -s /tmp/state2 /tmp/state5 && mark SAME 5 yes || { mark SAME 5 no; diff /tmp/state2 /tmp/state5; }
section down4 scuse tcmu down /mnt/vs.xml
mark LEFT 5b "$(left)"

# 6. the daemon stops on SIGTERM
kill -TERM $SP
wait $SP
mark DAEMON "exit=$?"
usleep 200000
mark SYSLOG "$(grep -c "daemon.info scuse\[$SP\]: info: " /tmp/messages)"
section syslog cat /tmp/messages
section daemon_out cat /tmp/daemon.out
kill $SL
