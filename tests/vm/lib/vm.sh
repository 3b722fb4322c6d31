# shellcheck shell=bash
# Host side of the guest tests (tests/vm/test_*.sh): the guest, the disk
# server, QEMU, the console markers and the verdict. Source it first:
#   . "$(dirname "$0")/lib/vm.sh"
#
# Environment (tests/CMakeLists.txt sets the first three):
#   SCUSE             the scuse binary (needed for the vhost disk path)
#   SCUSE_TEST_TMP    scratch directory of this test (wiped at start)
#   SCUSE_VM_CACHE    where the guest is cached (default build/vm-cache)
#   SCUSE_VM_DISK     vhost (default): `scuse serve --vhost-user-scsi` and
#                     QEMU's vhost-user-scsi-pci; scsi-hd: QEMU's own
#                     virtio-scsi-pci + scsi-hd on the same images
#   SCUSE_VM_ACCEL    tcg (default) or kvm
#   SCUSE_VM_TIMEOUT  seconds one boot may take (default 120)
#   SCUSE_VM_SERVE_ARGS    extra arguments for `scuse serve` (e.g. -v)
#   SCUSE_VM_KEEP=1   keep the scratch directory of a passing test
#
# Style (as tests/formats): fail() records a failure and goes on, finish()
# prints the summary and exits 1 if anything failed. Setup errors (the
# oracles failing) stop the test at once.
set -euo pipefail

