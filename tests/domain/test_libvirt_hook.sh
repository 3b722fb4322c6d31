#!/usr/bin/env bash
# scuse libvirt-hook called as libvirt calls it (HOOK DOMAIN OP SUBOP EXTRA,
# the domain XML on standard input, only LC_ALL, PATH and HOME set), without
# a libvirtd (tests/vm/test_libvirt.sh runs a real one): prepare begin
# starts scuse serve --domain and returns once it listens; stopped/release
# end stop it; other domains, other operations and a release for a domain
# never started do nothing; failures are one line and exit 1.
set -euo pipefail
: "${SCUSE:?}" "${SCUSE_SRC:?}"
. "$(dirname "$0")/../lib/need.sh"
need qemu-img
T=${SCUSE_TEST_TMP:-/tmp/scuse-libvirt-hook}
rm -rf "$T"
mkdir -p "$T"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
hook() { # DOMAIN OP SUBOP < XML
    env -i LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$T" "$SCUSE" libvirt-hook "$1" "$2" "$3" -
}
serving() { pgrep -f "serve --domain $T/sock/$1.xml" | tr '\n' ' '; }

qemu-img create -q -f qcow2 "$T/d.qcow2" 16M
cat >"$T/vm.xml" <<XML
<domain type='kvm'>
  <name>hk</name>
  <memory unit='MiB'>256</memory>
  <devices>
    <controller type='scsi' index='0' model='virtio-scsi'/>
    <controller type='scsi' index='1' model='virtio-scsi'/>
    <disk type='file'><driver name='qemu' type='qcow2'/><source file='$T/d.qcow2'/><target dev='sda' bus='scsi'/></disk>
    <disk type='file'><driver name='qemu' type='raw'/><source file='$T/d.raw'/><target dev='sdb' bus='scsi'/>
      <address type='drive' controller='1' bus='0' target='0' unit='2'/><readonly/></disk>
  </devices>
</domain>
XML
qemu-img create -q -f raw "$T/d.raw" 8M
"$SCUSE" domain "$T/vm.xml" --transport vhost-user-scsi --socket-dir "$T/sock" -o "$T/hk.xml"

# install
p=$("$SCUSE" libvirt-hook --install "$T/hooks")
[ "$p" = "$T/hooks/qemu.d/scuse" ] && [ -x "$p" ] && grep -q "exec '$SCUSE' libvirt-hook \"\$@\"" "$p" &&
    ok "--install writes qemu.d/scuse, which runs this binary" || bad "--install: $p: $(cat "$p" 2>&1)"

# prepare begin: served, both controllers, once listening
rc=0
out=$(hook hk prepare begin <"$T/hk.xml" 2>&1) || rc=$?
pid=$(cat "$T/sock/hk.pid" 2>/dev/null || true)
[ "$rc" = 0 ] && [ -n "$pid" ] && [ -S "$T/sock/hk-scsi0.sock" ] && [ -S "$T/sock/hk-scsi1.sock" ] &&
    kill -0 "$pid" && ok "prepare begin: scuse serve runs (pid $pid), both sockets listen: $out" ||
    bad "prepare begin: exit $rc '$out', pid '$pid', $(ls "$T/sock" 2>&1)"
# the other operations of a start do nothing
for op in "start begin" "started begin"; do
    rc=0
    out=$(hook hk $op <"$T/hk.xml" 2>&1) || rc=$?
    [ "$rc" = 0 ] && [ -z "$out" ] && [ "$(cat "$T/sock/hk.pid")" = "$pid" ] && ok "$op: nothing" ||
        bad "$op: exit $rc '$out'"
done
# the images are locked by the server: qemu-img cannot write them
qemu-img info "$T/d.qcow2" >/dev/null 2>&1 && bad "qemu-img opened an image scuse serves" ||
    ok "the served image is locked against qemu-img"
# stopped end stops it, release end then finds nothing
rc=0
out=$(hook hk stopped end <"$T/hk.xml" 2>&1) || rc=$?
[ "$rc" = 0 ] && [ -z "$(serving hk)" ] && [ ! -e "$T/sock/hk.pid" ] && ! kill -0 "$pid" 2>/dev/null &&
    ok "stopped end: scuse serve stopped and gone" || bad "stopped end: exit $rc '$out', left: $(serving hk)"
