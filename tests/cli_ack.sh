#!/bin/sh
# End-to-end tests of `tern ack` through the real binary.
# Data-driven: for each tests/data/hl7/ack/NAME.hl7 the command
#   tern ack --timestamp 20250102030405+0100 [ARGS] NAME.hl7
# must print NAME.ack. ARGS are the lines of NAME.args (one argument per
# line) or, without that file, `--control-id ACK1`. NAME.rc is the expected
# exit code (default 0) and NAME.err, when present, the expected stderr with
# the file name replaced by FILE. Cases named nak-* are inputs that do not
# parse. Adding a case is adding files. Then exit codes, --raw, stdin and the
# defaults are checked.
set -u
tern=$1
src=$2
data="$src/tests/data/hl7/ack"
ts=20250102030405+0100
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check() { # name expected actual
    if ! cmp -s "$2" "$3"; then
        echo "FAIL $1"; diff "$2" "$3" | head -20; fail=1
    else
        echo "ok   $1"
    fi
}

expect_rc() { # name want got
    [ "$2" = "$3" ] || { echo "FAIL $1: exit $3, want $2"; cat "$tmp/err"; fail=1; }
}

run_case() { # file.hl7 [extra args...]: runs tern ack with the case's arguments
    f=$1; shift
    n=${f%.hl7}
    if [ -f "$n.args" ]; then
        while IFS= read -r a; do set -- "$@" "$a"; done <"$n.args"
    else
        set -- "$@" --control-id ACK1
    fi
    "$tern" ack --timestamp "$ts" "$@" "$f" >"$tmp/out" 2>"$tmp/err"
}

