#!/usr/bin/env bash
# Issue 10 point 6: the per-LUN command policy as a Linux guest sees it
# (vhost path only: QEMU's scsi-hd has no policy). `scuse serve` gets
#   --lun 0=a.raw,deny=UNMAP:WRITE_SAME_16
#   --lun 1=b.qcow2,policy-file=POLICY   (an allow list: reads, writes, identity)
#   --lun 2=c.raw                        (no policy: the reference)
#   --lun 3=d.raw,deny=INQUIRY           (Linux must not find it)
# and the guest (guest/tests/policy.sh) asks with sg3_utils. Judged here:
# REPORT SUPPORTED OPERATION CODES (sg_raw's bytes and sg_opcodes' text)
# lists LUN 2's commands less the two for LUN 0 and exactly the allow
# list for LUN 1; LUN 3 is not found; each refused command (sg_unmap,
# sg_write_same, sg_verify, sg_get_lba_status, sg_sync --16, and raw
# CDBs) ends with sg3_utils' "invalid opcode" status and sense ILLEGAL
# REQUEST / INVALID COMMAND OPERATION CODE (05/20/00, read from the sense
# bytes sg_raw dumps); the served ones work; the images show that refused
# commands changed nothing and that the writes landed (byte for byte;
# qemu-img check for the qcow2).
. "$(dirname "$0")/lib/vm.sh"
if [ "$SCUSE_VM_DISK" != vhost ]; then
    echo "SKIP: the command policy is scuse's (SCUSE_VM_DISK=vhost); scsi-hd has none" >&2
    exit 77
fi
vm_require_disk_path
vm_guest

case_begin "command policies seen by a guest: RSOC, refused commands, served ones"
# Images full of a pattern: a refused UNMAP or WRITE SAME that ran anyway
# would leave zeros or other bytes behind.
for i in a c; do
    qemu-img create -q -f raw "$T/$i.raw" 16M
    qio -f raw -c 'write -P 0x5a 0 16M' "$T/$i.raw"
done
qemu-img create -q -f qcow2 "$T/b.qcow2" 16M
qio -f qcow2 -c 'write -P 0x5a 0 16M' "$T/b.qcow2"
for i in a c; do cp "$T/$i.raw" "$T/$i.before.raw"; done
qemu-img convert -O raw "$T/b.qcow2" "$T/b.before.raw"
cat >"$T/allow.policy" <<'EOF'
# LUN 1 reads and writes, says who it is, nothing else
allow
TEST UNIT READY
REQUEST SENSE
INQUIRY
MODE SENSE(6)
MODE_SENSE_10
READ CAPACITY(10)
READ_CAPACITY_16        # 9e/10: GET LBA STATUS (9e/12) is left out
READ(10), WRITE(10)
0x88, 0x8a              # READ(16), WRITE(16)
SYNCHRONIZE CACHE(10)
REPORT LUNS
REPORT SUPPORTED OPERATION CODES
EOF
vm_lun 0 "$T/a.raw" "format=raw,discard=unmap,deny=UNMAP:WRITE_SAME_16"
vm_lun 1 "$T/b.qcow2" "format=qcow2,discard=unmap,policy-file=$T/allow.policy"
qemu-img create -q -f raw "$T/d.raw" 1M
vm_lun 2 "$T/c.raw" "format=raw,discard=unmap"
vm_lun 3 "$T/d.raw" "format=raw,deny=INQUIRY"
SCUSE_VM_SERVE_ARGS="${SCUSE_VM_SERVE_ARGS:-} -v"
vm_boot policy policy
if vm_check_boot policy policy; then
    grep -q "LUN 0: .*commands deny=42:93)" "$T/policy.serve.log" ||
        fail "scuse serve -v did not log LUN 0's policy: $(grep 'LUN 0' "$T/policy.serve.log")"
    qemu-img convert -O raw "$T/b.qcow2" "$T/b.after.raw"
    if ! VM_LIB=$VM_LIB "$PYTHON" -S - "$T/policy.log" "$T" >"$T/policycheck.out" <<'EOF'; then
