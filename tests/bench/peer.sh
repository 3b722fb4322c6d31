#!/usr/bin/env bash
# I/O benchmark, `scuse bench` (CDBs through the dispatcher, as a
# transport submits them) against `qemu-img bench`, same images, same
# access patterns, same request counts, in one run:
#   images:   allocated qcow2, zlib-compressed qcow2, raw (one SIZE_MIB
#             source, ~2:1 compressible, made by gen.c)
#   patterns: sequential and strided (STRIDE x the request size between
#             requests, wrapping at the end of the image, qemu-img bench -S),
#             4 KiB and 64 KiB requests, queue depth 1 and 32, read and write
# and prints each pair's IOPS and their ratio (scuse / qemu-img), then the
# two goals of issue 4: allocated qcow2 4 KiB QD32 reads at least 2x,
# compressed qcow2 4 KiB reads at least 10x.
#
# Fairness: both tools run at their defaults with the page cache
# (qemu-img bench: cache=writeback, aio=threads; scuse: buffered I/O),
# the image is read once (cat) before every run so both start warm, the
# order of the two alternates, and write runs go to fresh copies of the
# image (made, then synced, before the timer starts). IOPS are each tool's
# own measure of its run (qemu-img's "Run completed in", scuse's JSON);
# CPU seconds per GiB come from /usr/bin/time around the whole process.
#
# Env: SCUSE      scuse binary (default build/scuse)
#      BENCH_DIR  scratch directory (default build/bench)
#      SIZE_MIB   image size (default 512)
#      STRIDE     stride of the strided patterns, in requests (default 16)
#      SCALE      multiplies every request count (default 1)
#      GOAL_ROUNDS rounds for the goal cases, median reported (default 5);
#                 the table has one round per case
#      KEEP=1     keep the images afterwards
set -euo pipefail

. "$(dirname "$0")/lib.sh"
SIZE_MIB=${SIZE_MIB:-512}
STRIDE=${STRIDE:-16}
SCALE=${SCALE:-1}
GOAL_ROUNDS=${GOAL_ROUNDS:-5}

[ -x /usr/bin/time ] || die "/usr/bin/time not found (Debian package time)"

src=$BENCH_DIR/peer-src.raw
alloc=$BENCH_DIR/peer-alloc.qcow2
zlib=$BENCH_DIR/peer-zlib.qcow2
work=$BENCH_DIR/peer-work.img
tfile=$BENCH_DIR/peer-time.txt
out=$BENCH_DIR/peer-out.txt

cleanup() {
    rm -f "$work" "$tfile" "$out" "$BENCH_DIR/peer-gen"
    [ "${KEEP:-0}" = 1 ] || rm -f "$src" "$alloc" "$zlib"
}
trap cleanup EXIT

need=$(( SIZE_MIB * 4 ))
avail=$(df -Pm "$BENCH_DIR" | awk 'NR==2 {print $4}')
[ "$avail" -ge "$need" ] || die "$BENCH_DIR has $avail MiB free, needs about $need MiB"

echo "== scuse bench vs qemu-img bench: $SIZE_MIB MiB images, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   scuse:    $SCUSE"
echo "   qemu-img: $(qemu-img --version | head -1)"

"$CC" -O2 -o "$BENCH_DIR/peer-gen" "$top/tests/bench/gen.c"
[ -f "$src" ] || "$BENCH_DIR/peer-gen" "$src" "$SIZE_MIB" >/dev/null
[ -f "$alloc" ] || qemu-img convert -m 8 -W -f raw -O qcow2 "$src" "$alloc"
[ -f "$zlib" ] || { echo "   compressing (qemu-img convert -c) ..."; \
                    qemu-img convert -m 8 -W -c -f raw -O qcow2 "$src" "$zlib"; }
echo "   images: raw $(( $(stat -c %b "$src") * $(stat -c %B "$src") >> 20 )) MiB allocated," \
     "qcow2 $(( $(stat -c %s "$alloc") >> 20 )) MiB, zlib qcow2 $(( $(stat -c %s "$zlib") >> 20 )) MiB"