VM_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_DIR=$(dirname "$VM_LIB")
TEST_NAME=$(basename "$0" .sh)
: "${SCUSE_SRC:=$(cd "$VM_DIR/../.." && pwd)}"
: "${SCUSE:=$SCUSE_SRC/build/scuse}"
: "${SCUSE_VM_DISK:=vhost}"
: "${SCUSE_VM_ACCEL:=tcg}"
: "${SCUSE_VM_TIMEOUT:=120}"
: "${SCUSE_VM_CACHE:=$SCUSE_SRC/build/vm-cache}"
: "${SCUSE_TEST_TMP:=${TMPDIR:-/tmp}/scuse-vm/$TEST_NAME-$SCUSE_VM_DISK}"
case "$SCUSE" in /*) ;; *) SCUSE=$(cd "$(dirname "$SCUSE")" && pwd)/$(basename "$SCUSE") ;; esac
VM_MEM=${VM_MEM:-256}

# QEMU, qemu-img and the guest's makers, or skip (77) naming what is
# missing (tests/lib/need.sh; build.sh test installs them all).
. "$VM_DIR/../lib/need.sh"
need qemu-system-x86_64 qemu-img qemu-io timeout python3 sha256sum cpio depmod
PYTHON=$(command python3 -c 'import sys; print(sys.executable)')

# The disk path. vhost without `scuse serve` in the binary is a failure
# that says so.
vm_require_disk_path() {
    case "$SCUSE_VM_DISK" in
    vhost)
        if [ ! -x "$SCUSE" ] || ! "$SCUSE" serve --help >/dev/null 2>&1; then
            local why="'$SCUSE serve --help' failed: this scuse has no 'serve --vhost-user-scsi'"
            echo "FAIL: SCUSE_VM_DISK=vhost, but $why." >&2
            echo "      Run with SCUSE_VM_DISK=scsi-hd to use QEMU's own virtio-scsi instead." >&2
            exit 1
        fi
        ;;
    scsi-hd) ;;
    *)
        echo "FAIL: SCUSE_VM_DISK='$SCUSE_VM_DISK': use vhost or scsi-hd" >&2
        exit 1
        ;;
    esac
}

rm -rf "$SCUSE_TEST_TMP"
mkdir -p "$SCUSE_TEST_TMP"
cd "$SCUSE_TEST_TMP"
T=$SCUSE_TEST_TMP

FAILS=0
CASES=0
CASE=""
CASE_FAILS=0
CASE_T=$EPOCHREALTIME

fail() {
    FAILS=$((FAILS + 1))
    CASE_FAILS=$((CASE_FAILS + 1))
    echo "  FAIL [${CASE:-$TEST_NAME}]: $*" >&2
}
case_begin() {
    CASE=$1
    CASE_FAILS=0
    CASES=$((CASES + 1))
    CASE_T=$EPOCHREALTIME
}
case_end() {
    local ms=$(( (${EPOCHREALTIME/./} - ${CASE_T/./}) / 1000 ))
    if [ "$CASE_FAILS" -eq 0 ]; then
        printf 'ok   %s [%s] (%d ms)\n' "$CASE" "$SCUSE_VM_DISK" "$ms"
    else
        printf 'FAIL %s [%s] (%d problem(s), %d ms)\n' "$CASE" "$SCUSE_VM_DISK" "$CASE_FAILS" "$ms"
    fi
    CASE=""
}
finish() {
    vm_cleanup
    echo "----"
    if [ "$FAILS" -ne 0 ]; then
        echo "$TEST_NAME [$SCUSE_VM_DISK]: $FAILS failure(s) in $CASES case(s); logs in $T"
        exit 1
    fi
    echo "$TEST_NAME [$SCUSE_VM_DISK]: all $CASES case(s) passed"
    [ "${SCUSE_VM_KEEP:-0}" = 1 ] || rm -rf "$T"
    exit 0
}
setup_error() {
    echo "SETUP ERROR: $*" >&2
    vm_cleanup
    exit 1
}

# --- the guest ---------------------------------------------------------------

# vm_guest [PROFILE]: build or find the guest; sets VMLINUX and INITRD.
vm_guest() {
    local out rc=0
    out=$(bash "$VM_DIR/guest/build.sh" --cache "$SCUSE_VM_CACHE" --profile "${1:-base}") || rc=$?
    if [ "$rc" -eq 77 ]; then   # a tool the guest needs is missing; its SKIP line said which
        vm_cleanup
        exit 77
    fi
    [ "$rc" -eq 0 ] || setup_error "the guest build failed (tests/vm/guest/build.sh)"
    VMLINUX=$(sed -n 's/^vmlinux //p' <<<"$out")
    INITRD=$(sed -n 's/^initrd //p' <<<"$out")
    [ -f "$VMLINUX" ] && [ -f "$INITRD" ] || setup_error "guest build gave no vmlinux/initrd"
}

# --- fixtures ------------------------------------------------------------------

qio() { # qemu-io ARGS... IMG, quiet unless it fails (it exits 0 on a failed -c)
    local out
    out=$(qemu-io "$@" 2>&1) || setup_error "qemu-io $*: $out"
    if [[ $out =~ [Ee]rror|[Ff]ailed|[Ii]nvalid|[Nn]ot\ supported ]]; then
        setup_error "qemu-io $*: $out"
    fi
}

# vm_make_chain DIR: the 3-layer qcow2 chain of 64 MiB the tests read and
# write: base (plain data, 1 MiB of random bytes), mid (compressed data
# over base data, zero clusters over base data, plain data), top (zstd:
# compressed clusters, zero clusters over base and over compressed mid
# data, an unmapping zero write, plain data). Relative backing names.
# Checked with qemu-img map: compressed and zero clusters in the top.
vm_make_chain() {
    local d=$1
    mkdir -p "$d"
    head -c 1M /dev/urandom >"$d/random.bin"
    qemu-img create -q -f qcow2 "$d/base.qcow2" 64M
    qio -f qcow2 -c 'write -P 0x11 0 8M' -c 'write -P 0x22 16M 4M' \
        -c "write -s $d/random.bin 10M 1M" "$d/base.qcow2"
    qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$d/mid.qcow2"
    qio -f qcow2 -c 'write -c -P 0x33 4M 2M' -c 'write -P 0x44 30M 1M' \
        -c 'write -z 18M 1M' -c 'write -c -P 0x45 36M 512k' "$d/mid.qcow2"
    qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 -o compression_type=zstd "$d/top.qcow2"
    qio -f qcow2 -c 'write -z 0 1M' -c 'write -c -P 0x55 40M 1M' -c 'write -P 0x66 1M 64k' \
        -c 'write -c -P 0x77 2M 256k' -c 'write -z 36M 128k' -c 'write -z -u 7M 512k' \
        -c 'write -c -s '"$d/random.bin"' 12M 1M' "$d/top.qcow2"
    rm -f "$d/random.bin"
    qemu-img map --output=json "$d/top.qcow2" >"$d/top.map.json"
    "$PYTHON" -S - "$d/top.map.json" <<'EOF' || setup_error "the chain lacks compressed or zero clusters in its top"
import json, sys
rows = json.load(open(sys.argv[1]))
top = [r for r in rows if r["depth"] == 0]
compressed = any(r["data"] and "offset" not in r for r in top)
zero = any(r["zero"] and not r["data"] for r in top)
sys.exit(0 if compressed and zero else 1)
EOF
}

# --- the disk server and QEMU ---------------------------------------------------

# LUNs: vm_lun N IMG [OPTS], OPTS in `scuse serve --lun` syntax:
#   format=F,readonly,serial=S,wwn=W,vendor=V,product=P,block-size=B,
#   discard=unmap|ignore,cache=writeback|writethrough
declare -a LUN_IMG=() LUN_OPT=()
vm_lun() { LUN_IMG[$1]=$2; LUN_OPT[$1]=${3:-}; }
vm_luns_clear() { LUN_IMG=(); LUN_OPT=(); }

opt_get() { # OPTS KEY -> value ("1" for a bare flag, "" if absent)
    local IFS=, kv
    for kv in $1; do
        case "$kv" in
        "$2") echo 1; return ;;
        "$2"=*) echo "${kv#*=}"; return ;;
        esac
    done
}

# The command line `scuse serve` gets (printed by the tests and the README).
vm_serve_cmd() { # SOCK PIDFILE -> SERVE_CMD array
    SERVE_CMD=("$SCUSE" serve --vhost-user-scsi "$1")
    local n
    for n in "${!LUN_IMG[@]}"; do
        SERVE_CMD+=(--lun "$n=${LUN_IMG[$n]}${LUN_OPT[$n]:+,${LUN_OPT[$n]}}")
    done
    SERVE_CMD+=(--pidfile "$2" --once)
    local -a extra
    read -r -a extra <<<"${SCUSE_VM_SERVE_ARGS:-}"
    SERVE_CMD+=("${extra[@]}")
}

# QEMU arguments for the disks: DISK_ARGS. $1: "boot" to give the first
# LUN bootindex 0.
vm_disk_args() {
    local boot=${1:-} n o q=${VM_QUEUES:-1}
    DISK_ARGS=()
    case "$SCUSE_VM_DISK" in
    vhost)
        DISK_ARGS+=(-chardev "socket,id=vus0,path=$VM_SOCK"
                    -device "vhost-user-scsi-pci,id=vus0dev,chardev=vus0,num_queues=$q${boot:+,bootindex=0}")
        ;;
    scsi-hd)
        DISK_ARGS+=(-device "virtio-scsi-pci,id=scsi0,num_queues=$q")
        local first=1
        for n in "${!LUN_IMG[@]}"; do
            o=${LUN_OPT[$n]}
            local fmt ro drive dev v
            fmt=$(opt_get "$o" format)
            drive="file=${LUN_IMG[$n]},if=none,id=d$n,cache=none,aio=threads"
            [ -z "$fmt" ] || drive+=",format=$fmt"
            ro=$(opt_get "$o" readonly)
            [ -z "$ro" ] || drive+=",readonly=on"
            [ "$(opt_get "$o" discard)" = ignore ] || drive+=",discard=unmap"
            dev="scsi-hd,drive=d$n,bus=scsi0.0,channel=0,scsi-id=0,lun=$n"
            v=$(opt_get "$o" serial); [ -z "$v" ] || dev+=",serial=$v"
            v=$(opt_get "$o" wwn); [ -z "$v" ] || dev+=",wwn=$v"
            v=$(opt_get "$o" vendor); [ -z "$v" ] || dev+=",vendor=$v"
            v=$(opt_get "$o" product); [ -z "$v" ] || dev+=",product=$v"
            v=$(opt_get "$o" block-size)
            [ -z "$v" ] || dev+=",logical_block_size=$v,physical_block_size=$v"
            [ "$(opt_get "$o" cache)" = writethrough ] && dev+=",write-cache=off"
            if [ -n "$boot" ] && [ $first = 1 ]; then dev+=",bootindex=0"; fi
            first=0
            DISK_ARGS+=(-drive "$drive" -device "$dev")
        done
        ;;
    esac
}

VM_EXTRA_ARGS=()
VM_PIDS=()
vm_cleanup() {
    local p
    for p in "${VM_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${VM_PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    VM_PIDS=()
}
trap vm_cleanup EXIT

# vm_serve_start NAME: start `scuse serve` for the LUNs and wait for its
# socket (vhost path only). Sets VM_SOCK, SERVE_PID.
vm_serve_start() {
    local name=$1 i
    VM_SOCK=$T/$name.sock
    rm -f "$VM_SOCK"
    [ "$SCUSE_VM_DISK" = vhost ] || return 0
    vm_serve_cmd "$VM_SOCK" "$T/$name.serve.pid"
    printf '%q ' "${SERVE_CMD[@]}" >"$T/$name.serve.cmd"
    "${SERVE_CMD[@]}" >"$T/$name.serve.log" 2>&1 &
    SERVE_PID=$!
    VM_PIDS+=("$SERVE_PID")
    for ((i = 0; i < 200; i++)); do
        if [ -S "$VM_SOCK" ]; then
            vm_serve_pidfile "$T/$name.serve.pid"
            return 0
        fi
        if ! kill -0 "$SERVE_PID" 2>/dev/null; then
            wait "$SERVE_PID" 2>/dev/null || true
            fail "scuse serve exited before its socket appeared: $(tail -n 5 "$T/$name.serve.log")"
            return 1
        fi
        sleep 0.05
    done
    fail "scuse serve made no socket $VM_SOCK within 10 s"
    return 1
}

# The pidfile names the server (it runs in the foreground: $! is its pid).
vm_serve_pidfile() {
    local i
    for ((i = 0; i < 40; i++)); do
        [ -s "$1" ] && break
        sleep 0.05
    done
    [ "$(tr -d ' \n' <"$1" 2>/dev/null)" = "$SERVE_PID" ] ||
        fail "the pidfile $1 says '$(cat "$1" 2>/dev/null)', scuse serve is pid $SERVE_PID"
}

# vm_serve_stop NAME: after the VM, `serve --once` must exit by itself, 0.
vm_serve_stop() {
    local name=$1 i
    VM_SERVE_RC=0
    [ "$SCUSE_VM_DISK" = vhost ] || return 0
    for ((i = 0; i < 200; i++)); do
        kill -0 "$SERVE_PID" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$SERVE_PID" 2>/dev/null; then
        fail "scuse serve --once still runs 10 s after the VM left; stopping it"
        kill "$SERVE_PID" 2>/dev/null || true
    fi
    wait "$SERVE_PID" 2>/dev/null || VM_SERVE_RC=$?
    [ "$VM_SERVE_RC" -eq 0 ] ||
        fail "scuse serve exited $VM_SERVE_RC: $(tail -n 5 "$T/$name.serve.log")"
}

# vm_boot NAME TEST [KEY=VALUE...]: start the server, boot the guest with
# scuse_test=TEST and the KEY=VALUE words on the kernel command line, wait
# for QEMU to exit. TEST "" boots from the disk through the firmware
# instead (no kernel; VM_FIRMWARE_ARGS are added). Knobs: VM_SMP,
# VM_QUEUES, VM_MEM, VM_EXTRA_ARGS (more QEMU arguments), VM_NO_DISK=1 (no
# disk path at all: no server, no SCSI controller). Leaves $T/NAME.log (the console, CRs removed),
# $T/NAME.qemu.err, VM_RC (QEMU's exit status, 124 on timeout), VM_SECS
# (QEMU start to exit).
vm_boot() {
    local name=$1 test=$2
    shift 2
    VM_SOCK=$T/$name.sock
    local -a args=(-accel "$SCUSE_VM_ACCEL" -m "$VM_MEM" -smp "${VM_SMP:-1}"
                   -display none -monitor none -serial stdio -no-reboot -nic none
                   -machine q35,memory-backend=mem
                   -object "memory-backend-memfd,id=mem,size=${VM_MEM}M,share=on")
    [ "$SCUSE_VM_ACCEL" != kvm ] || args+=(-cpu host)
    if [ -n "$test" ]; then
        args+=(-kernel "$VMLINUX" -initrd "$INITRD"
               -append "console=ttyS0 quiet panic=-1 scuse_test=$test $*")
        vm_disk_args
    else
        args+=("${VM_FIRMWARE_ARGS[@]}")
        vm_disk_args boot
    fi
    if [ "${VM_NO_DISK:-0}" = 1 ]; then
        DISK_ARGS=()
    elif ! vm_serve_start "$name"; then
        : >"$T/$name.log"
        : >"$T/$name.qemu.err"
        VM_RC=255 VM_SECS=0     # not booted (vm_check_boot says why)
        return 0
    fi
    args+=("${DISK_ARGS[@]}" "${VM_EXTRA_ARGS[@]}")
    printf '%q ' qemu-system-x86_64 "${args[@]}" >"$T/$name.qemu.cmd"
    local t0=$EPOCHREALTIME
    VM_RC=0
    timeout -k 5 "$SCUSE_VM_TIMEOUT" qemu-system-x86_64 "${args[@]}" \
        </dev/null >"$T/$name.raw" 2>"$T/$name.qemu.err" || VM_RC=$?
    VM_SECS=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
    tr -d '\r' <"$T/$name.raw" >"$T/$name.log"
    [ "${VM_NO_DISK:-0}" = 1 ] || vm_serve_stop "$name"
}

# vm_markers NAME WORD: the marker lines "@@ WORD ..." of a boot, without
# the "@@ WORD " prefix.
vm_markers() { sed -n "s/^@@ $2 //p" "$T/$1.log"; }

# vm_check_boot NAME TEST: QEMU exited 0 in time, the guest test ran to
# its end with status 0, no FAIL marker. Prints the console's end on
# failure. Returns 1 if the boot failed.
vm_check_boot() {
    local name=$1 test=$2 bad=0
    if [ "$VM_RC" -eq 255 ]; then
        fail "$name: not booted: the disk server did not start"
        return 1
    fi
    if [ "$VM_RC" -eq 124 ] || [ "$VM_RC" -eq 137 ]; then
        fail "$name: QEMU timed out after ${SCUSE_VM_TIMEOUT}s"
        bad=1
    elif [ "$VM_RC" -ne 0 ]; then
        fail "$name: QEMU exited $VM_RC: $(head -n 3 "$T/$name.qemu.err")"
        bad=1
    fi
    if grep -q '^@@ FAIL' "$T/$name.log"; then
        fail "$name: guest: $(grep '^@@ FAIL' "$T/$name.log" | head -n 3 | tr '\n' ' ')"
        bad=1
    fi
    if ! grep -q "^@@ TEST $test END rc=0" "$T/$name.log"; then
        fail "$name: the guest test '$test' did not end with rc=0"
        bad=1
    fi
    if [ $bad = 1 ]; then
        echo "  --- console of $name (last 15 lines) ---" >&2
        tail -n 15 "$T/$name.log" | sed 's/^/  | /' >&2
        [ ! -s "$T/$name.qemu.err" ] || sed 's/^/  qemu: /' "$T/$name.qemu.err" | head -n 5 >&2
        return 1
    fi
    return 0
}

# The bytes lib.sh gen() makes in the guest: gen I OFF LEN SEED.
gen() { { yes "scuse-vm $1 $2 $3 $4" || true; } | head -c "$3"; }
