/* idle_burst: memory given back by a process that goes quiet.
 *
 * A worker thread allocates ~400 MiB (x scale) of 64..2,111-byte blocks,
 * frees 90 % of them (every tenth kept) and then makes no allocator call at
 * all; the main thread (which never calls the allocator either) samples RSS
 * every 10 ms for 3 s. Then the worker frees the rest and both are quiet
 * for 2 s more. Figures (lower is better):
 *   result          % of the peak still resident 1.5 s after the 90 % free
 *   metric t10      seconds after the 90 % free until RSS <= 10 % of peak
 *                   (the window, 3 s, if never)
 *   metric freeall  % of peak resident 1.5 s after freeing everything
 * Samples "<ms> <rss MiB> <phase>" go to the file named by the third
 * argument (the RSS-over-time chart of bench/run).
 */
#include <pthread.h>
#include <stdbool.h>
#include <sys/mman.h>

#include "common.h"

#define SAMPLE_MS 10
#define MAXSAMPLES 1024

static struct { float ms, rss; int phase; } samples[MAXSAMPLES];
static int nsamples;
static _Atomic int phase_done; /* worker: 1 after the 90 % free, 2 after the rest */
static _Atomic int go_on;      /* main: 1 when the worker may free the rest */
static size_t target;
static size_t peak;

static void *worker(void *arg) {
  (void)arg;
  size_t cap = target / 64 + 16;
  void **ptrs = mmap(NULL, cap * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ptrs == MAP_FAILED) bench_fail("mmap");
  rng_t r;
  rng_seed(&r, 42);
  size_t n = 0, total = 0;
  while (total < target && n < cap) {
    size_t sz = (size_t)rng_range(&r, 64, 2111);
    char *p = xmalloc_or_fail(sz);
    memset(p, (int)(n & 0xff), sz);
    ptrs[n++] = p;
    total += sz;
  }
  peak = rss_bytes();
  for (size_t i = 0; i < n; i++)
    if (i % 10 != 0) free(ptrs[i]);
  atomic_store(&phase_done, 1);
  while (!atomic_load(&go_on)) usleep(1000); /* no allocator call while waiting */
  for (size_t i = 0; i < n; i += 10) {
    if (((char *)ptrs[i])[0] != (char)(i & 0xff)) bench_fail("block %zu corrupted", i);
    free(ptrs[i]);
  }
  atomic_store(&phase_done, 2);
  munmap(ptrs, cap * sizeof(void *));
  for (;;) pause(); /* alive and silent until the process exits */
  return NULL;
}

/* Samples for `ms` from t0; returns % of peak at 1.5 s and sets *t10. */
static double watch(double t0, int ms, int phase, double *t10) {
  double at15 = -1;
  *t10 = ms / 1000.0;
  bool reached = false;
  for (int t = 0; t <= ms; t += SAMPLE_MS) {
    double target_t = t0 + t / 1000.0;
    while (now_sec() < target_t) usleep(500);
    size_t rss = rss_bytes();
    double el = now_sec() - t0;
    if (nsamples < MAXSAMPLES) {
      samples[nsamples].ms = (float)(el * 1000 + (phase == 2 ? 3000 : 0));
      samples[nsamples].rss = (float)(rss / 1048576.0);
      samples[nsamples].phase = phase;
      nsamples++;
    }
    if (!reached && rss <= peak / 10) {
      reached = true;
      *t10 = el;
    }
    if (at15 < 0 && el >= 1.5) at15 = 100.0 * (double)rss / (double)peak;
  }
  return at15;
}

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 1);
  target = (size_t)scaled(400u << 20, scale, 8u << 20);
  pthread_t t;
  if (pthread_create(&t, NULL, worker, NULL) != 0) bench_fail("pthread_create");
  while (atomic_load(&phase_done) < 1) usleep(200);
  double t10, t10_all;
  double pct90 = watch(now_sec(), 3000, 1, &t10);
  atomic_store(&go_on, 1);
  while (atomic_load(&phase_done) < 2) usleep(200);
  double pct_all = watch(now_sec(), 2000, 2, &t10_all);
  if (argc > 3) {
    FILE *f = fopen(argv[3], "w");
    if (f) {
      fprintf(f, "# ms rss_MiB phase\n");
      for (int i = 0; i < nsamples; i++) fprintf(f, "%.1f %.2f %d\n", samples[i].ms, samples[i].rss, samples[i].phase);
      fclose(f);
    }
  }
  printf("metric: peak %.1f MiB\n", peak / 1048576.0);
  printf("metric: t10 %.2f s\n", t10);
  printf("metric: freeall %.1f %%\n", pct_all);
  report_result(pct90, "%");
  fflush(stdout);
  _exit(0); /* the worker is parked in pause() */
}
