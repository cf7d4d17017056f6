# install.cmake: installation rules (included at the end of the top-level
# CMakeLists.txt). `make install PREFIX=/usr/local` or
# `cmake --install build/release --prefix /usr/local` installs:
#
#   lib/liblzmalloc.so.0.2.0, .so.0, .so   the shared library (Runtime: .so.*)
#   lib/liblzmalloc-secure.so.0.2.0, ...    the same at hardening level 2, with
#                                          bounds-checked memcpy/memmove/memset
#   lib/liblzmalloc.a                      static library (standard names + __wrap_*)
#   lib/liblzmalloc-prefixed.a             lz_ names only
#   include/lzmalloc.h
#   lib/pkgconfig/lzmalloc.pc              pkg-config (written at install time)
#   lib/cmake/lzmalloc/                    find_package(lzmalloc): imported targets
#                                          lzmalloc::lzmalloc (shared),
#                                          lzmalloc::lzmalloc-secure,
#                                          lzmalloc::lzmalloc-static,
#                                          lzmalloc::lzmalloc-prefixed
#   share/man/man3/lzmalloc.3
#   bin/lzrun                              if tools/lzrun exists
#
# Directories follow GNUInstallDirs (lib may be lib/<multiarch> for /usr).
# Sanitizer builds (LZ_SANITIZE) have no installable libraries: nothing is
# installed from them.
include_guard(GLOBAL)

if(NOT TARGET lzmalloc OR NOT TARGET lzmalloc-static)
  return()
endif()

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(LZ_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/lzmalloc)
set(LZ_PC_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# ---- Libraries and header ----
install(TARGETS lzmalloc lzmalloc-secure lzmalloc-static lzmalloc-prefixed
  EXPORT lzmallocTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    COMPONENT Runtime NAMELINK_COMPONENT Development
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Development
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT Runtime
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(FILES ${PROJECT_SOURCE_DIR}/include/lzmalloc.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT Development)

# ---- CMake package: find_package(lzmalloc [0.1] REQUIRED) ----
install(EXPORT lzmallocTargets
  NAMESPACE lzmalloc::
  DESTINATION ${LZ_CMAKE_DIR}
  COMPONENT Development)

configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/lzmallocConfig.cmake.in
  ${PROJECT_BINARY_DIR}/lzmallocConfig.cmake
  INSTALL_DESTINATION ${LZ_CMAKE_DIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR)
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/lzmallocConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)   # 0.x: a minor release may change the API
install(FILES
  ${PROJECT_BINARY_DIR}/lzmallocConfig.cmake
  ${PROJECT_BINARY_DIR}/lzmallocConfigVersion.cmake
  DESTINATION ${LZ_CMAKE_DIR}
  COMPONENT Development)

# ---- pkg-config ----
# The install prefix may be chosen at install time (cmake --install --prefix,
# make install PREFIX=...), so lzmalloc.pc is written then, with the actual
# prefix; the rest of it is filled in now.
function(lz_pc_path out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  else()
    set(${out} "\${prefix}/${dir}" PARENT_SCOPE)
  endif()
endfunction()
lz_pc_path(LZ_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
lz_pc_path(LZ_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
set(LZ_PC_PREFIX "@LZ_INSTALL_PREFIX@")   # replaced at install time
configure_file(${CMAKE_CURRENT_LIST_DIR}/lzmalloc.pc.in ${PROJECT_BINARY_DIR}/lzmalloc.pc.install @ONLY)
if(IS_ABSOLUTE "${LZ_PC_DIR}")
  set(_lz_pc_dest "\$ENV{DESTDIR}${LZ_PC_DIR}")
else()
  set(_lz_pc_dest "\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${LZ_PC_DIR}")
endif()
install(CODE "
  set(LZ_INSTALL_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(_lz_pc \"${_lz_pc_dest}/lzmalloc.pc\")
  message(STATUS \"Installing: \${_lz_pc}\")
  configure_file(\"${PROJECT_BINARY_DIR}/lzmalloc.pc.install\" \"\${_lz_pc}\" @ONLY)
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES \"\${_lz_pc}\")
" COMPONENT Development)

# ---- Man page and the lzrun wrapper ----
install(FILES ${PROJECT_SOURCE_DIR}/doc/lzmalloc.3
  DESTINATION ${CMAKE_INSTALL_MANDIR}/man3 COMPONENT Runtime)
install(PROGRAMS ${PROJECT_SOURCE_DIR}/tools/lzrun
  DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT Runtime OPTIONAL)
