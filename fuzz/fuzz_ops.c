/* fuzz_ops.c: libFuzzer target driving lzmalloc's lz_ API with a sequence
 * of operations decoded from the input, on several real threads.
 *
 * Built by fuzz/run.sh with clang -fsanitize=fuzzer,address,undefined; the
 * library sources are compiled with address,undefined but no fuzzer
 * instrumentation and with LZ_OVERRIDE=0, so ASan keeps its own malloc and
 * this file reaches lzmalloc only through lz_* (plus os_fault_set, the OS
 * layer's fault injection, to make the kernel refuse memory on demand).
 *
 * Threads:
 *   main    runs the input's operations on SLOTS block slots;
 *   worker  a persistent second thread that receives blocks through a small
 *           locked queue and frees, reallocs (and returns), stashes or
 *           replaces them; every input ends with a sync, so each input runs
 *           to completion on its own;
 *   eph     an occasional short-lived thread (created and joined inside one
 *           operation) that frees blocks handed to it and allocates blocks
 *           it hands back before exiting (its heap then becomes an orphan).
 *
 * Every block is filled, up to its usable size, with a pattern derived from
 * a unique id, and checked before it is freed, reallocated or handed over
 * (and after a realloc up to the smaller of the two sizes). Alignment and
 * usable size >= requested are checked on every allocation, and the heap
 * validator runs every VALIDATE_EVERY operations and after each input. The live total
 * is capped at LIVE_LIMIT and the number of operations at MAX_OPS.
 *
 * Input format: a stream of operations, each an opcode byte (mod OP_COUNT)
 * followed by the bytes its operands need (slot, size, alignment, ...).
 * Missing bytes read as zero; decoding never fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lzmalloc.h"

/* src/os.c (internal API): the next `after` mapping calls succeed, then
 * they fail (every one when every == 1, else one in `every`); -1: off. */
void os_fault_set(long after, long every);

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

enum {
  SLOTS = 64,
  MAX_OPS = 384,
  QCAP = 16,      /* main -> worker queue */
  RCAP = 32,      /* worker -> main return queue */
  STASH = 16,     /* blocks the worker keeps for a while */
  VALIDATE_EVERY = 32, /* operations between two lz_heap_validate() */
};
#define LIVE_LIMIT ((size_t)64 * MiB)
#define LARGE_MAX ((size_t)5 * MiB)

typedef struct blk_s {
  unsigned char *p;
  size_t size;   /* requested */
  size_t usable; /* lz_usable_size at allocation */
  uint64_t id;
} blk_t;

/* ---------------------------------------------------------------------------
 * Reporting
 * ------------------------------------------------------------------------- */
static _Atomic(int) cur_op = -1;

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nfuzz_ops: FAILURE (op #%d): %s\n", atomic_load(&cur_op), buf);
  fflush(stderr);
  abort();
}

/* ---------------------------------------------------------------------------
 * Patterns: the 64-bit word w of block `id` is pat_base(id) + w * PAT_STEP
 * (byte i is byte (i & 7) of word i >> 3), so fills and checks run on
 * aligned words with one add each, and a sub-range (the tail grown by a
 * realloc) can be filled on its own. The pattern helpers are hot and of no
 * interest to libFuzzer or ASan (lzmalloc's blocks are not ASan memory):
 * no coverage, no ASan checks.
 * ------------------------------------------------------------------------- */
#define NOCOV __attribute__((no_sanitize("coverage", "address"), noinline))
#define PAT_STEP 0x9e3779b97f4a7c15ull

static inline uint64_t pat_base(uint64_t id) {
  uint64_t x = id * 0xd6e8feb86659fd93ull + 0x5851f42d4c957f2dull;
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ull;
  x ^= x >> 29;
  return x;
}

static inline uint8_t pat_byte(uint64_t id, size_t i) {
  return (uint8_t)((pat_base(id) + (uint64_t)(i >> 3) * PAT_STEP) >> ((i & 7) * 8));
}

