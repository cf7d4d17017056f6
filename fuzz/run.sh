#!/usr/bin/env bash
# fuzz/run.sh [SECONDS]: build the libFuzzer target fuzz/fuzz_ops.c (when out
# of date) and fuzz lzmalloc's lz_ API for SECONDS (default 60; 0: build only).
#
# Build: clang (FUZZ_CC, else clang-14, else clang) into FUZZ_BUILD_DIR
# (default <repo>/build/fuzz). The library sources (LZ_CORE_SOURCES of
# CMakeLists.txt: src/*.c except override.c) are compiled with
# -fsanitize=address,undefined and no fuzzer instrumentation, LZ_OVERRIDE=0
# (ASan keeps its own malloc) and LZ_DEBUG=1 (internal assertions); the
# target with -fsanitize=fuzzer,address,undefined.
#
# Run: on a temporary copy of fuzz/corpus (the repository is not modified).
# Prints libFuzzer's final "Done N runs in S second(s)" line. Exit status:
# 0 no finding; 1 a finding (crash input saved under <build>/artifacts/,
# full log in <build>/last_run.log) or a build failure; 77 clang or
# libFuzzer missing (ctest: skipped).
set -u

secs=${1:-60}
case "$secs" in
  ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# FUZZ_LIB_COVERAGE=1: also give libFuzzer coverage of the library itself
# (-fsanitize=fuzzer-no-link on src/*.c), in its own build directory.
libcov=${FUZZ_LIB_COVERAGE:-0}
if [ "$libcov" = 1 ]; then
  out=${FUZZ_BUILD_DIR:-$root/build/fuzz-libcov}
else
  out=${FUZZ_BUILD_DIR:-$root/build/fuzz}
fi

# ---- compiler ---------------------------------------------------------------
cc=${FUZZ_CC:-}
if [ -z "$cc" ]; then
  for c in clang-14 clang; do
    if command -v "$c" >/dev/null 2>&1; then cc=$c; break; fi
  done
fi
if [ -z "$cc" ] || ! command -v "$cc" >/dev/null 2>&1; then
  echo "SKIP: clang not found (set FUZZ_CC); the fuzzer needs clang with libFuzzer"
  exit 77
fi

mkdir -p "$out/obj" "$out/artifacts" || exit 1

# Serialise builds (several ctest trees may run this script at once).
exec 9>"$out/.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

probe="$out/.probe"
if [ ! -e "$probe.ok" ] || [ "$(cat "$probe.ok")" != "$cc" ]; then
  printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >"$probe.c"
  if ! "$cc" -fsanitize=fuzzer,address,undefined "$probe.c" -o "$probe.bin" >"$probe.log" 2>&1; then
    echo "SKIP: $cc cannot link -fsanitize=fuzzer,address,undefined (libFuzzer runtime missing?):"
    sed 's/^/  /' "$probe.log" | head -5
    exit 77
  fi
  echo "$cc" >"$probe.ok"
fi

