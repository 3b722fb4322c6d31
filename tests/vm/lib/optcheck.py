"""Check the guest test "optical" (guest/tests/optical.sh).

    optcheck.py --log CONSOLE --files LIST --iso ISO --cd-info TXT
                --data-iso ISO --bin BIN --audio-lba N

scuse's ISO drive is judged side by side with QEMU's scsi-cd on the same
ISO: every CDB's answer must be the same, or differ exactly as the table
SAME_OR_EXPLAINED says (and why). Answers are compared up to the length
each reply declares: QEMU's virtio-scsi reports no residual, so sg_raw
dumps its whole buffer. The CUE/BIN drive is judged against libcdio's
cd-info (the TOC), bchunk (the data track) and the BIN itself (a raw
sector); the empty drive and the guest's own tray against MMC.

Prints one line per check; exits 1 if any failed."""
import argparse
import hashlib
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sgcheck  # noqa: E402
from sgcheck import sections, hexbytes, ok  # noqa: E402  (ok counts in sgcheck.fails)


def sense(sec):
    """(key, asc, ascq) of sg_raw -vv's raw sense dump, or None (GOOD)."""
    lines = sec[1]
    for i, line in enumerate(lines):
        m = re.match(r"^\s*Raw sense data \(in hex\), sb_len=(\d+)", line)
        if not m:
            continue
        b = bytearray()
        for l in lines[i + 1:]:
            if not re.match(r"^\s*([0-9a-f]{2}\s+)*[0-9a-f]{2}\s*$", l):
                break
            b += bytes(int(x, 16) for x in l.split())
        if len(b) >= 14 and b[0] & 0x7f in (0x70, 0x71):
            return b[2] & 0x0f, b[12], b[13]
        if len(b) >= 4 and b[0] & 0x7f in (0x72, 0x73):
            return b[1] & 0x0f, b[2], b[3]
    return None


def data(sec):
    """The data-in bytes sg_raw dumped (after "Received N bytes of data")."""
    out, on = [], False
    for line in sec[1]:
        if re.match(r"^\s*Received \d+ bytes of data", line):
            on = True
            continue
        if on:
            out.append(line)
    return hexbytes(out)



def be(b, off, n):
    return int.from_bytes(b[off:off + n], "big")


def declared(name, b):
    """The reply's own length (its length field), for the commands that have one."""
    if not b:
        return 0
    if name.startswith("gesn"):
        return min(len(b), be(b, 0, 2) + 4)
    if name.startswith(("toc", "discinfo", "trackinfo", "modesense10")):
        return min(len(b), be(b, 0, 2) + 2)
    if name.startswith("modesense6"):
        return min(len(b), b[0] + 1)
    if name.startswith("getconfig"):
        return min(len(b), be(b, 0, 4) + 4)
    if name.startswith("vpd"):
        return min(len(b), be(b, 2, 2) + 4)
    if name == "inquiry":
        return min(len(b), b[4] + 5)
    return len(b)


def answer(sec, tag):
    s = sec[tag]
    b = data(s)
    name = tag.split("_", 1)[1]
    return s[0], sense(s), b[:declared(name, b)]


def features(b):
    out, off = [], 8
    while off + 4 <= len(b):
        out.append(be(b, off, 2))
        off += 4 + b[off + 3]
    return out


def mode_pages(b, hlen):
    out, off = {}, hlen + be(b, 6, 2) if hlen == 8 else hlen + b[3]
    while off + 2 <= len(b):
        out[b[off] & 0x3f] = b[off:off + 2 + b[off + 1]]
        off += 2 + b[off + 1]
    return out


NOT_IMPLEMENTED = "QEMU's scsi-cd answers INVALID COMMAND OPERATION CODE: it has no %s"


