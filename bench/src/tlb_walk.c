/* tlb_walk: random accesses over a large set of small objects.
 *
 * 4 M (x scale) objects of 64 bytes are allocated, linked into one random
 * cycle (the shuffle's index array is a malloc'd block freed afterwards),
 * and after a 1 s pause the cycle is walked: every step a dependent load at
 * a random address, so the time per step is mostly TLB and cache misses.
 * With huge pages (lzmalloc: LZMALLOC_HUGEPAGES) one TLB entry covers 2 MiB
 * instead of 4 KiB. Figure: ns per access, lower is better.
 */
#include "common.h"

typedef struct obj_s {
  struct obj_s *next;
  uint64_t pad[7];
} obj_t;

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 1);
  size_t n = (size_t)scaled(4u << 20, scale, 4096);
  obj_t **objs = xmalloc_or_fail(n * sizeof(obj_t *));
  for (size_t i = 0; i < n; i++) {
    objs[i] = xmalloc_or_fail(sizeof(obj_t));
    objs[i]->pad[0] = i;
  }
  size_t *perm = xmalloc_or_fail(n * sizeof(size_t));
  for (size_t i = 0; i < n; i++) perm[i] = i;
  rng_t r;
  rng_seed(&r, 7);
  for (size_t i = n - 1; i > 0; i--) {
    size_t j = (size_t)rng_below(&r, i + 1);
    size_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  for (size_t i = 0; i < n; i++) objs[perm[i]]->next = objs[perm[(i + 1) % n]];
  free(perm);
  usleep(1000 * 1000); /* background work of the allocator, if any, happens here */
  size_t steps = n * 4;
  obj_t *p = objs[0];
  double t0 = now_sec();
  for (size_t i = 0; i < steps; i++) p = p->next;
  double t = now_sec() - t0;
  if (p == NULL) bench_fail("broken cycle");
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) {
    sum += objs[i]->pad[0];
    free(objs[i]);
  }
  free(objs);
  if (sum != (uint64_t)n * (n - 1) / 2) bench_fail("checksum");
  report_result(t * 1e9 / (double)steps, "ns");
  return 0;
}
