#!/bin/bash
# Real program: Debian's redis-server on loopback, driven by redis-benchmark
# (50 clients, pipelines of 16, 100,000 random keys, 100-byte values):
# SET, GET, INCR, LPUSH, RPOP, SADD, HSET, 60,000 requests each at scale
# 1, then LPUSH and LRANGE_100 (replies of 100 list elements built per
# request), 7,500 each. Only the server runs on the allocator
# under test (the runner's LD_PRELOAD is moved to it; the benchmark client
# and redis-cli run without). Debian links redis-server with libjemalloc,
# so in the glibc column (no preload) the server is given out/lib's
# libc_malloc_shim.so, which sends the malloc family to glibc's allocator.
# Checks: every test reports, the server answers PING, a 100 KB value
# written and read back is intact, and the key count is what the random
# keyspace allows.
# Usage: redis [threads] [scale] (threads is ignored).
# Figures: requests per second (wall), and the row redis-cpu, the server's
# CPU time (user+sys, /proc) per request in microseconds (lower is better).
set -u
scale=${2:-1}
here=$(cd "$(dirname "$0")" && pwd)
SERVER=${REDIS_SERVER:-redis-server}
BENCH=${REDIS_BENCHMARK:-redis-benchmark}
CLI=${REDIS_CLI:-redis-cli}
for p in "$SERVER" "$BENCH" "$CLI"; do
  command -v "$p" >/dev/null || { echo "FAIL: $p not installed"; exit 2; }
done
srv_preload=${LD_PRELOAD:-}
if [ -z "$srv_preload" ]; then
  srv_preload="$here/../lib/libc_malloc_shim.so"
  [ -f "$srv_preload" ] || { echo "FAIL: $srv_preload missing (make -C bench)"; exit 2; }
fi
unset LD_PRELOAD
n=$(awk -v s="$scale" 'BEGIN { n = int(60000 * s); if (n < 4000) n = 4000; print n }')
tests="set,get,incr,lpush,rpop,sadd,hset"
nl=$((n / 8))   # LRANGE_100 (and the LPUSH it needs first): a reply of 100 elements each
dir=$(mktemp -d) || exit 2
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
# a free loopback port: several runs may share the machine
for try in 1 2 3 4 5 6 7 8; do
  port=$(( 20000 + (RANDOM * 7 + $$ + try * 911) % 30000 ))
  LD_PRELOAD="$srv_preload" "$SERVER" --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$dir" --daemonize no --logfile "$dir/server.log" &
  pid=$!
  up=""
  for i in $(seq 100); do
    if [ "$("$CLI" -p "$port" ping 2>/dev/null)" = "PONG" ]; then up=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$up" ] && break
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=""
done
[ -n "$pid" ] || { echo "FAIL: redis-server did not start"; cat "$dir/server.log" 2>/dev/null; exit 2; }
grep -q "$(basename "$srv_preload")" /proc/$pid/maps || { echo "FAIL: preload not in the server"; exit 2; }
cpu() { awk '{ print $14 + $15 }' /proc/$pid/stat; }
c0=$(cpu)
t0=$(date +%s%N)
out=$("$BENCH" -p "$port" -n "$n" -r 100000 -d 100 -P 16 -c 50 -q -t "$tests" 2>&1)
rc=$?
out2=$("$BENCH" -p "$port" -n "$nl" -r 100000 -d 100 -P 16 -c 50 -q -t lrange_100 2>&1)
rc=$((rc | $?))
out="$out
$out2"
total=$((n * 7 + nl * 2))
t1=$(date +%s%N)
c1=$(cpu)
big=$(head -c 75000 /dev/urandom | base64 -w0)
"$CLI" -p "$port" set chk "$big" >/dev/null
back=$("$CLI" -p "$port" get chk)
keys=$("$CLI" -p "$port" dbsize)
pong=$("$CLI" -p "$port" ping)
nres=$(echo "$out" | tr '\r' '\n' | grep -c "requests per second, ")
if [ $rc -ne 0 ] || [ "$nres" -ne 9 ] || [ "$back" != "$big" ] || [ "$pong" != "PONG" ] || \
   ! [ "$keys" -gt 1000 ] 2>/dev/null || [ "$keys" -gt 300010 ]; then
  echo "FAIL: redis-benchmark exit $rc, $nres of 9 tests, value intact: $([ "$back" = "$big" ] && echo yes || echo no), $keys keys, ping $pong"
  echo "$out" | tr '\r' '\n' | tail -20
  exit 2
fi
echo "$out" | tr '\r' '\n' | grep "requests per second, "
hz=$(getconf CLK_TCK)
echo "redis: $total requests in $(( (t1 - t0) / 1000000 )) ms, server CPU $(( (c1 - c0) * 1000 / hz )) ms, $keys keys"
awk -v n="$total" -v c="$((c1 - c0))" -v hz="$hz" 'BEGIN { printf "metric: cpu %.6g us\n", c / hz * 1e6 / n }'
awk -v n="$total" -v ns="$((t1 - t0))" 'BEGIN { printf "result: %.6g Kreq/s\n", n / (ns / 1e9) / 1000 }'
