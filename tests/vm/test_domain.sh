#!/usr/bin/env bash
# Issue 13 point 6: a guest booted with the QEMU arguments taken from a
# domain that `scuse domain --transport vhost-user-scsi` converted, served
# by `scuse serve --domain` on that domain, sees each LUN as the XML says:
# vendor, product, serial, wwn, logical and physical block size, write
# protection, cache mode (WCE), rotation rate, LUN number, size and content
# (sha256 against qemu-img reading the chain the XML gives, not the one the
# image records), and its writes land in the right files.
#
# Two controllers (two sockets, two scuse processes): controller 0 with a
# qcow2 whose <backingStore> overrides its recorded (decoy) backing file,
# and a read-only 4096-byte-block raw disk at unit 3; controller 1 with a
# writable raw disk, 512/4096 blocks, rotation_rate 1. The domain boots its
# kernel directly (<os><kernel>), so QEMU keeps bootindex 0 and the
# conversion gives the boot controller another one.
. "$(dirname "$0")/lib/vm.sh"
need virt-xml-validate virsh
vm_guest

seed=$((RANDOM + 1))
case_begin "a converted libvirt domain, served by scuse serve --domain"
mkdir -p "$T/img"
head -c 16M /dev/urandom >"$T/img/base.raw"
head -c 16M /dev/urandom >"$T/img/decoy.raw"
qemu-img create -q -f qcow2 -b "$T/img/decoy.raw" -F raw "$T/img/top.qcow2"
qio -f qcow2 -c "write -P 0x5a 0 64k" -c "write -P 0x33 5M 1M" "$T/img/top.qcow2"
head -c 8M /dev/urandom >"$T/img/ro.raw"
head -c 8M /dev/urandom >"$T/img/rw.raw"
cp "$T/img/decoy.raw" "$T/decoy.before"
cp "$T/img/base.raw" "$T/base.before"
cp "$T/img/ro.raw" "$T/ro.before"
# What the guest must read from sda: top over base.raw, as the XML says.
qemu-img convert -O raw "json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"$T/img/top.qcow2\"},\"backing\":{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"$T/img/base.raw\"}}}" "$T/want-sda.raw"
cp "$T/img/rw.raw" "$T/want-sdc.raw"

cat >"$T/vm.xml" <<XML
<domain type='kvm'>
  <name>scuse-dom</name>
  <uuid>6c1e8c1f-8e2a-4c57-9a43-4f0d8d3f3a11</uuid>
  <memory unit='MiB'>256</memory>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>$VMLINUX</kernel>
    <initrd>$INITRD</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 scuse_test=domain scuse_disks=3 scuse_seed=$seed</cmdline>
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='scsi' index='0' model='virtio-scsi'>
      <driver queues='2'/>
    </controller>
    <controller type='scsi' index='1' model='virtio-scsi'/>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none' discard='unmap'/>
      <source file='$T/img/top.qcow2'/>
      <backingStore type='file'>
        <format type='raw'/>
        <source file='$T/img/base.raw'/>
        <backingStore/>
      </backingStore>
      <target dev='sda' bus='scsi'/>
      <serial>DOM-SDA</serial>
      <wwn>0x5000c5005ca1ab1e</wwn>
      <vendor>ACME</vendor>
      <product>ChainDisk</product>
      <boot order='1'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='writethrough'/>
      <source file='$T/img/ro.raw'/>
      <target dev='sdb' bus='scsi'/>
      <serial>DOM-SDB</serial>
      <blockio logical_block_size='4096' physical_block_size='4096'/>
      <readonly/>
      <address type='drive' controller='0' bus='0' target='0' unit='3'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='$T/img/rw.raw'/>
      <target dev='sdc' bus='scsi' rotation_rate='1'/>
      <serial>DOM-SDC</serial>
      <blockio logical_block_size='512' physical_block_size='4096'/>
      <address type='drive' controller='1' bus='0' target='0' unit='0'/>
    </disk>
    <console type='pty'/>
  </devices>
</domain>
XML
"$SCUSE" domain "$T/vm.xml" --transport vhost-user-scsi --socket-dir "$T/sock" -o "$T/vm.scuse.xml" ||
    setup_error "scuse domain failed"
