#!/usr/bin/env bash
# VHDX and qcow version 1, read through libvhdi and libqcow (formats/yal),
# judged by qemu-img (which reads both): convert byte for byte, for images
# qemu-img and qemu-io make here and for QEMU's real VHDX samples (disk2vhd,
# a 1 GiB dynamic disk); the sample whose log was never replayed is refused
# and left untouched, and reads right once qemu-img replayed it; writes are
# refused with the overlay advice, and the overlay is written by scuse and
# read back by QEMU; qcow v1 with a backing file is refused (libqcow
# misreads chains). Block status (the drivers read the allocation tables:
# the libraries do not say): qcow v1's map = qemu-img map; a VHDX's map
# says zero only where qemu-img's conversion holds zeros, and data over
# every range written (QEMU's vhdx says "all data", no oracle for holes).
# VMDK variants the native driver refuses, read through libvmdk:
# vmfsSparse (a descriptor over a COWD extent, hand-made by lib/cowd.py
# from VMware's specification: no tool here makes one) read as qemu-img
# and the maker's own raw image read it, served read-only with the
# overlay advice, the overlay written; a bare COWD file, a seSparse
# extent and a vmfsSparse child refused in one line naming the variant.
# Differencing VHDX (QEMU reads none; lib/vhdx.py makes them from
# MS-VHDX over parents qemu-img made): read through libvhdi with the
# parents found from the locator, judged by the maker's raw image
# (qemu-img's conversion of the parent plus what the child holds); a
# wrong parent_linkage, a missing parent and a loop refused in one line;
# a qcow2 overlay on one written and read back.
# (Legacy AES qcow and the handle pool: unit/test_yal.)
. "$(dirname "$0")/lib/common.sh"
. "$LIB_DIR/qemu_samples.sh"
need bzip2 apt-get

same() { # NAME IMG [qemu-img -f FMT]: scuse convert == qemu-img convert
    local name=$1 img=$2
    shift 2
    case_begin "$name"
    qemu-img convert "$@" -O raw "$img" "$W/.want.raw"
    if expect_exit 0 "$SCUSE" convert -O raw "$img" "$W/.got.raw"; then
        cmp -s "$W/.want.raw" "$W/.got.raw" ||
            fail "convert of $img differs from qemu-img's: $(python3 "$LIB_DIR/rawdiff.py" "$W/.want.raw" "$W/.got.raw")"
    fi
    qemu-img info "$@" --output=json "$img" >"$W/.q.json"
    if expect_exit 0 "$SCUSE" info --output=json "$img"; then
        python3 - "$W/.q.json" "$W/.out" <<'PY' || fail "info differs"
import json, sys
q, s = (json.load(open(p)) for p in sys.argv[1:])
for k in ("virtual-size", "format", "filename"):
    if q.get(k) != s.get(k):
        print(f"{k}: qemu-img {q.get(k)!r} scuse {s.get(k)!r}"); sys.exit(1)
PY
    fi
    case_end
}

# vhdx_map IMG RAW WRITTEN...: scuse's map of IMG (a VHDX) has zero rows
# only where RAW (qemu-img's conversion) is zeros, data over each
# WRITTEN range ("OFF:LEN"), and some zero rows when $VHDX_HOLES is 1.
vhdx_map() {
    local img=$1 raw=$2
    shift 2
    expect_exit 0 "$SCUSE" map --output=json "$img" || return 0
    python3 - "$W/.out" "$raw" "${VHDX_HOLES:-1}" "$@" <<'PY' 2>"$W/.py.err" || fail "map of $img: $(tail -n 1 "$W/.py.err")"
import json, sys
rows = json.load(open(sys.argv[1]))
raw = open(sys.argv[2], "rb").read()
holes = sys.argv[3] == "1"
pos = 0
for r in rows:
    assert r["start"] == pos, f"row at {r['start']}, expected {pos}"
    pos += r["length"]
    if r["zero"] and not r["data"]:
        seg = raw[r["start"]:r["start"] + r["length"]]
        assert seg.count(0) == len(seg), f"zero row {r} holds data in qemu-img's conversion"
assert pos == len(raw), f"the map covers {pos} bytes of {len(raw)}"
for w in sys.argv[4:]:
    o, l = (int(x) for x in w.split(":"))
    for r in rows:
        if r["start"] < o + l and o < r["start"] + r["length"]:
            assert r["data"], f"written range {o}+{l} meets a zero row {r}"
if holes:
    assert any(r["zero"] and not r["data"] for r in rows), "no hole in the map"
PY
}

