/* large_reuse: freed large memory serves the next large request of any
 * size before anything new is mapped (lz_stats_get().mapped), calloc of
 * reused memory returns zeros, realloc keeps the contents, and the
 * statistics come back exactly when everything is freed and trimmed.
 *
 *   1. one 24 MiB block, then 60 blocks of random sizes (1-24 MiB) one at a
 *      time, each filled: mapped never grows past the first block's;
 *   2. calloc from a dirty reused range, and from one that had to grow;
 *   3. a block bigger than any cached range takes the pages of the other
 *      cached ranges (moved): mapped does not grow, malloc sees their old
 *      bytes and calloc zeros;
 *   4. four live blocks of 1-8 MiB replaced at random 400 times: mapped
 *      stays within 1.5 x the largest possible live set;
 *   5. after freeing everything: large_in_use 0; after lz_trim(0): mapped
 *      back to the start;
 *   6. small blocks that need new chunks while an 8 MiB range waits in the
 *      cache take its units: mapped does not grow, the chunks lie in the
 *      range, calloc's blocks there read zero; all back after a trim;
 *   7. resident pages first: blocks of sizes that leave most of their last
 *      unit untouched (12 MiB + 64 B, 3.4 MB, ...), all freed, then asked
 *      for again in the same order and written to their requested size:
 *      every page written is resident already (the cached ranges hold
 *      every page they need; taking ranges by size alone put blocks over
 *      untouched units: 1,300 pages written fresh);
 *   8. a chunk made of a cached unit whose pages are resident starts with
 *      them given back: the unit holds only the pages its first blocks
 *      use (it kept all 503 usable pages resident till their decay);
 *   9. calloc over a cached range of which half was never touched reads
 *      zero and faults none of that half in;
 *  10. alignments above a unit (2 MiB): aligned_alloc(8 MiB, 3 MiB) after
 *      a 12 MiB block was freed lies in its cached range, on the first
 *      multiple of 8 MiB there, with no new mapping; then 40 rounds of
 *      aligned_alloc(4 MiB, 3 MiB), written and freed, map nothing (each
 *      was mapped anew before);
 *  11. a request the kernel refuses whatever is given back (2^46 bytes,
 *      above RAM plus swap under the default overcommit heuristic) fails
 *      with ENOMEM and leaves the cache alone: a 40 MiB range cached
 *      before it is still mapped after it (the failure emptied the cache
 *      before); skipped under another overcommit mode or an address-space
 *      limit.
 * Run with no decay (LZMALLOC_PURGE_DELAY=-1, tests/unit.cmake): a range
 * given back by time before its reuse fails the reuse checks on a slow
 * machine (under qemu-user part 6 once found 0 of its small blocks in the
 * cached range, given back before the first chunk was made); lz_trim(0)
 * still gives everything back. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "lzmalloc.h"

#include "testutil.h"

#define MiB ((size_t)1 << 20)

static size_t mapped(void) {
  lz_stats_t st;
  lz_stats_get(&st);
  return st.mapped;
}

/* Two cached ranges of 6 MiB kept apart by live blocks; a 12 MiB block
 * fits neither and must be made of both. */
static void fill_from_cache(int use_calloc) {
  lz_trim(0);
  unsigned char *a = lz_malloc(6 * MiB), *x = lz_malloc(2 * MiB), *b = lz_malloc(6 * MiB), *y = lz_malloc(2 * MiB);
  CHECK(a != NULL && x != NULL && b != NULL && y != NULL);
  memset(a, 0xa1, 6 * MiB);
  memset(b, 0xb2, 6 * MiB);
  lz_free(a);
  lz_free(b);
  size_t m1 = mapped();
  unsigned char *c = use_calloc ? lz_calloc(3, 4 * MiB) : lz_malloc(12 * MiB);
  CHECK(c != NULL);
  CHECKF(mapped() <= m1, "%s(12 MiB) beside 12 MiB of cached ranges: mapped %zu MiB more", use_calloc ? "calloc" : "malloc",
         (mapped() - m1) >> 20);
  if (use_calloc) {
    CHECK(tu_all_zero(c, 12 * MiB));
  } else {
    size_t a1 = 0, b2 = 0;
    for (size_t i = 0; i < 12 * MiB; i += 4096) {
      a1 += c[i] == 0xa1;
      b2 += c[i] == 0xb2;
    }
    CHECKF(a1 == 6 * MiB / 4096 && b2 == 6 * MiB / 4096, "pages of the first range %zu, of the second %zu", a1, b2);
  }
  lz_free(c);
  lz_free(x);
  lz_free(y);
}

