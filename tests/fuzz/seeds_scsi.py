#!/usr/bin/env python3
"""seeds_scsi.py DIR: seed inputs for fuzz_scsi (the format is described at
the top of fuzz_scsi.c): every command the LUN serves with valid fields and
plausible data, parameter lists (UNMAP, MODE SELECT 6/10, WRITE SAME,
COMPARE AND WRITE), on raw and qcow2 LUNs with 512- and 4096-byte blocks,
read-only, without discard and under a command policy."""
import os
import struct
import sys

NONE, IN, OUT = 0, 1, 2


def rec(cdb, d=NONE, length=0, data=b"", split=False, ua=False):
    """One record: header, CDB, buffer length, data-out bytes."""
    cdb = bytes(cdb)
    assert 1 <= len(cdb) <= 16
    hdr = (len(cdb) - 1) | (d << 4) | (0x40 if split else 0) | (0x80 if ua else 0)
    out = bytes([hdr]) + cdb + struct.pack(">H", length)
    if d == OUT:
        out += bytes(data).ljust(length, b"\0")[:length]
    return out


def be(v, n):
    return v.to_bytes(n, "big")


def rw(op, lba, n, fua=False):
    if op in (0x08, 0x0A):
        return bytes([op]) + be(lba & 0x1FFFFF, 3) + bytes([n & 0xFF, 0])
    flags = 0x08 if fua else 0
    if op >> 5 == 5:
        return bytes([op, flags]) + be(lba, 4) + be(n, 4) + bytes(2)
    if op >> 5 == 4:
        return bytes([op, flags]) + be(lba, 8) + be(n, 4) + bytes(2)
    return bytes([op, flags]) + be(lba, 4) + bytes([0]) + be(n, 2) + bytes([0])


def pattern(n, salt):
    return bytes(((i * 13 + salt) ^ (i >> 7)) & 0xFF for i in range(n))


