#!/usr/bin/env bash
# Build (or find in the cache) the test guest: an uncompressed vmlinux for
# QEMU's PVH entry and a gzip'd cpio initramfs for one profile.
#
#   tests/vm/guest/build.sh [--cache DIR] [--profile NAME] [--print]
#
# Prints two lines, "vmlinux PATH" and "initrd PATH". Everything comes from
# Debian packages fetched with `apt-get download` (no root install):
#   linux-image-6.1.x-amd64 (through linux-image-amd64's dependency),
#   busybox-static, sg3-utils, libsgutils2-1.46-2.
#
# Cache (DIR, default build/vm-cache):
#   DIR/guest-KEY/      unpacked packages, modules.dep, vmlinux; KEY hashes
#                       the package names and versions
#   DIR/initrd-PROFILE-KEY.cpio.gz
#                       KEY hashes the guest key, this directory's files and
#                       the binaries and extra files the profile adds
# A second run with the same packages and sources downloads and builds
# nothing. Builds are serialised by a lock on DIR/.lock.
#
# Knobs: SCUSE_VM_KERNEL_PKG (a linux-image-* package instead of the one
# linux-image-amd64 depends on), SCUSE_VM_OFFLINE=1 (never run apt-get
# update: use the newest cached guest if the package lists are missing).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../../.." && pwd)
cache=${SCUSE_VM_CACHE:-$src/build/vm-cache}
profile=base

while [ $# -gt 0 ]; do
    case "$1" in
    --cache) cache=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    *) echo "usage: $0 [--cache DIR] [--profile NAME]" >&2; exit 1 ;;
    esac
done
conf=$here/profiles/$profile.conf
[ -f "$conf" ] || { echo "guest build: no profile '$profile' ($conf)" >&2; exit 1; }

log() { echo "guest build: $*" >&2; }
die() { echo "guest build: $*" >&2; exit 1; }
# Without these the guest cannot be made: exit 77 naming them (skipped
# under ctest; build.sh test installs them and fails on a skip).
. "$here/../../lib/need.sh"
. "$here/../../lib/scratch.sh"
need apt-get apt-cache dpkg depmod cpio gzip xz sha256sum ldd

mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
exec 9>"$cache/.lock"
flock 9

# --- which packages, which versions ---------------------------------------

pkg_version() { # PKG -> candidate version ("" if unknown)
    apt-cache show --no-all-versions "$1" 2>/dev/null | sed -n 's/^Version: //p' | head -1
}

kernel_pkg() {
    if [ -n "${SCUSE_VM_KERNEL_PKG:-}" ]; then
        echo "$SCUSE_VM_KERNEL_PKG"
        return
    fi
    apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -1
}

resolve_packages() { # sets PKGS (name=version ...) or returns 1
    local kpkg v p
    # apt-cache costs ~0.5 s a call: the answer is kept while the package
    # lists stay the same.
    local lists memo
    lists=$( { echo "${SCUSE_VM_KERNEL_PKG:-}"; ls -l --time-style=+%s /var/lib/apt/lists/ 2>/dev/null; } |
             sha256sum | cut -c1-16)
    memo=$cache/resolved-$lists
    if [ -s "$memo" ]; then
        mapfile -t PKGS <"$memo"
        return 0
    fi
    kpkg=$(kernel_pkg)
    [ -n "$kpkg" ] || return 1
    PKGS=()
    for p in "$kpkg" busybox-static sg3-utils libsgutils2-1.46-2; do
        v=$(pkg_version "$p")
        [ -n "$v" ] || return 1
        PKGS+=("$p=$v")
    done
    rm -f "$cache"/resolved-*
    printf '%s\n' "${PKGS[@]}" >"$memo"
}

if ! resolve_packages; then
    if [ "${SCUSE_VM_OFFLINE:-0}" != 1 ] && [ "$(id -u)" -eq 0 ]; then
        log "package lists lack the guest packages: apt-get update"
        apt-get update -qq >&2 || true
    fi
    if ! resolve_packages; then
        newest=$(ls -td "$cache"/guest-*/ 2>/dev/null | head -1 || true)
        [ -n "$newest" ] && [ -f "$newest/ok" ] ||
            die "cannot resolve linux-image-amd64/busybox-static/sg3-utils with apt-cache and no cached guest"
        log "package lists unavailable: using the cached guest $newest"
        PKGS=()
        mapfile -t PKGS <"$newest/packages"
    fi
fi
gkey=$(printf '%s\n' "${PKGS[@]}" | sha256sum | cut -c1-16)
gdir=$cache/guest-$gkey

# --- the guest root: packages unpacked, depmod, vmlinux --------------------