def explain(name, s, q):
    """(True, why) when scuse's answer s and QEMU's q differ as expected."""
    (src, ssn, sb), (qrc, qsn, qb) = s, q
    if name in ("trackinfo", "getperf", "setspeed", "readcd_user", "rsoc"):
        return qsn == (5, 0x20, 0) and ssn is None, NOT_IMPLEMENTED % name
    if name == "write10":
        return (ssn == (5, 0x20, 0) and qsn == (7, 0x27, 0),
                "scuse's CD-ROM has no write command at all (INVALID COMMAND OPERATION CODE); "
                "QEMU's answers WRITE PROTECTED")
    if name == "inquiry":
        same = sb[0] == qb[0] == 0x05 and sb[1] == qb[1] == 0x80 and sb[4] == qb[4]
        return (same and sb[2] == 6 and qb[2] == 5,
                "both a removable CD/DVD device (05h, RMB) of the same length; scuse claims "
                "SPC-4 and version descriptors, QEMU SPC-3; vendor, product, revision differ")
    if name == "vpd00":
        return (list(sb[4:]) == [0x00, 0x80, 0x83] and list(qb[4:]) == [0x00, 0x83],
                "scuse derives a unit serial number (page 80h) from the image path; QEMU "
                "has none without serial=")
    if name == "vpd80":
        return (ssn is None and qsn == (5, 0x24, 0) and len(sb) > 4,
                "QEMU has no unit serial number without serial=")
    if name == "vpd83":
        return (ssn is None and qsn is None and sb[4] == 0x01 and sb[5] == 0x03,
                "scuse gives an NAA designator and a T10 vendor ID; QEMU a vendor-specific "
                "one (its drive id)")
    if name in ("modesense6_2a", "modesense10_2a", "modesense10_all"):
        hl = 4 if name.startswith("modesense6") else 8
        sp, qp = mode_pages(sb, hl), mode_pages(qb, hl)
        a, b = sp.get(0x2a), qp.get(0x2a)
        if not a or not b or len(a) != len(b):
            return False, "page 2Ah missing or of another length"
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        why = ("page 2Ah differs in bytes %s only: scuse claims no audio playback and "
               "ports (4), CD-DA read with READ CD but no sub-channel, C2, ISRC or UPC (5; "
               "QEMU claims all, serving none), no prevent jumper (6 bit 2), no volume "
               "levels (10-11) and no write speeds (18-21): the drive does not write" % diff)
        allowed = {4, 5, 6, 10, 11, 18, 19, 20, 21}
        ok_pages = (set(sp) == {0x01, 0x2a} and set(qp) >= {0x01, 0x2a}
                    if name == "modesense10_all" else set(sp) == set(qp) == {0x2a})
        if name == "modesense10_all":
            why += ("; pages: scuse 01h and 2Ah; QEMU also 08h (caching: a disk's) and 0Eh "
                    "(CD audio control: no audio playback here), and read retries in 01h")
        return ok_pages and set(diff) <= allowed and (a[6] ^ b[6]) & ~0x04 == 0, why
    if name == "getconfig":
        sf, qf = features(sb), features(qb)
        return (be(sb, 6, 2) == be(qb, 6, 2) == 0x0008 and qf == [0, 1, 3] and
                sf == [0, 1, 2, 3, 0x10, 0x1d, 0x1e, 0x1f] and sb[8:20] == qb[8:20],
                "same current profile (CD-ROM) and profile list; scuse adds morphing, random "
                "readable, multi-read, CD read and DVD read (QEMU's are a TODO)")
    if name == "getconfig_mrw":
        return (features(sb) == [] and features(qb)[:1] == [0] and be(sb, 6, 2) == 8,
                "QEMU ignores the starting feature number and returns all; scuse none at or "
                "above 0028h (MRW), which is what Linux's probe asks")
    if name in ("toc0", "toc0_msf"):
        return (len(sb) == len(qb) and sb[:13] == qb[:13] and sb[14:] == qb[14:] and
                sb[13] == 0x14 and qb[13] == 0x16,
                "the lead-out's ADR/CONTROL: scuse repeats the last track's (14h), QEMU 16h")
    if name == "toc1":
        return (sb[5] == 0x14 and sb[6] == 1 and qb[5:] == bytes(len(qb) - 5) and sb[:4] == qb[:4],
                "format 1: QEMU leaves the first track's descriptor empty; scuse fills it "
                "(track 1, 14h, LBA 0)")
    if name == "toc1_ctl40":
        return (be(sb, 0, 2) == 10 and be(qb, 0, 2) == 0x12,
                "control byte 40h (SFF-8020 format 1, Linux's sr_cd_check): scuse answers "
                "format 1; QEMU ignores the bits and answers format 0")
    return False, ""


def check_iso(sec):
    names = sorted({t[6:] for t in sec if t.startswith("scuse_") and "qemu_" + t[6:] in sec})
    ok(len(names) >= 25, "%d commands asked of both drives" % len(names))
    for name in names:
        s, q = answer(sec, "scuse_" + name), answer(sec, "qemu_" + name)
        if s[1] == q[1] and (s[2] == q[2] or s[2] == q[2][:len(s[2])] and name == "toc2"):
            ok(True, "%s: the same answer as QEMU's scsi-cd" % name)
            continue
        good, why = explain(name, s, q)
        ok(good, "%s: differs from QEMU's scsi-cd as explained: %s" % (name, why),
           "scuse %s %s, QEMU %s %s" % (s[1], s[2].hex(), q[1], q[2].hex()))


def lba_toc(b):
    """[(track, ctl, lba)] of a format 0 TOC."""
    return [(b[o + 2], b[o + 1] & 0x0f, be(b, o + 4, 4)) for o in range(4, len(b) - 7, 8)]


