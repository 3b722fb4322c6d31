#!/usr/bin/env python3
"""vhdx.py: a differencing VHDX written from Microsoft's MS-VHDX
specification (v1.0): no tool here makes one (QEMU does not).

usage:
  vhdx.py diff CHILD PARENT PARENT.raw WANT.raw [--linkage GUID]
          [--path relative|absolute] [--parent-name NAME] [OFF:LEN:BYTE...]
      CHILD over PARENT (a VHDX, whose current header gives the
      DataWriteGuid the parent_linkage names unless --linkage says
      otherwise; PARENT.raw is its content, from qemu-img convert): 2 MiB
      blocks, 512-byte sectors; each OFF:LEN:BYTE (sector aligned) is
      written into the child: a block written whole is FULLY_PRESENT, one
      written in part PARTIALLY_PRESENT with its sectors' bits set in the
      chunk's sector bitmap (the rest read from the parent). The locator
      holds parent_linkage and relative_path (".\\\\NAME", the default) or
      absolute_win32_path (--parent-name: another relative_path).
      WANT.raw: what the child must read as.

Layout: file identifier, headers at 64 and 128 KiB, region tables at 192
and 256 KiB, a 1 MiB empty log at 1 MiB, metadata at 2 MiB, BAT at
3 MiB, the chunk's sector bitmap at 4 MiB, payload blocks after it.
"""
import os
import struct
import sys
import uuid

KiB, MiB = 1024, 1024 * 1024
BLOCK = 2 * MiB
SECTOR = 512
CHUNK = (1 << 23) * SECTOR // BLOCK          # payload blocks per sector bitmap

G_BAT = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
G_META = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
G_FILEPARAM = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
G_SIZE = uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
G_PAGE83 = uuid.UUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
G_LSS = uuid.UUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
G_PSS = uuid.UUID("CDA348C7-445D-4471-9CC9-E9885251C556")
G_PLOC = uuid.UUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
G_VHDX_LOC = uuid.UUID("B04AEFB7-D19E-4A81-B789-25B8E9445913")


def crc32c(data):
    c = 0xffffffff
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ (0x82f63b78 & -(c & 1))
    return c ^ 0xffffffff


def with_crc(buf, at=4):
    buf = bytearray(buf)
    buf[at:at + 4] = b"\0\0\0\0"
    struct.pack_into("<I", buf, at, crc32c(bytes(buf)))
    return bytes(buf)


def current_header(path):
    best = None
    with open(path, "rb") as f:
        for at in (64 * KiB, 128 * KiB):
            f.seek(at)
            h = f.read(4096)
            if h[:4] != b"head" or with_crc(h) != h:
                continue
            if best is None or struct.unpack_from("<Q", h, 8)[0] > struct.unpack_from("<Q", best, 8)[0]:
                best = h
    if best is None:
        raise SystemExit(f"vhdx.py: no valid header in {path}")
    return best


def header(seq, data_guid):
    h = bytearray(4096)
    struct.pack_into("<4sIQ16s16s16sHHIQ", h, 0, b"head", 0, seq, uuid.uuid4().bytes_le,
                     data_guid.bytes_le, bytes(16), 0, 1, MiB, MiB)
    return with_crc(h)


def region_table():
    t = bytearray(64 * KiB)
    struct.pack_into("<4sIII", t, 0, b"regi", 0, 2, 0)
    struct.pack_into("<16sQII", t, 16, G_BAT.bytes_le, 3 * MiB, MiB, 1)
    struct.pack_into("<16sQII", t, 48, G_META.bytes_le, 2 * MiB, MiB, 1)
    return with_crc(t)


def locator(kv):
    enc = [(k.encode("utf-16-le"), v.encode("utf-16-le")) for k, v in kv]
    head = struct.pack("<16sHH", G_VHDX_LOC.bytes_le, 0, len(enc))
    off = len(head) + 12 * len(enc)
    entries, blob = b"", b""
    for k, v in enc:
        entries += struct.pack("<IIHH", off + len(blob), off + len(blob) + len(k), len(k), len(v))
        blob += k + v
    return head + entries + blob


