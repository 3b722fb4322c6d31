#!/usr/bin/env bash
# VMDK create, convert -O vmdk and check, judged by QEMU and libvmdk:
#   create    every subformat and option next to `qemu-img create` with the
#             same options: the same `qemu-img info` (the random CID aside),
#             the same descriptor text (CID aside), the same KDMV header
#             fields and file sizes (streamOptimized aside: scuse writes
#             VMware's layout); `qemu-img check` clean; QEMU writes and reads
#             the new image; children (-b) whose parentCID QEMU accepts
#   convert   -O vmdk for every subformat: `qemu-img compare` with the
#             source, `qemu-img check`; streamOptimized also read back by
#             libvmdk, and its layout walked (lib/vmdkgen.py streamcheck:
#             GD_AT_END header, grain markers, GT/GD markers, footer, EOS)
#   check     damaged images: exit 2 (qemu-img check fails them too);
#             redundant tables that differ: found, and repaired by -r all
. "$(dirname "$0")/lib/common.sh"
GEN=$LIB_DIR/vmdkgen.py
LIBVMDK=/usr/bin/python3
if ! "$LIBVMDK" -c 'import pyvmdk' 2>/dev/null; then
    echo "FAIL: python3-libvmdk (pyvmdk) is missing: ./build.sh test installs it" >&2
    exit 1
fi

# same_info Q S: qemu-img info of both, equal but for the CID and names.
same_info() {
    qemu-img info --output=json "$1" >"$W/.qi.json"
    qemu-img info --output=json "$2" >"$W/.si.json"
    python3 - "$W/.qi.json" "$W/.si.json" "$1" "$2" <<'PY' || fail "qemu-img info of $2 differs from that of $1"
import json, os, sys
q, s = (json.load(open(p)) for p in sys.argv[1:3])
qs, ss = (os.path.basename(p)[:-5] for p in sys.argv[3:5])
def norm(d, stem):
    d = json.loads(json.dumps(d).replace(stem, "NAME"))
    for k in ("actual-size", "filename"):
        d.pop(k, None)
    d["format-specific"]["data"].pop("cid")
    return d
a, b = norm(q, qs), norm(s, ss)
if a != b:
    print(f"  qemu-img {json.dumps(a)}\n  scuse    {json.dumps(b)}")
    sys.exit(1)
PY
}

# desc_text IMG: the descriptor (embedded or not) without its CID line.
desc_text() {
    if head -c 4 "$1" | grep -q KDMV; then
        dd if="$1" bs=512 skip=1 count=20 status=none | tr -d '\0'
    else
        cat "$1"
    fi | grep -v '^CID=' | sed "s/$(basename "${1%.vmdk}")/NAME/g"
}

header_fields() { # IMG: the KDMV header's fields
    python3 -c '
import struct, sys
b = open(sys.argv[1], "rb").read(512)
print(struct.unpack_from("<4sIIQQQQIQQQB", b, 0), b[73:79])' "$1"
}

