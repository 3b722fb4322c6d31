#!/usr/bin/env bash
# Malformed images and bad command lines. Valid images are made with
# qemu-img, then corrupted by editing bytes (lib/qcow2.py; the header is
# big-endian, offsets as in docs/formats.md section 1).
#
# For a failing command the contract is: exit 2 (never 0, never a crash
# or a sanitizer report), exactly one line on stderr, naming the image and
# (for a bad header field) the field.
#
# Which commands must fail depends on where the damage is:
#   header  the header (or something checked at open): info,
#           info --backing-chain, map and convert all fail.
#   chain   a backing-chain problem (loop, missing file, unrecorded
#           format): plain `info` describes the top image only, as
#           qemu-img info does, and must succeed; info --backing-chain,
#           map and convert fail.
#   meta    metadata met only while mapping (an L2 table past EOF): info
#           may succeed or fail (exit 0 or 2); map and convert fail.
#   data    guest data (a compressed cluster past EOF): info and map may
#           succeed (map needs no data; qemu-img map succeeds) or fail;
#           convert fails.
# QEMU is never run on the looping chains: qemu-img 7.2 hangs on them.
. "$(dirname "$0")/lib/common.sh"
Q2=$LIB_DIR/qcow2.py

# must_fail CMD...: exit 2, one stderr line naming $NAME and matching $FIELD.
must_fail() {
    if expect_exit 2 "$@"; then
        stderr_one_line || true
        stderr_names "$NAME" || true
        if [ -n "$FIELD" ]; then stderr_mentions "$FIELD" "the field (/$FIELD/)" || true; fi
    elif [ "$RC" -ne 999 ] && [ "$RC" -lt 128 ]; then
        : # expect_exit reported it
    fi
}
# may_fail CMD...: exit 0, or a proper failure as above.
may_fail() {
    run "$@"
    case $RC in
    0 | 999) ;;
    2) must_fail "$@" ;;
    *) [ "$RC" -ge 128 ] || fail "expected exit 0 or 2, got $RC: $*" ;;
    esac
}

# bad MODE DESC IMG FIELD_REGEX [NAME]: one case. NAME is what stderr
# must contain (default: IMG as given).
bad() {
    local mode=$1 desc=$2 img=$3
    FIELD=$4
    NAME=${5:-$img}
    case_begin "$desc"
    rm -f out.raw
    case $mode in
    header)
        must_fail "$SCUSE" info "$img"
        must_fail "$SCUSE" info --output=json --backing-chain "$img"
        must_fail "$SCUSE" map --output=json "$img"
        must_fail "$SCUSE" convert -O raw "$img" out.raw
        ;;
    chain)
        expect_exit 0 "$SCUSE" info "$img" || true
        must_fail "$SCUSE" info --output=json --backing-chain "$img"
        must_fail "$SCUSE" map --output=json "$img"
        must_fail "$SCUSE" convert -O raw "$img" out.raw
        ;;
    meta)
        may_fail "$SCUSE" info "$img"
        must_fail "$SCUSE" map --output=json "$img"
        must_fail "$SCUSE" convert -O raw "$img" out.raw
        ;;
    data)
        may_fail "$SCUSE" info "$img"
        may_fail "$SCUSE" map --output=json "$img"
        must_fail "$SCUSE" convert -O raw "$img" out.raw
        ;;
    esac
    case_end
}

# A valid image with data, zero and compressed clusters and a backing-less
# header; and an overlay (backing name + backing-format extension).
qimg create -q -f qcow2 good.qcow2 4M
qwrite good.qcow2 "write -P 0x11 0 1M" "write -c -P 0x22 2M 64k" "write -z 3M 64k"
qimg create -q -f qcow2 base.qcow2 4M
qwrite base.qcow2 "write -P 0x33 0 4M"
qimg create -q -f qcow2 -b base.qcow2 -F qcow2 overlay.qcow2 4M
qwrite overlay.qcow2 "write -P 0x44 1M 64k"
# sanity: the untouched images are fine
case_begin "valid images are accepted"
for img in good.qcow2 overlay.qcow2; do
    expect_exit 0 "$SCUSE" info "$img" || true
    expect_exit 0 "$SCUSE" map "$img" || true
    expect_exit 0 "$SCUSE" convert -O raw "$img" out.raw || true
done
case_end

# corrupt SRC DST FIELD VALUE: copy and set one header field.
corrupt() {
    cp "$1" "$2"
    python3 "$Q2" set "$2" "$3" "$4"
}

# --- header -----------------------------------------------------------------
head -c 50 good.qcow2 >trunc.qcow2
bad header "truncated header (50 bytes with the magic)" trunc.qcow2 'header|short|truncat'
head -c 4 good.qcow2 >magic-only.qcow2
bad header "magic only (4 bytes)" magic-only.qcow2 'header|short|truncat'

corrupt good.qcow2 version1.qcow2 version 1
bad header "version 1" version1.qcow2 'version'
corrupt good.qcow2 version4.qcow2 version 4
bad header "version 4" version4.qcow2 'version'

