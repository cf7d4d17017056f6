# Module tests against internal headers, life-cycle tests (thread-exit
# destructors, dlopen, pre-main calls) and fault injection.
lz_test(NAME test_sizeclass KIND PREFIXED LABELS unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_sizeclass.c)
lz_test(NAME test_faults KIND PREFIXED LABELS unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_faults.c)
lz_test(NAME test_arch KIND PREFIXED LABELS unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_arch.c)
lz_test(NAME test_os_results KIND PREFIXED LABELS unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_os_results.c)
# NUMA placement on an injected two-node topology, in each LZMALLOC_NUMA mode.
foreach(_m auto off interleave strict)
  lz_test(NAME test_numa_${_m} KIND PREFIXED LABELS unit stats SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_numa.c ARGS ${_m})
  set_tests_properties(test_numa_${_m} PROPERTIES SKIP_RETURN_CODE 77)
  target_compile_definitions(test_numa_${_m} PRIVATE ${LZ_DEFS}) # reads LZ_HEAPS
endforeach()
# test_internals drives spans, chunks and purge directly, outside the heap
# lock the janitor relies on (internal.h, the janitor protocol): no janitor.
lz_test(NAME test_internals KIND PREFIXED LABELS unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_internals.c
        ENV LZMALLOC_BACKGROUND=0)
lz_test(NAME test_tls_dtor KIND API LABELS stats SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_tls_dtor.c)
lz_test(NAME test_premain KIND API LABELS stats SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_premain.c)
if(NOT LZ_SANITIZED)
  add_library(lz_test_plugin MODULE ${CMAKE_CURRENT_SOURCE_DIR}/test_plugin.c)
  target_compile_options(lz_test_plugin PRIVATE -Wall -Wextra -Werror)
  lz_test(NAME test_dlopen KIND API LABELS stats SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_dlopen.c
          ARGS $<TARGET_FILE:lz_test_plugin>)
  add_dependencies(test_dlopen lz_test_plugin)
endif()
# Tests that depend on the configuration's knobs (src/config.h): premain and
# dlopen compare in_use to the byte where it is exact (one heap per thread);
# the module tests read internal structures.
foreach(_t test_premain test_dlopen test_internals test_os_results test_arch)
  if(TARGET ${_t})
    target_compile_definitions(${_t} PRIVATE ${LZ_DEFS})
  endif()
endforeach()
include(${CMAKE_CURRENT_SOURCE_DIR}/linkmodes.cmake)
if(NOT LZ_SANITIZED)
  add_executable(options_app ${CMAKE_CURRENT_SOURCE_DIR}/options_app.c)
  target_link_libraries(options_app PRIVATE lzmalloc)
  target_compile_options(options_app PRIVATE -fno-builtin -Wall -Wextra -Werror)
  lz_test(NAME test_options KIND SCRIPT SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_options.sh LABELS stats)
endif()
include(${CMAKE_CURRENT_SOURCE_DIR}/scale.cmake)
if(NOT LZ_SANITIZED)
  lz_test(NAME valgrind_memcheck KIND SCRIPT SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/valgrind_memcheck.sh
          LABELS valgrind TIMEOUT 600)
  set_tests_properties(valgrind_memcheck PROPERTIES SKIP_RETURN_CODE 77)
endif()
# The janitor (background purging thread): an idle thread's heap purged, no
# thread in a process that never frees, LZMALLOC_BACKGROUND=0, fork. The
# modes that start it from a single-threaded process ask for it (=1); the
# default (auto) starts none there (single).
# idle, fork and off check that the frees left dirty pages before the
# janitor takes them (read by the freeing thread right after its frees): a
# purge delay of half a second keeps the freeing thread's own ticks from
# purging them first when a loaded machine makes the frees slow.
lz_test(NAME test_janitor_idle KIND PREFIXED LABELS unit purge TIMEOUT 300
        SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_janitor.c ARGS idle ENV LZMALLOC_BACKGROUND=auto LZMALLOC_PURGE_DELAY=500)