NOCOV static void fill_range(unsigned char *p, size_t from, size_t to, uint64_t id) {
  size_t i = from;
  while (i < to && (i & 7)) { p[i] = pat_byte(id, i); i++; }
  uint64_t w = pat_base(id) + (uint64_t)(i >> 3) * PAT_STEP;
  uint64_t *q = (uint64_t *)(void *)(p + i); /* blocks are 16-byte aligned */
  size_t nw = i < to ? (to - i) >> 3 : 0;
  for (size_t k = 0; k < nw; k++, w += PAT_STEP) q[k] = w;
  for (i += nw * 8; i < to; i++) p[i] = pat_byte(id, i);
}

/* Offset of the first mismatch in [from, to), or SIZE_MAX. */
NOCOV static size_t check_range(const unsigned char *p, size_t from, size_t to, uint64_t id) {
  size_t i = from;
  while (i < to && (i & 7)) { if (p[i] != pat_byte(id, i)) return i; i++; }
  uint64_t w = pat_base(id) + (uint64_t)(i >> 3) * PAT_STEP;
  const uint64_t *q = (const uint64_t *)(const void *)(p + i);
  size_t nw = i < to ? (to - i) >> 3 : 0;
  size_t k = 0;
  /* Branch-free runs of 64 words; the word loop below finds the bad byte. */
  for (; k + 64 <= nw; k += 64) {
    uint64_t diff = 0;
    for (size_t j = 0; j < 64; j++) diff |= q[k + j] ^ (w + (uint64_t)j * PAT_STEP);
    if (diff) break;
    w += 64 * PAT_STEP;
  }
  for (; k < nw; k++, w += PAT_STEP)
    if (q[k] != w) {
      for (size_t b = i + k * 8; b < i + k * 8 + 8; b++)
        if (p[b] != pat_byte(id, b)) return b;
    }
  for (i += nw * 8; i < to; i++)
    if (p[i] != pat_byte(id, i)) return i;
  return SIZE_MAX;
}

/* Offset of the first non-zero byte of p[0, n), or SIZE_MAX. */
NOCOV static size_t first_nonzero(const unsigned char *p, size_t n) {
  size_t i = 0;
  for (; i < n && ((uintptr_t)(p + i) & 7); i++)
    if (p[i] != 0) return i;
  for (; i + 64 <= n; i += 64) {
    const uint64_t *q = (const uint64_t *)(const void *)(p + i);
    uint64_t acc = 0;
    for (size_t j = 0; j < 8; j++) acc |= q[j];
    if (acc) break;
  }
  for (; i < n; i++)
    if (p[i] != 0) return i;
  return SIZE_MAX;
}

static void check_blk(const blk_t *b, const char *where) {
  size_t u = lz_usable_size(b->p);
  if (u != b->usable) die("%s: usable size of %p (id %llu, size %zu) changed from %zu to %zu", where, (void *)b->p,
                          (unsigned long long)b->id, b->size, b->usable, u);
  size_t bad = check_range(b->p, 0, b->usable, b->id);
  if (bad != SIZE_MAX)
    die("%s: block %p (id %llu, size %zu, usable %zu) corrupted at offset %zu: 0x%02x, expected 0x%02x", where,
        (void *)b->p, (unsigned long long)b->id, b->size, b->usable, bad, b->p[bad], pat_byte(b->id, bad));
}

/* ---------------------------------------------------------------------------
 * Shared state
 * ------------------------------------------------------------------------- */
static _Atomic(uint64_t) next_id = 1;
static _Atomic(size_t) live_bytes;   /* requested bytes of live blocks */
static _Atomic(int) faults_armed;    /* fault injection used in this input */

static bool charge(size_t n) {
  size_t cur = atomic_load(&live_bytes);
  do {
    if (n > LIVE_LIMIT || cur > LIVE_LIMIT - n) return false;
  } while (!atomic_compare_exchange_weak(&live_bytes, &cur, cur + n));
  return true;
}
static void uncharge(size_t n) { atomic_fetch_sub(&live_bytes, n); }

