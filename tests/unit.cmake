# Core unit, conformance and stress tests (included by tests/CMakeLists.txt).
#
# All tests honour LZ_TEST_SCALE (default 1; e.g. 0.1 for a smoke run, 10 for
# a soak) and share tests/testutil.h. Kinds: see tests/CMakeLists.txt.
#
#   api_conformance  standard names with glibc 2.36's exact semantics (API)
#   api_conformance_glibc  the same source without lzmalloc: every assertion
#                    checked against the system's glibc in the same run
#   api_cxx          C++ new/delete (all forms) and containers in threads (API)
#   sweep            size / alignment / realloc sweeps over the lz_ API
#   stress_mt        multithreaded handoff, remote frees, realloc migration,
#                    thread churn, pattern checks
#   fork_test        fork() while other threads allocate; children allocate
#                    and free parent blocks; deadlocks fail via alarm
#   thread_exit      10,000 short-lived threads; RSS / in_use / heap bounds
#   thread_late_free 100,000 threads allocating and freeing in destructors
#                    that run after lzmalloc's: heaps and RSS flat
#   thread_first_late threads whose first call comes in the last destructor
#                    round: their heaps are given back (heaps, in use flat)
#   fork_stdio       fork / fflush(NULL) / getline on a pipe in three threads:
#                    no lock held across fork (glibc bug 19431's cycle) (API)
#   fork_signal      fork in a loop while a SIGUSR1 handler forks too
#   fork_hammer      fork while threads use every path; the child's threads
#                    allocate and free, never adopting a half-updated heap
#   fork_pages       pages a fork child copies (pagemap, smaps): none
#                    of the library's data during fork, at most 3 to free
#                    and reallocate 8 blocks, at most 6 to allocate 8
#                    blocks of 8 sizes (a span of its own, not the
#                    parent's slabs); the library code it runs
#                    mapped by one fault (<= 20 pages, /proc/self/pagemap),
#                    also once its freed pages decayed (no .rodata read);
#                    a child that runs a thread, empties slabs and cycles
#                    large blocks maps no page of the cold code's window
#                    (rodata_threads) (API)
#   exec_pages       a process that never allocates, and one that
#                    allocates what a command starting up does, map one
#                    64 KiB window of the library's code from exec to
#                    exit (traced: /proc/PID/pagemap at its exit); the
#                    loader looks up none of the library's own functions
#                    (its dynamic relocations); the loader reserves the
#                    library's range in a 2 MiB multiple, so no hole below
#                    it moves libc's code against the fault-around
#                    windows (API)
#   startup_pages    a process's first blocks of 20 classes on at most 7
#                    pages (start-up classes), usable sizes, start-up bounded
#   startup_bss      start-up, a few allocations and free(NULL) touch one
#                    page of the library's .bss, the chunk map's, and read
#                    none of its .rodata; before the first allocation two
#                    of its file-backed writable pages are written (API)
#   header_pages     the first allocation maps its chunk alone (static
#                    first heap); 40 spans over 400 pages of a chunk: one
#                    header page resident (descriptor slots), one copied
#                    by a fork child that frees in each span (API)
#   fork_lazy        no fork handler given to libc before the process's
#                    first allocation, then one; no more for a second
#                    thread; forks work after it and with threads (API)
#   fork_first_alloc a thread's first malloc does not wait for a fork in
#                    another thread (the fork_stdio deadlock, made
#                    deterministic with a prepare handler) (API)
#   misuse           death tests: double / invalid / interior free (API)
#   misuse_extra     harder death tests (same binary source, --extra)
#   misuse_sized     every level-1 catch at 8 B, 4 KiB, 256 KiB, across
#                    threads too (same binary source, --sized)
#   misuse_audit     level 1 never lists a block twice: double frees in
#                    every order and thread (first free still batched, in
#                    another thread's foreign list, on the owner's remote
#                    list, owner exited, fork child), interior, uncarved,
#                    freed-span, cached-range and memalign'd pointers,
#                    malloc_usable_size of interior and uncarved ones, at
#                    8 B .. 8 MiB (--audit)
#   misuse_cxx       each of the 12 operator delete forms, double and
#                    interior deletes at 8 B .. 4 MiB, and a double delete[]
#                    of an own block diverted onto its class's foreign
#                    list: the report names the operator (--cxx;
#                    misuse_cxx_secure: the secure library)
#   large_remap      pages around a large block remapped; free, realloc and
#                    malloc_usable_size unaffected
#   large_reuse      freed large memory reused across sizes (mapped bytes
#                    flat), calloc of reused memory zero, exact statistics
#   large_decay      freed large ranges cached, given back by time (not
#                    before the decay time, not never) by the slow paths
#   large_xthread    large blocks freed by other threads reused; threads
#                    swapping large blocks through the lock-free cache
#   large_unmap_held a thread stopped inside its munmap of a cached large
#                    range leaves it counted out already (not sanitized)
#   large_realloc_moved a block another thread maps at once where realloc
#                    moved a large block from is live (not sanitized)
#   large_fork       fork while a thread allocates large blocks under a FILE
#                    lock and another flushes every FILE (glibc bug 19431)
#   misuse_level2    every level-2 catch (canaries, write after free, sized
#                    delete) at the same sizes, LZMALLOC_SECURE=2 (--level2)
#   misuse_secure    the same linked with liblzmalloc-secure, plus its
#                    checked memcpy/memmove/memset (--level2 --memcpy)
#   misuse_sized_secure  the level-1 catches in the secure library
#   probes_level1    the 95 standard memory-safety probes (tests/probes.cpp),
#   probes_level2    each in a child with the library preloaded: the exact
#   probes_level2_runtime  outcome and message of each, at level 1
#                    (liblzmalloc), level 2 (liblzmalloc-secure) and
#                    LZMALLOC_SECURE=2 (liblzmalloc)
#   layers           no call between the library's files goes up the layers
#                    of src/README.md (nm of the objects: what was emitted)

