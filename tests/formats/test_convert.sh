#!/usr/bin/env bash
# scuse convert's behaviour: sparse and fast output, progress, worker
# counts, overwriting, refusing to write over its source, write errors.
. "$(dirname "$0")/lib/common.sh"

# same_as_qemu IMG OUT [qemu-img convert options]: OUT equals qemu-img's raw.
same_as_qemu() {
    local img=$1 out=$2
    shift 2
    rm -f "$W/.want.raw"
    qemu-img convert "$@" -O raw "$img" "$W/.want.raw"
    local msg
    if ! msg=$(python3 "$LIB_DIR/sparsecmp.py" "$W/.want.raw" "$out"); then
        fail "$out differs from qemu-img convert of $img: $msg"
    fi
    rm -f "$W/.want.raw"
}

now_ms() { local t=$EPOCHREALTIME; echo $(( ${t/./} / 1000 )); }

# --- 1. sparse output, quickly ---------------------------------------------------
# 1 GiB virtual, ~2.2 MiB of data spread over it (plain, compressed, zero).
qimg create -q -f qcow2 big.qcow2 1G
qwrite big.qcow2 "write -P 0x01 0 1M" "write -P 0x02 500M 64k" "write -c -P 0x03 700M 64k" \
    "write -z 800M 64k" "write -P 0x04 1023M 1M" "write -P 0x05 333333333 4444"
case_begin "1 GiB mostly-empty qcow2 converts to a sparse raw, quickly"
t0=$(now_ms)
if expect_exit 0 "$SCUSE" convert -O raw big.qcow2 big.raw; then
    ms=$(( $(now_ms) - t0 ))
    # generous: this takes well under a second on an idle machine
    [ "$ms" -lt 15000 ] || fail "took $ms ms for 1 GiB with 2 MiB of data"
    sz=$(stat -c %s big.raw)
    [ "$sz" -eq $((1024 * 1024 * 1024)) ] || fail "output is $sz bytes, not 1 GiB"
    kb=$(du -k big.raw | cut -f1)
    [ "$kb" -le 8192 ] || fail "output is not sparse: du says ${kb} KiB for ~2.2 MiB of data"
    same_as_qemu big.qcow2 big.raw
fi
case_end

case_begin "sparse raw source converts to a sparse raw"
truncate -s 512M sparse-src.raw
printf 'hello' | dd of=sparse-src.raw bs=1 seek=123456789 conv=notrunc status=none
if expect_exit 0 "$SCUSE" convert -f raw -O raw sparse-src.raw sparse-dst.raw; then
    kb=$(du -k sparse-dst.raw | cut -f1)
    [ "$kb" -le 1024 ] || fail "output is not sparse: du says ${kb} KiB"
    same_as_qemu sparse-src.raw sparse-dst.raw -f raw
fi
case_end

# A fragmented image for the next cases: many small writes over 24 MiB
# (several of the copy engine's windows), compressed and zero clusters, a
# backing file underneath.
size=$((24 * 1024 * 1024))
qimg create -q -f qcow2 frag-base.qcow2 $size
fill frag-base.qcow2 $size 41 30 --maxlen 1000000
qimg create -q -f qcow2 -o cluster_size=4k -b frag-base.qcow2 -F qcow2 frag.qcow2 $size
fill frag.qcow2 $size 42 150 --maxlen 60000 --compress 4096 --cfrac 0.2 --zero 0.1 --zero-u 0.05

# --- 2. progress ------------------------------------------------------------------
case_begin "-p prints progress and the output is still right"
if expect_exit 0 "$SCUSE" convert -p -O raw frag.qcow2 p.raw; then
    tr '\r' '\n' <"$W/.out" >progress.txt
    grep -E '100(\.0+)?(/100)?%' progress.txt >/dev/null ||
        fail "-p printed no 100% line: $(head -c 300 "$W/.out" | tr '\r' '|')"
    [ "$(grep -c '%' progress.txt)" -ge 2 ] || fail "-p printed fewer than two progress updates"
    same_as_qemu frag.qcow2 p.raw
fi
# and without -p, nothing on stdout
if expect_exit 0 "$SCUSE" convert -O raw frag.qcow2 nop.raw; then
    [ ! -s "$W/.out" ] || fail "convert without -p printed on stdout: $(head -c 200 "$W/.out")"
    [ ! -s "$W/.err" ] || fail "convert without -p printed on stderr: $(head -c 200 "$W/.err")"
fi
case_end

# --- 3. worker counts -------------------------------------------------------------
case_begin "-m 1 and -m 4 give identical output, equal to qemu-img's"
expect_exit 0 "$SCUSE" convert -m 1 -O raw frag.qcow2 m1.raw || true
expect_exit 0 "$SCUSE" convert -m 4 -O raw frag.qcow2 m4.raw || true
expect_exit 0 "$SCUSE" convert -m 16 -O raw frag.qcow2 m16.raw || true
if [ -f m1.raw ] && [ -f m4.raw ] && [ -f m16.raw ]; then
    cmp m1.raw m4.raw >/dev/null || fail "-m 1 and -m 4 outputs differ: $(cmp m1.raw m4.raw 2>&1)"
    cmp m1.raw m16.raw >/dev/null || fail "-m 1 and -m 16 outputs differ: $(cmp m1.raw m16.raw 2>&1)"
    same_as_qemu frag.qcow2 m1.raw
