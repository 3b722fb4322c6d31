# Guest test "iscsi" (profile iscsi; host side tests/vm/test_iscsi.sh):
# libiscsi's conformance suite against scuse through the real kernel.
# LIO's iSCSI target listens on 127.0.0.1:3260 with two targets, one a
# TCMU backstore served by scuse (`scuse tcmu create --fabric iscsi`), one
# LIO's own fileio backstore (the reference); both images are in guest
# RAM (tmpfs). Each suite of iscsi-test-cu runs as its own process, with a
# timeout, in -d -S mode (destructive and SANITIZE tests allowed), once per
# target. CUnit counts a skipped test as passed: a test is a skip here when
# it printed "[SKIPPED]".
#   @@ R BACKEND SUITE TEST pass|skip|fail     one per test
#   @@ RUN BACKEND SUITE rc=N SECONDS          one per iscsi-test-cu process
#   @@ WHY BACKEND SUITE TEST TEXT             a failed or skipped test's own lines
# scuse_iscsi_suites="A B" runs only those suites (for debugging);
# scuse_iscsi_size is the LUNs' size (default 64M).
# scuse_iscsi_racy="SUITE.TEST ..." names the tests rerun when they fail
# (the host passes those iscsi-expected.txt marks "racy").
. /lib/scuse/lib.sh
C=/sys/kernel/config
LIO=$C/target
PORTAL=127.0.0.1:3260
IQN_SCUSE=iqn.2026-12.org.scuse:conformance
IQN_LIO=iqn.2026-12.org.scuse:lio-fileio
SIZE=${scuse_iscsi_size:-64M}
mount -t configfs configfs $C || die "mount configfs"
# LIO's persistent reservation emulation keeps its state in DBROOT/pr:
# /etc/target when it existed as the module loaded, /var/target otherwise
# (a PERSISTENT RESERVE OUT fails NOT READY without it); the guest makes
# /etc/target and says so to LIO before the first device exists.
mkdir -p /etc/target/pr /var/target/pr
echo /etc/target >$C/target/dbroot 2>/dev/null || true
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up || die "loopback up"

scuse create -q -f qcow2 /tmp/scuse.qcow2 "$SIZE" || die "scuse create"
scuse serve --tcmu -v >/tmp/scuse.log 2>&1 &
SP=$!
i=0
while ! grep -q 'tcmu: serving [0-9]* devices' /tmp/scuse.log; do
    kill -0 $SP 2>/dev/null || die "scuse serve exited: $(tail -n 3 /tmp/scuse.log)"
    [ $i -lt 400 ] || die "scuse serve not ready after 20 s"
    usleep 50000
    i=$((i + 1))
done
# libiscsi's two initiator names (-i, -I defaults), each with an ACL:
# LIO's persistent reservations want a node ACL, not demo mode.
INI1=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test
INI2=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2
section create scuse tcmu create scuse0 /tmp/scuse.qcow2 --fabric iscsi \
    --iqn $IQN_SCUSE --portal $PORTAL --initiator $INI1 --initiator $INI2 ||
    die "scuse tcmu create --fabric iscsi"
mark SCUSE ready "$(up)"
# The new commands and the fixes through Linux tools (tcm_loop LUNs).
. /tests/iscsi_sg.sh

# The reference: LIO fileio on a tmpfs file, exported by hand the way
# targetcli does (the same two ACLs, no authentication).
truncate -s "$SIZE" /tmp/lio.img
B=$LIO/core/fileio_0/lio0
mkdir -p $B || die "no fileio backstore"
echo "fd_dev_name=/tmp/lio.img,fd_dev_size=$(stat -c %s /tmp/lio.img)" >$B/control
echo 1 >$B/enable || die "enable fileio"
echo 1 >$B/attrib/emulate_tpu
echo 1 >$B/attrib/emulate_tpws
T=$LIO/iscsi/$IQN_LIO/tpgt_1
mkdir -p $T/lun/lun_0 "$T/np/$PORTAL" || die "LIO iSCSI target"
ln -s $B $T/lun/lun_0/lio0 || die "LIO iSCSI LUN"
echo 0 >$T/attrib/authentication || die "$T/attrib/authentication"
for i in $INI1 $INI2; do
    mkdir -p "$T/acls/$i/lun_0" && ln -s $T/lun/lun_0 "$T/acls/$i/lun_0/lio0" || die "LIO ACL $i"
done
echo 1 >$T/enable || die "enable the LIO iSCSI target"
mark LIO ready "$(up)"