sec_vhdx() {
    local sub bs n=0
    for sub in dynamic fixed; do
        for bs in 1M 32M; do
            n=$((n + 1))
            qimg create -q -f vhdx -o subformat=$sub,block_size=$bs v$n.vhdx 70M
            fill v$n.vhdx $((70 << 20)) $((n + 20)) 30 --maxlen $((8 << 20)) --zero 0.1
            same "vhdx $sub block_size=$bs (qemu-img)" v$n.vhdx
        done
    done
    case_begin "vhdx block status: holes where the BAT has none, data where written"
    qimg create -q -f vhdx -o block_size=1M h.vhdx 40M
    qio -f vhdx -c 'write -P 0x51 0 1536k' -c 'write -P 0x52 9M 4k' -c 'write -z 20M 2M' \
        -c "write -P 0x53 $((40 * 1024 * 1024 - 512)) 512" h.vhdx
    qemu-img convert -f vhdx -O raw h.vhdx h.raw
    vhdx_map h.vhdx h.raw 0:1572864 9437184:4096 41942528:512
    expect_exit 0 "$SCUSE" convert -O raw h.vhdx h2.raw && { cmp -s h.raw h2.raw || fail "convert of h.vhdx differs from qemu-img's"; }
    for n in 1 2 3 4; do
        qemu-img convert -f vhdx -O raw v$n.vhdx v$n.raw
        VHDX_HOLES=0 vhdx_map v$n.vhdx v$n.raw
        rm -f v$n.raw
    done
    case_end
    qimg create -q -f vhdx -o log_size=4M,block_size=8M odd.vhdx $((100 * 1024 * 1024 + 4096))
    fill odd.vhdx $((100 * 1024 * 1024 + 4096)) 29 20 --maxlen $((3 << 20))
    same "vhdx of an odd size, 4 MiB log" odd.vhdx

    local s
    for s in test-disk2vhd.vhdx iotest-dynamic-1G.vhdx; do
        case_begin "sample $s: fetched from QEMU's source package"
        qemu_sample "$s" "$s" 2>"$W/.fetch" || fail "cannot get $s: $(cat "$W/.fetch")"
        case_end
        [ -s "$s" ] && same "sample $s" "$s"
    done
    case_begin "sample iotest-dirtylog-10G-4M.vhdx: a log not replayed is refused, nothing written"
    local got=0
    if qemu_sample iotest-dirtylog-10G-4M.vhdx dirty.vhdx 2>"$W/.fetch"; then
        got=1
        local sum
        sum=$(cksum <dirty.vhdx)
        for cmd in "info" "map" "convert -O raw"; do
            # shellcheck disable=SC2086
            if expect_exit 2 "$SCUSE" $cmd dirty.vhdx $([ "$cmd" = "convert -O raw" ] && echo out.raw); then
                stderr_one_line || true
                stderr_names "'dirty.vhdx'" || true
                stderr_mentions "log holds entries not yet replayed" || true
            fi
        done
        [ "$(cksum <dirty.vhdx)" = "$sum" ] || fail "scuse changed the file"
    else
        fail "cannot get the sample: $(cat "$W/.fetch")"
    fi
    case_end
    if [ $got = 1 ]; then
        cp dirty.vhdx replayed.vhdx
        qemu-img check -q -r all replayed.vhdx >/dev/null 2>&1 || true
        same "the same sample once qemu-img replayed its log" replayed.vhdx
    fi
}

