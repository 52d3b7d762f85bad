# Front door. `make demo` and `make test` work on a fresh Debian machine:
# both install missing packages first (scripts/deps.sh is idempotent).
#   make build  release build, binary at build/tern
#   make test   ASan+UBSan build in build-asan/, every test through CTest
#   make bench  release build, then the benchmarks under bench/
#   make bench-quality  release build, then bench/quality (validation cost)
#   make bench-fhir  release build, then bench/fhir (HL7 v2 -> FHIR conversion rate)
#   make bench-fhirapi  release build, then bench/fhirapi (FHIR REST API with wrk)
#   make demo   release build, then the engine on examples/demo
#   make fuzz   libFuzzer build (clang) in build-fuzz/, FUZZ_SECONDS per target
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 60

.PHONY: all deps build test bench bench-quality bench-fhir bench-fhirapi demo fuzz format clean

all: build

deps:
	@./scripts/deps.sh

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build -j $(JOBS)

build-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTERN_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)

test: build build-asan
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

bench: build
	@./bench/run.sh build/tern
	@./bench/mllp/run.sh build/tern
	@./bench/quality/run.sh build
	@./bench/fhir/run.sh build

bench-quality: build
	@./bench/quality/run.sh build

bench-fhir: build
	@./bench/fhir/run.sh build

bench-fhirapi: build
	@./bench/fhirapi/run.sh build/tern

demo: build
	@./examples/demo/run.sh build/tern

fuzz: deps
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DTERN_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)
	@./fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

format:
	@clang-format -i $$(find src tests fuzz bench -name '*.[ch]')

clean:
	@rm -rf build build-asan build-fuzz
