#!/usr/bin/env bash
# scuse domain --transport: golden conversions, one domain per feature
# (tests/domain/golden/NAME.xml -> expected/NAME.TRANSPORT.xml), each
# judged by libvirt's own tools: virt-xml-validate (the RNG schema) and
# `virsh -c test:///default define` (libvirt's parser and validator), with
# scuse's metadata element given back by `virsh metadata`. Converting the
# output again gives it back byte for byte (idempotence), converting it to
# the other transport is valid too, and the converted domain lists the
# same LUNs as the original. SCUSE_GOLDEN_UPDATE=1 rewrites the expected
# files (review the diff).
#
# Features: basic (one disk; bootindex 0 for the first disk), multi (two
# served controllers with queues, an lsilogic one and a SATA disk left
# alone, an empty virtio-scsi controller left), boot-os (<boot dev='hd'/>
# and a virtio disk: the SCSI disk comes first, 0), boot-net (network
# first: after libvirt's 1 and 2), boot-kernel (direct kernel boot: QEMU
# keeps 0, the device takes 2), boot-renumber (boot orders 5, 7, 10 become
# 1, 2, 3; the second controller 4), memory (anonymous/private backing
# becomes memfd/shared, the rest kept), commandline (the user's qemu:arg
# and qemu:env kept), chain (backingStore, identity, blockio, readonly,
# shareable moved verbatim), metadata (another application's metadata and
# scuse's settings kept, a given WWPN used).
set -euo pipefail
: "${SCUSE:?}" "${SCUSE_SRC:?}"
T=${SCUSE_TEST_TMP:-/tmp/scuse-domain-convert}
G=$SCUSE_SRC/tests/domain/golden
rm -rf "$T"
mkdir -p "$T"
. "$(dirname "$0")/../lib/need.sh"
need virt-xml-validate virsh
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

