#!/bin/bash
# Real program: sqlite3 (Debian's, dynamically linked, uses malloc) builds an
# in-memory table of N rows with text keys and blobs, indexes it, groups,
# joins, sorts, updates and deletes. Every answer is checked against values
# computed independently with awk. Usage: sqlite [threads] [scale]
# (threads is ignored: sqlite3 runs single-threaded).
# Figure: rows per second of the whole script.
set -u
scale=${2:-1}
SQLITE=${SQLITE3:-sqlite3}
command -v "$SQLITE" >/dev/null || { echo "FAIL: sqlite3 not installed"; exit 2; }
N=$(awk -v s="$scale" 'BEGIN { n = int(150000 * s); if (n < 2000) n = 2000; if (n % 7919 == 0) n++; print n }')
expect=$(awk -v n="$N" 'BEGIN {
  for (x = 1; x <= n; x++) {
    sid += x; sg += x % 1000; sv += 16 + x % 200;
    if (x % 5 != 0) { c++; lk = 13 + 26 - x % 26; if (x % 3 == 0) lk += 2; sk += lk }
  }
  printf "%d|%.0f|%.0f|%.0f\n1000\n1\n%d\n%d\n%d|%.0f\n", n, sid, sg, sv, n, n, c, sk
}')
t0=$(date +%s%N)
got=$("$SQLITE" :memory: <<SQL
PRAGMA cache_size=-262144;
CREATE TABLE t(id INTEGER PRIMARY KEY, g INTEGER, k TEXT, v BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<$N)
INSERT INTO t SELECT x, x%1000,
  printf('key-%08d-%s', (x*7919)%$N, substr('abcdefghijklmnopqrstuvwxyz', 1+x%26)),
  zeroblob(16 + x%200) FROM c;
CREATE INDEX t_k ON t(k);
CREATE INDEX t_g ON t(g, id);
SELECT count(*), sum(id), sum(g), sum(length(v)) FROM t;
SELECT count(*) FROM (SELECT g, count(*) c, group_concat(k) s FROM t GROUP BY g);
SELECT sum(length(s)) = (SELECT sum(length(k)) + count(*) - 1000 FROM t)
  FROM (SELECT group_concat(k) s FROM t GROUP BY g);
SELECT count(*) FROM t a JOIN t b ON a.k = b.k;
SELECT count(*) FROM (SELECT k, v FROM t ORDER BY substr(k, 14) DESC, id);
UPDATE t SET k = k || '-x', v = zeroblob(300) WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), sum(length(k)) FROM t;
SQL
)
rc=$?
t1=$(date +%s%N)
if [ $rc -ne 0 ] || [ "$got" != "$expect" ]; then
  echo "FAIL: sqlite3 exit $rc or wrong answer"
  echo "got:";  echo "$got"
  echo "expected:"; echo "$expect"
  exit 2
fi
echo "sqlite: $N rows in $(( (t1 - t0) / 1000000 )) ms"
awk -v n="$N" -v ns="$((t1 - t0))" 'BEGIN { printf "result: %.6g Krows/s\n", n / (ns / 1e9) / 1000 }'