sec_overlay() {
    qimg create -q -f vhdx base.vhdx 24M
    fill base.vhdx $((24 << 20)) 41 20 --maxlen $((4 << 20))
    case_begin "vhdx: writes refused with the overlay advice; the overlay takes them"
    local sum
    sum=$(cksum <base.vhdx)
    if expect_exit 2 "$SCUSE" io -c "write -P 1 0 512" base.vhdx; then
        stderr_one_line || true
        stderr_mentions "scuse create -f qcow2 -b base.vhdx -F vhdx" || true
    fi
    [ "$(cksum <base.vhdx)" = "$sum" ] || fail "the refused write changed base.vhdx"
    if expect_exit 0 "$SCUSE" create -q -f qcow2 -b base.vhdx -F vhdx over.qcow2; then
        qemu-img convert -f vhdx -O raw base.vhdx shadow.raw
        expect_exit 0 "$SCUSE" io -c "write -P 0x71 1M 3M" -c "write -z 10M 1M" -c "write -P 0x72 $((24 * 1024 * 1024 - 1000)) 1000" over.qcow2 || true
        python3 - shadow.raw <<'PY'
with open(__import__("sys").argv[1], "r+b") as f:
    f.seek(1 << 20); f.write(b"\x71" * (3 << 20))
    f.seek(10 << 20); f.write(bytes(1 << 20))
    f.seek((24 << 20) - 1000); f.write(b"\x72" * 1000)
PY
        run qemu-img compare -F raw over.qcow2 shadow.raw
        [ "$RC" -eq 0 ] || fail "QEMU reads the overlay differently: $(head -n 2 "$W/.out")"
        run qemu-img check over.qcow2
        [ "$RC" -eq 0 ] || fail "qemu-img check of the overlay: $(head -n 3 "$W/.out")"
        expect_exit 0 "$SCUSE" convert -O raw over.qcow2 got.raw && { cmp -s shadow.raw got.raw || fail "scuse reads the overlay differently"; }
    fi
    [ "$(cksum <base.vhdx)" = "$sum" ] || fail "writing the overlay changed base.vhdx"
    case_end
}

sec_qcow() {
    qimg create -q -f qcow q1.qcow 30M
    fill q1.qcow $((30 << 20)) 51 30 --maxlen $((4 << 20)) --zero 0.1
    same "qcow v1 (qemu-img, qemu-io)" q1.qcow
    case_begin "qcow v1 block status: scuse map = qemu-img map"
    qemu-img map --output=json q1.qcow >"$W/.qmap.json"
    if expect_exit 0 "$SCUSE" map --output=json q1.qcow; then
        python3 "$LIB_DIR/mapcmp.py" "$W/.qmap.json" "$W/.out" >"$W/.mc" 2>&1 || fail "map differs: $(head -n 3 "$W/.mc")"
        grep -q '"present": false' "$W/.out" || fail "no hole in the map of q1.qcow"
    fi
    case_end
    head -c $((5 << 20)) /dev/urandom >rnd.raw
    python3 -c 'import sys; open(sys.argv[1], "ab").write(b"compressible " * 400000)' rnd.raw
    qemu-img convert -c -f raw -O qcow rnd.raw c.qcow >/dev/null 2>&1 || true # (exits 1, complete)
    same "qcow v1 with compressed clusters (qemu-img convert -c)" c.qcow
    qimg create -q -f qcow base.qcow 16M
    mkdir -p sub
    (cd sub && qimg create -q -f qcow -b ../base.qcow -F qcow top.qcow 16M)
    case_begin "qcow v1 chains: libqcow with the parent attached misreads them (why scuse refuses them)"
    qio -f qcow -c 'write -P 0x11 0 8M' -c 'write -P 0x12 10M 3M' base.qcow
    (cd sub && qimg create -q -f qcow -b ../base.qcow -F qcow lq.qcow 16M)
    qio -f qcow -c 'write -P 0x21 4k 8k' -c 'write -P 0x22 9M 2M' -c 'write -P 0x23 12M 512' sub/lq.qcow
    qemu-img convert -O raw sub/lq.qcow lq.raw
    local lrc=0
    python3 "$LIB_DIR/libqcow_chain.py" sub/lq.qcow base.qcow lq.raw >"$W/.lq" 2>&1 || lrc=$?
    case $lrc in
    0) echo "  libqcow against qemu-img: $(tr '\n' ';' <"$W/.lq")" ;;
    1) fail "libqcow now reads a qcow v1 chain right ($(tr '\n' ';' <"$W/.lq")): the refusal in formats/yal/qcow.c is out of date" ;;
    *) fail "libqcow_chain.py could not judge (exit $lrc): $(tr '\n' ';' <"$W/.lq")" ;;
    esac
    case_end
    case_begin "qcow v1: with a backing file refused (libqcow misreads chains); writes refused"
    if expect_exit 2 "$SCUSE" info sub/top.qcow; then
        stderr_one_line || true
        stderr_mentions "with a backing file \('../base.qcow'\) are not supported" || true
    fi
    if expect_exit 2 "$SCUSE" io -c "write -P 1 0 512" q1.qcow; then
        stderr_mentions "put a qcow2 overlay on it" || true
    fi
    qimg create -q -f raw r.raw 16M
    qimg create -q -f qcow -b r.raw -F raw overraw.qcow 16M
    if expect_exit 2 "$SCUSE" info overraw.qcow; then
        stderr_one_line || true
        stderr_mentions "with a backing file" || true
    fi
    case_end
}

