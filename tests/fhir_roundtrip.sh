#!/bin/sh
# The order/result round trip (issue 6): `tern serve` with
#   (a) the FHIR API,
#   (b) a channel whose `fhir` source turns each ServiceRequest written
#       through the API into an OML^O21 sent over MLLP to a test lab,
#   (c) a channel receiving the lab's results over MLLP into the FHIR store
#       (`fhir-store` destination),
# and fhir.tables naming the hospital's identifier systems. The lab
# (tests/lib/mllp_lab.py) acknowledges the order and sends back an ORU^R01
# for the same patient and placer order number. A Patient and a
# ServiceRequest are created over FHIR; the OML the lab got is checked
# (PID-3, ORC-1, ORC-2, OBR-4); the result is then found with
# Observation?patient= and DiagnosticReport?patient= for the Patient made
# over FHIR (no second Patient). Revoking the order sends ORC-1 CA; an
# order whose Patient does not exist is stored but not sent.
set -u
tern=$1
src=$2
. "$src/tests/lib/common.sh"
fail=0
work_dir
need curl python3

HTTP=$(free_port); LAB=$(free_port); RES=$(free_port)
mkdir -p "$tmp/lab"
cat >"$tmp/tables.json" <<'EOF2'
{"authorities": {"HOSP": "http://hosp.example.org/mrn",
                 "HOSPORD": "http://hosp.example.org/orders"}}
EOF2
cat >"$tmp/tern.yaml" <<EOF2
store: { path: ./var/tern.db }
security: { auth: false }   # not about authentication (tests/security_*.sh are)
http: { listen: 127.0.0.1:$HTTP }
fhir: { tables: ./tables.json }
channels:
  - name: orders-out
    source:
      type: fhir
      resources: [ServiceRequest]
      message: OML^O21
      sending_application: EHR
      sending_facility: GHH
      receiving_application: LAB
      receiving_facility: GHH LAB
    destinations:
      - { name: lab, type: mllp, host: 127.0.0.1, port: $LAB,
          retry: { max_attempts: 20, backoff: 100ms..500ms } }
  - name: results-in
    source: { type: mllp, listen: 127.0.0.1:$RES }
    destinations:
      - { name: fhir, type: fhir-store, retry: { max_attempts: 3, backoff: 100ms..200ms } }
EOF2
"$tern" config check -c "$tmp/tern.yaml" >"$tmp/check" 2>&1 || bad "config check: $(cat "$tmp/check")"
python3 "$src/tests/lib/mllp_lab.py" "$LAB" "$RES" "$tmp/lab" >"$tmp/lab.log" 2>&1 &
pids="$pids $!"
"$tern" serve -c "$tmp/tern.yaml" >"$tmp/serve.log" 2>&1 &
serve=$!
pids="$pids $serve"
wait_port "$HTTP" || { cat "$tmp/serve.log"; exit 1; }
wait_port "$LAB" || { cat "$tmp/lab.log"; exit 1; }
base="http://127.0.0.1:$HTTP/fhir"

# create TYPE JSON: POSTs, prints the new id
create() {
    curl -s -H 'Content-Type: application/fhir+json' --data-binary "$2" "$base/$1" |
        python3 -c 'import json,sys; print(json.load(sys.stdin).get("id",""))'
}
P=$(create Patient '{"resourceType":"Patient",
  "identifier":[{"system":"http://hosp.example.org/mrn","value":"MRN-77",
                 "type":{"coding":[{"code":"MR"}]}}],
  "name":[{"family":"Everywoman","given":["Eve"]}],"gender":"female","birthDate":"1962-03-20"}')
[ -n "$P" ] && ok "Patient created over FHIR ($P)" || bad "Patient not created"
SR=$(create ServiceRequest '{"resourceType":"ServiceRequest","status":"active","intent":"order",
  "identifier":[{"system":"http://hosp.example.org/orders","value":"ORD-1001",
                 "type":{"coding":[{"code":"PLAC"}]}}],
  "code":{"coding":[{"system":"http://loinc.org","code":"2093-3","display":"Cholesterol"}]},
  "subject":{"reference":"Patient/'"$P"'"},"authoredOn":"2026-01-15T09:00:00Z"}')
[ -n "$SR" ] && ok "ServiceRequest created over FHIR ($SR)" || bad "ServiceRequest not created"

