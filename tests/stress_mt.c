/* stress_mt: multithreaded stress of the lz_ API (PREFIXED; runs under
 * ASan/UBSan and TSan too).
 *
 * N worker threads (LZ_STRESS_THREADS, default 4) each keep a few dozen live
 * blocks and randomly:
 *   - allocate (lz_malloc / lz_calloc / lz_aligned_alloc / lz_memalign /
 *     lz_posix_memalign / lz_realloc(NULL)), sizes mostly <= 32 KiB, some
 *     32 KiB..1 MiB, a few 1..4 MiB;
 *   - hand a block to another thread through a shared mutex-protected queue;
 *   - take a block from the queue and free it (cross-thread free) or
 *     lz_realloc it (migration of a block owned by another thread's heap);
 *   - lz_realloc or free their own blocks.
 * Workers exit after a fixed number of operations, handing their live blocks
 * to the queue, and are replaced (thread churn), so blocks outlive the thread
 * that allocated them. Every block is filled with a pattern derived from its
 * id and fully checked before every free and realloc.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "lzmalloc.h"
#include "testutil.h"

typedef struct blk_s {
  void *p;
  size_t n;       /* requested size */
  size_t align;   /* alignment requested (0: none / after realloc) */
  uint64_t id;    /* pattern seed */
} blk_t;

/* ---- shared handoff queue (ring buffer under a mutex) ----------------- */

#define QCAP 512
static pthread_mutex_t g_qmu = PTHREAD_MUTEX_INITIALIZER;
static blk_t g_q[QCAP];
static size_t g_qhead, g_qlen;

static int q_push(const blk_t *b) {
  int ok = 0;
  pthread_mutex_lock(&g_qmu);
  if (g_qlen < QCAP) {
    g_q[(g_qhead + g_qlen) % QCAP] = *b;
    g_qlen++;
    ok = 1;
  }
  pthread_mutex_unlock(&g_qmu);
  return ok;
}

static int q_pop(blk_t *b) {
  int ok = 0;
  pthread_mutex_lock(&g_qmu);
  if (g_qlen > 0) {
    *b = g_q[g_qhead];
    g_qhead = (g_qhead + 1) % QCAP;
    g_qlen--;
    ok = 1;
  }
  pthread_mutex_unlock(&g_qmu);
  return ok;
}

/* ---- counters ----------------------------------------------------------- */

static atomic_uint_fast64_t g_next_id = 1;
static atomic_uint_fast64_t g_allocs, g_frees, g_remote_frees, g_migrations, g_reallocs;

/* ---- block operations --------------------------------------------------- */

static size_t pick_size(tu_rng_t *r) {
  uint64_t k = tu_rng_below(r, 1000);
  if (k < 930) return (size_t)tu_rng_logrange(r, 1, 32768);
  if (k < 995) return (size_t)tu_rng_logrange(r, 32769, TU_MiB);
  return (size_t)tu_rng_logrange(r, TU_MiB + 1, 4 * TU_MiB);
}

static void verify(const blk_t *b, const char *when) {
  size_t bad = tu_pattern_check(b->p, b->n, b->id);
  CHECKF(bad == SIZE_MAX,
         "%s: block id %llu at %p (size %zu, align %zu) corrupted at offset %zu "
         "(got 0x%02x, want 0x%02x)",
         when, (unsigned long long)b->id, b->p, b->n, b->align, bad,
         ((const unsigned char *)b->p)[bad], tu_pat_byte(b->id, bad));
  CHECKF(lz_usable_size(b->p) >= b->n, "%s: block id %llu usable %zu < %zu", when,
         (unsigned long long)b->id, lz_usable_size(b->p), b->n);
}

static void blk_free(blk_t *b, tu_rng_t *r) {
  if (!b->p) return;
  verify(b, "before free");
  switch (tu_rng_below(r, 3)) {
  case 0: lz_free(b->p); break;
  case 1: lz_free_sized(b->p, b->n); break;
  default:
    if (b->align)
      lz_free_aligned_sized(b->p, b->align, b->n);
    else
      lz_free(b->p);
    break;
  }
  b->p = NULL;
  atomic_fetch_add_explicit(&g_frees, 1, memory_order_relaxed);
}