sec_vmdk() {
    local c=$LIB_DIR/cowd.py
    mkdir -p cw
    # one grain table and a half (4096 grains of 8 KiB = 32 MiB per table)
    python3 "$c" vmfssparse cw d $((40 * 2048)) 16 0:16:0x41 40:3:0x42 4096:64:0x43 \
        $((33 * 2048 + 5)):700:0x44 $((40 * 2048 - 8)):8:0x45
    python3 "$c" vmfssparse . g128 $((6 * 2048)) 128 100:1000:0x46 $((5 * 2048)):2048:0x47
    local img
    for img in cw/d.vmdk g128.vmdk; do
        case_begin "vmfsSparse (COWD extent) $img: through libvmdk = the maker's raw = qemu-img (data, disk size)"
        qemu-img convert -O raw "$img" "$W/.q.raw"
        cmp -s "${img%.vmdk}.raw" "$W/.q.raw" || fail "qemu-img reads $img other than cowd.py wrote it"
        if expect_exit 0 "$SCUSE" convert -O raw "$img" "$W/.s.raw"; then
            cmp -s "${img%.vmdk}.raw" "$W/.s.raw" ||
                fail "scuse reads $img wrong: $(python3 "$LIB_DIR/rawdiff.py" "${img%.vmdk}.raw" "$W/.s.raw")"
        fi
        if expect_exit 0 "$SCUSE" info --output=json "$img"; then
            grep -q '"reader": "libvmdk"' "$W/.out" && grep -q '"create-type": "vmfsSparse"' "$W/.out" &&
                grep -q '"format": "vmdk"' "$W/.out" || fail "info: $(tr -d '\n' <"$W/.out" | head -c 300)"
            qemu-img info --output=json "$img" >"$W/.qinfo.json"
            same_disk_size "$W/.qinfo.json" "$W/.out" "$img"
        fi
        case_end
    done
    case_begin "vmfsSparse: writes refused with the overlay advice; the overlay takes them"
    local sum
    sum=$(cat cw/d.vmdk cw/d-delta.vmdk | cksum)
    if expect_exit 2 "$SCUSE" io -c "write -P 1 0 512" cw/d.vmdk; then
        stderr_one_line || true
        stderr_mentions "VMFSSPARSE extents are not supported" || true
        stderr_mentions "scuse create -f qcow2 -b cw/d.vmdk -F vmdk" || true
    fi
    if expect_exit 0 "$SCUSE" create -q -f qcow2 -b d.vmdk -F vmdk cw/over.qcow2; then
        cp cw/d.raw cw/shadow.raw
        expect_exit 0 "$SCUSE" io -c "write -P 0x71 1M 3M" -c "write -z 16k 8k" cw/over.qcow2 || true
        python3 - cw/shadow.raw <<'PY'
with open(__import__("sys").argv[1], "r+b") as f:
    f.seek(1 << 20); f.write(b"\x71" * (3 << 20))
    f.seek(16 << 10); f.write(bytes(8 << 10))
PY
        run qemu-img compare -F raw cw/over.qcow2 cw/shadow.raw
        [ "$RC" -eq 0 ] || fail "QEMU reads the overlay differently: $(head -n 2 "$W/.out")"
        run qemu-img check cw/over.qcow2
        [ "$RC" -eq 0 ] || fail "qemu-img check of the overlay: $(head -n 3 "$W/.out")"
    fi
    [ "$(cat cw/d.vmdk cw/d-delta.vmdk | cksum)" = "$sum" ] || fail "the vmfsSparse image changed"
    case_end

    case_begin "VMDK variants neither scuse nor libvmdk reads: refused in one line naming them"
    python3 "$c" cowd bare.vmdk 8192 16 0:8:0x51
    if expect_exit 2 "$SCUSE" info bare.vmdk; then
        stderr_one_line || true
        stderr_mentions "is a COWD \(vmfsSparse\) VMDK" || true
        stderr_mentions "libvmdk cannot read it either" || true
    fi
    head -c 1M /dev/zero >se-delta.vmdk
    printf '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="seSparse"\n\nRW 2048 SESPARSE "se-delta.vmdk"\n' >se.vmdk
    if expect_exit 2 "$SCUSE" info se.vmdk; then
        stderr_one_line || true
        stderr_mentions "SESPARSE extents are not supported" || true
        stderr_mentions "libvmdk" || true
    fi
    python3 "$c" vmfssparse . kid 2048 16 0:16:0x61
    sed -i 's/^parentCID=ffffffff$/parentCID=12345678\nparentFileNameHint="g128.vmdk"/' kid.vmdk
    if expect_exit 2 "$SCUSE" info kid.vmdk; then
        stderr_one_line || true
        stderr_mentions "does not read vmfsSparse children through libvmdk" || true
    fi
    case_end
}

