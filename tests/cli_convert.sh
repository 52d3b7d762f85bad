#!/bin/sh
# End-to-end tests of `tern convert`: one Bundle per message (a batch file
# gives one per message), PUT entries with stable ids across files, exit 1
# with the reason on stderr for a type that is not converted (the others are
# still printed), exit 2 for usage errors, and --help.
set -u
tern=$1
src=$2
fail=0
. "$src/tests/lib/common.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

count() { grep -c '"resourceType":"Bundle"' "$1"; }

"$tern" convert --compact "$src/examples/messages/lab_batch.hl7" >"$tmp/out" 2>"$tmp/err"; rc=$?
if [ "$rc" = 0 ] && [ "$(count "$tmp/out")" = 2 ] && [ ! -s "$tmp/err" ]; then
    ok "batch file: two Bundles"
else
    bad "batch file: exit $rc, $(count "$tmp/out") Bundles"; cat "$tmp/err"
fi

"$tern" convert "$src/examples/messages/adt_a01.hl7" >"$tmp/adt" 2>"$tmp/err"; rc=$?
if [ "$rc" = 0 ] && grep -q '"method": "PUT"' "$tmp/adt" && grep -q '"resourceType": "Encounter"' "$tmp/adt"; then
    ok "ADT^A01: pretty Bundle with PUT entries"
else
    bad "ADT^A01: exit $rc"; cat "$tmp/err"
fi
pid_adt=$(grep -o '"url": "Patient/[0-9a-f]*"' "$tmp/adt")
pid_oru=$("$tern" convert "$src/examples/messages/oru_r01.hl7" | grep -o '"url": "Patient/[0-9a-f]*"')
if [ -n "$pid_adt" ] && [ "$pid_adt" = "$pid_oru" ]; then
    ok "same patient in ADT and ORU: same Patient id"
else
    bad "Patient ids differ: '$pid_adt' vs '$pid_oru'"
fi

"$tern" convert --compact "$src/tests/data/quality/invalid/tables.hl7" \
    "$src/tests/data/quality/valid/oru_r01.hl7" >"$tmp/out" 2>"$tmp/err"; rc=$?
if [ "$rc" = 1 ] && grep -q 'XYZ^Q99 is not converted yet' "$tmp/err" && [ "$(count "$tmp/out")" = 1 ]; then
    ok "unsupported type: exit 1, reason on stderr, the rest converted"
else
    bad "unsupported type: exit $rc"; cat "$tmp/err"
fi

"$tern" convert "$tmp/missing.hl7" >/dev/null 2>"$tmp/err"; rc=$?
[ "$rc" = 1 ] && [ -s "$tmp/err" ] && ok "missing file: exit 1" || bad "missing file: exit $rc"

for args in "" "--bogus x.hl7" "--offset 5 x.hl7"; do
    # shellcheck disable=SC2086
    "$tern" convert $args >/dev/null 2>"$tmp/err"; rc=$?
    [ "$rc" = 2 ] && [ -s "$tmp/err" ] && ok "usage '$args': exit 2" || bad "usage '$args': exit $rc"
done

"$tern" convert --help >"$tmp/out" 2>&1; rc=$?
[ "$rc" = 0 ] && grep -q '^usage: tern convert' "$tmp/out" && ok "--help" || bad "--help: exit $rc"
exit $fail
