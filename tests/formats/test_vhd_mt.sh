#!/usr/bin/env bash
# VHD (vpc) writes from many threads at once (label concurrency: also run
# under ThreadSanitizer by ./build.sh tsan): scuse bench randwrite with 4
# dispatcher workers and 32 commands in flight into a differencing disk
# (every write sets bitmap bits, first writes allocate blocks) and into a
# dynamic disk with small blocks (allocation races). Judged by lib/vhd.py's
# export (every 4 KiB holds the pattern or what it held before) and by
# scuse check.
. "$(dirname "$0")/lib/common.sh"
V=$LIB_DIR/vhd.py
vhd() { python3 "$V" "$@"; }

vcheck() {
    run "$SCUSE" check "$1"
    [ "$RC" -eq 0 ] || fail "scuse check $1 exited $RC: $(cat "$W/.err" "$W/.out" | head -n 4 | tr '\n' '|')"
}

# ---------------------------------------------------------------------------
# concurrent writers: scuse bench randwrite (4 workers, QD 32) into a
#    child and into a dynamic disk; every 4 KiB then holds the pattern or
#    what was there before (parent data / zeros), and the image checks clean.
sec_mt() {
    local size=$((32 << 20)) kind
    for kind in child dynamic; do
        case_begin "bench randwrite, 4 workers, into a $kind disk"
        rm -f p.vhd m.vhd
        if [ $kind = child ]; then
            qimg create -q -f vpc -o force_size=on p.vhd $size
            fill -f vpc p.vhd $size 55 20 --maxlen $((size / 8))
            "$SCUSE" create -q -f vpc -o block_size=64k -b p.vhd -F vpc m.vhd
        else
            "$SCUSE" create -q -f vpc -o force_size=on,block_size=64k m.vhd $size
        fi
        vhd export m.vhd before.raw
        if expect_exit 0 "$SCUSE" bench --rw randwrite --bs 4k --qd 32 --workers 4 --count 6000 --pattern 0x5e m.vhd; then
            vhd export m.vhd after.raw
            python3 - before.raw after.raw <<'PY' || fail "a 4 KiB block holds neither its old data nor the pattern"
import sys
a, b = (open(p, "rb").read() for p in sys.argv[1:3])
new = bytes([0x5e]) * 4096
bad = [i for i in range(0, len(a), 4096) if b[i:i + 4096] not in (a[i:i + 4096], new)]
written = sum(1 for i in range(0, len(a), 4096) if b[i:i + 4096] == new and a[i:i + 4096] != new)
if bad or written < 100:
    print(f"bad blocks at {bad[:5]}, {written} written"); sys.exit(1)
PY
        fi
        vcheck m.vhd 0
        case_end
    done
    rm -f ./*.vhd ./*.raw
}

sec_mt
finish
