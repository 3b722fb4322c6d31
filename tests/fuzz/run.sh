#!/usr/bin/env bash
# Seed a corpus and run a libFuzzer target briefly.
#   run.sh BINARY CORPUS_DIR
# A target with its own seed generator, tests/fuzz/seeds_NAME.py for
# fuzz_NAME, gets its seeds; the others get small qcow2 images.
# Env: FUZZ_TIME (seconds, default 20).
# stderr of the target is closed (-close_fd_mask=2): the library logs one
# line per rejected image; libFuzzer and sanitizer reports still appear.
# Exits non-zero when the fuzzer finds a crash, leak or timeout; the
# reproducer is left in CORPUS_DIR/../artifacts-<name>/.
set -euo pipefail

bin=${1:?usage: run.sh BINARY CORPUS_DIR}
corpus=${2:?usage: run.sh BINARY CORPUS_DIR}
name=$(basename "$bin")
time_s=${FUZZ_TIME:-20}

mkdir -p "$corpus"
corpus=$(cd "$corpus" && pwd)
artifacts="$(dirname "$corpus")/artifacts-$name"
mkdir -p "$artifacts"

. "$(dirname "$0")/../lib/scratch.sh"
seed_dir=$(scratch_dir "${TMPDIR:-/tmp}/scuse-fuzz-seed.")
trap 'rm -rf "$seed_dir"' EXIT


# One seed: keep it if it is a sensible size, under the name it was made.
keep() {
    local f=$1 n
    n=$(stat -c %s "$f")
    if [ "$n" -gt 65536 ]; then
        echo "run.sh: seed $(basename "$f") is $n bytes (over 64 KiB), skipped" >&2
        return 0
    fi
    cp "$f" "$corpus/seed-$(basename "$f")"
}