check "the lab got the order over MLLP" wait_for "ls '$tmp/lab/order-1.hl7' 2>/dev/null" "$tmp/lab/order-1.hl7"
seg() { # SEGMENT FIELD: the field of the lab's first order
    tr '\r' '\n' <"$tmp/lab/order-1.hl7" | awk -F'|' -v s="$1" -v f="$2" '$1 == s { print (s == "MSH" ? $(f) : $(f + 1)); exit }'
}
[ "$(seg MSH 9)" = "OML^O21^OML_O21" ] && ok "it is an OML^O21" || bad "MSH-9: $(seg MSH 9)"
[ "$(seg PID 3)" = "MRN-77^^^HOSP^MR" ] && ok "PID-3 is the Patient's identifier (authority from fhir.tables)" || bad "PID-3: $(seg PID 3)"
[ "$(seg PID 5)" = "Everywoman^Eve" ] && ok "PID-5 the name" || bad "PID-5: $(seg PID 5)"
[ "$(seg ORC 1)" = "NW" ] && ok "ORC-1 NW" || bad "ORC-1: $(seg ORC 1)"
[ "$(seg ORC 2)" = "ORD-1001^HOSPORD" ] && ok "ORC-2 the placer order number" || bad "ORC-2: $(seg ORC 2)"
[ "$(seg OBR 4)" = "2093-3^Cholesterol^LN" ] && ok "OBR-4 the code" || bad "OBR-4: $(seg OBR 4)"

check "the lab's ORU was acknowledged by tern" wait_for "grep -c 'MSA|AA' '$tmp/lab/result-1.ack' 2>/dev/null" 1
search() { # QUERY: prints "count value code" of the first entry
    curl -s "$base/$1" | python3 -c '
import json, sys
b = json.load(sys.stdin)
e = b.get("entry", [])
r = e[0]["resource"] if e else {}
v = r.get("valueQuantity", {}).get("value", "")
c = (r.get("code", {}).get("coding") or [{}])[0].get("code", "")
print(len(e), v, c)'
}
check "Observation?patient=Patient/$P finds the result (196, 2093-3)" \
    wait_for "search 'Observation?patient=Patient/$P'" "1 196 2093-3"
check "DiagnosticReport?patient=Patient/$P finds the report" \
    wait_for "search 'DiagnosticReport?patient=Patient/$P' | cut -d' ' -f1" 1
check "the result did not make a second Patient" \
    wait_for "search 'Patient?identifier=http://hosp.example.org/mrn|MRN-77' | cut -d' ' -f1" 1

# The order revoked (an update): the lab gets it again with ORC-1 CA.
curl -s -o /dev/null -X PUT -H 'Content-Type: application/fhir+json' "$base/ServiceRequest/$SR" --data-binary \
  '{"resourceType":"ServiceRequest","id":"'"$SR"'","status":"revoked","intent":"order",
  "identifier":[{"system":"http://hosp.example.org/orders","value":"ORD-1001",
                 "type":{"coding":[{"code":"PLAC"}]}}],
  "code":{"coding":[{"system":"http://loinc.org","code":"2093-3","display":"Cholesterol"}]},
  "subject":{"reference":"Patient/'"$P"'"},"authoredOn":"2026-01-15T09:00:00Z"}'
check "revoking the ServiceRequest sends ORC-1 CA for ORD-1001" wait_for \
    "tr '\\r' '\\n' <'$tmp/lab/order-2.hl7' 2>/dev/null | grep '^ORC' | cut -d'|' -f1-3" "ORC|CA|ORD-1001^HOSPORD"

# An order for a Patient that does not exist: stored by the API, not sent.
NOPE=$(create ServiceRequest '{"resourceType":"ServiceRequest","status":"active","intent":"order",
  "code":{"text":"x"},"subject":{"reference":"Patient/nobody"}}')
[ -n "$NOPE" ] && ok "an order for an unknown Patient is stored" || bad "order for unknown Patient refused"
check "... and logged as not sent" wait_for "grep -c 'ServiceRequest/$NOPE is stored but was not sent' '$tmp/serve.log'" 1
[ ! -e "$tmp/lab/order-3.hl7" ] && ok "... and the lab got nothing more" || bad "the lab got a second order"

kill -TERM "$serve"
wait "$serve"; rc=$?
[ "$rc" = 0 ] && ok "tern serve stops cleanly (SIGTERM, exit 0)" || bad "tern serve exited $rc on SIGTERM"

if [ "$fail" != 0 ] || [ -n "${TERN_TEST_VERBOSE:-}" ]; then
    sed 's/^/  log: /' "$tmp/serve.log"; sed 's/^/  lab: /' "$tmp/lab.log"
    for f in "$tmp"/lab/*; do echo "  $f:"; tr '\r' '\n' <"$f" | sed 's/^/    /'; done
fi
exit $fail
