/* footprint: how much memory an allocator keeps and gives back.
 *   1. allocate ~1 GiB (scaled) in mixed sizes, every page touched;
 *   2. free 90 % of the blocks at random       -> metric rss_free90
 *   3. free the rest                           -> metric rss_freeall
 *   4. malloc_trim(0)                          -> metric rss_trim
 *   5. a second, small-block phase (256 MiB of 16-256 B blocks, half freed,
 *      then all freed) and an idle pause, for the over-time chart.
 * A sampler thread reads /proc/self/statm every 5 ms; the samples
 * "<ms> <rss MiB> <phase>" go to the file named by the third argument.
 * Figure (lower is better): RSS in MiB after freeing 90 %. */
#include <malloc.h>
#include <pthread.h>
#include "common.h"

#define MAXSAMPLES 20000
#define MiB (1024.0 * 1024.0)

static struct { float ms, rss; int phase; } samples[MAXSAMPLES];
static _Atomic int nsamples, phase, stop;
static double t_start;

static void *sampler(void *arg) {
  UNUSED(arg);
  while (!atomic_load(&stop)) {
    int n = atomic_load(&nsamples);
    if (n < MAXSAMPLES) {
      samples[n].ms = (float)((now_sec() - t_start) * 1e3);
      samples[n].rss = (float)(rss_bytes() / MiB);
      samples[n].phase = atomic_load(&phase);
      atomic_store(&nsamples, n + 1);
    }
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

static double pause_scale = 1.0; /* shorter pauses in quick runs */

static void pause_ms(int ms) {
  ms = (int)(ms * pause_scale);
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

typedef struct { void *p; } slot_t;

static size_t mixed_size(rng_t *r) {
  uint64_t x = rng_below(r, 100);
  if (x < 80) return rng_logsize(r, 16, 1024);
  if (x < 98) return rng_logsize(r, 1025, 65536);
  return rng_logsize(r, 65537, 1 << 20);
}

static void shuffle(size_t *idx, size_t n, rng_t *r) {
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)rng_below(r, i);
    size_t t = idx[i - 1];
    idx[i - 1] = idx[j];
    idx[j] = t;
  }
}

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 1);
  const char *out = argc > 3 ? argv[3] : NULL;
  if (scale < 0.5) pause_scale = 0.4;
  size_t target = (size_t)scaled((uint64_t)1 << 30, scale, 1 << 20);
  rng_t r;
  rng_seed(&r, 0xf00d);
  t_start = now_sec();
  pthread_t th;
  bench_thread_start(&th, sampler, NULL);
  pause_ms(20);

  /* phase 1: grow */
  atomic_store(&phase, 1);
  size_t cap = 1 << 16, n = 0, total = 0;
  void **v = malloc(cap * sizeof(void *));
  if (!v) bench_fail("malloc");
  while (total < target) {
    if (n == cap) {
      cap *= 2;
      v = realloc(v, cap * sizeof(void *));
      if (!v) bench_fail("realloc");
    }
    size_t sz = mixed_size(&r);
    v[n] = blk_new(sz, (uint32_t)n);
    n++;
    total += sz;
  }
  size_t rss_full = rss_bytes();
  pause_ms(50);

  /* phase 2: free 90 % at random */
  atomic_store(&phase, 2);
  size_t *idx = malloc(n * sizeof(size_t));
  if (!idx) bench_fail("malloc");
  for (size_t i = 0; i < n; i++) idx[i] = i;
  shuffle(idx, n, &r);
  size_t nfree = n - n / 10;
  for (size_t i = 0; i < nfree; i++) {
    blk_free(v[idx[i]], "footprint");
    v[idx[i]] = NULL;
  }
  size_t rss90 = rss_bytes();
  pause_ms(50);

  /* phase 3: free the rest */
  atomic_store(&phase, 3);
  for (size_t i = nfree; i < n; i++) {
    blk_free(v[idx[i]], "footprint");
    v[idx[i]] = NULL;
  }
  free(idx);
  free(v);
  size_t rss_all = rss_bytes();
  pause_ms(50);

  /* phase 4: trim */
  atomic_store(&phase, 4);
  malloc_trim(0);
  size_t rss_trim = rss_bytes();
  pause_ms(50);

  /* phase 5: small blocks, half freed, then all, then idle */
  atomic_store(&phase, 5);
  size_t target2 = target / 4, n2 = 0, tot2 = 0;
  size_t cap2 = target2 / 16 + 1;
  void **w = malloc(cap2 * sizeof(void *));
  if (!w) bench_fail("malloc");
  while (tot2 < target2 && n2 < cap2) {
    size_t sz = (size_t)rng_range(&r, 16, 256);
    w[n2] = blk_new(sz, (uint32_t)n2);
    n2++;
    tot2 += sz;
  }
  pause_ms(30);
  for (size_t i = 0; i < n2; i += 2) {
    blk_free(w[i], "footprint small");
    w[i] = NULL;
  }
  pause_ms(30);
  atomic_store(&phase, 6);
  for (size_t i = 1; i < n2; i += 2) blk_free(w[i], "footprint small");
  free(w);
  size_t rss_end = rss_bytes();
  pause_ms(200);
  size_t rss_idle = rss_bytes();
  atomic_store(&stop, 1);
  bench_thread_join(th);

  if (out) {
    FILE *f = fopen(out, "w");
    if (f) {
      fprintf(f, "# ms rss_MiB phase\n");
      int ns = atomic_load(&nsamples);
      for (int i = 0; i < ns; i++)
        fprintf(f, "%.1f %.2f %d\n", samples[i].ms, samples[i].rss, samples[i].phase);
      fclose(f);
    }
  }
  printf("footprint: %zu blocks, %.1f MiB requested\n", n, total / MiB);
  printf("metric: rss_full %.1f MiB\n", rss_full / MiB);
  printf("metric: rss_free90 %.1f MiB\n", rss90 / MiB);
  printf("metric: rss_freeall %.1f MiB\n", rss_all / MiB);
  printf("metric: rss_trim %.1f MiB\n", rss_trim / MiB);
  printf("metric: rss_small_end %.1f MiB\n", rss_end / MiB);
  printf("metric: rss_idle %.1f MiB\n", rss_idle / MiB);
  report_result(rss90 / MiB, "MiB");
  return 0;
}
