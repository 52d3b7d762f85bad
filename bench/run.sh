#!/bin/sh
# run.sh - Tern's parse benchmark: Tern against two other HL7 v2 parsers on
# the same corpus, on the same machine, in the same run.
#
#     bench/run.sh TERN_BINARY          (make bench runs: bench/run.sh build/tern)
#
# 1. Generates bench/out/corpus.hl7 (110 MB, bench/gen_corpus.py) if it is
#    missing or older than the generator.
# 2. Prints the machine (CPU, cores, kernel), the corpus and the peer versions.
# 3. Runs `TERN_BINARY parse --stats CORPUS` 3 times and keeps the fastest,
#    then the python-hl7 peer once (it is slow) and the medplum peer twice
#    (fastest kept). A peer that cannot run is reported and skipped.
# 4. Prints a table (seconds, MB/s, messages/s, Tern's speed-up over each
#    peer) and writes it as JSON to bench/out/parse-results.json.
# MB = 10^6 bytes everywhere. See bench/README.md for what each side times.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: bench/run.sh TERN_BINARY" >&2
    exit 2
fi
TERN=$1
case $TERN in /*) ;; *) TERN=$(pwd)/$TERN ;; esac
if [ ! -f "$TERN" ] || [ ! -x "$TERN" ]; then
    echo "bench: Tern binary '$1' not found or not executable; build it first (make build)" >&2
    exit 1
fi

BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH")
PEERS=$BENCH/peers
OUT=$BENCH/out
CORPUS=$OUT/corpus.hl7
RESULTS=$OUT/parse-results.json
PY=/usr/bin/python3 # Debian's: the one python3-hl7 is installed for
mkdir -p "$OUT"

# Extracts a number or string value from our peers' flat one-line JSON.
jget() { printf '%s\n' "$1" | sed -n 's/.*"'"$2"'": *"\{0,1\}\([^",}]*\)"\{0,1\}[,}].*/\1/p'; }
# Escapes a string for a JSON string literal.
jstr() { printf '%s' "$1" | tr -d '\r\n\t' | sed 's/\\/\\\\/g; s/"/\\"/g'; }
# True if $1 is a plain decimal number.
isnum() { printf '%s\n' "$1" | grep -Eq '^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$'; }
# awk arithmetic helpers: lt A B (A < B), ratio A B (A/B, 1 decimal).
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.1f", a / b; else print "0" }'; }

# --- corpus -----------------------------------------------------------------
if [ ! -f "$CORPUS" ] || [ -n "$(find "$BENCH/gen_corpus.py" -newer "$CORPUS")" ]; then
    echo "== generating corpus"
    GENPY=$PY
    [ -x "$GENPY" ] || GENPY=python3 # the generator needs only the stdlib
    "$GENPY" "$BENCH/gen_corpus.py" --out "$CORPUS"
    echo
fi
CORPUS_BYTES=$(wc -c <"$CORPUS" | tr -d ' ')
CORPUS_MSGS=$(tr '\r' '\n' <"$CORPUS" | grep -c '^MSH' || true)

# --- machine and versions ---------------------------------------------------
CPU=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
[ -n "$CPU" ] || CPU=$(uname -m)
CORES=$(nproc 2>/dev/null || echo 1)
KERNEL=$(uname -r)
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null || true)
TERN_VERSION=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
PYHL7_VERSION=$(dpkg-query -W -f='${Version}' python3-hl7 2>/dev/null || true)
[ -n "$PYHL7_VERSION" ] || PYHL7_VERSION="not installed"
PY_VERSION=$("$PY" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo "not found")
NODE_VERSION=$(node --version 2>/dev/null || echo "not found")
MEDPLUM_PIN=$(sed -n 's/.*"@medplum\/core": *"\([^"]*\)".*/\1/p' "$PEERS/package.json" | head -n 1)
medplum_installed() {
    sed -n 's/^  "version": *"\([^"]*\)".*/\1/p' "$PEERS/node_modules/@medplum/core/package.json" 2>/dev/null | head -n 1
}

