#!/usr/bin/env bash
# VMDK read path, judged against QEMU and libvmdk (shared/docs/formats.md
# section 5 says which to trust where):
#   scuse convert -O raw IMG  ==  qemu-img convert -O raw IMG   (cmp)
#   scuse map --output=json   ~=  qemu-img map --output=json    (mapcmp.py)
#   scuse info --output=json  ==  qemu-img info (format-specific included)
# on every subformat qemu-img makes, filled by qemu-io at test time; and on
# QEMU's real sample images (lib/qemu_samples.sh fetches them once with
# `apt-get source qemu`); images QEMU cannot make (lib/vmdkgen.py writes them with the raw disk
# they must read as): VMware's streamOptimized layout (GD_AT_END, markers,
# footer, end-of-stream marker), zeroed grains over stale bytes, grain
# directory entries of 0, descriptors mixing FLAT extents at offsets, ZERO,
# RDONLY and VMFS extents (which QEMU drops, shifting the data after them).
# libvmdk (python3-libvmdk) must agree where it is trusted: sparse, flat,
# split, stream and chains without zeroed grains.
. "$(dirname "$0")/lib/common.sh"
. "$LIB_DIR/qemu_samples.sh"
need bzip2 apt-get
GEN=$LIB_DIR/vmdkgen.py
LIBVMDK=/usr/bin/python3
if ! "$LIBVMDK" -c 'import pyvmdk' 2>/dev/null; then
    echo "FAIL: python3-libvmdk (pyvmdk) is missing: ./build.sh test installs it" >&2
    exit 1
fi

vcase() { # NAME IMG [check_image args]
    case_begin "$1"
    shift
    check_image "$@"
    case_end
}

# expect_raw IMG WANT.raw: scuse reads IMG as exactly WANT.raw.
expect_raw() {
    if expect_exit 0 "$SCUSE" convert -O raw "$1" "$W/.got.raw"; then
        cmp -s "$2" "$W/.got.raw" ||
            fail "$1 reads differently from its known content: $(python3 "$LIB_DIR/rawdiff.py" "$2" "$W/.got.raw")"
    fi
}

# libvmdk_agrees IMG [PARENT...]: libvmdk reads IMG as qemu-img's conversion ($W/.want.raw).
libvmdk_agrees() {
    local img=$1
    shift
    if ! "$LIBVMDK" "$LIB_DIR/libvmdk_read.py" "$img" "$W/.lv.raw" "$@" 2>"$W/.lv.err"; then
        fail "libvmdk cannot read $img: $(tail -n 1 "$W/.lv.err")"
    elif ! cmp -s "$W/.want.raw" "$W/.lv.raw"; then
        fail "libvmdk reads $img differently from qemu-img"
    fi
    rm -f "$W/.lv.raw"
}

info_same() { # IMG [info args]: scuse info --output=json == qemu-img's
    local img=$1
    shift
    qemu-img info --output=json "$@" "$img" >"$W/.qinfo.json"
    if expect_exit 0 "$SCUSE" info --output=json "$@" "$img"; then
        python3 "$LIB_DIR/infocmp.py" "$W/.qinfo.json" "$W/.out" || fail "info of $img differs from qemu-img info"
        same_disk_size "$W/.qinfo.json" "$W/.out" "$img"
    fi
}

