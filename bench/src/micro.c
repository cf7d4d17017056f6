/* micro: cost of one malloc+free pair at fixed sizes (16 B .. 2 MiB).
 *
 *   micro [threads] [scale]          time: ns per pair, single-threaded (st)
 *                                    and with the free on another thread (xt)
 *   micro ir [pairs]                 instruction counts under callgrind: for
 *                                    every size and mode, the pair loop and an
 *                                    identical loop with a fake malloc/free are
 *                                    bracketed by callgrind client requests
 *                                    (zero, dump "real-..."/"base-..."); the
 *                                    runner takes (real - base) / pairs.
 *   micro irone <size> <st|xt> <n>   just one loop (fallback without the
 *                                    client-request header: the runner runs
 *                                    n pairs and 0 pairs and subtracts).
 *   micro batch <size> <n> [trials]  glibc-simple's pattern: n blocks
 *                                    allocated (first and last byte
 *                                    written), then freed in the same
 *                                    order, 6,000,000 pairs a trial; prints
 *                                    the best trial's ns per pair (default
 *                                    15 trials).
 * Lines "metric: st_<size> <ns> ns" and a final "result: <geomean st> ns/pair"
 * (lower is better). */
#include <pthread.h>
#include <math.h>
#include <sched.h>
#include "common.h"
#ifdef HAVE_CALLGRIND_H
#include <valgrind/callgrind.h>
#endif

static const size_t sizes[] = {16, 64, 256, 1024, 4096, 32768, 262144, 2097152};
#define NSIZES (sizeof sizes / sizeof *sizes)

typedef void *(*alloc_fn)(size_t);
typedef void (*free_fn)(void *);

