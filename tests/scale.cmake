# Scale and lifetime stress tests, and the short fuzzing run (included at the
# end of tests/core.cmake). Each C test honours LZ_TEST_SCALE (default 1) and
# picks smaller defaults under a sanitizer; each takes well under a minute in
# release on two cores.
#
#   scale_threads  1,000 threads alive at once (barrier), mixed sizes, blocks
#                  handed to a neighbour, every block checked
#   scale_churn    100,000 thread create/exit cycles in waves of 4, blocks made
#                  by one thread freed by later ones (orphaned heaps)
#   scale_bigmem   4 GiB in 1-64 MiB blocks (live <= 2 GiB, sampled pages),
#                  then everything freed and trimmed: mapped back near start
#   scale_absurd   absurd sizes through every entry point: NULL + ENOMEM,
#                  then allocation goes on; 64 GiB: lazy success or ENOMEM
#   scale_ulimit   (SCRIPT) a preloaded program under `ulimit -v` 256-384 MiB
#                  (4 limits) allocates to ENOMEM, frees half, allocates again
#   fuzz_short     (SCRIPT) fuzz/run.sh 30: 30 s of libFuzzer on the lz_ API;
#                  skipped (77) without clang/libFuzzer

set(_lz_s ${CMAKE_CURRENT_SOURCE_DIR})

lz_test(NAME scale_threads KIND PREFIXED LABELS stress scale TIMEOUT 300
        SOURCES ${_lz_s}/scale_threads.c)
lz_test(NAME scale_churn KIND PREFIXED LABELS stress scale TIMEOUT 600
        SOURCES ${_lz_s}/scale_churn.c)
lz_test(NAME scale_bigmem KIND PREFIXED LABELS stress scale TIMEOUT 300
        SOURCES ${_lz_s}/scale_bigmem.c)
lz_test(NAME scale_absurd KIND PREFIXED LABELS unit scale TIMEOUT 120
        SOURCES ${_lz_s}/scale_absurd.c)
lz_test(NAME scale_ulimit KIND SCRIPT LABELS scale TIMEOUT 120
        SOURCES ${_lz_s}/scale_ulimit.sh)
if(TEST scale_ulimit)
  set_tests_properties(scale_ulimit PROPERTIES SKIP_RETURN_CODE 77)
endif()

# 30 s of coverage-guided fuzzing (builds build/fuzz/fuzz_ops with clang the
# first time, ~1 min); `make fuzz` runs it longer.
lz_test(NAME fuzz_short KIND SCRIPT LABELS fuzz TIMEOUT 400
        SOURCES ${PROJECT_SOURCE_DIR}/fuzz/run.sh ARGS 30)
if(TEST fuzz_short)
  set_tests_properties(fuzz_short PROPERTIES SKIP_RETURN_CODE 77)
endif()
