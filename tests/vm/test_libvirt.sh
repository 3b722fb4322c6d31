#!/usr/bin/env bash
# Issue 13 points 4 and 6: a real libvirt runs a domain scuse serves. The
# test starts a libvirtd of its own (the session daemon, as the
# unprivileged user nobody, with private XDG directories, in a private
# mount namespace where a copy of /etc/libvirt holding scuse's hook is
# mounted over the real one: libvirt 9.0 reads hooks from
# /etc/libvirt/hooks even for session daemons; the machine's libvirt is
# not touched; /run is a tmpfs of the namespace's own, its /run/scuse the
# session user's), and runs README.md's three commands as they are written
# there (vm1 read as this domain's name, lvt), as that user: `scuse domain
# vm1.xml --transport vhost-user-scsi -o vm1-scuse.xml`, `virsh define
# vm1-scuse.xml`, `virsh start vm1`; then:
#   1. that `virsh start`: the hook's `prepare begin` starts `scuse serve
#      --domain` and returns once its sockets listen; the guest (direct
#      kernel boot under TCG, console to a file) sees each LUN's identity,
#      block size, write protection and the content of the chain the XML
#      gives, writes, powers off; the hook's `release end` stops scuse:
#      no scuse process left, the writes in the images, qemu-img check
#      clean, the backing files unchanged;
#   2. `virsh start` again and `virsh destroy` while the guest runs: scuse
#      stopped the same way, the image clean;
#   3. an image that cannot be opened: the hook fails the start (virsh
#      start fails naming the hook), nothing left running;
#   4. the boot order kept: a domain booting by <boot dev='hd'/> whose
#      first disk is scuse's (sda) and which has a virtio disk too, both
#      holding a boot sector (tests/vm/mbr) with a marker of their own:
#      SeaBIOS boots scuse's disk (bootindex 0, libvirt gives the virtio
#      disk 1), which prints its marker on COM1 and ends QEMU through
#      isa-debug-exit (a <qemu:arg> of the original domain, kept).
. "$(dirname "$0")/lib/vm.sh"
need libvirtd virsh unshare setpriv as ld
vm_guest
# root: a private mount namespace, then the session daemon as nobody
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (a private mount namespace, then user nobody)" >&2; exit 77; }

case_begin "a real libvirtd starts and stops scuse through the hook"
L=$T/lv
mkdir -p "$L"/{etc,home,run,cfg/libvirt,cache,data,img,sock}
cp -a /etc/libvirt/. "$L/etc/"
mkdir -p "$L/etc/hooks"
"$SCUSE" libvirt-hook --install "$L/etc/hooks" >/dev/null || setup_error "libvirt-hook --install failed"
echo 'stdio_handler = "file"' >"$L/cfg/libvirt/qemu.conf"   # no virtlogd
cp "$VMLINUX" "$L/img/vmlinux"
cp "$INITRD" "$L/img/initrd"
head -c 16M /dev/urandom >"$L/img/base.raw"
qemu-img create -q -f raw "$L/img/decoy.raw" 16M
qemu-img create -q -f qcow2 -b "$L/img/decoy.raw" -F raw "$L/img/top.qcow2"
qio -f qcow2 -c "write -P 0x5a 0 64k" "$L/img/top.qcow2"
head -c 8M /dev/urandom >"$L/img/ro.raw"
cp "$L/img/base.raw" "$T/base.before"
cp "$L/img/ro.raw" "$T/ro.before"
chain="json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"$L/img/top.qcow2\"},\"backing\":{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"$L/img/base.raw\"}}}"
qemu-img convert -O raw "$chain" "$T/want-sda.raw"

