#!/usr/bin/env bash
# The libvirt examples in docs/examples/ are judged by libvirt's own schema
# (virt-xml-validate), and the hostdev line `scuse tcmu create` prints is
# the one the TCMU example carries, valid in a domain of its own.
set -euo pipefail
: "${SCUSE:?}" "${SCUSE_SRC:?}"
T=${SCUSE_TEST_TMP:-/tmp/scuse-docs}
rm -rf "$T"
mkdir -p "$T"
. "$(dirname "$0")/../lib/need.sh"
need virt-xml-validate qemu-img
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
validate() { # FILE WHAT
    if out=$(virt-xml-validate "$1" domain 2>&1); then ok "$2"; else bad "$2: $out"; fi
}

for x in "$SCUSE_SRC"/docs/examples/*.xml; do
    validate "$x" "$(basename "$x") validates against libvirt's domain schema"
done

# The schema check can fail: a misspelt element is refused.
sed 's/memoryBacking>/memoryBackng>/g' "$SCUSE_SRC/docs/examples/vm1-vhost-user-scsi.xml" >"$T/bad.xml"
grep -q memoryBackng "$T/bad.xml" || bad "the misspelling was not made"
if virt-xml-validate "$T/bad.xml" domain >/dev/null 2>&1; then
    bad "a misspelt element passed virt-xml-validate"
else
    ok "a misspelt element is refused by virt-xml-validate"
fi

# The vhost-user-scsi example is scuse domain's conversion of vm1.xml: the
# device (QEMU's JSON form) names the chardev, guest RAM is shared.
x=$SCUSE_SRC/docs/examples/vm1-vhost-user-scsi.xml
"$SCUSE" domain "$SCUSE_SRC/docs/examples/vm1.xml" --transport vhost-user-scsi -o "$T/vm1-conv.xml"
cmp -s "$T/vm1-conv.xml" "$x" && ok "vm1-vhost-user-scsi.xml is scuse domain's conversion of vm1.xml" ||
    bad "vm1-vhost-user-scsi.xml differs from the conversion: $(diff "$x" "$T/vm1-conv.xml" | head -n 6)"
id=$(sed -n 's/.*value="socket,id=\([^,]*\),path=.*/\1/p' "$x")
sed 's/&quot;/"/g' "$x" | grep -q "\"driver\":\"vhost-user-scsi-pci\".*\"chardev\":\"$id\"" &&
    grep -q '<access mode="shared"/>' "$x" &&
    ok "vhost-user-scsi example: the device uses chardev '$id', guest RAM shared" ||
    bad "vhost-user-scsi example: device and chardev disagree, or RAM not shared"

# What `scuse tcmu create` prints for libvirt, on a configfs stand-in.
mkdir -p "$T/cfs/target/core"
qemu-img create -q -f qcow2 "$T/vm1.qcow2" 64M
wwpn=naa.5001405df3e54061
"$SCUSE" tcmu create vm1 "$T/vm1.qcow2" --wwpn $wwpn --configfs "$T/cfs" >"$T/create.out"
line=$(sed -n 's/^libvirt: *//p' "$T/create.out")
want=$(tr -d '\n' <"$SCUSE_SRC/docs/examples/vm1-vhost-scsi-tcmu.xml" | grep -o "<hostdev .*</hostdev>" |
       sed 's/>  *</></g')
[ -n "$line" ] && [ "$line" = "$want" ] && ok "scuse tcmu create prints the example's hostdev" ||
    bad "scuse tcmu create prints '$line', the example has '$want'"
cat >"$T/printed.xml" <<XML
<domain type='kvm'><name>t</name><memory unit='MiB'>256</memory>
<os><type arch='x86_64' machine='q35'>hvm</type></os><devices>$line</devices></domain>
XML
validate "$T/printed.xml" "the printed hostdev validates in a domain"
grep -q "^QEMU: *-device vhost-scsi-pci,wwpn=$wwpn\$" "$T/create.out" &&
    ok "scuse tcmu create prints QEMU's -device vhost-scsi-pci,wwpn=$wwpn" ||
    bad "QEMU line: $(grep QEMU "$T/create.out")"

echo "----"
[ "$fails" -eq 0 ] && echo "test_examples: all passed" || { echo "test_examples: $fails failed"; exit 1; }
