/* api_conformance: the standard malloc API, with glibc 2.36's exact
 * semantics (errno, edge cases, huge and invalid arguments).
 *
 * Every assertion here was validated against plain glibc 2.36 (Debian 12):
 * build this file with `gcc -D_GNU_SOURCE tests/api_conformance.c -o t`
 * (without lzmalloc) and it passes. Linked against liblzmalloc (KIND API),
 * unit.cmake defines LZ_TEST_EXPECT_LZMALLOC=1, which additionally requires
 * that the calls are really served by lzmalloc and that free_sized and
 * free_aligned_sized exist.
 *
 * glibc facts this test pins down (see the individual checks):
 *  - malloc(0), calloc(0,0), realloc(NULL,0), valloc(0), pvalloc(0),
 *    aligned_alloc(a,0), posix_memalign(&p,a,0) all return unique non-NULL
 *    pointers.
 *  - realloc(p, 0) with p != NULL frees p and returns NULL, errno untouched;
 *    reallocarray(p, 0, 0) likewise.
 *  - Any size > PTRDIFF_MAX (and anything that cannot be mapped) fails with
 *    NULL and errno = ENOMEM; calloc/reallocarray multiplication overflow
 *    likewise (reallocarray leaves the old block untouched).
 *  - aligned_alloc and memalign are the same function in glibc 2.36: an
 *    alignment that is not a power of two is ROUNDED UP to the next power of
 *    two (not rejected); alignment 0, 1, 2, 4, 8 give an ordinary 16-aligned
 *    block; only alignment > SIZE_MAX/2+1 gives NULL/EINVAL;
 *    alignment == 2^63 gives NULL/ENOMEM.
 *  - posix_memalign: alignment 0, or not a multiple of sizeof(void*), or
 *    alignment/sizeof(void*) not a power of two -> returns EINVAL, errno and
 *    *out untouched; on ENOMEM it returns ENOMEM, leaves *out untouched and
 *    sets errno to ENOMEM too.
 *  - Out of address space (RLIMIT_AS), not just impossible sizes: every
 *    function fails with errno = ENOMEM (posix_memalign: returns ENOMEM and
 *    sets errno), for small, medium and large sizes, and a free afterwards
 *    leaves errno alone.
 *  - pvalloc(n), n > 0: page-aligned, usable size >= n rounded up to a page.
 *    pvalloc(0) is page-aligned but glibc's usable size is only 24 (not a
 *    page) — so only non-NULL + page alignment is asserted for it.
 *  - free() never changes errno (also for mmapped blocks); no successful call
 *    changes errno.
 *  - mallinfo2: small live blocks are counted in uordblks (<= arena); large
 *    (mmapped) blocks in hblkhd. mallinfo and __libc_mallinfo give the
 *    same figures converted to int, wrapping from 2 GiB up (not clamped).
 *  - mallopt and __libc_mallopt return 1 for every parameter, known or
 *    not, except M_MXFAST outside 0..160, which returns 0; errno untouched.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#ifndef LZ_TEST_EXPECT_LZMALLOC
#define LZ_TEST_EXPECT_LZMALLOC 0
#endif

/* C23 functions that glibc 2.36's headers lack. Weak so that this file also
 * links against plain glibc (where they are absent and we fall back). */
void free_sized(void *p, size_t size) __attribute__((weak));
void free_aligned_sized(void *p, size_t alignment, size_t size) __attribute__((weak));

/* glibc's internal aliases (exported by libc.so.6; lzmalloc must interpose
 * them too, since some programs and libraries call them directly). */
extern void *__libc_malloc(size_t size);
extern void __libc_free(void *p);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

/* lzmalloc's own entry point, used only to prove that the standard names
 * are really served by lzmalloc. A strong reference when linked with
 * lzmalloc: that also makes the linker keep liblzmalloc as NEEDED even with
 * --as-needed, so the weak references above resolve at run time. Weak (and
 * absent) under plain glibc. */
#if LZ_TEST_EXPECT_LZMALLOC
size_t lz_usable_size(const void *p);
#else
size_t lz_usable_size(const void *p) __attribute__((weak));
#endif

#define SENTINEL 12345
#define PAGE ((size_t)sysconf(_SC_PAGESIZE))

