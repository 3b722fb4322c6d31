# shellcheck shell=sh
# Helpers for the guest tests (busybox sh), sourced by /init and by each
# /tests/NAME.sh. Every line the host reads starts with "@@ ".

mark() { echo "@@ $*"; }
up() { cut -d' ' -f1 /proc/uptime; }
die() { mark FAIL "$*"; exit 1; }

# Print a command's output between markers, with its exit status:
#   @@ BEGIN TAG
#   ...output...
#   @@ END TAG rc=N
# Returns the command's status.
section() {
    tag=$1
    shift
    mark BEGIN "$tag"
    "$@" 2>&1
    s_rc=$?
    mark END "$tag" "rc=$s_rc"
    return $s_rc
}

# wait_lun LUN [SECONDS]: wait until the disk at SCSI LUN LUN (any host
# and target: a guest test sees one controller) has its block and sg devices; sets DISK (sdX), SG (/dev/sgN)
# and prints "@@ DISK LUN sdX sgN BYTES". The scan is asynchronous.
wait_lun() {
    w_lun=$1
    w_max=$(( ${2:-20} * 20 ))
    w_i=0
    DISK= SG=
    while [ "$w_i" -lt "$w_max" ]; do
        for d in /sys/bus/scsi/devices/*:*:*:"$w_lun"; do
            [ -d "$d/block" ] || continue
            DISK=$(ls "$d/block" | head -1)
            SG=$(ls "$d/scsi_generic" 2>/dev/null | head -1)
        done
        if [ -n "$DISK" ] && [ -n "$SG" ] && [ -b "/dev/$DISK" ] && [ -c "/dev/$SG" ]; then
            SG=/dev/$SG
            mark DISK "$w_lun" "$DISK" "${SG#/dev/}" "$(( $(cat /sys/block/$DISK/size) * 512 ))"
            return 0
        fi
        usleep 50000
        w_i=$((w_i + 1))
    done
    die "no disk at LUN $w_lun after ${2:-20} s"
}

# The data written at a record: "yes TAG | head -c LEN", with
# TAG = "scuse-vm I OFF LEN SEED". The host replays it with coreutils.
# (yes dies of SIGPIPE when head is done: not a failure under pipefail.)
gen() { { yes "scuse-vm $1 $2 $3 $4" || true; } | head -c "$3"; }
