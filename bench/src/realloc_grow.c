/* realloc_grow: a buffer grown by realloc, an eighth at a time, as
 * python's lists and git's strbufs grow, through the small and medium
 * sizes into a large block.
 *
 *   once   one buffer grown from 4 KiB to 2.6 MiB, every new byte
 *          written: the resident memory it added beyond its own size
 *          (statm, KiB), the metric grow_extra (lower is better). An
 *          allocator that keeps what the buffer left behind on the way
 *          (a freed block at each step, the last medium span at the move
 *          to a large block) shows it here; glibc grows in place at the
 *          top of its heap and moves to mmap, trimming the top.
 *   rounds 1,000 (x scale) buffers grown from 4 KiB to 2 MiB the same
 *          way, each freed before the next: microseconds a round, the
 *          result (lower is better). An allocator that gives back at
 *          every move what the next round takes again pays page faults.
 * The buffer's bytes are checked at its end.
 */
#include "common.h"

/* Grows a buffer from 4 KiB to at least `max` bytes; returns it, its size in *n. */
static unsigned char *grow(size_t max, size_t *n) {
  size_t size = 4096;
  unsigned char *p = malloc(size);
  if (p == NULL) bench_fail("malloc");
  memset(p, 1, size);
  while (size < max) {
    size_t next = size + size / 8 + 6;
    p = realloc(p, next);
    if (p == NULL) bench_fail("realloc(%zu)", next);
    memset(p + size, (int)(next & 0xff), next - size);
    size = next;
  }
  if (p[0] != 1 || p[size - 1] != (unsigned char)(size & 0xff)) bench_fail("buffer bytes");
  *n = size;
  return p;
}

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 1);
  size_t n;
  long before = (long)(rss_bytes() >> 10);
  unsigned char *once = grow((size_t)2600 << 10, &n);
  long extra = (long)(rss_bytes() >> 10) - before - (long)(n >> 10);
  free(once);
  printf("metric: grow_extra %ld KiB\n", extra);

  int rounds = (int)scaled(1000, scale, 20);
  double t0 = now_sec();
  for (int r = 0; r < rounds; r++) free(grow((size_t)2 << 20, &n));
  report_result((now_sec() - t0) * 1e6 / rounds, "us");
  return 0;
}