grep -q "SIGTERM: stopping" "$T/sock/hk.log" && ok "it stopped on SIGTERM (images flushed)" ||
    bad "the server's log: $(tail -n 3 "$T/sock/hk.log")"
out=$(qemu-img check "$T/d.qcow2" 2>&1) && ok "qemu-img check: clean" || bad "qemu-img check: $out"
rc=0
out=$(hook hk release end <"$T/hk.xml" 2>&1) || rc=$?
[ "$rc" = 0 ] && [ -z "$out" ] && ok "release end with nothing running: nothing" || bad "release: $rc '$out'"

# a stale pidfile naming another process: not signalled, the file removed
sleep 60 &
other=$!
echo "$other" >"$T/sock/hk.pid"
rc=0
out=$(hook hk release end <"$T/hk.xml" 2>&1) || rc=$?
[ "$rc" = 0 ] && kill -0 "$other" 2>/dev/null && [ ! -e "$T/sock/hk.pid" ] &&
    ok "a stale pidfile naming another process: that process is left alone" ||
    bad "stale pidfile: exit $rc '$out', $(kill -0 "$other" 2>&1 || echo killed)"
kill "$other" 2>/dev/null || true

# a domain that is not scuse's, even one scuse's parser would refuse
# (device='lun': a SCSI passthrough disk, refused by name)
cat >"$T/other.xml" <<'XML'
<domain type='kvm'><name>other</name><memory unit='MiB'>64</memory><devices>
<controller type='scsi' index='0' model='virtio-scsi'/>
<disk type='block' device='lun'><source dev='/dev/sdx'/><target dev='sda' bus='scsi'/></disk>
</devices></domain>
XML
rc=0
out=$(hook other prepare begin <"$T/other.xml" 2>&1) || rc=$?
[ "$rc" = 0 ] && [ -z "$out" ] && [ ! -e "$T/sock/other.pid" ] && ok "another domain: nothing, exit 0" ||
    bad "another domain: exit $rc '$out'"
# scuse's settings in an unconverted domain: libvirt serves it, nothing to do
sed 's|</domain>|<metadata><scuse:domain xmlns:scuse="urn:scuse:domain:1"><scuse:lun dev="sda" deny="UNMAP"/></scuse:domain></metadata></domain>|' \
    "$T/vm.xml" >"$T/settings.xml"
rc=0
out=$(hook hk prepare begin <"$T/settings.xml" 2>&1) || rc=$?
[ "$rc" = 0 ] && [ -z "$out" ] && [ -z "$(serving hk)" ] && ok "an unconverted domain with settings: nothing" ||
    bad "unconverted: exit $rc '$out'"

# failures: an image that cannot be opened
sed "s|$T/d.raw|$T/missing.raw|" "$T/hk.xml" >"$T/bad.xml"
rc=0
out=$(hook hk prepare begin <"$T/bad.xml" 2>&1) || rc=$?
[ "$rc" = 1 ] && [ "$(wc -l <<<"$out")" = 1 ] && [[ "$out" == "scuse libvirt-hook: hk: "*"missing.raw"* ]] &&
    [ -z "$(serving hk)" ] && ok "a missing image fails the start: $out" || bad "missing image: exit $rc '$out'"
# a vhost-scsi domain: its targets made at prepare begin (scuse tcmu up, on
# a configfs stand-in: a plain tree; the real kernel's is
# tests/vm/test_tcmu_domain.sh), removed at stopped/release end
"$SCUSE" domain "$T/vm.xml" --transport vhost-scsi --socket-dir "$T/vstate" -o "$T/vs.xml"
p=$("$SCUSE" libvirt-hook --install "$T/hooks2" --configfs "$T/cfs" --log=stderr)
grep -q "exec '$SCUSE' libvirt-hook --configfs '$T/cfs' --log=stderr \"\$@\"" "$p" &&
    ok "--install --configfs --log: the script passes them on" || bad "--install with options: $(cat "$p")"
