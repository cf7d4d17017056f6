/* sh6bench-style churn: every thread allocates batches of mixed-size blocks
 * and frees them in LIFO order (last allocated first), in allocation (FIFO)
 * order and every-other-then-rest, so the allocator sees all three reuse
 * patterns. Figure: malloc+free pairs per second. */
#include "shbench_common.h"

static uint64_t rounds;

static void *worker(void *arg) {
  uintptr_t id = (uintptr_t)arg;
  rng_t r;
  rng_seed(&r, 0x5606 + id);
  void **v = malloc(sizeof(void *) * BATCH);
  if (!v) bench_fail("malloc");
  for (uint64_t k = 0; k < rounds; k++) {
    sh_alloc_batch(&r, v, BATCH, (uint32_t)k);
    for (size_t i = BATCH; i-- > 0;) blk_free(v[i], "sh6 lifo");
    sh_alloc_batch(&r, v, BATCH, (uint32_t)k);
    for (size_t i = 0; i < BATCH; i++) blk_free(v[i], "sh6 fifo");
    sh_alloc_batch(&r, v, BATCH, (uint32_t)k);
    for (size_t i = 0; i < BATCH; i += 2) blk_free(v[i], "sh6 even");
    for (size_t i = 1; i < BATCH; i += 2) blk_free(v[i], "sh6 odd");
  }
  free(v);
  return NULL;
}

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 2);
  rounds = scaled(1200, scale, 2) / (uint64_t)threads;
  pthread_t th[1024];
  double t0 = now_sec();
  for (int i = 0; i < threads; i++) bench_thread_start(&th[i], worker, (void *)(uintptr_t)i);
  for (int i = 0; i < threads; i++) bench_thread_join(th[i]);
  double t = now_sec() - t0;
  double pairs = (double)rounds * threads * 3 * BATCH;
  printf("sh6bench: %d threads, %.0f pairs in %.3f s\n", threads, pairs, t);
  report_result(pairs / t / 1e6, "Mpairs/s");
  return 0;
}