set(_lz_t ${CMAKE_CURRENT_SOURCE_DIR})

# ---- standard API (liblzmalloc.so; release/debug builds only) -------------
lz_test(NAME api_conformance KIND API LABELS unit stats TIMEOUT 300
        SOURCES ${_lz_t}/api_conformance.c)
lz_test(NAME api_cxx KIND API LABELS unit TIMEOUT 120
        SOURCES ${_lz_t}/api_cxx.cpp)
lz_test(NAME misuse KIND API LABELS unit hardening TIMEOUT 120
        SOURCES ${_lz_t}/misuse.c)
lz_test(NAME misuse_extra KIND API LABELS unit hardening TIMEOUT 120
        SOURCES ${_lz_t}/misuse.c ARGS --extra)
lz_test(NAME misuse_sized KIND API LABELS unit hardening TIMEOUT 120
        SOURCES ${_lz_t}/misuse.c ARGS --sized)
lz_test(NAME misuse_cxx KIND API LABELS unit hardening TIMEOUT 120
        SOURCES ${_lz_t}/misuse.c ARGS --cxx)
lz_test(NAME misuse_audit KIND API LABELS unit hardening TIMEOUT 300
        SOURCES ${_lz_t}/misuse.c ARGS --audit)
# Hardening level 2: chosen at run time, and the secure library (also the
# level-1 catches, which must hold there too).
lz_test(NAME misuse_level2 KIND API LABELS unit hardening TIMEOUT 120
        SOURCES ${_lz_t}/misuse.c ARGS --level2 ENV LZMALLOC_SECURE=2)
if(TARGET lzmalloc-secure AND NOT LZ_SANITIZED)
  foreach(_m secure sized_secure cxx_secure)
    add_executable(misuse_${_m} ${_lz_t}/misuse.c)
    target_link_libraries(misuse_${_m} PRIVATE lzmalloc-secure Threads::Threads)
    target_include_directories(misuse_${_m} PRIVATE ${_lz_t})
    target_compile_options(misuse_${_m} PRIVATE -Wall -Wextra -Werror -Wno-unused-parameter -fno-builtin)
  endforeach()
  add_test(NAME misuse_secure COMMAND misuse_secure --level2 --memcpy)
  add_test(NAME misuse_sized_secure COMMAND misuse_sized_secure --sized)
  add_test(NAME misuse_cxx_secure COMMAND misuse_cxx_secure --cxx)
  set_tests_properties(misuse_secure misuse_sized_secure misuse_cxx_secure PROPERTIES TIMEOUT 120 LABELS "API;unit;hardening")
endif()

# The probes (release builds: a debug build's assertions may report a
# corruption that level 1 leaves to crash).
if(TARGET lzmalloc AND TARGET lzmalloc-secure AND NOT LZ_SANITIZED AND NOT LZ_DEBUG_CHECKS
   AND NOT "${LZ_DEFS}" MATCHES "LZ_SECURE=0")
  add_executable(probes ${_lz_t}/probes.cpp)
  target_compile_options(probes PRIVATE -O2 -Wall -Wextra -Werror -fno-builtin)
  target_link_libraries(probes PRIVATE Threads::Threads)
  set(_lz_probe_tests probes_level2 probes_level2_runtime)
  add_test(NAME probes_level2 COMMAND probes --check level2 $<TARGET_FILE:lzmalloc-secure>)
  add_test(NAME probes_level2_runtime COMMAND probes --check level2-runtime $<TARGET_FILE:lzmalloc> LZMALLOC_SECURE=2)
  if(NOT "${LZ_DEFS}" MATCHES "LZ_SECURE=2")
    add_test(NAME probes_level1 COMMAND probes --check level1 $<TARGET_FILE:lzmalloc>)
    list(APPEND _lz_probe_tests probes_level1)
  endif()
  set_tests_properties(${_lz_probe_tests} PROPERTIES TIMEOUT 300 LABELS "unit;hardening")
