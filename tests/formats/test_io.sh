#!/usr/bin/env bash
# `scuse io`, the qemu-io look-alike the write tests drive: exit codes
# (0 ok, 1 usage / verification, 2 I/O), messages, read-only mode, size
# suffixes, argument order, several commands per run, output lines.
# Data is always judged with qemu-io.
. "$(dirname "$0")/lib/common.sh"
. "$LIB_DIR/wcommon.sh"

qimg create -q -f qcow2 img.qcow2 4M
qwrite img.qcow2 "write -P 0x11 0 4k"

case_begin "read -P: match exits 0; mismatch exits 1 and names the offset"
expect_exit 0 "$SCUSE" io -c 'read -P 0x11 0 4k' img.qcow2 || true
if expect_exit 1 "$SCUSE" io -c 'read -P 0x11 0 8k' img.qcow2; then
    grep -q '4096' "$W/.out" "$W/.err" ||
        fail "the mismatch message does not name offset 4096: $(cat "$W/.out" "$W/.err" | head -n 3 | tr '\n' '|')"
fi
expect_exit 1 "$SCUSE" io -c 'read -P 0x12 100 1' img.qcow2 || true
grep -q '100' "$W/.out" "$W/.err" || fail "the mismatch message does not name offset 100"
case_end

case_begin "usage errors exit 1 with one line: unknown command, option, missing or bad numbers"
# (Regression: getopt() used to print its own "write: invalid option --
# 'x'" line before scuse's message; fixed in 1f9f68a.)
for c in 'frobnicate 0 512' 'write -x 0 512' 'write 0' 'read' 'write abc 512' 'write 0 12q' \
    'write -P 0x100 0 512' 'write -P zz 0 512' 'write -u 0 512' 'write -z -P 0x11 0 512' \
    'discard -P 0x11 0 512' 'read -z 0 512' 'write -1 512' 'read 0 -512'; do
    if expect_exit 1 "$SCUSE" io -c "$c" img.qcow2; then
        stderr_one_line || true
    else
        fail "(command: '$c')"
    fi
done
expect_exit 1 "$SCUSE" io || true
expect_exit 1 "$SCUSE" io -c 'read 0 512' || true
expect_exit 1 "$SCUSE" io -c 'read 0 512' img.qcow2 img.qcow2 || true
# (an unknown -f format is an image error, exit 2, as in scuse info/convert)
expect_exit 2 "$SCUSE" io -f nosuchformat -c 'read 0 512' img.qcow2 || true
qread img.qcow2 "read -P 0x11 0 4k" "read -P 0 4k $((4096 * 1023))"
case_end

case_begin "out of range: exit 1, nothing written"
size=$((4 * 1024 * 1024))
for c in "write 0 $((size + 1))" "write $((size - 1)) 2" "write $size 1" "read $((size - 511)) 512" \
    "write -z $((size - 4096)) 8192" "discard $((size + 4096)) 4096" "write 5G 512"; do
    if expect_exit 1 "$SCUSE" io -c "$c" img.qcow2; then
        stderr_one_line || true
    else
        fail "(command: '$c')"
    fi
done
expect_exit 0 "$SCUSE" io -c "write -P 0x22 $((size - 1)) 1" -c "read -P 0x22 $((size - 1)) 1" img.qcow2 || true
qread img.qcow2 "read -P 0x11 0 4k" "read -P 0 4k $((size - 4096 - 1))" "read -P 0x22 $((size - 1)) 1"
qcheck img.qcow2 0
case_end

case_begin "missing or unreadable image: exit 2, one line naming it"
if expect_exit 2 "$SCUSE" io -c 'read 0 512' nosuch.qcow2; then
    stderr_one_line || true
    stderr_names nosuch.qcow2 || true
fi
if expect_exit 2 "$SCUSE" io -r -c 'read 0 512' nosuch.qcow2; then
    stderr_one_line || true
fi
[ ! -e nosuch.qcow2 ] || fail "scuse io created nosuch.qcow2"
mkdir -p adir
expect_exit 2 "$SCUSE" io -c 'read 0 512' adir || true
if [ "$(id -u)" -ne 0 ]; then
    cp img.qcow2 ro.qcow2
    chmod 0444 ro.qcow2
    expect_exit 2 "$SCUSE" io -c 'write 0 512' ro.qcow2 && stderr_names ro.qcow2 || true
    expect_exit 0 "$SCUSE" io -r -c 'read -P 0x11 0 4k' ro.qcow2 || true
fi
case_end

case_begin "I/O errors exit 2: an unaligned L2 entry (QEMU: EIO)"
qimg create -q -f qcow2 bad.qcow2 1M
qwrite bad.qcow2 "write -P 0x33 0 64k"
pos=$(python3 "$Q2" l2-entry-pos bad.qcow2 0)
python3 "$Q2" set-u64 bad.qcow2 "$pos" 0x8000000000050200
if expect_exit 2 "$SCUSE" io -r -c 'read 0 512' bad.qcow2; then
    stderr_one_line || true
    stderr_names bad.qcow2 || true
fi
if expect_exit 2 "$SCUSE" io -c 'write -P 0x44 100 512' bad.qcow2; then
    stderr_one_line || true
fi
case_end

case_begin "-r: writes, zero writes and discards refused with a clear error; file untouched"
cp img.qcow2 r.qcow2
sum=$(sum_of r.qcow2)
for c in 'write 0 512' 'write -z 0 512' 'write -z -u 0 64k' 'discard 0 64k'; do
    run "$SCUSE" io -r -c "$c" r.qcow2
    if [ "$RC" -eq 0 ]; then
        fail "scuse io -r accepted '$c'"
    elif [ "$RC" -lt 128 ]; then
        stderr_one_line || true
        stderr_mentions 'read-only|read only|-r' "that the image is read-only" || true
    fi
