# Link modes and installation (tests/linkmodes/): each script builds
# tests/linkmodes/app.c with the system C compiler the way its mode says, in
# a temp dir, and checks that lzmalloc served the app's allocations (its
# statistics grow by the 10 MiB the app holds, malloc_usable_size(malloc(24))
# is 32, libc's own allocations are lzmalloc's). Label: linkmodes.
set(LZ_LINKMODES_DIR ${CMAKE_CURRENT_SOURCE_DIR}/linkmodes)
foreach(mode preload shared static_wrap defsym static_lib)
  lz_test(NAME linkmode_${mode} KIND SCRIPT SOURCES ${LZ_LINKMODES_DIR}/${mode}.sh
          TIMEOUT 120 LABELS linkmodes)
endforeach()
# cmake --install into a temp prefix, then pkg-config and find_package consumers.
lz_test(NAME linkmode_install KIND SCRIPT SOURCES ${LZ_LINKMODES_DIR}/install.sh
        TIMEOUT 300 LABELS linkmodes install)
# A script exiting 77 is a skip (no static glibc, no pkg-config), not a failure.
foreach(t preload shared static_wrap defsym static_lib install)
  if(TEST linkmode_${t})
    set_tests_properties(linkmode_${t} PROPERTIES SKIP_RETURN_CODE 77)
  endif()
endforeach()
