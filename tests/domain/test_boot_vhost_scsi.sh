#!/usr/bin/env bash
# The boot order of a domain converted for vhost-scsi, as libvirt itself
# turns it into QEMU's arguments (issue 13 point 2): for each boot case the
# domain is converted both ways and `virsh domxml-to-native qemu-argv` of a
# real libvirtd (a session daemon of the test's own, as user nobody, in a
# private mount namespace) gives every device's bootindex. Judged: the
# vhost-scsi-pci device of each controller gets, through <qemu:override>,
# the bootindex the vhost-user-scsi-pci device gets (dom_boot.c's scheme),
# libvirt's own devices get the same indexes in both, no index is given
# twice, and the disk the original booted from is the one scuse's device
# stands for. libvirt opens /dev/vhost-scsi for such a domain (and refuses
# it when missing); the namespace gets a /dev of its own in which that
# name is /dev/null: no vhost-scsi module needed, nothing is started.
set -euo pipefail
: "${SCUSE:?}" "${SCUSE_SRC:?}"
. "$(dirname "$0")/../lib/need.sh"
. "$(dirname "$0")/../lib/scratch.sh"
need libvirtd virsh unshare setpriv python3
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (a private mount namespace, then user nobody)" >&2; exit 77; }
T=${SCUSE_TEST_TMP:-/tmp/scuse-boot-vhost-scsi}
rm -rf "$T"
mkdir -p "$T"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

# libvirt's directories: a short path (its QEMU monitor sockets live under
# XDG_CONFIG_HOME, and a unix socket path has at most 107 bytes)
L=$(scratch_dir /tmp/scuse-bvs.)
trap 'rm -rf --one-file-system "$L"' EXIT
mkdir -p "$L"/{etc,home,run,cfg/libvirt,cache,data,realdev,dom}
cp -a /etc/libvirt/. "$L/etc/"

dom() { # NAME OS-XML DEVICES-XML
    cat <<XML
<domain type='qemu'>
  <name>$1</name>
  <uuid>$(cat /proc/sys/kernel/random/uuid)</uuid>
  <memory unit='MiB'>128</memory>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    $2
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='scsi' index='0' model='virtio-scsi'/>
    $3
  </devices>
</domain>
XML
}
disk() { # DEV BUS [BOOT-ORDER] [CONTROLLER UNIT]
    local boot="" addr=""
    [ -z "${3:-}" ] || boot="<boot order='$3'/>"
    [ -z "${4:-}" ] || addr="<address type='drive' controller='$4' bus='0' target='0' unit='$5'/>"
    echo "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/var/lib/images/$1.raw'/><target dev='$1' bus='$2'/>$boot$addr</disk>"
}
# hd: <boot dev='hd'/> and the SCSI disk first in libvirt's order: scuse's
dom hd "<boot dev='hd'/>" "$(disk vda virtio) $(disk sda scsi)" >"$T/hd.xml"
# order: boot orders on both sides, renumbered, a second controller without one
dom order "" "<controller type='scsi' index='1' model='virtio-scsi'/>
    $(disk vdb virtio 1) $(disk sda scsi 2) $(disk vda virtio 3) $(disk sdh scsi '' 1 0)" >"$T/order.xml"
# kernel: direct kernel boot (QEMU keeps 0 for it), libvirt's disk first
dom kernel "<kernel>/boot/vmlinuz</kernel>" "$(disk vda virtio) $(disk sda scsi)" >"$T/kernel.xml"
# scsi-first: boot order 1 on scuse's disk, 2 on a virtio one
dom first "" "$(disk sda scsi 1) $(disk vda virtio 2)" >"$T/first.xml"
cases="hd order kernel first"
for c in $cases; do
    for t in vhost-scsi vhost-user-scsi; do
        "$SCUSE" domain "$T/$c.xml" --transport $t --socket-dir /run/scuse-test -o "$L/dom/$c.$t.xml"
    done
done
echo 'stdio_handler = "file"' >"$L/cfg/libvirt/qemu.conf"
chown -R nobody:nogroup "$L"
chown -R root:root "$L/etc"
chmod 700 "$L/run"
chmod 755 "$T" "$L"

cat >"$T/inside.sh" <<'SH'
set -u
L=$1
shift
mount --bind "$L/etc" /etc/libvirt
# A /dev of the namespace's own: the real nodes libvirt uses, and
# /dev/vhost-scsi standing for the kernel's (it is only opened).
mount --rbind /dev "$L/realdev"
mount -t tmpfs -o mode=755 tmpfs /dev
for n in null zero full random urandom tty ptmx; do
    touch /dev/$n && mount --bind "$L/realdev/$n" /dev/$n
