/* fork_test: fork() while other threads are inside the allocator (PREFIXED).
 *
 * Worker threads allocate, publish (through atomic slots) and free blocks in
 * a loop. The main thread forks repeatedly (50 x LZ_TEST_SCALE); each child
 * immediately allocates and frees various sizes, frees blocks the parent's
 * threads allocated (taken from the slots and from the main thread's hands),
 * reallocs one of them, sometimes forks a grandchild, and _exit(0)s. A child
 * that deadlocks (allocator lock held across fork) is killed by its own
 * alarm or by the parent's deadline and fails the test.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lzmalloc.h"
#include "testutil.h"

#define NWORKERS 3
#define NSLOTS 64
#define HDR 16 /* each block starts with {size, id} */
#define CHILD_ALARM_S 20
#define CHILD_DEADLINE_S 40.0

static _Atomic(void *) g_slots[NSLOTS];
static atomic_int g_stop;
static atomic_uint_fast64_t g_next_id = 1;

typedef struct {
  size_t n;
  uint64_t id;
} hdr_t;

static size_t pick_size(tu_rng_t *r) {
  uint64_t k = tu_rng_below(r, 1000);
  if (k < 900) return (size_t)tu_rng_logrange(r, HDR, 32768);
  if (k < 990) return (size_t)tu_rng_logrange(r, 32769, TU_MiB);
  return (size_t)tu_rng_logrange(r, TU_MiB + 1, 3 * TU_MiB);
}

static void *blk_new(size_t n) {
  if (n < HDR) n = HDR;
  unsigned char *p = lz_malloc(n);
  CHECKF(p != NULL, "lz_malloc(%zu) = NULL", n);
  hdr_t h = {n, atomic_fetch_add_explicit(&g_next_id, 1, memory_order_relaxed)};
  *(hdr_t *)(void *)p = h;
  tu_pattern_fill_range(p, HDR, n, h.id);
  return p;
}

/* Returns 0 if intact. Never allocates or prints (safe in a forked child). */
static int blk_bad(const void *p) {
  const hdr_t *h = (const hdr_t *)p;
  if (h->n < HDR || h->n > 64 * TU_MiB) return 1;
  if (lz_usable_size(p) < h->n) return 1;
  return tu_pattern_check_range(p, HDR, h->n, h->id) != SIZE_MAX;
}

static void blk_verify(const void *p, const char *where) {
  const hdr_t *h = (const hdr_t *)p;
  CHECKF(!blk_bad(p), "%s: block %p (size %zu, id %llu) corrupted", where, p, h->n,
         (unsigned long long)h->id);
}

static void *worker_main(void *arg) {
  tu_rng_t r;
  tu_rng_seed(&r, (uint64_t)(uintptr_t)arg);
  void *local[8];
  while (!atomic_load_explicit(&g_stop, memory_order_acquire)) {
    /* Publish a block, free whatever was in the slot. */
    void *p = blk_new(pick_size(&r));
    void *old = atomic_exchange_explicit(&g_slots[tu_rng_below(&r, NSLOTS)], p,
                                         memory_order_acq_rel);
    if (old) {
      blk_verify(old, "worker");
      lz_free(old);
    }
    /* Local churn so the allocator is busy when fork() hits. */
    for (int i = 0; i < 8; i++) local[i] = blk_new((size_t)tu_rng_range(&r, HDR, 2048));
    void *q = lz_realloc(local[0], 5000);
    CHECK(q != NULL);
    local[0] = q;
    for (int i = 0; i < 8; i++) lz_free(local[i]);
  }
  return NULL;
}

/* The child: no stdio, no threads; reports by exit code. */
#define CHILD_FAIL(code) _exit(code)

static void child_allocs(tu_rng_t *r) {
  static const size_t sizes[] = {16,     17,     100,     1000,       4096,       10000,
                                 32768,  32769,  40000,   100000,     500000,     TU_MiB,
                                 TU_MiB + 1, 2 * TU_MiB + 1, 4 * TU_MiB};
  void *ps[sizeof(sizes) / sizeof(sizes[0])];
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    ps[i] = blk_new(sizes[i]);
    if (blk_bad(ps[i])) CHILD_FAIL(10);
  }
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    if (blk_bad(ps[i])) CHILD_FAIL(11);
    lz_free(ps[i]);
  }
  void *many[200];
  for (int i = 0; i < 200; i++) many[i] = blk_new((size_t)tu_rng_range(r, HDR, 4096));
  for (int i = 0; i < 200; i += 2) lz_free(many[i]);
  for (int i = 1; i < 200; i += 2) {
    if (blk_bad(many[i])) CHILD_FAIL(12);
    lz_free(many[i]);
  }
  void *c = lz_calloc(1000, 100);
  if (!c || !tu_all_zero(c, 100000)) CHILD_FAIL(13);
  lz_free(c);
  void *a = lz_aligned_alloc(4096, 10000);
  if (!a || ((uintptr_t)a & 4095)) CHILD_FAIL(14);
  lz_free(a);
}