/* A call returned NULL: fine only with ENOMEM while faults are armed. */
static void alloc_failed(const char *what, size_t size, int err) {
  if (err == ENOMEM && atomic_load(&faults_armed)) return;
  die("%s(%zu) failed with errno %d without fault injection", what, size, err);
}

/* Validates a fresh block and fills it. `align`: required alignment. */
static void adopt_new(blk_t *b, void *p, size_t size, size_t align, const char *what) {
  if (((uintptr_t)p & 15) != 0) die("%s(%zu) = %p: not 16-byte aligned", what, size, p);
  if (align > 1 && ((uintptr_t)p & (align - 1)) != 0) die("%s(%zu) = %p: not aligned to %zu", what, size, p, align);
  size_t u = lz_usable_size(p);
  if (u < size) die("%s(%zu) = %p: usable size %zu < requested", what, size, p, u);
  if (u > size + 2 * MiB + size / 2 && u > 64 * KiB)
    die("%s(%zu) = %p: usable size %zu absurdly large", what, size, p, u);
  b->p = p;
  b->size = size;
  b->usable = u;
  b->id = atomic_fetch_add(&next_id, 1);
  fill_range(b->p, 0, u, b->id);
}

static void release(blk_t *b, int how) {
  if (b->p == NULL) return;
  check_blk(b, "before free");
  switch (how % 3) {
    case 0: lz_free(b->p); break;
    case 1: lz_free_sized(b->p, b->size); break;
    default: lz_free_aligned_sized(b->p, 16, b->size); break;
  }
  uncharge(b->size);
  b->p = NULL;
}

/* realloc of a checked block to `size`; false (block unchanged) if refused. */
static bool do_realloc(blk_t *b, size_t size) {
  check_blk(b, "before realloc");
  if (size > b->size && !charge(size - b->size)) return false;
  size_t old = b->size;
  errno = 0;
  void *q = lz_realloc(b->p, size);
  if (size == 0) {
    /* realloc(p, 0) frees p and returns NULL (glibc). */
    if (q != NULL) die("realloc(p, 0) returned %p, expected NULL", q);
    uncharge(old);
    b->p = NULL;
    return true;
  }
  if (q == NULL) {
    int e = errno;
    if (size > old) uncharge(size - old);
    alloc_failed("realloc", size, e);
    check_blk(b, "after failed realloc");
    return false;
  }
  if (((uintptr_t)q & 15) != 0) die("realloc(%zu) = %p: not 16-byte aligned", size, q);
  size_t keep = old < size ? old : size;
  size_t bad = check_range(q, 0, keep, b->id);
  if (bad != SIZE_MAX)
    die("realloc %p (size %zu) -> %p (size %zu): contents lost at offset %zu", (void *)b->p, old, q, size, bad);
  size_t u = lz_usable_size(q);
  if (u < size) die("realloc(%zu) = %p: usable size %zu < requested", size, q, u);
  if (size < old) uncharge(old - size);
  b->p = q;
  b->size = size;
  b->usable = u;
  fill_range(b->p, keep, u, b->id);
  return true;
}

/* ---------------------------------------------------------------------------
 * Input decoding
 * ------------------------------------------------------------------------- */
typedef struct rd_s {
  const uint8_t *d;
  size_t n, i;
} rd_t;

static unsigned get8(rd_t *r) { return r->i < r->n ? r->d[r->i++] : 0; }
static unsigned get16(rd_t *r) { unsigned a = get8(r); return a | (get8(r) << 8); }
static unsigned get24(rd_t *r) { unsigned a = get16(r); return a | (get8(r) << 16); }

static const size_t interesting[] = {
  0, 1, 8, 15, 16, 17, 24, 32, 48, 64, 80, 96, 112, 127, 128, 129, 192, 255, 256, 257, 384, 511, 512, 513,
  640, 768, 1000, 1023, 1024, 1025, 1280, 1536, 2047, 2048, 2049, 3072, 4095, 4096, 4097, 6144, 8191, 8192,
  8193, 12288, 16383, 16384, 16385, 24576, 32767, 32768, 32769, 36864, 65535, 65536, 65537, 131072, 262144,
  524288, 1048575 - 4096, 1048576 - 16, 1048575, 1048576, 1048577, 1048576 + 4096, 2097152 - 4096, 2097152,
  2097153, 3 * 1048576, 4194304, 4194304 + 1,
};
#define N_INTERESTING (sizeof interesting / sizeof interesting[0])

