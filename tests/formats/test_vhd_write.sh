#!/usr/bin/env bash
# VHD (vpc) write path, create, convert -O vpc and check. Judges: QEMU for
# fixed and dynamic disks (qemu-img compare with a raw shadow that mirrors
# every command, qemu-img info, qemu-img create's bytes), libvhdi opening
# what scuse wrote, and lib/vhd.py (the specification's reader) for
# differencing disks, which QEMU reads without their parent.
#
# Lanes:
#   random   random write / write -z [-u] / discard / flush runs (lib/wsim.py)
#            on fixed, dynamic and differencing disks
#   create   create -f vpc against qemu-img create; differencing children
#   convert  convert -O vpc (Azure: fixed, force_size, whole MiB)
#   check    check [-r leaks|all] on damaged images
#   crash    kill -9 of long `scuse io` runs
# (concurrent writers: test_vhd_mt.sh)
# Knobs: SCUSE_STRESS_OPS (random ops over the cases, default 1500),
# SCUSE_STRESS_SEED, SCUSE_CRASH_TRIALS (default 20).
. "$(dirname "$0")/lib/common.sh"
. "$LIB_DIR/crash.sh"
. "$LIB_DIR/wcommon.sh"
need vhdiinfo stdbuf
V=$LIB_DIR/vhd.py
vhd() { python3 "$V" "$@"; }

STRESS_OPS=${SCUSE_STRESS_OPS:-1500}
STRESS_SEED=${SCUSE_STRESS_SEED:-1}
CRASH_TRIALS=${SCUSE_CRASH_TRIALS:-20}

vsize() { qemu-img info -f vpc --output=json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])'; }

# spec_same IMG SHADOW: the spec reader's export of IMG equals SHADOW
# (bytes SHADOW.zok marks may also read 0).
spec_same() {
    local out
    vhd export "$1" "$W/.spec.raw"
    out=$(wsim verify "$W/.spec.raw" "$2") || fail "$1 (read by the spec reader) differs from its shadow: $out"
    rm -f "$W/.spec.raw"
}

# vcheck IMG [WANT...]: scuse check exits with one of WANT (default 0).
vcheck() {
    local img=$1
    shift
    local want=("${@:-0}") w
    run "$SCUSE" check "$img"
    VRC=$RC
    for w in "${want[@]}"; do [ "$RC" -eq "$w" ] && return 0; done
    fail "scuse check $img exited $RC (want ${want[*]}): $(cat "$W/.err" "$W/.out" | grep -v '^$' | head -n 5 | tr '\n' '|')"
}

# libvhdi_opens IMG: libvhdi's vhdiinfo opens what scuse wrote.
libvhdi_opens() {
    local out
    out=$(vhdiinfo "$1" 2>&1) || fail "vhdiinfo cannot open $1: $(echo "$out" | tail -n 2 | tr '\n' ' ')"
}

