#!/usr/bin/env bash
# scuse domain at the command line: what it lists of a domain (the LUNs of
# its virtio-scsi controllers, their chains and settings), and bad input:
# exit 1 with exactly one line naming the file, the line and the element.
# The parser's cases one by one are tests/unit/test_domain.c's.
set -euo pipefail
: "${SCUSE:?}" "${SCUSE_SRC:?}"
T=${SCUSE_TEST_TMP:-/tmp/scuse-domain-cli}
rm -rf "$T"
mkdir -p "$T"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

cat >"$T/vm1.xml" <<'XML'
<domain type='kvm'>
  <name>vm1</name>
  <memory unit='MiB'>256</memory>
  <devices>
    <controller type='scsi' index='0' model='virtio-scsi'><driver queues='2'/></controller>
    <controller type='scsi' index='1' model='lsilogic'/>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='writethrough' discard='unmap'/>
      <source file='/img/top.qcow2'/>
      <backingStore type='file'><format type='raw'/><source file='/img/base.raw'/><backingStore/></backingStore>
      <target dev='sda' bus='scsi'/>
      <serial>S-1</serial>
      <boot order='1'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='vhd'/>
      <source file='/img/x.vhdx'/>
      <target dev='sdb' bus='scsi'/>
      <readonly/>
    </disk>
    <disk type='file' device='disk'>
      <source file='/img/other.raw'/>
      <target dev='sdc' bus='scsi'/>
      <address type='drive' controller='1' bus='0' target='0' unit='0'/>
    </disk>
  </devices>
</domain>
XML
out=$("$SCUSE" domain "$T/vm1.xml")
echo "$out" | sed 's/^/    /'
grep -q "^controller 0: virtio-scsi, 2 request queues, 2 LUNs$" <<<"$out" &&
    ! grep -q "^controller 1" <<<"$out" && ! grep -q other.raw <<<"$out" &&
    ok "controller 0's two disks listed, the lsilogic controller's left alone" ||
    bad "listing: $out"
grep -q "LUN 0: sda qcow2 '/img/top.qcow2' <- raw '/img/base.raw' (chain ends)" <<<"$out" &&
    grep -q "cache=writethrough (WCE off) discard=unmap .* boot=1" <<<"$out" &&
    ok "sda: its chain as written, WCE off, UNMAP, boot order" || bad "sda: $out"
grep -q "LUN 1: sdb vhd (scuse's vhdx) '/img/x.vhdx' (chain from the headers)" <<<"$out" &&
    grep -q "discard=ignore .* readonly" <<<"$out" &&
    ok "sdb: libvirt's vhd is VHDX, read-only" || bad "sdb: $out"

# Bad input: exit 1, one line "scuse domain: FILE:LINE: <ELEMENT>: ..."
expect_bad() { # NAME SED-EXPRESSION LINE ELEMENT TEXT
    sed "$2" "$T/vm1.xml" >"$T/$1.xml"
    local rc=0 err
    "$SCUSE" domain "$T/$1.xml" >"$T/$1.out" 2>"$T/$1.err" || rc=$?
    err=$(cat "$T/$1.err")
    if [ "$rc" = 1 ] && [ "$(wc -l <"$T/$1.err")" = 1 ] && [ ! -s "$T/$1.out" ] &&
        [[ "$err" == "scuse domain: $T/$1.xml:$3: <$4>: "*"$5"* ]]; then
        ok "$1: $err"
    else
        bad "$1: exit $rc, '$err' (wanted line $3, <$4>, '$5')"
    fi
}
expect_bad vhdx "s|type='vhd'|type='vhdx'|" 16 driver "unknown driver type 'vhdx'"
expect_bad nosource "s|<source file='/img/x.vhdx'/>||" 15 disk "missing source"
expect_bad nofmt "s|<format type='raw'/>||" 10 backingStore "without a <format"
expect_bad lun "s|type='file' device='disk'>|type='block' device='lun'>|" 7 disk "device='lun'"
expect_bad floppy "15s|device='disk'|device='floppy'|" 15 disk "device='floppy'"
expect_bad sameunit "s|dev='sdb' bus='scsi'/>|dev='sdb' bus='scsi'/><address type='drive' controller='0' unit='0'/>|" \
    15 disk "controller 0 unit 0 is taken by the disk at line 7"
expect_bad wwpn "s|<devices>|<devices><hostdev mode='subsystem' type='scsi_host'><source protocol='vhost' wwpn='naa.12345'/></hostdev>|" \
    4 source "wwpn='naa.12345'"
# malformed XML has no element: "FILE:LINE: malformed XML: ..."
sed 's|</controller>|</controler>|' "$T/vm1.xml" >"$T/mal.xml"
rc=0
err=$("$SCUSE" domain "$T/mal.xml" 2>&1 >/dev/null) || rc=$?
[ "$rc" = 1 ] && [[ "$err" == "scuse domain: $T/mal.xml:5: malformed XML: "* ]] &&
    [ "$(wc -l <<<"$err")" = 1 ] && ok "malformed: $err" || bad "malformed: exit $rc, $err"
rc=0
err=$("$SCUSE" domain "$T/none.xml" 2>&1 >/dev/null) || rc=$?
[ "$rc" = 1 ] && [[ "$err" == *"none.xml: No such file or directory"* ]] &&
    ok "missing file: $err" || bad "missing file: exit $rc, $err"

echo "----"
[ "$fails" -eq 0 ] && echo "test_domain_cli: all passed" || { echo "test_domain_cli: $fails failed"; exit 1; }
