#!/usr/bin/env python3
"""Seeds for fuzz_vhdx, in its input layout (tests/fuzz/fuzz_vhdx.c): the
virtual size, the region table (its CRC is made by the harness), then what
sits at 1 MiB: the metadata table and items (MS-VHDX 2.6), a BAT, and for
a differencing disk the parent locator. Written from the spec: a dynamic
disk with 512-byte and with 4 KiB sectors, a differencing one whose
locator has every key (one path outside the BMP, as a surrogate pair).

usage: seeds_vhdx.py CORPUS_DIR
"""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "formats", "lib"))
from vhdx import (G_BAT, G_FILEPARAM, G_LSS, G_META, G_PLOC, G_SIZE,  # noqa: E402
                  MiB as MIB, locator)


def seed(vsize, sector, block=MIB, parent=None):
    chunk = (sector << 23) // block
    nblocks = (vsize + block - 1) // block
    entries = nblocks + (nblocks - 1) // chunk
    meta_off, bat_off = 0, 16384          # inside the payload at 1 MiB
    regions = struct.pack("<4sIII", b"regi", 0, 2, 0)
    regions += G_BAT.bytes_le + struct.pack("<QII", MIB + bat_off, MIB, 1)
    regions += G_META.bytes_le + struct.pack("<QII", MIB + meta_off, MIB, 1)
    items = [(G_FILEPARAM.bytes_le, struct.pack("<II", block, 2 if parent else 0)),
             (G_LSS.bytes_le, struct.pack("<I", sector)),
             (G_SIZE.bytes_le, struct.pack("<Q", vsize))]
    if parent:
        items.append((G_PLOC.bytes_le, locator(parent)))
    table = struct.pack("<8sHH20s", b"metadata", 0, len(items), b"")
    body, at = b"", 1024
    for guid, data in items:
        table += guid + struct.pack("<IIII", at + len(body), len(data), 0, 0)
        body += data
    payload = bytearray(bat_off + 8 * entries)
    payload[0:len(table)] = table
    payload[1024:1024 + len(body)] = body
    states = [6, 0, 2, 6, 7, 3]
    for i in range(entries):
        st = states[i % len(states)]
        mb = 2 + i if st in (6, 7) else 0
        struct.pack_into("<Q", payload, bat_off + 8 * i, (mb << 20) | st)
    return struct.pack("<Q", vsize) + regions.ljust(4096, b"\0") + bytes(payload)


def main(corpus):
    os.makedirs(corpus, exist_ok=True)
    seeds = {
        "dyn512": seed(4 * MIB, 512),
        "dyn4k": seed(6 * MIB + 512, 4096, block=2 * MIB),
        "diff": seed(3 * MIB, 512, parent=[
            ("parent_linkage", "{83ac6f2e-3ff1-4c55-9f0e-1c9d0a6e9d9b}"),
            ("relative_path", ".\\base.vhdx"),
            ("absolute_win32_path", "C:\\images\\b\U0001F600se.vhdx"),
            ("volume_path", "\\\\?\\Volume{26a21bda-a627-11d7-9931-806e6f6e6963}\\base.vhdx")]),
    }
    for name, data in seeds.items():
        with open(os.path.join(corpus, name + ".vhdxin"), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main(sys.argv[1])
