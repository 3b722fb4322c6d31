#!/usr/bin/env python3
"""rawdiff.py WANT GOT: describe how two raw images differ (for messages).

Prints the sizes if they differ, then the first few differing ranges
(merged at 512-byte granularity) with a sample of the bytes on each side.
"""
import os
import sys

def main(want, got):
    out = []
    sw, sg = os.path.getsize(want), os.path.getsize(got)
    if sw != sg:
        out.append(f"size qemu-img {sw} scuse {sg}")
    ranges = []
    with open(want, "rb") as a, open(got, "rb") as b:
        off = 0
        blk = 512
        while True:
            x, y = a.read(1 << 20), b.read(1 << 20)
            if not x and not y:
                break
            n = max(len(x), len(y))
            x, y = x.ljust(n, b"\0"), y.ljust(n, b"\0")
            if x != y:
                for i in range(0, n, blk):
                    if x[i:i + blk] != y[i:i + blk]:
                        s = off + i
                        if ranges and ranges[-1][1] == s:
                            ranges[-1][1] = s + blk
                        else:
                            if len(ranges) >= 6:
                                break
                            ranges.append([s, s + blk, x[i:i + 8].hex(), y[i:i + 8].hex()])
            off += n
    for s, e, hx, hy in ranges[:5]:
        out.append(f"[{s:#x},{e:#x}) qemu-img {hx}.. scuse {hy}..")
    if len(ranges) > 5:
        out.append("...")
    print("; ".join(out) if out else "identical")

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
