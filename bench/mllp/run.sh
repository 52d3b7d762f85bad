#!/bin/sh
# run.sh - Tern's MLLP benchmark: `tern serve` with its durable store against
# a Node MLLP server built with @medplum/hl7 that stores nothing, both driven
# by the same `tern send` load generator, on the same machine, in the same run.
#
#     bench/mllp/run.sh TERN_BINARY     (make bench runs: bench/mllp/run.sh build/tern)
#
# 1. Generates bench/out/mllp-adt_a01.hl7 (200 ADT^A01 messages,
#    bench/mllp/gen_adt.py) if it is missing or older than its generators.
# 2. Prints the machine (CPU, cores, memory, kernel, load average, the file
#    system of the store) and the versions.
# 3. Tern: copies the binary into a temp dir, writes a configuration there
#    (SQLite store in the temp dir, one MLLP channel on a free 127.0.0.1
#    port, no destinations: every message is stored durably, then ACKed),
#    starts `tern serve -c`, waits for the port, sends a warm-up, then
#      - for each concurrency C: `tern send --count N --concurrency C`
#        (throughput: as fast as the receiver answers);
#      - `tern send --rate R --count R*S --concurrency C0` (latency at a
#        fixed offered rate; latency counts from when a message was due);
#    then SIGTERM: tern serve must exit 0 and the store must hold every
#    message that was acknowledged (sqlite3 count).
# 4. The Node peer (bench/mllp/peer/server.mjs: @medplum/hl7 Hl7Server, an
#    AA ACK from Hl7Message.buildAck() per message, no storage): started on a
#    free 127.0.0.1 port and driven the same way, with the same message file,
#    N, concurrencies and rate.
# 5. Prints a table (messages/s, ACK latency p50/p95/p99/max, Tern's
#    messages/s over the peer's at the same concurrency), checks the targets
#    of issue 4 and writes everything to bench/out/mllp-results.json.
#
# Settings (environment):
#   MLLP_COUNT=50000          N, messages per throughput run
#   MLLP_CONCURRENCY="8 64"   concurrencies of the throughput runs; the first
#                             one is also used for the warm-up and the rate run
#   MLLP_RATE=5000            R, messages/s of the latency run
#   MLLP_RATE_SECONDS=10      S, length of the latency run
#   MLLP_WARMUP=5000          warm-up messages per receiver (not reported)
#   MLLP_MESSAGES=FILE        send this file instead of the generated one
#                             (e.g. examples/messages/adt_a01.hl7)
#   MLLP_KEEP=1               keep the temp dir (store, logs) and print it
# See bench/README.md for what is timed and how to read the numbers.
set -eu
# PHI is encrypted at rest by default: tern serve needs a master key (a
# throwaway one unless the caller set TERN_MASTER_KEY).
TERN_MASTER_KEY=${TERN_MASTER_KEY:-$(openssl rand -hex 32)}
export TERN_MASTER_KEY

