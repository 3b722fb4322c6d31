#!/usr/bin/env bash
# Whole-image conversion benchmark, scuse convert against
# `qemu-img convert -m 8 -W` (peers.md §4.2) with the same options, on a
# ~2:1 compressible 1 GiB source:
#   qcow2 -> raw              (export of a plain qcow2)
#   compressed qcow2 -> raw   (export of a zlib-compressed qcow2)
#   raw -> qcow2              (import)
#   raw -> compressed qcow2   (-c, zlib; the issue's goal: at most 0.4)
# Every output is checked once against the source (cmp for raw, `qemu-img
# compare` and `qemu-img check` for qcow2) before the timed rounds.
#
# Env: SCUSE      scuse binary (default build/scuse)
#      BENCH_DIR  scratch directory (default build/bench)
#      ROUNDS     timed rounds per image and tool (default 3)
#      SIZE_MIB   source size (default 1024)
#      KEEP=1     keep the images afterwards (default: delete the big files)
#      CASES      which conversions (default: all four, see above)
#
# Both tools read the same file with the same page-cache state (the
# source is read once before every timed run) and write a fresh output
# file in BENCH_DIR, deleted between runs. The order alternates each
# round; `sync` runs (untimed) before each run so no earlier output is
# still being written back. Wall and user+sys CPU come from /usr/bin/time
# (bash's `time` as a fallback). Both tools run at their default cache
# mode (since cc05ca1 scuse convert, like qemu-img, does not flush the
# output at the end; before it scuse paid an fdatasync qemu-img did not).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-3}
SIZE_MIB=${SIZE_MIB:-1024}

src=$BENCH_DIR/src.raw
plain=$BENCH_DIR/plain.qcow2
zlib=$BENCH_DIR/zlib.qcow2
out=$BENCH_DIR/out.img

cleanup() {
    rm -f "$out" "$BENCH_DIR/time.txt" "$BENCH_DIR/gen"
    if [ "${KEEP:-0}" != 1 ]; then
        rm -f "$src" "$plain" "$zlib"
    fi
}
trap cleanup EXIT

need=$(( SIZE_MIB * 4 ))   # source + plain + zlib + output, in MiB (upper bound)
avail=$(df -Pm "$BENCH_DIR" | awk 'NR==2 {print $4}')
[ "$avail" -ge "$need" ] || die "$BENCH_DIR has $avail MiB free, needs about $need MiB"

echo "== convert benchmark: $SIZE_MIB MiB source, $ROUNDS rounds, $(nproc) CPUs"
echo "   scuse:    $SCUSE"
echo "   qemu-img: $(qemu-img --version | head -1)"
echo "   scratch:  $BENCH_DIR"

# ---- the source and the two images -------------------------------------
"$CC" -O2 -o "$BENCH_DIR/gen" "$top/tests/bench/gen.c"
"$BENCH_DIR/gen" "$src" "$SIZE_MIB"
qemu-img convert -m 8 -W -f raw -O qcow2 "$src" "$plain"
echo "   compressing (qemu-img convert -c) ..."
qemu-img convert -m 8 -W -c -f raw -O qcow2 "$src" "$zlib"
src_alloc=$(( $(stat -c %b "$src") * $(stat -c %B "$src") ))
zsize=$(stat -c %s "$zlib")
echo "   source: $(( src_alloc >> 20 )) MiB allocated of $SIZE_MIB MiB;" \
     "plain.qcow2 $(( $(stat -c %s "$plain") >> 20 )) MiB;" \
     "zlib.qcow2 $(( zsize >> 20 )) MiB (ratio $(awk -v a="$SIZE_MIB" -v z="$zsize" \
     'BEGIN {printf "%.2f", a * 1048576 / z}'):1 of virtual size)"

# ---- timing --------------------------------------------------------------
have_time=0
[ -x /usr/bin/time ] && have_time=1

# Prints "wall cpu" (seconds) for the command.
timed() {
    rm -f "$out"
    sync                           # no write-back of an earlier run's output meanwhile
    cat "$1" >/dev/null            # the same cache state for both tools
    shift
    if [ "$have_time" = 1 ]; then
        /usr/bin/time -f "%e %U %S" -o "$BENCH_DIR/time.txt" "$@" >/dev/null
        awk '{printf "%.3f %.3f\n", $1, $2 + $3}' "$BENCH_DIR/time.txt"
    else
        local TIMEFORMAT="%R %U %S" t
        t=$( { time "$@" >/dev/null; } 2>&1 )
        echo "$t" | awk '{printf "%.3f %.3f\n", $1, $2 + $3}'
    fi
}