def metadata(size, loc):
    items = [(G_FILEPARAM, struct.pack("<II", BLOCK, 2), 4),
             (G_SIZE, struct.pack("<Q", size), 6),
             (G_PAGE83, uuid.uuid4().bytes_le, 6),
             (G_LSS, struct.pack("<I", SECTOR), 6),
             (G_PSS, struct.pack("<I", 4096), 6),
             (G_PLOC, loc, 6)]
    m = bytearray(MiB)
    struct.pack_into("<8sHH", m, 0, b"metadata", 0, len(items))
    off = 64 * KiB
    for i, (g, data, flags) in enumerate(items):
        struct.pack_into("<16sIIII", m, 32 + 32 * i, g.bytes_le, off, len(data), flags, 0)
        m[off:off + len(data)] = data
        off += (len(data) + 4095) // 4096 * 4096
    return bytes(m)


def diff(child, parent, parent_raw, want, linkage, path_kind, patterns, name=None):
    raw = bytearray(open(parent_raw, "rb").read())
    size = len(raw)
    if linkage is None:
        linkage = uuid.UUID(bytes_le=current_header(parent)[32:48])
    kv = [("parent_linkage", "{%s}" % str(linkage))]
    if path_kind == "absolute":
        kv.append(("absolute_win32_path", os.path.abspath(parent)))
    else:
        kv.append(("relative_path", ".\\" + (name or os.path.basename(parent))))
    n_blocks = (size + BLOCK - 1) // BLOCK
    assert n_blocks <= CHUNK
    written = {}                                 # block -> set of sectors
    data = {}
    for p in patterns:
        off, ln, byte = (int(x, 0) for x in p.split(":"))
        assert off % SECTOR == 0 and ln % SECTOR == 0 and off + ln <= size
        raw[off:off + ln] = bytes([byte]) * ln
        for s in range(off // SECTOR, (off + ln) // SECTOR):
            written.setdefault(s * SECTOR // BLOCK, set()).add(s)
    bat = [0] * (CHUNK + 1)
    bitmap = bytearray(MiB)
    at = 5 * MiB
    for blk in sorted(written):
        whole = len(written[blk]) == BLOCK // SECTOR
        bat[blk] = (at // MiB) << 20 | (6 if whole else 7)
        data[at] = bytes(raw[blk * BLOCK:(blk + 1) * BLOCK])
        for s in written[blk]:
            bitmap[s // 8] |= 1 << (s % 8)
        at += BLOCK
    bat[CHUNK] = (4 * MiB // MiB) << 20 | 6
    with open(child, "wb") as f:
        f.write(b"vhdxfile" + "vhdx.py".encode("utf-16-le"))
        guid = uuid.uuid4()
        for at_, seq in ((64 * KiB, 1), (128 * KiB, 2)):
            f.seek(at_)
            f.write(header(seq, guid))
        for at_ in (192 * KiB, 256 * KiB):
            f.seek(at_)
            f.write(region_table())
        f.seek(2 * MiB)
        f.write(metadata(size, locator(kv)))
        f.seek(3 * MiB)
        f.write(struct.pack(f"<{len(bat)}Q", *bat))
        f.seek(4 * MiB)
        f.write(bitmap)
        for a in sorted(data):
            f.seek(a)
            f.write(data[a])
        f.truncate(max([5 * MiB] + [a + BLOCK for a in data]))
    open(want, "wb").write(bytes(raw))


def main(a):
    if len(a) >= 5 and a[0] == "diff":
        linkage, path_kind, rest, i, name = None, "relative", [], 5, None
        while i < len(a):
            if a[i] == "--parent-name":
                name = a[i + 1]
                i += 2
                continue
            if a[i] == "--linkage":
                linkage = uuid.UUID(a[i + 1])
                i += 2
            elif a[i] == "--path":
                path_kind = a[i + 1]
                i += 2
            else:
                rest.append(a[i])
                i += 1
        diff(a[1], a[2], a[3], a[4], linkage, path_kind, rest, name)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
