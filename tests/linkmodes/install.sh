# Installation: `cmake --install "$LZ_BUILD" --prefix <tmp>` (what `make
# install PREFIX=...` runs), then consumers built against the installed tree
# only (never the source or build directories):
#   - pkg-config:  cc app.c $(pkg-config --cflags lzmalloc) $(pkg-config --libs lzmalloc)
#                  and a -static one with pkg-config --static --libs;
#   - CMake:       find_package(lzmalloc REQUIRED), lzmalloc::lzmalloc and
#                  lzmalloc::lzmalloc-static;
# each run and checked to be served by lzmalloc (app.c). Also checks the
# header, the man page (and that it renders), the .pc file's fields, the
# CMake package files, bin/lzrun when tools/lzrun exists (and that it runs a
# program on the installed library), and a DESTDIR (staged) install.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
command -v cmake >/dev/null || lz_skip "cmake not installed"
command -v pkg-config >/dev/null || lz_skip "pkg-config not installed (apt-get install pkgconf)"

# cmake --install rewrites $LZ_BUILD/install_manifest.txt: keep the one of a
# real installation (it lists what to uninstall), or leave none.
MANIFEST=$LZ_BUILD/install_manifest.txt
if [[ -f $MANIFEST ]]; then
  cp -p "$MANIFEST" manifest.saved
  trap 'cp -p "$T/manifest.saved" "$MANIFEST"; rm -rf "$T"' EXIT
else
  trap 'rm -f "$MANIFEST"; rm -rf "$T"' EXIT
fi

P=$T/prefix
lz_log "cmake --install $LZ_BUILD --prefix $P"
cmake --install "$LZ_BUILD" --prefix "$P" >install.log 2>&1 || { cat install.log >&2; lz_fail "cmake --install failed"; }
lz_log "installed $(grep -c -e 'Installing:' -e 'Up-to-date:' install.log) files"

# ---- Files ----
cmp -s "$P/include/lzmalloc.h" "$LZ_SRC/include/lzmalloc.h" || lz_fail "include/lzmalloc.h missing or different"
MAN=$P/share/man/man3/lzmalloc.3
cmp -s "$MAN" "$LZ_SRC/doc/lzmalloc.3" || lz_fail "share/man/man3/lzmalloc.3 missing or different"
pc=$(find "$P" -name lzmalloc.pc -path '*/pkgconfig/*')
[[ -n $pc ]] || lz_fail "no lzmalloc.pc installed"
LIBDIR=$(dirname "$(dirname "$pc")")
for f in liblzmalloc.so liblzmalloc.so.0 liblzmalloc.a liblzmalloc-prefixed.a; do
  [[ -e $LIBDIR/$f ]] || lz_fail "${LIBDIR#"$P"/}/$f not installed"
done
[[ -L $LIBDIR/liblzmalloc.so && -L $LIBDIR/liblzmalloc.so.0 ]] || lz_fail "liblzmalloc.so and .so.0 should be symlinks"
nm "$LIBDIR/liblzmalloc.a" | grep -q ' T __wrap_malloc$' || lz_fail "installed liblzmalloc.a has no __wrap_malloc"
for f in lzmallocConfig.cmake lzmallocConfigVersion.cmake lzmallocTargets.cmake; do
  [[ -f $LIBDIR/cmake/lzmalloc/$f ]] || lz_fail "${LIBDIR#"$P"/}/cmake/lzmalloc/$f not installed"
done
if [[ -e $LZ_SRC/tools/lzrun ]]; then
  [[ -x $P/bin/lzrun ]] || lz_fail "tools/lzrun exists but bin/lzrun was not installed (executable)"
  lz_log "ok: bin/lzrun installed"
else
  lz_log "note: tools/lzrun does not exist (yet): bin/lzrun not expected"
fi
lz_log "ok: header, man page, libraries (${LIBDIR#"$P"/}), pkg-config and CMake package files"

