#!/bin/sh
# End-to-end test of the `fhir` destination against a real FHIR server: a
# second `tern serve` whose FHIR API requires authentication. The sender
# converts each HL7 v2 message and POSTs the transaction Bundle with a
# bearer token (an API token bound to the pseudo-channel "fhir", read from
# token_env):
#   - an ORU^R01 lands on the receiver: Observation?patient= finds it;
#   - a wrong token: 401, straight to the error queue with the server's text;
#   - a URL that is not the server's base: 400, the error queue carries the
#     OperationOutcome's diagnostics;
#   - a server that does not answer: retried, then the error queue;
#   - a message the converter does not handle: the error queue at once.
set -u
tern=$1
src=$2
. "$src/tests/lib/common.sh"
fail=0
work_dir
need sqlite3 curl python3

# --- the receiver: a FHIR server with authentication on --------------------------
RH=$(free_port)
mkdir -p "$tmp/r/var" "$tmp/s"
printf 'audit-key-for-the-test-0123456789abcdef\n' >"$tmp/r/audit.key"
cat >"$tmp/r/tern.yaml" <<EOF2
store: { path: ./var/tern.db }
http: { listen: 127.0.0.1:$RH }
security:
  audit_key_file: ./audit.key
  argon2_memory_kib: 64      # fast tests; keep the defaults in production
  argon2_iterations: 1
channels: []
EOF2
R="-c $tmp/r/tern.yaml"
ROOT=$(first_admin "$tmp/r/tern.yaml" "$tmp/root.out")
FHIR_TOKEN=$(TERN_TOKEN="$ROOT" "$tern" token $R create --name feed --channel fhir 2>/dev/null)
check "an API token for the FHIR API" [ "$(echo "$FHIR_TOKEN" | cut -c1-8)" = ternapi_ ]
export FHIR_TOKEN
"$tern" serve $R >"$tmp/r/serve.log" 2>&1 &
pids="$pids $!"
wait_port "$RH" || { cat "$tmp/r/serve.log"; exit 1; }
rbase="http://127.0.0.1:$RH/fhir"

# --- the sender ----------------------------------------------------------------
GOOD=$(free_port); WRONG=$(free_port); BASE=$(free_port); DOWN=$(free_port); DEAD=$(free_port)
cat >"$tmp/s/tern.yaml" <<EOF2
store: { path: ./var/tern.db }
security: { auth: false }   # not about authentication (tests/security_*.sh are)
http: { enabled: false }
channels:
  - name: good
    source: { type: mllp, listen: 127.0.0.1:$GOOD }
    destinations:
      - { name: ehr, type: fhir, url: "$rbase", token_env: FHIR_TOKEN, timeout: 5s,
          retry: { max_attempts: 2, backoff: 100ms..200ms } }
  - name: wrong-token
    source: { type: mllp, listen: 127.0.0.1:$WRONG }
    destinations:
      - { name: ehr, type: fhir, url: "$rbase", token: ternapi_not-a-token,
          retry: { max_attempts: 5, backoff: 100ms..200ms } }
  - name: wrong-base
    source: { type: mllp, listen: 127.0.0.1:$BASE }
    destinations:
      - { name: ehr, type: fhir, url: "$rbase/Patient", token_env: FHIR_TOKEN,
          retry: { max_attempts: 5, backoff: 100ms..200ms } }
  - name: down
    source: { type: mllp, listen: 127.0.0.1:$DOWN }
    destinations:
      - { name: ehr, type: fhir, url: "http://127.0.0.1:$DEAD/fhir", timeout: 1s,
          retry: { max_attempts: 2, backoff: 100ms..200ms } }
EOF2
S="$tmp/s/tern.yaml"
"$tern" config check -c "$S" >"$tmp/check" 2>&1 || { bad "config check: $(cat "$tmp/check")"; }
"$tern" serve -c "$S" >"$tmp/s/serve.log" 2>&1 &
pids="$pids $!"
wait_port "$GOOD" || { cat "$tmp/s/serve.log"; exit 1; }

