/* Shared helpers for lzmalloc's unit and stress tests (C and C++).
 *
 *   CHECK(cond) / CHECKF(cond, fmt, ...)   print file:line and exit(1)
 *   tu_rng_t, tu_rng_next, tu_rng_below    seeded xorshift64* PRNG
 *   tu_pattern_fill / tu_pattern_check     position-dependent byte pattern
 *   tu_rss_bytes / tu_hwm_bytes            VmRSS / VmHWM of this process
 *   tu_scale / tu_scaled                   LZ_TEST_SCALE (default 1)
 *
 * Nothing here allocates memory (the RSS readers use open/read on a stack
 * buffer), so the helpers never perturb the allocator under test.
 */
#ifndef LZ_TESTUTIL_H
#define LZ_TESTUTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__GNUC__)
#define TU_UNUSED __attribute__((unused))
#define TU_NORETURN __attribute__((noreturn))
#define TU_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TU_UNUSED
#define TU_NORETURN
#define TU_PRINTF(a, b)
#endif

/* Sanitizer detection (gcc defines __SANITIZE_*, clang has __has_feature). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TU_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define TU_SANITIZED 1
#endif
#endif
#ifndef TU_SANITIZED
#define TU_SANITIZED 0
#endif

#if defined(__SANITIZE_THREAD__)
#define TU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TU_TSAN 1
#endif
#endif
#ifndef TU_TSAN
#define TU_TSAN 0
#endif

/* ---- failure reporting ------------------------------------------------ */

static TU_NORETURN TU_UNUSED TU_PRINTF(4, 5) void
tu_fail(const char *file, int line, const char *expr, const char *fmt, ...) {
  fflush(stdout);
  fprintf(stderr, "%s:%d: CHECK failed: %s", file, line, expr);
  if (fmt && fmt[0]) {
    va_list ap;
    va_start(ap, fmt);
    fputs(": ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
  }
  fputc('\n', stderr);
  fflush(stderr);
  /* _exit: other threads may still be running; don't run atexit handlers
   * or destructors that could deadlock. */
  _exit(1);
}

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) tu_fail(__FILE__, __LINE__, #cond, "%s", "");               \
  } while (0)

#define CHECKF(cond, ...)                                                    \
  do {                                                                       \
    if (!(cond)) tu_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);            \
  } while (0)

/* ---- test scale ------------------------------------------------------- */

/* LZ_TEST_SCALE multiplies iteration counts (default 1; may be fractional,
 * e.g. 0.1 for a quick smoke run, or 10 for a soak). */
static TU_UNUSED double tu_scale(void) {
  static double scale = 0.0;
  if (scale == 0.0) {
    double s = 1.0;
    const char *e = getenv("LZ_TEST_SCALE");
    if (e && *e) {
      char *end = NULL;
      double v = strtod(e, &end);
      if (end != e && v > 0.0) s = v;
    }
    if (s < 0.001) s = 0.001;
    scale = s;
  }
  return scale;
}

/* n scaled by LZ_TEST_SCALE, at least `min`. */
static TU_UNUSED size_t tu_scaled(size_t n, size_t min) {
  double v = (double)n * tu_scale();
  size_t r = (size_t)v;
  return r < min ? min : r;
}

/* ---- time ------------------------------------------------------------- */

static TU_UNUSED double tu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- PRNG: xorshift64* -------------------------------------------------- */

typedef struct tu_rng_s {
  uint64_t s;
} tu_rng_t;

static inline TU_UNUSED uint64_t tu_mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

static inline TU_UNUSED void tu_rng_seed(tu_rng_t *r, uint64_t seed) {
  r->s = tu_mix64(seed + 0x9e3779b97f4a7c15ull);
  if (r->s == 0) r->s = 0x2545f4914f6cdd1dull;
}

static inline TU_UNUSED uint64_t tu_rng_next(tu_rng_t *r) {
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545f4914f6cdd1dull;
}

/* Uniform in [0, n), n > 0 (multiply-shift; bias is negligible here). */
static inline TU_UNUSED uint64_t tu_rng_below(tu_rng_t *r, uint64_t n) {
  return (uint64_t)(((unsigned __int128)tu_rng_next(r) * n) >> 64);
}

