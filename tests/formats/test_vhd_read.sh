#!/usr/bin/env bash
# VHD (vpc) read path. Oracles (docs: shared formats.md section 5):
#   fixed and dynamic disks made by qemu-img/qemu-io here, and real images
#   from Hyper-V, Virtual PC and disk2vhd (QEMU's sample images):
#     scuse convert -O raw == qemu-img convert -f vpc -O raw   (cmp)
#     scuse map ~= qemu-img map (lib/mapcmp.py), info key by key
#   what QEMU cannot make or read (differencing chains, which it reads
#   without the parent; dynamic disks with clear bitmap bits, whose stale
#   data it returns): lib/vhd.py, a reader and writer written from the
#   specification, and libvhdi (ctypes) where it is right: it misreads
#   bitmaps whose bytes are partly set (a clear sector after a set one in
#   the same byte, and worse), refuses blocks under 4 KiB and misreads
#   blocks under 1 MiB, so it judges only disks of blocks of 1 MiB or more
#   written in whole bitmap bytes (4 KiB).
. "$(dirname "$0")/lib/common.sh"
. "$LIB_DIR/qemu_samples.sh"
V=$LIB_DIR/vhd.py
vhd() { python3 "$V" "$@"; }

need bzip2 apt-get
if ! python3 -c 'import ctypes; ctypes.CDLL("libvhdi.so.1")' 2>/dev/null; then
    echo "SKIP: not found: libvhdi.so.1 (libvhdi1)" >&2
    exit 77
fi

# qcase NAME IMG [mapcmp opts] [-- -f FMT]: convert and map against qemu-img.
qcase() {
    case_begin "$1"
    shift
    check_image "$@"
    case_end
}

# vwant IMG: the spec reader's view of IMG into $W/.want.raw and its map.
# vcase NAME IMG [libvhdi]: scuse convert and map against lib/vhd.py (and
# libvhdi's export too when the third argument is "libvhdi").
vcase() {
    local name=$1 img=$2 lv=${3:-}
    case_begin "$name"
    vhd export "$img" "$W/.want.raw"
    vhd map "$img" >"$W/.vmap.json"
    if expect_exit 0 "$SCUSE" convert -O raw "$img" "$W/.got.raw"; then
        cmp -s "$W/.want.raw" "$W/.got.raw" ||
            fail "convert of $img differs from the spec reader: $(python3 "$LIB_DIR/rawdiff.py" "$W/.want.raw" "$W/.got.raw")"
    fi
    if expect_exit 0 "$SCUSE" map --output=json "$img"; then
        local msg
        msg=$(python3 "$LIB_DIR/mapcmp.py" --raw "$W/.want.raw" "$W/.vmap.json" "$W/.out" 2>&1) ||
            fail "map of $img differs from the spec reader's: $msg"
    fi
    if [ "$lv" = libvhdi ]; then
        vhd libvhdi-export "$img" "$W/.lv.raw"
        cmp -s "$W/.want.raw" "$W/.lv.raw" ||
            fail "libvhdi and the spec reader disagree on $img (the oracles differ): $(python3 "$LIB_DIR/rawdiff.py" "$W/.want.raw" "$W/.lv.raw")"
    fi
    case_end
}

# info_case NAME IMG [-f vpc]: info --output=json against qemu-img info (all
# of qemu-img's keys; qemu-img prints no format-specific data for vpc), and
# scuse's format-specific data against the footer as lib/vhd.py reads it.
info_case() {
    local name=$1 img=$2
    shift 2
    case_begin "$name"
    qemu-img info "$@" --output=json "$img" >"$W/.qinfo.json"
    vhd info "$img" >"$W/.vinfo.json"
    if expect_exit 0 "$SCUSE" info "$@" --output=json "$img"; then
        python3 - "$W/.qinfo.json" "$W/.out" "$W/.vinfo.json" "$LIB_DIR" <<'PY' || fail "info of $img: see above"
import json, sys
q, s, v = (json.load(open(p)) for p in sys.argv[1:4])
sys.path.insert(0, sys.argv[4])
fs = s.pop("format-specific", None)
import infocmp
out = []
infocmp.compare(q, s, "", out)
f = v["footer"]
types = {2: "fixed", 3: "dynamic", 4: "differencing"}
want = {"subformat": types[f["type"]], "cylinders": f["cyls"], "heads": f["heads"],
        "sectors-per-track": f["secs"], "current-size": f["cur_size"],
        "creator": bytes.fromhex(f["creator_app"]).rstrip(b"\0 ").decode(),
        "timestamp": f["timestamp"]}
if not fs or fs.get("type") != "vpc":
    out.append(f"format-specific: {fs}")
else:
    d = fs["data"]
    for k, x in want.items():
        if d.get(k) != x:
            out.append(f"format-specific {k}: scuse {d.get(k)!r}, footer {x!r}")
    u = f["uuid"]
    if d.get("uuid", "").replace("-", "") != u:
        out.append(f"uuid: scuse {d.get('uuid')} footer {u}")
if out:
    print("; ".join(out))
    sys.exit(1)
PY
    fi
    case_end
}

