/* sweep: size, alignment and realloc sweeps over the lz_ API (PREFIXED, so
 * it also runs under ASan/UBSan and TSan).
 *
 *  1. every size 1..4096 (step 1) and 4096..66000 (step 7), plus selected
 *     sizes up to 8 MiB: 16-byte alignment, lz_usable_size >= size, the whole
 *     usable size filled with a pattern and read back; a window of recent
 *     blocks stays live so overlapping blocks are caught;
 *  2. calloc zeroing of recycled memory;
 *  3. alignment sweep: 16..2 MiB x sizes for lz_aligned_alloc, lz_memalign,
 *     lz_posix_memalign (plus lz_valloc / lz_pvalloc); aligned medium
 *     blocks placed in fragmented chunks keep their bytes;
 *  4. lz_realloc grow/shrink chains and random chains with content checks;
 *  5. the glibc edge cases (errno, huge sizes, odd alignments) via lz_ names.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "lzmalloc.h"
#include "testutil.h"

#define SENTINEL 12345

static int is_aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

/* Window of live blocks: each new block evicts (checks, frees) the oldest. */
#define WIN 64
static struct {
  void *p;
  size_t n, us;
  uint64_t seed;
} g_win[WIN];
static size_t g_win_pos;

static void win_check_free(size_t k, int sized) {
  if (!g_win[k].p) return;
  size_t bad = tu_pattern_check(g_win[k].p, g_win[k].us, g_win[k].seed);
  CHECKF(bad == SIZE_MAX, "block %p (usable %zu, seed %llu) corrupted at offset %zu",
         g_win[k].p, g_win[k].us, (unsigned long long)g_win[k].seed, bad);
  if (sized)
    lz_free_sized(g_win[k].p, g_win[k].n);
  else
    lz_free(g_win[k].p);
  g_win[k].p = NULL;
}

static void win_drain(void) {
  for (size_t k = 0; k < WIN; k++) win_check_free(k, 0);
}

static void sweep_one(size_t n, uint64_t seed) {
  errno = SENTINEL;
  void *p = lz_malloc(n);
  CHECKF(p != NULL, "lz_malloc(%zu) = NULL", n);
  CHECKF(errno == SENTINEL, "lz_malloc(%zu) changed errno to %d", n, errno);
  CHECKF(is_aligned(p, 16), "lz_malloc(%zu) = %p not 16-aligned", n, p);
  size_t us = lz_usable_size(p);
  CHECKF(us >= n, "lz_usable_size(lz_malloc(%zu)) = %zu", n, us);
  tu_pattern_fill(p, us, seed);
  size_t bad = tu_pattern_check(p, us, seed);
  CHECKF(bad == SIZE_MAX, "lz_malloc(%zu): pattern readback failed at %zu", n, bad);
  size_t k = g_win_pos++ % WIN;
  /* Half of the blocks are freed with lz_free_sized(p, requested size). */
  win_check_free(k, (int)(seed & 1));
  g_win[k].p = p;
  g_win[k].n = n;
  g_win[k].us = us;
  g_win[k].seed = seed;
}

static void test_size_sweep(void) {
  uint64_t seed = 1;
  for (size_t n = 1; n <= 4096; n++) sweep_one(n, seed++);
  for (size_t n = 4096 + 7; n <= 66000; n += 7) sweep_one(n, seed++);
  win_drain();
  /* Selected sizes up to 8 MiB around the engine and power-of-two edges. */
  for (unsigned k = 15; k <= 23; k++) {
    size_t b = (size_t)1 << k;
    size_t sizes[] = {b - 16, b - 1, b, b + 1, b + 16, b + b / 4, b + b / 2, b + 3 * b / 4};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
      if (sizes[i] > 8 * TU_MiB) continue;
      sweep_one(sizes[i], seed++);
    }
  }
  static const size_t extra[] = {32 * 1024 - 100, 32 * 1024 + 100, 40000,  100000,
                                 250000,          999999,          1000000, 1000001,
                                 (1 << 20) - 4096, (1 << 20) + 4096, 2097152 - 4096,
                                 2097152 + 4096,  4000000,         7999999, 8 << 20};
  for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) sweep_one(extra[i], seed++);
  win_drain();
  /* Zero size: unique, non-NULL, freeable. */
  void *z[32];
  for (int i = 0; i < 32; i++) {
    z[i] = lz_malloc(0);
    CHECK(z[i] != NULL && is_aligned(z[i], 16));
    for (int j = 0; j < i; j++) CHECK(z[i] != z[j]);
  }
  for (int i = 0; i < 32; i++) lz_free(z[i]);
  lz_free(NULL);
  lz_free_sized(NULL, 0);
  lz_free_aligned_sized(NULL, 64, 0);
  CHECK(lz_usable_size(NULL) == 0);
}

