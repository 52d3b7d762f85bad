#!/bin/sh
# End-to-end test of the fhir-store destination: an ORU^R01 and an ADT^A01
# sent over MLLP (tern send) to `tern serve` are converted to FHIR and land
# in its FHIR store, where the Observations are found by
# GET /fhir/Observation?patient=ID; the same ORU sent again updates the
# same resources (version 2, no duplicates); a message type the converter
# does not handle (ADT^A17, swap patients) goes to the error queue with the reason.
set -u
tern=$1
src=$2
. "$src/tests/lib/common.sh"
fail=0
work_dir
need sqlite3 curl python3
q() { caught_up "$tmp/var/tern.db"; sqlite3 -cmd ".timeout 5000" "$tmp/var/tern.db" "$1"; }

IN=$(free_port)
HTTP=$(free_port)
cat >"$tmp/tern.yaml" <<EOF
store: { path: ./var/tern.db }
security: { auth: false }   # not about authentication (tests/security_*.sh are)
http: { listen: 127.0.0.1:$HTTP }
channels:
  - name: results
    source: { type: mllp, listen: 127.0.0.1:$IN }
    destinations:
      - { name: fhir, type: fhir-store, retry: { max_attempts: 2, backoff: 100ms..200ms } }
EOF
"$tern" serve -c "$tmp/tern.yaml" >"$tmp/serve.log" 2>&1 &
pids="$pids $!"
wait_port "$IN" || { cat "$tmp/serve.log"; exit 1; }
base="http://127.0.0.1:$HTTP/fhir"

# The patient id the converter gives (PID-3 of examples/messages/oru_r01.hl7).
pid=$("$tern" convert --compact "$src/examples/messages/oru_r01.hl7" | python3 -c '
import json, sys
b = json.load(sys.stdin)
print([e["resource"]["id"] for e in b["entry"] if e["resource"]["resourceType"] == "Patient"][0])')
"$tern" send --port "$IN" "$src/examples/messages/oru_r01.hl7" "$src/examples/messages/adt_a01.hl7" \
    >"$tmp/acks" 2>&1 && ok "ORU and ADT sent over MLLP" || { bad "tern send"; cat "$tmp/acks"; }

count() { curl -s "$base/$1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("entry",[])))'; }
check "3 Observations of the ORU found by Observation?patient=$pid" \
    wait_for "count 'Observation?patient=$pid'" 3
check "the ADT's Encounter is there" wait_for "count 'Encounter?patient=$pid'" 1
check "the DiagnosticReport is there" wait_for "count 'DiagnosticReport?patient=$pid'" 1

"$tern" send --port "$IN" "$src/examples/messages/oru_r01.hl7" >/dev/null 2>&1
check "sent again: still 3 Observations" wait_for \
    "q \"select count(*) from deliveries where state='sent'\"" 3
[ "$(count "Observation?patient=$pid")" = 3 ] && ok "no duplicates" || bad "duplicates after a resend"
v=$(curl -s "$base/Patient/$pid" | python3 -c 'import json,sys; print(json.load(sys.stdin)["meta"]["versionId"])')
[ "$v" -ge 2 ] && ok "the Patient was updated (version $v)" || bad "Patient version $v"

printf 'MSH|^~\\&|HIS|HOSP|LAB|HOSP|20240101120000||ADT^A17|ORM-1|P|2.5\rEVN|A17\rPID|1||X1^^^HOSP||DOE^JOHN\rPV1|1|I\r' \
    >"$tmp/orm.hl7"
"$tern" send --port "$IN" "$tmp/orm.hl7" >/dev/null 2>&1
check "ADT^A17 (not converted) goes to the error queue" wait_for \
    "q \"select d.state from deliveries d join messages m on m.id=d.message_id where m.control_id='ORM-1'\"" error
stored "$tmp/tern.yaml" ORM-1 '*' |
    grep -q "FHIR conversion" && ok "with the reason" || bad "error text: $(stored "$tmp/tern.yaml" ORM-1 '*')"

if [ "$fail" != 0 ] || [ -n "${TERN_TEST_VERBOSE:-}" ]; then sed 's/^/  log: /' "$tmp/serve.log"; fi
exit $fail