import os, re, sys
sys.path.insert(0, os.environ["VM_LIB"])
from sgcheck import sections, hexbytes, be, gen, ok, text
import sgcheck

log, t = sys.argv[1], sys.argv[2]
lines = open(log, errors="replace").read().splitlines()
sec = sections(lines)

def have(tag):
    return ok(tag in sec, tag + ": output present")

def rsoc(n):
    """{(opcode, service action or None)} from the raw RSOC dump."""
    b = hexbytes(sec["rsoc_%d" % n][1])
    got, off, end = set(), 4, 4 + be(b, 0, 4)
    while off + 8 <= min(end, len(b)):
        d = b[off:off + 8]
        got.add((d[0], be(d, 2, 2) if d[5] & 1 else None))
        off += 8 + (12 if d[5] & 2 else 0)
    return got

def name(c):
    return "%02x" % c[0] + ("/%02x" % c[1] if c[1] is not None else "")

def names(s):
    return " ".join(sorted(name(c) for c in s))

# sg_opcodes' decoded lines: " 9e       10        16    0,0    Read capacity(16)"
# (opcode, service action if any, CDB size, CDLP, name)
def opcode_lines(n):
    return re.findall(r"^\s*([0-9a-f]{2})\s+(?:([0-9a-f]{1,2})\s+)?\d+\s+\d,\d\s+(\S.*)$",
                      text(sec["opcodes_%d" % n]), re.M | re.I)

UNMAP, WS16, WS10 = (0x42, None), (0x93, None), (0x41, None)
ALLOW = {(0x00, None), (0x03, None), (0x12, None), (0x1a, None), (0x5a, None),
         (0x25, None), (0x9e, 0x10), (0x28, None), (0x2a, None), (0x88, None),
         (0x8a, None), (0x35, None), (0xa0, None), (0xa3, 0x0c)}
if all(have("rsoc_%d" % n) and have("opcodes_%d" % n) for n in (0, 1, 2)):
    full, deny, allow = rsoc(2), rsoc(0), rsoc(1)
    ok(len(full) > 30 and {UNMAP, WS16, WS10, (0x9e, 0x12)} <= full,
       "rsoc, LUN 2 (no policy): every command, UNMAP and WRITE SAME(16) among them (%d)"
       % len(full), names(full))
    ok(deny == full - {UNMAP, WS16},
       "rsoc, LUN 0 (deny=UNMAP:WRITE_SAME_16): LUN 2's commands less 42 and 93",
       "missing %s, extra %s" % (names((full - {UNMAP, WS16}) - deny),
                                 names(deny - (full - {UNMAP, WS16}))))
    ok(allow == ALLOW, "rsoc, LUN 1 (allow list): exactly its %d commands" % len(ALLOW),
       "missing %s, extra %s" % (names(ALLOW - allow), names(allow - ALLOW)))
    for n, want in ((0, deny), (1, allow), (2, full)):
        got = {int(op, 16) for op, _, _ in opcode_lines(n)}
        ok(got == {c[0] for c in want},
           "sg_opcodes, LUN %d: a line per opcode RSOC lists (%d lines)" % (n, len(opcode_lines(n))),
           "sg_opcodes %s, rsoc %s" % (" ".join("%02x" % o for o in sorted(got)), names(want)))
    t0 = text(sec["opcodes_0"])
    ok(not re.search(r"^\s*(42|93)\s", t0, re.M) and re.search(r"^\s*41\s.*Write same\(10\)$", t0, re.M | re.I),
       "sg_opcodes, LUN 0: no Unmap, no Write same(16); Write same(10) there")

