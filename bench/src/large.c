/* large: blocks of 1-256 MiB (log-uniform), a few alive at a time, every page
 * touched and checked; then realloc growth of a block from 1 MiB to 256 MiB
 * (64 MiB at scale < 0.5) in steps of x1.25, checking the contents survive each move.
 * Figure: operations (allocations + reallocs) per second. */
#include "common.h"

#define LIVE 4
#define MiB ((size_t)1 << 20)

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 1);
  uint64_t nalloc = scaled(40, scale, 4);
  int growths = (int)scaled(2, scale, 1);
  /* small scales (quick runs) stop the realloc growth at 64 MiB */
  size_t grow_max = scale < 0.5 ? 64 * MiB : 256 * MiB;
  rng_t r;
  rng_seed(&r, 0x1a26e);
  void *live[LIVE] = {0};
  uint64_t ops = 0;
  double t0 = now_sec();
  for (uint64_t i = 0; i < nalloc; i++) {
    size_t k = (size_t)rng_below(&r, LIVE);
    blk_free(live[k], "large");
    size_t sz = rng_logsize(&r, 1 * MiB, 256 * MiB) + (size_t)rng_below(&r, 4096);
    live[k] = blk_new(sz, (uint32_t)i);
    ops++;
  }
  for (int k = 0; k < LIVE; k++) {
    blk_free(live[k], "large");
    live[k] = NULL;
  }
  for (int g = 0; g < growths; g++) {
    size_t sz = 1 * MiB;
    void *p = blk_new(sz, 7);
    void *other = blk_new(MiB, 8); /* something in the way of in-place growth */
    while (sz < grow_max) {
      sz = sz + sz / 4;
      if (sz > grow_max) sz = grow_max;
      p = blk_realloc(p, sz, (uint32_t)sz, "large realloc");
      ops++;
    }
    blk_free(other, "large");
    blk_free(p, "large");
  }
  double t = now_sec() - t0;
  printf("large: %" PRIu64 " ops in %.3f s\n", ops, t);
  report_result((double)ops / t, "ops/s");
  return 0;
}