corrupt good.qcow2 cbits8.qcow2 cluster_bits 8
bad header "cluster_bits 8" cbits8.qcow2 'cluster'
corrupt good.qcow2 cbits22.qcow2 cluster_bits 22
bad header "cluster_bits 22" cbits22.qcow2 'cluster'

corrupt good.qcow2 l1off.qcow2 l1_table_offset $((1 << 40))
bad header "L1 table offset beyond EOF" l1off.qcow2 'l1'
corrupt good.qcow2 l1size.qcow2 l1_size 0xffffffff
bad header "L1 size 0xffffffff" l1size.qcow2 'l1'

corrupt good.qcow2 size62.qcow2 size $((1 << 62))
bad header "virtual size 2^62" size62.qcow2 'size'

corrupt overlay.qcow2 longname.qcow2 backing_file_size 1100
bad header "backing file name of 1100 bytes" longname.qcow2 'backing'
corrupt overlay.qcow2 backoff.qcow2 backing_file_offset $((1 << 40))
bad header "backing file name offset beyond EOF" backoff.qcow2 'backing'

corrupt good.qcow2 incompat9.qcow2 incompatible_features $((1 << 9))
bad header "unknown incompatible feature bit 9" incompat9.qcow2 'incompatible'
corrupt good.qcow2 incompat63.qcow2 incompatible_features 0x8000000000000000
bad header "unknown incompatible feature bit 63" incompat63.qcow2 'incompatible'

corrupt good.qcow2 crypt1.qcow2 crypt_method 1
bad header "crypt_method 1 (AES)" crypt1.qcow2 'crypt'

corrupt good.qcow2 rorder7.qcow2 refcount_order 7
bad header "refcount_order 7" rorder7.qcow2 'refcount'
corrupt good.qcow2 hlen.qcow2 header_length 52
bad header "header_length 52" hlen.qcow2 'header'

corrupt good.qcow2 nbsnap.qcow2 nb_snapshots 0xffffffff
bad header "nb_snapshots 0xffffffff" nbsnap.qcow2 'snapshot'
# the first header extension (feature names) claiming 4 GiB
cp good.qcow2 extlen.qcow2
pos=$(python3 "$Q2" header extlen.qcow2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["extensions"][0]["pos"])')
python3 "$Q2" set-u64 extlen.qcow2 "$pos" "$(printf '0x%08x%08x' 0x6803f857 0xfffffff0)"
bad header "header extension length 0xfffffff0" extlen.qcow2 'extension'

# --- chain ------------------------------------------------------------------
qimg create -q -f qcow2 loop-a.qcow2 1M
qimg create -q -f qcow2 -b loop-a.qcow2 -F qcow2 loop-b.qcow2 1M
qimg rebase -u -b loop-b.qcow2 -F qcow2 loop-a.qcow2
bad chain "backing chain loop a -> b -> a" loop-a.qcow2 'loop'
qimg create -q -f qcow2 loop-self.qcow2 1M
qimg rebase -u -b loop-self.qcow2 -F qcow2 loop-self.qcow2
bad chain "backing file is the image itself" loop-self.qcow2 'loop'
# the same loop reached through another name for the file
mkdir -p sub
qimg create -q -f qcow2 sub/loop-c.qcow2 1M
qimg rebase -u -b ../sub/./loop-c.qcow2 -F qcow2 sub/loop-c.qcow2
bad chain "self loop through a different path" sub/loop-c.qcow2 'loop' loop-c.qcow2

# qemu-img 7.2 refuses `rebase -u` without -F, so drop the extension.
cp overlay.qcow2 nofmt.qcow2
python3 "$Q2" drop-ext nofmt.qcow2 0xe2792aca
if qemu-img info nofmt.qcow2 | grep '^backing file format' >/dev/null; then
    echo "SETUP ERROR: nofmt.qcow2 still records its backing format" >&2
    exit 1
fi
bad chain "backing file format not recorded" nofmt.qcow2 'format'
stderr_mentions 'backing' "the backing file" || true

cp overlay.qcow2 missing.qcow2
qimg rebase -u -b not-there.qcow2 -F qcow2 missing.qcow2
# The line must name the missing file and say it is a backing file.
# The message must say it is the backing file (qemu-img: "Could not open
# backing file"); scuse once named only the missing file.
bad chain "missing backing file" missing.qcow2 'backing' not-there.qcow2

# --- meta / data --------------------------------------------------------------
# In this section map and convert must print one line; scuse once printed
# two, the driver's log line ("scuse: error: '<img>': L2 table offset
# ... is beyond the end of the file") and then a generic one ("block status
# at offset 0 failed: Input/output error" / "copy failed near offset 0").
# L1 entry 0 pointing at an L2 table past EOF (COPIED bit kept)
cp good.qcow2 l2off.qcow2
python3 "$Q2" set-l1 l2off.qcow2 0 0x8000010000000000
bad meta "L2 table offset beyond EOF" l2off.qcow2 'l2'
# L1 entry with a non-cluster-aligned L2 table offset
cp good.qcow2 l2unal.qcow2
python3 "$Q2" set-l1 l2unal.qcow2 0 0x8000000000040200
bad meta "L2 table offset not cluster aligned" l2unal.qcow2 'l2'