# ---------------------------------------------------------------------------
# 1. every subformat qemu-img creates, with random writes (zero writes too)
sec_subformats() {
    local size=$((6 * 1024 * 1024 + 3 * 512)) seed=1 img
    for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat; do
        for zg in off on; do
            [ $zg = on ] && case $sub in *Flat) continue ;; esac
            img=$sub-zg$zg.vmdk
            qimg create -q -f vmdk -o subformat=$sub,zeroed_grain=$zg "$img" $size
            fill "$img" $size $seed 40 --maxlen $((size / 10)) --zero 0.15
            seed=$((seed + 1))
            vcase "$sub zeroed_grain=$zg" "$img"
            case_begin "$sub zeroed_grain=$zg: info as qemu-img's"
            info_same "$img"
            case_end
            if [ $zg = off ]; then
                case_begin "$sub: libvmdk reads it as qemu-img does"
                qemu-img convert -O raw "$img" "$W/.want.raw"
                libvmdk_agrees "$img"
                case_end
            fi
        done
    done
    # streamOptimized as QEMU writes it (gdOffset in the header, no markers
    # after the grains), from a source with zero runs
    python3 "$GEN" rawfile src.raw --size $((5 * 1024 * 1024 + 4096)) --seed 11
    qimg convert -q -f raw -O vmdk -o subformat=streamOptimized src.raw qstream.vmdk
    vcase "streamOptimized (QEMU's layout)" qstream.vmdk
    case_begin "streamOptimized (QEMU's layout): info and libvmdk"
    info_same qstream.vmdk
    qemu-img convert -O raw qstream.vmdk "$W/.want.raw"
    libvmdk_agrees qstream.vmdk
    case_end
    # header versions and hardware versions qemu-img writes
    for opt in compat6=on hwversion=6 adapter_type=lsilogic; do
        img=opt-${opt%%=*}.vmdk
        qimg create -q -f vmdk -o $opt "$img" 3M
        fill "$img" $((3 * 1024 * 1024)) $seed 10 --maxlen 200000
        seed=$((seed + 1))
        vcase "monolithicSparse -o $opt" "$img"
    done
    # disks past 2 GiB: several extents of a split disk, offsets above 2^32
    for sub in twoGbMaxExtentSparse twoGbMaxExtentFlat monolithicSparse; do
        img=big-$sub.vmdk
        qimg create -q -f vmdk -o subformat=$sub "$img" 5G
        qwrite "$img" "write -P 0x31 0 64k" "write -P 0x32 $((2047 * 1024 * 1024 - 4096)) 1M" \
            "write -P 0x33 $((4 * 1024 * 1024 * 1024 + 12345 * 512)) 70000" \
            "write -P 0x34 $((5 * 1024 * 1024 * 1024 - 512)) 512"
        SPARSE_CMP=1 vcase "5 GiB $sub" "$img"
        case_begin "5 GiB $sub: info as qemu-img's"
        info_same "$img"
        case_end
    done
    # explicit -f vmdk
    vcase "monolithicSparse with -f vmdk" monolithicSparse-zgoff.vmdk -- -f vmdk
}

