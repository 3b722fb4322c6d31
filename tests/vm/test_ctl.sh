#!/usr/bin/env bash
# Issue 14 point 5: a Linux guest sees LUNs added, removed and resized
# through scuse's control socket (`scuse serve --control`, `scuse ctl`),
# in one boot. The guest (guest/tests/ctl.sh) prints a STEP; a driver on
# the host sees it on the console and runs the command; the guest waits
# for the effect:
#  - lun-add: the disk appears (virtio-scsi TRANSPORT_RESET/RESCAN) and
#    reads as qemu-img converts the image; it takes a write;
#  - lun-remove: its SCSI device leaves (TRANSPORT_RESET/REMOVED); the
#    image is closed while scuse still serves LUN 0: qemu-io (no -U)
#    finds the guest's write and qemu-img check passes;
#  - lun-resize after the raw image of LUN 0 grows: the guest's disk has
#    the new size within a second of the command (PARAM_CHANGE).
# scuse only (QEMU's scsi-hd has no such socket).
. "$(dirname "$0")/lib/vm.sh"
vm_require_disk_path
vm_guest

CTL=$T/ctl.sock
RAW=$T/vm.raw

ms() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }
# Wait (up to $2 s) for a console line starting with "@@ $1".
wait_marker() {
    local i
    for ((i = 0; i < ${2:-120} * 50; i++)); do
        grep -q "^@@ $1" "$RAW" 2>/dev/null && return 0
        kill -0 "$QEMU_WATCH" 2>/dev/null || return 1
        sleep 0.02
    done
    return 1
}
ctl() { # COMMAND JSON -> the answer in $T/ctl-N.json; fails on an error answer
    local out=$T/ctl-$((++NCTL)).json
    "$SCUSE" ctl "$CTL" "$@" >"$out" 2>&1 || { echo "scuse ctl $*: $(tr -d '\n' <"$out")"; return 1; }
}
# The host's half: each STEP, its command, the time until the guest saw it.
driver() {
    NCTL=0
    wait_marker "STEP add" || { echo "no STEP add"; return 1; }
    local t0
    t0=$(ms)
    ctl lun-add "{\"lun\": 1, \"file\": \"$T/hot.qcow2\", \"format\": \"qcow2\"}" || return 1
    wait_marker "DISK 1 " 60 || { echo "the guest did not see LUN 1"; return 1; }
    echo "add $(( $(ms) - t0 ))"
    wait_marker "STEP remove" || { echo "no STEP remove"; return 1; }
    t0=$(ms)
    ctl lun-remove '{"lun": 1}' || return 1
    wait_marker "GONE 1" 60 || { echo "the guest kept LUN 1"; return 1; }
    echo "remove $(( $(ms) - t0 ))"
    # Closed while scuse serves on: the image lock is gone too.
    qemu-img check -q "$T/hot.qcow2" >"$T/check.out" 2>&1 || echo "check-failed"
    cp "$T/hot.qcow2" "$T/hot-after.qcow2"
    wait_marker "STEP resize" || { echo "no STEP resize"; return 1; }
    truncate -s 48M "$T/lun0.raw"
    t0=$(ms)
    ctl lun-resize '{"lun": 0}' || return 1
    wait_marker "RESIZED 0 " 30 || { echo "the guest did not see the new size"; return 1; }
    echo "resize $(( $(ms) - t0 ))"
}

seed=$((RANDOM + 1))
case_begin "lun-add, lun-remove, lun-resize seen by the guest"
head -c 32M /dev/urandom >"$T/lun0.raw"
qemu-img create -q -f qcow2 "$T/hot.qcow2" 8M
qio -f qcow2 -c 'write -P 0x6c 0 2M' -c 'write -P 0x6d 5M 1M' "$T/hot.qcow2"
qemu-img convert -O raw "$T/hot.qcow2" "$T/hot-want.raw"
want1=$(sha256sum <"$T/hot-want.raw" | cut -d' ' -f1)
vm_lun 0 "$T/lun0.raw" "format=raw,serial=VMT-CTL-0"
SCUSE_VM_SERVE_ARGS="--control $CTL -v"
# The driver follows the console of the boot below.
: >"$RAW"
sleep infinity &
QEMU_WATCH=$!
driver >"$T/driver.out" 2>&1 &
DRIVER=$!
VM_PIDS+=("$QEMU_WATCH" "$DRIVER")
vm_boot vm ctl "scuse_seed=$seed"
kill "$QEMU_WATCH" 2>/dev/null || true
drc=0
wait "$DRIVER" || drc=$?
[ "$drc" -eq 0 ] || fail "host driver: $(grep -v '^[a-z]* [0-9]*$' "$T/driver.out" | tr '\n' ' ')"
if vm_check_boot vm ctl; then
    got1=$(vm_markers vm SHA256 | awk '$1 == 1 { print $3 }')
    [ "$got1" = "$want1" ] || fail "LUN 1 after lun-add: guest sha256 $got1, qemu-img convert $want1"
    read -r _ off len s <<<"$(vm_markers vm WRITE)"
    qemu-img convert -O raw "$T/hot-after.qcow2" "$T/hot-after.raw"
    gen 1 "$off" "$len" "$s" >"$T/want-write"
    cmp -s <(dd if="$T/hot-after.raw" bs=512 skip=$((off / 512)) count=$((len / 512)) status=none) \
        "$T/want-write" || fail "the guest's write into LUN 1 is not in the image after lun-remove"
    [ ! -s "$T/check.out" ] || fail "qemu-img check after lun-remove: $(head -n 3 "$T/check.out")"
    read -r _ bytes <<<"$(vm_markers vm RESIZED)"
    [ "$bytes" = $((48 << 20)) ] || fail "the guest sees $bytes bytes after lun-resize, 48 MiB expected"
    resize_ms=$(awk '$1 == "resize" { print $2 }' "$T/driver.out")
    [ -n "$resize_ms" ] && [ "$resize_ms" -le 1000 ] ||
        fail "the guest saw the new size $resize_ms ms after lun-resize (1000 at most)"
    echo "  guest saw: $(tr '\n' ' ' <"$T/driver.out")(ms after the command)"
fi
grep -q "TRANSPORT_RESET/RESCAN event sent" "$T/vm.serve.log" || fail "no RESCAN event in the log"
grep -q "TRANSPORT_RESET/REMOVED event sent" "$T/vm.serve.log" || fail "no REMOVED event in the log"
case_end
finish
