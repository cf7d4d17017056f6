/* rptest: in the manner of rpmalloc's benchmark. Threads run in cycles; in
 * every loop a thread frees and reallocates part of its working set (random
 * sizes 16-16000 B, small ones most frequent), reallocs some blocks, and hands
 * a batch of blocks to the next thread, freeing the batch it received. At the
 * end of a cycle the threads exit, leaving their working sets (long-lived
 * objects) to the thread of the next cycle with the same index.
 * Figure: operations per second. */
#include <pthread.h>
#include "common.h"

#define WSET 4096
#define STEP 256
#define XFER 64

typedef struct xfer {
  struct xfer *next;
  void *p[XFER];
} xfer_t;

static _Atomic(xfer_t *) inbox[1024];
static void **wsets[1024];
static int nthreads, cycle_no;
static uint64_t loops;

static size_t rp_size(rng_t *r) {
  uint64_t x = rng_below(r, 100);
  if (x < 75) return (size_t)rng_range(r, 16, 256);
  if (x < 95) return (size_t)rng_range(r, 257, 4096);
  return (size_t)rng_range(r, 4097, 16000);
}

static void drain(int id) {
  xfer_t *x = atomic_exchange(&inbox[id], NULL);
  while (x) {
    xfer_t *n = x->next;
    for (int i = 0; i < XFER; i++) blk_free(x->p[i], "rptest remote");
    free(x);
    x = n;
  }
}

static void *worker(void *arg) {
  int id = (int)(uintptr_t)arg;
  rng_t r;
  rng_seed(&r, 0x4e7e57 + (uint64_t)id * 31 + (uint64_t)cycle_no * 1009);
  void **w = wsets[id];
  for (uint64_t l = 0; l < loops; l++) {
    uint32_t tag = (uint32_t)l ^ ((uint32_t)id << 20);
    size_t base = (size_t)rng_below(&r, WSET - STEP);
    for (size_t i = base; i < base + STEP; i++) {
      blk_free(w[i], "rptest local");
      w[i] = blk_new(rp_size(&r), tag);
    }
    for (int i = 0; i < 16; i++) {
      size_t k = (size_t)rng_below(&r, WSET);
      w[k] = blk_realloc(w[k], rp_size(&r), tag, "rptest realloc");
    }
    xfer_t *x = malloc(sizeof *x);
    if (!x) bench_fail("malloc");
    for (int i = 0; i < XFER; i++) x->p[i] = blk_new(rp_size(&r), tag + 1);
    int to = (id + 1) % nthreads;
    x->next = atomic_load(&inbox[to]);
    while (!atomic_compare_exchange_weak(&inbox[to], &x->next, x)) {
    }
    drain(id);
  }
  return NULL;
}

int main(int argc, char **argv) {
  double scale;
  parse_args(argc, argv, &nthreads, &scale, 2);
  int cycles = 10;
  loops = scaled(12000, scale, 4) / (uint64_t)nthreads / (uint64_t)cycles;
  rng_t r;
  rng_seed(&r, 99);
  for (int t = 0; t < nthreads; t++) {
    wsets[t] = malloc(sizeof(void *) * WSET);
    if (!wsets[t]) bench_fail("malloc");
    for (int i = 0; i < WSET; i++) wsets[t][i] = blk_new(rp_size(&r), (uint32_t)i);
  }
  pthread_t th[1024];
  double t0 = now_sec();
  for (cycle_no = 0; cycle_no < cycles; cycle_no++) {
    for (int i = 0; i < nthreads; i++) bench_thread_start(&th[i], worker, (void *)(uintptr_t)i);
    for (int i = 0; i < nthreads; i++) bench_thread_join(th[i]);
  }
  double t = now_sec() - t0;
  for (int t2 = 0; t2 < nthreads; t2++) {
    drain(t2);
    for (int i = 0; i < WSET; i++) blk_free(wsets[t2][i], "rptest final");
    free(wsets[t2]);
  }
  double ops = (double)loops * cycles * nthreads * (STEP + 16 + XFER);
  printf("rptest: %d threads x %d cycles, %.0f ops in %.3f s\n", nthreads, cycles, ops, t);
  report_result(ops / t / 1e6, "Mops/s");
  return 0;
}
