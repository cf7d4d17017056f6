#!/usr/bin/env bash
# Runtime options (LZMALLOC_*): each one changes what it documents, and a
# bad value gives exactly one warning while the program runs on.
set -euo pipefail
app="$LZ_BUILD/tests/options_app"
fail() { echo "FAIL: $*" >&2; exit 1; }
run() { env "$@" LD_PRELOAD="$LZ_LIB" "$app" "${ARGS[@]}"; }

ARGS=(plain)
# Bad values: one warning each, naming the variable, default kept.
for bad in LZMALLOC_PURGE_DELAY=abc LZMALLOC_LARGE_CACHE=12Q LZMALLOC_SHOW_STATS=7 LZMALLOC_VERBOSE=-1 LZMALLOC_SECURE=9 LZMALLOC_NUMA=sometimes; do
  out=$(run "$bad" 2>err.txt) || fail "$bad: program failed"
  [ "$out" = "options ok" ] || fail "$bad: output '$out'"
  n=$(grep -c "lzmalloc: warning: ignoring ${bad%%=*}=" err.txt || true)
  [ "$n" = 1 ] || { cat err.txt >&2; fail "$bad: expected one warning, got $n"; }
  echo "ok: $bad -> $(cat err.txt)"
done
rm -f err.txt

# Once per process, whatever the program does at start-up: a real python
# interpreter (not a wrapper script such as a pyenv shim, which runs dozens
# of processes that each warn once) that starts threads, allocates and forks
# prints exactly one warning (the forked child inherits the parsed options).
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || true)
if [ -n "$PY" ] && [ -x "$PY" ]; then
  env LZMALLOC_VERBOSE=banana LD_PRELOAD="$LZ_LIB" "$PY" -c '
import os, threading
def work():
    x = [bytearray(n) for n in range(1, 3000)]
ts = [threading.Thread(target=work) for _ in range(4)]
for t in ts: t.start()
for t in ts: t.join()
pid = os.fork()
if pid == 0:
    work(); os._exit(0)
os.waitpid(pid, 0)
' 2>err.txt || fail "python under a bad option failed"
  n=$(grep -c "lzmalloc: warning: ignoring LZMALLOC_VERBOSE=banana" err.txt || true)
  [ "$n" = 1 ] || { cat err.txt >&2; fail "python: expected one warning, got $n"; }
  echo "ok: python ($PY) with LZMALLOC_VERBOSE=banana -> one warning"
  rm -f err.txt
fi

# VERBOSE reports the configuration; SHOW_STATS prints statistics at exit.
# (Captured first: grep -q closing a pipe early would kill the writer.)
err=$(run LZMALLOC_VERBOSE=1 2>&1 >/dev/null)
grep -q "lzmalloc: version" <<<"$err" || fail "VERBOSE=1 printed no version line"
err=$(run LZMALLOC_VERBOSE=1 LZMALLOC_PURGE_DELAY=-1 2>&1 >/dev/null)
grep -q "purge delay: never" <<<"$err" || fail "VERBOSE did not show PURGE_DELAY=-1"
err=$(run LZMALLOC_SHOW_STATS=1 2>&1 >/dev/null)
grep -q "lzmalloc .* statistics" <<<"$err" || fail "SHOW_STATS=1 printed no statistics"

echo "ok: VERBOSE and SHOW_STATS"

# PURGE_DELAY=0 gives freed pages back at once; -1 never.
ARGS=(purge)
p0=$(run LZMALLOC_PURGE_DELAY=0 | awk '{print $2}')
pn=$(run LZMALLOC_PURGE_DELAY=-1 | awk '{print $2}')
[ "$p0" -gt 0 ] || fail "PURGE_DELAY=0: no pages purged"
[ "$pn" = 0 ] || fail "PURGE_DELAY=-1: $pn pages purged"
echo "ok: PURGE_DELAY=0 purged $p0 pages, -1 purged none"

# LARGE_CACHE=0 unmaps a freed large block at once; the default keeps it.
ARGS=(largecache)
[ "$(run LZMALLOC_LARGE_CACHE=0)" = "mapped_dropped 1" ] || fail "LARGE_CACHE=0 kept the mapping"
[ "$(run LZMALLOC_LARGE_CACHE=64M)" = "mapped_dropped 0" ] || fail "LARGE_CACHE=64M did not cache"
echo "ok: LARGE_CACHE"

# SECURE=2 puts a guard page right after large blocks: a one-byte overrun
# faults there, and the fault handler names the block and aborts.
ARGS=(overrun)
set +e
out=$(run LZMALLOC_SECURE=2 2>err.txt)
rc=$?
set -e
[ "$rc" -ge 128 ] && [ $((rc - 128)) = 6 ] && grep -q "^lzmalloc: buffer overflow 0x[0-9a-f]* (guard page hit at 0x[0-9a-f]*)$" err.txt ||
  fail "SECURE=2: overrun not caught (exit $rc, output '$out', stderr '$(cat err.txt)')"
echo "ok: SECURE=2 guard page caught the overrun: $(cat err.txt)"
echo "options: all checks passed"
