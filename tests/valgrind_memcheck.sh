#!/usr/bin/env bash
# lzmalloc's own code under valgrind's memcheck: tests linked with the
# lz_-prefixed library (so memcheck's malloc replacement does not hide
# lzmalloc) run at a small scale; any invalid access or use of an
# uninitialised value fails the test.
set -euo pipefail
command -v valgrind >/dev/null || { echo "SKIP: valgrind not installed"; exit 77; }
cd "$LZ_BUILD/tests"
run() {
  local scale=$1; shift
  echo "memcheck: $* (LZ_TEST_SCALE=$scale)"
  LZ_TEST_SCALE=$scale valgrind --error-exitcode=99 -q "$@" >/dev/null
}
run 0.05 ./sweep
run 0.05 ./stress_mt
run 0.1 ./fork_test
run 1 ./test_faults
run 1 ./scale_absurd
echo "memcheck: no errors"