mkdir -p "$T/cfs/target/core" "$T/vstate"
vhook() { # OP SUBOP < XML: the installed script, as libvirt runs it
    env -i LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$T" "$p" hk "$1" "$2" -
}
w0=$(sed -n "s/.*<scuse:controller index=\"0\" wwpn=\"\(naa\.[0-9a-f]*\)\".*/\1/p" "$T/vs.xml")
w1=$(sed -n "s/.*<scuse:controller index=\"1\" wwpn=\"\(naa\.[0-9a-f]*\)\".*/\1/p" "$T/vs.xml")
state() { (cd "$T/cfs" && find . | sort; for f in $(find . -type f | sort); do echo "$f=$(cat "$f")"; done); }
rc=0
out=$(vhook prepare begin <"$T/vs.xml" 2>&1) || rc=$?
V=$T/cfs/target/vhost
if [ "$rc" = 0 ] && [ -n "$w0" ] && [ -n "$w1" ] &&
   [ "$(readlink "$V/$w0/tpgt_1/lun/lun_0/hk-scsi0-0")" = "$T/cfs/target/core/user_5300/hk-scsi0-0" ] &&
   [ "$(readlink "$V/$w1/tpgt_1/lun/lun_2/hk-scsi1-2")" = "$T/cfs/target/core/user_5300/hk-scsi1-2" ] &&
   grep -q "dev_config=scuse/domain=1.2@$T/vstate/hk.tcmu.xml," "$T/cfs/target/core/user_5300/hk-scsi1-2/control" 2>/dev/null; then
    ok "prepare begin (vhost-scsi): a target per controller ($w0, $w1), LUN = unit, the disk named in dev_config"
else
    bad "prepare begin (vhost-scsi): exit $rc '$out': $(state | tr '\n' ' ')"
fi
before=$(state)
rc=0
out=$(vhook prepare begin <"$T/vs.xml" 2>&1) || rc=$?
[ "$rc" = 0 ] && [ "$before" = "$(state)" ] && ok "prepare begin again: the same state" ||
    bad "prepare begin again: exit $rc '$out'"
# each removing op on its own, from the made state (release end after
# stopped end would only find an empty tree)
for op in "stopped end" "release end"; do
    vhook prepare begin <"$T/vs.xml" >/dev/null 2>&1
    [ -n "$(ls "$V")" ] && [ -e "$T/vstate/hk.tcmu.xml" ] || bad "$op (vhost-scsi): nothing made to remove"
    rc=0
    out=$(vhook $op <"$T/vs.xml" 2>&1) || rc=$?
    [ "$rc" = 0 ] && [ -z "$(ls "$V")" ] && [ -z "$(ls "$T/cfs/target/core")" ] && [ ! -e "$T/vstate/hk.tcmu.xml" ] &&
        ok "$op (vhost-scsi): targets, backstores and the XML copy gone" ||
        bad "$op (vhost-scsi): exit $rc '$out': $(state | tr '\n' ' ')"
done
sed "s|$T/d.raw|$T/missing.raw|" "$T/vs.xml" >"$T/vsbad.xml"
rc=0
out=$(vhook prepare begin <"$T/vsbad.xml" 2>&1) || rc=$?
[ "$rc" = 1 ] && [ "$(wc -l <<<"$out")" = 1 ] && [[ "$out" == *"<disk> sdb: '$T/missing.raw'"* ]] &&
    ok "vhost-scsi with a missing image fails the start: $out" || bad "vhost-scsi missing image: exit $rc '$out'"
rc=0
out=$(vhook release end <"$T/vsbad.xml" 2>&1) || rc=$?
[ "$rc" = 0 ] && [ -z "$(ls "$V")" ] && [ -z "$(ls "$T/cfs/target/core")" ] &&
    ok "release end after the failed start: what it made is gone" || bad "release after failure: $rc '$out': $(state | tr '\n' ' ')"

echo "----"
[ "$fails" -eq 0 ] && echo "test_libvirt_hook: all passed" || { echo "test_libvirt_hook: $fails failed"; exit 1; }
