/* scale_absurd: absurd sizes are refused cleanly by every entry point, and
 * the process goes on allocating afterwards.
 *
 * For each size in SIZE_MAX, SIZE_MAX - 4096, PTRDIFF_MAX, PTRDIFF_MAX + 1,
 * 1 << 62 and 1 << 47 (128 TiB, more than the address space can map):
 * lz_malloc, lz_calloc(1, n), lz_calloc(n, 1), lz_realloc(NULL, n),
 * lz_realloc(p, n) (p must survive intact), lz_reallocarray, lz_aligned_alloc,
 * lz_memalign (several alignments), lz_valloc and lz_pvalloc return NULL
 * with errno == ENOMEM; lz_posix_memalign returns ENOMEM, sets errno to
 * ENOMEM too (as glibc) and leaves *out alone. calloc(1 << 32, 1 << 32) overflows: NULL, ENOMEM.
 * 64 GiB on a machine with less memory must either succeed lazily (then a
 * few pages are touched and it is freed) or fail with ENOMEM; both are
 * accepted and the outcome is printed. Between the rounds, blocks of every
 * engine are allocated, checked and freed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lzmalloc.h"

#define CHECK(c)                                                                              \
  do {                                                                                        \
    if (!(c)) {                                                                               \
      fprintf(stderr, "%s:%d: CHECK(%s) failed (size %s)\n", __FILE__, __LINE__, #c, cur_name); \
      fflush(stderr);                                                                         \
      _exit(1);                                                                               \
    }                                                                                         \
  } while (0)

static const char *cur_name = "-";

/* The call must fail with ENOMEM: errno is set to a marker first. */
#define EXPECT_ENOMEM(call)                                                                   \
  do {                                                                                        \
    errno = 0;                                                                                \
    void *r_ = (call);                                                                        \
    if (r_ != NULL || errno != ENOMEM) {                                                      \
      fprintf(stderr, "%s:%d: %s with size %s: returned %p, errno %d (expected NULL, ENOMEM)\n", \
              __FILE__, __LINE__, #call, cur_name, r_, errno);                                \
      _exit(1);                                                                               \
    }                                                                                         \
    n_refused++;                                                                              \
  } while (0)

static unsigned n_refused;

/* Hides constants from the compiler (alloc_size warnings, folding). */
static size_t opaque(size_t v) {
  static volatile size_t sink;
  sink = v;
  return sink;
}

/* Blocks of every engine still work: allocate, fill, check, free. */
static void sanity_round(unsigned round) {
  static const size_t sizes[] = {0, 1, 24, 1000, 5000, 32768, 40000, 300000, 1u << 20, (1u << 20) + 1, 5u << 20};
  void *p[sizeof sizes / sizeof sizes[0]];
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    errno = 0;
    p[i] = lz_malloc(sizes[i]);
    CHECK(p[i] != NULL);
    CHECK(errno == 0);
    CHECK(lz_usable_size(p[i]) >= sizes[i]);
    memset(p[i], (int)(round + i), sizes[i]);
  }
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    for (size_t k = 0; k < sizes[i]; k += 97) CHECK(((unsigned char *)p[i])[k] == (unsigned char)(round + i));
    lz_free(p[i]);
  }
}

