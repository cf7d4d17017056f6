/* glibc-thread: in the manner of glibc's bench-malloc-thread. Each thread
 * owns a working set of slots and in a tight loop frees a random slot and
 * allocates a new block whose size follows a distribution skewed to small
 * sizes (8 B - 32 KiB, inverse-square density). Run with 1 thread (the
 * single-threaded case) and with 2. Figure: malloc+free pairs per second. */
#include <pthread.h>
#include "common.h"

#define WSET 4000
#define NSIZES 4096

static size_t size_table[NSIZES];
static uint64_t iters;

static void *worker(void *arg) {
  uintptr_t id = (uintptr_t)arg;
  rng_t r;
  rng_seed(&r, 0x61bc + id);
  unsigned char **w = calloc(WSET, sizeof *w);
  size_t *wsz = calloc(WSET, sizeof *wsz);
  if (!w || !wsz) bench_fail("calloc");
  for (uint64_t i = 0; i < iters; i++) {
    size_t k = (size_t)rng_below(&r, WSET);
    if (w[k]) {
      if (w[k][0] != (unsigned char)k || w[k][wsz[k] - 1] != (unsigned char)(k >> 3))
        bench_fail("slot %zu corrupted", k);
      free(w[k]);
    }
    size_t sz = size_table[rng_below(&r, NSIZES)];
    w[k] = malloc(sz);
    if (!w[k]) bench_fail("malloc");
    w[k][0] = (unsigned char)k;
    w[k][sz - 1] = (unsigned char)(k >> 3);
    wsz[k] = sz;
  }
  for (size_t k = 0; k < WSET; k++) free(w[k]);
  free(w);
  free(wsz);
  return NULL;
}

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 1);
  /* inverse-square density between 8 and 32768: s = 1 / (a - u (a - b)) */
  const double a = 1.0 / 8, b = 1.0 / 32768;
  for (int i = 0; i < NSIZES; i++) {
    double u = (i + 0.5) / NSIZES;
    size_table[i] = (size_t)(1.0 / (a - u * (a - b)));
  }
  iters = scaled(20000000, scale, 1000) / (uint64_t)threads;
  pthread_t th[1024];
  double t0 = now_sec();
  for (int i = 0; i < threads; i++) bench_thread_start(&th[i], worker, (void *)(uintptr_t)i);
  for (int i = 0; i < threads; i++) bench_thread_join(th[i]);
  double t = now_sec() - t0;
  double pairs = (double)iters * threads;
  printf("glibc-thread: %d threads, %.0f pairs in %.3f s\n", threads, pairs, t);
  report_result(pairs / t / 1e6, "Mpairs/s");
  return 0;
}