/* Resident pages of [p, p + n) (page-aligned p). */
static size_t resident_pages(void *p, size_t n) {
  static unsigned char vec[16 * MiB / 4096];
  size_t pg = (size_t)sysconf(_SC_PAGESIZE), count = 0, np = (n + pg - 1) / pg;
  CHECK(np <= sizeof vec && mincore(p, n, vec) == 0);
  for (size_t i = 0; i < np; i++) count += vec[i] & 1;
  return count;
}

/* 7. Two rounds of the same blocks (xz -d -T2's buffers per file: two
 * outputs of 12 MiB + 64 B, dictionaries of 2 MiB, inputs of 3.4 MB; one
 * input freed, and an 8 MiB + 117 B and a 2.3 MB block made meanwhile;
 * freed in its order: which ranges the cache keeps once it holds more
 * than the peak of live bytes depends on it). In the second round every
 * page a block is written over must be resident already (mincore before
 * the write: what the write would fault in fresh; counted per block, not
 * by the process's RSS, which a sanitizer's shadow pages move). */
static void resident_first(void) {
  static const size_t sizes[] = {12582976, 2097152, 3471392, 12582976, 2097152, 3449196, 8388725, 2329996};
  enum { N = sizeof sizes / sizeof *sizes };
  lz_trim(0);
  size_t fresh = 0, pg = (size_t)sysconf(_SC_PAGESIZE);
  for (int round = 0; round < 2; round++) {
    unsigned char *p[N];
    for (int i = 0; i < N; i++) {
      if (i == 6) lz_free(p[2]);
      p[i] = lz_malloc(sizes[i]);
      CHECK(p[i] != NULL);
      if (round == 1) fresh += (sizes[i] + pg - 1) / pg - resident_pages(p[i], sizes[i]);
      memset(p[i], 0x40 + i, sizes[i]);
    }
    static const int order[] = {5, 7, 3, 0, 4, 1, 6}; /* the program's */
    for (int i = 0; i < N - 1; i++) lz_free(p[order[i]]);
  }
  CHECKF(fresh == 0, "second round of the same blocks: %zu pages written fresh beside cached ones", fresh);
}

/* After a trim, one block of n bytes written with `byte` and freed: its
 * range, cached. */
static unsigned char *cached_block(size_t n, int byte) {
  lz_trim(0);
  unsigned char *p = lz_malloc(n);
  CHECK(p != NULL);
  memset(p, byte, n);
  lz_free(p);
  return p;
}

/* 8. A chunk made of a resident cached unit. */
static void unit_given_back(void) {
  unsigned char *p = cached_block(4 * MiB, 0x5c);
  CHECK(resident_pages(p, 2 * MiB) == 2 * MiB / (size_t)sysconf(_SC_PAGESIZE));
  enum { MAX = 3 * 2048 };
  static void *small[MAX];
  int n = 0;
  unsigned char *in = NULL;
  while (n < MAX && in == NULL) {
    unsigned char *b = small[n++] = lz_malloc(1000);
    CHECK(b != NULL);
    if (b >= p && b < p + 4 * MiB) in = b;
  }
  CHECKF(in != NULL, "no small block in the cached range after %d", n);
  unsigned char *unit = (unsigned char *)((uintptr_t)in & ~(2 * MiB - 1));
  size_t res = resident_pages(unit, 2 * MiB);
  CHECKF(res <= 4, "a chunk made of a resident cached unit keeps %zu pages resident for its first block", res);
  for (int i = 0; i < n; i++) lz_free(small[i]);
}

/* 9. calloc over a cached range whose pages were asked for but not all
 * touched: its 16 MiB block was written in its first and third 4 MiB
 * only. The calloc that takes the range reads zero throughout, and leaves
 * resident no more than those 8 MiB (cleared in place), not the whole
 * block (a memset of it all faulted the other 8 MiB in); its written
 * quarter stays resident (cleared, not given back). */
static void calloc_untouched(void) {
  lz_trim(0);
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  unsigned char *p = lz_malloc(16 * MiB);
  CHECK(p != NULL);
  memset(p, 0x33, 4 * MiB);
  memset(p + 8 * MiB, 0x34, 4 * MiB);
  lz_free(p);
  unsigned char *c = lz_calloc(4, 4 * MiB);
  CHECK(c == p); /* the cached range, not a fresh mapping */
  size_t res = resident_pages(c, 16 * MiB), quarter = resident_pages(c + 8 * MiB, 4 * MiB);
  CHECK(tu_all_zero(c, 16 * MiB));
  CHECKF(res <= 8 * MiB / pg, "calloc(16 MiB) over a range with 8 MiB written: %zu pages resident (%zu MiB)", res,
         res * pg >> 20);
  CHECKF(quarter == 4 * MiB / pg, "its third quarter, written before: %zu of %zu pages resident", quarter, 4 * MiB / pg);
  lz_free(c);
}

