#!/usr/bin/env bash
# numa_test.sh SUITE: runs a suite of numa_place scenarios in the two-node
# guest (vm.sh). LZ_LIB is the library under test, NUMA_PLACE the program.
#   harness    glibc malloc: placement follows first touch (the check fails)
#   placement  lzmalloc: every scenario local (>= 99 %); with
#              LZMALLOC_NUMA=off the same checks fail as first touch
#              dictates; interleave spreads large blocks
# recycle runs with LZMALLOC_PURGE_DELAY=-1 so recycled pages are still
# resident when they are handed out again.
set -u
here=$(cd "$(dirname "$0")" && pwd)
suite=${1:?suite}
guest=$(mktemp "${TMPDIR:-/tmp}/lz-numa-guest.XXXXXX")
trap 'rm -f "$guest"' EXIT
# Transparent huge pages off in the guest: move_pages(2) of Linux 6.1
# reports pages mapped by a huge page as not present (-ENOENT).
echo 'echo never > /sys/kernel/mm/transparent_hugepage/enabled' >"$guest"
# Automatic NUMA balancing off too: on by default in a guest with two
# nodes, it moves pages toward the node of the thread that touched them
# last (in recycle, thread 1 writing the links of the small blocks it
# carves), at a rate set by the guest's clock, i.e. by how slowly the
# loaded host emulates the test: placement would be the kernel's then,
# not the allocator's (NUMA=off recycle found 99.05 % on thread 1's node).
echo '[ -e /proc/sys/kernel/numa_balancing ] && echo 0 > /proc/sys/kernel/numa_balancing' >>"$guest"
case "$suite" in
  harness)
    cat >>"$guest" <<'G'
./numa_place place --expect wrong
G
    ;;
  placement)
    cat >>"$guest" <<'G'
export LD_PRELOAD=/t/$(ls /t | grep '^liblzmalloc' | head -n 1)
rc=0
./numa_place place --expect local || rc=1
LZMALLOC_PURGE_DELAY=-1 ./numa_place recycle --expect local || rc=1
./numa_place storm --expect local || rc=1
./numa_place migrate --expect local || rc=1
LZMALLOC_NUMA=interleave ./numa_place interleave --expect interleave || rc=1
echo "--- LZMALLOC_NUMA=off: first touch decides"
LZMALLOC_NUMA=off ./numa_place place --expect wrong || rc=1
LZMALLOC_NUMA=off LZMALLOC_PURGE_DELAY=-1 ./numa_place recycle --expect wrong || rc=1
LZMALLOC_NUMA=off ./numa_place migrate --expect wrong || rc=1
exit $rc
G
    ;;
  *) echo "numa_test.sh: unknown suite $suite" >&2; exit 2 ;;
esac
exec bash "$here/vm.sh" -f "$NUMA_PLACE" -f "$LZ_LIB" "$guest"
