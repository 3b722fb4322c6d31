#!/usr/bin/env bash
# Daemon conventions (issue 13, libvirt.md section 10): --log=stderr|syslog|
# journal for scuse serve, serve --domain, tcmu serve and the libvirt hook
# (a private socket stands in for /dev/log and for journald's, named by
# SCUSE_SYSLOG_SOCKET / SCUSE_JOURNAL_SOCKET; tests/lib/dgram_sink.py
# records and, for the journal, parses each datagram); exit 0 on SIGTERM
# and 1 on a bad configuration; and the system-daemon case: sockets made
# with --socket-mode/--socket-group are reached by another user exactly
# when mode and group let it (as root: user nobody with and without the
# group, through setpriv; otherwise the bits and a refused connect).
set -euo pipefail
: "${SCUSE:?}" "${SCUSE_SRC:?}"
. "$(dirname "$0")/../lib/need.sh"
need qemu-img python3 setpriv
T=${SCUSE_TEST_TMP:-/tmp/scuse-daemon}
rm -rf "$T"
mkdir -p "$T"
chmod 755 "$T"
fails=0
skips=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
sink() { # SOCKET OUT syslog|journal
    python3 "$SCUSE_SRC/tests/lib/dgram_sink.py" "$1" "$2" "$3" &
    pids+=($!)
    for ((i = 0; i < 100; i++)); do [ -e "$1.ready" ] && return 0; sleep 0.05; done
    bad "the $3 sink did not start"
}
wait_file() { for ((i = 0; i < 200; i++)); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1; }

qemu-img create -q -f qcow2 "$T/a.qcow2" 16M
qemu-img create -q -f raw "$T/b.raw" 8M
cat >"$T/dm.xml" <<XML
<domain type='kvm'>
  <name>dm</name>
  <uuid>2c6f4e0a-1b3d-4f5e-8a9b-0c1d2e3f4a5b</uuid>
  <memory unit='MiB'>256</memory>
  <devices>
    <controller type='scsi' index='0' model='virtio-scsi'/>
    <controller type='scsi' index='1' model='virtio-scsi'/>
    <disk type='file'><driver name='qemu' type='qcow2'/><source file='$T/a.qcow2'/><target dev='sda' bus='scsi'/></disk>
    <disk type='file'><driver name='qemu' type='raw'/><source file='$T/b.raw'/><target dev='sdb' bus='scsi'/>
      <address type='drive' controller='1' bus='0' target='0' unit='3'/></disk>
  </devices>
</domain>
XML

# --- syslog: scuse serve --------------------------------------------------
sink "$T/log.sock" "$T/syslog.json" syslog
SCUSE_SYSLOG_SOCKET=$T/log.sock "$SCUSE" serve --vhost-user-scsi "$T/s.sock" --lun 0="$T/b.raw" \
    --log=syslog -v --pidfile "$T/s.pid" 2>"$T/s.err" &
sp=$!
pids+=($sp)
wait_file "$T/s.pid" || bad "serve --log=syslog did not start: $(cat "$T/s.err")"
kill -TERM "$sp"
rc=0
wait "$sp" || rc=$?
sleep 0.2
# <30>: facility daemon (3), severity info (6); the time stamp RFC 3164's
re="^\"<30>[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} scuse\\[$sp\\]: info: "
[ "$rc" = 0 ] && grep -Eq "${re}serving 1 LUN on $T/s.sock" "$T/syslog.json" &&
    grep -Eq "${re}SIGTERM: stopping\"$" "$T/syslog.json" && [ ! -s "$T/s.err" ] &&
    ok "serve --log=syslog: info lines as <30>... scuse[$sp], nothing on stderr; SIGTERM: exit 0" ||
    bad "serve --log=syslog: exit $rc, syslog $(cat "$T/syslog.json"), stderr '$(cat "$T/s.err")'"

