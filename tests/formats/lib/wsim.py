#!/usr/bin/env python3
"""wsim.py: random write runs for an image and a raw shadow that mirrors them.

  wsim.py gen SIZE SEED COUNT [options]
      print io commands (valid for both `scuse io` and `qemu-io`), one a
      line; batches (one `scuse io` run each) are separated by `--` lines.
      options:
        --cluster N    cluster size; offsets/lengths snap to it or to 512 or
                       to nothing (unaligned) at random (default 65536)
        --maxlen N     longest op (default SIZE/4); ~10% of ops are long
                       (spanning many clusters), the rest short (< 3 clusters)
        --zero F       fraction `write -z` (default 0.1)
        --zero-u F     fraction `write -z -u` (default 0.1)
        --discard F    fraction `discard` (default 0.1)
        --disc-any     discards at any offset/length (default: the generator
                       rounds them inward to whole clusters)
        --flush F      fraction `flush` (default 0)
        --batch N      ops per batch (default 64; at most 250)
        --pat N        first pattern byte - 1 (default from SEED)
  wsim.py apply SHADOW CMDFILE [--cluster N] [--discard strict|advisory]
      apply the commands to SHADOW, a raw file of the image's virtual size
      (`--` lines are ignored). Semantics, per issue 3:
        write -P B    the bytes are B
        write -z [-u] the bytes are 0
        discard       strict: the whole clusters inside the range read 0
                      (deallocated, or zero clusters in an overlay); the
                      partial head and tail may be ignored by the driver
                      (advisory), so each of their bytes may read 0 or its
                      previous value. advisory: every byte may be 0 or the
                      previous value (a v2 overlay cannot make zero clusters;
                      the backing file's data must still never reappear).
      "may be 0" is kept in SHADOW.zok (one byte per image byte, 1 = zero is
      also acceptable), which exists only while some byte is uncertain.
  wsim.py verify ACTUAL SHADOW
      ACTUAL (a raw export of the image) must equal SHADOW, except that
      bytes marked in SHADOW.zok may also be 0. Exit 1 naming the first bad
      offset.
  wsim.py uncertain SHADOW
      exit 0 when SHADOW.zok marks nothing (then `qemu-img compare` with
      SHADOW is exact), 1 otherwise.
  wsim.py sample SHADOW N SEED
      print N `read -P B OFF LEN` commands for ranges whose SHADOW bytes
      are all B and definite (for a qemu-io read-back).
  wsim.py runs SHADOW OFF LEN [OFF LEN ...]
      print `read -P B OFF LEN` for every maximal run of equal bytes of
      SHADOW inside the given ranges (for a qemu-io read-back of what a
      write left around itself).
  wsim.py crashcheck ACTUAL BEFORE CMDFILE STDOUT [--cluster N] [--discard M]
      After kill -9 of `scuse io -c ...` (CMDFILE, one batch) started on an
      image whose content was BEFORE (raw): STDOUT is what it printed
      before dying (one "wrote/discard ... at offset" line per completed
      non-flush command, in order). A flush is known complete when a
      later command printed. Every byte of ACTUAL must be its value after
      the last known-complete flush, or a value some later command could
      have left there. Prints a summary; exit 1 naming the first bad byte.
"""
import os
import sys


def parse_opts(argv, defaults):
    opt = dict(defaults)
    pos = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--") and a[2:] in opt:
            k = a[2:]
            if isinstance(opt[k], bool):
                opt[k] = True
                i += 1
                continue
            t = type(opt[k])
            opt[k] = t(argv[i + 1]) if t is not int else int(argv[i + 1], 0)
            i += 2
        elif a.startswith("--"):
            raise SystemExit(f"wsim: unknown option {a}")
        else:
            pos.append(a)
            i += 1
    return opt, pos