def commands(bs):
    """Records exercising every command once or more (block size bs)."""
    r = []
    r.append(rec([0x00, 0, 0, 0, 0, 0]))                                # TEST UNIT READY
    r.append(rec([0x03, 0, 0, 0, 252, 0], IN, 252))                     # REQUEST SENSE
    r.append(rec([0x03, 1, 0, 0, 252, 0], IN, 252))                     # descriptor format
    r.append(rec([0x12, 0, 0, 0, 96, 0], IN, 96))                       # INQUIRY
    r.append(rec([0x12, 0, 0, 0, 5, 0], IN, 5))                         # short allocation
    for page in (0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2):
        r.append(rec([0x12, 1, page, 1, 0, 0], IN, 256))
    r.append(rec([0x25] + [0] * 9, IN, 8))                              # READ CAPACITY(10)
    r.append(rec([0x9E, 0x10] + [0] * 8 + list(be(32, 4)) + [0, 0], IN, 32))
    r.append(rec([0x9E, 0x12] + [0] * 8 + list(be(4096, 4)) + [0, 0], IN, 4096))
    for op in (0x08, 0x28, 0xA8, 0x88):
        r.append(rec(rw(op, 3, 2), IN, 2 * bs, split=True))
    for op, fua in ((0x0A, False), (0x2A, True), (0xAA, False), (0x8A, True)):
        r.append(rec(rw(op, 5, 2, fua), OUT, 2 * bs, pattern(2 * bs, op)))
    r.append(rec(rw(0x28, 0, 0), IN, 0))                                # transfer length 0
    r.append(rec(rw(0x28, 1, 4), IN, bs + 100))                         # short buffer
    r.append(rec(rw(0x2A, 2, 1), OUT, 3 * bs, pattern(3 * bs, 9)))      # long buffer
    r.append(rec(rw(0x2E, 7, 1), OUT, bs, pattern(bs, 1)))              # WRITE AND VERIFY(10)
    r.append(rec(bytes([0x8E, 0x02]) + be(8, 8) + be(1, 4) + bytes(2), OUT, bs, pattern(bs, 2)))
    r.append(rec(bytes([0x2F, 0x00]) + be(7, 4) + bytes([0]) + be(1, 2) + bytes([0])))
    r.append(rec(bytes([0x2F, 0x02]) + be(7, 4) + bytes([0]) + be(1, 2) + bytes([0]), OUT, bs,
                 pattern(bs, 1)))                                       # VERIFY BYTCHK 1
    r.append(rec(bytes([0x8F, 0x06]) + be(7, 8) + be(2, 4) + bytes(2), OUT, bs, bytes(bs)))
    r.append(rec(bytes([0x41, 0x08]) + be(16, 4) + bytes([0]) + be(8, 2) + bytes([0]), OUT, bs,
                 bytes(bs)))                                            # WRITE SAME(10) UNMAP
    r.append(rec(bytes([0x93, 0x00]) + be(24, 8) + be(3, 4) + bytes(2), OUT, bs, pattern(bs, 4)))
    r.append(rec(bytes([0x93, 0x09]) + be(32, 8) + be(9, 4) + bytes(2)))  # NDOB, UNMAP
    desc = be(40, 8) + be(8, 4) + bytes(4) + be(60, 8) + be(3, 4) + bytes(4)
    plist = be(6 + len(desc), 2) + be(len(desc), 2) + bytes(4) + desc
    r.append(rec(bytes([0x42, 0, 0, 0, 0, 0, 0]) + be(len(plist), 2) + bytes([0]), OUT,
                 len(plist), plist))                                    # UNMAP
    r.append(rec([0x35] + [0] * 9))                                     # SYNCHRONIZE CACHE(10)
    r.append(rec(bytes([0x91, 0x02]) + be(0, 8) + be(0, 4) + bytes(2)))
    r.append(rec(bytes([0x34, 0x02]) + be(0, 4) + bytes([0]) + be(16, 2) + bytes([0])))
    r.append(rec(bytes([0x90, 0x00]) + be(4, 8) + be(4, 4) + bytes(2)))
    cmp_new = pattern(bs, 1) + pattern(bs, 5)
    r.append(rec(bytes([0x89, 0]) + be(7, 8) + bytes([0, 0, 0, 1, 0, 0]), OUT, 2 * bs, cmp_new))
    r.append(rec([0x1A, 0, 0x3F, 0, 255, 0], IN, 255))                  # MODE SENSE(6)
    r.append(rec([0x1A, 0x08, 0x48, 0, 255, 0], IN, 255))               # changeable caching
    r.append(rec([0x5A, 0x10, 0x0A, 0, 0, 0, 0, 1, 0, 0], IN, 256))     # MODE SENSE(10) LLBAA
    caching = bytes([0x08, 0x12]) + bytes(18)                           # WCE off
    control = bytes([0x0A, 0x0A, 0x04, 0x10]) + bytes(8)                # D_SENSE on
    ms6 = bytes([0, 0, 0, 8]) + bytes(5) + be(bs, 3) + caching + control
    r.append(rec([0x15, 0x10, 0, 0, len(ms6), 0], OUT, len(ms6), ms6))  # MODE SELECT(6)
    r.append(rec(rw(0x28, 10 ** 9, 1), IN, bs))                         # LBA out of range: desc sense
    ms10 = bytes(8) + bytes([0x08, 0x12, 0x04]) + bytes(17)
    r.append(rec(bytes([0x55, 0x10, 0, 0, 0, 0, 0]) + be(len(ms10), 2) + bytes([0]), OUT,
                 len(ms10), ms10))                                      # MODE SELECT(10)
    r.append(rec([0x1E, 0, 0, 0, 1, 0]))                                # PREVENT
    r.append(rec([0x1B, 0, 0, 0, 0, 0]))                                # STOP
    r.append(rec(rw(0x28, 0, 1), IN, bs))                               # NOT READY
    r.append(rec([0x1B, 0, 0, 0, 1, 0]))                                # START
    r.append(rec([0xA0, 0, 0, 0, 0, 0] + list(be(64, 4)) + [0, 0], IN, 64))
    r.append(rec([0xA3, 0x0C, 0, 0, 0, 0] + list(be(2048, 4)) + [0, 0], IN, 2048))
    r.append(rec([0xA3, 0x0C, 0x81, 0x28, 0, 0] + list(be(64, 4)) + [0, 0], IN, 64))
    r.append(rec([0xA3, 0x0C, 0x02, 0x9E, 0, 0x10] + list(be(64, 4)) + [0, 0], IN, 64))
    r.append(rec([0xA3, 0x0D, 0x80, 0, 0, 0] + list(be(16, 4)) + [0, 0], IN, 16))
    r.append(rec([0xC0] + [0] * 5, ua=True))                            # unknown opcode, UA first
    return r


