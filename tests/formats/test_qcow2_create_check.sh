#!/usr/bin/env bash
# scuse create / check / convert -O qcow2 [-c], judged by qemu-img:
#  - images made by `scuse create -f qcow2` pass `qemu-img check` and
#    `qemu-img info --output=json` shows the same format-specific data,
#    cluster size and virtual size as for the image qemu-img creates with
#    the same options; bad options are refused naming the key;
#  - `scuse check [--output=json]` prints what `qemu-img check` prints
#    (stdout, the per-cluster lines on stderr, the exit code) on clean
#    images and on images damaged by editing bytes (leaks, lowered or
#    zeroed refcounts, flipped COPIED bits, unaligned and out-of-file
#    offsets, reserved bits, dirty lazy-refcount images after an abort);
#  - after `scuse check -r leaks|all`, qemu-img check is as clean as after
#    qemu-img's own repair and the guest data is unchanged;
#  - `scuse convert -O qcow2 [-c]` (zlib, zstd, 512 B..2 MiB clusters,
#    data, zeros, long-distance repeats) passes qemu-img check and equals
#    the source by qemu-img compare.
. "$(dirname "$0")/lib/common.sh"

# Byte editing: refcounts of any width, u64 fields.
cat >"$T/ed.py" <<'EOF'
import struct, sys
def hdr(f):
    f.seek(0); h = f.read(112)
    v = struct.unpack(">I", h[4:8])[0]; cb = struct.unpack(">I", h[20:24])[0]
    order = struct.unpack(">I", h[96:100])[0] if v >= 3 else 4
    return cb, order, struct.unpack(">Q", h[48:56])[0]
