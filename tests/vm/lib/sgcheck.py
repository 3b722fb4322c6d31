"""Check the sg3_utils outputs of the guest test "sg" (guest/tests/sg.sh).

    sgcheck.py --log CONSOLE --disk vhost|scsi-hd --vendor V --product P
               --serial S --wwn 0xW --size BYTES --block-size 512
               --cluster-size BYTES --before RAW --after RAW --map MAP.json

Every field is judged against what the LUN was configured with (the
identity, the image's size and cluster size) and against SPC/SBC, read
twice where sg3_utils offers it: its decoded text and our own decoding of
the bytes it dumps in hex. The expectations are scuse's (core/scsi); for
QEMU's scsi-hd (the reference disk path, SCUSE_VM_DISK=scsi-hd) only what
applies to it is checked, and every check that does not is printed as
"n/a  ... [scsi-hd]". The data-changing commands (UNMAP, WRITE SAME,
COMPARE AND WRITE) are also judged on the image itself: BEFORE and AFTER
are raw conversions of the image before and after the guest ran.

Prints one line per check; exits 1 if any failed.
"""
import argparse
import hashlib
import json
import re
import sys

fails = 0


def ok(cond, what, detail=""):
    global fails
    if cond:
        print("ok   " + what)
    else:
        fails += 1
        print("FAIL " + what + (": " + detail if detail else ""))
    return cond


def na(what, disk):
    print("n/a  %s [%s]" % (what, disk))


def sections(lines):
    """{tag: (rc, [lines])} from @@ BEGIN TAG ... @@ END TAG rc=N."""
    out, cur, buf = {}, None, []
    for line in lines:
        m = re.match(r"^@@ BEGIN (\S+)$", line)
        if m:
            cur, buf = m.group(1), []
            continue
        m = re.match(r"^@@ END (\S+) rc=(\d+)$", line)
        if m and cur == m.group(1):
            out[cur] = (int(m.group(2)), buf)
            cur = None
            continue
        if cur is not None:
            buf.append(line)
    return out


HEXLINE = re.compile(r"^\s*([0-9a-f]+)\s{2,}(.*)$")
HEXBYTES = re.compile(r"((?:[0-9a-f]{2}(?: {1,2}|$))+)")


def hexbytes(lines):
    """The bytes of sg3_utils' hex dumps ("OFF  xx xx ...  ASCII")."""
    data = bytearray()
    for line in lines:
        m = HEXLINE.match(line)
        if not m:
            continue
        b = HEXBYTES.match(m.group(2))
        if b:
            data += bytes(int(t, 16) for t in b.group(1).split())
    return bytes(data)


def be(b, off, n):
    return int.from_bytes(b[off:off + n], "big")


def gen(i, off, length, seed):
    line = ("scuse-vm %s %s %s %s\n" % (i, off, length, seed)).encode()
    reps = length // len(line) + 1
    return (line * reps)[:length]


def text(sec):
    return "\n".join(sec[1])


def field(sec, regex):
    m = re.search(regex, text(sec))
    return m.group(1) if m else None


def mode_pages(sec):
    """{page code: bytes} from `sg_modes --all` output, and the header."""
    pages, cur = {}, None
    for line in sec[1]:
        if line.startswith(">> "):
            cur = []
            pages[len(pages)] = cur
            continue
        if cur is not None and HEXLINE.match(line):
            cur.append(line)
        elif cur is not None and line.strip() == "":
            cur = None
    out = {}
    for lines in pages.values():
        b = hexbytes(lines)
        if b:
            out[b[0] & 0x3F] = b
    return out


