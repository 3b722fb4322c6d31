#!/usr/bin/env bash
# `scuse io`, the qemu-io look-alike the write tests drive: exit codes
# (0 ok, 1 usage / verification, 2 I/O), messages, read-only mode, size
# suffixes, argument order, several commands per run, output lines;
# commands from standard input (long scripts, their errors by line, the
# prompt only at a terminal) and -c lists past 256 commands.
# Data is always judged with qemu-io and qemu-img.
. "$(dirname "$0")/lib/common.sh"
. "$LIB_DIR/wcommon.sh"

qimg create -q -f qcow2 img.qcow2 4M
qwrite img.qcow2 "write -P 0x11 0 4k"

case_begin "read -P: match exits 0; mismatch exits 1 and names the offset"
expect_exit 0 "$SCUSE" io -c 'read -P 0x11 0 4k' img.qcow2 || true
if expect_exit 1 "$SCUSE" io -c 'read -P 0x11 0 8k' img.qcow2; then
    grep -q '4096' "$W/.out" "$W/.err" ||
        fail "the mismatch message does not name offset 4096: $(cat "$W/.out" "$W/.err" | head -n 3 | tr '\n' '|')"
fi
expect_exit 1 "$SCUSE" io -c 'read -P 0x12 100 1' img.qcow2 || true
grep -q '100' "$W/.out" "$W/.err" || fail "the mismatch message does not name offset 100"
case_end

case_begin "usage errors exit 1 with one line: unknown command, option, missing or bad numbers"
# (Regression: getopt() used to print its own "write: invalid option --
# 'x'" line before scuse's message; fixed in 1f9f68a.)
for c in 'frobnicate 0 512' 'write -x 0 512' 'write 0' 'read' 'write abc 512' 'write 0 12q' \
    'write -P 0x100 0 512' 'write -P zz 0 512' 'write -u 0 512' 'write -z -P 0x11 0 512' \
    'discard -P 0x11 0 512' 'read -z 0 512' 'write -1 512' 'read 0 -512'; do
    if expect_exit 1 "$SCUSE" io -c "$c" img.qcow2; then
        stderr_one_line || true
    else
        fail "(command: '$c')"
    fi
done
expect_exit 1 "$SCUSE" io || true
expect_exit 1 "$SCUSE" io -c 'read 0 512' || true
expect_exit 1 "$SCUSE" io -c 'read 0 512' img.qcow2 img.qcow2 || true
# (an unknown -f format is an image error, exit 2, as in scuse info/convert)
expect_exit 2 "$SCUSE" io -f nosuchformat -c 'read 0 512' img.qcow2 || true
qread img.qcow2 "read -P 0x11 0 4k" "read -P 0 4k $((4096 * 1023))"
case_end

case_begin "out of range: exit 1, nothing written"
size=$((4 * 1024 * 1024))
for c in "write 0 $((size + 1))" "write $((size - 1)) 2" "write $size 1" "read $((size - 511)) 512" \
    "write -z $((size - 4096)) 8192" "discard $((size + 4096)) 4096" "write 5G 512"; do
    if expect_exit 1 "$SCUSE" io -c "$c" img.qcow2; then
        stderr_one_line || true
    else
        fail "(command: '$c')"
    fi
done
expect_exit 0 "$SCUSE" io -c "write -P 0x22 $((size - 1)) 1" -c "read -P 0x22 $((size - 1)) 1" img.qcow2 || true
qread img.qcow2 "read -P 0x11 0 4k" "read -P 0 4k $((size - 4096 - 1))" "read -P 0x22 $((size - 1)) 1"
qcheck img.qcow2 0
case_end

case_begin "missing or unreadable image: exit 2, one line naming it"
if expect_exit 2 "$SCUSE" io -c 'read 0 512' nosuch.qcow2; then
    stderr_one_line || true
    stderr_names nosuch.qcow2 || true
fi
if expect_exit 2 "$SCUSE" io -r -c 'read 0 512' nosuch.qcow2; then
    stderr_one_line || true
fi
[ ! -e nosuch.qcow2 ] || fail "scuse io created nosuch.qcow2"
mkdir -p adir
expect_exit 2 "$SCUSE" io -c 'read 0 512' adir || true
if [ "$(id -u)" -ne 0 ]; then
    cp img.qcow2 ro.qcow2
    chmod 0444 ro.qcow2
    expect_exit 2 "$SCUSE" io -c 'write 0 512' ro.qcow2 && stderr_names ro.qcow2 || true
    expect_exit 0 "$SCUSE" io -r -c 'read -P 0x11 0 4k' ro.qcow2 || true
