#!/bin/bash
# Real program: Debian's db_bench (RocksDB 7.8, rocksdb-tools), the
# key-value store of the standard allocator benchmark suites: fillrandom
# (200,000 random 16-byte keys with 100-byte values at scale 1, WAL on,
# memtable flushes and compactions in background threads) then
# readrandom (a quarter as many random reads through the block cache).
# Write batches, memtable skip lists (arena blocks), SST builders, the
# block cache and iterators allocate blocks of every size, from several
# threads. The database lives in /dev/shm (RAM) when there is one, so the
# disk does not set the pace. Fixed seed: the same keys every run.
# Checks: both benchmarks report, each key read is found at about the rate
# 200,000 random draws from 200,000 keys leave (between half and three
# quarters), and ldb (not preloaded) scans the database back with as many
# keys as the reads found in proportion.
# Usage: rocksdb [threads] [scale] (threads is ignored).
# Figure: operations per second (fillrandom and readrandom together, as
# db_bench times them).
set -u
scale=${2:-1}
DB_BENCH=${DB_BENCH:-db_bench}
LDB=${LDB:-ldb}
for p in "$DB_BENCH" "$LDB"; do
  command -v "$p" >/dev/null || { echo "FAIL: $p not installed"; exit 2; }
done
n=$(awk -v s="$scale" 'BEGIN { n = int(200000 * s); if (n < 20000) n = 20000; print n }')
reads=$((n / 4))
base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
dir=$(mktemp -d "$base/lzbench-rocksdb.XXXXXX") || exit 2
trap 'rm -rf "$dir"' EXIT
out=$("$DB_BENCH" --benchmarks=fillrandom,readrandom --num="$n" --reads="$reads" --seed=1 \
  --progress_reports=false --db="$dir/db" 2>&1)
rc=$?
fill=$(echo "$out" | sed -n 's/^fillrandom *: .* \([0-9.]*\) seconds \([0-9]*\) operations.*/\1 \2/p')
read=$(echo "$out" | sed -n 's/^readrandom *: .* \([0-9.]*\) seconds \([0-9]*\) operations.*(\([0-9]*\) of \([0-9]*\) found).*/\1 \2 \3 \4/p')
if [ $rc -ne 0 ] || [ -z "$fill" ] || [ -z "$read" ]; then
  echo "FAIL: db_bench exit $rc or no report"
  echo "$out" | tail -20
  exit 2
fi
set -- $fill $read
fs=$1 fo=$2 rs=$3 ro=$4 found=$5 asked=$6
if [ "$fo" -ne "$n" ] || [ "$ro" -ne "$reads" ] || [ "$asked" -ne "$reads" ] ||
   [ $((found * 4)) -lt $((reads * 2)) ] || [ $((found * 4)) -gt $((reads * 3)) ]; then
  echo "FAIL: db_bench operations $fo/$n, reads $ro/$reads, found $found of $asked"
  exit 2
fi
keys=$(env -u LD_PRELOAD "$LDB" --db="$dir/db" scan 2>/dev/null | wc -l)
# keys / n and found / reads estimate the same fraction (about 1 - 1/e)
if ! awk -v k="$keys" -v n="$n" -v f="$found" -v r="$reads" \
     'BEGIN { d = k / n - f / r; exit !(d < 0.05 && d > -0.05) }'; then
  echo "FAIL: ldb scanned $keys keys of $n written; reads found $found of $reads"
  exit 2
fi
echo "rocksdb: $fo random writes in $fs s, $ro random reads in $rs s ($found found); $keys keys scanned back"
awk -v o=$((fo + ro)) -v s1="$fs" -v s2="$rs" 'BEGIN { printf "result: %.6g Kops/s\n", o / (s1 + s2) / 1000 }'
