# Guest test "read": the whole disk at LUN 0, read twice: with O_DIRECT in
# 1 MiB requests (the transport path, no page cache) and through the page
# cache (the kernel's readahead sizes). Both sha256 are printed:
#   @@ SHA256 LUN direct|buffered HEX START END
. /lib/scuse/lib.sh
set -o pipefail
wait_lun "${scuse_lun:-0}"
t0=$(up)
sum=$(dd if="/dev/$DISK" bs=1M iflag=direct 2>/tmp/dd.err | sha256sum) ||
    die "O_DIRECT read of /dev/$DISK failed: $(cat /tmp/dd.err)"
mark SHA256 "${scuse_lun:-0}" direct "${sum%% *}" "$t0" "$(up)"
t0=$(up)
sum=$(sha256sum <"/dev/$DISK") || die "buffered read of /dev/$DISK failed"
mark SHA256 "${scuse_lun:-0}" buffered "${sum%% *}" "$t0" "$(up)"
