# Real images made by other tools (Hyper-V, Virtual PC, disk2vhd, ...), from
# QEMU's source tree (tests/qemu-iotests/sample_images), fetched once with
# `apt-get source` through a temporary sources list that leaves the
# system's apt setup alone, and kept in a cache shared by the build.
#
#   qemu_sample NAME OUT    decompress sample NAME (e.g. hyperv2012r2-dynamic.vhd)
#                           to OUT; returns 1 (with a reason on stderr) when
#                           the samples cannot be had
#
# Cache: $SCUSE_SAMPLES, default <build>/tests/qemu-samples (next to the
# tests' scratch directories).
. "$(dirname "${BASH_SOURCE[0]}")/../../lib/scratch.sh"
: "${SCUSE_SAMPLES:=$(cd "$SCUSE_TEST_TMP/../.." 2>/dev/null && pwd)/qemu-samples}"

qemu_samples_fetch() {
    local dir=$SCUSE_SAMPLES
    [ -f "$dir/.complete" ] && return 0
    command -v apt-get >/dev/null 2>&1 || { echo "qemu_samples: no apt-get" >&2; return 1; }
    local tmp
    tmp=$(scratch_dir "${TMPDIR:-/tmp}/scuse-qsrc.")
    mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
    # The release the installed qemu-img comes from, as a deb-src line.
    local key=/usr/share/keyrings/debian-archive-keyring.gpg suite
    suite=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-bookworm}")
    {
        echo "deb-src [signed-by=$key] http://deb.debian.org/debian $suite main"
        echo "deb-src [signed-by=$key] http://deb.debian.org/debian-security $suite-security main"
    } >"$tmp/sources.list"
    local -a o=(-o "Dir::Etc::SourceList=$tmp/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
                -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -q)
    if ! (timeout 300 apt-get "${o[@]}" update && cd "$tmp" &&
          timeout 600 apt-get "${o[@]}" source --download-only qemu) >"$tmp/log" 2>&1; then
        echo "qemu_samples: apt-get source qemu failed: $(tail -n 2 "$tmp/log" | tr '\n' ' ')" >&2
        rm -rf "$tmp"
        return 1
    fi
    local tarball
    tarball=$(ls "$tmp"/qemu_*.orig.tar.* 2>/dev/null | head -n 1)
    mkdir -p "$dir"
    if [ -z "$tarball" ] || ! tar -xf "$tarball" -C "$dir" --wildcards --strip-components=4 \
            '*/tests/qemu-iotests/sample_images/*' 2>"$tmp/log"; then
        echo "qemu_samples: no sample images in the qemu source: $(head -n 2 "$tmp/log")" >&2
        rm -rf "$tmp"
        return 1
    fi
    rm -rf "$tmp"
    touch "$dir/.complete"
}

qemu_sample() { # NAME OUT
    qemu_samples_fetch || return 1
    if [ ! -f "$SCUSE_SAMPLES/$1.bz2" ]; then
        echo "qemu_samples: $1 is not among QEMU's sample images" >&2
        return 1
    fi
    bzip2 -dc "$SCUSE_SAMPLES/$1.bz2" >"$2"
}
