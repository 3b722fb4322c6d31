#!/usr/bin/env bash
# Malformed VMDK images: valid ones made by qemu-img (and lib/vmdkgen.py),
# then damaged byte by byte. The contract (as test_malformed.sh for
# qcow2): exit 2, never a crash or a sanitizer report, exactly one line on
# stderr naming the file and the field or what is wrong.
#   header  found at open: info, map and convert fail
#   chain   the backing chain: info of the top image succeeds, the rest fail
#   meta    a grain table entry: map and convert fail
#   data    a grain's bytes: convert fails
. "$(dirname "$0")/lib/common.sh"
GEN=$LIB_DIR/vmdkgen.py

must_fail() {
    if expect_exit 2 "$@"; then
        stderr_one_line || true
        stderr_names "$NAME" || true
        stderr_mentions "$FIELD" "/$FIELD/" || true
    fi
}

# bad MODE DESC IMG FIELD_REGEX [NAME] [-f vmdk]
bad() {
    local mode=$1 desc=$2 img=$3
    FIELD=$4
    NAME=${5:-$img}
    local -a f=()
    [ $# -ge 6 ] && f=(-f "$6")
    case_begin "$desc"
    rm -f out.raw
    case $mode in
    header)
        must_fail "$SCUSE" info "${f[@]}" "$img"
        must_fail "$SCUSE" map "${f[@]}" --output=json "$img"
        must_fail "$SCUSE" convert "${f[@]}" -O raw "$img" out.raw
        ;;
    chain)
        expect_exit 0 "$SCUSE" info "${f[@]}" "$img" || true
        must_fail "$SCUSE" info "${f[@]}" --backing-chain "$img"
        must_fail "$SCUSE" map "${f[@]}" --output=json "$img"
        must_fail "$SCUSE" convert "${f[@]}" -O raw "$img" out.raw
        ;;
    meta)
        must_fail "$SCUSE" map "${f[@]}" --output=json "$img"
        must_fail "$SCUSE" convert "${f[@]}" -O raw "$img" out.raw
        ;;
    data)
        must_fail "$SCUSE" convert "${f[@]}" -O raw "$img" out.raw
        ;;
    esac
    case_end
}

qimg create -q -f vmdk good.vmdk 4M
qwrite good.vmdk "write -P 0x11 0 1M" "write -P 0x22 3M 64k"
python3 "$GEN" stream stream.vmdk stream.raw --size 1000000 --seed 5
case_begin "the undamaged images open"
for img in good.vmdk stream.vmdk; do
    expect_exit 0 "$SCUSE" convert -O raw "$img" out.raw || true
done
case_end

damage() { # SRC DST FIELD VALUE [--footer]
    cp "$1" "$2"
    python3 "$GEN" set "$2" "$3" "$4" "${@:5}"
}

# --- KDMV header ---------------------------------------------------------------
head -c 100 good.vmdk >trunc.vmdk
bad header "truncated header (100 bytes)" trunc.vmdk 'truncated KDMV header' trunc.vmdk vmdk
damage good.vmdk v4.vmdk version 4
bad header "version 4" v4.vmdk 'version 4'
for g in 0 3 65536; do
    damage good.vmdk grain$g.vmdk grain_size $g
    bad header "grainSize $g" grain$g.vmdk 'grainSize'
done
for n in 0 1048576; do
    damage good.vmdk gtes$n.vmdk num_gtes $n
    bad header "numGTEsPerGT $n" gtes$n.vmdk 'numGTEsPerGT'