# the compressed cluster's descriptor moved past EOF (offset 256 MiB, n=0)
cp good.qcow2 cpast.qcow2
pos=$(python3 "$Q2" l2-entry-pos cpast.qcow2 0x200000)
python3 "$Q2" set-u64 cpast.qcow2 "$pos" 0x4000000010000000
python3 "$Q2" clusters cpast.qcow2 | grep '^0x200000 compressed 0x10000000 ' >/dev/null ||
    { echo "SETUP ERROR: cpast.qcow2 descriptor not set" >&2; exit 1; }
bad data "compressed cluster descriptor past EOF" cpast.qcow2 'compress'

# a data cluster's host offset not cluster aligned (QEMU: "Cluster
# allocation offset 0x50200 unaligned", EIO)
cp good.qcow2 dunal.qcow2
pos=$(python3 "$Q2" l2-entry-pos dunal.qcow2 0x10000)
python3 "$Q2" set-u64 dunal.qcow2 "$pos" 0x8000000000050200
bad meta "data cluster offset not cluster aligned" dunal.qcow2 'align'
# compressed bytes that are garbage (descriptor intact)
cp good.qcow2 cgarb.qcow2
off=$(python3 "$Q2" clusters cgarb.qcow2 | awk '$2 == "compressed" { print $3 }')
printf '\xde\xad\xbe\xef\xde\xad\xbe\xef' | dd of=cgarb.qcow2 bs=1 seek=$((off)) conv=notrunc status=none
bad data "compressed cluster that does not decompress" cgarb.qcow2 'compress'
# extended L2: a subcluster both allocated and zero
qimg create -q -f qcow2 -o extended_l2=on xl2.qcow2 1M
qwrite xl2.qcow2 "write -P 0x55 0 64k"
pos=$(python3 "$Q2" l2-entry-pos xl2.qcow2 0)
python3 "$Q2" set-u64 xl2.qcow2 $((pos + 8)) 0x00000001ffffffff
bad meta "extended L2 subcluster both allocated and zero" xl2.qcow2 'subcluster|bitmap'

# Damage QEMU tolerates, and so must scuse: a data cluster whose host
# offset lies past EOF reads as zeros (file reads past EOF are zeros).
cp good.qcow2 dpast.qcow2
pos=$(python3 "$Q2" l2-entry-pos dpast.qcow2 0x10000)
python3 "$Q2" set-u64 dpast.qcow2 "$pos" 0x8000001000000000
case_begin "data cluster past EOF reads zeros, as in QEMU"
check_convert dpast.qcow2
case_end

# --- files ------------------------------------------------------------------
NAME=no-such.qcow2 FIELD=""
rm -f out.raw
case_begin "missing image file"
must_fail "$SCUSE" info no-such.qcow2
must_fail "$SCUSE" map no-such.qcow2
must_fail "$SCUSE" convert -O raw no-such.qcow2 out.raw
[ ! -e out.raw ] || fail "convert of a missing image created the destination"
case_end
mkdir -p adir
NAME=adir FIELD=''
case_begin "a directory as the image"
must_fail "$SCUSE" info adir
must_fail "$SCUSE" map adir
must_fail "$SCUSE" convert -O raw adir out.raw
case_end
truncate -s 1M plain.raw
NAME=plain.raw FIELD='qcow2|magic|format'
case_begin "-f qcow2 on a raw file"
must_fail "$SCUSE" info -f qcow2 plain.raw
must_fail "$SCUSE" map -f qcow2 plain.raw
must_fail "$SCUSE" convert -f qcow2 -O raw plain.raw out.raw
case_end
NAME=nosuchfmt FIELD=''
case_begin "unknown -f format"
must_fail "$SCUSE" info -f nosuchfmt good.qcow2
case_end

# --- usage: exit 1 --------------------------------------------------------------
# usage CMD...: exit 1, something on stderr, nothing that looks like a crash.
usage() {
    if expect_exit 1 "$SCUSE" "$@"; then
        [ -s "$W/.err" ] || fail "usage error without a message: scuse $*"
    fi
}
case_begin "usage errors exit 1"
usage
usage frobnicate good.qcow2
usage info
usage info good.qcow2 good.qcow2
usage info --no-such-option good.qcow2
usage info --output=xml good.qcow2
usage map
usage map --no-such-option good.qcow2
usage map --output=xml good.qcow2
usage convert
usage convert good.qcow2
usage convert -O raw good.qcow2 a.raw b.raw
usage convert --no-such-option good.qcow2 out.raw
usage convert -m 0 good.qcow2 out.raw
usage convert -m x good.qcow2 out.raw
case_end

finish