endif()

# Linked with lzmalloc, the API tests additionally require that the calls are
# really served by lzmalloc and that free_sized/free_aligned_sized exist (the
# same sources pass against plain glibc without this definition).
foreach(_t api_conformance api_cxx)
  if(TARGET ${_t})
    target_compile_definitions(${_t} PRIVATE LZ_TEST_EXPECT_LZMALLOC=1)
  endif()
endforeach()
# The reference: the same conformance source linked with nothing but glibc.
if(NOT LZ_SANITIZED)
  add_executable(api_conformance_glibc ${_lz_t}/api_conformance.c)
  target_include_directories(api_conformance_glibc PRIVATE ${_lz_t})
  target_compile_options(api_conformance_glibc PRIVATE -Wall -Wextra -Werror -Wno-unused-parameter -fno-builtin)
  add_test(NAME api_conformance_glibc COMMAND api_conformance_glibc)
  set_tests_properties(api_conformance_glibc PROPERTIES TIMEOUT 300 LABELS "API;unit")
endif()
if(TARGET api_cxx AND CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  # clang 14 does not enable C++14 sized deallocation by default.
  target_compile_options(api_cxx PRIVATE -fsized-deallocation)
endif()

# ---- lz_ API (lzmalloc-prefixed; every variant incl. ASan/UBSan and TSan) --
lz_test(NAME sweep KIND PREFIXED LABELS unit TIMEOUT 400
        SOURCES ${_lz_t}/sweep.c)
lz_test(NAME stress_mt KIND PREFIXED LABELS stress stats TIMEOUT 240
        SOURCES ${_lz_t}/stress_mt.c)
# fork_test arms alarm(280) itself; keep the ctest timeout above it.
# Under qemu-user (the cross build), without decay: a purge tick reads the
# thread's /proc schedstat (src/purge.c, "Clock"), and qemu-user 7.2 looks
# every path up under its -L prefix holding a lock that fork does not
# reset, so a fork while a worker opens that file leaves the child's next
# open blocked for good (host backtrace of the hung child: do_syscall ->
# path -> qemu_mutex_lock_impl; 1 run in 53 here).
set(_fork_env)
if(CMAKE_CROSSCOMPILING)
  set(_fork_env ENV LZMALLOC_PURGE_DELAY=-1)
endif()
lz_test(NAME fork_test KIND PREFIXED LABELS stress TIMEOUT 300
        SOURCES ${_lz_t}/fork_test.c ${_fork_env})
lz_test(NAME thread_exit KIND PREFIXED LABELS stress stats TIMEOUT 240
        SOURCES ${_lz_t}/thread_exit.c)
lz_test(NAME large_remap KIND PREFIXED LABELS unit TIMEOUT 120
        SOURCES ${_lz_t}/large_remap.c)
# large_reuse: with no decay (LZMALLOC_PURGE_DELAY=-1), so that a cached
# range waits for the reuse the test measures however slow the run (under
# qemu-user a decay of 20-100 ms gave the 8 MiB range of its part 6 back
# before the chunks that were to take it); large_decay tests the decay.
lz_test(NAME large_reuse KIND PREFIXED LABELS unit stats TIMEOUT 120
        SOURCES ${_lz_t}/large_reuse.c ENV LZMALLOC_PURGE_DELAY=-1)
lz_test(NAME large_decay KIND PREFIXED LABELS unit stats TIMEOUT 120
        SOURCES ${_lz_t}/large_decay.c)
lz_test(NAME large_xthread KIND PREFIXED LABELS stress stats TIMEOUT 240
        SOURCES ${_lz_t}/large_xthread.c)
# Skipped (77) at hardening level 2: freed large ranges wait in a quarantine.
set_tests_properties(large_reuse large_decay large_xthread PROPERTIES SKIP_RETURN_CODE 77)
if(NOT LZ_SANITIZED) # the test's munmap would replace the sanitizer's
  lz_test(NAME large_unmap_held KIND PREFIXED LABELS unit stats TIMEOUT 120
          SOURCES ${_lz_t}/large_unmap_held.c)
  set_tests_properties(large_unmap_held PROPERTIES SKIP_RETURN_CODE 77)
  lz_test(NAME large_realloc_moved KIND PREFIXED LABELS unit TIMEOUT 120
          SOURCES ${_lz_t}/large_realloc_moved.c)
  set_tests_properties(large_realloc_moved PROPERTIES SKIP_RETURN_CODE 77)
endif()
# large_fork arms alarm(60) itself. Not under TSan: its runtime holds its
# own locks across fork and deadlocks in exactly this pattern.
if(NOT LZ_SANITIZE MATCHES "thread")
  lz_test(NAME large_fork KIND PREFIXED LABELS stress TIMEOUT 120
          SOURCES ${_lz_t}/large_fork.c)
endif()

# Frees across threads: foreign-block reuse, blocks coming home, double free
# of a foreign-listed block (src/remote.c).
lz_test(NAME test_remote KIND PREFIXED LABELS unit stats TIMEOUT 120
        SOURCES ${_lz_t}/test_remote.c)
# Free's fast path by heap id: more heaps than ids, adoption (src/alloc.h).
# Without the janitor: a thread that starts adopts the first orphan it can
# hold, and the janitor collecting the orphan the test means (its blocks
# the ones freed) made it take one of the 300 left by the first part
# instead (CI's tsan stage, 2026-12-07: "freed ... as the first call, the
# next malloc(16) gave ..."); no other thread runs at those starts.
lz_test(NAME test_heap_ids KIND PREFIXED LABELS unit stats TIMEOUT 120
        SOURCES ${_lz_t}/test_heap_ids.c ENV LZMALLOC_BACKGROUND=0)
lz_test(NAME thread_late_free KIND PREFIXED LABELS stress stats TIMEOUT 300
        SOURCES ${_lz_t}/thread_late_free.c)
lz_test(NAME thread_first_late KIND PREFIXED LABELS unit stats TIMEOUT 120
        SOURCES ${_lz_t}/thread_first_late.c)
lz_test(NAME fork_hammer KIND PREFIXED LABELS stress TIMEOUT 300
        SOURCES ${_lz_t}/fork_hammer.c)
lz_test(NAME fork_stdio KIND API LABELS stress TIMEOUT 150
        SOURCES ${_lz_t}/fork_stdio.c)
lz_test(NAME fork_pages KIND API LABELS unit TIMEOUT 60
        SOURCES ${_lz_t}/fork_pages.c)
lz_test(NAME exec_pages KIND API LABELS unit TIMEOUT 60
        SOURCES ${_lz_t}/exec_pages.c)
if(TARGET exec_pages) # API tests are not built in the sanitizer builds
  set_tests_properties(exec_pages PROPERTIES SKIP_RETURN_CODE 77) # no ptrace (a sandbox), level 2
endif()
lz_test(NAME startup_pages KIND API LABELS unit TIMEOUT 60
        SOURCES ${_lz_t}/startup_pages.c)
lz_test(NAME startup_bss KIND API LABELS unit TIMEOUT 60
        SOURCES ${_lz_t}/startup_bss.c)
lz_test(NAME header_pages KIND API LABELS unit TIMEOUT 60
        SOURCES ${_lz_t}/header_pages.c)
lz_test(NAME fork_lazy KIND API LABELS unit TIMEOUT 60
        SOURCES ${_lz_t}/fork_lazy.c)
lz_test(NAME fork_first_alloc KIND API LABELS unit TIMEOUT 60
        SOURCES ${_lz_t}/fork_first_alloc.c)
# fork_signal: single-threaded with the default options, so no janitor
# thread may start (see the source).
lz_test(NAME fork_signal KIND PREFIXED LABELS stress TIMEOUT 240
        SOURCES ${_lz_t}/fork_signal.c)
set_tests_properties(thread_late_free thread_first_late fork_hammer fork_signal PROPERTIES SKIP_RETURN_CODE 77) # TSan: see the sources
foreach(_t fork_hammer thread_late_free test_heap_ids) # read LZ_HEAPS (and LZ_SECURE)
  target_compile_definitions(${_t} PRIVATE ${LZ_DEFS})
endforeach()

unset(_lz_t)

# The layer picture of src/README.md against the objects of the prefixed
# library (built in every configuration). Not under qemu: a host script.
add_test(NAME layers COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/layers.sh ${PROJECT_SOURCE_DIR}/src/README.md
         ${CMAKE_BINARY_DIR}/CMakeFiles/lzmalloc-prefixed.dir/src ${CMAKE_NM})
set_tests_properties(layers PROPERTIES LABELS "unit")
