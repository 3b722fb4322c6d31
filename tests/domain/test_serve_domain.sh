#!/usr/bin/env bash
# scuse serve --domain as a daemon: one process per controller under a
# supervisor that reports readiness (--pidfile, and systemd's READY=1 to
# $NOTIFY_SOCKET, received here by a datagram socket of the test's) only
# once every socket listens, with the mode and group asked for; SIGHUP
# reaches every controller's server, SIGTERM stops them all (exit 0,
# STOPPING=1, sockets and pidfile gone, images clean); a controller that
# cannot start stops the others (exit 1, one line naming the disk). A
# guest over these sockets: tests/vm/test_domain.sh.
set -euo pipefail
: "${SCUSE:?}" "${SCUSE_SRC:?}"
. "$(dirname "$0")/../lib/need.sh"
need qemu-img python3
T=${SCUSE_TEST_TMP:-/tmp/scuse-serve-domain}
rm -rf "$T"
mkdir -p "$T"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

qemu-img create -q -f qcow2 "$T/a.qcow2" 16M
qemu-img create -q -f raw "$T/b.raw" 8M
domain() { # B-IMAGE
    cat <<XML
<domain type='kvm'>
  <name>sd</name>
  <memory unit='MiB'>256</memory>
  <devices>
    <controller type='scsi' index='0' model='virtio-scsi'/>
    <controller type='scsi' index='2' model='virtio-scsi'/>
    <disk type='file'><driver name='qemu' type='qcow2'/><source file='$T/a.qcow2'/><target dev='sda' bus='scsi'/></disk>
    <disk type='file'><driver name='qemu' type='raw'/><source file='$1'/><target dev='sdb' bus='scsi'/>
      <address type='drive' controller='2' bus='0' target='0' unit='4'/></disk>
  </devices>
</domain>
XML
}
domain "$T/b.raw" >"$T/sd.xml"
domain "$T/missing.raw" >"$T/bad.xml"

# systemd's side of the readiness protocol: a datagram socket recording
# each message as a JSON string (tests/lib/dgram_sink.py)
python3 "$SCUSE_SRC/tests/lib/dgram_sink.py" "$T/notify.sock" "$T/notify.log" &
pids+=($!)
for ((i = 0; i < 100; i++)); do [ -e "$T/notify.sock.ready" ] && break; sleep 0.05; done

NOTIFY_SOCKET=$T/notify.sock "$SCUSE" serve --domain "$T/sd.xml" --socket-dir "$T/sock" \
    --pidfile "$T/sd.pid" --socket-mode 0660 --socket-group nogroup -v >"$T/serve.log" 2>&1 &
sp=$!
pids+=($sp)
for ((i = 0; i < 200; i++)); do grep -q READY=1 "$T/notify.log" 2>/dev/null && break; sleep 0.05; done
# at READY=1 everything must already be there
s0=$T/sock/sd-scsi0.sock s2=$T/sock/sd-scsi2.sock
if grep -qxF "\"READY=1\\nMAINPID=$sp\"" "$T/notify.log" && [ -S "$s0" ] && [ -S "$s2" ] &&
    [ "$(cat "$T/sd.pid")" = "$sp" ]; then
    ok "READY=1 (MAINPID $sp) once both sockets listen and the pidfile is written"
else
    bad "readiness: notify '$(cat "$T/notify.log" 2>&1)', $(ls "$T/sock" 2>&1), pidfile '$(cat "$T/sd.pid" 2>&1)'"
fi
[ "$(stat -c '%a %G' "$s0" "$s2" | sort -u)" = "660 nogroup" ] &&
    ok "socket mode 0660, group nogroup" || bad "sockets: $(stat -c '%n %a %G' "$s0" "$s2")"
kids=$(pgrep -P "$sp" | wc -l)
[ "$kids" = 2 ] && ok "two controllers, two server processes" || bad "$kids server processes"
grep -q "LUN 4: '$T/b.raw'" "$T/serve.log" && grep -q "LUN 0: '$T/a.qcow2'" "$T/serve.log" &&
    ok "LUN = unit on each controller" || bad "LUNs: $(grep LUN "$T/serve.log")"

