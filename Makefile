# Thin wrapper over CMake. `make test` is the command CI runs.
JOBS ?= 2
CMAKE ?= cmake
GEN_FLAGS ?=

.PHONY: all release debug asan tsan test test-numa test-release test-debug test-asan test-tsan test-configs test-aarch64 bench fuzz install clean
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

# With the janitor as in any run (LZMALLOC_BACKGROUND=auto: on in every
# multithreaded test), so TSan sees its passes beside the program's threads.
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

# aarch64: cross-built with Debian's gcc/g++-aarch64-linux-gnu (assertions
# on), the unit, stress and scale tests run under qemu-user. Left out:
# scripts (they preload the library into host programs), thread_exit (its
# RSS bounds would measure qemu itself), scale_churn (too slow emulated),
# api_conformance_glibc (checks the system's glibc, not lzmalloc), the
# RLIMIT_AS cases (qemu-user does not apply that limit to the guest), and
# the tests of the background thread, huge pages, fork under signals or
# from many threads and late frees (qemu-user 7.2 aborts in a guest that
# forks with a thread blocked: fork_hammer, fork_signal, and fork_stdio
# hung once in eight runs here; without the test environment the emulator
# reports "cpu_exec: assertion failed"; has no transparent huge pages; is too
# slow for thread_late_free's timeout), and fork_pages, startup_bss and
# header_pages (they read the pages written from /proc/self/smaps and
# pagemap, which under qemu-user are the emulator's); the background
# thread is off there.
AARCH64_ENV = QEMU_LD_PREFIX=/usr/aarch64-linux-gnu LZ_TEST_NO_RLIMIT_AS=1 LZMALLOC_BACKGROUND=0
AARCH64_SKIP = thread_exit|fork_pages|startup_bss|header_pages|scale_churn|api_conformance_glibc|thread_late_free|fork_hammer|fork_signal|fork_stdio|test_janitor_.*|test_hugepages_.*
test-aarch64:
	$(CMAKE) -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLZ_DEBUG_CHECKS=ON $(GEN_FLAGS)
	$(CMAKE) --build build/aarch64 -j$(JOBS)
	cd build/aarch64 && $(AARCH64_ENV) ctest --output-on-failure -j$(JOBS) -L "PREFIXED|API" -E "^($(AARCH64_SKIP))$$"

# The whole suite: release (all tests, real programs), debug, the sanitizer
# builds of the unit and stress tests, the non-default configurations and
# the aarch64 build under emulation.
test: test-release test-debug test-asan test-tsan test-configs test-aarch64

bench: release
	bench/run

# Coverage-guided fuzzing of the lz_ API (clang libFuzzer + ASan + UBSan).
fuzz:
	bash fuzz/run.sh $(FUZZ_SECONDS)

install: release
	$(CMAKE) --install build/release --prefix $(PREFIX)

clean:
	rm -rf build
