#!/usr/bin/env bash
# The format registry as a user meets it: images of formats scuse does not
# serve yet (made here by qemu-img) are recognised and refused by name by
# every tool, never opened as raw; format names and aliases come from the
# registry (scuse --help, create -o help, the error lists); a probed raw
# image stays raw.
. "$(dirname "$0")/lib/common.sh"

# format name for qemu-img, extra create options, the name scuse says
refused=(
    "qed||QED"
    "vdi||VDI"
)

n=0
for spec in "${refused[@]}"; do
    IFS='|' read -r qfmt qopts said <<<"$spec"
    n=$((n + 1))
    img=img$n.$qfmt
    # shellcheck disable=SC2086
    qemu-img create -q -f "$qfmt" $qopts "$img" 4M
    qemu-io -f "$qfmt" -c "write -P 0x5a 0 64k" "$img" >/dev/null
    case_begin "$qfmt $qopts: refused by name, never raw"
    # check keeps qemu-img's code for an image it cannot open: 1
    for cmd in "info" "info --output=json" "map" "check" "io -c flush" "bench --count 1"; do
        want=2
        [ "$cmd" = check ] && want=1
        # shellcheck disable=SC2086
        if expect_exit $want "$SCUSE" $cmd "$img"; then
            stderr_one_line || true
            stderr_names "'$img' is a $said image; scuse cannot open $said yet" || true
        fi
    done
    if expect_exit 2 "$SCUSE" convert "$img" out.raw; then
        stderr_names "is a $said image" || true
    fi
    [ ! -s out.raw ] || fail "convert wrote an output"
    rm -f out.raw
    # Named explicitly: the same refusal, by the format's name.
    if expect_exit 2 "$SCUSE" info -f "$qfmt" "$img"; then
        stderr_names "scuse cannot open $said images yet" || true
    fi
    # The image is unchanged (a refused open never writes): qemu-img
    # still reads the data, and checks it clean where it can check (63:
    # qemu-img has no check for this format).
    qemu-io -f "$qfmt" -c "read -P 0x5a 0 64k" "$img" >/dev/null 2>&1 ||
        fail "qemu-io no longer reads the data scuse looked at"
    rc=0
    qemu-img check -q -f "$qfmt" "$img" >/dev/null 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || [ "$rc" -eq 63 ] || fail "qemu-img check exits $rc after scuse looked at it"
    case_end
done

case_begin "names and aliases from the registry"
if expect_exit 0 "$SCUSE" --help; then
    for f in qcow2 raw vmdk vpc vhdx qcow qed vdi; do
        grep -Eq "^  $f( |$)" "$W/.out" || fail "scuse --help does not list $f"
    done
    grep -q '(vhd)' "$W/.out" || fail "scuse --help does not give vpc's alias vhd"
fi
# the alias is the same format (VHD: QEMU's and libvirt's vpc)
qemu-img create -q -f vpc alias.vhd 4M
if expect_exit 0 "$SCUSE" info -f vhd alias.vhd; then
    grep -q '^file format: vpc$' "$W/.out" || fail "info -f vhd does not say vpc: $(head -n 2 "$W/.out")"
fi
if expect_exit 2 "$SCUSE" info -f nosuch img1.qed; then
    stderr_mentions "unknown format 'nosuch'.*qcow2, raw" "the formats scuse opens" || true
fi
case_end

case_begin "create: -o help lists each format's options; unknown ones are named"
if expect_exit 0 "$SCUSE" create -f qcow2 -o help; then
    for o in cluster_size compat compression_type extended_l2 lazy_refcounts preallocation \
             refcount_bits backing_file backing_fmt size; do
        grep -q "^  $o=" "$W/.out" || fail "create -f qcow2 -o help does not list $o"
    done
    grep -q "data_file" "$W/.out" && fail "-o help lists data_file, which scuse refuses"
fi
if expect_exit 0 "$SCUSE" create -f raw -o help; then
    grep -q "^  preallocation=" "$W/.out" || fail "create -f raw -o help does not list preallocation"
    grep -q "backing_file" "$W/.out" && fail "raw lists backing_file"
fi
if expect_exit 1 "$SCUSE" create -f qcow2 -o nosuch=1 n.qcow2 1M; then
    stderr_mentions "unknown option 'nosuch'.*cluster_size" "the bad key and the good ones" || true
fi
if expect_exit 1 "$SCUSE" create -f qcow2 -o data_file=d.raw n.qcow2 1M; then
    stderr_mentions "external data file" "why data_file is refused" || true
fi
if expect_exit 1 "$SCUSE" create -f qed n.qed 1M; then
    stderr_mentions "cannot create QED images yet" || true
fi
[ ! -e n.qed ] || fail "a refused create left n.qed"
if expect_exit 1 "$SCUSE" create -f vhdx n.vhdx 1M; then
    stderr_mentions "cannot create vhdx images" || true
fi
[ ! -e n.vhdx ] || fail "a refused create left n.vhdx"
if expect_exit 1 "$SCUSE" create -f raw -b img1.qed -F qed n.raw 1M; then
    stderr_mentions "raw images cannot have a backing file" || true
fi
if expect_exit 1 "$SCUSE" convert -O qed img1.qed x.qed; then
    stderr_mentions "output format 'qed' is not supported \(qcow2, raw, vmdk, vpc\)" || true
fi
qemu-img create -q -f qcow2 src.qcow2 1M
if expect_exit 1 "$SCUSE" convert -c -O raw src.qcow2 x.raw; then
    stderr_mentions "-c needs an output format that stores compressed clusters \(qcow2, vmdk\)" || true
fi
case_end

case_begin "per-format open options: qcow2's reach it, others are refused by name"
if expect_exit 0 "$SCUSE" map --l2-cache-size 64k src.qcow2; then :; fi
qemu-img create -q -f raw r.raw 1M
if expect_exit 2 "$SCUSE" map -f raw --l2-cache-size 64k r.raw; then
    stderr_mentions "unknown option 'l2-cache-size' \(raw images take open options: none\)" || true
fi
case_end

finish
