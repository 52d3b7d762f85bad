#!/bin/sh
# PHI at rest (docs/security-at-rest.md): `tern serve` stores messages with a
# known patient name and identifier, and converts them into its FHIR store;
# while it runs (write-ahead logs present) and after it stops, no byte of the
# files under var/ (message store, FHIR store, security database, their WALs
# and shared memory, body log, keyring) holds either, in any letter case, while
# the FHIR API still finds the patient by identifier and by name prefix, and while `tern messages` shows them
# and finds the messages by patient id. The same run with encryption turned
# off does show them (so the scan can fail). No key, a wrong key, key
# rotation (master and data key) are checked with the real binary.
set -u
tern=$1
src=$2
. "$src/tests/lib/common.sh"
fail=0
work_dir
unset TERN_MASTER_KEY

NAME=ZZSECRETFAMILY
MRN=MRN-SECRET-42
P1=$(free_port); DEAD=$(free_port); HTTP=$(free_port)
conf() { # FILE ENCRYPTION_LINE
    cat >"$1" <<YAML
store: { path: ./var/tern.db }
security: { auth: false }   # not about authentication (tests/security_*.sh are)
http: { listen: 127.0.0.1:$HTTP }
$2
channels:
  - name: adt
    source: { type: mllp, listen: 127.0.0.1:$P1 }
    destinations:
      # down for the whole test: every message stays in the outbound queue
      - { name: emr, type: mllp, host: 127.0.0.1, port: $DEAD,
          retry: { max_attempts: 2, backoff: 100ms..100ms } }
      # and into the FHIR store (resources sealed, search values hashed)
      - { name: fhir, type: fhir-store }
YAML
}
msgs() { # FILE FIRST_ID
    : >"$1"
    for i in 1 2 3 4 5; do
        printf 'MSH|^~\\&|HIS|HOSP|EMR|HOSP|20260101120000||ADT^A01|E%s-%s|P|2.5\rPID|1||%s^^^HOSP^MR||%s^JANE||19800101|F\rPV1|1|I\r' "$2" "$i" "$MRN" "$NAME" >>"$1"
    done
    # and one rejected (no MSH-9): its error is stored too
    printf 'MSH|^~\\&|HIS|HOSP|EMR|HOSP|20260101120000|||E%s-X|P|2.5\rPID|1||%s||%s^JANE\r' "$2" "$MRN" "$NAME" >>"$1"
}
start() { # CONF LOG
    "$tern" serve -c "$1" >"$2" 2>&1 &
    spid=$!; pids="$pids $spid"
    i=0; until grep -q "^tern: serving" "$2" 2>/dev/null; do
        i=$((i+1)); if [ $i -gt 100 ] || ! kill -0 $spid 2>/dev/null; then cat "$2"; return 1; fi; sleep 0.1
    done
}
stop() { kill -TERM $spid; wait $spid; }
clear_in() { # DIR: the first file under DIR holding $NAME or $MRN, or nothing
    grep -rlaiF -e "$NAME" -e "$MRN" "$1" 2>/dev/null | head -1
}

# --- encrypted (key from a file made by tern keys init) ---------------------------
mkdir -p "$tmp/var"
"$tern" keys init --key-file "$tmp/master.key" >/dev/null || bad "keys init"
check "keys init: the key file is 0600" [ "$(stat -c %a "$tmp/master.key")" = 600 ]
conf "$tmp/tern.yaml" "encryption: { key_file: ./master.key }"
start "$tmp/tern.yaml" "$tmp/serve.log" || bad "serve (encrypted) did not start"
msgs "$tmp/a.hl7" A
"$tern" send --port "$P1" "$tmp/a.hl7" >"$tmp/acks" 2>&1
check "5 accepted, 1 rejected" [ "$(grep -c ' AA' "$tmp/acks") $(grep -c ' AR\| AE' "$tmp/acks")" = "5 1" ]
check "the destination is down: delivery errors are stored (sealed)" \
    wait_for "stored '$tmp/tern.yaml' EA-1 emr | cut -d'|' -f1" error
fhir() { curl -s "http://127.0.0.1:$HTTP/fhir/$1"; }
check "the FHIR store has the patient" \
    wait_for "fhir 'Patient?identifier=$MRN' | grep -o '\"family\":\"$NAME\"' | head -1" "\"family\":\"$NAME\""
check "... found by a name prefix (a keyed hash per prefix)" \
    sh -c "curl -s 'http://127.0.0.1:$HTTP/fhir/Patient?family=zzsecr' | grep -q '$MRN'"
check "... and by the exact name" \
    sh -c "curl -s 'http://127.0.0.1:$HTTP/fhir/Patient?family:exact=zzsecretfamily' | grep -q '$MRN'"
check "... not by another prefix" \
    sh -c "! curl -s 'http://127.0.0.1:$HTTP/fhir/Patient?family=zzsecx' | grep -q '$MRN'"
check "... and its encounters through the patient reference" \
    sh -c "curl -s 'http://127.0.0.1:$HTTP/fhir/Encounter?patient=Patient/'\$(curl -s 'http://127.0.0.1:$HTTP/fhir/Patient?identifier=$MRN' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"entry\"][0][\"resource\"][\"id\"])') | grep -q Encounter"