fi
case_end

case_begin "I/O errors exit 2: an unaligned L2 entry (QEMU: EIO)"
qimg create -q -f qcow2 bad.qcow2 1M
qwrite bad.qcow2 "write -P 0x33 0 64k"
pos=$(python3 "$Q2" l2-entry-pos bad.qcow2 0)
python3 "$Q2" set-u64 bad.qcow2 "$pos" 0x8000000000050200
if expect_exit 2 "$SCUSE" io -r -c 'read 0 512' bad.qcow2; then
    stderr_one_line || true
    stderr_names bad.qcow2 || true
fi
if expect_exit 2 "$SCUSE" io -c 'write -P 0x44 100 512' bad.qcow2; then
    stderr_one_line || true
fi
case_end

case_begin "-r: writes, zero writes and discards refused with a clear error; file untouched"
cp img.qcow2 r.qcow2
sum=$(sum_of r.qcow2)
for c in 'write 0 512' 'write -z 0 512' 'write -z -u 0 64k' 'discard 0 64k'; do
    run "$SCUSE" io -r -c "$c" r.qcow2
    if [ "$RC" -eq 0 ]; then
        fail "scuse io -r accepted '$c'"
    elif [ "$RC" -lt 128 ]; then
        stderr_one_line || true
        stderr_mentions 'read-only|read only|-r' "that the image is read-only" || true
    fi
done
expect_exit 0 "$SCUSE" io -r -c 'read -P 0x11 0 4k' -c flush r.qcow2 || true
[ "$(sum_of r.qcow2)" = "$sum" ] || fail "scuse io -r modified the image"
case_end

case_begin "size suffixes k/K, m/M, g/G (and plain, 0x hex) as qemu-io reads them"
qimg create -q -f qcow2 big.qcow2 3G
if expect_exit 0 "$SCUSE" io -c 'write -P 0x21 1k 2k' -c 'write -P 0x22 1M 1K' -c 'write -P 0x23 1G 512' \
    -c 'write -P 0x24 2g 1m' -c 'write -P 0x25 0x10000 0x200' -c 'write -P 0x26 2M 4k' -c 'write -z 2M 1k' \
    -c 'write -P 0x27 1.5k 512' big.qcow2; then
    qread big.qcow2 "read -P 0x21 1024 512" "read -P 0x27 1536 512" "read -P 0x21 2048 1024" \
        "read -P 0 3072 1024" "read -P 0x22 1048576 1024" "read -P 0x23 1073741824 512" \
        "read -P 0x24 2147483648 1048576" "read -P 0x25 65536 512" "read -P 0 2097152 1024" \
        "read -P 0x26 2098176 3072"
fi
expect_exit 0 "$SCUSE" io -r -c 'read -P 0x23 1G 512' -c 'read -P 0x24 2G 1M' big.qcow2 || true
qcheck big.qcow2 0
case_end

case_begin "output: one 'wrote/read/discard N/N bytes at offset X' line per command, as qemu-io"
qimg create -q -f qcow2 o1.qcow2 1M
qimg create -q -f qcow2 o2.qcow2 1M
cmds=(-c 'write -P 0x31 100 1000' -c 'write -z 4096 4096' -c 'write -z -u 65536 65536'
    -c 'discard 131072 65536' -c 'read -P 0x31 100 1000' -c 'flush' -c 'read 0 512')
qemu-io "${cmds[@]}" o1.qcow2 2>&1 | grep -E '^(wrote|read|discard) ' >want.txt
if expect_exit 0 "$SCUSE" io "${cmds[@]}" o2.qcow2; then
    grep -E '^(wrote|read|discard) ' "$W/.out" >got.txt || true
    cmp -s want.txt got.txt || fail "result lines differ from qemu-io's: $(diff want.txt got.txt | head -n 4 | tr '\n' '|')"
fi
expect_exit 0 "$SCUSE" io -c 'write -q 0 512' -c 'read -q -P 0xcd 0 512' o2.qcow2 || true
[ ! -s "$W/.out" ] || fail "-q still printed: $(head -n 2 "$W/.out")"
case_end

