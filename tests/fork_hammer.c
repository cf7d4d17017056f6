/* fork_hammer: fork at any instant of every allocator path; the child is a
 * full multithreaded program afterwards (PREFIXED).
 *
 * Worker threads hammer every path without pause: small blocks (fast and
 * slow paths), medium and large blocks, aligned blocks, realloc, frees of
 * blocks other workers allocated (remote frees, batched), short-lived
 * threads that exit (their heaps become orphans and are adopted) and
 * lz_trim (orphans collected). The main thread forks repeatedly. In each
 * child, the heaps of the workers (which do not exist there) may have been
 * in the middle of any update: the child starts several threads that
 * allocate, check and free blocks of every kind, free blocks the parent's
 * workers allocated, trim, exit (their heaps are then orphans of the child)
 * and are replaced; then the child exits with status 0. A child that
 * adopted a half-updated heap crashes, reports corruption, or hangs (its
 * alarm fires), and a child thread that got one of the workers' heaps at
 * all (whatever its state) fails with exit status 19: the test fails.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "lzmalloc.h"
#include "testutil.h"

#define NWORKERS 4
#define NSLOTS 256
#define CHILD_THREADS 6
#define CHILD_ALARM_S 30
/* The loop forks while it has time left (its work grows with the
 * machine's load, not with the allocator's), once a tenth of its forks
 * ran; each fork has its own watchdog. */
#define LOOP_BUDGET_S 90.0
#define FORK_ALARM_S 120

static _Atomic(void *) g_slots[NSLOTS];
static atomic_int g_stop;
static heap_t *_Atomic g_worker_heap[NWORKERS + 1]; /* each worker's heap */

/* Each block starts with its size and a seed; the rest is a pattern. */
typedef struct {
  size_t n;
  uint64_t seed;
} hdr_t;

static size_t pick_size(tu_rng_t *r) {
  uint64_t k = tu_rng_below(r, 1000);
  if (k < 850) return (size_t)tu_rng_logrange(r, sizeof(hdr_t), 2048);
  if (k < 950) return (size_t)tu_rng_logrange(r, 2048, 32768);
  if (k < 995) return (size_t)tu_rng_logrange(r, 32769, 1 << 20);
  return (size_t)tu_rng_logrange(r, (1 << 20) + 1, 3 << 20);
}

static void *blk_new(tu_rng_t *r, size_t n) {
  if (n < sizeof(hdr_t)) n = sizeof(hdr_t);
  unsigned char *p;
  uint64_t k = tu_rng_below(r, 16);
  if (k == 0) p = lz_aligned_alloc((size_t)64 << tu_rng_below(r, 7), n);
  else if (k == 1) p = lz_calloc(1, n);
  else p = lz_malloc(n);
  if (p == NULL) return NULL;
  hdr_t h = {n, tu_rng_next(r)};
  memcpy(p, &h, sizeof h);
  /* Only the start: big blocks stay cheap. */
  tu_pattern_fill_range(p, sizeof h, n < 128 ? n : 128, h.seed);
  return p;
}

static int blk_bad(const void *p) {
  hdr_t h;
  memcpy(&h, p, sizeof h);
  if (h.n < sizeof h || h.n > (4u << 20)) return 1;
  if (lz_usable_size(p) < h.n) return 1;
  return tu_pattern_check_range(p, sizeof h, h.n < 128 ? h.n : 128, h.seed) != SIZE_MAX;
}

/* One round of every path; returns nonzero on corruption. */
static int churn(tu_rng_t *r, int rounds) {
  void *local[16];
  for (int round = 0; round < rounds; round++) {
    for (int i = 0; i < 16; i++) {
      local[i] = blk_new(r, pick_size(r));
      if (local[i] == NULL) return 2;
    }
    /* Hand blocks to other threads; free what they left (remote frees). */
    for (int i = 0; i < 4; i++) {
      void *old = atomic_exchange(&g_slots[tu_rng_below(r, NSLOTS)], local[i]);
      local[i] = NULL;
      if (old != NULL) {
        if (blk_bad(old)) return 3;
        lz_free(old);
      }
    }
    void *q = lz_realloc(local[5], pick_size(r));
    if (q == NULL) return 4;
    local[5] = q; /* the header moved with it; the size may have shrunk */
    ((hdr_t *)q)->n = sizeof(hdr_t);
    for (int i = 4; i < 16; i++) {
      if (blk_bad(local[i])) return 5;
      lz_free(local[i]);
    }
  }
  return 0;
}

static void *short_thread(void *arg) {
  tu_rng_t r;
  tu_rng_seed(&r, (uint64_t)(uintptr_t)arg);
  return (void *)(intptr_t)churn(&r, 4);
}

/* Small blocks only, freed in another order and across threads: the
 * tightest loop through the small fast and slow paths and remote frees. */
static int churn_small(tu_rng_t *r) {
  enum { N = 64 };
  void *b[N];
  for (int i = 0; i < N; i++) {
    b[i] = blk_new(r, (size_t)tu_rng_logrange(r, sizeof(hdr_t), 1024));
    if (b[i] == NULL) return 2;
  }
  for (int i = 0; i < N; i++) {
    int j = (int)tu_rng_below(r, N);
    void *t = b[i];
    b[i] = b[j];
    b[j] = t;
  }
  for (int i = 0; i < N; i++) {
    if (blk_bad(b[i])) return 7;
    if (i % 8 == 0) b[i] = atomic_exchange(&g_slots[tu_rng_below(r, NSLOTS)], b[i]);
    if (b[i] != NULL && blk_bad(b[i])) return 8;
    lz_free(b[i]);
  }
  return 0;
}

