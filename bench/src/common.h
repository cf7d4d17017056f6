/* Shared helpers for the lzmalloc benchmark workloads.
 *
 * Every workload is a standalone program that uses only the standard malloc
 * family (the allocator under test is chosen with LD_PRELOAD by the runner),
 * is deterministic given its seed, verifies the memory it uses and ends with
 *     result: <figure> <unit>
 * Optional extra figures are printed as
 *     metric: <name> <figure> <unit>
 * Command line of every workload: <prog> [threads] [scale] [extra...]
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define UNUSED(x) ((void)(x))

/* ---- arguments --------------------------------------------------------- */

static inline void parse_args(int argc, char **argv, int *threads, double *scale,
                              int def_threads) {
  *threads = def_threads;
  *scale = 1.0;
  if (argc > 1) *threads = atoi(argv[1]);
  if (argc > 2) *scale = atof(argv[2]);
  if (*threads < 1) *threads = 1;
  if (*threads > 1024) *threads = 1024;
  if (!(*scale > 0.0)) *scale = 1.0;
}

static inline uint64_t scaled(uint64_t base, double scale, uint64_t min) {
  double v = (double)base * scale;
  uint64_t r = (uint64_t)v;
  return r < min ? min : r;
}

/* ---- failure ----------------------------------------------------------- */

__attribute__((noreturn, format(printf, 1, 2))) static void bench_fail(const char *fmt, ...);
static void bench_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("FAIL: ", stdout);
  vfprintf(stdout, fmt, ap);
  fputc('\n', stdout);
  fflush(stdout);
  va_end(ap);
  _exit(2);
}

static inline void *xmalloc_or_fail(size_t n) {
  void *p = malloc(n);
  if (!p) bench_fail("malloc(%zu) returned NULL", n);
  return p;
}

/* ---- time -------------------------------------------------------------- */

