#!/usr/bin/env bash
# Real QEMU 7.2 and SeaBIOS against `scuse serve` (vhost-user-scsi): the
# firmware finds the LUNs, boots the boot sector of seabios/boot.S from a
# qcow2 (LUN 0, bootindex 0), whose INT 13h reads print the markers stored
# in two sectors; it resets the machine once (QEMU stops and restarts the
# rings, SeaBIOS boots again and reads again), then QEMU exits 33 through
# isa-debug-exit, and `serve --once` exits 0 when QEMU is gone. Skips (77)
# without QEMU, qemu-img, binutils or python3.
set -u
: "${SCUSE:?SCUSE must name the scuse binary}"
HERE=$(cd "$(dirname "$0")" && pwd)
T=${SCUSE_TEST_TMP:-${TMPDIR:-/tmp}/scuse-test-seabios}
. "$HERE/../lib/need.sh"
need qemu-system-x86_64 qemu-img as ld python3
rm -rf "$T"
mkdir -p "$T"
cd "$T" || exit 1
pid=
trap '[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null' EXIT

as --32 -o boot.o "$HERE/seabios/boot.S" && ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o boot.bin boot.o ||
    { echo "FAIL: cannot assemble the boot sector" >&2; exit 1; }
[ "$(stat -c %s boot.bin)" = 512 ] || { echo "FAIL: the boot sector is not 512 bytes" >&2; exit 1; }
m1="lba1-$RANDOM$RANDOM"
m2="lba60001-$RANDOM$RANDOM"
python3 - "$m1" "$m2" <<'PY'
import sys
d = bytearray(32 << 20)
d[0:512] = open("boot.bin", "rb").read()
for lba, m in ((1, sys.argv[1]), (60001, sys.argv[2])):
    b = ("SCUSE-BOOT %s\n" % m).encode() + b"\0"
    d[lba * 512:lba * 512 + len(b)] = b
open("disk.raw", "wb").write(d)
PY
qemu-img convert -f raw -O qcow2 disk.raw disk.qcow2 || exit 1
qemu-img create -q -f raw second.raw 1M

"$SCUSE" serve --vhost-user-scsi "$T/s.sock" --once --pidfile "$T/pid" ${SCUSE_SERVE_VERBOSE:--v} \
    --lun "0=disk.qcow2,format=qcow2,readonly" --lun "1=second.raw,format=raw" 2>serve.log &
pid=$!
for _ in $(seq 200); do [ -s "$T/pid" ] && break; sleep 0.05; done
[ -S "$T/s.sock" ] || { echo "FAIL: no socket: $(cat serve.log)" >&2; exit 1; }

timeout 60 qemu-system-x86_64 -accel tcg -m 64 -smp 1 -nic none \
    -machine q35,memory-backend=mem -object memory-backend-memfd,id=mem,size=64M,share=on \
    -chardev "socket,id=vus0,path=$T/s.sock" \
    -device vhost-user-scsi-pci,chardev=vus0,num_queues=1,bootindex=0 \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 -boot strict=on \
    -display none -monitor none -serial file:serial.log 2>qemu.err
qrc=$?
fails=0
[ "$qrc" = 33 ] || { echo "FAIL: QEMU exited $qrc (33 expected): $(cat qemu.err serial.log | tail -5)" >&2; fails=1; }
want="SCUSE-BOOT first boot
SCUSE-BOOT $m1
SCUSE-BOOT $m2
SCUSE-BOOT second boot
SCUSE-BOOT $m1
SCUSE-BOOT $m2"
got=$(grep -a '^SCUSE-BOOT' serial.log | tr -d '\r')
[ "$got" = "$want" ] || { echo "FAIL: the boot sector printed: $got" >&2; fails=1; }
for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$pid" 2>/dev/null; then
    echo "FAIL: serve --once still runs after QEMU left" >&2
    fails=1
fi
wait "$pid"
src=$?
pid=
[ "$src" = 0 ] || { echo "FAIL: serve exited $src: $(tail -5 serve.log)" >&2; fails=1; }
grep -q "error" serve.log && { echo "FAIL: serve logged errors: $(grep error serve.log | head -3)" >&2; fails=1; }
if [ "$fails" != 0 ]; then
    echo "test_seabios: failed; files in $T" >&2
    exit 1
fi
[ -n "${SCUSE_TEST_KEEP:-}" ] || rm -rf "$T"
echo "test_seabios: SeaBIOS booted from LUN 0 twice (a reset between) and read both markers each time"