/* Evaluate a call that must succeed without touching errno. */
#define NOERRNO(lhs, call)                                                   \
  do {                                                                       \
    errno = SENTINEL;                                                        \
    lhs = (call);                                                            \
    CHECKF(errno == SENTINEL, "%s changed errno to %d", #call, errno);       \
  } while (0)

#define FREE_OK(p)                                                           \
  do {                                                                       \
    errno = SENTINEL;                                                        \
    free(p);                                                                 \
    CHECKF(errno == SENTINEL, "free changed errno to %d", errno);            \
  } while (0)

/* A call that must fail with NULL and the given errno. */
#define FAILS(call, err)                                                     \
  do {                                                                       \
    errno = SENTINEL;                                                        \
    void *r_ = (call);                                                       \
    int e_ = errno;                                                          \
    CHECKF(r_ == NULL, "%s returned %p, expected NULL", #call, r_);          \
    CHECKF(e_ == (err), "%s: errno %d, expected %d", #call, e_, (err));      \
  } while (0)

static int is_aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static size_t next_pow2(size_t x) {
  size_t r = 1;
  while (r < x) r <<= 1;
  return r;
}

/* Non-NULL, aligned to `align` (and 16), usable >= size, whole usable size
 * writable and readable back. */
static void check_block(void *p, size_t size, size_t align, uint64_t seed, const char *what) {
  CHECKF(p != NULL, "%s(%zu) returned NULL", what, size);
  CHECKF(is_aligned(p, 16), "%s(%zu) = %p not 16-byte aligned", what, size, p);
  if (align > 16) CHECKF(is_aligned(p, align), "%s(%zu) = %p not %zu-aligned", what, size, p, align);
  size_t us = malloc_usable_size(p);
  CHECKF(us >= size, "%s(%zu): usable size %zu < requested", what, size, us);
  tu_pattern_fill(p, us, seed);
  size_t bad = tu_pattern_check(p, us, seed);
  CHECKF(bad == SIZE_MAX, "%s(%zu): pattern mismatch at %zu", what, size, bad);
}

static const size_t k_sizes[] = {
    0,       1,          7,         8,          15,         16,          17,
    24,      31,         32,        33,         48,         63,          64,
    65,      96,         100,       127,        128,        129,         255,
    256,     257,        500,       512,        1000,       1024,        1025,
    2000,    2048,       3000,      4095,       4096,       4097,       8191,
    8192,    8193,       10000,     16383,      16384,      16385,      32767,
    32768,   32769,      40000,     65535,      65536,      65537,      100000,
    131072,  200000,     262144,    500000,     1048575,    1048576,    1048577,
    1500000, 2097151,    2097152,   2097153,    3000000,    4194304,    5000000,
    8388608, 8388609,    16777216,
};
#define N_SIZES (sizeof(k_sizes) / sizeof(k_sizes[0]))

/* ---------------------------------------------------------------------- */

static void test_malloc_basic(void) {
  for (size_t i = 0; i < N_SIZES; i++) {
    size_t n = k_sizes[i];
    void *p;
    NOERRNO(p, malloc(n));
    check_block(p, n, 16, n, "malloc");
    FREE_OK(p);
  }
  /* Keep many alive at once, then free in a different order. */
  void *ps[N_SIZES];
  for (size_t i = 0; i < N_SIZES; i++) {
    NOERRNO(ps[i], malloc(k_sizes[i]));
    check_block(ps[i], k_sizes[i], 16, i * 7 + 1, "malloc");
  }
  for (size_t i = 0; i < N_SIZES; i++) {
    size_t us = malloc_usable_size(ps[i]);
    size_t bad = tu_pattern_check(ps[i], us, i * 7 + 1);
    CHECKF(bad == SIZE_MAX, "live block %zu corrupted at %zu", k_sizes[i], bad);
  }
  for (size_t i = 0; i < N_SIZES; i += 2) FREE_OK(ps[i]);
  for (size_t i = 1; i < N_SIZES; i += 2) FREE_OK(ps[i]);

  /* free(NULL) is a no-op that keeps errno. */
  FREE_OK(NULL);
  errno = SENTINEL;
  CHECK(malloc_usable_size(NULL) == 0);
  CHECK(errno == SENTINEL);
}

static void test_malloc_zero_unique(void) {
  enum { N = 256 };
  void *ps[N];
  for (int i = 0; i < N; i++) {
    NOERRNO(ps[i], malloc(0));
    CHECKF(ps[i] != NULL, "malloc(0) returned NULL");
    CHECK(is_aligned(ps[i], 16));
    for (int j = 0; j < i; j++) CHECKF(ps[i] != ps[j], "malloc(0) returned %p twice", ps[i]);
  }
  for (int i = 0; i < N; i++) FREE_OK(ps[i]);
  void *c;
  NOERRNO(c, calloc(0, 0));
  CHECK(c != NULL);
  FREE_OK(c);
  NOERRNO(c, calloc(0, 100));
  CHECK(c != NULL);
  FREE_OK(c);
  NOERRNO(c, calloc(100, 0));
  CHECK(c != NULL);
  FREE_OK(c);
}

/* Lots of random sizes: 16-byte alignment and usable >= requested. */
static void test_alignment_random(void) {
  tu_rng_t r;
  tu_rng_seed(&r, 42);
  enum { LIVE = 512 };
  void *live[LIVE] = {0};
  size_t sz[LIVE] = {0};
  size_t iters = tu_scaled(30000, 100);
  for (size_t it = 0; it < iters; it++) {
    size_t k = (size_t)tu_rng_below(&r, LIVE);
    if (live[k]) {
      CHECK(tu_pattern_check_edges(live[k], sz[k], 32, k) == SIZE_MAX);
      FREE_OK(live[k]);
    }
    size_t n = (size_t)(tu_rng_below(&r, 100) < 97 ? tu_rng_logrange(&r, 1, 70000)
                                                   : tu_rng_logrange(&r, 70000, 3 * TU_MiB));
    NOERRNO(live[k], malloc(n));
    sz[k] = n;
    CHECKF(live[k] && is_aligned(live[k], 16), "malloc(%zu) = %p", n, live[k]);
    CHECK(malloc_usable_size(live[k]) >= n);
    tu_pattern_fill_edges(live[k], n, 32, k);
  }
  for (int k = 0; k < LIVE; k++) {
    if (!live[k]) continue;
    CHECK(tu_pattern_check_edges(live[k], sz[k], 32, k) == SIZE_MAX);
    FREE_OK(live[k]);
  }
}

static void test_calloc(void) {
  for (size_t i = 0; i < N_SIZES; i++) {
    size_t n = k_sizes[i];
    void *p;
    NOERRNO(p, calloc(1, n));
    CHECKF(p != NULL, "calloc(1, %zu) = NULL", n);
    CHECK(is_aligned(p, 16));
    CHECKF(tu_all_zero(p, n), "calloc(1, %zu) not zeroed", n);
    check_block(p, n, 16, n, "calloc");
    FREE_OK(p);
    if (n >= 16) {
      NOERRNO(p, calloc(n / 16, 16));
      CHECK(p != NULL);
      CHECKF(tu_all_zero(p, n / 16 * 16), "calloc(%zu, 16) not zeroed", n / 16);
      FREE_OK(p);
    }
  }
  /* Zeroed after reuse: dirty a block, free it, calloc the same size. */
  /* 1 to 80: each length calloc's fast path zeroes inline (alloc.h,
   * zero_small: up to LZ_CALLOC_INLINE_MAX, 64) and the first ones
   * memset zeroes. */
  static const size_t reuse[] = {1,      8,       15,      16,      17,     24,     31,     32,      33,
                                 40,     47,      48,      49,      56,     63,     64,     65,      80,
                                 100,    1000,    4096,    32768,   40000,  100000, 200000, 1 << 20,
                                 (1 << 20) + 1,   2 << 20, 3 << 20, 8 << 20};
  for (int round = 0; round < 3; round++) {
    for (size_t i = 0; i < sizeof(reuse) / sizeof(reuse[0]); i++) {
      size_t n = reuse[i];
      unsigned char *p = malloc(n);
      CHECK(p != NULL);
      tu_fill_byte(p, 0xff, malloc_usable_size(p));
      free(p);
      unsigned char *q;
      NOERRNO(q, calloc(1, n));
      CHECK(q != NULL);
      CHECKF(tu_all_zero(q, n), "calloc(1, %zu) after reuse not zeroed (round %d)", n, round);
      tu_fill_byte(q, 0xff, malloc_usable_size(q));
      free(q);
      NOERRNO(q, calloc(n >= 8 ? n / 8 : 1, 8));
      CHECK(q != NULL);
      CHECKF(tu_all_zero(q, n >= 8 ? n / 8 * 8 : 8), "calloc(%zu, 8) after reuse not zeroed",
             n / 8);
      free(q);
    }
  }
  /* Many small blocks dirtied and freed, then calloc'ed back. */
  enum { M = 2000 };
  static void *ps[M];
  for (int sz = 8; sz <= 1024; sz *= 2) {
    for (int i = 0; i < M; i++) {
      ps[i] = malloc((size_t)sz);
      CHECK(ps[i]);
      tu_fill_byte(ps[i], 0xa5, malloc_usable_size(ps[i]));
    }
    for (int i = 0; i < M; i++) free(ps[i]);
    for (int i = 0; i < M; i++) {
      ps[i] = calloc(1, (size_t)sz);
      CHECK(ps[i]);
      CHECKF(tu_all_zero(ps[i], (size_t)sz), "calloc(1,%d) reused block not zeroed", sz);
    }
    for (int i = 0; i < M; i++) free(ps[i]);
  }
  /* Overflow of n * size. */
  FAILS(calloc(tu_opaque(SIZE_MAX / 2 + 1), 2), ENOMEM);
  FAILS(calloc(2, tu_opaque(SIZE_MAX / 2 + 1)), ENOMEM);
  FAILS(calloc(tu_opaque((size_t)1 << 32), (size_t)1 << 32), ENOMEM);
  FAILS(calloc(tu_opaque(SIZE_MAX), tu_opaque(SIZE_MAX)), ENOMEM);
  FAILS(calloc(tu_opaque(SIZE_MAX / 3 + 1), 3), ENOMEM);
  FAILS(calloc(tu_opaque(SIZE_MAX / 16 + 1), 16), ENOMEM);
  /* No overflow but far too big. */
  FAILS(calloc(1, tu_opaque(SIZE_MAX)), ENOMEM);
  FAILS(calloc(tu_opaque(SIZE_MAX), 1), ENOMEM);
  FAILS(calloc(tu_opaque((size_t)PTRDIFF_MAX), 1), ENOMEM);
  FAILS(calloc(tu_opaque((size_t)PTRDIFF_MAX / 2 + 1), 2), ENOMEM);
}

static const size_t k_huge[] = {
    SIZE_MAX,          SIZE_MAX - 1,           SIZE_MAX - 15,
    SIZE_MAX - 16,     SIZE_MAX - 4095,        SIZE_MAX - 4096,
    SIZE_MAX - (1 << 20), SIZE_MAX - (2 << 20) - 1, (size_t)PTRDIFF_MAX + 1,
    (size_t)PTRDIFF_MAX, (size_t)PTRDIFF_MAX - 4096, (size_t)1 << 62,
    (size_t)1 << 60,   (size_t)1 << 58,
};
#define N_HUGE (sizeof(k_huge) / sizeof(k_huge[0]))

static void test_huge(void) {
  for (size_t i = 0; i < N_HUGE; i++) {
    size_t n = tu_opaque(k_huge[i]);
    FAILS(malloc(n), ENOMEM);
    FAILS(calloc(1, n), ENOMEM);
    FAILS(realloc(NULL, n), ENOMEM);
    FAILS(valloc(n), ENOMEM);
    FAILS(pvalloc(n), ENOMEM);
    FAILS(memalign(64, n), ENOMEM);
    FAILS(memalign(4096, n), ENOMEM);
    FAILS(aligned_alloc(16, n), ENOMEM);
    FAILS(aligned_alloc(4096, n), ENOMEM);
    FAILS(__libc_malloc(n), ENOMEM);
    /* posix_memalign reports ENOMEM by return value and in errno, and
     * leaves *out alone. */
    void *out = (void *)0x1234;
    errno = SENTINEL;
    int rc = posix_memalign(&out, 64, n);
    CHECKF(rc == ENOMEM, "posix_memalign(64, %zu) = %d", n, rc);
    CHECKF(errno == ENOMEM, "posix_memalign(64, %zu): errno %d, expected ENOMEM", n, errno);
    CHECK(out == (void *)0x1234);

    /* realloc to a huge size fails and leaves the old block intact. */
    static const size_t olds[] = {10, 1000, 50000, 2 << 20};
    for (size_t j = 0; j < 4; j++) {
      void *p = malloc(olds[j]);
      CHECK(p);
      tu_pattern_fill(p, olds[j], j + 99);
      FAILS(realloc(p, n), ENOMEM);
      CHECKF(tu_pattern_check(p, olds[j], j + 99) == SIZE_MAX,
             "failed realloc(%zu -> %zu) damaged the block", olds[j], n);
      CHECK(malloc_usable_size(p) >= olds[j]);
      FREE_OK(p);
    }
  }
}

static void test_realloc(void) {
  /* realloc(NULL, n) behaves as malloc(n). */
  void *p;
  NOERRNO(p, realloc(NULL, 100));
  check_block(p, 100, 16, 1, "realloc(NULL)");
  FREE_OK(p);
  NOERRNO(p, realloc(NULL, 0));
  CHECKF(p != NULL, "realloc(NULL, 0) returned NULL");
  FREE_OK(p);
  NOERRNO(p, __libc_realloc(NULL, 3000000));
  check_block(p, 3000000, 16, 1, "realloc(NULL)");
  FREE_OK(p);

  /* realloc(p, 0) frees p and returns NULL (glibc), errno untouched. */
  static const size_t zs[] = {0, 1, 100, 5000, 40000, 200000, 2 << 20};
  for (size_t i = 0; i < sizeof(zs) / sizeof(zs[0]); i++) {
    void *q = malloc(zs[i]);
    CHECK(q);
    void *r;
    NOERRNO(r, realloc(q, 0));
    CHECKF(r == NULL, "realloc(p[%zu], 0) returned %p, glibc returns NULL", zs[i], r);
  }

  /* Contents preserved across every pair of sizes (small/medium/large). */
  static const size_t rs[] = {1,      15,     16,     17,      100,     1000,
                              4096,   10000,  32767,  32768,   32769,   40000,
                              100000, 500000, 1048575, 1048576, 1048577, 1500000,
                              3000000, 6000000};
  const size_t nrs = sizeof(rs) / sizeof(rs[0]);
  for (size_t a = 0; a < nrs; a++) {
    for (size_t b = 0; b < nrs; b++) {
      uint64_t seed = a * 100 + b;
      char *q = malloc(rs[a]);
      CHECK(q);
      tu_pattern_fill(q, rs[a], seed);
      char *r;
      NOERRNO(r, realloc(q, rs[b]));
      CHECKF(r != NULL, "realloc(%zu -> %zu) = NULL", rs[a], rs[b]);
      CHECK(is_aligned(r, 16));
      CHECK(malloc_usable_size(r) >= rs[b]);
      size_t keep = rs[a] < rs[b] ? rs[a] : rs[b];
      size_t bad = tu_pattern_check(r, keep, seed);
      CHECKF(bad == SIZE_MAX, "realloc(%zu -> %zu) lost contents at %zu", rs[a], rs[b], bad);
      tu_fill_byte(r, 0x5a, malloc_usable_size(r));
      FREE_OK(r);
    }
  }

  /* A grow chain then a shrink chain on one block. */
  size_t cur = 1;
  char *q = malloc(cur);
  CHECK(q);
  tu_pattern_fill(q, cur, 777);
  while (cur < 10 * TU_MiB) {
    size_t next = cur + cur / 3 + 1;
    char *r;
    NOERRNO(r, realloc(q, next));
    CHECK(r != NULL);
    size_t bad = tu_pattern_check(r, cur, 777);
    CHECKF(bad == SIZE_MAX, "grow %zu -> %zu lost contents at %zu", cur, next, bad);
    tu_pattern_fill_range(r, cur, next, 777);
    q = r;
    cur = next;
  }
  while (cur > 1) {
    size_t next = cur / 2;
    char *r;
    NOERRNO(r, realloc(q, next));
    CHECK(r != NULL);
    size_t bad = tu_pattern_check(r, next, 777);
    CHECKF(bad == SIZE_MAX, "shrink %zu -> %zu lost contents at %zu", cur, next, bad);
    q = r;
    cur = next;
  }
  FREE_OK(q);

  /* Growing into the usable slack never moves data incorrectly. */
  q = malloc(100);
  CHECK(q);
  size_t us = malloc_usable_size(q);
  tu_pattern_fill(q, us, 5);
  char *r;
  NOERRNO(r, realloc(q, us));
  CHECK(r && tu_pattern_check(r, us, 5) == SIZE_MAX);
  FREE_OK(r);
}

static void test_reallocarray(void) {
  void *p;
  NOERRNO(p, reallocarray(NULL, 10, 10));
  check_block(p, 100, 16, 3, "reallocarray(NULL)");
  tu_pattern_fill(p, 100, 3);
  void *q;
  NOERRNO(q, reallocarray(p, 1000, 100));
  CHECK(q != NULL);
  CHECK(malloc_usable_size(q) >= 100000);
  CHECK(tu_pattern_check(q, 100, 3) == SIZE_MAX);
  tu_pattern_fill(q, 100000, 4);
  /* Overflow: NULL + ENOMEM, old block untouched and still owned. */
  FAILS(reallocarray(q, tu_opaque(SIZE_MAX / 2 + 1), 2), ENOMEM);
  FAILS(reallocarray(q, 2, tu_opaque(SIZE_MAX / 2 + 1)), ENOMEM);
  FAILS(reallocarray(q, tu_opaque((size_t)1 << 32), (size_t)1 << 32), ENOMEM);
  FAILS(reallocarray(q, tu_opaque(SIZE_MAX), tu_opaque(SIZE_MAX)), ENOMEM);
  FAILS(reallocarray(q, tu_opaque(SIZE_MAX / 8 + 1), 8), ENOMEM);
  FAILS(reallocarray(NULL, tu_opaque(SIZE_MAX / 8 + 1), 8), ENOMEM);
  CHECKF(tu_pattern_check(q, 100000, 4) == SIZE_MAX, "failed reallocarray damaged the block");
  CHECK(malloc_usable_size(q) >= 100000);
  /* Too big without overflow. */
  FAILS(reallocarray(q, 1, tu_opaque(SIZE_MAX)), ENOMEM);
  CHECK(tu_pattern_check(q, 100000, 4) == SIZE_MAX);
  /* Shrink. */
  NOERRNO(p, reallocarray(q, 10, 3));
  CHECK(p != NULL && tu_pattern_check(p, 30, 4) == SIZE_MAX);
  /* reallocarray(p, 0, 0) is realloc(p, 0): frees, returns NULL. */
  NOERRNO(q, reallocarray(p, 0, tu_opaque(0)));
  CHECK(q == NULL);
  /* reallocarray(NULL, 0, n) is malloc(0): non-NULL. */
  NOERRNO(q, reallocarray(NULL, 0, 5));
  CHECK(q != NULL);
  FREE_OK(q);
}

typedef void *(*align_fn)(size_t, size_t);

static void *call_aligned_alloc(size_t a, size_t n) { return aligned_alloc(a, n); }
static void *call_memalign(size_t a, size_t n) { return memalign(a, n); }
static void *call_libc_memalign(size_t a, size_t n) { return __libc_memalign(a, n); }

static void test_align_family(align_fn fn, const char *name) {
  /* Powers of two from 1 to 4 MiB; sizes around the alignment. */
  for (size_t a = 1; a <= ((size_t)4 << 20); a <<= 1) {
    size_t sizes[] = {0, 1, 8, 100, a > 1 ? a - 1 : 1, a, a + 1, 3 * a, 40000, 1500000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
      if (a >= ((size_t)1 << 20) && sizes[i] > 3 * TU_MiB) continue;
      void *p;
      NOERRNO(p, fn(tu_opaque(a), sizes[i]));
      check_block(p, sizes[i], a < 16 ? 16 : a, a ^ sizes[i], name);
      FREE_OK(p);
    }
  }
  /* glibc 2.36: alignment 0 means "no particular alignment". */
  void *p;
  NOERRNO(p, fn(tu_opaque(0), 100));
  check_block(p, 100, 16, 0, name);
  FREE_OK(p);
  /* glibc 2.36: a non-power-of-two alignment is rounded up to the next power
   * of two (NOT rejected with EINVAL; glibc 2.38 changed aligned_alloc). */
  static const size_t npot[] = {3,    5,     6,     12,     17,     24,    33,
                                48,   100,   1000,  3000,   5000,   65537, 100000,
                                1000000, (1 << 20) + 1};
  for (size_t i = 0; i < sizeof(npot) / sizeof(npot[0]); i++) {
    size_t a = npot[i], want = next_pow2(a) < 16 ? 16 : next_pow2(a);
    NOERRNO(p, fn(tu_opaque(a), 100));
    CHECKF(p != NULL, "%s(%zu, 100) returned NULL; glibc 2.36 rounds the alignment up", name, a);
    CHECKF(is_aligned(p, want), "%s(%zu, 100) = %p not aligned to %zu", name, a, p, want);
    check_block(p, 100, want, a, name);
    FREE_OK(p);
  }
  /* Alignment larger than SIZE_MAX/2+1: EINVAL. */
  FAILS(fn(tu_opaque(SIZE_MAX), 10), EINVAL);
  FAILS(fn(tu_opaque(((size_t)1 << 63) + 1), 10), EINVAL);
  FAILS(fn(tu_opaque(SIZE_MAX - 4095), 10), EINVAL);
  /* Valid but unsatisfiable alignments: ENOMEM. */
  FAILS(fn(tu_opaque((size_t)1 << 63), 10), ENOMEM);
  FAILS(fn(tu_opaque(((size_t)1 << 62) + 1), 10), ENOMEM);
  FAILS(fn(tu_opaque((size_t)1 << 62), 10), ENOMEM);
  /* Aligned blocks are usable by realloc and keep contents. */
  for (size_t a = 32; a <= ((size_t)1 << 21); a <<= 3) {
    char *q = fn(a, 1000);
    CHECK(q && is_aligned(q, a));
    tu_pattern_fill(q, 1000, a);
    char *r = realloc(q, 300000);
    CHECK(r && tu_pattern_check(r, 1000, a) == SIZE_MAX);
    free(r);
  }
}

static void test_posix_memalign(void) {
  for (size_t a = sizeof(void *); a <= ((size_t)4 << 20); a <<= 1) {
    size_t sizes[] = {0, 1, 100, a - 1, a, a + 1, 3 * a, 40000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
      void *p = (void *)0x1234;
      errno = SENTINEL;
      int rc = posix_memalign(&p, tu_opaque(a), sizes[i]);
      CHECKF(errno == SENTINEL, "posix_memalign success changed errno to %d", errno);
      CHECKF(rc == 0, "posix_memalign(%zu, %zu) = %d", a, sizes[i], rc);
      CHECKF(p != NULL && p != (void *)0x1234, "posix_memalign(%zu, %zu) gave %p", a, sizes[i],
             p);
      check_block(p, sizes[i], a < 16 ? 16 : a, a + sizes[i], "posix_memalign");
      FREE_OK(p);
    }
  }
  /* Invalid alignments: EINVAL returned, errno and *out untouched. */
  static const size_t bad[] = {0,  1,  2,   3,    4,    5,        6,        7,
                               12, 24, 40,  48,   100,  4097,     4104,     65544,
                               SIZE_MAX, SIZE_MAX - 7, ((size_t)1 << 63) + 8, ((size_t)1 << 63) + 1};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    void *p = (void *)0x1234;
    errno = SENTINEL;
    int rc = posix_memalign(&p, tu_opaque(bad[i]), 100);
    CHECKF(rc == EINVAL, "posix_memalign(align %zu) = %d, expected EINVAL", bad[i], rc);
    CHECKF(errno == SENTINEL, "posix_memalign(align %zu) changed errno to %d", bad[i], errno);
    CHECKF(p == (void *)0x1234, "posix_memalign(align %zu) failed but wrote *out", bad[i]);
  }
  /* Valid alignment that cannot be satisfied: ENOMEM returned and in
   * errno, *out untouched. */
  void *p = (void *)0x1234;
  errno = SENTINEL;
  int rc = posix_memalign(&p, tu_opaque((size_t)1 << 63), 10);
  CHECKF(rc == ENOMEM, "posix_memalign(2^63) = %d", rc);
  CHECKF(errno == ENOMEM, "posix_memalign(2^63): errno %d, expected ENOMEM", errno);
  CHECK(p == (void *)0x1234);
}

static void test_valloc_pvalloc(void) {
  size_t pg = PAGE;
  static const size_t vs[] = {0, 1, 100, 4095, 4096, 4097, 5000, 40000, 100000, 3000000};
  for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
    void *p;
    NOERRNO(p, valloc(vs[i]));
    check_block(p, vs[i], pg, i, "valloc");
    FREE_OK(p);
  }
  for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
    size_t n = vs[i];
    void *p;
    NOERRNO(p, pvalloc(n));
    CHECKF(p != NULL, "pvalloc(%zu) = NULL", n);
    CHECKF(is_aligned(p, pg), "pvalloc(%zu) = %p not page-aligned", n, p);
    if (n > 0) {
      size_t want = (n + pg - 1) / pg * pg;
      CHECKF(malloc_usable_size(p) >= want, "pvalloc(%zu): usable %zu < %zu", n,
             malloc_usable_size(p), want);
      check_block(p, want, pg, n, "pvalloc");
    } else {
      /* glibc: pvalloc(0) is page-aligned but its usable size is 24, not a
       * page; only what is usable may be written. */
      check_block(p, 0, pg, n, "pvalloc");
    }
    FREE_OK(p);
  }
}

