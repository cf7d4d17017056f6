# Shared helpers for the real-program tests (sourced, not run).
#
# Every realprog script is run as `bash <script>` with
#   LZ_LIB   path of the allocator to preload (liblzmalloc.so.*)
#   LZ_BUILD build directory, LZ_SRC source directory (optional here)
# It works in a fresh temp dir ($T), runs the program under LD_PRELOAD=$LZ_LIB,
# proves that the library really is mapped into the process, checks the output
# against a reference computed without the preload, and exits
#   0 pass, 1 fail, 77 skip (program not installed).
#
# To try the suite against another allocator:
#   LZ_LIB=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 bash tests/realprog/git.sh

set -euo pipefail

# Run from `make test`, the outer make's variables would reach the programs
# under test (make prints "Entering directory", jobserver flags): drop them.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES

LZ_TEST_NAME=$(basename "${BASH_SOURCE[1]:-$0}" .sh)

lz_log()  { printf '[%s] %s\n' "$LZ_TEST_NAME" "$*"; }
lz_fail() { printf '[%s] FAIL: %s\n' "$LZ_TEST_NAME" "$*" >&2; exit 1; }
lz_skip() { printf 'SKIP: %s\n' "$*"; exit 77; }

# lz_need PROG...: exit 77 unless every PROG is on PATH (or an executable path).
lz_need() {
  local p
  for p in "$@"; do
    if [[ $p == */* ]]; then
      [[ -x $p ]] || lz_skip "$p not installed"
    else
      command -v "$p" >/dev/null 2>&1 || lz_skip "$p not installed"
    fi
  done
}

# lz_expect_eq WHAT EXPECTED ACTUAL
lz_expect_eq() {
  if [[ "$2" != "$3" ]]; then
    lz_fail "$1: expected '$2', got '$3'"
  fi
  lz_log "ok: $1 = $3"
}

# lz_expect_same_file WHAT REFERENCE ACTUAL: byte-identical files.
lz_expect_same_file() {
  if ! cmp -s "$2" "$3"; then
    printf '[%s] FAIL: %s differs from the no-preload reference:\n' "$LZ_TEST_NAME" "$1" >&2
    diff -u "$2" "$3" | head -40 >&2 || true
    exit 1
  fi
  lz_log "ok: $1 identical to reference ($(wc -l <"$3") lines, sha256 $(sha256sum <"$3" | cut -c1-16))"
}

[[ -n "${LZ_LIB:-}" ]] || lz_fail "LZ_LIB is not set"
[[ -f "$LZ_LIB" ]] || lz_fail "LZ_LIB=$LZ_LIB does not exist"
LZ_LIB=$(readlink -f "$LZ_LIB")
# /proc/<pid>/maps names the file by its resolved path; match its basename.
LZ_LIB_BASE=$(basename "$LZ_LIB")
export LZ_LIB LZ_LIB_BASE

# Preload prefix for commands: "${LZ_PRE[@]}" prog args...
LZ_PRE=(env "LD_PRELOAD=$LZ_LIB")

# lz_maps_has_lib FILE: FILE (a copy of some /proc/<pid>/maps) maps the library.
lz_maps_has_lib() {
  awk -v b="$LZ_LIB_BASE" '{ n = split($6, a, "/"); if (n && a[n] == b) f = 1 } END { exit !f }' "$1"
}

# lz_assert_pid_loaded PID WHAT: the live process PID maps the library. Polls
# for up to 10 s: right after an exec, ld.so may not have mapped it yet, so
# call it only for a process that stays alive meanwhile (a server, or one
# blocked on a FIFO).
lz_assert_pid_loaded() {
  local pid=$1 what=$2 i
  for ((i = 0; i < 1000; i++)); do
    cat "/proc/$pid/maps" >"$T/.maps.$pid" 2>/dev/null || lz_fail "$what (pid $pid) is gone"
    if lz_maps_has_lib "$T/.maps.$pid"; then
      lz_log "ok: $LZ_LIB_BASE is mapped into $what (pid $pid)"
      return 0
    fi
    sleep 0.01
  done
  lz_fail "$LZ_LIB_BASE is not mapped into $what (pid $pid)"
}

# lz_wait_exec PID EXE: wait (bounded, 10 s) until PID has exec'd a binary whose
# resolved path ends in EXE (so its maps are those of the program, not the shell).
lz_wait_exec() {
  local pid=$1 exe=$2 i
  for ((i = 0; i < 1000; i++)); do
    local cur
    cur=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    [[ $cur == *"/$exe" || $cur == "$exe" ]] && return 0
    [[ -d /proc/$pid ]] || lz_fail "pid $pid exited before exec of $exe"
    sleep 0.01
  done
  lz_fail "pid $pid did not exec $exe within 10 s"
}

# lz_assert_preload_works: a trivial preloaded process maps the library and
# ld.so does not complain about it.
lz_assert_preload_works() {
  LD_PRELOAD=$LZ_LIB cat /proc/self/maps >"$T/.maps.cat" 2>"$T/.maps.err" ||
    lz_fail "preloaded cat failed: $(cat "$T/.maps.err")"
  if grep -q 'cannot be preloaded' "$T/.maps.err"; then
    lz_fail "ld.so refused $LZ_LIB: $(cat "$T/.maps.err")"
  fi
  lz_maps_has_lib "$T/.maps.cat" || lz_fail "$LZ_LIB_BASE is not mapped into a preloaded cat"
}

T=$(mktemp -d "${TMPDIR:-/tmp}/lz-$LZ_TEST_NAME.XXXXXX")
LZ_CLEANUP=()
lz_cleanup() {
  local c
  for c in "${LZ_CLEANUP[@]+"${LZ_CLEANUP[@]}"}"; do eval "$c" || true; done
  rm -rf "$T"
}
trap lz_cleanup EXIT
trap 'exit 130' INT TERM
cd "$T"

LZ_T0=$SECONDS
lz_done() { lz_log "PASS ($((SECONDS - LZ_T0)) s, preload $LZ_LIB_BASE)"; }