# The man page renders without warnings.
if command -v groff >/dev/null; then
  groff -man -Tutf8 -ww -z "$MAN" >groff.log 2>&1 || { cat groff.log >&2; lz_fail "groff failed on lzmalloc.3"; }
  [[ ! -s groff.log ]] || { cat groff.log >&2; lz_fail "groff warnings on lzmalloc.3"; }
  groff -man -Tascii -P-cbou "$MAN" 2>/dev/null >man.txt
  for s in NAME SYNOPSIS DESCRIPTION ENVIRONMENT DIAGNOSTICS "SEE ALSO" LZMALLOC_PURGE_DELAY "double free"; do
    grep -q "$s" man.txt || lz_fail "rendered man page lacks $s"
  done
  lz_log "ok: lzmalloc.3 renders without warnings"
fi

# ---- pkg-config ----
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
ver=$(sed -n 's/^#define LZMALLOC_VERSION "\(.*\)"/\1/p' "$LZ_SRC/include/lzmalloc.h")
[[ $(pkg-config --modversion lzmalloc) == "$ver" ]] || lz_fail "pkg-config --modversion: $(pkg-config --modversion lzmalloc), header says $ver"
grep -qx "prefix=$P" "$pc" || lz_fail "lzmalloc.pc: prefix is not $P: $(grep '^prefix=' "$pc")"
grep -q '^Libs:.*-llzmalloc' "$pc" || lz_fail "lzmalloc.pc: Libs lacks -llzmalloc"
grep -q '^Libs.private:.*-lpthread' "$pc" || lz_fail "lzmalloc.pc: Libs.private lacks -lpthread"
grep -q '^Cflags:.*-I' "$pc" || lz_fail "lzmalloc.pc: no Cflags -I"
LIBS=$(pkg-config --libs lzmalloc)
SLIBS=$(pkg-config --static --libs lzmalloc)
CFLAGS=$(pkg-config --cflags lzmalloc)
lz_log "pkg-config --cflags: $CFLAGS; --libs: $LIBS; --static --libs: $SLIBS"
# pkg_dir FLAG WORDS...: the directory of the first FLAG<dir> word, resolved.
pkg_dir() { local f=$1 w; shift; for w in "$@"; do [[ $w == "$f"* ]] && { readlink -f "${w#"$f"}"; return; }; done; }
# shellcheck disable=SC2086
[[ $(pkg_dir -L $LIBS) == $(readlink -f "$LIBDIR") ]] || lz_fail "pkg-config --libs -L is not $LIBDIR"
# shellcheck disable=SC2086
[[ $(pkg_dir -I $CFLAGS) == $(readlink -f "$P/include") ]] || lz_fail "pkg-config --cflags -I is not $P/include"
[[ " $LIBS " == *" -llzmalloc "* ]] || lz_fail "pkg-config --libs lacks -llzmalloc"
[[ " $SLIBS " == *" -lpthread "* ]] || lz_fail "pkg-config --static --libs lacks -lpthread"

mkdir consumer && cp "$LZ_APP" consumer/app.c
cd consumer
# shellcheck disable=SC2086
lz_cc "pkg-config consumer" "${APP_CFLAGS[@]}" $CFLAGS app.c -o app_pc $LIBS -Wl,-rpath,"$LIBDIR" -lpthread
resolved=$(ldd ./app_pc | awk '$1 ~ /^liblzmalloc/ { print $3 }')
[[ $(readlink -f "$resolved") == $(readlink -f "$LIBDIR/liblzmalloc.so.0") ]] ||
  lz_fail "app_pc resolves liblzmalloc to '$resolved', not the installed one"
lz_run_app pkg-config ./app_pc
if lz_glibc_static_ok; then
  # shellcheck disable=SC2086
  lz_cc "pkg-config --static consumer" -static "${APP_CFLAGS[@]}" $CFLAGS app.c -o app_pc_static $SLIBS
  lz_is_static app_pc_static || lz_fail "app_pc_static is not static"
  lz_run_app pkg-config-static ./app_pc_static
fi