/* 10 MiB of small live blocks, written: the mallinfo checks' load. */
enum { SMALL_N = 10240 };
static void small_blocks(void **ps) {
  for (int i = 0; i < SMALL_N; i++) {
    ps[i] = malloc(1024);
    CHECK(ps[i]);
    tu_fill_byte(ps[i], 1, 1024);
  }
}

static void test_trim_mallinfo(void) {
  int t;
  NOERRNO(t, malloc_trim(0));
  CHECKF(t == 0 || t == 1, "malloc_trim(0) = %d", t);
  NOERRNO(t, malloc_trim(1 << 20));
  CHECKF(t == 0 || t == 1, "malloc_trim(1 MiB) = %d", t);

  struct mallinfo2 a;
  NOERRNO(a, mallinfo2());
  static void *ps[SMALL_N];
  small_blocks(ps);
  struct mallinfo2 b;
  NOERRNO(b, mallinfo2());
  CHECKF(b.uordblks >= a.uordblks + 9 * TU_MiB,
         "mallinfo2.uordblks %zu -> %zu after 10 MiB of small live blocks", a.uordblks,
         b.uordblks);
  CHECKF(b.uordblks <= b.arena, "mallinfo2: uordblks %zu > arena %zu", b.uordblks, b.arena);
  CHECK(b.fordblks < ((size_t)1 << 50) && b.hblkhd < ((size_t)1 << 50));
  for (int i = 0; i < SMALL_N; i++) free(ps[i]);
  struct mallinfo2 c;
  NOERRNO(c, mallinfo2());
  CHECKF(c.uordblks + 5 * TU_MiB <= b.uordblks,
         "mallinfo2.uordblks %zu -> %zu after freeing 10 MiB", b.uordblks, c.uordblks);

  /* A large block shows up in uordblks + hblkhd (glibc: hblkhd). */
  void *big = malloc(10 * TU_MiB);
  CHECK(big);
  tu_fill_byte(big, 1, 4096);
  struct mallinfo2 d;
  NOERRNO(d, mallinfo2());
  CHECKF(d.uordblks + d.hblkhd >= c.uordblks + c.hblkhd + 10 * TU_MiB,
         "mallinfo2 after a 10 MiB block: uordblks+hblkhd %zu -> %zu", c.uordblks + c.hblkhd,
         d.uordblks + d.hblkhd);
  free(big);
  NOERRNO(t, malloc_trim(0));
  CHECK(t == 0 || t == 1);
}