/* Uniform in [lo, hi]. */
static inline TU_UNUSED uint64_t tu_rng_range(tu_rng_t *r, uint64_t lo, uint64_t hi) {
  return lo + tu_rng_below(r, hi - lo + 1);
}

/* Roughly log-uniform in [lo, hi] (lo >= 1): small sizes dominate. */
static inline TU_UNUSED uint64_t tu_rng_logrange(tu_rng_t *r, uint64_t lo, uint64_t hi) {
  unsigned lb = 63u - (unsigned)__builtin_clzll(lo);
  unsigned hb = 63u - (unsigned)__builtin_clzll(hi);
  unsigned b = lb + (unsigned)tu_rng_below(r, hb - lb + 1);
  uint64_t blo = (uint64_t)1 << b, bhi = (blo << 1) - 1;
  if (blo < lo) blo = lo;
  if (bhi > hi) bhi = hi;
  return tu_rng_range(r, blo, bhi);
}

/* ---- patterns --------------------------------------------------------- */

/* The pattern byte at offset i of a block with seed `seed` is byte (i & 7)
 * (little-endian) of tu_pat_word(seed, i >> 3), so a block can be filled or
 * checked with aligned 64-bit words, and any sub-range filled separately
 * (e.g. the grown tail after a realloc) matches the whole-block pattern. */
static inline TU_UNUSED uint64_t tu_pat_word(uint64_t seed, size_t w) {
  uint64_t x = (seed * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)w * 0xd6e8feb86659fd93ull);
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ull;
  x ^= x >> 29;
  return x;
}

static inline TU_UNUSED uint8_t tu_pat_byte(uint64_t seed, size_t i) {
  return (uint8_t)(tu_pat_word(seed, i >> 3) >> ((i & 7) * 8));
}

/* Fill bytes [from, to) of block p. */
static TU_UNUSED void tu_pattern_fill_range(void *p, size_t from, size_t to, uint64_t seed) {
  unsigned char *b = (unsigned char *)p;
  size_t i = from;
  if (((uintptr_t)b & 7) != 0) {
    for (; i < to; i++) b[i] = tu_pat_byte(seed, i);
    return;
  }
  for (; i < to && (i & 7) != 0; i++) b[i] = tu_pat_byte(seed, i);
  for (; i + 8 <= to; i += 8) *(uint64_t *)(void *)(b + i) = tu_pat_word(seed, i >> 3);
  for (; i < to; i++) b[i] = tu_pat_byte(seed, i);
}

/* Check bytes [from, to); returns the first bad offset or SIZE_MAX. */
static TU_UNUSED size_t tu_pattern_check_range(const void *p, size_t from, size_t to,
                                               uint64_t seed) {
  const unsigned char *b = (const unsigned char *)p;
  size_t i = from;
  if (((uintptr_t)b & 7) != 0) {
    for (; i < to; i++)
      if (b[i] != tu_pat_byte(seed, i)) return i;
    return SIZE_MAX;
  }
  for (; i < to && (i & 7) != 0; i++)
    if (b[i] != tu_pat_byte(seed, i)) return i;
  for (; i + 8 <= to; i += 8) {
    if (*(const uint64_t *)(const void *)(b + i) != tu_pat_word(seed, i >> 3)) {
      for (size_t j = i; j < i + 8; j++)
        if (b[j] != tu_pat_byte(seed, j)) return j;
    }
  }
  for (; i < to; i++)
    if (b[i] != tu_pat_byte(seed, i)) return i;
  return SIZE_MAX;
}

static inline TU_UNUSED void tu_pattern_fill(void *p, size_t n, uint64_t seed) {
  tu_pattern_fill_range(p, 0, n, seed);
}

static inline TU_UNUSED size_t tu_pattern_check(const void *p, size_t n, uint64_t seed) {
  return tu_pattern_check_range(p, 0, n, seed);
}

/* Fill/check only the first and last `edge` bytes (cheap, for big blocks
 * whose contents are not the point of the test). */