static void calloc_one(size_t n) {
  unsigned char *p = lz_malloc(n);
  CHECK(p);
  tu_fill_byte(p, 0xff, lz_usable_size(p));
  lz_free(p);
  errno = SENTINEL;
  p = lz_calloc(1, n);
  CHECKF(p != NULL && errno == SENTINEL, "lz_calloc(1, %zu)", n);
  CHECKF(tu_all_zero(p, n), "lz_calloc(1, %zu) returned dirty memory", n);
  tu_fill_byte(p, 0xee, lz_usable_size(p));
  lz_free(p);
  size_t m = n / 8 ? n / 8 : 1;
  p = lz_calloc(m, 8);
  CHECK(p);
  CHECKF(tu_all_zero(p, m * 8), "lz_calloc(%zu, 8) returned dirty memory", m);
  lz_free(p);
}

static void test_calloc_sweep(void) {
  for (size_t n = 1; n <= 66000; n += (n < 1024 ? 1 : 97)) calloc_one(n);
  for (unsigned k = 16; k <= 23; k++) {
    calloc_one(((size_t)1 << k) - 1);
    calloc_one(((size_t)1 << k) + 1);
  }
}

typedef enum { AF_ALIGNED_ALLOC, AF_MEMALIGN, AF_POSIX_MEMALIGN } align_kind;

static void *align_call(align_kind kind, size_t a, size_t n) {
  void *p = NULL;
  errno = SENTINEL;
  switch (kind) {
  case AF_ALIGNED_ALLOC: p = lz_aligned_alloc(a, n); break;
  case AF_MEMALIGN: p = lz_memalign(a, n); break;
  case AF_POSIX_MEMALIGN: {
    int rc = lz_posix_memalign(&p, a, n);
    CHECKF(rc == 0, "lz_posix_memalign(%zu, %zu) = %d", a, n, rc);
    break;
  }
  }
  CHECKF(errno == SENTINEL, "aligned call %d(%zu, %zu) changed errno to %d", (int)kind, a, n,
         errno);
  return p;
}

static void test_alignment_sweep(void) {
  static const char *names[] = {"lz_aligned_alloc", "lz_memalign", "lz_posix_memalign"};
  for (int kind = 0; kind < 3; kind++) {
    for (size_t a = 16; a <= ((size_t)2 << 20); a <<= 1) {
      size_t sizes[] = {1, 100, a - 1, a, a + 1, 3 * a, 40000, 3 * TU_MiB / 2};
      void *live[8];
      for (size_t i = 0; i < 8; i++) {
        size_t n = sizes[i];
        void *p = align_call((align_kind)kind, a, n);
        CHECKF(p != NULL, "%s(%zu, %zu) = NULL", names[kind], a, n);
        CHECKF(is_aligned(p, a), "%s(%zu, %zu) = %p misaligned", names[kind], a, n, p);
        size_t us = lz_usable_size(p);
        CHECKF(us >= n, "%s(%zu, %zu): usable %zu", names[kind], a, n, us);
        tu_pattern_fill(p, us, a * 31 + n);
        live[i] = p;
      }
      for (size_t i = 0; i < 8; i++) {
        size_t us = lz_usable_size(live[i]);
        size_t bad = tu_pattern_check(live[i], us, a * 31 + sizes[i]);
        CHECKF(bad == SIZE_MAX, "%s(%zu, %zu): pattern broken at %zu", names[kind], a, sizes[i],
               bad);
        if (kind == AF_ALIGNED_ALLOC && (i & 1))
          lz_free_aligned_sized(live[i], a, sizes[i]);
        else
          lz_free(live[i]);
      }
    }
  }
  /* Small power-of-two alignments give at least 16-byte alignment. */
  for (size_t a = 1; a <= 8; a <<= 1) {
    void *p = lz_aligned_alloc(a, 24), *q = lz_memalign(a, 24);
    CHECK(p && q && is_aligned(p, 16) && is_aligned(q, 16));
    lz_free(p);
    lz_free(q);
  }
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  static const size_t vs[] = {0, 1, 4095, 4096, 4097, 40000, 3000000};
  for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
    void *p = lz_valloc(vs[i]);
    CHECK(p && is_aligned(p, pg) && lz_usable_size(p) >= vs[i]);
    tu_pattern_fill(p, lz_usable_size(p), i);
    lz_free(p);
    p = lz_pvalloc(vs[i]);
    CHECK(p && is_aligned(p, pg));
    size_t want = (vs[i] + pg - 1) / pg * pg;
    CHECKF(lz_usable_size(p) >= want, "lz_pvalloc(%zu): usable %zu", vs[i], lz_usable_size(p));
    tu_pattern_fill(p, lz_usable_size(p), i);
    lz_free(p);
  }
}

