/* large_xthread: large blocks freed by another thread are reused for the
 * next large request of any size without new mappings, and many threads
 * passing large blocks to each other through the lock-free cache keep
 * every byte and the statistics exact.
 *
 *   1. main allocates a 6 MiB block; a second thread frees it; then 30
 *      rounds of a block of another size (2-6 MiB) allocated by main and
 *      freed by the other thread: lz_stats mapped never grows;
 *   2. four threads allocate blocks of 1-8 MiB, fill their edges, swap them
 *      through shared slots and free the ones they take (checking the
 *      pattern); then large_in_use is 0 and lz_trim(0) unmaps the rest. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lzmalloc.h"

#include "testutil.h"

#define MiB ((size_t)1 << 20)

static size_t mapped(void) {
  lz_stats_t st;
  lz_stats_get(&st);
  return st.mapped;
}

static void *free_it(void *p) {
  lz_free(p);
  return NULL;
}

static void free_on_other_thread(void *p) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, free_it, p) == 0);
  CHECK(pthread_join(t, NULL) == 0);
}

typedef struct {
  unsigned char *p;
  size_t n;
  uint64_t seed;
} blk_t;

#define NSLOTS 16
#define NTHREADS 4
static _Atomic(blk_t *) slots[NSLOTS];
static blk_t blks[NTHREADS][64];
static size_t rounds;

/* Each thread takes descriptors from its own stack and keeps the ones it
 * takes out of the slots, so a descriptor has one owner at a time. */
static void *worker(void *arg) {
  int id = (int)(intptr_t)arg;
  tu_rng_t r;
  tu_rng_seed(&r, 77 + (uint64_t)id);
  blk_t *stack[64 + NSLOTS];
  size_t depth = 0;
  for (size_t k = 0; k < 64; k++) stack[depth++] = &blks[id][k];
  for (size_t i = 0; i < rounds; i++) {
    CHECK(depth > 0);
    blk_t *b = stack[--depth];
    b->n = (size_t)tu_rng_range(&r, MiB + 1, 8 * MiB);
    b->seed = (uint64_t)id << 32 | i;
    b->p = (i % 4 == 0) ? lz_calloc(1, b->n) : lz_malloc(b->n);
    CHECK(b->p != NULL);
    if (i % 4 == 0) CHECK(tu_all_zero(b->p, 4096) && tu_all_zero(b->p + b->n - 4096, 4096));
    tu_pattern_fill_edges(b->p, b->n, 4096, b->seed);
    blk_t *old = atomic_exchange(&slots[tu_rng_below(&r, NSLOTS)], b);
    if (old != NULL) {
      CHECKF(tu_pattern_check_edges(old->p, old->n, 4096, old->seed) == SIZE_MAX, "block %p damaged",
             (void *)old->p);
      lz_free(old->p);
      stack[depth++] = old;
    }
  }
  return NULL;
}

int main(void) {
  /* Hardening level 2 (an LZ_SECURE=2 build) holds freed large ranges in
   * a quarantine before their reuse, which this test measures. */
  TU_SKIP_AT_LEVEL2("hardening level 2 delays the reuse of freed large ranges");
  lz_free(lz_malloc(100));
  lz_trim(0);
  lz_stats_t st0;
  lz_stats_get(&st0);

  /* 1. Freed by another thread, reused for other sizes. */
  unsigned char *p = lz_malloc(6 * MiB);
  CHECK(p != NULL);
  memset(p, 1, 6 * MiB);
  size_t m1 = mapped();
  free_on_other_thread(p);
  tu_rng_t r;
  tu_rng_seed(&r, 5);
  for (int i = 0; i < 30; i++) {
    size_t n = (size_t)tu_rng_range(&r, 2 * MiB, 6 * MiB);
    p = lz_malloc(n);
    CHECK(p != NULL);
    memset(p, i, n);
    size_t m = mapped();
    CHECKF(m <= m1, "round %d (%zu bytes): mapped %zu > %zu: the block freed by the other thread was not reused", i,
           n, m, m1);
    free_on_other_thread(p);
  }

  /* 2. Many threads through the cache at once. */
  rounds = tu_scaled(TU_TSAN ? 300 : 1500, 50);
  pthread_t t[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
  for (int i = 0; i < NTHREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
  for (int i = 0; i < NSLOTS; i++) {
    blk_t *b = atomic_exchange(&slots[i], NULL);
    if (b == NULL) continue;
    CHECK(tu_pattern_check_edges(b->p, b->n, 4096, b->seed) == SIZE_MAX);
    lz_free(b->p);
  }
  lz_stats_t st;
  lz_stats_get(&st);
  CHECKF(st.large_in_use == 0, "large_in_use %zu after freeing everything", st.large_in_use);
  lz_trim(0);
  lz_stats_get(&st);
  CHECKF(st.mapped <= st0.mapped + 2 * MiB * NTHREADS, "mapped %zu after trim, %zu at the start", st.mapped,
         st0.mapped);
  printf("large_xthread: ok\n");
  return 0;
}
