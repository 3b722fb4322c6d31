#!/usr/bin/env bash
# Issue 13 point 3: `scuse tcmu up/down` on a vhost-scsi domain against the
# real kernel's LIO + TCMU + vhost-scsi fabric, inside the TCMU guest
# (profile tcmu, scuse in it; guest/tests/tcmu_domain.sh says what it does
# in order). The domain is written and converted here (`scuse domain
# --transport vhost-scsi`), its images reach the guest over 9p. Judged:
# the configfs state of up (a vhost-scsi port with the domain's WWPN, TPG
# 1, LUN = unit, each backstore naming its disk), up again the same, the
# daemon (`scuse tcmu serve --log=syslog`, busybox syslogd) serving each
# disk with the settings of its <disk>: identity, block size, write
# protection, cache mode, content (qemu-img convert of the chain the XML
# gives) seen through the loopback fabric (vhost-scsi would need QEMU in
# the guest), down and down again leave nothing, a half-made state is
# removed by down and finished by up, SIGTERM exits 0; then qemu-img check
# and compare on the host.
SCUSE_VM_DISK=none
. "$(dirname "$0")/lib/vm.sh"
[ -x "$SCUSE" ] || { echo "FAIL: scuse binary '$SCUSE' not found" >&2; exit 1; }
SCUSE=$SCUSE vm_guest tcmu

S=$T/share
mkdir -p "$S"
head -c 8M /dev/urandom >"$S/base.raw"
qemu-img create -q -f qcow2 "$S/decoy.qcow2" 8M
qemu-img create -q -f qcow2 -b decoy.qcow2 -F qcow2 "$S/top.qcow2"
qio -f qcow2 -c "write -P 0x5c 64k 64k" "$S/top.qcow2"
head -c 4M /dev/urandom >"$S/ro.raw"
chain="json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"$S/top.qcow2\"},\"backing\":{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"$S/base.raw\"}}}"
qemu-img convert -O raw "$chain" "$T/want0.raw"
cp "$S/ro.raw" "$T/ro.before"
cp "$S/base.raw" "$T/base.before"
cat >"$T/vs-orig.xml" <<'XML'
<domain type='kvm'>
  <name>vs</name>
  <uuid>6d1c8a4e-2f3b-4c5d-9e7f-8a9b0c1d2e3f</uuid>
  <memory unit='MiB'>512</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <controller type='scsi' index='0' model='virtio-scsi'/>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source file='/mnt/top.qcow2'/>
      <backingStore type='file'>
        <format type='raw'/>
        <source file='/mnt/base.raw'/>
        <backingStore/>
      </backingStore>
      <target dev='sda' bus='scsi'/>
      <serial>VS-SDA</serial>
      <vendor>ACME</vendor>
      <product>TcmuDomain</product>
      <boot order='1'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='writethrough'/>
      <source file='/mnt/ro.raw'/>
      <target dev='sdc' bus='scsi'/>
      <serial>VS-SDC</serial>
      <blockio logical_block_size='4096' physical_block_size='4096'/>
      <readonly/>
    </disk>
  </devices>
</domain>
XML
"$SCUSE" domain "$T/vs-orig.xml" --transport vhost-scsi --socket-dir /tmp/scuse -o "$S/vs.xml" ||
    setup_error "scuse domain --transport vhost-scsi failed"
W=$(sed -n 's/.*<hostdev .*//; s/.*<source protocol="vhost" wwpn="\(naa\.[0-9a-f]*\)".*/\1/p' "$S/vs.xml")
[ -n "$W" ] || setup_error "no WWPN in the converted domain"

VM_EXTRA_ARGS=(-virtfs "local,path=$S,mount_tag=host0,security_model=none")
VM_NO_DISK=1 vm_boot td tcmu_domain scuse_9p=host0 "scuse_wwpn=$W"
L=$T/td.log
m() { vm_markers td "$1"; }
section() { sed -n "/^@@ BEGIN $1\$/,/^@@ END $1 rc=/p" "$L"; }
rc() { sed -n "s/^@@ END $1 rc=//p" "$L"; }
st() { m STATE | awk -v n="$1" '$1 == n' | cut -d' ' -f2-; }