check "... by its exact birth date" \
    sh -c "curl -s 'http://127.0.0.1:$HTTP/fhir/Patient?birthdate=1980-01-01' | grep -q '$MRN'"
check "... not by another day of the same year (exact dates checked after decryption)" \
    sh -c "! curl -s 'http://127.0.0.1:$HTTP/fhir/Patient?birthdate=1980-01-02' | grep -q '$MRN'"
check "... nor by a range that ends before it" \
    sh -c "! curl -s 'http://127.0.0.1:$HTTP/fhir/Patient?birthdate=lt1980-01-01' | grep -q '$MRN'"
check "the date index holds years only" python3 -c "
import sqlite3, datetime, sys
db = sqlite3.connect('$tmp/var/tern-fhir.db', timeout=5)
rows = db.execute('select lo, hi from fhir_index where lo is not null').fetchall()
def year_start(ms):
    d = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return (d.month, d.day, d.hour, d.minute, d.second, d.microsecond) == (1, 1, 0, 0, 0, 0)
sys.exit(0 if rows and all(year_start(lo) and year_start(hi + 1) for lo, hi in rows) else 1)"
check "while running (WAL and body log live): no patient name or id in any store file" \
    [ -z "$(clear_in "$tmp/var")" ]
check "... the write-ahead logs exist (the scan covered them)" [ -s "$tmp/var/tern.db-wal" ] && [ -s "$tmp/var/tern-fhir.db-wal" ]
stop; check "serve exits 0" [ $? = 0 ]
check "after stop: still none" [ -z "$(clear_in "$tmp/var")" ]
"$tern" messages -c "$tmp/tern.yaml" list --patient "$MRN" >"$tmp/list" 2>&1
check "tern messages finds the 6 messages by patient id" [ "$(grep -c "$MRN" "$tmp/list")" = 6 ]
id=$(grep EA-1 "$tmp/list" | awk '{print $1}')
"$tern" messages -c "$tmp/tern.yaml" show "$id" --raw >"$tmp/raw" 2>&1
check "... and shows the body in clear" grep -q "$NAME\\^JANE" "$tmp/raw"
check "... and the rejection reason" [ -n "$(stored "$tmp/tern.yaml" EA-X | grep '^rejected .*MSH-9')" ]

# --- without the key, with a wrong key ----------------------------------------------
conf "$tmp/nokey.yaml" ""
"$tern" serve -c "$tmp/nokey.yaml" >"$tmp/nokey.log" 2>&1
check "no master key: serve refuses to start" [ $? != 0 ]
check "... and says how to give one" grep -q "TERN_MASTER_KEY.*tern keys init" "$tmp/nokey.log"
TERN_MASTER_KEY=$(openssl rand -hex 32) "$tern" messages -c "$tmp/nokey.yaml" list >"$tmp/wrong" 2>&1
check "a wrong master key is named as such" grep -q "master key is not the one" "$tmp/wrong"

# --- rotation -------------------------------------------------------------------------
"$tern" keys init --key-file "$tmp/new.key" >/dev/null
"$tern" keys rotate -c "$tmp/tern.yaml" --new-key-file "$tmp/new.key" >"$tmp/rot" 2>&1
check "keys rotate --new-key-file" grep -q "re-wrapped" "$tmp/rot"
"$tern" messages -c "$tmp/tern.yaml" show "$id" --raw >"$tmp/old" 2>&1
check "... the old master key no longer opens the keyring" grep -q "master key is not the one" "$tmp/old"
conf "$tmp/tern.yaml" "encryption: { key_file: ./new.key }"
"$tern" keys rotate -c "$tmp/tern.yaml" --data-key >"$tmp/dk" 2>&1
check "keys rotate --data-key" grep -q "data key 2 added" "$tmp/dk"
start "$tmp/tern.yaml" "$tmp/serve2.log" || bad "serve after rotation did not start"
msgs "$tmp/b.hl7" B
"$tern" send --port "$P1" "$tmp/b.hl7" >/dev/null 2>&1
stop
"$tern" keys status -c "$tmp/tern.yaml" >"$tmp/status" 2>&1
check "keys status: two data keys, the second seals" grep -q "data key 2 .*seals new data" "$tmp/status"
"$tern" messages -c "$tmp/tern.yaml" list --patient "$MRN" >"$tmp/list2" 2>&1
check "old (data key 1) and new (data key 2) messages read under the new master key" \
    [ "$(grep -c "$MRN" "$tmp/list2")" = 12 ]
idb=$(grep EB-1 "$tmp/list2" | awk '{print $1}')
"$tern" messages -c "$tmp/tern.yaml" show "$idb" --raw 2>&1 | grep -q "$NAME" && ok "... bodies too" || bad "... bodies too"
check "still no patient name or id in any store file" [ -z "$(clear_in "$tmp/var")" ]

# --- control: encryption off stores in clear (the scan does see) --------------------
mkdir -p "$tmp/plain"
conf "$tmp/plain/tern.yaml" "encryption: { enabled: false }"
start "$tmp/plain/tern.yaml" "$tmp/plain.log" || bad "serve (plain) did not start"
"$tern" send --port "$P1" "$tmp/a.hl7" >/dev/null 2>&1
stop
check "control: with encryption off the name is in the store files" [ -n "$(clear_in "$tmp/plain/var")" ]
exit $fail
