# run_c.sh - sourced by the run.sh of each C benchmark (bench/quality,
# bench/fhir): run_c NAME BUILD_DIR ITERATIONS RUNS checks that
# BUILD_DIR/bench/NAME/bench_NAME exists, prints the git commit of the tree
# and the kernel, and runs it with -n ITERATIONS -r RUNS. Builds nothing.
run_c() {
    bin=$2/bench/$1/bench_$1
    if [ ! -x "$bin" ]; then
        echo "bench-$1: '$bin' not found; build first (make build, or cmake --build $2)" >&2
        exit 1
    fi
    root=$(cd "$(dirname "$0")/../.." && pwd)
    commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git -C "$root" status --porcelain 2>/dev/null)" ]; then commit="$commit (modified)"; fi
    echo "tern:     commit $commit, $bin"
    echo "kernel:   $(uname -sr)"
    exec "$bin" -n "$3" -r "$4"
}