done
damage good.vmdk cap0.vmdk capacity 0
bad header "capacity 0" cap0.vmdk 'capacity'
damage good.vmdk caphuge.vmdk capacity $((1 << 60))
bad header "capacity 2^60 sectors" caphuge.vmdk 'capacity'
damage good.vmdk capgd.vmdk capacity $((1 << 36))
bad header "capacity 2^36 sectors: a grain directory past EOF" capgd.vmdk 'grain directory.*past the end'
damage good.vmdk gdeof.vmdk gd_offset 100000
bad header "gdOffset past EOF" gdeof.vmdk 'gdOffset 100000'
damage good.vmdk gdhuge.vmdk gd_offset $((1 << 62))
bad header "gdOffset 2^62 (overflows as bytes)" gdhuge.vmdk 'gdOffset'
damage good.vmdk gdhdr.vmdk gd_offset 0
bad header "gdOffset 0 (the header)" gdhdr.vmdk 'gdOffset 0'
damage good.vmdk rgdeof.vmdk rgd_offset 99999
bad header "rgdOffset past EOF" rgdeof.vmdk 'rgdOffset 99999'
damage good.vmdk descoff.vmdk desc_offset 100000
bad header "descriptorOffset past EOF" descoff.vmdk 'descriptorOffset'
damage good.vmdk descsize.vmdk desc_size $((1 << 60))
bad header "descriptorSize 2^60" descsize.vmdk 'descriptorSize'
damage good.vmdk atend.vmdk gd_offset 0xffffffffffffffff
bad header "GD_AT_END without a footer" atend.vmdk 'footer'
damage stream.vmdk salg.vmdk compress 7
python3 "$GEN" set salg.vmdk compress 7 --footer
bad header "compressAlgorithm 7" salg.vmdk 'compressAlgorithm 7'
damage stream.vmdk sfoot.vmdk gd_offset 0xffffffffffffffff --footer
bad header "footer whose gdOffset is GD_AT_END too" sfoot.vmdk 'footer: gdOffset'
head -c -512 stream.vmdk >seos.vmdk
bad header "stream without its end-of-stream marker" seos.vmdk 'footer|end-of-stream'
cp good.vmdk gdent.vmdk
python3 "$GEN" gd gdent.vmdk 0 999999
bad header "grain directory entry past EOF" gdent.vmdk 'grain directory entry 0.*past the end'
cp good.vmdk gdent0.vmdk
python3 "$GEN" gd gdent0.vmdk 0 1
bad header "grain directory entry pointing at the descriptor" gdent0.vmdk 'entry 0.*overlaps'

# --- grain tables ---------------------------------------------------------------
cp good.vmdk gtmeta.vmdk
python3 "$GEN" gt gtmeta.vmdk 0 0 2
bad meta "grain table entry pointing into the descriptor" gtmeta.vmdk 'points into metadata'
cp good.vmdk gthdr.vmdk
python3 "$GEN" gt gthdr.vmdk 0 3 1
bad meta "grain table entry 1 without the zeroed-grain flag (the descriptor)" gthdr.vmdk 'points into metadata'
cp good.vmdk gteof.vmdk
python3 "$GEN" gt gteof.vmdk 0 1 9999999
bad meta "grain table entry past EOF" gteof.vmdk 'past the end of the file'

# --- compressed grains ------------------------------------------------------------
first=$(python3 "$GEN" getgt stream.vmdk 0 0)
[ "$first" -gt 1 ] || { echo "SETUP ERROR: stream.vmdk has no first grain" >&2; exit 1; }
cp stream.vmdk szlib.vmdk
printf 'garbage!' | dd of=szlib.vmdk bs=1 seek=$((first * 512 + 12)) conv=notrunc status=none
bad data "compressed grain that is not zlib" szlib.vmdk 'not a valid zlib stream'
cp stream.vmdk ssize.vmdk
printf '\xff\xff\xff\x7f' | dd of=ssize.vmdk bs=1 seek=$((first * 512 + 8)) conv=notrunc status=none
bad data "grain marker with an absurd size" ssize.vmdk 'larger than a compressed grain'
cp stream.vmdk smark.vmdk
printf '\0\0\0\0' | dd of=smark.vmdk bs=1 seek=$((first * 512 + 8)) conv=notrunc status=none
bad data "grain table entry pointing at a metadata marker" smark.vmdk 'metadata marker'

