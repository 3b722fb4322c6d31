# Helpers for the write-path tests (test_qcow2_write.sh, test_raw_write.sh,
# test_locks.sh, test_io.sh). Source after lib/common.sh.
#
# The judge is always QEMU: qemu-img compare / check / map / info and
# qemu-io read -P. lib/wsim.py generates random runs and keeps the raw
# shadow that the image must equal.
WSIM=$LIB_DIR/wsim.py
Q2=$LIB_DIR/qcow2.py
QRC=$LIB_DIR/qcow2rc.py
WCMP=$LIB_DIR/wcmp.py
wsim() { python3 "$WSIM" "$@"; }

# Argument order: these tests put the -c commands first (`scuse io -c CMD
# IMG`, as qemu-io documents it); test_io.sh checks `scuse io IMG -c CMD`.

# io_batches IMG CMDFILE [scuse io options...]: run CMDFILE's commands with
# `scuse io`, one run per batch (batches are separated by `--` lines).
# Stops at the first run that does not exit 0 (returns 1).
io_batches() {
    local img=$1 file=$2
    shift 2
    local -a args=()
    local line n=0
    while :; do
        line=
        IFS= read -r line || [ -n "$line" ] || line="--EOF"
        if [ "$line" = "--" ] || [ "$line" = "--EOF" ]; then
            if [ ${#args[@]} -gt 0 ]; then
                n=$((n + 1))
                run "$SCUSE" io "$@" "${args[@]}" "$img"
                if [ "$RC" -ne 0 ]; then
                    [ "$RC" -ge 128 ] || fail "scuse io (batch $n of $file) on $img exited $RC: $(head -n 3 "$W/.err" | tr '\n' '|')"
                    return 1
                fi
                args=()
            fi
            [ "$line" = "--" ] || break
        elif [ -n "$line" ]; then
            args+=(-c "$line")
        fi
    done <"$file"
    return 0
}

# same_content IMG SHADOW [FMT]: IMG reads as SHADOW. Exactly, by
# `qemu-img compare`, when the shadow is certain; otherwise (discards that
# may read back as 0 or as the old data) byte by byte with wsim.py verify on
# qemu-img's raw export.
same_content() {
    local img=$1 shadow=$2 fmt=${3:-qcow2} out detail
    if [ ! -e "$shadow.zok" ]; then
        if ! out=$(qemu-img compare -f "$fmt" -F raw "$img" "$shadow" 2>&1); then
            detail=
            if qemu-img convert -f "$fmt" -O raw "$img" "$W/.got.raw" 2>/dev/null; then
                detail=$(wsim verify "$W/.got.raw" "$shadow" || true)
            fi
            fail "qemu-img compare $img $shadow: $(echo "$out" | head -n 2 | tr '\n' ' ')${detail:+($detail)}"
        fi
    else
        if ! out=$(qemu-img convert -f "$fmt" -O raw "$img" "$W/.got.raw" 2>&1); then
            fail "qemu-img cannot read $img: $out"
        elif ! out=$(wsim verify "$W/.got.raw" "$shadow"); then
            fail "$img differs from its shadow (discarded bytes may read 0 or old data): $out"
        fi
    fi
    rm -f "$W/.got.raw"
}

# qcheck IMG [WANT...]: `qemu-img check IMG` exits with one of WANT
# (default 0). Sets QRC_RC. Like the other judges here it records a
# failure and returns 0, so that a lane goes on under set -e.
qcheck() {
    local img=$1 out
    shift
    local want=("${@:-0}") w
    QRC_RC=0
    out=$(qemu-img check "$img" 2>&1) || QRC_RC=$?
    for w in "${want[@]}"; do [ "$QRC_RC" -eq "$w" ] && return 0; done
    fail "qemu-img check $img exited $QRC_RC (want ${want[*]}): $(echo "$out" | grep -v '^$' | head -n 6 | tr '\n' '|')"
    return 0
}

# qread IMG [-f FMT] CMD...: qemu-io -r runs the read -P commands; any
# pattern mismatch or error fails the case.
qread() {
    local img=$1
    shift
    local -a pre=() args=()
    if [ "${1:-}" = "-f" ]; then
        pre=(-f "$2")
        shift 2
    fi
    local c out rc=0
    for c in "$@"; do [ -z "$c" ] || args+=(-c "$c"); done
    [ ${#args[@]} -gt 0 ] || return 0
    out=$(qemu-io -r "${pre[@]}" "${args[@]}" "$img" 2>&1) || rc=$?
    if [ $rc -ne 0 ] || grep -qiE 'verification failed|error|failed|invalid' <<<"$out"; then
        # name the commands that failed: qemu-io prints the failure after
        # the command's own output, so show the lines around it
        fail "qemu-io read-back of $img: $(grep -iE -m 3 'verification failed|error|failed|invalid' <<<"$out" | tr '\n' '|') (reads: $(printf '%s; ' "$@" | head -c 600))"
    fi
    return 0
}

# sample_reads IMG SHADOW SEED [N] [-f FMT]: qemu-io read -P of N ranges of
# uniform shadow content.
sample_reads() {
    local img=$1 shadow=$2 seed=$3 n=${4:-16}
    shift 4 || shift $#
    local -a cmds
    mapfile -t cmds < <(wsim sample "$shadow" "$n" "$seed")
    qread "$img" "$@" "${cmds[@]}"
}

# kind_at IMG GUEST_OFF: qcow2.py's L2 entry kind for the cluster at
# GUEST_OFF ("unallocated" without an entry).
kind_at() {
    local hex k
    hex=$(printf '0x%x' "$2")
    k=$(python3 "$Q2" clusters "$1" | awk -v g="$hex" '$1 == g { $1 = ""; $NF = ""; sub(/^ /, ""); sub(/ $/, ""); print; exit }')
    echo "${k:-unallocated}"
}
need_kind_at() { # IMG OFF KIND-REGEX: setup assertion
    local k
    k=$(kind_at "$1" "$2")
    if ! [[ $k =~ $3 ]]; then
        echo "SETUP ERROR: $1 at $2: L2 entry is '$k', wanted /$3/" >&2
        exit 1
    fi
}
# need_map_at IMG OFF PYEXPR: qemu-img map's row covering OFF satisfies
# PYEXPR (it sees `r`), e.g. 'r["zero"] and not r["data"]'.
need_map_at() {
    local img=$1 off=$2 expr=$3
    qemu-img map --output=json "$img" >"$W/.qmap.json"
    if ! python3 -c "
import json,sys
off=int(sys.argv[2])
for r in json.load(open(sys.argv[1])):
    if r['start'] <= off < r['start'] + r['length']:
        sys.exit(0 if ($expr) else 1)
sys.exit(1)" "$W/.qmap.json" "$off"; then
        echo "SETUP ERROR: qemu-img map of $img at $off does not satisfy: $expr" >&2
        cat "$W/.qmap.json" >&2
        exit 1
    fi
}

# sum_of FILE...: checksums, to prove files unchanged.
sum_of() { cksum "$@" | awk '{ print $1, $2 }' | tr '\n' ' '; }

# lock_bytes FILE: the bytes of FILE that someone holds an OFD lock on, as
# /proc/locks shows them ("100 101 103 201 203"), each followed by W when
# the lock is a write lock.
lock_bytes() {
    python3 -c '
import os, sys
st = os.stat(sys.argv[1])
dev = "%02x:%02x:%d" % (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
out = set()
for line in open("/proc/locks"):
    f = line.split()
    if "->" in f:  # a blocked waiter
        continue
    if len(f) >= 8 and f[1] == "OFDLCK" and f[5] == dev:
        end = f[7]
        for b in range(int(f[6]), (int(end) if end != "EOF" else int(f[6])) + 1):
            out.add(str(b) + ("W" if f[3] == "WRITE" else ""))
print(" ".join(sorted(out, key=lambda x: int(x.rstrip("W")))))' "$1"
}

# wait_locks FILE [SECONDS]: until someone holds a lock on FILE.
wait_locks() {
    local i
    for ((i = 0; i < ${2:-10} * 100; i++)); do
        [ -z "$(lock_bytes "$1")" ] || return 0
        sleep 0.01
    done
    return 1
}
