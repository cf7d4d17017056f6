# Thin wrapper over CMake. `make test` is the command CI runs.
JOBS ?= 2
CMAKE ?= cmake
GEN_FLAGS ?=

.PHONY: all release debug asan tsan test test-release test-asan test-tsan bench fuzz install clean
PREFIX ?= /usr/local
FUZZ_SECONDS ?= 60

all: release

release:
	$(CMAKE) -S . -B build/release -DCMAKE_BUILD_TYPE=Release $(GEN_FLAGS)
	$(CMAKE) --build build/release -j$(JOBS)

debug:
	$(CMAKE) -S . -B build/debug -DCMAKE_BUILD_TYPE=Debug -DLZ_DEBUG_CHECKS=ON $(GEN_FLAGS)
	$(CMAKE) --build build/debug -j$(JOBS)

asan:
	$(CMAKE) -S . -B build/asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DLZ_DEBUG_CHECKS=ON "-DLZ_SANITIZE=address,undefined" $(GEN_FLAGS)
	$(CMAKE) --build build/asan -j$(JOBS)

tsan:
	$(CMAKE) -S . -B build/tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DLZ_DEBUG_CHECKS=ON -DLZ_SANITIZE=thread $(GEN_FLAGS)
	$(CMAKE) --build build/tsan -j$(JOBS)

test-release: release
	cd build/release && ctest --output-on-failure -j$(JOBS)

test-debug: debug
	cd build/debug && ctest --output-on-failure -j$(JOBS)

test-asan: asan
	cd build/asan && ctest --output-on-failure -j$(JOBS)

test-tsan: tsan
	cd build/tsan && ctest --output-on-failure -j$(JOBS)

# The whole suite: release (all tests, real programs), then the sanitizer
# builds of the unit and stress tests.
test: test-release test-debug test-asan test-tsan

bench: release
	bench/run

# Coverage-guided fuzzing of the lz_ API (clang libFuzzer + ASan + UBSan).
fuzz:
	bash fuzz/run.sh $(FUZZ_SECONDS)

install: release
	$(CMAKE) --install build/release --prefix $(PREFIX)

clean:
	rm -rf build
