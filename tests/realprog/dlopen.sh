# dlopen: a preloaded python3 imports ~30 C extension modules (most are shared
# objects dlopen()ed from lib-dynload, pulling in libssl, libcrypto, libsqlite3,
# libffi, libbz2, liblzma, libmpdec, libexpat... that then allocate through the
# preloaded malloc), uses each briefly, and also dlopen()s libc/libz through
# ctypes and calls malloc/realloc/free directly. Each result line is compared
# with the same script run without the preload, and several against
# hard-coded known answers (digests, sqrt, crc32...).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PY=${LZ_PYTHON:-/usr/bin/python3}
[[ -x $PY ]] || PY=$(command -v python3 || true)
[[ -n $PY && -x $PY ]] || lz_skip "python3 not installed"
lz_assert_preload_works
export PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1

cat >mods.py <<'EOF_PY'
import sys
base = sys.argv[1]
out = []
def put(name, value):
    out.append("%s %s" % (name, value))

import json, _json
put("json", json.dumps(json.loads('{"b": [1, 2.5, null, "x\\u00e9"], "a": {"c": true}}' * 1), sort_keys=True))
put("json-big", len(json.dumps([{"k%d" % i: [i] * (i % 9)} for i in range(20000)])))
import sqlite3
db = sqlite3.connect(":memory:")
db.execute("create table t(a integer, b text)")
db.executemany("insert into t values (?, ?)", ((i, "v%d" % i) for i in range(50000)))
put("sqlite3", db.execute("select count(*), sum(a), max(b) from t").fetchone())
db.close()
import hashlib
put("sha256", hashlib.sha256(b"abc").hexdigest())
put("md5", hashlib.md5(b"lzmalloc" * 10000).hexdigest())
put("sha3_256", hashlib.sha3_256(b"").hexdigest())
put("blake2b", hashlib.blake2b(b"abc", digest_size=16).hexdigest())
put("pbkdf2", hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 1000).hex()[:32])
import hmac
put("hmac", hmac.new(b"key", b"msg", "sha1").hexdigest())
import ssl
ctx = ssl.create_default_context()
try:
    ctx.load_verify_locations("/etc/ssl/certs/ca-certificates.crt")
    put("ssl-cas", ctx.cert_store_stats()["x509_ca"] > 0)
except OSError:
    put("ssl-cas", "no bundle")
import os
kc = os.path.join(os.path.dirname(os.__file__), "test", "keycert.pem")
if os.path.exists(kc):
    # a TLS handshake and 100 records over memory BIOs, self-signed cert of the test suite
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain(kc)
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); cctx.check_hostname = False; cctx.verify_mode = ssl.CERT_NONE
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    cli = cctx.wrap_bio(c_in, c_out); srv = sctx.wrap_bio(s_in, s_out, server_side=True)
    def pump():
        s_in.write(c_out.read()); c_in.write(s_out.read())
    for obj in (cli, srv, cli, srv, cli, srv):
        try: obj.do_handshake()
        except ssl.SSLWantReadError: pass
        pump()
    got = b""
    for i in range(100):
        cli.write(b"record %d " % i * 50); pump()
        got += srv.read(1 << 16)
    put("tls", "%s %d %s" % (cli.version(), len(got), hashlib.sha256(got).hexdigest()[:16]))
else:
    put("tls", "skipped (no test/keycert.pem)")
import zlib, bz2, lzma
blob = b"".join(b"%d:%s;" % (i, b"x" * (i % 50)) for i in range(50000))
put("zlib", (zlib.crc32(blob), zlib.decompress(zlib.compress(blob, 9)) == blob))
put("crc32-known", zlib.crc32(b"123456789"))
put("bz2", bz2.decompress(bz2.compress(blob)) == blob)
put("lzma", lzma.decompress(lzma.compress(blob)) == blob)
import decimal
decimal.getcontext().prec = 60
put("decimal", decimal.Decimal(2).sqrt())
put("decimal-sum", sum(decimal.Decimal(i) / 7 for i in range(1, 5000)))
import ctypes, ctypes.util
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p; libc.malloc.argtypes = [ctypes.c_size_t]
libc.realloc.restype = ctypes.c_void_p; libc.realloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
ok = 0
ptrs = []
for i in range(1, 2000):
    p = libc.malloc(i * 13)
    ctypes.memset(p, i & 255, i * 13)
    p = libc.realloc(p, i * 29)
    if ctypes.string_at(p, i * 13) == bytes([i & 255]) * (i * 13): ok += 1
    ptrs.append(p)
