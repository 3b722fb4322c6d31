#!/usr/bin/env bash
# `cmake --install` as a packager runs it: into a scratch DESTDIR, with the
# default prefix and with --prefix /usr. Every file lands under DESTDIR
# where GNUInstallDirs puts it (bin/scuse, share/man/man1/scuse.1,
# share/doc/scuse/...), equal to its source, nothing else is installed,
# and the installed binary prints "scuse version V" for --version and -V,
# V being the project's version as CMake knows it.
set -euo pipefail
: "${CMAKE:?}" "${SCUSE_BUILD_DIR:?}" "${SCUSE_SRC:?}" "${SCUSE_VERSION:?}"
T=${SCUSE_TEST_TMP:-${TMPDIR:-/tmp}/scuse-test-install}
rm -rf "$T"
mkdir -p "$T"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

# The files a package ships, relative to the prefix; docs compared with
# their sources.
docs=(README.md docs/ARCHITECTURE.md docs/tcmu.md)
want=(bin/scuse share/man/man1/scuse.1 share/man/man5/scuse-domain.5)
for d in "${docs[@]}"; do want+=("share/doc/scuse/$(basename "$d")"); done
for x in "$SCUSE_SRC"/docs/examples/*; do want+=("share/doc/scuse/examples/$(basename "$x")"); done

check_tree() { # ROOT PREFIX WHAT
    local root=$1 prefix=$2 what=$3 f
    local p=$root$prefix
    local missing=()
    for f in "${want[@]}"; do [ -f "$p/$f" ] || missing+=("$f"); done
    if [ ${#missing[@]} -eq 0 ]; then ok "$what: every file in place"; else bad "$what: missing ${missing[*]}"; fi
    # Nothing else, and nothing outside the prefix.
    local extra
    extra=$(cd "$root" && find . -type f | sed 's|^\.||' | sort |
        comm -23 - <(for f in "${want[@]}"; do echo "$prefix/$f"; done | sort))
    [ -z "$extra" ] && ok "$what: nothing else installed" || bad "$what: unexpected files: $extra"
    [ -x "$p/bin/scuse" ] && ok "$what: bin/scuse is executable" || bad "$what: bin/scuse not executable"
    cmp -s "$SCUSE_SRC/docs/scuse.1" "$p/share/man/man1/scuse.1" && ok "$what: the man page" ||
        bad "$what: share/man/man1/scuse.1 differs from docs/scuse.1"
    cmp -s "$SCUSE_SRC/docs/scuse-domain.5" "$p/share/man/man5/scuse-domain.5" ||
        bad "$what: share/man/man5/scuse-domain.5 differs from docs/scuse-domain.5"
    for f in "${docs[@]}"; do
        cmp -s "$SCUSE_SRC/$f" "$p/share/doc/scuse/$(basename "$f")" ||
            bad "$what: share/doc/scuse/$(basename "$f") differs from $f"
    done
    for x in "$SCUSE_SRC"/docs/examples/*; do
        cmp -s "$x" "$p/share/doc/scuse/examples/$(basename "$x")" ||
            bad "$what: share/doc/scuse/examples/$(basename "$x") differs from its source"
    done
    local v
    for opt in --version -V; do
        if v=$("$p/bin/scuse" "$opt" 2>&1) && [ "$v" = "scuse version $SCUSE_VERSION" ]; then
            ok "$what: installed scuse $opt says '$v'"
        else
            bad "$what: installed scuse $opt said '$v', want 'scuse version $SCUSE_VERSION'"
        fi
    done
}

install_into() { # LOG ROOT [cmake --install args...]
    local log=$1 root=$2
    shift 2
    if ! DESTDIR=$root "$CMAKE" --install "$SCUSE_BUILD_DIR" "$@" >"$log" 2>&1; then
        bad "cmake --install $*: $(tail -n 3 "$log")"
        return 1
    fi
}

# The default prefix (CMAKE_INSTALL_PREFIX of this build) under DESTDIR.
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$SCUSE_BUILD_DIR/CMakeCache.txt")
[ -n "$prefix" ] || { echo "SETUP ERROR: no CMAKE_INSTALL_PREFIX in $SCUSE_BUILD_DIR/CMakeCache.txt" >&2; exit 1; }
install_into "$T/default.log" "$T/default" && check_tree "$T/default" "$prefix" "DESTDIR, prefix $prefix"

# A packager's --prefix /usr, with DESTDIR.
install_into "$T/usr.log" "$T/pkg" --prefix /usr && check_tree "$T/pkg" /usr "DESTDIR, --prefix /usr"

echo "----"
if [ "$fails" -ne 0 ]; then
    echo "test_install: $fails failure(s)"
    exit 1
fi
rm -rf "$T"
echo "test_install: all passed"
