/* large-reuse: 2,000 allocations of 5-25 MiB (uniform, plus a few bytes),
 * each zero-filled by the program (memset, never turned into calloc) and
 * tagged, at most 20 alive: a
 * random live block is freed before each new one once 20 are alive. The
 * live set stays bounded, so an allocator that reuses freed pages for the
 * next block of another size faults each page about once; one that maps
 * fresh memory faults every page of every block.
 * Checked: every block is zero when filled and keeps its tags (first and
 * last word of every 64 KiB) until it is freed.
 * Figures: allocations per second (result) and minor page faults per
 * allocation (metric "faults", from getrusage). */
#include "common.h"

#define LIVE 20
#define MiB ((size_t)1 << 20)
#define STRIDE ((size_t)64 << 10)

/* Called through a volatile pointer: the compiler must not turn malloc +
 * memset(0) into calloc (which may skip fresh pages): the program writes. */
static void *(*volatile zero_fill)(void *, int, size_t) = memset;

static void tag(uint64_t *w, size_t n, uint64_t t) {
  for (size_t off = 0; off + STRIDE <= n; off += STRIDE) w[off / 8] = t ^ off;
  w[n / 8 - 1] = ~t;
}

static void check(const uint64_t *w, size_t n, uint64_t t) {
  for (size_t off = 0; off + STRIDE <= n; off += STRIDE)
    if (w[off / 8] != (t ^ off)) bench_fail("block %" PRIu64 ": tag at %zu lost", t, off);
  if (w[n / 8 - 1] != ~t) bench_fail("block %" PRIu64 ": last word lost", t);
}

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 1);
  uint64_t nalloc = scaled(2000, scale, 100);
  rng_t r;
  rng_seed(&r, 0x5a25);
  void *live[LIVE] = {0};
  size_t size[LIVE] = {0};
  uint64_t id[LIVE] = {0};
  int nlive = 0;
  long f0 = minor_faults();
  double t0 = now_sec();
  for (uint64_t i = 0; i < nalloc; i++) {
    int k = nlive;
    if (nlive == LIVE) {
      k = (int)rng_below(&r, LIVE);
      check(live[k], size[k], id[k]);
      free(live[k]);
    } else {
      nlive++;
    }
    size_t n = (size_t)rng_range(&r, 5 * MiB, 25 * MiB) & ~(size_t)7;
    unsigned char *p = malloc(n);
    if (!p) bench_fail("malloc(%zu) returned NULL", n);
    zero_fill(p, 0, n);
    if (p[n / 2] != 0 || p[n - 1] != 0) bench_fail("memset lost");
    live[k] = p;
    size[k] = n;
    id[k] = i + 1;
    tag((uint64_t *)(void *)p, n, id[k]);
  }
  for (int k = 0; k < nlive; k++) {
    check(live[k], size[k], id[k]);
    free(live[k]);
  }
  double t = now_sec() - t0;
  long faults = minor_faults() - f0;
  printf("large-reuse: %" PRIu64 " allocations in %.3f s, %.1f minor faults per allocation\n", nalloc, t,
         (double)faults / (double)nalloc);
  printf("metric: faults %.1f faults/alloc\n", (double)faults / (double)nalloc);
  report_result((double)nalloc / t, "allocs/s");
  return 0;
}
