#!/usr/bin/env python3
"""vmdkgen.py: hand-made VMDK images that qemu-img cannot make, each with
the raw disk it must read as (written from this file's own layout, not by
any VMDK reader).

  vmdkgen.py stream OUT EXPECT --size BYTES --seed N [--grain SECTORS]
             [--gtes N] [--no-footer-gd]
      streamOptimized as VMware writes it: header with gdOffset =
      GD_AT_END, descriptor, zlib grains each behind a grain marker, then
      per grain table a GT marker and the table, a GD marker and the
      directory, a footer marker with the header copy that holds the real
      gdOffset, and the end-of-stream marker. All-zero grains are left
      out (entry 0) and grain tables with no grain are not written (GD
      entry 0).
  vmdkgen.py sparse OUT EXPECT --size BYTES --seed N [--grain SECTORS]
             [--gtes N] [--zeroed] [--gd-holes] [--version V] [--no-rgd]
             [--stale]
      monolithicSparse: data grains, unallocated grains, with --zeroed
      zeroed grains (flag bit 2, entry 1) over stale data (--stale keeps
      old bytes in the file where the grains are zeroed), with --gd-holes
      some grain-directory entries 0 (no grain table at all).
  vmdkgen.py extent OUT EXPECT --size BYTES --seed N [--grain SECTORS]
      a sparse extent with no descriptor (descriptorOffset 0), as the
      extents of a twoGbMaxExtentSparse disk are.
  vmdkgen.py rawfile OUT --size BYTES --seed N
      random bytes with zero and patterned runs.
  vmdkgen.py set FILE FIELD VALUE [--footer]
      set a KDMV header field (or the footer copy's).
  vmdkgen.py gd FILE INDEX VALUE / gt FILE GDINDEX INDEX VALUE
      set a grain directory / grain table entry.
  vmdkgen.py streamcheck FILE
      FILE is a stream in VMware's layout: header with gdOffset GD_AT_END
      and the compressed+markers flags; after the overhead only grain
      markers (each followed by its data), GT markers and tables, one GD
      marker and the directory, the footer marker and header copy, and the
      end-of-stream marker last; every grain-table entry points at a grain
      marker holding that grain's LBA, every directory entry at a table
      right after a GT marker. Prints a summary; exit 1 naming the fault.
  vmdkgen.py rgdcheck FILE
      the redundant grain directory and tables say what the primary ones
      say (exit 1 naming the first difference; 0 when there is none).
"""
import random
import struct
import sys
import zlib

SECTOR = 512
GD_AT_END = 0xFFFFFFFFFFFFFFFF

# name: (offset, struct format)
FIELDS = {
    "magic": (0, "<I"), "version": (4, "<I"), "flags": (8, "<I"),
    "capacity": (12, "<Q"), "grain_size": (20, "<Q"), "desc_offset": (28, "<Q"),
    "desc_size": (36, "<Q"), "num_gtes": (44, "<I"), "rgd_offset": (48, "<Q"),
    "gd_offset": (56, "<Q"), "overhead": (64, "<Q"), "unclean": (72, "<B"),
    "compress": (77, "<H"),
}


def header(version, flags, capacity, grain, desc_off, desc_size, gtes, rgd, gd, overhead,
           compress=0):
    h = bytearray(SECTOR)
    struct.pack_into("<4sIIQQQQIQQQB", h, 0, b"KDMV", version, flags, capacity, grain,
                     desc_off, desc_size, gtes, rgd, gd, overhead, 0)
    h[73:77] = b"\n \r\n"
    struct.pack_into("<H", h, 77, compress)
    return h


def descriptor(create_type, sectors, fname, cid=0x12345678, extent_type="SPARSE"):
    return (f"# Disk DescriptorFile\nversion=1\nCID={cid:08x}\nparentCID=ffffffff\n"
            f"createType=\"{create_type}\"\n\n# Extent description\n"
            f"RW {sectors} {extent_type} \"{fname}\"\n\n# The Disk Data Base\n#DDB\n\n"
            "ddb.virtualHWVersion = \"4\"\nddb.adapterType = \"ide\"\n").encode()


