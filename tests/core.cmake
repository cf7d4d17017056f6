# Module tests against internal headers, life-cycle tests (thread-exit
# destructors, dlopen, pre-main calls) and fault injection.
lz_test(NAME test_sizeclass KIND PREFIXED SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_sizeclass.c)
lz_test(NAME test_faults KIND PREFIXED SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_faults.c)
lz_test(NAME test_tls_dtor KIND API LABELS stats SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_tls_dtor.c)
lz_test(NAME test_premain KIND API SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_premain.c)
if(NOT LZ_SANITIZED)
  add_library(lz_test_plugin MODULE ${CMAKE_CURRENT_SOURCE_DIR}/test_plugin.c)
  target_compile_options(lz_test_plugin PRIVATE -Wall -Wextra -Werror)
  lz_test(NAME test_dlopen KIND API SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_dlopen.c
          ARGS $<TARGET_FILE:lz_test_plugin>)
  add_dependencies(test_dlopen lz_test_plugin)
endif()
include(${CMAKE_CURRENT_SOURCE_DIR}/linkmodes.cmake)
