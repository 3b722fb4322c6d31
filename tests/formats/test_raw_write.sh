#!/usr/bin/env bash
# raw write path: writes, zero writes and discards (punched holes) mirrored
# into a shadow and judged by qemu-img compare; sparseness; the guard that
# keeps a probed raw image from turning into qcow2 through sector 0;
# scuse create -f raw and its preallocation modes, against qemu-img create.
. "$(dirname "$0")/lib/common.sh"
. "$LIB_DIR/wcommon.sh"

STRESS_SEED=${SCUSE_STRESS_SEED:-1}
# allocated bytes of a file
alloc() { echo $(($(stat -c %b "$1") * $(stat -c %B "$1"))); }

# ---------------------------------------------------------------------------
# 1. random runs. Discard on raw punches a hole: the bytes read 0 (strict,
#    byte-granular, as QEMU's file-posix does on Linux).
for v in "sparse 3M" "full 5M+512" "odd 1M+1000"; do
    set -- $v
    kind=$1
    case $2 in
    3M) size=$((3 * 1024 * 1024)) ;;
    5M+512) size=$((5 * 1024 * 1024 + 512)) ;;
    *) size=$((1024 * 1024 + 1024)) ;;
    esac
    img=r-$kind.raw
    case_begin "random writes / zero / discard on a raw image ($kind, $size bytes)"
    if [ "$kind" = full ]; then
        head -c $size /dev/urandom >"$img"
    else
        truncate -s $size "$img"
        mapfile -t cmds < <(gen_writes $size $((STRESS_SEED + 3)) 20 --maxlen $((size / 5)))
        args=()
        for c in "${cmds[@]}"; do args+=(-c "$c"); done
        qio -f raw "${args[@]}" "$img"
    fi
    cp "$img" shadow.raw
    wsim gen $size $((STRESS_SEED * 10 + ${#kind})) 300 --cluster 4096 --batch 60 --flush 0.03 --maxlen $((size / 4)) \
        --zero 0.12 --zero-u 0.12 --discard 0.12 --disc-any >cmds
    wsim apply shadow.raw cmds --cluster 1 --discard strict
    if io_batches "$img" cmds -f raw; then
        same_content "$img" shadow.raw raw
        sample_reads "$img" shadow.raw $STRESS_SEED 16 -f raw
        [ "$(stat -c %s "$img")" -eq $size ] || fail "the file's size changed: $(stat -c %s "$img"), was $size"
    fi
    case_end
done

# the last sector of a file whose size is not a multiple of 512: QEMU
# shows it whole (size rounded up) and extends the file when it is written
case_begin "writing the partial last sector of a 1000-byte raw file, as qemu-io does"
head -c 1000 /dev/urandom >odd-q.raw
cp odd-q.raw odd-s.raw
qio -f raw -c "write -P 0x71 990 34" odd-q.raw
if expect_exit 0 "$SCUSE" io -f raw -c "write -P 0x71 990 34" odd-s.raw; then
    cmp -s odd-q.raw odd-s.raw || fail "differs from qemu-io's result: sizes $(stat -c %s odd-q.raw) (qemu-io) $(stat -c %s odd-s.raw) (scuse); $(cmp odd-q.raw odd-s.raw 2>&1 | head -n 1)"
fi
case_end

# ---------------------------------------------------------------------------
# 2. sparseness: write -z -u and discard give the space back; write -z
#    (without -u) and writes do not lose data around them.
case_begin "write -z -u and discard punch holes (the file gets sparse)"
size=$((8 * 1024 * 1024))
truncate -s $size sp.raw
qio -f raw -c "write -P 0x55 0 $size" sp.raw
before=$(alloc sp.raw)
if expect_exit 0 "$SCUSE" io -f raw -c "write -z -u 1M 2M" -c "discard 4M 2M" -c "write -z 7M 4096" sp.raw; then
    after=$(alloc sp.raw)
    [ "$after" -le $((before - 3 * 1024 * 1024)) ] ||
        fail "allocation went from $before to $after bytes; 4 MiB were unmapped"
    qread sp.raw -f raw "read -P 0x55 0 1M" "read -P 0 1M 2M" "read -P 0x55 3M 1M" "read -P 0 4M 2M" \
        "read -P 0x55 6M 1M" "read -P 0 7M 4096" "read -P 0x55 $((7 * 1024 * 1024 + 4096)) $((1024 * 1024 - 4096))"
    [ "$(stat -c %s sp.raw)" -eq $size ] || fail "the file's size changed"
fi
# unaligned: the partial blocks around the hole keep their data
if expect_exit 0 "$SCUSE" io -f raw -c "write -z -u 100 10000" -c "discard 3200001 5000" sp.raw; then
    qread sp.raw -f raw "read -P 0x55 0 100" "read -P 0 100 10000" "read -P 0x55 10100 1000" \
        "read -P 0x55 3199000 1001" "read -P 0 3200001 5000" "read -P 0x55 3205001 999"
fi
case_end

# ---------------------------------------------------------------------------
# 3. a probed raw image (no -f) must not become qcow2 through sector 0
#    (the CVE-2008-2004 class): the write that would complete the qcow2
#    magic "QFI\xfb" is refused; with -f raw it is allowed; other writes to
#    sector 0 are fine. scuse io writes one repeated byte per command, so
#    the magic is completed one byte at a time.
case_begin "probed raw: a write completing the qcow2 magic in sector 0 is refused"
truncate -s 1M g.raw
# "QFI" + 0x00, then a v3 header-ish version field
qio -f raw -c "write -P 0x51 0 1" -c "write -P 0x46 1 1" -c "write -P 0x49 2 1" -c "write -P 0x03 7 1" g.raw
qemu-img info g.raw 2>/dev/null | grep -q 'file format: raw' || { echo "SETUP ERROR: g.raw does not probe as raw" >&2; exit 1; }
sum=$(sum_of g.raw)
if expect_exit 2 "$SCUSE" io -c "write -P 0xfb 3 1" g.raw; then
    stderr_one_line || true
    stderr_names g.raw || true
fi
[ "$(sum_of g.raw)" = "$sum" ] || fail "the refused write changed the file"
qemu-img info g.raw 2>/dev/null | grep -q 'file format: raw' || fail "g.raw now probes as $(qemu-img info g.raw | grep 'file format')"
# a longer write covering byte 3 with 0xfb (bytes 3..9) is refused too
expect_exit 2 "$SCUSE" io -c "write -P 0xfb 3 7" g.raw || true
# the whole header start built up in one run (version 3, then the magic):
# the last step is refused
cp g.raw g2.raw
truncate -s 0 g2.raw
truncate -s 1M g2.raw
expect_exit 2 "$SCUSE" io -c "write -P 0x03 7 1" -c "write -P 0x51 0 1" -c "write -P 0x46 1 1" -c "write -P 0x49 2 1" -c "write -P 0xfb 3 1" g2.raw || true
qemu-img info g2.raw 2>/dev/null | grep -q 'file format: raw' || fail "g2.raw now probes as qcow2"
case_end

# Formats scuse only recognises count too: a guest must not turn a probed
# raw disk into a VMDK (magic in sector 0) or a fixed VHD (its footer lives
# in the last 512 bytes, which QEMU's probe never looks at).
case_begin "probed raw: writes that would make it a VMDK or a fixed VHD are refused"
truncate -s 1M h.raw
printf 'KDM' | dd of=h.raw conv=notrunc status=none
sum=$(sum_of h.raw)
if expect_exit 2 "$SCUSE" io -c "write -P 0x56 3 1" h.raw; then
    stderr_one_line || true
    grep -qi VMDK "$W/.err" || fail "the message does not name VMDK: $(cat "$W/.err")"
fi
[ "$(sum_of h.raw)" = "$sum" ] || fail "the refused write changed h.raw"
truncate -s 0 v.raw
truncate -s 1M v.raw
printf 'conecti' | dd of=v.raw bs=1 seek=$((1048576 - 512)) conv=notrunc status=none
sum=$(sum_of v.raw)
if expect_exit 2 "$SCUSE" io -c "write -P 0x78 $((1048576 - 505)) 1" v.raw; then
    grep -Eq 'VHD|vpc' "$W/.err" || fail "the message does not name VHD (vpc): $(cat "$W/.err")"
fi
[ "$(sum_of v.raw)" = "$sum" ] || fail "the refused write changed v.raw"
# the same bytes elsewhere are ordinary data
expect_exit 0 "$SCUSE" io -c "write -P 0x78 $((1048576 - 1024)) 1" -c "write -P 0x56 4096 1" v.raw || true
case_end

case_begin "probed raw: normal writes to sector 0 and elsewhere are accepted; -f raw may write the magic"
if expect_exit 0 "$SCUSE" io -c "write -P 0x00 0 512" -c "write -P 0x51 0 1" -c "write -P 0xfb 512 4" -c "write -P 0x66 4096 4096" g.raw; then
    qread g.raw -f raw "read -P 0x51 0 1" "read -P 0 1 511" "read -P 0xfb 512 4" "read -P 0x66 4096 4096"
fi
qio -f raw -c "write -P 0x51 0 1" -c "write -P 0x46 1 1" -c "write -P 0x49 2 1" g.raw
if expect_exit 0 "$SCUSE" io -f raw -c "write -P 0xfb 3 1" g.raw; then
    qread g.raw -f raw "read -P 0xfb 3 1"
fi
case_end

# ---------------------------------------------------------------------------
# 4. scuse create -f raw: sizes and preallocation as qemu-img create.
# (Regression: a size that is not a multiple of 512 gave a 1000-byte file,
# qemu-img rounds it up to 1024; fixed in d7ddfba.)
for v in "off 5M" "falloc 5M" "full 5M" "off 1000" "full 1000" "off 0" "falloc 3G" "off 1T"; do
    set -- $v
    pa=$1 size=$2
    case_begin "create -f raw -o preallocation=$pa $size"
    rm -f q.raw s.raw
    qimg create -q -f raw -o preallocation=$pa q.raw $size
    if expect_exit 0 "$SCUSE" create -f raw -o preallocation=$pa s.raw $size; then
        [ "$(stat -c %s s.raw)" -eq "$(stat -c %s q.raw)" ] ||
            fail "file size $(stat -c %s s.raw), qemu-img's $(stat -c %s q.raw)"
        qa=$(alloc q.raw) sa=$(alloc s.raw)
        case $pa in
        off) [ "$sa" -le $((qa + 65536)) ] || fail "preallocation=off allocated $sa bytes (qemu-img: $qa)" ;;
        *) [ "$sa" -ge $((qa * 9 / 10)) ] || fail "preallocation=$pa allocated $sa bytes, qemu-img $qa" ;;
        esac
        if [ "$(stat -c %s s.raw)" -le $((8 * 1024 * 1024)) ] && [ "$(stat -c %s s.raw)" -eq "$(stat -c %s q.raw)" ]; then
            cmp -s s.raw q.raw || fail "content differs from qemu-img's (not all zeros?)"
        fi
        msg=$(qemu-img info --output=json s.raw | grep -E '"(format|virtual-size)"' | tr -d ' \n')
        want=$(qemu-img info --output=json q.raw | grep -E '"(format|virtual-size)"' | tr -d ' \n')
        [ "$msg" = "$want" ] || fail "qemu-img info: $msg, of qemu-img's image: $want"
    fi
    case_end
    rm -f q.raw s.raw
done

case_begin "create -f raw: bad options refused (exit 1, one line, no file)"
for o in preallocation=bogus cluster_size=64k nosuch=1; do
    rm -f bad.raw
    if expect_exit 1 "$SCUSE" create -f raw -o $o bad.raw 1M; then
        stderr_one_line || true
    fi
    [ ! -e bad.raw ] || fail "-o $o: left bad.raw behind"
done
case_end

finish