# --- descriptors ------------------------------------------------------------------
printf '# Disk DescriptorFile\nCID=1\ncreateType="monolithicFlat"\nthis is not a descriptor line\n' >garbage.vmdk
bad header "garbage line in a descriptor" garbage.vmdk 'line 4: neither key=value nor an extent line'
{
    printf '# Disk DescriptorFile\n'
    python3 -c 'import random; r=random.Random(9); print("".join(chr(r.randint(32,126)) if r.random()>0.02 else "\n" for _ in range(65536)))'
} >garbage64k.vmdk
bad header "64 KiB of garbage after the marker line (qemu-img aborts)" garbage64k.vmdk 'descriptor line'
printf '# Disk DescriptorFile\nCID=1\ncreateType="monolithicFlat"\nRW 2048 FLAT "missing-flat.vmdk" 0\n' >missing.vmdk
bad header "missing extent file" missing.vmdk "extent 1: cannot open .*missing-flat.vmdk"
truncate -s 100000 short.bin
printf '# Disk DescriptorFile\nCID=1\ncreateType="monolithicFlat"\nRW 2048 FLAT "short.bin" 0\n' >short.vmdk
bad header "flat extent file shorter than the extent" short.vmdk 'extent 1: .short.bin. holds 100000 bytes'
truncate -s 2M off.bin
printf '# Disk DescriptorFile\nCID=1\ncreateType="monolithicFlat"\nRW 2048 FLAT "off.bin" 100000\n' >off.vmdk
bad header "flat extent offset past the file" off.vmdk 'extent 1: .off.bin. holds'
printf '# Disk DescriptorFile\nCID=1\ncreateType="monolithicFlat"\nRW 2048 FLAT "off.bin" 18446744073709551\n' >offovf.vmdk
bad header "flat extent offset past 64 PiB" offovf.vmdk 'line 4: extent offset'
printf '# Disk DescriptorFile\nCID=1\ncreateType="monolithicFlat"\nRW 99999999999999999999 FLAT "off.bin" 0\n' >ovf.vmdk
bad header "extent size overflowing 64 bits" ovf.vmdk 'line 4: extent size'
printf '# Disk DescriptorFile\nCID=1\ncreateType="monolithicFlat"\nRW 140737488355328 ZERO\nRW 1 ZERO\n' >sum.vmdk
bad header "extent sizes adding up past 64 PiB" sum.vmdk 'line 5: extents add up'
printf '# Disk DescriptorFile\nCID=1\ncreateType="monolithicFlat"\nRW 2048 SPARSE "off.bin"\n' >notkdmv.vmdk
bad header "SPARSE extent that is no KDMV file" notkdmv.vmdk "extent 1: 'off.bin': not a KDMV sparse extent"
python3 "$GEN" extent small.vmdk small.raw --size 65536 --seed 3
printf '# Disk DescriptorFile\nCID=1\ncreateType="twoGbMaxExtentSparse"\nRW 4096 SPARSE "small.vmdk"\n' >overcap.vmdk
bad header "descriptor gives a sparse extent more sectors than its capacity" overcap.vmdk 'extent 1: the descriptor gives 4096 sectors'
printf '# Disk DescriptorFile\nCID=1\ncreateType="seSparse"\nRW 2048 SESPARSE "off.bin"\n' >sesparse.vmdk
bad header "SESPARSE extent refused by name" sesparse.vmdk 'SESPARSE extents are not supported'
printf '# Disk DescriptorFile\nCID=1\ncreateType="monolithicFlat"\n' >noext.vmdk
bad header "descriptor with no extent" noext.vmdk 'names no extent'
head -c $((2 * 1024 * 1024)) /dev/urandom >bin.img
bad header "-f vmdk on a large binary file" bin.img 'not a VMDK image' bin.img vmdk
printf 'hello\n' >txt.img
bad header "-f vmdk on a small text file" txt.img 'not a VMDK image' txt.img vmdk

# --- chains -----------------------------------------------------------------------
qimg create -q -f vmdk la.vmdk 1M
qimg create -q -f vmdk -b la.vmdk -F vmdk lb.vmdk 1M
# make la name lb as its parent: a loop (qemu-img is never run on it)
python3 - la.vmdk <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
key = b'createType="monolithicSparse"\n'
i = b.index(key) + len(key)
ins = b'parentFileNameHint="lb.vmdk"\n'
end = b.index(b"\0", i)  # the descriptor's NUL padding makes room
b[i:end + len(ins)] = ins + b[i:end]
open(p, "wb").write(b)
PY
bad chain "parent loop" lb.vmdk 'loops back'
qimg create -q -f vmdk pp.vmdk 1M
qimg create -q -f vmdk -b pp.vmdk -F vmdk orphan.vmdk 1M
rm pp.vmdk
bad chain "missing parent" orphan.vmdk 'pp.vmdk'

finish