static void aligned_above_unit(void) {
  unsigned char *p = cached_block(12 * MiB, 0x41);
  size_t m0 = mapped();
  unsigned char *q = lz_aligned_alloc(8 * MiB, 3 * MiB);
  uintptr_t first = ((uintptr_t)p + 8 * MiB - 1) & ~(uintptr_t)(8 * MiB - 1);
  CHECK(q != NULL && (uintptr_t)q % (8 * MiB) == 0);
  CHECKF((uintptr_t)q == first && mapped() == m0,
         "aligned_alloc(8 MiB, 3 MiB) at %p, mapped %zu MiB more; the cached range %p holds it at %p", (void *)q,
         (mapped() - m0) >> 20, (void *)p, (void *)first);
  memset(q, 0x42, 3 * MiB);
  CHECK(lz_usable_size(q) >= 3 * MiB);
  lz_free(q);
  for (int i = 0; i < 40; i++) {
    q = lz_aligned_alloc(4 * MiB, 3 * MiB);
    CHECK(q != NULL && (uintptr_t)q % (4 * MiB) == 0);
    memset(q, i, 3 * MiB);
    CHECKF(mapped() == m0, "round %d: aligned_alloc(4 MiB, 3 MiB): mapped %zu MiB more", i, (mapped() - m0) >> 20);
    lz_free(q);
  }
  lz_trim(0);
}

static void hopeless_keeps_cache(void) {
  char mode[2] = {0, 0};
  FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
  if (f != NULL) {
    if (fread(mode, 1, 1, f) != 1) mode[0] = 0;
    fclose(f);
  }
  struct rlimit as;
  struct sysinfo si;
  size_t huge = (size_t)1 << 46;
  if (mode[0] != '0' || getrlimit(RLIMIT_AS, &as) != 0 || as.rlim_cur != RLIM_INFINITY || sysinfo(&si) != 0 ||
      (unsigned __int128)(si.totalram + si.totalswap) * si.mem_unit >= huge) {
    printf("large_reuse: part 11 skipped (overcommit mode %c, or a limit)\n", mode[0] ? mode[0] : '?');
    return;
  }
  unsigned char *p = cached_block(40 * MiB, 0x43);
  size_t m0 = mapped();
  errno = 0;
  void *q = lz_malloc(huge);
  CHECKF(q == NULL && errno == ENOMEM, "malloc(2^46): %p, errno %d", q, errno);
  CHECKF(mapped() == m0, "a refused malloc(2^46) gave back %zu MiB of the cache", (m0 - mapped()) >> 20);
  p = lz_malloc(40 * MiB);
  CHECK(p != NULL);
  lz_free(p);
  lz_trim(0);
}

