#!/bin/sh
# run.sh - the FHIR REST API benchmark: requests/s and latency of a read by
# id and of a Patient search by identifier, measured with wrk (Debian).
#
#     bench/fhirapi/run.sh TERN_BINARY      (make bench-fhirapi: build/tern)
#
# State: a fresh `tern serve` (no channels) in a temporary directory with
# its FHIR store on the local disk; PATIENTS (default 10000) Patients are
# loaded first through transaction Bundles of 500 (PUT Patient/bench-N with
# identifier urn:tern:bench|N, a name, gender and birth date). Then wrk
# runs twice, each DURATION (default 10s) with THREADS (2) threads and
# CONNECTIONS (64) keep-alive connections, a Lua script picking a random
# patient for every request:
#   read    GET /fhir/Patient/bench-N
#   search  GET /fhir/Patient?identifier=urn:tern:bench|N  (one match)
# wrk and the server share the machine's cores. No peer FHIR server is
# compared: none is packaged for Debian or npm that runs without an
# external database (see bench/README.md).
set -eu

if [ $# -ne 1 ]; then
    echo "usage: bench/fhirapi/run.sh TERN_BINARY" >&2
    exit 2
fi
tern=$1
PATIENTS=${PATIENTS:-10000}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
for t in wrk curl python3; do
    command -v $t >/dev/null || { echo "$t is missing: run scripts/deps.sh" >&2; exit 1; }
done

tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The secure default: PHI encrypted at rest, every request authenticated
# (an analyst's session token) and audited. AUTH=off measures without.
TERN_MASTER_KEY=${TERN_MASTER_KEY:-$(openssl rand -hex 32)}
TERN_AUDIT_KEY=${TERN_AUDIT_KEY:-$(openssl rand -hex 32)}
export TERN_MASTER_KEY TERN_AUDIT_KEY
AUTH=${AUTH:-on}
cat >"$tmp/tern.yaml" <<EOF
store: { path: ./var/tern.db }
http: { listen: 127.0.0.1:$port }
security: { auth: $([ "$AUTH" = off ] && echo false || echo true) }
channels: []
EOF
mkdir -p "$tmp/var"
totp() { # base32 secret -> the current code (RFC 6238)
    python3 -c '
import base64, hmac, hashlib, struct, sys, time
key = base64.b32decode(sys.argv[1] + "=" * (-len(sys.argv[1]) % 8))
mac = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
o = mac[-1] & 15
print("%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7fffffff) % 1000000))' "$1"
}
session() { # user role -> a session token (the first user becomes the admin)
    printf 'bench password %s\n' "$1" | "$tern" user -c "$tmp/tern.yaml" add "$1" --role "$2" \
        --password-stdin >"$tmp/$1.out" 2>&1 || { cat "$tmp/$1.out" >&2; exit 1; }
    printf 'bench password %s\n' "$1" | "$tern" login -c "$tmp/tern.yaml" --user "$1" \
        --password-stdin --totp "$(totp "$(sed -n 's/^TOTP secret: //p' "$tmp/$1.out")")"
}
AUTHZ="X-No-Auth: 1"; READER=""
if [ "$AUTH" != off ]; then
    ADMIN=$(session root admin)
    READER=$(TERN_TOKEN=$ADMIN session ann analyst)
    AUTHZ="Authorization: Bearer $ADMIN"
fi
"$tern" serve -c "$tmp/tern.yaml" >"$tmp/serve.log" 2>&1 &
pid=$!
i=0
until curl -s -o /dev/null "http://127.0.0.1:$port/fhir/metadata"; do
    i=$((i + 1)); [ $i -lt 100 ] || { cat "$tmp/serve.log"; exit 1; }; sleep 0.1
done

echo "== machine"
echo "cpu: $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores, $(uname -sr)"
echo "tern: $(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo '?'), $tern"
echo "wrk: $(wrk -v 2>&1 | head -1)"
if [ "$AUTH" = off ]; then echo "security: auth off (no token, nothing audited); PHI encrypted at rest"; else echo "security: auth on (an analyst's session token on every request, every read audited); PHI encrypted at rest"; fi
echo
echo "== loading $PATIENTS patients (transactions of 500)"
start=$(date +%s.%N)
python3 - "$PATIENTS" "$tmp" <<'PY'
import json, sys
n, tmp = int(sys.argv[1]), sys.argv[2]
for b in range(0, n, 500):
    entries = []
    for i in range(b + 1, min(n, b + 500) + 1):
        entries.append({"resource": {"resourceType": "Patient", "id": "bench-%d" % i,
            "identifier": [{"system": "urn:tern:bench", "value": str(i)}],
            "name": [{"family": "Bench%d" % i, "given": ["Pat"]}],
            "gender": "female" if i % 2 else "male", "birthDate": "19%02d-01-01" % (i % 100)},
            "request": {"method": "PUT", "url": "Patient/bench-%d" % i}})
    with open("%s/load-%06d.json" % (tmp, b), "w") as f:
        json.dump({"resourceType": "Bundle", "type": "transaction", "entry": entries}, f)
PY
for f in "$tmp"/load-*.json; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/fhir+json' -H "$AUTHZ" \
        --data-binary @"$f" "http://127.0.0.1:$port/fhir")
    [ "$code" = 200 ] || { echo "loading $f: HTTP $code" >&2; exit 1; }
done
end=$(date +%s.%N)
echo "loaded in $(python3 -c "print(round($end - $start, 2))") s"

cat >"$tmp/read.lua" <<EOF
math.randomseed(os.time())
if "$READER" ~= "" then wrk.headers["Authorization"] = "Bearer $READER" end
request = function()
  return wrk.format("GET", "/fhir/Patient/bench-" .. math.random($PATIENTS))
end
EOF
cat >"$tmp/search.lua" <<EOF
math.randomseed(os.time() + 1)
if "$READER" ~= "" then wrk.headers["Authorization"] = "Bearer $READER" end
request = function()
  return wrk.format("GET", "/fhir/Patient?identifier=urn:tern:bench%7C" .. math.random($PATIENTS))
end
EOF
# Every answer must be a 200 with the patient: check one of each first.
curl -sf -H "Authorization: Bearer $READER" "http://127.0.0.1:$port/fhir/Patient/bench-1" | grep -q '"id":"bench-1"'
curl -sf -H "Authorization: Bearer $READER" "http://127.0.0.1:$port/fhir/Patient?identifier=urn:tern:bench%7C2" | grep -q '"id":"bench-2"'

for kind in read search; do
    echo
    echo "== $kind: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -s $kind.lua"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$tmp/$kind.lua" \
        "http://127.0.0.1:$port" | tee "$tmp/$kind.txt" |
        grep -E 'Requests/sec|Latency|50%|90%|99%|Non-2xx|Socket errors|requests in'
done