seed=$((RANDOM + 1))
domain_xml() { # NAME TOP-IMAGE
    cat <<XML
<domain type='qemu'>
  <name>$1</name>
  <uuid>$(cat /proc/sys/kernel/random/uuid)</uuid>
  <memory unit='MiB'>256</memory>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>$L/img/vmlinux</kernel>
    <initrd>$L/img/initrd</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 scuse_test=domain scuse_disks=2 scuse_seed=$seed</cmdline>
  </os>
  <features>
    <acpi/>
  </features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='scsi' index='0' model='virtio-scsi'>
      <driver queues='2'/>
    </controller>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source file='$2'/>
      <backingStore type='file'>
        <format type='raw'/>
        <source file='$L/img/base.raw'/>
        <backingStore/>
      </backingStore>
      <target dev='sda' bus='scsi'/>
      <serial>LV-SDA</serial>
      <vendor>ACME</vendor>
      <product>LibvirtDisk</product>
      <boot order='1'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='writethrough'/>
      <source file='$L/img/ro.raw'/>
      <target dev='sdb' bus='scsi'/>
      <serial>LV-SDB</serial>
      <blockio logical_block_size='4096' physical_block_size='4096'/>
      <readonly/>
    </disk>
    <serial type='file'>
      <source path='$L/$1.console'/>
      <target port='0'/>
    </serial>
  </devices>
</domain>
XML
}
domain_xml lvt "$L/img/top.qcow2" >"$L/lvt.xml"
# README.md's three commands, as written there
readme=$(sed -n '/^    scuse domain vm1.xml --transport vhost-user-scsi -o vm1-scuse.xml$/,+2p' "$SCUSE_SRC/README.md" |
         sed 's/^    //')