# Compressible, not-all-the-same guest data (some text, some patterns).
guest_data() { # file size
    python3 - "$1" "$2" <<'EOF'
import sys
path, size = sys.argv[1], int(sys.argv[2])
words = b"the quick brown fox jumps over a lazy qcow2 cluster header ".split()
out, i = bytearray(), 0
while len(out) < size:
    if (len(out) // 4096) % 3 == 2:
        out += bytes((i * 7 + (i >> 3)) & 0xff for i in range(i, i + 256))
    else:
        out += words[i % len(words)] + b" "
    i += 1
open(path, "wb").write(bytes(out[:size]))
EOF
}

# A compact extended-L2 image built by hand: qemu-img refuses extended L2
# under 16 KiB clusters and lays such an image out over 5+ clusters (over
# 64 KiB), so this one uses 4: header, L1 (doubling as an all-zero
# refcount table), L2, data. Subclusters are 512 bytes.
ext_l2_image() { # file
    python3 - "$1" <<'EOF'
import struct, sys
cb = 14; cs = 1 << cb
img = bytearray(4 * cs)
l1_off, l2_off, data_off = cs, 2 * cs, 3 * cs
hdr = struct.pack(">IIQIIQIIQQIIQQQQII", 0x514649fb, 3, 0, 0, cb, 128 * 1024, 0,
                  1, l1_off, cs, 1, 0, 0,
                  1 << 4,      # incompatible: extended L2
                  0, 0, 4, 112)
img[:len(hdr)] = hdr
img[104] = 0                  # compression type zlib (+7 bytes padding)
# header extensions: feature name table left out; end marker
struct.pack_into(">II", img, 112, 0, 0)
# L1[0] -> L2, COPIED
struct.pack_into(">Q", img, l1_off, (1 << 63) | l2_off)
# L2 entry 0: data cluster, subclusters 0-7 allocated, 8-9 read as zeros
struct.pack_into(">QQ", img, l2_off, (1 << 63) | data_off, 0xff | (0x3 << 40))
# L2 entry 1: no cluster, every subcluster zero
struct.pack_into(">QQ", img, l2_off + 16, 0, 0xffffffff << 32)
# L2 entry 2: no cluster, subclusters 0-3 zero, the rest unallocated
struct.pack_into(">QQ", img, l2_off + 32, 0, 0xf << 32)
for i in range(4096):
    img[data_off + i] = (i * 13 + 5) & 0xff
open(sys.argv[1], "wb").write(img)
EOF
}

# The seeds come from python3 and (without a seeder) qemu-img/qemu-io:
# without them the run would be a weaker one passing as the real thing,
# so it is skipped (77) naming what is missing (tests/lib/need.sh).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/need.sh"
seeder="$here/seeds_${name#fuzz_}.py"
if [ -f "$seeder" ]; then
    need python3
    python3 "$seeder" "$corpus"
else
    need python3 qemu-img qemu-io
    cd "$seed_dir"
    guest_data data.raw 49152
    q() { qemu-io -f qcow2 "$@" >/dev/null; }

    # v2, 512-byte clusters, data and a hole
    qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=512 v2.qcow2 64k
    q -c 'write -P 0x61 0 1k' -c 'write -P 0x62 40k 1536' v2.qcow2
    keep v2.qcow2

    # v3, 4k clusters, data, zero clusters (plain and preallocated), discard
    qemu-img create -q -f qcow2 -o cluster_size=4k v3.qcow2 128k
    q -c 'write -P 0x71 0 8k' -c 'write -z 16k 4k' -c 'write -P 0x72 32k 4k' \
      -c 'write -z 32k 4k' -c 'write -P 0x73 64k 4k' -c 'discard 64k 4k' v3.qcow2
    keep v3.qcow2

    # v3, 512-byte clusters, 64-bit refcounts, odd virtual size
    qemu-img create -q -f qcow2 -o cluster_size=512,refcount_bits=64 v3-512.qcow2 50001
    q -c 'write -P 0x74 1024 3k' v3-512.qcow2
    keep v3-512.qcow2

    # compressed, zlib and zstd
    qemu-img convert -c -f raw -O qcow2 -o cluster_size=4k,compression_type=zlib data.raw zlib.qcow2
    keep zlib.qcow2
    qemu-img convert -c -f raw -O qcow2 -o cluster_size=4k,compression_type=zstd data.raw zstd.qcow2
    keep zstd.qcow2
    qemu-img convert -c -f raw -O qcow2 -o compat=0.10,cluster_size=512 data.raw zlib-v2-512.qcow2
    keep zlib-v2-512.qcow2

    # internal snapshot (and data written after it)
    qemu-img create -q -f qcow2 -o cluster_size=512 snap.qcow2 32k
    q -c 'write -P 0x81 0 2k' snap.qcow2
    qemu-img snapshot -c first snap.qcow2
    q -c 'write -P 0x82 1k 2k' snap.qcow2
    qemu-img snapshot -c second-with-a-longer-name snap.qcow2
    keep snap.qcow2

    # a backing file name and format (not opened by the target)
    qemu-img create -q -f qcow2 -o cluster_size=512 base.qcow2 32k
    qemu-img create -q -f qcow2 -o cluster_size=512 -b base.qcow2 -F qcow2 overlay.qcow2
    q -c 'write -P 0x91 512 512' overlay.qcow2
    keep overlay.qcow2

    # external data file (the target maps it onto the image itself)
    qemu-img create -q -f qcow2 -o cluster_size=512,data_file=ext.raw,data_file_raw=on ext.qcow2 16k
    q -c 'write -P 0xa1 0 1k' ext.qcow2
    keep ext.qcow2

    # lazy refcounts left dirty
    qemu-img create -q -f qcow2 -o cluster_size=512,lazy_refcounts=on dirty.qcow2 16k
    bash -c "qemu-io -f qcow2 -c 'write -P 0xb1 0 1k' -c abort dirty.qcow2; exit 0" >/dev/null 2>&1
    keep dirty.qcow2

    # extended L2 (hand-built, 16 KiB clusters)
    ext_l2_image extl2.qcow2
    if ! qemu-io -r -f qcow2 -c 'read -P 0 4608 512' -c 'read -P 0 16k 16k' extl2.qcow2 >/dev/null 2>&1; then
        echo "run.sh: note: qemu-io does not read the hand-built extended-L2 seed" >&2
    fi
    keep extl2.qcow2
    cd - >/dev/null
fi
if [ ! -f "$seeder" ]; then
    # Seeds that are not images at all.
    printf 'QFI\xfb' >"$corpus/seed-magic-only"
    printf 'QFI\xfb\0\0\0\3' >"$corpus/seed-v3-stub"
fi

echo "run.sh: $name, corpus $corpus ($(ls "$corpus" | wc -l) inputs), ${time_s}s"
rc=0
"$bin" "$corpus" \
    -max_total_time="$time_s" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 -close_fd_mask=2 || rc=$?
if [ "$rc" -ne 0 ]; then
    echo "run.sh: $name FAILED (exit $rc); reproducers:" >&2
    for f in "$artifacts"/*; do
        [ -f "$f" ] || continue
        echo "  $f" >&2
        echo "  base64: $(base64 -w0 "$f")" >&2
    done
    exit 1
fi
echo "run.sh: $name: no crash in ${time_s}s"