static void *realloc_checked(void *p, size_t old, size_t n, uint64_t seed) {
  errno = SENTINEL;
  void *q = lz_realloc(p, n);
  CHECKF(q != NULL, "lz_realloc(%zu -> %zu) = NULL", old, n);
  CHECKF(errno == SENTINEL, "lz_realloc(%zu -> %zu) changed errno", old, n);
  CHECKF(is_aligned(q, 16), "lz_realloc(%zu -> %zu) = %p misaligned", old, n, q);
  CHECKF(lz_usable_size(q) >= n, "lz_realloc(%zu -> %zu): usable %zu", old, n, lz_usable_size(q));
  size_t keep = old < n ? old : n;
  size_t bad = tu_pattern_check(q, keep, seed);
  CHECKF(bad == SIZE_MAX, "lz_realloc(%zu -> %zu) lost contents at %zu", old, n, bad);
  if (n > old) tu_pattern_fill_range(q, old, n, seed);
  return q;
}

static void test_realloc_chains(void) {
  tu_rng_t r;
  tu_rng_seed(&r, 7);
  size_t chains = tu_scaled(3, 1);
  for (size_t c = 0; c < chains; c++) {
    uint64_t seed = 1000 + c;
    size_t cur = 1 + (size_t)tu_rng_below(&r, 16);
    void *p = lz_malloc(cur);
    CHECK(p);
    tu_pattern_fill(p, cur, seed);
    while (cur < 8 * TU_MiB) {
      size_t next = cur + cur / 4 + 1 + (size_t)tu_rng_below(&r, cur / 4 + 16);
      if (next > 8 * TU_MiB) next = 8 * TU_MiB;
      p = realloc_checked(p, cur, next, seed);
      cur = next;
    }
    while (cur > 1) {
      size_t next = cur - cur / 3 - 1 - (size_t)tu_rng_below(&r, cur / 8 + 1);
      if (next < 1 || next >= cur) next = 1;
      p = realloc_checked(p, cur, next, seed);
      cur = next;
    }
    lz_free(p);
  }
  /* Random chain: sizes across all engines, growing and shrinking. */
  size_t steps = tu_scaled(3000, 50);
  size_t cur = 100;
  uint64_t seed = 4242;
  void *p = lz_malloc(cur);
  CHECK(p);
  tu_pattern_fill(p, cur, seed);
  for (size_t i = 0; i < steps; i++) {
    uint64_t k = tu_rng_below(&r, 100);
    size_t next;
    if (k < 70)
      next = (size_t)tu_rng_logrange(&r, 1, 32768);
    else if (k < 95)
      next = (size_t)tu_rng_logrange(&r, 32769, TU_MiB);
    else
      next = (size_t)tu_rng_logrange(&r, TU_MiB + 1, 4 * TU_MiB);
    if (tu_rng_below(&r, 8) == 0) next = cur + (size_t)tu_rng_below(&r, 64); /* in-place-ish */
    p = realloc_checked(p, cur, next, seed);
    cur = next;
  }
  lz_free(p);
  /* lz_realloc of aligned blocks keeps contents. */
  for (size_t a = 32; a <= ((size_t)2 << 20); a <<= 2) {
    void *q = lz_aligned_alloc(a, 1000);
    CHECK(q);
    tu_pattern_fill(q, 1000, a);
    q = realloc_checked(q, 1000, 200000, a);
    q = realloc_checked(q, 200000, 50, a);
    lz_free(q);
  }
  /* lz_reallocarray. */
  void *q = lz_reallocarray(NULL, 100, 10);
  CHECK(q);
  tu_pattern_fill(q, 1000, 3);
  void *q2 = lz_reallocarray(q, 1000, 100);
  CHECK(q2 && tu_pattern_check(q2, 1000, 3) == SIZE_MAX);
  lz_free(q2);
}