kill -HUP "$sp"
for ((i = 0; i < 100; i++)); do [ "$(grep -c 'SIGHUP: re-reading' "$T/serve.log")" = 2 ] && break; sleep 0.05; done
[ "$(grep -c 'SIGHUP: re-reading' "$T/serve.log")" = 2 ] && kill -0 "$sp" &&
    ok "SIGHUP reaches both servers, which go on" || bad "SIGHUP: $(grep SIGHUP "$T/serve.log")"

kill -TERM "$sp"
rc=0
wait "$sp" || rc=$?
sleep 0.2
[ "$rc" = 0 ] && [ ! -e "$s0" ] && [ ! -e "$s2" ] && [ ! -e "$T/sd.pid" ] &&
    [ "$(grep -c 'SIGTERM: stopping' "$T/serve.log")" = 2 ] && grep -qxF "\"STOPPING=1\"" "$T/notify.log" &&
    ok "SIGTERM: both stopped, exit 0, STOPPING=1, sockets and pidfile gone" ||
    bad "SIGTERM: exit $rc, $(ls "$T/sock" "$T/sd.pid" 2>&1 | tr '\n' ' '), notify $(tr '\n' '|' <"$T/notify.log")"
out=$(qemu-img check "$T/a.qcow2" 2>&1) && ok "qemu-img check: clean" || bad "qemu-img check: $out"

# the mode and group recorded in the domain (scuse domain --socket-mode/
# --socket-group), with no flag on the command line: what the hook runs
"$SCUSE" domain "$T/sd.xml" --transport vhost-user-scsi --socket-dir "$T/sock3" \
    --socket-mode 0640 --socket-group nogroup -o "$T/sd3.xml"
"$SCUSE" serve --domain "$T/sd3.xml" --pidfile "$T/sd3.pid" >"$T/serve3.log" 2>&1 &
sp=$!
pids+=($sp)
for ((i = 0; i < 200; i++)); do [ -s "$T/sd3.pid" ] && break; sleep 0.05; done
[ "$(stat -c '%a %G' "$T/sock3/sd-scsi0.sock" "$T/sock3/sd-scsi2.sock" 2>&1 | sort -u)" = "640 nogroup" ] &&
    ok "the domain's socket-mode 0640 and socket-group nogroup" ||
    bad "from the domain: $(stat -c '%n %a %G' "$T"/sock3/* 2>&1)"
kill -TERM "$sp"
wait "$sp" || bad "serve --domain sd3.xml exited $?"

# one controller cannot start: the other is stopped, exit 1
rc=0
NOTIFY_SOCKET=$T/notify.sock timeout 30 "$SCUSE" serve --domain "$T/bad.xml" --socket-dir "$T/sock2" \
    --pidfile "$T/bad.pid" >"$T/bad.out" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "bad.xml:8: <disk> sdb: '$T/missing.raw': cannot open" "$T/bad.out" &&
    [ ! -e "$T/bad.pid" ] && [ -z "$(ls "$T/sock2")" ] && [ "$(grep -c READY "$T/notify.log")" = 1 ] &&
    ok "a missing image on controller 2: exit 1, the line names the disk, nothing left, no READY" ||
    bad "bad domain: exit $rc, $(cat "$T/bad.out"), $(ls "$T/sock2")"

# usage errors and a vhost-scsi domain
rc=0; err=$("$SCUSE" serve --domain "$T/sd.xml" --socket-mode 999 2>&1) || rc=$?
[ "$rc" = 1 ] && [[ "$err" == *"--socket-mode '999'"* ]] && ok "bad --socket-mode: $err" || bad "$rc $err"
rc=0; err=$("$SCUSE" serve --domain "$T/sd.xml" --socket-group no-such-group-here 2>&1) || rc=$?
[ "$rc" = 1 ] && [[ "$err" == *"no such group"* ]] && ok "bad --socket-group: $err" || bad "$rc $err"
"$SCUSE" domain "$T/sd.xml" --transport vhost-scsi -o "$T/vs.xml"
rc=0; err=$("$SCUSE" serve --domain "$T/vs.xml" 2>&1) || rc=$?
[ "$rc" = 1 ] && [[ "$err" == *"converted for vhost-scsi"* ]] && ok "a vhost-scsi domain: $err" || bad "$rc $err"

echo "----"
[ "$fails" -eq 0 ] && echo "test_serve_domain: all passed" || { echo "test_serve_domain: $fails failed"; exit 1; }