echo "== machine"
echo "cpu       $CPU"
echo "cores     $CORES"
echo "memory    ${MEM:-unknown}"
echo "kernel    $KERNEL"
echo "== corpus"
echo "file      $CORPUS"
echo "bytes     $CORPUS_BYTES ($(awk -v b="$CORPUS_BYTES" 'BEGIN { printf "%.1f", b / 1e6 }') MB)"
echo "messages  $CORPUS_MSGS"
echo "== versions"
echo "tern        $TERN_VERSION ($TERN)"
echo "python-hl7  $(dpkg-query -W python3-hl7 2>/dev/null || echo 'python3-hl7 not installed'), python $PY_VERSION"
echo "medplum     @medplum/core $MEDPLUM_PIN (pinned), node $NODE_VERSION"
echo

# Collected results: one "peer version runs json" line per peer that ran.
ROWS=""
SKIPPED=""
skip() { # peer reason
    echo "$1: skipped: $2"
    SKIPPED="$SKIPPED{\"peer\":\"$1\",\"reason\":\"$(jstr "$2")\"},"
}

# --- tern -------------------------------------------------------------------
echo "== tern parse --stats (best of 3)"
TERN_BEST=""
TERN_BEST_SECS=""
i=1
while [ $i -le 3 ]; do
    # tern exits non-zero when a message fails to parse but still prints its
    # stats; only output without stats is fatal (the errors line tells).
    rc=0
    out=$("$TERN" parse --stats "$CORPUS" 2>"$OUT/tern-stderr.txt") || rc=$?
    secs=$(printf '%s\n' "$out" | awk '$1 == "seconds" { print $2 }')
    if ! isnum "$secs"; then
        echo "bench: '$TERN parse --stats' failed (exit $rc):" >&2
        [ -z "$out" ] || printf '%s\n' "$out" >&2
        tail -n 20 "$OUT/tern-stderr.txt" >&2
        exit 1
    fi
    if [ "$rc" = 0 ]; then echo "run $i: $secs s"; else echo "run $i: $secs s (exit $rc)"; fi
    if [ -z "$TERN_BEST_SECS" ] || lt "$secs" "$TERN_BEST_SECS"; then
        TERN_BEST=$out
        TERN_BEST_SECS=$secs
    fi
    i=$((i + 1))
done
tstat() { printf '%s\n' "$TERN_BEST" | awk -v k="$1" '$1 == k { print $2; exit }'; }
T_MSGS=$(tstat messages)
T_SEGS=$(tstat segments)
T_BYTES=$(tstat bytes)
T_ERRS=$(tstat errors)
T_MBS=$(tstat MB/s)
T_MPS=$(tstat msg/s)
for v in "$T_MSGS" "$T_SEGS" "$T_BYTES" "$T_ERRS" "$T_MBS" "$T_MPS"; do
    if ! isnum "$v"; then
        echo "bench: unexpected 'tern parse --stats' output:" >&2
        printf '%s\n' "$TERN_BEST" >&2
        exit 1
    fi
done
if [ "$T_ERRS" != 0 ]; then
    echo "warning: tern reported $T_ERRS errors (first ones in bench/out/tern-stderr.txt)"
    head -n 5 "$OUT/tern-stderr.txt" | sed 's/^/    /'
fi
ROWS="tern $TERN_VERSION 3 {\"peer\":\"tern\",\"messages\":$T_MSGS,\"segments\":$T_SEGS,\"bytes\":$T_BYTES,\"errors\":$T_ERRS,\"seconds\":$TERN_BEST_SECS,\"mb_per_s\":$T_MBS,\"messages_per_s\":$T_MPS}"
echo

# Runs a peer command N times, keeps the fastest JSON line in PEER_BEST
# (empty if no run succeeded; the last error goes to $OUT/NAME-stderr.txt).
run_peer() { # name runs cmd...
    name=$1 runs=$2
    shift 2
    PEER_BEST=""
    best_secs=""
    n=1
    while [ "$n" -le "$runs" ]; do
        if line=$("$@" 2>"$OUT/$name-stderr.txt" | tail -n 1) && secs=$(jget "$line" seconds) && isnum "$secs"; then
            echo "run $n: $secs s"
            if [ -z "$best_secs" ] || lt "$secs" "$best_secs"; then
                PEER_BEST=$line
                best_secs=$secs
            fi
        else
            echo "run $n: failed:"
            sed 's/^/    /' "$OUT/$name-stderr.txt" | tail -n 5
            return 0
        fi
        n=$((n + 1))
    done
}

# --- python-hl7 -------------------------------------------------------------
echo "== python-hl7 (1 run)"
if [ ! -x "$PY" ]; then
    skip python-hl7 "$PY not found"
