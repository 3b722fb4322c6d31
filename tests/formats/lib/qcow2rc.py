#!/usr/bin/env python3
"""qcow2rc.py: read and damage qcow2 refcounts and COPIED flags (for check tests).

  qcow2rc.py get IMG HOST_OFF            refcount of the host cluster at HOST_OFF
  qcow2rc.py set IMG HOST_OFF VALUE      overwrite it (no other structure changes)
  qcow2rc.py free IMG                    host offset of a cluster inside the file
                                         whose refcount is 0 and that a refcount
                                         block covers (exit 1 if none)
  qcow2rc.py host IMG GUEST_OFF          host offset of the normal cluster that
                                         maps GUEST_OFF (exit 1 if not normal)
  qcow2rc.py flip-copied IMG GUEST_OFF   toggle bit 63 (COPIED) of that L2 entry
  qcow2rc.py copied IMG GUEST_OFF        print 1 if that L2 entry has COPIED set
Offsets are decimal or 0x-hex. Uses qcow2.py's header and L2 walk.
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qcow2  # noqa: E402


def rc_geometry(h):
    cs = qcow2.cluster_size(h)
    bits = 1 << h["refcount_order"]
    return cs, bits, cs * 8 // bits


def rc_locate(f, h, host_off):
    """-> (file byte position, bit shift, width) of host_off's refcount, or None."""
    cs, bits, per = rc_geometry(h)
    idx = host_off // cs
    ti = idx // per
    if ti >= h["refcount_table_clusters"] * cs // 8:
        return None
    f.seek(h["refcount_table_offset"] + 8 * ti)
    blk = struct.unpack(">Q", f.read(8))[0] & qcow2.OFF_MASK
    if not blk:
        return None
    bit = (idx % per) * bits
    return blk + bit // 8, bit % 8, bits


def rc_get(f, h, host_off):
    loc = rc_locate(f, h, host_off)
    if loc is None:
        return 0
    pos, shift, bits = loc
    f.seek(pos)
    if bits < 8:
        return (f.read(1)[0] >> shift) & ((1 << bits) - 1)
    return int.from_bytes(f.read(bits // 8), "big")


def rc_set(f, h, host_off, val):
    loc = rc_locate(f, h, host_off)
    if loc is None:
        raise SystemExit(f"no refcount block covers host offset {host_off:#x}")
    pos, shift, bits = loc
    f.seek(pos)
    if bits < 8:
        b = f.read(1)[0]
        m = ((1 << bits) - 1) << shift
        b = (b & ~m) | ((val << shift) & m)
        f.seek(pos)
        f.write(bytes([b]))
    else:
        f.write(val.to_bytes(bits // 8, "big"))


def l2_entry(f, h, guest):
    cs = qcow2.cluster_size(h)
    for g, kind, off, _, pos in qcow2.clusters(f, h):
        if g == guest // cs * cs:
            return kind, off, pos
    return None


def num(s):
    return int(s, 0)


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd, img = argv[0], argv[1]
    with open(img, "rb" if cmd in ("get", "free", "host", "copied") else "r+b") as f:
        h = qcow2.read_header(f)
        cs = qcow2.cluster_size(h)
        if cmd == "get":
            print(rc_get(f, h, num(argv[2])))
        elif cmd == "set":
            rc_set(f, h, num(argv[2]), num(argv[3]))
        elif cmd == "free":
            end = os.fstat(f.fileno()).st_size // cs * cs
            for off in range(cs, end, cs):
                if rc_locate(f, h, off) is not None and rc_get(f, h, off) == 0:
                    print(off)
                    return 0
            return 1
        elif cmd == "host":
            e = l2_entry(f, h, num(argv[2]))
            if not e or not (e[0] == "normal" or e[0].startswith("ext")) or not e[1]:
                print(f"guest {num(argv[2]):#x} is not a normal cluster: {e}", file=sys.stderr)
                return 1
            print(e[1])
        elif cmd in ("flip-copied", "copied"):
            e = l2_entry(f, h, num(argv[2]))
            if not e:
                raise SystemExit(f"no L2 entry maps guest offset {num(argv[2]):#x}")
            f.seek(e[2])
            v = struct.unpack(">Q", f.read(8))[0]
            if cmd == "copied":
                print(1 if v >> 63 else 0)
            else:
                f.seek(e[2])
                f.write(struct.pack(">Q", v ^ (1 << 63)))
        else:
            raise SystemExit(f"unknown command {cmd}\n{__doc__}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