done
mkdir /dev/pts /dev/shm && mount --rbind "$L/realdev/pts" /dev/pts && mount -t tmpfs tmpfs /dev/shm
touch /dev/vhost-scsi && mount --bind /dev/null /dev/vhost-scsi
as_user() {
    setpriv --reuid=nobody --regid=nogroup --clear-groups \
        env -i HOME="$L/home" XDG_RUNTIME_DIR="$L/run" XDG_CONFIG_HOME="$L/cfg" \
        XDG_CACHE_HOME="$L/cache" XDG_DATA_HOME="$L/data" PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"
}
# exec: $! is libvirtd itself (a function run in the background is a
# subshell, which a kill would end without ending libvirtd)
(exec setpriv --reuid=nobody --regid=nogroup --clear-groups \
    env -i HOME="$L/home" XDG_RUNTIME_DIR="$L/run" XDG_CONFIG_HOME="$L/cfg" \
    XDG_CACHE_HOME="$L/cache" XDG_DATA_HOME="$L/data" PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    libvirtd) >"$L/libvirtd.log" 2>&1 &
lp=$!
for ((i = 0; i < 100; i++)); do [ -S "$L/run/libvirt/libvirt-sock" ] && break; sleep 0.1; done
[ -S "$L/run/libvirt/libvirt-sock" ] || { echo "@@H FAIL libvirtd made no socket"; kill $lp; exit 0; }
for c in "$@"; do
    for t in vhost-scsi vhost-user-scsi; do
        if as_user virsh -q -c qemu:///session domxml-to-native qemu-argv "$L/dom/$c.$t.xml" \
            >"$L/$c.$t.argv" 2>&1; then
            echo "@@H ARGV $c $t ok"
        else
            echo "@@H ARGV $c $t $(tr '\n' ' ' <"$L/$c.$t.argv")"
        fi
    done
done
kill $lp
wait $lp
exit 0
SH
timeout -k 10 120 unshare -m bash "$T/inside.sh" "$L" $cases >"$T/inside.out" 2>&1 ||
    bad "the namespace script: $(tail -n 3 "$T/inside.out")"
grep '^@@H FAIL' "$T/inside.out" && bad "libvirtd did not start: $(tail -n 3 "$L/libvirtd.log")"

# bootindex per device: "id bootindex", scuse's ids as scuse-scsiN
boots() {
    python3 - "$1" <<'PY'
import json, shlex, sys
args = shlex.split(open(sys.argv[1]).read())
for i, a in enumerate(args[:-1]):
    if a != "-device" or not args[i + 1].startswith("{"):
        continue
    d = json.loads(args[i + 1])
    if "bootindex" in d:
        dev = d["id"].replace("ua-scuse-", "scuse-").replace("-dev", "")
        print(dev, d["bootindex"], d["driver"])
PY
}
declare -A want=(
    [hd]="scuse-scsi0 0|virtio-disk0 1"
    [order]="virtio-disk0 3|virtio-disk1 1|scuse-scsi0 2|scuse-scsi1 4"
    [kernel]="virtio-disk0 1|scuse-scsi0 2"
    [first]="scuse-scsi0 1|virtio-disk0 2"
)
for c in $cases; do
    a=$(grep "^@@H ARGV $c vhost-scsi " "$T/inside.out" | cut -d" " -f5-)
    b=$(grep "^@@H ARGV $c vhost-user-scsi " "$T/inside.out" | cut -d" " -f5-)
    if [ "$a" != ok ] || [ "$b" != ok ]; then
        bad "$c: domxml-to-native: vhost-scsi '$a', vhost-user-scsi '$b'"
        continue
    fi
    vs=$(boots "$L/$c.vhost-scsi.argv" | sort)
    vu=$(boots "$L/$c.vhost-user-scsi.argv" | sort)
    got=$(awk '{ print $1, $2 }' <<<"$vs" | sort | tr '\n' '|' | sed 's/|$//')
    exp=$(tr '|' '\n' <<<"${want[$c]}" | sort | tr '\n' '|' | sed 's/|$//')
    dup=$(awk '{ print $2 }' <<<"$vs" | sort | uniq -d)
    nvs=$(grep -c ' vhost-scsi-pci$' <<<"$vs" || true)
    if [ "$(awk '{ print $1, $2 }' <<<"$vs")" = "$(awk '{ print $1, $2 }' <<<"$vu")" ] && [ "$got" = "$exp" ] &&
       [ -z "$dup" ] && [ "$nvs" = "$(grep -c '^scuse-' <<<"$vs")" ] && [ "$nvs" -ge 1 ]; then
        ok "$c: libvirt gives vhost-scsi-pci the bootindex of vhost-user-scsi-pci, its own devices the same: $(tr '\n' ';' <<<"$vs")"
    else
        bad "$c: vhost-scsi $(tr '\n' ';' <<<"$vs") vhost-user-scsi $(tr '\n' ';' <<<"$vu"), expected $exp, twice: '$dup'"
    fi
done
grep -q '"driver":"vhost-scsi-pci","wwpn":"naa.' "$L/hd.vhost-scsi.argv" &&
    ok "the hostdev is QEMU's vhost-scsi-pci with the domain's WWPN and libvirt's vhostfd" ||
    bad "no vhost-scsi-pci in $(cat "$L/hd.vhost-scsi.argv")"

echo "----"
[ "$fails" -eq 0 ] && echo "test_boot_vhost_scsi: all passed" || { echo "test_boot_vhost_scsi: $fails failed"; exit 1; }
