#!/bin/sh
# Duplicate detection in `tern serve`: with `duplicates: { enabled: true }`
# a message with the same MSH-4 and MSH-10 as one received inside the window
# is acknowledged, stored as "duplicate" and not delivered again; a message
# from another facility with the same control id is not a duplicate; with
# detection off (the default) both are delivered.
set -u
tern=$1
src=$2
. "$src/tests/lib/common.sh"
fail=0
tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT
q() { caught_up "$tmp/var/tern.db"; sqlite3 -cmd ".timeout 5000" "$tmp/var/tern.db" "$1"; }

P1=$(free_port); P2=$(free_port)
cat >"$tmp/tern.yaml" <<YAML
store: { path: ./var/tern.db }
http: { enabled: false }
channels:
  - name: dedup
    source: { type: mllp, listen: 127.0.0.1:$P1 }
    duplicates: { enabled: true, window: 1h }
    destinations:
      - { name: out, type: file, dir: ./var/dedup, filename: "\${ID}.hl7" }
  - name: plain
    source: { type: mllp, listen: 127.0.0.1:$P2 }
    destinations:
      - { name: out, type: file, dir: ./var/plain, filename: "\${ID}.hl7" }
YAML
"$tern" serve -c "$tmp/tern.yaml" >"$tmp/serve.log" 2>&1 &
pid=$!
i=0; until grep -q "^tern: serving" "$tmp/serve.log"; do i=$((i+1)); [ $i -gt 100 ] && { cat "$tmp/serve.log"; exit 1; }; sleep 0.1; done

m() { printf 'MSH|^~\\&|APP|%s|R|F|2026||ADT^A08|%s|P|2.5\rPID|1||7^^^H^MR\r' "$1" "$2"; }
m FAC1 D-1 >"$tmp/1.hl7"; m FAC1 D-1 >"$tmp/2.hl7"; m FAC2 D-1 >"$tmp/3.hl7"
# one file per send: the second arrives in a later group commit than the first
for f in 1 2 3; do "$tern" send --port "$P1" "$tmp/$f.hl7" >>"$tmp/acks" || bad "send $f"; done
# and the same pair inside one group commit (one file, one connection)
cat "$tmp/1.hl7" "$tmp/1.hl7" | sed 's/D-1/D-2/' >"$tmp/pair.hl7"
"$tern" send --port "$P1" "$tmp/pair.hl7" >>"$tmp/acks" || bad "send pair"
[ "$(grep -c ' AA' "$tmp/acks")" = 5 ] && ok "duplicates are acknowledged AA" || { bad "acks"; cat "$tmp/acks"; }
for f in 1 2; do "$tern" send --port "$P2" "$tmp/$f.hl7" >/dev/null || bad "plain send"; done
sleep 1.5
[ "$(q "select count(*) from messages where channel='dedup' and state='duplicate'")" = 2 ] \
    && ok "2 stored as duplicate" || bad "duplicate count: $(q "select control_id, send_fac, state from messages")"
[ "$(q "select state from messages where channel='dedup' and send_fac='FAC2'")" = received ] \
    && ok "same control id from another facility is not a duplicate" || bad "other facility"
[ "$(ls "$tmp/var/dedup" | wc -l)" = 3 ] && ok "3 delivered (D-1 FAC1, D-1 FAC2, D-2)" || bad "dedup deliveries: $(ls "$tmp/var/dedup" | wc -l)"
[ "$(ls "$tmp/var/plain" | wc -l)" = 2 ] && ok "detection off by default: both delivered" || bad "plain deliveries"
kill -TERM $pid; wait $pid; rc=$?; pid=""
[ $rc = 0 ] && ok "SIGTERM exit 0" || bad "exit $rc"
exit $fail