int main(void) {
  /* Hardening level 2 (an LZ_SECURE=2 build) holds freed large ranges in
   * a quarantine before their reuse, which this test measures. */
  TU_SKIP_AT_LEVEL2("hardening level 2 delays the reuse of freed large ranges");
  tu_rng_t r;
  tu_rng_seed(&r, 0x1a49e);
  lz_free(lz_malloc(100)); /* the heap and its first chunk */
  lz_trim(0);
  resident_first(); /* first: no ranges or holes of the other parts beside its own */
  lz_stats_t st0;
  lz_stats_get(&st0);

  /* 1. One at a time, sizes below the first. */
  unsigned char *p = lz_malloc(24 * MiB);
  CHECK(p != NULL);
  memset(p, 0x5a, 24 * MiB);
  size_t m1 = mapped();
  lz_free(p);
  for (int i = 0; i < 60; i++) {
    size_t n = (size_t)tu_rng_range(&r, MiB + 1, 24 * MiB);
    int use_calloc = i % 3 == 0;
    p = use_calloc ? lz_calloc(1, n) : lz_malloc(n);
    CHECK(p != NULL);
    if (use_calloc) CHECKF(tu_all_zero(p, n), "calloc(%zu) from a reused range is not zero", n);
    memset(p, 0xa0 + i % 16, n);
    size_t m = mapped();
    CHECKF(m <= m1, "round %d: %zu bytes: mapped %zu > %zu after the first block", i, n, m, m1);
    lz_free(p);
  }

  /* 2. calloc of dirty memory: reused as it is, and grown. */
  p = lz_malloc(10 * MiB);
  CHECK(p != NULL);
  memset(p, 0xcc, 10 * MiB);
  lz_free(p);
  p = lz_calloc(1, 6 * MiB + 3);
  CHECK(p != NULL && tu_all_zero(p, 6 * MiB + 3));
  memset(p, 0xdd, 6 * MiB + 3);
  lz_free(p);
  lz_trim(0);
  p = lz_malloc(3 * MiB);
  CHECK(p != NULL);
  memset(p, 0xee, 3 * MiB);
  lz_free(p);
  p = lz_calloc(5, 4 * MiB);
  CHECK(p != NULL && tu_all_zero(p, 20 * MiB));
  /* realloc keeps the contents, growing and shrinking. */
  tu_pattern_fill(p, 20 * MiB, 7);
  p = lz_realloc(p, 45 * MiB);
  CHECK(p != NULL && tu_pattern_check(p, 20 * MiB, 7) == SIZE_MAX);
  p = lz_realloc(p, 5 * MiB);
  CHECK(p != NULL && tu_pattern_check(p, 5 * MiB, 7) == SIZE_MAX && lz_usable_size(p) >= 5 * MiB);
  lz_free(p);

  /* 3. Blocks made of several cached ranges. */
  fill_from_cache(0);
  fill_from_cache(1);

  /* 4. A bounded live set of mixed sizes. */
  lz_trim(0);
  size_t base = mapped();
  enum { LIVE = 4 };
  unsigned char *live[LIVE] = {0};
  size_t peak = 0;
  for (int i = 0; i < 400; i++) {
    int k = (int)tu_rng_below(&r, LIVE);
    lz_free(live[k]);
    size_t n = (size_t)tu_rng_range(&r, MiB + 1, 8 * MiB);
    live[k] = lz_malloc(n);
    CHECK(live[k] != NULL);
    memset(live[k], i, n);
    size_t m = mapped() - base;
    if (m > peak) peak = m;
  }
  CHECKF(peak <= LIVE * 8 * MiB * 3 / 2, "mapped grew by %zu MiB for at most %zu MiB live", peak >> 20,
         (size_t)LIVE * 8);
  for (int k = 0; k < LIVE; k++) lz_free(live[k]);

  /* 5. Exact figures once everything is freed. */
  lz_stats_t st;
  lz_stats_get(&st);
  CHECKF(st.large_in_use == 0, "large_in_use %zu", st.large_in_use);
  lz_trim(0);
  lz_stats_get(&st);
  CHECKF(st.mapped <= st0.mapped, "mapped %zu after trim, %zu at the start", st.mapped, st0.mapped);
  /* 6. Chunks made of cached large memory. */
  size_t m0 = mapped();
  p = lz_malloc(8 * MiB);
  CHECK(p != NULL);
  memset(p, 0x77, 8 * MiB);
  lz_free(p);
  CHECKF(mapped() == m0 + 8 * MiB, "the freed 8 MiB block is not cached: mapped %zu, %zu before", mapped(), m0);
  enum { SMALL = 3 * 2048 }; /* 6 MiB of 1000-byte blocks: three chunks at least */
  static unsigned char *small[SMALL];
  size_t inside = 0;
  for (int i = 0; i < SMALL; i++) {
    small[i] = i % 2 ? lz_calloc(1, 1000) : lz_malloc(1000);
    CHECK(small[i] != NULL);
    if (i % 2) CHECKF(tu_all_zero(small[i], 1000), "calloc(1000) block %d not zero", i);
    memset(small[i], 0x33, 1000);
    inside += small[i] >= p && small[i] < p + 8 * MiB;
  }
  CHECKF(mapped() <= m0 + 8 * MiB, "6 MiB of small blocks beside an 8 MiB cached range: mapped %zu MiB more",
         (mapped() - m0 - 8 * MiB) >> 20);
  CHECKF(inside >= SMALL / 2, "%zu of %d small blocks in the cached range", inside, SMALL);
  for (int i = 0; i < SMALL; i++) lz_free(small[i]);
  lz_trim(0);
  CHECKF(mapped() <= m0, "mapped %zu after trim, %zu before", mapped(), m0);
  unit_given_back();
  calloc_untouched();
  aligned_above_unit();
  hopeless_keeps_cache();
  printf("large_reuse: ok (mapped +%zu MiB at most in the mixed phase)\n", peak >> 20);
  return 0;
}
