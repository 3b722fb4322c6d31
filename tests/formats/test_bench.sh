#!/usr/bin/env bash
# `scuse bench`: exit codes and messages for bad options, the JSON
# result (every field present and consistent), --count runs exactly that
# many requests, write runs leave exactly the pattern where the requests
# went (judged by qemu-io read -P and qemu-img check), 512- and 4096-byte
# LUNs, and -U reads an image a running qemu-io holds for writing.
. "$(dirname "$0")/lib/common.sh"
. "$LIB_DIR/wcommon.sh"

qimg create -q -f qcow2 img.qcow2 8M
qwrite img.qcow2 "write -P 0x11 0 8M"

# json_check FILE EXPR...: python asserts over the JSON result `j`.
json_check() {
    local f=$1 out
    shift
    if ! out=$(python3 - "$f" "$@" <<'EOF' 2>&1
import json, sys
j = json.load(open(sys.argv[1]))
for e in sys.argv[2:]:
    if not eval(e):
        sys.exit("not true: %s (result: %s)" % (e, json.dumps(j)))
EOF
    ); then
        fail "JSON result: $out"
    fi
}

case_begin "bad options: exit 1, one line naming the option"
for args in "--rw sideways" "--bs 0" "--bs 1000" "--bs 65M" "--qd 0" "--qd 4097" "--time 0" \
    "--time x" "--count 0" "--time 1 --count 5" "--block-size 1024" "--block-size 4096 --bs 512" \
    "--stride 100" "--workers 0" "--workers 65" "--pattern 256" "--pattern x" "--output=xml" \
    "-U --rw write" "-U --rw rw"; do
    # shellcheck disable=SC2086
    if expect_exit 1 "$SCUSE" bench $args img.qcow2; then
        stderr_one_line || true
    else
        fail "(args: $args)"
    fi
done
expect_exit 1 "$SCUSE" bench || true
expect_exit 1 "$SCUSE" bench img.qcow2 img.qcow2 || true
expect_exit 1 "$SCUSE" bench --frobnicate img.qcow2 || true
expect_exit 0 "$SCUSE" bench --help || true
grep -q -- '--qd' "$W/.out" || fail "--help does not describe --qd"
case_end

case_begin "images that cannot be used: exit 2 naming them, or 1 when smaller than a request"
if expect_exit 2 "$SCUSE" bench --count 10 nosuch.qcow2; then
    stderr_one_line || true
    stderr_names nosuch.qcow2 || true
fi
expect_exit 2 "$SCUSE" bench -f vmdk --count 10 img.qcow2 || true
qimg create -q -f raw tiny.raw 2048
if expect_exit 1 "$SCUSE" bench --bs 4k --count 1 tiny.raw; then
    stderr_mentions 'smaller than one request' || true
fi
case_end

case_begin "JSON: every field, consistent numbers; --count runs exactly that many"
for spec in "read 4096 32 1000" "randread 8192 7 333" "write 65536 1 77" "randwrite 512 16 500" \
    "rw 4096 4 1001" "read 4096 32 5"; do
    set -- $spec
    cp img.qcow2 j.qcow2
    if expect_exit 0 "$SCUSE" bench --rw "$1" --bs "$2" --qd "$3" --count "$4" --output=json j.qcow2; then
        cp "$W/.out" "$W/.json"
        json_check "$W/.json" "j['rw'] == '$1'" "j['bs'] == $2" "j['qd'] == $3" \
            "j['requests'] == $4" "j['reads'] + j['writes'] == $4" \
            "('write' not in '$1' and '$1' != 'rw') <= (j['writes'] == 0)" \
            "('read' not in '$1' and '$1' != 'rw') <= (j['reads'] == 0)" \
            "'$1' != 'rw' or (j['reads'] > 0 and j['writes'] > 0)" \
            "j['image'] == 'j.qcow2'" "j['block-size'] == 512" "j['stride'] == $2" \
            "1 <= j['workers'] <= 64" "j['seconds'] > 0" \
            "abs(j['iops'] - j['requests'] / j['seconds']) <= 0.01 * j['iops'] + 1" \
            "abs(j['mib-per-second'] - j['iops'] * $2 / 1048576) <= 0.01 * j['mib-per-second'] + 0.01" \
            "j['cpu-seconds'] >= 0" "j['cpu-seconds-per-gib'] >= 0" \
            "set(j) == {'image','rw','bs','qd','stride','block-size','workers','requests','reads','writes','seconds','iops','mib-per-second','cpu-seconds','cpu-seconds-per-gib'}"
    else
        fail "(spec: $spec)"
    fi
done
rm -f j.qcow2
case_end

case_begin "human output; --time runs for about that long"
start=$EPOCHREALTIME
if expect_exit 0 "$SCUSE" bench --rw randread --qd 8 --time 0.5 img.qcow2; then
    grep -qE '^[0-9]+ requests in 0\.[4-9][0-9]* s: [0-9]+ IOPS, [0-9.]+ MiB/s' "$W/.out" ||
        fail "unexpected output: $(tr '\n' '|' <"$W/.out")"
    grep -q 'randread, 4096-byte requests, queue depth 8' "$W/.out" ||
        fail "the first line does not describe the run: $(head -n 1 "$W/.out")"
fi
ms=$(( (${EPOCHREALTIME/./} - ${start/./}) / 1000 ))
[ "$ms" -lt 5000 ] || fail "--time 0.5 took $ms ms"
case_end

