/* scale_threads: 1,000 threads alive at once (held together by a barrier),
 * each allocating and freeing mixed sizes of all three engines and handing
 * blocks to its neighbour, every block's contents checked.
 *
 * Per round, thread i:
 *   A  checks and frees the blocks it kept from the last round, allocates
 *      PER_THREAD new blocks (malloc / calloc / aligned_alloc / realloc),
 *      fills each with a pattern of its id, and puts HANDOFF of them in the
 *      mailbox of thread i+1;                                   -- barrier
 *   B  checks the blocks its neighbour i-1 left it: frees half (remote frees
 *      to a live heap), reallocates the rest (a foreign block moved or
 *      resized here) and keeps them for the next round; checks its own
 *      remaining blocks and reallocates some;                   -- barrier
 * At the end every thread frees what it holds, all threads exit, and the
 * process trims: in_use must be back to its start, to the byte.
 *
 * LZ_TEST_SCALE multiplies the rounds (and below 1 the thread count too).
 */
#include "scale_common.h"

/* ---- the test ------------------------------------------------------------ */
enum { PER_THREAD = 32, HANDOFF = 8 };

typedef struct blk_s {
  unsigned char *p;
  size_t size;
  uint64_t id;
} blk_t;

typedef struct tstate_s {
  pthread_t tid;
  unsigned index;
  uint64_t rng;
  blk_t own[PER_THREAD + HANDOFF];
  blk_t mailbox[HANDOFF]; /* written by thread index-1 in phase A, read by us in B */
} tstate_t;

static unsigned nthreads, rounds;
static tstate_t *ts;
static pthread_barrier_t barrier;
static _Atomic(uint64_t) next_id = 1;
static _Atomic(uint64_t) n_checked, n_remote, n_alloc;

static size_t pick_size(uint64_t *rng, unsigned index) {
  uint64_t r = rng_next(rng) % 1000;
  if (r < 700) return (size_t)(rng_next(rng) % 1025);            /* fast path */
  if (r < 960) return 1025 + (size_t)(rng_next(rng) % (32 * 1024)); /* small */
  if (r < 995) return 32 * 1024 + 1 + (size_t)(rng_next(rng) % (224 * 1024)); /* medium */
  /* large: rare, or memory would be 1,000 x a few MiB */
  if (index % 16 == 0) return (1u << 20) + 1 + (size_t)(rng_next(rng) % (2u << 20));
  return 64 + (size_t)(rng_next(rng) % 4096);
}

static void blk_check(const blk_t *b) {
  if (!check(b->p, 0, b->size, b->id)) {
    fprintf(stderr, "block %p (id %llu, size %zu) corrupted\n", (void *)b->p, (unsigned long long)b->id, b->size);
    CHECK(0);
  }
  CHECK(lz_usable_size(b->p) >= b->size);
  atomic_fetch_add_explicit(&n_checked, 1, memory_order_relaxed);
}

static void blk_free(blk_t *b) {
  if (b->p == NULL) return;
  blk_check(b);
  if (b->id & 1) lz_free_sized(b->p, b->size);
  else lz_free(b->p);
  b->p = NULL;
}

static void blk_alloc(blk_t *b, uint64_t *rng, unsigned index) {
  size_t size = pick_size(rng, index);
  unsigned how = (unsigned)(rng_next(rng) % 8);
  void *p;
  size_t align = 16;
  if (how == 0) {
    p = lz_calloc(1, size);
    CHECK(p != NULL);
    for (size_t i = 0; i < size; i += (i < 4096 ? 1 : 509)) CHECK(((unsigned char *)p)[i] == 0);
  } else if (how == 1) {
    align = (size_t)64 << (rng_next(rng) % 7); /* 64 .. 4096 */
    p = lz_aligned_alloc(align, size);
  } else if (how == 2) {
    p = lz_realloc(NULL, size);
  } else {
    p = lz_malloc(size);
  }
  CHECK(p != NULL);
  CHECK(((uintptr_t)p & (align - 1)) == 0);
  CHECK(lz_usable_size(p) >= size);
  b->p = p;
  b->size = size;
  b->id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
  fill(b->p, 0, size, b->id);
  atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
}

static void blk_realloc(blk_t *b, size_t size) {
  blk_check(b);
  void *q = lz_realloc(b->p, size);
  CHECK(q != NULL);
  size_t keep = b->size < size ? b->size : size;
  CHECK(check(q, 0, keep, b->id));
  CHECK(lz_usable_size(q) >= size);
  fill(q, keep, size, b->id);
  b->p = q;
  b->size = size;
}

