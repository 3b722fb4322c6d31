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
#    the new size within a second of the command (PARAM_CHANGE);
#  - a CD-ROM LUN added (device type 5, through sg: the base guest has no
#    sr driver): the guest locks it (PREVENT) and its own eject is refused
#    (5/53/02, GUEST_EJECT_REQUEST on the socket), so is the host's
#    medium-eject; allowed again, the host ejects and inserts another
#    image: the guest gets 6/28/00, the new capacity and data; locked
#    again, a forced eject takes it out (2/3a/02);
#  - a `scuse ctl --events` follower gets every event in order.
# scuse only (QEMU's scsi-hd has no such socket).
. "$(dirname "$0")/lib/vm.sh"
vm_require_disk_path
vm_guest

CTL=$T/ctl.sock
RAW=$T/vm.raw
LUN0=$T/lun0.raw

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
# The guest's mailbox: sector 31 MiB into LUN 0 (guest/tests/ctl.sh).
ack() { printf 'ACK %s\n' "$1" | dd of="$LUN0" bs=512 seek=$((31 * 2048)) conv=notrunc,sync status=none; }
step() { wait_marker "STEP $1" || { echo "no STEP $1"; return 1; }; }
NCTL=0
ctl() { # COMMAND [JSON]: the answer in $T/ctl-N.json (CTL_OUT), status 1 on an error answer
    CTL_OUT=$T/ctl-$((++NCTL)).json
    echo "$*" >"$CTL_OUT.cmd"
    "$SCUSE" ctl "$CTL" "$@" >"$CTL_OUT" 2>&1
}
ctl_ok() { ctl "$@" || { echo "scuse ctl $*: $(tr -d '\n' <"$CTL_OUT")"; return 1; }; }
# The host's half: each STEP, its command, the time until the guest saw it.
driver() {
    local t0
    step add || return 1
    t0=$(ms)
    ctl_ok lun-add "{\"lun\": 1, \"file\": \"$T/hot.qcow2\", \"format\": \"qcow2\"}" || return 1
    ack add
    wait_marker "DISK 1 " 60 || { echo "the guest did not see LUN 1"; return 1; }
    echo "add $(( $(ms) - t0 ))"

    step remove || return 1
    t0=$(ms)
    ctl_ok lun-remove '{"lun": 1}' || return 1
    # Closed while scuse serves on: the image lock is gone too.
    qemu-img check -q "$T/hot.qcow2" >"$T/check.out" 2>&1 || echo "check-failed"
    cp "$T/hot.qcow2" "$T/hot-after.qcow2"
    ack remove
    wait_marker "GONE 1" 60 || { echo "the guest kept LUN 1"; return 1; }
    echo "remove $(( $(ms) - t0 ))"

    step resize || return 1
    truncate -s 48M "$LUN0"
    t0=$(ms)
    ctl_ok lun-resize '{"lun": 0}' || return 1
    ack resize
    wait_marker "RESIZED 0 " 30 || { echo "the guest did not see the new size"; return 1; }
    echo "resize $(( $(ms) - t0 ))"

    step cdadd || return 1
    ctl_ok lun-add "{\"lun\": 2, \"file\": \"$T/a.iso\", \"device\": \"cdrom\"}" || return 1
    cp "$CTL_OUT" "$T/cdadd.json"
    ack cdadd
    step lockedeject || return 1
    if ctl medium-eject '{"lun": 2}'; then
        echo "medium-eject went through while the guest prevents removal"
    else
        cp "$CTL_OUT" "$T/refused.json"
    fi
    ctl_ok query-luns && cp "$CTL_OUT" "$T/locked.json"
    ack lockedeject
    step swap || return 1
    ctl_ok medium-eject '{"lun": 2}' || return 1
    ctl_ok query-luns && cp "$CTL_OUT" "$T/empty.json"
    ctl_ok medium-insert "{\"lun\": 2, \"file\": \"$T/b.iso\", \"format\": \"raw\"}" || return 1
    ack swap
    step forceeject || return 1
    ctl_ok medium-eject '{"lun": 2, "force": true}' || return 1
    ctl_ok query-luns && cp "$CTL_OUT" "$T/forced.json"
    ack forceeject
}
# A member of LUN N in a saved query-luns answer.
lun_field() { "$PYTHON" -c 'import json, sys
for l in json.load(open(sys.argv[1]))["return"]:
    if l["lun"] == int(sys.argv[2]): print(json.dumps(l[sys.argv[3]]))' "$@"; }

seed=$((RANDOM + 1))
case_begin "lun-add, lun-remove, lun-resize seen by the guest"
head -c 32M /dev/urandom >"$T/lun0.raw"
qemu-img create -q -f qcow2 "$T/hot.qcow2" 8M
qio -f qcow2 -c 'write -P 0x6c 0 2M' -c 'write -P 0x6d 5M 1M' "$T/hot.qcow2"
qemu-img convert -O raw "$T/hot.qcow2" "$T/hot-want.raw"
want1=$(sha256sum <"$T/hot-want.raw" | cut -d' ' -f1)
head -c 3M /dev/urandom >"$T/a.iso"
head -c 5M /dev/urandom >"$T/b.iso"
vm_lun 0 "$LUN0" "format=raw,serial=VMT-CTL-0"
SCUSE_VM_SERVE_ARGS="--control $CTL -v"
# The driver follows the console of the boot below.
: >"$RAW"
sleep infinity &
QEMU_WATCH=$!
driver >"$T/driver.out" 2>&1 &
DRIVER=$!
# Every event, from the socket's first moment (it appears with the server).
( for ((i = 0; i < 500; i++)); do [ -S "$CTL" ] && break; sleep 0.02; done
  exec "$SCUSE" ctl "$CTL" --events >"$T/events.txt" 2>&1 ) &
EVENTS=$!
VM_PIDS+=("$QEMU_WATCH" "$DRIVER" "$EVENTS")
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

    # The CD-ROM drive.
    read -r type senses <<<"$(vm_markers vm CD)"
    [ "$type" = 5 ] || fail "LUN 2: the guest sees device type $type, 5 (CD-ROM) expected"
    [[ $senses == *6/29/00*GOOD ]] || fail "LUN 2 after lun-add: TEST UNIT READY said '$senses', power-on attention then GOOD expected"
    want_a=$(head -c 65536 "$T/a.iso" | sha256sum | cut -d' ' -f1)
    want_b=$(head -c 65536 "$T/b.iso" | sha256sum | cut -d' ' -f1)
    [ "$(vm_markers vm CDCAP | awk '$1 == "a" { print $2 }')" = $((3 << 20)) ] || fail "a.iso: READ CAPACITY says $(vm_markers vm CDCAP | tr '\n' ' ')"
    [ "$(vm_markers vm CDSUM | awk '$1 == "a" { print $2 }')" = "$want_a" ] || fail "a.iso: the guest read other data"
    [ "$(vm_markers vm GUESTEJECT)" = 5/53/02 ] || fail "the guest's eject under PREVENT: '$(vm_markers vm GUESTEJECT)', 5/53/02 (MEDIUM REMOVAL PREVENTED) expected"
    [ -s "$T/refused.json" ] && grep -q "prevents medium removal" "$T/refused.json" ||
        fail "medium-eject under PREVENT: $(tr -d '\n ' <"$T/refused.json" 2>/dev/null)"
    [ "$(lun_field "$T/locked.json" 2 locked)" = true ] || fail "query-luns under PREVENT: locked is $(lun_field "$T/locked.json" 2 locked)"
    [ "$(lun_field "$T/locked.json" 2 medium)" = '"present"' ] || fail "query-luns after the refused eject: medium $(lun_field "$T/locked.json" 2 medium)"
    [ "$(vm_markers vm CDSTILL)" = "GOOD $want_a" ] || fail "after the refused eject the guest saw '$(vm_markers vm CDSTILL)'"
    [ "$(lun_field "$T/empty.json" 2 medium)" = '"tray-open"' ] || fail "query-luns after medium-eject: medium $(lun_field "$T/empty.json" 2 medium)"
    seen=$(vm_markers vm CDSEEN)
    [[ $seen == *6/28/00*GOOD ]] || fail "after eject and insert TEST UNIT READY said '$seen': NOT READY TO READY CHANGE (6/28/00) then GOOD expected"
    [ "$(vm_markers vm CDCAP | awk '$1 == "b" { print $2 }')" = $((5 << 20)) ] || fail "b.iso: READ CAPACITY says $(vm_markers vm CDCAP | tr '\n' ' ')"
    [ "$(vm_markers vm CDSUM | awk '$1 == "b" { print $2 }')" = "$want_b" ] || fail "b.iso: the guest read other data"
    forced=$(vm_markers vm CDFORCED)
    [[ $forced == *2/3a/02 ]] || fail "after a forced eject TEST UNIT READY said '$forced': NOT READY, MEDIUM NOT PRESENT - TRAY OPEN (2/3a/02) expected"
    [ "$(lun_field "$T/forced.json" 2 locked)" = false ] || fail "a forced eject left the drive locked"
fi
# The events every client got, in order.
kill "$EVENTS" 2>/dev/null || true
got=$("$PYTHON" -c 'import json, sys
for l in open(sys.argv[1]):
    e = json.loads(l); print(e["event"], e["data"].get("lun"), e["data"].get("file", "").rsplit("/", 1)[-1])' "$T/events.txt" | tr '\n' ',')
want="LUN_ADDED 1 hot.qcow2,LUN_REMOVED 1 ,LUN_ADDED 2 a.iso,GUEST_EJECT_REQUEST 2 ,MEDIUM_EJECTED 2 ,MEDIUM_INSERTED 2 b.iso,MEDIUM_EJECTED 2 ,"
[ "$got" = "$want" ] || fail "events: '$got', expected '$want'"

grep -q "TRANSPORT_RESET/RESCAN event sent" "$T/vm.serve.log" || fail "no RESCAN event in the log"
grep -q "TRANSPORT_RESET/REMOVED event sent" "$T/vm.serve.log" || fail "no REMOVED event in the log"
case_end
finish