pid=$("$tern" convert --compact "$src/examples/messages/oru_r01.hl7" | python3 -c '
import json, sys
b = json.load(sys.stdin)
print([e["resource"]["id"] for e in b["entry"] if e["resource"]["resourceType"] == "Patient"][0])')
"$tern" send --port "$GOOD" "$src/examples/messages/oru_r01.hl7" >/dev/null 2>&1 || bad "tern send (good)"
count() {
    curl -s -H "Authorization: Bearer $ROOT" "$rbase/$1" |
        python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("entry",[])))'
}
check "the ORU's 3 Observations are on the FHIR server" wait_for "count 'Observation?patient=$pid'" 3
check "... and its DiagnosticReport" wait_for "count 'DiagnosticReport?patient=$pid'" 1
check "the delivery is sent" wait_for "stored '$S' LAB-778812 ehr" "sent|"

msg() { printf 'MSH|^~\\&|LAB|GHH LAB|EHR|GHH|20260115101500||ORU^R01|%s|P|2.5.1\rPID|1||P%s^^^GHH^MR||DOE^JOHN||19700101|M\rOBR|1|1^GHH|2^GHH LAB|2093-3^Chol^LN|||20260115090000\rOBX|1|NM|2093-3^Chol^LN||196|mg/dL|||||F\r' "$1" "$1" >"$tmp/$1.hl7"; }
msg WT-1
"$tern" send --port "$WRONG" "$tmp/WT-1.hl7" >/dev/null 2>&1
check "a wrong token: the error queue at once (no retries)" wait_for "stored '$S' WT-1 ehr | cut -c1-14" "error|HTTP 401"
stored "$S" WT-1 ehr | grep -qi "token" && ok "... with the server's 401 text" ||
    bad "401 text: $(stored "$S" WT-1 ehr)"

msg WB-1
"$tern" send --port "$BASE" "$tmp/WB-1.hl7" >/dev/null 2>&1
check "a URL that is not the base: 400 to the error queue" wait_for "stored '$S' WB-1 ehr | cut -c1-14" "error|HTTP 400"
stored "$S" WB-1 ehr | grep -q "Bundle" && ok "... with the OperationOutcome's diagnostics" ||
    bad "400 text: $(stored "$S" WB-1 ehr)"

msg DN-1
"$tern" send --port "$DOWN" "$tmp/DN-1.hl7" >/dev/null 2>&1
check "no server: retried, then the error queue" wait_for "stored '$S' DN-1 ehr | cut -d'|' -f1" error
stored "$S" DN-1 ehr | grep -q "cannot connect" && ok "... saying it cannot connect" ||
    bad "down text: $(stored "$S" DN-1 ehr)"
[ "$(sqlite3 -cmd ".timeout 5000" "$tmp/s/var/tern.db" "select d.attempts from deliveries d join messages m on m.id=d.message_id where m.control_id='DN-1'")" = 2 ] &&
    ok "... after max_attempts (2)" || bad "attempts: $(sqlite3 "$tmp/s/var/tern.db" "select attempts from deliveries")"

printf 'MSH|^~\\&|HIS|HOSP|LAB|HOSP|20240101120000||ADT^A17|NC-1|P|2.5\rEVN|A17\rPID|1||X1^^^HOSP||DOE^JOHN\rPV1|1|I\r' >"$tmp/nc.hl7"
"$tern" send --port "$GOOD" "$tmp/nc.hl7" >/dev/null 2>&1
check "a message that does not convert: the error queue" wait_for "stored '$S' NC-1 ehr | cut -d'|' -f1" error
stored "$S" NC-1 ehr | grep -q "FHIR conversion" && ok "... with the reason" || bad "NC text: $(stored "$S" NC-1 ehr)"

if [ "$fail" != 0 ] || [ -n "${TERN_TEST_VERBOSE:-}" ]; then
    sed 's/^/  sender: /' "$tmp/s/serve.log"; sed 's/^/  receiver: /' "$tmp/r/serve.log"
fi
exit $fail
