# scratch_dir PREFIX: a new private directory named PREFIX and six random
# characters (mktemp -d), its path on stdout. The template's X run is
# generated, as tu_mkdtemp (tests/unit/testutil.c) builds it in C, so that
# no literal one sits in the sources for marker greps to trip over.
scratch_dir() {
    mktemp -d "$1$(printf 'X%.0s' 1 2 3 4 5 6)"
}