# --- journal: serve --domain (the children log too) -----------------------
sink "$T/journal.sock" "$T/journal.json" journal
SCUSE_JOURNAL_SOCKET=$T/journal.sock "$SCUSE" serve --domain "$T/dm.xml" --socket-dir "$T/sock" \
    --log=journal -v --pidfile "$T/d.pid" 2>"$T/d.err" &
sp=$!
pids+=($sp)
wait_file "$T/d.pid" || bad "serve --domain --log=journal did not start: $(cat "$T/d.err")"
kids=$(pgrep -P "$sp" | sort -n | tr '\n' ' ')
kill -TERM "$sp"
rc=0
wait "$sp" || rc=$?
sleep 0.2
jq() { # FIELD=VALUE filters -> the matching records' MESSAGE, one a line
    python3 - "$T/journal.json" "$@" <<'PY'
import json, sys
want = dict(a.split("=", 1) for a in sys.argv[2:])
for line in open(sys.argv[1]):
    r = json.loads(line)
    if all(r.get(k) == v for k, v in want.items()):
        print(r.get("MESSAGE", ""))
PY
}
bad_records=$(grep -c MALFORMED "$T/journal.json" || true)
n_pids=0
for k in $kids; do
    grep -qx "SIGTERM: stopping" <<<"$(jq SYSLOG_PID="$k" SYSLOG_IDENTIFIER=scuse PRIORITY=6 SYSLOG_FACILITY=3)" &&
        n_pids=$((n_pids + 1))
done
info=$(jq PRIORITY=6)
[ "$rc" = 0 ] && [ "$bad_records" = 0 ] && [ "$n_pids" = 2 ] &&
    grep -q "^LUN 3: '$T/b.raw'" <<<"$info" && grep -qx "$T/dm.xml: 2 controllers served" <<<"$info" &&
    [ ! -s "$T/d.err" ] &&
    ok "serve --domain --log=journal: native records (PRIORITY 6, SYSLOG_IDENTIFIER, SYSLOG_PID) from the supervisor and both servers ($kids); SIGTERM: exit 0" ||
    bad "serve --domain --log=journal: exit $rc, $bad_records malformed, $n_pids/2 servers' stops, records: $(cut -c1-300 "$T/journal.json"), stderr '$(cat "$T/d.err")'"
if [ -S /run/systemd/journal/socket ] && command -v journalctl >/dev/null; then
    echo "     (a journald runs here; the test's socket stands in for it all the same)"
fi

# --- bad configuration: exit 1, one line on stderr --------------------------
bad_config() { # WHAT PATTERN CMD...
    local what=$1 pat=$2 rc=0 err
    shift 2
    err=$(timeout 20 "$@" 2>&1 >/dev/null) || rc=$?
    [ "$rc" = 1 ] && [ "$(wc -l <<<"$err")" = 1 ] && [[ "$err" == *$pat* ]] &&
        ok "$what: exit 1: $err" || bad "$what: exit $rc: $err"
}
bad_config "serve --log=bogus" "--log 'bogus'" "$SCUSE" serve --vhost-user-scsi "$T/x.sock" --lun 0="$T/b.raw" --log=bogus
bad_config "serve --log=syslog, no socket" "$T/nothing.sock: No such file" \
    env SCUSE_SYSLOG_SOCKET="$T/nothing.sock" "$SCUSE" serve --vhost-user-scsi "$T/x.sock" --lun 0="$T/b.raw" --log=syslog
bad_config "serve --log=journal, no socket" "$T/nothing.sock: No such file" \
    env SCUSE_JOURNAL_SOCKET="$T/nothing.sock" "$SCUSE" serve --domain "$T/dm.xml" --log=journal
bad_config "serve, a missing image" "$T/missing.raw" "$SCUSE" serve --vhost-user-scsi "$T/x.sock" --lun 0="$T/missing.raw"
printf '<domain><name>x</name><devices>\n<disk type="file"' >"$T/broken.xml"
bad_config "serve --domain, malformed XML" "broken.xml:" "$SCUSE" serve --domain "$T/broken.xml"
bad_config "tcmu serve --workers 0" "--workers" "$SCUSE" tcmu serve --workers 0
bad_config "tcmu serve --log=syslog, no socket" "$T/nothing.sock" \
    env SCUSE_SYSLOG_SOCKET="$T/nothing.sock" "$SCUSE" tcmu serve --log=syslog
