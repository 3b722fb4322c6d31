#!/usr/bin/env python3
"""infocmp.py QEMU.json SCUSE.json [QEMU2.json SCUSE2.json ...]: compare
`info --output=json` outputs, pair by pair.

Either one object per side, or (with --backing-chain) one array of objects
per side, compared element by element. Per image, these keys must be
present in both or absent in both, and equal:
  virtual-size filename cluster-size format format-specific (the whole
  object) backing-filename full-backing-filename backing-filename-format
  dirty-flag
and the snapshot lists must agree on id, name, date-sec, date-nsec,
vm-state-size, vm-clock-sec and vm-clock-nsec, in order. actual-size
(allocation of the host file) and icount are not compared.
"""
import json
import sys

KEYS = ["virtual-size", "filename", "cluster-size", "format", "format-specific",
        "backing-filename", "full-backing-filename", "backing-filename-format", "dirty-flag"]
SNAP = ["id", "name", "date-sec", "date-nsec", "vm-state-size", "vm-clock-sec", "vm-clock-nsec"]
MISSING = "<absent>"


def snaps(d):
    return [{k: s.get(k, MISSING) for k in SNAP} for s in d.get("snapshots", [])]


def compare(q, s, where, out):
    if not isinstance(s, dict):
        out.append(f"{where}: scuse gave {type(s).__name__}, not an object")
        return
    for k in KEYS:
        a, b = q.get(k, MISSING), s.get(k, MISSING)
        if a != b:
            out.append(f"{where}{k}: qemu-img {json.dumps(a)} scuse {json.dumps(b)}")
    a, b = snaps(q), snaps(s)
    if a != b:
        out.append(f"{where}snapshots: qemu-img {a} scuse {b}")


def main(qp, sp):
    q = json.load(open(qp))
    try:
        s = json.load(open(sp))
    except ValueError as e:
        print(f"scuse output is not valid JSON: {e}")
        return 1
    out = []
    if isinstance(q, list):
        if not isinstance(s, list):
            print(f"expected a JSON array (--backing-chain), scuse gave {type(s).__name__}")
            return 1
        if len(q) != len(s):
            out.append(f"chain length: qemu-img {len(q)} scuse {len(s)}")
        for i, (a, b) in enumerate(zip(q, s)):
            compare(a, b, f"[{i}] ", out)
    else:
        compare(q, s, "", out)
    if out:
        print("; ".join(out))
        return 1
    return 0


if __name__ == "__main__":
    rc = 0
    args = sys.argv[1:]
    for i in range(0, len(args), 2):
        if len(args) > 2:
            sys.stdout.write(f"({args[i + 1]}) ")
        rc |= main(args[i], args[i + 1])
    sys.exit(rc)