if [ $# -ne 1 ]; then
    echo "usage: bench/mllp/run.sh TERN_BINARY" >&2
    exit 2
fi
TERN_ARG=$1
case $TERN_ARG in /*) ;; *) TERN_ARG=$(pwd)/$TERN_ARG ;; esac
if [ ! -f "$TERN_ARG" ] || [ ! -x "$TERN_ARG" ]; then
    echo "bench: Tern binary '$1' not found or not executable; build it first (make build)" >&2
    exit 1
fi

HERE=$(cd "$(dirname "$0")" && pwd)
BENCH=$(dirname "$HERE")
ROOT=$(dirname "$BENCH")
PEER=$HERE/peer
OUT=$BENCH/out
RESULTS=$OUT/mllp-results.json
mkdir -p "$OUT"

COUNT=${MLLP_COUNT:-50000}
CONCS=${MLLP_CONCURRENCY:-8 64}
RATE=${MLLP_RATE:-5000}
RATE_SECS=${MLLP_RATE_SECONDS:-10}
WARMUP=${MLLP_WARMUP:-5000}
for v in "$COUNT" "$RATE" "$RATE_SECS" $CONCS; do
    case $v in '' | *[!0-9]* | 0)
        echo "bench: MLLP_COUNT, MLLP_CONCURRENCY, MLLP_RATE and MLLP_RATE_SECONDS need whole numbers > 0" >&2
        exit 2 ;;
    esac
done
case $WARMUP in '' | *[!0-9]*) echo "bench: MLLP_WARMUP needs a whole number" >&2; exit 2 ;; esac
C0=${CONCS%% *}
RATE_COUNT=$((RATE * RATE_SECS))
SEND_TIMEOUT=600 # upper bound for one tern send run, seconds

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

jstr() { printf '%s' "$1" | tr -d '\r\n\t' | sed 's/\\/\\\\/g; s/"/\\"/g'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "0" }'; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown; }
# True while process $1 (our child) runs: exists and is not a zombie.
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) \([A-Za-z]\).*/\1/' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# --- temp dir, cleanup ------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tern-mllp-bench.XXXXXX")
SERVE_PID=""
NODE_PID=""
cleanup() {
    for p in $SERVE_PID $NODE_PID; do
        if alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
    done
    if [ "${MLLP_KEEP:-0}" = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A copy, so that a rebuild of TERN_BINARY during the run cannot mix binaries.
TERN=$TMP/tern
cp "$TERN_ARG" "$TERN"

# --- messages ---------------------------------------------------------------
if [ -n "${MLLP_MESSAGES:-}" ]; then
    MSGFILE=$MLLP_MESSAGES
    case $MSGFILE in /*) ;; *) MSGFILE=$(pwd)/$MSGFILE ;; esac
    [ -f "$MSGFILE" ] || { echo "bench: MLLP_MESSAGES: $MSGFILE not found" >&2; exit 1; }
else
    MSGFILE=$OUT/mllp-adt_a01.hl7
    if [ ! -f "$MSGFILE" ] || [ -n "$(find "$HERE/gen_adt.py" "$BENCH/gen_corpus.py" -newer "$MSGFILE")" ]; then
        echo "== generating messages"
        "$PY" "$HERE/gen_adt.py" --out "$MSGFILE"
        echo
    fi
fi
MSG_STATS=$("$TERN" parse --stats "$MSGFILE" 2>/dev/null || true)
MSG_N=$(printf '%s\n' "$MSG_STATS" | awk '$1 == "messages" { print $2 }')
MSG_BYTES=$(printf '%s\n' "$MSG_STATS" | awk '$1 == "bytes" { print $2 }')
MSG_ERRS=$(printf '%s\n' "$MSG_STATS" | awk '$1 == "errors" { print $2 }')
if [ -z "$MSG_N" ] || [ "$MSG_N" = 0 ] || [ "$MSG_ERRS" != 0 ]; then
    echo "bench: $MSGFILE does not parse cleanly with tern parse:" >&2
    printf '%s\n' "$MSG_STATS" >&2
    exit 1
fi
MSG_AVG=$((MSG_BYTES / MSG_N))
MSG_TYPES=$(tr '\r' '\n' <"$MSGFILE" | awk -F'|' '/^MSH/ { print $9 }' | sort | uniq -c | awk '{ printf "%s%s x%s", s, $2, $1; s = ", " }')

# --- machine and versions ---------------------------------------------------
CPU=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
[ -n "$CPU" ] || CPU=$(uname -m)
CORES=$(nproc 2>/dev/null || echo 1)
KERNEL=$(uname -r)
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null || true)
FS=$(df -PT "$TMP" 2>/dev/null | awk 'NR == 2 { print $2 " on " $1 " (" $7 ")" }')
FSTYPE=${FS%% *}
LOAD_START=$(loadavg)
TERN_VERSION=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
SQLITE_VERSION=$(dpkg-query -W -f='${Version}' libsqlite3-0 2>/dev/null || echo unknown)
LIBEVENT_VERSION=$(dpkg-query -W -f='${Version}' libevent-2.1-7 2>/dev/null || dpkg-query -W -f='${Version}' libevent-2.1-7t64 2>/dev/null || echo unknown)
NODE_VERSION=$(node --version 2>/dev/null || echo "not found")
HL7_PIN=$(sed -n 's/.*"@medplum\/hl7": *"\([^"]*\)".*/\1/p' "$PEER/package.json" | head -n 1)
CORE_PIN=$(sed -n 's/.*"@medplum\/core": *"\([^"]*\)".*/\1/p' "$PEER/package.json" | head -n 1)
installed() { # package -> version in node_modules
    sed -n 's/^  "version": *"\([^"]*\)".*/\1/p' "$PEER/node_modules/$1/package.json" 2>/dev/null | head -n 1
}

echo "== machine"
echo "cpu         $CPU"
echo "cores       $CORES"
echo "memory      ${MEM:-unknown}"
echo "kernel      $KERNEL"
echo "store fs    ${FS:-unknown}"
echo "load avg    $LOAD_START (1, 5, 15 min; at start)"
echo "== messages"
echo "file        ${MSGFILE#"$ROOT"/}"
echo "messages    $MSG_N ($MSG_TYPES), $MSG_BYTES bytes, $MSG_AVG bytes/message on average"
echo "== versions"
echo "tern        $TERN_VERSION ($TERN_ARG), libsqlite3 $SQLITE_VERSION, libevent $LIBEVENT_VERSION"
echo "medplum     @medplum/hl7 $HL7_PIN, @medplum/core $CORE_PIN (pinned), node $NODE_VERSION"
echo "== load"
echo "per receiver: warm-up $WARMUP messages at concurrency $C0 (not reported);"
echo "throughput: $COUNT messages at concurrency $(echo "$CONCS" | sed 's/ /, then /g');"
echo "latency: $RATE_COUNT messages at $RATE/s ($RATE_SECS s) over $C0 connections"
case $FSTYPE in tmpfs | ramfs)
    echo "warning: the store is on $FSTYPE, where fsync costs nothing; set TMPDIR to a disk" ;;
esac
echo

ROWS=""    # "peer conc rate msgs_per_s p50 p95 p99 max load" lines
SKIPPED=""
NOTES=""
note() { echo "note: $1"; NOTES="$NOTES\"$(jstr "$1")\","; }

# Runs tern send against port $1 with label $2 (for logs) and the remaining
# arguments; sets S_MPS S_P50 S_P95 S_P99 S_MAX; returns 1 on failure (tern
# send exits 1 unless every message got AA or CA).
run_send() {
    port=$1 label=$2
    shift 2
    rc=0
    timeout "$SEND_TIMEOUT" "$TERN" send --port "$port" "$@" "$MSGFILE" >"$TMP/$label.out" 2>"$TMP/$label.err" || rc=$?
    S_MPS=$(awk '/^sent / { print $(NF - 1) }' "$TMP/$label.out")
    # shellcheck disable=SC2046 # four numbers, split on purpose
    set -- $(awk '/^ACK latency ms:/ { print $5, $7, $9, $11 }' "$TMP/$label.out")
    S_P50=${1:-} S_P95=${2:-} S_P99=${3:-} S_MAX=${4:-}
    if [ "$rc" != 0 ] || [ -z "$S_MPS" ] || [ -z "$S_P99" ]; then
        echo "    tern send failed (exit $rc):"
        sed 's/^/    /' "$TMP/$label.out" "$TMP/$label.err" | tail -n 6
        return 1
    fi
    return 0
}

# Drives the receiver on port $1 named $2: warm-up, throughput runs, rate run.
drive() {
    port=$1 peer=$2
    if [ "$WARMUP" -gt 0 ]; then
        run_send "$port" "$peer-warmup" --count "$WARMUP" --concurrency "$C0" || return 1
        echo "warm-up     $WARMUP messages: $S_MPS messages/s"
    fi
    for c in $CONCS; do
        load=$(loadavg | cut -d' ' -f1)
        run_send "$port" "$peer-c$c" --count "$COUNT" --concurrency "$c" || return 1
        printf 'C=%-4s      %s messages/s, ACK ms p50 %s p95 %s p99 %s max %s (load %s)\n' \
            "$c" "$S_MPS" "$S_P50" "$S_P95" "$S_P99" "$S_MAX" "$load"
        ROWS="$ROWS$peer $c 0 $S_MPS $S_P50 $S_P95 $S_P99 $S_MAX $load
"
    done
    load=$(loadavg | cut -d' ' -f1)
    run_send "$port" "$peer-rate" --count "$RATE_COUNT" --concurrency "$C0" --rate "$RATE" || return 1
    printf 'rate %-6s  %s messages/s, ACK ms p50 %s p95 %s p99 %s max %s (load %s)\n' \
        "$RATE" "$S_MPS" "$S_P50" "$S_P95" "$S_P99" "$S_MAX" "$load"
    ROWS="$ROWS$peer $C0 $RATE $S_MPS $S_P50 $S_P95 $S_P99 $S_MAX $load
"
    return 0
}

# Waits until $1 (our child) exits, at most $2 seconds; sets EXIT_RC
# ("timeout" if it did not exit, after killing it).
wait_exit() {
    n=0
    while alive "$1" && [ "$n" -lt $(($2 * 10)) ]; do
        sleep 0.1
        n=$((n + 1))
    done
    if alive "$1"; then
        kill -KILL "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
        EXIT_RC=timeout
        return
    fi
    EXIT_RC=0
    wait "$1" || EXIT_RC=$?
}

# --- tern -------------------------------------------------------------------
echo "== tern serve (SQLite store in the temp dir, body log synced per batch, baseline validation, no destinations)"
TERN_OK=0
STORE_CHECK=""
TERN_EXIT=""
attempt=1
while [ $attempt -le 3 ]; do
    TPORT=$(free_port)
    cat >"$TMP/tern.yaml" <<EOF
# Written by bench/mllp/run.sh: store only, ACK after the durable commit.
store: { path: ./tern.db }
security: { auth: false }   # not about authentication (tests/security_*.sh are)
http: { enabled: false }
channels:
  - name: adt-in
    source: { type: mllp, listen: 127.0.0.1:$TPORT, max_connections: 1024 }
EOF
    rm -f "$TMP/tern.db" "$TMP/tern.db-wal" "$TMP/tern.db-shm"
    "$TERN" serve -c "$TMP/tern.yaml" >"$TMP/serve.out" 2>"$TMP/serve.err" &
    SERVE_PID=$!
    n=0
    while alive "$SERVE_PID" && ! grep -q "listening for MLLP on 127.0.0.1:$TPORT" "$TMP/serve.err" && [ $n -lt 100 ]; do
        sleep 0.1
        n=$((n + 1))
    done
    if alive "$SERVE_PID" && grep -q "listening for MLLP" "$TMP/serve.err"; then break; fi
    wait_exit "$SERVE_PID" 5
    echo "tern serve did not start on port $TPORT (attempt $attempt):"
    sed 's/^/    /' "$TMP/serve.err" | tail -n 5
    SERVE_PID=""
    attempt=$((attempt + 1))
done
if [ -n "$SERVE_PID" ]; then
    echo "listening   127.0.0.1:$TPORT (pid $SERVE_PID)"
    if drive "$TPORT" tern; then TERN_OK=1; fi
    kill -TERM "$SERVE_PID"
    wait_exit "$SERVE_PID" 60
    TERN_EXIT=$EXIT_RC
    SERVE_PID=""
    echo "SIGTERM     tern serve exit status $TERN_EXIT"
    [ "$TERN_EXIT" = 0 ] || { note "tern serve did not exit 0 after SIGTERM (status $TERN_EXIT)"; tail -n 5 "$TMP/serve.err" | sed 's/^/    /'; }
    # Every run was checked to have all messages accepted, so the store must
    # hold exactly what was sent.
    expect=$((WARMUP + RATE_COUNT))
    for c in $CONCS; do expect=$((expect + COUNT)); done
    if [ "$TERN_OK" = 1 ] && command -v sqlite3 >/dev/null 2>&1; then
        got=$(sqlite3 "$TMP/tern.db" "SELECT count(*) FROM messages WHERE state = 'received'" 2>&1 || true)
        if [ "$got" = "$expect" ]; then
            STORE_CHECK="ok: $got messages stored, $expect acknowledged"
        else
            STORE_CHECK="MISMATCH: $got messages stored, $expect acknowledged"
            note "the store holds $got received messages, $expect were acknowledged"
        fi
        echo "store       $STORE_CHECK ($(du -sk "$TMP" | awk '{ printf "%.0f MB", $1 / 1024 }') on disk with the log)"
    elif [ "$TERN_OK" = 1 ]; then
        STORE_CHECK="not checked: sqlite3 not installed"
        echo "store       $STORE_CHECK"
    fi
    grep '^channel ' "$TMP/serve.err" | sed 's/^/tern says   /' || true
else
    SKIPPED="$SKIPPED{\"peer\":\"tern\",\"reason\":\"tern serve did not start\"},"
fi
[ "$TERN_OK" = 1 ] || { echo "bench: the Tern runs failed; see above" >&2; }
echo

# --- node peer --------------------------------------------------------------
echo "== medplum: @medplum/hl7 Hl7Server (node; AA ACK per message, no storage)"
skip() { echo "medplum: skipped: $1"; SKIPPED="$SKIPPED{\"peer\":\"medplum\",\"reason\":\"$(jstr "$1")\"},"; }
if ! command -v node >/dev/null 2>&1; then
    skip "node not found"
else
    if [ "$(installed @medplum/hl7)" != "$HL7_PIN" ] || [ "$(installed @medplum/core)" != "$CORE_PIN" ]; then
        echo "installing @medplum/hl7 $HL7_PIN (npm ci in bench/mllp/peer)"
        if ! (cd "$PEER" && timeout 600 npm ci --no-audit --no-fund >"$OUT/mllp-npm-ci.txt" 2>&1); then
            tail -n 5 "$OUT/mllp-npm-ci.txt" | sed 's/^/    /'
        fi
    fi
    if [ "$(installed @medplum/hl7)" != "$HL7_PIN" ]; then
        skip "@medplum/hl7 $HL7_PIN could not be installed (npm registry unreachable? see bench/out/mllp-npm-ci.txt)"
    else
        node "$PEER/server.mjs" 0 >"$TMP/node.out" 2>"$TMP/node.err" &
        NODE_PID=$!
        n=0
        while alive "$NODE_PID" && ! grep -q '"port"' "$TMP/node.out" && [ $n -lt 100 ]; do
            sleep 0.1
            n=$((n + 1))
        done
        NPORT=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$TMP/node.out" | head -n 1)
        if [ -z "$NPORT" ]; then
            wait_exit "$NODE_PID" 5
            NODE_PID=""
            sed 's/^/    /' "$TMP/node.err" | tail -n 5
            skip "the peer did not start"
        else
            echo "listening   127.0.0.1:$NPORT (pid $NODE_PID)"
            drive "$NPORT" medplum || skip "a run against the peer failed"
            kill -TERM "$NODE_PID"
            wait_exit "$NODE_PID" 30
            NODE_PID=""
            echo "SIGTERM     peer exit status $EXIT_RC; $(tail -n 1 "$TMP/node.out")"
        fi
    fi
fi
LOAD_END=$(loadavg)
echo

# --- table, targets, JSON ---------------------------------------------------
echo "== results (ACK latency in ms; tern x = Tern's messages/s / the peer's at the same concurrency)"
printf '%-8s %5s %7s %12s %8s %8s %8s %8s %7s %7s\n' peer conc rate messages/s p50 p95 p99 max "tern x" load
JSON_ROWS=""
peer_mps() { # concurrency -> medplum's throughput at it (empty if none)
    printf '%s' "$ROWS" | awk -v c="$1" '$1 == "medplum" && $2 == c && $3 == 0 { print $4; exit }'
}
tern_mps() {
    printf '%s' "$ROWS" | awk -v c="$1" '$1 == "tern" && $2 == c && $3 == 0 { print $4; exit }'
}
OLDIFS=$IFS
IFS='
'
set -f # rows are split on newlines, then on blanks, never globbed
for row in $ROWS; do
    IFS=$OLDIFS
    # shellcheck disable=SC2086 # split on purpose
    set -- $row
    x="-"
    if [ "$3" = 0 ]; then
        pm=$(peer_mps "$2")
        tm=$(tern_mps "$2")
        [ -n "$pm" ] && [ -n "$tm" ] && x=$(ratio "$tm" "$pm")
    fi
    r=$3
    [ "$r" = 0 ] && r="max"
    printf '%-8s %5s %7s %12s %8s %8s %8s %8s %7s %7s\n' "$1" "$2" "$r" "$4" "$5" "$6" "$7" "$8" "$x" "$9"
    xj=$x
    [ "$xj" = "-" ] && xj=null
    JSON_ROWS="$JSON_ROWS    {\"peer\":\"$1\",\"concurrency\":$2,\"rate\":$3,\"messages\":$([ "$3" = 0 ] && echo "$COUNT" || echo "$RATE_COUNT"),\"messages_per_s\":$4,\"p50_ms\":$5,\"p95_ms\":$6,\"p99_ms\":$7,\"max_ms\":$8,\"tern_speedup\":$xj,\"load1\":$9},
"
    IFS='
'
done
IFS=$OLDIFS
set +f
echo

echo "== targets (issue 4, on this 2-core machine)"
TARGETS=""
target() { # name value verdict
    printf '%-46s %-28s %s\n' "$1" "$2" "$3"
    TARGETS="$TARGETS{\"target\":\"$(jstr "$1")\",\"value\":\"$(jstr "$2")\",\"verdict\":\"$3\"},"
}
if [ "$TERN_OK" = 1 ]; then
    for c in $CONCS; do
        tm=$(tern_mps "$c")
        v=$(awk -v a="$tm" 'BEGIN { print (a + 0 >= 30000) ? "met" : "MISSED" }')
        target ">= 30,000 stored+ACKed msg/s (C=$c)" "$tm msg/s" "$v"
    done
    tp99=$(printf '%s' "$ROWS" | awk -v r="$RATE" '$1 == "tern" && $3 == r { print $7; exit }')
    if [ "$RATE" = 5000 ]; then
        v=$(awk -v a="$tp99" 'BEGIN { print (a + 0 < 10) ? "met" : "MISSED" }')
        target "p99 ACK latency < 10 ms at 5,000 msg/s" "p99 $tp99 ms" "$v"
    fi
    for c in $CONCS; do
        tm=$(tern_mps "$c")
        pm=$(peer_mps "$c")
        if [ -n "$pm" ]; then
            x=$(ratio "$tm" "$pm")
            v=$(awk -v a="$x" 'BEGIN { print (a + 0 >= 3) ? "met" : "MISSED" }')
            target ">= 3x the Node peer's throughput (C=$c)" "${x}x ($tm / $pm)" "$v"
        fi
    done
    # throughput as the most each one did, at whichever concurrency
    tbest=$(printf '%s' "$ROWS" | awk '$1 == "tern" && $3 == 0 && $4 + 0 > b { b = $4 + 0; c = $2 } END { if (b) print b, c }')
    pbest=$(printf '%s' "$ROWS" | awk '$1 == "medplum" && $3 == 0 && $4 + 0 > b { b = $4 + 0; c = $2 } END { if (b) print b, c }')
    if [ -n "$tbest" ]; then
        v=$(awk -v a="${tbest% *}" 'BEGIN { print (a + 0 >= 30000) ? "met" : "MISSED" }')
        target ">= 30,000 stored+ACKed msg/s (best C)" "${tbest% *} msg/s (C=${tbest#* })" "$v"
    fi
    if [ -n "$tbest" ] && [ -n "$pbest" ]; then
        x=$(ratio "${tbest% *}" "${pbest% *}")
        v=$(awk -v a="$x" 'BEGIN { print (a + 0 >= 3) ? "met" : "MISSED" }')
        target ">= 3x the peer's throughput (best C each)" "${x}x (C=${tbest#* } / C=${pbest#* })" "$v"
    fi
fi
echo "load avg    $LOAD_END at the end (1, 5, 15 min; at start $LOAD_START)"

{
    echo "{"
    echo "  \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
    echo "  \"machine\": {\"cpu\": \"$(jstr "$CPU")\", \"cores\": $CORES, \"kernel\": \"$(jstr "$KERNEL")\", \"memory\": \"$(jstr "$MEM")\", \"store_fs\": \"$(jstr "$FS")\", \"loadavg_start\": \"$LOAD_START\", \"loadavg_end\": \"$LOAD_END\"},"
    echo "  \"versions\": {\"tern\": \"$(jstr "$TERN_VERSION")\", \"libsqlite3\": \"$(jstr "$SQLITE_VERSION")\", \"libevent\": \"$(jstr "$LIBEVENT_VERSION")\", \"medplum_hl7\": \"$(jstr "$HL7_PIN")\", \"medplum_core\": \"$(jstr "$CORE_PIN")\", \"node\": \"$(jstr "$NODE_VERSION")\"},"
    echo "  \"messages\": {\"file\": \"$(jstr "${MSGFILE#"$ROOT"/}")\", \"count\": $MSG_N, \"bytes\": $MSG_BYTES, \"types\": \"$(jstr "$MSG_TYPES")\"},"
    echo "  \"load\": {\"count\": $COUNT, \"concurrency\": [$(echo "$CONCS" | sed 's/  */,/g')], \"rate\": $RATE, \"rate_count\": $RATE_COUNT, \"warmup\": $WARMUP},"
    echo "  \"tern\": {\"config\": \"SQLite store (WAL) with its body log synced per batch, in a temp dir, one MLLP channel, no destinations\", \"exit_after_sigterm\": \"$TERN_EXIT\", \"store_check\": \"$(jstr "$STORE_CHECK")\"},"
    echo "  \"results\": ["
    printf '%s' "$JSON_ROWS" | sed '$ s/,$//'
    echo "  ],"
    echo "  \"targets\": [$(printf '%s' "$TARGETS" | sed 's/,$//')],"
    echo "  \"notes\": [$(printf '%s' "$NOTES" | sed 's/,$//')],"
    echo "  \"skipped\": [$(printf '%s' "$SKIPPED" | sed 's/,$//')]"
    echo "}"
} >"$RESULTS"
echo
echo "results written to ${RESULTS#"$ROOT"/}"
[ "$TERN_OK" = 1 ] && [ "$TERN_EXIT" = 0 ] && case $STORE_CHECK in MISMATCH*) false ;; *) true ;; esac