# ---------------------------------------------------------------------------
# 2. chains: relative parentFileNameHint in other directories, from another
#    cwd; a qcow2 overlay over a VMDK; the parent's CID checked
sec_chains() {
    local size=$((4 * 1024 * 1024))
    mkdir -p ch/d1/d2 elsewhere
    qimg create -q -f vmdk ch/base.vmdk $size
    fill ch/base.vmdk $size 21 20 --maxlen 400000
    (cd ch/d1 && qimg create -q -f vmdk -b ../base.vmdk -F vmdk mid.vmdk $size)
    fill ch/d1/mid.vmdk $size 22 20 --maxlen 300000 --zero 0.1
    (cd ch/d1/d2 && qimg create -q -f vmdk -o zeroed_grain=on -b ../mid.vmdk -F vmdk top.vmdk $size)
    fill ch/d1/d2/top.vmdk $size 23 20 --maxlen 200000 --zero 0.2
    cd elsewhere
    vcase "3-deep VMDK chain, relative hints, from another cwd" ../ch/d1/d2/top.vmdk
    vcase "middle of the chain" ../ch/d1/mid.vmdk
    case_begin "chain: info --backing-chain as qemu-img's; libvmdk reads the two lower layers alike"
    info_same ../ch/d1/d2/top.vmdk --backing-chain
    qemu-img convert -O raw ../ch/d1/mid.vmdk "$W/.want.raw"
    libvmdk_agrees ../ch/d1/mid.vmdk ../ch/base.vmdk
    case_end
    cd "$T"
    # a qcow2 overlay over a VMDK, and a VMDK child over it all
    qimg create -q -f qcow2 -b ../ch/d1/mid.vmdk -F vmdk elsewhere/over.qcow2 $size
    fill elsewhere/over.qcow2 $size 24 10 --maxlen 100000
    vcase "qcow2 overlay over a VMDK chain" elsewhere/over.qcow2

    # The parent written after the child was made: QEMU gives the parent a
    # new CID on its first write, and the child's parentCID no longer
    # matches. scuse refuses it, naming both CIDs.
    qimg create -q -f vmdk p.vmdk $size
    qimg create -q -f vmdk -b p.vmdk -F vmdk c.vmdk $size
    vcase "child whose parent is unchanged" c.vmdk
    qwrite p.vmdk "write -P 0x41 0 64k"
    local pcid ccid
    pcid=$(sed -n 's/^CID=//p' <(strings p.vmdk) | head -n 1)
    ccid=$(sed -n 's/^parentCID=//p' <(strings c.vmdk) | head -n 1)
    [ "$pcid" != "$ccid" ] || { echo "SETUP ERROR: qemu-io did not change the parent's CID" >&2; exit 1; }
    # (QEMU writes CIDs without leading zeros; scuse names them with 8 digits)
    pcid=$(printf '%08x' "0x$pcid")
    ccid=$(printf '%08x' "0x$ccid")
    case_begin "child whose parent changed: refused with both CIDs"
    for cmd in "map" "convert -O raw" "info --backing-chain"; do
        local -a extra=()
        [ "$cmd" = "convert -O raw" ] && extra=(out.raw)
        # shellcheck disable=SC2086
        if expect_exit 2 "$SCUSE" $cmd c.vmdk "${extra[@]}"; then
            stderr_one_line || true
            stderr_names "parentCID $ccid" || true
            stderr_names "CID $pcid" || true
        fi
    done
    rm -f out.raw
    # the top image alone still opens (as qemu-img info does)
    expect_exit 0 "$SCUSE" info c.vmdk || true
    case_end
}

