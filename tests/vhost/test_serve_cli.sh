#!/usr/bin/env bash
# `scuse serve` at start and stop: a bad option, image or socket is refused
# with exactly one line on stderr naming it, and exit status 1; the socket
# appears listening and the pidfile names the process; a live socket is
# refused, a stale one replaced; SIGTERM and SIGINT end it with status 0,
# the image flushed (qemu-img check), the socket and pidfile gone. A bad
# command policy (allow=, deny=, policy-file=) is refused naming the
# option and the token; good ones (names, hex, a file) start and -v logs
# each LUN's policy. What a guest sees of one: tests/vm/test_policy.sh.
set -u
: "${SCUSE:?SCUSE must name the scuse binary}"
T=${SCUSE_TEST_TMP:-${TMPDIR:-/tmp}/scuse-test-serve-cli}
. "$(dirname "$0")/../lib/need.sh"
need qemu-img python3
rm -rf "$T"
mkdir -p "$T"
cd "$T" || exit 1
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

qemu-img create -q -f qcow2 a.qcow2 4M
qemu-img create -q -f raw b.raw 1M
S=$T/s.sock

# refuse WANT ARGS...: exit 1, one line on stderr containing WANT.
refuse() {
    local want=$1 rc lines had=0
    shift
    [ ! -e "$S" ] || had=1
    timeout 10 "$SCUSE" serve "$@" >out.txt 2>err.txt
    rc=$?
    lines=$(wc -l <err.txt)
    if [ "$rc" != 1 ] || [ "$lines" != 1 ] || ! grep -qF -- "$want" err.txt; then
        fail "serve $*: exit $rc, $lines line(s), '$want' expected: $(head -c 300 err.txt)"
    fi
    [ "$had" = 1 ] || [ ! -e "$S" ] || fail "serve $*: left $S behind"
}

# Servers in the background: killed if the script ends early.
pid=
trap '[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null' EXIT

refuse "--vhost-user-scsi SOCKET is required"
refuse "at least one --lun" --vhost-user-scsi "$S"
refuse "unknown option '--frob'" --vhost-user-scsi "$S" --lun 0=a.qcow2 --frob
refuse "option '--lun' needs a value" --vhost-user-scsi "$S" --lun
refuse "unexpected argument 'extra'" --vhost-user-scsi "$S" --lun 0=a.qcow2 extra
refuse "N=IMAGE" --vhost-user-scsi "$S" --lun x=a.qcow2
refuse "N=IMAGE" --vhost-user-scsi "$S" --lun 16384=a.qcow2
refuse "N=IMAGE" --vhost-user-scsi "$S" --lun a.qcow2
refuse "no image file" --vhost-user-scsi "$S" --lun 0=
refuse "unknown option 'foo'" --vhost-user-scsi "$S" --lun 0=a.qcow2,foo=1
refuse "an empty option" --vhost-user-scsi "$S" --lun 0=a.qcow2,,,
refuse "block-size '1024'" --vhost-user-scsi "$S" --lun 0=a.qcow2,block-size=1024
refuse "wwn '123'" --vhost-user-scsi "$S" --lun 0=a.qcow2,wwn=123
refuse "wwn '0x7000000000000001'" --vhost-user-scsi "$S" --lun 0=a.qcow2,wwn=0x7000000000000001
refuse "vendor is longer than 8" --vhost-user-scsi "$S" --lun 0=a.qcow2,vendor=LONGVENDOR
refuse "product is longer than 16" --vhost-user-scsi "$S" --lun 0=a.qcow2,product=a-very-long-product
refuse "cache 'none'" --vhost-user-scsi "$S" --lun 0=a.qcow2,cache=none
refuse "discard 'maybe'" --vhost-user-scsi "$S" --lun 0=a.qcow2,discard=maybe
refuse "cannot open QED images yet" --vhost-user-scsi "$S" --lun 0=a.qcow2,format=qed
refuse "not a VMDK image" --vhost-user-scsi "$S" --lun 0=a.qcow2,format=vmdk
refuse "unknown format 'nosuch'" --vhost-user-scsi "$S" --lun 0=a.qcow2,format=nosuch
refuse "readonly takes no value" --vhost-user-scsi "$S" --lun 0=a.qcow2,readonly=maybe
refuse "option 'serial' needs a value" --vhost-user-scsi "$S" --lun 0=a.qcow2,serial
refuse "LUN 0 is given twice" --vhost-user-scsi "$S" --lun 0=a.qcow2 --lun 0=b.raw
# The command policy: one line naming the option and the bad token.
refuse "deny: unknown command 'WRITE_SAME_32'" --vhost-user-scsi "$S" --lun 0=a.qcow2,deny=UNMAP:WRITE_SAME_32
refuse "allow: unknown command 'READ'" --vhost-user-scsi "$S" --lun 0=a.qcow2,allow=READ
refuse "deny: '0x99' is not a command scuse serves" --vhost-user-scsi "$S" --lun 0=a.qcow2,deny=0x99
refuse "deny: opcode '100' is out of range" --vhost-user-scsi "$S" --lun 0=a.qcow2,deny=100
refuse "deny: '28/1': opcode 28 has no service actions" --vhost-user-scsi "$S" --lun 0=a.qcow2,deny=28/1
refuse "deny: an empty entry after '42'" --vhost-user-scsi "$S" --lun 0=a.qcow2,deny=42::93
refuse "deny: an empty entry after '42'" --vhost-user-scsi "$S" --lun 0=a.qcow2,deny=42,,,,93
refuse "deny: deny= lists no commands" --vhost-user-scsi "$S" --lun 0=a.qcow2,deny=
refuse "option 'allow' needs a value" --vhost-user-scsi "$S" --lun 0=a.qcow2,allow
refuse "allow= after deny=: a LUN has one command policy" --vhost-user-scsi "$S" --lun 0=a.qcow2,deny=42,allow=28
refuse "policy-file: '$T/nope.policy': No such file" --vhost-user-scsi "$S" --lun 0=a.qcow2,policy-file="$T/nope.policy"
printf '# refuse discards\ndeny\nUNMAP\nWRITE SAME(61)\n' >bad.policy
refuse "policy-file: 'bad.policy' line 4: unknown command 'WRITE SAME(61)'" --vhost-user-scsi "$S" --lun 0=a.qcow2,policy-file=bad.policy
printf 'refuse\nUNMAP\n' >bad.policy
refuse "policy-file: 'bad.policy' line 1: 'refuse': a policy starts with allow= or deny=" --vhost-user-scsi "$S" --lun 0=a.qcow2,policy-file=bad.policy
refuse "missing.img" --vhost-user-scsi "$S" --lun 0=missing.img
refuse "a.qcow2" --vhost-user-scsi "$S" --lun 0=a.qcow2 --lun 1=a.qcow2
refuse "bad --workers '0'" --vhost-user-scsi "$S" --lun 0=a.qcow2 --workers 0
refuse "/no/such/dir/s.sock" --vhost-user-scsi /no/such/dir/s.sock --lun 0=a.qcow2
refuse "a unix socket path has at most" --vhost-user-scsi "$T/$(printf 'x%.0s' {1..120})" --lun 0=a.qcow2
touch "$S"
refuse "exists and is not a socket" --vhost-user-scsi "$S" --lun 0=a.qcow2
rm -f "$S"
refuse "--pidfile '/no/such/dir/p'" --vhost-user-scsi "$S" --lun 0=a.qcow2 --pidfile /no/such/dir/p
# A comma in a file name, written twice.
cp b.raw "c,d.raw"
"$SCUSE" serve --vhost-user-scsi "$S" --lun "0=c,,d.raw,format=raw,serial=a,,b" --pidfile p -v 2>log.txt &
pid=$!
for _ in $(seq 200); do [ -s p ] && break; sleep 0.05; done
[ -S "$S" ] || fail "no socket after the pidfile appeared"
[ "$(cat p 2>/dev/null)" = "$pid" ] || fail "pidfile holds '$(cat p 2>/dev/null)', pid $pid"
grep -q "c,d.raw" log.txt || fail "-v did not log the LUN: $(cat log.txt)"
# A second server on the same live socket is refused.
refuse "another process is listening" --vhost-user-scsi "$S" --lun 0=b.raw
[ -S "$S" ] || fail "the refused server removed the live socket"
kill -INT "$pid"
wait "$pid"
rc=$?
pid=
[ "$rc" = 0 ] || fail "SIGINT: exit $rc"
[ ! -e "$S" ] && [ ! -e p ] || fail "SIGINT left the socket or the pidfile"

