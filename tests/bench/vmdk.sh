#!/usr/bin/env bash
# VMDK benchmarks against qemu-img, side by side in one run (issue 11
# point 5), on a ~2:1 compressible source made by gen.c:
#   stream->raw   scuse convert -O raw of a streamOptimized VMDK against
#                 qemu-img convert -m 8 -W -O raw (goal: ratio <= 0.3)
#   raw->stream   convert -O vmdk -o subformat=streamOptimized, both tools
#                 (goal: ratio <= 0.4)
#   sparse reads  4 KiB QD32 sequential reads of a monolithicSparse VMDK:
#                 scuse bench against qemu-img bench (goal: >= 2x IOPS)
# Outputs are checked against the source once (qemu-img compare; the
# streams also by lib/vmdkgen.py streamcheck is not needed here: the tests
# do that). Medians of ROUNDS rounds, order alternating, page cache warm
# for both (the input is read once before each run), `sync` before each.
#
# Env: SCUSE (default build/scuse), BENCH_DIR (build/bench), ROUNDS (3),
#      SIZE_MIB (1024), COUNT (4 KiB requests per bench run, 150000), KEEP=1
set -euo pipefail

. "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-3}
SIZE_MIB=${SIZE_MIB:-1024}
COUNT=${COUNT:-150000}

src=$BENCH_DIR/vsrc.raw
stream=$BENCH_DIR/vstream.vmdk
sparse=$BENCH_DIR/vsparse.vmdk
out=$BENCH_DIR/vout.img
tfile=$BENCH_DIR/vtime.txt
cleanup() {
    rm -f "$out" "$tfile" "$BENCH_DIR/vgen" "$BENCH_DIR/vbench.out"
    [ "${KEEP:-0}" = 1 ] || rm -f "$src" "$stream" "$sparse"
}
trap cleanup EXIT
need=$(( SIZE_MIB * 4 ))
avail=$(df -Pm "$BENCH_DIR" | awk 'NR==2 {print $4}')
[ "$avail" -ge "$need" ] || die "$BENCH_DIR has $avail MiB free, needs about $need MiB"

echo "== VMDK benchmark: $SIZE_MIB MiB source, $ROUNDS rounds, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$CC" -O2 -o "$BENCH_DIR/vgen" "$top/tests/bench/gen.c"
"$BENCH_DIR/vgen" "$src" "$SIZE_MIB" >/dev/null
qemu-img convert -m 8 -W -f raw -O vmdk -o subformat=streamOptimized "$src" "$stream"
qemu-img convert -m 8 -W -f raw -O vmdk "$src" "$sparse"
echo "   stream $(( $(stat -c %s "$stream") >> 20 )) MiB (made by qemu-img), monolithicSparse $(( $(stat -c %s "$sparse") >> 20 )) MiB"

median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else printf "%.4f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

timed() { # input cmd...: "wall cpu"
    rm -f "$out"
    sync
    cat "$1" >/dev/null
    shift
    /usr/bin/time -f "%e %U %S" -o "$tfile" "$@" >/dev/null
    awk '{printf "%.3f %.3f\n", $1, $2 + $3}' "$tfile"
}

summary=()
convert_case() { # label input output-fmt-args...
    local label=$1 in=$2 r s q ratios=() sw=() qw=()
    shift 2
    "$SCUSE" convert "$@" "$in" "$out" >/dev/null
    qemu-img compare -q "$src" "$out" || die "$label: scuse output differs from the source"
    rm -f "$out"
    qemu-img convert -m 8 -W "$@" "$in" "$out"
    qemu-img compare -q "$src" "$out" || die "$label: qemu-img output differs from the source"
    echo
    echo "-- $label ($*)"
    for (( r = 1; r <= ROUNDS; r++ )); do
        if (( r % 2 )); then
            s=$(timed "$in" "$SCUSE" convert "$@" "$in" "$out")
            q=$(timed "$in" qemu-img convert -m 8 -W "$@" "$in" "$out")
        else
            q=$(timed "$in" qemu-img convert -m 8 -W "$@" "$in" "$out")
            s=$(timed "$in" "$SCUSE" convert "$@" "$in" "$out")
        fi
        sw+=("${s% *}")
        qw+=("${q% *}")
        ratios+=("$(awk -v a="${s% *}" -v b="${q% *}" 'BEGIN {printf "%.4f", (b > 0 ? a / b : 0)}')")
        printf "   round %d: scuse %6.2f s wall %6.2f s cpu | qemu-img %6.2f s wall %6.2f s cpu | ratio %.2f\n" \
            "$r" "${s% *}" "${s#* }" "${q% *}" "${q#* }" "${ratios[-1]}"
    done
    local line
    line=$(printf 'scuse %.2f s, qemu-img %.2f s, ratio %.2f' "$(printf '%s\n' "${sw[@]}" | median)" \
        "$(printf '%s\n' "${qw[@]}" | median)" "$(printf '%s\n' "${ratios[@]}" | median)")
    echo "   median: $line"
    summary+=("$(printf '%-14s %s' "$label:" "$line")")
}

bench_case() {
    local r s q ratios=() si=() qi=()
    cat "$sparse" >/dev/null
    echo
    echo "-- 4 KiB QD32 sequential reads of a monolithicSparse VMDK, $COUNT requests"
    for (( r = 1; r <= ROUNDS; r++ )); do
        cat "$sparse" >/dev/null
        "$SCUSE" bench -f vmdk --rw read --bs 4096 --qd 32 --count "$COUNT" --output=json "$sparse" \
            >"$BENCH_DIR/vbench.out" || die "scuse bench failed: $(cat "$BENCH_DIR/vbench.out")"
        s=$(sed -n 's/.*"iops": \([0-9.]*\).*/\1/p' "$BENCH_DIR/vbench.out")
        cat "$sparse" >/dev/null
        qemu-img bench -f vmdk -s 4k -d 32 -c "$COUNT" "$sparse" >"$BENCH_DIR/vbench.out" ||
            die "qemu-img bench failed: $(cat "$BENCH_DIR/vbench.out")"
        q=$(awk -v c="$COUNT" '/^Run completed in/ {printf "%.1f", c / $4}' "$BENCH_DIR/vbench.out")
        si+=("$s")
        qi+=("$q")
        ratios+=("$(awk -v a="$s" -v b="$q" 'BEGIN {printf "%.4f", (b > 0 ? a / b : 0)}')")
        printf "   round %d: scuse %.0f IOPS | qemu-img %.0f IOPS | ratio %.2f\n" "$r" "$s" "$q" "${ratios[-1]}"
    done
    local line
    line=$(printf 'scuse %.0f IOPS, qemu-img %.0f IOPS, ratio %.2f' "$(printf '%s\n' "${si[@]}" | median)" \
        "$(printf '%s\n' "${qi[@]}" | median)" "$(printf '%s\n' "${ratios[@]}" | median)")
    echo "   median: $line"
    summary+=("$(printf '%-14s %s' "sparse reads:" "$line")")
}

convert_case "stream->raw" "$stream" -O raw
convert_case "raw->stream" "$src" -f raw -O vmdk -o subformat=streamOptimized
bench_case
echo
echo "== summary (medians; convert ratio = scuse/qemu-img time, goals <= 0.3 and <= 0.4; reads = scuse/qemu-img IOPS, goal >= 2)"
for l in "${summary[@]}"; do
    echo "$l"
done