static void blk_alloc(blk_t *b, tu_rng_t *r) {
  size_t n = pick_size(r);
  uint64_t k = tu_rng_below(r, 100);
  void *p = NULL;
  size_t align = 0;
  if (k < 70) {
    p = lz_malloc(n);
  } else if (k < 80) {
    p = lz_calloc(1, n);
    CHECKF(p && tu_all_zero(p, n), "lz_calloc(1, %zu) not zeroed", n);
  } else if (k < 90) {
    align = (size_t)16 << tu_rng_below(r, 9); /* 16 .. 4096 */
    p = lz_aligned_alloc(align, n);
  } else if (k < 94) {
    align = (size_t)16 << tu_rng_below(r, 9);
    p = lz_memalign(align, n);
  } else if (k < 97) {
    align = (size_t)16 << tu_rng_below(r, 9);
    int rc = lz_posix_memalign(&p, align, n);
    CHECKF(rc == 0, "lz_posix_memalign(%zu, %zu) = %d", align, n, rc);
  } else {
    p = lz_realloc(NULL, n);
  }
  CHECKF(p != NULL, "allocation of %zu bytes failed (kind %llu)", n, (unsigned long long)k);
  CHECKF(((uintptr_t)p & 15) == 0, "block %p of size %zu not 16-aligned", p, n);
  if (align) CHECKF(((uintptr_t)p & (align - 1)) == 0, "block %p not %zu-aligned", p, align);
  CHECKF(lz_usable_size(p) >= n, "usable %zu < %zu", lz_usable_size(p), n);
  b->p = p;
  b->n = n;
  b->align = align;
  b->id = atomic_fetch_add_explicit(&g_next_id, 1, memory_order_relaxed);
  tu_pattern_fill(p, n, b->id);
  atomic_fetch_add_explicit(&g_allocs, 1, memory_order_relaxed);
}

static void blk_realloc(blk_t *b, tu_rng_t *r) {
  verify(b, "before realloc");
  size_t n;
  if (tu_rng_below(r, 4) == 0)
    n = b->n + (size_t)tu_rng_below(r, 256) - (b->n > 128 ? 128 : 0); /* small change */
  else
    n = pick_size(r);
  if (n == 0) n = 1;
  void *q = lz_realloc(b->p, n);
  CHECKF(q != NULL, "lz_realloc(%zu -> %zu) = NULL", b->n, n);
  CHECKF(((uintptr_t)q & 15) == 0, "lz_realloc result %p not 16-aligned", q);
  size_t keep = b->n < n ? b->n : n;
  size_t bad = tu_pattern_check(q, keep, b->id);
  CHECKF(bad == SIZE_MAX, "lz_realloc(%zu -> %zu) of block id %llu lost contents at %zu", b->n,
         n, (unsigned long long)b->id, bad);
  if (n > b->n) tu_pattern_fill_range(q, b->n, n, b->id);
  b->p = q;
  b->n = n;
  b->align = 0;
  atomic_fetch_add_explicit(&g_reallocs, 1, memory_order_relaxed);
}

/* ---- workers ------------------------------------------------------------ */

#define LOCAL 48

typedef struct worker_s {
  pthread_t th;
  uint64_t seed;
  size_t ops;
  int running;
} worker_t;

static void *worker_main(void *arg) {
  worker_t *w = (worker_t *)arg;
  tu_rng_t r;
  tu_rng_seed(&r, w->seed);
  blk_t slots[LOCAL];
  for (int i = 0; i < LOCAL; i++) slots[i].p = NULL;

  for (size_t op = 0; op < w->ops; op++) {
    uint64_t k = tu_rng_below(&r, 100);
    blk_t *s = &slots[tu_rng_below(&r, LOCAL)];
    if (k < 35) {
      blk_free(s, &r);
      blk_alloc(s, &r);
    } else if (k < 55) {
      /* Hand a block to whoever pops it. */
      if (!s->p) blk_alloc(s, &r);
      if (q_push(s)) s->p = NULL;
    } else if (k < 77) {
      blk_t b;
      if (q_pop(&b)) {
        verify(&b, "after handoff");
        if (tu_rng_below(&r, 2) == 0) {
          blk_free(&b, &r); /* usually a remote free */
          atomic_fetch_add_explicit(&g_remote_frees, 1, memory_order_relaxed);
        } else {
          blk_realloc(&b, &r); /* migration: realloc of another heap's block */
          atomic_fetch_add_explicit(&g_migrations, 1, memory_order_relaxed);
          blk_free(s, &r);
          *s = b;
        }
      }
    } else if (k < 90) {
      if (s->p)
        blk_realloc(s, &r);
      else
        blk_alloc(s, &r);
    } else {
      blk_free(s, &r);
    }
  }
  /* Exit with blocks still alive: hand them over; free what doesn't fit. */
  for (int i = 0; i < LOCAL; i++) {
    if (!slots[i].p) continue;
    verify(&slots[i], "at thread exit");
    if (!q_push(&slots[i])) blk_free(&slots[i], &r);
  }
  return NULL;
}