case_begin "TCMU guest: tcmu up/down of a vhost-scsi domain"
vm_check_boot td tcmu_domain
echo "  boot to power-off: ${VM_SECS} s"
case_end

case_begin "up: a vhost-scsi port per controller (the hostdev's WWPN), TPG 1, LUN = unit"
H=/sys/kernel/config/target/core/user_5300
V=/sys/kernel/config/target/vhost/$W/tpgt_1
[ "$(m VHOST)" = "MODULE yes" ] || fail "vhost_scsi is not loaded in the guest: $(m VHOST)"
[ "$(rc up1)" = 0 ] || fail "up: rc $(rc up1): $(section up1 | tr '\n' ' ')"
s2=$(st 2)
grep -qx "$V/lun/lun_0/vs-scsi0-0 -> $H/vs-scsi0-0" <<<"$s2" &&
    grep -qx "$V/lun/lun_2/vs-scsi0-2 -> $H/vs-scsi0-2" <<<"$s2" ||
    fail "the port's LUNs: $(grep -- '->' <<<"$s2" | tr '\n' ' ')"
grep -qx "$H/vs-scsi0-0 enable=1 config=scuse/domain=0.0@/tmp/scuse/vs.tcmu.xml bs=512 wc=1 size=8388608" <<<"$s2" &&
    grep -qx "$H/vs-scsi0-2 enable=1 config=scuse/domain=0.2@/tmp/scuse/vs.tcmu.xml bs=4096 wc=0 size=4194304" <<<"$s2" ||
    fail "the backstores: $(grep enable= <<<"$s2" | tr '\n' ' ')"
[[ "$(grep "^$V/nexus=" <<<"$s2")" == "$V/nexus=naa."* ]] || fail "no nexus on $V: $(grep nexus <<<"$s2")"
[ "$(grep -c '' <<<"$s2")" -gt 8 ] || fail "a thin state: $s2"
[ "$(m SAME | grep '^2 ')" = "2 yes" ] && [ "$(rc up2)" = 0 ] || fail "up again changed the state ($(m SAME | grep '^2 '))"
section list | grep -Eq "^vs-scsi0-0 +domain +8 MiB +vhost +$W +all +/tmp/scuse/vs.tcmu.xml \(controller 0, unit 0\)\$" &&
    section list | grep -Eq "^vs-scsi0-2 +domain +4 MiB +vhost +$W +all +/tmp/scuse/vs.tcmu.xml \(controller 0, unit 2\)\$" ||
    fail "scuse tcmu list: $(section list | tr '\n' '|')"
[ "$(m SERVED | sort | tr '\n' ' ')" = "vs-scsi0-0 vs-scsi0-2 " ] ||
    fail "the daemon did not log serving both as a domain's disk: $(m SERVED)"
echo "  $W: $(grep -c -- '->' <<<"$s2") LUNs; $(section up1 | sed -n '/^@@/d; 2,3p' | tr -s ' ' | tr '\n' ';')"
case_end

case_begin "each disk as its <disk> says (through tcm_loop): identity, blocks, WP, cache, content"
read -r _ _ bytes bs ro cache <<<"$(m LUN | awk '$1 == 0')"
[ "$bytes $bs $ro $cache" = "8388608 512 0 write_back" ] || fail "LUN 0: $(m LUN | awk '$1 == 0')"
read -r _ _ bytes bs ro cache <<<"$(m LUN | awk '$1 == 2')"
[ "$bytes $bs $ro $cache" = "4194304 4096 1 write_through" ] || fail "LUN 2: $(m LUN | awk '$1 == 2')"
section inq0 | grep -q 'Vendor identification: ACME' && section inq0 | grep -q 'Product identification: TcmuDomain' ||
    fail "LUN 0 INQUIRY: $(section inq0 | grep -i ident | tr '\n' ' ')"