static void *worker(void *arg) {
  tu_rng_t r;
  uintptr_t id = (uintptr_t)arg;
  tu_rng_seed(&r, (uint64_t)id);
  lz_free(lz_malloc(1));
  atomic_store(&g_worker_heap[id], lz_heap_tls);
  for (uint64_t n = 0; !atomic_load_explicit(&g_stop, memory_order_relaxed); n++) {
    int rc = (id % 2 == 0) ? churn_small(&r) : churn(&r, 1);
    CHECKF(rc == 0, "worker: churn failed (%d)", rc);
    if (id % 2 == 0) continue;
    if (n % 64 == 0) lz_trim(0);
    if (n % 32 == 0) {
      pthread_t t;
      if (pthread_create(&t, NULL, short_thread, (void *)(uintptr_t)tu_rng_next(&r)) == 0) {
        void *ret;
        pthread_join(t, &ret);
        CHECKF(ret == NULL, "short thread: churn failed");
      }
    }
  }
  return NULL;
}

/* ---- the child: reports by exit status only ----------------------------- */
static void *child_thread(void *arg) {
  tu_rng_t r;
  tu_rng_seed(&r, (uint64_t)(uintptr_t)arg);
  int rc = churn(&r, 40);
  /* The parent's workers were active (maybe mid-update) at fork: their
   * heaps must never be adopted here. (Shared heaps, LZ_HEAPS > 0, are
   * kept when their lock was free at fork.) */
  for (int i = 1; i <= NWORKERS && LZ_HEAPS == 0; i++)
    if (lz_heap_tls == atomic_load(&g_worker_heap[i])) rc = 9;
  for (int i = 0; i < 50 && rc == 0; i++) rc = churn_small(&r);
  if (rc == 0) {
    /* Blocks the parent's workers allocated. */
    for (int i = 0; i < NSLOTS; i++) {
      if (tu_rng_below(&r, CHILD_THREADS) != 0) continue;
      void *p = atomic_exchange(&g_slots[i], NULL);
      if (p == NULL) continue;
      if (blk_bad(p)) {
        rc = 6;
        break;
      }
      lz_free(p);
    }
  }
  lz_trim(0);
  return (void *)(intptr_t)rc;
}

static void child_main(uint64_t seed) {
  alarm(CHILD_ALARM_S);
  for (int gen = 0; gen < 3; gen++) { /* later generations adopt the earlier ones' heaps */
    pthread_t t[CHILD_THREADS];
    for (int i = 0; i < CHILD_THREADS; i++)
      if (pthread_create(&t[i], NULL, child_thread, (void *)(uintptr_t)(seed * 31 + (uint64_t)(gen * 7 + i))) != 0)
        _exit(40);
    for (int i = 0; i < CHILD_THREADS; i++) {
      void *ret;
      pthread_join(t[i], &ret);
      if (ret != NULL) _exit(10 + (int)(intptr_t)ret);
    }
  }
  tu_rng_t r;
  tu_rng_seed(&r, seed);
  if (churn(&r, 10) != 0) _exit(30);
  _exit(0);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (TU_SANITIZED) {
    /* The sanitizer runtimes cannot start threads in the child of a
     * multithreaded fork (TSan refuses; ASan's own allocator lock may be
     * held there); fork_test covers fork under them. */
    printf("fork_hammer: skipped under a sanitizer\n");
    return 77;
  }
  double t0 = tu_now();
  pthread_t th[NWORKERS];
  for (uintptr_t i = 0; i < NWORKERS; i++) CHECK(pthread_create(&th[i], NULL, worker, (void *)(i + 1)) == 0);
  /* Shared heaps and level-2 hardening are several times slower. */
  size_t nforks = tu_scaled(LZ_HEAPS > 0 || LZ_SECURE >= 2 ? 50 : 200, 5);
  size_t f = 0;
  for (; f < nforks && (f < nforks / 10 || tu_now() - t0 < LOOP_BUDGET_S); f++) {
    alarm(FORK_ALARM_S); /* this fork and its child: fail rather than hang */
    usleep(500 + (useconds_t)(f % 7) * 300); /* let the workers get going */
    pid_t pid = fork();
    CHECKF(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) child_main(f + 1);
    int st;
    while (waitpid(pid, &st, 0) < 0) CHECKF(errno == EINTR, "waitpid: %s", strerror(errno));
    CHECKF(!WIFSIGNALED(st), "fork %zu: child killed by signal %d%s", f, WTERMSIG(st),
           WTERMSIG(st) == SIGALRM ? " (hung: lock or spin inherited from the parent?)" : "");
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork %zu: child exit status %d", f, WEXITSTATUS(st));
  }
  alarm(FORK_ALARM_S);
  atomic_store(&g_stop, 1);
  for (int i = 0; i < NWORKERS; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < NSLOTS; i++) lz_free(atomic_exchange(&g_slots[i], NULL));
  alarm(0);
  printf("fork_hammer: %zu of %zu forks, each child ran %d threads x 3 generations; %.1f s\n", f, nforks,
         CHILD_THREADS, tu_now() - t0);
  return 0;
}