static inline double now_sec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Minor page faults of this process so far (getrusage). */
static inline long minor_faults(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

/* ---- PRNG (splitmix64 seeding a xorshift64*) ---------------------------- */

typedef struct { uint64_t s; } rng_t;

static inline uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static inline void rng_seed(rng_t *r, uint64_t seed) {
  uint64_t x = seed;
  r->s = splitmix64(&x);
  if (r->s == 0) r->s = 1;
}

static inline uint64_t rng_next(rng_t *r) {
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* uniform in [0, n) */
static inline uint64_t rng_below(rng_t *r, uint64_t n) {
  return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

/* uniform in [lo, hi] */
static inline uint64_t rng_range(rng_t *r, uint64_t lo, uint64_t hi) {
  return lo + rng_below(r, hi - lo + 1);
}

static inline double rng_unit(rng_t *r) { /* (0,1] */
  return ((double)(rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

/* log-uniform in [lo, hi]: as many blocks per power of two */
static inline size_t rng_logsize(rng_t *r, size_t lo, size_t hi) {
  int lb = 63 - __builtin_clzll(lo), hb = 63 - __builtin_clzll(hi);
  int b = (int)rng_range(r, (uint64_t)lb, (uint64_t)hb);
  size_t base = (size_t)1 << b;
  size_t s = base + (size_t)rng_below(r, base);
  if (s < lo) s = lo;
  if (s > hi) s = hi;
  return s;
}

/* ---- memory contents ----------------------------------------------------
 * A block is filled at distinct, non-overlapping places: the first 256 bytes
 * (8-byte words), one word in every further 4 KiB page (so every page is
 * touched and RSS is real) and the last byte. check_pattern verifies the
 * same places. */

static inline uint64_t pat_word(uint64_t tag, size_t off) {
  return (tag + off) * 0x9E3779B97F4A7C15ull ^ (tag >> 7);
}

#define PAT_HEAD 256

static inline void fill_pattern(void *p, size_t n, uint64_t tag) {
  unsigned char *b = (unsigned char *)p;
  if (n < 8) {
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(tag + i * 31);
    return;
  }
  size_t head = n < PAT_HEAD ? n : PAT_HEAD;
  size_t off = 0;
  for (; off + 8 <= head; off += 8) {
    uint64_t w = pat_word(tag, off);
    memcpy(b + off, &w, 8);
  }
  for (size_t pg = 4096; pg + 8 <= n - 1; pg += 4096) {
    uint64_t w = pat_word(tag, pg);
    memcpy(b + pg, &w, 8);
  }
  if (n - 1 >= off) b[n - 1] = (unsigned char)(tag ^ 0x5a);
}

static inline int check_pattern(const void *p, size_t n, uint64_t tag) {
  const unsigned char *b = (const unsigned char *)p;
  if (n < 8) {
    for (size_t i = 0; i < n; i++)
      if (b[i] != (unsigned char)(tag + i * 31)) return -1;
    return 0;
  }
  size_t head = n < PAT_HEAD ? n : PAT_HEAD;
  size_t off = 0;
  for (; off + 8 <= head; off += 8) {
    uint64_t w;
    memcpy(&w, b + off, 8);
    if (w != pat_word(tag, off)) return -1;
  }
  for (size_t pg = 4096; pg + 8 <= n - 1; pg += 4096) {
    uint64_t w;
    memcpy(&w, b + pg, 8);
    if (w != pat_word(tag, pg)) return -1;
  }
  if (n - 1 >= off && b[n - 1] != (unsigned char)(tag ^ 0x5a)) return -1;
  return 0;
}

/* Threads: a benchmark whose threads did not start or join measured
 * nothing, so both fail loudly. */
static inline void bench_thread_start(pthread_t *t, void *(*fn)(void *), void *arg) {
  int rc = pthread_create(t, NULL, fn, arg);
  if (rc != 0) bench_fail("pthread_create: error %d", rc);
}
static inline void bench_thread_join(pthread_t t) {
  int rc = pthread_join(t, NULL);
  if (rc != 0) bench_fail("pthread_join: error %d", rc);
}

/* Checks the first `keep` bytes of a block of n bytes that fill_pattern(p,
 * n, tag) wrote: every pattern word inside them, and the last byte when it
 * is kept. 0 if intact. */
static inline int check_pattern_prefix(const void *p, size_t n, size_t keep, uint64_t tag) {
  if (keep >= n) return check_pattern(p, n, tag);
  const unsigned char *b = (const unsigned char *)p;
  if (n < 8) {
    for (size_t i = 0; i < keep; i++)
      if (b[i] != (unsigned char)(tag + i * 31)) return -1;
    return 0;
  }
  size_t head = n < PAT_HEAD ? n : PAT_HEAD;
  for (size_t off = 0; off + 8 <= head && off + 8 <= keep; off += 8) {
    uint64_t w;
    memcpy(&w, b + off, 8);
    if (w != pat_word(tag, off)) return -1;
  }
  for (size_t pg = 4096; pg + 8 <= n - 1 && pg + 8 <= keep; pg += 4096) {
    uint64_t w;
    memcpy(&w, b + pg, 8);
    if (w != pat_word(tag, pg)) return -1;
  }
  return 0;
}

/* Self-describing blocks (size >= 8): word 0 holds the size (low 32 bits)
 * and a 32-bit tag; the rest carries the pattern of that tag. Used where
 * blocks travel between threads without a side record. */
#define BLK_MAX ((size_t)1 << 30)

static inline void *blk_new(size_t size, uint32_t tag) {
  if (size < 8) size = 8;
  unsigned char *p = (unsigned char *)malloc(size);
  if (!p) bench_fail("malloc(%zu) returned NULL", size);
  uint64_t h = (uint64_t)(uint32_t)size | ((uint64_t)tag << 32);
  memcpy(p, &h, 8);
  fill_pattern(p + 8, size - 8, h);
  return p;
}

static inline size_t blk_size(const void *p) {
  uint64_t h;
  memcpy(&h, p, 8);
  return (size_t)(uint32_t)h;
}

static inline void blk_check(const void *p, const char *where) {
  uint64_t h;
  memcpy(&h, p, 8);
  size_t size = (size_t)(uint32_t)h;
  if (size < 8 || size > BLK_MAX || check_pattern((const unsigned char *)p + 8, size - 8, h) != 0)
    bench_fail("%s: block %p (size %zu) corrupted", where, p, size);
}

/* The header is poisoned before the block is freed, so a block handed out
 * twice (alive in two places) is caught when its second holder frees it. */
static inline void blk_free(void *p, const char *where) {
  if (!p) return;
  blk_check(p, where);
  uint64_t poison = 0xDEADBEEFDEADBEEFull;
  memcpy(p, &poison, 8);
  __asm__ volatile("" : : "r"(p) : "memory"); /* keep the store: free() would let it die */
  free(p);
}

/* Reallocate a self-describing block, checking that all of the kept prefix
 * survived, then refill it for its new size. */
static inline void *blk_realloc(void *p, size_t newsize, uint32_t tag, const char *where) {
  if (newsize < 8) newsize = 8;
  blk_check(p, where);
  uint64_t h;
  memcpy(&h, p, 8);
  size_t old = (size_t)(uint32_t)h;
  size_t keep = old < newsize ? old : newsize;
  unsigned char *q = (unsigned char *)realloc(p, newsize);
  if (!q) bench_fail("realloc(%zu) returned NULL", newsize);
  uint64_t h2;
  memcpy(&h2, q, 8);
  if (h2 != h) bench_fail("%s: realloc lost the header", where);
  /* Every pattern word of the kept part (head, one per page, last byte). */
  if (check_pattern_prefix(q + 8, old - 8, keep - 8, h) != 0)
    bench_fail("%s: realloc %zu -> %zu lost contents", where, old, newsize);
  uint64_t nh = (uint64_t)(uint32_t)newsize | ((uint64_t)tag << 32);
  memcpy(q, &nh, 8);
  fill_pattern(q + 8, newsize - 8, nh);
  return q;
}

/* ---- reporting --------------------------------------------------------- */

/* Resident set size in bytes, from /proc/self/statm (no allocation). */
static inline size_t rss_bytes(void) {
  char buf[128];
  int fd = open("/proc/self/statm", O_RDONLY);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  char *sp = strchr(buf, ' ');
  if (!sp) return 0;
  unsigned long long res = strtoull(sp + 1, NULL, 10);
  return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

/* Names the allocator libraries mapped in this process, so the runner can
 * confirm that its LD_PRELOAD took effect. */
static inline void report_maps(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f) return;
  char line[512], seen[1024] = "";
  while (fgets(line, sizeof line, f)) {
    char *slash = strrchr(line, '/');
    if (!slash) continue;
    char *name = slash + 1;
    name[strcspn(name, "\n")] = 0;
    if (strncmp(name, "lib", 3) == 0 && strstr(name, "malloc") && strlen(seen) + strlen(name) + 2 < sizeof seen &&
        !strstr(seen, name)) {
      strcat(seen, " ");
      strcat(seen, name);
    }
  }
  fclose(f);
  printf("maps:%s\n", seen[0] ? seen : " none");
}

static inline void report_result(double figure, const char *unit) {
  report_maps();
  printf("result: %.6g %s\n", figure, unit);
  fflush(stdout);
}

#endif
