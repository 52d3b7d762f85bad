#!/bin/sh
# Retention (docs/configuration.md `retention`, docs/messages.md prune):
#   1. `tern messages prune` without --older-than applies each channel's
#      retention: a message older than its channel's retention is gone
#      (row and body: its bytes are in no file of the store, encryption
#      off), a younger one stays, a channel without retention keeps
#      everything, and a message with a delivery still queued stays;
#   2. `tern serve` prunes by itself every prune_every;
#   3. --older-than still works, and bad retention values are refused.
# TERN_TEST_KEEP=1 keeps the temporary directory.
set -u
tern=$1
src=$2
. "$src/tests/lib/common.sh"
fail=0
work_dir

MLLP_S=$(free_port); MLLP_K=$(free_port); MLLP_Q=$(free_port); DEAD=$(free_port)
conf() { # PRUNE_EVERY
    cat >"$tmp/tern.yaml" <<YAML
store: { path: ./var/tern.db }
encryption: { enabled: false }   # the test looks for plain bytes in the store's files
security: { auth: false }   # not about authentication (tests/security_*.sh are)
http: { enabled: false }
retention: 0
prune_every: $1
channels:
  - name: short
    retention: 2s
    source: { type: mllp, listen: 127.0.0.1:$MLLP_S }
    destinations:
      - { name: archive, type: file, dir: ./out, filename: "\${MSH-10}.hl7" }
  - name: forever
    source: { type: mllp, listen: 127.0.0.1:$MLLP_K }
  - name: stuck
    retention: 2s
    source: { type: mllp, listen: 127.0.0.1:$MLLP_Q }
    destinations:
      - { name: down, type: mllp, host: 127.0.0.1, port: $DEAD, connect_timeout: 100ms,
          retry: { max_attempts: forever, backoff: 1s } }
YAML
}
start() {
    "$tern" serve -c "$tmp/tern.yaml" >>"$tmp/serve.log" 2>&1 &
    serve_pid=$!
    pids="$pids $serve_pid"
    wait_port "$MLLP_S" && wait_port "$MLLP_K" && wait_port "$MLLP_Q" || { cat "$tmp/serve.log"; exit 1; }
}
stop() { kill -TERM "$serve_pid"; wait "$serve_pid"; }
send() { # PORT CONTROL_ID: the body carries MARK-CONTROL_ID in an OBX, nowhere else
    python3 - "$1" "$2" <<'PY'
import socket, sys
port, ctl = int(sys.argv[1]), sys.argv[2]
m = ("MSH|^~\\&|LAB|HOSP|TERN|HOSP|20240101120000||ORU^R01|%s|P|2.5\r"
     "PID|1||P1^^^HOSP||DOE^JOHN\rOBX|1|ST|NOTE||MARK-%s-MARK\r" % (ctl, ctl)).encode()
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"\x0b" + m + b"\x1c\r")
buf = b""
while not buf.endswith(b"\x1c\r"):
    d = s.recv(4096)
    if not d:
        break
    buf += d
print("AA" if b"MSA|AA" in buf else "NO " + buf.decode(errors="replace"))
PY
}
# in_store MARK: how many files of the store hold the bytes
in_store() { grep -rl --binary-files=text "MARK-$1-MARK" "$tmp/var" 2>/dev/null | wc -l; }
M="$tern messages -c $tmp/tern.yaml"

# --- 1. prune by retention from the CLI ------------------------------------------------
conf 1d
start
check "old message to 'short' AA" [ "$(send "$MLLP_S" OLD1)" = AA ]
check "message to 'forever' AA" [ "$(send "$MLLP_K" KEEP1)" = AA ]
check "message to 'stuck' AA" [ "$(send "$MLLP_Q" STUCK1)" = AA ]
sleep 2.5
check "young message to 'short' AA" [ "$(send "$MLLP_S" YOUNG1)" = AA ]
WAIT_TENTHS=50 wait_for 'stored "$tmp/tern.yaml" YOUNG1 archive' "sent|" || bad "YOUNG1 not delivered"
check "before prune: OLD1's bytes are in the store" [ "$(in_store OLD1)" -ge 1 ]
out=$($M prune --dry-run 2>&1)
check "prune --dry-run by retention counts 1 in short, 0 in stuck: $(echo $out)" \
    sh -c 'echo "$1" | grep -q "short (retention 2s): 1 message" && echo "$1" | grep -q "stuck (retention 2s): 0 messages" && ! echo "$1" | grep -q forever' _ "$out"
