/* thread churn: 10,000 short-lived threads (scaled), at most <threads> alive
 * at a time, each allocating and freeing a few hundred blocks; every thread
 * also frees the blocks its predecessor left behind, so blocks outlive the
 * thread that allocated them. Figure: threads per second. */
#include <pthread.h>
#include "common.h"

#define PER_THREAD 200
#define LEFT 20

static _Atomic(void **) leftovers;

static void *worker(void *arg) {
  uintptr_t id = (uintptr_t)arg;
  rng_t r;
  rng_seed(&r, 0xc4u + id);
  void *v[PER_THREAD];
  for (int i = 0; i < PER_THREAD; i++) v[i] = blk_new(rng_logsize(&r, 8, 4096), (uint32_t)i);
  for (int i = LEFT; i < PER_THREAD; i++) blk_free(v[i], "churn");
  void **mine = malloc(sizeof(void *) * LEFT);
  if (!mine) bench_fail("malloc");
  memcpy(mine, v, sizeof(void *) * LEFT);
  void **prev = atomic_exchange(&leftovers, mine);
  if (prev) {
    for (int i = 0; i < LEFT; i++) blk_free(prev[i], "churn leftover");
    free(prev);
  }
  return NULL;
}

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 2);
  uint64_t total = scaled(10000, scale, 10);
  pthread_t th[1024];
  double t0 = now_sec();
  uint64_t started = 0;
  while (started < total) {
    int n = 0;
    for (; n < threads && started < total; n++, started++)
      if (pthread_create(&th[n], NULL, worker, (void *)(uintptr_t)started) != 0)
        bench_fail("pthread_create");
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
  }
  double t = now_sec() - t0;
  void **last = atomic_load(&leftovers);
  if (last) {
    for (int i = 0; i < LEFT; i++) blk_free(last[i], "churn final");
    free(last);
  }
  printf("thread-churn: %" PRIu64 " threads in %.3f s\n", total, t);
  report_result((double)total / t, "threads/s");
  return 0;
}
