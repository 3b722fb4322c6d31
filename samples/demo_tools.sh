#!/usr/bin/env bash
# The image-tools demo (`./build.sh demo-tools`): build a three-layer qcow2 chain (plain data, compressed
# clusters, zero clusters, relative backing names), let scuse describe and
# export it, and let qemu-img judge the export.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
scuse=${SCUSE:-$here/../build/scuse}
out=$here/out
rm -rf "$out"
mkdir -p "$out/layers/overlays"
cd "$out"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Making a sample chain with qemu-img (base <- mid <- top)"
qemu-img create -q -f qcow2 layers/base.qcow2 64M
qemu-io -f qcow2 -c 'write -P 0x11 0 8M' -c 'write -P 0x22 16M 4M' layers/base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 layers/mid.qcow2 64M
qemu-io -f qcow2 -c 'write -c -P 0x33 4M 2M' -c 'write -P 0x44 30M 1M' layers/mid.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b ../mid.qcow2 -F qcow2 -o compression_type=zstd layers/overlays/top.qcow2 64M
qemu-io -f qcow2 -c 'write -z 0 1M' -c 'write -c -P 0x55 40M 1M' -c 'write -P 0x66 1M 64k' \
    layers/overlays/top.qcow2 >/dev/null
echo "layers/base.qcow2 <- layers/mid.qcow2 <- layers/overlays/top.qcow2 (relative names)"

say "scuse info --backing-chain"
"$scuse" info --backing-chain layers/overlays/top.qcow2

say "scuse map (which layer holds what)"
"$scuse" map --output=json layers/overlays/top.qcow2

say "scuse convert -O raw -p"
"$scuse" convert -p -O raw layers/overlays/top.qcow2 top.raw
ls -ls top.raw

say "Judged by qemu-img compare"
qemu-img compare -f qcow2 -F raw layers/overlays/top.qcow2 top.raw
