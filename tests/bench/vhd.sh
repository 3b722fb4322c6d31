#!/usr/bin/env bash
# VHD and VHDX benchmarks (issue 12 point 6), side by side in one run, on
# a ~2:1 compressible source (gen.c) converted by qemu-img:
#   4 KiB QD32 reads of a dynamic VHD, sequential and strided:
#       scuse bench -f vpc  vs  qemu-img bench -f vpc    (goal: >= 2x IOPS)
#   convert -O raw of a 1 GiB dynamic VHD and of a 1 GiB dynamic VHDX:
#       scuse convert       vs  qemu-img convert -m 8 -W (goal: <= 0.5 time)
# Each figure is the median of ROUNDS alternating rounds; the image is read
# once (cat) before every run so both tools start warm, outputs go to fresh
# files that are deleted between runs (sync before each run, untimed).
# Every output is checked once against qemu-img's before the timed rounds.
# Each round also times cp of the raw source (the same bytes, no format):
# both tools copy through the page cache, so that is the floor neither can
# go under, and it says how far from 0.5 of qemu-img's time the floor is.
#
# Env: SCUSE (default build/scuse), BENCH_DIR (default build/bench),
#      SIZE_MIB (default 1024), ROUNDS (default 3), KEEP=1 keeps the images.
set -euo pipefail

. "$(dirname "$0")/lib.sh"
SIZE_MIB=${SIZE_MIB:-1024}
ROUNDS=${ROUNDS:-3}

[ -x /usr/bin/time ] || die "/usr/bin/time not found (Debian package time)"

src=$BENCH_DIR/vhd-src.raw
vhd=$BENCH_DIR/vhd-dyn.vhd
vhdx=$BENCH_DIR/vhd-dyn.vhdx
outf=$BENCH_DIR/vhd-out.raw
tfile=$BENCH_DIR/vhd-time.txt
jout=$BENCH_DIR/vhd-bench.txt
cleanup() {
    rm -f "$outf" "$tfile" "$jout" "$BENCH_DIR/vhd-gen" "$BENCH_DIR/vhd-want.raw"
    [ "${KEEP:-0}" = 1 ] || rm -f "$src" "$vhd" "$vhdx"
}
trap cleanup EXIT

median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

echo "== VHD/VHDX: scuse against $(qemu-img --version | head -1), $SIZE_MIB MiB, $(nproc) CPUs," \
     "load $(cut -d' ' -f1-3 /proc/loadavg)"
"$CC" -O2 -o "$BENCH_DIR/vhd-gen" "$top/tests/bench/gen.c"
[ -f "$src" ] || "$BENCH_DIR/vhd-gen" "$src" "$SIZE_MIB" >/dev/null
[ -f "$vhd" ] || qemu-img convert -f raw -O vpc -o force_size=on "$src" "$vhd"
[ -f "$vhdx" ] || qemu-img convert -f raw -O vhdx "$src" "$vhdx"