/* A size in one of the three engines' ranges, or an edge of them. */
static size_t get_size(rd_t *r) {
  unsigned sel = get8(r);
  size_t s;
  switch (sel & 7) {
    case 0: case 1: s = get8(r); break;                        /* tiny: fast path */
    case 2: s = get16(r) % (32 * KiB + 1); break;               /* small */
    case 3: case 4: {                                           /* edges */
      s = interesting[get8(r) % N_INTERESTING];
      int delta = (int)(sel >> 3) - 16;                         /* -16 .. +15 */
      if (delta < 0 && (size_t)-delta > s) s = 0;
      else s += (size_t)(ptrdiff_t)delta;
      break;
    }
    case 5: case 6: s = 32 * KiB + 1 + get24(r) % (MiB - 32 * KiB); break; /* medium */
    default: s = MiB + 1 + (size_t)get24(r) * 7 % (LARGE_MAX - MiB); break;  /* large */
  }
  return s;
}

/* An alignment exponent 3..22 (8 B .. 4 MiB), mostly small. */
static size_t get_align(rd_t *r) {
  unsigned a = get8(r);
  unsigned e = (a & 0x80) ? 3 + (a % 20) : 3 + (a % 10);
  return (size_t)1 << e;
}

static size_t pow2_ceil(size_t a) {
  size_t p = 1;
  while (p < a) p <<= 1;
  return p;
}

/* ---------------------------------------------------------------------------
 * Worker thread
 * ------------------------------------------------------------------------- */
typedef struct item_s {
  blk_t b;
  unsigned action;
  size_t newsize;
} item_t;

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_work = PTHREAD_COND_INITIALIZER; /* worker waits */
static pthread_cond_t q_done = PTHREAD_COND_INITIALIZER; /* main waits */
static item_t q_items[QCAP];                                /* under q_mu */
static unsigned q_head, q_count;                            /* under q_mu */
static blk_t r_items[RCAP];                                 /* under q_mu */
static unsigned r_count;                                    /* under q_mu */
static unsigned long sync_req, sync_done;                   /* under q_mu */
static bool sync_final;                                     /* under q_mu */
static blk_t stash[STASH];                                  /* worker only */

static void give_back(blk_t *b) {
  pthread_mutex_lock(&q_mu);
  if (r_count < RCAP) {
    r_items[r_count++] = *b;
    b->p = NULL;
  }
  pthread_mutex_unlock(&q_mu);
  if (b->p != NULL) release(b, 0);
}

static void worker_do(item_t *it) {
  blk_t *b = &it->b;
  check_blk(b, "worker received");
  switch (it->action % 7) {
    case 0: release(b, 0); break;
    case 1: release(b, 1); break;
    case 2: /* realloc here, hand the result back to main */
      do_realloc(b, it->newsize);
      if (b->p) give_back(b);
      break;
    case 3: { /* keep it a while */
      unsigned k = (unsigned)(b->id % STASH);
      if (stash[k].p) release(&stash[k], 2);
      stash[k] = *b;
      break;
    }
    case 4: { /* replace by a block of this thread's heap */
      blk_t nb = {0};
      release(b, 0);
      if (charge(it->newsize)) {
        errno = 0;
        void *p = lz_malloc(it->newsize);
        if (p == NULL) {
          int e = errno;
          uncharge(it->newsize);
          alloc_failed("worker malloc", it->newsize, e);
        } else {
          adopt_new(&nb, p, it->newsize, 16, "worker malloc");
          give_back(&nb);
        }
      }
      break;
    }
    case 5: /* shrink (or grow) then free here */
      do_realloc(b, it->newsize / 2 + 1);
      release(b, 0);
      break;
    default: /* straight back, untouched */
      give_back(b);
      break;
  }
}

