/* larson: server simulation (after Larson & Krishnan's description).
 * A shared array of slots holds live blocks. Every thread repeatedly picks a
 * random slot, swaps a freshly allocated block of random size into it and
 * frees the block it took out. With several threads most frees therefore hit
 * a block that another thread allocated. Figure: replacements per second. */
#include <pthread.h>
#include "common.h"

#define MIN_SZ 16
#define MAX_SZ 1024

static _Atomic(void *) *slots;
static size_t nslots;
static uint64_t ops_per_thread;

static void *worker(void *arg) {
  uintptr_t id = (uintptr_t)arg;
  rng_t r;
  rng_seed(&r, 0x1a25 + id * 7919);
  for (uint64_t i = 0; i < ops_per_thread; i++) {
    size_t idx = (size_t)rng_below(&r, nslots);
    size_t sz = (size_t)rng_range(&r, MIN_SZ, MAX_SZ);
    void *nb = blk_new(sz, (uint32_t)(id << 24 | (i & 0xffffff)));
    void *old = atomic_exchange_explicit(&slots[idx], nb, memory_order_acq_rel);
    blk_free(old, "larson");
  }
  return NULL;
}

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 2);
  nslots = 10000 * (size_t)threads;
  ops_per_thread = scaled(5000000, scale, 1000) / (uint64_t)threads;
  slots = calloc(nslots, sizeof *slots);
  if (!slots) bench_fail("calloc");
  rng_t r;
  rng_seed(&r, 42);
  for (size_t i = 0; i < nslots; i++)
    atomic_store(&slots[i], blk_new((size_t)rng_range(&r, MIN_SZ, MAX_SZ), (uint32_t)i));
  pthread_t th[1024];
  double t0 = now_sec();
  for (int i = 0; i < threads; i++) bench_thread_start(&th[i], worker, (void *)(uintptr_t)i);
  for (int i = 0; i < threads; i++) bench_thread_join(th[i]);
  double t = now_sec() - t0;
  for (size_t i = 0; i < nslots; i++) blk_free(atomic_load(&slots[i]), "larson-final");
  free((void *)slots);
  printf("threads %d, %" PRIu64 " replacements in %.3f s\n", threads, ops_per_thread * threads, t);
  report_result((double)(ops_per_thread * threads) / t / 1e6, "Mops/s");
  return 0;
}
