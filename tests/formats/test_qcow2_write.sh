#!/usr/bin/env bash
# qcow2 write path (issue 3 §5), judged only with QEMU's tools:
#   content   `qemu-img compare IMG shadow.raw` (the shadow gets the same
#             operations, applied by lib/wsim.py) and `qemu-io -r -c 'read -P'`
#   metadata  `qemu-img check` (exit 0: no corruption, no leaks)
#   options   `qemu-img info` / `qemu-img map`
# Sections (run as concurrent lanes):
#   random_*   random writes / write -z / write -z -u / discard on v2 and v3,
#              cluster sizes 512..2M, refcount widths 1/16/64, extended L2,
#              standalone and on top of a 3-deep chain with data everywhere
#   snapshots  writes leave internal snapshots' content unchanged
#   partial    partial writes into ZERO_PLAIN, ZERO_ALLOC, unallocated and
#              backing-served clusters (and subclusters)
#   create     scuse create option matrix vs qemu-img create
#   convert    scuse convert -O qcow2 [-c] (zlib, zstd; 4k/64k/2M clusters)
#   check      scuse check vs qemu-img check on leaked / corrupted images,
#              and repairs
#   dirty      lazy-refcount images left dirty: a read-write open rebuilds
#   crash      kill -9 of a long `scuse io` run with periodic flushes
#
# Discard semantics used by the shadow (issue 3: "discard deallocates in a
# standalone image and, in an overlay, leaves zero clusters"): the whole
# clusters inside a discarded range must read 0; the partial head and tail
# are advisory (QEMU ignores them), so each of their bytes may read 0 or its
# previous value. In a v2 overlay there are no zero clusters, so every
# discarded byte may read 0 or its previous value -- but never the backing
# file's data (QEMU 7.2 lets it reappear there; issue 3 forbids it). Half of
# the random cases snap discards to whole clusters, so that `qemu-img
# compare` with the shadow is exact; the other half discard anywhere.
#
# Knobs: SCUSE_STRESS_OPS   total random operations over the matrix (3000)
#        SCUSE_STRESS_SEED  seed of the random runs (1); printed per case
#        SCUSE_STRESS_FULL  1: the full matrix instead of the CI selection
#        SCUSE_STRESS_CASES only these random cases (indices, e.g. "3 7")
#        SCUSE_CRASH_TRIALS kill -9 trials (20)
#        SCUSE_WRITE_SECTIONS only these lanes (e.g. "random0 crash")
. "$(dirname "$0")/lib/common.sh"
. "$LIB_DIR/crash.sh"
. "$LIB_DIR/wcommon.sh"

STRESS_OPS=${SCUSE_STRESS_OPS:-3000}
STRESS_SEED=${SCUSE_STRESS_SEED:-1}
CRASH_TRIALS=${SCUSE_CRASH_TRIALS:-20}

size_for_cs() {
    case $1 in
    512) echo $((2 * 1024 * 1024 + 1536)) ;;
    4096) echo $((3 * 1024 * 1024 + 3584)) ;;
    65536) echo $((6 * 1024 * 1024 + 512)) ;;
    *) echo $((12 * 1024 * 1024 + 512)) ;;
    esac
}

# ---------------------------------------------------------------------------
# 1. random runs
# rcase IDX OPS COMPAT CS RB EXT LAYOUT DISC
#   LAYOUT standalone | chain (IMG over mid (4k clusters, shorter) over base,
#   data in every layer); DISC cluster (discards snapped to whole clusters)
#   | any. The image starts with plain, compressed and zero clusters.
rcase() {
    local idx=$1 ops=$2 compat=$3 cs=$4 rb=$5 ext=$6 layout=$7 disc=$8
    local seed=$((STRESS_SEED * 1000 + idx))
    local size d img shadow opts zo mode sums=""
    size=$(size_for_cs "$cs")
    d=$T/rnd$idx
    mkdir -p "$d"
    img=$d/img.qcow2
    shadow=$d/shadow.raw
    opts="compat=$compat,cluster_size=$cs,refcount_bits=$rb,extended_l2=$ext"
    zo=(--zero 0.1 --zero-u 0.05)
    case_begin "random: compat=$compat cluster_size=$cs refcount_bits=$rb extended_l2=$ext $layout, discards $disc, $ops ops, seed $seed"
    if [ "$layout" = chain ]; then
        local msize=$(((size - size / 7) / 512 * 512))
        qimg create -q -f qcow2 -o compat=$compat "$d/base.qcow2" $size
        fill "$d/base.qcow2" $size $((seed + 1)) 12 --maxlen $((size / 5))
        qimg create -q -f qcow2 -o compat=$compat,cluster_size=4096 -b base.qcow2 -F qcow2 "$d/mid.qcow2" $msize
        fill "$d/mid.qcow2" $msize $((seed + 2)) 16 --maxlen $((size / 8)) "${zo[@]}"
        qimg create -q -f qcow2 -o "$opts" -b mid.qcow2 -F qcow2 "$img" $size
        sums=$(sum_of "$d/base.qcow2" "$d/mid.qcow2")
    else
        qimg create -q -f qcow2 -o "$opts" "$img" $size
    fi
    fill "$img" $size $((seed + 3)) 20 --maxlen $((size / 6)) --compress $cs --cfrac 0.3 "${zo[@]}"
    qemu-img convert -O raw "$img" "$shadow"
    local -a dopt=()
    [ "$disc" = any ] && dopt=(--disc-any)
    wsim gen $size $seed "$ops" --cluster $cs --batch 50 --flush 0.03 --maxlen $((size / 3)) \
        --zero 0.12 --zero-u 0.12 --discard 0.12 "${dopt[@]}" >"$d/cmds"
    mode=strict
    [ "$compat" = 0.10 ] && [ "$layout" = chain ] && mode=advisory
    wsim apply "$shadow" "$d/cmds" --cluster $cs --discard $mode
    if io_batches "$img" "$d/cmds"; then
        same_content "$img" "$shadow"
        sample_reads "$img" "$shadow" $seed 16
    fi
    qcheck "$img" 0
    if [ -n "$sums" ] && [ "$(sum_of "$d/base.qcow2" "$d/mid.qcow2")" != "$sums" ]; then
        fail "a backing file changed while scuse wrote the overlay"
    fi
    case_end
    rm -rf "$d"
}

