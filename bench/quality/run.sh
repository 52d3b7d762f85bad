#!/bin/sh
# run.sh - the data quality benchmark: per-message cost of validation and
# declarative transforms next to parsing (bench/README.md, "Quality").
#
#     bench/quality/run.sh TERN_BUILD_DIR    (make bench-quality: build)
#
# Builds nothing: runs TERN_BUILD_DIR/bench/quality/bench_quality (a
# Release build of the tree) and prints the table it writes, after the git
# commit it was built from. ITERATIONS and RUNS override the defaults
# (20000 messages per run, median of 7 runs).
set -eu

if [ $# -ne 1 ]; then
    echo "usage: bench/quality/run.sh TERN_BUILD_DIR" >&2
    exit 2
fi
. "$(dirname "$0")/../common/run_c.sh"
run_c quality "$1" "${ITERATIONS:-20000}" "${RUNS:-7}"