# ---------------------------------------------------------------------------
def gen(argv):
    import random
    opt, pos = parse_opts(argv, {"cluster": 65536, "maxlen": 0, "zero": 0.1, "zero-u": 0.1,
                                 "discard": 0.1, "disc-any": False, "flush": 0.0,
                                 "batch": 64, "pat": -1})
    size, seed, count = int(pos[0]), int(pos[1]), int(pos[2])
    rnd = random.Random(seed)
    cs = opt["cluster"]
    maxlen = opt["maxlen"] or max(1, size // 4)
    pat = opt["pat"] if opt["pat"] >= 0 else (seed * 53) % 255
    batch = min(max(1, opt["batch"]), 250)
    out = []
    n_in_batch = 0

    def span():
        # length: mostly short (up to ~3 clusters), sometimes long
        if rnd.random() < 0.1:
            ln = rnd.randint(1, maxlen)
        else:
            ln = rnd.randint(1, min(maxlen, 3 * cs))
        # alignment: unaligned, sector, or cluster
        r = rnd.random()
        a = 1 if r < 0.45 else 512 if r < 0.7 else cs
        ln = max(a, ln // a * a)
        ln = min(ln, size // a * a)
        if ln <= 0:
            return None
        # offset: anywhere, sometimes right at the end of the image
        if rnd.random() < 0.05:
            off = (size - ln) // a * a
        else:
            off = rnd.randint(0, (size - ln) // a) * a
        return off, ln

    for _ in range(count):
        r = rnd.random()
        if r < opt["flush"]:
            out.append("flush")
        else:
            r = rnd.random()
            s = span()
            if s is None:
                continue
            off, ln = s
            if r < opt["zero"]:
                out.append(f"write -z {off} {ln}")
            elif r < opt["zero"] + opt["zero-u"]:
                out.append(f"write -z -u {off} {ln}")
            elif r < opt["zero"] + opt["zero-u"] + opt["discard"]:
                if not opt["disc-any"]:
                    a = (off + cs - 1) // cs * cs
                    b = (off + ln) // cs * cs
                    if b <= a:  # make it one whole cluster instead
                        a = off // cs * cs
                        b = min(a + cs, size // cs * cs)
                        if b <= a:
                            continue
                    off, ln = a, b - a
                out.append(f"discard {off} {ln}")
            else:
                pat = pat % 255 + 1
                out.append(f"write -P {pat:#04x} {off} {ln}")
        n_in_batch += 1
        if n_in_batch == batch:
            out.append("--")
            n_in_batch = 0
    while out and out[-1] == "--":
        out.pop()
    print("\n".join(out))


# ---------------------------------------------------------------------------
def size_arg(s):
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    if s[-1:].lower() in mult:
        return int(s[:-1], 0) * mult[s[-1].lower()]
    return int(s, 0)


def parse_cmd(line):
    """-> (kind, off, len, value) with kind write/zero/discard/flush."""
    w = line.split()
    if not w:
        return None
    if w[0] == "flush":
        return ("flush", 0, 0, 0)
    args, flags, val = [], set(), None
    i = 1
    while i < len(w):
        if w[i] == "-P":
            val = int(w[i + 1], 0)
            i += 2
            continue
        if w[i].startswith("-"):
            flags.update(w[i][1:])
        else:
            args.append(w[i])
        i += 1
    off, ln = size_arg(args[0]), size_arg(args[1])
    if w[0] == "discard":
        return ("discard", off, ln, 0)
    if "z" in flags:
        return ("zero", off, ln, 0)
    return ("write", off, ln, 0xcd if val is None else val)


class Shadow:
    def __init__(self, path, load=True):
        self.path = path
        self.data = bytearray(open(path, "rb").read()) if load else None
        zp = path + ".zok"
        self.zok = bytearray(open(zp, "rb").read()) if os.path.exists(zp) else None

    def need_zok(self):
        if self.zok is None:
            self.zok = bytearray(len(self.data))

    def apply(self, op, cs, mode):
        kind, off, ln, val = op
        if kind == "flush" or ln == 0:
            return
        end = off + ln
        if kind in ("write", "zero"):
            self.data[off:end] = bytes([val]) * ln
            if self.zok is not None:
                self.zok[off:end] = bytes(ln)
            return
        # discard
        if mode == "strict":
            a = (off + cs - 1) // cs * cs
            b = end // cs * cs
        else:
            a = b = off
        if b > a:
            self.data[a:b] = bytes(b - a)
            if self.zok is not None:
                self.zok[a:b] = bytes(b - a)
        for x, y in ((off, min(a, end)), (max(b, off), end)) if b > a else ((off, end),):
            if y > x:
                self.need_zok()
                self.zok[x:y] = b"\1" * (y - x)

    def save(self):
        open(self.path, "wb").write(self.data)
        zp = self.path + ".zok"
        if self.zok is not None and any(self.zok):
            open(zp, "wb").write(self.zok)
        elif os.path.exists(zp):
            os.unlink(zp)


def read_cmds(path):
    ops = []
    for line in open(path):
        line = line.strip()
        if not line or line == "--":
            continue
        op = parse_cmd(line)
        if op:
            ops.append(op)
    return ops


def apply(argv):
    opt, pos = parse_opts(argv, {"cluster": 65536, "discard": "strict"})
    sh = Shadow(pos[0])
    for op in read_cmds(pos[1]):
        sh.apply(op, opt["cluster"], opt["discard"])
    sh.save()


# ---------------------------------------------------------------------------
def first_bad(actual, want, zok, base=0):
    """offset of the first byte of actual that is neither want nor an
    allowed zero, or None."""
    n = len(want)
    if len(actual) != n:
        return base + min(len(actual), n)
    step = 65536
    for s in range(0, n, step):
        a, w = actual[s:s + step], want[s:s + step]
        if a == w:
            continue
        z = zok[s:s + step] if zok is not None else None
        for t in range(0, len(a), 512):
            aa, ww = a[t:t + 512], w[t:t + 512]
            if aa == ww:
                continue
            if z is not None and aa == bytes(len(aa)):
                zz = z[t:t + 512]
                if all(zz[i] or ww[i] == 0 for i in range(len(aa))):
                    continue
            for i in range(len(aa)):
                if aa[i] != ww[i] and not (z is not None and z[t + i] and aa[i] == 0):
                    return base + s + t + i
    return None


def verify(argv):
    actual = open(argv[0], "rb").read()
    sh = Shadow(argv[1])
    if len(actual) != len(sh.data):
        print(f"size differs: image {len(actual)}, shadow {len(sh.data)}")
        return 1
    bad = first_bad(actual, sh.data, sh.zok)
    if bad is not None:
        z = sh.zok[bad] if sh.zok is not None else 0
        # describe the run of bad bytes
        end = bad
        while end < len(actual) and end - bad < 1 << 20 and actual[end] != sh.data[end] and \
                not (z and actual[end] == 0):
            end += 1
        print(f"first difference at offset {bad} ({bad:#x}): image has {actual[bad]:#04x}, "
              f"expected {sh.data[bad]:#04x}{' or 0x00' if z else ''} "
              f"(about {end - bad} bytes differ from there)")
        return 1
    return 0


def uncertain(argv):
    sh = Shadow(argv[0], load=False)
    return 1 if sh.zok is not None and any(sh.zok) else 0


def sample(argv):
    import random
    sh = Shadow(argv[0])
    n, seed = int(argv[1]), int(argv[2])
    rnd = random.Random(seed)
    d, z = bytes(sh.data), bytes(sh.zok) if sh.zok is not None else None
    size = len(d)
    lim = 1 << 17
    out = []
    tries = 0
    while len(out) < n and tries < n * 50 and size:
        tries += 1
        p = rnd.randrange(size)
        if z is not None and z[p]:
            continue
        b = d[p:p + 1]
        # the run of b around p (at most lim each way), definite bytes only
        fwd = d[p:p + lim]
        e = p + len(fwd) - len(fwd.lstrip(b))
        back = d[max(0, p - lim):p]
        s = p - (len(back) - len(back.rstrip(b)))
        if z is not None:
            zf = z[p:e]
            e = p + len(zf) - len(zf.lstrip(b"\0"))
            zb = z[s:p]
            s = p - (len(zb) - len(zb.rstrip(b"\0")))
        out.append(f"read -P {b[0]:#04x} {s} {e - s}")
    print("\n".join(out))


def runs(argv):
    d = Shadow(argv[0]).data
    out = []
    for i in range(1, len(argv) - 1, 2):
        off, end = int(argv[i]), int(argv[i]) + int(argv[i + 1])
        s = off
        while s < end:
            e = s + 1
            while e < end and d[e] == d[s]:
                e += 1
            out.append(f"read -P {d[s]:#04x} {s} {e - s}")
            s = e
    print("\n".join(out))


# ---------------------------------------------------------------------------
def crashcheck(argv):
    import re
    opt, pos = parse_opts(argv, {"cluster": 65536, "discard": "strict"})
    actual = open(pos[0], "rb").read()
    ops = read_cmds(pos[2])
    printed = 0
    for line in open(pos[3], errors="replace"):
        if re.match(r"^(wrote|discard|read) \d+/\d+ bytes at offset \d+", line):
            printed += 1
    # index (in ops) of the printed-th non-flush command
    last_done = -1
    k = 0
    for i, op in enumerate(ops):
        if op[0] != "flush":
            k += 1
            if k == printed:
                last_done = i
                break
    flushes_done = [i for i, op in enumerate(ops[:last_done + 1]) if op[0] == "flush"]
    f = flushes_done[-1] if flushes_done else -1
    sh = Shadow(pos[1])
    sh.path = None
    for op in ops[:f + 1]:
        sh.apply(op, opt["cluster"], opt["discard"])
    want, zok = sh.data, sh.zok
    later = [op for op in ops[f + 1:] if op[0] != "flush"]
    # elementary intervals of the later ops, each with its candidate values
    cuts = sorted({0, len(want)} | {op[1] for op in later} | {op[1] + op[2] for op in later})
    bad = None
    for a, b in zip(cuts, cuts[1:]):
        if a >= b:
            continue
        cand = {op[3] for op in later if op[1] <= a and b <= op[1] + op[2]}
        act, w = actual[a:b], want[a:b]
        if act == w:
            continue
        z = zok[a:b] if zok is not None else None
        if not cand:
            fb = first_bad(act, w, z, a)
            if fb is not None:
                bad = fb
                break
            continue
        # per 512-byte piece: all one candidate, or byte by byte
        for t in range(0, b - a, 512):
            aa, ww = act[t:t + 512], w[t:t + 512]
            if aa == ww or (len(set(aa)) == 1 and aa[0] in cand):
                continue
            for i in range(len(aa)):
                if aa[i] != ww[i] and aa[i] not in cand and \
                        not (z is not None and z[t + i] and aa[i] == 0):
                    bad = a + t + i
                    break
            if bad is not None:
                break
        if bad is not None:
            break
    print(f"{len(ops)} commands, {printed} printed as done, last known-complete flush is "
          f"command #{f + 1 if f >= 0 else 0} (of {sum(1 for o in ops if o[0] == 'flush')}); "
          f"{len(later)} later commands uncertain")
    if bad is not None:
        print(f"byte {bad} ({bad:#x}) is {actual[bad]:#04x}: expected {want[bad]:#04x} "
              f"(state at the last completed flush) or one of "
              f"{sorted(op[3] for op in later if op[1] <= bad < op[1] + op[2])} (later commands)")
        return 1
    if len(actual) != len(want):
        print(f"size differs: image {len(actual)}, expected {len(want)}")
        return 1
    return 0


def main(argv):
    if not argv:
        raise SystemExit(__doc__)
    cmd = argv[0]
    fn = {"gen": gen, "apply": apply, "verify": verify, "uncertain": uncertain,
          "sample": sample, "runs": runs, "crashcheck": crashcheck}.get(cmd)
    if not fn:
        raise SystemExit(f"wsim: unknown command {cmd}\n{__doc__}")
    return fn(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