static size_t env_size(const char *name, size_t def) {
  const char *e = getenv(name);
  if (!e || !*e) return def;
  long v = strtol(e, NULL, 10);
  return v > 0 ? (size_t)v : def;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  double t0 = tu_now();
  size_t nthreads = env_size("LZ_STRESS_THREADS", 4);
  if (nthreads > 256) nthreads = 256;
  /* Sanitizer builds do the same work in fewer operations per thread. */
  size_t base_ops = TU_TSAN ? 1500 : TU_SANITIZED ? 3000 : 6000;
#ifndef __OPTIMIZE__
  base_ops /= 2; /* -O0 (Debug builds): the pattern checks dominate */
#endif
  size_t ops = tu_scaled(base_ops, 50);
  lz_stats_t st0;
  lz_stats_get(&st0);
  size_t total_workers = nthreads * tu_scaled(6, 2); /* thread churn */

  worker_t *ws = calloc(nthreads, sizeof(worker_t));
  CHECK(ws != NULL);
  size_t spawned = 0;
  for (size_t i = 0; i < nthreads; i++) {
    ws[i].seed = 0x5eed0000 + spawned;
    ws[i].ops = ops;
    CHECK(pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) == 0);
    ws[i].running = 1;
    spawned++;
  }
  size_t joined = 0;
  for (size_t slot = 0; joined < total_workers; slot = (slot + 1) % nthreads) {
    if (!ws[slot].running) continue;
    CHECK(pthread_join(ws[slot].th, NULL) == 0);
    ws[slot].running = 0;
    joined++;
    if (spawned < total_workers) {
      ws[slot].seed = 0x5eed0000 + spawned;
      CHECK(pthread_create(&ws[slot].th, NULL, worker_main, &ws[slot]) == 0);
      ws[slot].running = 1;
      spawned++;
    }
  }
  free(ws);

  /* Everything left in the queue outlived its allocating thread. */
  tu_rng_t r;
  tu_rng_seed(&r, 99);
  size_t leftover = 0;
  blk_t b;
  while (q_pop(&b)) {
    verify(&b, "final drain");
    blk_free(&b, &r);
    leftover++;
  }
  lz_trim(0);
  lz_stats_t st;
  lz_stats_get(&st);
  printf("stress_mt: %zu threads x %zu ops, %zu workers total; allocs %llu frees %llu "
         "remote frees %llu migrations %llu reallocs %llu, %zu drained at end; %.2f s\n",
         nthreads, ops, total_workers, (unsigned long long)g_allocs,
         (unsigned long long)g_frees, (unsigned long long)g_remote_frees,
         (unsigned long long)g_migrations, (unsigned long long)g_reallocs, leftover,
         tu_now() - t0);
  printf("stats: in_use %zu mapped %zu remote_frees %llu heaps %llu\n", st.in_use, st.mapped,
         (unsigned long long)st.remote_frees, (unsigned long long)st.heaps);
  CHECK(atomic_load(&g_allocs) == atomic_load(&g_frees));
  /* Every block was freed and trim collected the remote frees in transit:
   * the bytes in use are exactly what they were before the threads. */
  CHECKF(st.in_use == st0.in_use, "in_use %zu bytes after freeing everything, %zu before", st.in_use,
         st0.in_use);
  CHECKF(st.large_in_use == st0.large_in_use, "large_in_use %zu, %zu before", st.large_in_use, st0.large_in_use);
  printf("stress_mt: passed\n");
  return 0;
}