target_compile_definitions(test_janitor_idle PRIVATE ${LZ_DEFS})
foreach(_m threads fork lastexit mcache)
  lz_test(NAME test_janitor_${_m} KIND PREFIXED LABELS unit purge TIMEOUT 300
          SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_janitor.c ARGS ${_m} ENV LZMALLOC_BACKGROUND=1 LZMALLOC_PURGE_DELAY=500)
  target_compile_definitions(test_janitor_${_m} PRIVATE ${LZ_DEFS}) # reads LZ_PURGE_DELAY_MS, LZ_SECURE
endforeach()
lz_test(NAME test_janitor_single KIND PREFIXED LABELS unit purge TIMEOUT 120
        SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_janitor.c ARGS single ENV LZMALLOC_BACKGROUND=auto)
target_compile_definitions(test_janitor_single PRIVATE ${LZ_DEFS})
lz_test(NAME test_janitor_off KIND PREFIXED LABELS unit purge TIMEOUT 120
        SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_janitor.c ARGS off ENV LZMALLOC_BACKGROUND=0 LZMALLOC_PURGE_DELAY=500)
target_compile_definitions(test_janitor_off PRIVATE ${LZ_DEFS})
# Transparent huge pages for dense chunks (skipped, with the reason, where
# the kernel has none).
foreach(_m auto always never)
  # The janitor collapses dense chunks within a second; without it (this
  # test is single-threaded, so the default would start none) khugepaged
  # takes about 20 s.
  set(_env ENV LZMALLOC_HUGEPAGES=${_m} LZMALLOC_BACKGROUND=1)
  lz_test(NAME test_hugepages_${_m} KIND PREFIXED LABELS unit purge TIMEOUT 120
          SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_hugepages.c ARGS ${_m} ${_env})
  set_tests_properties(test_hugepages_${_m} PROPERTIES SKIP_RETURN_CODE 77)
  target_compile_definitions(test_hugepages_${_m} PRIVATE ${LZ_DEFS}) # reads LZ_SECURE
endforeach()
# Pages given back inside live slabs (holes: by malloc_trim, also run by run
# when batched decommits are refused, by the janitor
# for a quiet thread), the decay schedule of free pages and its backoff
# after refaults, that of holes (driven with synthetic times, no janitor;
# holes_refault keeps the owner's purge tick away), and the delay of
# orphans adopted again and when their slabs get holes (real time, no
# janitor), the low-water mark of a hot chunk, and spare slabs given back
# by the owner's purge tick (no janitor) and by the janitor for a quiet
# thread.
# holes: with a purge
# delay of -1, so that only its malloc_trim punches holes (with a delay the
# owner's own purge tick punches them once the slabs have been left alone
# for LZ_HOLES_AFTER_MS, 100 ms, which a slow run of its frees can exceed).
foreach(_m holes holes_refused janitor decay decay_gaps refault holes_refault orphan orphan_holes orphan_busy empty_keep clock orphan_stages low_water
        spare_tick spare_janitor populate large_tick grow)
  set(_env ENV LZMALLOC_BACKGROUND=0)
  if(_m STREQUAL "janitor" OR _m STREQUAL "spare_janitor")
    set(_env ENV LZMALLOC_BACKGROUND=auto)
  elseif(_m STREQUAL "holes" OR _m STREQUAL "holes_refused")
    set(_env ENV LZMALLOC_BACKGROUND=0 LZMALLOC_PURGE_DELAY=-1)
  endif()
  lz_test(NAME test_purge_${_m} KIND PREFIXED LABELS unit purge TIMEOUT 120
          SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_purge.c ARGS ${_m} ${_env})
  target_compile_definitions(test_purge_${_m} PRIVATE ${LZ_DEFS}) # reads LZ_SECURE, LZ_HEAPS
endforeach()
# realloc of a medium block grows it in place into the free pages after it
# (address, bytes and bytes in use checked exactly; no janitor to move them).
lz_test(NAME test_realloc_grow KIND PREFIXED LABELS unit stats
        SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_realloc_grow.c ENV LZMALLOC_BACKGROUND=0 LZMALLOC_PURGE_DELAY=500)
target_compile_definitions(test_realloc_grow PRIVATE ${LZ_DEFS}) # reads LZ_SECURE, LZ_HEAPS
set_tests_properties(test_realloc_grow PROPERTIES SKIP_RETURN_CODE 77)
