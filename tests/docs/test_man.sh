#!/usr/bin/env bash
# The man pages (docs/*.[1-8]) format without a single groff warning: a
# line that starts with ' or . inside running text, an unknown macro or a
# bad escape is otherwise silently dropped from what the user reads.
set -euo pipefail
: "${SCUSE_SRC:?}"
T=${SCUSE_TEST_TMP:-/tmp/scuse-man}
rm -rf "$T"
mkdir -p "$T"
. "$(dirname "$0")/../lib/need.sh"
need groff
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
lint() { groff -man -Tutf8 -ww -z "$1" 2>&1; }

n=0
for m in "$SCUSE_SRC"/docs/*.[1-8]; do
    n=$((n + 1))
    w=$(lint "$m")
    if [ -z "$w" ]; then ok "$(basename "$m"): no groff warnings"; else bad "$(basename "$m"): $w"; fi
done
[ "$n" -gt 0 ] || bad "no man pages under $SCUSE_SRC/docs"

# The check can fail: a running-text line that starts with a quote is a
# control line to troff, and is reported.
printf '.TH T 1\n.SH NAME\nt \\- t\n.SH DESCRIPTION\nsaid\n'"'"'00:61:00'"'"': no\n' >"$T/bad.1"
if [ -n "$(lint "$T/bad.1")" ]; then ok "a line starting with a quote is reported"; else bad "a broken page passed"; fi

echo "----"
[ "$fails" -eq 0 ] && echo "test_man: all passed" || { echo "test_man: $fails failure(s)"; exit 1; }