case_begin "write --pattern: exactly the requests' bytes change (qemu-io judges), at qemu-img bench's offsets"
# sequential 64 KiB x 20 from 0; strided 4 KiB every 64 KiB x 10 from 0
cp img.qcow2 w.qcow2
expect_exit 0 "$SCUSE" bench --rw write --bs 64k --qd 4 --count 20 --pattern 0xab w.qcow2 || true
qread w.qcow2 "read -P 0xab 0 1280k" "read -P 0x11 1280k $((8192 - 1280))k"
qcheck w.qcow2 0
cp img.qcow2 s.qcow2
expect_exit 0 "$SCUSE" bench --rw write --bs 4k --stride 64k --qd 3 --count 10 --pattern 0xcd \
    s.qcow2 || true
reads=()
for ((i = 0; i < 10; i++)); do
    reads+=("read -P 0xcd $((i * 64))k 4k" "read -P 0x11 $((i * 64 + 4))k 60k")
done
reads+=("read -P 0x11 640k $((8192 - 640))k")
qread s.qcow2 "${reads[@]}"
qcheck s.qcow2 0
# the stride wraps at the end of the image, as qemu-img bench -S does:
# 3 MiB steps over 8 MiB land at 0, 3M, 6M, then 1M
cp img.qcow2 r.qcow2
expect_exit 0 "$SCUSE" bench --rw write --bs 4k --stride 3M --qd 1 --count 4 --pattern 0x5e \
    r.qcow2 || true
qread r.qcow2 "read -P 0x5e 0 4k" "read -P 0x5e 3M 4k" "read -P 0x5e 6M 4k" \
    "read -P 0x5e 1M 4k" "read -P 0x11 4k 1020k" "read -P 0x11 2M 1M"
qcheck r.qcow2 0
# the same offsets as qemu-img bench with the same options
for args in "-s 4k -S 3M -c 7" "-s 64k -S 192k -c 50 -d 8" "-s 16k -c 600 -d 32"; do
    set -- $args
    cp img.qcow2 q.qcow2
    cp img.qcow2 u.qcow2
    qemu-img bench -w --pattern=0x6b "$@" q.qcow2 >/dev/null
    sargs=$(sed -e 's/-s /--bs /' -e 's/-S /--stride /' -e 's/-c /--count /' -e 's/-d /--qd /' <<<"$args")
    # shellcheck disable=SC2086
    expect_exit 0 "$SCUSE" bench --rw write --pattern 0x6b $sargs u.qcow2 || true
    qemu-img compare -q q.qcow2 u.qcow2 ||
        fail "scuse bench $sargs wrote other offsets than qemu-img bench $args"
done
rm -f w.qcow2 s.qcow2 r.qcow2 q.qcow2 u.qcow2
case_end

case_begin "4096-byte LUN; random writes land only on whole requests; raw images"
cp img.qcow2 b.qcow2
if expect_exit 0 "$SCUSE" bench --block-size 4096 --rw randwrite --bs 8k --qd 16 --count 200 \
    --pattern 0x77 --output=json b.qcow2; then
    json_check "$W/.out" "j['block-size'] == 4096" "j['writes'] == 200"
fi
qemu-img convert -f qcow2 -O raw b.qcow2 b.raw
python3 - b.raw <<'EOF' || fail "random writes did not land on whole 8 KiB requests"
import sys
d = open(sys.argv[1], "rb").read()
changed = 0
for o in range(0, len(d), 8192):
    blk = d[o:o + 8192]
    if blk == b"\x77" * 8192:
        changed += 1
    elif blk != b"\x11" * 8192:
        sys.exit("block at %d is neither" % o)
if not 1 <= changed <= 200:
    sys.exit("%d blocks changed" % changed)
EOF
qcheck b.qcow2 0
qimg create -q -f raw plain.raw 4M
expect_exit 0 "$SCUSE" bench -f raw --rw write --bs 1M --qd 2 --count 4 --pattern 0x3c plain.raw ||
    true
qread plain.raw -f raw "read -P 0x3c 0 4M"
rm -f b.qcow2 b.raw plain.raw
case_end

case_begin "-U: reads an image qemu-io holds for writing; without it, a lock error"
rm -f "$W/.q.fifo"
mkfifo "$W/.q.fifo"
: >"$W/.q.log"
qemu-io img.qcow2 <"$W/.q.fifo" >"$W/.q.log" 2>&1 &
QPID=$!
exec {QFD}>"$W/.q.fifo"
for ((i = 0; i < 1000; i++)); do
    grep -q 'qemu-io>' "$W/.q.log" && break
    sleep 0.01
done
grep -q 'qemu-io>' "$W/.q.log" || fail "qemu-io did not open img.qcow2: $(head -n 2 "$W/.q.log")"
if expect_exit 2 "$SCUSE" bench --count 10 img.qcow2; then
    stderr_one_line || true
    stderr_mentions 'lock|in use|qemu' "the lock holder" || true
fi
if expect_exit 0 "$SCUSE" bench -U --count 100 --output=json img.qcow2; then
    json_check "$W/.out" "j['reads'] == 100"
fi
expect_exit 2 "$SCUSE" bench --rw write --count 10 img.qcow2 || true
echo quit >&"$QFD" 2>/dev/null || true
exec {QFD}>&-
{ wait "$QPID"; } 2>/dev/null || true
qread img.qcow2 "read -P 0x11 0 8M"
qcheck img.qcow2 0
case_end

finish