# Requests per run: about a second of qemu-img's time on a 2-CPU VM.
count_for() { # kind bs qd
    local n
    case "$1/$2/$3" in
    zlib/4k/1) n=4000 ;;  zlib/4k/32) n=8000 ;;
    zlib/64k/1) n=3000 ;; zlib/64k/32) n=6000 ;;
    */4k/1) n=25000 ;;    */4k/32) n=150000 ;;
    */64k/1) n=15000 ;;   */64k/32) n=60000 ;;
    esac
    awk -v n="$n" -v s="$SCALE" 'BEGIN {v = n * s; printf "%d", (v < 1 ? 1 : v)}'
}

# The image a run uses: the original for reads, a fresh copy for writes.
prepare() { # img fmt rw
    local img=$1
    if [ "$3" = write ]; then
        rm -f "$work"
        cp --sparse=always "$img" "$work"
        sync
        img=$work
    fi
    cat "$img" >/dev/null
    echo "$img"
}

# One run; prints "IOPS CPU-seconds".
run_scuse() { # img fmt rw bs qd step count
    local img rw=$3 bsz qd=$5 cnt=$7
    img=$(prepare "$1" "$2" "$3")
    bsz=$(( ${4%k} * 1024 ))
    /usr/bin/time -f "%U %S" -o "$tfile" "$SCUSE" bench -f "$2" --rw "$rw" --bs "$bsz" \
        --qd "$qd" --stride "$6" --count "$cnt" --output=json "$img" >"$out" ||
        die "scuse bench failed: $(cat "$out")"
    local iops
    iops=$(sed -n 's/.*"iops": \([0-9.]*\).*/\1/p' "$out")
    echo "$iops $(awk '{print $1 + $2}' "$tfile")"
}

run_qemu() { # img fmt rw bs qd step count
    local img w=()
    img=$(prepare "$1" "$2" "$3")
    [ "$3" = write ] && w=(-w)
    /usr/bin/time -f "%U %S" -o "$tfile" qemu-img bench -f "$2" "${w[@]}" -s "$4" -d "$5" \
        -S "$6" -c "$7" "$img" >"$out" || die "qemu-img bench failed: $(cat "$out")"
    local secs
    secs=$(sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p' "$out")
    awk -v c="$7" -v s="$secs" -v t="$(awk '{print $1 + $2}' "$tfile")" \
        'BEGIN {printf "%.1f %s\n", (s > 0 ? c / s : 0), t}'
}

median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# measure KIND PATTERN BS QD RW ROUNDS: runs both tools ROUNDS times
# (alternating which goes first) and sets M (one table line) and MR (the
# median of the per-round IOPS ratios).
flip=0
measure() {
    local kind=$1 pat=$2 bs=$3 qd=$4 rw=$5 rounds=$6 img fmt step cnt r s q
    case $kind in
    alloc) img=$alloc fmt=qcow2 ;;
    zlib)  img=$zlib fmt=qcow2 ;;
    raw)   img=$src fmt=raw ;;
    esac
    step=$(( ${bs%k} * 1024 ))
    [ "$pat" = strided ] && step=$(( step * STRIDE ))
    cnt=$(count_for "$kind" "$bs" "$qd")
    local si=() qi=() sc=() qc=() rs=()
    for (( r = 0; r < rounds; r++ )); do
        flip=$(( 1 - flip ))
        if [ "$flip" = 1 ]; then
            s=$(run_scuse "$img" "$fmt" "$rw" "$bs" "$qd" "$step" "$cnt")
            q=$(run_qemu "$img" "$fmt" "$rw" "$bs" "$qd" "$step" "$cnt")
        else
            q=$(run_qemu "$img" "$fmt" "$rw" "$bs" "$qd" "$step" "$cnt")
            s=$(run_scuse "$img" "$fmt" "$rw" "$bs" "$qd" "$step" "$cnt")
        fi
        si+=("${s% *}") sc+=("${s#* }") qi+=("${q% *}") qc+=("${q#* }")
        rs+=("$(awk -v a="${s% *}" -v b="${q% *}" 'BEGIN {printf "%.4f", (b > 0 ? a / b : 0)}')")
    done
    local msi mqi msc mqc gib
    msi=$(printf '%s\n' "${si[@]}" | median)
    mqi=$(printf '%s\n' "${qi[@]}" | median)
    msc=$(printf '%s\n' "${sc[@]}" | median)
    mqc=$(printf '%s\n' "${qc[@]}" | median)
    MR=$(printf '%s\n' "${rs[@]}" | median)
    MR=$(awk -v r="$MR" 'BEGIN {printf "%.2f", r}')
    gib=$(awk -v c="$cnt" -v b="${bs%k}" 'BEGIN {print c * b / 1048576}')
    M=$(awk -v k="$kind" -v p="$pat" -v b="$bs" -v d="$qd" -v w="$rw" -v n="$cnt" -v si="$msi" \
        -v qi="$mqi" -v r="$MR" -v sc="$msc" -v qc="$mqc" -v g="$gib" \
        'BEGIN {c = sc > 0 ? sprintf("%6.1fx", qc / sc) : "      -";
                printf "%-6s %-7s %-4s %-3s %-5s %7d | %10.0f %10.0f %6.2fx | %9.2f %9.2f %s\n",
                k, p, b, d, w, n, si, qi, r, sc / g, qc / g, c}')
}

