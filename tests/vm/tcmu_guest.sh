#!/usr/bin/env bash
# The guest for the TCMU tests to come (profile "tcmu"): the same kernel
# loads configfs, uio, target_core_mod, target_core_user, target_core_file,
# tcm_loop and 9p; scuse runs in it (copied with its libraries by ldd); a
# host directory arrives over virtfs (9p); LIO's configfs takes a TCMU
# (user) backstore; a LIO fileio LUN behind tcm_loop answers sg3_utils
# (guest tests lio + sg). No disk path: registered once (vm/tcmu_guest).
SCUSE_VM_DISK=none                      # no disk path: no server, no SCSI controller
. "$(dirname "$0")/lib/vm.sh"
[ -x "$SCUSE" ] || { echo "FAIL: scuse binary '$SCUSE' not found" >&2; exit 1; }
SCUSE=$SCUSE vm_guest tcmu

case_begin "TCMU guest: modules, scuse, 9p, LIO with tcm_loop"
mkdir -p "$T/share"
head -c 3M /dev/urandom >"$T/share/image.raw"
want=$(sha256sum <"$T/share/image.raw" | cut -d' ' -f1)
VM_EXTRA_ARGS=(-virtfs "local,path=$T/share,mount_tag=host0,security_model=none,readonly=on")
VM_NO_DISK=1 vm_boot lio lio scuse_9p=host0
if vm_check_boot lio lio; then
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
fi
case_end
finish
