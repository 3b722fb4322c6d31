# Sourced by the guest test "iscsi" (profile iscsi) before the conformance
# run: the commands issue 15 added, and its fixes, sent by Linux tools
# (sg3_utils' sg_raw, sg_unmap, sg_vpd) to two scuse LUNs behind tcm_loop
# (lb0: qcow2, 64 KiB clusters; lb1: raw), served by the same daemon. One
# marker each, judged on the host:
#   @@ SG NAME ok|bad DETAIL
# hexbin "de ad ...": the bytes; blk LBA [N]: N blocks of $DISK in hex.
hexbin() { printf "$(echo "$1" | sed 's/\([0-9a-f][0-9a-f]\) */\\x\1/g')"; }
blk() { dd if="/dev/$DISK" bs=512 skip="$1" count="${2:-1}" iflag=direct 2>/dev/null | xxd -p | tr -d '\n'; }
pat() { # BYTE N: N blocks of BYTE, in hex (tr cannot take a NUL to map to)
    if [ "$1" = 00 ]; then
        head -c $(($2 * 512)) /dev/zero | xxd -p | tr -d '\n'
    else
        head -c $(($2 * 512)) /dev/zero | tr '\0' "$(printf "\\$(printf %o 0x$1)")" |
            xxd -p | tr -d '\n'
    fi
}
check() { # NAME CONDITION-RESULT DETAIL
    if [ "$2" = 0 ]; then mark SG "$1" ok "$3"; else mark SG "$1" bad "$3"; fi
}
be64() { printf '%016x' "$1" | sed 's/../& /g'; }
raw() { sg_raw "$@" >/tmp/sgraw.out 2>&1; }
# sense KEY-TEXT: the last sg_raw answered CHECK CONDITION with that key.
sense() { grep -qi "sense key: *$1" /tmp/sgraw.out; }
# rawin LEN ARGS...: data-in into /tmp/in.bin; hexin OFF LEN: its bytes.
rawin() { n=$1; shift; sg_raw -r "$n" -o /tmp/in.bin "$@" >/tmp/sgraw.out 2>&1; }
hexin() { xxd -p -s "$1" -l "$2" /tmp/in.bin | tr -d '\n'; }

scuse create -q -f qcow2 /tmp/lb0.qcow2 4M || die "scuse create lb0"
truncate -s 1M /tmp/lb1.raw
section lb0 scuse tcmu create lb0 /tmp/lb0.qcow2 --fabric loopback || die "tcmu create lb0"
wait_lun 0
DISK0=$DISK SG0=$SG
section lb1 scuse tcmu create lb1 /tmp/lb1.raw --fabric loopback || die "tcmu create lb1"
i=0 DISK1=
while [ -z "$DISK1" ] && [ $i -lt 400 ]; do
    for d in /sys/bus/scsi/devices/*:*:*:0/block/*; do
        [ -e "$d" ] && [ "${d##*/}" != "$DISK0" ] && DISK1=${d##*/}
    done
    usleep 50000
    i=$((i + 1))
done
[ -n "$DISK1" ] || die "no disk for lb1"
SG1=/dev/$(ls /sys/block/$DISK1/device/scsi_generic | head -1)
DISK=$DISK0 SG=$SG0
BLOCKS=$(( $(cat /sys/block/$DISK/size) ))

# LBPRZ and UNMAP of one block inside a 64 KiB cluster full of data.
head -c 65536 /dev/zero | tr '\0' '\252' | dd of=/dev/$DISK bs=64k oflag=direct 2>/dev/null
rawin 8 "$SG" 12 01 b2 00 08 00
lbprz=$(( (0x$(hexin 5 1) >> 2) & 1 ))
sg_unmap --force --lba=3 --num=1 "$SG" >/dev/null 2>&1
u=$?
[ "$u" = 0 ] && [ "$lbprz" = 1 ] && [ "$(blk 3)" = "$(pat 00 1)" ] && [ "$(blk 2)" = "$(pat aa 1)" ] &&
    [ "$(blk 4)" = "$(pat aa 1)" ]
check lbprz_partial_unmap $? "LBPRZ=$lbprz unmap=$u"

# VERIFY(12), BYTCHK=1: block 3 (zeros) equals zeros; block 2 does not.
hexbin "$(pat 00 1)" >/tmp/z1
raw -s 512 -i /tmp/z1 "$SG" af 02 00 00 00 03 00 00 00 01 00 00; a=$?
raw -s 512 -i /tmp/z1 "$SG" af 02 00 00 00 02 00 00 00 01 00 00; b=$?
sense miscompare && b=MISCOMPARE
[ $a = 0 ] && [ $b = MISCOMPARE ]
check verify12 $? "same=$a differs=$b"