header() {
    printf '%-6s %-7s %-4s %-3s %-5s %7s | %10s %10s %7s | %9s %9s %7s\n' image pattern bs qd rw \
        requests "scuse IOPS" "qemu IOPS" ratio "scuse s/G" "qemu s/G" "CPU"
    printf '%s\n' "-----------------------------------------------------------------------------------------------------"
}

echo
echo "IOPS: each tool's own measure; ratio: scuse / qemu-img; s/G: CPU seconds (user + sys,"
echo "whole process) per GiB moved; CPU: qemu-img's CPU per GiB / scuse's (stable on a busy VM)."
echo
header
for kind in alloc zlib raw; do
    for rw in read write; do
        for pat in seq strided; do
            for bs in 4k 64k; do
                for qd in 1 32; do
                    measure "$kind" "$pat" "$bs" "$qd" "$rw" 1
                    printf '%s\n' "$M"
                done
            done
        done
    done
done

verdict() { awk -v r="$1" -v g="$2" 'BEGIN {print ((r >= g) ? "met" : "NOT met")}'; }
echo
echo "== goals: median of $GOAL_ROUNDS alternating rounds each (load $(cut -d' ' -f1-3 /proc/loadavg))"
header
measure alloc seq 4k 32 read "$GOAL_ROUNDS"; printf '%s\n' "$M"; a=$MR
measure alloc strided 4k 32 read "$GOAL_ROUNDS"; printf '%s\n' "$M"; as=$MR
measure zlib seq 4k 1 read "$GOAL_ROUNDS"; printf '%s\n' "$M"; z1=$MR
measure zlib seq 4k 32 read "$GOAL_ROUNDS"; printf '%s\n' "$M"; z32=$MR
echo
echo "allocated qcow2, 4 KiB QD32 reads (goal >= 2x): sequential ${a}x ($(verdict "$a" 2)), strided ${as}x ($(verdict "$as" 2))"
echo "compressed qcow2, 4 KiB sequential reads (goal >= 10x): QD1 ${z1}x ($(verdict "$z1" 10)), QD32 ${z32}x ($(verdict "$z32" 10))"
echo "(strided compressed reads, a new cluster per request, are in the table: there no cache of"
echo " decompressed clusters can help, and the ratio is inflate speed, libdeflate against zlib)"