/* mallopt as glibc 2.36 answers it (tuning lzmalloc is the LZMALLOC_*
 * variables' job, so nothing changes): 1 for every parameter, known or
 * not, except M_MXFAST with a value outside 0..80 * sizeof(size_t) / 4,
 * which glibc refuses with 0; errno untouched either way. __libc_mallopt,
 * which glibc exports too, answers the same. In a child process: under
 * plain glibc these calls do change its allocator (M_PERTURB fills every
 * block, M_MMAP_MAX 0 turns mmap off), which the later checks must not
 * inherit. */
extern int __libc_mallopt(int param, int value);
static void mallopt_calls(void) {
  static const int params[] = {M_MXFAST, M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_MMAP_MAX, M_CHECK_ACTION,
                               M_PERTURB, M_ARENA_TEST, M_ARENA_MAX, 0, 2, 12345, -100, INT_MIN, INT_MAX};
  static const int values[] = {INT_MIN, -1, 0, 1, 80, 159, 160, 161, 1 << 20, INT_MAX};
  const int mxfast_max = 80 * (int)sizeof(size_t) / 4;
  for (size_t i = 0; i < sizeof params / sizeof *params; i++) {
    for (size_t j = 0; j < sizeof values / sizeof *values; j++) {
      int want = params[i] == M_MXFAST ? values[j] >= 0 && values[j] <= mxfast_max : 1;
      int got;
      NOERRNO(got, mallopt(params[i], values[j]));
      CHECKF(got == want, "mallopt(%d, %d) = %d, glibc answers %d", params[i], values[j], got, want);
      NOERRNO(got, __libc_mallopt(params[i], values[j]));
      CHECKF(got == want, "__libc_mallopt(%d, %d) = %d, glibc answers %d", params[i], values[j], got, want);
    }
  }
  /* Still an ordinary allocator afterwards. */
  void *p;
  NOERRNO(p, malloc(100));
  check_block(p, 100, 16, 4, "malloc after mallopt");
  free(p);
}

