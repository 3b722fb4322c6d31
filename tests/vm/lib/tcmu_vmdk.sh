# Host side of the VMDK part of test_tcmu.sh (guest side:
# guest/tests/tcmu_vmdk.sh, in the same boot).
#   tcmu_vmdk_prepare DIR   the chain vtop.vmdk over vbase.vmdk in the 9p
#                           share, its expected content ($T/vwant.raw)
#   tcmu_vmdk_judge DIR LOG the guest's digests against qemu-img's, its
#                           writes replayed and compared, qemu-img check
#                           clean, the parent unchanged
# Needs vm.sh (gen, fail, case_begin/case_end, qio).

tcmu_vmdk_prepare() {
    local d=$1
    head -c 1M /dev/urandom >"$d/vrandom.bin"
    qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse "$d/vbase.vmdk" 64M
    qio -f vmdk -c 'write -P 0x11 0 8M' -c 'write -P 0x22 16M 4M' \
        -c "write -s $d/vrandom.bin 10M 1M" -c 'write -P 0x23 40M 2M' "$d/vbase.vmdk"
    qemu-img create -q -f vmdk -o zeroed_grain=on -b vbase.vmdk -F vmdk "$d/vtop.vmdk" 64M
    qio -f vmdk -c 'write -z 0 1M' -c 'write -P 0x66 1M 64k' -c 'write -z 40M 512k' \
        -c "write -s $d/vrandom.bin 12M 1M" -c 'write -P 0x67 20M 100k' "$d/vtop.vmdk"
    rm -f "$d/vrandom.bin"
    qemu-img convert -O raw "$d/vtop.vmdk" "$T/vwant.raw"
    TCMU_VMDK_WANT0=$(sha256sum <"$T/vwant.raw" | cut -d' ' -f1)
    TCMU_VMDK_PARENT=$(cd "$d" && sha256sum vbase*.vmdk)
}

tcmu_vmdk_judge() { # DIR LOG
    local d=$1 log=$2 n=0 i off len s out
    tv_m() { sed -n "s/^@@ $1 //p" "$log"; }
    case_begin "VMDK chain over TCMU: guest reads = qemu-img convert, writes land, check clean"
    [ "$(tv_m VMDK)" = "disk $((64 << 20))" ] || fail "the VMDK LUN: '$(tv_m VMDK)' (64 MiB expected)"
    [ "$(tv_m SHA256 | awk '$1 == "vmdk" { print $3 }')" = "$TCMU_VMDK_WANT0" ] ||
        fail "the guest read the VMDK chain differently from qemu-img convert"
    while read -r i off len s; do
        gen "$i" "$off" "$len" "$s" | dd of="$T/vwant.raw" bs=512 seek=$((off / 512)) \
            conv=notrunc status=none
        n=$((n + 1))
    done < <(tv_m VWRITE)
    [ "$n" -eq 6 ] || fail "the guest reported $n VMDK writes, 6 expected"
    [ "$(tv_m VVERIFY | grep -c ' ok$')" -eq 6 ] ||
        fail "VMDK writes read back wrong: $(tv_m VVERIFY | grep -v ' ok$' | tr '\n' ' ')"
    [ "$(tv_m SHA256 | awk '$1 == "vmdk_final" { print $3 }')" = \
      "$(sha256sum <"$T/vwant.raw" | cut -d' ' -f1)" ] ||
        fail "the guest's last whole-disk read of the VMDK differs from the replayed writes"
    out=$(qemu-img check -f vmdk "$d/vtop.vmdk" 2>&1) || fail "qemu-img check -f vmdk: $out"
    out=$(qemu-img compare -f vmdk -F raw "$d/vtop.vmdk" "$T/vwant.raw" 2>&1) ||
        fail "the VMDK differs from what the guest wrote: $out"
    out=$("$SCUSE" check -f vmdk "$d/vtop.vmdk" 2>&1) || fail "scuse check -f vmdk: $out"
    [ "$TCMU_VMDK_PARENT" = "$(cd "$d" && sha256sum vbase*.vmdk)" ] || fail "the VMDK parent changed"
    [ "$(grep -c '^@@ END vmdk_\(create\|delete\) rc=0$' "$log")" -eq 2 ] ||
        fail "scuse tcmu create/delete vm0 did not both succeed"
    case_end
}
