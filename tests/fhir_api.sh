#!/bin/sh
# End-to-end test of the FHIR REST API inside `tern serve` (docs/fhir.md):
# the engine runs on a free port in a temporary directory, and
#   1. tests/fhir_api/api.mjs drives it with fhir-kit-client (npm, pinned in
#      tests/fhir_api/package-lock.json): metadata, create/read/update with
#      If-Match, vread, history, create-on-update, conditional create,
#      delete then 410, searches (string, date prefixes, token, reference),
#      paging by following next links, _include, $everything, transaction
#      (urn:uuid references rewritten; one invalid entry rolls back all;
#      ifNoneExist), batch, and the Bundles `tern convert` makes of
#      examples/messages posted as transactions, their Observations then
#      found by Observation?patient=;
#   2. raw curl checks of error statuses: malformed JSON 400, unknown type
#      404, unknown search parameter 400 (200 with handling=lenient), a bad
#      If-Match 412, a wrong method 405, id mismatch 400, XML 415, the
#      OperationOutcome body;
#   3. the resources survive a restart (they are in var/tern-fhir.db).
# The npm packages are installed once with `npm ci` into $TERN_NPM_CACHE
# (default $HOME/.cache/tern-npm)/fhir-api-<hash>; without node or the npm
# registry the test FAILS with the reason.
set -u
tern=$1
src=$2
. "$src/tests/lib/common.sh"
fail=0
work_dir

need curl node npm python3
pkg="$src/tests/fhir_api"
npm_install "$pkg" fhir-api "run the FHIR client" || exit 1
cp "$pkg/api.mjs" "$cache/api.mjs"

port=$(free_port)
cat >"$tmp/tern.yaml" <<EOF
store: { path: ./var/tern.db }
security: { auth: false }   # not about authentication (tests/security_*.sh are)
http: { listen: 127.0.0.1:$port }
channels: []
EOF
start() {
    "$tern" serve -c "$tmp/tern.yaml" >>"$tmp/serve.log" 2>&1 &
    tern_pid=$!
    pids="$pids $tern_pid"
    wait_port "$port" || { cat "$tmp/serve.log"; exit 1; }
}
start
base="http://127.0.0.1:$port/fhir"
[ -f "$tmp/var/tern-fhir.db" ] && ok "FHIR store beside the message store: var/tern-fhir.db" ||
    bad "no var/tern-fhir.db"

mkdir "$tmp/bundles"
for f in "$src"/examples/messages/*.hl7; do
    "$tern" convert --compact "$f" >"$tmp/bundles/$(basename "$f" .hl7).ndjson" 2>/dev/null
done

if (cd "$cache" && timeout 60 node api.mjs "$base" "$tmp/bundles") >"$tmp/api.txt" 2>&1; then
    sed 's/^/  /' "$tmp/api.txt"
    ok "fhir-kit-client run"
else
    sed 's/^/  /' "$tmp/api.txt"
    bad "fhir-kit-client run"
fi

# status METHOD PATH [BODY [HEADER]]: prints the HTTP status; body in $tmp/body
status() {
    if [ $# -ge 4 ]; then
        curl -s -o "$tmp/body" -w '%{http_code}' -X "$1" -H 'Content-Type: application/fhir+json' \
            -H "$4" --data-binary "$3" "$base$2"
    elif [ $# -ge 3 ]; then
        curl -s -o "$tmp/body" -w '%{http_code}' -X "$1" -H 'Content-Type: application/fhir+json' \
            --data-binary "$3" "$base$2"
    else
        curl -s -o "$tmp/body" -w '%{http_code}' -X "$1" "$base$2"
    fi
}
expect() { # DESCRIPTION WANT GOT
    [ "$3" = "$2" ] && ok "$1: $2" || { bad "$1: want $2, got $3"; head -c 300 "$tmp/body"; echo; }
}
expect "malformed JSON" 400 "$(status POST /Patient '{"resourceType":"Patient",')"
grep -q '"resourceType":"OperationOutcome"' "$tmp/body" && grep -q 'not valid JSON' "$tmp/body" &&
    ok "errors are OperationOutcome with diagnostics" || bad "no OperationOutcome body"
expect "unknown resource type" 404 "$(status GET /Spaceship/1)"
expect "unknown id" 404 "$(status GET /Patient/nope)"
expect "unknown search parameter" 400 "$(status GET '/Patient?shoe-size=42')"
expect "unknown search parameter, lenient" 200 "$(curl -s -o "$tmp/body" -w '%{http_code}' \
    -H 'Prefer: handling=lenient' "$base/Patient?shoe-size=42")"
expect "bad date value" 400 "$(status GET '/Observation?date=yesterday')"
expect "PUT Patient/x" 201 "$(status PUT /Patient/x '{"resourceType":"Patient","id":"x"}')"
expect "wrong If-Match" 412 "$(status PUT /Patient/x '{"resourceType":"Patient","id":"x"}' 'If-Match: W/"7"')"
expect "right If-Match" 200 "$(status PUT /Patient/x '{"resourceType":"Patient","id":"x"}' 'If-Match: W/"1"')"
expect "id in body differs from URL" 400 "$(status PUT /Patient/x '{"resourceType":"Patient","id":"y"}')"
expect "type in body differs from URL" 400 "$(status POST /Patient '{"resourceType":"Observation"}')"
expect "invalid birthDate" 422 "$(status POST /Patient '{"resourceType":"Patient","birthDate":"1980-02-31"}')"
expect "XML body" 415 "$(curl -s -o "$tmp/body" -w '%{http_code}' -X POST -H 'Content-Type: application/fhir+xml' \
    --data-binary '<Patient/>' "$base/Patient")"
expect "DELETE on a type" 405 "$(status DELETE /Patient)"
expect "GET on the base" 405 "$(status GET '')"
expect "DELETE Patient/x" 200 "$(status DELETE /Patient/x)"
expect "read deleted" 410 "$(status GET /Patient/x)"
expect "vread a live version of a deleted resource" 200 "$(status GET /Patient/x/_history/2)"
expect "not a Bundle on the base" 400 "$(status POST '' '{"resourceType":"Patient"}')"
expect "other paths are not the API" 404 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/fhirx")"

# The resources survive a restart.
n_before=$(curl -s "$base/Observation?_count=1000" | python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("entry",[])))')
kill "$tern_pid"; wait "$tern_pid" 2>/dev/null
start
n_after=$(curl -s "$base/Observation?_count=1000" | python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("entry",[])))')
[ "$n_before" -gt 25 ] && [ "$n_before" = "$n_after" ] && ok "after a restart: $n_after Observations" ||
    bad "restart: $n_before Observations before, $n_after after"

if [ "$fail" != 0 ] || [ -n "${TERN_TEST_VERBOSE:-}" ]; then sed 's/^/  log: /' "$tmp/serve.log"; fi
exit $fail