static void test_mallopt(void) {
  fflush(stdout);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    mallopt_calls();
    _exit(0);
  }
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the mallopt child failed (status %#x)", st);
}

/* mallinfo and __libc_mallinfo (both exported by glibc) report what
 * mallinfo2 reports, in ints converted as glibc 2.36 converts them: a
 * figure of 2 GiB or more wraps (a 2.5 GiB block, never touched, makes
 * hblkhd negative under glibc too), it is not clamped. */
extern struct mallinfo __libc_mallinfo(void);
static void test_mallinfo_int(void) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  struct mallinfo a;
  NOERRNO(a, __libc_mallinfo());
  static void *ps[SMALL_N];
  small_blocks(ps);
  struct mallinfo b;
  NOERRNO(b, __libc_mallinfo());
  CHECKF((long)b.uordblks >= (long)a.uordblks + 9 * (long)TU_MiB,
         "__libc_mallinfo.uordblks %d -> %d after 10 MiB of small live blocks", a.uordblks, b.uordblks);
  struct mallinfo c;
  NOERRNO(c, mallinfo());
  CHECKF(c.uordblks == b.uordblks && c.arena == b.arena, "mallinfo (%d, %d) and __libc_mallinfo (%d, %d) differ",
         c.uordblks, c.arena, b.uordblks, b.arena);
  for (int i = 0; i < SMALL_N; i++) free(ps[i]);

  size_t huge = (size_t)5 << 29; /* 2.5 GiB */
  void *big = malloc(huge);
  if (big == NULL) {
    printf("  (no room for a 2.5 GiB mapping: the wrap check skipped)\n");
    return;
  }
  struct mallinfo2 m2;
  struct mallinfo m;
  NOERRNO(m2, mallinfo2());
  NOERRNO(m, mallinfo());
  CHECKF(m2.hblkhd + m2.uordblks >= huge, "mallinfo2 after a 2.5 GiB block: hblkhd %zu uordblks %zu", m2.hblkhd,
         m2.uordblks);
  CHECKF(m.hblkhd == (int)m2.hblkhd && m.uordblks == (int)m2.uordblks && m.arena == (int)m2.arena,
         "mallinfo (hblkhd %d, uordblks %d, arena %d) is not mallinfo2's figures converted to int (%d, %d, %d)",
         m.hblkhd, m.uordblks, m.arena, (int)m2.hblkhd, (int)m2.uordblks, (int)m2.arena);
  FREE_OK(big);