section vpd0 | grep -q 'Unit serial number: VS-SDA' && section vpd2 | grep -q 'Unit serial number: VS-SDC' ||
    fail "serials: $(section vpd0 | grep -i serial) / $(section vpd2 | grep -i serial)"
[ "$(m SHA256 | awk '$1 == "lun0" { print $3 }')" = "$(sha256sum <"$T/want0.raw" | cut -d' ' -f1)" ] ||
    fail "LUN 0 is not the chain the XML gives (top.qcow2 over base.raw, not decoy.qcow2)"
[ "$(m SHA256 | awk '$1 == "lun2" { print $3 }')" = "$(sha256sum <"$T/ro.before" | cut -d' ' -f1)" ] ||
    fail "LUN 2 reads other bytes than ro.raw"
[ "$(m READBACK)" = ok ] || fail "the write to LUN 0 read back $(m READBACK)"
[ "$(rc rowrite)" != 0 ] || fail "a write to the read-only LUN 2 succeeded"
case_end

case_begin "down, down again: nothing left; a half-made state removed by down, finished by up"
[ "$(rc down1)" = 0 ] && [ -z "$(m LEFT | awk '$1 == 4' | cut -d' ' -f2-)" ] ||
    fail "down: rc $(rc down1), left: $(m LEFT | awk '$1 == 4')"
[ "$(rc down2)" = 0 ] && [ -z "$(m LEFT | awk '$1 == "4b"' | cut -d' ' -f2-)" ] ||
    fail "down again: rc $(rc down2): $(section down2 | tr '\n' ' ')"
section down2 | grep -q "nothing to remove" || fail "down again did not say there was nothing"
[[ "$(m HALF)" == *"user_5300"*"vhost/$W"* ]] || fail "the half-made state was not made: $(m HALF)"
[ "$(rc down3)" = 0 ] && [ -z "$(m LEFT | awk '$1 == 5' | cut -d' ' -f2-)" ] ||
    fail "down of a half-made state: rc $(rc down3), left: $(m LEFT | awk '$1 == 5')"
[ "$(rc up3)" = 0 ] && [ "$(m SAME | grep '^5 ')" = "5 yes" ] ||
    fail "up over a half-made state: rc $(rc up3), same: $(m SAME | grep '^5 ')"
[ "$(rc down4)" = 0 ] && [ -z "$(m LEFT | awk '$1 == "5b"' | cut -d' ' -f2-)" ] || fail "the last down"
case_end

case_begin "the daemon: --log=syslog, SIGTERM exits 0"
[ "$(m DAEMON)" = "exit=0" ] || fail "scuse tcmu serve: $(m DAEMON)"
[ "$(m SYSLOG)" -ge 6 ] 2>/dev/null || fail "$(m SYSLOG) info lines of the daemon in syslog"
section syslog | grep -q "daemon.info scuse\[[0-9]*\]: info: tcmu user_5300/vs-scsi0-2 (uio[0-9]*): no longer served" ||
    fail "syslog lacks the removal: $(section syslog | tail -n 3 | tr '\n' ' ')"
[ -z "$(section daemon_out | sed '/^@@/d')" ] || fail "the daemon wrote to stderr: $(section daemon_out)"
bad=$(grep -E 'Sanitizer|runtime error' "$L" || true)
[ -z "$bad" ] || fail "sanitizer reports in the guest: $bad"
case_end

case_begin "host: qemu-img check clean, the guest's write in top.qcow2, the rest unchanged"
out=$(qemu-img check "$S/top.qcow2" 2>&1) || fail "qemu-img check: $out"
gen 1 1048576 65536 7 | dd of="$T/want0.raw" bs=65536 seek=16 conv=notrunc status=none
out=$(qemu-img compare "$chain" "$T/want0.raw" 2>&1) || fail "the chain after the guest's write: $out"
cmp -s "$S/base.raw" "$T/base.before" || fail "the backing file changed"
cmp -s "$S/ro.raw" "$T/ro.before" || fail "the read-only image changed"
case_end
finish
