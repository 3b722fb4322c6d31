#!/usr/bin/env bash
# Issue 6 point 4: scuse against the real kernel's TCMU. The Debian guest
# kernel (profile tcmu: LIO, target_core_user, tcm_loop, vhost_scsi, 9p)
# runs scuse; the images stay on the host and reach the guest through a
# read-write 9p share (cache=none; why 9p: docs/tcmu.md, "Tested against
# the kernel"). The guest (guest/tests/tcmu.sh, which says what it does
# in order) serves a 3-layer qcow2 chain as a tcm_loop disk, reads and
# writes it, kills and restarts the daemon under I/O, has the SCSI error
# handler abort a command (a TMR entry on the ring), drives a
# targetcli-style backstore through the kernel's netlink waits, serves a
# raw image with 4096-byte blocks under a command policy (UNMAP and
# WRITE SAME(16) refused), exports it through vhost-scsi, serves a VHD
# differencing child (tcmu create -f vpc: read, written, checked) and
# removes everything; a VMDK chain is read and written the same way
# (lib/tcmu_vmdk.sh). The host judges
# from the console markers, then with qemu-img: `check` clean, the top
# equal to the expected raw image (the chain before the run plus every
# write and UNMAP the guest reported, replayed in order), the backing
# files and the vhost image unchanged.
# Knobs: SCUSE_VM_WRITES (default 24), SCUSE_VM_SEED (default: random).
SCUSE_VM_DISK=none                      # no disk path: scuse runs in the guest
. "$(dirname "$0")/lib/vm.sh"
[ -x "$SCUSE" ] || { echo "FAIL: scuse binary '$SCUSE' not found" >&2; exit 1; }
SCUSE=$SCUSE vm_guest tcmu

nw=${SCUSE_VM_WRITES:-24}
seed=${SCUSE_VM_SEED:-$((RANDOM * 32768 + RANDOM + 1))}
S=$T/share
vm_make_chain "$S"
head -c 4M /dev/urandom >"$S/vh.raw"
head -c 1M /dev/urandom >"$S/nl.raw"
head -c 1M /dev/urandom >"$S/nl2.raw"
{ cat "$S/nl2.raw"; head -c 1M /dev/zero; } >"$T/nl2.want"   # the guest doubles it
# A VHD chain for `tcmu create -f vpc`: a dynamic parent by qemu-img, a
# child by scuse create with sector-granular data by the spec reader
# (tests/formats/lib/vhd.py), which is also the oracle (QEMU reads no VHD chain).
VHDPY=$SCUSE_SRC/tests/formats/lib/vhd.py
mkdir -p "$S/vp"
qemu-img create -q -f vpc "$S/vp/base.vhd" 8M
qio -f vpc -c 'write -P 0x17 0 3M' -c 'write -P 0x18 3584k 1M' "$S/vp/base.vhd"
"$SCUSE" create -q -f vpc -b base.vhd -F vpc "$S/vp/child.vhd" >/dev/null ||
    setup_error "scuse create of vp/child.vhd"
printf '%s\n' 'write -P 0x27 1024 2048' "write -P 0x28 $((4 << 20)) 4096" |
    python3 "$VHDPY" io "$S/vp/child.vhd" || setup_error "vhd.py io into vp/child.vhd"
python3 "$VHDPY" export "$S/vp/child.vhd" "$T/vp.want" || setup_error "vhd.py export"
vpbase=$(sha256sum <"$S/vp/base.vhd")
qemu-img convert -O raw "$S/top.qcow2" "$T/want.raw"
want0=$(sha256sum <"$T/want.raw" | cut -d' ' -f1)
backing=$(cd "$S" && sha256sum base.qcow2 mid.qcow2 vh.raw)
. "$(dirname "$0")/lib/tcmu_vmdk.sh"
tcmu_vmdk_prepare "$S"

VM_EXTRA_ARGS=(-virtfs "local,path=$S,mount_tag=host0,security_model=none")
echo "seed $seed, $nw writes"
VM_NO_DISK=1 vm_boot tcmu tcmu scuse_9p=host0 "scuse_seed=$seed" "scuse_writes=$nw"
L=$T/tcmu.log
m() { vm_markers tcmu "$1"; }
section() { sed -n "/^@@ BEGIN $1\$/,/^@@ END $1 rc=/p" "$L"; }
rc() { sed -n "s/^@@ END $1 rc=//p" "$L"; }

