#!/usr/bin/env bash
# scuse build driver.
#   ./build.sh          build into build/
#   ./build.sh test     install what is missing (Debian), build, run every test
#   ./build.sh release  a Release (-O3) build into build-release, its unit and
#                       install tests, and a -DBUILD_TESTING=OFF configure
#   ./build.sh asan     the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   ./build.sh tsan     the tests that run threads against each other, under ThreadSanitizer
#   ./build.sh fuzz     build the libFuzzer targets with clang and run each briefly
#   ./build.sh demo     the main job on a built-in sample: a guest boots from a
#                       qcow2 chain served by scuse serve
#   ./build.sh demo-tools  info/map/convert on the same kind of chain
#   ./build.sh demo-cd  an ISO served as a CD-ROM: SeaBIOS boots it, Linux mounts it
#   ./build.sh bench    side-by-side benchmarks against qemu-img (convert, then I/O, then VMDK, VHD/VHDX)
# Every mode builds with -Werror (SCUSE_WERROR; a plain cmake build has it
# off), and every test run fails when ctest skipped a test (a missing
# oracle is a failure here, not a pass).
set -euo pipefail
cd "$(dirname "$0")"
top=$PWD
jobs=$(nproc 2>/dev/null || echo 2)

# Debian packages the build and the tests need: qemu-utils is the oracle;
# qemu-system-x86, cpio, kmod, xz-utils and binutils make and boot the test
# guests (tests/vm, tests/vhost); libnl-genl talks to the kernel's TCMU;
# libvirt-clients brings virt-xml-validate and libvirt's schemas; libxml2
# parses and writes domain XML; libvirt-daemon(-driver-qemu) is the real
# libvirtd tests/vm/test_libvirt.sh runs (a session daemon of its own);
# python3-libvmdk is the second opinion on VMDK reads; libvhdi and libqcow
# read VHDX and qcow version 1 (formats/yal) and libvmdk (libvmdk-dev, its
# header needs libbfio-dev) the VMDK variants formats/vmdk refuses; libvhdi (and vhdiinfo) is
# also the VHD tests' second opinion, bzip2 unpacks QEMU's sample images;
# libjansson parses the control socket's JSON; groff-base checks the man pages.
PKGS=(build-essential cmake pkg-config libdeflate-dev libzstd-dev libcmocka-dev
      qemu-utils clang libclang-rt-14-dev python3 time
      qemu-system-x86 cpio kmod xz-utils binutils
      libnl-3-dev libnl-genl-3-dev libvirt-clients python3-libvmdk libxml2-dev
      libvirt-daemon libvirt-daemon-driver-qemu util-linux
      libvhdi-dev libvhdi-utils libqcow-dev libvmdk-dev libbfio-dev bzip2 libjansson-dev
      xorriso bchunk libcdio-utils groff-base)

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

# The programs the tests are judged by or cannot run without (the
# packages above bring them): a test missing one would only be skipped.
ORACLES=(qemu-img qemu-io qemu-system-x86_64 virt-xml-validate python3 as ld cpio depmod xz groff)

check_oracles() {
    local missing=() t
    for t in "${ORACLES[@]}"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
    if [ ${#missing[@]} -ne 0 ]; then
        echo "build.sh: the tests need ${missing[*]}, not found after installing ${PKGS[*]}" >&2
        exit 1
    fi
}

configure_build() { # dir, cmake args...
    local dir=$1; shift
    cmake -S "$top" -B "$dir" -DSCUSE_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j"$jobs"
}

# ctest, then its JUnit report: a skipped test fails the run, named with
# the reason it gave (its last SKIP line).
run_ctest() { # dir, ctest args...
    local dir=$1; shift
    local junit=$top/$dir/Testing/junit.xml rc=0
    rm -f "$junit"
    ctest --test-dir "$dir" --output-on-failure -j"$jobs" --output-junit "$junit" "$@" || rc=$?
    [ -f "$junit" ] || { echo "build.sh: ctest wrote no $junit" >&2; exit 1; }
    local skipped
    skipped=$(python3 - "$junit" <<'EOF'
import sys, xml.etree.ElementTree as ET
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    if case.find("skipped") is not None:
        out = (case.findtext("system-out") or "").splitlines()
        why = [l for l in out if l.startswith("SKIP")] or out[-1:] or ["(no reason given)"]
        print("  %s: %s" % (case.get("name"), why[-1].strip()))
EOF
    )
    if [ -n "$skipped" ]; then
        echo "build.sh: ctest skipped tests; a skip is a failure here:" >&2
        echo "$skipped" >&2
        exit 1
    fi
    return "$rc"
}

mode=${1:-build}
case "$mode" in
build)
    configure_build build
    ;;
test)
    install_deps
    check_oracles
    configure_build build
    run_ctest build
    ;;
release)
    # What a packager builds: -O3, where GCC warns about more than at -O2.
    # A smoke (--version, the unit tests, cmake --install into a DESTDIR),
    # then a configure with the tests off, which must not need cmocka.
    install_deps
    check_oracles
    configure_build build-release -DCMAKE_BUILD_TYPE=Release
    v=$(build-release/scuse --version)
    echo "build.sh: $v"
    [[ $v =~ ^scuse\ version\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "build.sh: bad --version: '$v'" >&2; exit 1; }
    run_ctest build-release -L 'unit|install'
    rm -rf build-release-notests
    configure_build build-release-notests -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF
    if grep -rqi cmocka build-release-notests --include=CMakeCache.txt --include='*.make' --include=link.txt; then
        echo "build.sh: a -DBUILD_TESTING=OFF build still uses cmocka" >&2
        exit 1
    fi
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
demo-cd)
    install_deps
    configure_build build
    SCUSE="$top/build/scuse" bash "$top/samples/demo_cd.sh"
    ;;
bench)
    install_deps
    configure_build build
    SCUSE="$top/build/scuse" bash "$top/tests/bench/convert.sh"
    SCUSE="$top/build/scuse" bash "$top/tests/bench/peer.sh"
    SCUSE="$top/build/scuse" bash "$top/tests/bench/vmdk.sh"
    SCUSE="$top/build/scuse" bash "$top/tests/bench/vhd.sh"
    ;;
*)
    echo "usage: $0 [test|release|asan|tsan|fuzz|demo|demo-tools|demo-cd|bench]" >&2
    exit 1
    ;;
esac
