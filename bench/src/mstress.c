/* mstress: random sizes 8-16000 B with objects migrating between threads,
 * realloc, and thread churn (after the description of mimalloc-bench's
 * mstress). The run is a series of rounds; each round starts fresh threads.
 * A thread works on its local slots (replace, realloc) and swaps blocks with
 * a global transfer array, so blocks move between threads. When a round ends
 * each thread parks a tenth of its blocks in the global array: long-lived
 * objects that outlive their thread and are freed by later ones.
 * Figure: operations per second. */
#include <pthread.h>
#include "common.h"

#define LOCAL 2000
#define GLOBAL 20000

static _Atomic(void *) global[GLOBAL];
static uint64_t ops_per_thread;
static int round_no;

static size_t ms_size(rng_t *r) {
  /* mostly small: log-uniform 8..16000, biased by taking the min of two draws */
  size_t a = rng_logsize(r, 8, 16000), b = rng_logsize(r, 8, 16000);
  return a < b ? a : b;
}

static void *worker(void *arg) {
  uintptr_t id = (uintptr_t)arg;
  rng_t r;
  rng_seed(&r, 0x357e55 + id * 1000003 + (uint64_t)round_no * 7);
  void **loc = calloc(LOCAL, sizeof(void *));
  if (!loc) bench_fail("calloc");
  for (uint64_t i = 0; i < ops_per_thread; i++) {
    size_t k = (size_t)rng_below(&r, LOCAL);
    uint64_t what = rng_below(&r, 100);
    uint32_t tag = (uint32_t)(id << 24) ^ (uint32_t)i;
    if (what < 55 || !loc[k]) {
      blk_free(loc[k], "mstress replace");
      loc[k] = blk_new(ms_size(&r), tag);
    } else if (what < 75) {
      loc[k] = blk_realloc(loc[k], ms_size(&r), tag, "mstress realloc");
    } else {
      size_t g = (size_t)rng_below(&r, GLOBAL);
      loc[k] = atomic_exchange(&global[g], loc[k]);
    }
  }
  for (size_t k = 0; k < LOCAL; k++) {
    if (loc[k] && rng_below(&r, 10) == 0) {
      size_t g = (size_t)rng_below(&r, GLOBAL);
      loc[k] = atomic_exchange(&global[g], loc[k]);
    }
    blk_free(loc[k], "mstress end");
  }
  free(loc);
  return NULL;
}

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 2);
  int rounds = 20;
  ops_per_thread = scaled(4000000, scale, 1000) / (uint64_t)threads / (uint64_t)rounds;
  pthread_t th[1024];
  double t0 = now_sec();
  for (round_no = 0; round_no < rounds; round_no++) {
    for (int i = 0; i < threads; i++) bench_thread_start(&th[i], worker, (void *)(uintptr_t)i);
    for (int i = 0; i < threads; i++) bench_thread_join(th[i]);
  }
  double t = now_sec() - t0;
  for (size_t g = 0; g < GLOBAL; g++) blk_free(atomic_load(&global[g]), "mstress final");
  double ops = (double)ops_per_thread * threads * rounds;
  printf("mstress: %d threads x %d rounds, %.0f ops in %.3f s\n", threads, rounds, ops, t);
  report_result(ops / t / 1e6, "Mops/s");
  return 0;
}
