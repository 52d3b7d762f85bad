#!/bin/sh
# End-to-end tests of `tern convert`: one Bundle per message (a batch file
# gives one per message), PUT entries with stable ids across files, exit 1
# with the reason on stderr for a type that is not converted (the others are
# still printed), exit 2 for usage errors, --tables (overrides apply, the
# built-ins stay for what the file does not name, bad files are refused with
# the reason), and --help.
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

cat >"$tmp/tables.json" <<'EOF'
{
  "authorities": {"RIVERSIDE": "https://riverside.example.org/sid/mrn"},
  "genders": {"F": "other"},
  "encounter_classes": {"I": "ACUTE|inpatient acute"},
  "allergy_severities": {"SV": "severe|low"}
}
EOF
a01="$src/tests/data/fhir/adt_a01.hl7"
"$tern" convert --compact "$a01" >"$tmp/plain" 2>"$tmp/err"
"$tern" convert --compact --tables "$tmp/tables.json" "$a01" >"$tmp/mapped" 2>"$tmp/err"; rc=$?
if [ "$rc" = 0 ] && grep -q '"gender":"other"' "$tmp/mapped" \
   && grep -q '"code":"ACUTE","display":"inpatient acute"' "$tmp/mapped" \
   && grep -q '"system":"https://riverside.example.org/sid/mrn","value":"MRN48213"' "$tmp/mapped" \
   && grep -q '"criticality":"low"' "$tmp/mapped" && ! grep -q '"criticality":"high"' "$tmp/mapped" \
   && grep -q '"gender":"female"' "$tmp/plain" && grep -q '"code":"IMP"' "$tmp/plain"; then
    ok "--tables: overrides apply (gender, encounter class, authority, severity)"
else
    bad "--tables: exit $rc"; cat "$tmp/err"
fi
if grep -q '"system":"http://hl7.org/fhir/sid/us-ssn"' "$tmp/mapped" \
   && grep -q '"category":\["medication"\]' "$tmp/mapped"; then
    ok "--tables: built-in entries stay for what the file does not name"
else
    bad "--tables: built-ins lost"
fi
pid_plain=$(grep -o '"url":"Patient/[0-9a-f]*"' "$tmp/plain" | head -1)
pid_mapped=$(grep -o '"url":"Patient/[0-9a-f]*"' "$tmp/mapped" | head -1)
if [ -n "$pid_mapped" ] && [ "$pid_plain" != "$pid_mapped" ]; then
    ok "--tables: a new identifier system gives a new Patient id"
else
    bad "--tables: Patient id unchanged by a new system"
fi

echo '{"gendrs": {"F": "female"}}' >"$tmp/unknown.json"
echo '{"genders": {"F": 1}}' >"$tmp/number.json"
printf '{"genders": {"F": "female",}' >"$tmp/broken.json"
for t in unknown:'unknown table "gendrs"' number:'key "F": the value must be a non-empty string' \
         broken:'line 1' missing:'missing.json'; do
    name=${t%%:*}; want=${t#*:}
    "$tern" convert --tables "$tmp/$name.json" "$a01" >"$tmp/out" 2>"$tmp/err"; rc=$?
    if [ "$rc" = 2 ] && grep -qF "$want" "$tmp/err" && [ ! -s "$tmp/out" ]; then
        ok "--tables $name file: exit 2 with the reason"
    else
        bad "--tables $name file: exit $rc"; cat "$tmp/err"
    fi
done

"$tern" convert --help >"$tmp/out" 2>&1; rc=$?
[ "$rc" = 0 ] && grep -q '^usage: tern convert' "$tmp/out" && ok "--help" || bad "--help: exit $rc"
exit $fail
