/* thread_exit: 10,000 short-lived threads (x LZ_TEST_SCALE) that allocate a
 * few blocks of mixed sizes, leave them live (handed to main through an
 * array) and exit. Threads are created in waves of 2..8 alive at once. Main
 * then frees everything.
 *
 * Asserts that per-thread state is reclaimed or reused rather than leaked:
 *   - peak RSS (VmHWM) stays under 512 MiB (live data is ~100 MiB, a third
 *     of it large blocks of which only the edges are touched);
 *   - after freeing everything and lz_trim(0), lz_stats_get().in_use is
 *     exactly what it was before the threads;
 *   - the number of thread heaps (live + pooled) stays far below the number
 *     of threads created.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "lzmalloc.h"
#include "testutil.h"

#define PER_THREAD 4
#define EDGE 64 /* bytes checked at each end of a block */
/* TSan adds shadow memory for everything the test touches. */
#define HWM_LIMIT ((size_t)(TU_TSAN ? 1024 : 512) * TU_MiB)
#define HEAPS_LIMIT 1000

typedef struct {
  void *p;
  size_t n;
} blk_t;

typedef struct {
  size_t idx;
  blk_t *out; /* PER_THREAD entries */
} targ_t;

static void *thread_main(void *arg) {
  targ_t *a = (targ_t *)arg;
  tu_rng_t r;
  tu_rng_seed(&r, a->idx);
  for (int k = 0; k < PER_THREAD; k++) {
    size_t n;
    switch (k) {
    case 0: n = (size_t)tu_rng_range(&r, 1, 256); break;          /* small */
    case 1: n = (size_t)tu_rng_range(&r, 257, 4096); break;       /* small */
    case 2: /* medium for every 20th thread */
      n = (a->idx % 20 == 0) ? (size_t)tu_rng_range(&r, 32769, 100000)
                             : (size_t)tu_rng_range(&r, 1, 1024);
      break;
    default: /* large for every 500th thread, else up to 32 KiB for some */
      n = (a->idx % 500 == 7)  ? (size_t)tu_rng_range(&r, TU_MiB + 1, 2 * TU_MiB)
          : (a->idx % 8 == 3) ? (size_t)tu_rng_range(&r, 4097, 32768)
                              : (size_t)tu_rng_range(&r, 16, 2048);
      break;
    }
    void *p = (k == 1 && (a->idx & 1)) ? lz_calloc(1, n) : lz_malloc(n);
    CHECKF(p != NULL, "thread %zu: allocation of %zu failed", a->idx, n);
    tu_pattern_fill_edges(p, n, EDGE, a->idx * PER_THREAD + (size_t)k);
    a->out[k].p = p;
    a->out[k].n = n;
  }
  /* Some churn that leaves thread-cached free blocks behind at exit. */
  void *tmp[16];
  for (int i = 0; i < 16; i++) {
    tmp[i] = lz_malloc((size_t)tu_rng_range(&r, 8, 2048));
    CHECK(tmp[i] != NULL);
  }
  for (int i = 0; i < 16; i++) lz_free(tmp[i]);
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  double t0 = tu_now();
  size_t nthreads = tu_scaled(10000, 10);
  blk_t *blocks = calloc(nthreads * PER_THREAD, sizeof(blk_t));
  targ_t *args = calloc(nthreads, sizeof(targ_t));
  CHECK(blocks != NULL && args != NULL);
  size_t hwm0 = tu_hwm_bytes();
  lz_stats_t st0;
  lz_stats_get(&st0);

  tu_rng_t r;
  tu_rng_seed(&r, 2024);
  pthread_attr_t attr;
  CHECK(pthread_attr_init(&attr) == 0);
  CHECK(pthread_attr_setstacksize(&attr, 256 * 1024) == 0);
  size_t started = 0, max_heaps = 0;
  while (started < nthreads) {
    size_t wave = (size_t)tu_rng_range(&r, 2, 8);
    if (wave > nthreads - started) wave = nthreads - started;
    pthread_t th[8];
    for (size_t i = 0; i < wave; i++) {
      targ_t *a = &args[started + i];
      a->idx = started + i;
      a->out = &blocks[(started + i) * PER_THREAD];
      int rc = pthread_create(&th[i], &attr, thread_main, a);
      CHECKF(rc == 0, "pthread_create #%zu failed: %d", started + i, rc);
    }
    for (size_t i = 0; i < wave; i++) CHECK(pthread_join(th[i], NULL) == 0);
    started += wave;
    if ((started & 1023) < wave) {
      lz_stats_t st;
      lz_stats_get(&st);
      if (st.heaps > max_heaps) max_heaps = st.heaps;
    }
  }
  pthread_attr_destroy(&attr);
  double t1 = tu_now();
  size_t hwm1 = tu_hwm_bytes();
  lz_stats_t st1;
  lz_stats_get(&st1);
  if (st1.heaps > max_heaps) max_heaps = st1.heaps;

  /* All blocks are intact, then freed by main (remote frees to dead heaps). */
  size_t live = 0;
  for (size_t i = 0; i < nthreads * PER_THREAD; i++) {
    blk_t *b = &blocks[i];
    CHECKF(b->p != NULL, "block %zu missing", i);
    size_t bad = tu_pattern_check_edges(b->p, b->n, EDGE, i);
    CHECKF(bad == SIZE_MAX, "block %zu (thread %zu, size %zu) corrupted at %zu", i,
           i / PER_THREAD, b->n, bad);
    CHECK(lz_usable_size(b->p) >= b->n);
    live += b->n;
  }
  for (size_t i = 0; i < nthreads * PER_THREAD; i++) {
    if (i & 1)
      lz_free_sized(blocks[i].p, blocks[i].n);
    else
      lz_free(blocks[i].p);
  }
  free(blocks);
  free(args);
  lz_trim(0);
  lz_stats_t st2;
  lz_stats_get(&st2);
  size_t hwm2 = tu_hwm_bytes();

  printf("thread_exit: %zu threads in %.2f s (%.1f us/thread); live data %.1f MiB\n", nthreads,
         t1 - t0, (t1 - t0) * 1e6 / (double)nthreads, (double)live / (double)TU_MiB);
  printf("VmHWM: start %.1f MiB, after threads %.1f MiB, end %.1f MiB (limit %.0f MiB)\n",
         (double)hwm0 / (double)TU_MiB, (double)hwm1 / (double)TU_MiB,
         (double)hwm2 / (double)TU_MiB, (double)HWM_LIMIT / (double)TU_MiB);
  printf("stats: in_use %zu -> %zu -> %zu; mapped %zu; heaps max %zu, end %llu\n", st0.in_use,
         st1.in_use, st2.in_use, st2.mapped, max_heaps, (unsigned long long)st2.heaps);

  CHECKF(hwm2 < HWM_LIMIT, "peak RSS %zu bytes >= %zu: thread heaps leaked?", hwm2,
         (size_t)HWM_LIMIT);
  CHECKF(st2.in_use == st0.in_use, "in_use %zu bytes after freeing everything, %zu before", st2.in_use,
         st0.in_use);
  CHECKF(max_heaps < HEAPS_LIMIT, "%zu thread heaps for at most 8 live threads", max_heaps);
  printf("thread_exit: passed\n");
  return 0;
}
