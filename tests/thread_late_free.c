/* thread_late_free: allocations and frees after a thread's own teardown
 * leave nothing behind (PREFIXED).
 *
 * 100,000 threads (x LZ_TEST_SCALE; fewer under sanitizers; as many as
 * 90 s allow on a loaded machine, at least 768), 8 at a time.
 * Each allocates blocks of every size range, then exits. A pthread key made
 * after lzmalloc's has a destructor that runs after lzmalloc's in every
 * round of destructor calls, re-arms itself so it is called in every round
 * glibc makes (PTHREAD_DESTRUCTOR_ITERATIONS), and each time frees some of
 * the thread's blocks and some of the main thread's, and allocates and
 * frees more. The last round runs after lzmalloc's last call: a heap made
 * or adopted there would never be given back. Checked: the number of heaps
 * and the resident size stay flat between the first tenth of the threads
 * and the end, and after lz_trim the bytes in use are back to what they
 * were before the threads.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "lzmalloc.h"
#include "testutil.h"

#define WAVE 8
#define LOOP_BUDGET_S 60.0 /* the threads' work grows with the machine's load (see main) */
#define NBLK 12

static pthread_key_t g_key;
static _Atomic(void *) g_shared[4096]; /* main's blocks, freed by the threads */

typedef struct {
  void *blk[NBLK];
  int round;
  uint64_t seed;
} payload_t;

static size_t size_of(int i) {
  static const size_t sizes[] = {16, 100, 1000, 5000, 40000, 300000};
  return sizes[i % 6];
}

static void late_dtor(void *v) {
  payload_t *pl = v;
  pl->round++;
  /* A third of the thread's own blocks per round, and one of main's. */
  for (int i = 0; i < NBLK; i++) {
    if (pl->blk[i] == NULL || i % 3 != (pl->round - 1) % 3) continue;
    CHECK(((unsigned char *)pl->blk[i])[0] == (unsigned char)i);
    lz_free(pl->blk[i]);
    pl->blk[i] = NULL;
  }
  lz_free(atomic_exchange(&g_shared[pl->seed % 4096], NULL));
  for (int i = 0; i < 6; i++) {
    void *p = lz_malloc(size_of(i + pl->round));
    CHECK(p != NULL);
    memset(p, 5, 8);
    lz_free(p);
  }
  if (pl->round < PTHREAD_DESTRUCTOR_ITERATIONS) {
    CHECK(pthread_setspecific(g_key, pl) == 0);
    return;
  }
  for (int i = 0; i < NBLK; i++) lz_free(pl->blk[i]);
  lz_free(pl);
}

static void *thread_main(void *arg) {
  payload_t *pl = lz_calloc(1, sizeof *pl);
  CHECK(pl != NULL);
  pl->seed = (uint64_t)(uintptr_t)arg;
  for (int i = 0; i < NBLK; i++) {
    pl->blk[i] = lz_malloc(size_of(i));
    CHECK(pl->blk[i] != NULL);
    memset(pl->blk[i], i, 8);
  }
  CHECK(pthread_setspecific(g_key, pl) == 0);
  return NULL;
}

static void refill_shared(void) {
  for (int i = 0; i < 4096; i++) {
    if (atomic_load(&g_shared[i]) != NULL) continue;
    void *p = lz_malloc(size_of(i));
    CHECK(p != NULL);
    void *old = atomic_exchange(&g_shared[i], p);
    if (old) lz_free(old);
  }
}

/* Threads from..to, 8 at a time; at a wave's end, stops once `budget`
 * seconds have passed (the threads' work grows with the machine's load)
 * and at least `least` threads ran. Returns the number that ran. */
static size_t run_threads(size_t from, size_t to, size_t least, double budget) {
  double t0 = tu_now();
  size_t n = from;
  for (; n < to && (n - from < least || tu_now() - t0 < budget); n += WAVE) {
    pthread_t t[WAVE];
    for (int i = 0; i < WAVE; i++) CHECK(pthread_create(&t[i], NULL, thread_main, (void *)(uintptr_t)(n + (size_t)i)) == 0);
    for (int i = 0; i < WAVE; i++) CHECK(pthread_join(t[i], NULL) == 0);
    if ((n / WAVE) % 64 == 0) refill_shared();
  }
  return n - from;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (TU_TSAN) {
    /* ThreadSanitizer's own thread state is gone in the last destructor
     * rounds: instrumented code there crashes in its runtime. */
    printf("thread_late_free: skipped under ThreadSanitizer\n");
    return 77;
  }
  lz_free(lz_malloc(1)); /* lzmalloc's key exists before ours */
  CHECK(pthread_key_create(&g_key, late_dtor) == 0);
  /* Shared heaps and level-2 hardening are several times slower. */
  size_t total = tu_scaled(TU_SANITIZED ? 5000 : LZ_HEAPS > 0 || LZ_SECURE >= 2 ? 20000 : 100000, 800);
  total -= total % WAVE;
  size_t tenth = total / 10 - (total / 10) % WAVE;
  lz_trim(0);
  lz_stats_t st0, st1, st2;
  lz_stats_get(&st0);
  double t0 = tu_now();
  /* The first tenth (at least 512 threads, then within half the budget):
   * the heaps and resident size they leave are the baseline. */
  size_t first = run_threads(0, tenth, 64 * WAVE, LOOP_BUDGET_S / 2);
  lz_trim(0);
  lz_stats_get(&st1);
  size_t rss1 = tu_rss_bytes();
  /* The rest, within the budget once half as many again ran: the
   * flatness checked below is between the baseline and the end, whatever
   * the counts. */
  size_t rest = run_threads(first, total, first / 2, LOOP_BUDGET_S);
  for (int i = 0; i < 4096; i++) lz_free(atomic_exchange(&g_shared[i], NULL));
  lz_trim(0);
  lz_stats_get(&st2);
  size_t rss2 = tu_rss_bytes();
  printf("thread_late_free: %zu of %zu threads in %.1f s; heaps %llu -> %llu -> %llu; rss %zu -> %zu KiB; "
         "in use %zu -> %zu bytes\n",
         first + rest, total, tu_now() - t0, (unsigned long long)st0.heaps, (unsigned long long)st1.heaps,
         (unsigned long long)st2.heaps, rss1 >> 10, rss2 >> 10, st0.in_use, st2.in_use);
  /* Heaps: about one per thread alive at once (and the temporary ones a
   * wave's destructors take), whatever the number of threads. */
  CHECKF(st2.heaps <= 2 * WAVE + 4, "heaps grew: %llu -> %llu", (unsigned long long)st1.heaps,
         (unsigned long long)st2.heaps);
  /* (The sanitizers' own memory grows with the threads.) */
  CHECKF(TU_SANITIZED || rss2 <= rss1 + ((size_t)16 << 20), "resident size grew by %zu KiB", (rss2 - rss1) >> 10);
  CHECKF(st2.in_use <= st0.in_use + 4096, "bytes in use %zu -> %zu", st0.in_use, st2.in_use);
  return 0;
}