def main():
    ap = argparse.ArgumentParser()
    for o in ("--log", "--files", "--iso", "--cd-info", "--data-iso", "--bin"):
        ap.add_argument(o, required=True)
    ap.add_argument("--audio-lba", type=int, required=True)
    a = ap.parse_args()
    lines = open(a.log, errors="replace").read().splitlines()
    sec = sections(lines)
    marks = [l[3:].split() for l in lines if l.startswith("@@ ")]

    check_iso(sec)

    # The ISO through sr: size, read-only, every file.
    size = [m for m in marks if m[0] == "SIZE"]
    iso_bytes = os.path.getsize(a.iso)
    ok(size and int(size[0][2]) * 512 == iso_bytes and size[0][3] == "1",
       "sr sees the ISO's %d bytes, read-only" % iso_bytes, repr(size))
    want = dict(l.split() for l in open(a.files))
    got = {m[2]: m[3] for m in marks if m[0] == "FILE"}
    for f, h in sorted(want.items()):
        ok(got.get(f) == h, "iso9660 through sr: %s has the host's sha256" % f, got.get(f, "missing"))

    # The CUE/BIN: TOC against cd-info, MSF = LBA + 150, the data track.
    info = {}
    for l in open(a.cd_info):
        m = re.match(r"^\s*(\d+): (\d\d):(\d\d):(\d\d)\s+(\d+)\s+(data|audio|leadout)", l)
        if m:
            info[int(m.group(1))] = (int(m.group(5)), m.group(6))
    ok(len(info) == 4, "cd-info lists 3 tracks and the lead-out", repr(info))
    toc = lba_toc(answer(sec, "cue_toc0")[2])
    mine = {(0xaa if t == 0xaa else t): lba for t, ctl, lba in toc}
    theirs = {(0xaa if n == 170 else n): lba for n, (lba, kind) in info.items()}
    ok(mine == theirs, "READ TOC (LBA) of the CUE: the tracks and lead-out cd-info reads",
       "scuse %r, cd-info %r" % (mine, theirs))
    kinds = {t: ctl for t, ctl, lba in toc}
    ok(all((kinds.get(n) == 4) == (k == "data") for n, (lba, k) in info.items() if n != 170),
       "READ TOC: data and audio tracks as cd-info says", repr(kinds))
    msf = answer(sec, "cue_toc0_msf")[2]
    ok(len(msf) == 4 + 8 * len(toc) and
       all(msf[o + 5] * 4500 + msf[o + 6] * 75 + msf[o + 7] == lba + 150
           for o, (t, ctl, lba) in zip(range(4, len(msf) - 7, 8), toc)),
       "READ TOC (MSF): every address is the LBA + 150 frames")
    raw = answer(sec, "cue_toc2")[2]
    points = {raw[o + 3]: raw[o + 8:o + 11] for o in range(4, len(raw) - 10, 11)}
    lo = theirs[0xaa] + 150
    ok(points.get(0xa0, b"")[:1] == b"\x01" and points.get(0xa1, b"")[:1] == b"\x03" and
       points.get(0xa2) == bytes([lo // 4500, lo // 75 % 60, lo % 75]),
       "raw TOC: first track 1, last 3, lead-out at %d frames" % lo, raw.hex())
    di = answer(sec, "cue_discinfo")[2]
    ok(len(di) == 34 and di[2] == 0x0e and di[6] == 3, "READ DISC INFORMATION: complete, tracks 1-3")
    ti = answer(sec, "cue_trackinfo2")[2]
    ok(be(ti, 8, 4) == a.audio_lba and be(ti, 24, 4) == theirs[3] - theirs[2] and ti[2] == 2,
       "READ TRACK INFORMATION of track 2: start %d, size %d" % (a.audio_lba, theirs[3] - theirs[2]),
       ti.hex())
    sha = [m for m in marks if m[0] == "SHA256" and m[1] == "cue_data"]
    blocks = os.path.getsize(a.data_iso) // 2048
    want = hashlib.sha256(open(a.data_iso, "rb").read()).hexdigest()
    ok(sha and sha[0][2] == want and int(sha[0][3]) == blocks,
       "the data track through sr (%d blocks) is what bchunk extracts from the BIN" % blocks,
       repr(sha))
    binb = open(a.bin, "rb").read()
    ok(answer(sec, "cue_readcd_raw")[2] == binb[16 * 2352:17 * 2352],
       "READ CD (whole sector, F8h) of LBA 16: the BIN's 2352 bytes")
    ok(answer(sec, "cue_read_audio")[1] == (5, 0x64, 0),
       "READ(10) on the audio track: ILLEGAL MODE FOR THIS TRACK")

    # The empty drive.
    ok(answer(sec, "empty_tur")[1] == (2, 0x3a, 1), "empty drive: TEST UNIT READY 02/3A/01")
    ok(answer(sec, "empty_readcap")[1] == (2, 0x3a, 1), "empty drive: READ CAPACITY 02/3A/01")
    g = answer(sec, "empty_gesn")[2]
    ok(len(g) == 8 and g[2] == 4 and g[5] == 0, "empty drive: GESN media class, no medium", g.hex())
    inq = answer(sec, "empty_inquiry")[2]
    ok(inq[:2] == b"\x05\x80", "empty drive: INQUIRY CD/DVD, removable")

    # The guest's tray.
    steps = [("lock_prevent", None), ("lock_eject", (5, 0x53, 2)), ("lock_allow", None),
             ("lock_eject2", None), ("lock_tur", (2, 0x3a, 2)), ("lock_load", None),
             ("lock_tur2", None)]
    for tag, want_sense in steps:
        ok(answer(sec, tag)[1] == want_sense, "%s: %s" % (tag, want_sense or "GOOD"),
           repr(answer(sec, tag)[1]))
    return 1 if sgcheck.fails else 0


if __name__ == "__main__":
    sys.exit(main())