out=$(virt-xml-validate "$T/vm.scuse.xml" domain 2>&1) || fail "virt-xml-validate: $out"
out=$(virsh -q -c test:///default define "$T/vm.scuse.xml" 2>&1) || fail "virsh define: $out"

# QEMU's arguments from the converted domain: its memory (memfd, shared),
# kernel, initrd and command line, and every <qemu:arg>.
python3 - "$T/vm.scuse.xml" >"$T/qemu.args" <<'PY' || setup_error "cannot read the converted domain"
import sys, xml.etree.ElementTree as ET
Q = "{http://libvirt.org/schemas/domain/qemu/1.0}"
d = ET.parse(sys.argv[1]).getroot()
mb = d.find("memoryBacking")
assert mb.find("source").get("type") == "memfd" and mb.find("access").get("mode") == "shared"
mem = int(d.find("memory").text)
out = ["-machine", "q35,memory-backend=mem", "-m", str(mem),
       "-object", "memory-backend-memfd,id=mem,size=%dM,share=on" % mem,
       "-kernel", d.find("os/kernel").text, "-initrd", d.find("os/initrd").text,
       "-append", d.find("os/cmdline").text]
out += [a.get("value") for a in d.find(Q + "commandline").findall(Q + "arg")]
print("\0".join(out), end="")
PY
mapfile -d '' QARGS <"$T/qemu.args"
dev0=$(printf '%s\n' "${QARGS[@]}" | grep -c '"driver":"vhost-user-scsi-pci"') || true
[ "$dev0" = 2 ] || fail "$dev0 vhost-user-scsi-pci devices in the converted domain, 2 expected"
grep -q '"id":"scuse-scsi0-dev","chardev":"scuse-scsi0","num_queues":2,"bootindex":2}' "$T/qemu.args" ||
    fail "controller 0's device: $(grep -ao '{[^}]*scsi0-dev[^}]*}' "$T/qemu.args")"

"$SCUSE" serve --domain "$T/vm.scuse.xml" --pidfile "$T/serve.pid" --once \
    ${SCUSE_VM_SERVE_ARGS:-} >"$T/serve.log" 2>&1 &
SERVE_PID=$!
VM_PIDS+=("$SERVE_PID")
for ((i = 0; i < 200; i++)); do
    [ -s "$T/serve.pid" ] && break
    kill -0 "$SERVE_PID" 2>/dev/null || break
    sleep 0.05
done
[ "$(cat "$T/serve.pid" 2>/dev/null)" = "$SERVE_PID" ] ||
    setup_error "scuse serve --domain did not become ready: $(tail -n 5 "$T/serve.log")"
[ -S "$T/sock/scuse-dom-scsi0.sock" ] && [ -S "$T/sock/scuse-dom-scsi1.sock" ] ||
    fail "sockets: $(ls "$T/sock")"

VM_RC=0
printf '%q ' qemu-system-x86_64 "${QARGS[@]}" >"$T/domain.qemu.cmd"
timeout -k 5 "$SCUSE_VM_TIMEOUT" qemu-system-x86_64 -accel "$SCUSE_VM_ACCEL" -smp 1 \
    -display none -monitor none -serial stdio -no-reboot -nic none "${QARGS[@]}" \
    </dev/null >"$T/domain.raw" 2>"$T/domain.qemu.err" || VM_RC=$?
tr -d '\r' <"$T/domain.raw" >"$T/domain.log"
for ((i = 0; i < 200; i++)); do
    kill -0 "$SERVE_PID" 2>/dev/null || break
    sleep 0.05
done
rc=0
if kill -0 "$SERVE_PID" 2>/dev/null; then
    fail "scuse serve --domain --once still runs after the VM left"
    kill "$SERVE_PID"
fi
wait "$SERVE_PID" || rc=$?
[ "$rc" = 0 ] || fail "scuse serve --domain exited $rc: $(tail -n 5 "$T/serve.log")"

if vm_check_boot domain domain; then
    check() { # SERIAL H:C:T:L-suffix FIELDS WANT-SHA
        local line
        line=$(vm_markers domain DD | awk -v s="$1" '$1 == s')
        [ -n "$line" ] || { fail "$1: not seen by the guest"; return; }
        read -r _ disk hctl fields <<<"$line"
        [[ "$hctl" == *":$2" ]] || fail "$1: at $hctl, LUN ${2##*:} expected"
        [[ "$fields" == $3 ]] || fail "$1 ($disk): '$fields', expected '$3'"
        local sha
        sha=$(vm_markers domain SHA256 | awk -v s="$1" '$1 == s { print $3 }')
        [ "$sha" = "$4" ] || fail "$1: the guest read sha256 $sha, the XML's chain is $4"
        echo "  $1 $disk $hctl $fields"
    }
    want_a=$(sha256sum <"$T/want-sda.raw" | cut -d' ' -f1)
    check DOM-SDA "0:0" "ACME|ChainDisk|0|512|512|write back|1|16777216|naa.5000c5005ca1ab1e" "$want_a"
    check DOM-SDB "0:3" "SCUSE|scuse disk|1|4096|4096|write through|1|8388608|naa.6*" \
        "$(sha256sum <"$T/ro.before" | cut -d' ' -f1)"
    check DOM-SDC "0:0" "SCUSE|scuse disk|0|512|4096|write back|0|8388608|naa.6*" \
        "$(sha256sum <"$T/want-sdc.raw" | cut -d' ' -f1)"
    [ "$(vm_markers domain ROWRITE)" = "DOM-SDB refused" ] ||
        fail "the write to the read-only disk: '$(vm_markers domain ROWRITE)'"
    # The writes: replayed onto the expected images.
    n=0
    while read -r s off len sd; do
        case $s in DOM-SDA) f=$T/want-sda.raw ;; DOM-SDC) f=$T/want-sdc.raw ;; *) fail "write to $s"; continue ;; esac
        gen 1 "$off" "$len" "$sd" | dd of="$f" bs=512 seek=$((off / 512)) conv=notrunc status=none
        n=$((n + 1))
    done < <(vm_markers domain WRITE)
    [ "$n" = 2 ] || fail "$n writes reported, 2 expected"
    cmp -s "$T/img/rw.raw" "$T/want-sdc.raw" || fail "rw.raw differs from what the guest wrote"
    out=$(qemu-img compare -q "json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"$T/img/top.qcow2\"},\"backing\":{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"$T/img/base.raw\"}}}" "$T/want-sda.raw" 2>&1) ||
        fail "the chain differs from what the guest wrote: $out"
fi
out=$(qemu-img check "$T/img/top.qcow2" 2>&1) || fail "qemu-img check top.qcow2: $out"
cmp -s "$T/img/decoy.raw" "$T/decoy.before" || fail "the decoy backing file changed"
cmp -s "$T/img/base.raw" "$T/base.before" || fail "the backing file changed"
cmp -s "$T/img/ro.raw" "$T/ro.before" || fail "the read-only image changed"
case_end
finish