out=$($M prune --yes --reason test 2>&1)
check "prune --yes by retention deletes 1: $(echo $out | head -c 200)" sh -c 'echo "$1" | grep -q "deleted 1 message"' _ "$out"
check "OLD1 gone" [ -z "$(stored "$tmp/tern.yaml" OLD1)" ]
check "YOUNG1 kept" [ -n "$(stored "$tmp/tern.yaml" YOUNG1)" ]
check "KEEP1 (channel without retention) kept" [ -n "$(stored "$tmp/tern.yaml" KEEP1)" ]
check "STUCK1 (delivery queued) kept" [ -n "$(stored "$tmp/tern.yaml" STUCK1)" ]
stop
check "OLD1's bytes are in no file of the store (db, WAL, body log)" [ "$(in_store OLD1)" = 0 ]
check "YOUNG1's bytes are still there (the check can see bytes)" [ "$(in_store YOUNG1)" -ge 1 ]
r=$(sqlite3 "$tmp/var/tern.db" "PRAGMA integrity_check" 2>&1)
check "integrity_check after prune: $r" [ "$r" = ok ]
check "YOUNG1 still readable after its neighbour was blanked" \
    sh -c "$M show \$($M list --json --limit 100 | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m[\"control_id\"] == \"YOUNG1\": print(m[\"id\"])') --raw | grep -q MARK-YOUNG1-MARK"

# --- 2. tern serve prunes by itself --------------------------------------------------
conf 300ms
start   # restart: recovery walks the body log past the blanked record
check "restarted over a body log with a blanked record" kill -0 "$serve_pid"
check "OLD2 AA" [ "$(send "$MLLP_S" OLD2)" = AA ]
WAIT_TENTHS=60 wait_for 'stored "$tmp/tern.yaml" OLD2 | cut -c1' "" || bad "serve did not prune OLD2"
check "serve pruned YOUNG1 too (now past 2s)" [ -z "$(stored "$tmp/tern.yaml" YOUNG1)" ]
check "serve kept KEEP1" [ -n "$(stored "$tmp/tern.yaml" KEEP1)" ]
check "serve kept STUCK1 (queued)" [ -n "$(stored "$tmp/tern.yaml" STUCK1)" ]
grep -q "past retention deleted" "$tmp/serve.log" && ok "serve logs what it pruned" || bad "no prune log line"
stop
check "OLD2's bytes are in no file of the store" [ "$(in_store OLD2)" = 0 ]

# --- 3. the explicit form and bad values ----------------------------------------------
out=$($M prune --older-than 1s --yes 2>&1)
check "prune --older-than 1s still works: $(echo $out | head -c 120)" sh -c 'echo "$1" | grep -q "deleted 1 message"' _ "$out"
check "--older-than ignores retention: KEEP1 gone" [ -z "$(stored "$tmp/tern.yaml" KEEP1)" ]
check "--older-than still keeps queued STUCK1" [ -n "$(stored "$tmp/tern.yaml" STUCK1)" ]
sed -i 's/^retention: 0/retention: soon/' "$tmp/tern.yaml"
out=$("$tern" config check -c "$tmp/tern.yaml" 2>&1)
check "retention: soon is refused: $(echo "$out" | head -c 160)" sh -c 'echo "$1" | grep -q "retention"' _ "$out"

if [ $fail -ne 0 ] || [ -n "${TERN_TEST_VERBOSE:-}" ]; then tail -30 "$tmp/serve.log"; fi
exit $fail