#define FAILS(call, err)                                                     \
  do {                                                                       \
    errno = SENTINEL;                                                        \
    void *r_ = (call);                                                       \
    int e_ = errno;                                                          \
    CHECKF(r_ == NULL, "%s returned %p, expected NULL", #call, r_);          \
    CHECKF(e_ == (err), "%s: errno %d, expected %d", #call, e_, (err));      \
  } while (0)

/* The glibc edge cases, via the lz_ names (api_conformance covers the
 * standard names; this runs under the sanitizers). */
static void test_lz_edges(void) {
  static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 15, SIZE_MAX - 4096,
                                (size_t)PTRDIFF_MAX + 1, (size_t)PTRDIFF_MAX, (size_t)1 << 58};
  for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
    size_t n = tu_opaque(huge[i]);
    FAILS(lz_malloc(n), ENOMEM);
    FAILS(lz_calloc(1, n), ENOMEM);
    FAILS(lz_realloc(NULL, n), ENOMEM);
    FAILS(lz_aligned_alloc(64, n), ENOMEM);
    FAILS(lz_memalign(4096, n), ENOMEM);
    FAILS(lz_valloc(n), ENOMEM);
    FAILS(lz_pvalloc(n), ENOMEM);
    void *out = (void *)0x1234;
    CHECK(lz_posix_memalign(&out, 64, n) == ENOMEM && out == (void *)0x1234);
    void *p = lz_malloc(5000);
    CHECK(p);
    tu_pattern_fill(p, 5000, 1);
    FAILS(lz_realloc(p, n), ENOMEM);
    FAILS(lz_reallocarray(p, n, 2), ENOMEM);
    CHECK(tu_pattern_check(p, 5000, 1) == SIZE_MAX);
    lz_free(p);
  }
  FAILS(lz_calloc(tu_opaque(SIZE_MAX / 2 + 1), 2), ENOMEM);
  FAILS(lz_calloc(tu_opaque((size_t)1 << 32), tu_opaque((size_t)1 << 32)), ENOMEM);
  /* realloc(p, 0) frees and returns NULL (glibc). */
  static const size_t zs[] = {1, 100, 40000, 2 << 20};
  for (size_t i = 0; i < 4; i++) {
    void *p = lz_malloc(zs[i]);
    CHECK(p);
    errno = SENTINEL;
    CHECK(lz_realloc(p, 0) == NULL);
    CHECK(errno == SENTINEL);
  }
  void *p = lz_realloc(NULL, 0);
  CHECK(p != NULL);
  lz_free(p);
  /* Non-power-of-two alignment: rounded up (glibc 2.36). */
  static const size_t npot[] = {3, 24, 48, 100, 5000, 65537};
  for (size_t i = 0; i < sizeof(npot) / sizeof(npot[0]); i++) {
    size_t want = 16;
    while (want < npot[i]) want <<= 1;
    errno = SENTINEL;
    void *a = lz_aligned_alloc(tu_opaque(npot[i]), 100);
    void *m = lz_memalign(tu_opaque(npot[i]), 100);
    CHECK(errno == SENTINEL);
    CHECKF(a && is_aligned(a, want), "lz_aligned_alloc(%zu) = %p", npot[i], a);
    CHECKF(m && is_aligned(m, want), "lz_memalign(%zu) = %p", npot[i], m);
    lz_free(a);
    lz_free(m);
  }
  FAILS(lz_aligned_alloc(tu_opaque(SIZE_MAX), 10), EINVAL);
  FAILS(lz_memalign(tu_opaque(((size_t)1 << 63) + 1), 10), EINVAL);
  FAILS(lz_memalign(tu_opaque((size_t)1 << 63), 10), ENOMEM);
  static const size_t bad[] = {0, 1, 4, 12, 24, 100, SIZE_MAX};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    void *out = (void *)0x1234;
    errno = SENTINEL;
    CHECKF(lz_posix_memalign(&out, tu_opaque(bad[i]), 10) == EINVAL, "align %zu", bad[i]);
    CHECK(errno == SENTINEL && out == (void *)0x1234);
  }
  /* lz_trim returns 1 exactly when it gave memory back (malloc_trim): a
   * freed 3 MiB block and freed medium blocks, still cached (default
   * configuration) or already returned (no caches, no purge delay), go
   * back with the first call, and then there is nothing left. */
  void *big = lz_malloc(3u << 20);
  void *med[8];
  for (int i = 0; i < 8; i++) {
    med[i] = lz_malloc(200000);
    CHECK(med[i] != NULL);
    memset(med[i], 1, 200000);
  }
  CHECK(big != NULL);
  memset(big, 1, 3u << 20);
  lz_free(big);
  for (int i = 0; i < 8; i++) lz_free(med[i]);
  lz_stats_t before, after;
  lz_stats_get(&before);
  int t = lz_trim(0);
  lz_stats_get(&after);
  int released = after.committed < before.committed || after.mapped < before.mapped;
  CHECKF(t == (released ? 1 : 0), "lz_trim = %d, committed %zu -> %zu, mapped %zu -> %zu", t, before.committed,
         after.committed, before.mapped, after.mapped);
  CHECK(lz_trim(0) == 0);
  lz_stats_t again;
  lz_stats_get(&again);
  CHECK(again.committed == after.committed && again.mapped == after.mapped);
}

