# Shared helpers for the link-mode tests (sourced, not run).
#
# Every script in tests/linkmodes/ is run by ctest as `bash <script>` with
#   LZ_BUILD  the build directory (liblzmalloc.so, liblzmalloc.a)
#   LZ_SRC    the source directory (include/lzmalloc.h, tests/linkmodes/app.c)
#   LZ_LIB    path of liblzmalloc.so
# It builds tests/linkmodes/app.c with the system C compiler ($CC, default cc)
# in a fresh temp dir ($T) the way its link mode says, runs it, and passes
# when the app reports that lzmalloc served its allocations ("lzmalloc-app:
# OK", see app.c). Exit status: 0 pass, 1 fail, 77 skip.
#
# By hand:  LZ_BUILD=build/release LZ_SRC=$PWD bash tests/linkmodes/shared.sh

# shellcheck disable=SC2034  # (file-wide) variables used by the sourcing scripts
set -euo pipefail

LZ_TEST_NAME=$(basename "${BASH_SOURCE[1]:-$0}" .sh)

lz_log()  { printf '[%s] %s\n' "$LZ_TEST_NAME" "$*"; }
lz_fail() { printf '[%s] FAIL: %s\n' "$LZ_TEST_NAME" "$*" >&2; exit 1; }
lz_skip() { printf 'SKIP: %s\n' "$*"; exit 77; }

[[ -n "${LZ_BUILD:-}" && -d "$LZ_BUILD" ]] || lz_fail "LZ_BUILD is not set or not a directory"
[[ -n "${LZ_SRC:-}" && -f "$LZ_SRC/include/lzmalloc.h" ]] || lz_fail "LZ_SRC is not set or has no include/lzmalloc.h"
LZ_BUILD=$(readlink -f "$LZ_BUILD")
LZ_SRC=$(readlink -f "$LZ_SRC")
LZ_SO=$LZ_BUILD/liblzmalloc.so
[[ -z "${LZ_LIB:-}" ]] || LZ_LIB=$(readlink -f "$LZ_LIB")
LZ_A=$LZ_BUILD/liblzmalloc.a
LZ_APP=$LZ_SRC/tests/linkmodes/app.c
CC=${CC:-cc}
command -v "$CC" >/dev/null 2>&1 || lz_skip "no C compiler ($CC)"
APP_CFLAGS=(-O1 -g -Wall -Wextra -Werror)

# The standard names that liblzmalloc.a also provides as __wrap_<name>
# (src/wrap.c): the linker flags of the --wrap and --defsym modes.
LZ_WRAP_NAMES=(malloc free calloc realloc reallocarray memalign aligned_alloc posix_memalign
               valloc pvalloc malloc_usable_size malloc_trim free_sized free_aligned_sized)
LZ_WRAP_FLAGS=()
LZ_DEFSYM_FLAGS=()
for _n in "${LZ_WRAP_NAMES[@]}"; do
  LZ_WRAP_FLAGS+=("-Wl,--wrap,$_n")
  LZ_DEFSYM_FLAGS+=("-Wl,--defsym=$_n=__wrap_$_n")
done
unset _n

# lz_cc WHAT ARGS...: run the compiler, log the command; fail with its output.
lz_cc() {
  local what=$1; shift
  lz_log "build $what: $CC $*"
  if ! "$CC" "$@" >"$T/cc.log" 2>&1; then
    cat "$T/cc.log" >&2
    lz_fail "building $what failed"
  fi
}

# lz_run_app WHAT EXE [ENV...]: run the app (optionally under env ENV...);
# it must exit 0 and print its OK line.
lz_run_app() {
  local what=$1 exe=$2; shift 2
  local rc=0
  env "$@" "$exe" "$what" >"$T/app.out" 2>"$T/app.err" || rc=$?
  if [[ $rc -ne 0 ]] || ! grep -q '^lzmalloc-app: OK' "$T/app.out"; then
    cat "$T/app.out" "$T/app.err" >&2
    lz_fail "$what: the app failed (exit $rc)"
  fi
  lz_log "ok: $(cat "$T/app.out")"
}

# lz_is_static EXE: EXE is a fully static executable (no program interpreter,
# no dynamic section).
lz_is_static() {
  ! readelf -lW "$1" | grep -q 'INTERP' && ! readelf -dW "$1" | grep -q 'NEEDED'
}

# lz_glibc_static_ok: glibc's static libc (libc6-dev's libc.a) links.
lz_glibc_static_ok() {
  printf 'int main(void) { return 0; }\n' >"$T/static_probe.c"
  "$CC" -static "$T/static_probe.c" -o "$T/static_probe" >/dev/null 2>&1 && "$T/static_probe"
}

# lz_same_address EXE A B: symbols A and B of EXE are at the same address.
lz_same_address() {
  local a b
  a=$(nm "$1" | awk -v s="$2" '$3 == s { print $1; exit }')
  b=$(nm "$1" | awk -v s="$3" '$3 == s { print $1; exit }')
  [[ -n $a && $a == "$b" ]]
}

T=$(mktemp -d "${TMPDIR:-/tmp}/lz-$LZ_TEST_NAME.XXXXXX")
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM
cd "$T"

LZ_T0=$SECONDS
lz_done() { lz_log "PASS ($((SECONDS - LZ_T0)) s)"; }
