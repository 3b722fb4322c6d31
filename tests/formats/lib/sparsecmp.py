#!/usr/bin/env python3
"""sparsecmp.py A B: compare two (sparse) files without reading their holes.

Exit 0 if they have the same size and the same bytes, where a hole reads
as zeros. Only the union of both files' data extents (SEEK_DATA/SEEK_HOLE)
is read, so comparing two 1 GiB mostly-empty files is quick.
"""
import os
import sys


def extents(fd, size):
    out = []
    off = 0
    while off < size:
        try:
            d = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:
            break
        h = os.lseek(fd, d, os.SEEK_HOLE)
        out.append((d, h))
        off = h
    return out


def main(a, b):
    sa, sb = os.path.getsize(a), os.path.getsize(b)
    if sa != sb:
        print(f"sizes differ: {a} {sa}, {b} {sb}")
        return 1
    fa, fb = os.open(a, os.O_RDONLY), os.open(b, os.O_RDONLY)
    ranges = sorted(extents(fa, sa) + extents(fb, sb))
    pos = 0
    for s, e in ranges:
        s = max(s, pos)
        while s < e:
            n = min(e - s, 1 << 20)
            x, y = os.pread(fa, n, s), os.pread(fb, n, s)
            if x != y:
                i = next(i for i in range(min(len(x), len(y))) if x[i] != y[i]) if len(x) == len(y) else 0
                print(f"differ at byte {s + i:#x}: {x[i:i + 8].hex()} vs {y[i:i + 8].hex()}")
                return 1
            s += n
        pos = max(pos, e)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