static __attribute__((noinline)) void *real_alloc(size_t n) { return malloc(n); }
static __attribute__((noinline)) void real_free(void *p) { free(p); }
static _Alignas(64) unsigned char fake_block[4096];
static unsigned fake_idx;
/* hands out distinct bytes of a static buffer (blocks in flight never alias) */
static __attribute__((noinline)) void *fake_alloc(size_t n) {
  __asm__ volatile("" : : "r"(n) : "memory");
  return fake_block + (fake_idx++ & (sizeof fake_block - 1));
}
static __attribute__((noinline)) void fake_free(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

static alloc_fn volatile A = real_alloc;
static free_fn volatile F = real_free;

static void touch(void *p, uint64_t i) {
  if (!p) bench_fail("malloc returned NULL");
  *(volatile unsigned char *)p = (unsigned char)i;
}

static void check_free(free_fn f, void *p, uint64_t i) {
  if (*(volatile unsigned char *)p != (unsigned char)i) bench_fail("block %p corrupted", p);
  f(p);
}

/* ---- single-threaded loop ---- */
static void loop_st(size_t size, uint64_t n) {
  alloc_fn a = A;
  free_fn f = F;
  for (uint64_t i = 0; i < n; i++) {
    void *p = a(size);
    touch(p, i);
    check_free(f, p, i);
  }
}

/* ---- cross-thread: SPSC ring (timing) ---- */
#define RING 1024
static _Atomic(void *) ring[RING];
static _Atomic uint64_t r_head, r_tail; /* head: consumer, tail: producer */
static uint64_t xt_n;

#define PUB 32 /* indices are published every PUB items to limit line ping-pong */
static void *consumer_ring(void *arg) {
  UNUSED(arg);
  free_fn f = F;
  uint64_t avail = 0;
  for (uint64_t i = 0; i < xt_n; i++) {
    unsigned spins = 0;
    while (avail <= i) {
      avail = atomic_load_explicit(&r_tail, memory_order_acquire);
      if (avail <= i && ++spins > 256) sched_yield();
    }
    void *p = atomic_load_explicit(&ring[i % RING], memory_order_relaxed);
    check_free(f, p, i);
    if ((i + 1) % PUB == 0 || i + 1 == xt_n)
      atomic_store_explicit(&r_head, i + 1, memory_order_release);
  }
  return NULL;
}

static void loop_xt_ring(size_t size, uint64_t n) {
  xt_n = n;
  atomic_store(&r_head, 0);
  atomic_store(&r_tail, 0);
  pthread_t th;
  bench_thread_start(&th, consumer_ring, NULL);
  alloc_fn a = A;
  uint64_t head = 0;
  for (uint64_t i = 0; i < n; i++) {
    void *p = a(size);
    touch(p, i);
    unsigned spins = 0;
    while (i - head >= RING) {
      head = atomic_load_explicit(&r_head, memory_order_acquire);
      if (i - head >= RING && ++spins > 256) sched_yield();
    }
    atomic_store_explicit(&ring[i % RING], p, memory_order_relaxed);
    if ((i + 1) % PUB == 0 || i + 1 == n)
      atomic_store_explicit(&r_tail, i + 1, memory_order_release);
  }
  bench_thread_join(th);
}

/* ---- cross-thread: batches handed over at a barrier (instruction counts:
 * no spinning, so the count does not depend on scheduling) ---- */
#define XB 1024
static void *xb_buf[2][XB];
static pthread_barrier_t xb_bar;
static uint64_t xb_batches;

static void *consumer_batch(void *arg) {
  UNUSED(arg);
  free_fn f = F;
  for (uint64_t b = 0; b < xb_batches; b++) {
    pthread_barrier_wait(&xb_bar);
    for (int k = 0; k < XB; k++) check_free(f, xb_buf[b & 1][k], (uint64_t)k);
  }
  return NULL;
}

static void loop_xt_batch(size_t size, uint64_t n) {
  xb_batches = n / XB;
  if (xb_batches == 0) return;
  pthread_barrier_init(&xb_bar, NULL, 2);
  pthread_t th;
  bench_thread_start(&th, consumer_batch, NULL);
  alloc_fn a = A;
  for (uint64_t b = 0; b < xb_batches; b++) {
    for (int k = 0; k < XB; k++) {
      void *p = a(size);
      touch(p, (uint64_t)k);
      xb_buf[b & 1][k] = p;
    }
    /* the consumer is done with buffer b&1 from batch b-2: it passed the
     * barrier of batch b-1 only after finishing batch b-2 */
    pthread_barrier_wait(&xb_bar);
  }
  bench_thread_join(th);
  pthread_barrier_destroy(&xb_bar);
}

static double time_loop(void (*loop)(size_t, uint64_t), size_t size, double target) {
  loop(size, 2048); /* warm up */
  uint64_t n = 2048;
  double t;
  for (;;) {
    double t0 = now_sec();
    loop(size, n);
    t = now_sec() - t0;
    if (t >= target || n >= (1ull << 32)) break;
    double want = t > 1e-4 ? (double)n * target / t * 1.1 : (double)n * 8;
    n = want > (double)n * 8 ? n * 8 : (uint64_t)want + 1;
  }
  return t / (double)n * 1e9;
}

static int cmd_ir(uint64_t pairs) {
#ifdef HAVE_CALLGRIND_H
  char label[64];
  for (int mode = 0; mode < 2; mode++) {
    void (*loop)(size_t, uint64_t) = mode ? loop_xt_batch : loop_st;
    const char *mname = mode ? "xt" : "st";
    for (size_t s = 0; s < NSIZES; s++) {
      A = real_alloc;
      F = real_free;
      loop(sizes[s], 2 * XB); /* warm up */
      CALLGRIND_ZERO_STATS;
      loop(sizes[s], pairs);
      snprintf(label, sizeof label, "real-%s-%zu", mname, sizes[s]);
      CALLGRIND_DUMP_STATS_AT(label);
      A = fake_alloc;
      F = fake_free;
      CALLGRIND_ZERO_STATS;
      loop(sizes[s] < sizeof fake_block ? sizes[s] : 1, pairs);
      snprintf(label, sizeof label, "base-%s-%zu", mname, sizes[s]);
      CALLGRIND_DUMP_STATS_AT(label);
    }
  }
  printf("ir: %" PRIu64 " pairs per loop (xt in batches of %d)\n", pairs, XB);
  return 0;
#else
  UNUSED(pairs);
  printf("ir: unsupported (built without valgrind/callgrind.h)\n");
  return 3;
#endif
}

/* micro batch: see the top. */
static int cmd_batch(size_t size, size_t n, int trials) {
  if (size == 0 || n == 0 || trials <= 0) bench_fail("micro batch: size, n and trials must be positive");
  unsigned char **v = malloc(n * sizeof *v);
  if (v == NULL) bench_fail("malloc");
  uint64_t rounds = 6000000 / n + 1;
  double best = 1e30;
  for (int k = 0; k < trials; k++) {
    double t0 = now_sec();
    for (uint64_t r = 0; r < rounds; r++) {
      for (size_t i = 0; i < n; i++) {
        unsigned char *p = malloc(size);
        if (p == NULL) bench_fail("malloc(%zu)", size);
        p[0] = (unsigned char)i;
        p[size - 1] = (unsigned char)r;
        v[i] = p;
      }
      for (size_t i = 0; i < n; i++) {
        if (v[i][0] != (unsigned char)i || v[i][size - 1] != (unsigned char)r) bench_fail("block %zu corrupted", i);
        free(v[i]);
      }
    }
    double t = (now_sec() - t0) / (double)(rounds * n) * 1e9;
    if (t < best) best = t;
  }
  free(v);
  report_result(best, "ns/pair");
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 3 && strcmp(argv[1], "batch") == 0)
    return cmd_batch(strtoull(argv[2], NULL, 10), strtoull(argv[3], NULL, 10), argc > 4 ? atoi(argv[4]) : 15);
  if (argc > 1 && strcmp(argv[1], "ir") == 0)
    return cmd_ir(argc > 2 ? strtoull(argv[2], NULL, 10) : 20480);
  if (argc > 4 && strcmp(argv[1], "irone") == 0) {
    size_t size = strtoull(argv[2], NULL, 10);
    uint64_t n = strtoull(argv[4], NULL, 10);
    if (strcmp(argv[3], "xt") == 0) loop_xt_batch(size, n);
    else loop_st(size, n);
    return 0;
  }
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 2);
  /* quick runs (scale < 0.5): one trial of 6 ms per case; else best of 3 */
  double target = scale < 0.5 ? 0.006 : 0.03 * scale;
  int trials = scale < 0.5 ? 1 : 3;
  double lsum = 0;
  for (size_t s = 0; s < NSIZES; s++) {
    double st = 1e30, xt = 1e30;
    for (int k = 0; k < trials; k++) { /* best of the trials */
      double a = time_loop(loop_st, sizes[s], target);
      double b = time_loop(loop_xt_ring, sizes[s], target);
      if (a < st) st = a;
      if (b < xt) xt = b;
    }
    printf("metric: st_%zu %.2f ns\n", sizes[s], st);
    printf("metric: xt_%zu %.2f ns\n", sizes[s], xt);
    lsum += log(st);
  }
  report_result(exp(lsum / NSIZES), "ns/pair");
  return 0;
}
