#!/bin/sh
# run.sh - memory under a large backlog: `tern serve` receives N messages
# over MLLP for a destination that is down (nothing listens on its port), so
# all N stay queued; then the destination comes up (tests' mllp_echo_server)
# and the queue drains, in order. Prints tern serve's resident memory (VmRSS)
# after the backlog built up and its peak (VmHWM) at the end, the time to
# drain, and checks that every message was delivered.
#
#     bench/backlog/run.sh BUILD_DIR        (e.g. bench/backlog/run.sh build)
#
# Settings: BACKLOG_COUNT=1000000 (N), BACKLOG_CONCURRENCY=16.
set -eu
# PHI is encrypted at rest by default: tern serve needs a master key (a
# throwaway one unless the caller set TERN_MASTER_KEY).
TERN_MASTER_KEY=${TERN_MASTER_KEY:-$(openssl rand -hex 32)}
export TERN_MASTER_KEY
if [ $# -ne 1 ]; then echo "usage: bench/backlog/run.sh BUILD_DIR" >&2; exit 2; fi
B=$(cd "$1" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TERN=$B/tern
ECHO=$B/tests/mllp_echo_server
N=${BACKLOG_COUNT:-1000000}
C=${BACKLOG_CONCURRENCY:-16}
[ -x "$TERN" ] && [ -x "$ECHO" ] || { echo "backlog: build first (make build)" >&2; exit 1; }
MSG="$ROOT/bench/out/mllp-adt_a01.hl7"
[ -f "$MSG" ] || python3 "$ROOT/bench/mllp/gen_adt.py" >/dev/null
tmp=$(mktemp -d)
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; rm -rf "$tmp"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
IN=$(port)
OUT=$(port)
cat >"$tmp/tern.yaml" <<YAML
store: { path: ./tern.db }
security: { auth: false }   # not about authentication (tests/security_*.sh are)
http: { enabled: false }
channels:
  - name: adt-in
    source: { type: mllp, listen: 127.0.0.1:$IN, max_connections: 256 }
    destinations:
      - { name: down, type: mllp, host: 127.0.0.1, port: $OUT,
          retry: { max_attempts: forever, backoff: 200ms..1s } }
YAML
echo "machine:  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
echo "input:    $N ADT^A01 ($(wc -c <"$MSG") bytes for 200 messages) over $C connections"
"$TERN" serve -c "$tmp/tern.yaml" >"$tmp/serve.log" 2>&1 &
SP=$!
pids="$pids $SP"
sleep 0.5
rss() { awk "/^$1:/ {print \$2}" /proc/$SP/status; }
start=$(date +%s.%N)
"$TERN" send --port "$IN" --count "$N" --concurrency "$C" "$MSG" >"$tmp/send.out" 2>&1 || { cat "$tmp/send.out"; exit 1; }
echo "received: $(tail -3 "$tmp/send.out" | head -1)"
q() { sqlite3 -cmd ".timeout 10000" "$tmp/tern.db" "$1"; }
echo "queued:   $(q "select count(*) from deliveries where state = 'queued'") deliveries"
echo "memory:   VmRSS $(rss VmRSS) kB with the backlog queued (peak so far VmHWM $(rss VmHWM) kB)"
"$ECHO" --port-file "$tmp/echo.port" --listen "127.0.0.1:$OUT" >/dev/null 2>&1 &
pids="$pids $!"
t0=$(date +%s.%N)
while [ "$(q "select count(*) from deliveries where state = 'queued'")" != 0 ]; do sleep 1; done
t1=$(date +%s.%N)
echo "drained:  $(q "select count(*) from deliveries where state = 'sent'") sent in $(python3 -c "print(round($t1 - $t0, 1))") s"
echo "memory:   VmRSS $(rss VmRSS) kB after draining; peak VmHWM $(rss VmHWM) kB"
kill -TERM $SP; wait $SP || true
