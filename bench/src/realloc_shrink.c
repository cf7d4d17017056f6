/* realloc_shrink: buffers filled at one size and cut to their length, as
 * a program reads into a buffer of a guessed size and then fits it
 * (python's strings and bytes, a read buffer, a vector's shrink_to_fit),
 * kept while new ones are made: 600 (x scale) buffers of 20 KiB to
 * 600 KiB (a fixed seed), each written whole, then cut by realloc to 50
 * to 95 % of that, its bytes kept; one in four of the buffers kept so far
 * is freed along the way, at random.
 *
 *   result   resident memory at the end, above the start (statm), in
 *            percent of the bytes the live buffers hold (lower is
 *            better): an allocator that keeps a cut buffer's tail with
 *            it holds the pages the program wrote and no longer uses;
 *            one that gives the tail back (or moves the buffer) lets the
 *            next buffers take them.
 *   us       microseconds per buffer (metric us_per_buffer).
 * The buffers' bytes are checked before each free and at the end.
 */
#include "common.h"

#define MIN_SIZE ((size_t)20 << 10)
#define MAX_SIZE ((size_t)600 << 10)

typedef struct {
  unsigned char *p;
  size_t len;
} buf_t;

static void check(const buf_t *b) {
  if (b->p[0] != (unsigned char)b->len || b->p[b->len - 1] != (unsigned char)(b->len >> 8))
    bench_fail("buffer of %zu bytes changed", b->len);
}

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 1);
  size_t n = (size_t)scaled(600, scale, 8);
  buf_t *live = calloc(n, sizeof *live);
  if (live == NULL) bench_fail("calloc");
  rng_t r;
  rng_seed(&r, 0x5412);
  size_t count = 0;
  long before = (long)(rss_bytes() >> 10);
  double t0 = now_sec();
  for (size_t i = 0; i < n; i++) {
    size_t size = (size_t)rng_range(&r, MIN_SIZE, MAX_SIZE);
    unsigned char *p = malloc(size);
    if (p == NULL) bench_fail("malloc(%zu)", size);
    memset(p, 0x5a, size);
    size_t len = size / 100 * (size_t)rng_range(&r, 50, 95);
    p[0] = (unsigned char)len;
    p[len - 1] = (unsigned char)(len >> 8);
    unsigned char *q = realloc(p, len);
    if (q == NULL) bench_fail("realloc(%zu)", len);
    live[count++] = (buf_t){q, len};
    check(&live[count - 1]);
    if (rng_below(&r, 4) == 0) {
      size_t k = (size_t)rng_below(&r, count);
      check(&live[k]);
      free(live[k].p);
      live[k] = live[--count];
    }
  }
  double t = now_sec() - t0;
  size_t held = 0;
  for (size_t k = 0; k < count; k++) {
    check(&live[k]);
    held += live[k].len;
  }
  long resident = (long)(rss_bytes() >> 10) - before;
  printf("realloc_shrink: %zu buffers, %zu live holding %zu KiB, %ld KiB resident above the start\n", n, count,
         held >> 10, resident);
  printf("metric: us_per_buffer %.3f\n", t * 1e6 / (double)n);
  report_result(100.0 * (double)resident / (double)(held >> 10), "%");
  for (size_t k = 0; k < count; k++) free(live[k].p);
  free(live);
  return 0;
}