static void *thread_main(void *arg) {
  tstate_t *t = arg;
  tstate_t *next = &ts[(t->index + 1) % nthreads];
  pthread_barrier_wait(&barrier); /* every thread alive */
  for (unsigned r = 0; r < rounds; r++) {
    /* Phase A */
    for (unsigned k = 0; k < PER_THREAD + HANDOFF; k++) blk_free(&t->own[k]);
    for (unsigned k = 0; k < PER_THREAD; k++) blk_alloc(&t->own[k], &t->rng, t->index);
    for (unsigned k = 0; k < HANDOFF; k++) {
      blk_t *b = &t->own[(k * 5 + r) % PER_THREAD];
      blk_check(b);
      next->mailbox[k] = *b; /* published by the barrier */
      b->p = NULL;
    }
    pthread_barrier_wait(&barrier);
    /* Phase B */
    for (unsigned k = 0; k < HANDOFF; k++) {
      blk_t *b = &t->mailbox[k];
      CHECK(b->p != NULL);
      if (k & 1) {
        blk_free(b); /* a remote free to our live neighbour */
        atomic_fetch_add_explicit(&n_remote, 1, memory_order_relaxed);
      } else {
        blk_realloc(b, (size_t)(rng_next(&t->rng) % 3000) + (b->size / 2));
        t->own[PER_THREAD + k] = *b; /* ours now; freed next round */
        b->p = NULL;
      }
    }
    for (unsigned k = 0; k < PER_THREAD; k++) {
      blk_t *b = &t->own[k];
      if (b->p == NULL) continue;
      if (k % 4 == 0) blk_realloc(b, b->size + 1 + (size_t)(rng_next(&t->rng) % 2048));
      else if (k % 4 == 1) blk_free(b);
      else blk_check(b);
    }
    pthread_barrier_wait(&barrier);
  }
  for (unsigned k = 0; k < PER_THREAD + HANDOFF; k++) blk_free(&t->own[k]);
  return NULL;
}

int main(void) {
  double scale = test_scale();
  nthreads = 1000;
  if (scale < 1.0) nthreads = (unsigned)(1000 * scale) < 16 ? 16 : (unsigned)(1000 * scale);
  rounds = (unsigned)(4 * scale + 0.5);
  if (rounds < 1) rounds = 1;
  double t0 = now_s();

  lz_stats_t st0, st1;
  lz_stats_get(&st0);

  ts = calloc(nthreads, sizeof *ts);
  CHECK(ts != NULL);
  CHECK(pthread_barrier_init(&barrier, NULL, nthreads) == 0);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, SANITIZED ? 512 * 1024 : 256 * 1024);
  for (unsigned i = 0; i < nthreads; i++) {
    ts[i].index = i;
    ts[i].rng = 0x9e3779b97f4a7c15ull * (i + 1) | 1;
    int rc;
    while ((rc = pthread_create(&ts[i].tid, &attr, thread_main, &ts[i])) == EAGAIN) usleep(1000);
    if (rc != 0) {
      fprintf(stderr, "pthread_create #%u: %s\n", i, strerror(rc));
      return 1;
    }
  }
  for (unsigned i = 0; i < nthreads; i++) CHECK(pthread_join(ts[i].tid, NULL) == 0);
  pthread_attr_destroy(&attr);
  pthread_barrier_destroy(&barrier);

  lz_stats_get(&st1);
  size_t in_use_after = st1.in_use;
  lz_trim(0);
  /* A snapshot leaves out a heap whose lock another thread (the
   * background thread's purge of the exited threads' heaps) holds through
   * a thousand yields (stats.c): read again, for up to a second, until no
   * heap is left out. */
  int reads = 0;
  do {
    if (reads > 0) usleep(10000);
    lz_stats_get(&st1);
  } while (++reads < 100 && st1.in_use != st0.in_use);
  printf("scale_threads: %u threads alive at once x %u rounds: %llu blocks allocated, %llu checks, "
         "%llu remote frees; heaps %llu, in_use %zu -> %zu (trimmed %zu), mapped %zu MiB; %.2f s\n",
         nthreads, rounds, (unsigned long long)n_alloc, (unsigned long long)n_checked,
         (unsigned long long)n_remote, (unsigned long long)st1.heaps, st0.in_use, in_use_after, st1.in_use,
         st1.mapped >> 20, now_s() - t0);
  CHECK(n_alloc == (uint64_t)nthreads * rounds * PER_THREAD);
  /* Every block was freed and trim collected the remote frees still in
   * transit: the bytes in use are exactly what they were at the start. */
  fflush(stdout);
  if (st1.in_use != st0.in_use)
    fprintf(stderr, "in use %zu before, %zu after the trim (%d reads)\n", st0.in_use, st1.in_use, reads);
  CHECK(st1.in_use == st0.in_use);
  CHECK(st1.large_in_use == st0.large_in_use);
  free(ts);
  return 0;
}
