/* alloc-test: long runs over a Pareto-distributed size mix up to 1 KiB
 * (small sizes dominate, with a heavy tail), in the manner of the alloc-test
 * benchmark. Every thread keeps a working set of slots and keeps replacing a
 * random slot: free the old block (after checking it), allocate a new one.
 * Figure: replacements per second. */
#include <math.h>
#include <pthread.h>
#include "common.h"

#define SLOTS (1u << 15)
#define PARETO_XM 12.0
#define PARETO_ALPHA 1.2
#define MAX_SZ 1024

static uint64_t ops_per_thread;

static size_t pareto_size(rng_t *r) {
  for (;;) {
    double s = PARETO_XM / pow(rng_unit(r), 1.0 / PARETO_ALPHA);
    if (s <= MAX_SZ) return (size_t)s;
  }
}

static void *worker(void *arg) {
  uintptr_t id = (uintptr_t)arg;
  rng_t r;
  rng_seed(&r, 0xa110c + id);
  void **slot = calloc(SLOTS, sizeof(void *));
  if (!slot) bench_fail("calloc");
  for (uint64_t i = 0; i < ops_per_thread; i++) {
    size_t k = (size_t)rng_below(&r, SLOTS);
    blk_free(slot[k], "alloc-test");
    slot[k] = blk_new(pareto_size(&r), (uint32_t)i);
  }
  for (size_t k = 0; k < SLOTS; k++) blk_free(slot[k], "alloc-test-final");
  free(slot);
  return NULL;
}

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 2);
  ops_per_thread = scaled(16000000, scale, 1000) / (uint64_t)threads;
  pthread_t th[1024];
  double t0 = now_sec();
  for (int i = 0; i < threads; i++) bench_thread_start(&th[i], worker, (void *)(uintptr_t)i);
  for (int i = 0; i < threads; i++) bench_thread_join(th[i]);
  double t = now_sec() - t0;
  printf("alloc-test: %d threads, %" PRIu64 " replacements in %.3f s\n", threads,
         ops_per_thread * threads, t);
  report_result((double)ops_per_thread * threads / t / 1e6, "Mops/s");
  return 0;
}