elif ! "$PY" -c 'import hl7' 2>/dev/null; then
    skip python-hl7 "python3-hl7 not installed (make deps, or apt-get install -y --no-install-recommends python3-hl7)"
else
    run_peer python-hl7 1 "$PY" "$PEERS/python_hl7.py" "$CORPUS"
    if [ -n "$PEER_BEST" ]; then
        ROWS="$ROWS
python-hl7 $PYHL7_VERSION 1 $PEER_BEST"
    else
        skip python-hl7 "the peer failed (see bench/out/python-hl7-stderr.txt)"
    fi
fi
echo

# --- medplum ----------------------------------------------------------------
echo "== medplum (best of 2)"
if ! command -v node >/dev/null 2>&1; then
    skip medplum "node not found"
else
    if [ "$(medplum_installed)" != "$MEDPLUM_PIN" ]; then
        echo "installing @medplum/core $MEDPLUM_PIN (npm ci in bench/peers)"
        if ! (cd "$PEERS" && timeout 600 npm ci --no-audit --no-fund >"$OUT/npm-ci.txt" 2>&1); then
            tail -n 5 "$OUT/npm-ci.txt" | sed 's/^/    /'
        fi
    fi
    if [ "$(medplum_installed)" != "$MEDPLUM_PIN" ]; then
        skip medplum "@medplum/core $MEDPLUM_PIN could not be installed (npm registry unreachable? see bench/out/npm-ci.txt)"
    else
        run_peer medplum 2 node "$PEERS/medplum.mjs" "$CORPUS"
        if [ -n "$PEER_BEST" ]; then
            ROWS="$ROWS
medplum $(medplum_installed) 2 $PEER_BEST"
        else
            skip medplum "the peer failed (see bench/out/medplum-stderr.txt)"
        fi
    fi
fi
echo

# --- table and JSON -----------------------------------------------------------
echo "== results (MB = 10^6 bytes; tern x = Tern's MB/s / peer's MB/s)"
printf '%-12s %-22s %10s %10s %12s %9s\n' peer version seconds MB/s msg/s "tern x"
JSON_ROWS=""
NL='
'
OLDIFS=$IFS
IFS=$NL
set -f # rows are split on newlines only, never globbed
for row in $ROWS; do
    IFS=$OLDIFS
    peer=${row%% *}
    rest=${row#* }
    version=${rest%% *}
    rest=${rest#* }
    runs=${rest%% *}
    json=${rest#* }
    secs=$(jget "$json" seconds)
    mbs=$(jget "$json" mb_per_s)
    mps=$(jget "$json" messages_per_s)
    msgs=$(jget "$json" messages)
    segs=$(jget "$json" segments)
    x=$(ratio "$T_MBS" "$mbs")
    printf '%-12s %-22s %10s %10s %12s %8sx\n' "$peer" "$version" "$secs" "$mbs" "$mps" "$x"
    if [ "$peer" != tern ] && { [ "$msgs" != "$T_MSGS" ] || [ "$segs" != "$T_SEGS" ]; }; then
        echo "  note: $peer counted $msgs messages / $segs segments, tern $T_MSGS / $T_SEGS"
    fi
    # Add version, runs and the ratio to the peer's own JSON object.
    JSON_ROWS="$JSON_ROWS    ${json%\}},\"version\":\"$(jstr "$version")\",\"runs\":$runs,\"tern_speedup\":$x},$NL"
    IFS=$NL
done
IFS=$OLDIFS
set +f

{
    echo "{"
    echo "  \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
    echo "  \"machine\": {\"cpu\": \"$(jstr "$CPU")\", \"cores\": $CORES, \"kernel\": \"$(jstr "$KERNEL")\", \"memory\": \"$(jstr "$MEM")\"},"
    echo "  \"corpus\": {\"path\": \"bench/out/corpus.hl7\", \"bytes\": $CORPUS_BYTES, \"messages\": $CORPUS_MSGS},"
    echo "  \"runtimes\": {\"python\": \"$(jstr "$PY_VERSION")\", \"node\": \"$(jstr "$NODE_VERSION")\"},"
    echo "  \"results\": ["
    printf '%s' "$JSON_ROWS" | sed '$ s/,$//'
    echo "  ],"
    echo "  \"skipped\": [$(printf '%s' "$SKIPPED" | sed 's/,$//')]"
    echo "}"
} >"$RESULTS"
echo
echo "results written to ${RESULTS#"$ROOT"/}"
