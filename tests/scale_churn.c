/* scale_churn: 100,000 thread create/exit cycles, in waves of WAVE threads,
 * with blocks handed from thread to thread across generations: every thread
 * takes blocks that earlier (now exited) threads made from a shared pool,
 * checks and frees or reallocates them, and leaves new blocks of its own
 * there for later threads. A block's owner heap is usually an orphan (its
 * thread is gone) or has been adopted by a newer thread, so this drives
 * orphaning, adoption, remote frees to orphans and realloc of foreign blocks.
 *
 * At the end the pool is drained and checked; the heap count must stay
 * bounded (exited threads' heaps are reused, not leaked), and after a trim
 * in_use and mapped must be back near their start.
 *
 * LZ_TEST_SCALE multiplies the cycles; under a sanitizer the default is
 * 50,000 (ASan) or 30,000 (TSan) cycles, since thread creation is far
 * slower there.
 */
#include "scale_common.h"

#if defined(__SANITIZE_THREAD__)
#define TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN 1
#endif
#endif
#ifndef TSAN
#define TSAN 0
#endif

/* ---- the test ------------------------------------------------------------ */
enum { WAVE = 4, POOL = 512, TAKE = 3, LEAVE = 3, PRIVATE = 6 };

typedef struct blk_s {
  unsigned char *p;
  size_t size;
  uint64_t id;
} blk_t;

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static blk_t pool[POOL]; /* a ring under pool_mu */
static size_t pool_head, pool_count;
static _Atomic(uint64_t) next_id = 1;
static _Atomic(uint64_t) n_handed, n_alloc;

static void blk_check(const blk_t *b) {
  if (!check(b->p, 0, b->size, b->id)) {
    fprintf(stderr, "block %p (id %llu, size %zu) corrupted\n", (void *)b->p, (unsigned long long)b->id, b->size);
    CHECK(0);
  }
  CHECK(lz_usable_size(b->p) >= b->size);
}

static void blk_free(blk_t *b) {
  blk_check(b);
  if (b->id & 1) lz_free(b->p);
  else lz_free_sized(b->p, b->size);
  b->p = NULL;
}

static size_t pick_size(uint64_t *rng) {
  uint64_t r = rng_next(rng) % 1000;
  if (r < 750) return (size_t)(rng_next(rng) % 1025);
  if (r < 970) return 1025 + (size_t)(rng_next(rng) % (32 * 1024));
  if (r < 998) return 32 * 1024 + 1 + (size_t)(rng_next(rng) % (480 * 1024));
  return (1u << 20) + 1 + (size_t)(rng_next(rng) % (1u << 20));
}

static void blk_alloc(blk_t *b, uint64_t *rng) {
  size_t size = pick_size(rng);
  void *p = (rng_next(rng) & 7) == 0 ? lz_calloc(1, size) : lz_malloc(size);
  CHECK(p != NULL);
  CHECK(((uintptr_t)p & 15) == 0);
  CHECK(lz_usable_size(p) >= size);
  b->p = p;
  b->size = size;
  b->id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
  fill(b->p, 0, size, b->id);
  atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
}