/* 3b. Aligned medium blocks in fragmented chunks: 4,000 blocks of 1 to
 * 160 pages at alignments of 2 to 128 pages, 300 alive (a random one
 * freed before each new one), each filled with its own pattern and
 * checked at its free: the free-page search for an alignment (span.c,
 * map_find_aligned) must give aligned pages that no live block holds. */
static void test_aligned_fragmented(void) {
  enum { LIVE = 300, ROUNDS = 4000 };
  static struct {
    unsigned char *p;
    size_t n;
    unsigned seed;
  } live[LIVE];
  tu_rng_t r;
  tu_rng_seed(&r, 0xa119);
  for (unsigned i = 0; i < ROUNDS; i++) {
    unsigned k = (unsigned)tu_rng_below(&r, LIVE);
    if (live[k].p != NULL) {
      CHECKF(SIZE_MAX == tu_pattern_check(live[k].p, live[k].n, live[k].seed), "aligned block %p (%zu B) overwritten",
             (void *)live[k].p, live[k].n);
      lz_free(live[k].p);
    }
    size_t a = (size_t)4096 << (1 + tu_rng_below(&r, 7)), n = 4096 * (1 + tu_rng_below(&r, 160)) - tu_rng_below(&r, 4096);
    unsigned char *p = lz_aligned_alloc(a, n);
    CHECKF(p != NULL && is_aligned(p, a), "lz_aligned_alloc(%zu, %zu) = %p", a, n, (void *)p);
    live[k].p = p;
    live[k].n = n;
    live[k].seed = i;
    tu_pattern_fill(p, n, i);
  }
  for (unsigned k = 0; k < LIVE; k++) {
    if (live[k].p == NULL) continue;
    CHECK(SIZE_MAX == tu_pattern_check(live[k].p, live[k].n, live[k].seed));
    lz_free(live[k].p);
  }
}

int main(void) {
  struct {
    const char *name;
    void (*fn)(void);
  } tests[] = {
      {"size_sweep", test_size_sweep},
      {"calloc_sweep", test_calloc_sweep},
      {"alignment_sweep", test_alignment_sweep},
      {"aligned_fragmented", test_aligned_fragmented},
      {"realloc_chains", test_realloc_chains},
      {"lz_edges", test_lz_edges},
  };
  for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
    double t0 = tu_now();
    tests[i].fn();
    printf("ok %-16s %.3f s\n", tests[i].name, tu_now() - t0);
  }
  printf("sweep: all passed\n");
  return 0;
}