median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else printf "%.4f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# One conversion, for both tools: scuse and qemu-img get the same
# arguments after their own fixed ones (qemu-img: -m 8 -W).
verify() { # label output-format tool
    local label=$1 fmt=$2 tool=$3
    if [ "$fmt" = raw ]; then
        cmp "$src" "$out" || die "$label: $tool output differs from the source"
    else
        qemu-img compare -q -f raw -F qcow2 "$src" "$out" ||
            die "$label: $tool output differs from the source (qemu-img compare)"
        qemu-img check -q -f qcow2 "$out" || die "$label: qemu-img check fails on $tool output"
    fi
}

run_case() { # label input output-format [options...]
    local label=$1 img=$2 fmt=$3 r first
    shift 3
    local -a opts=(-O "$fmt" "$@")
    local s_wall=() s_cpu=() q_wall=() q_cpu=() ratios=()
    echo
    echo "-- $label ($(basename "$img") -> ${opts[*]})"

    # Correctness once: both outputs equal the source.
    rm -f "$out"
    "$SCUSE" convert "${opts[@]}" "$img" "$out" >/dev/null
    verify "$label" "$fmt" scuse
    local ssize qsize
    ssize=$(stat -c %s "$out")
    rm -f "$out"
    qemu-img convert -m 8 -W "${opts[@]}" "$img" "$out"
    verify "$label" "$fmt" qemu-img
    qsize=$(stat -c %s "$out")
    echo "   outputs equal to the source (scuse ok, qemu-img ok); output file sizes: scuse $(( ssize >> 20 )) MiB, qemu-img $(( qsize >> 20 )) MiB"

    for (( r = 1; r <= ROUNDS; r++ )); do
        local s q
        if (( r % 2 )); then
            s=$(timed "$img" "$SCUSE" convert "${opts[@]}" "$img" "$out")
            q=$(timed "$img" qemu-img convert -m 8 -W "${opts[@]}" "$img" "$out")
            first=scuse
        else
            q=$(timed "$img" qemu-img convert -m 8 -W "${opts[@]}" "$img" "$out")
            s=$(timed "$img" "$SCUSE" convert "${opts[@]}" "$img" "$out")
            first=qemu-img
        fi
        rm -f "$out"
        s_wall+=("${s% *}"); s_cpu+=("${s#* }")
        q_wall+=("${q% *}"); q_cpu+=("${q#* }")
        ratios+=("$(awk -v a="${s% *}" -v b="${q% *}" 'BEGIN {printf "%.4f", (b > 0 ? a / b : 0)}')")
        printf "   round %d (%s first): scuse %6.2f s wall %6.2f s cpu | qemu-img %6.2f s wall %6.2f s cpu | ratio %.2f\n" \
            "$r" "$first" "${s% *}" "${s#* }" "${q% *}" "${q#* }" "${ratios[-1]}"
    done

    local gib mw_s mw_q mc_s mc_q mr
    gib=$(awk -v m="$SIZE_MIB" 'BEGIN {print m / 1024}')
    mw_s=$(printf '%s\n' "${s_wall[@]}" | median)
    mw_q=$(printf '%s\n' "${q_wall[@]}" | median)
    mc_s=$(printf '%s\n' "${s_cpu[@]}" | median)
    mc_q=$(printf '%s\n' "${q_cpu[@]}" | median)
    mr=$(printf '%s\n' "${ratios[@]}" | median)
    local line
    line=$(awk -v ws="$mw_s" -v wq="$mw_q" -v r="$mr" -v cs="$mc_s" -v cq="$mc_q" -v g="$gib" \
        'BEGIN {printf "scuse %.2f s, qemu-img %.2f s, ratio %.2f; CPU per GiB: scuse %.2f s, qemu-img %.2f s; scuse %.0f MiB/s",
                ws, wq, r, cs / g, cq / g, g * 1024 / ws}')
    echo "   median: $line"
    summary+=("$(printf '%-15s %s' "$label:" "$line")")
}

summary=()
CASES=${CASES:-export-plain export-compressed import import-compressed}
for c in $CASES; do
    case $c in
    export-plain)      run_case "qcow2->raw" "$plain" raw ;;
    export-compressed) run_case "zlib->raw" "$zlib" raw ;;
    import)            run_case "raw->qcow2" "$src" qcow2 -f raw ;;
    import-compressed) run_case "raw->qcow2 -c" "$src" qcow2 -f raw -c ;;
    *) die "unknown case '$c' (export-plain export-compressed import import-compressed)" ;;
    esac
done

echo
echo "== summary (median of $ROUNDS rounds; ratio = median of per-round scuse/qemu-img wall time)"
for l in "${summary[@]}"; do
    echo "$l"
done