case_begin "guest: scuse serve --tcmu, create, I/O, kill -9, netlink, vhost, delete"
booted=0
vm_check_boot tcmu tcmu && booted=1
echo "  boot to power-off: ${VM_SECS} s; guest test $(m TEST | awk '
    $2 == "BEGIN" { b = $3 } $2 == "END" { e = $4 } END { printf "%.2f", e - b }') s"
case_end

case_begin "mailbox: capabilities offered by the kernel and used by scuse"
ring=$(m RING | awk '$1 == 1' | cut -d' ' -f2-)
echo "  $ring"
if [[ $ring =~ ^version\ 2,\ flags\ (0x[0-9a-f]+)\ \(offered:([A-Z_ ]+)\;\ used:([A-Z_ ]*)\),\ map\ ([0-9]+)\ bytes,\ command\ ring\ ([0-9]+)\ bytes\ at\ ([0-9]+),\ data\ area\ ([0-9]+)\ bytes\ at\ ([0-9]+)$ ]]; then
    map=${BASH_REMATCH[4]} cmdr=${BASH_REMATCH[5]} cmdr_off=${BASH_REMATCH[6]}
    data=${BASH_REMATCH[7]} data_off=${BASH_REMATCH[8]}
    [ $((cmdr_off + cmdr)) -eq "$data_off" ] && [ $((data_off + data)) -eq "$map" ] ||
        fail "mailbox sizes do not add up: $ring"
    [ "$data" -eq $((1024 << 20)) ] || fail "data area $data bytes, 1 GiB (max_data_area_mb) expected"
    uio_size=$(m UIO | awk '$1 ~ /^tcm-user\/5300\/disk0\/scuse\/qcow2@\/mnt\/top.qcow2$/ { print $2 }')
    [ -n "$uio_size" ] && [ $((uio_size)) -eq "$map" ] ||
        fail "UIO map0 size '$uio_size' is not the mapped $map bytes ($(m UIO))"
    [ "${BASH_REMATCH[3]}" = " OOOC READ_LEN TMR" ] ||
        fail "scuse uses '${BASH_REMATCH[3]}' (OOOC READ_LEN TMR expected with this kernel)"
else
    fail "no mailbox line from the daemon: '$ring'"
fi
[ "$(m RING | awk '$1 == 2' | cut -d' ' -f2-)" = "$ring" ] ||
    fail "the restarted daemon saw another mailbox: $(m RING | awk '$1 == 2')"
case_end

case_begin "whole-disk read (O_DIRECT) = qemu-img convert of the chain"
got=$(m SHA256 | awk '$1 == "disk" { print $3 }')
[ "$got" = "$want0" ] || fail "guest read $got, qemu-img convert gives $want0"
case_end

case_begin "sg_inq, sg_readcap -l, the serial, create again, the image lock"
[ "$(rc inq)" = 0 ] && section inq | grep -q 'Vendor identification: SCUSE' ||
    fail "sg_inq: rc $(rc inq)"
serial=$(section inq | sed -n 's/^ Unit serial number: //p')
[ -n "$serial" ] && [ "$(m SERIAL)" = "T10 VPD Unit Serial Number: $serial" ] ||
    fail "INQUIRY says serial '$serial', configfs '$(m SERIAL)'"
[ "$(rc create_again)" = 0 ] || fail "create repeated: rc $(rc create_again)"
[ "$(rc create_other)" = 1 ] && section create_other | grep -q "exists with dev_config" ||
    fail "create with another image: rc $(rc create_other): $(section create_other | tr '\n' ' ')"
rcap=$(section readcap)
[ "$(rc readcap)" = 0 ] && grep -q 'Last LBA=131071 (0x1ffff), Number of logical blocks=131072' <<<"$rcap" &&
    grep -q 'Logical block length=512 bytes' <<<"$rcap" && grep -q 'lbpme=1, lbprz=1' <<<"$rcap" ||
    fail "sg_readcap -l: rc $(rc readcap): $(tr '\n' ' ' <<<"$rcap")"
[ "$(rc lock)" = 2 ] && section lock | grep -q 'in use by scuse' ||
    fail "a second writer was not refused by the image lock: rc $(rc lock): $(section lock | tr '\n' ' ')"
case_end

