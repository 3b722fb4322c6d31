# Guest test "policy" (tests/vm/test_policy.sh): three LUNs served with
# command policies, asked with sg3_utils what they serve and given the
# commands they refuse:
#   LUN 0  deny=UNMAP:WRITE_SAME_16
#   LUN 1  an allow list from a policy file (reads, writes, identity)
#   LUN 2  no policy (what the others are compared with)
#   LUN 3  deny=INQUIRY: Linux must not find it (and stops its scan there,
#          so it is the last one)
# Every output is printed between @@ BEGIN/END markers for the host; the
# data written is announced as
#   @@ WRITE LUN I OFF LEN SEED
# (lib.sh gen), the ranges the refused commands named as
#   @@ PLAN NAME LUN LBA BLOCKS
# and the host judges it all (outputs, sense bytes, the images).
. /lib/scuse/lib.sh
set -o pipefail
wait_lun 0
S0=$SG D0=/dev/$DISK
wait_lun 1
S1=$SG D1=/dev/$DISK
wait_lun 2
S2=$SG
# LUN 3's INQUIRY is refused: the scan says so in the kernel log, and
# there is no device.
i=0
until dmesg | grep -q "Unexpected response from lun 3 while scanning"; do
    [ $i -lt 200 ] || die "no word from the kernel about LUN 3 after 10 s"
    usleep 50000
    i=$((i + 1))
done
ls -d /sys/bus/scsi/devices/*:*:*:3 >/dev/null 2>&1 && die "LUN 3 refuses INQUIRY, yet Linux found it"
mark NOLUN 3 "$(dmesg | grep -m1 'Unexpected response from lun 3' | sed 's/^\[[^]]*\] //')"

# What each LUN says it serves: sg_opcodes decoded, and the raw bytes.
for n in 0 1 2; do
    eval "s=\$S$n"
    section "opcodes_$n" sg_opcodes "$s"
    section "rsoc_$n" sg_raw -r 4096 "$s" a3 0c 00 00 00 00 00 00 10 00 00 00
done

# An UNMAP parameter list: one descriptor, LBA 2048, 8 blocks.
printf '\000\026\000\020\000\000\000\000\000\000\000\000\000\000\010\000\000\000\000\010\000\000\000\000' >/tmp/unmap.par
mark PLAN unmap 0 2048 8
mark PLAN ws16 0 4096 8

# LUN 0: UNMAP and WRITE SAME(16) refused, by the tool and as raw CDBs
# (their sense printed in hex too); WRITE SAME(10) still served.
section unmap_0 sg_unmap --force --lba=2048 --num=8 "$S0"
section unmapraw_0 sg_raw -vv -s 24 -i /tmp/unmap.par "$S0" 42 00 00 00 00 00 00 00 18 00
gen ws 6144 512 pol >/tmp/ws.blk
section ws16_0 sg_write_same --16 --in=/tmp/ws.blk --lba=4096 --num=8 "$S0"
section ws16raw_0 sg_raw -vv -s 512 -i /tmp/ws.blk "$S0" 93 00 00 00 00 00 00 00 10 00 00 00 00 08 00 00
mark PLAN ws10 0 6144 8
section ws10_0 sg_write_same --10 --in=/tmp/ws.blk --lba=6144 --num=8 "$S0"
# Reads and writes through the block layer: written, read back.
gen 1 1048576 65536 pol >/tmp/w1
dd if=/tmp/w1 of="$D0" bs=65536 seek=16 count=1 oflag=direct conv=fsync 2>/dev/null ||
    die "LUN 0: write"
mark WRITE 0 1 1048576 65536 pol
echo 3 >/proc/sys/vm/drop_caches
sum=$(dd if="$D0" bs=65536 skip=16 count=1 iflag=direct 2>/dev/null | sha256sum)
mark SHA256 lun0_w1 "${sum%% *}"

# LUN 1: only what its allow list names. Refused: UNMAP, WRITE SAME(10),
# VERIFY(10), GET LBA STATUS (9e/12, while READ CAPACITY(16) is 9e/10
# and served), SYNCHRONIZE CACHE(16) (while (10) is served).
mark PLAN unmap 1 2048 8
section unmap_1 sg_unmap --force --lba=2048 --num=8 "$S1"
mark PLAN ws10 1 6144 8
section ws10_1 sg_write_same --10 --in=/tmp/ws.blk --lba=6144 --num=8 "$S1"
section verify_1 sg_verify --lba=0 --count=8 "$S1"
section lbastatus_1 sg_get_lba_status --lba=0 "$S1"
section lbaraw_1 sg_raw -vv -r 24 "$S1" 9e 12 00 00 00 00 00 00 00 00 00 00 00 18 00 00
section sync16_1 sg_sync --16 "$S1"
section sync10_1 sg_sync "$S1"
section readcap_1 sg_readcap --long "$S1"
gen 2 2097152 65536 pol >/tmp/w2
dd if=/tmp/w2 of="$D1" bs=65536 seek=32 count=1 oflag=direct conv=fsync 2>/dev/null ||
    die "LUN 1: write"
mark WRITE 1 2 2097152 65536 pol
echo 3 >/proc/sys/vm/drop_caches
sum=$(dd if="$D1" bs=65536 skip=32 count=1 iflag=direct 2>/dev/null | sha256sum)
mark SHA256 lun1_w2 "${sum%% *}"

# LUN 2, no policy: the same UNMAP is served.
mark PLAN unmap 2 2048 8
section unmap_2 sg_unmap --force --lba=2048 --num=8 "$S2"
exit 0
