# Shared helpers for the image-level tests (tests/formats/test_*.sh).
#
# Source it first thing:   . "$(dirname "$0")/lib/common.sh"
#
# Environment (set by tests/CMakeLists.txt):
#   SCUSE           the scuse binary under test
#   SCUSE_TEST_TMP  scratch directory for this test (wiped at start)
#   SCUSE_SRC       repository root
#
# Style: every check that fails calls fail(), which records the failure and
# lets the script go on, so one bug does not hide the next; finish() prints
# a summary and exits 1 if anything failed. Setup commands (qemu-img,
# qemu-io) are run plainly under `set -e`: if the oracle itself fails the
# test is broken and should stop at once.
set -euo pipefail

LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TEST_NAME=$(basename "$0" .sh)
: "${SCUSE_SRC:=$(cd "$LIB_DIR/../../.." && pwd)}"
: "${SCUSE:=$SCUSE_SRC/build/scuse}"
: "${SCUSE_TEST_TMP:=${TMPDIR:-/tmp}/scuse-formats/$TEST_NAME}"
case "$SCUSE" in /*) ;; *) SCUSE=$(cd "$(dirname "$SCUSE")" && pwd)/$(basename "$SCUSE") ;; esac

# The oracles and the input makers: without any of them, skip (77) with
# a line naming it (build.sh test fails on a skip; see tests/lib/need.sh).
. "$LIB_DIR/../../lib/need.sh"
need qemu-img qemu-io python3 timeout cmp
# The real interpreter, once: a pyenv shim costs ~0.7 s per call under load.
# -S (no site packages: only the standard library is used) halves the
# start-up time again; the suite starts python some hundred times.
PYTHON=$(command python3 -c 'import sys; print(sys.executable)')
python3() { "$PYTHON" -S "$@"; }
if [ ! -x "$SCUSE" ]; then
    echo "FAIL: scuse binary '$SCUSE' not found or not executable" >&2
    exit 1
fi

rm -rf "$SCUSE_TEST_TMP"
mkdir -p "$SCUSE_TEST_TMP"
cd "$SCUSE_TEST_TMP"
T=$SCUSE_TEST_TMP
# W: where the helpers keep their scratch files (.out, .err, ...); a lane
# (see below) has its own.
W=$T

# Quiet oracles; make their failures loud and fatal.
qimg() { qemu-img "$@"; }
qio() { # qemu-io ARGS... IMG: output discarded unless it fails
    local out
    if ! out=$(qemu-io "$@" 2>&1); then
        echo "SETUP ERROR: qemu-io $*" >&2
        echo "$out" >&2
        exit 1
    fi
    # qemu-io exits 0 even when a -c command fails; catch that too.
    local re='[Ee]rror|[Ff]ailed|[Ii]nvalid|[Nn]ot supported'
    if [[ $out =~ $re ]]; then
        echo "SETUP ERROR: qemu-io $*" >&2
        echo "$out" >&2
        exit 1
    fi
}

FAILS=0
CASES=0
LAST_T=$EPOCHREALTIME
CASE=""
CASE_FAILS=0

fail() {
    FAILS=$((FAILS + 1))
    CASE_FAILS=$((CASE_FAILS + 1))
    echo "  FAIL [${CASE:-$TEST_NAME}]: $*" >&2
}

# case_begin NAME / case_end: one "ok"/"FAIL" line per case.
case_begin() {
    CASE=$1
    CASE_FAILS=0
    CASES=$((CASES + 1))
}
case_end() {
    # time since the previous case ended: this case's setup and checks
    local now=$EPOCHREALTIME
    local ms=$(( (${now/./} - ${LAST_T/./}) / 1000 ))
    LAST_T=$now
    if [ "$CASE_FAILS" -eq 0 ]; then
        printf 'ok   %s (%d ms)\n' "$CASE" "$ms"
    else
        printf 'FAIL %s (%d problem(s), %d ms)\n' "$CASE" "$CASE_FAILS" "$ms"
    fi
    CASE=""
}

finish() {
    echo "----"
    if [ "$FAILS" -ne 0 ]; then
        echo "$TEST_NAME: $FAILS failure(s) in $CASES case(s)"
        exit 1
    fi
    echo "$TEST_NAME: all $CASES case(s) passed"
    exit 0
}

# run CMD...: run a command, never aborting the script. Sets RC, and the
# files $W/.out / $W/.err.
# A crash (exit >= 128) or a sanitizer report is always a failure.
# A hang is caught too: each command gets RUN_TIMEOUT seconds (exit 124).
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
run() {
    RC=0
    timeout -k 5 "$RUN_TIMEOUT" "$@" >"$W/.out" 2>"$W/.err" || RC=$?
    if [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then
        fail "timed out after ${RUN_TIMEOUT}s (hang?): $*"
        RC=999
    elif [ "$RC" -ge 128 ]; then
        fail "crashed (exit $RC): $* -- stderr: $(head -n 5 "$W/.err")"
    elif [ -s "$W/.err" ] && grep -qE 'runtime error:|Sanitizer|SUMMARY: ' "$W/.err"; then
        fail "sanitizer report: $* -- $(grep -m3 -E 'runtime error:|Sanitizer|SUMMARY: ' "$W/.err")"
    fi
    return 0
}

# expect_exit CODE CMD...: run, and fail unless it exits with CODE.
# Returns 0 when the code matched, 1 otherwise (use `|| true` freely).
expect_exit() {
    local want=$1
    shift
    run "$@"
    if [ "$RC" -ne "$want" ]; then
        [ "$RC" -ge 128 ] || [ "$RC" -eq 999 ] || fail "expected exit $want, got $RC: $* -- stderr: $(head -n 3 "$W/.err")"
        return 1
    fi
    return 0
}

# scuse ARGS...: shorthand for run "$SCUSE" ARGS...
scuse() { run "$SCUSE" "$@"; }

# stderr_one_line: the last command printed exactly one line on stderr.
stderr_one_line() {
    local n
    n=$(awk 'END { print NR }' "$W/.err")
    if [ "$n" -ne 1 ]; then
        fail "expected exactly one line on stderr, got $n: $(head -n 4 "$W/.err" | tr '\n' '|')"
        return 1
    fi
    return 0
}

# stderr_names STRING: the last command's stderr contains STRING (fixed).
stderr_names() {
    if ! grep -qF -- "$1" "$W/.err"; then
        fail "stderr should name '$1': $(head -n 2 "$W/.err" | tr '\n' '|')"
        return 1
    fi
    return 0
}

# stderr_mentions REGEX [WHAT]: the last command's stderr matches REGEX (grep -Ei).
stderr_mentions() {
    if ! grep -qEi -- "$1" "$W/.err"; then
        fail "stderr should mention ${2:-/$1/}: $(head -n 2 "$W/.err" | tr '\n' '|')"
        return 1
    fi
    return 0
}

# gen_writes SIZE SEED COUNT [extra args for iogen.py]: qemu-io -c args.
gen_writes() {
    python3 "$LIB_DIR/iogen.py" "$@"
}

# fill [-f FMT] IMG SIZE SEED COUNT [iogen args]: random pattern writes
# with qemu-io (-f: the format named, not probed: a fixed VHD probes as raw).
fill() {
    local -a fmt=()
    [ "$1" != -f ] || { fmt=(-f "$2"); shift 2; }
    local img=$1
    shift
    local -a cmds
    local text
    text=$(gen_writes "$@") || { echo "SETUP ERROR: iogen.py $*" >&2; exit 1; }
    mapfile -t cmds <<<"$text"
    local -a args=()
    local c
    for c in "${cmds[@]}"; do [ -z "$c" ] || args+=(-c "$c"); done
    [ ${#args[@]} -eq 0 ] || qio "${fmt[@]}" "${args[@]}" "$img"
}

# qwrite IMG 'cmd' ['cmd'...]: qemu-io commands on IMG.
qwrite() {
    local img=$1
    shift
    local -a args=()
    local c
    for c in "$@"; do args+=(-c "$c"); done
    qio "${args[@]}" "$img"
}

# check_convert IMG [-f FMT]: scuse convert == qemu-img convert, byte for
# byte. qemu-img's output is kept as $W/.want.raw (for check_map --raw).
# With SPARSE_CMP set, only data extents are read (for huge sparse images).
check_convert() {
    local img=$1
    shift
    local want="$W/.want.raw" got="$W/.got.raw"
    qemu-img convert "$@" -O raw "$img" "$want"
    if expect_exit 0 "$SCUSE" convert "$@" -O raw "$img" "$got"; then
        local cmp_out
        if [ -n "${SPARSE_CMP:-}" ]; then
            # huge sparse outputs: compare data extents only
            if ! cmp_out=$(python3 "$LIB_DIR/sparsecmp.py" "$want" "$got" 2>&1); then
                fail "convert of $img differs from qemu-img: $cmp_out"
            fi
        elif ! cmp_out=$(cmp "$want" "$got" 2>&1); then
            fail "convert of $img differs from qemu-img: $cmp_out ($(python3 "$LIB_DIR/rawdiff.py" "$want" "$got"))"
        fi
    fi
}

# check_map IMG [mapcmp options...] [-- -f FMT]: scuse map vs qemu-img map.
check_map() {
    local img=$1
    shift
    local -a mopts=() fopts=()
    while [ $# -gt 0 ]; do
        if [ "$1" = "--" ]; then
            shift
            fopts=("$@")
            break
        fi
        mopts+=("$1")
        shift
    done
    qemu-img map "${fopts[@]}" --output=json "$img" >"$W/.qmap.json"
    if expect_exit 0 "$SCUSE" map "${fopts[@]}" --output=json "$img"; then
        local msg
        if ! msg=$(python3 "$LIB_DIR/mapcmp.py" "${mopts[@]}" "$W/.qmap.json" "$W/.out" 2>&1); then
            fail "map of $img differs from qemu-img map: $msg"
        fi
    fi
}

# check_image IMG [mapcmp options...] [-- -f FMT]: convert and map; zero
# claims in scuse's map are checked against qemu-img's conversion.
check_image() {
    local img=$1
    shift
    local -a f=()
    local a seen=0
    for a in "$@"; do
        if [ $seen -eq 1 ]; then f+=("$a"); fi
        if [ "$a" = "--" ]; then seen=1; fi
    done
    check_convert "$img" "${f[@]}"
    check_map "$img" --raw "$W/.want.raw" "$@"
}

# qmap_has IMG PYEXPR: assert a property of qemu-img's own map (verifies
# that the oracle built the image we meant). PYEXPR sees `rows`.
qmap_has() {
    local img=$1 expr=$2
    qemu-img map --output=json "$img" >"$W/.qmap.json"
    if ! python3 -c "
import json,sys
rows=json.load(open(sys.argv[1]))
sys.exit(0 if ($expr) else 1)" "$W/.qmap.json"; then
        echo "SETUP ERROR: qemu-img map of $img does not satisfy: $expr" >&2
        cat "$W/.qmap.json" >&2
        exit 1
    fi
}

# make_dirty IMG 'cmd'...: run qemu-io commands then `abort`, leaving a
# lazy-refcounts image dirty; checks that it is.
make_dirty() {
    local img=$1
    shift
    local -a args=()
    local c
    for c in "$@"; do args+=(-c "$c"); done
    # (|| true inside, so the subshell waits and its "Aborted" stays quiet)
    (qemu-io "${args[@]}" -c abort "$img" || true) >/dev/null 2>&1
    if ! qemu-img info --output=json "$img" | grep "\"dirty-flag\": true" >/dev/null; then
        echo "SETUP ERROR: $img is not dirty after qemu-io abort" >&2
        exit 1
    fi
}

# Lanes: independent groups of cases run concurrently (one per CPU, at most
# 3), each in the background with its own scratch files ($W) and its own
# log; join_lanes waits for all, prints their logs in order and adds up
# their results. A lane that stops on a SETUP ERROR counts as a failure.
LANES=()
MAX_LANES=$(nproc 2>/dev/null || echo 2)
[ "$MAX_LANES" -le 3 ] || MAX_LANES=3
lane() { # NAME FUNCTION [ARGS...]
    local name=$1
    shift
    while [ "$(jobs -pr | wc -l)" -ge "$MAX_LANES" ]; do wait -n || true; done
    (
        W=$T/.lane-$name
        mkdir -p "$W"
        FAILS=0 CASES=0 LAST_T=$EPOCHREALTIME
        "$@"
        echo "$FAILS $CASES" >"$W/.counts"
    ) >"$T/.lane-$name.log" 2>&1 &
    LANES+=("$name")
}
join_lanes() {
    wait || true
    local name f c
    for name in "${LANES[@]}"; do
        cat "$T/.lane-$name.log"
        if [ -s "$T/.lane-$name/.counts" ]; then
            read -r f c <"$T/.lane-$name/.counts"
            FAILS=$((FAILS + f))
            CASES=$((CASES + c))
        else
            echo "FAIL lane '$name' stopped early (see above)"
            FAILS=$((FAILS + 1))
        fi
    done
    LANES=()
}

# same_disk_size QEMU.json SCUSE.json IMG: `info`'s actual-size (disk
# size) is qemu-img's, per image (--backing-chain gives a list): for a
# descriptor, the sum of its extent files.
same_disk_size() {
    local why
    why=$(python3 - "$1" "$2" <<'PY'
import json, sys
q, s = (json.load(open(p)) for p in sys.argv[1:3])
q, s = (x if isinstance(x, list) else [x] for x in (q, s))
if len(q) != len(s):
    print(f"qemu-img describes {len(q)} images, scuse {len(s)}")
for a, b in zip(q, s):
    if "actual-size" not in a or "actual-size" not in b:
        print(f"{a.get('filename')}: no actual-size (qemu-img: {'actual-size' in a}, scuse: {'actual-size' in b})")
    elif a["actual-size"] != b["actual-size"]:
        print(f"{a.get('filename')}: scuse says {b['actual-size']} bytes, qemu-img {a['actual-size']}")
    else:
        continue
    break
PY
)
    [ -z "$why" ] || fail "disk size of $3: $why"
}
