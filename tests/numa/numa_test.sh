#!/usr/bin/env bash
# numa_test.sh SUITE: runs a suite of numa_place scenarios in the two-node
# guest (vm.sh). LZ_LIB is the library under test, NUMA_PLACE the program.
#   harness    glibc malloc: placement follows first touch (the check fails)
set -u
here=$(cd "$(dirname "$0")" && pwd)
suite=${1:?suite}
guest=$(mktemp "${TMPDIR:-/tmp}/lz-numa-guest.XXXXXX")
trap 'rm -f "$guest"' EXIT
# Transparent huge pages off in the guest: move_pages(2) of Linux 6.1
# reports pages mapped by a huge page as not present (-ENOENT).
echo 'echo never > /sys/kernel/mm/transparent_hugepage/enabled' >"$guest"
case "$suite" in
  harness)
    cat >>"$guest" <<'G'
./numa_place place --expect wrong
G
    ;;
  *) echo "numa_test.sh: unknown suite $suite" >&2; exit 2 ;;
esac
exec bash "$here/vm.sh" -f "$NUMA_PLACE" -f "$LZ_LIB" "$guest"
