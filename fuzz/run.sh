#!/bin/sh
# Runs every libFuzzer target in BUILD_DIR for SECONDS each. New inputs are
# found in a scratch directory and merged into fuzz/corpus/NAME only when
# they add coverage, so the checked-in corpus stays small. Any crash leaves
# its reproducer in fuzz/crashes/ and fails the run.
set -eu
build=${1:-build-fuzz}
secs=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/crashes"
status=0
for bin in "$build"/fuzz/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin" | sed 's/^fuzz_//')
    corpus="$here/corpus/$name"
    scratch=$(mktemp -d)
    mkdir -p "$corpus"
    echo "fuzz: $name for ${secs}s"
    if ! "$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$here/crashes/$name-" \
        "$scratch" "$corpus" 2>"$scratch.log"; then
        tail -40 "$scratch.log"
        status=1
    else
        grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$scratch.log" || true
    fi
    "$bin" -merge=1 "$corpus" "$scratch" >/dev/null 2>&1 || true
    rm -rf "$scratch" "$scratch.log"
done
exit $status
