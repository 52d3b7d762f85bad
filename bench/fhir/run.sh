#!/bin/sh
# run.sh - the FHIR conversion benchmark: messages/s for HL7 v2 -> FHIR R4
# Bundles next to parsing (bench/README.md, "FHIR conversion").
#
#     bench/fhir/run.sh TERN_BUILD_DIR    (make bench-fhir: build)
#
# Builds nothing: runs TERN_BUILD_DIR/bench/fhir/bench_fhir (a
# Release build of the tree) and prints the table it writes, after the git
# commit it was built from. ITERATIONS and RUNS override the defaults
# (5000 messages per run, median of 7 runs).
set -eu

if [ $# -ne 1 ]; then
    echo "usage: bench/fhir/run.sh TERN_BUILD_DIR" >&2
    exit 2
fi
BIN=$1/bench/fhir/bench_fhir
if [ ! -x "$BIN" ]; then
    echo "bench-fhir: '$BIN' not found; build first (make build, or cmake --build $1)" >&2
    exit 1
fi
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ]; then COMMIT="$COMMIT (modified)"; fi
echo "tern:     commit $COMMIT, $BIN"
echo "kernel:   $(uname -sr)"
exec "$BIN" -n "${ITERATIONS:-5000}" -r "${RUNS:-7}"