# Refused commands: sg3_utils' exit status 9 is "illegal request, invalid
# opcode" (SG_LIB_CAT_INVALID_OP); sg_raw -vv also dumps the sense bytes.
def sense_of(tag):
    """(key, asc, ascq) from the lines after sg_raw -vv's
    " Raw sense data (in hex), sb_len=N, ...": hex bytes, no offsets."""
    lines = sec[tag][1]
    for i, line in enumerate(lines):
        m = re.match(r"^\s*Raw sense data \(in hex\), sb_len=(\d+)", line)
        if not m:
            continue
        b = bytearray()
        for l in lines[i + 1:]:
            if not re.match(r"^\s*([0-9a-f]{2}\s+)*[0-9a-f]{2}\s*$", l):
                break
            b += bytes(int(x, 16) for x in l.split())
        if len(b) != int(m.group(1)):
            return None
        if len(b) >= 14 and b[0] & 0x7f in (0x70, 0x71):
            return b[2] & 0x0f, b[12], b[13]
        if len(b) >= 4 and b[0] & 0x7f in (0x72, 0x73):
            return b[1] & 0x0f, b[2], b[3]
    return None

REFUSED = ("unmap_0", "ws16_0", "unmap_1", "ws10_1", "verify_1", "lbastatus_1", "sync16_1")
for tag in REFUSED:
    if have(tag):
        rc = sec[tag][0]
        ok(rc == 9, "%s: refused, sg3_utils' status 9 (invalid opcode)" % tag,
           "rc=%d: %s" % (rc, " | ".join(sec[tag][1][-3:])))
for tag in ("unmapraw_0", "ws16raw_0", "lbaraw_1"):
    if have(tag):
        t2 = text(sec[tag])
        ok(re.search(r"Illegal Request", t2, re.I) and
           re.search(r"Invalid command operation code", t2, re.I),
           "%s: sg_raw decodes ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE" % tag,
           " | ".join(sec[tag][1][-6:]))
        s = sense_of(tag)
        ok(s == (5, 0x20, 0), "%s: sense bytes 05/20/00" % tag, repr(s))
# Served ones.
for tag in ("ws10_0", "sync10_1", "readcap_1", "unmap_2"):
    if have(tag):
        ok(sec[tag][0] == 0, "%s: served (GOOD)" % tag, " | ".join(sec[tag][1][-3:]))

# The images: refused commands changed nothing, the served ones did.
def load(p):
    return open(os.path.join(t, p), "rb").read()
a0, a1 = load("a.before.raw"), load("a.raw")
b0, b1 = load("b.before.raw"), load("b.after.raw")
c0, c1 = load("c.before.raw"), load("c.raw")
blk = 512
ws = gen("ws", 6144, 512, "pol")
w1 = gen(1, 1048576, 65536, "pol")
w2 = gen(2, 2097152, 65536, "pol")
want_a = bytearray(a0)
want_a[6144 * blk:6152 * blk] = ws * 8
want_a[1048576:1048576 + 65536] = w1
ok(a1 == bytes(want_a), "LUN 0 image: only WRITE SAME(10) and the write changed it "
   "(UNMAP and WRITE SAME(16) did not)")
want_b = bytearray(b0)
want_b[2097152:2097152 + 65536] = w2
ok(b1 == bytes(want_b), "LUN 1 image: only the write changed it")
want_c = bytearray(c0)
want_c[2048 * blk:2056 * blk] = bytes(8 * blk)
ok(c1 == bytes(want_c), "LUN 2 image: the UNMAP it served left zeros")
ok(any(l.startswith("@@ NOLUN 3 ") for l in lines),
   "LUN 3 (deny=INQUIRY): not found by Linux, whose scan stops there")
import hashlib
sums = dict(l.split()[2:4] for l in lines if l.startswith("@@ SHA256 "))
ok(sums.get("lun0_w1") == hashlib.sha256(w1).hexdigest(), "LUN 0: the write read back")
ok(sums.get("lun1_w2") == hashlib.sha256(w2).hexdigest(), "LUN 1: the write read back")
sys.exit(1 if sgcheck.fails else 0)
EOF
        grep -E '^FAIL' "$T/policycheck.out" | sed 's/^/  /' >&2
        fail "policy checks failed (all of them in $T/policycheck.out)"
    fi
    echo "  $(grep -c '^ok' "$T/policycheck.out") checks ok"
fi
if ! out=$(qemu-img check "$T/b.qcow2" 2>&1); then
    fail "qemu-img check b.qcow2: $out"
fi
case_end
finish
