/* large_decay: freed large ranges go back to the kernel by time (decay), not
 * by count. One thread (so no janitor: its own slow paths purge):
 *   1. a freed 8 MiB block stays mapped (cached) while the program makes no
 *      call, and a block of another size freed and allocated again 200
 *      times maps nothing new;
 *   2. while the thread keeps making slow-path calls, the cached ranges go
 *      back, not before ten purge delays have passed since the first free
 *      (the decay of a range starts at the first trim that sees it, which
 *      may be during part 1), and within a generous bound.
 * Without a cache (LZ_LARGE_CACHE_ENTRIES 0 or a purge delay of 0) a freed
 * block goes back at once. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "lzmalloc.h"

#include "testutil.h"

#define MiB ((size_t)1 << 20)
#define TIMEOUT_S 20.0

/* Bytes mapped for large blocks (chunks are 2 MiB each). */
static size_t large_mapped(void) {
  lz_stats_t st;
  lz_stats_get(&st);
  return st.mapped - (size_t)st.chunks * (2 * MiB);
}

int main(void) {
  /* Hardening level 2 (an LZ_SECURE=2 build) holds freed large ranges in
   * a quarantine before their reuse, which this test measures. */
  TU_SKIP_AT_LEVEL2("hardening level 2 delays the reuse of freed large ranges");
  lz_free(lz_malloc(100)); /* the heap and its first chunk */
  lz_trim(0);
  size_t base = large_mapped();
  unsigned char *p = lz_malloc(8 * MiB);
  CHECK(p != NULL);
  memset(p, 0x5a, 8 * MiB);
  lz_free(p);
  double t_free = tu_now();
  size_t cached = large_mapped();
  if (LZ_LARGE_CACHE_ENTRIES == 0 || LZ_PURGE_DELAY_MS == 0) {
    CHECKF(cached == base, "no cache, yet %zu bytes stayed mapped", cached - base);
    printf("large_decay: ok (no cache: given back at once)\n");
    return 0;
  }
  CHECKF(cached >= base + 8 * MiB, "freed block not cached (%zu bytes mapped)", cached - base);
  for (int i = 0; i < 200; i++) {
    p = lz_malloc(5 * MiB + (size_t)i * 4096);
    CHECK(p != NULL);
    p[0] = 1;
    lz_free(p);
    CHECKF(large_mapped() <= cached, "round %d mapped more (%zu > %zu)", i, large_mapped(), cached);
  }

  /* 2. Slow paths (medium blocks) tick the purge until the ranges are gone. */
  /* t: the time of the look that finds them gone (they were there at the
   * look before), so it is never earlier than the giving back. */
  double t0 = tu_now(), t;
  for (;;) {
    t = tu_now() - t0;
    if (large_mapped() <= base || t >= TIMEOUT_S) break;
    for (int i = 0; i < 64; i++) lz_free(lz_malloc(40000 + (size_t)i * 4096));
  }
  CHECKF(large_mapped() == base, "cached large ranges (%zu bytes) not given back after %.1f s",
         large_mapped() - base, t);
  double decay = LZ_PURGE_DELAY_MS * 10 / 1000.0, since_free = tu_now() - t_free;
  CHECKF(since_free >= decay * 0.9, "given back %.3f s after the first free, before the decay time %.3f s",
         since_free, decay);
  printf("large_decay: ok (given back after %.3f s)\n", t);
  return 0;
}