# WRITE AND VERIFY(12): two blocks at LBA 8.
hexbin "$(pat 5a 2)" >/tmp/w2
raw -s 1024 -i /tmp/w2 "$SG" ae 02 00 00 00 08 00 00 00 02 00 00; a=$?
[ $a = 0 ] && [ "$(blk 8 2)" = "$(pat 5a 2)" ]
check write_verify12 $? "rc=$a"

# ORWRITE(16): 0x0f blocks ORed with 0xf0 read 0xff.
hexbin "$(pat 0f 2)" | dd of=/dev/$DISK bs=1024 seek=10 oflag=direct 2>/dev/null
hexbin "$(pat f0 2)" >/tmp/o2
raw -s 1024 -i /tmp/o2 "$SG" 8b 00 $(be64 20) 00 00 00 02 00 00; a=$?
[ $a = 0 ] && [ "$(blk 20 2)" = "$(pat ff 2)" ]
check orwrite16 $? "rc=$a"

# WRITE ATOMIC(16): 2 blocks at 30; a non-zero ATOMIC BOUNDARY is refused.
hexbin "$(pat 3c 2)" >/tmp/a2
raw -s 1024 -i /tmp/a2 "$SG" 9c 00 $(be64 30) 00 00 00 02 00 00; a=$?
raw -s 1024 -i /tmp/a2 "$SG" 9c 00 $(be64 40) 00 01 00 02 00 00; b=$?
sense 'illegal request' && b=ILLEGAL
rawin 64 "$SG" 12 01 b0 00 40 00
matl=$((0x$(hexin 44 4)))
[ $a = 0 ] && [ $b = ILLEGAL ] && [ "$(blk 30 2)" = "$(pat 3c 2)" ] && [ "$matl" -gt 0 ]
check write_atomic16 $? "rc=$a boundary=$b max_atomic=$matl"

# READ DEFECT DATA(10) and (12): empty lists, the format echoed.
rawin 4 "$SG" 37 00 18 00 00 00 00 00 04 00; a=$?
h10=$(hexin 0 4)
rawin 8 "$SG" b7 18 00 00 00 00 00 00 00 08 00 00; b=$?
h12=$(hexin 0 8)
[ $a = 0 ] && [ $b = 0 ] && [ "$h10" = 00180000 ] && [ "$h12" = 0018000000000000 ]
check read_defect_data $? "rc=$a,$b headers=$h10,$h12"

# WRITE SAME(16) with 0 blocks: from the LBA to the end of the medium.
hexbin "$(pat 77 1)" >/tmp/p1
raw -s 512 -i /tmp/p1 "$SG" 93 00 $(be64 $((BLOCKS - 4))) 00 00 00 00 00 00; a=$?
[ $a = 0 ] && [ "$(blk $((BLOCKS - 4)) 4)" = "$(pat 77 4)" ]
check write_same_0 $? "rc=$a"

# RSOC lists DPO for VERIFY(16) and WRITE AND VERIFY(16).
rawin 20 "$SG" a3 0c 01 8f 00 00 00 00 00 14 00 00
v=$(hexin 5 1)
rawin 20 "$SG" a3 0c 01 8e 00 00 00 00 00 14 00 00
w=$(hexin 5 1)
[ $(( 0x${v:-0} & 0x10 )) != 0 ] && [ $(( 0x${w:-0} & 0x10 )) != 0 ]
check rsoc_dpo $? "usage byte 1: verify16=$v write_verify16=$w"

# SWP: writes refused (DATA PROTECT) until it is cleared again.
hexbin "00 00 00 00 0a 0a 00 10 08 00 00 00 00 00 00 00" >/tmp/swp1
hexbin "00 00 00 00 0a 0a 00 10 00 00 00 00 00 00 00 00" >/tmp/swp0
raw -s 16 -i /tmp/swp1 "$SG" 15 10 00 00 10 00; a=$?
raw -s 512 -i /tmp/p1 "$SG" 2a 00 00 00 00 32 00 00 01 00; b=$?
sense 'data protect' && b=DATA_PROTECT
raw -s 16 -i /tmp/swp0 "$SG" 15 10 00 00 10 00; c=$?
raw -s 512 -i /tmp/p1 "$SG" 2a 00 00 00 00 32 00 00 01 00; d=$?
[ $a = 0 ] && [ $b = DATA_PROTECT ] && [ $c = 0 ] && [ $d = 0 ]
check swp "$?" "set=$a write=$b clear=$c write=$d"