static void *worker_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&q_mu);
  for (;;) {
    while (q_count == 0 && sync_done == sync_req) pthread_cond_wait(&q_work, &q_mu);
    if (q_count > 0) {
      item_t it = q_items[q_head];
      q_head = (q_head + 1) % QCAP;
      q_count--;
      pthread_mutex_unlock(&q_mu);
      worker_do(&it);
      pthread_mutex_lock(&q_mu);
      pthread_cond_broadcast(&q_done);
      continue;
    }
    /* Queue empty and a sync is requested. */
    if (sync_final) {
      pthread_mutex_unlock(&q_mu);
      for (unsigned k = 0; k < STASH; k++) release(&stash[k], k);
      pthread_mutex_lock(&q_mu);
    }
    sync_done = sync_req;
    pthread_cond_broadcast(&q_done);
  }
  return NULL;
}

/* Hands a block to the worker; false if the queue is full. */
static bool hand_off(blk_t *b, unsigned action, size_t newsize) {
  bool ok = false;
  pthread_mutex_lock(&q_mu);
  if (q_count < QCAP) {
    item_t *it = &q_items[(q_head + q_count) % QCAP];
    it->b = *b;
    it->action = action;
    it->newsize = newsize;
    q_count++;
    ok = true;
    pthread_cond_signal(&q_work);
  }
  pthread_mutex_unlock(&q_mu);
  if (ok) b->p = NULL;
  return ok;
}

/* Waits until the worker has drained its queue (final: and its stash). */
static void worker_sync(bool final) {
  pthread_mutex_lock(&q_mu);
  sync_final = final;
  unsigned long want = ++sync_req;
  pthread_cond_signal(&q_work);
  while (sync_done < want) pthread_cond_wait(&q_done, &q_mu);
  pthread_mutex_unlock(&q_mu);
}

/* Takes one block returned by the worker, if any. */
static bool take_back(blk_t *out) {
  bool ok = false;
  pthread_mutex_lock(&q_mu);
  if (r_count > 0) {
    *out = r_items[--r_count];
    ok = true;
  }
  pthread_mutex_unlock(&q_mu);
  return ok;
}

/* ---------------------------------------------------------------------------
 * Short-lived thread
 * ------------------------------------------------------------------------- */
typedef struct eph_s {
  blk_t in[2];
  size_t sizes[4];
  blk_t out[4];
} eph_t;

static void *eph_main(void *arg) {
  eph_t *e = arg;
  for (int i = 0; i < 4; i++) {
    e->out[i].p = NULL;
    size_t sz = e->sizes[i];
    if (!charge(sz)) continue;
    errno = 0;
    void *p = (i & 1) ? lz_calloc(1, sz) : lz_malloc(sz);
    if (p == NULL) {
      int er = errno;
      uncharge(sz);
      alloc_failed("eph alloc", sz, er);
      continue;
    }
    size_t nz = (i & 1) ? first_nonzero(p, sz) : SIZE_MAX;
    if (nz != SIZE_MAX) die("eph calloc(%zu) = %p: byte %zu not zero", sz, p, nz);
    adopt_new(&e->out[i], p, sz, 16, "eph alloc");
  }
  for (int i = 0; i < 2; i++) release(&e->in[i], i);
  /* A block of ours freed here too, so the orphan has free and live blocks. */
  release(&e->out[3], 0);
  return NULL;
}

/* ---------------------------------------------------------------------------
 * The operations
 * ------------------------------------------------------------------------- */
enum {
  OP_MALLOC, OP_MALLOC2, OP_MALLOC3, OP_CALLOC, OP_REALLOC, OP_REALLOC2, OP_ALIGNED_ALLOC, OP_POSIX_MEMALIGN,
  OP_MEMALIGN, OP_VALLOC, OP_FREE, OP_FREE_SIZED, OP_FREE_ALIGNED_SIZED, OP_USABLE, OP_HANDOFF, OP_HANDOFF2,
  OP_TAKE_BACK, OP_REALLOCARRAY, OP_TRIM, OP_FAULTS_ON, OP_FAULTS_OFF, OP_SYNC, OP_ABSURD, OP_EPHEMERAL,
  OP_COUNT
};