# ---- reads: IOPS of each tool's own report
bench_scuse() { # pattern-stride
    cat "$vhd" >/dev/null
    "$SCUSE" bench -f vpc --rw read --bs 4096 --qd 32 --stride "$1" --count 200000 \
        --output=json "$vhd" >"$jout" || die "scuse bench: $(cat "$jout")"
    sed -n 's/.*"iops": \([0-9.]*\).*/\1/p' "$jout"
}
bench_qemu() { # stride
    cat "$vhd" >/dev/null
    qemu-img bench -f vpc -s 4096 -d 32 -S "$1" -c 200000 "$vhd" >"$jout" || die "qemu-img bench: $(cat "$jout")"
    awk '/Run completed in/ {for (i = 1; i <= NF; i++) if ($i == "in") t = $(i + 1)} END {printf "%.0f", 200000 / t}' "$jout"
}
for pat in sequential:4096 strided:65536; do
    name=${pat%%:*} stride=${pat#*:}
    s=() q=() r=()
    for ((i = 0; i < ROUNDS; i++)); do
        if [ $((i % 2)) = 0 ]; then a=$(bench_scuse "$stride"); b=$(bench_qemu "$stride")
        else b=$(bench_qemu "$stride"); a=$(bench_scuse "$stride"); fi
        s+=("$a") q+=("$b") r+=("$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", a / b}')")
    done
    printf '   4 KiB QD32 %-10s reads, dynamic VHD: scuse %8.0f IOPS, qemu-img %8.0f IOPS, ratio %sx (goal >= 2)\n' \
        "$name" "$(printf '%s\n' "${s[@]}" | median)" "$(printf '%s\n' "${q[@]}" | median)" \
        "$(printf '%s\n' "${r[@]}" | median)"
done

# ---- conversions: wall seconds
timed() { # cmd...: prints wall seconds and user+sys CPU seconds
    rm -f "$outf"
    sync
    /usr/bin/time -f "%e %U %S" -o "$tfile" "$@" >/dev/null 2>&1 || die "failed: $*"
    awk '{ printf "%s %.2f\n", $1, $2 + $3 }' "$tfile"
}
for pair in "vpc:$vhd" "vhdx:$vhdx"; do
    fmt=${pair%%:*} img=${pair#*:}
    qemu-img convert -f "$fmt" -O raw "$img" "$BENCH_DIR/vhd-want.raw"
    "$SCUSE" convert -f "$fmt" -O raw "$img" "$outf"
    cmp -s "$BENCH_DIR/vhd-want.raw" "$outf" || die "scuse convert of $img differs from qemu-img's"
    rm -f "$BENCH_DIR/vhd-want.raw"
    s=() q=() r=() sc=() qc=() rc=() f=()
    for ((i = 0; i < ROUNDS; i++)); do
        cat "$img" >/dev/null
        if [ $((i % 2)) = 0 ]; then
            read -r a ac < <(timed "$SCUSE" convert -f "$fmt" -O raw "$img" "$outf")
            cat "$img" >/dev/null
            read -r b bc < <(timed qemu-img convert -m 8 -W -f "$fmt" -O raw "$img" "$outf")
        else
            read -r b bc < <(timed qemu-img convert -m 8 -W -f "$fmt" -O raw "$img" "$outf")
            cat "$img" >/dev/null
            read -r a ac < <(timed "$SCUSE" convert -f "$fmt" -O raw "$img" "$outf")
        fi
        # The floor: the same bytes copied from the raw source by cp, no
        # format at all (what the page cache alone costs on this machine).
        cat "$src" >/dev/null
        read -r c _ < <(timed cp --sparse=always "$src" "$outf")
        f+=("$c")
        s+=("$a") q+=("$b") r+=("$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')")
        sc+=("$ac") qc+=("$bc") rc+=("$(awk -v a="$ac" -v b="$bc" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')")
    done
    # On a shared machine the wall time mostly measures the scheduler;
    # the CPU time (user+sys) is the work each tool did.
    printf '   convert -O raw, dynamic %-5s %d MiB: scuse %6.2f s, qemu-img %6.2f s, ratio %s (goal <= 0.5); CPU user+sys: scuse %.2f s, qemu-img %.2f s, ratio %s\n' \
        "$fmt" "$SIZE_MIB" "$(printf '%s\n' "${s[@]}" | median)" "$(printf '%s\n' "${q[@]}" | median)" \
        "$(printf '%s\n' "${r[@]}" | median)" "$(printf '%s\n' "${sc[@]}" | median)" \
        "$(printf '%s\n' "${qc[@]}" | median)" "$(printf '%s\n' "${rc[@]}" | median)"
    fl=$(printf '%s\n' "${f[@]}" | median)
    printf '     floor (cp --sparse=always of the raw source, same bytes, no format): %.2f s; qemu-img at %s of it, scuse at %s\n' \
        "$fl" "$(awk -v a="$(printf '%s\n' "${q[@]}" | median)" -v b="$fl" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')" \
        "$(awk -v a="$(printf '%s\n' "${s[@]}" | median)" -v b="$fl" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')"
done
