#!/usr/bin/env bash
# VMDK write path, judged only with QEMU's tools (and the known content of
# hand-made images):
#   content   `qemu-img compare IMG shadow.raw` (lib/wsim.py applies the
#             same random commands to a raw shadow), qemu-io read -P samples
#   metadata  `qemu-img check` (0: no errors)
# Sections (concurrent lanes):
#   random    random writes / write -z [-u] / discard on every writable
#             subformat qemu-img makes, zeroed grains on and off, standalone
#             and over a VMDK parent full of data (the parent must not change)
#   gd0       writes where the grain directory has no grain table (scuse
#             allocates one, and its redundant copy; QEMU cannot)
#   extents   a descriptor mixing FLAT at offsets, SPARSE, RDONLY, ZERO,
#             NOACCESS extents and a stream: writes land where they belong,
#             the rest are refused with a message naming the extent
#   cid       the first write gives the image a new CID: a child made before
#             is then refused (by scuse and by QEMU)
#   locks     extent files are locked as QEMU locks them, both directions
#   crash     kill -9 of a long `scuse io` run with periodic flushes
# Discards: whole grains read 0 where the image has zeroed grains (strict);
# elsewhere discard is advisory (each byte 0 or its old value, never the
# parent's).
# Knobs: SCUSE_STRESS_OPS (total random ops, default 2000), SCUSE_STRESS_SEED,
#        SCUSE_CRASH_TRIALS (20)
. "$(dirname "$0")/lib/common.sh"
. "$LIB_DIR/crash.sh"
. "$LIB_DIR/wcommon.sh"
GEN=$LIB_DIR/vmdkgen.py
STRESS_OPS=${SCUSE_STRESS_OPS:-2000}
STRESS_SEED=${SCUSE_STRESS_SEED:-1}
CRASH_TRIALS=${SCUSE_CRASH_TRIALS:-20}
GRAIN=65536