static blk_t slots[SLOTS];
static bool faults_on;

static void set_faults(bool on, long after, long every) {
  if (on) {
    atomic_store(&faults_armed, 1);
    os_fault_set(after, every);
  } else {
    os_fault_set(-1, 1);
  }
  faults_on = on;
}

/* Allocation through one of the entry points into slot b. */
static void op_alloc(rd_t *r, blk_t *b, unsigned op) {
  release(b, 0);
  size_t size = get_size(r);
  size_t align = 16, req_align = 0;
  const char *what = "malloc";
  unsigned sub = 0;
  if (op == OP_ALIGNED_ALLOC || op == OP_POSIX_MEMALIGN || op == OP_MEMALIGN) {
    req_align = get_align(r);
    sub = get8(r);
    if (op != OP_POSIX_MEMALIGN && (sub & 1)) req_align += sub >> 1; /* not a power of two: rounded up */
    align = pow2_ceil(req_align);
    if (align < 16) align = 16;
  }
  if (op == OP_VALLOC) {
    sub = get8(r);
    align = 4096;
  }
  if (!charge(size)) return;
  void *p = NULL;
  int err = 0;
  errno = 0;
  switch (op) {
    case OP_CALLOC: {
      what = "calloc";
      size_t n = 1 + get8(r) % 16;
      size_t el = size / n;
      uncharge(size);
      size = n * el;
      charge(size);
      p = lz_calloc(n, el);
      err = errno;
      size_t nz = p ? first_nonzero(p, size) : SIZE_MAX;
      if (nz != SIZE_MAX) die("calloc(%zu, %zu) = %p: byte %zu not zero", n, el, p, nz);
      break;
    }
    case OP_ALIGNED_ALLOC: what = "aligned_alloc"; p = lz_aligned_alloc(req_align, size); err = errno; break;
    case OP_MEMALIGN: what = "memalign"; p = lz_memalign(req_align, size); err = errno; break;
    case OP_POSIX_MEMALIGN: {
      what = "posix_memalign";
      void *out = (void *)&slots;
      int e0 = errno = 4242;
      if (sub & 2) req_align = (req_align & ~(size_t)7) | 4; /* not a multiple of sizeof(void *) */
      int rc = lz_posix_memalign(&out, req_align, size);
      bool valid = req_align % sizeof(void *) == 0 && (req_align & (req_align - 1)) == 0;
      /* glibc: EINVAL and success leave errno alone, ENOMEM sets it. */
      if (errno != (rc == ENOMEM ? ENOMEM : e0)) die("posix_memalign(%zu) = %d changed errno to %d", req_align, rc, errno);
      if (!valid) {
        if (rc != EINVAL || out != (void *)&slots) die("posix_memalign(%zu): rc %d, expected EINVAL", req_align, rc);
        uncharge(size);
        return;
      }
      if (rc != 0) {
        if (out != (void *)&slots) die("posix_memalign failed but wrote *out");
        uncharge(size);
        alloc_failed(what, size, rc);
        return;
      }
      p = out;
      break;
    }
    case OP_VALLOC:
      if (sub & 1) {
        what = "pvalloc";
        p = lz_pvalloc(size);
        err = errno;
        size_t rounded = size == 0 ? 4096 : (size + 4095) & ~(size_t)4095;
        if (p && lz_usable_size(p) < rounded) die("pvalloc(%zu): usable %zu < %zu", size, lz_usable_size(p), rounded);
      } else {
        what = "valloc";
        p = lz_valloc(size);
        err = errno;
      }
      break;
    default: p = lz_malloc(size); err = errno; break;
  }
  if (p == NULL) {
    uncharge(size);
    alloc_failed(what, size, err);
    return;
  }
  if (err != 0) die("%s(%zu) succeeded but set errno to %d", what, size, err);
  adopt_new(b, p, size, align, what);
}