done
expect_exit 0 "$SCUSE" io -r -c 'read -P 0x11 0 4k' -c flush r.qcow2 || true
[ "$(sum_of r.qcow2)" = "$sum" ] || fail "scuse io -r modified the image"
case_end

case_begin "size suffixes k/K, m/M, g/G (and plain, 0x hex) as qemu-io reads them"
qimg create -q -f qcow2 big.qcow2 3G
if expect_exit 0 "$SCUSE" io -c 'write -P 0x21 1k 2k' -c 'write -P 0x22 1M 1K' -c 'write -P 0x23 1G 512' \
    -c 'write -P 0x24 2g 1m' -c 'write -P 0x25 0x10000 0x200' -c 'write -P 0x26 2M 4k' -c 'write -z 2M 1k' \
    -c 'write -P 0x27 1.5k 512' big.qcow2; then
    qread big.qcow2 "read -P 0x21 1024 512" "read -P 0x27 1536 512" "read -P 0x21 2048 1024" \
        "read -P 0 3072 1024" "read -P 0x22 1048576 1024" "read -P 0x23 1073741824 512" \
        "read -P 0x24 2147483648 1048576" "read -P 0x25 65536 512" "read -P 0 2097152 1024" \
        "read -P 0x26 2098176 3072"
fi
expect_exit 0 "$SCUSE" io -r -c 'read -P 0x23 1G 512' -c 'read -P 0x24 2G 1M' big.qcow2 || true
qcheck big.qcow2 0
case_end

case_begin "output: one 'wrote/read/discard N/N bytes at offset X' line per command, as qemu-io"
qimg create -q -f qcow2 o1.qcow2 1M
qimg create -q -f qcow2 o2.qcow2 1M
cmds=(-c 'write -P 0x31 100 1000' -c 'write -z 4096 4096' -c 'write -z -u 65536 65536'
    -c 'discard 131072 65536' -c 'read -P 0x31 100 1000' -c 'flush' -c 'read 0 512')
qemu-io "${cmds[@]}" o1.qcow2 2>&1 | grep -E '^(wrote|read|discard) ' >want.txt
if expect_exit 0 "$SCUSE" io "${cmds[@]}" o2.qcow2; then
    grep -E '^(wrote|read|discard) ' "$W/.out" >got.txt || true
    cmp -s want.txt got.txt || fail "result lines differ from qemu-io's: $(diff want.txt got.txt | head -n 4 | tr '\n' '|')"
fi
expect_exit 0 "$SCUSE" io -c 'write -q 0 512' -c 'read -q -P 0xcd 0 512' o2.qcow2 || true
[ ! -s "$W/.out" ] || fail "-q still printed: $(head -n 2 "$W/.out")"
case_end

case_begin "several commands in one run, with options in each (getopt state reset between commands)"
# (Regression: a command after `write -z -u ...` failed with "write:
# invalid option -- '5'": run_cmd() reset getopt with optind = 1, keeping
# glibc's scan state of the previous command; fixed in 1f9f68a.)
qimg create -q -f qcow2 m.qcow2 1M
if expect_exit 0 "$SCUSE" io -c 'write -z -u 0 4096' -c 'write -P 0x5d 4096 1' -c 'write -P 0x5e 8192 512' \
    -c 'write -z 8192 100' -c 'write -q -P 0x5f 9000 10' -c 'read -P 0x5f 9000 10' -c 'discard 65536 65536' \
    -c 'write -P 0x60 200000 5' m.qcow2; then
    qread m.qcow2 "read -P 0 0 4096" "read -P 0x5d 4096 1" "read -P 0 8192 100" "read -P 0x5e 8292 412" \
        "read -P 0x5f 9000 10" "read -P 0x60 200000 5"
fi
case_end

case_begin "the documented argument order: scuse io IMG -c CMD (as --help shows)"
# (Regression: `scuse io IMG -c CMD`, the form --help gives, failed with
# "expected exactly one image"; fixed in 1f9f68a.)
qimg create -q -f qcow2 d.qcow2 1M
if expect_exit 0 "$SCUSE" io d.qcow2 -c 'write -P 0x41 0 512'; then
    qread d.qcow2 "read -P 0x41 0 512"
fi
expect_exit 0 "$SCUSE" io -f qcow2 d.qcow2 -c 'read -P 0x41 0 512' -c 'read -P 0 512 512' || true
case_end

case_begin "a failing command stops the run; earlier writes land (flushed at exit)"
qimg create -q -f qcow2 s.qcow2 1M
expect_exit 1 "$SCUSE" io -c 'write -P 0x51 0 512' -c 'write 0 2M' -c 'write -P 0x52 512 512' s.qcow2 || true
qread s.qcow2 "read -P 0x51 0 512" "read -P 0 512 512"
qcheck s.qcow2 0
case_end

case_begin "-f raw on a qcow2 file writes the file's bytes; -f qcow2 on raw refused"
qimg create -q -f qcow2 fr.qcow2 1M
sz=$(stat -c %s fr.qcow2)
expect_exit 0 "$SCUSE" io -f raw -c "write -P 0x61 $((sz - 512)) 512" fr.qcow2 || true
qread fr.qcow2 -f raw "read -P 0x61 $((sz - 512)) 512"
truncate -s 1M plain.raw
expect_exit 2 "$SCUSE" io -f qcow2 -c 'read 0 512' plain.raw || true
case_end

finish