# The CI selection: every cluster size with v2 and v3, standalone and
# chained; refcount widths 1, 16 and 64 spread over them (v2 is always 16);
# extended L2 (64k, 2M) in both layouts; discards snapped and anywhere.
RANDOM_CASES=(
    "0.10 512 16 off standalone any"
    "0.10 4096 16 off chain any"
    "0.10 65536 16 off standalone cluster"
    "0.10 2097152 16 off chain any"
    "1.1 512 64 off standalone cluster"
    "1.1 512 1 off chain any"
    "1.1 4096 1 off standalone any"
    "1.1 4096 64 off chain cluster"
    "1.1 65536 16 off chain any"
    "1.1 2097152 1 off standalone cluster"
    "1.1 65536 1 on chain any"
    "1.1 2097152 64 on standalone cluster"
)
if [ "${SCUSE_STRESS_FULL:-0}" = 1 ]; then
    RANDOM_CASES=()
    for compat in 0.10 1.1; do
        for cs in 512 4096 65536 2097152; do
            for rb in 1 16 64; do
                [ $compat = 1.1 ] || [ $rb = 16 ] || continue
                for ext in off on; do
                    [ $ext = off ] || { [ $compat = 1.1 ] && [ $cs -ge 16384 ]; } || continue
                    for layout in standalone chain; do
                        for disc in cluster any; do
                            RANDOM_CASES+=("$compat $cs $rb $ext $layout $disc")
                        done
                    done
                done
            done
        done
    done