static void run_op(rd_t *r, unsigned op) {
  blk_t *b = &slots[get8(r) % SLOTS];
  switch (op) {
    case OP_MALLOC: case OP_MALLOC2: case OP_MALLOC3: case OP_CALLOC: case OP_ALIGNED_ALLOC:
    case OP_POSIX_MEMALIGN: case OP_MEMALIGN: case OP_VALLOC:
      op_alloc(r, b, op);
      break;
    case OP_REALLOC: case OP_REALLOC2: {
      size_t size = get_size(r);
      if (b->p) {
        do_realloc(b, size);
      } else if (charge(size)) {
        errno = 0;
        void *p = lz_realloc(NULL, size);
        if (p == NULL) { int e = errno; uncharge(size); alloc_failed("realloc(NULL)", size, e); }
        else adopt_new(b, p, size, 16, "realloc(NULL)");
      }
      break;
    }
    case OP_REALLOCARRAY: {
      unsigned n = get8(r);
      size_t el = get_size(r);
      if (n == 255) { /* overflow: refused, block intact */
        if (b->p == NULL) break;
        errno = 0;
        void *q = lz_reallocarray(b->p, SIZE_MAX / 2, 3);
        if (q != NULL || errno != ENOMEM) die("reallocarray overflow: %p errno %d", q, errno);
        check_blk(b, "after reallocarray overflow");
        break;
      }
      n = n % 8 + 1;
      el /= n;
      if (b->p == NULL || n * el == 0) break;
      check_blk(b, "before reallocarray");
      size_t size = n * el, old = b->size;
      if (size > old && !charge(size - old)) break;
      errno = 0;
      void *q = lz_reallocarray(b->p, n, el);
      if (q == NULL) {
        int e = errno;
        if (size > old) uncharge(size - old);
        alloc_failed("reallocarray", size, e);
        check_blk(b, "after failed reallocarray");
        break;
      }
      size_t keep = old < size ? old : size;
      size_t bad = check_range(q, 0, keep, b->id);
      if (bad != SIZE_MAX) die("reallocarray -> %p: contents lost at offset %zu", q, bad);
      if (size < old) uncharge(old - size);
      b->p = q;
      b->size = size;
      b->usable = lz_usable_size(q);
      if (b->usable < size) die("reallocarray(%zu): usable %zu", size, b->usable);
      fill_range(b->p, keep, b->usable, b->id);
      break;
    }
    case OP_FREE: release(b, 0); break;
    case OP_FREE_SIZED: release(b, 1); break;
    case OP_FREE_ALIGNED_SIZED: release(b, 2); break;
    case OP_USABLE:
      if (b->p) check_blk(b, "usable_size");
      if (lz_usable_size(NULL) != 0) die("usable_size(NULL) != 0");
      break;
    case OP_HANDOFF: case OP_HANDOFF2: {
      unsigned action = get8(r);
      size_t newsize = get_size(r);
      if (b->p) {
        check_blk(b, "before handoff");
        if (!hand_off(b, action, newsize)) release(b, 0);
      }
      break;
    }
    case OP_TAKE_BACK: {
      unsigned n = 1 + get8(r) % 4;
      for (unsigned k = 0; k < n; k++) {
        blk_t *dst = &slots[(b - slots + k) % SLOTS];
        blk_t got;
        if (!take_back(&got)) break;
        check_blk(&got, "taken back");
        release(dst, 0);
        *dst = got;
      }
      break;
    }
    case OP_TRIM:
      if (get8(r) < 32) {
        int rc = lz_trim(0);
        if (rc != 0 && rc != 1) die("lz_trim returned %d", rc);
      }
      break;
    case OP_FAULTS_ON: {
      unsigned a = get8(r);
      set_faults(true, a % 8, 1 + (a >> 3) % 4);
      break;
    }
    case OP_FAULTS_OFF: set_faults(false, 0, 0); break;
    case OP_SYNC: worker_sync(false); break;
    case OP_ABSURD: {
      unsigned k = get8(r);
      static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 4096, PTRDIFF_MAX, (size_t)PTRDIFF_MAX + 1,
                                    (size_t)1 << 62, SIZE_MAX - 16};
      size_t h = huge[k % (sizeof huge / sizeof huge[0])];
      errno = 0;
      void *q = (k & 0x10) ? lz_calloc(h, 1) : (k & 0x20) ? lz_memalign(64, h) : lz_malloc(h);
      if (q != NULL || errno != ENOMEM) die("absurd allocation of %zu: %p errno %d", h, q, errno);
      if (b->p && (k & 0x40)) {
        errno = 0;
        q = lz_realloc(b->p, h);
        if (q != NULL || errno != ENOMEM) die("absurd realloc to %zu: %p errno %d", h, q, errno);
        check_blk(b, "after absurd realloc");
      }
      break;
    }
    case OP_EPHEMERAL: {
      eph_t e;
      memset(&e, 0, sizeof e);
      e.in[0] = *b;
      b->p = NULL;
      blk_t *b2 = &slots[get8(r) % SLOTS];
      e.in[1] = *b2;
      b2->p = NULL;
      for (int i = 0; i < 4; i++) e.sizes[i] = get_size(r);
      pthread_t t;
      if (pthread_create(&t, NULL, eph_main, &e) != 0) die("pthread_create failed");
      pthread_join(t, NULL);
      for (int i = 0; i < 3; i++) {
        if (e.out[i].p == NULL) continue;
        blk_t *dst = &slots[(b - slots + 7 * i + 1) % SLOTS];
        release(dst, i);
        *dst = e.out[i];
      }
      break;
    }
    default: break;
  }
}