# run BACKEND IQN SUITE: one iscsi-test-cu process (its output in
# /tmp/out.BACKEND, a RUN line in /tmp/run.BACKEND); report BACKEND SUITE:
# its tests classified.
run() {
    t0=$(up)
    # The TMF tests say what they saw (write and abort responses) only when
    # verbose: a failure of theirs is then explained by its WHY lines.
    v=; [ "$3" != iSCSITMF ] || v=-V
    timeout "${scuse_iscsi_timeout:-240}" iscsi-test-cu -d -S $v -t "ALL.$3" \
        "iscsi://$PORTAL/$2/0" >/tmp/out.$1 2>&1
    rc=$?
    echo "$1 $3 rc=$rc $(awk -v a="$t0" -v b="$(up)" 'BEGIN { printf "%.1f", b - a }')" >/tmp/run.$1
}
report() {
    mark RUN "$(cat /tmp/run.$1)"
    awk -v be="$1" -v su="$2" '
        function done_(r) { if (cur != "") { print "@@ R", be, su, cur, r; if (r != "pass") failed[cur] = 1 } cur = "" }
        /^  Test: / {
            done_("fail")   # a test that never said passed or FAILED (a timeout)
            cur = $2; skip = 0; sub(/^  Test: [^ ]* \.\.\./, "")   # the rest: a result or a reason
        }
        cur != "" && /\[SKIPPED\]/ { skip = 1 }
        # A result is CUnit'"'"'s own "passed" or "FAILED" ending a line; a
        # "[FAILED] ..." line of libiscsi'"'"'s inside a test is a reason.
        cur != "" && /(^|\.\.\.)FAILED$/ { last = cur; done_("fail"); next }
        cur != "" && /passed$/ { done_(skip ? "skip" : "pass"); next }
        # CUnit lists a failed test'"'"'s assertions (file:line) after its FAILED line.
        cur == "" && last != "" && /^    [0-9]+\. / { if (n[last]++ < 8) why[last] = why[last] "\n@@ WHY " be " " su " " last " " $0; next }
        /^Run Summary/ { last = "" }
        cur != "" && NF { if (n[cur]++ < 12) why[cur] = why[cur] "\n@@ WHY " be " " su " " cur " " $0 }
        END { done_("fail"); for (t in why) if (t in failed) print substr(why[t], 2) }
    ' /tmp/out.$1 >/tmp/res
    cat /tmp/res
    [ "${scuse_iscsi_raw:-}" != "$2" ] || { mark BEGIN raw; cat /tmp/out.$1; mark END raw rc=0; }
}
# rerun_racy SUITE: a test of scuse's named in scuse_iscsi_racy (SUITE.TEST
# ...) that failed in SUITE runs alone up to twice more; RERUN lines say how
# each try went (the host accepts such a test only if a try passed).
rerun_racy() {
    for rt in ${scuse_iscsi_racy:-}; do
        [ "${rt%%.*}" = "$1" ] || continue
        grep -q "^@@ R scuse $1 ${rt#*.} fail$" /tmp/res || continue
        for try in 1 2; do
            timeout 120 iscsi-test-cu -d -S -V -t "ALL.$rt" "iscsi://$PORTAL/$IQN_SCUSE/0" >/tmp/out.rerun 2>&1
            if grep -q '^ *Test: .*passed$\|^passed$' /tmp/out.rerun && ! grep -q 'FAILED$' /tmp/out.rerun; then
                mark RERUN scuse "$1" "${rt#*.}" pass "try=$try"
                break
            fi
            mark RERUN scuse "$1" "${rt#*.}" fail "try=$try"
            sed -n '/^  Test: /,/^Run Summary/p' /tmp/out.rerun | head -n 20 | sed "s/^/@@ WHY scuse $1 ${rt#*.} rerun: /"
        done
    done
}
suites=${scuse_iscsi_suites:-$(iscsi-test-cu -l | sed -n 's/^ALL\.\([^.]*\)$/\1/p')}
# The two targets side by side (two vCPUs): each suite's pair at once.
for s in $suites; do
    run scuse $IQN_SCUSE "$s" &
    RP=$!
    run lio $IQN_LIO "$s"
    wait $RP
    report scuse "$s"
    rerun_racy "$s"
    report lio "$s"
done
kill -0 $SP 2>/dev/null || die "scuse serve died: $(tail -n 5 /tmp/scuse.log)"
mark BEGIN scuse-log
grep -v 'tcmu: serving' /tmp/scuse.log | tail -n 40
mark END scuse-log rc=0
section delete scuse tcmu delete scuse0 || die "scuse tcmu delete"
kill $SP
wait $SP
mark SCUSE "exit=$?"
