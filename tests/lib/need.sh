# shellcheck shell=bash
# need TOOL...: the programs a test script cannot be judged without (its
# oracles: qemu-img, QEMU, libvirt's validator; and what builds its
# inputs: python3, binutils). When any is missing the test exits 77,
# which tests/CMakeLists.txt declares as ctest's skip code, after one line
# naming each missing program and its Debian package. A skip is never a
# pass: `./build.sh test` installs these first and fails on any skip.
#   . "$SCUSE_SRC/tests/lib/need.sh"     (or a path relative to the script)
#   need qemu-img qemu-io python3

need_package() { # TOOL -> the Debian package that brings it
    case "$1" in
    qemu-img | qemu-io) echo qemu-utils ;;
    qemu-system-x86_64) echo qemu-system-x86 ;;
    virt-xml-validate | virsh) echo libvirt-clients ;;
    libvirtd) echo "libvirt-daemon libvirt-daemon-driver-qemu" ;;
    unshare | setpriv) echo util-linux ;;
    as | ld) echo binutils ;;
    depmod) echo kmod ;;
    xz) echo xz-utils ;;
    apt-get | apt-cache) echo apt ;;
    timeout | sha256sum | stdbuf) echo coreutils ;;
    cmp) echo diffutils ;;
    vhdiinfo) echo libvhdi-utils ;;
    cd-info) echo libcdio-utils ;;
    *) echo "$1" ;;
    esac
}

need() {
    local tool missing=()
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool ($(need_package "$tool"))")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local list
    list=$(printf ', %s' "${missing[@]}")
    echo "SKIP: not found: ${list#, }" >&2
    exit 77
}