static pthread_t worker;
static int selftest; /* FUZZ_OPS_SELFTEST=1: corrupt one byte per input (must be caught) */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (pthread_create(&worker, NULL, worker_main, NULL) != 0) {
    fprintf(stderr, "fuzz_ops: cannot start the worker thread\n");
    abort();
  }
  const char *st = getenv("FUZZ_OPS_SELFTEST");
  selftest = st != NULL && *st == '1';
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  rd_t r = {data, size, 0};
  atomic_store(&faults_armed, 0);
  atomic_store(&next_id, 1);
  for (int n = 0; n < MAX_OPS && r.i < r.n; n++) {
    atomic_store(&cur_op, n);
    run_op(&r, get8(&r) % OP_COUNT);
    /* The heap validator over our heap and any orphan (it aborts with the
     * broken invariant's tag), while the worker keeps its own heap busy. */
    if (n % VALIDATE_EVERY == VALIDATE_EVERY - 1) lz_heap_validate();
  }
  atomic_store(&cur_op, -1);
  if (selftest)
    for (unsigned k = 0; k < SLOTS; k++)
      if (slots[k].p && slots[k].usable) { slots[k].p[slots[k].usable - 1] ^= 1; break; }
  /* Free everything: faults off, drain the worker, then our own. */
  if (faults_on) set_faults(false, 0, 0);
  worker_sync(true);
  blk_t got;
  while (take_back(&got)) release(&got, 0);
  for (unsigned k = 0; k < SLOTS; k++) release(&slots[k], k);
  lz_heap_validate();
  size_t left = atomic_load(&live_bytes);
  if (left != 0) die("%zu bytes still accounted live after freeing everything", left);
  /* Everything is free: a fresh allocation of each engine must work. */
  static const size_t probe[] = {24, 3000, 200 * 1024, 3 * 1024 * 1024};
  for (unsigned k = 0; k < 4; k++) {
    blk_t pb = {0};
    void *p = lz_malloc(probe[k]);
    if (p == NULL) die("malloc(%zu) failed after the input", probe[k]);
    charge(probe[k]);
    adopt_new(&pb, p, probe[k], 16, "probe malloc");
    release(&pb, 0);
  }
  return 0;
}
