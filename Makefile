# Thin wrapper over CMake. `make test` is the command CI runs.
JOBS ?= 2
CMAKE ?= cmake
GEN_FLAGS ?=

.PHONY: all release debug asan tsan test test-numa test-release test-debug test-asan test-tsan test-configs bench fuzz install clean
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

# Only the two-node NUMA tests (tests/numa: a QEMU guest; part of test-release).
test-numa: release
	cd build/release && ctest --output-on-failure -L numa

test-debug: debug
	cd build/debug && ctest --output-on-failure -j$(JOBS) -LE "realprog|fuzz|valgrind"

test-asan: asan
	cd build/asan && ctest --output-on-failure -j$(JOBS)

test-tsan: tsan
	cd build/tsan && ctest --output-on-failure -j$(JOBS)

# Non-default compile-time configurations (src/config.h), each built and
# run on the unit and stress tests: shared heaps with the highest hardening
# and no remote-free batching; and a lean build without hardening, stats,
# caches or purge delay (tests of statistics and of misuse detection
# excluded there).
CONFIG_shared = LZ_HEAPS=4;LZ_SECURE=2;LZ_REMOTE_BATCH=1
CONFIG_lean = LZ_SECURE=0;LZ_STATS=0;LZ_LARGE_CACHE_ENTRIES=0;LZ_CHUNK_POOL_MAX=0;LZ_PURGE_DELAY_MS=0
CONFIG_EXCLUDE_shared = realprog|linkmodes|fuzz|valgrind
CONFIG_EXCLUDE_lean = realprog|linkmodes|fuzz|stats|hardening|valgrind

test-config-%:
	$(CMAKE) -S . -B build/config-$* -DCMAKE_BUILD_TYPE=Release "-DLZ_CONFIG_DEFS=$(CONFIG_$*)" $(GEN_FLAGS)
	$(CMAKE) --build build/config-$* -j$(JOBS)
	cd build/config-$* && ctest --output-on-failure -j$(JOBS) -LE "$(CONFIG_EXCLUDE_$*)"

test-configs: test-config-shared test-config-lean

# The whole suite: release (all tests, real programs), debug, the sanitizer
# builds of the unit and stress tests, and the non-default configurations.
test: test-release test-debug test-asan test-tsan test-configs

bench: release
	bench/run

# Coverage-guided fuzzing of the lz_ API (clang libFuzzer + ASan + UBSan).
fuzz:
	bash fuzz/run.sh $(FUZZ_SECONDS)

install: release
	$(CMAKE) --install build/release --prefix $(PREFIX)

clean:
	rm -rf build