case_begin "several commands in one run, with options in each (getopt state reset between commands)"
# (Regression: a command after `write -z -u ...` failed with "write:
# invalid option -- '5'": run_cmd() reset getopt with optind = 1, keeping
# glibc's scan state of the previous command; fixed in 1f9f68a.)
qimg create -q -f qcow2 m.qcow2 1M
if expect_exit 0 "$SCUSE" io -c 'write -z -u 0 4096' -c 'write -P 0x5d 4096 1' -c 'write -P 0x5e 8192 512' \
    -c 'write -z 8192 100' -c 'write -q -P 0x5f 9000 10' -c 'read -P 0x5f 9000 10' -c 'discard 65536 65536' \
    -c 'write -P 0x60 200000 5' m.qcow2; then
    qread m.qcow2 "read -P 0 0 4096" "read -P 0x5d 4096 1" "read -P 0 8192 100" "read -P 0x5e 8292 412" \
        "read -P 0x5f 9000 10" "read -P 0x60 200000 5"
fi
case_end

case_begin "the documented argument order: scuse io IMG -c CMD (as --help shows)"
# (Regression: `scuse io IMG -c CMD`, the form --help gives, failed with
# "expected exactly one image"; fixed in 1f9f68a.)
qimg create -q -f qcow2 d.qcow2 1M
if expect_exit 0 "$SCUSE" io d.qcow2 -c 'write -P 0x41 0 512'; then
    qread d.qcow2 "read -P 0x41 0 512"
fi
expect_exit 0 "$SCUSE" io -f qcow2 d.qcow2 -c 'read -P 0x41 0 512' -c 'read -P 0 512 512' || true
case_end

case_begin "a failing command stops the run; earlier writes land (flushed at exit)"
qimg create -q -f qcow2 s.qcow2 1M
expect_exit 1 "$SCUSE" io -c 'write -P 0x51 0 512' -c 'write 0 2M' -c 'write -P 0x52 512 512' s.qcow2 || true
qread s.qcow2 "read -P 0x51 0 512" "read -P 0 512 512"
qcheck s.qcow2 0
case_end

case_begin "-f raw on a qcow2 file writes the file's bytes; -f qcow2 on raw refused"
qimg create -q -f qcow2 fr.qcow2 1M
sz=$(stat -c %s fr.qcow2)
expect_exit 0 "$SCUSE" io -f raw -c "write -P 0x61 $((sz - 512)) 512" fr.qcow2 || true
qread fr.qcow2 -f raw "read -P 0x61 $((sz - 512)) 512"
truncate -s 1M plain.raw
expect_exit 2 "$SCUSE" io -f qcow2 -c 'read 0 512' plain.raw || true
case_end


