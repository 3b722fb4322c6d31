#!/usr/bin/env bash
# scuse info vs qemu-img info: JSON (single image and --backing-chain)
# compared key by key with lib/infocmp.py, and the main lines of the human
# output (image:, file format:, virtual size:, backing file:, backing file
# format:, cluster_size:) compared line for line.
. "$(dirname "$0")/lib/common.sh"
Q2=$LIB_DIR/qcow2.py

# info_json IMG [info options]: JSON compare, with and without
# --backing-chain (one python run for both).
info_json() {
    local img=$1
    shift
    local -a pairs=()
    qemu-img info --output=json "$@" "$img" >"$W/.q1.json"
    if expect_exit 0 "$SCUSE" info --output=json "$@" "$img"; then
        cp "$W/.out" "$W/.s1.json"
        pairs+=("$W/.q1.json" "$W/.s1.json")
    fi
    [ -n "${NO_CHAIN:-}" ] ||
    qemu-img info --output=json --backing-chain "$@" "$img" >"$W/.q2.json"
    if [ -z "${NO_CHAIN:-}" ] && expect_exit 0 "$SCUSE" info --output=json --backing-chain "$@" "$img"; then
        cp "$W/.out" "$W/.s2.json"
        pairs+=("$W/.q2.json" "$W/.s2.json")
    fi
    local msg
    if [ ${#pairs[@]} -gt 0 ] && ! msg=$(python3 "$LIB_DIR/infocmp.py" "${pairs[@]}" 2>&1); then
        fail "info --output=json [--backing-chain] $* $img: $msg"
    fi
}

# info_human IMG [info options]: the main human lines, in order.
MAIN_LINES='^(image|file format|virtual size|backing file|backing file format|cluster_size):'
info_human() {
    local img=$1
    shift
    qemu-img info "$@" "$img" | grep -E "$MAIN_LINES" >"$W/.qhuman" || true
    if expect_exit 0 "$SCUSE" info "$@" "$img"; then
        grep -E "$MAIN_LINES" "$W/.out" >"$W/.shuman" || true
        if ! diff -u "$W/.qhuman" "$W/.shuman" >"$W/.hdiff"; then
            fail "info $* $img (human): $(grep -E '^[-+][^-+]' "$W/.hdiff" | head -n 6 | tr '\n' '|')"
        fi
        if [ ! -s "$W/.shuman" ]; then fail "info $* $img (human): no main lines at all"; fi
    fi
}

# icase NAME IMG [info options]: JSON and human, with and without chain.
icase() {
    case_begin "$1"
    local img=$2
    shift 2
    info_json "$img" "$@"
    info_human "$img" "$@"
    info_human "$img" --backing-chain "$@"
    case_end
}

size=$((3 * 1024 * 1024))
qimg create -q -f qcow2 -o compat=0.10 v2.qcow2 $size
qwrite v2.qcow2 "write -P 0x11 0 100k"
icase "v2 (compat=0.10)" v2.qcow2

qimg create -q -f qcow2 v3.qcow2 $((size + 512))
qwrite v3.qcow2 "write -P 0x11 0 100k"
icase "v3, size not cluster aligned" v3.qcow2
icase "v3 with -f qcow2" v3.qcow2 -f qcow2

for rb in 1 64; do
    qimg create -q -f qcow2 -o refcount_bits=$rb,cluster_size=4k rb$rb.qcow2 $size
    icase "refcount_bits=$rb, 4k clusters" rb$rb.qcow2
done

qimg create -q -f qcow2 -o compression_type=zstd,cluster_size=2M zstd.qcow2 $((8 * 1024 * 1024))
qwrite zstd.qcow2 "write -c -P 0x22 2M 2M"
icase "zstd, 2M clusters" zstd.qcow2

qimg create -q -f qcow2 -o extended_l2=on,cluster_size=128k xl2.qcow2 $size
qwrite xl2.qcow2 "write -P 0x33 4k 4k"
icase "extended L2, 128k clusters" xl2.qcow2

qimg create -q -f qcow2 -o lazy_refcounts=on lazy.qcow2 $size
icase "lazy refcounts, clean" lazy.qcow2
cp lazy.qcow2 dirty.qcow2
make_dirty dirty.qcow2 "write -P 0x44 0 64k"
icase "lazy refcounts, dirty (dirty-flag true)" dirty.qcow2

cp v3.qcow2 corrupt.qcow2
python3 "$Q2" set corrupt.qcow2 incompatible_features 2
icase "marked corrupt (corrupt: true)" corrupt.qcow2

qimg create -q -f qcow2 -o data_file=ext.data,data_file_raw=on ext.qcow2 $size
icase "external data file (data-file, data-file-raw)" ext.qcow2

qimg create -q -f qcow2 snap.qcow2 $size
qwrite snap.qcow2 "write -P 0x55 0 1M"
qimg snapshot -c first snap.qcow2
qwrite snap.qcow2 "write -P 0x56 0 64k"
qimg snapshot -c "second one" snap.qcow2
qimg snapshot -c 3rd snap.qcow2
qimg snapshot -d "second one" snap.qcow2
qimg snapshot -c last snap.qcow2
icase "internal snapshots (one deleted)" snap.qcow2

# a fresh image whose one snapshot table ends the file without the last
# entry's padding (see test_qcow2_read.sh)
qimg create -q -f qcow2 snap-eof.qcow2 1M
qimg snapshot -c s1 snap-eof.qcow2
icase "snapshot table at the end of the file" snap-eof.qcow2

truncate -s 5M sparse.raw
printf 'data' | dd of=sparse.raw bs=1 seek=100000 conv=notrunc status=none
icase "raw, probed" sparse.raw
icase "raw, -f raw" sparse.raw -f raw

# A 3-deep chain with relative names in subdirectories, a raw base at the
# bottom, looked at from another directory.
mkdir -p chain/d1/d2 elsewhere
qimg create -q -f raw chain/base.raw $size
(cd chain/d1 && qimg create -q -f qcow2 -o compat=0.10 -b ../base.raw -F raw mid.qcow2 $size)
(cd chain/d1/d2 && qimg create -q -f qcow2 -b ../mid.qcow2 -F qcow2 top.qcow2 $size)
cd elsewhere
icase "3-deep chain, relative names, from another cwd" ../chain/d1/d2/top.qcow2
icase "chain, top named by an absolute path" "$T/chain/d1/d2/top.qcow2"
cd "$T/chain/d1/d2"
icase "chain, from the top image's directory" top.qcow2
cd "$T"
# an absolute backing name
qimg create -q -f qcow2 -b "$T/v3.qcow2" -F qcow2 absback.qcow2 $((size + 512))
icase "absolute backing file name" absback.qcow2
# a backing file larger and smaller than the overlay
qimg create -q -f qcow2 -b v3.qcow2 -F qcow2 bigger.qcow2 $((2 * size))
icase "overlay larger than its backing file" bigger.qcow2
qimg create -q -f qcow2 -b v3.qcow2 -F qcow2 smaller.qcow2 1M
icase "overlay smaller than its backing file" smaller.qcow2

# The backing format not recorded: qemu-img info still describes the top
# image (no backing-filename-format); without --backing-chain scuse must
# too. (With --backing-chain scuse refuses: see test_malformed.sh.)
qimg create -q -f qcow2 -b v3.qcow2 -F qcow2 nofmt.qcow2 $size
python3 "$Q2" drop-ext nofmt.qcow2 0xe2792aca
case_begin "backing format not recorded, info without --backing-chain"
NO_CHAIN=1 info_json nofmt.qcow2
info_human nofmt.qcow2
case_end

finish