#pragma GCC diagnostic pop
}

/* Large blocks are glibc's mmapped chunks in mallinfo2: each live one
 * counts in hblks and its pages in hblkhd, not in uordblks (the program's
 * bytes are uordblks + hblkhd). malloc_stats writes glibc's eight lines:
 * an arena, the totals with mmapped bytes, the most mmapped regions and
 * bytes there were, each figure right-aligned in ten columns; and
 * malloc_info's mmap total counts the same blocks. */
static int stats_line(const char *line, const char *label, unsigned long *v) {
  size_t n = strlen(label);
  if (strncmp(line, label, n) != 0 || strlen(line) != n + 10) return 0;
  for (size_t i = n; i < n + 10; i++)
    if (!(line[i] == ' ' || (line[i] >= '0' && line[i] <= '9'))) return 0;
  if (line[n + 9] == ' ') return 0; /* right-aligned: the last column is a digit */
  *v = strtoul(line + n, NULL, 10);
  return 1;
}

static void test_mmapped_stats(void) {
  struct mallinfo2 a, b, c;
  NOERRNO(a, mallinfo2());
  void *big = malloc(40 * TU_MiB); /* above glibc's largest mmap threshold (32 MiB) */
  CHECK(big);
  tu_fill_byte(big, 1, 4096);
  NOERRNO(b, mallinfo2());
  CHECKF(b.hblks == a.hblks + 1, "mallinfo2.hblks %zu -> %zu after a 40 MiB block", a.hblks, b.hblks);
  CHECKF(b.hblkhd >= a.hblkhd + 40 * TU_MiB, "mallinfo2.hblkhd %zu -> %zu after a 40 MiB block", a.hblkhd, b.hblkhd);
  CHECKF(b.uordblks < a.uordblks + TU_MiB, "mallinfo2.uordblks %zu -> %zu: a 40 MiB block counted there", a.uordblks,
         b.uordblks);

  /* malloc_stats into a pipe, the 40 MiB block live. */
  int fds[2];
  CHECK(pipe(fds) == 0);
  fflush(stderr);
  int saved = dup(2);
  CHECK(saved >= 0 && dup2(fds[1], 2) == 2);
  malloc_stats();
  fflush(stderr);
  CHECK(dup2(saved, 2) == 2);
  close(saved);
  close(fds[1]);
  char text[1024];
  size_t len = 0;
  for (ssize_t r; len < sizeof text - 1 && (r = read(fds[0], text + len, sizeof text - 1 - len)) > 0;) len += (size_t)r;
  close(fds[0]);
  text[len] = 0;
  static const char *const labels[] = {"Arena 0:", "system bytes     = ", "in use bytes     = ", "Total (incl. mmap):",
                                       "system bytes     = ", "in use bytes     = ", "max mmap regions = ",
                                       "max mmap bytes   = "};
  unsigned long v[8] = {0};
  char *line = text;
  for (int i = 0; i < 8; i++) {
    char *end = strchr(line, '\n');
    CHECKF(end != NULL, "malloc_stats: %d lines, want 8:\n%s", i, text);
    *end = 0;
    if (i == 0 || i == 3) CHECKF(strcmp(line, labels[i]) == 0, "malloc_stats line %d is '%s', want '%s'", i + 1, line, labels[i]);
    else CHECKF(stats_line(line, labels[i], &v[i]), "malloc_stats line %d '%s' is not '%s%%10u'", i + 1, line, labels[i]);
    line = end + 1;
  }
  CHECKF(*line == 0, "malloc_stats: more than 8 lines:\n%s", line);
  CHECKF(v[6] >= 1 && v[7] >= 40 * TU_MiB, "malloc_stats: max mmap regions %lu, bytes %lu with a 40 MiB block live",
         v[6], v[7]);
  CHECKF(v[5] >= v[2] + 40 * TU_MiB && v[4] >= v[1] + 40 * TU_MiB,
         "malloc_stats: totals (system %lu, in use %lu) lack the 40 MiB block (arena: %lu, %lu)", v[4], v[5], v[1], v[2]);

  /* malloc_info's top-level <total type="mmap" count=...> is the same
   * count (glibc's n_mmaps), with a second such block live. */
  void *big2 = malloc(40 * TU_MiB);
  CHECK(big2);
  static char xml[16384];
  FILE *f = fmemopen(xml, sizeof xml - 1, "w");
  CHECK(f != NULL && malloc_info(0, f) == 0);
  fclose(f);
  const char *mm = strstr(xml, "<total type=\"mmap\" count=\"");
  CHECKF(mm != NULL, "malloc_info has no mmap total:\n%s", xml);
  unsigned long count = strtoul(mm + strlen("<total type=\"mmap\" count=\""), NULL, 10);
  CHECKF(count == a.hblks + 2, "malloc_info: mmap count %lu with two 40 MiB blocks live (mallinfo2.hblks %zu before)",
         count, a.hblks);
  FREE_OK(big2);
  FREE_OK(big);
  NOERRNO(c, mallinfo2());
  CHECKF(c.hblks == a.hblks, "mallinfo2.hblks %zu after the 40 MiB blocks were freed, %zu before them", c.hblks, a.hblks);
}

