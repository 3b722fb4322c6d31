#!/usr/bin/env python3
"""Compare `scuse map --output=json` with `qemu-img map --output=json`.

usage: mapcmp.py [--no-depth] [--no-present] [--no-offset] [--raw FILE]
                 [--size N] [--start N] EXPECTED.json ACTUAL.json

--start N: the maps begin at N (map --start-offset=N), not at 0.

Both outputs are expanded into byte coverage and cut at the union of their
row boundaries, so row splitting and merging never matter; differing
elementary pieces are merged again for the report.

What is compared, and why (established with qemu-img 7.2, see the notes in
tests/formats/test_qcow2_read.sh):

  coverage  ACTUAL's rows must start at 0 (or --start), be contiguous, non-empty and end
            at the same virtual size as EXPECTED's.
  data      always, exactly.
  zero      exactly where data is false (zero clusters, unallocated ranges,
            raw holes, past a short backing file).  Where data is true,
            qemu-img also sets zero when the *host file* has a hole under
            the cluster (qcow2 allocates a fresh cluster with write-zeroes
            for the untouched part, and qemu's block status recurses into
            the protocol layer), which is a property of the host filesystem,
            not of the image.  There, zero is not compared; instead, if
            --raw is given, every range ACTUAL calls zero must really read
            as zeros in FILE (qemu-img's conversion of the image).
  present   always: "some layer of the chain answers for this range"; QEMU
            and scuse agree on it for plain, zero, compressed, extended-L2
            subclusters, chains and past-the-backing-EOF ranges.
  depth     always: the layer that answered; for ranges no layer holds,
            qemu-img reports the deepest layer reached (the bottom of the
            chain, or the last layer before a backing file ends).
  offset    only on data rows (data true): the host offset of stored data
            in the answering layer's file (same file for both tools, so it
            must match exactly); a data row must have an offset in both or
            in neither (compressed clusters have none).  On zero rows QEMU
            prints offsets for ZERO_ALLOC clusters, raw holes and even for
            *unallocated* subclusters of an allocated extended-L2 cluster
            (present false): nothing reads from them, so they are ignored.
"""
import json
import sys


def load(path):
    with open(path) as f:
        text = f.read()
    try:
        rows = json.loads(text)
    except ValueError as e:
        raise SystemExit(f"{path}: not valid JSON ({e}): {text[:200]!r}")
    if not isinstance(rows, list):
        raise SystemExit(f"{path}: expected a JSON array, got {type(rows).__name__}")
    return rows


def check_rows(name, rows, pos=0):
    """Rows must tile [0, end) without gaps or overlaps; returns end.
    Zero-length rows are dropped first: qemu-img 7.2 prints one for an
    empty image; scuse may print [] instead."""
    rows[:] = [r for r in rows if r.get("length") != 0]
    for i, r in enumerate(rows):
        for k in ("start", "length", "depth", "present", "zero", "data"):
            if k not in r:
                raise SystemExit(f"{name}: row {i} lacks '{k}': {r}")
        if r["start"] != pos:
            raise SystemExit(f"{name}: row {i} starts at {r['start']}, expected {pos} (gap or overlap): {r}")
        if r["length"] <= 0:
            raise SystemExit(f"{name}: row {i} has length {r['length']}: {r}")
        pos += r["length"]
    return pos


def attrs(r, opts):
    data = bool(r["data"])
    a = {"data": data}
    if not data:
        a["zero"] = bool(r["zero"])
    if opts["present"]:
        a["present"] = bool(r["present"])
    if opts["depth"]:
        a["depth"] = r["depth"]
    if opts["offset"] and data:
        # offset - start: constant across a contiguous mapping, so the
        # elementary pieces of one row keep comparing equal.
        a["offset-start"] = (r["offset"] - r["start"]) if "offset" in r else None
    return a


def pieces(rows, cuts):
    """Yield (start, end, row) for each elementary piece between cuts."""
    i = 0
    for s, e in zip(cuts, cuts[1:]):
        while rows[i]["start"] + rows[i]["length"] <= s:
            i += 1
        yield s, e, rows[i]


def main(argv):
    opts = {"depth": True, "present": True, "offset": True}
    raw = None
    size = None
    start = 0
    args = []
    it = iter(argv)
    for a in it:
        if a == "--no-depth":
            opts["depth"] = False
        elif a == "--no-present":
            opts["present"] = False
        elif a == "--no-offset":
            opts["offset"] = False
        elif a == "--raw":
            raw = next(it)
        elif a == "--size":
            size = int(next(it))
        elif a == "--start":
            start = int(next(it))
        else:
            args.append(a)
    if len(args) != 2:
        raise SystemExit(__doc__)
    exp, act = load(args[0]), load(args[1])
    end_e = check_rows("qemu-img map", exp, start)
    end_a = check_rows("scuse map", act, start)
    if size is not None and end_e != size:
        raise SystemExit(f"qemu-img map covers {end_e} bytes, expected {size}")
    if end_a != end_e:
        raise SystemExit(f"scuse map covers {end_a} bytes, qemu-img map {end_e}")

    if not exp and not act:
        return 0
    cuts = sorted({r["start"] for r in exp + act} | {end_e})
    diffs = []  # merged (start, end, expected attrs, actual attrs)
    zero_claims = []
    for (s, e, re_), (_, _, ra) in zip(pieces(exp, cuts), pieces(act, cuts)):
        ae, aa = attrs(re_, opts), attrs(ra, opts)
        if ra["data"] and ra["zero"]:
            zero_claims.append((s, e))
        if ae != aa:
            if diffs and diffs[-1][1] == s and diffs[-1][2] == ae and diffs[-1][3] == aa:
                diffs[-1] = (diffs[-1][0], e, ae, aa)
            else:
                diffs.append((s, e, ae, aa))
    zero_claims_ok(raw, zero_claims, diffs)
    if diffs:
        lines = [f"{len(diffs)} differing range(s):"]
        for s, e, ae, aa in diffs[:8]:
            lines.append(f"  [{s:#x}, {e:#x}) len {e - s:#x}: qemu-img {ae}  scuse {aa}")
        if len(diffs) > 8:
            lines.append(f"  ... and {len(diffs) - 8} more")
        print("\n".join(lines))
        return 1
    return 0


def zero_claims_ok(raw, claims, diffs):
    """Ranges scuse calls data+zero must read as zeros in qemu's raw."""
    if not raw or not claims:
        return True
    ok = True
    with open(raw, "rb") as f:
        for s, e in claims:
            f.seek(s)
            left = e - s
            pos = s
            while left:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    break
                if chunk.count(0) != len(chunk):
                    nz = next(i for i, b in enumerate(chunk) if b)
                    diffs.append((pos + nz, pos + nz + 1, {"reads": "non-zero"}, {"zero": True}))
                    ok = False
                    break
                pos += len(chunk)
                left -= len(chunk)
    return ok


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
