#!/usr/bin/env bash
# make demo's script, as a test: the round trip succeeds, the trace shows data and
# flow control, and nothing is left behind in the directory it runs from.
#   demo.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
here=$(mktemp -d)
trap 'rm -rf "$here"' EXIT
cd "$here"
out=$(bash "$src/scripts/demo.sh" "$build")
printf '%s\n' "$out"
fail() { echo "demo test: $*" >&2; exit 1; }
grep -q '^echoed 1048576 bytes: all came back intact$' <<<"$out" || fail "no intact round trip"
grep -Eq '^1 data_received [0-9]+  \([0-9]+ calls?\)$' <<<"$out" || fail "no folded data_received line"
grep -q '^1 pause_writing ' <<<"$out" || fail "no pause_writing in the trace"
grep -q '^1 resume_writing ' <<<"$out" || fail "no resume_writing in the trace"
[ "$(tail -n 1 <<<"$out")" = "1 connection_lost ok" ] || fail "the trace does not end with connection_lost ok"
[ -z "$(ls -A "$here")" ] || fail "left files behind: $(ls -A "$here")"