# rgd_same IMG: the redundant grain directory and tables equal the primary
# ones (in every sparse extent file of IMG).
rgd_same() {
    local f msg dir
    dir=$(dirname "$1")
    for f in "$1" "$dir"/*-s[0-9][0-9][0-9].vmdk; do
        [ -f "$f" ] || continue
        head -c 4 "$f" | grep -q KDMV || continue
        msg=$(python3 "$GEN" rgdcheck "$f" 2>&1) || fail "redundant tables differ: $msg"
    done
}

# ---------------------------------------------------------------------------
# rcase IDX OPS SUBFORMAT ZEROED LAYOUT
rcase() {
    local idx=$1 ops=$2 sub=$3 zg=$4 layout=$5
    local seed=$((STRESS_SEED * 1000 + idx)) size=$((6 * 1024 * 1024 + 1536))
    local d=$T/rnd$idx img shadow sums="" mode=advisory
    mkdir -p "$d"
    img=$d/img.vmdk
    shadow=$d/shadow.raw
    [ "$zg" = on ] && mode=strict
    case_begin "random: $sub zeroed_grain=$zg $layout, $ops ops, seed $seed"
    if [ "$layout" = chain ]; then
        qimg create -q -f vmdk "$d/base.vmdk" $size
        fill "$d/base.vmdk" $size $((seed + 1)) 12 --maxlen $((size / 4))
        qimg create -q -f vmdk -o subformat=$sub,zeroed_grain=$zg -b base.vmdk -F vmdk "$img" $size
        sums=$(sum_of "$d/base.vmdk")
    else
        qimg create -q -f vmdk -o subformat=$sub,zeroed_grain=$zg "$img" $size
    fi
    fill "$img" $size $((seed + 3)) 15 --maxlen $((size / 6)) --zero 0.1
    qemu-img convert -O raw "$img" "$shadow"
    wsim gen $size $seed "$ops" --cluster $GRAIN --batch 50 --flush 0.03 --maxlen $((size / 3)) \
        --zero 0.12 --zero-u 0.12 --discard 0.1 >"$d/cmds"
    wsim apply "$shadow" "$d/cmds" --cluster $GRAIN --discard $mode
    if io_batches "$img" "$d/cmds"; then
        same_content "$img" "$shadow" vmdk
        sample_reads "$img" "$shadow" $seed 16
    fi
    qcheck "$img" 0
    rgd_same "$img"
    if [ -n "$sums" ] && [ "$(sum_of "$d/base.vmdk")" != "$sums" ]; then
        fail "the parent changed while scuse wrote the child"
    fi
    case_end
    rm -rf "$d"
}

RANDOM_CASES=(
    "monolithicSparse off standalone"
    "monolithicSparse on standalone"
    "monolithicSparse off chain"
    "monolithicSparse on chain"
    "twoGbMaxExtentSparse on standalone"
    "twoGbMaxExtentSparse off chain"
    "monolithicFlat off standalone"
    "twoGbMaxExtentFlat off standalone"
    "twoGbMaxExtentSparse on chain"
)
sec_random() {
    local ops=$((STRESS_OPS / ${#RANDOM_CASES[@]})) i=0
    [ $ops -ge 20 ] || ops=20
    for c in "${RANDOM_CASES[@]}"; do
        # shellcheck disable=SC2086
        rcase $i $ops $c
        i=$((i + 1))
    done
}

# ---------------------------------------------------------------------------
sec_gd0() {
    local s
    for s in "3000000 61 8 16" "5000000 62 128 64 --no-rgd" "2000000 63 16 32 --zeroed"; do
        set -- $s
        local img=g$2.vmdk
        python3 "$GEN" sparse "$img" g$2.raw --size "$1" --seed "$2" --grain "$3" --gtes "$4" --gd-holes "${@:5}"
        local gbytes=$(($3 * 512)) per=$(($3 * 512 * $4)) size=$(stat -c %s g$2.raw)
        case_begin "writes where the grain directory is 0 (grain $3, $4 GTEs ${*:5})"
        # a write in every grain-table span: the holes get new tables
        wsim gen $size $2 60 --cluster $gbytes --batch 250 --maxlen $((per * 2)) --zero 0.1 --zero-u 0.1 >cmds
        for ((o = 0; o < size; o += per)); do
            echo "write -P 0x$(printf '%02x' $(((o / per) % 200 + 20))) $((o + gbytes / 2)) $((gbytes + 512))"
        done >>cmds
        cp g$2.raw shadow.raw
        local mode=advisory
        [ "${5:-}" = --zeroed ] && mode=strict
        wsim apply shadow.raw cmds --cluster $gbytes --discard $mode
        if io_batches "$img" cmds; then
            same_content "$img" shadow.raw vmdk
        fi
        qcheck "$img" 0
        rgd_same "$img"
        # scuse reads back its own tables as QEMU does
        if expect_exit 0 "$SCUSE" convert -O raw "$img" got.raw; then
            cmp -s got.raw shadow.raw || fail "scuse reads $img differently from its shadow"
        fi
        case_end
    done
    rm -f ./*.raw cmds
}

# ---------------------------------------------------------------------------
sec_extents() {
    python3 "$GEN" rawfile f1.bin --size $((3 * 1024 * 1024)) --seed 71
    python3 "$GEN" rawfile f2.bin --size $((1024 * 1024)) --seed 72
    python3 "$GEN" extent ext.vmdk ext.raw --size $((1024 * 1024)) --seed 73
    python3 "$GEN" stream st.vmdk st.raw --size $((1024 * 1024)) --seed 74
    cat >mix.vmdk <<'D'
# Disk DescriptorFile
version=1
CID=00c0ffee
parentCID=ffffffff
createType="monolithicFlat"
RW 2048 FLAT "f1.bin" 2048
RDONLY 1000 FLAT "f2.bin" 5
RW 300 ZERO
RW 2048 SPARSE "ext.vmdk"
NOACCESS 100 FLAT "f2.bin" 1100
RW 2048 SPARSE "st.vmdk"
D
    local f2sum
    f2sum=$(sum_of f2.bin)
    case_begin "mixed extents: FLAT at an offset and SPARSE written, the others refused"
    if expect_exit 0 "$SCUSE" io -c "write -P 0x61 4096 8192" -c "write -P 0x62 $((2048 * 512 + 1000 * 512 + 300 * 512 + 70000)) 5000" \
        -c flush mix.vmdk; then :; fi
    # the flat file changed at 2048 sectors + 4096, nowhere else
    python3 - f1.bin <<'PY' || fail "f1.bin was not written where the FLAT extent's offset says"
import sys
b = open(sys.argv[1], "rb").read()
at = 2048 * 512 + 4096
assert b[at:at + 8192] == b"\x61" * 8192
assert b[at - 1] != 0x61 or b[at - 512:at] != b"\x61" * 512
PY
    # QEMU opens an extent without a descriptor through one that names it
    printf '# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="twoGbMaxExtentSparse"\nRW 2048 SPARSE "ext.vmdk"\n' >e.vmdk
    qemu-io -r -c "read -P 0x62 $((70000)) 5000" e.vmdk >q.out 2>&1 && ! grep -qiE 'fail|error' q.out ||
        fail "the write to the SPARSE extent is not in ext.vmdk where QEMU reads it: $(head -n 2 q.out)"
    qemu-img check e.vmdk >/dev/null || fail "qemu-img check of the SPARSE extent fails after the write"
    local rd=$((2048 * 512)) z=$((3048 * 512)) na=$((5396 * 512)) so=$((5496 * 512))
    for spec in "$rd RDONLY" "$z ZERO" "$na NOACCESS" "$so compressed"; do
        if expect_exit 2 "$SCUSE" io -c "write -P 0x63 ${spec%% *} 512" mix.vmdk; then
            stderr_mentions "extent [0-9]+ .*${spec#* }" || true
        fi
    done
    [ "$(sum_of f2.bin)" = "$f2sum" ] || fail "the RDONLY/NOACCESS extents' file changed"
    # a refused write changes nothing, not even the CID
    local dsum
    dsum=$(sum_of mix.vmdk)
    expect_exit 2 "$SCUSE" io -c "write -P 0x64 $((rd - 512)) 1024" mix.vmdk || true
    [ "$(sum_of mix.vmdk)" = "$dsum" ] || fail "a refused write changed the descriptor"
    case_end
    rm -f ./*.bin ./*.raw q.out
}

# ---------------------------------------------------------------------------
sec_cid() {
    qimg create -q -f vmdk par.vmdk 2M
    qimg create -q -f vmdk -b par.vmdk -F vmdk kid.vmdk 2M
    local before after
    before=$(strings par.vmdk | sed -n 's/^CID=//p' | head -n 1)
    before=$(printf '%08x' "0x$before") # QEMU may leave out leading zeros
    case_begin "the first write gives a new CID; the child made before is refused"
    expect_exit 0 "$SCUSE" io -c "read 0 512" par.vmdk || true
    after=$(strings par.vmdk | sed -n 's/^CID=//p' | head -n 1)
    after=$(printf '%08x' "0x$after") # still QEMU's text when nothing changed
    [ "$before" = "$after" ] || fail "a read-only session changed the CID ($before -> $after)"
    expect_exit 0 "$SCUSE" io -c "write -P 0x11 0 512" -c "write -P 0x12 4096 512" par.vmdk || true
    after=$(strings par.vmdk | sed -n 's/^CID=//p' | head -n 1)
    [ "$before" != "$after" ] || fail "the CID did not change on the first write"
    qemu-img check par.vmdk >/dev/null || fail "qemu-img check fails after the CID change"
    qemu-io -r -c "read -P 0x11 0 512" par.vmdk | grep -q "read 512" || fail "QEMU does not read the parent after the CID change"
    if expect_exit 2 "$SCUSE" map kid.vmdk; then
        stderr_names "parentCID $before" || true
        stderr_names "CID $after" || true
    fi
    if qemu-img convert -O raw kid.vmdk kid.raw 2>/dev/null; then
        fail "qemu-img reads the stale child: the CID change is not what QEMU checks"
    fi
    case_end
}

# ---------------------------------------------------------------------------
# locks: the extent files of a split disk are locked as the descriptor is,
# with the bytes qemu-io takes (/proc/locks), in both directions
sec_locks() {
    qimg create -q -f vmdk -o subformat=twoGbMaxExtentSparse lk.vmdk 3G
    local qbytes sbytes i qpid spid qfd
    case_begin "locks on the extent files of a split disk, against qemu-io"
    rm -f q.fifo
    mkfifo q.fifo
    qemu-io lk.vmdk <q.fifo >q.log 2>&1 &
    qpid=$!
    exec {qfd}>q.fifo
    for ((i = 0; i < 1000; i++)); do grep -q 'qemu-io>' q.log && break; sleep 0.01; done
    qbytes=$(lock_bytes lk-s002.vmdk)
    [ -n "$qbytes" ] || fail "qemu-io holds no lock on lk-s002.vmdk (setup)"
    if expect_exit 2 "$SCUSE" io -c "write -P 1 $((2048 * 1024 * 1024 + 4096)) 512" lk.vmdk; then
        stderr_mentions "lock" || true
    fi
    exec {qfd}>&-
    { wait $qpid; } 2>/dev/null || true
    # scuse holds it (a long read run, stopped once it has started)
    local -a cmds=()
    for ((i = 0; i < 250; i++)); do cmds+=(-c "read $((2040 * 1024 * 1024)) 32M"); done
    : >s.out
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
        stdbuf -oL "$SCUSE" io "${cmds[@]}" lk.vmdk >s.out 2>s.err &
    spid=$!
    for ((i = 0; i < 1000; i++)); do grep -q '^read ' s.out && break; sleep 0.01; done
    kill -STOP $spid 2>/dev/null || true
    sbytes=$(lock_bytes lk-s002.vmdk)
    [ "$sbytes" = "$qbytes" ] || fail "lock bytes on an extent file: scuse '$sbytes', qemu-io '$qbytes'"
    qemu-io -c "read 0 512" lk.vmdk >q2.log 2>&1 && fail "qemu-io opened the image while scuse held it"
    grep -qi lock q2.log || fail "qemu-io failed otherwise than on a lock: $(head -n 1 q2.log)"
    kill -9 $spid 2>/dev/null || true
    { wait $spid; } 2>/dev/null || true
    case_end
    rm -f lk*.vmdk q.fifo
}

# ---------------------------------------------------------------------------
# crash: as test_qcow2_write.sh's (lib/crash.sh): kill -9 right after the
# k-th result line
CRASH_VARIANTS=(
    "monolithicSparse|subformat=monolithicSparse|"
    "monolithicSparse zeroed grains over a parent|zeroed_grain=on|backing"
    "twoGbMaxExtentSparse over a parent|subformat=twoGbMaxExtentSparse|backing"
    "hand-made with grain-directory holes (grain 8, 16 GTEs)|gd0|"
    "monolithicFlat|subformat=monolithicFlat|"
)
CRASH_KILLED=0
crash_trial() { # TRIAL VARIANT
    local t=$1 v=${CRASH_VARIANTS[$2]}
    local label=${v%%|*} rest=${v#*|}
    local opts=${rest%%|*} layout=${rest#*|}
    local size=$((4 * 1024 * 1024)) cs=$GRAIN seed=$((STRESS_SEED * 100 + t)) mode=advisory
    local img=crash.vmdk
    rm -f crash*.vmdk crashb*.vmdk
    if [ "$opts" = gd0 ]; then
        cs=4096
        python3 "$GEN" sparse "$img" before.raw --size $size --seed $seed --grain 8 --gtes 16 --gd-holes
    else
        [[ $opts == *zeroed_grain=on* ]] && mode=strict
        if [ "$layout" = backing ]; then
            qimg create -q -f vmdk crashb.vmdk $size
            fill crashb.vmdk $size $((seed + 7)) 10 --maxlen $((size / 4))
            qimg create -q -f vmdk -o "$opts" -b crashb.vmdk -F vmdk "$img" $size
        else
            qimg create -q -f vmdk -o "$opts" "$img" $size
        fi
        fill "$img" $size $((seed + 3)) 12 --maxlen $((size / 6)) --zero 0.1
        qemu-img convert -O raw "$img" before.raw
    fi
    wsim gen $size $seed 150 --cluster $cs --batch 250 --flush 0.08 --maxlen $((size / 8)) \
        --zero 0.1 --zero-u 0.1 --discard 0.1 --disc-any >cmds
    crash_begin "$t" "$label" "$seed" cmds
    crash_io "$img"
    local rc=$CRASH_RC
    qcheck "$img" 0
    local msg
    if [ $rc -eq 0 ]; then
        cp before.raw shadow.raw
        wsim apply shadow.raw cmds --cluster $cs --discard $mode
        same_content "$img" shadow.raw vmdk
        rgd_same "$img"
        rm -f shadow.raw*
    elif qemu-img convert -O raw "$img" after.raw 2>err2.txt; then
        msg=$(wsim crashcheck after.raw before.raw cmds out.txt --cluster $cs --discard $mode) ||
            fail "data after the kill: $msg"
        echo "  $msg" | head -n 1
    else
        fail "qemu-img cannot read the image after the kill: $(head -n 2 err2.txt)"
    fi
    # scuse reads it as QEMU does, crashed or not
    if qemu-img convert -O raw "$img" q.raw 2>/dev/null && expect_exit 0 "$SCUSE" convert -O raw "$img" s.raw; then
        cmp -s q.raw s.raw || fail "scuse reads the image after the trial differently from qemu-img"
    fi
    # a kill leaves at most leaked grains (not flushed into a table): scuse
    # check says 0 or 3, -r leaks gives them back without changing the disk
    if [ -f q.raw ]; then
        run "$SCUSE" check "$img"
        if [ "$RC" = 3 ]; then
            CRASH_LEAKY=$((CRASH_LEAKY + 1))
            echo "  (leaks after the kill: $(grep -c '^Leaked:' "$W/.err") ranges; scuse check -r leaks)"
            expect_exit 0 "$SCUSE" check -r leaks "$img" || true
            expect_exit 0 "$SCUSE" check "$img" || true
            qcheck "$img" 0
            qemu-img compare -f vmdk -F raw "$img" q.raw >/dev/null 2>&1 ||
                fail "check -r leaks changed the disk"
        elif [ "$RC" != 0 ]; then
            fail "scuse check after the trial: exit $RC: $(head -n 2 "$W/.err" | tr '\n' '|')"
        fi
    fi
    case_end
    rm -f after.raw q.raw s.raw
}
sec_crash() {
    mkdir -p "$T/crash"
    cd "$T/crash"
    CRASH_LEAKY=0
    crash_run "$CRASH_TRIALS"
    echo "crash: $CRASH_LEAKY trials left leaked grains (given back by check -r leaks)"
    cd "$T"
}

for sec in sec_random sec_crash sec_gd0 sec_extents sec_cid sec_locks; do
    lane "${sec#sec_}" "$sec"
done
join_lanes
finish