# ---------------------------------------------------------------------------
# 1. dynamic disks made by qemu-img: CHS-rounded sizes (the default; 64M is
#    67,125,248 bytes), force_size (creator qem2, exact size, a partial last
#    block), sizes below one block, written by qemu-io.
sec_dynamic() {
    local seed=10 size img
    for size in 64M 5M 1000000 $((100 * 1024 * 1024 + 512)) 300M; do
        for fs in off on; do
            img=dyn-$size-fs$fs.vhd
            qimg create -q -f vpc -o subformat=dynamic,force_size=$fs "$img" $size
            local vs
            vs=$(qemu-img info --output=json "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
            fill "$img" "$vs" $seed 40 --maxlen $((vs / 10)) --zero 0.1
            seed=$((seed + 1))
            qcase "dynamic $size force_size=$fs (virtual size $vs)" "$img"
        done
    done
    qcase "dynamic, -f vpc given" dyn-64M-fsoff.vhd -- -f vpc
    case_begin "dynamic, -f vhd (the alias)"
    qemu-img convert -f vpc -O raw dyn-5M-fson.vhd "$W/.want.raw"
    if expect_exit 0 "$SCUSE" convert -f vhd -O raw dyn-5M-fson.vhd "$W/.got.raw"; then
        cmp -s "$W/.want.raw" "$W/.got.raw" || fail "convert -f vhd differs from qemu-img's -f vpc"
    fi
    case_end
    info_case "dynamic: info --output=json" dyn-64M-fsoff.vhd
    info_case "dynamic force_size: info --output=json" dyn-1000000-fson.vhd
    # A large sparse disk (offsets past 2^32 and 2^40 bytes, a long BAT).
    img=dyn-big.vhd
    qimg create -q -f vpc -o force_size=on "$img" 2000G
    qwrite "$img" "write -P 0x21 0 64k" "write -P 0x22 $((1 << 40)) 3M" "write -P 0x23 $(((2000 << 30) - 4096)) 4096"
    SPARSE_CMP=1 qcase "dynamic 2000 GiB" "$img"
    # An empty disk.
    qimg create -q -f vpc empty.vhd 0
    qcase "dynamic, virtual size 0" empty.vhd
}

# ---------------------------------------------------------------------------
# 2. fixed disks: the footer only at the end. QEMU's probe calls them raw, so
#    qemu-img gets -f vpc; scuse must probe them as vpc.
sec_fixed() {
    local seed=40 size img
    for size in 64M 3M 1000000 $((9 * 1024 * 1024 + 512)); do
        for fs in off on; do
            img=fix-$size-fs$fs.vhd
            qimg create -q -f vpc -o subformat=fixed,force_size=$fs "$img" $size
            local vs
            vs=$(qemu-img info -f vpc --output=json "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
            fill -f vpc "$img" "$vs" $seed 30 --maxlen $((vs / 8)) --zero 0.1
            seed=$((seed + 1))
            qcase "fixed $size force_size=$fs (virtual size $vs)" "$img" -- -f vpc
        done
    done
    info_case "fixed: info --output=json" fix-64M-fsoff.vhd -f vpc
    case_begin "fixed: probed as vpc (its footer is in the last 512 bytes)"
    if expect_exit 0 "$SCUSE" info fix-3M-fson.vhd; then
        grep -q '^file format: vpc$' "$W/.out" || fail "a fixed VHD probes as: $(grep 'file format' "$W/.out")"
    fi
    case_end
    # An old Virtual PC footer of 511 bytes (the last reserved byte missing).
    img=fix511.vhd
    qimg create -q -f vpc -o subformat=fixed 511.tmp 2M
    qio -f vpc -c "write -P 0x66 4096 8192" 511.tmp
    head -c $(($(stat -c %s 511.tmp) - 1)) 511.tmp >"$img"
    rm 511.tmp
    case_begin "fixed with a 511-byte footer (old Virtual PC; QEMU cannot open it)"
    if expect_exit 0 "$SCUSE" convert -O raw "$img" got511.raw; then
        python3 - got511.raw <<'PY' || fail "the 511-byte-footer disk reads wrong"
import sys
b = open(sys.argv[1], "rb").read()
want = bytes(4096) + b"\x66" * 8192
sys.exit(0 if b[:len(want)] == want and b[len(want):].count(0) == len(b) - len(want) else 1)
PY
    fi
    case_end
}

# ---------------------------------------------------------------------------
# 3. real images: Hyper-V 2012 R2 and Virtual PC dynamic disks (127 GiB,
#    creator "win " sized by current_size, "vpc " by geometry), a disk2vhd
#    disk (maximal geometry, every block allocated, zero-filled).
sec_samples() {
    local s
    for s in hyperv2012r2-dynamic.vhd virtualpc-dynamic.vhd d2v-zerofilled.vhd; do
        case_begin "sample $s: fetched from QEMU's source package"
        if ! qemu_sample "$s" "$s" 2>"$W/.fetch"; then
            fail "cannot get QEMU's sample image $s: $(cat "$W/.fetch")"
            case_end
            continue
        fi
        case_end
        SPARSE_CMP=1 qcase "sample $s: convert and map" "$s"
        info_case "sample $s: info" "$s"
    done
}

# ---------------------------------------------------------------------------
# 4. dynamic disks with clear bitmap bits (written by lib/vhd.py): a clear
#    bit reads as zeros even over stale data (QEMU returns the stale data;
#    libvhdi and the specification zeros).
sec_bitmaps() {
    local img=bits.vhd size=$((6 * 1024 * 1024))
    vhd create "$img" $size --block-size $((1 << 20))
    vhd io "$img" <<EOF
write -P 0x11 0 4096
stale -P 0x22 4096 4096
write -P 0x33 9216 512
stale -P 0x44 $((2 * 1024 * 1024)) 8192
write -P 0x55 $((2 * 1024 * 1024 + 8192)) 1536
write -P 0x66 $((5 * 1024 * 1024 - 512)) 1024
EOF
    python3 "$LIB_DIR/iogen.py" $size 91 40 --align 512 --maxlen 100000 | vhd io "$img"
    printf 'stale -P 0x77 %d 65536\n' $((3 * 1024 * 1024)) | vhd io "$img"
    vcase "dynamic disk with clear bitmap bits over stale data" "$img"
    case_begin "dynamic disk with clear bits: known content"
    expect_exit 0 "$SCUSE" io -r -c "read -P 0x11 0 4096" -c "read -P 0 4096 4096" \
        -c "read -P 0 2097152 8192" -c "read -P 0x55 2105344 1536" "$img" || true
    case_end
    # The same in whole bitmap bytes (4 KiB), where libvhdi reads right.
    img=bits4k.vhd
    vhd create "$img" $size --block-size $((1 << 20))
    python3 "$LIB_DIR/iogen.py" $size 92 40 --align 4096 --maxlen 100000 | vhd io "$img"
    printf 'stale -P 0x78 %d 65536\n' $((3 * 1024 * 1024 + 8192)) | vhd io "$img"
    vcase "dynamic disk with clear bits, whole bitmap bytes" "$img" libvhdi
    # Block sizes: libvhdi refuses blocks under 4 KiB and misreads small
    # ones (with 64 KiB blocks, the second block allocated reads as zeros),
    # so it judges blocks of 1 MiB and more, written in whole bitmap bytes.
    local bsz al lv
    for bsz in 512 1024 4096 65536 $((1 << 20)) $((16 << 20)); do
        for al in 512 4096; do
            lv=
            [ "$al" = 4096 ] && [ "$bsz" -ge $((1 << 20)) ] && lv=libvhdi
            img=bs$bsz-a$al.vhd
            vhd create "$img" $((3 * 1024 * 1024 + 7 * 512)) --block-size $bsz
            python3 "$LIB_DIR/iogen.py" $((3 * 1024 * 1024 + 7 * 512)) $((bsz % 97 + al)) 30 --align $al --maxlen 300000 | vhd io "$img"
            vcase "dynamic disk with block size $bsz, writes aligned to $al" "$img" $lv
        done
    done
}

# ---------------------------------------------------------------------------
# 5. differencing chains (lib/vhd.py writes them: QEMU cannot).
sec_chains() {
    local size=$((16 * 1024 * 1024))
    mkdir -p ch/base ch/mid ch/top elsewhere
    vhd create ch/base/base.vhd $size
    python3 "$LIB_DIR/iogen.py" $size 501 40 --align 4096 --maxlen 1000000 | vhd io ch/base/base.vhd
    vhd create ch/mid/mid.vhd - --type diff --parent ch/base/base.vhd
    python3 "$LIB_DIR/iogen.py" $size 502 40 --align 4096 --maxlen 600000 --zero 0.2 | vhd io ch/mid/mid.vhd
    vhd create ch/top/top.vhd - --type diff --parent ch/mid/mid.vhd
    python3 "$LIB_DIR/iogen.py" $size 503 40 --align 4096 --maxlen 300000 --zero 0.2 | vhd io ch/top/top.vhd
    vcase "2-deep chain (W2ru ..\\base\\base.vhd)" ch/mid/mid.vhd libvhdi
    vcase "3-deep chain" ch/top/top.vhd libvhdi
    cd elsewhere
    vcase "3-deep chain from another directory" ../ch/top/top.vhd libvhdi
    vcase "3-deep chain by absolute path" "$T/ch/top/top.vhd"
    cd "$T"
    case_begin "map --start-offset/--max-length on the chain"
    vhd map ch/top/top.vhd >"$W/.vmap.json"
    for range in 1000000:2000000 0:512 $((size - 512)):512 65536:131072 3000000:99999999; do
        local st=${range%%:*} ln=${range#*:}
        python3 - "$W/.vmap.json" "$st" "$ln" >"$W/.vsub.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1])); st, ln = int(sys.argv[2]), int(sys.argv[3])
end = min(st + ln, rows[-1]["start"] + rows[-1]["length"])
out = []
for r in rows:
    a, b = max(r["start"], st), min(r["start"] + r["length"], end)
    if a < b:
        r2 = dict(r, start=a, length=b - a)
        if "offset" in r2:
            r2["offset"] = r["offset"] + a - r["start"]
        out.append(r2)
print(json.dumps(out))
PY
        if expect_exit 0 "$SCUSE" map --output=json --start-offset="$st" --max-length="$ln" ch/top/top.vhd; then
            python3 "$LIB_DIR/mapcmp.py" --start "$st" "$W/.vsub.json" "$W/.out" >/dev/null 2>&1 ||
                fail "map $range differs: $(python3 "$LIB_DIR/mapcmp.py" --start "$st" "$W/.vsub.json" "$W/.out")"
        fi
    done
    case_end
    case_begin "info --backing-chain names the parents"
    if expect_exit 0 "$SCUSE" info --backing-chain --output=json ch/top/top.vhd; then
        python3 - "$W/.out" <<'PY' || fail "info --backing-chain: see above"
import json, sys
c = json.load(open(sys.argv[1]))
want = [("ch/top/top.vhd", "../mid/mid.vhd", "ch/top/../mid/mid.vhd", "differencing"),
        ("ch/top/../mid/mid.vhd", "../base/base.vhd", "ch/top/../mid/../base/base.vhd", "differencing"),
        ("ch/top/../mid/../base/base.vhd", None, None, "dynamic")]
got = [(n["filename"], n.get("backing-filename"), n.get("full-backing-filename"),
        n["format-specific"]["data"]["subformat"]) for n in c]
fmts = [n.get("backing-filename-format") for n in c]
if got != want or fmts != ["vpc", "vpc", None]:
    print(f"got {got} {fmts}\nwant {want}")
    sys.exit(1)
PY
    fi
    case_end

    # Sector-granular writes: libvhdi misreads them (a clear sector after a
    # set one in the same bitmap byte comes from the child), so the spec
    # reader judges, and known content pins the pattern down.
    vhd create g-base.vhd $((4 * 1024 * 1024))
    vhd io g-base.vhd <<<"write -P 0xaa 0 $((4 * 1024 * 1024))"
    vhd create g-child.vhd - --type diff --parent g-base.vhd
    vhd io g-child.vhd <<EOF
write -P 0xbb 512 512
write -P 0xcc 3072 1024
stale -P 0xdd 1024 1024
EOF
    python3 "$LIB_DIR/iogen.py" $((4 * 1024 * 1024)) 504 40 --align 512 --maxlen 70000 --start 65536 | vhd io g-child.vhd
    vcase "child written in single sectors" g-child.vhd
    case_begin "child written in single sectors: known content"
    expect_exit 0 "$SCUSE" io -r -c "read -P 0xaa 0 512" -c "read -P 0xbb 512 512" \
        -c "read -P 0xaa 1024 2048" -c "read -P 0xcc 3072 1024" -c "read -P 0xaa 4096 4096" g-child.vhd || true
    case_end

    # Locator variants: each alone, Windows absolute paths (found by their
    # last component next to the child), data space in bytes, names that
    # need UTF-16 surrogates.
    mkdir -p loc
    vhd create loc/p.vhd $((2 * 1024 * 1024))
    vhd io loc/p.vhd <<<"write -P 0x31 0 2097152"
    local spec n=0
    for spec in "w2ru|" "w2ku|" "name|" "w2ku|--w2ku C:\\vms\\disks\\p.vhd" "name|--name D:\\x\\p.vhd" \
                "w2ru,w2ku,name|--space-bytes"; do
        n=$((n + 1))
        IFS='|' read -r locs extra <<<"$spec"
        # shellcheck disable=SC2086
        vhd create loc/c$n.vhd - --type diff --parent loc/p.vhd --locators "$locs" $extra
        vhd io loc/c$n.vhd <<<"write -P 0x4$n $((n * 4096)) 4096"
        vcase "parent through $locs $extra" loc/c$n.vhd libvhdi
    done
    local uname=$'p\xc3\xa4rent-\xf0\x9f\x98\x80.vhd'
    cp loc/p.vhd "loc/$uname"
    vhd create loc/cu.vhd - --type diff --parent "loc/$uname"
    vhd io loc/cu.vhd <<<"write -P 0x51 8192 4096"
    vcase "parent name with a character outside the BMP (UTF-16 surrogates)" loc/cu.vhd libvhdi
    # The parent timestamp recorded as the parent's footer time stamp.
    vhd create loc/cts.vhd - --type diff --parent loc/p.vhd --parent-ts footer
    vcase "parent timestamp = the parent footer's time stamp" loc/cts.vhd

    # Parents of other VHD types: fixed; a child smaller than... no: the
    # same size, over a fixed disk made by qemu-img.
    qimg create -q -f vpc -o subformat=fixed,force_size=on fixp.vhd 3M
    qio -f vpc -c "write -P 0x61 0 3M" fixp.vhd
    vhd create fixc.vhd - --type diff --parent fixp.vhd
    python3 "$LIB_DIR/iogen.py" $((3 * 1024 * 1024)) 505 20 --align 4096 --maxlen 200000 | vhd io fixc.vhd
    vcase "child of a fixed disk made by qemu-img" fixc.vhd libvhdi
    qimg create -q -f vpc -o force_size=on dynp.vhd 5M
    fill dynp.vhd $((5 * 1024 * 1024)) 506 20 --maxlen 300000 --zero 0.1
    vhd create dync.vhd - --type diff --parent dynp.vhd
    python3 "$LIB_DIR/iogen.py" $((5 * 1024 * 1024)) 507 20 --align 512 --maxlen 200000 | vhd io dync.vhd
    vcase "child of a dynamic disk made by qemu-img" dync.vhd

    # Chains across formats: a qcow2 overlay over VHDs (QEMU reads the
    # dynamic and fixed ones right; over a differencing child it would read
    # the child without its parent, so there the expected bytes are the
    # spec reader's plus the overlay's own writes).
    qimg create -q -f qcow2 -b dynp.vhd -F vpc q-over-dyn.qcow2
    fill q-over-dyn.qcow2 $((5 * 1024 * 1024)) 508 10 --maxlen 100000
    qcase "qcow2 overlay over a dynamic VHD" q-over-dyn.qcow2
    qimg create -q -f qcow2 -b fixp.vhd -F vpc q-over-fix.qcow2
    fill q-over-fix.qcow2 $((3 * 1024 * 1024)) 509 10 --maxlen 100000
    qcase "qcow2 overlay over a fixed VHD" q-over-fix.qcow2
    qimg create -q -f qcow2 -b ch/top/top.vhd -F vpc q-over-diff.qcow2
    qwrite q-over-diff.qcow2 "write -P 0x71 0 64k" "write -P 0x72 $((5 * 65536)) 128k"
    case_begin "qcow2 overlay over a differencing chain"
    vhd export ch/top/top.vhd want-qd.raw
    python3 - want-qd.raw <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(0); f.write(b"\x71" * 65536)
    f.seek(5 * 65536); f.write(b"\x72" * 131072)
PY
    if expect_exit 0 "$SCUSE" convert -O raw q-over-diff.qcow2 got-qd.raw; then
        cmp -s want-qd.raw got-qd.raw || fail "qcow2 over a VHD chain reads wrong: $(python3 "$LIB_DIR/rawdiff.py" want-qd.raw got-qd.raw)"
    fi
    case_end
}

# ---------------------------------------------------------------------------
# 6. malformed images: exit 2, one line on stderr naming the image and the
#    field (as tests/formats/test_malformed.sh). Damage found at open fails
#    every command ("header"); a parent that is not the one recorded fails
#    what opens the chain while plain info, which describes the top image
#    only (as qemu-img info does), succeeds ("chain"); a BAT entry past the
#    end of the file fails what reads the block and a read-write open, but
#    info works, so that check can open the image to repair it ("meta").
must_fail() {
    if expect_exit 2 "$@"; then
        stderr_one_line || true
        stderr_names "$NAME" || true
        stderr_mentions "$FIELD" "the field (/$FIELD/)" || true
    fi
}
bad() { # MODE DESC IMG FIELD_REGEX [fmt]
    local mode=$1 desc=$2 img=$3
    FIELD=$4
    NAME=$img
    local -a f=()
    [ -z "${5:-}" ] || f=(-f "$5")
    case_begin "malformed: $desc"
    if [ "$mode" = header ]; then
        must_fail "$SCUSE" info "${f[@]}" "$img"
    else
        expect_exit 0 "$SCUSE" info "${f[@]}" "$img" || true
    fi
    if [ "$mode" = meta ]; then
        expect_exit 0 "$SCUSE" info "${f[@]}" --output=json --backing-chain "$img" || true
        local sum
        sum=$(cksum <"$img")
        must_fail "$SCUSE" io "${f[@]}" -c "write -P 1 0 512" "$img"
        stderr_mentions "check -r all" || true
        [ "$(cksum <"$img")" = "$sum" ] || fail "the refused read-write open changed $img"
    else
        must_fail "$SCUSE" info "${f[@]}" --output=json --backing-chain "$img"
    fi
    must_fail "$SCUSE" map "${f[@]}" --output=json "$img"
    must_fail "$SCUSE" convert "${f[@]}" -O raw "$img" out.raw
    case_end
}
# mk NAME SRC FIELD VALUE [FIELD VALUE...]: a damaged copy of SRC.
mk() {
    local name=$1 src=$2
    shift 2
    cp "$src" "$name"
    while [ $# -gt 0 ]; do
        vhd set "$name" "$1" "$2"
        shift 2
    done
}
sec_malformed() {
    mkdir -p m
    cd m
    vhd create good.vhd $((16 * 1024 * 1024))
    vhd io good.vhd <<<"write -P 0x11 0 1048576"
    qimg create -q -f vpc -o subformat=fixed fixed.vhd 4M
    vhd create p.vhd $((4 * 1024 * 1024))
    vhd io p.vhd <<<"write -P 0x12 0 65536"
    vhd create c.vhd - --type diff --parent p.vhd
    vhd io c.vhd <<<"write -P 0x13 4096 4096"
    local fsz
    fsz=$(stat -c %s good.vhd)

    mk m1.vhd good.vhd footer.checksum 0x12345678
    bad header "footer checksum at offset 0" m1.vhd "checksum.*0x12345678.*0x[0-9a-f]{8}"
    mk m2.vhd fixed.vhd footer.checksum 0x0badcafe
    bad header "fixed disk: footer checksum at the end" m2.vhd "checksum.*end of the file.*0x0badcafe.*0x[0-9a-f]{8}" vpc
    mk m3.vhd good.vhd dyn.checksum 0x00000001
    bad header "dynamic header checksum" m3.vhd "dynamic header checksum is 0x00000001 but.*0x[0-9a-f]{8}"
    mk m4.vhd good.vhd dyn.table_offset 0x7fffffff0000
    bad header "BAT past the end of the file" m4.vhd "BAT at table_offset 140737488289792"
    mk m5.vhd good.vhd dyn.block_size 0
    bad header "block size 0" m5.vhd "block_size 0 is invalid"
    mk m6.vhd good.vhd dyn.block_size 3000
    bad header "block size not a power of two" m6.vhd "block_size 3000 is invalid"
    mk m7.vhd good.vhd dyn.block_size 0x40000000
    bad header "block size 1 GiB" m7.vhd "block_size 1073741824 is invalid"
    mk m8.vhd good.vhd dyn.max_entries 0xffffffff
    bad header "max_table_entries 2^32-1" m8.vhd "max_table_entries 4294967295 is too large"
    mk m9.vhd good.vhd dyn.max_entries 1
    bad header "max_table_entries too small for the size" m9.vhd "max_table_entries 1 is too small"
    mk m10.vhd good.vhd bat.0 0x10000000
    bad meta "bitmap past the end of the file" m10.vhd "BAT entry 0 puts (the bitmap of block 0|block 0) at 137438953472, past the end"
    mk m11.vhd good.vhd bat.0 $(((fsz - 1024) / 512))
    bad meta "block data past the end of the file" m11.vhd "BAT entry 0 puts (block 0 at [0-9]+, whose 2097152 bytes of data run past the end|block 0 at [0-9]+, past the end)"
    mk m12.vhd good.vhd tail.truncate 600000
    bad meta "file cut inside the last block" m12.vhd "(data run|block [0-9]+ at [0-9]+,) past the end"
    mk m13.vhd good.vhd footer.type 5
    bad header "disk type 5" m13.vhd "disk type 5"
    mk m14.vhd good.vhd footer.version 0x00020000
    bad header "footer version 2.0" m14.vhd "footer version 0x00020000"
    mk m15.vhd good.vhd footer.data_offset 0x100000000
    bad header "dynamic header offset past the end" m15.vhd "data_offset 4294967296"
    mk m16.vhd good.vhd footer.cur_size $((3 << 40))
    bad header "virtual size over 2040 GiB" m16.vhd "2040 GiB"
    mk m17.vhd fixed.vhd footer.creator_app "win " footer.cur_size $((64 << 20))
    bad header "fixed disk larger than its data" m17.vhd "virtual size 67108864 .*larger than"
    mk m18.vhd good.vhd bytes.512 00000000
    bad header "no dynamic header cookie" m18.vhd "cxsparse"

    local loff
    loff=$(vhd info c.vhd | python3 -c 'import json,sys; print(json.load(sys.stdin)["locators"][0][4])')
    mk l1.vhd c.vhd loc.0.length 100000
    bad header "locator 100000 bytes long" l1.vhd "parent locator 0 \\(W2ru\\) is 100000 bytes long"
    mk l2.vhd c.vhd loc.0.offset 0x7fffffff0000
    bad header "locator past the end of the file" l2.vhd "parent locator 0 \\(W2ru\\) at offset 140737488289792 .*past the end"
    mk l3.vhd c.vhd loc.0.length 7
    bad header "locator of an odd length" l3.vhd "parent locator 0 \\(W2ru\\) is not UTF-16 text \\(an odd number of bytes\\)"
    mk l4.vhd c.vhd bytes.$loff 00dc
    bad header "locator with a lone surrogate" l4.vhd "parent locator 0 \\(W2ru\\) is not UTF-16 text \\(a lone low surrogate"
    mk l5.vhd c.vhd dyn.parent_name "d800$(printf '%01020d' 0)"
    bad header "parent name with a lone high surrogate" l5.vhd "parent name .*not UTF-16"
    mk l6.vhd c.vhd loc.0.code 0x0 loc.1.code 0x0 dyn.parent_name "$(printf '%01024d' 0)"
    bad header "a child that names no parent" l6.vhd "names no parent"

    local self_uuid
    self_uuid=$(vhd info c.vhd | python3 -c 'import json,sys; print(json.load(sys.stdin)["footer"]["uuid"])')
    mk s1.vhd c.vhd loc.0.code 0x0 loc.1.code 0x0 \
        dyn.parent_name "$(python3 -c 'print("s1.vhd".encode("utf-16-be").hex().ljust(1024, "0"))')"
    vhd set s1.vhd dyn.parent_uuid "$(vhd info s1.vhd | python3 -c 'import json,sys; print(json.load(sys.stdin)["footer"]["uuid"])')"
    bad chain "a child whose parent is itself" s1.vhd "loops back"
    mk u1.vhd c.vhd dyn.parent_uuid 00112233445566778899aabbccddeeff
    bad chain "parent UUID mismatch" u1.vhd "parent UUID mismatch: the child names parent 00112233-4455-6677-8899-aabbccddeeff, 'p.vhd' is [0-9a-f-]{36}"
    mk t1.vhd c.vhd dyn.parent_ts 12345
    bad chain "parent timestamp mismatch" t1.vhd "parent timestamp mismatch: the child records 12345 .*modified at [0-9]+"
    mkdir -p gone
    vhd create gone/gp.vhd $((4 * 1024 * 1024))
    vhd create g1.vhd - --type diff --parent gone/gp.vhd
    rm gone/gp.vhd
    bad chain "parent missing" g1.vhd "cannot open its backing file.*gone/gp.vhd"
    # A stale file where W2ru points, the parent where the name points:
    # the one with the parent's UUID is taken.
    mkdir -p mv/old
    vhd create mv/pp.vhd $((4 * 1024 * 1024))
    vhd io mv/pp.vhd <<<"write -P 0x14 0 8192"
    vhd create mv/old/pp.vhd $((4 * 1024 * 1024))
    vhd create mv/cc.vhd - --type diff --parent mv/old/pp.vhd --name pp.vhd
    vhd set mv/cc.vhd dyn.parent_uuid "$(vhd info mv/pp.vhd | python3 -c 'import json,sys; print(json.load(sys.stdin)["footer"]["uuid"])')"
    vhd set mv/cc.vhd dyn.parent_ts 0
    case_begin "a stale file at the relative locator, the parent by name: the parent is taken"
    expect_exit 0 "$SCUSE" io -r -c "read -P 0x14 0 8192" mv/cc.vhd || true
    case_end
    qimg create -q -f qcow2 q.vhd 4M
    cp c.vhd n1.vhd
    vhd set n1.vhd loc.0.code 0x0
    vhd set n1.vhd loc.1.code 0x0
    vhd set n1.vhd dyn.parent_name "$(python3 -c 'print("q.vhd".encode("utf-16-be").hex().ljust(1024, "0"))')"
    bad chain "a parent that is not a VHD" n1.vhd "q.vhd.*not a VHD"

    # Not damage: a dynamic disk without its footer at the end (a crash
    # during allocation) reads through the copy at 0.
    cp good.vhd nf.vhd
    truncate -s $((fsz - 512)) nf.vhd
    case_begin "dynamic disk missing the footer at the end: read through the copy"
    qemu-img convert -f vpc -O raw good.vhd want-nf.raw
    if expect_exit 0 "$SCUSE" convert -O raw nf.vhd got-nf.raw; then
        cmp -s want-nf.raw got-nf.raw || fail "reads differ"
    fi
    case_end
    cd "$T"
}

lane dynamic sec_dynamic
lane fixed sec_fixed
lane samples sec_samples
lane bitmaps sec_bitmaps
lane chains sec_chains
lane malformed sec_malformed
join_lanes
finish
