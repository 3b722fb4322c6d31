#!/usr/bin/env python3
"""iogen.py SIZE SEED COUNT [options]: print qemu-io commands, one a line.

Deterministic (seeded) pattern writes at random offsets with unaligned
lengths, so that a reader that mixes up clusters, sub-clusters, sectors or
byte offsets shows it in a byte comparison. Every write has its own
pattern byte (never 0x00), cycling through 0x01..0xff.

options:
  --maxlen N      longest write (default: SIZE/8, at least 1)
  --align N       offsets and lengths are multiples of N (default 1)
  --zero F        fraction of writes that are `write -z` (default 0)
  --zero-u F      fraction that are `write -z -u` (default 0)
  --compress C    start with compressed writes (`write -c`) of whole,
                  distinct C-byte clusters: COUNT*cfrac of the COUNT writes
  --cfrac F       see --compress (default 0.3)
  --start N       only write in [N, SIZE) (default 0)
"""
import random
import sys


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    size, seed, count = int(argv[0]), int(argv[1]), int(argv[2])
    opt = {"maxlen": max(1, size // 8), "align": 1, "zero": 0.0, "zero-u": 0.0,
           "compress": 0, "cfrac": 0.3, "start": 0}
    i = 3
    while i < len(argv):
        k = argv[i].lstrip("-")
        if k not in opt:
            raise SystemExit(f"iogen: unknown option {argv[i]}")
        opt[k] = type(opt[k])(argv[i + 1]) if not isinstance(opt[k], float) else float(argv[i + 1])
        i += 2
    rnd = random.Random(seed)
    a = opt["align"]
    lo = opt["start"]
    pat = (seed * 37) % 255
    c = opt["compress"]
    if c:
        # Compressed writes first, on distinct clusters: QEMU can compress
        # only into unallocated clusters. Later writes may overlap them.
        first, last = (lo + c - 1) // c, size // c - 1
        ncl = min(int(count * opt["cfrac"] + 0.5), max(0, last - first + 1))
        for cl in sorted(rnd.sample(range(first, last + 1), ncl)):
            pat = pat % 255 + 1
            print(f"write -c -P {pat:#04x} {cl * c} {c}")
        count -= ncl
    for _ in range(count):
        ln = rnd.randint(1, max(1, opt["maxlen"] // a)) * a
        ln = min(ln, (size - lo) // a * a)
        if ln <= 0:
            continue
        off = rnd.randint(lo // a, (size - ln) // a) * a if size - ln >= lo else lo
        off = (off + a - 1) // a * a
        r = rnd.random()
        if r < opt["zero"]:
            print(f"write -z {off} {ln}")
        elif r < opt["zero"] + opt["zero-u"]:
            print(f"write -z -u {off} {ln}")
        else:
            pat = pat % 255 + 1
            print(f"write -P {pat:#04x} {off} {ln}")


if __name__ == "__main__":
    main(sys.argv[1:])