# Policies that are right start, and -v logs what each LUN refuses or serves.
printf '# what the backup appliance may send\nallow\nTEST UNIT READY\nINQUIRY  # identify\nREAD_CAPACITY_16\n28, 88\n' >good.policy
"$SCUSE" serve --vhost-user-scsi "$S" --lun 0=a.qcow2,deny=unmap:write-same-16:0x41,serial=x \
    --lun 1=b.raw,policy-file=good.policy --lun 2=c,,d.raw,allow=0:12:9e/10:a0:28,,2a --pidfile p -v 2>log.txt &
pid=$!
for _ in $(seq 200); do [ -s p ] && break; sleep 0.05; done
[ -S "$S" ] || fail "no socket with command policies: $(cat log.txt)"
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
[ "$rc" = 0 ] || fail "policies: SIGTERM: exit $rc: $(cat log.txt)"
grep -q "LUN 0: .*, commands deny=42:93:41)" log.txt || fail "LUN 0's policy not logged: $(cat log.txt)"
grep -q "LUN 1: .*, commands allow=00:12:9e/10:28:88)" log.txt || fail "LUN 1's policy: $(cat log.txt)"
grep -q "LUN 2: .*, commands allow=00:12:9e/10:a0:28:2a)" log.txt || fail "LUN 2's policy: $(cat log.txt)"

# A stale socket (its process gone) is replaced; SIGTERM flushes a
# qcow2 that was opened for writing.
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$S"
[ -S "$S" ] || fail "could not make a stale socket"
"$SCUSE" serve --vhost-user-scsi "$S" --lun 0=a.qcow2 --pidfile p 2>log.txt &
pid=$!
for _ in $(seq 200); do [ -s p ] && break; sleep 0.05; done
[ -s p ] || fail "no pidfile over a stale socket: $(cat log.txt)"
qemu-img info a.qcow2 >/dev/null 2>&1 && fail "qemu-img opened a.qcow2 while scuse serves it writable"
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
[ "$rc" = 0 ] || fail "SIGTERM: exit $rc: $(cat log.txt)"
[ ! -s log.txt ] || fail "a quiet run logged: $(cat log.txt)"
[ ! -e "$S" ] && [ ! -e p ] || fail "SIGTERM left the socket or the pidfile"
qemu-img check -q a.qcow2 || fail "qemu-img check a.qcow2 after SIGTERM"

if [ "$fails" -ne 0 ]; then
    echo "test_serve_cli: $fails failure(s); files in $T" >&2
    exit 1
fi
rm -rf "$T"
echo "test_serve_cli: all passed"
