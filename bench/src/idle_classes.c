/* idle_classes: memory kept for size classes a program has left, as a
 * service that makes many sizes at start-up and few later: 300 (x scale)
 * blocks of each of 26 sizes from 16 B to 4 KiB, each written, all freed;
 * then 1.5 s of one other size (100 blocks of 6,000 B made and freed,
 * 100 us apart), so the allocator keeps being called.
 *
 *   result  resident memory at the end, KiB above the start (statm);
 *           lower is better. The last round's 6,000 B blocks are freed
 *           too, so what stays is what the allocator keeps: an allocator
 *           that keeps a slab (a page run, a span) of each size it served
 *           once shows it here.
 *   peak    resident memory after the first phase's allocations, KiB
 *           above the start (metric peak_kib).
 */
#include <unistd.h>
#include "common.h"

static const size_t sizes[] = {16,  32,  48,  64,  80,  96,  112, 128,  160,  192,  224,  256,  320,
                               384, 448, 512, 576, 640, 768, 896, 1024, 1280, 1536, 2048, 3072, 4096};
#define NSIZES (sizeof sizes / sizeof *sizes)

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 1);
  size_t n = (size_t)scaled(300, scale, 10);
  void **v = xmalloc_or_fail(NSIZES * n * sizeof *v);
  long base = (long)(rss_bytes() >> 10);
  for (size_t s = 0; s < NSIZES; s++)
    for (size_t i = 0; i < n; i++) {
      v[s * n + i] = malloc(sizes[s]);
      if (v[s * n + i] == NULL) bench_fail("malloc(%zu)", sizes[s]);
      memset(v[s * n + i], (int)(i & 0xff), sizes[s]);
    }
  long peak = (long)(rss_bytes() >> 10) - base;
  for (size_t k = 0; k < NSIZES * n; k++) free(v[k]);
  static void *w[100];
  double t0 = now_sec();
  while (now_sec() - t0 < 1.5) {
    for (int i = 0; i < 100; i++) {
      w[i] = malloc(6000);
      if (w[i] == NULL) bench_fail("malloc(6000)");
      memset(w[i], i, 64);
    }
    for (int i = 0; i < 100; i++) free(w[i]);
    usleep(100);
  }
  long kept = (long)(rss_bytes() >> 10) - base;
  free(v);
  printf("metric: peak_kib %ld\n", peak);
  report_result((double)(kept > 0 ? kept : 0), "KiB");
  return 0;
}
