/* scale_common.h: what the scale_* tests share: CHECK, the sanitizer
 * switch, LZ_TEST_SCALE, a clock, a PRNG and id-derived fill patterns. */
#ifndef LZ_SCALE_COMMON_H
#define LZ_SCALE_COMMON_H
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lzmalloc.h"

#define CHECK(c)                                                                              \
  do {                                                                                        \
    if (!(c)) {                                                                               \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c);                   \
      fflush(stderr);                                                                         \
      _exit(1);                                                                               \
    }                                                                                         \
  } while (0)

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

static inline double test_scale(void) {
  const char *e = getenv("LZ_TEST_SCALE");
  double s = e && *e ? strtod(e, NULL) : 1.0;
  return s > 0.001 ? s : (e && *e ? 0.001 : 1.0);
}

static inline double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- patterns: word w of block `id` is base(id) + w * STEP --------------- */
#define STEP 0x9e3779b97f4a7c15ull
typedef uint64_t __attribute__((may_alias)) word_t; /* tests build with -fno-builtin: no memcpy */
static inline uint64_t pat_base(uint64_t id) {
  uint64_t x = id * 0xd6e8feb86659fd93ull + 0x5851f42d4c957f2dull;
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ull;
  return x ^ (x >> 29);
}
static inline uint8_t pat_byte(uint64_t id, size_t i) {
  return (uint8_t)((pat_base(id) + (uint64_t)(i >> 3) * STEP) >> ((i & 7) * 8));
}
/* [from, to) of a 16-byte aligned block. */
static inline void fill(unsigned char *p, size_t from, size_t to, uint64_t id) {
  size_t i = from;
  for (; i < to && (i & 7); i++) p[i] = pat_byte(id, i);
  uint64_t w = pat_base(id) + (uint64_t)(i >> 3) * STEP;
  for (; i + 8 <= to; i += 8, w += STEP) *(word_t *)(void *)(p + i) = w;
  for (; i < to; i++) p[i] = pat_byte(id, i);
}
static inline int check(const unsigned char *p, size_t from, size_t to, uint64_t id) {
  size_t i = from;
  for (; i < to && (i & 7); i++)
    if (p[i] != pat_byte(id, i)) return 0;
  uint64_t w = pat_base(id) + (uint64_t)(i >> 3) * STEP;
  for (; i + 8 <= to; i += 8, w += STEP)
    if (*(const word_t *)(const void *)(p + i) != w) return 0;
  for (; i < to; i++)
    if (p[i] != pat_byte(id, i)) return 0;
  return 1;
}

static inline uint64_t rng_next(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545f4914f6cdd1dull;
}

#endif /* LZ_SCALE_COMMON_H */
