#!/usr/bin/env python3
"""qcow2.py: look into and edit qcow2 files, for building test images.

  qcow2.py header IMG                  header fields and extensions, as JSON
  qcow2.py set IMG FIELD VALUE         write one header field (big-endian)
  qcow2.py clusters IMG                one line per guest cluster with an L2
                                       entry: guest_off kind host_off [n_sectors]
                                       kind: normal, zero-alloc, zero-plain,
                                       compressed (host_off = byte offset)
  qcow2.py l1 IMG                      L1 entries, one per line (hex)
  qcow2.py set-l1 IMG INDEX VALUE      overwrite one L1 entry
  qcow2.py l2-entry-pos IMG GUEST_OFF  file offset of the L2 entry mapping GUEST_OFF
  qcow2.py set-u64 IMG POS VALUE       write a big-endian u64 anywhere
  qcow2.py drop-ext IMG TYPE           remove a header extension (hex type)
  qcow2.py compressed-end IMG          largest end (offset + stored bytes) of
                                       a compressed cluster's data
Values are decimal or 0x-hex. Field names are those of docs/formats.md.
"""
import json
import os
import struct
import sys

FIELDS = [  # name, offset, struct code
    ("magic", 0, ">I"), ("version", 4, ">I"),
    ("backing_file_offset", 8, ">Q"), ("backing_file_size", 16, ">I"),
    ("cluster_bits", 20, ">I"), ("size", 24, ">Q"), ("crypt_method", 32, ">I"),
    ("l1_size", 36, ">I"), ("l1_table_offset", 40, ">Q"),
    ("refcount_table_offset", 48, ">Q"), ("refcount_table_clusters", 56, ">I"),
    ("nb_snapshots", 60, ">I"), ("snapshots_offset", 64, ">Q"),
    ("incompatible_features", 72, ">Q"), ("compatible_features", 80, ">Q"),
    ("autoclear_features", 88, ">Q"), ("refcount_order", 96, ">I"),
    ("header_length", 100, ">I"), ("compression_type", 104, ">B"),
]
FIELD = {n: (o, c) for n, o, c in FIELDS}
OFF_MASK = 0x00FFFFFFFFFFFE00


def read_header(f):
    f.seek(0)
    buf = f.read(4096)
    h = {}
    for name, off, code in FIELDS:
        if off + struct.calcsize(code) <= len(buf):
            h[name] = struct.unpack_from(code, buf, off)[0]
    if h.get("version", 0) < 3:
        h["refcount_order"] = 4
        h["header_length"] = 72
        h["incompatible_features"] = 0
        h.pop("compression_type", None)
    exts = []
    pos = h["header_length"] if h.get("version", 0) >= 3 else 72
    while pos + 8 <= len(buf):
        t, ln = struct.unpack_from(">II", buf, pos)
        if t == 0:
            break
        exts.append({"type": f"{t:#010x}", "pos": pos, "len": ln,
                     "data": buf[pos + 8:pos + 8 + ln].hex() if ln <= 64 else None})
        pos += 8 + (ln + 7) // 8 * 8
    h["extensions"] = exts
    h["extensions_end"] = pos
    return h


def cluster_size(h):
    return 1 << h["cluster_bits"]


def extended_l2(h):
    return bool(h.get("incompatible_features", 0) & (1 << 4))


def l1_entries(f, h):
    f.seek(h["l1_table_offset"])
    data = f.read(8 * h["l1_size"])
    return list(struct.unpack(f">{len(data) // 8}Q", data))


def clusters(f, h):
    cs = cluster_size(h)
    ext = extended_l2(h)
    esz = 16 if ext else 8
    per = cs // esz
    x = 62 - (h["cluster_bits"] - 8)
    out = []
    for i, e in enumerate(l1_entries(f, h)):
        l2 = e & OFF_MASK
        if not l2:
            continue
        f.seek(l2)
        tab = f.read(cs)
        for j in range(per):
            ent = struct.unpack_from(">Q", tab, j * esz)[0]
            bm = struct.unpack_from(">Q", tab, j * esz + 8)[0] if ext else 0
            guest = (i * per + j) * cs
            if ent & (1 << 62):
                d = ent & ((1 << 62) - 1)
                off = d & ((1 << x) - 1)
                n = d >> x
                out.append((guest, "compressed", off, n, l2 + j * esz))
            elif ext:
                if ent & OFF_MASK or bm:
                    out.append((guest, f"ext alloc={bm & 0xffffffff:#x} zero={bm >> 32:#x}",
                                ent & OFF_MASK, None, l2 + j * esz))
            elif ent & 1:
                kind = "zero-alloc" if ent & OFF_MASK else "zero-plain"
                out.append((guest, kind, ent & OFF_MASK, None, l2 + j * esz))
            elif ent & OFF_MASK:
                out.append((guest, "normal", ent & OFF_MASK, None, l2 + j * esz))
    return out


def num(s):
    return int(s, 0)


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd, img = argv[0], argv[1]
    mode = "rb" if cmd in ("header", "clusters", "l1", "l2-entry-pos", "compressed-end") else "r+b"
    with open(img, mode) as f:
        h = read_header(f)
        if cmd == "header":
            print(json.dumps(h, indent=1))
        elif cmd == "set":
            off, code = FIELD[argv[2]]
            f.seek(off)
            f.write(struct.pack(code, num(argv[3])))
        elif cmd == "clusters":
            for g, kind, off, n, _ in clusters(f, h):
                print(f"{g:#x} {kind} {off:#x}" + (f" {n}" if n is not None else ""))
        elif cmd == "l1":
            for e in l1_entries(f, h):
                print(f"{e:#018x}")
        elif cmd == "set-l1":
            f.seek(h["l1_table_offset"] + 8 * num(argv[2]))
            f.write(struct.pack(">Q", num(argv[3])))
        elif cmd == "l2-entry-pos":
            g = num(argv[2])
            for gg, _, _, _, pos in clusters(f, h):
                if gg == g // cluster_size(h) * cluster_size(h):
                    print(pos)
                    return 0
            raise SystemExit(f"no L2 entry maps guest offset {g:#x}")
        elif cmd == "set-u64":
            f.seek(num(argv[2]))
            f.write(struct.pack(">Q", num(argv[3])))
        elif cmd == "drop-ext":
            t = num(argv[2])
            f.seek(0)
            buf = bytearray(f.read(h["extensions_end"] + 8))
            start = h["header_length"] if h["version"] >= 3 else 72
            keep = b""
            for e in h["extensions"]:
                if int(e["type"], 16) != t:
                    ln = 8 + (e["len"] + 7) // 8 * 8
                    keep += bytes(buf[e["pos"]:e["pos"] + ln])
            new = keep + b"\0" * 8
            old_len = h["extensions_end"] + 8 - start
            f.seek(start)
            f.write(new + b"\0" * (old_len - len(new)))
        elif cmd == "compressed-end":
            ends = [off + ((n + 1) * 512 - (off & 511)) for _, kind, off, n, _ in clusters(f, h)
                    if kind == "compressed"]
            print(max(ends) if ends else 0)
        else:
            raise SystemExit(f"unknown command {cmd}\n{__doc__}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
