/* mleak: a slowly leaking program, in the manner of the classic mleak
 * benchmark.
 *
 * A request loop, as a long-running service makes it: each request
 * allocates 3-12 blocks (log-uniform 16 B-4 KiB, one in 64 up to 64 KiB),
 * links them, fills and checks them, and frees them all, except that one
 * request in 50 leaks one of its blocks: never freed, scattered among the
 * memory that is reused. A cache of 2,000 longer-lived entries is replaced
 * at random meanwhile. The leaked blocks pin the pages they sit on, so an
 * allocator that cannot reuse the rest of those pages grows faster than
 * the leak. Figures: requests per second (millions), and the row
 * mleak-overhead, the growth of the resident set over the run divided by
 * the bytes leaked (lower is better; 1 = the process grew by exactly what
 * it leaked).
 */
#include "common.h"

typedef struct node {
  struct node *next;
  size_t size;
} node_t;

static size_t req_size(rng_t *r) {
  if (rng_below(r, 64) == 0) return rng_logsize(r, 4096, 65536);
  return rng_logsize(r, 16, 4096);
}

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 1);
  uint64_t requests = scaled(1500000, scale, 2000);
  enum { CACHE = 2000 };
  void **cache = calloc(CACHE, sizeof(void *));
  if (!cache) bench_fail("calloc");
  rng_t r;
  rng_seed(&r, 0x3ea4);
  for (int i = 0; i < CACHE; i++) cache[i] = blk_new(rng_logsize(&r, 16, 2048), (uint32_t)i);
  size_t rss0 = rss_bytes();
  node_t *leaked = NULL;
  uint64_t nleaked = 0, leaked_bytes = 0, sum = 0;
  double t0 = now_sec();
  for (uint64_t q = 0; q < requests; q++) {
    int nb = 3 + (int)rng_below(&r, 10);
    node_t *head = NULL;
    for (int i = 0; i < nb; i++) {
      size_t sz = req_size(&r);
      node_t *n = malloc(sz);
      if (!n) bench_fail("malloc(%zu) returned NULL", sz);
      n->next = head;
      n->size = sz;
      memset(n + 1, (int)(q + (uint64_t)i) & 0xff, sz < 64 + sizeof *n ? sz - sizeof *n : 64);
      for (size_t off = 4096; off < sz; off += 4096) ((unsigned char *)n)[off] = 1; /* every page resident */
      head = n;
    }
    int leak_at = rng_below(&r, 50) == 0 ? (int)rng_below(&r, (uint64_t)nb) : -1;
    int i = nb;
    while (head) {
      node_t *n = head;
      head = n->next;
      i--;
      unsigned char *b = (unsigned char *)(n + 1);
      size_t chk = n->size < 64 + sizeof *n ? n->size - sizeof *n : 64;
      for (size_t k = 0; k < chk; k += 8)
        if (b[k] != (unsigned char)(q + (uint64_t)i)) bench_fail("request %" PRIu64 ": block overwritten", q);
      sum += n->size;
      if (i == leak_at) {
        n->next = leaked;
        leaked = n;
        nleaked++;
        leaked_bytes += n->size;
      } else {
        free(n);
      }
    }
    if ((q & 7) == 0) {
      size_t k = (size_t)rng_below(&r, CACHE);
      blk_free(cache[k], "mleak cache");
      cache[k] = blk_new(rng_logsize(&r, 16, 2048), (uint32_t)q);
    }
  }
  double t = now_sec() - t0;
  size_t rss1 = rss_bytes();
  uint64_t n = 0;
  for (node_t *l = leaked; l; l = l->next) n++; /* still reachable and intact */
  if (n != nleaked || sum == 0) bench_fail("leak list has %" PRIu64 " of %" PRIu64 " blocks", n, nleaked);
  for (int k = 0; k < CACHE; k++) blk_free(cache[k], "mleak cache end");
  free(cache);
  double growth = rss1 > rss0 ? (double)(rss1 - rss0) : 0.0;
  printf("mleak: %" PRIu64 " requests in %.3f s, %" PRIu64 " blocks leaked (%.1f MiB), RSS grew %.1f MiB\n",
         requests, t, nleaked, (double)leaked_bytes / 1048576.0, growth / 1048576.0);
  printf("metric: overhead %.4g x\n", growth / (double)(leaked_bytes ? leaked_bytes : 1));
  report_result((double)requests / t / 1e6, "Mreq/s");
  return 0;
}
