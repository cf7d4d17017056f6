/* burst_repeat: the same burst of allocations, round after round, as a
 * server handles one request after another: 10,000 (x scale) blocks of
 * 20 sizes from 8 B to 16 KiB, drawn at random (a fixed seed, so every
 * allocator sees the same sequence), each written whole, then all freed;
 * 8 rounds. The mix of sizes shifts from round to round as a real load's
 * does (16 KiB blocks: 468 to 531 a round, 8 KiB: 476 to 519), so an
 * allocator must move memory between its size classes to keep the peak.
 *
 *   result  how far the peak grew over the rounds: the highest resident
 *           memory at the end of a round's allocations, rounds 1-7, in
 *           percent of round 0's (statm, above the start: 100 is no
 *           growth); lower is better. An allocator that strands the pages one round freed
 *           (kept for one size class while another makes new ones, or in
 *           places its next round does not look) shows it here.
 *   peak    that highest peak, KiB above the start (metric peak_kib).
 * The blocks' bytes are checked before each free.
 */
#include "common.h"

#define ROUNDS 8

static const size_t sizes[20] = {8,   16,  24,  32,   48,   64,   96,   128,  200,  256,
                                 384, 512, 768, 1024, 1500, 2048, 3000, 4096, 8192, 16384};

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 1);
  size_t n = (size_t)scaled(10000, scale, 100);
  void **p = xmalloc_or_fail(n * sizeof *p);
  size_t *len = xmalloc_or_fail(n * sizeof *len);
  long base = (long)(rss_bytes() >> 10);
  long peak[ROUNDS];
  rng_t r;
  rng_seed(&r, 12345);
  for (int round = 0; round < ROUNDS; round++) {
    for (size_t i = 0; i < n; i++) {
      len[i] = sizes[rng_below(&r, 20)];
      p[i] = malloc(len[i]);
      if (p[i] == NULL) bench_fail("malloc(%zu)", len[i]);
      memset(p[i], (int)(i & 0xff), len[i]);
    }
    peak[round] = (long)(rss_bytes() >> 10) - base;
    for (size_t i = 0; i < n; i++) {
      const unsigned char *b = p[i];
      if (b[0] != (unsigned char)(i & 0xff) || b[len[i] - 1] != (unsigned char)(i & 0xff)) bench_fail("block bytes");
      free(p[i]);
    }
  }
  long high = peak[1];
  for (int round = 2; round < ROUNDS; round++)
    if (peak[round] > high) high = peak[round];
  printf("rounds:");
  for (int round = 0; round < ROUNDS; round++) printf(" %ld", peak[round]);
  printf(" KiB\n");
  printf("metric: peak_kib %ld\n", high > peak[0] ? high : peak[0]);
  free(len);
  free(p);
  if (peak[0] <= 0) bench_fail("round 0 added no resident memory");
  report_result(100.0 * (double)high / (double)peak[0], "%");
  return 0;
}