bad_config "libvirt-hook --log=bogus" "--log 'bogus'" "$SCUSE" libvirt-hook --log=bogus vm prepare begin -

# --- the hook logs to syslog as well as to libvirt (stderr) ------------------
"$SCUSE" domain "$T/dm.xml" --transport vhost-scsi --socket-dir "$T/state" -o "$T/dm-vs.xml"
sed "s|$T/b.raw|$T/gone.raw|" "$T/dm-vs.xml" >"$T/dm-gone.xml"
mkdir -p "$T/cfs/target/core"
rc=0
err=$(env -i LC_ALL=C PATH=/usr/bin:/bin HOME="$T" SCUSE_SYSLOG_SOCKET="$T/log.sock" "$SCUSE" libvirt-hook \
      --configfs "$T/cfs" --log=syslog dm prepare begin - <"$T/dm-gone.xml" 2>&1) || rc=$?
sleep 0.2
# <27>: daemon, error
[ "$rc" = 1 ] && [[ "$err" == *"gone.raw"* ]] &&
    grep -Eq "^\"<27>.* scuse-hook\\[[0-9]+\\]: error: libvirt-hook: dm: scuse tcmu up: .*gone.raw" "$T/syslog.json" &&
    ok "the hook's failure: stderr (for libvirt) and syslog (<27> scuse-hook): $err" ||
    bad "hook --log=syslog: exit $rc '$err', syslog: $(grep hook "$T/syslog.json" || true)"

# --- the system daemon's sockets: another user, with and without the group ---
G=4242                                  # a group number nobody has
"$SCUSE" serve --domain "$T/dm.xml" --socket-dir "$T/psock" --socket-mode 0660 --socket-group $G \
    --pidfile "$T/p.pid" 2>"$T/p.err" &
sp=$!
pids+=($sp)
wait_file "$T/p.pid" || bad "serve --domain with socket mode/group did not start: $(cat "$T/p.err")"
chmod 755 "$T/psock"
s0=$T/psock/dm-scsi0.sock
PY=$(command -v /usr/bin/python3 || command -v python3)   # one another user can run
connect() { # SETPRIV-ARGS... -> the connect's outcome
    setpriv "$@" "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1]); print("connected")
except OSError as e:
    print(e.strerror)' "$s0" 2>&1 || true
}
[ "$(stat -c '%a %g' "$s0" "$T/psock/dm-scsi1.sock" | sort -u)" = "660 $G" ] &&
    ok "sockets mode 0660, group $G" || bad "sockets: $(stat -c '%n %a %g' "$T"/psock/*.sock)"
if [ "$(id -u)" = 0 ]; then
    with=$(connect --reuid=nobody --regid=nogroup --groups=$G)
    without=$(connect --reuid=nobody --regid=nogroup --clear-groups)
    [ "$with" = connected ] && [ "$without" = "Permission denied" ] &&
        ok "user nobody connects with group $G, is refused without it ($without)" ||
        bad "nobody with group $G: '$with', without: '$without'"
else
    echo "SKIP the connect as user nobody, with and without group $G: needs root"
    skips=$((skips + 1))
fi
kill -TERM "$sp"
rc=0
wait "$sp" || rc=$?
[ "$rc" = 0 ] && ok "serve --domain: SIGTERM after the connects: exit 0" || bad "exit $rc: $(cat "$T/p.err")"

echo "----"
[ "$fails" -eq 0 ] || { echo "test_daemon: $fails failed"; exit 1; }
[ "$skips" -eq 0 ] && echo "test_daemon: all passed" || echo "test_daemon: passed, $skips check(s) skipped"
