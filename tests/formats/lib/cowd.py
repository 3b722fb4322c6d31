#!/usr/bin/env python3
"""cowd.py: VMDK variants scuse's native driver refuses, written from
VMware's Virtual Disk Format 1.1 specification (what no tool here makes):

  cowd.py vmfssparse DIR NAME SECTORS GRAIN PATTERN...
      DIR/NAME.vmdk, a descriptor (createType vmfsSparse) naming
      DIR/NAME-delta.vmdk, a COWD sparse extent of SECTORS sectors and
      grains of GRAIN sectors; PATTERN is SECTOR:COUNT:BYTE, data written
      whole grains at a time (a grain partly written holds zeros
      elsewhere). Also DIR/NAME.raw, what the disk must read as.
  cowd.py cowd FILE SECTORS GRAIN PATTERN...
      the COWD extent alone (the version-1 monolithic form), FILE.raw too.

The COWD header (2048 bytes, little-endian): magic "COWD", version 1,
flags 3, numSectors, grainSize, gdOffset (sectors), numGDEntries,
freeSector, then a 1028-byte union (root: cylinders, heads, sectors),
generation, name[60], description[512], savedGeneration, reserved[8],
uncleanShutdown. The grain directory holds numGDEntries sector offsets
of grain tables of 4096 entries each; a table entry is the sector of a
grain, 0 for none.
"""
import os
import struct
import sys

SECTOR = 512
GT_ENTRIES = 4096


def cowd(path, sectors, grain, patterns):
    n_grains = (sectors + grain - 1) // grain
    n_gd = (n_grains + GT_ENTRIES - 1) // GT_ENTRIES
    raw = bytearray(sectors * SECTOR)
    for p in patterns:
        s, c, b = (int(x, 0) for x in p.split(":"))
        raw[s * SECTOR:(s + c) * SECTOR] = bytes([b]) * (c * SECTOR)
    gd_off = 4
    gd_sectors = (n_gd * 4 + SECTOR - 1) // SECTOR
    gt_sectors = GT_ENTRIES * 4 // SECTOR
    free = gd_off + gd_sectors
    gd = [0] * n_gd
    gts = {}
    grains = []
    for g in range(n_grains):
        data = bytes(raw[g * grain * SECTOR:(g + 1) * grain * SECTOR])
        if data.count(0) == len(data):
            continue
        t = g // GT_ENTRIES
        if t not in gts:
            gts[t] = [0] * GT_ENTRIES
            gd[t] = free
            free += gt_sectors
        gts[t][g % GT_ENTRIES] = None  # placed below
        grains.append((g, data))
    for g, data in grains:
        gts[g // GT_ENTRIES][g % GT_ENTRIES] = free
        free += grain
    hdr = bytearray(2048)
    struct.pack_into("<4sIIIIIII", hdr, 0, b"COWD", 1, 3, sectors, grain, gd_off, n_gd, free)
    cyl = max(1, sectors // (16 * 63))
    struct.pack_into("<III", hdr, 32, cyl, 16, 63)
    struct.pack_into("<I", hdr, 1060, 1)
    with open(path, "wb") as f:
        f.write(hdr)
        f.seek(gd_off * SECTOR)
        f.write(struct.pack(f"<{n_gd}I", *gd))
        for t, table in gts.items():
            f.seek(gd[t] * SECTOR)
            f.write(struct.pack(f"<{GT_ENTRIES}I", *table))
        for g, data in grains:
            f.seek(gts[g // GT_ENTRIES][g % GT_ENTRIES] * SECTOR)
            f.write(data)
        f.truncate(free * SECTOR)
    return bytes(raw)


def main(a):
    if len(a) >= 5 and a[0] == "vmfssparse":
        d, name, sectors, grain = a[1], a[2], int(a[3], 0), int(a[4], 0)
        raw = cowd(os.path.join(d, name + "-delta.vmdk"), sectors, grain, a[5:])
        with open(os.path.join(d, name + ".vmdk"), "w") as f:
            f.write("# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n"
                    "createType=\"vmfsSparse\"\n\n# Extent description\n"
                    f"RW {sectors} VMFSSPARSE \"{name}-delta.vmdk\"\n\n"
                    "# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\n")
        open(os.path.join(d, name + ".raw"), "wb").write(raw)
    elif len(a) >= 4 and a[0] == "cowd":
        raw = cowd(a[1], int(a[2], 0), int(a[3], 0), a[4:])
        open(a[1] + ".raw", "wb").write(raw)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
