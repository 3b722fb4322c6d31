#!/usr/bin/env python3
"""vhd.py: a VHD reader and writer written from Microsoft's VHD
specification (2006, v1.0), the oracle for what QEMU cannot make or read:
differencing disks, partly set sector bitmaps, damaged metadata.

usage:
  vhd.py create IMG SIZE [--type dynamic|fixed|diff] [--parent P]
         [--block-size N] [--creator XXXX] [--locators w2ru,w2ku,name]
         [--w2ku PATH] [--name TEXT] [--parent-ts mtime|footer|N]
         [--space-bytes]
      SIZE is the exact virtual size (rounded down to sectors): the
      creator defaults to "win " (Hyper-V sizes by current_size). A
      child's size defaults to its parent's (SIZE "-"). W2ru holds the
      parent's path relative to the child (".\\p.vhd"), W2ku --w2ku or an
      absolute path, the name field --name or the parent's file name.
  vhd.py io IMG                 qemu-io style commands on stdin, one a line:
      write -P 0xNN OFF LEN | write -z OFF LEN | stale -P 0xNN OFF LEN
      (sector aligned). A write allocates what it needs at the end of the
      file and sets exactly the bits of the sectors it wrote; `stale`
      writes data into an allocated block without setting bits.
  vhd.py export IMG OUT         the virtual disk through its chain, as raw
  vhd.py map IMG                the chain's map as qemu-img map --output=json
  vhd.py info IMG               the fields, as JSON
  vhd.py set IMG FIELD VALUE    edit a field; checksums follow unless the
      field is a checksum. FIELD: footer.<name>, dyn.<name>, bat.<i>,
      loc.<i>.<code|space|length|offset>, bytes.<offset> (hex bytes),
      tail.truncate (VALUE: bytes to cut from the end)
  vhd.py libvhdi-export IMG OUT  the same disk read by libvhdi (ctypes),
      parents attached from the locators as this reader finds them

Parents are found as the specification says writers record them: the W2ru
locator, then W2ku, then the parent name, relative to the child's
directory; the parent's UUID must match.
"""
import json
import os
import struct
import sys
import time
import uuid as uuidmod

SECTOR = 512
EPOCH = 946684800
MAX_GEOMETRY = 65535 * 16 * 255
FOOTER_FMT = ">8sIIQI4sI4sQQHBBII16sB427s"
DYN_FMT = ">8sQQIIII16sII512s"
FOOTER_FIELDS = ["cookie", "features", "version", "data_offset", "timestamp", "creator_app",
                 "creator_version", "creator_os", "orig_size", "cur_size", "cyls", "heads",
                 "secs", "type", "checksum", "uuid", "saved_state", "reserved"]
DYN_FIELDS = ["cookie", "data_offset", "table_offset", "version", "max_entries", "block_size",
              "checksum", "parent_uuid", "parent_ts", "reserved1", "parent_name"]


def checksum(buf, off):
    return ~(sum(buf) - sum(buf[off:off + 4])) & 0xffffffff