sec_create() {
    local i=0 o sub
    for o in "" zeroed_grain=on subformat=monolithicFlat subformat=twoGbMaxExtentSparse \
             subformat=twoGbMaxExtentFlat,hwversion=7 subformat=streamOptimized \
             adapter_type=lsilogic,compat6=on adapter_type=buslogic,toolsversion=10240 \
             adapter_type=legacyESX,zeroed_grain=on subformat=twoGbMaxExtentSparse,zeroed_grain=on; do
        for size in 5G 1000000 64M; do
            i=$((i + 1))
            mkdir -p c$i
            case_begin "create -o '${o:-defaults}' $size, next to qemu-img create"
            qimg create -q -f vmdk ${o:+-o $o} c$i/qimg.vmdk $size
            if expect_exit 0 "$SCUSE" create -q -f vmdk ${o:+-o $o} c$i/simg.vmdk $size; then
                same_info c$i/qimg.vmdk c$i/simg.vmdk
                [ "$(desc_text c$i/qimg.vmdk)" = "$(desc_text c$i/simg.vmdk)" ] ||
                    fail "descriptor text differs: $(diff <(desc_text c$i/qimg.vmdk) <(desc_text c$i/simg.vmdk) | head -n 6 | tr '\n' '|')"
                sub=${o#*subformat=}
                sub=${sub%%,*}
                local f
                for f in c$i/qimg*.vmdk; do
                    local g=c$i/simg${f#c$i/qimg}
                    [ -f "$g" ] || { fail "no $g next to $f"; continue; }
                    head -c 4 "$f" | grep -q KDMV || continue
                    [ "$sub" = streamOptimized ] && continue
                    [ "$(header_fields "$f")" = "$(header_fields "$g")" ] ||
                        fail "$g header differs: qemu-img $(header_fields "$f") scuse $(header_fields "$g")"
                    [ "$(stat -c %s "$f")" = "$(stat -c %s "$g")" ] || fail "$g is $(stat -c %s "$g") bytes, qemu-img's $(stat -c %s "$f")"
                done
                qemu-img check c$i/simg.vmdk >/dev/null 2>&1 || fail "qemu-img check c$i/simg.vmdk fails"
                if [ "$sub" = streamOptimized ]; then
                    python3 "$GEN" streamcheck c$i/simg.vmdk >/dev/null || fail "$(python3 "$GEN" streamcheck c$i/simg.vmdk 2>&1)"
                else
                    qio -c "write -P 0x5a 512 70000" -c "write -P 0x5b $((999999 - 4096)) 4096" c$i/simg.vmdk
                    qemu-io -r -c "read -P 0x5a 512 70000" -c "read -P 0x5b $((999999 - 4096)) 4096" c$i/simg.vmdk |
                        grep -qi fail && fail "QEMU does not read back what it wrote to c$i/simg.vmdk"
                    expect_exit 0 "$SCUSE" io -c "read -P 0x5a 512 70000" c$i/simg.vmdk || true
                fi
            fi
            case_end
            rm -rf c$i
        done
    done
    case_begin "create refusals name what is wrong"
    local spec
    for spec in "subformat=nope|unknown subformat 'nope'" "adapter_type=scsi|unknown adapter_type 'scsi'" \
                "hwversion=6,compat6=on|compat6 and hwversion" "zeroed_grain=maybe|zeroed_grain takes on or off" \
                "cluster_size=4k|unknown option 'cluster_size'"; do
        if expect_exit 1 "$SCUSE" create -f vmdk -o "${spec%%|*}" r.vmdk 1M; then
            stderr_one_line || true
            stderr_mentions "${spec#*|}" || true
        fi
        [ ! -e r.vmdk ] || fail "a refused create left r.vmdk"
    done
    if expect_exit 1 "$SCUSE" create -f vmdk -o subformat=monolithicFlat -b x.vmdk -F vmdk r.vmdk 1M; then
        stderr_mentions "flat image .* cannot have a backing file" || true
    fi
    if expect_exit 1 "$SCUSE" create -f vmdk -b x.qcow2 -F qcow2 r.vmdk 1M; then
        stderr_mentions "parent must be a VMDK image" || true
    fi
    case_end
}

sec_children() {
    mkdir -p ch/sub elsewhere
    qimg create -q -f vmdk ch/qp.vmdk 8M
    qio -c "write -P 0x21 0 8M" ch/qp.vmdk
    expect_exit 0 "$SCUSE" create -q -f vmdk ch/sp.vmdk 8M || true
    expect_exit 0 "$SCUSE" io -c "write -P 0x22 0 8M" ch/sp.vmdk || true
    local p
    for p in qp sp; do
        case_begin "create -b over a parent made by $p: QEMU reads the chain"
        (cd elsewhere && "$SCUSE" create -q -f vmdk -b ../$p.vmdk -F vmdk ../ch/sub/k$p.vmdk >/dev/null) ||
            fail "scuse create -b ../$p.vmdk failed"
        local pcid kcid
        pcid=$(desc_cid ch/$p.vmdk)
        kcid=$(strings ch/sub/k$p.vmdk | sed -n 's/^parentCID=//p' | head -n 1)
        [ "$((16#$pcid))" = "$((16#$kcid))" ] || fail "parentCID $kcid is not the parent's CID $pcid"
        qemu-img compare ch/sub/k$p.vmdk ch/$p.vmdk >/dev/null 2>&1 || fail "QEMU reads the new child differently from its parent"
        qio -c "write -P 0x31 1M 100k" ch/sub/k$p.vmdk
        expect_exit 0 "$SCUSE" io -c "write -P 0x32 3M 70000" ch/sub/k$p.vmdk || true
        local pat=0x21
        [ $p = sp ] && pat=0x22
        ! qemu-io -r -c "read -P 0x31 1M 100k" -c "read -P 0x32 3M 70000" -c "read -P $pat 0 1M" ch/sub/k$p.vmdk 2>&1 |
            grep -qiE "fail|error" || fail "QEMU reads the child wrongly"
        qemu-img check ch/sub/k$p.vmdk >/dev/null 2>&1 || fail "qemu-img check of the child fails"
        info_backing=$(qemu-img info --output=json ch/sub/k$p.vmdk | python3 -c 'import json,sys; print(json.load(sys.stdin).get("backing-filename"))')
        [ "$info_backing" = "../$p.vmdk" ] || fail "backing-filename is '$info_backing'"
        case_end
    done
}
desc_cid() { strings "$1" | sed -n 's/^CID=//p' | head -n 1; }

sec_convert() {
    # a qcow2 source with data, zero clusters, holes and an unaligned end
    local size=$((9 * 1024 * 1024 + 3 * 512))
    qimg create -q -f qcow2 -o cluster_size=4k src.qcow2 $size
    fill src.qcow2 $size 81 40 --maxlen $((size / 8)) --zero 0.15
    local sub
    for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat streamOptimized; do
        case_begin "convert -O vmdk -o subformat=$sub"
        rm -f out*.vmdk
        if expect_exit 0 "$SCUSE" convert -O vmdk -o subformat=$sub src.qcow2 out.vmdk; then
            qemu-img compare src.qcow2 out.vmdk >/dev/null 2>&1 || fail "qemu-img compare: $(qemu-img compare src.qcow2 out.vmdk 2>&1 | head -n 1)"
            qemu-img check out.vmdk >/dev/null 2>&1 || fail "qemu-img check out.vmdk fails"
            if [ $sub = streamOptimized ]; then
                local msg
                msg=$(python3 "$GEN" streamcheck out.vmdk 2>&1) || fail "$msg"
                qemu-img convert -O raw src.qcow2 want.raw
                "$LIBVMDK" "$LIB_DIR/libvmdk_read.py" out.vmdk lv.raw 2>lv.err || fail "libvmdk cannot read out.vmdk: $(tail -n 1 lv.err)"
                cmp -s want.raw lv.raw || fail "libvmdk reads out.vmdk differently from the source"
                rm -f want.raw lv.raw
            fi
        fi
        case_end
    done
    case_begin "convert -c -O vmdk -o subformat=streamOptimized, several workers"
    if expect_exit 0 "$SCUSE" convert -c -m 4 -O vmdk -o subformat=streamOptimized src.qcow2 c.vmdk; then
        qemu-img compare src.qcow2 c.vmdk >/dev/null 2>&1 || fail "qemu-img compare fails"
        python3 "$GEN" streamcheck c.vmdk >/dev/null || fail "$(python3 "$GEN" streamcheck c.vmdk 2>&1)"
    fi
    # a stream is written once: writing it again is refused
    if expect_exit 2 "$SCUSE" io -c "write -P 1 0 65536" c.vmdk; then
        stderr_mentions "streamOptimized|compressed" || true
    fi
    case_end
    case_begin "convert -c into a monolithicSparse image is refused"
    if expect_exit 2 "$SCUSE" convert -c -O vmdk src.qcow2 d.vmdk; then
        stderr_mentions "only streamOptimized VMDK images store compressed grains" || true
    fi
    case_end
}

sec_check() {
    qimg create -q -f vmdk good.vmdk 4M
    qwrite good.vmdk "write -P 0x11 0 1M" "write -P 0x22 3M 64k"
    case_begin "check of a clean image: 0, as qemu-img"
    expect_exit 0 "$SCUSE" check good.vmdk || true
    expect_exit 0 "$SCUSE" check --output=json good.vmdk || true
    case_end
    local spec img
    for spec in "eof|0 3 999999|past the end" "meta|0 4 2|overlaps metadata" "dup|0 5 128|overlap"; do
        img=bad-${spec%%|*}.vmdk
        cp good.vmdk "$img"
        local where=${spec#*|}
        where=${where%|*}
        # shellcheck disable=SC2086
        python3 "$GEN" gt "$img" $where
        # the redundant table still says the truth
        case_begin "check: grain table entry ${spec%%|*} (${where})"
        if expect_exit 2 "$SCUSE" check "$img"; then
            stderr_mentions "${spec##*|}" || true
        fi
        qemu-img check "$img" >/dev/null 2>&1 && [ "${spec%%|*}" = eof ] && fail "qemu-img check passes $img"
        # -r all: the redundant copy is plausible, the primary is not (or
        # both are grains): afterwards scuse and qemu-img find it clean
        if [ "${spec%%|*}" != dup ]; then
            expect_exit 0 "$SCUSE" check -r all "$img" || true
            qemu-img check "$img" >/dev/null 2>&1 || fail "qemu-img check fails after -r all"
            qemu-img compare good.vmdk "$img" >/dev/null 2>&1 || fail "-r all did not restore the data"
        fi
        case_end
    done
    case_begin "check: a redundant grain table that differs, repaired by -r all"
    cp good.vmdk rgt.vmdk
    python3 - rgt.vmdk <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
rgd = struct.unpack_from("<Q", b, 48)[0]
rgt = struct.unpack_from("<I", b, rgd * 512)[0]
struct.pack_into("<I", b, rgt * 512 + 8, 0)  # grain 2's redundant entry
open(sys.argv[1], "wb").write(b)
PY
    if expect_exit 2 "$SCUSE" check rgt.vmdk; then
        stderr_mentions "redundant grain table 0 differs" || true
    fi
    expect_exit 0 "$SCUSE" check -r all rgt.vmdk || true
    python3 "$GEN" rgdcheck rgt.vmdk || fail "the redundant table is still different"
    expect_exit 0 "$SCUSE" check rgt.vmdk || true
    qemu-img compare good.vmdk rgt.vmdk >/dev/null 2>&1 || fail "the repair changed the data"
    case_end
    sec_leaks
}

# Leaks: grains no table points at (a writer killed before its flush
# leaves them at the end), counted as qemu-img counts qcow2's leaked
# clusters (exit 3); -r leaks moves grains down into holes and cuts the
# file. qemu-img does not look for them (its check of these is clean).
sec_leaks() {
    local gsize n
    stdout_has() {
        grep -qF -- "$1" "$W/.out" || fail "stdout should have '$1': $(head -n 4 "$W/.out" | tr '\n' '|')"
    }
    gsize=$(stat -c %s good.vmdk)
    # leak_case NAME IMG LEAKS SIZE_AFTER [-r MODE]: IMG leaks LEAKS grains;
    # the repair leaves SIZE_AFTER bytes and the same disk
    leak_case() {
        local name=$1 img=$2 leaks=$3 after=$4 mode=${5:-leaks}
        case_begin "check: $name: $leaks leaked grains, -r $mode gives them back"
        qemu-img check "$img" >/dev/null 2>&1 || fail "SETUP: qemu-img check fails $img"
        qemu-img convert -O raw "$img" "$W/.before.raw"
        if expect_exit 3 "$SCUSE" check "$img"; then
            stdout_has "$leaks leaked clusters were found on the image." || true
            n=$(grep -c "^Leaked: '$img': bytes " "$W/.err" || true)
            [ "$n" -ge 1 ] || fail "no 'Leaked:' line: $(head -n 3 "$W/.err")"
        fi
        if expect_exit 3 "$SCUSE" check --output=json "$img"; then
            grep -q "\"leaks\": $leaks," "$W/.out" || fail "json: $(tr -d '\n' <"$W/.out")"
        fi
        if expect_exit 0 "$SCUSE" check -r "$mode" "$img"; then
            stdout_has "    $leaks leaked clusters" || true
        fi
        [ "$(stat -c %s "$img")" = "$after" ] || fail "$img is $(stat -c %s "$img") bytes after -r $mode, $after expected"
        expect_exit 0 "$SCUSE" check "$img" || true
        qemu-img check "$img" >/dev/null 2>&1 || fail "qemu-img check fails after -r $mode"
        qemu-img compare -f vmdk -F raw "$img" "$W/.before.raw" >/dev/null 2>&1 ||
            fail "-r $mode changed the disk"
        case_end
    }
    cp good.vmdk lk-tail.vmdk
    head -c 131072 /dev/urandom >>lk-tail.vmdk
    leak_case "two grains appended" lk-tail.vmdk 2 "$gsize"
    cp good.vmdk lk-mid.vmdk
    python3 "$GEN" unref lk-mid.vmdk 3 4
    leak_case "two grains in the middle (their entries 0)" lk-mid.vmdk 2 $((gsize - 131072))
    cp good.vmdk lk-both.vmdk
    python3 "$GEN" unref lk-both.vmdk 7
    head -c 70000 /dev/urandom >>lk-both.vmdk
    leak_case "one in the middle, 70000 bytes at the end" lk-both.vmdk 3 $((gsize - 65536)) all

    # a grain table scuse appended (a write where the directory had none),
    # then grains after it: the grains move under it, the table stays
    qimg create -q -f vmdk -o subformat=monolithicSparse gt0.vmdk 64M
    python3 - gt0.vmdk <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
for at in struct.unpack_from("<QQ", b, 48):  # both directories: entry 1 is 0
    struct.pack_into("<I", b, at * 512 + 4, 0)
open(sys.argv[1], "wb").write(b)
PY
    if expect_exit 0 "$SCUSE" io -c "write -P 0x55 32M 128k" -c "write -P 0x56 33M 64k" gt0.vmdk; then
        python3 "$GEN" unref gt0.vmdk 512
        n=$(stat -c %s gt0.vmdk)
        leak_case "a grain after a new grain table" gt0.vmdk 1 $((n - 65536))
    fi

    # not while a corruption remains: counted, left in place
    cp good.vmdk lk-bad.vmdk
    python3 "$GEN" gt lk-bad.vmdk 0 3 999999
    python3 - lk-bad.vmdk <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
rgd = struct.unpack_from("<Q", b, 48)[0]
rgt = struct.unpack_from("<I", b, rgd * 512)[0]
struct.pack_into("<I", b, rgt * 512 + 12, 999999)  # the redundant entry says so too
open(sys.argv[1], "wb").write(b)
PY
    n=$(stat -c %s lk-bad.vmdk)
    case_begin "check: leaks beside a corruption are counted, not repaired"
    if expect_exit 2 "$SCUSE" check -r leaks lk-bad.vmdk; then
        stderr_mentions "leaks are not repaired while corruptions remain" || true
        stdout_has "1 leaked clusters were found on the image." || true
    fi
    [ "$(stat -c %s lk-bad.vmdk)" = "$n" ] || fail "the file changed size"
    case_end
}

for sec in sec_create sec_convert sec_children sec_check; do
    lane "${sec#sec_}" "$sec"
done
join_lanes
finish