extract_vmlinux() { # vmlinuz out: the xz payload after the setup code is an ELF
    local off
    off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$1" | head -1 | cut -d: -f1)
    [ -n "$off" ] || die "$1: no xz stream (is the kernel not xz-compressed?)"
    tail -c +$((off + 1)) "$1" | xz -dc --single-stream >"$2.tmp" 2>/dev/null || true
    [ "$(head -c 4 "$2.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] ||
        die "$1: the decompressed payload is not an ELF"
    mv "$2.tmp" "$2"
}

if [ ! -f "$gdir/ok" ]; then
    log "building the guest root for: ${PKGS[*]}"
    rm -rf "$gdir"
    mkdir -p "$gdir/debs" "$gdir/root"
    names=()
    for p in "${PKGS[@]}"; do names+=("$p"); done
    (cd "$gdir/debs" && apt-get download -q "${names[@]}" >&2 2>"$gdir/download.log") ||
        { cat "$gdir/download.log" >&2; die "apt-get download failed"; }
    for deb in "$gdir"/debs/*.deb; do
        dpkg -x "$deb" "$gdir/root"
    done
    kver=$(ls "$gdir/root/lib/modules" | head -1)
    [ -n "$kver" ] || die "no modules in the kernel package"
    depmod -b "$gdir/root" "$kver"
    extract_vmlinux "$gdir/root/boot/vmlinuz-$kver" "$gdir/vmlinux"
    echo "$kver" >"$gdir/kver"
    printf '%s\n' "${PKGS[@]}" >"$gdir/packages"
    rm -rf "$gdir/debs"
    touch "$gdir/ok"
    # Older guests (other package versions) and their initramfs go.
    for old in "$cache"/guest-*; do
        [ "$old" = "$gdir" ] || rm -rf "$old"
    done
    find "$cache" -maxdepth 1 -name 'initrd-*.cpio.gz' ! -name "*-$gkey-*" -delete
fi
kver=$(cat "$gdir/kver")
root=$gdir/root
moddir=$root/lib/modules/$kver

# --- the initramfs for this profile ----------------------------------------

MODULES=()
BINARIES=()
EXTRA_FILES=()
PACKAGES=()
# shellcheck source=/dev/null
. "$conf"
# The profile may add to these from the environment, for one-off runs.
read -r -a more_bins <<<"${SCUSE_VM_BINARIES:-}"
read -r -a more_files <<<"${SCUSE_VM_EXTRA_FILES:-}"
BINARIES+=("${more_bins[@]}")
EXTRA_FILES+=("${more_files[@]}")

# A profile's own PACKAGES (Debian names) are unpacked beside the guest
# root, in DIR/pkgs-KEY/ (KEY hashes their names and versions), so that
# the other profiles' guest stays as it is.
xroot=
if [ ${#PACKAGES[@]} -gt 0 ]; then
    xpkgs=()
    for p in "${PACKAGES[@]}"; do
        v=$(pkg_version "$p")
        [ -n "$v" ] || die "profile $profile: package $p has no candidate version (apt-get update?)"
        xpkgs+=("$p=$v")
    done
    xdir=$cache/pkgs-$(printf '%s\n' "${xpkgs[@]}" | sha256sum | cut -c1-16)
    if [ ! -f "$xdir/ok" ]; then
        log "unpacking the $profile profile's packages: ${xpkgs[*]}"
        rm -rf "$xdir"
        mkdir -p "$xdir/debs" "$xdir/root"
        (cd "$xdir/debs" && apt-get download -q "${xpkgs[@]}" >&2 2>"$xdir/download.log") ||
            { cat "$xdir/download.log" >&2; die "apt-get download failed"; }
        for deb in "$xdir"/debs/*.deb; do dpkg -x "$deb" "$xdir/root"; done
        rm -rf "$xdir/debs"
        touch "$xdir/ok"
    fi
    xroot=$xdir/root
fi

abs_bin() {
    case "$1" in
    /*) echo "$1" ;;
    *) if [ -n "$xroot" ] && compgen -G "$xroot/$1" >/dev/null; then echo "$xroot/$1"; else echo "$root/$1"; fi ;;
    esac
}

# The initramfs key: the guest, this directory's files, the profile's lists
# and the content of every binary and extra file it adds.
ikey=$(
    {
        echo "$gkey"
        find "$here" -type f ! -name '*.swp' -print0 | sort -z | xargs -0 sha256sum
        printf 'module %s\n' "${MODULES[@]}"
        for b in "${BINARIES[@]}"; do
            for f in $(abs_bin "$b"); do sha256sum "$f"; done
        done
        for e in "${EXTRA_FILES[@]}"; do sha256sum "${e%%:*}"; echo "${e#*:}"; done
    } | sha256sum | cut -c1-16
)
initrd=$cache/initrd-$profile-$gkey-$ikey.cpio.gz

modname() { local n=${1##*/}; echo "${n%.ko}"; }