# ---------------------------------------------------------------------------
# 3. images only hand-made: VMware's stream layout, zeroed grains, GD 0
sec_handmade() {
    local s
    for s in "5000000 31 128 512" "3000000 32 8 16" "9000000 33 256 64"; do
        set -- $s
        local img=vws-$2.vmdk
        python3 "$GEN" stream "$img" "$img.raw" --size "$1" --seed "$2" --grain "$3" --gtes "$4"
        case_begin "VMware stream layout (markers, GD_AT_END, footer, EOS; grain $3, $4 GTEs)"
        expect_raw "$img" "$img.raw"
        check_image "$img"
        cmp -s "$W/.want.raw" "$img.raw" || fail "qemu-img reads $img differently from its content"
        # (libvmdk refuses grains of 8 sectors or less)
        [ "$3" -le 8 ] || libvmdk_agrees "$img"
        case_end
    done
    for s in "4000000 41 128 512 --zeroed --stale" "3000000 42 8 16 --zeroed --gd-holes --stale" \
             "5000000 43 16 32 --gd-holes" "2000000 44 1 64 --zeroed --no-rgd" \
             "6000000 45 128 512 --zeroed --gd-holes --version 3"; do
        set -- $s
        local img=hs-$2.vmdk
        python3 "$GEN" sparse "$img" "$img.raw" --size "$1" --seed "$2" --grain "$3" --gtes "$4" "${@:5}"
        case_begin "hand-made sparse: grain $3, $4 GTEs ${*:5}"
        expect_raw "$img" "$img.raw"
        check_image "$img"
        cmp -s "$W/.want.raw" "$img.raw" || fail "qemu-img reads $img differently from its content"
        case_end
    done

    # A descriptor mixing extents: FLAT at offsets into shared files, RDONLY,
    # ZERO, a sparse extent, VMFS. QEMU drops ZERO and RDONLY extents (the
    # disk shrinks), so only the known content judges.
    python3 "$GEN" rawfile f1.bin --size $((3 * 1024 * 1024)) --seed 51
    python3 "$GEN" rawfile f2.bin --size $((2 * 1024 * 1024)) --seed 52
    python3 "$GEN" extent ext.vmdk ext.raw --size $((1024 * 1024)) --seed 53 --zeroed
    cat >mixed.vmdk <<'D'
# Disk DescriptorFile
version=1
CID=1234abcd
parentCID=ffffffff
createType="monolithicFlat"

# Extent description
RW 2048 FLAT "f1.bin" 1024
RDONLY 1000 FLAT "f2.bin" 7
RW 300 ZERO
RW 2048 SPARSE "ext.vmdk"
NOACCESS 0 ZERO
RW 2000 VMFS "f1.bin" 0
ddb.adapterType = "lsilogic"
D
    # (the 0-sector NOACCESS line is refused; take it out for the valid case)
    sed -i '/^NOACCESS/d' mixed.vmdk
    {
        dd if=f1.bin bs=512 skip=1024 count=2048 status=none
        dd if=f2.bin bs=512 skip=7 count=1000 status=none
        head -c $((300 * 512)) /dev/zero
        cat ext.raw
        dd if=f1.bin bs=512 count=2000 status=none
    } >mixed.raw
    case_begin "mixed descriptor: FLAT offsets, RDONLY, ZERO, SPARSE and VMFS extents"
    expect_raw mixed.vmdk mixed.raw
    if expect_exit 0 "$SCUSE" map --output=json mixed.vmdk; then
        python3 - "$W/.out" <<'PY' || fail "map of mixed.vmdk is not as laid out"
import json, sys
rows = json.load(open(sys.argv[1]))
def at(off):
    return next(r for r in rows if r["start"] <= off < r["start"] + r["length"])
s = 512
assert at(0)["data"] and at(0)["offset"] == 1024 * s, at(0)
assert at(2048 * s)["offset"] == 7 * s, at(2048 * s)
z = at(3048 * s)
assert z["zero"] and not z["data"] and z["present"], z
assert at(5396 * s)["offset"] == 0, at(5396 * s)
assert rows[-1]["start"] + rows[-1]["length"] == 7396 * s
PY
    fi
    case_end
    # vmfs: a descriptor with one VMFS extent, which QEMU reads too
    printf '# Disk DescriptorFile\nversion=1\nCID=00000007\nparentCID=ffffffff\ncreateType="vmfs"\nRW 6144 VMFS "f1.bin"\n' >vmfs.vmdk
    vcase "createType vmfs" vmfs.vmdk
    # as QEMU leaves a descriptor file it rewrote with a shorter CID: the
    # text, a NUL, the old text's last bytes, NULs to the sector's end
    python3 - vmfs.vmdk vmfs-rw.vmdk <<'PY'
import sys
t = open(sys.argv[1], "rb").read()
b = t + b"\0" + t[-2:]
open(sys.argv[2], "wb").write(b + bytes(-len(b) % 512))
PY
    vcase "descriptor rewritten in place by QEMU (stray bytes after its NUL)" vmfs-rw.vmdk

    # an extent of a split disk opened on its own (no descriptor in it)
    case_begin "a sparse extent with no descriptor, opened itself"
    expect_raw ext.vmdk ext.raw
    case_end

    # vmfsSparse (COWD) is recognised and refused by name
    python3 -c 'import sys; open(sys.argv[1],"wb").write(b"COWD" + bytes(2044))' cowd.vmdk
    case_begin "COWD (vmfsSparse) refused by name"
    for cmd in info map; do
        if expect_exit 2 "$SCUSE" $cmd cowd.vmdk; then
            stderr_one_line || true
            stderr_names "COWD (vmfsSparse)" || true
        fi
    done
    case_end
}

