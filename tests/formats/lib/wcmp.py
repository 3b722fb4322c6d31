#!/usr/bin/env python3
"""wcmp.py: comparisons for the write-path tests.

  wcmp.py info REF.json GOT.json
      two `qemu-img info --output=json` outputs (REF: an image qemu-img
      created, GOT: the same options through scuse create) must agree on
      virtual-size, format, cluster-size, backing-filename,
      backing-filename-format, dirty-flag and every key of
      format-specific.data except `bitmaps`.
  wcmp.py map REF.json GOT.json
      two `qemu-img map --output=json` outputs must agree on every range's
      start, length, depth, present, data, and zero where data is false
      (host offsets may differ, and zero on a data row only reflects holes
      in the host file); adjacent equal ranges are merged first.
  wcmp.py check QEMU.json SCUSE.json
      `check --output=json` of qemu-img and scuse: corruptions, leaks and
      check-errors (absent = 0) must be equal.
  wcmp.py get JSON KEY[.KEY...]
      print one value (absent: nothing, exit 1).
"""
import json
import sys

INFO_KEYS = ["virtual-size", "format", "cluster-size", "backing-filename",
             "backing-filename-format", "dirty-flag"]
MISSING = "<absent>"


def load(p):
    with open(p) as f:
        return json.load(f)


def info(a, b):
    q, s = load(a), load(b)
    out = []
    for k in INFO_KEYS:
        if q.get(k, MISSING) != s.get(k, MISSING):
            out.append(f"{k}: qemu-img's {json.dumps(q.get(k, MISSING))}, scuse's "
                       f"{json.dumps(s.get(k, MISSING))}")
    qd = q.get("format-specific", {}).get("data", {})
    sd = s.get("format-specific", {}).get("data", {})
    for k in sorted(set(qd) | set(sd)):
        if k == "bitmaps":
            continue
        if qd.get(k, MISSING) != sd.get(k, MISSING):
            out.append(f"format-specific.{k}: qemu-img's {json.dumps(qd.get(k, MISSING))}, "
                       f"scuse's {json.dumps(sd.get(k, MISSING))}")
    return out


def rows(p):
    res = []
    for r in load(p):
        # zero on a data row only says the host file has a hole there
        # (depends on where the host offsets fall): not compared
        key = (r["depth"], r["present"], r["zero"] and not r["data"], r["data"])
        if res and res[-1][0] == key and res[-1][1] + res[-1][2] == r["start"]:
            res[-1][2] += r["length"]
        else:
            res.append([key, r["start"], r["length"]])
    return res


def mapcmp(a, b):
    q, s = rows(a), rows(b)
    if q == s:
        return []
    for x, y in zip(q, s):
        if x != y:
            return [f"first different range: qemu-img's image {fmt(x)}, scuse's {fmt(y)}"]
    return [f"{len(q)} ranges vs {len(s)}"]


def fmt(r):
    (depth, present, zero, data), start, length = r
    return f"[{start}, +{length}) depth={depth} present={present} zero={zero} data={data}"


def check(a, b):
    q, s = load(a), load(b)
    out = []
    for k in ("corruptions", "leaks", "check-errors"):
        if q.get(k, 0) != s.get(k, 0):
            out.append(f"{k}: qemu-img {q.get(k, 0)}, scuse {s.get(k, MISSING)}")
    return out


def get(p, key):
    d = load(p)
    for k in key.split("."):
        if not isinstance(d, dict) or k not in d:
            return 1
        d = d[k]
    print(json.dumps(d) if isinstance(d, (dict, list, bool)) else d)
    return 0


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    if argv[0] == "get":
        return get(argv[1], argv[2])
    fn = {"info": info, "map": mapcmp, "check": check}.get(argv[0])
    if not fn:
        raise SystemExit(__doc__)
    try:
        out = fn(argv[1], argv[2])
    except (ValueError, KeyError, TypeError) as e:
        print(f"unreadable output: {e}")
        return 1
    if out:
        print("; ".join(out))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