sec_vhdx_diff() {
    local x=$LIB_DIR/vhdx.py M=$((1 << 20))
    mkdir -p xd/far
    qimg create -q -f vhdx -o block_size=2M xd/base.vhdx 24M
    qio -f vhdx -c 'write -P 0x11 0 10M' -c 'write -P 0x12 16M 4M' xd/base.vhdx
    qemu-img convert -f vhdx -O raw xd/base.vhdx xd/base.raw
    # whole blocks, part blocks, single sectors, a block edge, zeros over parent data
    python3 "$x" diff xd/c.vhdx xd/base.vhdx xd/base.raw xd/c.raw 0:4096:0x21 \
        $((3 * M)):$((2 * M)):0x22 $((5 * M)):1024:0x23 $((17 * M + 512)):512:0x24 \
        $((6 * M - 512)):1024:0x25 $((8 * M)):$((3 * M)):0 $((23 * M)):$M:0x26
    # a grandchild over it, and a child naming its parent by absolute path
    python3 "$x" diff xd/gc.vhdx xd/c.vhdx xd/c.raw xd/gc.raw $((2 * M)):$((3 * M)):0x31 \
        $((5 * M + 512)):512:0x32 $((17 * M)):4096:0x33
    python3 "$x" diff xd/far/abs.vhdx xd/base.vhdx xd/base.raw xd/abs.raw --path absolute \
        $((1 * M)):8192:0x41
    local img
    for img in c gc far/abs; do
        case_begin "differencing VHDX xd/$img.vhdx through libvhdi = the maker's raw"
        if expect_exit 0 "$SCUSE" convert -O raw xd/$img.vhdx "$W/.s.raw"; then
            cmp -s "xd/${img#far/}.raw" "$W/.s.raw" ||
                fail "scuse reads xd/$img.vhdx wrong: $(python3 "$LIB_DIR/rawdiff.py" "xd/${img#far/}.raw" "$W/.s.raw")"
        fi
        if expect_exit 0 "$SCUSE" info --output=json xd/$img.vhdx; then
            grep -q '"subformat": "differencing"' "$W/.out" && grep -q '"parent": ' "$W/.out" ||
                fail "info: $(tr -d '\n' <"$W/.out" | head -c 300)"
        fi
        case_end
    done
    case_begin "differencing VHDX: wrong parent_linkage, missing parent, a loop: refused in one line"
    python3 "$x" diff xd/bad.vhdx xd/base.vhdx xd/base.raw xd/bad.raw --linkage 01234567-89ab-cdef-0123-456789abcdef 0:512:1
    if expect_exit 2 "$SCUSE" info xd/bad.vhdx; then
        stderr_one_line || true
        stderr_mentions "parent_linkage is 01234567-89ab-cdef-0123-456789abcdef, but the parent" || true
    fi
    python3 "$x" diff xd/lost.vhdx xd/base.vhdx xd/base.raw xd/lost.raw --parent-name nowhere.vhdx 0:512:1
    if expect_exit 2 "$SCUSE" info xd/lost.vhdx; then
        stderr_one_line || true
        stderr_mentions "its parent is not found \(relative_path './nowhere.vhdx'" || true
    fi
    python3 "$x" diff xd/self.vhdx xd/base.vhdx xd/base.raw xd/self.raw --parent-name self.vhdx 0:512:1
    if expect_exit 2 "$SCUSE" info xd/self.vhdx; then
        stderr_one_line || true
        stderr_mentions "is a layer of its own chain" || true
    fi
    case_end
    case_begin "differencing VHDX: a qcow2 overlay on it is written and reads back"
    if expect_exit 0 "$SCUSE" create -q -f qcow2 -b gc.vhdx -F vhdx xd/over.qcow2; then
        cp xd/gc.raw xd/shadow.raw
        expect_exit 0 "$SCUSE" io -c "write -P 0x71 1M 3M" -c "write -z 17M 64k" xd/over.qcow2 || true
        python3 - xd/shadow.raw <<'PY'
with open(__import__("sys").argv[1], "r+b") as f:
    f.seek(1 << 20); f.write(b"\x71" * (3 << 20))
    f.seek(17 << 20); f.write(bytes(64 << 10))
PY
        expect_exit 0 "$SCUSE" convert -O raw xd/over.qcow2 "$W/.o.raw" &&
            { cmp -s xd/shadow.raw "$W/.o.raw" || fail "the overlay reads other than written"; }
        expect_exit 0 "$SCUSE" check xd/over.qcow2 || true
        # QEMU judges the overlay's own clusters (it cannot open a
        # differencing VHDX, so the backing file is cut off)
        local own='json:{"driver":"qcow2","backing":null,"file":{"driver":"file","filename":"xd/over.qcow2"}}'
        qemu-img check "$own" >"$W/.qc" 2>&1 || fail "qemu-img check of the overlay: $(tr '\n' ' ' <"$W/.qc")"
        qemu-io -r -c 'read -P 0x71 1M 3M' -c 'read -P 0 17M 64k' "$own" >"$W/.qr" 2>&1 &&
            ! grep -q 'Pattern verification failed' "$W/.qr" ||
            fail "qemu-io reads the overlay's clusters otherwise: $(head -n 3 "$W/.qr" | tr '\n' ' ')"
    fi
    case_end
}

case_begin "--help: vhdx and qcow are read-only formats"
if expect_exit 0 "$SCUSE" --help; then
    grep -Eq '^  vhdx .*: read only' "$W/.out" || fail "vhdx: $(grep vhdx "$W/.out")"
    grep -Eq '^  qcow .*: read only' "$W/.out" || fail "qcow: $(grep -E '^  qcow ' "$W/.out")"
fi
case_end
lane vhdx sec_vhdx
lane overlay sec_overlay
lane qcow sec_qcow
lane vmdk sec_vmdk
lane vhdx_diff sec_vhdx_diff
join_lanes
finish
