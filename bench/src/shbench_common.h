/* Size-mix churn in the manner of MicroQuill's SmartHeap benchmarks
 * (sh6bench: per-thread batches; sh8bench: batches handed to another thread),
 * written from their published description. */
#include <pthread.h>
#include "common.h"

#define BATCH 2000

/* 70 % 8-64 B, 25 % 65-512 B, 5 % 513-4096 B */
static inline size_t sh_size(rng_t *r) {
  uint64_t x = rng_below(r, 100);
  if (x < 70) return (size_t)rng_range(r, 8, 64);
  if (x < 95) return (size_t)rng_range(r, 65, 512);
  return (size_t)rng_range(r, 513, 4096);
}

static void sh_alloc_batch(rng_t *r, void **v, size_t n, uint32_t tag) {
  for (size_t i = 0; i < n; i++) v[i] = blk_new(sh_size(r), tag + (uint32_t)i);
}