[ "$(sed -n 2,3p <<<"$readme")" = "virsh define vm1-scuse.xml
virsh start vm1" ] || setup_error "README.md does not have the three commands this test runs: '$readme'"
sed 's/vm1/lvt/g' <<<"$readme" >"$L/readme.cmds"
domain_xml lvbad "$L/img/missing.qcow2" >"$T/lvbad.xml"

# 4: two bootable disks, the SCSI one first for libvirt's <boot dev='hd'/>
as --32 -o "$T/boot.o" "$VM_DIR/mbr/boot.S"
ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o "$T/boot.bin" "$T/boot.o"
boot_disk() { # FILE MARKER
    head -c 1M /dev/zero >"$1"
    dd if="$T/boot.bin" of="$1" conv=notrunc status=none
    printf '%s\0' "$2" | dd of="$1" bs=512 seek=1 conv=notrunc status=none
}
boot_disk "$T/scsi-boot.raw" "scuse-disk-$RANDOM"
boot_disk "$L/img/virtio-boot.raw" "virtio-disk-$RANDOM"
qemu-img convert -f raw -O qcow2 "$T/scsi-boot.raw" "$L/img/scsi-boot.qcow2"
cat >"$T/lvboot.xml" <<XML
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>lvboot</name>
  <memory unit='MiB'>128</memory>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <boot dev='hd'/>
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='scsi' index='0' model='virtio-scsi'/>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='$L/img/virtio-boot.raw'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$L/img/scsi-boot.qcow2'/>
      <target dev='sda' bus='scsi'/>
      <readonly/>
    </disk>
    <serial type='file'>
      <source path='$L/lvboot.console'/>
      <target port='0'/>
    </serial>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-device'/>
    <qemu:arg value='isa-debug-exit,iobase=0xf4,iosize=0x04'/>
  </qemu:commandline>
</domain>
XML
for d in lvbad lvboot; do
    "$SCUSE" domain "$T/$d.xml" --transport vhost-user-scsi --socket-dir "$L/sock" -o "$L/$d.scuse.xml" ||
        setup_error "scuse domain $d failed"
done
chown -R nobody:nogroup "$L"
chown -R root:root "$L/etc"
chmod 700 "$L/run"
chmod 755 "$T" "$L"

# Everything below runs in one private mount namespace: libvirtd and virsh
# as nobody, with the environment a session daemon is given.
cat >"$T/inside.sh" <<'SH'
set -u
L=$1 BIN=$2
mount --bind "$L/etc" /etc/libvirt
# /run of the namespace's own: scuse's default socket directory, /run/scuse,
# is the session user's (the system daemon's hook runs as root and makes it)
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -m 755 /run/scuse && chown nobody:nogroup /run/scuse
as_user() {
    setpriv --reuid=nobody --regid=nogroup --clear-groups \
        env -i HOME="$L/home" XDG_RUNTIME_DIR="$L/run" XDG_CONFIG_HOME="$L/cfg" \
        XDG_CACHE_HOME="$L/cache" XDG_DATA_HOME="$L/data" PATH="$BIN:/usr/sbin:/usr/bin:/sbin:/bin" \
        LIBVIRT_DEFAULT_URI=qemu:///session "$@"
}
v() { as_user virsh -q -c qemu:///session "$@"; }
# lvt's files are in /run/scuse (README's commands: the default directory)
sockdir() { [ "$1" = lvt ] && echo /run/scuse || echo "$L/sock"; }
scuse_pids() { pgrep -u nobody -f "serve --domain $(sockdir "$1")/$1.xml" | tr '\n' ' '; }
wait_state() { # DOMAIN STATE SECONDS
    local i
    for ((i = 0; i < $3 * 4; i++)); do
        [ "$(v domstate "$1" 2>/dev/null)" = "$2" ] && return 0
        sleep 0.25
    done
    return 1
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
echo "@@H LIBVIRTD $(as_user libvirtd --version)"
for d in lvbad lvboot; do v define "$L/$d.scuse.xml" >/dev/null || echo "@@H FAIL define $d"; done

# README's three commands, in $L as the session user: convert, define, start
# (1. the guest runs its test and powers off)
cd "$L"
n=0
while read -r cmd; do
    n=$((n + 1))
    as_user sh -c "$cmd" >"$L/readme$n.out" 2>&1
    rc=$?
    echo "@@H README $n rc=$rc $cmd"
    [ $rc = 0 ] || break
done <"$L/readme.cmds"
if [ "$n" = 3 ] && [ "$rc" = 0 ]; then
    echo "@@H STARTED pids=$(scuse_pids lvt) pidfile=$(cat /run/scuse/lvt.pid 2>/dev/null)"
    [ -S /run/scuse/lvt-scsi0.sock ] && echo "@@H SOCKET ok"
    wait_state lvt "shut off" 240 || { echo "@@H FAIL lvt still $(v domstate lvt) after 240 s"; v destroy lvt; }
    sleep 0.5
    echo "@@H STOPPED1 pids=$(scuse_pids lvt) pidfile=$([ -e /run/scuse/lvt.pid ] && echo left || echo gone)"
else
    echo "@@H FAIL README's command $n: $(tr '\n' ' ' <"$L/readme$n.out")"
fi
cp "$L/lvt.console" "$L/lvt.console.1" 2>/dev/null

# 2. start again, destroy while the guest runs
if v start lvt >"$L/start2.out" 2>&1; then
    for ((i = 0; i < 240; i++)); do
        grep -q "^@@ TEST domain BEGIN" "$L/lvt.console" 2>/dev/null && break
        sleep 0.25
    done
    echo "@@H RUNNING2 pids=$(scuse_pids lvt)"
    v destroy lvt >/dev/null || echo "@@H FAIL virsh destroy"
    sleep 0.5
    echo "@@H STOPPED2 pids=$(scuse_pids lvt) pidfile=$([ -e /run/scuse/lvt.pid ] && echo left || echo gone)"
else
    echo "@@H FAIL second virsh start lvt: $(tr '\n' ' ' <"$L/start2.out")"
fi

# 3. an image that cannot be opened: the hook aborts the start
if v start lvbad >"$L/start3.out" 2>&1; then
    echo "@@H FAIL lvbad started"
    v destroy lvbad
else
    echo "@@H BADSTART $(tr '\n' ' ' <"$L/start3.out")"
fi
sleep 0.5
echo "@@H BADLEFT pids=$(scuse_pids lvbad) state=$(v domstate lvbad)"

# 4. SeaBIOS boots the disk the domain booted from before the conversion
if v start lvboot >"$L/start4.out" 2>&1; then
    wait_state lvboot "shut off" 120 || { echo "@@H FAIL lvboot still $(v domstate lvboot)"; v destroy lvboot; }
    sleep 0.5
    echo "@@H BOOTED $(tr -d '\r' <"$L/lvboot.console" | sed -n 's/^SCUSE-MBR marker=//p') pids=$(scuse_pids lvboot)"
else
    echo "@@H FAIL virsh start lvboot: $(tr '\n' ' ' <"$L/start4.out")"
fi
for d in lvt lvbad lvboot; do v undefine "$d" >/dev/null; done
kill $lp
wait $lp
exit 0
SH
timeout -k 10 600 unshare -m bash "$T/inside.sh" "$L" "$(dirname "$SCUSE")" >"$T/inside.out" 2>&1 || fail "the namespace script: $(tail -n 3 "$T/inside.out")"
H() { sed -n "s/^@@H $1 *//p" "$T/inside.out"; }
{ grep '^@@H FAIL' "$T/inside.out" || true; } | while read -r _ _ why; do echo "  libvirt: $why"; done
grep -q '^@@H FAIL' "$T/inside.out" && fail "$(grep -c '^@@H FAIL' "$T/inside.out") step(s) failed (above)"
echo "  $(H LIBVIRTD)"
[ "$(H README | cut -d' ' -f1-2 | tr '\n' ' ')" = "1 rc=0 2 rc=0 3 rc=0 " ] &&
    echo "  README's commands: $(H README | cut -d' ' -f3- | tr '\n' ';')" ||
    fail "README's three commands: $(H README | tr '\n' ';')"
[[ "$(H STARTED)" == "pids="[0-9]*" pidfile="[0-9]* ]] && [ "$(H SOCKET)" = ok ] ||
    fail "after virsh start: '$(H STARTED)' socket '$(H SOCKET)'"
[ "$(H STOPPED1)" = "pids= pidfile=gone" ] || fail "after the guest powered off: $(H STOPPED1)"
[[ "$(H RUNNING2)" == "pids="[0-9]* ]] || fail "second start: scuse not running: '$(H RUNNING2)'"
[ "$(H STOPPED2)" = "pids= pidfile=gone" ] || fail "after virsh destroy: $(H STOPPED2)"
[[ "$(H BADSTART)" == *"hook"*"missing.qcow2"* || "$(H BADSTART)" == *"Hook"* ]] ||
    fail "a missing image: virsh start said '$(H BADSTART)'"
[ "$(H BADLEFT)" = "pids= state=shut off" ] || fail "after the failed start: $(H BADLEFT)"
echo "  failed start: $(H BADSTART | cut -c1-160)"
want="$(tr -d '\0' < <(dd if="$T/scsi-boot.raw" bs=512 skip=1 count=1 status=none)) pids="
[ "$(H BOOTED)" = "$want" ] && echo "  boot order: SeaBIOS booted scuse's disk ($(H BOOTED | cut -d' ' -f1))" ||
    fail "boot order: the boot sector that ran printed '$(H BOOTED)', scuse's disk would print '$want'"
sed 's/&quot;/"/g' "$L/lvboot.scuse.xml" | grep -q '"bootindex":0}' || fail "lvboot's device has no bootindex 0"

# What the guest saw in the first boot.
tr -d '\r' <"$L/lvt.console.1" >"$T/lv1.log" 2>/dev/null || : >"$T/lv1.log"
VM_RC=0
if vm_check_boot lv1 domain; then
    line=$(vm_markers lv1 DD | awk '$1 == "LV-SDA"')
    [[ "$line" == "LV-SDA "*" 0:0:0:0 ACME|LibvirtDisk|0|512|512|write back|1|16777216|naa.6"* ]] ||
        fail "sda as the guest saw it: '$line'"
    line=$(vm_markers lv1 DD | awk '$1 == "LV-SDB"')
    [[ "$line" == "LV-SDB "*" 0:0:0:1 SCUSE|scuse disk|1|4096|4096|write through|1|8388608|naa.6"* ]] ||
        fail "sdb as the guest saw it: '$line'"
    [ "$(vm_markers lv1 SHA256 | awk '$1 == "LV-SDA" { print $3 }')" = "$(sha256sum <"$T/want-sda.raw" | cut -d' ' -f1)" ] ||
        fail "sda's content is not the chain the XML gives"
    [ "$(vm_markers lv1 ROWRITE)" = "LV-SDB refused" ] || fail "read-only sdb: $(vm_markers lv1 ROWRITE)"
    while read -r s off len sd; do
        [ "$s" = LV-SDA ] || { fail "a write to $s"; continue; }
        gen 1 "$off" "$len" "$sd" | dd of="$T/want-sda.raw" bs=512 seek=$((off / 512)) conv=notrunc status=none
    done < <(vm_markers lv1 WRITE)
    out=$(qemu-img compare -q "$chain" "$T/want-sda.raw" 2>&1) || fail "sda after the guest's write: $out"
fi
out=$(qemu-img check "$L/img/top.qcow2" 2>&1) || fail "qemu-img check after virsh destroy: $out"
cmp -s "$L/img/base.raw" "$T/base.before" || fail "the backing file changed"
cmp -s "$L/img/ro.raw" "$T/ro.before" || fail "the read-only image changed"
[ -z "$(pgrep -u nobody -f "scuse serve --domain ($L/|/run/scuse/lv)" || true)" ] || fail "scuse processes left behind"
case_end
finish
