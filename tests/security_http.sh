#!/bin/sh
# End-to-end tests of identities, roles and the audit trail with the real
# binary, curl and sqlite3 (docs/security.md):
#   1. the first admin is made without a token; a second admin add without
#      one is refused; users of each role and API tokens are made by the
#      admin; login with a TOTP code computed here gives a session token;
#      a wrong code fails;
#   2. HTTP: anonymous POST -> 401, an auditor's session -> 403, a system
#      token on its channel -> 200, on another channel -> 403, a revoked
#      token -> 401; POST /auth/login with JSON works and a bad code is 401;
#   3. CLI: tern messages list without a token is refused, an auditor is
#      refused, an analyst sees the messages; audit search finds the view
#      with the patient id and the refusals;
#   4. tern audit verify says OK after the run; a record changed with sqlite3
#      is found and located; a deleted record too; export is a FHIR Bundle.
# Argon2 costs are set low in the test configuration (security.argon2_*).
set -u
tern=$1
src=$2
. "$src/tests/lib/common.sh"
fail=0
work_dir
need sqlite3 curl python3
HTTP=$(free_port)
printf 'audit-key-for-the-test-0123456789abcdef\n' >"$tmp/audit.key"
cat >"$tmp/tern.yaml" <<YAML
store: { path: ./var/tern.db }
http: { listen: 127.0.0.1:$HTTP }
security:
  audit_key_file: ./audit.key
  argon2_memory_kib: 64      # fast tests; keep the defaults in production
  argon2_iterations: 1
  seal_every: 10
channels:
  - name: lab-in
    source: { type: http }
  - name: adt-in
    source: { type: http }
YAML
C="-c $tmp/tern.yaml"
db="$tmp/var/tern-sec.db"
mkdir -p "$tmp/var"
secret_of() { sed -n 's/^TOTP secret: //p' "$1"; }
# login USER SECRET: prints a session token; waits for a fresh 30 s step
# when the user already logged in during this one (a code works once)
login() {
    printf 'password of %s\n' "$1" | "$tern" login $C --user "$1" --password-stdin --totp "$(totp "$2")"
}

# --- 1. users, tokens, login ---------------------------------------------------
printf 'password of root\n' | "$tern" user $C add root --role admin --password-stdin >"$tmp/root.out" 2>&1
check "the first admin is made without a token" grep -q 'user root added with role admin (the first admin)' "$tmp/root.out"
check "... and gets an otpauth URI" grep -q '^otpauth://totp/Tern:root?secret=[A-Z2-7]*&issuer=Tern' "$tmp/root.out"
printf 'password of eve!\n' | "$tern" user $C add eve --role admin --password-stdin >"$tmp/eve.out" 2>&1
check "a second admin without a token is refused" sh -c "grep -q 'authentication is required' '$tmp/eve.out'"
ROOT=$(login root "$(secret_of "$tmp/root.out")")
check "the admin logs in with password and TOTP" [ "$(echo "$ROOT" | cut -c1-8)" = ternses_ ]
export TERN_TOKEN="$ROOT"
for u in ann:analyst aud:auditor eng:engineer; do
    printf 'password of %s\n' "${u%%:*}" | "$tern" user $C add "${u%%:*}" --role "${u#*:}" --password-stdin >"$tmp/${u%%:*}.out" 2>&1 \
        || bad "user add $u: $(cat "$tmp/${u%%:*}.out")"
done
LAB=$("$tern" token $C create --name lab-system --channel lab-in 2>/dev/null)
check "an API token is printed once" [ "$(echo "$LAB" | cut -c1-8)" = ternapi_ ]
check "... and stored only as its hash" [ "$(sqlite3 "$db" "select count(*) from idents where hash = '$LAB'")" = 0 ]
OLD=$("$tern" token $C create --name old --channel lab-in 2>/dev/null)
"$tern" token $C revoke old >/dev/null || bad "token revoke"
check "user list shows the users" [ "$("$tern" user $C list | awk '{print $1":"$2}' | tr '\n' ' ')" = "ann:analyst aud:auditor eng:engineer root:admin " ]
unset TERN_TOKEN
check "a wrong TOTP code is refused" sh -c "! printf 'password of ann\n' | '$tern' login $C --user ann --password-stdin --totp 000000 >/dev/null 2>&1"
ANN=$(login ann "$(secret_of "$tmp/ann.out")")
AUD=$(login aud "$(secret_of "$tmp/aud.out")")
check "analyst and auditor log in" [ -n "$ANN" ] && [ -n "$AUD" ]