static void child_main(void **held, int nheld, int depth, uint64_t seed) {
  alarm(CHILD_ALARM_S); /* a deadlock kills us with SIGALRM */
  tu_rng_t r;
  tu_rng_seed(&r, seed);
  child_allocs(&r);
  /* Free the blocks the parent's threads allocated and the main thread held. */
  for (int i = 0; i < nheld; i++) {
    if (!held[i]) continue;
    if (blk_bad(held[i])) CHILD_FAIL(20);
    if (i == 0) {
      /* realloc a parent block (owned by a thread that doesn't exist here) */
      size_t n = ((hdr_t *)held[i])->n;
      uint64_t id = ((hdr_t *)held[i])->id;
      unsigned char *q = lz_realloc(held[i], n + 70000);
      if (!q || tu_pattern_check_range(q, HDR, n, id) != SIZE_MAX) CHILD_FAIL(21);
      lz_free(q);
    } else {
      lz_free(held[i]);
    }
  }
  /* Take half of the published slots (the workers are gone in the child). */
  for (int i = 0; i < NSLOTS; i += 2) {
    void *p = atomic_exchange(&g_slots[i], NULL);
    if (!p) continue;
    if (blk_bad(p)) CHILD_FAIL(22);
    lz_free(p);
  }
  child_allocs(&r);
  if (depth == 0 && (seed % 8) == 0) {
    /* Grandchild, single-threaded parent this time. */
    pid_t pid = fork();
    if (pid < 0) CHILD_FAIL(30);
    if (pid == 0) {
      child_allocs(&r);
      _exit(0);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) CHILD_FAIL(31);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) CHILD_FAIL(32);
  }
  _exit(0);
}

static void wait_child(pid_t pid, int iter) {
  double deadline = tu_now() + CHILD_DEADLINE_S;
  int st = 0;
  for (;;) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) break;
    CHECKF(r == 0, "waitpid: %d", errno);
    if (tu_now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      CHECKF(0, "fork %d: child still running after %.0f s (deadlock in the allocator?)", iter,
             CHILD_DEADLINE_S);
    }
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  if (WIFSIGNALED(st))
    CHECKF(0, "fork %d: child killed by signal %d%s", iter, WTERMSIG(st),
           WTERMSIG(st) == SIGALRM ? " (SIGALRM: deadlock after fork)" : "");
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork %d: child exit status %d", iter,
         WEXITSTATUS(st));
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  alarm(280); /* the whole test: fail rather than hang */
  double t0 = tu_now();
  size_t nforks = tu_scaled(50, 2);
  pthread_t th[NWORKERS];
  for (uintptr_t i = 0; i < NWORKERS; i++)
    CHECK(pthread_create(&th[i], NULL, worker_main, (void *)(i + 1)) == 0);

  tu_rng_t r;
  tu_rng_seed(&r, 12345);
  for (size_t it = 0; it < nforks; it++) {
    struct timespec ts = {0, (long)tu_rng_range(&r, 200000, 3000000)};
    nanosleep(&ts, NULL);
    /* The main thread takes a few blocks allocated by the workers. */
    void *held[4];
    for (int i = 0; i < 4; i++) {
      held[i] = atomic_exchange(&g_slots[tu_rng_below(&r, NSLOTS)], NULL);
      if (held[i]) blk_verify(held[i], "parent before fork");
    }
    void *mine = blk_new(pick_size(&r));
    pid_t pid = fork();
    CHECKF(pid >= 0, "fork: errno %d", errno);
    if (pid == 0) child_main(held, 4, 0, it);
    /* The parent still owns its copies. */
    wait_child(pid, (int)it);
    for (int i = 0; i < 4; i++) {
      if (!held[i]) continue;
      blk_verify(held[i], "parent after fork");
      lz_free(held[i]);
    }
    blk_verify(mine, "parent after fork");
    lz_free(mine);
  }
  atomic_store_explicit(&g_stop, 1, memory_order_release);
  for (int i = 0; i < NWORKERS; i++) CHECK(pthread_join(th[i], NULL) == 0);
  for (int i = 0; i < NSLOTS; i++) {
    void *p = atomic_exchange(&g_slots[i], NULL);
    if (!p) continue;
    blk_verify(p, "final");
    lz_free(p);
  }
  /* After all that, the allocator still works normally, also with threads. */
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) child_main(NULL, 0, 1, 1);
  wait_child(pid, -1);
  printf("fork_test: %zu forks with %d busy threads, passed in %.2f s\n", nforks, NWORKERS,
         tu_now() - t0);
  return 0;
}
