#!/bin/sh
# End-to-end tests of `tern config check` through the real binary.
# Data-driven: each tests/data/config/NAME.yaml is checked from inside that
# directory (so relative paths and file names in the output are stable) and
# stdout+stderr are compared with NAME.out; NAME.rc holds the expected exit
# code (default 0). Adding a case is adding files. Then: the usage contract
# and the demo configuration.
set -u
tern=$1
src=$2
data="$src/tests/data/config"
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
case $tern in /*) ;; *) tern="$(pwd)/$tern" ;; esac

for f in "$data"/*.yaml; do
    name=$(basename "$f" .yaml)
    (cd "$data" && "$tern" config check -c "$name.yaml") >"$tmp/out" 2>&1; rc=$?
    want_rc=0; [ -f "$data/$name.rc" ] && want_rc=$(cat "$data/$name.rc")
    if [ "$rc" != "$want_rc" ]; then
        echo "FAIL $name: exit $rc, want $want_rc"; fail=1
    elif ! cmp -s "$data/$name.out" "$tmp/out"; then
        echo "FAIL $name"; diff "$data/$name.out" "$tmp/out" | head -20; fail=1
    else
        echo "ok   $name"
    fi
done

expect() { # description want_rc pattern command...
    d=$1 want=$2 pat=$3; shift 3
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" = "$want" ] && printf '%s\n' "$out" | grep -q -- "$pat"; then
        echo "ok   $d"
    else
        echo "FAIL $d (exit $rc, want $want): $out"; fail=1
    fi
}
expect "config --help" 0 "usage: tern config check -c FILE" "$tern" config --help
expect "config check --help" 0 "FILE:LINE:COL: error: TEXT" "$tern" config check --help
expect "help config" 0 "usage: tern config" "$tern" help config
expect "config (no command)" 2 "needs a command" "$tern" config
expect "config unknown command" 2 "unknown command 'frob'" "$tern" config frob
expect "config unknown option" 2 "unknown option '--frob'" "$tern" config --frob
expect "check unknown option" 2 "unknown option '--frob'" "$tern" config check --frob
expect "check without -c" 2 "needs -c FILE" "$tern" config check
expect "check -c without FILE" 2 "\-c needs a FILE" "$tern" config check -c
expect "check stray argument" 2 "unexpected argument 'x.yaml'" "$tern" config check -c a.yaml x.yaml
expect "check missing file" 1 \
    "^$tmp/none.yaml: error: cannot open the configuration: No such file or directory$" \
    "$tern" config check -c "$tmp/none.yaml"
expect "check --config" 0 ": ok (2 channels" "$tern" config check --config "$data/issue_example.yaml"
expect "demo configuration" 0 \
    "tern.yaml: ok (4 channels: adt-in (mllp 127.0.0.1:2575 → archive, downstream, fhir), lab-files" \
    "$tern" config check -c "$src/examples/demo/tern.yaml"

# Errors go to stderr, the summary to stdout.
"$tern" config check -c "$data/issue_example.yaml" 2>/dev/null | grep -q ": ok" \
    && echo "ok   summary on stdout" || { echo "FAIL summary not on stdout"; fail=1; }
n=$("$tern" config check -c "$data/unknown_types.yaml" 2>&1 >/dev/null | grep -c ": error: ")
[ "$n" = 6 ] && echo "ok   errors on stderr" || { echo "FAIL errors on stderr ($n)"; fail=1; }
exit $fail