fi
case_end

# Many workers over many small L2 tables and over 2 MiB compressed
# clusters: shared metadata caches under contention.
qimg create -q -f qcow2 -o cluster_size=512 small-cl.qcow2 16M
fill small-cl.qcow2 $((16 * 1024 * 1024)) 43 120 --maxlen 40000 --zero 0.1
qimg create -q -f qcow2 -o cluster_size=2M,compression_type=zstd big-cl.qcow2 32M
fill big-cl.qcow2 $((32 * 1024 * 1024)) 44 12 --maxlen 3000000 --compress $((2 * 1024 * 1024)) --cfrac 0.5
case_begin "-m 8 on 512-byte clusters and on 2 MiB compressed clusters"
for img in small-cl.qcow2 big-cl.qcow2; do
    if expect_exit 0 "$SCUSE" convert -m 8 -O raw "$img" m8.raw; then
        same_as_qemu "$img" m8.raw
    fi
done
case_end

# --- 4. an existing destination is overwritten --------------------------------------
case_begin "an existing destination is overwritten (larger, smaller, non-sparse)"
# larger than the result and full of 0xff: nothing of it may survive,
# in particular not where the source reads zeros
head -c $((2 * size)) /dev/zero | tr '\0' '\377' >exist-big.raw
if expect_exit 0 "$SCUSE" convert -O raw frag.qcow2 exist-big.raw; then
    same_as_qemu frag.qcow2 exist-big.raw
fi
head -c 12345 /dev/urandom >exist-small.raw
if expect_exit 0 "$SCUSE" convert -O raw frag.qcow2 exist-small.raw; then
    same_as_qemu frag.qcow2 exist-small.raw
fi
# the same destination twice in a row, from different sources
expect_exit 0 "$SCUSE" convert -O raw big.qcow2 twice.raw || true
if expect_exit 0 "$SCUSE" convert -O raw frag.qcow2 twice.raw; then
    same_as_qemu frag.qcow2 twice.raw
fi
case_end

# --- 5. destination == source --------------------------------------------------------
# refused (any exit from 1 to 127 but not 0), and the source untouched
refused() { # SRC-SUM-FILE CMD...
    local src=$1
    shift
    local before
    before=$(md5sum <"$src")
    run "$SCUSE" "$@"
    if [ "$RC" -eq 0 ]; then
        fail "not refused: scuse $*"
    elif [ "$RC" -lt 128 ] && [ "$RC" -ne 999 ]; then
        stderr_one_line || true
    fi
    [ "$(md5sum <"$src")" = "$before" ] || fail "the source $src was modified by: scuse $*"
    [ "$(stat -c %s "$src")" -gt 0 ] || fail "the source $src was truncated by: scuse $*"
}
case_begin "destination equal to the source is refused"
cp frag.qcow2 self.qcow2
refused self.qcow2 convert -O raw self.qcow2 self.qcow2
refused self.qcow2 convert -O raw self.qcow2 ./self.qcow2
ln -f self.qcow2 self-link.qcow2
refused self.qcow2 convert -O raw self.qcow2 self-link.qcow2
ln -sf self.qcow2 self-sym.qcow2
refused self.qcow2 convert -O raw self.qcow2 self-sym.qcow2
head -c 3M /dev/urandom >self.raw
refused self.raw convert -f raw -O raw self.raw self.raw
# Writing over a file of the backing chain is as bad: the chain is read
# while the destination is truncated. (qemu-img refuses: 'Failed to get
# "write" lock'.) (A regression guard: scuse once exited 0 here, having truncated the
# backing file.)
cp frag-base.qcow2 chainbase.qcow2
qimg create -q -f qcow2 -b chainbase.qcow2 -F qcow2 chaintop.qcow2 $size
refused chainbase.qcow2 convert -O raw chaintop.qcow2 chainbase.qcow2
case_end

# --- 6. unwritable destinations ---------------------------------------------------------
# The message must name the destination (the file that failed).
# The message must name the destination (scuse once named the source).
case_begin "unwritable destinations give exit 2"
for dst in no-such-dir/out.raw adir /dev/full; do
    mkdir -p adir
    if expect_exit 2 "$SCUSE" convert -O raw frag.qcow2 "$dst"; then
        stderr_one_line || true
        stderr_names "$dst" || true
    fi
done
[ -d adir ] || fail "the directory destination was removed"
case_end

case_begin "a character device destination (/dev/null) works"
expect_exit 0 "$SCUSE" convert -O raw frag.qcow2 /dev/null || true
case_end

finish