# ---- sources ----------------------------------------------------------------
# LZ_CORE_SOURCES from CMakeLists.txt, so the list cannot drift.
mapfile -t lib_srcs < <(sed -n '/^set(LZ_CORE_SOURCES/,/)/p' "$root/CMakeLists.txt" | grep -o 'src/[A-Za-z0-9_]*\.c')
if [ "${#lib_srcs[@]}" -eq 0 ]; then
  lib_srcs=()
  for f in "$root"/src/*.c; do
    f=${f#"$root/"}
    [ "$f" = src/override.c ] || lib_srcs+=("$f")
  done
fi

common=(-std=gnu11 -g -O2 -fno-omit-frame-pointer -pthread
        -fsanitize=address,undefined -fno-sanitize-recover=all
        -Wall -Wextra -Wno-unused-parameter
        -I "$root/src" -I "$root/include")
lib_flags=("${common[@]}" -DLZ_OVERRIDE=0 -DLZ_DEBUG=1 -ftls-model=initial-exec -fno-builtin-malloc -fvisibility=hidden)
tgt_flags=("${common[@]}" -fsanitize=fuzzer)
[ "$libcov" = 1 ] && lib_flags+=(-fsanitize=fuzzer-no-link)

bin="$out/fuzz_ops"
stale=0
if [ ! -x "$bin" ]; then
  stale=1
elif [ -n "$(find "$root/src" "$root/include" "$here/fuzz_ops.c" "$here/run.sh" "$root/CMakeLists.txt" \
              -newer "$bin" \( -name '*.c' -o -name '*.h' -o -name '*.sh' -o -name CMakeLists.txt \) -print -quit)" ]; then
  stale=1
fi

if [ "$stale" = 1 ]; then
  echo "fuzz: building $bin with $cc"
  objs=()
  pids=()
  logs=()
  for s in "${lib_srcs[@]}"; do
    o="$out/obj/$(basename "$s" .c).o"
    objs+=("$o")
    logs+=("$o.log")
    "$cc" "${lib_flags[@]}" -c "$root/$s" -o "$o" >"$o.log" 2>&1 &
    pids+=($!)
    # Two compilers at a time.
    if [ "${#pids[@]}" -ge 2 ]; then wait "${pids[0]}" || { cat "${logs[@]}"; echo "fuzz: build failed"; exit 1; }; pids=("${pids[@]:1}"); fi
  done
  for p in "${pids[@]}"; do wait "$p" || { cat "${logs[@]}"; echo "fuzz: build failed"; exit 1; }; done
  if ! "$cc" "${tgt_flags[@]}" "$here/fuzz_ops.c" "${objs[@]}" -o "$bin.tmp" >"$out/link.log" 2>&1; then
    cat "$out/link.log"
    echo "fuzz: build failed"
    exit 1
  fi
  mv -f "$bin.tmp" "$bin"
fi
flock -u 9 2>/dev/null

[ "$secs" = 0 ] && { echo "fuzz: built $bin"; exit 0; }

# ---- run ----------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lzfuzz.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/corpus"
if [ -d "$here/corpus" ]; then cp "$here"/corpus/* "$tmp/corpus/" 2>/dev/null; fi
seeds=$(find "$tmp/corpus" -type f | wc -l)
log="$out/last_run.log"
echo "fuzz: running $bin for ${secs}s on a copy of $seeds seed inputs (log: $log)"

export ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0:handle_abort=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-}${UBSAN_OPTIONS:+:}print_stacktrace=1:halt_on_error=1"

# -error_exitcode: libFuzzer's default (77) would read as "skipped" in ctest.
# FUZZ_ARGS: extra libFuzzer flags (e.g. -seed=1 or -only_ascii=0).
# shellcheck disable=SC2086
"$bin" ${FUZZ_ARGS:-} -max_total_time="$secs" -timeout=60 -rss_limit_mb=4096 -max_len=4096 \
  -error_exitcode=1 -timeout_exitcode=1 -detect_leaks=0 -print_final_stats=1 \
  -artifact_prefix="$out/artifacts/" "$tmp/corpus" >"$log" 2>&1 &
fpid=$!
# Show progress without the per-input NEW/REDUCE chatter.
tail -n +1 -f "$log" --pid="$fpid" 2>/dev/null | grep --line-buffered -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|RELOAD)' &
tpid=$!
wait "$fpid"
rc=$?
wait "$tpid" 2>/dev/null

done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -n 1)
if [ "$rc" -ne 0 ]; then
  echo
  echo "fuzz: FINDING (libFuzzer exit status $rc); full log: $log"
  grep -E "^(artifact_prefix|Test unit written to)" "$log" | sed 's/^/fuzz: /'
  echo "fuzz: reproduce with: $bin <crash file>"
  exit 1
fi
if [ -z "$done_line" ]; then
  echo "fuzz: no final 'Done N runs' line in the log; treating as failure"
  exit 1
fi
echo "fuzz: $done_line (no finding)"
exit 0