def main():
    ap = argparse.ArgumentParser()
    for a in ("log", "disk", "vendor", "product", "serial", "wwn", "before", "after"):
        ap.add_argument("--" + a, required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--block-size", type=int, default=512)
    ap.add_argument("--cluster-size", type=int, default=65536)
    ap.add_argument("--luns", default="0")
    ap.add_argument("--map", help="qemu-img map --output=json of the image before the run")
    args = ap.parse_args()
    disk = args.disk
    scuse = disk == "vhost"
    bs = args.block_size
    blocks = args.size // bs
    wwn = int(args.wwn, 16)

    lines = open(args.log, errors="replace").read().splitlines()
    sec = sections(lines)
    plan = {}
    for line in lines:
        m = re.match(r"^@@ PLAN (\S+) (\d+) (\d+)$", line)
        if m:
            plan[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    sums = {}
    for line in lines:
        m = re.match(r"^@@ SHA256 (\S+) ([0-9a-f]{64})$", line)
        if m:
            sums[m.group(1)] = m.group(2)

    def have(tag, want_rc=0):
        s = sec.get(tag)
        if s is None:
            return ok(False, tag + ": section present", "missing from the console")
        return ok(s[0] == want_rc, "%s: exit status %d" % (tag, want_rc),
                  "got %d: %s" % (s[0], " | ".join(s[1][-3:])))

    # --- standard INQUIRY -------------------------------------------------
    if have("inq"):
        s = sec["inq"]
        ok(re.search(r"PQual=0\s+PDT=0\b", text(s)), "inq: PQual 0, PDT 0 (disk)")
        ok(field(s, r"Vendor identification: (.*)") is not None and
           field(s, r"Vendor identification: (.*)").strip() == args.vendor,
           "inq: vendor '%s'" % args.vendor, field(s, r"Vendor identification: (.*)"))
        ok((field(s, r"Product identification: (.*)") or "").strip() == args.product,
           "inq: product '%s'" % args.product, field(s, r"Product identification: (.*)"))
        ok((field(s, r"Unit serial number: (.*)") or "").strip() == args.serial,
           "inq: unit serial '%s'" % args.serial, field(s, r"Unit serial number: (.*)"))
        ok(field(s, r"HiSUP=(\d)") == "1", "inq: HiSUP 1")
        ok(field(s, r"Resp_data_format=(\d)") == "2", "inq: response data format 2")
        ok(field(s, r"CmdQue=(\d)") == "1", "inq: CmdQue 1")
        ok(field(s, r"RMB=(\d)") == "0", "inq: not removable")
        if scuse:
            ok(field(s, r"version=(0x[0-9a-f]+)") == "0x06", "inq: version 0x06 (SPC-4)",
               field(s, r"version=(0x[0-9a-f]+)"))
            rev = (field(s, r"Product revision level: (.*)") or "").strip()
            ok(re.fullmatch(r"[ -~]{1,4}", rev) is not None, "inq: a product revision", rev)
        else:
            na("inq: version 0x06 (QEMU says SPC-3)", disk)
    if have("inqhex") and have("inq_raw"):
        a, r = hexbytes(sec["inqhex"][1]), hexbytes(sec["inq_raw"][1])
        ok(len(r) >= 36 and a[:len(r)] == r,
           "inq: sg_raw's bytes = sg_inq's (the raw decoding below is sound)", r.hex())
    if "inqhex" in sec and scuse:
        b = hexbytes(sec["inqhex"][1])
        ok(len(b) >= 64 and [be(b, 58 + 2 * i, 2) for i in range(3)] == [0x00A0, 0x0460, 0x04C0],
           "inq: version descriptors SAM-5, SPC-4, SBC-3", b[58:64].hex())

    # --- VPD pages ------------------------------------------------------------
    if have("vpdhex_0x00"):
        b = hexbytes(sec["vpdhex_0x00"][1])
        ok(b[4:4 + be(b, 2, 2)] == bytes([0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2]),
           "vpd 00: pages 00 80 83 b0 b1 b2", b.hex())
    if have("vpd_0x80"):
        ok((field(sec["vpd_0x80"], r"Unit serial number: (.*)") or "").strip() == args.serial,
           "vpd 80: serial (decoded)")
    if have("vpdhex_0x80"):
        b = hexbytes(sec["vpdhex_0x80"][1])
        ok(b[4:4 + be(b, 2, 2)].decode(errors="replace").strip() == args.serial,
           "vpd 80: serial (bytes)", b.hex())
    if have("vpdhex_0x83"):
        b = hexbytes(sec["vpdhex_0x83"][1])
        desig, off, end = [], 4, 4 + be(b, 2, 2)
        while off + 4 <= end:
            n = b[off + 3]
            desig.append((b[off] & 0x0F, b[off + 1] & 0x0F, (b[off + 1] >> 4) & 3,
                          b[off + 4:off + 4 + n]))
            off += 4 + n
        ok(off == end, "vpd 83: designators fill the page exactly", b.hex())
        naa = [d for d in desig if d[1] == 3 and d[2] == 0]
        ok(len(naa) == 1 and naa[0][0] == 1 and naa[0][3] == wwn.to_bytes(8, "big"),
           "vpd 83: one NAA designator, binary, of the LU = %#x" % wwn, repr(naa))
        if scuse:
            t10 = [d for d in desig if d[1] == 1]
            ok(len(t10) == 1 and t10[0][0] == 2 and
               t10[0][3] == args.vendor.ljust(8).encode() + args.serial.encode(),
               "vpd 83: T10 vendor ID designator = vendor + serial", repr(t10))
        else:
            na("vpd 83: T10 vendor ID designator", disk)
    if have("vpd_0x83"):
        ok(("0x%016x" % wwn) in text(sec["vpd_0x83"]), "vpd 83: sg_vpd decodes the NAA %#x" % wwn)
    if have("vpdhex_0xb0"):
        b = hexbytes(sec["vpdhex_0xb0"][1])
        ok(be(b, 2, 2) == 0x3C and len(b) >= 64, "vpd b0: page length 0x3c", b.hex())
        mtl, otl = be(b, 8, 4), be(b, 12, 4)
        ok(otl == 0 or otl >= mtl,
           "vpd b0: optimal transfer length 0 or >= the maximum (else Linux caps its I/O)",
           "optimal %d, maximum %d" % (otl, mtl))
        # WSNZ: QEMU refuses WRITE SAME of 0 blocks; scuse writes to the end.
        ok((b[4] & 1) == (0 if scuse else 1), "vpd b0: WSNZ %d" % (0 if scuse else 1))
        if scuse:
            ok(b[5] == 255, "vpd b0: maximum compare and write length 255", str(b[5]))
            ok(be(b, 6, 2) == 1, "vpd b0: optimal transfer length granularity 1", str(be(b, 6, 2)))
            ok(mtl == (32 << 20) // bs, "vpd b0: maximum transfer length 32 MiB", str(mtl))
            ok(otl == 0, "vpd b0: optimal transfer length 0 (not reported)", str(otl))
            ok(be(b, 20, 4) == min((1 << 30) // bs, 1 << 20),
               "vpd b0: maximum unmap LBA count 1 GiB, at most 2^20 blocks", str(be(b, 20, 4)))
            ok(be(b, 24, 4) == 256, "vpd b0: maximum unmap descriptors 256", str(be(b, 24, 4)))
            ok(be(b, 28, 4) == max(args.cluster_size // bs, 1),
               "vpd b0: optimal unmap granularity = the cluster", str(be(b, 28, 4)))
            ok(be(b, 32, 4) == 0x80000000, "vpd b0: UGAVALID, alignment 0", hex(be(b, 32, 4)))
            ok(be(b, 36, 8) == (256 << 20) // bs, "vpd b0: maximum write same length 256 MiB",
               str(be(b, 36, 8)))
        else:
            na("vpd b0: scuse's limits (CAW 255, 32 MiB transfers, unmap = cluster)", disk)
    if have("vpdhex_0xb1"):
        b = hexbytes(sec["vpdhex_0xb1"][1])
        ok(be(b, 2, 2) == 0x3C, "vpd b1: page length 0x3c", b.hex())
        # No --lun option sets a rotation rate: not reported (0) or
        # non-rotating (1) are both honest for an image.
        ok(be(b, 4, 2) in (0, 1), "vpd b1: rotation rate not reported or non-rotating",
           str(be(b, 4, 2)))
    lbprz = None
    if have("vpdhex_0xb2"):
        b = hexbytes(sec["vpdhex_0xb2"][1])
        ok(b[5] & 0xE0 == 0xE0, "vpd b2: LBPU, LBPWS, LBPWS10", hex(b[5]))
        ok(b[6] & 0x07 == 2, "vpd b2: thin provisioned", hex(b[6]))
        lbprz = (b[5] >> 2) & 1

    # --- capacity -------------------------------------------------------------
    if have("readcap"):
        s = sec["readcap"]
        ok(field(s, r"Last LBA=(\d+)") == str(blocks - 1), "readcap16: last LBA %d" % (blocks - 1),
           field(s, r"Last LBA=(\d+)"))
        ok(field(s, r"Logical block length=(\d+)") == str(bs), "readcap16: block length %d" % bs)
        ok(field(s, r"prot_en=(\d)") == "0", "readcap16: no protection")
        ok(field(s, r"exponent=(\d+)") == "0", "readcap16: physical block exponent 0")
        ok(field(s, r"lbpme=(\d)") == "1", "readcap16: LBPME 1")
        if lbprz is not None:
            ok(field(s, r"lbprz=(\d)") == str(lbprz), "readcap16: LBPRZ as in VPD b2 (%d)" % lbprz)
    if have("readcap10"):
        s = sec["readcap10"]
        ok(field(s, r"Last LBA=(\d+)") == str(blocks - 1), "readcap10: last LBA %d" % (blocks - 1))
        ok(field(s, r"Logical block length=(\d+)") == str(bs), "readcap10: block length %d" % bs)

    # --- REPORT LUNS ------------------------------------------------------------
    if have("luns"):
        got = sorted(re.findall(r"^\s+([0-9a-f]{16})\s*$", text(sec["luns"]), re.M))
        # single level, peripheral device addressing below 256
        want = sorted("%04x000000000000" % n for n in map(int, args.luns.split(",")))
        ok(got == want, "luns: %s" % " ".join(want), " ".join(got))

    # --- mode pages ---------------------------------------------------------------
    for tag in ("modes", "modes6"):
        if have(tag):
            s = sec[tag]
            ok(field(s, r"WP=(\d)") == "0", tag + ": WP 0 (writable)")
            pages = mode_pages(s)
            ok(8 in pages and pages[8][2] & 0x04, tag + ": caching page, WCE 1",
               pages.get(8, b"").hex())
            if scuse:
                ok(field(s, r"DpoFua=(\d)") == "1", tag + ": DPOFUA 1 (FUA honoured)")
                ok(sorted(pages) == [0x01, 0x08, 0x0A], tag + ": pages 01 08 0a",
                   " ".join("%02x" % p for p in sorted(pages)))
                ok(0x0A in pages and pages[0x0A][2] & 0x04 == 0 and pages[0x0A][3] == 0x10,
                   tag + ": control page D_SENSE 0, QAM 1", pages.get(0x0A, b"").hex())
            else:
                na(tag + ": DPOFUA, pages 01 08 0a, control page", disk)
            bd = re.search(r"Direct access device block descriptors:\s*\n.*\n\s*00\s+((?:[0-9a-f]{2}\s*){8})",
                           text(s))
            ok(bd and bytes(int(t, 16) for t in bd.group(1).split()) ==
               min(blocks, 0xFFFFFFFF).to_bytes(4, "big") + bs.to_bytes(4, "big"),
               tag + ": block descriptor: %d blocks of %d" % (blocks, bs),
               bd.group(1) if bd else "none")
    if have("modes_chg"):
        pages = mode_pages(sec["modes_chg"])
        ok(8 in pages and pages[8][2] & 0x04, "modes (changeable): WCE changeable")
        if scuse:
            ok(0x0A in pages and pages[0x0A][2] & 0x04, "modes (changeable): D_SENSE changeable")
        else:
            na("modes (changeable): D_SENSE", disk)

    # --- REPORT SUPPORTED OPERATION CODES and TMFs ----------------------------------
    want_ops = {(op, None) for op in (
        0x00, 0x03, 0x08, 0x0A, 0x12, 0x15, 0x1A, 0x1B, 0x1E, 0x25, 0x28, 0x2A, 0x2E, 0x2F,
        0x34, 0x35, 0x41, 0x42, 0x55, 0x5A, 0x88, 0x89, 0x8A, 0x8E, 0x8F, 0x90, 0x91, 0x93,
        0xA0, 0xA8, 0xAA, 0x37, 0x8B, 0x9C, 0xAE, 0xAF, 0xB7)} | {
        (0x9E, 0x10), (0x9E, 0x12), (0xA3, 0x0C), (0xA3, 0x0D), (0x48, 0x01), (0x48, 0x02),
        (0x48, 0x03), (0x48, 0x1F), (0x83, 0x00), (0x84, 0x00), (0x84, 0x03)}
    if scuse:
        if have("rsoc_raw"):
            b = hexbytes(sec["rsoc_raw"][1])
            got, off, end = set(), 4, 4 + be(b, 0, 4)
            while off + 8 <= min(end, len(b)):
                d = b[off:off + 8]
                got.add((d[0], be(d, 2, 2) if d[5] & 1 else None))
                off += 8 + (12 if d[5] & 2 else 0)
            ok(got == want_ops, "rsoc: the %d commands of core/scsi/scsi_table.c" % len(want_ops),
               "missing %s, extra %s" % (sorted(want_ops - got, key=str),
                                         sorted(got - want_ops, key=str)))
        if have("opcodes"):
            ok(len(re.findall(r"^\s*[0-9a-f]{2}\s", text(sec["opcodes"]), re.M | re.I)) >= len(want_ops),
               "rsoc (sg_opcodes): a line per command")
        have("opcodes_mask")
        have("tmf")
        if have("rtmf_raw"):
            b = hexbytes(sec["rtmf_raw"][1])
            ok(len(b) >= 1 and b[0] & 0x88 == 0x88, "rtmf: ABORT TASK and LOGICAL UNIT RESET",
               b.hex())
    else:
        for tag in ("opcodes", "rsoc_raw", "tmf", "rtmf_raw"):
            s = sec.get(tag)
            ok(s is not None and s[0] != 0 and "invalid" in text(s).lower() and "opcode" in
               text(s).lower().replace(" operation code", " opcode"),
               tag + ": refused cleanly (QEMU has no RSOC/RTMF)")
        na("rsoc and rtmf: scuse's command list", disk)
    have("turs")

    # --- provisioning and data commands ---------------------------------------------
    def lba_status(tag):
        b = hexbytes(sec[tag][1])
        # GET LBA STATUS parameter data: length, reserved, descriptors of
        # LBA (8), blocks (4), provisioning status (low nibble)
        if len(b) < 24:
            return None
        return be(b, 8, 8), be(b, 16, 4), b[20] & 0x0F

    before = open(args.before, "rb").read()
    after = open(args.after, "rb").read()
    zero = lambda n: bytes(n)  # noqa: E731
    sha = lambda d: hashlib.sha256(d).hexdigest()  # noqa: E731
    touched = []

    def rng(name):
        lba, n = plan[name]
        touched.append((lba * bs, (lba + n) * bs))
        return lba * bs, (lba + n) * bs

    if scuse:
        have("lba_data")
        rows = json.load(open(args.map)) if args.map else []

        def run_from(start, pred):
            """Bytes from start on which qemu-img's map satisfies pred."""
            end = start
            for r in rows:
                if r["start"] + r["length"] <= end:
                    continue
                if r["start"] > end or not pred(r):
                    break
                end = r["start"] + r["length"]
            return end - start

        for tag, name, pst in (("lbaraw_data", "data", 0), ("lbaraw_hole", "hole", 1)):
            if have(tag):
                d = lba_status(tag)
                lba = plan[name][0]
                # the run that starts there, as qemu-img map sees the chain:
                # data in any layer is mapped; never written is deallocated
                if name == "data":
                    n = run_from(lba * bs, lambda r: r["data"]) // bs
                else:
                    n = run_from(lba * bs, lambda r: not r["data"] and "offset" not in r) // bs
                ok(d == (lba, n, pst), "get lba status at %s: (lba %d, %d blocks, %s)" %
                   (name, lba, n, ["mapped", "deallocated"][pst]), repr(d))
    else:
        for tag in ("lba_data", "lbaraw_data", "lbaraw_hole", "lbaraw_unmapped", "lbaraw_wsunmap"):
            s = sec.get(tag)
            ok(s is not None and s[0] != 0, tag + ": refused (QEMU has no GET LBA STATUS)")

    if have("unmap"):
        a, z = rng("unmap")
        if lbprz:
            ok(sums.get("unmapped") == sha(zero(z - a)), "unmap: the range reads zeros (LBPRZ 1)")
            ok(after[a:z] == zero(z - a), "unmap: the image reads zeros there")
        else:
            ok(after[a:z] in (zero(z - a), before[a:z]),
               "unmap: the image holds zeros or the old data (LBPRZ 0)")
        if scuse and have("lbaraw_unmapped"):
            d = lba_status("lbaraw_unmapped")
            ok(d is not None and d[0] == a // bs and d[2] in (1, 2) and d[1] >= (z - a) // bs,
               "get lba status after unmap: deallocated or anchored", repr(d))
    if have("ws"):
        a, z = rng("ws")
        block = gen("ws", plan["ws"][0], bs, "sg")
        ok(sums.get("ws") == sha(block * ((z - a) // bs)), "write same: the guest reads the block back")
        ok(after[a:z] == block * ((z - a) // bs), "write same: the image holds the block")
    if have("ws_unmap"):
        a, z = rng("wsunmap")
        ok(after[a:z] == zero(z - a), "write same unmap: the image reads zeros")
        if scuse and have("lbaraw_wsunmap"):
            d = lba_status("lbaraw_wsunmap")
            ok(d is not None and d[0] == a // bs, "get lba status after write same unmap", repr(d))
    a, z = rng("caw")
    new = gen("caw", plan["caw"][0], bs, "sg")
    if scuse:
        have("caw", 0)
        have("caw_miscompare", 14)
        ok(sums.get("caw") == sha(new), "compare and write: the guest reads the new block")
        ok(after[a:z] == new, "compare and write: the image holds the new block")
        have("verify_bytchk", 0)
        have("verify_miscompare", 14)
    else:
        ok(after[a:z] == before[a:z], "compare and write: not served, the block is unchanged")
        for tag in ("verify_bytchk", "verify_miscompare"):
            s = sec.get(tag)
            ok(s is not None and s[0] != 0, tag + ": refused (QEMU has no VERIFY BYTCHK)")
        na("compare and write GOOD/MISCOMPARE, VERIFY BYTCHK 1", disk)
    have("verify")
    have("sync")
    if scuse:
        have("sync16")
    else:
        na("SYNCHRONIZE CACHE(16)", disk)

    # nothing else changed
    touched.sort()
    pos, other = 0, True
    for a, z in touched + [(len(before), len(before))]:
        if before[pos:a] != after[pos:a]:
            other = False
        pos = max(pos, z)
    ok(other and len(before) == len(after), "the image changed only where the commands wrote")

    print("sgcheck: %d failure(s)" % fails)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