# --- 2. HTTP -------------------------------------------------------------------------
"$tern" serve $C >"$tmp/serve.log" 2>&1 &
serve_pid=$!
pids="$pids $serve_pid"
wait_port "$HTTP" || { cat "$tmp/serve.log"; exit 1; }
printf 'MSH|^~\\&|LAB|HOSP|TERN|HOSP|20240101120000||ORU^R01|H1|P|2.5\rPID|1||PAT77^^^HOSP||DOE^JOHN\rOBX|1|ST|GLU||5.5|mmol/L\r' >"$tmp/m.hl7"
post() { # channel [token] -> status
    if [ -n "${2:-}" ]; then
        curl -s -o "$tmp/resp" -w '%{http_code}' -H "Authorization: Bearer $2" --data-binary @"$tmp/m.hl7" "http://127.0.0.1:$HTTP/channels/$1/messages"
    else
        curl -s -o "$tmp/resp" -w '%{http_code}' --data-binary @"$tmp/m.hl7" "http://127.0.0.1:$HTTP/channels/$1/messages"
    fi
}
check "anonymous POST: 401" [ "$(post lab-in)" = 401 ]
check "a made-up token: 401" [ "$(post lab-in ternapi_0000000000000000000000000000000000000000000000000000000000000000)" = 401 ]
check "a revoked token: 401" [ "$(post lab-in "$OLD")" = 401 ]
check "an auditor's session (wrong role): 403" [ "$(post lab-in "$AUD")" = 403 ]
check "the system token on its channel: 200" [ "$(post lab-in "$LAB")" = 200 ]
check "... with the AA ACK" grep -q 'MSA|AA|H1' "$tmp/resp"
check "the system token on another channel: 403" [ "$(post adt-in "$LAB")" = 403 ]
check "POST /auth/login with a bad code: 401" \
    [ "$(curl -s -o /dev/null -w '%{http_code}' -d '{"user":"eng","password":"password of eng","totp":"000000"}' "http://127.0.0.1:$HTTP/auth/login")" = 401 ]
code=$(totp "$(secret_of "$tmp/eng.out")")
curl -s -o "$tmp/login.json" -w '%{http_code}' -d "{\"user\":\"eng\",\"password\":\"password of eng\",\"totp\":\"$code\"}" "http://127.0.0.1:$HTTP/auth/login" >"$tmp/login.code"
check "POST /auth/login with the TOTP code: 200 and a session token" \
    sh -c "[ \"\$(cat '$tmp/login.code')\" = 200 ] && grep -q '\"token\": *\"ternses_' '$tmp/login.json'"
ENG=$(python3 -c "import json; print(json.load(open('$tmp/login.json'))['token'])" 2>/dev/null)
check "an engineer's session may not post either: 403" [ "$(post lab-in "$ENG")" = 403 ]

# the FHIR API: fhir.read for analysts, fhir.write for admins and for system
# tokens bound to the pseudo-channel "fhir"; the CapabilityStatement is public
FHIRSYS=$(TERN_TOKEN="$ROOT" "$tern" token $C create --name fhir-feed --channel fhir 2>/dev/null)
fhir() { # method path [token] [body] -> status
    set -- "$1" "$2" "${3:-}" "${4:-}"
    curl -s -o "$tmp/fresp" -w '%{http_code}' -X "$1" -H 'Content-Type: application/fhir+json' \
        ${3:+-H "Authorization: Bearer $3"} ${4:+--data-binary "$4"} "http://127.0.0.1:$HTTP/fhir/$2"
}
PAT='{"resourceType":"Patient","id":"p77","identifier":[{"system":"urn:hosp","value":"PAT77"}],"name":[{"family":"DOE"}]}'
check "FHIR metadata without a token: 200" [ "$(fhir GET metadata)" = 200 ]
check "FHIR read without a token: 401" [ "$(fhir GET Patient/p77)" = 401 ]
check "FHIR search without a token: 401" [ "$(fhir GET 'Patient?identifier=urn:hosp|PAT77')" = 401 ]
check "FHIR write as the analyst: 403" [ "$(fhir PUT Patient/p77 "$ANN" "$PAT")" = 403 ]
check "FHIR write with a system token not bound to fhir: 403" [ "$(fhir PUT Patient/p77 "$LAB" "$PAT")" = 403 ]
check "FHIR write with the system token bound to fhir: 201" [ "$(fhir PUT Patient/p77 "$FHIRSYS" "$PAT")" = 201 ]
check "FHIR read as the auditor (no PHI): 403" [ "$(fhir GET Patient/p77 "$AUD")" = 403 ]
check "FHIR read as the engineer: 403" [ "$(fhir GET Patient/p77 "$ENG")" = 403 ]
check "FHIR read as the analyst: 200" [ "$(fhir GET Patient/p77 "$ANN")" = 200 ]
check "FHIR search as the analyst: 200" [ "$(fhir GET 'Observation?patient=Patient/p77' "$ANN")" = 200 ]
check "FHIR read as the admin: 200" [ "$(fhir GET Patient/p77 "$ROOT")" = 200 ]

# --- 3. the CLI on the store ------------------------------------------------------------
check "messages list without a token is refused" sh -c "! '$tern' messages $C list >/dev/null 2>&1"
check "messages list as the auditor is refused" sh -c "! TERN_TOKEN='$AUD' '$tern' messages $C list >/dev/null 2>&1"
check "messages list as the analyst works" sh -c "TERN_TOKEN='$ANN' '$tern' messages $C list | grep -q 'PAT77'"
id=$(sqlite3 "$tmp/var/tern.db" "select id from messages where control_id = 'H1'")
check "messages show as the analyst works" sh -c "TERN_TOKEN='$ANN' '$tern' messages $C show $id | grep -q 'PAT77'"
check "reprocess as the analyst is refused" sh -c "! TERN_TOKEN='$ANN' '$tern' messages $C reprocess $id >/dev/null 2>&1"
check "reprocess as the engineer works" sh -c "TERN_TOKEN='$ENG' '$tern' messages $C reprocess $id >/dev/null"
check "audit search as the analyst is refused" sh -c "! TERN_TOKEN='$ANN' '$tern' audit $C search >/dev/null 2>&1"
check "quality as the auditor is refused" sh -c "! TERN_TOKEN='$AUD' '$tern' quality $C >/dev/null 2>&1"
check "quality as the analyst works" sh -c "TERN_TOKEN='$ANN' '$tern' quality $C >/dev/null"
check "keys status as the analyst is refused" sh -c "! TERN_TOKEN='$ANN' '$tern' keys status $C >/dev/null 2>&1"
check "keys status as the admin works" sh -c "TERN_TOKEN='$ROOT' '$tern' keys status $C | grep -q 'data key 1'"
export TERN_TOKEN="$AUD"
check "the view is audited with the patient (found by its id, stored as its keyed hash)" \
    sh -c "'$tern' audit $C search --user ann --patient PAT77 --action message.view | grep -q 'message.view.*lab-in.*~[0-9a-f]*.*cli.*ok'"
check "... and the security database holds no patient id in clear" \
    sh -c "! grep -rqa PAT77 '$tmp'/var/*sec*"
check "the refusals are audited (HTTP and CLI)" \
    [ "$("$tern" audit $C search | awk -F '\t' '$9 == "denied"' | wc -l | tr -d ' ')" -ge 6 ]
check "the posts are audited as the token's use, with the peer address" \
    sh -c "'$tern' audit $C search --user token:lab-system | grep -q 'message.post.*lab-in.*127.0.0.1:.*ok'"
check "FHIR reads are audited with the patient they name" \
    sh -c "'$tern' audit $C search --user ann --action fhir.read | grep -q 'fhir.read.*fhir.*~[0-9a-f]*.*127.0.0.1.*ok'"
check "... and found by it" \
    sh -c "'$tern' audit $C search --patient Patient/p77 --action fhir.read | grep -q 'ann'"
check "login failures are audited" sh -c "'$tern' audit $C search --action login | grep -q 'failed'"
check "--since in the future finds nothing" [ -z "$("$tern" audit $C search --since 2099-01-01)" ]

# --- 4. verify, tampering, export -----------------------------------------------------
kill -TERM "$serve_pid"; wait "$serve_pid"
check "the engine stops cleanly" [ $? = 0 ]
"$tern" audit $C verify >"$tmp/verify.out"
check "audit verify: OK after the run" grep -q '^OK: [0-9]* records, chain intact' "$tmp/verify.out"
"$tern" audit $C export -o "$tmp/audit.json"
check "export is a FHIR Bundle of AuditEvents" python3 -c "
import json, sys
b = json.load(open('$tmp/audit.json'))
ev = [e['resource'] for e in b['entry']]
sys.exit(0 if b['resourceType'] == 'Bundle' and ev and all(r['resourceType'] == 'AuditEvent' and r['agent'] and r['recorded'] for r in ev) else 1)"
cp "$db" "$tmp/clean.db"
sqlite3 "$db" "update audit set patient = 'PAT99' where seq = 5"
"$tern" audit $C verify >"$tmp/verify.out"
check "a changed record is found and located" sh -c "[ $? = 1 ] && grep -q '^BROKEN at record 5: record 5 was changed' '$tmp/verify.out'"
cp "$tmp/clean.db" "$db"
sqlite3 "$db" "delete from audit where seq = 7"
"$tern" audit $C verify >"$tmp/verify.out"
check "a deleted record is found and located" grep -q '^BROKEN at record 7: record 7..7 missing (deleted)' "$tmp/verify.out"
cp "$tmp/clean.db" "$db"
sqlite3 "$db" "update audit set seq = -1 where seq = 3; update audit set seq = 3 where seq = 4; update audit set seq = 4 where seq = -1"
"$tern" audit $C verify >"$tmp/verify.out"
check "reordered records are found and located" grep -q '^BROKEN at record 3: record 3 does not follow record 2' "$tmp/verify.out"
cp "$tmp/clean.db" "$db"
sed -i 's|audit_key_file: ./audit.key|audit_key_file: ./other.key|' "$tmp/tern.yaml"
printf 'another-key-of-enough-length-0123456789\n' >"$tmp/other.key"
"$tern" audit $C verify >"$tmp/verify.out"
check "the wrong audit key: a bad seal" grep -q 'has a bad MAC' "$tmp/verify.out"
if grep -q 'AddressSanitizer\|runtime error' "$tmp/serve.log"; then bad "sanitizer report in the log"; fi
if [ $fail -ne 0 ] || [ -n "${TERN_TEST_VERBOSE:-}" ]; then echo "--- serve.log"; cat "$tmp/serve.log"; fi
exit $fail