case_begin "random O_DIRECT writes with fsync, read back; UNMAP reads zeros"
[ "$(m WRITES)" = "$nw" ] || fail "no '@@ WRITES $nw' from the guest"
ok=$(m VERIFY | grep -c ' ok$' || true)
[ "$ok" -eq "$nw" ] || fail "the guest read back $ok of $nw writes"
[ "$(m UNMAP)" = "34816 512" ] && [ "$(rc unmap)" = 0 ] || fail "sg_unmap: rc $(rc unmap)"
case_end

case_begin "kill -9 of the daemon during I/O, restart: the I/O completes"
kill_t=$(m KILL)
restart_t=$(m START | awk '$1 == 2 { print $2 }')
[ "$(m KWRITER)" = "rc=0" ] || fail "the writer across the restart: $(m KWRITER)"
[[ $(m KREADER) =~ ^rc=0\ [1-9] ]] || fail "the reader across the restart: $(m KREADER)"
outstanding=$(m RESET | awk '$1 == 2 { print $2 }')
[[ $outstanding =~ ^[1-9][0-9]*$ ]] ||
    fail "the restarted daemon reset no ring with entries on it: RESET $(m RESET)"
if [ -n "$kill_t" ] && [ -n "$restart_t" ]; then
    across=$(join <(m KBEGIN | sort) <(m KDONE | sort) |
             awk -v r="$restart_t" '$2 < r && $3 > r { n++ } END { print n + 0 }')
    before=$(join <(m KBEGIN | sort) <(m KDONE | sort) |
             awk -v k="$kill_t" '$2 < k && $3 > k { print $1 }')
    echo "  kill at $kill_t s, restarted at $restart_t s; $outstanding bytes of ring entries reset" \
         "(BUSY); writes issued before the restart and completed after it: $across (in flight" \
         "at the kill: ${before:-none}); reads of 4 MiB: $(m KREADER | cut -d' ' -f2)"
    [ "$across" -ge 1 ] || fail "no write was outstanding across the restart"
    [ "$(m KDONE | wc -l)" -eq "$nw" ] || fail "$(m KDONE | wc -l) of $nw kill-phase writes done"
else
    fail "no KILL/RESTART markers"
fi
case_end

case_begin "a write acknowledged before the kill survives the restart (fsync after it)"
[ "$(m NOFSYNC)" = "fsync=0 data=ok" ] ||
    fail "acknowledged write, kill -9, restart, fsync: $(m NOFSYNC) (fsync=0 data=ok expected)"
case_end

case_begin "ABORT TASK from the SCSI error handler reaches the stopped daemon as a TMR"
[ "$(m TMR | grep '^dd ')" = "dd rc=0" ] || fail "the aborted and retried read: $(m TMR | grep '^dd ')"
tmr=$(m TMR | sed -n 's/^logged //p')
[[ $tmr =~ ^1\ commands:\ [01]\ in\ flight, ]] || fail "the daemon's TMR line: '$tmr'"
echo "  ABORT TASK naming $tmr"
case_end

case_begin "netlink: the kernel waits for the daemon's replies (targetcli-style backstore)"
nl() { m NL | awk -v s="$1" '$1 == s' | cut -d' ' -f2-; }
[ "$(nl added)" = "rc=0 nl_reply_supported=1 served=1" ] || fail "enable: $(nl added)"
[ "$(nl reconfig_wc)" = "rc=0 logged=1" ] || fail "emulate_write_cache=1: $(nl reconfig_wc)"
[ "$(nl reconfig_cfg)" = "rc=0 logged=1" ] || fail "dev_config: $(nl reconfig_cfg)"
[ "$(nl reconfig_size)" = "rc=0 size=2097152" ] || fail "dev_size grown: $(nl reconfig_size)"
[ "$(rc turs)" = 0 ] || fail "sg_turs -n 9000: rc $(rc turs)"
[ "$(m SHA256 | awk '$1 == "nl" { print $3 }')" = "$(sha256sum <"$T/nl2.want" | cut -d' ' -f1)" ] ||
    fail "the disk read after the ring wrapped is not nl2.raw grown"
cmp -s "$S/nl2.raw" "$T/nl2.want" || fail "nl2.raw on the host is not its first MiB and zeros"
[[ $(m NLRING) =~ command\ ring\ 1048448\ bytes\ at\ 128, ]] ||
    fail "nl0 (cmd_ring_size_mb=1): $(m NLRING)"