declare -A DEPS=() PATHS=() LOADED=()
read_modules_dep() { # name -> its dependencies and its path, without forks
    local line mod n
    while IFS= read -r line; do
        mod=${line%%:*}
        n=${mod##*/}
        n=${n%.ko}
        DEPS[$n]=${line#*:}
        PATHS[$n]=$mod
    done <"$moddir/modules.dep"
}

ORDER=()
add_module() { # name: its dependencies first (depth first), then itself
    local name=$1 d
    [ -n "${LOADED[$name]:-}" ] && return 0
    [ -n "${PATHS[$name]:-}" ] || die "module $name is not in $kver"
    LOADED[$name]=1
    for d in ${DEPS[$name]}; do
        add_module "$(modname "$d")"
    done
    ORDER+=("${PATHS[$name]}")
}

if [ ! -f "$initrd" ]; then
    log "building $(basename "$initrd")"
    read_modules_dep
    for m in "${MODULES[@]}"; do add_module "$m"; done
    stage=$(scratch_dir "$cache/stage.")
    trap 'rm -rf "$stage"' EXIT
    mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,mnt,etc,root}
    mkdir -p "$stage"/{lib/x86_64-linux-gnu,lib64,lib/modules/"$kver",lib/scuse,tests}
    mkdir -p "$stage"/sys/kernel/config

    # busybox and one link per applet (the guest's shell and tools)
    cp "$root/bin/busybox" "$stage/bin/busybox"
    for a in $("$root/bin/busybox" --list); do
        [ "$a" = busybox ] || ln -sf busybox "$stage/bin/$a"
    done

    # modules, at their modules.dep paths, with the dep lines that concern
    # them (so busybox modprobe works too), and the load order for /init
    : >"$stage/lib/modules/$kver/modules.dep"
    for p in "${ORDER[@]}"; do
        mkdir -p "$stage/lib/modules/$kver/$(dirname "$p")"
        cp "$moddir/$p" "$stage/lib/modules/$kver/$p"
        grep "^$p:" "$moddir/modules.dep" >>"$stage/lib/modules/$kver/modules.dep"
        echo "/lib/modules/$kver/$p" >>"$stage/etc/modules.load"
    done

    # programs and their libraries (ldd, with the unpacked libraries first)
    libpath=$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu
    [ -z "$xroot" ] || libpath=$xroot/usr/lib/x86_64-linux-gnu:$xroot/lib/x86_64-linux-gnu:$libpath
    declare -A LIBS=()
    for b in "${BINARIES[@]}"; do
        for f in $(abs_bin "$b"); do
            [ -x "$f" ] || die "binary $f not found"
            cp -L "$f" "$stage/usr/bin/$(basename "$f")"
            while read -r lib; do
                LIBS[$lib]=1
            done < <(LD_LIBRARY_PATH=$libpath ldd "$f" |
                     awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }')
            if LD_LIBRARY_PATH=$libpath ldd "$f" | grep -q 'not found'; then
                die "$f: a library is not found: $(LD_LIBRARY_PATH=$libpath ldd "$f" | grep 'not found')"
            fi
        done
    done
    for lib in "${!LIBS[@]}"; do
        cp -L "$lib" "$stage/lib/x86_64-linux-gnu/$(basename "$lib")"
    done
    if [ -f "$stage/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" ]; then
        mv "$stage/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" "$stage/lib64/"
    fi

    for e in "${EXTRA_FILES[@]}"; do
        h=${e%%:*} g=${e#*:}
        mkdir -p "$stage/$(dirname "$g")"
        cp -L "$h" "$stage/$g"
    done

    # /init, its helpers and the guest tests
    install -m 755 "$here/init" "$stage/init"
    install -m 644 "$here/lib.sh" "$stage/lib/scuse/lib.sh"
    for t in "$here"/tests/*.sh; do
        install -m 755 "$t" "$stage/tests/$(basename "$t")"
    done
    echo "$profile" >"$stage/etc/scuse-profile"
    printf '%s\n' "${PKGS[@]}" >"$stage/etc/scuse-packages"

    (cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
        gzip -1 >"$initrd.tmp"
    mv "$initrd.tmp" "$initrd"
    # Older initramfs of this profile go.
    find "$cache" -maxdepth 1 -name "initrd-$profile-*.cpio.gz" ! -name "$(basename "$initrd")" -delete
fi

echo "vmlinux $gdir/vmlinux"
echo "initrd $initrd"