static TU_UNUSED void tu_pattern_fill_edges(void *p, size_t n, size_t edge, uint64_t seed) {
  if (n <= 2 * edge) {
    tu_pattern_fill_range(p, 0, n, seed);
  } else {
    tu_pattern_fill_range(p, 0, edge, seed);
    tu_pattern_fill_range(p, n - edge, n, seed);
  }
}

static TU_UNUSED size_t tu_pattern_check_edges(const void *p, size_t n, size_t edge,
                                               uint64_t seed) {
  if (n <= 2 * edge) return tu_pattern_check_range(p, 0, n, seed);
  size_t r = tu_pattern_check_range(p, 0, edge, seed);
  if (r != SIZE_MAX) return r;
  return tu_pattern_check_range(p, n - edge, n, seed);
}

/* True if all n bytes are zero. */
static TU_UNUSED int tu_all_zero(const void *p, size_t n) {
  const unsigned char *b = (const unsigned char *)p;
  size_t i = 0;
  for (; i < n && ((uintptr_t)(b + i) & 7) != 0; i++)
    if (b[i]) return 0;
  for (; i + 8 <= n; i += 8)
    if (*(const uint64_t *)(const void *)(b + i)) return 0;
  for (; i < n; i++)
    if (b[i]) return 0;
  return 1;
}

/* Sets n bytes to c without calling memset (tests build with -fno-builtin
 * and we want the writes visible to the sanitizers as plain stores). */
static TU_UNUSED void tu_fill_byte(void *p, int c, size_t n) {
  volatile unsigned char *b = (volatile unsigned char *)p;
  for (size_t i = 0; i < n; i++) b[i] = (unsigned char)c;
}

/* ---- /proc/self/status ------------------------------------------------ */

/* Value of a "Key:   123 kB" line of /proc/self/status, in bytes; 0 if
 * unavailable. Uses no heap memory. */
static TU_UNUSED size_t tu_status_kb_field(const char *key) {
  char buf[8192];
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  size_t len = 0;
  for (;;) {
    ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
    if (r <= 0) break;
    len += (size_t)r;
    if (len >= sizeof(buf) - 1) break;
  }
  close(fd);
  buf[len] = '\0';
  size_t klen = strlen(key);
  const char *s = buf;
  while (s && *s) {
    if (strncmp(s, key, klen) == 0 && s[klen] == ':') {
      const char *v = s + klen + 1;
      while (*v == ' ' || *v == '\t') v++;
      size_t kb = 0;
      while (*v >= '0' && *v <= '9') kb = kb * 10 + (size_t)(*v++ - '0');
      return kb * 1024;
    }
    s = strchr(s, '\n');
    if (s) s++;
  }
  return 0;
}

/* In main of a test of the prefixed library (lzmalloc.h): exits 77
 * (skipped, saying why) when the library runs at hardening level 2, whose
 * blocks report their requested size as usable. */
#define TU_SKIP_AT_LEVEL2(why)                          \
  do {                                                  \
    void *tu_probe_ = lz_malloc(1);                     \
    int tu_level2_ = lz_usable_size(tu_probe_) == 1;    \
    lz_free(tu_probe_);                                 \
    if (tu_level2_) {                                   \
      printf("skipped: %s\n", why);                     \
      return 77;                                        \
    }                                                   \
  } while (0)

static inline TU_UNUSED size_t tu_rss_bytes(void) { return tu_status_kb_field("VmRSS"); }
static inline TU_UNUSED size_t tu_hwm_bytes(void) { return tu_status_kb_field("VmHWM"); }

/* Hide a value from the optimizer (keeps gcc from constant-folding huge or
 * invalid allocation sizes into warnings, or eliding allocations). */
static inline TU_UNUSED size_t tu_opaque(size_t x) {
  __asm__ volatile("" : "+r"(x));
  return x;
}

static inline TU_UNUSED void *tu_opaque_ptr(void *p) {
  __asm__ volatile("" : "+r"(p)::"memory");
  return p;
}

#define TU_MiB ((size_t)1 << 20)
#define TU_KiB ((size_t)1 << 10)

#endif /* LZ_TESTUTIL_H */
