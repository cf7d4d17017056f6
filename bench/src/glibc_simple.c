/* glibc-simple: single-threaded tight loops in the manner of glibc's
 * bench-malloc-simple: for several block sizes and batch lengths, allocate a
 * batch of equal blocks, write and check them, free them; repeat.
 * Figure: malloc+free pairs per second. Single-threaded by design (the
 * threads argument is accepted and ignored). */
#include "common.h"

static const size_t sizes[] = {16, 32, 64, 128, 256, 512, 1024, 4096};
static const size_t batches[] = {25, 100, 400, 1600};

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 1);
  uint64_t per_combo = scaled(150000, scale, 2000);
  void **v = malloc(sizeof(void *) * 1600);
  if (!v) bench_fail("malloc");
  double pairs = 0;
  double t0 = now_sec();
  for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
    for (size_t bi = 0; bi < sizeof batches / sizeof *batches; bi++) {
      size_t n = batches[bi], sz = sizes[si];
      uint64_t reps = per_combo / n;
      for (uint64_t rep = 0; rep < reps; rep++) {
        for (size_t i = 0; i < n; i++) {
          unsigned char *p = malloc(sz);
          if (!p) bench_fail("malloc");
          p[0] = (unsigned char)i;
          p[sz - 1] = (unsigned char)rep;
          v[i] = p;
        }
        for (size_t i = 0; i < n; i++) {
          unsigned char *p = v[i];
          if (p[0] != (unsigned char)i || p[sz - 1] != (unsigned char)rep)
            bench_fail("block %zu of size %zu corrupted", i, sz);
          free(p);
        }
      }
      pairs += (double)reps * n;
    }
  }
  double t = now_sec() - t0;
  free(v);
  printf("glibc-simple: %.0f pairs in %.3f s\n", pairs, t);
  report_result(pairs / t / 1e6, "Mpairs/s");
  return 0;
}