static void *thread_main(void *arg) {
  uint64_t rng = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull | 1;
  /* Blocks made by earlier threads: check, then free or realloc and keep. */
  blk_t got[TAKE];
  size_t ngot = 0;
  pthread_mutex_lock(&pool_mu);
  while (ngot < TAKE && pool_count > 0) {
    got[ngot++] = pool[pool_head];
    pool_head = (pool_head + 1) % POOL;
    pool_count--;
  }
  pthread_mutex_unlock(&pool_mu);
  blk_t mine[PRIVATE + TAKE];
  size_t nmine = 0;
  for (size_t k = 0; k < ngot; k++) {
    blk_t *b = &got[k];
    blk_check(b);
    atomic_fetch_add_explicit(&n_handed, 1, memory_order_relaxed);
    if (b->id % 3 == 0) {
      size_t size = b->size / 2 + 1 + (size_t)(rng_next(&rng) % 4096);
      void *q = lz_realloc(b->p, size);
      CHECK(q != NULL);
      size_t keep = b->size < size ? b->size : size;
      CHECK(check(q, 0, keep, b->id));
      fill(q, keep, size, b->id);
      b->p = q;
      b->size = size;
      mine[nmine++] = *b; /* passed on below */
    } else {
      blk_free(b);
    }
  }
  /* Private work: the heap gets real use before the thread exits. */
  for (size_t k = 0; k < PRIVATE; k++) blk_alloc(&mine[nmine++], &rng);
  for (size_t k = 0; k + LEAVE < nmine; k++) blk_free(&mine[k]);
  /* Leave the last LEAVE blocks (fresh ones of this heap, or reallocated
   * ones) for later threads. */
  size_t first = nmine > LEAVE ? nmine - LEAVE : 0;
  for (size_t k = first; k < nmine; k++) {
    blk_t evict = {0};
    pthread_mutex_lock(&pool_mu);
    if (pool_count == POOL) {
      evict = pool[pool_head];
      pool_head = (pool_head + 1) % POOL;
      pool_count--;
    }
    pool[(pool_head + pool_count) % POOL] = mine[k];
    pool_count++;
    pthread_mutex_unlock(&pool_mu);
    if (evict.p) blk_free(&evict);
  }
  return NULL;
}

int main(void) {
  double scale = test_scale();
  size_t base = SANITIZED ? (TSAN ? 30000 : 50000) : 100000;
  size_t cycles = (size_t)((double)base * scale);
  if (cycles < 2 * WAVE) cycles = 2 * WAVE;
  size_t waves = (cycles + WAVE - 1) / WAVE;
  double t0 = now_s();

  /* Warm up the main thread's heap, then take the baseline. */
  lz_free(lz_malloc(64));
  lz_trim(0);
  lz_stats_t st0, st1;
  lz_stats_get(&st0);

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, SANITIZED ? 512 * 1024 : 128 * 1024);
  uint64_t max_heaps = 0;
  size_t created = 0;
  for (size_t w = 0; w < waves; w++) {
    pthread_t tid[WAVE];
    for (unsigned i = 0; i < WAVE; i++) {
      int rc;
      while ((rc = pthread_create(&tid[i], &attr, thread_main, (void *)(uintptr_t)(created + 1))) == EAGAIN)
        usleep(1000);
      CHECK(rc == 0);
      created++;
    }
    for (unsigned i = 0; i < WAVE; i++) CHECK(pthread_join(tid[i], NULL) == 0);
    if (w % 1024 == 0 || w + 1 == waves) {
      lz_stats_get(&st1);
      if (st1.heaps > max_heaps) max_heaps = st1.heaps;
    }
  }
  pthread_attr_destroy(&attr);

  /* Drain the pool from the main thread: remote frees to orphans. */
  size_t drained = pool_count;
  while (pool_count > 0) {
    blk_free(&pool[pool_head]);
    pool_head = (pool_head + 1) % POOL;
    pool_count--;
  }
  lz_trim(0);
  lz_stats_get(&st1);
  printf("scale_churn: %zu threads created and exited (waves of %d); %llu blocks allocated, %llu handed "
         "between threads, %zu drained at the end; heaps %llu (max seen %llu); in_use %zu -> %zu, "
         "mapped %zu -> %zu MiB; %.2f s\n",
         created, WAVE, (unsigned long long)n_alloc, (unsigned long long)n_handed, drained,
         (unsigned long long)st1.heaps, (unsigned long long)max_heaps, st0.in_use, st1.in_use, st0.mapped >> 20,
         st1.mapped >> 20, now_s() - t0);
  CHECK(created == waves * WAVE);
  CHECK(n_handed >= 2 * (uint64_t)created); /* nearly every thread took TAKE blocks */
  /* Exited threads' heaps are adopted by new ones: the count stays near
   * the number of threads alive at once, far below the threads created. */
  CHECK(st1.heaps <= 64);
  CHECK(st1.in_use <= st0.in_use + (1u << 20));
  CHECK(st1.mapped <= st0.mapped + (64u << 20));
  return 0;
}
