# python3: an allocation-heavy threaded workload (dicts, lists, str, bytes,
# bytearray growth, objects, cross-thread hand-off through queues so that one
# thread frees what another allocated), its checksum compared with a run
# without the preload; then a selection of CPython's own regression tests
# (Debian package libpython3.11-testsuite) under the preload, if installed.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Debian's python3 (the test suite package belongs to it), else any python3.
PY=${LZ_PYTHON:-/usr/bin/python3}
[[ -x $PY ]] || PY=$(command -v python3 || true)
[[ -n $PY && -x $PY ]] || lz_skip "python3 not installed"
lz_assert_preload_works
# PYTHONMALLOC=malloc: every object, even the small ones pymalloc would
# serve from its own mmap arenas, goes through malloc/free.
export PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 PYTHONMALLOC=malloc

cat >work.py <<'EOF'
import sys, threading, queue, random, zlib, gc

def loaded(base):
    with open("/proc/self/maps") as f:
        return any(l.split()[-1].rsplit("/", 1)[-1] == base for l in f if "/" in l)

class Node:
    def __init__(self, key, val, nxt):
        self.key, self.val, self.nxt = key, val, nxt

class Slot:
    __slots__ = ("a", "b", "c")
    def __init__(self, a, b, c):
        self.a, self.b, self.c = a, b, c

def crc(x, c):
    return zlib.crc32(x if isinstance(x, (bytes, bytearray)) else str(x).encode(), c)

def worker(tid, rounds, out):
    r = random.Random(1000 + tid)
    c = 0
    for rnd in range(rounds):
        # dict churn: insert many, delete half, re-insert
        d = {}
        for i in range(4000):
            d["k%d_%d" % (i, r.randrange(1 << 20))] = [i] * r.randrange(1, 12)
        for k in list(d)[::2]:
            del d[k]
        for i in range(1000):
            d[(i, tid)] = str(i) * r.randrange(1, 40)
        c = crc("|".join(sorted(str(k) for k in d)), c)
        c = crc(sum(len(v) for v in d.values()), c)
        # bytes of many sizes, small to large (up to 256 KiB)
        blobs = []
        for i in range(300):
            n = r.choice((8, 24, 100, 500, 3000, 20000, 70000, 262144))
            blobs.append(bytes([(i + tid) & 255]) * n)
        r.shuffle(blobs)
        del blobs[::3]
        c = crc(b"".join(blobs[:50]), c)
        c = crc(sum(map(len, blobs)), c)
        # bytearray/list growth (realloc paths)
        ba = bytearray()
        lst = []
        for i in range(5000):
            ba += b"%d," % (i * r.randrange(1000))
            lst.append(i)
            if i % 7 == 0:
                lst.pop(0)
        c = crc(ba, c)
        c = crc(len(lst), c)
        # objects: linked list of Nodes, slotted objects, cycles for the gc
        head = None
        for i in range(3000):
            head = Node(i, "v" * (i % 50), head)
        s = 0
        while head is not None:
            s += head.key + len(head.val)
            head = head.nxt
        slots = [Slot(i, str(i), (i,)) for i in range(3000)]
        s += sum(o.a for o in slots[::5])
        cyc = []
        for i in range(500):
            a, b = {}, {}
            a["b"], b["a"] = b, a
            cyc.append(a)
        del cyc
        c = crc(s, c)
        # strings
        words = ["".join(chr(97 + (i * j) % 26) for j in range(r.randrange(1, 30))) for i in range(2000)]
        text = " ".join(words)
        c = crc(text.upper().replace("A", "xyz").split("Q")[0], c)
        c = crc(len(set(words)), c)
    out[tid] = c

def producer(tid, q, n):
    r = random.Random(77 + tid)
    for i in range(n):
        sz = r.choice((16, 64, 256, 1024, 8192, 65536))
        q.put([bytes([i & 255]) * sz, "p%d-%d" % (tid, i), {"i": i}])
    q.put(None)

def consumer(q, res, idx):
    tot = 0
    while True:
        item = q.get()
        if item is None:
            break
        tot = (tot + zlib.crc32(item[0]) + len(item[1]) + item[2]["i"]) % (1 << 61)
        del item
    res[idx] = tot

def main():
    base = sys.argv[1] if len(sys.argv) > 1 else ""
    if base:
        print("loaded", loaded(base))
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    out = [None] * 4
    ts = [threading.Thread(target=worker, args=(t, rounds, out)) for t in range(4)]
    for t in ts: t.start()
    for t in ts: t.join()
    print("workers", " ".join("%08x" % c for c in out))
    qs = [queue.Queue(maxsize=64) for _ in range(2)]
    res = [0, 0]
    ts = [threading.Thread(target=producer, args=(i, qs[i], 20000)) for i in range(2)]
    ts += [threading.Thread(target=consumer, args=(qs[i], res, i)) for i in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
    print("handoff", res[0], res[1])
    gc.collect()
    print("gc", gc.collect())
if __name__ == "__main__":
    main()
EOF

lz_log "python: $PY ($("$PY" --version 2>&1))"
"$PY" work.py "" >ref.txt
"${LZ_PRE[@]}" "$PY" work.py "$LZ_LIB_BASE" >out.txt
lz_expect_eq "python sees $LZ_LIB_BASE in /proc/self/maps" "loaded True" "$(head -1 out.txt)"
tail -n +2 out.txt >out.body
lz_expect_same_file "threaded workload checksums" ref.txt out.body
sed 's/^/    /' out.body

# CPython's regression tests, if Debian's test suite package is installed.
TESTS=(test_dict test_list test_set test_threading test_gc test_bytes test_unicode
       test_deque test_collections test_json test_re test_array test_memoryview
       test_sort test_heapq)
if "$PY" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("test.test_dict") is None)' 2>/dev/null; then
  lz_log "regrtest: ${TESTS[*]}"
  if ! "${LZ_PRE[@]}" timeout 500 "$PY" -m test -j2 --timeout 400 "${TESTS[@]}" >regrtest.log 2>&1; then
    tail -40 regrtest.log >&2
    lz_fail "CPython regression tests failed under the preload"
  fi
  grep -E '^(All [0-9]+ tests OK|Tests result: |Total duration)' regrtest.log | sed 's/^/    /' || true
  grep -q '^Tests result: SUCCESS' regrtest.log || lz_fail "regrtest did not report SUCCESS"
  grep -q "^All ${#TESTS[@]} tests OK" regrtest.log || lz_fail "regrtest did not run all ${#TESTS[@]} modules"
  lz_log "ok: ${#TESTS[@]} CPython regression test modules pass"
else
  lz_log "note: libpython3.11-testsuite not installed, regression tests not run"
fi
lz_done
