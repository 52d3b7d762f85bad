#!/bin/sh
# End-to-end tests of `tern parse` and `tern get` through the real binary.
# Data-driven: each tests/data/hl7/parse/NAME.hl7 is parsed and compared with
# NAME.json (stdout) and, when present, NAME.err (stderr) and NAME.rc (exit
# code, default 0). Each tests/data/hl7/get/NAME.hl7 has NAME.paths (one
# path per line) and NAME.out (expected lines). Adding a case is adding files.
set -u
tern=$1
src=$2
data="$src/tests/data/hl7"
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

for f in "$data"/parse/*.hl7; do
    n=${f%.hl7}; name=$(basename "$n")
    "$tern" parse "$f" >"$tmp/out" 2>"$tmp/err"; rc=$?
    want_rc=0; [ -f "$n.rc" ] && want_rc=$(cat "$n.rc")
    [ "$rc" = "$want_rc" ] || { echo "FAIL parse/$name: exit $rc, want $want_rc"; cat "$tmp/err"; fail=1; }
    check "parse/$name" "$n.json" "$tmp/out"
    if [ -f "$n.err" ]; then sed "s|$f|FILE|" "$tmp/err" >"$tmp/err2"; check "parse/$name (stderr)" "$n.err" "$tmp/err2"; fi
done

for f in "$data"/get/*.hl7; do
    n=${f%.hl7}; name=$(basename "$n")
    # shellcheck disable=SC2046
    "$tern" get "$f" $(cat "$n.paths") >"$tmp/out" 2>"$tmp/err" || { echo "FAIL get/$name: exit $?"; cat "$tmp/err"; fail=1; }
    check "get/$name" "$n.out" "$tmp/out"
done

# stdin works the same as a file
"$tern" parse - <"$data/parse/adt_a01.hl7" >"$tmp/out"
check "parse stdin" "$data/parse/adt_a01.json" "$tmp/out"

# --stats counts
"$tern" parse --stats "$data/parse/batch.hl7" >"$tmp/out"
grep -q '^messages  2$' "$tmp/out" && grep -q '^errors    0$' "$tmp/out" \
    && grep -q '^MB/s ' "$tmp/out" || { echo "FAIL --stats"; cat "$tmp/out"; fail=1; }

# limits are configurable and errors name the field
printf 'MSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.5\rOBX|1|ED|PDF||AAAAAAAAAAAAAAAAAAAAAAAA|F\r' >"$tmp/big.hl7"
"$tern" parse --max-field 10 "$tmp/big.hl7" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc = 1 ] && grep -q 'OBX-5 is longer than the limit of 10 bytes' "$tmp/err" \
    || { echo "FAIL --max-field (rc $rc)"; cat "$tmp/err"; fail=1; }

# exit codes: get on an invalid file is 1, a bad path is 2
printf 'PID|1||x\r' >"$tmp/nomsh.hl7"
"$tern" get "$tmp/nomsh.hl7" PID-3 >/dev/null 2>&1; [ $? = 1 ] || { echo "FAIL get invalid exit"; fail=1; }
"$tern" get "$data/parse/adt_a01.hl7" PID-x >/dev/null 2>"$tmp/err"; [ $? = 2 ] || { echo "FAIL get bad path exit"; fail=1; }
grep -q "SEG\[n\]-F\[r\].C.S" "$tmp/err" || { echo "FAIL bad path message"; cat "$tmp/err"; fail=1; }
"$tern" parse /nonexistent/file >/dev/null 2>&1; [ $? = 1 ] || { echo "FAIL missing file exit"; fail=1; }

# the public edge corpus, when present: valid ones parse, invalid ones are refused
edge="$src/../shared/corpora/hl7-edge"
if [ -d "$edge" ]; then
    for f in "$edge"/*.hl7; do
        name=$(basename "$f")
        "$tern" parse "$f" >/dev/null 2>"$tmp/err"; rc=$?
        case $name in
            invalid-missing-msh.hl7|invalid-segment-header-length.hl7) want=1 ;;
            *) want=0 ;;
        esac
        [ $rc = $want ] && echo "ok   edge/$name" || { echo "FAIL edge/$name: exit $rc, want $want"; cat "$tmp/err"; fail=1; }
    done
else
    echo "skip: $edge absent (public corpus not available)"
fi
exit $fail
