#!/usr/bin/env bash
# The guest for the TCMU tests to come (profile "tcmu"): the same kernel
# loads configfs, uio, target_core_mod, target_core_user, target_core_file,
# tcm_loop and 9p; scuse runs in it (copied with its libraries by ldd); a
# host directory arrives over virtfs (9p); LIO's configfs takes a TCMU
# (user) backstore; a LIO fileio LUN behind tcm_loop answers sg3_utils
# (guest tests lio + sg). Then scuse serves an ISO as a cdrom backstore in
# the guest (`tcmu create --device cdrom`, profile tcmucd: sr_mod, isofs):
# sr0 appears, mounts, and its files are the host's (guest test liocd).
# No disk path: registered once (vm/tcmu_guest).
SCUSE_VM_DISK=none                      # no disk path: no server, no SCSI controller
. "$(dirname "$0")/lib/vm.sh"
[ -x "$SCUSE" ] || { echo "FAIL: scuse binary '$SCUSE' not found" >&2; exit 1; }
SCUSE=$SCUSE vm_guest tcmucd
need xorriso

case_begin "TCMU guest: modules, scuse, 9p, LIO with tcm_loop"
mkdir -p "$T/share"
head -c 3M /dev/urandom >"$T/share/image.raw"
want=$(sha256sum <"$T/share/image.raw" | cut -d' ' -f1)
mkdir -p "$T/cd/sub"
head -c 1500000 /dev/urandom >"$T/cd/sub/data.bin"
echo "scuse tcmu cdrom" >"$T/cd/hello.txt"
xorriso -as mkisofs -quiet -R -V SCUSE_TCMU_CD -o "$T/share/test.iso" "$T/cd" 2>"$T/xorriso.err" ||
    setup_error "xorriso: $(cat "$T/xorriso.err")"
VM_EXTRA_ARGS=(-virtfs "local,path=$T/share,mount_tag=host0,security_model=none,readonly=on")
VM_NO_DISK=1 vm_boot lio liocd scuse_9p=host0
if vm_check_boot lio liocd; then
    [ "$(vm_markers lio SCUSE)" = "$("$SCUSE" --version)" ] ||
        fail "scuse in the guest says '$(vm_markers lio SCUSE)'"
    [ "$(vm_markers lio SHA256 | awk '$1 == "9p" && $2 == "image.raw" { print $3 }')" = "$want" ] ||
        fail "the guest read the 9p file wrong: $(vm_markers lio SHA256 | grep 9p)"
    for part in core user fileio loopback; do
        vm_markers lio LIO | grep -qx "$part ok" || fail "LIO $part not ok in the guest"
    done
    [ "$(vm_markers lio DISK | awk '{ print $4 }')" = $((64 << 20)) ] || fail "no 64 MiB LIO disk"
    rc() { sed -n "s/^@@ END $1 rc=//p" "$T/lio.log"; }
    [ "$(rc inq)" = 0 ] && grep -q 'Vendor identification: SCUSEVM' "$T/lio.log" ||
        fail "sg_inq of the LIO LUN"
    [ "$(rc caw)" = 0 ] && [ "$(rc caw_miscompare)" = 14 ] ||
        fail "COMPARE AND WRITE on LIO: rc $(rc caw), then $(rc caw_miscompare) (0, 14 expected)"
    [ "$(rc ws)" = 0 ] && [ "$(rc unmap)" = 0 ] || fail "WRITE SAME / UNMAP on LIO"
    # The cdrom backstore: an sr device (type 5, read-only, the ISO's
    # size), its files the host's, deleted and the daemon stopped cleanly.
    read -r _ blk _ type ro size <<<"$(vm_markers lio CD)"
    [ "${blk#sr}" != "$blk" ] && [ "$type" = 5 ] && [ "$ro" = 1 ] &&
        [ "$((size * 512))" = "$(stat -c %s "$T/share/test.iso")" ] ||
        fail "tcmu create --device cdrom: '$(vm_markers lio CD)' (srN, type 5, ro, the ISO's size expected)"
    sed -n '/^@@ BEGIN cd_inquiry/,/^@@ END cd_inquiry/p' "$T/lio.log" | grep -Eq '^ *0+ +05 80 ' ||
        fail "the cdrom's INQUIRY: not a removable CD/DVD device (05h, RMB)"
    sed -n '/^@@ BEGIN cd_toc/,/^@@ END cd_toc/p' "$T/lio.log" | grep -Eq '^ *0+ +00 12 01 01 00 14 01' ||
        fail "the cdrom's READ TOC: not one data track"
    (cd "$T/cd" && find . -type f | sort | while read -r f; do
        echo "FILE tcmu ${f#./} $(sha256sum <"$f" | cut -d' ' -f1)"; done) >"$T/cd.want"
    vm_markers lio FILE | grep '^tcmu ' | sed 's/^/FILE /' >"$T/cd.got"
    diff -q "$T/cd.want" "$T/cd.got" >/dev/null ||
        fail "the CD's files through TCMU and sr differ from the host's: $(diff "$T/cd.want" "$T/cd.got" | head -n 4 | tr '\n' ' ')"
    [ "$(rc cd_create)" = 0 ] && [ "$(rc cd_delete)" = 0 ] && [ "$(vm_markers lio CDSERVE)" = rc=0 ] ||
        fail "cdrom backstore: create rc $(rc cd_create), delete rc $(rc cd_delete), daemon $(vm_markers lio CDSERVE)"
fi
case_end
finish