# ---------------------------------------------------------------------------
# 4. QEMU's sample images. iotest-version3.vmdk: a 16 GiB streamOptimized
#    disk made by VMware tools (version 3, RDONLY extent line naming
#    generated-stream.vmdk), read as qemu-img reads it and, on its data
#    runs, as libvmdk does (only under the name its descriptor gives).
#    afl9.vmdk: a fuzzer's image whose capacity is absurd (2^60 sectors);
#    qemu-img refuses it ("L1 size too big"), and so must scuse, with one
#    line naming the capacity, on every command.
sec_samples() {
    local s
    for s in iotest-version3.vmdk afl9.vmdk; do
        case_begin "sample $s: fetched from QEMU's source package"
        qemu_sample "$s" "$s" 2>"$W/.fetch" || fail "cannot get QEMU's sample image $s: $(cat "$W/.fetch")"
        case_end
    done
    if [ -f iotest-version3.vmdk ]; then
        SPARSE_CMP=1 vcase "sample iotest-version3.vmdk (VMware stream, 16 GiB): convert and map" \
            iotest-version3.vmdk
        case_begin "sample iotest-version3.vmdk: info as qemu-img's; check clean; libvmdk's data alike"
        info_same iotest-version3.vmdk
        expect_exit 0 "$SCUSE" check iotest-version3.vmdk || true
        mkdir -p lv && cp iotest-version3.vmdk lv/generated-stream.vmdk
        qemu-img map --output=json iotest-version3.vmdk >"$W/.qmap.json"
        grep -q '"data": true' "$W/.qmap.json" || fail "SETUP: qemu-img maps no data in the sample"
        qemu-img convert -O raw iotest-version3.vmdk "$W/.want.raw"
        if ! "$LIBVMDK" "$LIB_DIR/libvmdk_read.py" --map "$W/.qmap.json" lv/generated-stream.vmdk \
                "$W/.lv.raw" 2>"$W/.lv.err"; then
            fail "libvmdk cannot read the sample: $(tail -n 1 "$W/.lv.err")"
        elif ! python3 "$LIB_DIR/sparsecmp.py" "$W/.want.raw" "$W/.lv.raw" >"$W/.lv.err"; then
            fail "libvmdk reads the sample's data differently from qemu-img: $(cat "$W/.lv.err")"
        fi
        rm -rf lv "$W/.lv.raw" "$W/.want.raw"
        case_end
    fi
    if [ -f afl9.vmdk ]; then
        case_begin "sample afl9.vmdk (fuzzer image): refused by qemu-img and by scuse, one line"
        if qemu-img info afl9.vmdk >/dev/null 2>&1; then
            fail "SETUP: qemu-img opens afl9.vmdk (expected it to refuse)"
        fi
        local cmd
        for cmd in "info" "info --output=json" "map" "convert -O raw" "check" "check -r all" "io"; do
            local -a pre=() post=()
            local want=2
            case $cmd in
            convert*) post=(out.raw) ;;
            check*) want=1 ;;           # as qemu-img check when it cannot open
            io) pre=(-c "read 0 512") ;;
            esac
            # shellcheck disable=SC2086
            expect_exit $want "$SCUSE" $cmd "${pre[@]}" afl9.vmdk "${post[@]}" || continue
            stderr_one_line || true
            stderr_names "capacity 2233785398448881665 sectors" || true
        done
        [ ! -e out.raw ] || fail "convert of afl9.vmdk left an output file"
        cmp -s afl9.vmdk <(qemu_sample afl9.vmdk /dev/stdout) || fail "a repair changed afl9.vmdk"
        case_end
    fi
}

for sec in sec_subformats sec_handmade sec_chains sec_samples; do
    lane "${sec#sec_}" "$sec"
done
join_lanes
finish
