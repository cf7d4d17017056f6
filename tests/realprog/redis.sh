# redis: redis-server (listening on 127.0.0.1 only, no persistence) runs under
# the preload; a bounded redis-benchmark (20000 requests each of SET, GET,
# LPUSH, LPOP, 50 clients), then 1000 keys with values of varying size are
# written with redis-cli and read back and compared, plus a large list and a
# hash. The server is always shut down (trap). Debian's redis-server is linked
# with libjemalloc: the preload interposes malloc/calloc/realloc/free/
# malloc_usable_size, while mallctl/nallocx still reach jemalloc.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
lz_need redis-server redis-cli redis-benchmark
lz_assert_preload_works

# A free port on 127.0.0.1: the kernel picks one for a throwaway listener.
free_port() {
  local py
  for py in /usr/bin/python3 python3; do
    if command -v "$py" >/dev/null 2>&1; then
      "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
      return
    fi
  done
  echo $((20000 + RANDOM % 20000))
}
PORT=$(free_port)
CLI=(redis-cli -h 127.0.0.1 -p "$PORT")

"${LZ_PRE[@]}" redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$T" --logfile "$T/redis.log" --daemonize no --protected-mode yes &
SPID=$!
LZ_CLEANUP+=("kill -TERM $SPID 2>/dev/null; for i in \$(seq 50); do kill -0 $SPID 2>/dev/null || break; sleep 0.1; done; kill -KILL $SPID 2>/dev/null; wait $SPID 2>/dev/null")
for ((i = 0; i < 600; i++)); do
  [[ $("${CLI[@]}" ping 2>/dev/null) == PONG ]] && break
  kill -0 "$SPID" 2>/dev/null || { cat redis.log >&2; lz_fail "redis-server exited at start-up"; }
  sleep 0.1
done
[[ $("${CLI[@]}" ping 2>/dev/null) == PONG ]] || { cat redis.log >&2; lz_fail "redis-server did not answer within 60 s"; }
lz_log "redis: $(redis-server --version | cut -d' ' -f3) on 127.0.0.1:$PORT (pid $SPID)"
lz_assert_pid_loaded "$SPID" redis-server

timeout 500 redis-benchmark -h 127.0.0.1 -p "$PORT" -n 20000 -c 50 -q -t set,get,lpush,lpop >bench.txt 2>&1 ||
  { cat bench.txt >&2; lz_fail "redis-benchmark failed"; }
tr '\r' '\n' <bench.txt | grep -E '^(SET|GET|LPUSH|LPOP): .*requests per second' | sed 's/^/    /'
for t in SET GET LPUSH LPOP; do
  tr '\r' '\n' <bench.txt | grep -q "^$t: .*requests per second" || lz_fail "redis-benchmark gave no $t result"
done
lz_log "ok: redis-benchmark set/get/lpush/lpop, 20000 requests each"

# 1000 keys, values of 1..~4000 bytes, written in one redis-cli pipeline.
"${CLI[@]}" flushall >/dev/null
for ((i = 0; i < 1000; i++)); do
  v=$(printf "v$i-%0*d" $(( (i * 37) % 4000 )) 0)
  printf 'SET key:%d %s\n' "$i" "$v"
  printf '%s\n' "$v" >>expected.txt
done >set.cmds
"${CLI[@]}" <set.cmds >set.out
lz_expect_eq "SET replies" "1000 OK" "$(sort set.out | uniq -c | awk '{ print $1, $2 }')"
for ((i = 0; i < 1000; i++)); do printf 'GET key:%d\n' "$i"; done | "${CLI[@]}" >get.out
cmp -s expected.txt get.out || lz_fail "GET of 1000 keys returned different values"
lz_log "ok: 1000 keys read back identical ($(wc -c <get.out) bytes)"
lz_expect_eq "DBSIZE" "1000" "$("${CLI[@]}" dbsize)"
# a list and a hash, grown and shrunk
for ((i = 0; i < 200; i++)); do printf 'RPUSH biglist %s\nHSET h f%d %s\n' "$(printf 'e%05d%0200d' "$i" 0)" "$i" "$i"; done | "${CLI[@]}" >/dev/null
"${CLI[@]}" ltrim biglist 50 149 >/dev/null
lz_expect_eq "LLEN after LTRIM" "100" "$("${CLI[@]}" llen biglist)"
lz_expect_eq "LINDEX 0" "$(printf 'e%05d%0200d' 50 0)" "$("${CLI[@]}" lindex biglist 0)"
lz_expect_eq "HLEN" "200" "$("${CLI[@]}" hlen h)"
"${CLI[@]}" del $(seq -f 'key:%g' 0 2 999) >/dev/null
lz_expect_eq "DBSIZE after deleting 500 keys" "502" "$("${CLI[@]}" dbsize)"
lz_log "mem_allocator reported by redis: $("${CLI[@]}" info memory | tr -d '\r' | grep '^mem_allocator:' | cut -d: -f2)"
"${CLI[@]}" shutdown nosave >/dev/null 2>&1 || true
for ((i = 0; i < 600; i++)); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$SPID" 2>/dev/null; then lz_fail "redis-server did not shut down within 60 s"; fi
wait "$SPID" && rc=0 || rc=$?
lz_expect_eq "redis-server exit status after SHUTDOWN" "0" "$rc"
grep -qiE 'crash|assert|segmentation' redis.log && { tail -30 redis.log >&2; lz_fail "redis.log reports a crash"; }
lz_done
