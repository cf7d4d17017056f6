/* thread_first_late: a thread whose first lzmalloc call comes after
 * lzmalloc's last chance at its exit (the last round of pthread key
 * destructors) leaves no heap behind.
 *
 * 400 threads (x LZ_TEST_SCALE), 8 at a time, never call lzmalloc while
 * they run. A pthread key made after lzmalloc's has a destructor that
 * re-arms itself until the last round glibc makes
 * (PTHREAD_DESTRUCTOR_ITERATIONS); only there does the thread call
 * lzmalloc for the first time: it frees a block of the main thread's (a
 * remote free, which gives the thread a heap for its batches), then
 * allocates and frees blocks of every size range. Its heap is armed too
 * late for lzmalloc's own key destructor, so it must be given back some
 * other way. Checked: the number of heaps stays about one per thread alive
 * at once, and after lz_trim the bytes in use are back to what they were
 * before the threads, to the byte.
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
#include <unistd.h>

#include "lzmalloc.h"
#include "testutil.h"

#define WAVE 8

static pthread_key_t g_key;
static _Atomic(void *) g_main_blocks[WAVE]; /* main's blocks, one freed by each thread */

typedef struct {
  int round;
  int slot;
} state_t;

static void late_dtor(void *v) {
  state_t *st = v;
  if (++st->round < PTHREAD_DESTRUCTOR_ITERATIONS) {
    CHECK(pthread_setspecific(g_key, st) == 0);
    return;
  }
  /* The last round: this thread's first lzmalloc calls. */
  void *m = atomic_exchange(&g_main_blocks[st->slot], NULL);
  CHECK(m != NULL);
  lz_free(m);
  static const size_t sizes[] = {16, 100, 1000, 5000, 40000, 300000, 3 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char *p = lz_malloc(sizes[i]);
    CHECK(p != NULL);
    memset(p, 7, 16);
    lz_free(p);
  }
}

static void *thread_main(void *arg) {
  state_t *st = arg;
  CHECK(pthread_setspecific(g_key, st) == 0); /* no lzmalloc call here */
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (TU_TSAN) {
    /* ThreadSanitizer's own thread state is gone in the last destructor
     * rounds: instrumented code there crashes in its runtime. */
    printf("thread_first_late: skipped under ThreadSanitizer\n");
    return 77;
  }
  lz_free(lz_malloc(1)); /* lzmalloc's key exists before ours */
  CHECK(pthread_key_create(&g_key, late_dtor) == 0);
  size_t total = tu_scaled(400, WAVE);
  total -= total % WAVE;
  lz_trim(0);
  lz_stats_t st0, st1;
  lz_stats_get(&st0);
  static state_t states[WAVE];
  for (size_t n = 0; n < total; n += WAVE) {
    pthread_t t[WAVE];
    for (int i = 0; i < WAVE; i++) {
      void *m = lz_malloc(48);
      CHECK(m != NULL);
      atomic_store(&g_main_blocks[i], m);
      states[i] = (state_t){0, i};
      CHECK(pthread_create(&t[i], NULL, thread_main, &states[i]) == 0);
    }
    for (int i = 0; i < WAVE; i++) CHECK(pthread_join(t[i], NULL) == 0);
    for (int i = 0; i < WAVE; i++) CHECK(atomic_load(&g_main_blocks[i]) == NULL);
  }
  /* A thread's heap can be found abandoned only once the kernel has ended
   * the thread, a moment after pthread_join returns (on a loaded machine
   * it may wait seconds for a CPU to finish its exit): a bounded wait,
   * 30 s. */
  for (int tries = 0;; tries++) {
    lz_trim(0);
    lz_stats_get(&st1);
    if (st1.in_use == st0.in_use || tries == 3000) break;
    usleep(10000);
  }
  printf("thread_first_late: %zu threads; heaps %llu -> %llu; in use %zu -> %zu bytes\n", total,
         (unsigned long long)st0.heaps, (unsigned long long)st1.heaps, st0.in_use, st1.in_use);
  /* About one heap per thread alive at once (a wave), plus main's and
   * those of threads whose exit is not yet complete when the next wave
   * looks: not one per thread. */
  CHECKF(st1.heaps <= st0.heaps + 2 * WAVE, "heaps grew with the threads: %llu -> %llu",
         (unsigned long long)st0.heaps, (unsigned long long)st1.heaps);
  CHECKF(st1.in_use == st0.in_use, "in use %zu -> %zu bytes", st0.in_use, st1.in_use);
  printf("thread_first_late: ok\n");
  return 0;
}