# COMPARE AND WRITE: 0 blocks with data, and a data-out of another size.
hexbin "$(pat 00 2)" >/tmp/c2
raw -s 1024 -i /tmp/c2 "$SG" 89 00 $(be64 200) 00 00 00 00 00 00; a=$?
sense 'illegal request' && a=ILLEGAL
raw -s 1024 -i /tmp/c2 "$SG" 89 00 $(be64 200) 00 00 00 02 00 00; b=$?
sense 'illegal request' && b=ILLEGAL
raw -s 1024 -i /tmp/c2 "$SG" 89 00 $(be64 200) 00 00 00 01 00 00; c=$?
[ $a = ILLEGAL ] && [ $b = ILLEGAL ] && [ $c = 0 ]
check caw_length $? "n=0:$a n=2:$b n=1:$c (ILLEGAL, ILLEGAL, 0 expected)"

# EXTENDED COPY within lb0: blocks 8-9 to 100-101; a descriptor naming
# lb1 (the same daemon, another TCMU device: no target in common) is
# COPY ABORTED and lb1 is untouched.
naa() { # SG -> the NAA designator's bytes (VPD 83h, the first one), hex with spaces
    rawin 64 "$1" 12 01 83 00 40 00
    [ "$(hexin 4 2)" = 0103 ] || return 0
    hexin 8 $((0x$(hexin 7 1))) | sed 's/../& /g'
}
xcopy_param() { # NAA(hex) N SRC DST
    n=$(echo $1 | wc -w)
    pad=$(for i in $(seq $n 19); do printf '00 '; done)
    echo "00 00 00 20 00 00 00 00 00 00 00 1c 00 00 00 00" \
         "e4 00 00 00 01 03 00 $(printf %02x $n) $1 $pad 00 00 02 00" \
         "02 00 00 18 00 00 00 00 00 00 $(printf '%04x' $2 | sed 's/../& /') $(be64 $3) $(be64 $4)"
}
n0=$(naa "$SG0") n1=$(naa "$SG1")
hexbin "$(xcopy_param "$n0" 2 8 100)" >/tmp/xc0
raw -s 76 -i /tmp/xc0 "$SG" 83 00 00 00 00 00 00 00 00 00 00 00 00 4c 00 00; a=$?
before=$(dd if=/dev/$DISK1 bs=512 count=2 iflag=direct 2>/dev/null | sha256sum)
hexbin "$(xcopy_param "$n1" 2 8 0)" >/tmp/xc1
raw -s 76 -i /tmp/xc1 "$SG" 83 00 00 00 00 00 00 00 00 00 00 00 00 4c 00 00; b=$?
after=$(dd if=/dev/$DISK1 bs=512 count=2 iflag=direct 2>/dev/null | sha256sum)
[ -n "$n0" ] && [ $a = 0 ] && [ "$(blk 100 2)" = "$(blk 8 2)" ] && [ $b != 0 ] &&
    [ "$before" = "$after" ] && sense 'copy aborted'
check xcopy "$?" "naa=$n0 within=$a other-device=$b"

# SANITIZE: OVERWRITE with a 4-byte pattern, then BLOCK ERASE (zeros).
hexbin "01 00 00 04 de ad be ef" >/tmp/ow
raw -s 8 -i /tmp/ow "$SG" 48 01 00 00 00 00 00 00 08 00; a=$?
ow=$(blk 0 | cut -c1-16)$(blk $((BLOCKS - 1)) | cut -c1017-1024)
raw "$SG" 48 02 00 00 00 00 00 00 00 00; b=$?
[ $a = 0 ] && [ $b = 0 ] && [ "$ow" = deadbeefdeadbeefdeadbeef ] &&
    [ "$(blk 0 8)" = "$(pat 00 8)" ] && [ "$(blk $((BLOCKS - 8)) 8)" = "$(pat 00 8)" ]
check sanitize "$?" "overwrite=$a ($ow) block-erase=$b"

# LOGICAL UNIT RESET from Linux (sg_reset -d: tcm_loop's device reset,
# which TCMU passes to scuse as a TMR entry): LIO's core gives the nexus the
# reset's unit attention (29/03), and that one alone must follow (scuse used
# to add its own 29/00, a second one). TEST UNIT READYs count them.
sg_reset -d "$SG" >/tmp/sgreset.out 2>&1; a=$?
ua=0 seen=
for i in 1 2 3 4; do
    sg_turs -v "$SG" >/tmp/sgturs.out 2>&1 && break
    if grep -qi "unit attention" /tmp/sgturs.out; then
        ua=$((ua + 1))
        seen="$seen $(grep -io 'additional sense: .*' /tmp/sgturs.out | head -1 | tr ' ' _)"
    fi
done
sg_turs "$SG" >/dev/null 2>&1; b=$?
[ $a = 0 ] && [ $b = 0 ] && [ $ua = 1 ] && case "$seen" in *Bus_device_reset_function*) true ;; *) false ;; esac
check lun_reset_ua "$?" "reset=$a unit-attentions=$ua:${seen:- none} then=$b"

section lb_delete sh -c 'scuse tcmu delete lb0 && scuse tcmu delete lb1'
