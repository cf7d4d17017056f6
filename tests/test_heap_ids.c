/* test_heap_ids: free's fast path takes a block as the calling thread's
 * own when its chunk's byte in the chunk map is the thread's heap id
 * (src/alloc.h; internal.h, heap_t.map_id):
 *
 *   1. more heaps than ids: 300 threads alive at once, each with a heap of
 *      its own (the first 252 with ids, the rest without: every free
 *      slow), allocate and free small, medium and large blocks of their
 *      own and a small block of a neighbour's; each validates its heap
 *      (ids unique, the thread's copy of its id: lz_heap_validate), the
 *      neighbours' blocks are the only remote frees (a heap without an id
 *      frees its own blocks as their owner), and bytes in use are back to
 *      the byte once all are gone and trimmed;
 *   2. adoption: a thread started after another one exited takes over its
 *      heap (the next thread adopts the orphan) and frees the blocks the
 *      first thread left as its own: the validator passes in it (its id
 *      is the adopted heap's), in use back to the byte;
 *   3. adoption by a free (per-thread heaps): the same, but the next thread's first call is
 *      the free of the exited thread's block, so the heap it takes on that
 *      call is the block's own: it frees the block as the owner (never
 *      onto a foreign list or into a batch of its own heap, which the
 *      validator reports as [foreign.own]) and takes it back first.
 */
#include <pthread.h>
#include <stdbool.h>

#include "lzmalloc.h"
#include "testutil.h"

#ifndef LZ_HEAPS
#define LZ_HEAPS 0
#endif
#ifndef LZ_STATS
#define LZ_STATS 1
#endif

#define THREADS 300
#define MEDIUM ((size_t)64 << 10)
#define LARGE ((size_t)3 << 19) /* 1.5 MiB: a large block */

static const size_t sizes[] = {16, 64, 1040, 4096, 32768};
#define NSIZES (sizeof sizes / sizeof sizes[0])
#define PER 8

static pthread_barrier_t bar;
static void *neighbour[THREADS];

static void own_blocks(void) {
  void *p[NSIZES][PER];
  for (size_t k = 0; k < NSIZES; k++)
    for (size_t i = 0; i < PER; i++) {
      p[k][i] = lz_malloc(sizes[k]);
      CHECK(p[k][i] != NULL);
      memset(p[k][i], 0x3c, sizes[k]);
    }
  void *m = lz_malloc(MEDIUM), *l = lz_malloc(LARGE);
  CHECK(m != NULL && l != NULL);
  memset(m, 1, 64);
  memset(l, 1, 64);
  /* In an order that frees within spans before they empty, and back. */
  for (size_t i = 0; i < PER; i++)
    for (size_t k = 0; k < NSIZES; k++) lz_free(p[k][i]);
  lz_free(m);
  lz_free(l);
}

static void *many_worker(void *arg) {
  size_t i = (size_t)arg;
  neighbour[i] = lz_malloc(48); /* the heap first: every thread has its own */
  CHECK(neighbour[i] != NULL);
  pthread_barrier_wait(&bar); /* all heaps made, none exited */
  own_blocks();
  pthread_barrier_wait(&bar);
  lz_free(neighbour[(i + 1) % THREADS]); /* another heap's block */
  own_blocks();
  CHECK(lz_heap_validate() > 0);
  pthread_barrier_wait(&bar); /* no heap is adopted before all validated */
  return NULL;
}

static void test_many_heaps(void) {
  lz_stats_t st0, st1;
  lz_trim(0);
  lz_stats_get(&st0);
  CHECK(pthread_barrier_init(&bar, NULL, THREADS) == 0);
  pthread_attr_t attr;
  CHECK(pthread_attr_init(&attr) == 0);
  CHECK(pthread_attr_setstacksize(&attr, (size_t)256 << 10) == 0);
  pthread_t t[THREADS];
  for (size_t i = 0; i < THREADS; i++) CHECK(pthread_create(&t[i], &attr, many_worker, (void *)i) == 0);
  for (size_t i = 0; i < THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
  pthread_attr_destroy(&attr);
  pthread_barrier_destroy(&bar);
  lz_trim(0);
  lz_stats_get(&st1);
  CHECKF(st1.in_use == st0.in_use, "in use %zu before, %zu after", st0.in_use, st1.in_use);
  /* One remote free a thread, its neighbour's block: every other free is
   * of its own blocks, also in a heap without an id, whose own chunks'
   * bytes are no id either (remote.c reads their headers to tell). */
  if (LZ_STATS && LZ_HEAPS == 0)
    CHECKF(st1.remote_frees - st0.remote_frees == THREADS, "%llu remote frees, want %d",
           (unsigned long long)(st1.remote_frees - st0.remote_frees), THREADS);
  lz_heap_validate(); /* every orphan (aborts on a broken invariant) */
  printf("many heaps: %d threads at once, own and neighbours' frees; in use back to %zu bytes\n", THREADS,
         st1.in_use);
}

static void *left[NSIZES][PER];

static void *leave_blocks(void *arg) {
  (void)arg;
  for (size_t k = 0; k < NSIZES; k++)
    for (size_t i = 0; i < PER; i++) {
      left[k][i] = lz_malloc(sizes[k]);
      CHECK(left[k][i] != NULL);
    }
  return NULL;
}

static void *free_left(void *arg) {
  (void)arg;
  void *mine = lz_malloc(16); /* takes a heap: the orphan of the last thread */
  CHECK(mine != NULL);
  for (size_t i = 0; i < PER; i++)
    for (size_t k = 0; k < NSIZES; k++) lz_free(left[k][i]);
  CHECK(lz_heap_validate() > 0);
  lz_free(mine);
  return NULL;
}

/* The first call a free: the block's heap is the orphan it adopts. */
static void *free_left_first(void *arg) {
  (void)arg;
  void *first = left[0][PER - 1];
  lz_free(first);
  CHECK(lz_heap_validate() > 0);
  void *again = lz_malloc(sizes[0]); /* an owner's free is taken back first (LIFO) */
  CHECKF(again == first, "freed %p as the first call, the next malloc(%zu) gave %p", first, sizes[0], again);
  lz_free(again);
  for (size_t i = 0; i < PER; i++)
    for (size_t k = 0; k < NSIZES; k++)
      if (left[k][i] != first) lz_free(left[k][i]);
  CHECK(lz_heap_validate() > 0);
  return NULL;
}

static void run(void *(*fn)(void *)) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, fn, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
}

static void test_adoption(bool by_free) {
  lz_stats_t st0, st1;
  lz_trim(0);
  lz_stats_get(&st0);
  for (int round = 0; round < 20; round++) {
    run(leave_blocks);
    run(by_free ? free_left_first : free_left);
  }
  lz_trim(0);
  lz_stats_get(&st1);
  CHECKF(st1.in_use == st0.in_use, "in use %zu before, %zu after", st0.in_use, st1.in_use);
  printf("adoption%s: blocks of an exited thread freed by the next; in use back to %zu bytes\n",
         by_free ? " by a first free" : "", st1.in_use);
}

int main(void) {
  test_many_heaps();
  test_adoption(false);
  if (LZ_HEAPS == 0) /* shared heaps (LZ_HEAPS > 0) are never orphans */
    test_adoption(true);
  return 0;
}