# ---- CMake ----
cat >CMakeLists.txt <<'EOC'
cmake_minimum_required(VERSION 3.20)
project(lzmalloc_consumer C)
find_package(lzmalloc @LZ_VER@ REQUIRED)
foreach(t lzmalloc::lzmalloc lzmalloc::lzmalloc-static lzmalloc::lzmalloc-prefixed)
  if(NOT TARGET ${t})
    message(FATAL_ERROR "find_package(lzmalloc) did not define ${t}")
  endif()
endforeach()
add_executable(app_shared app.c)
target_link_libraries(app_shared PRIVATE lzmalloc::lzmalloc)
add_executable(app_static app.c)
target_link_libraries(app_static PRIVATE lzmalloc::lzmalloc-static)
EOC
# The version asked for: the header's major.minor (0.x: SameMinorVersion).
sed -i "s/@LZ_VER@/${ver%.*}/" CMakeLists.txt
lz_log "cmake consumer: find_package(lzmalloc ${ver%.*}) with CMAKE_PREFIX_PATH=$P"
cmake -S . -B build -DCMAKE_PREFIX_PATH="$P" -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=Release \
  -Dlzmalloc_DIR= >cmake.log 2>&1 || { cat cmake.log >&2; lz_fail "configuring the CMake consumer failed"; }
grep -q "lzmalloc_DIR:PATH=$LIBDIR/cmake/lzmalloc" build/CMakeCache.txt ||
  lz_fail "find_package found lzmalloc elsewhere: $(grep lzmalloc_DIR build/CMakeCache.txt)"
cmake --build build >>cmake.log 2>&1 || { cat cmake.log >&2; lz_fail "building the CMake consumer failed"; }
resolved=$(ldd build/app_shared | awk '$1 ~ /^liblzmalloc/ { print $3 }')
[[ $(readlink -f "$resolved") == $(readlink -f "$LIBDIR/liblzmalloc.so.0") ]] ||
  lz_fail "app_shared resolves liblzmalloc to '$resolved', not the installed one"
if readelf -dW build/app_static | grep -q 'NEEDED.*lzmalloc'; then
  lz_fail "app_static (lzmalloc::lzmalloc-static) NEEDs a shared liblzmalloc"
fi
lz_run_app cmake-lzmalloc::lzmalloc build/app_shared
lz_run_app cmake-lzmalloc::lzmalloc-static build/app_static

# ---- The installed lzrun preloads the installed library ----
if [[ -x $P/bin/lzrun ]]; then
  lz_cc "app for lzrun (no lzmalloc)" "${APP_CFLAGS[@]}" -DLZ_APP_DLSYM -I"$P/include" app.c -o app_plain -ldl -lpthread
  env -u LZ_LIB -u LD_PRELOAD "$P/bin/lzrun" ./app_plain lzrun >lzrun.out 2>&1 ||
    { cat lzrun.out >&2; lz_fail "installed bin/lzrun did not run the app on lzmalloc"; }
  lz_log "ok: bin/lzrun: $(grep '^lzmalloc-app' lzrun.out)"
fi
cd "$T"

# ---- DESTDIR (packaging): the .pc file names the final prefix ----
DESTDIR=$T/stage cmake --install "$LZ_BUILD" --prefix /opt/lzmalloc >stage.log 2>&1 ||
  { cat stage.log >&2; lz_fail "DESTDIR=... cmake --install failed"; }
spc=$(find "$T/stage/opt/lzmalloc" -name lzmalloc.pc)
{ [[ -n $spc ]] && grep -qx 'prefix=/opt/lzmalloc' "$spc"; } || lz_fail "DESTDIR install: lzmalloc.pc lacks prefix=/opt/lzmalloc"
[[ -z $(find "$T/stage" -mindepth 1 -maxdepth 1 ! -name opt) ]] || lz_fail "DESTDIR install wrote outside \$DESTDIR/opt"
lz_log "ok: DESTDIR install (prefix=/opt/lzmalloc in the staged .pc file)"
lz_done