def pad(b):
    return b + bytes(-len(b) % SECTOR)


def content(size, seed):
    """Random runs: random bytes, a repeated byte, zeros, text."""
    r = random.Random(seed)
    buf = bytearray(size)
    pos = 0
    while pos < size:
        n = min(r.randint(1, 200000), size - pos)
        k = r.random()
        if k < 0.35:
            buf[pos:pos + n] = r.randbytes(n)
        elif k < 0.6:
            buf[pos:pos + n] = bytes([r.randint(1, 255)]) * n
        elif k < 0.8:
            t = (b"vmdk-%d " % pos) * (n // 8 + 1)
            buf[pos:pos + n] = t[:n]
        pos += n
    return buf


def args(argv, **defaults):
    out = dict(defaults)
    i = 0
    pos = []
    while i < len(argv):
        a = argv[i]
        if a.startswith("--"):
            key = a[2:].replace("-", "_")
            if isinstance(defaults.get(key), bool):
                out[key] = True
                i += 1
            else:
                out[key] = int(argv[i + 1], 0)
                i += 2
        else:
            pos.append(a)
            i += 1
    return pos, out


def stream(argv):
    (out, expect), o = args(argv, size=0, seed=1, grain=128, gtes=512, no_footer_gd=False)
    size, gbytes, gtes = o["size"], o["grain"] * SECTOR, o["gtes"]
    data = content(size, o["seed"])
    # some whole zero grains to leave out
    r = random.Random(o["seed"] + 1000)
    ngrains = (size + gbytes - 1) // gbytes
    for g in range(ngrains):
        if r.random() < 0.15:
            data[g * gbytes:(g + 1) * gbytes] = bytes(len(data[g * gbytes:(g + 1) * gbytes]))
    cap = (size + SECTOR - 1) // SECTOR
    ngd = (cap + o["grain"] * gtes - 1) // (o["grain"] * gtes)
    desc = pad(descriptor("streamOptimized", cap, out.rsplit("/", 1)[-1]))
    flags = 0x30001
    f = bytearray(header(3, flags, cap, o["grain"], 1, len(desc) // SECTOR, gtes, 0, GD_AT_END,
                         0, 1))
    f += desc
    # overhead: where the first grain goes (VMware rounds to a grain)
    overhead = (len(f) + gbytes - 1) // gbytes * o["grain"]
    f += bytes(overhead * SECTOR - len(f))
    struct.pack_into("<Q", f, 64, overhead)
    gt = [0] * (ngd * gtes)
    for g in range(ngrains):
        chunk = bytes(data[g * gbytes:(g + 1) * gbytes])
        if not any(chunk):
            continue
        z = zlib.compress(chunk + bytes(gbytes - len(chunk)), 6)
        gt[g] = len(f) // SECTOR
        f += pad(struct.pack("<QI", g * o["grain"], len(z)) + z)
    gd = [0] * ngd
    gt_sectors = (gtes * 4 + SECTOR - 1) // SECTOR
    for t in range(ngd):
        entries = gt[t * gtes:(t + 1) * gtes]
        if not any(entries):
            continue
        f += struct.pack("<QII", gt_sectors, 0, 1) + bytes(SECTOR - 16)
        gd[t] = len(f) // SECTOR
        f += pad(struct.pack(f"<{gtes}I", *entries))
    gd_sectors = (ngd * 4 + SECTOR - 1) // SECTOR
    f += struct.pack("<QII", gd_sectors, 0, 2) + bytes(SECTOR - 16)
    gd_at = len(f) // SECTOR
    f += pad(struct.pack(f"<{ngd}I", *gd))
    f += struct.pack("<QII", 1, 0, 3) + bytes(SECTOR - 16)
    f += header(3, flags, cap, o["grain"], 1, len(desc) // SECTOR, gtes, 0,
                GD_AT_END if o["no_footer_gd"] else gd_at, overhead, 1)
    f += struct.pack("<QII", 0, 0, 0) + bytes(SECTOR - 16)
    open(out, "wb").write(f)
    open(expect, "wb").write(data + bytes(cap * SECTOR - size))


def sparse_image(size, seed, grain, gtes, zeroed, gd_holes, version, rgd, stale, embedded, name):
    gbytes = grain * SECTOR
    cap = (size + SECTOR - 1) // SECTOR
    ngd = (cap + grain * gtes - 1) // (grain * gtes)
    ngrains = (cap + grain - 1) // grain
    data = content(cap * SECTOR, seed)
    r = random.Random(seed + 2000)
    holes = set()
    if gd_holes:
        holes = {t for t in range(ngd) if r.random() < 0.4}
        if ngd > 1 and len(holes) == ngd:
            holes.discard(0)
        if not holes:
            holes = {ngd - 1}
    kind = []
    for g in range(ngrains):
        if g // gtes in holes:
            kind.append("unalloc")
            continue
        k = r.random()
        kind.append("unalloc" if k < 0.25 else "zero" if zeroed and k < 0.5 else "data")
    for g, k in enumerate(kind):
        if k != "data":
            data[g * gbytes:(g + 1) * gbytes] = bytes(len(data[g * gbytes:(g + 1) * gbytes]))
    desc = pad(descriptor("monolithicSparse", cap, name)) if embedded else b""
    desc += bytes(max(0, 20 * SECTOR - len(desc)) if embedded else 0)
    flags = 0x1 | (0x2 if rgd else 0) | (0x4 if zeroed else 0)
    gt_sectors = (gtes * 4 + SECTOR - 1) // SECTOR
    gd_sectors = (ngd * 4 + SECTOR - 1) // SECTOR
    pos = 1 + len(desc) // SECTOR
    rgd_at = pos if rgd else 0
    if rgd:
        pos += gd_sectors
        rgt_at = pos
        pos += gt_sectors * (ngd - len(holes))
    gd_at = pos
    pos += gd_sectors
    gt_at = pos
    pos += gt_sectors * (ngd - len(holes))
    overhead = (pos + grain - 1) // grain * grain
    f = bytearray(overhead * SECTOR)
    f[0:SECTOR] = header(version, flags, cap, grain, 1 if embedded else 0,
                         len(desc) // SECTOR, gtes, rgd_at, gd_at, overhead)
    f[SECTOR:SECTOR + len(desc)] = desc
    gt = [0] * (ngd * gtes)
    order = list(range(ngrains))
    r.shuffle(order)  # grains in the file in another order than on the disk
    for g in order:
        if kind[g] == "data":
            gt[g] = len(f) // SECTOR
            chunk = bytes(data[g * gbytes:(g + 1) * gbytes])
            f += chunk + bytes(gbytes - len(chunk))
        elif kind[g] == "zero":
            gt[g] = 1
            if stale:  # old bytes that a reader must not return
                f += b"\xee" * gbytes
    gd, rgdv = [0] * ngd, [0] * ngd
    k = 0
    for t in range(ngd):
        if t in holes:
            continue
        gd[t] = gt_at + k * gt_sectors
        if rgd:
            rgdv[t] = rgt_at + k * gt_sectors
        tbl = struct.pack(f"<{gtes}I", *gt[t * gtes:(t + 1) * gtes])
        f[gd[t] * SECTOR:gd[t] * SECTOR + len(tbl)] = tbl
        if rgd:
            f[rgdv[t] * SECTOR:rgdv[t] * SECTOR + len(tbl)] = tbl
        k += 1
    f[gd_at * SECTOR:gd_at * SECTOR + 4 * ngd] = struct.pack(f"<{ngd}I", *gd)
    if rgd:
        f[rgd_at * SECTOR:rgd_at * SECTOR + 4 * ngd] = struct.pack(f"<{ngd}I", *rgdv)
    return f, data


def sparse(argv, embedded=True):
    (out, expect), o = args(argv, size=0, seed=1, grain=128, gtes=512, zeroed=False,
                            gd_holes=False, version=1, no_rgd=False, stale=False)
    f, data = sparse_image(o["size"], o["seed"], o["grain"], o["gtes"], o["zeroed"],
                           o["gd_holes"], o["version"], not o["no_rgd"], o["stale"], embedded,
                           out.rsplit("/", 1)[-1])
    open(out, "wb").write(f)
    open(expect, "wb").write(data)


def rawfile(argv):
    (out,), o = args(argv, size=0, seed=1)
    open(out, "wb").write(content(o["size"], o["seed"]))


def setfield(argv):
    (path, field, value), o = args(argv, footer=False)
    off, fmt = FIELDS[field]
    with open(path, "r+b") as f:
        if o["footer"]:
            f.seek(0, 2)
            base = f.tell() - 1024
        else:
            base = 0
        f.seek(base + off)
        f.write(struct.pack(fmt, int(value, 0)))


def gd_entry(path, idx):
    with open(path, "rb") as f:
        h = f.read(SECTOR)
        gd = struct.unpack_from("<Q", h, 56)[0]
        if gd == GD_AT_END:  # the footer's copy has it
            f.seek(-1024, 2)
            gd = struct.unpack_from("<Q", f.read(SECTOR), 56)[0]
    return gd * SECTOR + 4 * idx


def setgd(argv):
    path, idx, value = argv
    with open(path, "r+b") as f:
        f.seek(gd_entry(path, int(idx)))
        f.write(struct.pack("<I", int(value, 0)))


def setgt(argv):
    path, t, idx, value = argv
    with open(path, "r+b") as f:
        f.seek(gd_entry(path, int(t)))
        gt = struct.unpack("<I", f.read(4))[0]
        f.seek(gt * SECTOR + 4 * int(idx))
        f.write(struct.pack("<I", int(value, 0)))


def unref(argv):
    """unref IMG GRAIN...: grain-table entries 0 in both tables (the grains leak)."""
    path, grains = argv[0], [int(g) for g in argv[1:]]
    with open(path, "r+b") as f:
        h = f.read(SECTOR)
        gtes = struct.unpack_from("<I", h, 44)[0]
        for g in grains:
            for at in struct.unpack_from("<QQ", h, 48):  # rgdOffset, gdOffset
                if at == 0:
                    continue
                f.seek(at * SECTOR + 4 * (g // gtes))
                gt = struct.unpack("<I", f.read(4))[0]
                f.seek(gt * SECTOR + 4 * (g % gtes))
                f.write(b"\0\0\0\0")


def getgt(argv):
    path, t, idx = argv
    with open(path, "rb") as f:
        f.seek(gd_entry(path, int(t)))
        gt = struct.unpack("<I", f.read(4))[0]
        f.seek(gt * SECTOR + 4 * int(idx))
        print(struct.unpack("<I", f.read(4))[0])


def streamcheck(argv):
    path = argv[0]
    b = open(path, "rb").read()

    def bad(msg):
        sys.exit(f"{path}: {msg}")
    if b[:4] != b"KDMV":
        bad("no KDMV header")
    flags, cap, grain, gtes, gd, over = (struct.unpack_from("<I", b, 8)[0], struct.unpack_from("<Q", b, 12)[0],
                                         struct.unpack_from("<Q", b, 20)[0], struct.unpack_from("<I", b, 44)[0],
                                         struct.unpack_from("<Q", b, 56)[0], struct.unpack_from("<Q", b, 64)[0])
    if gd != GD_AT_END:
        bad(f"header gdOffset is {gd}, not GD_AT_END")
    if flags & 0x30000 != 0x30000:
        bad(f"flags 0x{flags:x} lack compressed grains with markers")
    if len(b) % SECTOR:
        bad("file size is not whole sectors")
    pos = over * SECTOR
    grains, gts, gd_at, footer = {}, {}, None, None
    while pos < len(b):
        val, size, typ = struct.unpack_from("<QII", b, pos)
        if size:  # grain marker
            if gd_at is not None:
                bad(f"grain marker at {pos} after the grain directory")
            grains[pos // SECTOR] = val
            pos += (12 + size + SECTOR - 1) // SECTOR * SECTOR
            continue
        if typ == 1:
            gts[pos // SECTOR + 1] = val
            pos += SECTOR + val * SECTOR
        elif typ == 2:
            gd_at = pos // SECTOR + 1
            pos += SECTOR + val * SECTOR
        elif typ == 3:
            footer = pos + SECTOR
            pos += 2 * SECTOR
        elif typ == 0:
            if pos + SECTOR != len(b):
                bad(f"end-of-stream marker at {pos}, not at the end")
            pos += SECTOR
            break
        else:
            bad(f"unknown marker type {typ} at {pos}")
    else:
        bad("no end-of-stream marker")
    if footer is None or b[footer:footer + 4] != b"KDMV":
        bad("no footer header")
    if struct.unpack_from("<Q", b, footer + 56)[0] != gd_at:
        bad("the footer's gdOffset is not where the GD marker put the directory")
    ngd = (cap + grain * gtes - 1) // (grain * gtes)
    d = struct.unpack_from(f"<{ngd}I", b, gd_at * SECTOR)
    used = 0
    for i, t in enumerate(d):
        if not t:
            continue
        if t not in gts:
            bad(f"GD[{i}] = {t} is not right after a GT marker")
        for k, e in enumerate(struct.unpack_from(f"<{gtes}I", b, t * SECTOR)):
            if not e:
                continue
            if e not in grains:
                bad(f"GT {i} entry {k} = {e} is not a grain marker")
            if grains[e] != (i * gtes + k) * grain:
                bad(f"grain marker at sector {e} says LBA {grains[e]}, the table {(i * gtes + k) * grain}")
            used += 1
    if used != len(grains):
        bad(f"{len(grains)} grain markers, {used} referenced")
    print(f"VMware stream layout: {len(grains)} grains, {len(gts)} grain tables, footer, end-of-stream marker")


def rgdcheck(argv):
    path = argv[0]
    with open(path, "rb") as f:
        h = f.read(SECTOR)
        cap, grain, gtes, rgd, gd = (struct.unpack_from("<Q", h, 12)[0], struct.unpack_from("<Q", h, 20)[0],
                                    struct.unpack_from("<I", h, 44)[0], struct.unpack_from("<Q", h, 48)[0],
                                    struct.unpack_from("<Q", h, 56)[0])
        flags = struct.unpack_from("<I", h, 8)[0]
        if not (flags & 2) or not rgd:
            return
        ngd = (cap + grain * gtes - 1) // (grain * gtes)

        def table(sector, n):
            f.seek(sector * SECTOR)
            return struct.unpack(f"<{n}I", f.read(4 * n))
        d, r = table(gd, ngd), table(rgd, ngd)
        for i in range(ngd):
            if (d[i] == 0) != (r[i] == 0):
                sys.exit(f"{path}: GD[{i}] = {d[i]}, RGD[{i}] = {r[i]}")
            if d[i] and table(d[i], gtes) != table(r[i], gtes):
                a, b = table(d[i], gtes), table(r[i], gtes)
                j = next(k for k in range(gtes) if a[k] != b[k])
                sys.exit(f"{path}: GT {i} entry {j} = {a[j]}, redundant copy {b[j]}")


if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    {"stream": stream, "sparse": sparse, "extent": lambda a: sparse(a, embedded=False),
     "rawfile": rawfile, "set": setfield, "gd": setgd, "gt": setgt, "getgt": getgt, "unref": unref, "rgdcheck": rgdcheck,
     "streamcheck": streamcheck}[cmd](rest)