[[ $(nl reconfig_size_bad) =~ ^rc=[1-9] ]] ||
    fail "a dev_size the image does not have was accepted: $(nl reconfig_size_bad)"
[[ $(nl added_missing) =~ ^rc=[1-9] ]] || fail "enable with a missing image: $(nl added_missing)"
[[ $(nl removed) =~ ^rc=0\ ([0-9]+)\ commands,\ 0\ TMRs,\ ([0-9]+)\ PAD\ entries$ ]] &&
    [ "${BASH_REMATCH[1]}" -gt 9000 ] && [ "${BASH_REMATCH[2]}" -ge 1 ] ||
    fail "rmdir, or no PAD after 9000 commands on a 1 MiB ring: $(nl removed)"
echo "  nl0 served $(nl removed | cut -d' ' -f2-)"
[ "$(nl refused)" = 0 ] || fail "the kernel refused $(nl refused) of the daemon's netlink messages"
echo "  missing image: enable failed with '$(nl added_missing | cut -d' ' -f2-)';" \
     "wrong dev_size: '$(nl reconfig_size_bad | cut -d' ' -f2-)'"
case_end

case_begin "4096-byte blocks: capacity and content; a command policy through the kernel"
[ "$(m K4 | cut -d' ' -f2-)" = "4194304 4096" ] || fail "the 4K LUN: $(m K4)"
[ "$(m SHA256 | awk '$1 == "k4" { print $3 }')" = "$(sha256sum <"$S/vh.raw" | cut -d' ' -f1)" ] ||
    fail "the 4K LUN reads other bytes than vh.raw"
[ "$(rc k4_create)" = 0 ] && [ "$(rc k4_delete)" = 0 ] || fail "create/delete k4"
# Its command policy: carried in dev_config, applied by the daemon.
section k4_config | grep -qx "scuse/raw;deny=42+93@/mnt/vh.raw" ||
    fail "k4's dev_config: $(section k4_config | tr '\n' ' ')"
ops=$(section k4_opcodes)
grep -Eq '^ 28 .*Read\(10\)$' <<<"$ops" && grep -Eq '^ 41 .*Write same\(10\)$' <<<"$ops" &&
    ! grep -Eq '^ (42|93) ' <<<"$ops" ||
    fail "sg_opcodes through the kernel: not Read(10) and Write same(10) without 42 and 93: $(tr '\n' '|' <<<"$ops")"
[ "$(rc k4_unmap)" = 9 ] || fail "sg_unmap on the deny list: rc $(rc k4_unmap) (want 9, invalid opcode)"
ws16=$(section k4_ws16)
[ "$(rc k4_ws16)" = 9 ] && grep -q "Sense key: Illegal Request" <<<"$ws16" &&
    grep -q "Additional sense: Invalid command operation code" <<<"$ws16" &&
    grep -Eq '^ +70 00 05( [0-9a-f]{2}){5}  00 00 00 00 20 00 ' <<<"$ws16" ||
    fail "WRITE SAME(16) on the deny list: not 05/20/00: $(tail -n 6 <<<"$ws16" | tr '\n' '|')"
case_end

case_begin "vhost-scsi fabric: create, configfs, list, delete"
read -r vstate W vnexus <<<"$(m VHOST | awk '$1 == "create"' | cut -d' ' -f2-)"
[ "$vstate" = ok ] || fail "create: $(m VHOST | grep create)"
out=$(section vhost_create)
grep -qx "QEMU:    -device vhost-scsi-pci,wwpn=$W" <<<"$out" ||
    fail "no QEMU line naming $W: $(tr '\n' ' ' <<<"$out")"
grep -qF "libvirt: <hostdev mode='subsystem' type='scsi_host'><source protocol='vhost' wwpn='$W'/></hostdev>" <<<"$out" ||
    fail "no libvirt line naming $W"
section vhost_list | grep -Eq "^vh0 +raw +4 MiB +vhost +$W +all +/mnt/vh.raw\$" ||
    fail "scuse tcmu list: $(section vhost_list | tr '\n' ' ')"
[ "$(m VHOST | awk '$1 == "delete"')" = "delete ok" ] && [ "$(rc vhost_delete)" = 0 ] ||
    fail "delete: $(m VHOST | grep delete)"