# ---------------------------------------------------------------------------
# 1. random runs. KIND: dynamic (qemu-img, CHS size), dynamic-fs (qemu-img,
#    force_size), dynamic-bs (scuse create, 512 KiB blocks), fixed
#    (qemu-img), child (scuse create -b over a dynamic parent written by
#    qemu-io), child2 (a child over a child over a dynamic disk), partial
#    (a child written by lib/vhd.py, sector by sector, first).
rcase() { # IDX OPS KIND
    local idx=$1 ops=$2 kind=$3
    local seed=$((STRESS_SEED * 1000 + idx)) d=$T/rnd$idx size=$((6 * 1024 * 1024 + 512))
    mkdir -p "$d"
    local img=$d/img.vhd shadow=$d/shadow.raw mode=strict cs=$((2 << 20)) sums=
    case_begin "random: $kind, $ops ops, seed $seed"
    case $kind in
    dynamic) qimg create -q -f vpc "$img" $size ;;
    dynamic-fs) qimg create -q -f vpc -o force_size=on "$img" $size ;;
    dynamic-bs) "$SCUSE" create -q -f vpc -o block_size=512k,force_size=on "$img" $size; cs=$((512 << 10)) ;;
    fixed) qimg create -q -f vpc -o subformat=fixed "$img" $size ;;
    child | child2 | partial)
        qimg create -q -f vpc -o force_size=on "$d/base.vhd" $size
        fill -f vpc "$d/base.vhd" $size $((seed + 1)) 12 --maxlen $((size / 4))
        local parent=base.vhd
        if [ $kind = child2 ]; then
            "$SCUSE" create -q -f vpc -b base.vhd -F vpc "$d/mid.vhd"
            python3 "$LIB_DIR/iogen.py" $size $((seed + 2)) 12 --align 512 --maxlen $((size / 6)) | vhd io "$d/mid.vhd"
            parent=mid.vhd
        fi
        if [ $kind = partial ]; then
            vhd create "$img" - --type diff --parent "$d/base.vhd"
            python3 "$LIB_DIR/iogen.py" $size $((seed + 3)) 30 --align 512 --maxlen 100000 | vhd io "$img"
        else
            (cd "$d" && "$SCUSE" create -q -f vpc -b $parent -F vpc img.vhd)
        fi
        sums=$(sum_of "$d"/base.vhd "$d"/mid.vhd 2>/dev/null || sum_of "$d/base.vhd")
        mode=advisory
        ;;
    esac
    local vs
    vs=$(vsize "$img")
    case $kind in
    dynamic* | fixed) fill -f vpc "$img" "$vs" $((seed + 4)) 10 --maxlen $((vs / 6)); qemu-img convert -f vpc -O raw "$img" "$shadow" ;;
    *) vhd export "$img" "$shadow" ;;
    esac
    wsim gen "$vs" $seed "$ops" --cluster $cs --batch 50 --flush 0.03 --maxlen $((vs / 3)) \
        --zero 0.12 --zero-u 0.12 --discard 0.12 --disc-any >"$d/cmds"
    wsim apply "$shadow" "$d/cmds" --cluster $cs --discard $mode
    if io_batches "$img" "$d/cmds"; then
        case $kind in
        dynamic* | fixed)
            same_content "$img" "$shadow" vpc
            sample_reads "$img" "$shadow" $seed 16 -f vpc
            libvhdi_opens "$img"
            ;;
        *) spec_same "$img" "$shadow" ;;
        esac
    fi
    vcheck "$img" 0
    if [ -n "$sums" ] && [ "$(sum_of "$d"/base.vhd "$d"/mid.vhd 2>/dev/null || sum_of "$d/base.vhd")" != "$sums" ]; then
        fail "a parent changed while scuse wrote the child"
    fi
    case_end
    rm -rf "$d"
}
RANDOM_KINDS=(dynamic dynamic-fs dynamic-bs fixed child child2 partial)
sec_random() { # LANE NLANES
    local per=$((STRESS_OPS / ${#RANDOM_KINDS[@]})) i
    [ $per -ge 20 ] || per=20
    for i in "${!RANDOM_KINDS[@]}"; do
        [ $((i % $2)) -eq "$1" ] || continue
        rcase "$i" $per "${RANDOM_KINDS[$i]}"
    done
}

# ---------------------------------------------------------------------------
# 2. create: the bytes qemu-img create writes (but for the UUID, the time
#    stamp and the checksums that cover them), for both subformats, both
#    sizings and sizes from 0 to 2040 GiB; then differencing children.
same_but_identity() { # A B: equal files but for footer time stamp/checksum/UUID
    python3 - "$1" "$2" <<'PY'
import sys
a, b = (open(p, "rb").read() for p in sys.argv[1:3])
if len(a) != len(b):
    print(f"sizes differ: {len(a)} vs {len(b)}"); sys.exit(1)
mask = set()
for base in {0, len(a) - 512}:
    mask |= set(range(base + 24, base + 28)) | set(range(base + 64, base + 84))
for i in range(0, len(a), 1 << 16):
    if a[i:i + 65536] != b[i:i + 65536]:
        d = [j for j in range(i, min(i + 65536, len(a))) if a[j] != b[j] and j not in mask]
        if d:
            print(f"first difference at byte {d[0]} ({len(d)} in this 64 KiB)"); sys.exit(1)
PY
}
sec_create() {
    cd "$W"
    local sub fs size
    for sub in dynamic fixed; do
        for fs in off on; do
            for size in 0 1M 1000000 64M $((100 * 1024 * 1024 + 512)) 3G; do
                # (a 3 GiB fixed disk is 3 GiB of file to compare: dynamic only)
                [ $sub = fixed ] && [ $size = 3G ] && continue
                case_begin "create -f vpc -o subformat=$sub,force_size=$fs $size == qemu-img create"
                rm -f s.vhd q.vhd
                qemu-img create -q -f vpc -o subformat=$sub,force_size=$fs q.vhd $size
                if expect_exit 0 "$SCUSE" create -q -f vpc -o subformat=$sub,force_size=$fs s.vhd $size; then
                    local msg
                    msg=$(same_but_identity q.vhd s.vhd) || fail "differs from qemu-img's: $msg"
                    # (neither QEMU nor libvhdi opens an empty VHD, not even qemu-img's)
                    if [ "$size" != 0 ]; then
                        [ "$(vsize s.vhd)" = "$(vsize q.vhd)" ] || fail "virtual size $(vsize s.vhd), qemu-img's $(vsize q.vhd)"
                        vhdiinfo s.vhd >/dev/null 2>&1 || fail "vhdiinfo cannot open it"
                    fi
                    expect_exit 0 "$SCUSE" info s.vhd || true
                fi
                case_end
            done
        done
    done
    case_begin "create: dynamic 2040 GiB, the VHD limit; 2041 GiB refused"
    rm -f s.vhd
    expect_exit 0 "$SCUSE" create -q -f vpc -o force_size=on s.vhd 2040G || true
    [ "$(vsize s.vhd)" = $((2040 << 30)) ] || fail "virtual size $(vsize s.vhd)"
    if expect_exit 1 "$SCUSE" create -q -f vpc -o force_size=on s2.vhd 2041G; then
        stderr_mentions "2040 GiB" || true
    fi
    case_end
    case_begin "create: bad options are named"
    if expect_exit 1 "$SCUSE" create -q -f vpc -o subformat=sparse b.vhd 1M; then
        stderr_one_line || true; stderr_mentions "subformat must be dynamic or fixed" || true
    fi
    if expect_exit 1 "$SCUSE" create -q -f vpc -o block_size=3000 b.vhd 1M; then
        stderr_mentions "block_size must be a power of two" || true
    fi
    if expect_exit 1 "$SCUSE" create -q -f vpc -o force_size=maybe b.vhd 1M; then
        stderr_mentions "force_size.*'on' or 'off'" || true
    fi
    if expect_exit 1 "$SCUSE" create -q -f vpc -o nosuch=1 b.vhd 1M; then
        stderr_mentions "unknown option 'nosuch'.*subformat, force_size, block_size" || true
    fi
    if expect_exit 0 "$SCUSE" create -f vpc -o help; then
        grep -q '^  subformat=' "$W/.out" && grep -q '^  backing_file=' "$W/.out" ||
            fail "create -f vpc -o help: $(head -n 4 "$W/.out" | tr '\n' '|')"
    fi
    case_end
    case_begin "create: block_size (QEMU reads any power of two)"
    local bs
    for bs in 512 64k 512k 16M; do
        rm -f s.vhd
        "$SCUSE" create -q -f vpc -o block_size=$bs s.vhd 5M
        "$SCUSE" io -c "write -P 0x5c 1000000 2000000" -c "write -P 0x5d 4000000 512" s.vhd >/dev/null
        qemu-io -f vpc -r -c "read -P 0x5c 1000000 2000000" -c "read -P 0x5d 4000000 512" -c "read -P 0 0 999936" s.vhd |
            grep -q 'Pattern verification failed' && fail "block_size=$bs: QEMU reads something else"
        vcheck s.vhd 0
    done
    case_end

    # Differencing children: -b PARENT -F vpc, the size from the parent.
    mkdir -p base sub/dir
    qimg create -q -f vpc base/b.vhd 20M
    fill -f vpc base/b.vhd "$(vsize base/b.vhd)" 77 20 --maxlen 3000000
    qimg create -q -f vpc -o force_size=on base/bf.vhd 20M
    fill -f vpc base/bf.vhd $((20 << 20)) 78 20 --maxlen 3000000
    local p
    for p in b bf; do
        case_begin "create -b ../../base/$p.vhd -F vpc: a child that reads as its parent"
        rm -f sub/dir/c.vhd
        if (cd sub/dir && expect_exit 0 "$SCUSE" create -q -f vpc -b ../../base/$p.vhd -F vpc c.vhd); then
            [ "$(vsize sub/dir/c.vhd)" = "$(vsize base/$p.vhd)" ] || fail "size $(vsize sub/dir/c.vhd), parent $(vsize base/$p.vhd)"
            qemu-img convert -f vpc -O raw base/$p.vhd want.raw
            expect_exit 0 "$SCUSE" convert -O raw sub/dir/c.vhd got.raw && { cmp -s want.raw got.raw || fail "the child does not read as its parent"; }
            vhd export sub/dir/c.vhd spec.raw
            cmp -s want.raw spec.raw || fail "the spec reader does not read the child as its parent"
            vhd libvhdi-export sub/dir/c.vhd lv.raw
            cmp -s want.raw lv.raw || fail "libvhdi does not read the child as its parent (locators?)"
            vhdiinfo sub/dir/c.vhd >vi.txt 2>&1 || fail "vhdiinfo cannot open the child"
            grep -qi 'differential\|differencing' vi.txt || fail "vhdiinfo does not see a differencing disk: $(head -n 12 vi.txt | tr '\n' '|')"
            grep -q "$p.vhd" vi.txt || fail "vhdiinfo does not see the parent's name"
            if expect_exit 0 "$SCUSE" info --output=json sub/dir/c.vhd; then
                grep -q '"backing-filename": "../../base/'$p'.vhd"' "$W/.out" || fail "info: $(grep backing "$W/.out" | tr '\n' ' ')"
            fi
        fi
        case_end
    done
    case_begin "create -b ABSOLUTE: W2ru relative, W2ku absolute"
    rm -f sub/c2.vhd
    expect_exit 0 "$SCUSE" create -q -f vpc -b "$W/base/b.vhd" -F vpc sub/c2.vhd || true
    vhd info sub/c2.vhd >i.json
    python3 - i.json "$W" <<'PY' || fail "locators: see above"
import json, sys
d = json.load(open(sys.argv[1])); w = sys.argv[2]
f = open(sys.argv[1].replace("i.json", "sub/c2.vhd"), "rb")
texts = []
for code, space, length, _, off in d["locators"][:2]:
    f.seek(off); texts.append((code, f.read(length).decode("utf-16-le")))
want = [(0x57327275, "..\\base\\b.vhd"), (0x57326b75, (w + "/base/b.vhd").replace("/", "\\"))]
if texts != want or d["dyn"]["parent_name"] != "b.vhd":
    print(texts, d["dyn"]["parent_name"], "want", want); sys.exit(1)
PY
    mkdir -p moved && cp base/b.vhd moved/ && cp sub/c2.vhd moved/
    expect_exit 0 "$SCUSE" convert -O raw moved/c2.vhd got.raw || true
    qemu-img convert -f vpc -O raw base/b.vhd want.raw
    cmp -s want.raw got.raw || fail "a child moved with its parent (found by name) reads wrong"
    case_end
    case_begin "create -b: refused parents and sizes"
    qimg create -q -f qcow2 q.qcow2 20M
    if expect_exit 1 "$SCUSE" create -q -f vpc -b q.qcow2 -F qcow2 x.vhd; then
        stderr_mentions "parent is a VHD \(-F vpc\), not 'qcow2'" || true
    fi
    if expect_exit 1 "$SCUSE" create -q -f vpc -b base/b.vhd -F vpc x.vhd 10M; then
        stderr_mentions "has its parent's size" || true
    fi
    if expect_exit 1 "$SCUSE" create -q -f vpc -o subformat=fixed -b base/b.vhd -F vpc x.vhd; then
        stderr_mentions "fixed VHD cannot have a parent" || true
    fi
    expect_exit 0 "$SCUSE" create -q -f vpc -b base/b.vhd -F vpc x.vhd 20M || true
    case_end
    rm -rf ./*.vhd ./*.raw base sub moved
}

# ---------------------------------------------------------------------------
# 3. convert -O vpc.
sec_convert() {
    cd "$W"
    head -c $((37 << 20)) /dev/urandom >src.raw
    truncate -s 100M src.raw
    printf 'tail' | dd of=src.raw bs=1 seek=$((100 * 1024 * 1024 - 4)) conv=notrunc status=none
    qimg convert -f raw -O qcow2 src.raw src.qcow2
    local o
    for o in "" "-o subformat=dynamic" "-o subformat=fixed" "-o subformat=fixed,force_size=on" \
             "-o force_size=on" "-o block_size=1M"; do
        case_begin "convert -O vpc $o"
        rm -f out.vhd
        # shellcheck disable=SC2086
        if expect_exit 0 "$SCUSE" convert -O vpc $o src.qcow2 out.vhd; then
            run qemu-img compare -f qcow2 -F vpc src.qcow2 out.vhd
            [ "$RC" -eq 0 ] || fail "qemu-img compare: $(head -n 2 "$W/.out")"
            vcheck out.vhd 0
            libvhdi_opens out.vhd
        fi
        case_end
    done
    case_begin "convert -O vpc -o subformat=fixed,force_size=on (Azure: whole MiB, exact size)"
    rm -f out.vhd q.vhd
    expect_exit 0 "$SCUSE" convert -f raw -O vpc -o subformat=fixed,force_size=on src.raw out.vhd || true
    qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on src.raw q.vhd
    [ "$(stat -c %s out.vhd)" = $((100 * 1024 * 1024 + 512)) ] || fail "file size $(stat -c %s out.vhd)"
    [ "$(vsize out.vhd)" = $((100 * 1024 * 1024)) ] || fail "virtual size $(vsize out.vhd)"
    local msg
    msg=$(same_but_identity q.vhd out.vhd) || fail "differs from qemu-img convert's: $msg"
    cmp -s src.raw <(head -c $((100 << 20)) out.vhd) || fail "the data is not the source"
    case_end
    rm -f ./*.vhd ./*.raw ./*.qcow2
}

# ---------------------------------------------------------------------------
# 4. check: damage, repair, double check; the data QEMU reads after.
sec_check() {
    cd "$W"
    qimg create -q -f vpc -o force_size=on g.vhd 16M
    fill -f vpc g.vhd $((16 << 20)) 31 20 --maxlen 3000000
    qemu-img convert -f vpc -O raw g.vhd g.raw
    case_begin "check: a clean dynamic and a clean fixed disk"
    vcheck g.vhd 0
    qimg create -q -f vpc -o subformat=fixed f.vhd 4M
    vcheck f.vhd 0
    if expect_exit 0 "$SCUSE" check --output=json g.vhd; then
        grep -q '"check-errors": 0' "$W/.out" || grep -q '"format": "vpc"' "$W/.out" || fail "json: $(head -c 300 "$W/.out")"
    fi
    case_end
    local fsz nb
    fsz=$(stat -c %s g.vhd)
    nb=$(vhd info g.vhd | python3 -c 'import json,sys; b=json.load(sys.stdin)["bat"]; print([i for i,x in enumerate(b) if x!=0xffffffff][-1])')
    local first
    first=$(vhd info g.vhd | python3 -c 'import json,sys; b=json.load(sys.stdin)["bat"]; print([x for x in b if x!=0xffffffff][0])')

    case_begin "check: a BAT entry past the end of the file"
    cp g.vhd c1.vhd
    vhd set c1.vhd bat.$nb $(((fsz + (8 << 20)) / 512))
    vcheck c1.vhd 2
    grep -q "BAT entry $nb puts block $nb" "$W/.err" || fail "the entry is not named: $(head -n 2 "$W/.err")"
    if expect_exit 2 "$SCUSE" io -c "write -P 1 0 512" c1.vhd; then
        stderr_mentions "check -r all" || true
    fi
    expect_exit 0 "$SCUSE" check -r all c1.vhd || true
    vcheck c1.vhd 0
    qemu-io -f vpc -r -c "read -P 0 $((nb * (2 << 20))) 2M" c1.vhd | grep -q 'verification failed' && fail "the freed block does not read as zeros"
    case_end

    case_begin "check: two BAT entries on one block, a block over the BAT"
    cp g.vhd c2.vhd
    vhd set c2.vhd bat.7 "$first"
    vhd set c2.vhd bat.6 2
    vcheck c2.vhd 2
    grep -q "overlaps" "$W/.err" || fail "no overlap named: $(head -n 3 "$W/.err")"
    expect_exit 0 "$SCUSE" check -r all c2.vhd || true
    vcheck c2.vhd 0
    expect_exit 0 "$SCUSE" io -c "write -P 0x44 12M 1M" c2.vhd || true
    qemu-io -f vpc -r -c "read -P 0x44 12M 1M" c2.vhd | grep -q 'verification failed' && fail "not written after the repair"
    case_end

    case_begin "check: stale data under clear bitmap bits of a dynamic disk"
    cp g.vhd c3.vhd
    qio -f vpc -c "write -P 0x77 0 4096" c3.vhd
    local host
    host=$(vhd info c3.vhd | python3 -c 'import json,sys; b=json.load(sys.stdin)["bat"]; print(b[0]*512)')
    vhd set c3.vhd bytes.$host 0f   # sectors 0-3 of block 0: bits clear
    vcheck c3.vhd 2
    expect_exit 0 "$SCUSE" check -r all c3.vhd || true
    vcheck c3.vhd 0
    qemu-io -f vpc -r -c "read -P 0 0 2048" c3.vhd | grep -q 'verification failed' && fail "QEMU still reads the stale sectors"
    case_end

    case_begin "check: the footer missing at the end; junk after it"
    cp g.vhd c4.vhd
    truncate -s $((fsz - 512)) c4.vhd
    vcheck c4.vhd 2
    expect_exit 0 "$SCUSE" check -r all c4.vhd || true
    vcheck c4.vhd 0
    cmp -s c4.vhd g.vhd || fail "the repaired file is not the original"
    cp g.vhd c5.vhd
    head -c 100000 /dev/urandom >>c5.vhd
    qimg info c5.vhd >/dev/null
    vcheck c5.vhd 2
    cp g.vhd c6.vhd
    truncate -s $((fsz + 4096)) c6.vhd
    tail -c 512 g.vhd | dd of=c6.vhd bs=512 seek=$(((fsz + 4096) / 512 - 1)) conv=notrunc status=none
    vcheck c6.vhd 3
    expect_exit 0 "$SCUSE" check -r leaks c6.vhd || true
    vcheck c6.vhd 0
    cmp -s c6.vhd g.vhd || fail "-r leaks did not give back the original"
    case_end
    rm -f ./*.vhd ./*.raw
}

# ---------------------------------------------------------------------------
# 5. zero writes into a child: over the parent's data they allocate (the
#    parent must not show through); over zeros they need nothing.
sec_zero() {
    cd "$W"
    vhd create p.vhd $((8 << 20))
    vhd io p.vhd <<<"write -P 0x61 0 4194304"
    "$SCUSE" create -q -f vpc -b p.vhd -F vpc c.vhd
    local before
    before=$(stat -c %s c.vhd)
    case_begin "write -z in a child over zeros: nothing allocated"
    expect_exit 0 "$SCUSE" io -c "write -z 5M 2M" -c "write -z -u 6M 1M" c.vhd || true
    [ "$(stat -c %s c.vhd)" = "$before" ] || fail "the child grew from $before to $(stat -c %s c.vhd)"
    case_end
    case_begin "write -z [-u] and discard in a child over data"
    expect_exit 0 "$SCUSE" io -c "write -z 1M 64k" -c "write -z -u 3M 512" -c "discard 2M 1M" c.vhd || true
    expect_exit 0 "$SCUSE" io -r -c "read -P 0 1M 64k" -c "read -P 0x61 1114112 983040" \
        -c "read -P 0x61 2M 1M" -c "read -P 0 3M 512" -c "read -P 0x61 3146240 1048064" c.vhd || true
    vhd export c.vhd spec.raw
    python3 - spec.raw <<'PY' || fail "the spec reader disagrees"
import sys
b = open(sys.argv[1], "rb").read()
M = 1 << 20
ok = b[M:M + 65536] == bytes(65536) and b[3 * M:3 * M + 512] == bytes(512) \
    and b[2 * M:3 * M] == b"\x61" * M and b[0:M] == b"\x61" * M
sys.exit(0 if ok else 1)
PY
    vcheck c.vhd 0
    case_end
    rm -f ./*.vhd ./*.raw
}

# ---------------------------------------------------------------------------
# 6. crash safety: kill -9 `scuse io` mid-run (150 random commands, a flush
#    every ~12): qemu-img and libvhdi still open the image, scuse check
#    finds no corruption (leaks allowed; -r leaks makes it clean), and every
#    byte is what the last completed flush left or what a later command
#    wrote (wsim.py crashcheck). Trial 0 is not killed.
CRASH_VARIANTS=(dynamic fixed child dynamic-fs)
crash_trial() { # TRIAL VARIANT
    local t=$1 kind=${CRASH_VARIANTS[$2]}
    local size=$((4 * 1024 * 1024)) seed=$((STRESS_SEED * 100 + t)) img=crash.vhd mode=strict
    rm -f crash.vhd crashb.vhd
    case $kind in
    dynamic) qimg create -q -f vpc "$img" $size ;;
    dynamic-fs) qimg create -q -f vpc -o force_size=on "$img" $size ;;
    fixed) qimg create -q -f vpc -o subformat=fixed "$img" $size ;;
    child)
        qimg create -q -f vpc -o force_size=on crashb.vhd $size
        fill -f vpc crashb.vhd $size $((seed + 7)) 10 --maxlen $((size / 4))
        "$SCUSE" create -q -f vpc -b crashb.vhd -F vpc "$img"
        mode=advisory
        ;;
    esac
    size=$(vsize "$img")
    [ $kind = child ] || fill -f vpc "$img" $size $((seed + 3)) 12 --maxlen $((size / 6))
    vhd export "$img" before.raw
    wsim gen $size $seed 150 --cluster $((2 << 20)) --batch 250 --flush 0.08 --maxlen $((size / 8)) \
        --zero 0.1 --zero-u 0.1 --discard 0.1 --disc-any >cmds
    crash_begin "$t" "$kind" "$seed" cmds
    crash_io "$img"
    local rc=$CRASH_RC
    qemu-img info -f vpc "$img" >/dev/null 2>&1 || fail "qemu-img cannot open the image after the kill"
    libvhdi_opens "$img"
    vcheck "$img" 0 3
    if [ "$VRC" -eq 3 ]; then
        echo "  (leaks after the kill: repairing with scuse check -r leaks)"
        expect_exit 0 "$SCUSE" check -r leaks "$img" || true
        vcheck "$img" 0
    fi
    local msg
    if [ $rc -eq 0 ]; then
        cp before.raw shadow.raw
        wsim apply shadow.raw cmds --cluster $((2 << 20)) --discard $mode
        spec_same "$img" shadow.raw
        [ $kind = child ] || same_content "$img" shadow.raw vpc
        rm -f shadow.raw*
    else
        vhd export "$img" after.raw
        msg=$(wsim crashcheck after.raw before.raw cmds out.txt --cluster $((2 << 20)) --discard $mode) ||
            fail "data after the kill (spec reader): $msg"
        echo "  $msg" | head -n 1
        if [ $kind != child ]; then
            qemu-img convert -f vpc -O raw "$img" after.raw
            msg=$(wsim crashcheck after.raw before.raw cmds out.txt --cluster $((2 << 20)) --discard $mode) ||
                fail "data after the kill (qemu-img): $msg"
        fi
    fi
    case_end
    rm -f after.raw
}
sec_crash() {
    cd "$W"
    crash_run $((CRASH_TRIALS + 1))
    rm -f ./*.vhd ./*.raw
}

add_lane() {
    if [ -z "${SCUSE_WRITE_SECTIONS:-}" ] || [[ " $SCUSE_WRITE_SECTIONS " == *" $1 "* ]]; then
        lane "$@"
    fi
}
add_lane crash sec_crash
add_lane random0 sec_random 0 2
add_lane random1 sec_random 1 2
add_lane create sec_create
add_lane convert sec_convert
add_lane check sec_check
add_lane zero sec_zero
join_lanes
finish