fi
OPS_PER_CASE=$((STRESS_OPS / ${#RANDOM_CASES[@]}))
[ $OPS_PER_CASE -ge 20 ] || OPS_PER_CASE=20

sec_random() { # LANE NLANES: every NLANES-th case
    local i
    for ((i = $1; i < ${#RANDOM_CASES[@]}; i += $2)); do
        [ -z "${SCUSE_STRESS_CASES:-}" ] || [[ " $SCUSE_STRESS_CASES " == *" $i "* ]] || continue
        # shellcheck disable=SC2086
        rcase $i $OPS_PER_CASE ${RANDOM_CASES[$i]}
    done
}

# ---------------------------------------------------------------------------
# 2. internal snapshots: writes (copy-on-write of shared clusters) leave
#    every snapshot's content as it was; also after reverting to a snapshot
#    and after deleting one.
snap_raw() { qemu-img convert -l snapshot.name=$2 -O raw "$1" "$3"; }
snaps_unchanged() { # IMG NAME...
    local img=$1 s
    shift
    for s in "$@"; do
        snap_raw "$img" "$s" "$W/.snap.raw"
        cmp -s "$W/.snap.raw" "$s.want.raw" ||
            fail "snapshot $s of $img changed: $(python3 "$LIB_DIR/rawdiff.py" "$s.want.raw" "$W/.snap.raw")"
    done
    rm -f "$W/.snap.raw"
}
snap_step() { # IMG SHADOW SEED OPS CS: random writes by scuse, mirrored
    wsim gen "$(stat -c %s "$2")" "$3" "$4" --cluster "$5" --batch 40 --maxlen $(($(stat -c %s "$2") / 4)) \
        --zero 0.1 --zero-u 0.1 --discard 0.1 >"$W/.cmds"
    wsim apply "$2" "$W/.cmds" --cluster "$5"
    io_batches "$1" "$W/.cmds"
}
sec_snapshots() {
    local v compat cs rb ext size img n=0
    cd "$W"
    local -a vs=("1.1 65536 16 off" "0.10 4096 16 off" "1.1 65536 4 on")
    [ "${SCUSE_STRESS_FULL:-0}" != 1 ] || vs+=("1.1 512 64 off" "1.1 2097152 16 off")
    for v in "${vs[@]}"; do
        # shellcheck disable=SC2086
        set -- $v
        compat=$1 cs=$2 rb=$3 ext=$4
        n=$((n + 1))
        size=$(($(size_for_cs $cs) / 2))
        img=snap$n.qcow2
        case_begin "snapshots: compat=$compat cluster_size=$cs refcount_bits=$rb extended_l2=$ext"
        qimg create -q -f qcow2 -o compat=$compat,cluster_size=$cs,refcount_bits=$rb,extended_l2=$ext "$img" $size
        fill "$img" $size $((500 + n)) 24 --maxlen $((size / 5)) --compress $cs --cfrac 0.25 --zero 0.1
        qimg snapshot -c s1 "$img"
        snap_raw "$img" s1 s1.want.raw
        cp s1.want.raw shadow.raw
        if snap_step "$img" shadow.raw $((600 + n)) 40 $cs; then
            snaps_unchanged "$img" s1
            same_content "$img" shadow.raw
            qcheck "$img" 0
            qimg snapshot -c s2 "$img"
            snap_raw "$img" s2 s2.want.raw
            if snap_step "$img" shadow.raw $((700 + n)) 40 $cs; then
                snaps_unchanged "$img" s1 s2
                same_content "$img" shadow.raw
                qcheck "$img" 0
                # revert to s1: the active L1 shares every cluster again
                qimg snapshot -a s1 "$img"
                cp s1.want.raw shadow.raw
                if snap_step "$img" shadow.raw $((800 + n)) 40 $cs; then
                    snaps_unchanged "$img" s1 s2
                    same_content "$img" shadow.raw
                    qcheck "$img" 0
                    # delete s2: its clusters' refcounts drop, QEMU resets COPIED
                    qimg snapshot -d s2 "$img"
                    if snap_step "$img" shadow.raw $((900 + n)) 30 $cs; then
                        snaps_unchanged "$img" s1
                        same_content "$img" shadow.raw
                        sample_reads "$img" shadow.raw $n 12
                    fi
                fi
            fi
        fi
        qcheck "$img" 0
        case_end
        rm -f "$img" ./*.raw
    done
}

# ---------------------------------------------------------------------------
# 3. partial writes into each kind of cluster. pwrites IMG SHADOW CS CMD...:
#    scuse writes CMDs; then qemu-io reads back, with read -P, every run of
#    equal bytes in the clusters each write touched (the written part, and
#    around it zeros / backing data / old data -- never header bytes); the
#    whole image equals the shadow; qemu-img check is clean.
pwrites() {
    local img=$1 shadow=$2 cs=$3 c
    shift 3
    local -a args=() ranges=()
    local w off len a b size
    size=$(stat -c %s "$shadow")
    for c in "$@"; do
        args+=(-c "$c")
        echo "$c"
        # shellcheck disable=SC2086
        set -- $c
        off=${*: -2:1} len=${*: -1}
        a=$((off / cs * cs))
        b=$(((off + len + cs - 1) / cs * cs))
        [ $b -le $size ] || b=$size
        ranges+=($a $((b - a)))
    done >"$W/.pcmds"
    wsim apply "$shadow" "$W/.pcmds" --cluster $cs
    if expect_exit 0 "$SCUSE" io "${args[@]}" "$img"; then
        local -a reads
        mapfile -t reads < <(wsim runs "$shadow" "${ranges[@]}")
        qread "$img" "${reads[@]}"
        same_content "$img" "$shadow"
    fi
    qcheck "$img" 0
}

sec_partial() {
    cd "$W"
    local cs v size img bsize
    # v3, standalone: unallocated, ZERO_PLAIN, ZERO_ALLOC, normal
    for cs in 4096 65536; do
        size=$((8 * cs))
        img=pz$cs.qcow2
        case_begin "partial writes, v3 standalone, cluster_size=$cs: unallocated, ZERO_PLAIN, ZERO_ALLOC, normal"
        qimg create -q -f qcow2 -o cluster_size=$cs "$img" $size
        qwrite "$img" "write -P 0x11 $cs $cs" \
            "write -P 0x12 $((2 * cs)) $cs" "write -z -u $((2 * cs)) $cs" \
            "write -P 0x13 $((3 * cs)) $cs" "write -z $((3 * cs)) $cs"
        need_kind_at "$img" 0 '^unallocated$'
        need_kind_at "$img" $((2 * cs)) '^zero-plain$'
        need_kind_at "$img" $((3 * cs)) '^zero-alloc$'
        need_map_at "$img" $((2 * cs)) 'r["zero"] and not r["data"]'
        need_map_at "$img" $((3 * cs)) 'r["zero"] and not r["data"]'
        qemu-img convert -O raw "$img" shadow.raw
        pwrites "$img" shadow.raw $cs \
            "write -P 0x61 100 300" \
            "write -P 0x62 $((2 * cs + cs / 2 - 7)) 13" \
            "write -P 0x63 $((3 * cs + 1)) $((cs - 2))" \
            "write -P 0x64 $((4 * cs - 5)) 10" \
            "write -P 0x65 $((cs + 512)) 512" \
            "write -P 0x66 $((6 * cs + 4095)) 2"
        case_end
    done
    # v3 overlay over a backing file with a pattern that ends 1.5 clusters
    # before the overlay: unallocated (backing-served), ZERO_PLAIN over
    # backing data, ZERO_ALLOC, and clusters at / past the backing EOF.
    # (2M clusters over a backing file: the extended-L2 case below.)
    for cs in 4096 65536; do
        size=$((8 * cs))
        bsize=$((size - cs - cs / 2))
        img=po$cs.qcow2
        case_begin "partial writes, v3 overlay, cluster_size=$cs: backing-served, ZERO_PLAIN and ZERO_ALLOC over backing data, backing EOF"
        qimg create -q -f qcow2 pob$cs.qcow2 $bsize
        qwrite pob$cs.qcow2 "write -P 0x42 0 $bsize"
        qimg create -q -f qcow2 -o cluster_size=$cs -b pob$cs.qcow2 -F qcow2 "$img" $size
        qwrite "$img" "write -z -u $((2 * cs)) $cs" \
            "write -P 0x13 $((3 * cs)) $cs" "write -z $((3 * cs)) $cs"
        need_kind_at "$img" 0 '^unallocated$'
        need_kind_at "$img" $((2 * cs)) '^zero-plain$'
        need_kind_at "$img" $((3 * cs)) '^zero-alloc$'
        need_map_at "$img" 0 'r["depth"] == 1 and r["data"]'
        need_map_at "$img" $((2 * cs)) 'r["depth"] == 0 and r["zero"] and not r["data"]'
        need_map_at "$img" $((3 * cs)) 'r["depth"] == 0 and r["zero"] and not r["data"]'
        qemu-img convert -O raw "$img" shadow.raw
        local sum
        sum=$(sum_of pob$cs.qcow2)
        pwrites "$img" shadow.raw $cs \
            "write -P 0x61 100 300" \
            "write -P 0x62 $((2 * cs + cs / 2 - 7)) 13" \
            "write -P 0x63 $((3 * cs + 1)) $((cs - 2))" \
            "write -P 0x64 $((4 * cs - 5)) 10" \
            "write -P 0x65 $((6 * cs + 10)) 20" \
            "write -P 0x66 $((7 * cs + cs / 2 + 3)) 100"
        [ "$(sum_of pob$cs.qcow2)" = "$sum" ] || fail "the backing file changed"
        case_end
    done
    # v2: no zero clusters; unallocated standalone (zeros, not the header
    # at host offset 0) and backing-served
    for v in standalone overlay; do
        cs=65536 size=$((8 * 65536))
        img=pv2$v.qcow2
        case_begin "partial writes, v2 $v: unallocated clusters"
        if [ $v = overlay ]; then
            qimg create -q -f qcow2 -o compat=0.10 pv2b.qcow2 $((size - cs / 2))
            qwrite pv2b.qcow2 "write -P 0x42 0 $((size - cs / 2))"
            qimg create -q -f qcow2 -o compat=0.10 -b pv2b.qcow2 -F qcow2 "$img" $size
        else
            qimg create -q -f qcow2 -o compat=0.10 "$img" $size
        fi
        qwrite "$img" "write -P 0x11 $cs $cs"
        qemu-img convert -O raw "$img" shadow.raw
        pwrites "$img" shadow.raw $cs \
            "write -P 0x61 100 300" "write -P 0x62 $((cs + 7)) 3" \
            "write -P 0x63 $((2 * cs - 1)) 2" "write -P 0x64 $((7 * cs + 700)) 9"
        case_end
    done
    # extended L2 (64k clusters = 2k subclusters; 2M = 64k subclusters):
    # a cluster with allocated, zero and unallocated (backing-served)
    # subclusters; partial writes into each kind of subcluster.
    # QEMU writes only the allocated subclusters' data, so the file may end
    # inside the last allocated cluster; scuse's writer once refused such a
    # cluster as "beyond the end of the file" (also in the crash variant
    # "extended L2 over a backing file").
    for cs in 65536 2097152; do
        local sc=$((cs / 32))
        size=$((6 * cs))
        img=pe$cs.qcow2
        case_begin "partial writes, extended L2 cluster_size=$cs overlay: allocated, zero and backing-served subclusters"
        qimg create -q -f qcow2 pebase$cs.qcow2 $size
        qwrite pebase$cs.qcow2 "write -P 0x42 0 $size"
        qimg create -q -f qcow2 -o extended_l2=on,cluster_size=$cs -b pebase$cs.qcow2 -F qcow2 "$img" $size
        qwrite "$img" "write -P 0x21 $((cs + 2 * sc)) $sc" "write -z -u $((cs + 4 * sc)) $sc" \
            "write -z -u $((2 * cs)) $cs"
        need_kind_at "$img" $cs '^ext alloc=0x4 zero=0x10$'
        need_kind_at "$img" $((2 * cs)) '^ext alloc=0x0 zero=0xffffffff$'
        qemu-img convert -O raw "$img" shadow.raw
        pwrites "$img" shadow.raw $cs \
            "write -P 0x61 $((cs + 100)) 300" \
            "write -P 0x62 $((cs + 2 * sc + 5)) 7" \
            "write -P 0x63 $((cs + 4 * sc + sc / 2)) 11" \
            "write -P 0x64 $((cs + 6 * sc - 3)) $((3 * sc + 10))" \
            "write -P 0x65 $((2 * cs + 3 * sc + 1)) 100" \
            "write -P 0x66 $((3 * cs + 17)) 1000"
        case_end
    done
    # extended L2 standalone: a partial write into an unallocated cluster
    img=pes.qcow2
    case_begin "partial writes, extended L2 standalone: unallocated subclusters read zeros"
    qimg create -q -f qcow2 -o extended_l2=on "$img" 1M
    qemu-img convert -O raw "$img" shadow.raw
    pwrites "$img" shadow.raw 65536 "write -P 0x61 100 300" "write -P 0x62 $((65536 + 4097)) 5000"
    case_end
    rm -f ./*.qcow2 ./*.raw
}

# ---------------------------------------------------------------------------
# 4. scuse create: for each option set, qemu-img create with the same
#    options is the reference. If qemu-img refuses, scuse must refuse (one
#    line on stderr, no file left); otherwise the image passes qemu-img
#    check, qemu-img info agrees with the reference, it reads the same
#    (zeros, or its backing file), and -- flag m -- qemu-img map agrees
#    (preallocation), -- flag w -- qemu-io and scuse io can write it.
#    Entries: "OPTIONS|SIZE|FLAGS".
CREATE_CASES=(
    "|1M|w"
    "compat=0.10|1M|w"
    "compat=v2|1M|"
    "compat=0.10,cluster_size=512|1M|w"
    "compat=0.10,refcount_bits=8|1M|"
    "compat=0.10,lazy_refcounts=on|1M|"
    "compat=0.10,extended_l2=on|1M|"
    "compat=0.10,compression_type=zstd|1M|"
    "cluster_size=2M|9M|w"
    "cluster_size=4M|9M|"
    "cluster_size=3000|1M|"
    "cluster_size=256|1M|"
    "refcount_bits=1|5M|w"
    "refcount_bits=3|1M|"
    "refcount_bits=128|1M|"
    "refcount_bits=64,cluster_size=512|5M|w"
    "extended_l2=on|5M|w"
    "extended_l2=on,cluster_size=2M|9M|"
    "extended_l2=on,cluster_size=8k|1M|"
    "compression_type=lz4|1M|"
    "lazy_refcounts=on|1M|w"
    "preallocation=metadata|10M|mw"
    "preallocation=metadata,cluster_size=512|3M|mw"
    "preallocation=metadata,refcount_bits=64,cluster_size=512|3M|m"
    "preallocation=metadata,extended_l2=on|10M|m"
    "preallocation=falloc|5M|mw"
    "preallocation=full,compat=0.10,cluster_size=4k|5M|m"
    "preallocation=falloc,extended_l2=on,cluster_size=128k|5M|m"
    "preallocation=bogus|1M|"
    "compat=1.1,cluster_size=4k,refcount_bits=8,lazy_refcounts=on,compression_type=zstd|7M|w"
    "cluster_size=64k,refcount_bits=1,extended_l2=on,compression_type=zstd,lazy_refcounts=on,preallocation=metadata|7M|mw"
    "|0|"
    "cluster_size=2M|3T|w"
    "bogus_option=1|1M|"
)
create_one() { # OPTS SIZE FLAGS [-b BACKING -F FMT]
    local o=$1 size=$2 flags=$3
    shift 3
    local -a oo=() sz=()
    [ -z "$o" ] || oo=(-o "$o")
    [ -z "$size" ] || sz=("$size")
    rm -f ref.qcow2 got.qcow2
    case_begin "create -f qcow2 ${o:+-o $o }$* size=${size:-(backing)}"
    if ! qemu-img create -q -f qcow2 "${oo[@]}" "$@" ref.qcow2 "${sz[@]}" >/dev/null 2>&1; then
        run "$SCUSE" create -f qcow2 "${oo[@]}" "$@" got.qcow2 "${sz[@]}"
        if [ "$RC" -eq 0 ]; then
            fail "qemu-img refuses these options, scuse create accepted them"
        elif [ "$RC" -lt 128 ]; then
            stderr_one_line || true
        fi
        [ ! -e got.qcow2 ] || fail "scuse create failed but left got.qcow2 behind"
        case_end
        return
    fi
    if expect_exit 0 "$SCUSE" create -f qcow2 "${oo[@]}" "$@" got.qcow2 "${sz[@]}"; then
        qcheck got.qcow2 0
        local msg
        qemu-img info --output=json ref.qcow2 >ref.json
        qemu-img info --output=json got.qcow2 >got.json
        msg=$(python3 "$WCMP" info ref.json got.json) || fail "qemu-img info differs from qemu-img's own image: $msg"
        msg=$(qemu-img compare ref.qcow2 got.qcow2 2>&1) || fail "content: $msg"
        if [[ $flags == *m* ]]; then
            qemu-img map --output=json ref.qcow2 >ref.json
            qemu-img map --output=json got.qcow2 >got.json
            msg=$(python3 "$WCMP" map ref.json got.json) || fail "qemu-img map differs from qemu-img's own image: $msg"
        fi
        # preallocation=falloc/full: the host file really is allocated
        case $o in *preallocation=f*)
            local rb gb
            rb=$(stat -c %b ref.qcow2) gb=$(stat -c %b got.qcow2)
            [ "$gb" -ge $((rb * 9 / 10)) ] || fail "host file has $gb blocks allocated, qemu-img's $rb"
            ;;
        esac
        if [[ $flags == *w* ]]; then
            local vs
            vs=$(qemu-img info --output=json got.qcow2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
            qwrite got.qcow2 "write -P 0x5a 0 1000" "write -P 0x5b $((vs - 3000)) 3000"
            qcheck got.qcow2 0
            if expect_exit 0 "$SCUSE" io -c "write -P 0x5c 500 1000" -c "write -z -u $((vs / 2)) 4096" \
                -c "write -P 0x5d $((vs - 1)) 1" got.qcow2; then
                qcheck got.qcow2 0
                qread got.qcow2 "read -P 0x5a 0 500" "read -P 0x5c 500 1000" "read -P 0 $((vs / 2)) 4096" \
                    "read -P 0x5b $((vs - 3000)) 2999" "read -P 0x5d $((vs - 1)) 1"
            fi
        fi
    fi
    case_end
}
sec_create() {
    cd "$W"
    local c o f
    for c in "${CREATE_CASES[@]}"; do
        o=${c%%|*} f=${c#*|}
        create_one "$o" "${f%%|*}" "${f#*|}"
    done
    # backing files
    qimg create -q -f qcow2 -o cluster_size=4k cb.qcow2 3M
    qwrite cb.qcow2 "write -P 0x33 0 3M"
    qimg create -q -f raw cb.raw 2M
    qio -f raw -c "write -P 0x34 0 2M" cb.raw
    create_one "" "" mw -b cb.qcow2 -F qcow2
    create_one "" 5M mw -b cb.qcow2 -F qcow2
    create_one "compat=0.10" 2M m -b cb.qcow2 -F qcow2
    create_one "extended_l2=on,cluster_size=32k" 4M mw -b cb.qcow2 -F qcow2
    create_one "" "" m -b cb.raw -F raw
    create_one "" 1M m -b cb.raw -F raw
    create_one "" "" "" -b missing.qcow2 -F qcow2
    rm -f ./*.qcow2 ./*.raw ./*.json
}

# ---------------------------------------------------------------------------
# 5. scuse convert -O qcow2 [-c]: equal to the source by qemu-img compare,
#    clean by qemu-img check, the options in qemu-img info, compressed
#    clusters when -c, and not much bigger than qemu-img's own output.
conv_case() { # LABEL SRC [convert options...]
    local label=$1 src=$2
    shift 2
    rm -f out.qcow2 ref.qcow2
    case_begin "convert $label"
    qimg convert "$@" "$src" ref.qcow2
    if expect_exit 0 "$SCUSE" convert "$@" "$src" out.qcow2; then
        local msg
        msg=$(qemu-img compare "$src" out.qcow2 2>&1) || fail "qemu-img compare $src out.qcow2: $msg"
        qcheck out.qcow2 0
        qemu-img info --output=json ref.qcow2 >ref.json
        qemu-img info --output=json out.qcow2 >out.json
        msg=$(python3 "$WCMP" info ref.json out.json) || fail "qemu-img info differs from qemu-img convert's output: $msg"
        local a b cs
        cs=$(python3 "$WCMP" get out.json cluster-size)
        a=$(stat -c %s out.qcow2) b=$(stat -c %s ref.qcow2)
        [ "$a" -le $((b * 5 / 4 + 4 * cs)) ] || fail "output is $a bytes, qemu-img's $b"
        case " $* " in *" -c "*)
            python3 "$Q2" clusters out.qcow2 >clusters.txt
            grep -q ' compressed ' clusters.txt || fail "-c, but out.qcow2 has no compressed cluster"
            # and qemu-io can rewrite parts of compressed clusters
            if [ "$(stat -c %s "$src")" -ge $((4 * cs)) ]; then
                qio -c "write -P 0x77 $((cs / 2)) $cs" -c "write -z $((3 * cs + 100)) 100" out.qcow2
                qcheck out.qcow2 0
            fi
            ;;
        esac
    fi
    case_end
}
sec_convert() {
    cd "$W"
    # mixed source: random (incompressible), patterns, text, zeros
    python3 - src.raw <<'PY'
import random, sys
r = random.Random(11)
size = 3 * 1024 * 1024 + 4096
buf = bytearray(size)
pos = 0
while pos < size:
    n = r.randint(1000, 400000)
    k = r.random()
    m = min(n, size - pos)
    if k < 0.25:
        buf[pos:pos + m] = r.randbytes(m)
    elif k < 0.6:
        buf[pos:pos + m] = bytes([r.randint(1, 255)]) * m
    elif k < 0.8:
        buf[pos:pos + m] = ((b"scuse-%d " % pos) * (m // 8 + 1))[:m]
    pos += n
open(sys.argv[1], "wb").write(buf)
PY
    local cs ct
    conv_case "raw -> qcow2 (defaults)" src.raw -f raw -O qcow2
    conv_case "raw -> qcow2 cluster_size=2M" src.raw -f raw -O qcow2 -o cluster_size=2M
    conv_case "raw -> qcow2 compat=0.10" src.raw -f raw -O qcow2 -o compat=0.10
    conv_case "raw -> qcow2 extended_l2=on" src.raw -f raw -O qcow2 -o extended_l2=on
    for ct in zlib zstd; do
        for cs in 4k 64k 2M; do
            conv_case "raw -> qcow2 -c compression_type=$ct cluster_size=$cs" src.raw \
                -f raw -O qcow2 -c -o compression_type=$ct,cluster_size=$cs
        done
    done
    conv_case "raw -> qcow2 -c compat=0.10" src.raw -f raw -O qcow2 -c -o compat=0.10
    # qcow2 chain source (zero clusters hide backing data; flattened output)
    local size=$((6 * 1024 * 1024))
    qimg create -q -f qcow2 cvb.qcow2 $size
    fill cvb.qcow2 $size 71 20 --maxlen 800000
    qimg create -q -f qcow2 -o cluster_size=4k -b cvb.qcow2 -F qcow2 cvt.qcow2 $size
    fill cvt.qcow2 $size 72 40 --maxlen 300000 --compress 4096 --cfrac 0.2 --zero 0.1 --zero-u 0.1
    conv_case "qcow2 chain -> qcow2" cvt.qcow2 -O qcow2
    conv_case "qcow2 chain -> qcow2 -c zstd" cvt.qcow2 -O qcow2 -c -o compression_type=zstd
    # a 0-byte and a 1-sector source
    truncate -s 0 empty.raw
    head -c 512 /dev/urandom >one.raw
    conv_case "empty raw -> qcow2" empty.raw -f raw -O qcow2
    conv_case "one random sector -> qcow2 -c" one.raw -f raw -O qcow2 -c
    rm -f ./*.qcow2 ./*.raw ./*.json
}

# ---------------------------------------------------------------------------
# 6. scuse check vs qemu-img check. For each damaged image D:
#    `scuse check --output=json D` has qemu-img check's exit code and
#    corruption / leak / error counts, and does not modify D; the human
#    output has the same exit code. Then on a copy, `scuse check -r leaks`
#    (images with leaks only) and `scuse check -r all` leave an image that
#    qemu-img check finds clean, with the data QEMU read before.
check_agree() { # LABEL IMG
    local label=$1 img=$2
    case_begin "check: $label"
    local qrc=0 msg sum m modes=(all)
    qemu-img check --output=json "$img" >q.json 2>/dev/null || qrc=$?
    sum=$(sum_of "$img")
    run "$SCUSE" check --output=json "$img"
    if [ "$RC" -ne "$qrc" ]; then
        [ "$RC" -ge 128 ] || fail "scuse check exited $RC, qemu-img check $qrc: $(head -n 3 "$W/.err" | tr '\n' '|')"
    elif [ "$qrc" -ne 1 ]; then
        msg=$(python3 "$WCMP" check q.json "$W/.out") || fail "scuse check disagrees with qemu-img check: $msg"
    fi
    run "$SCUSE" check "$img"
    [ "$RC" -eq "$qrc" ] || [ "$RC" -ge 128 ] || fail "scuse check (human output) exited $RC, qemu-img check $qrc"
    [ "$(sum_of "$img")" = "$sum" ] || fail "scuse check (no -r) modified the image"
    if [ "$qrc" -ne 0 ]; then
        qemu-img convert -U -O raw "$img" data.want.raw 2>/dev/null || rm -f data.want.raw
        [ "$qrc" -ne 3 ] || modes=(leaks all)
        for m in "${modes[@]}"; do
            cp "$img" rs.qcow2
            if expect_exit 0 "$SCUSE" check -r $m rs.qcow2; then
                qcheck rs.qcow2 0
                if [ -e data.want.raw ]; then
                    msg=$(qemu-img compare -f qcow2 -F raw rs.qcow2 data.want.raw 2>&1) ||
                        fail "scuse check -r $m changed the data: $msg"
                fi
            fi
        done
    fi
    case_end
    rm -f rs.qcow2 ./*.json data.*.raw
}
sec_check() {
    cd "$W"
    local img h fr v size=$((3 * 1024 * 1024))
    mk() { # NAME [create opts]: a written image with some freed clusters
        img=$1.qcow2
        qimg create -q -f qcow2 ${2:+-o $2} "$img" $size
        fill "$img" $size 91 20 --maxlen 300000 --zero 0.1
        qwrite "$img" "write -P 0x44 0 1M" "discard 256k 256k"
    }
    mk clean refcount_bits=1,cluster_size=4k
    check_agree "clean image, refcount_bits=1, 4k clusters" "$img"
    # leaks: a free cluster gets refcount 1
    for v in "leak" "leak-v2 compat=0.10" "leak-rb64 refcount_bits=64,cluster_size=512"; do
        # shellcheck disable=SC2086
        set -- $v
        mk $1 ${2:-}
        fr=$(python3 "$QRC" free "$img")
        python3 "$QRC" set "$img" $fr 1
        check_agree "leaked cluster (refcount 1, no reference) ${2:-}" "$img"
    done
    # leak + COPIED error: a used cluster's refcount 1 -> 2
    mk over
    h=$(python3 "$QRC" host "$img" 600000)
    python3 "$QRC" set "$img" $h 2
    check_agree "refcount raised 1 -> 2 on a data cluster" "$img"
    # corruption: refcount 1 -> 0
    for v in "under-rb1 refcount_bits=1" "under-v2 compat=0.10"; do
        # shellcheck disable=SC2086
        set -- $v
        mk $1 ${2:-}
        h=$(python3 "$QRC" host "$img" 600000)
        python3 "$QRC" set "$img" $h 0
        check_agree "refcount lowered 1 -> 0 on a data cluster ${2:-}" "$img"
    done
    # corruption: an L2 table's refcount -> 0
    mk l2rc
    h=$(($(python3 "$Q2" l1 "$img" | head -n 1) & 0x00fffffffffffe00))
    python3 "$QRC" set "$img" $h 0
    check_agree "refcount of an L2 table lowered to 0" "$img"
    # corruption: COPIED cleared on a refcount-1 cluster, set on a shared one
    mk copied
    python3 "$QRC" flip-copied "$img" 600000
    check_agree "COPIED flag cleared on a refcount-1 cluster" "$img"
    mk shared
    qimg snapshot -c s1 "$img"
    python3 "$QRC" flip-copied "$img" 600000
    check_agree "COPIED flag set on a cluster shared with a snapshot" "$img"
    mk shared2
    qimg snapshot -c s1 "$img"
    h=$(python3 "$QRC" host "$img" 600000)
    python3 "$QRC" set "$img" $h 1
    check_agree "refcount lowered 2 -> 1 on a cluster shared with a snapshot" "$img"
    # two leaks and one corruption at once
    mk mixed
    fr=$(python3 "$QRC" free "$img")
    python3 "$QRC" set "$img" $fr 1
    python3 "$QRC" set "$img" $((fr + 65536)) 1
    h=$(python3 "$QRC" host "$img" 100)
    python3 "$QRC" set "$img" $h 0
    check_agree "two leaks and a lowered refcount" "$img"
    # dirty lazy-refcounts image (qemu-io ... abort): QEMU's check counts
    # the missing refcounts as corruptions
    img=dirty.qcow2
    qimg create -q -f qcow2 -o lazy_refcounts=on "$img" $size
    make_dirty "$img" "write -P 0xa1 0 300k" "write -P 0xa2 1M 64k" "write -z 2M 64k"
    check_agree "dirty image (lazy refcounts, aborted writer)" "$img"
    # whatever a qemu-io killed mid-run (no lazy refcounts) leaves
    img=killed.qcow2
    qimg create -q -f qcow2 -o cluster_size=4k "$img" $size
    local -a cmds=()
    local i
    for ((i = 0; i < 30; i++)); do cmds+=(-c "write -P $((i + 1)) $((i * 100000)) 70000"); done
    (qemu-io "${cmds[@]}" -c abort "$img" || true) >/dev/null 2>&1
    check_agree "image written by qemu-io -c abort (no lazy refcounts)" "$img"
    rm -f ./*.qcow2
}

# ---------------------------------------------------------------------------
# 7. dirty images: a read-write open rebuilds the refcounts (as QEMU does);
#    a read-only open reads without touching the file.
sec_dirty() {
    cd "$W"
    local img=dirty.qcow2 sum
    local size=$((4 * 1024 * 1024))
    local writes=("write -P 0xa1 0 300k" "write -P 0xa2 1M 64k" "write -z 2M 64k" "write -P 0xa3 3M 1000")
    mkdirty() {
        qimg create -q -f qcow2 -o lazy_refcounts=on${1:+,$1} "$img" $size
        qwrite "$img" "write -P 0x99 2M 1M"
        make_dirty "$img" "${writes[@]}"
        qemu-img convert -O raw "$img" want.raw
    }
    case_begin "dirty image, scuse io -r: reads right, file untouched"
    mkdirty
    sum=$(sum_of "$img")
    if expect_exit 0 "$SCUSE" io -r -c "read -P 0xa1 0 300k" -c "read -P 0xa2 1M 64k" -c "read -P 0 2M 64k" "$img"; then
        grep -q 'verification failed' "$W/.out" && fail "read -P failed: $(grep -m1 'verification' "$W/.out")"
    fi
    [ "$(sum_of "$img")" = "$sum" ] || fail "a read-only open modified the dirty image"
    case_end
    for v in "" "refcount_bits=1,cluster_size=4k" "extended_l2=on"; do
        case_begin "dirty image${v:+ ($v)}, scuse io read-write open: refcounts rebuilt, data intact"
        mkdirty "$v"
        if expect_exit 0 "$SCUSE" io -c "read -P 0xa1 0 300k" "$img"; then
            qcheck "$img" 0
            local msg
            msg=$(qemu-img compare -f qcow2 -F raw "$img" want.raw 2>&1) || fail "data changed: $msg"
            qemu-img info --output=json "$img" | grep -q '"dirty-flag": false' || fail "still dirty after the open"
        fi
        case_end
    done
    case_begin "dirty image, scuse io writes: rebuilt, then written"
    mkdirty
    cp want.raw shadow.raw
    printf '%s\n' "write -P 0xb1 100k 300k" "write -z -u 1M 4096" "discard 3M 64k" "write -P 0xb2 4000000 5000" >cmds
    wsim apply shadow.raw cmds --cluster 65536
    if io_batches "$img" cmds; then
        qcheck "$img" 0
        same_content "$img" shadow.raw
    fi
    case_end
    case_begin "lazy_refcounts image written by scuse: clean and not dirty after a normal exit"
    qimg create -q -f qcow2 -o lazy_refcounts=on "$img" $size
    qemu-img convert -O raw "$img" shadow.raw
    wsim gen $size 77 120 --cluster 65536 --batch 40 >cmds
    wsim apply shadow.raw cmds --cluster 65536
    if io_batches "$img" cmds; then
        qcheck "$img" 0
        same_content "$img" shadow.raw
        qemu-img info --output=json "$img" | grep -q '"dirty-flag": false' || fail "dirty after scuse io exited"
    fi
    case_end
    rm -f ./*.qcow2 ./*.raw cmds
}

# ---------------------------------------------------------------------------
# 8. crash safety: kill -9 `scuse io` mid-run (150 random commands, a flush
#    every ~12). qemu-img check must find no corruption (leaks allowed;
#    `scuse check -r leaks` must then make it clean; a dirty lazy-refcounts
#    image must be rebuilt by a read-write `scuse io` open); everything
#    written before the last flush known to have completed must read back,
#    and every other byte must be its value then or one a later command
#    wrote (wsim.py crashcheck). The run and the kill: lib/crash.sh. Trial
#    0 is not killed (the whole run must land).
CRASH_VARIANTS=(
    "v3 64k|cluster_size=64k"
    "v2 4k over a backing file|compat=0.10,cluster_size=4k|backing"
    "v3 512 refcount_bits=64 (refcount table grows)|cluster_size=512,refcount_bits=64"
    "v3 64k extended L2 over a backing file|extended_l2=on|backing"
    "v3 4k lazy refcounts|lazy_refcounts=on,cluster_size=4k"
)
crash_trial() { # TRIAL VARIANT
    local t=$1 v=${CRASH_VARIANTS[$2]}
    local label=${v%%|*} rest=${v#*|}
    local opts=${rest%%|*} layout=
    [ "$rest" = "$opts" ] || layout=${rest#*|}
    local size=$((4 * 1024 * 1024)) cs=65536 seed=$((STRESS_SEED * 100 + t))
    case ,$opts, in
    *,cluster_size=512,*) cs=512 size=$((2 * 1024 * 1024)) ;;
    *,cluster_size=4k,*) cs=4096 ;;
    esac
    local img=crash.qcow2 mode=strict
    case ,$opts,$layout in *,compat=0.10,*backing) mode=advisory ;; esac
    rm -f crash.qcow2 crashb.qcow2
    if [ "$layout" = backing ]; then
        qimg create -q -f qcow2 crashb.qcow2 $size
        fill crashb.qcow2 $size $((seed + 7)) 10 --maxlen $((size / 4))
        qimg create -q -f qcow2 -o "$opts" -b crashb.qcow2 -F qcow2 "$img" $size
    else
        qimg create -q -f qcow2 -o "$opts" "$img" $size
    fi
    fill "$img" $size $((seed + 3)) 12 --maxlen $((size / 6)) --compress $cs --cfrac 0.25 --zero 0.1
    qemu-img convert -O raw "$img" before.raw
    wsim gen $size $seed 150 --cluster $cs --batch 250 --flush 0.08 --maxlen $((size / 8)) \
        --zero 0.1 --zero-u 0.1 --discard 0.1 --disc-any >cmds
    crash_begin "$t" "$label" "$seed" cmds
    crash_io "$img"
    local rc=$CRASH_RC
    # a lazy-refcounts image may be left dirty: a read-write open rebuilds
    if [[ $opts == *lazy* ]] && qemu-img info --output=json "$img" | grep -q '"dirty-flag": true'; then
        echo "  (dirty after the kill: rebuilding with a read-write scuse io open)"
        expect_exit 0 "$SCUSE" io "$img" </dev/null || true   # no commands: open, rebuild, close
    fi
    qcheck "$img" 0 3
    if [ "$QRC_RC" -eq 3 ]; then
        echo "  (leaks after the kill: repairing with scuse check -r leaks)"
        expect_exit 0 "$SCUSE" check -r leaks "$img" || true
        qcheck "$img" 0 || true
    fi
    local msg
    if [ $rc -eq 0 ]; then
        # not killed: every command must have landed
        cp before.raw shadow.raw
        wsim apply shadow.raw cmds --cluster $cs --discard $mode
        same_content "$img" shadow.raw
        rm -f shadow.raw*
    elif qemu-img convert -O raw "$img" after.raw 2>err2.txt; then
        msg=$(wsim crashcheck after.raw before.raw cmds out.txt --cluster $cs --discard $mode) ||
            fail "data after the kill: $msg"
        echo "  $msg" | head -n 1
    else
        fail "qemu-img cannot read the image after the kill: $(head -n 2 err2.txt)"
    fi
    case_end
    rm -f after.raw
}
sec_crash() {
    cd "$W"
    crash_run $((CRASH_TRIALS + 1))
    rm -f ./*.qcow2 ./*.raw
}

# ---------------------------------------------------------------------------
# Heaviest first; one lane per CPU (at most 3). SCUSE_WRITE_SECTIONS
# (space-separated lane names) runs only those.
add_lane() {
    if [ -z "${SCUSE_WRITE_SECTIONS:-}" ] || [[ " $SCUSE_WRITE_SECTIONS " == *" $1 "* ]]; then
        lane "$@"
    fi
}
add_lane random0 sec_random 0 3
add_lane crash sec_crash
add_lane random1 sec_random 1 3
add_lane random2 sec_random 2 3
add_lane snapshots sec_snapshots
add_lane partial sec_partial
add_lane check sec_check
add_lane create sec_create
add_lane convert sec_convert
add_lane dirty sec_dirty
join_lanes
finish