for p in ptrs: libc.free(p)
put("ctypes-malloc", ok)
libz = ctypes.CDLL(ctypes.util.find_library("z") or "libz.so.1")
libz.crc32.restype = ctypes.c_ulong; libz.crc32.argtypes = [ctypes.c_ulong, ctypes.c_char_p, ctypes.c_uint]
put("ctypes-libz", libz.crc32(0, b"123456789", 9))
class P(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_double)]
arr = (P * 1000)(*[P(i, i / 2) for i in range(1000)])
put("ctypes-struct", sum(p.x + p.y for p in arr))
import pickle, _pickle
obj = {"l": list(range(1000)), "s": {"a", "b"}, "t": (1, 2.5, "x" * 100), "n": [[i] * 5 for i in range(500)]}
put("pickle", (pickle.loads(pickle.dumps(obj, 5)) == obj, len(pickle.dumps(obj, 5))))
import array
a = array.array("d", (i * 0.5 for i in range(100000)))
a.extend(a)
put("array", (len(a), sum(a)))
import math
put("math", (math.sqrt(2), math.factorial(30), math.gcd(2**64, 6**20), math.comb(60, 30)))
import select, socket
s1, s2 = socket.socketpair()
s1.sendall(b"ping" * 1000)
r, _, _ = select.select([s2], [], [], 5)
data = b""
while len(data) < 4000: data += s2.recv(65536)
put("socket", (len(r), data == b"ping" * 1000))
p = select.poll(); p.register(s1, select.POLLOUT); put("poll", len(p.poll(1000)))
s1.close(); s2.close()
import unicodedata
put("unicodedata", (unicodedata.name("\u00e9"), unicodedata.normalize("NFD", "\u00e9" * 3).encode("utf-8").hex()))
import struct, binascii, csv, io, datetime, random, bisect, heapq, mmap, uuid
put("struct", struct.pack("<iqd", -1, 2**40, 0.5).hex())
put("binascii", binascii.hexlify(binascii.a2b_base64(b"bHptYWxsb2M=")))
f = io.StringIO(); w = csv.writer(f); [w.writerow([i, "a,b", i * 0.5]) for i in range(1000)]
put("csv", (len(f.getvalue()), sum(1 for _ in csv.reader(io.StringIO(f.getvalue())))))
put("datetime", datetime.datetime(2024, 2, 29, 12) + datetime.timedelta(days=400))
rnd = random.Random(42); put("random", [rnd.randrange(1000) for _ in range(5)])
l = []; [bisect.insort(l, (i * 7919) % 10007) for i in range(5000)]; put("bisect", (l[:3], l[-1]))
h = [(i * 31) % 1009 for i in range(5000)]; heapq.heapify(h); put("heapq", [heapq.heappop(h) for _ in range(5)])
m = mmap.mmap(-1, 1 << 20); m.write(b"lz" * 1000); m.seek(0); put("mmap", m.read(6)); m.close()
put("uuid", uuid.uuid5(uuid.NAMESPACE_DNS, "lzmalloc.example"))
import xml.etree.ElementTree as ET, pyexpat
root = ET.fromstring("<r>" + "".join('<i n="%d">%d</i>' % (i, i * i) for i in range(5000)) + "</r>")
put("elementtree", (len(root), sum(int(e.text) for e in root)))
import codecs, _multibytecodec
put("cjk-codecs", ("\u65e5\u672c\u8a9e" * 100).encode("shift_jis").hex()[:24])
import asyncio
async def job(i):
    await asyncio.sleep(0)
    return i * i
async def amain():
    return sum(await asyncio.gather(*(job(i) for i in range(2000))))
put("asyncio", asyncio.run(amain()))
import _queue, _contextvars, _statistics, statistics
put("statistics", statistics.median(range(10001)))

# every shared object loaded so far (lib-dynload modules and system libraries)
with open("/proc/self/maps") as f:
    paths = sorted({l.split()[-1] for l in f if l.split()[-1].startswith("/")})
dyn = [p for p in paths if "lib-dynload" in p]
sys_libs = [p.rsplit("/", 1)[-1].split(".so")[0] for p in paths if ".so" in p and "lib-dynload" not in p]
print("loaded", int(any(p.rsplit("/", 1)[-1] == base for p in paths)))
print("extension .so files", len(dyn))
print("libraries", " ".join(sorted(set(sys_libs) - {base.split(".so")[0]})))
for line in out:
    print(line)
EOF_PY

"$PY" mods.py "" >ref.txt
"${LZ_PRE[@]}" "$PY" mods.py "$LZ_LIB_BASE" >out.txt
lz_expect_eq "python sees $LZ_LIB_BASE in /proc/self/maps" "loaded 1" "$(sed -n 1p out.txt)"
# The preloaded library may bring its own dependencies: the list of mapped
# libraries is checked for the ones the modules need, not compared.
grep '^libraries ' out.txt >libs.txt
sed -i -e 1d -e '/^libraries /d' out.txt; sed -i -e 1d -e '/^libraries /d' ref.txt
for l in libssl libcrypto libsqlite3 libffi libbz2 liblzma libexpat libz; do
  grep -qw -- "$l" libs.txt || lz_fail "$l was not loaded (got: $(cat libs.txt))"
done
lz_log "ok: dlopen()ed libssl libcrypto libsqlite3 libffi libbz2 liblzma libexpat libz"
lz_expect_same_file "module results and loaded libraries" ref.txt out.txt
k() { grep "^$1 " out.txt | cut -d' ' -f2-; }
lz_expect_eq "sha256(abc)" "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" "$(k sha256)"
lz_expect_eq "sha3_256('')" "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a" "$(k sha3_256)"
lz_expect_eq "crc32(123456789), zlib module" "3421780262" "$(k crc32-known)"
lz_expect_eq "crc32(123456789), libz via ctypes" "3421780262" "$(k ctypes-libz)"
lz_expect_eq "malloc/realloc/free through ctypes" "1999" "$(k ctypes-malloc)"
lz_expect_eq "Decimal(2).sqrt() to 60 digits" "1.41421356237309504880168872420969807856967187537694807317668" "$(k decimal)"
lz_expect_eq "sqlite3 aggregate" "(50000, 1249975000, 'v9999')" "$(k sqlite3)"
lz_expect_eq "asyncio gather" "$((1999 * 2000 * 3999 / 6))" "$(k asyncio)"
lz_log "$(grep '^extension .so files' out.txt); $(($(wc -w <libs.txt) - 1)) shared libraries mapped"
lz_log "tls: $(k tls)"
lz_done