static void test_free_sized(void) {
  if (!free_sized || !free_aligned_sized) {
    CHECKF(!LZ_TEST_EXPECT_LZMALLOC, "free_sized/free_aligned_sized not exported");
    printf("  (free_sized/free_aligned_sized absent: plain glibc, skipped)\n");
    return;
  }
  for (size_t i = 0; i < N_SIZES; i++) {
    size_t n = k_sizes[i];
    void *p = malloc(n);
    CHECK(p);
    tu_fill_byte(p, 3, n);
    errno = SENTINEL;
    free_sized(p, n);
    CHECK(errno == SENTINEL);
    p = calloc(n > 4 ? n / 4 : 1, 4);
    CHECK(p);
    free_sized(p, (n > 4 ? n / 4 : 1) * 4);
    p = malloc(10);
    CHECK(p);
    p = realloc(p, n + 1);
    CHECK(p);
    free_sized(p, n + 1);
  }
  free_sized(NULL, 0);
  free_sized(NULL, 100);
  for (size_t a = 1; a <= ((size_t)2 << 20); a <<= 1) {
    size_t sizes[] = {1, 100, a, 3 * a, 40000};
    for (size_t i = 0; i < 5; i++) {
      void *p = aligned_alloc(a, sizes[i]);
      CHECK(p && is_aligned(p, a));
      tu_fill_byte(p, 4, sizes[i]);
      errno = SENTINEL;
      free_aligned_sized(p, a, sizes[i]);
      CHECK(errno == SENTINEL);
    }
  }
  free_aligned_sized(NULL, 64, 0);
}

static void test_libc_aliases(void) {
  void *p;
  NOERRNO(p, __libc_malloc(100));
  check_block(p, 100, 16, 1, "__libc_malloc");
  free(p);
  NOERRNO(p, malloc(200));
  check_block(p, 200, 16, 2, "malloc");
  __libc_free(p);
  NOERRNO(p, __libc_calloc(100, 30));
  CHECK(p && tu_all_zero(p, 3000));
  tu_pattern_fill(p, 3000, 9);
  void *q;
  NOERRNO(q, __libc_realloc(p, 70000));
  CHECK(q && tu_pattern_check(q, 3000, 9) == SIZE_MAX);
  NOERRNO(p, __libc_realloc(q, 2 << 20));
  CHECK(p && tu_pattern_check(p, 3000, 9) == SIZE_MAX);
  __libc_free(p);
  NOERRNO(p, __libc_memalign(4096, 5000));
  check_block(p, 5000, 4096, 3, "__libc_memalign");
  __libc_free(p);
  NOERRNO(p, __libc_memalign(64, 10));
  check_block(p, 10, 64, 3, "__libc_memalign");
  free(p);
  __libc_free(NULL);
  q = malloc(100);
  CHECK(q);
  NOERRNO(p, __libc_realloc(q, 0));
  CHECK(p == NULL);
  FAILS(__libc_calloc(tu_opaque(SIZE_MAX / 2 + 1), 2), ENOMEM);
}

/* Out of memory for real: in a child process limited by RLIMIT_AS to a
 * little more than it uses now, every allocating function fails with
 * ENOMEM in errno (posix_memalign returns it too) once the address space is
 * used up, for each size range, and frees then leave errno alone. The
 * child reports through its exit status. */
