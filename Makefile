# The two commands a user needs: `make demo` and `make test` (README.md).
# Everything builds with CMake + Ninja into build/ (release with debug info),
# build-asan/ (Debug + AddressSanitizer + UndefinedBehaviorSanitizer) and
# build-fuzz/ (clang + libFuzzer).
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
FUZZ_SECONDS ?= 20
CMAKE_FLAGS ?=

# (deb: the gateway host's Debian package, scripts/deb/, docs/gateway.md)
.PHONY: all deps deps-test deps-bench deps-image deps-deb deb image build build-asan build-fuzz test test-release test-asan \
        fuzz-smoke fuzz demo demo-offline bench format format-check tidy clean

all: build

deps:
	@scripts/install-deps.sh build
deps-test:
	@scripts/install-deps.sh test
deps-bench:
	@scripts/install-deps.sh bench
deps-image:
	@scripts/install-deps.sh image
deps-deb:
	@scripts/install-deps.sh deb

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

$(ASAN_BUILD)/build.ninja: | deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DEGRESSD_SANITIZE=ON \
	  -DEGRESSD_BENCH=OFF $(CMAKE_FLAGS)

build-asan: deps $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS)

$(FUZZ_BUILD)/build.ninja: | deps-test
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DEGRESSD_FUZZ=ON -DEGRESSD_BENCH=OFF $(CMAKE_FLAGS)

build-fuzz: deps-test $(FUZZ_BUILD)/build.ninja
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers

# Every test: unit, fuzz corpus replay and end-to-end in the release build;
# unit and fuzz replay again under ASan+UBSan; then a short libFuzzer run
# of every fuzz target.
test: deps-test
	$(MAKE) test-release
	$(MAKE) test-asan
	$(MAKE) fuzz-smoke

test-release: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

test-asan: build-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS) -L 'unit|fuzz'

fuzz-smoke: build-fuzz
	scripts/fuzz.sh $(FUZZ_BUILD) 10

fuzz: build-fuzz
	scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# The OCI image archive build/egressd-image.tar from Debian packages, no
# Docker engine (scripts/image/egressd.sh, README.md "Deploying").
image: deps-image build
	scripts/image/egressd.sh $(BUILD)

# The gateway hosts' Debian package build/egressd_VERSION_ARCH.deb
# (scripts/deb/build.sh; docs/gateway.md): the three programs, systemd
# units egressd.service and egress-controller.service, /etc/egressd.
deb: deps-deb build
	scripts/deb/build.sh $(BUILD)

demo: build deps-test
	scripts/demo-live.sh $(BUILD)

demo-offline: build
	scripts/demo.sh $(BUILD)

bench: deps-bench build
	bench/run.sh $(BUILD)

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

format-check:
	git ls-files '*.cc' '*.h' | xargs clang-format --dry-run --Werror

# clang-tidy over the product code (tests and benchmarks excluded), with
# the repo's .clang-tidy: every finding is an error.
tidy: build deps-test
	git ls-files '*.cc' | grep -v '^tests/\|^bench/' | xargs -P $(JOBS) -n 4 clang-tidy -p $(BUILD) --quiet

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
