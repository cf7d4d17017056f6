/* fresh_churn: a burst of small blocks freed and allocated again, in rounds.
 *
 * Each round mallocs 1,000,000 (x scale) blocks of 64 bytes, writes one
 * word in each, then frees them all in allocation order; 20 rounds. An
 * allocator that gives the memory back between rounds (or unmaps what its
 * caches cannot hold) pays a page fault per 4 KiB every round.
 * Figure: nanoseconds per malloc (its free included), lower is better.
 */
#include "common.h"

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 1);
  size_t n = (size_t)scaled(1000000, scale, 1000);
  int rounds = 20;
  void **ptrs = xmalloc_or_fail(n * sizeof(void *));
  uint64_t check = 0;
  double t0 = now_sec();
  for (int r = 0; r < rounds; r++) {
    for (size_t i = 0; i < n; i++) {
      uint64_t *p = malloc(64);
      if (!p) bench_fail("malloc(64) returned NULL");
      p[0] = i;
      ptrs[i] = p;
    }
    for (size_t i = 0; i < n; i++) {
      check += *(uint64_t *)ptrs[i];
      free(ptrs[i]);
    }
  }
  double t = now_sec() - t0;
  if (check != (uint64_t)rounds * (n * (n - 1) / 2)) bench_fail("checksum");
  free(ptrs);
  report_result(t * 1e9 / ((double)n * rounds), "ns");
  return 0;
}
