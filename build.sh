#!/usr/bin/env bash
# scuse build driver.
#   ./build.sh          build into build/
#   ./build.sh test     install what is missing (Debian), build, run every test
#   ./build.sh asan     the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   ./build.sh tsan     the tests that run threads against each other, under ThreadSanitizer
#   ./build.sh fuzz     build the libFuzzer targets with clang and run each briefly
#   ./build.sh demo     the main job on a built-in sample: a guest boots from a
#                       qcow2 chain served by scuse serve
#   ./build.sh demo-tools  info/map/convert on the same kind of chain
#   ./build.sh bench    side-by-side benchmarks against qemu-img (convert, then I/O, then VHD/VHDX)
set -euo pipefail
cd "$(dirname "$0")"
top=$PWD
jobs=$(nproc 2>/dev/null || echo 2)

# Debian packages the build and the tests need: qemu-utils is the oracle;
# qemu-system-x86, cpio, kmod, xz-utils and binutils make and boot the test
# guests (tests/vm, tests/vhost); libnl-genl talks to the kernel's TCMU;
# libvirt-clients brings virt-xml-validate and libvirt's schemas; libvhdi
# and libqcow read VHDX and qcow version 1 (formats/yal), libvhdi is also
# the VHD tests' second opinion, bzip2 unpacks QEMU's sample images.
PKGS=(build-essential cmake pkg-config libdeflate-dev libzstd-dev libcmocka-dev
      qemu-utils clang libclang-rt-14-dev python3 time
      qemu-system-x86 cpio kmod xz-utils binutils
      libnl-3-dev libnl-genl-3-dev libvirt-clients libvhdi-dev libqcow-dev bzip2)

install_deps() {
    local missing=()
    for p in "${PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "build.sh: missing packages: ${missing[*]} (run as root or install them)" >&2
        exit 1
    fi
    echo "build.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

configure_build() { # dir, cmake args...
    local dir=$1; shift
    cmake -S "$top" -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j"$jobs"
}

run_ctest() { # dir, ctest args...
    local dir=$1; shift
    ctest --test-dir "$dir" --output-on-failure -j"$jobs" "$@"
}

mode=${1:-build}
case "$mode" in
build)
    configure_build build
    ;;
test)
    install_deps
    configure_build build
    run_ctest build
    ;;
asan)
    install_deps
    configure_build build-asan -DSCUSE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
    # The same tests with smaller random workloads: the sanitizers look for
    # memory and UB errors on every path, the full-size runs are the
    # normal pass's (crash trials stay >= 20 there).
    SCUSE_TEST_OPS=${SCUSE_TEST_OPS:-100} SCUSE_STRESS_OPS=${SCUSE_STRESS_OPS:-1000} \
    SCUSE_CRASH_TRIALS=${SCUSE_CRASH_TRIALS:-5} SCUSE_CRASH_IMAGES=${SCUSE_CRASH_IMAGES:-8} \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run_ctest build-asan -LE 'fuzz|vm-qemu'   # QEMU-only guest runs: once, in test
    ;;
tsan)
    install_deps
    configure_build build-tsan -DSCUSE_TSAN=ON
    # Label concurrency: the dispatcher, qcow2, copy-engine, TCMU and
    # vhost-user tests that race threads on purpose; any report fails the
    # test (scuse serve's own exit status included).
    TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1} \
        run_ctest build-tsan -L concurrency
    ;;
fuzz)
    install_deps
    CC=clang configure_build build-fuzz -DSCUSE_FUZZ=ON
    run_ctest build-fuzz -L fuzz
    ;;
demo)
    install_deps
    configure_build build
    SCUSE="$top/build/scuse" bash "$top/samples/demo.sh"
    ;;
demo-tools)
    install_deps
    configure_build build
    SCUSE="$top/build/scuse" bash "$top/samples/demo_tools.sh"
    ;;
bench)
    install_deps
    configure_build build
    SCUSE="$top/build/scuse" bash "$top/tests/bench/convert.sh"
    SCUSE="$top/build/scuse" bash "$top/tests/bench/peer.sh"
    SCUSE="$top/build/scuse" bash "$top/tests/bench/vhd.sh"
    ;;
*)
    echo "usage: $0 [test|asan|tsan|fuzz|demo|demo-tools|bench]" >&2
    exit 1
    ;;
esac
