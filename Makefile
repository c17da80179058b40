# Entry points. Every target installs what is missing and builds first.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
export CCACHE_DIR ?= $(CURDIR)/.ccache
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_SLOPPINESS := pch_defines,time_macros,include_file_mtime,include_file_ctime
export CCACHE_MAXSIZE ?= 4G

.PHONY: all deps configure build test test-browser fuzz bench-serve bench-tracking bench-tune bench-distributed tune-target demo bench asan format check-format clean

all: build

deps:
	@scripts/setup-deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# The default suite: unit + integration tests.
test: build
	@cd $(BUILD_DIR) && ctest -L 'unit|integration' --output-on-failure -j $(JOBS)

# The web page in headless chromium (label `browser`); screenshot in $(BUILD_DIR)/browser/.
test-browser: build
	@cd $(BUILD_DIR) && ctest -L browser --output-on-failure

# libFuzzer over request parsing + image decoding (clang), for FUZZ_SECONDS (default 60).
fuzz: deps
	@scripts/fuzz.sh $(or $(FUZZ_SECONDS),60)

# Load benchmark of `serve` with wrk; figures in docs/serving-benchmarks.md.
bench-serve: build
	@scripts/bench-serve.sh $(BUILD_DIR)/garmentnet

# What MLflow tracking costs a training run (responsive, silent server, file store); figures in
# docs/tracking.md.
bench-tracking: build
	@scripts/bench-tracking.sh $(BUILD_DIR)

# `tune`'s trials per hour against one process per trial; figures in docs/tuning.md.
bench-tune: build
	@scripts/bench-tune.sh $(BUILD_DIR)

# Data-parallel training on loopback: 2 ranks x 1 thread vs 1 rank x 2 threads; docs/scale-out.md.
bench-distributed: build
	@scripts/bench-distributed.sh $(BUILD_DIR)

# Issue 12's target: an hour of `tune` + `--refit` against the demo's training settings, scored on
# the test split (after `make demo`); figures in docs/tuning.md.
tune-target: build
	@scripts/tune-target.sh $(BUILD_DIR)

demo: build
	@scripts/demo.sh $(BUILD_DIR)/garmentnet

bench: build
	@scripts/bench.sh $(BUILD_DIR)

# The suite under AddressSanitizer and UndefinedBehaviorSanitizer, in its own build folder.
asan:
	@$(MAKE) test BUILD_DIR=build-asan CMAKE_FLAGS="-DGARMENTNET_SANITIZE=ON -DGARMENTNET_BENCHMARKS=OFF"

format:
	@find src tests bench -name '*.cpp' -o -name '*.h' | xargs clang-format -i

check-format:
	@find src tests bench -name '*.cpp' -o -name '*.h' | xargs clang-format --dry-run -Werror

clean:
	rm -rf $(BUILD_DIR) build-asan