typedef enum { F_MALLOC, F_CALLOC, F_REALLOC, F_MEMALIGN, F_ALIGNED, F_VALLOC, F_PVALLOC, F_POSIX, F_COUNT } oom_fn_t;
static const char *const k_oom_names[F_COUNT] = {"malloc",        "calloc", "realloc", "memalign",
                                                 "aligned_alloc", "valloc", "pvalloc", "posix_memalign"};

static void *oom_call(oom_fn_t f, size_t n, int *rc) {
  void *p = NULL;
  *rc = 0;
  switch (f) {
    case F_MALLOC: return malloc(n);
    case F_CALLOC: return calloc(1, n);
    case F_REALLOC: return realloc(NULL, n);
    case F_MEMALIGN: return memalign(256, n);
    case F_ALIGNED: return aligned_alloc(4096, n);
    case F_VALLOC: return valloc(n);
    case F_PVALLOC: return pvalloc(n);
    case F_POSIX:
      p = (void *)0x1234;
      *rc = posix_memalign(&p, 64, n);
      if (*rc != 0) {
        if (p != (void *)0x1234) *rc = -1;
        return NULL;
      }
      return p;
    default: return NULL;
  }
}

/* Allocates blocks of `size` with f until it fails (kept in a list
 * threaded through the blocks); returns 0 if the failure had the expected
 * errno (and return value), else a code. */
static int oom_exhaust(oom_fn_t f, size_t size) {
  void *held = NULL;
  size_t n = 0;
  int bad = 0;
  for (;;) {
    int rc;
    errno = SENTINEL;
    void *p = oom_call(f, tu_opaque(size), &rc);
    if (p != NULL) {
      if (errno != SENTINEL) { bad = 3; break; }
      *(void **)p = held;
      held = p;
      if (++n > ((size_t)1 << 24)) { bad = 4; break; } /* the limit did not bite */
      continue;
    }
    if (errno != ENOMEM) bad = 1;
    if (f == F_POSIX && rc != ENOMEM) bad = 2;
    break;
  }
  /* A second failing call right away behaves the same. */
  if (!bad) {
    int rc;
    errno = SENTINEL;
    void *p = oom_call(f, tu_opaque(size), &rc);
    if (p == NULL && errno != ENOMEM) bad = 5;
    if (p != NULL) {
      *(void **)p = held;
      held = p;
    }
  }
  while (held != NULL) {
    void *next = *(void **)held;
    errno = SENTINEL;
    free(held);
    if (errno != SENTINEL && !bad) bad = 6;
    held = next;
  }
  return bad;
}

static void test_oom_errno(void) {
  /* qemu-user accepts RLIMIT_AS but does not apply it to the guest. */
  if (getenv("LZ_TEST_NO_RLIMIT_AS") != NULL) return;
  static const size_t sizes[] = {48, 20000, 300000, 3 << 20};
  for (int f = 0; f < F_COUNT; f++) {
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
      fflush(stdout);
      pid_t pid = fork();
      CHECK(pid >= 0);
      if (pid == 0) {
        alarm(60);
        struct rlimit rl;
        getrlimit(RLIMIT_AS, &rl);
        /* Current size plus 64 MiB. */
        size_t vm = 0;
        char buf[256];
        FILE *fp = fopen("/proc/self/statm", "r");
        if (fp != NULL) {
          if (fgets(buf, sizeof buf, fp)) vm = (size_t)strtoull(buf, NULL, 10) * PAGE;
          fclose(fp);
        }
        if (vm == 0) _exit(0); /* no /proc: nothing to limit against */
        rl.rlim_cur = vm + ((size_t)64 << 20);
        if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(0);
        _exit(oom_exhaust((oom_fn_t)f, sizes[si]));
      }
      int st;
      CHECK(waitpid(pid, &st, 0) == pid);
      CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0,
             "%s(%zu) under RLIMIT_AS: status 0x%x (exit 1: errno not ENOMEM, 2: posix_memalign did not "
             "return ENOMEM, 3: success changed errno, 4: limit did not bite, 5: repeat failure errno, "
             "6: free changed errno)",
             k_oom_names[f], sizes[si], st);
    }
  }
}

/* When linked with lzmalloc, prove that the standard names (and glibc's
 * __libc_ aliases) are served by lzmalloc: lz_usable_size() only accepts
 * lzmalloc's blocks and agrees with malloc_usable_size(). */
static void test_routed_to_lzmalloc(void) {
  if (!LZ_TEST_EXPECT_LZMALLOC) {
    printf("  (not linked with lzmalloc: routing check skipped)\n");
    return;
  }
  void *ps[6];
  ps[0] = malloc(100);
  ps[1] = calloc(10, 10000);
  ps[2] = realloc(NULL, 3 << 20);
  ps[3] = aligned_alloc(4096, 4096);
  ps[4] = __libc_malloc(64);
  ps[5] = __libc_memalign(256, 1000);
  for (int i = 0; i < 6; i++) {
    CHECK(ps[i]);
    CHECKF(lz_usable_size(ps[i]) == malloc_usable_size(ps[i]),
           "block %d: lz_usable_size %zu != malloc_usable_size %zu", i, lz_usable_size(ps[i]),
           malloc_usable_size(ps[i]));
    free(ps[i]);
  }
}

int main(void) {
  struct {
    const char *name;
    void (*fn)(void);
  } tests[] = {
      {"malloc_basic", test_malloc_basic},
      {"malloc_zero_unique", test_malloc_zero_unique},
      {"alignment_random", test_alignment_random},
      {"calloc", test_calloc},
      {"huge", test_huge},
      {"realloc", test_realloc},
      {"reallocarray", test_reallocarray},
      {"posix_memalign", test_posix_memalign},
      {"oom_errno", test_oom_errno},
      {"valloc_pvalloc", test_valloc_pvalloc},
      {"trim_mallinfo", test_trim_mallinfo},
      {"mallopt", test_mallopt},
      {"mallinfo_int", test_mallinfo_int},
      {"mmapped_stats", test_mmapped_stats},
      {"free_sized", test_free_sized},
      {"libc_aliases", test_libc_aliases},
      {"routed_to_lzmalloc", test_routed_to_lzmalloc},
  };
  for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
    double t0 = tu_now();
    tests[i].fn();
    printf("ok %-22s %.3f s\n", tests[i].name, tu_now() - t0);
  }
  double t0 = tu_now();
  test_align_family(call_aligned_alloc, "aligned_alloc");
  test_align_family(call_memalign, "memalign");
  test_align_family(call_libc_memalign, "__libc_memalign");
  printf("ok %-22s %.3f s\n", "align_family", tu_now() - t0);
  printf("api_conformance: all passed\n");
  return 0;
}
