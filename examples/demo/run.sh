#!/bin/sh
# make demo: runs `tern serve` on examples/demo/tern.yaml with the embedded
# SQLite store (examples/demo/var/), sends it the example messages, shows
# what happened, and keeps serving until Ctrl-C so you can send your own.
# DEMO_SECONDS=N stops it after N seconds instead (used to test the demo).
set -eu
tern=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
demo=$(cd "$(dirname "$0")" && pwd)
msgs="$demo/../messages"
conf="$demo/tern.yaml"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

"$tern" config check -c "$conf"
mkdir -p "$demo/var"
[ -f "$demo/var/master.key" ] || "$tern" keys init --key-file "$demo/var/master.key"
"$tern" serve -c "$conf" >"$demo/var/serve.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT INT TERM
i=0
until grep -q "^tern: serving" "$demo/var/serve.log"; do
    i=$((i + 1))
    if [ $i -gt 50 ] || ! kill -0 $pid 2>/dev/null; then
        echo "tern serve did not start:"; cat "$demo/var/serve.log"; exit 1
    fi
    sleep 0.1
done

cat <<TXT

Tern is running (log: examples/demo/var/serve.log, store: examples/demo/var/tern.db).

  Send HL7 over MLLP to   127.0.0.1:2575   e.g.  $tern send --port 2575 examples/messages/adt_a01.hl7
  POST HL7 over HTTP to   http://127.0.0.1:8080/channels/results-in/messages
  Drop lab files into     examples/demo/var/in/lab/  (picked up once they stop changing)
  FHIR R4 API             http://127.0.0.1:8080/fhir/metadata  (e.g. /fhir/Patient?family=everywoman)
  Browser                 no web dashboard yet (it comes with the monitoring issue);
                          open the FHIR URLs above, and 'tern messages' shows the store.
TXT

step tern send --port 2575 adt_a01.hl7 oru_r01.hl7
"$tern" send --port 2575 "$msgs/adt_a01.hl7" "$msgs/oru_r01.hl7" || true
step cp lab_batch.hl7 var/in/lab/
mkdir -p "$demo/var/in/lab"
cp "$msgs/lab_batch.hl7" "$demo/var/in/lab/lab_batch-$$.hl7"
sleep 4
step tern messages -c examples/demo/tern.yaml list --limit 10
"$tern" messages -c "$conf" list --limit 10 || true
step curl -s 'http://127.0.0.1:8080/fhir/Observation?_count=3'
curl -s 'http://127.0.0.1:8080/fhir/Observation?_count=3' | python3 -c '
import json, sys
b = json.load(sys.stdin)
print("%d Observations in the FHIR store; the first ones:" % b.get("total", len(b.get("entry", []))))
for e in b.get("entry", []):
    r = e["resource"]
    q = r.get("valueQuantity", {})
    print("  %s  %s %s" % (r["code"].get("text") or r["code"]["coding"][0].get("display"), q.get("value", ""), q.get("unit", "")))
' || true
step tern get examples/messages/adt_a01.hl7 PID-5.1 PID-5.2 'PID-3[2].1'
"$tern" get "$msgs/adt_a01.hl7" PID-5.1 PID-5.2 'PID-3[2].1'

if [ -n "${DEMO_SECONDS:-}" ]; then
    sleep "$DEMO_SECONDS"
else
    printf '\nServing until Ctrl-C.\n'
    wait $pid
fi
