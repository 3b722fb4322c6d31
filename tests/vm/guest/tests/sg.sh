# Guest test "sg": sg3_utils against LUN 0, every output printed between
#   @@ BEGIN TAG / @@ END TAG rc=N
# for the host to check (tests/vm/lib/sgcheck.py). The commands that
# change data work on fixed LBAs announced first as
#   @@ PLAN NAME LBA BLOCKS
# and the host checks the image afterwards. Some questions are asked twice,
# through the tool and as a raw CDB (sg_raw), so that the host can decode
# the bytes itself. Data blocks come from lib.sh
# gen() (the host replays it): "ws" is WRITE SAME's block, "caw" the new
# block of COMPARE AND WRITE.
. /lib/scuse/lib.sh
set -o pipefail
wait_lun 0
S=$SG
D=/dev/$DISK
bs=$(cat "/sys/block/$DISK/queue/logical_block_size")

# 16M: data in the base; 50M: never written anywhere; 30M: data of the
# middle layer, unmapped here; 44M/46M: WRITE SAME (data / UNMAP bit);
# 5M: compressed data of the middle layer, COMPARE AND WRITE and VERIFY.
mb=$(( 1048576 / bs ))
L_DATA=$(( 16 * mb )) L_HOLE=$(( 50 * mb ))
L_UNMAP=$(( 30 * mb )) N_UNMAP=$mb
L_WS=$(( 44 * mb )) N_WS=$(( 256 * 512 / bs ))
L_WSU=$(( 46 * mb )) N_WSU=$(( 65536 / bs ))
L_CAW=$(( 5 * mb ))
mark PLAN bs "$bs" 0
mark PLAN unmap "$L_UNMAP" "$N_UNMAP"
mark PLAN ws "$L_WS" "$N_WS"
mark PLAN wsunmap "$L_WSU" "$N_WSU"
mark PLAN caw "$L_CAW" 1
mark PLAN data "$L_DATA" 0
mark PLAN hole "$L_HOLE" 0

section inq sg_inq "$S"
section inqhex sg_inq --len=96 --hex "$S"
for p in 0x00 0x80 0x83 0xb0 0xb1 0xb2; do
    section "vpd_$p" sg_vpd --page="$p" "$S"
    section "vpdhex_$p" sg_vpd --page="$p" --hex "$S"
done
section readcap sg_readcap --long "$S"
section readcap10 sg_readcap "$S"
section luns sg_luns "$S"
section modes sg_modes --all "$S"
section modes_chg sg_modes --all --control=1 "$S"
section modes6 sg_modes --six --all "$S"
section opcodes sg_opcodes "$S"
section opcodes_mask sg_opcodes --mask "$S"
section tmf sg_opcodes --tmf "$S"
section turs sg_turs "$S"

# The same questions as raw CDBs through sg_raw, whose data-in dump
# sgcheck.py decodes itself per SPC/SBC (INQUIRY once more, to check that
# decoding against sg_inq's dump).
section inq_raw sg_raw -r 96 "$S" 12 00 00 00 60 00
section rsoc_raw sg_raw -r 4096 "$S" a3 0c 00 00 00 00 00 00 10 00 00 00
section rtmf_raw sg_raw -r 4 "$S" a3 0d 00 00 00 00 00 00 00 04 00 00
lba_raw() { # TAG LBA: GET LBA STATUS(16), one descriptor
    section "$1" sg_raw -r 24 "$S" 9e 12 $(printf '%016x' "$2" | sed 's/../& /g') 00 00 00 18 00 00
}

section lba_data sg_get_lba_status --lba="$L_DATA" "$S"
lba_raw lbaraw_data "$L_DATA"
lba_raw lbaraw_hole "$L_HOLE"

# UNMAP, then what the range reads and reports
section unmap sg_unmap --force --lba="$L_UNMAP" --num="$N_UNMAP" "$S"
lba_raw lbaraw_unmapped "$L_UNMAP"
echo 3 >/proc/sys/vm/drop_caches
sum=$(dd if="$D" bs="$bs" skip="$L_UNMAP" count="$N_UNMAP" iflag=direct 2>/dev/null | sha256sum)
mark SHA256 unmapped "${sum%% *}"

# WRITE SAME with a data block, and with UNMAP (a zero block)
gen ws "$L_WS" "$bs" sg >/tmp/ws.blk
section ws sg_write_same --in=/tmp/ws.blk --lba="$L_WS" --num="$N_WS" "$S"
section ws_unmap sg_write_same --unmap --lba="$L_WSU" --num="$N_WSU" "$S"
lba_raw lbaraw_wsunmap "$L_WSU"

# COMPARE AND WRITE: the block as it is, then the new one (GOOD); again
# with the old block as compare data (MISCOMPARE, nothing written).
dd if="$D" bs="$bs" skip="$L_CAW" count=1 iflag=direct of=/tmp/caw.old 2>/dev/null
gen caw "$L_CAW" "$bs" sg >/tmp/caw.new
cat /tmp/caw.old /tmp/caw.new >/tmp/caw.in
section caw sg_compare_and_write --in=/tmp/caw.in --lba="$L_CAW" --num=1 "$S"
section caw_miscompare sg_compare_and_write --in=/tmp/caw.in --lba="$L_CAW" --num=1 "$S"

# VERIFY: the medium (BYTCHK 0), then byte by byte against the block
# expected at L_CAW (BYTCHK 1), then against the old block (MISCOMPARE)
section verify sg_verify --lba=0 --count=2048 "$S"
section verify_bytchk sg_verify --lba="$L_CAW" --count=1 --ndo="$bs" --in=/tmp/caw.new "$S"
section verify_miscompare sg_verify --lba="$L_CAW" --count=1 --ndo="$bs" --in=/tmp/caw.old "$S"

section sync sg_sync "$S"
section sync16 sg_sync --16 "$S"
echo 3 >/proc/sys/vm/drop_caches
sum=$(dd if="$D" bs="$bs" skip="$L_CAW" count=1 iflag=direct 2>/dev/null | sha256sum)
mark SHA256 caw "${sum%% *}"
sum=$(dd if="$D" bs="$bs" skip="$L_WS" count="$N_WS" iflag=direct 2>/dev/null | sha256sum)
mark SHA256 ws "${sum%% *}"
