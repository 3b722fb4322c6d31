# Sourced by the benchmarks (convert.sh, peer.sh, vmdk.sh, vhd.sh): where
# things are and what both sides need. Sets top, SCUSE (default
# build/scuse), BENCH_DIR (default build/bench; made, absolute), CC (for
# gen.c) and die.
top=$(cd "$(dirname "$0")/../.." && pwd)
SCUSE=${SCUSE:-$top/build/scuse}
BENCH_DIR=${BENCH_DIR:-$top/build/bench}

die() { echo "$(basename "$0"): $*" >&2; exit 1; }
[ -x "$SCUSE" ] || die "SCUSE=$SCUSE is not an executable"
command -v qemu-img >/dev/null || die "qemu-img not found"
CC=${CC:-$(command -v cc || command -v gcc)} || die "no C compiler for the generator"

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