def loc(f, k):
    cb, order, rto = hdr(f)
    epb = ((1 << cb) * 8) >> order
    f.seek(rto + 8 * (k // epb)); blk = struct.unpack(">Q", f.read(8))[0] & ~0x1ff
    bit = (k % epb) << order
    return blk + bit // 8, bit % 8, order
def get(f, k):
    pos, sh, order = loc(f, k); w = max(1, (1 << order) // 8)
    f.seek(pos); v = int.from_bytes(f.read(w), "big")
    return (v >> sh) & ((1 << (1 << order)) - 1) if order < 3 else v
def put(f, k, v):
    pos, sh, order = loc(f, k); w = max(1, (1 << order) // 8)
    f.seek(pos); old = int.from_bytes(f.read(w), "big")
    if order < 3:
        m = ((1 << (1 << order)) - 1) << sh; v = (old & ~m) | ((v << sh) & m)
    f.seek(pos); f.write(v.to_bytes(w, "big"))
cmd, f = sys.argv[1], open(sys.argv[2], "r+b"); a = [int(x, 0) for x in sys.argv[3:]]
if cmd == "setrc": put(f, a[0], a[1])
elif cmd == "addrc": put(f, a[0], get(f, a[0]) + a[1])
elif cmd == "xor64":
    f.seek(a[0]); v = struct.unpack(">Q", f.read(8))[0]; f.seek(a[0]); f.write(struct.pack(">Q", v ^ a[1]))
elif cmd == "set64": f.seek(a[0]); f.write(struct.pack(">Q", a[1]))
EOF
ed() { python3 "$T/ed.py" "$@"; }

# --- create ------------------------------------------------------------
# info_same A B: the keys scuse create must get right.
info_same() {
    qemu-img info --output=json "$1" >"$W/.a.json"
    qemu-img info --output=json "$2" >"$W/.b.json"
    local msg
    msg=$(python3 - "$W/.a.json" "$W/.b.json" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for k in ("format-specific", "cluster-size", "virtual-size", "backing-filename", "backing-filename-format", "format"):
    if a.get(k) != b.get(k):
        print(f"{k}: scuse-made {a.get(k)} qemu-made {b.get(k)}")
EOF
)
    [ -z "$msg" ] || fail "info of the image scuse created differs: $msg"
}

qimg create -q -f raw base.raw 32M
create_case() { # OPTS SIZE [extra create args]
    local o=$1 size=$2
    shift 2
    case_begin "create ${o:-defaults} $size $*"
    rm -f s.qcow2 q.qcow2
    if expect_exit 0 "$SCUSE" create -q -f qcow2 ${o:+-o "$o"} "$@" s.qcow2 $size; then
        qemu-img create -q -f qcow2 ${o:+-o "$o"} "$@" q.qcow2 $size
        run qemu-img check s.qcow2
        [ "$RC" -eq 0 ] || fail "qemu-img check of the created image: rc $RC: $(head -n 3 "$W/.err")"
        info_same s.qcow2 q.qcow2
        run qemu-img compare s.qcow2 q.qcow2
        [ "$RC" -eq 0 ] || fail "created image does not read like qemu-img's: $(head -n 2 "$W/.out")"
        expect_exit 0 "$SCUSE" check s.qcow2 || true
    fi
    case_end
}
for o in "" compat=0.10 compat=v2 compat=1.1 cluster_size=512 cluster_size=4k cluster_size=2M \
         refcount_bits=1 refcount_bits=2 refcount_bits=8 refcount_bits=32 refcount_bits=64,cluster_size=512 \
         extended_l2=on extended_l2=on,cluster_size=16k compression_type=zstd lazy_refcounts=on \
         preallocation=metadata preallocation=falloc preallocation=full \
         preallocation=metadata,compat=0.10,cluster_size=4k preallocation=metadata,extended_l2=on \
         cluster_size=1k,refcount_bits=64,lazy_refcounts=on; do
    create_case "$o" 40M
done
create_case "" 0
create_case "" 1000
create_case cluster_size=512 5G
create_case "" "" -b base.raw -F raw
create_case compat=0.10 "" -b base.raw -F raw
create_case extended_l2=on,preallocation=metadata 32M -b base.raw -F raw
case_begin "create: backing name of 1023 bytes"
long=$(printf 'd%.0s' $(seq 1 1019)).raw
rm -f s.qcow2
if expect_exit 0 "$SCUSE" create -q -f qcow2 -b "$long" -F raw s.qcow2 1M; then
    qemu-img info --output=json -U s.qcow2 2>/dev/null | grep -q "\"backing-filename\": \"$long\"" ||
        fail "backing name not stored as given"
fi
case_end

case_begin "create: refused options name the key"
for bad in foo=bar cluster_size=1000 cluster_size=4M refcount_bits=3 compat=2.0 \
           compat=0.10,lazy_refcounts=on compat=0.10,refcount_bits=8 extended_l2=on,cluster_size=8k \
           compression_type=lz4 preallocation=lots lazy_refcounts=maybe data_file=x.raw; do
    key=${bad##*,}
    key=${key%%=*}
    if expect_exit 1 "$SCUSE" create -q -f qcow2 -o "$bad" r.qcow2 1M; then
        stderr_one_line || true
        stderr_names "$key" || true
    fi
done
expect_exit 1 "$SCUSE" create -q -f qcow2 -o preallocation=full -b base.raw -F raw r.qcow2 1M &&
    stderr_names extended_l2 || true
expect_exit 1 "$SCUSE" create -q -f qcow2 -o cluster_size=512 r.qcow2 4T && stderr_names cluster_size || true
case_end

# --- check -------------------------------------------------------------
# same_check IMG [args]: scuse check and qemu-img check on copies agree
# (exit code, stdout, stderr lines). With -r, the repaired copy must then
# pass qemu-img check as well as qemu-img's repaired copy does, with the
# same guest data.
same_check() {
    local img=$1
    shift
    cp "$img" q.img
    cp "$img" s.img
    qemu-img check "$@" q.img >"$W/.q.out" 2>"$W/.q.err" && qrc=0 || qrc=$?
    run "$SCUSE" check "$@" s.img
    sed -i 's/q\.img/s.img/' "$W/.q.out"
    [ "$RC" -eq "$qrc" ] || fail "check $* $img: exit $RC, qemu-img $qrc"
    diff -u "$W/.q.out" "$W/.out" >"$W/.d" ||
        fail "check $* $img: stdout differs: $(grep -E '^[-+][^-+]' "$W/.d" | head -n 6 | tr '\n' '|')"
    grep -v '^qemu-img:\|^qcow2: Marking' "$W/.q.err" >"$W/.qe" || true
    grep -v '^scuse check:' "$W/.err" >"$W/.se" || true
    diff -u "$W/.qe" "$W/.se" >"$W/.d" ||
        fail "check $* $img: stderr differs: $(grep -E '^[-+][^-+]' "$W/.d" | head -n 6 | tr '\n' '|')"
}
# fix_check IMG LEVEL: repair with scuse, judge with qemu-img.
fix_check() {
    local img=$1 level=$2
    cp "$img" q.img
    cp "$img" s.img
    qemu-img check -r "$level" q.img >/dev/null 2>&1 || true
    qemu-img check q.img >/dev/null 2>&1 && qafter=0 || qafter=$?
    run "$SCUSE" check -r "$level" s.img
    run qemu-img check s.img
    [ "$RC" -le "$qafter" ] ||
        fail "after scuse check -r $level $img: qemu-img check rc $RC (after qemu-img's repair: $qafter): $(head -n 3 "$W/.err" | tr '\n' '|')"
    if [ "$RC" -eq 0 ] && qemu-img compare "$img" q.img >/dev/null 2>&1; then
        run qemu-img compare "$img" s.img
        [ "$RC" -eq 0 ] || fail "scuse check -r $level changed the data of $img: $(head -n 1 "$W/.out")"
    fi
}
check_case() { # NAME IMG: the image as it is, with JSON, and both repairs
    case_begin "check $1"
    same_check "$2"
    same_check "$2" --output=json
    same_check "$2" -r leaks
    same_check "$2" -r leaks --output=json
    fix_check "$2" leaks
    fix_check "$2" all
    case_end
}

mkimg() { # NAME OPTS CLUSTER: an image with plain, compressed and zero clusters
    qimg create -q -f qcow2 ${2:+-o "$2"} "$1" 16M
    qio -c 'write -P 1 0 1M' -c "write -c -P 2 2M $3" -c 'write -P 3 5M 64k' \
        -c "write -z 6M $3" -c "write -c -P 4 8M $3" "$1"
}
mkimg clean.qcow2 "" 64k
mkimg c512.qcow2 cluster_size=512,refcount_bits=64 512
mkimg c4k.qcow2 cluster_size=4k,refcount_bits=1 4k
mkimg c2m.qcow2 cluster_size=2M,refcount_bits=8 2M
mkimg xl2.qcow2 extended_l2=on,cluster_size=128k 128k
mkimg v2.qcow2 compat=0.10 64k
mkimg zstd.qcow2 compression_type=zstd,refcount_bits=32 64k
cp clean.qcow2 snap.qcow2
qimg snapshot -c s1 snap.qcow2
qio -c 'write -P 9 0 128k' -c 'write -c -P 8 12M 64k' snap.qcow2
qimg snapshot -c s2 snap.qcow2
qio -c 'write -P 7 64k 64k' snap.qcow2
for i in clean c512 c4k c2m xl2 v2 zstd snap; do check_case "$i (clean)" $i.qcow2; done

# Damage. clean.qcow2: 0 header, 1 reftable, 2 refblock, 3 L1, 4 L2,
# data from 5 (check the layout first, the cases rely on it).
layout=$(python3 "$LIB_DIR/qcow2.py" header clean.qcow2 | tr -d ' \n')
case "$layout" in
*'"l1_table_offset":196608'*'"refcount_table_offset":65536'*) ;;
*) echo "SETUP ERROR: unexpected layout of clean.qcow2" >&2; exit 1 ;;
esac
dmg() { cp "$1" "$2"; shift 2; ed "$@"; }
dmg clean.qcow2 leak.qcow2 addrc leak.qcow2 7 1
ed addrc leak.qcow2 3 2
dmg clean.qcow2 low.qcow2 setrc low.qcow2 6 0
dmg snap.qcow2 lowsnap.qcow2 addrc lowsnap.qcow2 5 -1
dmg clean.qcow2 l2copied.qcow2 xor64 l2copied.qcow2 0x40000 0x8000000000000000
dmg clean.qcow2 l1copied.qcow2 xor64 l1copied.qcow2 0x30000 0x8000000000000000
dmg clean.qcow2 unal.qcow2 xor64 unal.qcow2 0x40008 0x200
dmg clean.qcow2 zunal.qcow2 set64 zunal.qcow2 0x40060 0x8000000000070201
dmg clean.qcow2 past.qcow2 set64 past.qcow2 0x40018 0x8000000009870000
dmg clean.qcow2 l1res.qcow2 xor64 l1res.qcow2 0x30000 0x0100000000000000
dmg clean.qcow2 l2res.qcow2 xor64 l2res.qcow2 0x40000 0x0000000000000100
dmg clean.qcow2 rtres.qcow2 xor64 rtres.qcow2 0x10000 0x1
dmg clean.qcow2 rtunal.qcow2 set64 rtunal.qcow2 0x10008 0x50200
dmg clean.qcow2 rtout.qcow2 set64 rtout.qcow2 0x10008 0x10000000
dmg c4k.qcow2 leak1.qcow2 setrc leak1.qcow2 40 1
dmg c512.qcow2 low64.qcow2 addrc low64.qcow2 9 -1
dmg xl2.qcow2 xl2leak.qcow2 addrc xl2leak.qcow2 3 1
for i in leak low lowsnap l2copied l1copied unal zunal past l1res l2res rtres rtunal rtout \
         leak1 low64 xl2leak; do
    check_case "$i" $i.qcow2
done

# Dirty images: lazy refcounts, killed mid-run.
for o in lazy_refcounts=on lazy_refcounts=on,cluster_size=4k,refcount_bits=2 \
         lazy_refcounts=on,extended_l2=on,cluster_size=64k; do
    qimg create -q -f qcow2 -o "$o" dirty.qcow2 64M
    (qemu-io -c 'write -P 1 0 3M' -c 'write -P 2 20M 5M' -c 'write -c -P 3 40M 1M' -c abort \
        dirty.qcow2 >/dev/null 2>&1 || true) 2>/dev/null
    check_case "dirty $o" dirty.qcow2
    case_begin "dirty $o: repaired, the dirty bit is clear"
    cp dirty.qcow2 s.img
    run "$SCUSE" check -r all s.img
    [ "$RC" -eq 0 ] || fail "scuse check -r all: rc $RC"
    qemu-img info --output=json s.img | grep -q '"dirty-flag": false' || fail "still dirty"
    case_end
done

case_begin "check: raw is unsupported (63), usage errors (1)"
expect_exit 63 "$SCUSE" check -f raw base.raw || true
expect_exit 1 "$SCUSE" check -r some clean.qcow2 || true
expect_exit 1 "$SCUSE" check missing.qcow2 || true
case_end

# --- convert -O qcow2 [-c] ----------------------------------------------
python3 - <<'EOF'
import random
r = random.Random(7)
blk = bytes(r.getrandbits(8) for _ in range(8192))
with open("src.raw", "wb") as f:
    f.truncate(24 << 20)
    f.seek(0); f.write(blk * 128)                       # 1 MiB, repeats 8 KiB apart
    f.seek(3 << 20); f.write(bytes(r.getrandbits(8) for _ in range(1 << 20)))
    f.seek(6 << 20); f.write(b"qcow2 packs compressed clusters " * 40000)
    f.seek(9 << 20); f.write(bytes(1 << 20))            # written zeros
    f.seek((24 << 20) - 3000); f.write(b"end" * 1000)
EOF
qimg create -q -f raw odd.raw 5000000
qio -f raw -c 'write -P 0x5a 4900000 95000' -c 'write -P 0x11 0 70000' odd.raw
qimg convert -O qcow2 src.raw src.qcow2
can_write=1
"$SCUSE" convert -O qcow2 odd.raw probe.qcow2 >/dev/null 2>&1 || can_write=0
[ $can_write -eq 1 ] || echo "note: qcow2 writes (pwritev) not in this build: convert without -c skipped"
conv_case() { # SRC OPTS [-c]
    local src=$1 o=$2
    shift 2
    case_begin "convert -O qcow2 $* ${o:+-o $o} $src"
    rm -f c.qcow2
    if expect_exit 0 "$SCUSE" convert -O qcow2 "$@" ${o:+-o "$o"} "$src" c.qcow2; then
        run qemu-img check c.qcow2
        [ "$RC" -eq 0 ] || fail "qemu-img check: rc $RC: $(head -n 3 "$W/.err" | tr '\n' '|')"
        run qemu-img compare "$src" c.qcow2
        [ "$RC" -eq 0 ] || fail "qemu-img compare: $(head -n 1 "$W/.out")"
        same_check c.qcow2
        if [ "$*" = -c ]; then
            grep -q compressed "$W/.q.out" && ! grep -q ' 0.00% compressed' "$W/.q.out" ||
                fail "no compressed clusters: $(tail -n 2 "$W/.q.out" | head -n 1)"
        fi
    fi
    case_end
}
for o in "" compression_type=zstd cluster_size=4k cluster_size=2M cluster_size=512,refcount_bits=64 \
         cluster_size=2M,compression_type=zstd refcount_bits=1 extended_l2=on compat=0.10 \
         cluster_size=1k,refcount_bits=2; do
    conv_case src.raw "$o" -c
done
conv_case src.qcow2 "" -c
conv_case odd.raw cluster_size=4k -c
conv_case snap.qcow2 compression_type=zstd -c
if [ $can_write -eq 1 ]; then
    for o in "" cluster_size=4k compat=0.10 extended_l2=on; do conv_case src.raw "$o"; done
    conv_case odd.raw ""
fi
case_begin "convert: -c and -o need -O qcow2; -c refuses preallocation"
expect_exit 1 "$SCUSE" convert -c src.raw x.raw || true
expect_exit 1 "$SCUSE" convert -O qcow2 -c -o preallocation=metadata src.raw x.qcow2 || true
expect_exit 1 "$SCUSE" convert -O qcow2 -o bogus=1 src.raw x.qcow2 && stderr_names bogus || true
case_end

finish