echo "  $W, $vnexus"
case_end

case_begin "tcmu create -f vpc: a VHD differencing child read, written, checked clean"
section vpc_config | grep -qx "scuse/vpc@/mnt/vp/child.vhd" ||
    fail "vp0's dev_config: $(section vpc_config | tr '\n' ' ')"
[ "$(rc vpc_create)" = 0 ] && [ "$(rc vpc_delete)" = 0 ] || fail "create/delete vp0"
[ "$(m SHA256 | awk '$1 == "vpc" { print $3 }')" = "$(sha256sum <"$T/vp.want" | cut -d' ' -f1)" ] ||
    fail "the guest read the VHD chain other than the spec reader"
[ "$(m VPREAD)" = ok ] || fail "the write into vp0 read back: $(m VPREAD)"
while read -r a b c d; do
    gen "$a" "$b" "$c" "$d" | dd of="$T/vp.want" bs=512 seek=$((b / 512)) conv=notrunc status=none
done < <(m VPWRITE)
[ "$booted" = 0 ] || [ "$(m VPWRITE | wc -l)" = 1 ] || fail "VPWRITE: $(m VPWRITE)"
python3 "$VHDPY" export "$S/vp/child.vhd" "$T/vp.got" || fail "vhd.py cannot read vp/child.vhd"
cmp -s "$T/vp.want" "$T/vp.got" || fail "vp/child.vhd differs from what the guest wrote"
if ! out=$("$SCUSE" check -f vpc "$S/vp/child.vhd" 2>&1); then
    fail "scuse check -f vpc vp/child.vhd: $out"
fi
[ "$vpbase" = "$(sha256sum <"$S/vp/base.vhd")" ] || fail "vp/base.vhd changed"
case_end

case_begin "SIGHUP keeps the daemon; teardown: delete, configfs empty, SIGTERM exits 0"
[ "$(m HUP)" = alive ] || fail "after SIGHUP: daemon $(m HUP)"
[ "$(rc delete_disk)" = 0 ] || fail "scuse tcmu delete disk0: rc $(rc delete_disk)"
[ "$(m CLEAN)" = ok ] || fail "left after delete: $(m CLEAN)"
[ "$(m SCUSE | grep '^exit=')" = "exit=0" ] || fail "scuse serve: $(m SCUSE | grep '^exit=')"
for n in 1 2 3; do
    bad=$(section "log$n" | grep -E 'ring broken|kick:|refused' || true)
    [ -z "$bad" ] || fail "daemon $n logged: $bad"
done
bad=$(grep -E 'Sanitizer|runtime error' "$L" || true)
[ -z "$bad" ] || fail "sanitizer reports in the guest: $bad"
case_end

case_begin "host: qemu-img check clean, content = the writes replayed, backing unchanged"
nrep=0
while read -r what a b c d; do
    case "$what" in
    WRITE)
        gen "$a" "$b" "$c" "$d" | dd of="$T/want.raw" bs=512 seek=$((b / 512)) conv=notrunc status=none
        nrep=$((nrep + 1)) ;;
    UNMAP)
        dd if=/dev/zero of="$T/want.raw" bs=512 seek="$a" count="$b" conv=notrunc status=none ;;
    esac
done < <(sed -n 's/^@@ \(WRITE\|UNMAP\) /\1 /p' "$L")
echo "  $nrep writes replayed"
[ "$booted" = 0 ] || [ "$nrep" -eq $((2 * nw + 1)) ] || fail "$nrep writes reported, $((2 * nw + 1)) expected"
if ! out=$(qemu-img check "$S/top.qcow2" 2>&1); then
    fail "qemu-img check: $out"
fi
if ! out=$(qemu-img compare -f qcow2 -F raw "$S/top.qcow2" "$T/want.raw" 2>&1); then
    fail "the image differs from what the guest wrote: $out"
fi
final=$(m SHA256 | awk '$1 == "final" { print $3 }')
[ "$final" = "$(sha256sum <"$T/want.raw" | cut -d' ' -f1)" ] ||
    fail "the guest's last whole-disk read differs from the expected image"
[ "$backing" = "$(cd "$S" && sha256sum base.qcow2 mid.qcow2 vh.raw)" ] ||
    fail "a backing file or the vhost image changed"
case_end
tcmu_vmdk_judge "$S" "$L"
finish