libvirt_ok() { # FILE NAME WHAT
    local out
    if ! out=$(virt-xml-validate "$1" domain 2>&1); then
        bad "$3: virt-xml-validate: $out"
        return
    fi
    if ! out=$(virsh -q -c test:///default "define $1; metadata $2 --uri urn:scuse:domain:1" 2>&1); then
        bad "$3: virsh define: $out"
        return
    fi
    # virsh metadata gives the element back without its prefix
    grep -q "<transport type=" <<<"$out" || { bad "$3: libvirt lost scuse's metadata: $out"; return; }
    ok "$3: valid for libvirt (schema, test driver), metadata kept"
}

# (boot orders may be renumbered, see dom_boot.c)
luns() { "$SCUSE" domain "$1" | grep -E '^  LUN|^    ' | sed 's/ boot=[0-9]*//'; }

n=0
for in in "$G"/*.xml; do
    name=$(basename "$in" .xml)
    for t in vhost-user-scsi vhost-scsi; do
        n=$((n + 1))
        out=$T/$name.$t.xml
        want=$G/expected/$name.$t.xml
        if ! "$SCUSE" domain "$in" --transport "$t" -o "$out" 2>"$T/err"; then
            bad "$name $t: scuse domain failed: $(cat "$T/err")"
            continue
        fi
        if [ "${SCUSE_GOLDEN_UPDATE:-0}" = 1 ]; then
            cp "$out" "$want"
        fi
        if d=$(diff -u "$want" "$out"); then
            ok "$name $t: as expected/$name.$t.xml"
        else
            bad "$name $t: differs from the golden file:"
            echo "$d" | head -n 30
        fi
        libvirt_ok "$out" "$name" "$name $t"
        "$SCUSE" domain "$out" --transport "$t" -o "$T/again.xml"
        cmp -s "$out" "$T/again.xml" && ok "$name $t: converting the output again gives it back" ||
            bad "$name $t: not idempotent: $(diff "$out" "$T/again.xml" | head -n 8)"
        other=vhost-scsi
        [ "$t" = vhost-user-scsi ] || other=vhost-user-scsi
        "$SCUSE" domain "$out" --transport "$other" -o "$T/other.xml"
        libvirt_ok "$T/other.xml" "$name" "$name $t then $other"
        [ "$(luns "$in")" = "$(luns "$out")" ] && ok "$name $t: the same LUNs as the original" ||
            bad "$name $t: LUNs differ: $(diff <(luns "$in") <(luns "$out"))"
    done
done

# Facts the golden files hold, said plainly.
x=$G/expected
dq() { sed 's/&quot;/"/g' "$1"; }
dq "$x/multi.vhost-user-scsi.xml" | grep -q '"chardev":"scuse-scsi0","num_queues":4,"bootindex":0}' &&
    dq "$x/multi.vhost-user-scsi.xml" | grep -q '"chardev":"scuse-scsi2","num_queues":2,"bootindex":2}' &&
    grep -q "model=\"lsilogic\"" <(sed -n '/<devices>/,/<\/devices>/p' "$x/multi.vhost-user-scsi.xml") &&
    grep -q "index=\"3\" model=\"virtio-scsi\"" <(sed -n '/<devices>/,/<\/devices>/p' "$x/multi.vhost-user-scsi.xml") &&
    ok "multi: two devices with their queues; lsilogic and the empty controller stay in <devices>" ||
    bad "multi: devices or controllers"
grep -q 'bootindex&quot;:2' "$x/boot-kernel.vhost-user-scsi.xml" &&
    grep -q 'bootindex&quot;:3' "$x/boot-net.vhost-user-scsi.xml" &&
    grep -q 'bootindex&quot;:0' "$x/boot-os.vhost-user-scsi.xml" &&
    ok "bootindex: 2 after a direct kernel (QEMU has 0, libvirt's hd 1), 3 after network and hd, 0 when the SCSI disk boots" ||
    bad "bootindex choices"
sed -n '/<devices>/,/<\/devices>/p' "$x/boot-renumber.vhost-user-scsi.xml" | grep -o 'boot order="[0-9]*"' | tr '\n' ' ' |
    grep -qx 'boot order="3" boot order="1" ' &&
    grep -q 'scuse-scsi0-dev.*bootindex&quot;:2' "$x/boot-renumber.vhost-user-scsi.xml" &&
    grep -q 'scuse-scsi1-dev.*bootindex&quot;:4' "$x/boot-renumber.vhost-user-scsi.xml" &&
    ok "boot-renumber: interface 5 -> 1, scuse's sda 7 -> 2, vda 10 -> 3, the other controller 4" ||
    bad "boot-renumber"
grep -q 'wwpn="naa.5001405df3e54061"' <(sed -n '/<hostdev/,/<\/hostdev>/p' "$x/metadata.vhost-scsi.xml") &&
    ok "metadata: the WWPN scuse's element gives is the hostdev's" || bad "metadata WWPN"

# The WWPN is stable and differs per controller and per domain.
w() { "$SCUSE" domain "$1" --transport vhost-scsi | grep -o "naa\.[0-9a-f]*" | sort -u | tr '\n' ' '; }
a=$(w "$G/multi.xml"); b=$(w "$G/multi.xml")
sed 's/5e02/5e99/' "$G/multi.xml" >"$T/multi-other-uuid.xml"
c=$(w "$T/multi-other-uuid.xml")
[ "$a" = "$b" ] && [ "$(wc -w <<<"$a")" = 2 ] && [ "$a" != "$c" ] &&
    ok "WWPNs: stable across runs, one per controller, another domain UUID gives others ($a)" ||
    bad "WWPNs: '$a' '$b' '$c'"

# The sockets' mode and group, recorded and kept; vhost-scsi drops them.
"$SCUSE" domain "$G/basic.xml" --transport vhost-user-scsi --socket-mode 660 --socket-group kvm -o "$T/perm.xml"
"$SCUSE" domain "$T/perm.xml" --transport vhost-user-scsi -o "$T/perm2.xml"
"$SCUSE" domain "$T/perm.xml" --transport vhost-scsi -o "$T/perm3.xml"
grep -q '<scuse:transport type="vhost-user-scsi" socket-dir="/run/scuse" socket-mode="0660" socket-group="kvm"/>' "$T/perm.xml" &&
    cmp -s "$T/perm.xml" "$T/perm2.xml" && ! grep -q "socket-mode" "$T/perm3.xml" &&
    ok "--socket-mode/--socket-group recorded in <scuse:transport>, kept when converted again" ||
    bad "socket mode/group: $(grep scuse:transport "$T/perm.xml" "$T/perm2.xml" "$T/perm3.xml")"
libvirt_ok "$T/perm.xml" basic "socket mode/group"

# Usage errors.
rc=0; err=$("$SCUSE" domain "$G/basic.xml" --transport nbd 2>&1) || rc=$?
[ "$rc" = 1 ] && [[ "$err" == *"--transport 'nbd'"* ]] && ok "an unknown transport: $err" || bad "transport: $rc $err"
rc=0; err=$("$SCUSE" domain "$G/basic.xml" --transport vhost-user-scsi --socket-dir run 2>&1) || rc=$?
[ "$rc" = 1 ] && [[ "$err" == *"an absolute path"* ]] && ok "a relative socket dir: $err" || bad "socket dir: $rc $err"
"$SCUSE" domain "$G/basic.xml" --transport vhost-user-scsi --socket-dir /srv/a,b >"$T/comma.xml"
grep -q 'path=/srv/a,,b/basic-scsi0.sock' "$T/comma.xml" && ok "a comma in the socket path is doubled for QEMU" ||
    bad "comma: $(grep chardev -A1 "$T/comma.xml")"

echo "----"
[ "$fails" -eq 0 ] && echo "test_domain_convert: all passed ($n conversions)" || { echo "test_domain_convert: $fails failed"; exit 1; }