# io_script SIZE CLUSTER SEED N: N commands for scuse io's standard input
# (writes with patterns, zero writes with and without -u, whole-cluster
# discards, flushes, reads: half of them verified with -P where the model
# knows the bytes), with comment and blank lines among them. Unaligned
# offsets and lengths; every range inside SIZE.
io_script() {
    python3 - "$@" <<'EOF'
import random, sys
size, cs, seed, n = (int(a, 0) for a in sys.argv[1:5])
rnd = random.Random(seed)
model = bytearray(size)          # the image starts all zero
def span(maxlen):
    ln = rnd.choice([1, 512, 4096, rnd.randint(1, maxlen)])
    off = rnd.randrange(0, size - ln + 1)
    if rnd.random() < 0.5:       # sometimes sector aligned
        off -= off % 512
    return off, ln
out = ["# scuse io script: seed %d, %d commands" % (seed, n)]
for i in range(n):
    if rnd.random() < 0.02:
        out.append(rnd.choice(["", "   ", "# a comment", "\t# an indented comment"]))
    r = rnd.random()
    if r < 0.45:
        off, ln = span(256 * 1024)
        b = rnd.randrange(1, 256)
        model[off:off + ln] = bytes([b]) * ln
        out.append("write -P 0x%02x %d %d" % (b, off, ln))
    elif r < 0.55:
        off, ln = span(128 * 1024)
        model[off:off + ln] = bytes(ln)
        out.append("write -z%s %d %d" % (rnd.choice(["", " -u"]), off, ln))
    elif r < 0.60:
        c0 = rnd.randrange(0, size // cs)
        k = rnd.randint(1, min(8, size // cs - c0))
        model[c0 * cs:(c0 + k) * cs] = bytes(k * cs)
        out.append("discard %d %d" % (c0 * cs, k * cs))
    elif r < 0.62:
        out.append("flush")
    else:
        off, ln = span(64 * 1024)
        b = model[off]
        if rnd.random() < 0.5 and model[off:off + ln] == bytes([b]) * ln:
            out.append("read -P 0x%02x %d %d" % (b, off, ln))
        else:
            out.append("read %d %d" % (off, ln))
print("\n".join(out))
EOF
}

# result_lines FILE: the "wrote/read/discard N/N bytes at offset X" lines,
# without qemu-io's prompts.
result_lines() { sed 's/^\(qemu-io> \)*//' "$1" | grep -E '^(wrote|read|discard) ' || true; }

case_begin "5000 commands from standard input = qemu-io fed the same script (qemu-img compare)"
n=${SCUSE_IO_SCRIPT_OPS:-5000}
qimg create -q -f qcow2 -o cluster_size=4096 in.qcow2 32M
cp in.qcow2 want.qcow2
io_script $((32 << 20)) 4096 "${SCUSE_TEST_SEED:-4242}" "$n" >script.txt
[ "$(grep -cvE '^[[:space:]]*(#|$)' script.txt)" -eq "$n" ] || fail "setup: the script does not hold $n commands"
# qemu-io's interactive mode takes no comments: it gets the commands only
grep -vE '^[[:space:]]*(#|$)' script.txt >script.qemu-io
qemu-io -f qcow2 want.qcow2 <script.qemu-io >want.out 2>&1 || true
if grep -qiE 'verification failed|error|not found|invalid' want.out; then
    echo "SETUP ERROR: qemu-io on the script: $(grep -m 3 -iE 'verification failed|error|not found|invalid' want.out)" >&2
    exit 1
fi
run "$SCUSE" io -f qcow2 in.qcow2 <script.txt
if [ "$RC" -ne 0 ]; then
    fail "scuse io on a $n-command script exited $RC: $(head -n 3 "$W/.err" | tr '\n' '|')"
else
    [ ! -s "$W/.err" ] || fail "stderr not empty: $(head -n 3 "$W/.err" | tr '\n' '|')"
    ! grep -q 'scuse io>' "$W/.out" || fail "a prompt was printed though standard input is no terminal"
    result_lines "$W/.out" >got.lines
    result_lines want.out >want.lines
    cmp -s want.lines got.lines ||
        fail "result lines differ from qemu-io's ($(wc -l <got.lines) vs $(wc -l <want.lines)): $(diff want.lines got.lines | head -n 4 | tr '\n' '|')"
    if ! out=$(qemu-img compare -f qcow2 -F qcow2 in.qcow2 want.qcow2 2>&1); then
        fail "qemu-img compare with qemu-io's copy: $out"
    fi
    qcheck in.qcow2 0
fi
case_end

case_begin "-c past 256 commands (1000 in one run) = qemu-io -c with the same list"
qimg create -q -f qcow2 c1.qcow2 8M
cp c1.qcow2 c2.qcow2
args=()
for i in $(seq 0 999); do
    args+=(-c "write -P $((i % 255 + 1)) $((i * 7919 % (8 << 20) / 512 * 512)) $((512 + i % 3 * 1000))")
done
args+=(-c "read -P $((999 % 255 + 1)) $((999 * 7919 % (8 << 20) / 512 * 512)) 512")
qio "${args[@]}" c2.qcow2
if expect_exit 0 "$SCUSE" io "${args[@]}" c1.qcow2; then
    [ "$(grep -c '^wrote ' "$W/.out")" -eq 1000 ] || fail "$(grep -c '^wrote ' "$W/.out") 'wrote' lines for 1000 writes"
    out=$(qemu-img compare c1.qcow2 c2.qcow2 2>&1) || fail "qemu-img compare with qemu-io's copy: $out"
fi
case_end

case_begin "a script's failing line: named by number, the run stops there, exit 1 (usage) or 2 (I/O)"
# printf: line 6 is the bad one; comments and blank lines count as lines
bad_script() { # BAD-COMMAND
    printf '%s\n' '# header' 'write -P 0x41 0 4k' '' '    # indented' 'write -P 0x42 4k 4k' "$1" \
        'write -P 0x43 8k 4k'
}
for c in 'write 0 12q' 'frobnicate 0 512' 'write -x 0 512' "write 0 $((8 << 20))" 'read' \
    'write -P 0x100 0 512'; do
    qimg create -q -f qcow2 l.qcow2 4M
    bad_script "$c" >bad.txt
    if expect_exit 1 "$SCUSE" io l.qcow2 <bad.txt; then
        stderr_one_line || true
        stderr_mentions '(^|[^0-9])line 6([^0-9]|$)' "line 6 (command: '$c')" || true
    else
        fail "(command: '$c')"
    fi
    qread l.qcow2 "read -P 0x41 0 4k" "read -P 0x42 4k 4k" "read -P 0 8k 4k"
done
# An I/O error (bad.qcow2 from above: an unaligned L2 entry) on line 2.
printf '%s\n' 'read -P 0 512k 512' 'read 0 512' 'read 512k 512' >ioerr.txt
if expect_exit 2 "$SCUSE" io -r bad.qcow2 <ioerr.txt; then
    stderr_one_line || true
    stderr_mentions '(^|[^0-9])line 2([^0-9]|$)' "line 2" || true
    [ "$(grep -c '^read ' "$W/.out")" -eq 1 ] || fail "the run went on after the failing line: $(grep '^read ' "$W/.out" | tr '\n' '|')"
fi
# A verification mismatch goes on (as with -c and qemu-io) and exits 1.
qimg create -q -f qcow2 v.qcow2 1M
printf '%s\n' 'write -P 0x51 0 4k' '' 'read -P 0x52 0 4k' 'write -P 0x53 4k 4k' >verify.txt
if expect_exit 1 "$SCUSE" io v.qcow2 <verify.txt; then
    stderr_mentions '(^|[^0-9])line 3([^0-9]|$)' "line 3" || true
    grep -q 'Pattern verification failed at offset 0' "$W/.out" || fail "no qemu-io style mismatch line"
fi
qread v.qcow2 "read -P 0x51 0 4k" "read -P 0x53 4k 4k"
case_end

case_begin "standard input: quit ends it, CRLF and tabs are fine, -c means stdin is not read"
qimg create -q -f qcow2 q.qcow2 1M
printf 'write\t-P 0x61 0 512\r\n\twrite -P 0x62 512 512\nquit\nwrite -P 0x63 1024 512\n' >q.txt
expect_exit 0 "$SCUSE" io q.qcow2 <q.txt || true
qread q.qcow2 "read -P 0x61 0 512" "read -P 0x62 512 512" "read -P 0 1024 512"
printf 'write -P 0x64 0 512\n' >notread.txt
expect_exit 0 "$SCUSE" io -c 'read -P 0x61 0 512' q.qcow2 <notread.txt || true
qread q.qcow2 "read -P 0x61 0 512"
expect_exit 0 "$SCUSE" io q.qcow2 </dev/null || true   # no commands at all
qcheck q.qcow2 0
case_end

case_begin "at a terminal: a prompt, a failing command reported and the next one read, EOF ends"
qimg create -q -f qcow2 t.qcow2 1M
run python3 - "$SCUSE" t.qcow2 <<'EOF'
import os, pty, signal, sys
signal.alarm(30)                   # no prompt must not mean a hang
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "io", sys.argv[2]])
out = b""
def until(want):
    global out
    while want not in out:
        b = os.read(fd, 4096)
        if not b:
            raise SystemExit("EOF before %r; got %r" % (want, out))
        out += b
for cmd in (b"write -P 0x71 0 512", b"write 0 12q", b"write -P 0x72 512 512"):
    until(b"scuse io> ")
    out = b""
    os.write(fd, cmd + b"\n")
until(b"scuse io> ")
os.write(fd, b"\x04")              # ^D at the start of a line: end of input
try:
    while os.read(fd, 4096):
        pass
except OSError:                    # EIO once the child has gone
    pass
_, st = os.waitpid(pid, 0)
print("exit", os.waitstatus_to_exitcode(st))
EOF
if [ "$RC" -ne 0 ]; then
    fail "the pty driver failed: $(tail -n 2 "$W/.err" | tr '\n' '|')"
else
    # the usage error is reported, the session goes on; its status stays
    grep -qx 'exit 1' "$W/.out" || fail "want exit 1 after a failing command at the terminal: $(tail -n 1 "$W/.out")"
fi
qread t.qcow2 "read -P 0x71 0 512" "read -P 0x72 512 512"
case_end

finish