cases=0
for f in "$data"/*.hl7; do
    n=${f%.hl7}; name=$(basename "$n")
    cases=$((cases + 1))
    run_case "$f"; rc=$?
    want_rc=0; [ -f "$n.rc" ] && want_rc=$(cat "$n.rc")
    expect_rc "ack/$name" "$want_rc" "$rc"
    check "ack/$name" "$n.ack" "$tmp/out"
    if [ -f "$n.err" ]; then
        sed "s|$f|FILE|" "$tmp/err" >"$tmp/err2"
        check "ack/$name (stderr)" "$n.err" "$tmp/err2"
    fi
    # --raw: the same segments, each ended by CR, and not a single LF
    run_case "$f" --raw
    tr '\r' '\n' <"$tmp/out" >"$tmp/raw"
    check "ack/$name (--raw)" "$n.ack" "$tmp/raw"
    [ "$(tr -cd '\n' <"$tmp/out" | wc -c)" -eq 0 ] || { echo "FAIL ack/$name: LF in --raw output"; fail=1; }
    [ "$(tr -cd '\r' <"$tmp/out" | wc -c)" -ge 2 ] || { echo "FAIL ack/$name: no CR in --raw output"; fail=1; }
done
[ "$cases" -ge 10 ] || { echo "FAIL only $cases cases found in $data"; fail=1; }

# every NAK case fails with exit 1 and one error line naming file and byte
for f in "$data"/nak-*.hl7; do
    name=$(basename "$f" .hl7)
    run_case "$f"; rc=$?
    expect_rc "$name exit" 1 "$rc"
    grep -q "^tern ack: $f: .* (byte [0-9]*)\$" "$tmp/err" && [ "$(wc -l <"$tmp/err")" -eq 1 ] \
        || { echo "FAIL $name: stderr"; cat "$tmp/err"; fail=1; }
    grep -q '^MSA|[AC]R|' "$tmp/out" || { echo "FAIL $name: not a reject"; cat "$tmp/out"; fail=1; }
done

# standard input is the same as a file
"$tern" ack --timestamp "$ts" --control-id ACK1 - <"$data/adt_a01.hl7" >"$tmp/out" 2>"$tmp/err"
expect_rc "stdin" 0 $?
check "stdin" "$data/adt_a01.ack" "$tmp/out"

# defaults: timestamp is now (YYYYMMDDHHMMSS+/-ZZZZ), control id ACK + MSH-10
"$tern" ack "$data/adt_a01.hl7" >"$tmp/out" 2>"$tmp/err"
expect_rc "defaults" 0 $?
grep -Eq '^MSH\|\^~\\&\|LABSYS\|LAB\|EPIC\|[^|]*\|[0-9]{14}[+-][0-9]{4}\|\|ACK\^A01\^ACK\|ACKMSG00001\|P\|2\.5\.1$' \
    "$tmp/out" || { echo "FAIL defaults"; cat "$tmp/out"; fail=1; }
grep -q '^MSA|AA|MSG00001$' "$tmp/out" || { echo "FAIL default code"; cat "$tmp/out"; fail=1; }
# an --error without --code makes it an AE (CE in enhanced mode)
"$tern" ack --error 207 "$data/enhanced_commit.hl7" >"$tmp/out" 2>"$tmp/err"
grep -q '^MSA|CE|ORD-778$' "$tmp/out" || { echo "FAIL error default code"; cat "$tmp/out"; fail=1; }

# an ACK of an ACK is printed, with a note
"$tern" ack --timestamp "$ts" "$data/adt_a01.hl7" >"$tmp/ack.hl7" 2>/dev/null
"$tern" ack "$tmp/ack.hl7" >"$tmp/out" 2>"$tmp/err"
expect_rc "ack of ack" 0 $?
grep -q 'itself an ACK' "$tmp/err" || { echo "FAIL ack of ack note"; cat "$tmp/err"; fail=1; }

# usage errors: exit 2 and a one-line reason (plus the --help hint)
usage() { # name args...
    name=$1; shift
    "$tern" ack "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?
    expect_rc "usage: $name" 2 "$rc"
    head -1 "$tmp/err" | grep -q '^tern ack: ' || { echo "FAIL usage: $name message"; cat "$tmp/err"; fail=1; }
    [ -s "$tmp/out" ] && { echo "FAIL usage: $name printed to stdout"; fail=1; }
}
usage "unknown option" --bogus "$data/adt_a01.hl7"
usage "bad code" --code XX "$data/adt_a01.hl7"
usage "code missing value" "$data/adt_a01.hl7" --code
usage "bad timestamp" --timestamp 2025-01-02 "$data/adt_a01.hl7"
usage "empty control id" --control-id "" "$data/adt_a01.hl7"
usage "bad error spec" --error PID-3 "$data/adt_a01.hl7"
usage "bad error path" --error 101:PID-x "$data/adt_a01.hl7"
usage "no file"
usage "two files" "$data/adt_a01.hl7" "$data/adt_a01.hl7"
"$tern" ack --bogus x 2>&1 | grep -q "unknown option '--bogus'" || { echo "FAIL unknown option text"; fail=1; }
"$tern" ack --code XX x 2>&1 | grep -q "'XX' is not an acknowledgement code" \
    || { echo "FAIL bad code text"; fail=1; }

# help, and a file that cannot be read
"$tern" ack --help >"$tmp/out" 2>&1; expect_rc "--help" 0 $?
grep -q '^usage: tern ack' "$tmp/out" || { echo "FAIL --help text"; fail=1; }
"$tern" help ack >"$tmp/out" 2>&1; expect_rc "help ack" 0 $?
grep -q -- '--control-id' "$tmp/out" || { echo "FAIL help ack text"; fail=1; }
"$tern" ack /nonexistent/file.hl7 >"$tmp/out" 2>"$tmp/err"; expect_rc "missing file" 1 $?
grep -q "cannot open '/nonexistent/file.hl7'" "$tmp/err" || { echo "FAIL missing file text"; cat "$tmp/err"; fail=1; }

[ $fail = 0 ] && echo "all cli_ack tests passed"
exit $fail