int main(void) {
  static const struct {
    size_t n;
    const char *name;
  } huge[] = {
    {SIZE_MAX, "SIZE_MAX"},
    {SIZE_MAX - 4096, "SIZE_MAX-4096"},
    {PTRDIFF_MAX, "PTRDIFF_MAX"},
    {(size_t)PTRDIFF_MAX + 1, "PTRDIFF_MAX+1"},
    {(size_t)1 << 62, "1<<62"},
    {(size_t)1 << 47, "1<<47"},
  };
  static const size_t aligns[] = {16, 64, 4096, (size_t)1 << 21, (size_t)1 << 26};

  /* A live block of each engine that failed reallocs must leave intact. */
  size_t live_sizes[3] = {200, 100000, 3u << 20};
  unsigned char *live[3];
  for (int i = 0; i < 3; i++) {
    live[i] = lz_malloc(live_sizes[i]);
    CHECK(live[i] != NULL);
    memset(live[i], 0xa0 + i, live_sizes[i]);
  }

  for (size_t h = 0; h < sizeof huge / sizeof huge[0]; h++) {
    size_t n = opaque(huge[h].n);
    cur_name = huge[h].name;
    EXPECT_ENOMEM(lz_malloc(n));
    EXPECT_ENOMEM(lz_calloc(1, n));
    EXPECT_ENOMEM(lz_calloc(n, 1));
    EXPECT_ENOMEM(lz_realloc(NULL, n));
    EXPECT_ENOMEM(lz_reallocarray(NULL, n, 1));
    EXPECT_ENOMEM(lz_valloc(n));
    EXPECT_ENOMEM(lz_pvalloc(n));
    for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
      EXPECT_ENOMEM(lz_aligned_alloc(aligns[a], n));
      EXPECT_ENOMEM(lz_memalign(aligns[a], n));
      void *out = (void *)&live;
      errno = 4321;
      int rc = lz_posix_memalign(&out, aligns[a], n);
      if (rc != ENOMEM || errno != ENOMEM || out != (void *)&live) {
        fprintf(stderr, "posix_memalign(%zu, %s): rc %d, errno %d, out %s\n", aligns[a], cur_name, rc, errno,
                out == (void *)&live ? "untouched" : "WRITTEN");
        return 1;
      }
      n_refused++;
    }
    for (int i = 0; i < 3; i++) {
      EXPECT_ENOMEM(lz_realloc(live[i], n));
      EXPECT_ENOMEM(lz_reallocarray(live[i], 1, n));
      CHECK(lz_usable_size(live[i]) >= live_sizes[i]);
      for (size_t k = 0; k < live_sizes[i]; k += 61) CHECK(live[i][k] == 0xa0 + i);
    }
    sanity_round((unsigned)h);
  }

  /* Overflowing products. */
  cur_name = "(1<<32) x (1<<32)";
  EXPECT_ENOMEM(lz_calloc(opaque((size_t)1 << 32), opaque((size_t)1 << 32)));
  EXPECT_ENOMEM(lz_reallocarray(NULL, opaque((size_t)1 << 32), opaque((size_t)1 << 32)));
  EXPECT_ENOMEM(lz_reallocarray(live[0], opaque((size_t)1 << 32), opaque((size_t)1 << 32)));
  cur_name = "SIZE_MAX/2 x 3";
  EXPECT_ENOMEM(lz_calloc(opaque(SIZE_MAX / 2), opaque(3)));
  sanity_round(100);

  /* 64 GiB: more than this machine has; lazily mapped or refused. */
  const size_t big = (size_t)64 << 30;
  cur_name = "64 GiB";
  const char *outcome[3];
  for (int how = 0; how < 3; how++) {
    errno = 0;
    unsigned char *p = how == 0 ? lz_malloc(big) : how == 1 ? lz_calloc(1, big) : lz_realloc(NULL, big);
    if (p == NULL) {
      CHECK(errno == ENOMEM);
      outcome[how] = "refused with ENOMEM";
    } else {
      CHECK(errno == 0);
      CHECK(lz_usable_size(p) >= big);
      /* Touch a few pages spread over the block (and check calloc's zero). */
      for (size_t off = 0; off < big; off += big / 16) {
        if (how == 1) CHECK(p[off] == 0);
        p[off] = (unsigned char)off;
      }
      p[big - 1] = 7;
      lz_free(p);
      outcome[how] = "succeeded lazily (freed)";
    }
  }
  printf("scale_absurd: %u absurd requests refused with ENOMEM; 64 GiB: malloc %s, calloc %s, realloc(NULL) %s\n",
         n_refused, outcome[0], outcome[1], outcome[2]);
  sanity_round(200);

  for (int i = 0; i < 3; i++) {
    for (size_t k = 0; k < live_sizes[i]; k++) CHECK(live[i][k] == 0xa0 + i);
    lz_free(live[i]);
  }
  /* And something substantial still works after all that. */
  unsigned char *q = lz_malloc(64u << 20);
  CHECK(q != NULL);
  memset(q, 1, 64u << 20);
  lz_free(q);
  lz_trim(0);
  return 0;
}
