#!/bin/sh
# Validates the FHIR Bundles `tern convert` makes of the project's sample
# messages (tests/data/fhir, examples/messages, tests/data/quality/valid and
# unusual) against the official FHIR R4 JSON schema, with ajv (npm).
# tests/data/fhir holds one message per supported type (issue 6's list):
# each must exist, convert with exit 0 and give the resource its type is
# about, so a type that goes missing or unsupported fails the test. In the
# other folders, types that are not converted are skipped. A deliberately
# broken Bundle must be rejected, so the check cannot pass by validating
# nothing.
#
# The npm packages (pinned in tests/fhir_schema/package-lock.json) are
# installed once with `npm ci` into $TERN_NPM_CACHE (default
# $HOME/.cache/tern-npm)/fhir-schema-<hash of the lock file> and reused. If
# node or the npm registry is unavailable the test FAILS with the reason.
set -u
tern=$1
src=$2
fail=0
. "$src/tests/lib/common.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

pkg="$src/tests/fhir_schema"
npm_install "$pkg" fhir-schema "validate against the FHIR R4 JSON schema" || exit 1
cp "$pkg/validate.mjs" "$cache/validate.mjs"

# message type (file tests/data/fhir/<name>.hl7) -> a resource it must give
required="adt_a01:Encounter adt_a02:Location adt_a03:Encounter adt_a04:Encounter
adt_a08:Encounter adt_a11:Encounter adt_a13:Encounter adt_a28:Patient adt_a31:Patient
adt_a40:Patient oru_r01:DiagnosticReport orm_o01:ServiceRequest oml_o21:Specimen
rde_o11:MedicationRequest vxu_v04:Immunization mdm_t02:DocumentReference
siu_s12:Appointment"
n=0
for pair in $required; do
    name=${pair%%:*}; res=${pair#*:}
    f="$src/tests/data/fhir/$name.hl7"
    n=$((n + 1))
    out="$tmp/$n-$name.ndjson"
    if [ ! -f "$f" ]; then
        bad "$name: no sample message $f"; continue
    fi
    if "$tern" convert --compact "$f" >"$out" 2>"$tmp/err" && grep -q "\"resourceType\":\"$res\"" "$out"; then
        ok "$name: converted ($res)"
    else
        bad "$name: not converted or no $res"; cat "$tmp/err"
    fi
done
# every resource type of issue 6 appears in some Bundle
for res in Patient Encounter Practitioner Organization Location Observation DiagnosticReport \
           ServiceRequest Specimen MedicationRequest Medication Immunization AllergyIntolerance \
           Condition DocumentReference Appointment Coverage RelatedPerson; do
    cat "$tmp"/*.ndjson | grep -q "\"resourceType\":\"$res\"" || bad "no $res in any Bundle"
done

adt=0; oru=0
for f in "$src"/examples/messages/*.hl7 "$src"/tests/data/quality/valid/*.hl7 \
         "$src"/tests/data/quality/unusual/*.hl7; do
    n=$((n + 1))
    out="$tmp/$n-$(basename "$f" .hl7).ndjson"
    "$tern" convert --compact "$f" >"$out" 2>"$tmp/err"; rc=$?
    if [ "$rc" != 0 ] && grep -v 'is not converted yet' "$tmp/err" | grep -q .; then
        bad "convert $f: exit $rc"; cat "$tmp/err"
    fi
    grep -q '"Encounter"' "$out" && grep -q '"Patient"' "$out" && ! grep -q '"Observation"' "$out" && adt=$((adt + 1))
    grep -q '"Observation"' "$out" && oru=$((oru + 1))
    [ -s "$out" ] || rm -f "$out"
    sed 's/^/    skipped: /' "$tmp/err"
done
[ "$adt" -gt 0 ] && ok "$adt ADT Bundles to validate" || bad "no ADT Bundle was produced"
[ "$oru" -gt 0 ] && ok "$oru ORU Bundles to validate" || bad "no ORU Bundle was produced"

# the audit trail's export (tern audit export): a Bundle of AuditEvents
mkdir -p "$tmp/audit/var"
cat >"$tmp/audit/tern.yaml" <<'YAML'
store: { path: ./var/tern.db }
security: { auth: false, argon2_memory_kib: 64, argon2_iterations: 1 }
channels: []
YAML
printf 'pw of alice\n' | "$tern" user -c "$tmp/audit/tern.yaml" add alice --role analyst --password-stdin >/dev/null 2>&1
"$tern" quality -c "$tmp/audit/tern.yaml" >/dev/null 2>&1
if "$tern" audit -c "$tmp/audit/tern.yaml" export -o "$tmp/audit/export.json" &&
    python3 -c "
import json, sys
b = json.load(open(sys.argv[1]))
assert b['resourceType'] == 'Bundle' and len(b['entry']) >= 2, 'too few AuditEvents'
assert all(e['resource']['resourceType'] == 'AuditEvent' for e in b['entry'])
print(json.dumps(b, separators=(',', ':')))" "$tmp/audit/export.json" >"$tmp/audit-export.ndjson"; then
    ok "tern audit export: a Bundle of $(grep -o '"AuditEvent"' "$tmp/audit-export.ndjson" | wc -l) AuditEvents to validate"
else
    bad "tern audit export did not give a Bundle of AuditEvents"
fi

if node "$cache/validate.mjs" "$tmp"/*.ndjson >"$tmp/v.txt" 2>&1; then
    ok "every Bundle is valid FHIR R4"
else
    bad "FHIR R4 schema validation"
fi
sed 's/^/    /' "$tmp/v.txt"

# The validator must reject what the schema forbids.
echo '{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","gender":5,"birthDate":"1980-13-45","nope":1}}]}' >"$tmp/broken.json"
if node "$cache/validate.mjs" "$tmp/broken.json" >"$tmp/b.txt" 2>&1; then
    bad "a broken Bundle passed the schema check"; cat "$tmp/b.txt"
else
    ok "a broken Bundle is rejected"
fi
exit $fail
