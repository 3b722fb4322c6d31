#!/usr/bin/env bash
# `scuse tcmu create|list|delete|serve` on a configfs stand-in (a plain
# directory: the kernel itself is tested in a guest, tests/vm). What is
# written is judged against qemu-img (dev_size is the virtual size it
# reports) and LIO's layout; bad arguments give exit 1 or 2 and one line
# naming the field, never a hang.
. "$(dirname "$0")/lib/common.sh"

qimg create -q -f qcow2 img.qcow2 3G
qimg create -q -f raw disk.raw 64M
mkdir -p cfs/target/core
CFS=$T/cfs
DEV=$CFS/target/core/user_5300

tree() { (cd "$CFS" && find . | sort | while read -r p; do
    if [ -L "$p" ]; then echo "$p -> $(readlink "$p")"
    elif [ -f "$p" ]; then echo "$p = $(cat "$p")"
    else echo "$p"; fi; done); }

case_begin "create: a vhost export, the QEMU and libvirt lines, dev_size from qemu-img"
if expect_exit 0 "$SCUSE" tcmu create vm1 img.qcow2 --configfs "$CFS"; then
    size=$(qemu-img info --output=json img.qcow2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
    want="dev_config=scuse/qcow2@$T/img.qcow2,dev_size=$size,hw_block_size=512,hw_max_sectors=65536,max_data_area_mb=1024,nl_reply_supported=-1"
    [ "$(cat "$DEV/vm1/control")" = "$want" ] || fail "control: $(cat "$DEV/vm1/control"), want $want"
    [ "$(cat "$DEV/vm1/enable")" = 1 ] || fail "not enabled"
    grep -qE '^[0-9A-F]{16}$' "$DEV/vm1/wwn/vpd_unit_serial" || fail "serial: $(cat "$DEV/vm1/wwn/vpd_unit_serial")"
    wwpn=$(sed -n 's/^QEMU:    -device vhost-scsi-pci,wwpn=\(naa\.[0-9a-f]\{16\}\)$/\1/p' "$W/.out")
    [ -n "$wwpn" ] || fail "no QEMU line: $(cat "$W/.out")"
    grep -qxF "libvirt: <hostdev mode='subsystem' type='scsi_host'><source protocol='vhost' wwpn='$wwpn'/></hostdev>" "$W/.out" ||
        fail "no libvirt line: $(cat "$W/.out")"
    [ "$(readlink "$CFS/target/vhost/$wwpn/tpgt_1/lun/lun_0/vm1")" = "$DEV/vm1" ] || fail "LUN link"
    grep -qE '^naa\.[0-9a-f]{16}$' "$CFS/target/vhost/$wwpn/tpgt_1/nexus" || fail "nexus"
fi
before=$(tree)
expect_exit 0 "$SCUSE" tcmu create vm1 img.qcow2 --configfs "$CFS" || true
[ "$(tree)" = "$before" ] || fail "a second create changed the tree"
# Again while the image is served: the daemon holds its write lock (here
# qemu-io does). The guest test found a repeated create refused there.
# (LIO shows the control string's dev_config in attrib/dev_config.)
echo "scuse/qcow2@$T/img.qcow2" > "$DEV/vm1/attrib/dev_config"
before=$(tree)
# The holder and the probe race for the lock: a holder that starts while a
# probe has the image open fails at once, so it is started again until a
# probe finds the image held.
hold() { qemu-io -c 'sleep 300000' img.qcow2 >/dev/null 2>&1 & holder=$!; }
holding() { kill -0 "$holder" 2>/dev/null && ! grep -qs '^State:[[:space:]]*Z' "/proc/$holder/status"; }
hold
trap 'kill "$holder" 2>/dev/null || true' EXIT
for _ in $(seq 400); do
    holding || hold
    ! qemu-io -c 'write 0 512' img.qcow2 >/dev/null 2>&1 || { sleep 0.05; continue; }
    break
done
holding || fail "qemu-io could not hold img.qcow2's lock"
expect_exit 0 "$SCUSE" tcmu create vm1 img.qcow2 --configfs "$CFS" || true
[ "$(tree)" = "$before" ] || fail "create while the image is served changed the tree"
expect_exit 2 "$SCUSE" tcmu create vm2 img.qcow2 --configfs "$CFS" && stderr_mentions "in use" || true
[ ! -e "$DEV/vm2" ] || fail "a create of another backstore on a served image went ahead"
kill "$holder"
wait "$holder" 2>/dev/null || true
trap - EXIT
case_end

case_begin "create: loopback, 4096-byte blocks, explicit WWPN, serial and sizes; raw given with -f"
if expect_exit 0 "$SCUSE" tcmu create lb disk.raw -f raw --fabric loopback --wwpn naa.5001405000000abc \
    --block-size 4096 --max-sectors 2048 --data-area-mb 64 --serial MYSERIAL --configfs "$CFS"; then
    grep -q "^dev_config=scuse/raw@$T/disk.raw,dev_size=67108864,hw_block_size=4096,hw_max_sectors=2048,max_data_area_mb=64," "$DEV/lb/control" ||
        fail "control: $(cat "$DEV/lb/control")"
    [ "$(cat "$DEV/lb/wwn/vpd_unit_serial")" = MYSERIAL ] || fail "serial"
    [ -L "$CFS/target/loopback/naa.5001405000000abc/tpgt_1/lun/lun_0/lb" ] || fail "loopback LUN link"
fi
case_end

case_begin "list: the backstores with their exports"
echo "scuse/qcow2@$T/img.qcow2" > "$DEV/vm1/attrib/dev_config"
echo "scuse/raw@$T/disk.raw" > "$DEV/lb/attrib/dev_config"
echo 67108864 > "$DEV/lb/attrib/dev_size"
if expect_exit 0 "$SCUSE" tcmu list --configfs "$CFS"; then
    grep -qE "^vm1 +qcow2 .* vhost +$wwpn +all +$T/img.qcow2$" "$W/.out" || fail "vm1 line: $(cat "$W/.out")"
    grep -qE "^lb +raw +64 MiB +loopback +naa.5001405000000abc +all +$T/disk.raw$" "$W/.out" || fail "lb line: $(cat "$W/.out")"
fi
case_end

case_begin "delete: exports and backstore go; again: nothing to delete"
expect_exit 0 "$SCUSE" tcmu delete vm1 --configfs "$CFS" || true
[ ! -e "$DEV/vm1" ] && [ ! -e "$CFS/target/vhost/$wwpn" ] || fail "vm1 left: $(tree | grep -E "vm1|$wwpn" | head -3)"
[ -e "$DEV/lb" ] || fail "lb was removed too"
expect_exit 0 "$SCUSE" tcmu delete vm1 --configfs "$CFS" || true
grep -q "nothing to delete" "$W/.out" || fail "second delete: $(cat "$W/.out")"
expect_exit 0 "$SCUSE" tcmu delete lb --configfs "$CFS" || true
[ "$(tree)" = "$(printf '.\n./target\n./target/core\n./target/loopback\n./target/vhost')" ] || fail "left: $(tree | tr '\n' ' ')"
case_end

case_begin "command policy: kept in dev_config, shown by list, bad ones refused naming the token"
if expect_exit 0 "$SCUSE" tcmu create pol disk.raw --fabric none --policy deny=UNMAP:write-same-16 \
        --configfs "$CFS"; then
    grep -q "^dev_config=scuse/raw;deny=42+93@$T/disk.raw,dev_size=67108864," "$DEV/pol/control" ||
        fail "control: $(cat "$DEV/pol/control")"
    grep -qx "commands: deny=42:93" "$W/.out" || fail "create did not print the policy: $(cat "$W/.out")"
fi
# (LIO shows the control string's dev_config in attrib/dev_config.)
echo "scuse/raw;deny=42+93@$T/disk.raw" > "$DEV/pol/attrib/dev_config"
# The same again: nothing changes; another policy for the same name: refused.
before=$(tree)
expect_exit 0 "$SCUSE" tcmu create pol disk.raw --fabric none --policy deny=42:93 --configfs "$CFS" || true
[ "$(tree)" = "$before" ] || fail "the same policy again changed the tree"
expect_exit 1 "$SCUSE" tcmu create pol disk.raw --fabric none --policy deny=42 --configfs "$CFS" &&
    stderr_one_line && stderr_names "exists with dev_config" || true
[ "$(tree)" = "$before" ] || fail "another policy for an existing backstore changed the tree"
printf '# reads only\nallow\nTEST UNIT READY\nINQUIRY\nREAD CAPACITY(10)\nREAD_CAPACITY_16 # 9e/10\nREAD(10)\n' >ro.policy
if expect_exit 0 "$SCUSE" tcmu create ro img.qcow2 --fabric none --policy-file ro.policy --configfs "$CFS"; then
    grep -q "^dev_config=scuse/qcow2;allow=00+12+25+9e/10+28@$T/img.qcow2," "$DEV/ro/control" ||
        fail "control: $(cat "$DEV/ro/control")"
fi
echo "scuse/qcow2;allow=00+12+25+9e/10+28@$T/img.qcow2" > "$DEV/ro/attrib/dev_config"
if expect_exit 0 "$SCUSE" tcmu list --configfs "$CFS"; then
    grep -qE "^pol +raw .* none +- +deny=42:93 +$T/disk.raw$" "$W/.out" || fail "pol line: $(cat "$W/.out")"
    grep -qE "^ro +qcow2 .* none +- +allow=00:12:25:9e/10:28 +$T/img.qcow2$" "$W/.out" ||
        fail "ro line: $(cat "$W/.out")"
fi
expect_exit 0 "$SCUSE" tcmu delete pol --configfs "$CFS" || true
expect_exit 0 "$SCUSE" tcmu delete ro --configfs "$CFS" || true
# Bad policies: exit 1, one line naming the option and the token.
for args in "--policy deny=UNMAP:WRITE_SAME_32|--policy: unknown command 'WRITE_SAME_32'" \
    "--policy refuse=42|--policy: 'refuse=42': a policy starts with allow= or deny=" \
    "--policy allow=|--policy: allow= lists no commands" \
    "--policy deny=9e/11|--policy: '9e/11' is not a command scuse serves" \
    "--policy-file nope.policy|--policy-file: 'nope.policy': No such file" \
    "--policy deny=42 --policy-file ro.policy|--policy-file after --policy"; do
    want=${args#*|}
    # shellcheck disable=SC2086
    if expect_exit 1 "$SCUSE" tcmu create x disk.raw ${args%%|*} --configfs "$CFS"; then
        stderr_one_line || true
        stderr_names "$want" || true
    fi
done
printf 'deny\nUNMAP\nFORMAT UNIT\n' >bad.policy
expect_exit 1 "$SCUSE" tcmu create x disk.raw --policy-file bad.policy --configfs "$CFS" &&
    stderr_one_line && stderr_names "'bad.policy' line 3: unknown command 'FORMAT UNIT'" || true
expect_exit 1 "$SCUSE" tcmu list --policy deny=42 --configfs "$CFS" &&
    stderr_names "--policy is an option of create" || true
# The kernel's 255 bytes count the policy: a path that fits alone (250
# bytes of dev_config) does not with it.
pad=$((250 - ${#T} - 15))
long=$T/$(printf 'd%.0s' $(seq "$pad")).raw
cp disk.raw "$long"
expect_exit 0 "$SCUSE" tcmu create long "$long" --fabric none --configfs "$CFS" || true
expect_exit 0 "$SCUSE" tcmu delete long --configfs "$CFS" || true
if expect_exit 2 "$SCUSE" tcmu create long "$long" --fabric none --configfs "$CFS" \
        --policy allow=INQUIRY; then
    stderr_one_line || true
    stderr_names "and its command policy would be" || true
fi
rm -f "$long"
[ ! -e "$DEV/x" ] && [ ! -e "$DEV/long" ] || fail "a refused create left a backstore"
case_end

case_begin "bad arguments: exit 1, one line naming the field"
for args in "--block-size 1000" "--max-sectors 0" "--max-sectors abc" "--data-area-mb 1" \
    "--wwpn naa.123" "--wwpn iqn.2003-01.x" "--fabric iscsi" "--serial ab,cd"; do
    field=${args%% *}
    [ "$field" = "--data-area-mb" ] && field="data-area-mb"
    # shellcheck disable=SC2086
    if expect_exit 1 "$SCUSE" tcmu create x img.qcow2 $args --configfs "$CFS"; then
        stderr_one_line || true
        stderr_names "$field" || true
    fi
done
expect_exit 1 "$SCUSE" tcmu create a/b img.qcow2 --configfs "$CFS" && stderr_names "NAME" || true
expect_exit 1 "$SCUSE" tcmu create onlyname --configfs "$CFS" && stderr_one_line || true
expect_exit 1 "$SCUSE" tcmu frob && stderr_one_line || true
expect_exit 1 "$SCUSE" tcmu delete --configfs "$CFS" && stderr_one_line || true
[ ! -e "$DEV/x" ] || fail "a refused create left $DEV/x"
case_end

case_begin "bad images: exit 2, one line naming the image"
if expect_exit 2 "$SCUSE" tcmu create x nosuch.qcow2 --configfs "$CFS"; then
    stderr_one_line || true
    stderr_names nosuch.qcow2 || true
fi
expect_exit 2 "$SCUSE" tcmu create x img.qcow2 -f vmdk42 --configfs "$CFS" && stderr_one_line || true
cp img.qcow2 'a,b.qcow2'
if expect_exit 2 "$SCUSE" tcmu create x 'a,b.qcow2' --configfs "$CFS"; then
    stderr_one_line || true
    stderr_mentions comma || true
fi
printf 'QFI\xfb' > broken.qcow2
expect_exit 2 "$SCUSE" tcmu create x broken.qcow2 -f qcow2 --configfs "$CFS" && stderr_one_line || true
[ ! -e "$DEV/x" ] || fail "a refused create left $DEV/x"
case_end

case_begin "no LIO: create says which module; serve without TCM-USER exits, never hangs"
mkdir -p nolio
if expect_exit 1 "$SCUSE" tcmu create x img.qcow2 --configfs "$T/nolio"; then
    stderr_one_line || true
    stderr_mentions "modprobe target_core_user" || true
fi
if [ ! -d /sys/module/target_core_user ]; then
    RUN_TIMEOUT=20
    if expect_exit 1 "$SCUSE" tcmu serve --configfs "$CFS" --sysfs "$T/nosys"; then
        stderr_one_line || true
        stderr_mentions "TCM-USER" || true
    fi
    RUN_TIMEOUT=120
fi
case_end

finish