def mmc_commands():
    """A cdrom LUN's commands (byte 1 bit 0 without a policy)."""
    r = [rec([0x00] * 6), rec([0x12, 0, 0, 0, 36, 0], IN, 36), rec([0x03, 0, 0, 0, 18, 0], IN, 18)]
    r.append(rec([0x1A, 0, 0x2A, 0, 128, 0], IN, 128))
    r.append(rec([0x5A, 0x08, 0x3F, 0, 0, 0, 0, 1, 0, 0], IN, 256))
    r.append(rec([0x25] + [0] * 9, IN, 8))
    r.append(rec([0x28, 0, 0, 0, 0, 16, 0, 0, 1, 0], IN, 2048))
    for fmt, ctl in ((0, 0), (0, 0x40), (0, 0x80), (1, 0), (2, 0)):
        r.append(rec([0x43, 0x02, fmt, 0, 0, 0, 0, 0, 0xFC, ctl], IN, 252))
    r.append(rec([0x46, 0x00, 0, 0, 0, 0, 0, 1, 0, 0], IN, 256))
    r.append(rec([0x46, 0x02, 0, 0x1F, 0, 0, 0, 0, 16, 0], IN, 16))
    r.append(rec([0x4A, 0x01, 0, 0, 0x10, 0, 0, 0, 8, 0], IN, 8))
    r.append(rec([0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0], IN, 34))
    r.append(rec([0x52, 0x01, 0, 0, 0, 1, 0, 0, 36, 0], IN, 36))
    r.append(rec([0xAC, 0x10, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0], IN, 24))
    r.append(rec([0xBB, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0]))
    r.append(rec([0xBD, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0], IN, 8))
    r.append(rec([0xBE, 0x08, 0, 0, 0, 16, 0, 0, 1, 0xF8, 0, 0], IN, 2352))
    r.append(rec([0xBE, 0x00, 0, 0, 0, 16, 0, 0, 2, 0x10, 0, 0], IN, 4096))
    r.append(rec([0x1E, 0, 0, 0, 1, 0]))
    r.append(rec([0x1B, 0, 0, 0, 2, 0]))
    r.append(rec([0x1E, 0, 0, 0, 0, 0]))
    r.append(rec([0x1B, 0, 0, 0, 2, 0]))
    r.append(rec([0x00] * 6))
    r.append(rec([0x1B, 0, 0, 0, 3, 0]))
    return r


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    n = 0
    # settings: bit 0 qcow2, 1 4096-byte blocks, 2 read-only, 3 WCE off,
    # 4 discard off, 5 policy, 6 power-on UA, 7 physical exponent 3
    for settings, policy in ((0x00, 0), (0x01, 0), (0x02, 0), (0x03, 0), (0x05, 0),
                             (0x19, 0), (0x61, 0x0A), (0xA2, 0x8B), (0x40, 0)):
        bs = 4096 if settings & 2 else 512
        recs = commands(bs)
        # The whole list in one input exceeds MAX_CMDS: cut it in pieces
        # small enough that each runs whole.
        for i in range(0, len(recs), 16):
            body = b"".join(recs[i:i + 16])
            with open(os.path.join(out, f"seed-scsi-{settings:02x}-{policy:02x}-{i // 16}"), "wb") as f:
                f.write(bytes([settings, policy]) + body)
            n += 1
    recs = mmc_commands()
    for i in range(0, len(recs), 16):
        with open(os.path.join(out, f"seed-scsi-cdrom-{i // 16}"), "wb") as f:
            f.write(bytes([0x00, 0x01]) + b"".join(recs[i:i + 16]))
        n += 1
    print(f"seeds_scsi.py: {n} seeds in {out}")


if __name__ == "__main__":
    main()
