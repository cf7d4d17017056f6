/* calloc-sparse: 600 callocs of 4-64 MiB (uniform, plus a few bytes), at
 * most 8 alive (a random one freed before each new one once 8 are alive),
 * of which the program touches one page in 16 (a table sized for the
 * worst case, used sparsely). Each touched page must read zero, and is
 * then written. An allocator that hands freed memory back to calloc must
 * zero it; one that clears every page of it (memset) faults in and keeps
 * resident the pages the program never touches, where a fresh mapping
 * (glibc) costs a fault per touched page only.
 * Figures: microseconds per calloc + touches + free (result, lower is
 * better) and minor page faults per calloc (metric "faults"); bench/run
 * reads the peak RSS. */
#include "common.h"

#define LIVE 8
#define MiB ((size_t)1 << 20)
#define PAGE ((size_t)4096)
#define EVERY 16

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 1);
  uint64_t ncalloc = scaled(600, scale, 50);
  rng_t r;
  rng_seed(&r, 0xca11);
  unsigned char *live[LIVE] = {0};
  int nlive = 0;
  long f0 = minor_faults();
  double t0 = now_sec();
  for (uint64_t i = 0; i < ncalloc; i++) {
    int k = nlive;
    if (nlive == LIVE) {
      k = (int)rng_below(&r, LIVE);
      free(live[k]);
    } else {
      nlive++;
    }
    size_t n = (size_t)rng_range(&r, 4 * MiB, 64 * MiB) + rng_below(&r, 64);
    unsigned char *p = calloc(1, n);
    if (!p) bench_fail("calloc(%zu) returned NULL", n);
    size_t first = (size_t)rng_below(&r, EVERY) * PAGE;
    for (size_t off = first; off < n; off += EVERY * PAGE) {
      if (p[off] != 0 || p[n - 1] != 0) bench_fail("calloc(%zu): byte %zu not zero", n, off);
      p[off] = (unsigned char)(i + 1);
    }
    live[k] = p;
  }
  for (int k = 0; k < nlive; k++) free(live[k]);
  double t = now_sec() - t0;
  long faults = minor_faults() - f0;
  printf("calloc-sparse: %" PRIu64 " callocs in %.3f s, %.1f minor faults per calloc\n", ncalloc, t,
         (double)faults / (double)ncalloc);
  printf("metric: faults %.1f faults/calloc\n", (double)faults / (double)ncalloc);
  report_result(t * 1e6 / (double)ncalloc, "us/calloc");
  return 0;
}
