# fork-heavy: (1) a preloaded bash runs 500 loop iterations of command
# substitutions, subshells and pipelines through external programs (sort, tr,
# sed, awk, xargs), every one of them a fresh preloaded process, and its output
# must equal the same script's run without the preload; (2) a preloaded python3
# forks 200 times while 2 other threads keep allocating and freeing, and each
# child allocates (PYTHONMALLOC=malloc) and reports a checksum through a pipe:
# a child stuck on an allocator lock held by a thread that does not exist in
# it (missing or broken atfork handling) fails the test after a deadline.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
lz_need bash sort tr sed awk xargs
lz_assert_preload_works
export LC_ALL=C

cat >loop.sh <<'EOF_SH'
set -euo pipefail
if [[ -n ${1:-} ]]; then
  awk -v b="$1" '{ n = split($6, a, "/"); if (n && a[n] == b) f = 1 } END { print "bash loaded " (f ? 1 : 0) }' /proc/$$/maps
fi
acc=0 words=""
for ((i = 1; i <= 500; i++)); do
  sq=$( (echo "$i"; echo "$((i * i))") | sort -n | tail -n 1 | tr 0-9 a-j )
  acc=$(( (acc * 31 + ${#sq}) % 1000000007 ))
  if (( i % 10 == 0 )); then acc=$(( acc + $(printf '%s\n' "$sq" | sed 's/a/0/g' | awk '{ print length($0) }') )); fi
  if (( i % 50 == 0 )); then words+="$sq "; fi
done
echo "acc $acc"
echo "words $words"
echo "xargs $(seq 1 200 | xargs -n 7 -P 2 sh -c 'echo $(( $# ))' sh | awk '{ s += $1 } END { print s }')"
EOF_SH

lz_log "bash: 500 iterations of \$( (subshell) | sort | tail | tr ), every 10th also | sed | awk; xargs -P2"
bash loop.sh "" >ref1.txt
"${LZ_PRE[@]}" bash loop.sh "$LZ_LIB_BASE" >out1.txt
lz_expect_eq "bash sees $LZ_LIB_BASE in /proc/\$\$/maps" "bash loaded 1" "$(head -1 out1.txt)"
tail -n +2 out1.txt >out1.body
lz_expect_same_file "bash loop results" ref1.txt out1.body
lz_expect_eq "xargs saw all 200 arguments" "xargs 200" "$(grep ^xargs out1.body)"
sed 's/^/    /' out1.body

PY=${LZ_PYTHON:-/usr/bin/python3}
[[ -x $PY ]] || PY=$(command -v python3 || true)
if [[ -z $PY || ! -x $PY ]]; then
  lz_log "note: python3 not installed, fork-with-threads part not run"
  lz_done; exit 0
fi
cat >forks.py <<'EOF_PY'
import os, signal, sys, threading, zlib
base = sys.argv[1]
with open("/proc/self/maps") as f:
    print("python loaded", int(any(l.rstrip().rsplit("/", 1)[-1] == base for l in f if "/" in l)))
stop = False
# zlib releases the GIL around (de)compression, so these threads spend their
# time in C, calling malloc/free for the stream state, while the main thread
# forks: some fork()s land while another thread is inside the allocator.
def churn(tid):
    data = b"".join(b"%d lzmalloc %d\n" % (i, i * i) for i in range(20000 * (tid + 1)))
    while not stop:
        c = zlib.compress(data, 1 + tid)
        assert zlib.decompress(c) == data
def on_alarm(sig, frame):
    raise TimeoutError
signal.signal(signal.SIGALRM, on_alarm)
ts = [threading.Thread(target=churn, args=(t,)) for t in range(2)]
for t in ts: t.start()
NFORK, ok, bad = int(os.environ.get("LZ_NFORK", "200")), 0, []
try:
    for k in range(NFORK):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            d = {str(i): bytes([i % 256]) * (i % 700) for i in range(1000 + k)}
            c = zlib.crc32(b"".join(d[str(i)] for i in range(0, 1000 + k, 3)))
            os.write(w, b"%d %d" % (k, c))
            os._exit(0)
        os.close(w)
        signal.alarm(20)   # a child stuck for 20 s counts as a failure
        try:
            _, st = os.waitpid(pid, 0)
        except TimeoutError:
            os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0); st = -1
        signal.alarm(0)
        out = os.read(r, 100); os.close(r)
        d = {str(i): bytes([i % 256]) * (i % 700) for i in range(1000 + k)}
        c = zlib.crc32(b"".join(d[str(i)] for i in range(0, 1000 + k, 3)))
        if st == 0 and out == b"%d %d" % (k, c):
            ok += 1
        else:
            bad.append((k, st, out))
finally:
    stop = True
    for t in ts: t.join()
print("forks ok %d of %d" % (ok, NFORK))
for b in bad[:5]:
    print("bad child", b)
EOF_PY
lz_log "python: 200 forks from a process whose 2 other threads keep allocating"
PYTHONMALLOC=malloc "${LZ_PRE[@]}" timeout 500 "$PY" forks.py "$LZ_LIB_BASE" >out2.txt || { cat out2.txt >&2; lz_fail "forks.py failed"; }
lz_expect_eq "python sees $LZ_LIB_BASE in /proc/self/maps" "python loaded 1" "$(head -1 out2.txt)"
lz_expect_eq "children that allocated and answered correctly" "forks ok 200 of 200" "$(sed -n 2p out2.txt)"
lz_done
