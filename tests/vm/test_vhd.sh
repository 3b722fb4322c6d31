#!/usr/bin/env bash
# Issue 12 point 4: a guest reads and writes VHD and VHDX through `scuse
# serve`, in one boot (guest/tests/vhd.sh):
#   LUN 0  a VHD differencing child (made by `scuse create -b`, in another
#          directory than its parent, sector-granular data written by the
#          spec reader tests/formats/lib/vhd.py, QEMU cannot make one) over
#          a dynamic VHD made and filled by qemu-img/qemu-io, read-write
#   LUN 1  a dynamic VHDX made and filled by qemu-img/qemu-io, read-only
#          (libvhdi)
#   LUN 2  a qcow2 overlay over that VHDX (`scuse create -f qcow2 -b
#          disk.vhdx -F vhdx`), read-write
# Judged: the guest's sha256 of each disk = the host's oracle (vhd.py's
# export for the chain, QEMU ignores a VHD's parent; qemu-img convert for
# the VHDX and the overlay); every write read back by the guest; on the
# host afterwards the child equals its first content plus the writes
# replayed (vhd.py), `scuse check -f vpc` finds it clean, the overlay
# equals the VHDX plus its writes (`qemu-img compare`) and `qemu-img
# check` finds it clean, the parent and the VHDX unchanged.
# vhost only (tests/CMakeLists.txt): QEMU's own vpc reads no differencing
# disk. Knobs: SCUSE_VM_WRITES (default 12 per LUN), SCUSE_VM_SEED.
. "$(dirname "$0")/lib/vm.sh"
vm_require_disk_path
vm_guest
VHDPY=$SCUSE_SRC/tests/formats/lib/vhd.py

nw=${SCUSE_VM_WRITES:-12}
seed=${SCUSE_VM_SEED:-$((RANDOM * 32768 + RANDOM + 1))}
D=$T/img
mkdir -p "$D/sub"
head -c 1M /dev/urandom >"$D/random.bin"
qemu-img create -q -f vpc "$D/base.vhd" 40M
qio -f vpc -c 'write -P 0x11 0 6M' -c "write -s $D/random.bin 7M 1M" -c 'write -P 0x22 16M 3M' \
    -c 'write -P 0x23 30M 1536k' "$D/base.vhd"
rm "$D/random.bin"
"$SCUSE" create -q -f vpc -b ../base.vhd -F vpc "$D/sub/child.vhd" >/dev/null 2>"$T/create.err" ||
    setup_error "scuse create of the child: $(cat "$T/create.err")"
# Sector-granular data in the child: parts of parent blocks, a block's
# edge, zeros over parent data, and a block the parent does not have.
printf '%s\n' 'write -P 0x61 512 1536' 'write -P 0x62 4193280 2048' 'write -z 17825792 4096' \
    'write -P 0x63 26214400 512' 'write -P 0x64 31457280 3584' | python3 "$VHDPY" io "$D/sub/child.vhd" ||
    setup_error "vhd.py io into the child"
python3 "$VHDPY" export "$D/sub/child.vhd" "$T/want0.raw" || setup_error "vhd.py export"

qemu-img create -q -f vhdx "$D/disk.vhdx" 36M
qio -f vhdx -c 'write -P 0x31 0 3M' -c 'write -P 0x32 9M 1M' -c 'write -P 0x33 20M 2560k' \
    "$D/disk.vhdx"
qemu-img convert -f vhdx -O raw "$D/disk.vhdx" "$T/want1.raw"
"$SCUSE" create -q -f qcow2 -b disk.vhdx -F vhdx "$D/over.qcow2" >/dev/null 2>"$T/create.err" ||
    setup_error "scuse create of the overlay: $(cat "$T/create.err")"
cp "$T/want1.raw" "$T/want2.raw"
sums=$(cd "$D" && sha256sum base.vhd disk.vhdx)

sum() { sha256sum <"$1" | cut -d' ' -f1; }
vm_lun 0 "$D/sub/child.vhd" "format=vpc,serial=VMT-VHD-0"
vm_lun 1 "$D/disk.vhdx" "format=vhdx,readonly,serial=VMT-VHD-1"
vm_lun 2 "$D/over.qcow2" "format=qcow2,serial=VMT-VHD-2"
echo "seed $seed, $nw writes per written LUN"
vm_boot vhd vhd "scuse_seed=$seed" "scuse_writes=$nw"

case_begin "guest reads a VHD chain, a VHDX (libvhdi), a qcow2 overlay over the VHDX"
booted=0
if vm_check_boot vhd vhd; then
    booted=1
    for l in 0 1 2; do
        got=$(vm_markers vhd SHA256 | awk -v l=$l '$1 == l && $2 == "direct" { print $3 }')
        want=$(sum "$T/want$l.raw")
        [ "$got" = "$want" ] || fail "LUN $l: guest sha256 $got, the oracle's $want"
        bytes=$(vm_markers vhd DISK | awk -v l=$l '$1 == l { print $4 }')
        [ "$bytes" = "$(stat -c %s "$T/want$l.raw")" ] ||
            fail "LUN $l: the guest sees $bytes bytes, the oracle $(stat -c %s "$T/want$l.raw")"
    done
fi
case_end

case_begin "guest writes into the VHD child and the overlay, reads them back"
n=0
while read -r l i off len s; do
    gen "$l$i" "$off" "$len" "$s" | dd of="$T/want$l.raw" bs=512 seek=$((off / 512)) \
        conv=notrunc status=none
    n=$((n + 1))
done < <(vm_markers vhd WRITE)
[ "$booted" = 0 ] || [ "$n" -eq $((2 * nw)) ] || fail "the guest reported $n writes, $((2 * nw)) asked"
ok=$(vm_markers vhd VERIFY | grep -c ' ok$' || true)
[ "$booted" = 0 ] || [ "$ok" -eq $((2 * nw)) ] || fail "the guest read back $ok of $((2 * nw)) ranges"
for l in 0 2; do
    got=$(vm_markers vhd SHA256 | awk -v l=$l '$1 == l && $2 == "final" { print $3 }')
    [ "$booted" = 0 ] || [ "$got" = "$(sum "$T/want$l.raw")" ] ||
        fail "LUN $l: the guest's last read differs from the writes replayed"
done
case_end

case_begin "host: the child = writes replayed (spec reader), scuse check clean, parent unchanged"
python3 "$VHDPY" export "$D/sub/child.vhd" "$T/got0.raw" || fail "vhd.py cannot read the child"
cmp -s "$T/want0.raw" "$T/got0.raw" || fail "the child differs from what the guest wrote"
if ! out=$("$SCUSE" check -f vpc "$D/sub/child.vhd" 2>&1); then
    fail "scuse check -f vpc of the child: $out"
fi
case_end

case_begin "host: the overlay = writes replayed (qemu-img), qemu-img check clean, VHDX unchanged"
if ! out=$(qemu-img compare -f qcow2 -F raw "$D/over.qcow2" "$T/want2.raw" 2>&1); then
    fail "the overlay differs from what the guest wrote: $out"
fi
if ! out=$(qemu-img check -f qcow2 "$D/over.qcow2" 2>&1); then
    fail "qemu-img check of the overlay: $out"
fi
if ! out=$(qemu-img check -f vhdx "$D/disk.vhdx" 2>&1); then
    fail "qemu-img check of the VHDX: $out"
fi
[ "$sums" = "$(cd "$D" && sha256sum base.vhd disk.vhdx)" ] || fail "the parent VHD or the VHDX changed"
case_end
finish
