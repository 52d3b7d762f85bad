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
. "$(dirname "$0")/../common/run_c.sh"
run_c fhir "$1" "${ITERATIONS:-5000}" "${RUNS:-7}"