def geometry(total):
    """The specification's CHS algorithm."""
    total = min(total, MAX_GEOMETRY)
    if total >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = total // spt
    else:
        spt = 17
        cth = total // spt
        heads = max(4, (cth + 1023) // 1024)
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = total // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = total // spt
    return cth // heads, heads, spt


class Footer:
    def __init__(self, raw):
        self.raw = bytearray(raw)
        vals = struct.unpack(FOOTER_FMT, bytes(self.raw))
        self.f = dict(zip(FOOTER_FIELDS, vals))

    def ok(self):
        return self.f["cookie"] == b"conectix" and checksum(self.raw, 64) == self.f["checksum"]

    def pack(self, fix=True):
        self.raw[:] = struct.pack(FOOTER_FMT, *[self.f[k] for k in FOOTER_FIELDS])
        if fix:
            self.f["checksum"] = checksum(self.raw, 64)
            struct.pack_into(">I", self.raw, 64, self.f["checksum"])
        return bytes(self.raw)


class Dyn:
    def __init__(self, raw):
        self.raw = bytearray(raw)
        vals = struct.unpack(DYN_FMT, bytes(self.raw[:576]))
        self.f = dict(zip(DYN_FIELDS, vals))
        self.loc = [list(struct.unpack(">IIIIQ", bytes(self.raw[576 + 24 * i:600 + 24 * i])))
                    for i in range(8)]

    def pack(self, fix=True):
        self.raw[:576] = struct.pack(DYN_FMT, *[self.f[k] for k in DYN_FIELDS])
        for i, l in enumerate(self.loc):
            self.raw[576 + 24 * i:600 + 24 * i] = struct.pack(">IIIIQ", *l)
        if fix:
            self.f["checksum"] = checksum(self.raw, 36)
            struct.pack_into(">I", self.raw, 36, self.f["checksum"])
        return bytes(self.raw)


class Vhd:
    def __init__(self, path, writable=False):
        self.path = path
        self.fh = open(path, "r+b" if writable else "rb")
        self.fh.seek(0, 2)
        self.file_size = self.fh.tell()
        head = Footer(self.pread(0, 512))
        tail = Footer(self.pread(self.file_size - 512, 512))
        if tail.ok() and tail.f["type"] == 2:
            self.ft, self.ft_off = tail, self.file_size - 512
        elif head.f["cookie"] == b"conectix":
            self.ft, self.ft_off = head, 0
        else:
            self.ft, self.ft_off = tail, self.file_size - 512
        if not self.ft.ok():
            raise SystemExit(f"{path}: bad footer")
        f = self.ft.f
        self.type = f["type"]
        self.size = virtual_size(f)
        self.parent = None
        self.bitmaps = {}
        if self.type == 2:
            return
        self.dyn = Dyn(self.pread(f["data_offset"], 1024))
        d = self.dyn.f
        self.block_size = d["block_size"]
        self.spb = self.block_size // SECTOR
        self.bitmap_size = ((self.spb + 7) // 8 + 511) // 512 * 512
        self.bat = list(struct.unpack(f">{d['max_entries']}I",
                                      self.pread(d["table_offset"], 4 * d["max_entries"])))

    def pread(self, off, n):
        self.fh.seek(off)
        b = self.fh.read(n)
        return b + bytes(n - len(b))

    def pwrite(self, off, b):
        self.fh.seek(off)
        self.fh.write(b)

    def open_parent(self):
        if self.type != 4:
            return None
        if self.parent is None:
            path = find_parent(self)
            self.parent = Vhd(path)
            if self.parent.ft.f["uuid"] != self.dyn.f["parent_uuid"]:
                raise SystemExit(f"{self.path}: parent {path} has another UUID")
        return self.parent

    def bitmap(self, blk):
        if blk not in self.bitmaps:
            self.bitmaps[blk] = self.pread(self.bat[blk] * SECTOR, self.bitmap_size)
        return self.bitmaps[blk]

    # The state of each sector of one layer: ("data", host) where stored,
    # ("zero", None) where a dynamic disk answers zeros, ("below", None).
    def layer(self, sector):
        if self.type == 2:
            return "data", sector * SECTOR
        blk, s = divmod(sector, self.spb)
        e = self.bat[blk]
        absent = ("below", None) if self.type == 4 else ("zero", None)
        if e == 0xffffffff:
            return absent
        bm = self.bitmap(blk)
        if bm[s // 8] >> (7 - s % 8) & 1:
            return "data", e * SECTOR + self.bitmap_size + s * SECTOR
        return absent

    def read_sector(self, sector):
        v = self
        while True:
            kind, host = v.layer(sector)
            if kind == "data":
                return v.pread(host, SECTOR)
            if kind == "zero":
                return bytes(SECTOR)
            p = v.open_parent()
            if sector * SECTOR >= p.size:
                return bytes(SECTOR)
            v = p


def virtual_size(f):
    """QEMU's choice: C*H*S sectors, except for the creators that size by
    current_size and for the largest geometry."""
    chs = f["cyls"] * f["heads"] * f["secs"]
    if f["creator_app"] in (b"win ", b"qem2", b"d2v ", b"CTXS", b"tap\0") or chs == MAX_GEOMETRY:
        return f["cur_size"] // SECTOR * SECTOR
    return chs * SECTOR


def utf16(b, le):
    s = b.decode("utf-16-le" if le else "utf-16-be")
    return s.split("\0")[0]


def local(win, child_dir):
    p = win.replace("\\", "/")
    if len(p) > 1 and p[1] == ":" or p.startswith("//"):
        p = p.rsplit("/", 1)[-1]
    while p.startswith("./"):
        p = p[2:]
    return p if p.startswith("/") else os.path.join(child_dir, p)


def find_parent(v):
    d = os.path.dirname(v.path) or "."
    cands = []
    for code in (b"W2ru", b"W2ku"):
        for l in v.dyn.loc:
            if struct.pack(">I", l[0]) == code:
                cands.append(local(utf16(v.pread(l[4], l[2]), True), d))
    name = utf16(v.dyn.f["parent_name"], False)
    if name:
        cands.append(local(name, d))
    for c in cands:
        if os.path.exists(c):
            return c
    raise SystemExit(f"{v.path}: no parent found among {cands}")


# ---------------------------------------------------------------------------
# writer

def create(path, size, kind="dynamic", parent=None, block_size=2 << 20, creator=b"win ",
           locators=("w2ru", "w2ku", "name"), w2ku=None, name=None, parent_ts="mtime",
           space_bytes=False):
    p = Vhd(parent) if parent else None
    if size is None:
        size = p.size
    size = size // SECTOR * SECTOR
    cyls, heads, secs = geometry(size // SECTOR)
    types = {"fixed": 2, "dynamic": 3, "diff": 4}
    f = dict(zip(FOOTER_FIELDS, [b"conectix", 2, 0x10000, 0, int(time.time()) - EPOCH, creator,
                                 0x10000, b"Wi2k", size, size, cyls, heads, secs, types[kind],
                                 0, uuidmod.uuid4().bytes, 0, bytes(427)]))
    ft = Footer(bytes(512))
    ft.f = f
    if kind == "fixed":
        f["data_offset"] = 0xffffffffffffffff
        with open(path, "wb") as fh:
            fh.truncate(size)
            fh.seek(size)
            fh.write(ft.pack())
        return
    f["data_offset"] = 512
    entries = (size + block_size - 1) // block_size
    bat_bytes = (entries * 4 + 511) // 512 * 512
    dyn = Dyn(bytes(1024))
    dyn.f.update(cookie=b"cxsparse", data_offset=0xffffffffffffffff, table_offset=1536,
                 version=0x10000, max_entries=entries, block_size=block_size)
    blobs = b""
    if kind == "diff":
        dyn.f["parent_uuid"] = p.ft.f["uuid"]
        if parent_ts == "mtime":
            dyn.f["parent_ts"] = int(os.stat(parent).st_mtime) - EPOCH
        elif parent_ts == "footer":
            dyn.f["parent_ts"] = p.ft.f["timestamp"]
        else:
            dyn.f["parent_ts"] = int(parent_ts)
        rel = os.path.relpath(os.path.abspath(parent), os.path.dirname(os.path.abspath(path)))
        texts = {"w2ru": ".\\" + rel.replace("/", "\\"),
                 "w2ku": w2ku if w2ku is not None else os.path.abspath(parent).replace("/", "\\")}
        nm = name if name is not None else os.path.basename(parent)
        if "name" in locators:
            dyn.f["parent_name"] = nm.encode("utf-16-be")[:512].ljust(512, b"\0")
        off = 1536 + bat_bytes
        i = 0
        for code in ("w2ru", "w2ku"):
            if code not in locators:
                continue
            data = texts[code].encode("utf-16-le")
            room = (len(data) + 511) // 512 * 512
            dyn.loc[i] = [struct.unpack(">I", code[0].upper().encode() + code[1:].encode())[0],
                          room if space_bytes else room // 512, len(data), 0, off + len(blobs)]
            blobs += data.ljust(room, b"\0")
            i += 1
    with open(path, "wb") as fh:
        fh.write(ft.pack())
        fh.write(dyn.pack())
        fh.write(b"\xff" * (entries * 4) + b"\0" * (bat_bytes - entries * 4))
        fh.write(blobs)
        fh.write(ft.raw)


def allocate(v, blk):
    """A new block where the footer is, the footer after it."""
    at = v.file_size - 512
    v.pwrite(at, bytes(v.bitmap_size + v.block_size))
    v.pwrite(at + v.bitmap_size + v.block_size, v.ft.raw)
    v.file_size = at + v.bitmap_size + v.block_size + 512
    v.bat[blk] = at // SECTOR
    v.pwrite(v.dyn.f["table_offset"] + 4 * blk, struct.pack(">I", at // SECTOR))


def write(v, off, data, set_bits=True):
    assert off % SECTOR == 0 and len(data) % SECTOR == 0
    if v.type == 2:
        v.pwrite(off, data)
        return
    pos = 0
    while pos < len(data):
        blk, inb = divmod(off + pos, v.block_size)
        n = min(len(data) - pos, v.block_size - inb)
        if v.bat[blk] == 0xffffffff:
            allocate(v, blk)
        base = v.bat[blk] * SECTOR
        v.pwrite(base + v.bitmap_size + inb, data[pos:pos + n])
        if set_bits:
            bm = bytearray(v.bitmap(blk))
            for s in range(inb // SECTOR, (inb + n) // SECTOR):
                bm[s // 8] |= 0x80 >> (s % 8)
            v.pwrite(base, bm)
            v.bitmaps[blk] = bytes(bm)
        pos += n


def io(path, lines):
    v = Vhd(path, writable=True)
    for line in lines:
        w = line.split()
        if not w:
            continue
        if w[0] == "write" and w[1] == "-P":
            write(v, int(w[3], 0), bytes([int(w[2], 0)]) * int(w[4], 0))
        elif w[0] == "write" and w[1] == "-z":
            write(v, int(w[2], 0), bytes(int(w[3], 0)))
        elif w[0] == "stale":
            write(v, int(w[3], 0), bytes([int(w[2], 0)]) * int(w[4], 0), set_bits=False)
        else:
            raise SystemExit(f"vhd.py io: cannot do '{line.strip()}'")
    v.fh.close()


# ---------------------------------------------------------------------------
# reader outputs

def export(path, out):
    v = Vhd(path)
    with open(out, "wb") as fh:
        for s in range(v.size // SECTOR):
            fh.write(v.read_sector(s))


def chain_map(path):
    """Rows as qemu-img map prints them: the layer that answers each
    sector, data with its host offset, or zeros."""
    top = Vhd(path)
    rows = []
    for s in range(top.size // SECTOR):
        v, depth = top, 0
        while True:
            if s * SECTOR >= v.size:
                row = (depth, True, False, False, None)
                break
            kind, host = v.layer(s)
            if kind == "data":
                row = (depth, True, False, True, host)
                break
            if kind == "zero":
                row = (depth, True, True, False, None)
                break
            v, depth = v.open_parent(), depth + 1
        depth, present, zero, data, host = row
        start = s * SECTOR
        if rows:
            r = rows[-1]
            same = (r["depth"], r["present"], r["zero"], r["data"]) == (depth, present, zero, data)
            if same and (not data or r["offset"] + r["length"] == host):
                r["length"] += SECTOR
                continue
        r = {"start": start, "length": SECTOR, "depth": depth, "present": present,
             "zero": zero, "data": data}
        if data:
            r["offset"] = host
        rows.append(r)
    return rows


def info(path):
    v = Vhd(path)
    f = {k: (x.hex() if isinstance(x, bytes) else x) for k, x in v.ft.f.items() if k != "reserved"}
    out = {"footer": f, "footer_offset": v.ft_off, "size": v.size, "file_size": v.file_size}
    if v.type != 2:
        d = {k: (x.hex() if isinstance(x, bytes) else x) for k, x in v.dyn.f.items()}
        d["parent_name"] = utf16(v.dyn.f["parent_name"], False)
        d.pop("reserved1")
        out["dyn"] = d
        out["locators"] = v.dyn.loc
        out["bat"] = v.bat
        out["bitmap_size"] = v.bitmap_size
    return out


def set_field(path, field, value):
    v = Vhd(path, writable=True)
    part, _, name = field.partition(".")
    fix = not name.endswith("checksum")
    num = (lambda x: int(x, 0))
    if part == "footer":
        ft = v.ft
        cur = ft.f[name]
        if name in ("creator_app", "creator_os"):
            ft.f[name] = value.encode().ljust(4, b"\0")[:4]
        else:
            ft.f[name] = bytes.fromhex(value) if isinstance(cur, bytes) else num(value)
        raw = ft.pack(fix)
        v.pwrite(v.ft_off, raw)
        if v.type != 2:
            v.pwrite(v.file_size - 512, raw)
    elif part == "dyn":
        cur = v.dyn.f[name]
        v.dyn.f[name] = bytes.fromhex(value) if isinstance(cur, bytes) else num(value)
        v.pwrite(v.ft.f["data_offset"], v.dyn.pack(fix))
    elif part == "bat":
        v.pwrite(v.dyn.f["table_offset"] + 4 * int(name), struct.pack(">I", num(value)))
    elif part == "loc":
        i, _, k = name.partition(".")
        idx = ["code", "space", "length", "reserved", "offset"].index(k)
        v.dyn.loc[int(i)][idx] = (struct.unpack(">I", value.encode())[0]
                                  if k == "code" and not value.startswith("0x") else num(value))
        v.pwrite(v.ft.f["data_offset"], v.dyn.pack(True))
    elif part == "bytes":
        v.pwrite(int(name, 0), bytes.fromhex(value))
    elif part == "tail" and name == "truncate":
        v.fh.truncate(v.file_size - int(value))
    else:
        raise SystemExit(f"vhd.py set: unknown field {field}")
    v.fh.close()


# ---------------------------------------------------------------------------
# libvhdi, the second opinion (Debian's libvhdi1)

def libvhdi_export(path, out):
    import ctypes
    lib = ctypes.CDLL("libvhdi.so.1")
    lib.libvhdi_file_read_buffer_at_offset.restype = ctypes.c_ssize_t
    lib.libvhdi_file_read_buffer_at_offset.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                                       ctypes.c_size_t, ctypes.c_int64,
                                                       ctypes.c_void_p]
    handles = []

    def open_one(p):
        h, err = ctypes.c_void_p(), ctypes.c_void_p()
        if lib.libvhdi_file_initialize(ctypes.byref(h), ctypes.byref(err)) != 1:
            raise SystemExit("libvhdi: initialize failed")
        if lib.libvhdi_file_open(h, p.encode(), 1, ctypes.byref(err)) != 1:
            raise SystemExit(f"libvhdi: cannot open {p}")
        handles.append(h)
        return h

    v = Vhd(path)
    top = h = open_one(path)
    while v.type == 4:
        pv = v.open_parent()
        ph = open_one(pv.path)
        err = ctypes.c_void_p()
        if lib.libvhdi_file_set_parent_file(h, ph, ctypes.byref(err)) != 1:
            raise SystemExit(f"libvhdi: cannot attach parent {pv.path}")
        v, h = pv, ph
    size = ctypes.c_uint64()
    err = ctypes.c_void_p()
    lib.libvhdi_file_get_media_size(top, ctypes.byref(size), ctypes.byref(err))
    chunk = 1 << 20
    buf = ctypes.create_string_buffer(chunk)
    with open(out, "wb") as fh:
        off = 0
        while off < size.value:
            n = min(chunk, size.value - off)
            got = lib.libvhdi_file_read_buffer_at_offset(top, buf, n, off, ctypes.byref(err))
            if got != n:
                raise SystemExit(f"libvhdi: read of {n} at {off} returned {got}")
            fh.write(buf.raw[:n])
            off += n
    for h in reversed(handles):
        lib.libvhdi_file_close(h, ctypes.byref(err))


def main(argv):
    if not argv:
        raise SystemExit(__doc__)
    cmd, args = argv[0], argv[1:]
    if cmd == "create":
        opts = {"--type": "dynamic", "--parent": None, "--block-size": str(2 << 20),
                "--creator": "win ", "--locators": "w2ru,w2ku,name", "--w2ku": None,
                "--name": None, "--parent-ts": "mtime"}
        pos, flags, i = [], set(), 0
        while i < len(args):
            if args[i] == "--space-bytes":
                flags.add(args[i])
                i += 1
            elif args[i] in opts:
                opts[args[i]] = args[i + 1]
                i += 2
            else:
                pos.append(args[i])
                i += 1
        size = None if pos[1] == "-" else int(pos[1], 0)
        create(pos[0], size, opts["--type"], opts["--parent"], int(opts["--block-size"], 0),
               opts["--creator"].encode().ljust(4, b"\0")[:4], opts["--locators"].split(","),
               opts["--w2ku"], opts["--name"], opts["--parent-ts"], "--space-bytes" in flags)
    elif cmd == "io":
        io(args[0], sys.stdin.read().splitlines())
    elif cmd == "export":
        export(args[0], args[1])
    elif cmd == "map":
        print(json.dumps(chain_map(args[0])))
    elif cmd == "info":
        print(json.dumps(info(args[0])))
    elif cmd == "set":
        set_field(args[0], args[1], args[2])
    elif cmd == "libvhdi-export":
        libvhdi_export(args[0], args[1])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
