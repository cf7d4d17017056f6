/* test_remote: frees that cross threads (src/remote.c).
 *
 *   1. reuse: blocks of a line-sized class (64 B), and of a class above
 *      256 B that is a multiple of half a line (416 B), that a thread frees
 *      for another heap are handed out again by the freeing thread (its
 *      foreign lists) when it allocates that class, every one of them, and
 *      the statistics stay exact: in use back to the byte after all is
 *      freed and both threads are gone;
 *   2. no false sharing: blocks of classes that share cache lines (16, 48
 *      and 160 B) freed for another heap are never handed out by the
 *      freeing thread (they go home), even when it allocates that class;
 *   3. overflow: a thread that only frees keeps nothing, the blocks travel
 *      home, and the owner gets them back (exact in use after collecting);
 *   4. double free of a block sitting in a foreign list is caught, with
 *      the message naming the pointer (in a forked child);
 *   5. bounded delay: a thread that keeps working but never fills its
 *      foreign lists still sends the blocks home within a bounded time;
 *   6. medium blocks go home at once: a medium block (one per span, so
 *      nothing to batch) freed by another thread, which then stays alive
 *      and idle, is back with its owner at the owner's next allocation
 *      (in use down by its size to the byte), not one batch tick later;
 *   7. foreign blocks of one class do not send another class's refills
 *      down the full slow path: a thread that keeps the owner's 64 B
 *      blocks on its foreign list and then allocates and frees 1 KiB blocks
 *      in a loop takes its own freed blocks back the short way (the
 *      process's slow-path allocations grow by a few, not by one per
 *      round);
 *   8. heartbeat: a thread that frees the owner's blocks (batched: a class
 *      it never allocates) and then runs a steady malloc(16)/free loop,
 *      which never enters a slow path, still sends them home while the
 *      loop runs (the janitor nudges it: heap.c, "Heartbeat"), within
 *      seconds, not when the loop ends;
 *   9. foreign blocks of a class above LZ_DIRECT_MAX (whose list malloc's
 *      fast path never pops) are handed out without the full slow path:
 *      a thread keeps 16 of the owner's 2 KiB blocks and allocates the
 *      class until they are back; no call that returned one took the
 *      slow path (counted by the statistics around each call);
 *  10. own blocks beside foreign ones: a thread that keeps a foreign
 *      block of a line-sized class (1 KiB) and frees two blocks of its own
 *      that lie in different slabs of the class, neither its queue's
 *      first, gets them back at its next two allocations, the block freed
 *      last first (LIFO across slabs, as a thread cache would), then the
 *      foreign one; the statistics stay exact once both threads are gone;
 *      and a second free of such a block is caught (in a forked child).
 *  11. reused foreign blocks stay: a thread that keeps an owner's block
 *      on its foreign list and takes it again and frees it in a loop
 *      for several of the lists' age periods (FOREIGN_MAX_AGE_MS) gets
 *      that block at every allocation: only blocks that waited untaken
 *      go home at the lists' age flush.
 *  12. an idle owner's blocks: a thread that allocates a class frees
 *      more of the owner's blocks of it than its foreign list's bound
 *      while the owner has not ticked for FOREIGN_IDLE_MS (it waits), and
 *      gets more than the bound of them back at its next allocations:
 *      sent home they would stay unused there.
 *  13. a waiting owner's blocks across threads that exit (bench rptest's
 *      pattern: main makes a working set and waits in pthread_join while
 *      rounds of threads replace it): an owner allocates W blocks and
 *      waits past FOREIGN_UNCOLLECTED_MS (not FOREIGN_IDLE_MS); a thread that allocates the
 *      class frees them all and exits; the next thread, which adopts its
 *      heap, allocates W blocks of the class: all but the first chain
 *      sent home (before the owner counts as idle: blocks waiting on its
 *      xremote list) and a partial one per slab are the owner's, and the
 *      class's slabs hold the W live blocks and no more than that slack
 *      (before: the bound's blocks kept, the rest home, where the owner
 *      never collected them, and the next thread carved W new ones:
 *      twice the live memory). Run first, while no orphan but the
 *      exiting thread's is there to be adopted.
 *  14. a list above half its bound keeps what it is handed: a thread
 *      that keeps 60 % of its list's bound of an owner's blocks frees
 *      another of them and takes it again, as many times as the bound:
 *      every allocation returns the block freed just before (counting
 *      pushes since the list was last empty, the list refused pushes
 *      once they reached the bound while it held half of it or more, and
 *      the block went home).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <signal.h>
#include <sys/wait.h>

#include "internal.h" /* lz_heap_tls, heap_t.slow_count */
#include "sizeclass.h"  /* size_to_class */
#include "lzmalloc.h"
#include "testutil.h"

#define N 200
#define SIZE 64 /* class 64: a foreign list holds 128 KiB / 64 = 2048 blocks */

static void *blocks[4096];

static int in_set(void *p, void **set, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (set[i] == p) return 1;
  return 0;
}

static size_t block_size = SIZE;

static void *alloc_n(void *arg) {
  size_t n = (size_t)arg;
  for (size_t i = 0; i < n; i++) {
    blocks[i] = lz_malloc(block_size);
    CHECK(blocks[i] != NULL);
    memset(blocks[i], 0x5a, block_size);
  }
  return NULL;
}

/* Allocates a block of the class (so this thread allocates it), frees the
 * owner's blocks, then allocates as many and a page more (what is left of
 * its own first slab's list goes first): how many of the owner's came
 * back? */
#define AGAIN (N + 4096 / 16)
static size_t reused_count;

static void *free_then_alloc(void *arg) {
  (void)arg;
  void *mine = lz_malloc(block_size);
  CHECK(mine != NULL);
  for (size_t i = 0; i < N; i++) lz_free(blocks[i]);
  void *again[AGAIN];
  size_t reused = 0;
  for (size_t i = 0; i < AGAIN; i++) {
    again[i] = lz_malloc(block_size);
    CHECK(again[i] != NULL);
    reused += (size_t)in_set(again[i], blocks, N);
  }
  reused_count = reused;
  for (size_t i = 0; i < AGAIN; i++) lz_free(again[i]);
  lz_free(mine);
  return NULL;
}

static void run(void *(*fn)(void *), void *arg) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, fn, arg) == 0);
  CHECK(pthread_join(t, NULL) == 0);
}

/* The owner stays alive while the other thread works, so the other thread
 * cannot adopt the owner's heap (an exited thread's heap is adopted whole
 * by the next new thread). */
static pthread_barrier_t bar;
/* Set: the owner ticks (heap.c's purge tick, which stamps xtick_ms) just
 * before it waits, so it does not count as idle to the other thread
 * (remote.c, "Idle owners") for FOREIGN_IDLE_MS. */
static bool owner_ticks;

static void *owner(void *arg) {
  alloc_n(arg);
  for (int i = 0; owner_ticks && i < 2 * HEAP_TICK_EVERY; i++) lz_free(lz_malloc(2 << 20)); /* slow-path entries */
  pthread_barrier_wait(&bar); /* blocks ready */
  pthread_barrier_wait(&bar); /* the other thread is done */
  return NULL;
}

/* The owner allocates N blocks of `size`, another thread that allocates
 * that class too frees them and allocates N: how many were the owner's? */
/* One round: the owner thread allocates n blocks of block_size, then
 * `other` runs in a thread of its own while the owner waits; the owner
 * then exits. */
static void owner_round(size_t n, void *(*other)(void *)) {
  CHECK(pthread_barrier_init(&bar, NULL, 2) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, owner, (void *)n) == 0);
  pthread_barrier_wait(&bar);
  run(other, NULL);
  pthread_barrier_wait(&bar);
  CHECK(pthread_join(t, NULL) == 0);
  pthread_barrier_destroy(&bar);
}

static size_t reuse_round(size_t size) {
  block_size = size;
  owner_round(N, free_then_alloc);
  block_size = SIZE;
  return reused_count;
}

static void test_reuse(void) {
  /* 64 B, a line; 416 B, a class between 256 B and 1 KiB that is a
   * multiple of half a line (LZ_FOREIGN_OK). */
  static const size_t sizes[] = {SIZE, 416};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    lz_stats_t st0, st1;
    lz_stats_get(&st0);
    size_t reused = reuse_round(sizes[i]);
    CHECKF(reused == N, "%zu B: %zu of %d blocks freed for another heap were reused here", sizes[i], reused, N);
    lz_trim(0); /* the owner has exited: its orphan heap collects what came home */
    lz_stats_get(&st1);
    CHECKF(st1.in_use == st0.in_use, "%zu B: in use %zu before, %zu after", sizes[i], st0.in_use, st1.in_use);
  }
  printf("reuse: %d blocks of 64 and of 416 B freed for another heap all reused; in use back to the byte\n", N);
}

/* Passive false sharing (the cache-scratch pattern): a block that shares a
 * cache line with blocks the owner's thread keeps must not become this
 * thread's. */
static void test_no_false_sharing(void) {
  /* 160 B: a multiple of half a line, but not above 256 B (LZ_FOREIGN_OK). */
  static const size_t sizes[] = {16, 48, 160};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    lz_stats_t st0, st1;
    lz_stats_get(&st0);
    size_t reused = reuse_round(sizes[i]);
    CHECKF(reused == 0, "%zu of %d blocks of %zu B freed for another heap were handed out by the freeing thread",
           reused, N, sizes[i]);
    lz_trim(0); /* the owner has exited: its orphan heap collects what came home */
    lz_stats_get(&st1);
    CHECKF(st1.in_use == st0.in_use, "%zu B: in use %zu before, %zu after", sizes[i], st0.in_use, st1.in_use);
  }
  printf("no false sharing: blocks of 16, 48 and 160 B freed for another heap all went home\n");
}

/* The owner is this (main) thread: a helper frees 4096 of its blocks, more
 * than a foreign list keeps, and exits. Every block must come home: the
 * owner counts its blocks as in use until they do, so after it collects
 * (lz_trim) its bytes in use are back to the byte. */
static void *free_all(void *arg) {
  size_t n = (size_t)arg;
  for (size_t i = 0; i < n; i++) lz_free(blocks[i]);
  return NULL;
}

static void test_overflow(void) {
  size_t n = 4096;
  lz_stats_t st0, st1;
  lz_stats_get(&st0);
  alloc_n((void *)n);
  run(free_all, (void *)n);
  lz_trim(0);
  lz_stats_get(&st1);
  CHECKF(st1.in_use == st0.in_use, "in use %zu before, %zu after: %zd bytes did not come home", st0.in_use,
         st1.in_use, (ssize_t)(st1.in_use - st0.in_use));
  printf("overflow: %zu blocks freed by another thread all came home\n", n);
}

static void *double_free_foreign(void *arg) {
  (void)arg;
  CHECK(lz_malloc(SIZE) != NULL); /* this thread allocates the class: it keeps foreign blocks */
  lz_free(blocks[0]);
  lz_free(blocks[1]);
  lz_free(blocks[0]); /* blocks[0] sits in this thread's foreign list */
  return NULL;
}

/* Runs child in a forked process whose stderr is read back: it must end
 * in SIGABRT with a "double free" report (what: printed with it). */
static void expect_double_free(void (*child)(void), const char *what) {
  int pipefd[2];
  CHECK(pipe(pipefd) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(pipefd[1], 2);
    child();
    _exit(0);
  }
  close(pipefd[1]);
  char buf[512] = {0};
  ssize_t got = 0, r;
  while ((r = read(pipefd[0], buf + got, sizeof buf - 1 - (size_t)got)) > 0) got += r;
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "status %#x, stderr: %s", st, buf);
  CHECKF(strstr(buf, "double free") != NULL, "stderr: %s", buf);
  printf("double free of %s: %s", what, buf);
}

static void double_free_foreign_child(void) {
  alloc_n((void *)(size_t)2);
  run(double_free_foreign, NULL);
}

static void test_double_free(void) { expect_double_free(double_free_foreign_child, "a foreign-listed block"); }

/* 5: the owner's 8 blocks of a class nothing else here uses fill one slab;
 * the freeing thread, which allocates that class too (one block of its own
 * slab), keeps them in its foreign list and stays alive and busy (slow
 * paths, no small blocks) for 300 ms, three times the bound, and for the
 * ticks that send them after that however slow the machine. Only if they came home can
 * the owner, collecting, give its slab back. */
#define BIG 16000 /* class 16384 (slabs serve up to LZ_SLAB_MAX): a first slab of 8 blocks, a foreign list of 8 */
static _Atomic int busy_done;

static void *free_then_busy(void *arg) {
  (void)arg;
  void *mine = lz_malloc(BIG); /* its own slab of the class: it keeps foreign blocks */
  CHECK(mine != NULL);
  for (size_t i = 0; i < 8; i++) lz_free(blocks[i]);
  /* The first tick (one per HEAP_TICK_EVERY slow-path entries) at least
   * FOREIGN_MAX_AGE_MS after the list was installed or last sent (both
   * before t0) moves it into the remote batches, and the second sending
   * tick after that (every LZ_REMOTE_AGE_TICKS-th) sends them
   * (remote_flush_aged). A loaded machine may give this thread no CPU for
   * the whole 300 ms: busy until 300 ms have passed and then for that
   * many ticks' worth of slow-path entries (heap_t.slow_count), so that
   * the ticks the bound promises came after it (30 s at most: a heap that
   * never ticks fails the check below). The aged flushes go by the heap's
   * clock, not by ticks: a thread that got no CPU until after 300 ms
   * would run its ticks within a millisecond, before the second aged
   * flush is due (CI, loaded: "2 slab(s) of the class"), so the ticks
   * are counted from the second change of foreign_flush_at after 300 ms. */
  heap_t *self = lz_heap_tls;
  double t0 = tu_now(), t;
  uint64_t mark = UINT64_MAX, at = 0;
  int flushes = 0;
  do {
    lz_free(lz_malloc(64 * 1024)); /* medium: a slow-path entry each time */
    t = tu_now() - t0;
    if (t >= 0.3 && flushes < 2) {
      if (at == 0) at = self->foreign_flush_at;
      else if (self->foreign_flush_at != at) {
        at = self->foreign_flush_at;
        if (++flushes == 2) mark = self->slow_count;
      }
    }
  } while ((mark == UINT64_MAX || self->slow_count - mark < (1 + 2 * LZ_REMOTE_AGE_TICKS) * HEAP_TICK_EVERY) && t < 30.0);
  atomic_store(&busy_done, 1);
  while (atomic_load(&busy_done) != 2) sched_yield();
  lz_free(mine);
  return NULL;
}

static size_t class_slabs(size_t block_size) {
  lz_stats_t st;
  lz_stats_get(&st);
  for (unsigned c = 0; c < LZ_STATS_CLASSES; c++)
    if (st.classes[c].block_size == block_size) return st.classes[c].slabs;
  CHECKF(0, "no class of %zu bytes", block_size);
}

static void test_bounded_delay(void) {
  CHECKF(class_slabs(16384) == 0, "class 16384 in use before the test");
  for (size_t i = 0; i < 8; i++) CHECK((blocks[i] = lz_malloc(BIG)) != NULL);
  CHECK(class_slabs(16384) == 1);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, free_then_busy, NULL) == 0);
  while (atomic_load(&busy_done) != 1) sched_yield();
  lz_trim(0); /* collects what came home, gives empty slabs back */
  size_t left = class_slabs(16384); /* the freeing thread's own slab, and the owner's if not empty */
  atomic_store(&busy_done, 2);
  CHECK(pthread_join(t, NULL) == 0);
  CHECKF(left == 1, "%zu slab(s) of the class: the owner's blocks did not come home", left);
  printf("bounded delay: blocks freed by a busy thread came home, the slab went back\n");
}

/* 6: the owner (this thread) allocates MEDIUM_SIZE; another thread frees
 * it and waits, alive and idle (no tick of its own, no exit to flush its
 * batches), while the owner allocates again (a slow path: it collects what
 * came home) and reads its statistics. */
#define MEDIUM_SIZE (256 * 1024)
static pthread_barrier_t medium_bar;

static void *free_then_wait(void *arg) {
  lz_free(arg);
  pthread_barrier_wait(&medium_bar); /* freed */
  pthread_barrier_wait(&medium_bar); /* the owner has looked */
  return NULL;
}

static void test_medium_home(void) {
  void *p = lz_malloc(MEDIUM_SIZE);
  CHECK(p != NULL);
  memset(p, 0x5a, MEDIUM_SIZE);
  lz_stats_t st0, st1;
  lz_stats_get(&st0);
  CHECK(pthread_barrier_init(&medium_bar, NULL, 2) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, free_then_wait, p) == 0);
  pthread_barrier_wait(&medium_bar);
  void *q = lz_malloc(64 * 1024); /* medium: the slow path, which collects */
  CHECK(q != NULL);
  lz_free(q);
  lz_stats_get(&st1);
  pthread_barrier_wait(&medium_bar);
  CHECK(pthread_join(t, NULL) == 0);
  pthread_barrier_destroy(&medium_bar);
  CHECKF(st1.in_use + MEDIUM_SIZE == st0.in_use, "in use %zu before the free, %zu after: %zd bytes still away",
         st0.in_use, st1.in_use, (ssize_t)(st1.in_use + MEDIUM_SIZE - st0.in_use));
  printf("medium home: a medium block freed by an idle thread was back at the owner's next allocation\n");
}

/* ---- 7. refills beside foreign blocks of another class ------------------- */
#define REFILL_ROUNDS 1000
#define REFILL_SIZE 1024 /* 4 blocks a page: a list of 4 installed per refill */
static uint64_t refill_slow;

static void *keep_then_churn(void *arg) {
  (void)arg;
  void *mine = lz_malloc(SIZE); /* this thread allocates the class: it keeps what it frees */
  CHECK(mine != NULL);
  for (size_t i = 0; i < N; i++) lz_free(blocks[i]); /* kept here (test 1) */
  void *p = lz_malloc(REFILL_SIZE);                  /* the class's slab */
  CHECK(p != NULL);
  lz_free(p);
  lz_stats_t st0, st1;
  lz_stats_get(&st0);
  for (int i = 0; i < REFILL_ROUNDS; i++) {
    p = lz_malloc(REFILL_SIZE);
    CHECK(p != NULL);
    lz_free(p);
  }
  lz_stats_get(&st1);
  refill_slow = st1.slow_allocs - st0.slow_allocs;
  lz_free(mine);
  return NULL;
}

static void test_refill_beside_foreign(void) {
  block_size = SIZE;
  CHECK(pthread_barrier_init(&bar, NULL, 2) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, owner, (void *)(size_t)N) == 0);
  pthread_barrier_wait(&bar);
  run(keep_then_churn, NULL);
  pthread_barrier_wait(&bar);
  CHECK(pthread_join(t, NULL) == 0);
  pthread_barrier_destroy(&bar);
  /* The tick (every 64th slow-path entry, the short ways included) may
   * send the foreign blocks home: none of that is a slow allocation. */
  CHECKF(refill_slow <= 2, "%llu of %d malloc+free rounds took the full slow path",
         (unsigned long long)refill_slow, REFILL_ROUNDS);
  printf("refill beside foreign blocks: %llu of %d rounds took the full slow path\n",
         (unsigned long long)refill_slow, REFILL_ROUNDS);
}

/* 8 */
#define BEAT_SIZE 3000 /* class 3072: the looping thread never allocates it */
#define BEAT_N 8       /* below LZ_REMOTE_BATCH: the batches wait for a tick */
#define BEAT_LIMIT_S 20.0
static _Atomic int beat_state; /* 1: freed, looping; 2: the owner saw them home */
static _Atomic long beat_pairs;

static void *free_then_loop(void *arg) {
  void **b = arg;
  lz_free(lz_malloc(16)); /* a heap to batch in */
  for (int i = 0; i < BEAT_N; i++) lz_free(b[i]);
  atomic_store(&beat_state, 1);
  long n = 0;
  while (atomic_load_explicit(&beat_state, memory_order_relaxed) != 2) {
    for (int i = 0; i < 1000; i++) {
      void *p = lz_malloc(16);
      *(volatile char *)p = 1;
      lz_free(p);
    }
    n += 1000;
  }
  atomic_store(&beat_pairs, n);
  return NULL;
}

static size_t stats_in_use(void) {
  lz_stats_t st;
  lz_stats_get(&st);
  return st.in_use;
}

static void test_heartbeat(void) {
  const char *bg = getenv("LZMALLOC_BACKGROUND");
  if (bg != NULL && strcmp(bg, "0") == 0) {
    printf("heartbeat: skipped (LZMALLOC_BACKGROUND=0: no background thread to nudge the loop)\n");
    return;
  }
  /* The janitor runs (a cached large range wants it). */
  for (int i = 0; i < 2; i++) lz_free(lz_malloc((size_t)8 << 20));
  void *b[BEAT_N];
  lz_trim(0);
  size_t before = stats_in_use();
  for (int i = 0; i < BEAT_N; i++) CHECK((b[i] = lz_malloc(BEAT_SIZE)) != NULL);
  CHECK(stats_in_use() >= before + BEAT_N * BEAT_SIZE);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, free_then_loop, b) == 0);
  while (atomic_load(&beat_state) != 1) sched_yield();
  /* Blocks on their way home count as in use until the owner collects
   * them; the looping thread's list was charged when it was installed. */
  size_t live = stats_in_use();
  double t0 = tu_now(), waited;
  bool home = false;
  while (!home && (waited = tu_now() - t0) < BEAT_LIMIT_S) {
    usleep(10000);
    lz_trim(0); /* collects what came home */
    home = stats_in_use() + BEAT_N * 3072 <= live + 1024;
  }
  atomic_store(&beat_state, 2);
  CHECK(pthread_join(t, NULL) == 0);
  CHECKF(home, "blocks freed by a thread in a steady malloc/free loop did not come home in %.0f s (%ld pairs)",
         BEAT_LIMIT_S, atomic_load(&beat_pairs));
  printf("heartbeat: blocks freed by a looping thread came home after %.2f s (%ld pairs in the loop)\n", waited,
         atomic_load(&beat_pairs));
}

/* ---- 9. foreign blocks above LZ_DIRECT_MAX ------------------------------ */
#define BIG_FOREIGN 2048 /* a line multiple above 1 KiB: a list of 128 KiB / 2 KiB = 64 */
#define BIG_KEPT 16
static uint64_t big_slow;
static size_t big_back;

/* Frees the owner's BIG_KEPT blocks (kept here), then allocates the class
 * until they are all back (its own slab's list goes first): the slow-path
 * allocations counted across the calls that returned a kept block. A tick
 * (or the janitor's nudge) may send the list home on the way, so fewer
 * may come back. */
static void *keep_then_alloc_big(void *arg) {
  (void)arg;
  void *mine = lz_malloc(BIG_FOREIGN); /* this thread allocates the class: it keeps what it frees */
  CHECK(mine != NULL);
  for (size_t i = 0; i < BIG_KEPT; i++) lz_free(blocks[i]);
  static void *got[512];
  size_t n = 0, back = 0;
  uint64_t slow = 0;
  while (back < BIG_KEPT && n < 512) {
    lz_stats_t st0, st1;
    lz_stats_get(&st0);
    got[n] = lz_malloc(BIG_FOREIGN);
    lz_stats_get(&st1);
    CHECK(got[n] != NULL);
    if (in_set(got[n], blocks, BIG_KEPT)) {
      back++;
      slow += st1.slow_allocs - st0.slow_allocs;
    }
    n++;
  }
  big_slow = slow;
  big_back = back;
  for (size_t i = 0; i < n; i++) lz_free(got[i]);
  lz_free(mine);
  return NULL;
}

static void test_foreign_above_direct(void) {
  block_size = BIG_FOREIGN;
  for (int round = 0; round < 5; round++) {
    owner_round(BIG_KEPT, keep_then_alloc_big);
    if (big_back > 0) break; /* else all went home first: again */
  }
  block_size = SIZE;
  CHECKF(big_back > 0, "none of %d kept %d B blocks handed out again", BIG_KEPT, BIG_FOREIGN);
  CHECKF(big_slow == 0, "%llu of the %zu kept %d B blocks handed out again took the full slow path",
         (unsigned long long)big_slow, big_back, BIG_FOREIGN);
  printf("foreign above 1 KiB: %zu of %d kept %d B blocks handed out again, none by the full slow path\n",
         big_back, BIG_KEPT, BIG_FOREIGN);
}

/* ---- 10. own blocks beside foreign ones --------------------------------- */
#define OWN_SIZE 1024 /* first slab 8 blocks, then 16, 32, 64 */
#define OWN_N 100
static void *own_got[3];
static void *own_mine[OWN_N];

/* Allocates OWN_N blocks of the class (four slabs: mine[0] lies in the
 * first one made, mine[20] in the second, the newest is the queue's
 * first), keeps the owner's blocks[0] (its foreign list of the class,
 * installed), frees mine[0] and mine[20] and allocates three. Nothing
 * here reads a clock or enters a slow path between the frees and the
 * allocations, so the order cannot depend on the machine's load. */
static void own_beside_foreign(bool twice) {
  for (size_t i = 0; i < OWN_N; i++) {
    own_mine[i] = lz_malloc(OWN_SIZE);
    CHECK(own_mine[i] != NULL);
  }
  lz_free(blocks[0]);
  lz_free(own_mine[0]);
  lz_free(own_mine[20]);
  if (twice) lz_free(own_mine[0]); /* on the foreign list: a double free */
  void *first = own_mine[0], *second = own_mine[20], *foreign = blocks[0];
  for (size_t i = 0; i < 3; i++) own_got[i] = lz_malloc(OWN_SIZE);
  CHECKF(own_got[0] == second && own_got[1] == first && own_got[2] == foreign,
         "handed out %p %p %p, want %p (freed last), %p (freed first), then the foreign %p", own_got[0],
         own_got[1], own_got[2], second, first, foreign);
  own_mine[0] = own_got[1];
  own_mine[20] = own_got[0];
  lz_free(own_got[2]);
  for (size_t i = 0; i < OWN_N; i++) lz_free(own_mine[i]);
}

static void *own_round(void *arg) {
  (void)arg;
  own_beside_foreign(false);
  return NULL;
}

static void test_own_beside_foreign(void) {
  lz_stats_t st0, st1;
  lz_stats_get(&st0);
  block_size = OWN_SIZE;
  owner_round(1, own_round);
  block_size = SIZE;
  lz_stats_get(&st1);
  CHECKF(st1.in_use == st0.in_use, "in use %zu before, %zu after", st0.in_use, st1.in_use);
  printf("own blocks beside foreign ones: handed out again in LIFO order; in use back to %zu bytes\n", st1.in_use);
}

static void *own_twice(void *arg) {
  (void)arg;
  own_beside_foreign(true);
  return NULL;
}

static void own_twice_child(void) {
  block_size = OWN_SIZE;
  alloc_n((void *)(size_t)1);
  run(own_twice, NULL);
}

static void test_own_double_free(void) { expect_double_free(own_twice_child, "an own block on the foreign list"); }

/* ---- 11. reused foreign blocks stay -------------------------------------- */
#define STAY_SIZE 320 /* a line multiple no other part of this test uses */
static size_t stay_lost;
static uint64_t stay_rounds;

/* Frees the owner's blocks[0] (kept here), then takes it and frees it
 * again in a loop, with a slow-path entry (a tick now and then) while it
 * is on the list: for 300 ms (three age periods) and then for the ticks
 * that would send it (one per HEAP_TICK_EVERY slow-path entries; every
 * free of another heap's block counts one), however slow the machine
 * (30 s at most). */
static void *keep_reusing(void *arg) {
  (void)arg;
  void *mine = lz_malloc(STAY_SIZE); /* this thread allocates the class: it keeps what it frees */
  CHECK(mine != NULL);
  lz_free(blocks[0]);
  heap_t *self = lz_heap_tls;
  double t0 = tu_now(), t;
  uint64_t mark = UINT64_MAX, rounds = 0;
  size_t lost = 0;
  do {
    void *p = lz_malloc(STAY_SIZE);
    CHECK(p != NULL);
    if (p != blocks[0]) lost++;
    lz_free(p);
    lz_free(lz_malloc(2 << 20)); /* large: a slow-path entry (it ticks), with the block on the list */
    rounds++;
    t = tu_now() - t0;
    if (mark == UINT64_MAX && t >= 0.3) mark = self->slow_count;
  } while ((mark == UINT64_MAX || self->slow_count - mark < (1 + 2 * LZ_REMOTE_AGE_TICKS) * HEAP_TICK_EVERY) && t < 30.0);
  stay_lost = lost;
  stay_rounds = rounds;
  lz_free(mine);
  return NULL;
}

static void test_reused_stay(void) {
  CHECK((blocks[0] = lz_malloc(STAY_SIZE)) != NULL);
  run(keep_reusing, NULL);
  CHECKF(stay_lost == 0, "%zu of %llu allocations did not return the block freed just before", stay_lost,
         (unsigned long long)stay_rounds);
  printf("reused foreign blocks stay: %llu rounds over several age periods, the same block each time\n",
         (unsigned long long)stay_rounds);
}

/* ---- 12. an idle owner's blocks ------------------------------------------ */
#define IDLE_SIZE 192 /* a line multiple no other part uses: a list's bound is 128 KiB / 192 = 682 */
#define IDLE_BOUND (128 * 1024 / IDLE_SIZE)
#define IDLE_N 2000
static size_t idle_back;

/* Allocates the class (so it keeps what it frees), frees the owner's
 * blocks, then allocates as many and a page more: how many came back? */
static void *free_idle_then_alloc(void *arg) {
  (void)arg;
  void *mine = lz_malloc(IDLE_SIZE);
  CHECK(mine != NULL);
  for (size_t i = 0; i < IDLE_N; i++) lz_free(blocks[i]);
  static void *again[IDLE_N + 4096 / 64];
  size_t back = 0;
  for (size_t i = 0; i < IDLE_N + 4096 / 64; i++) {
    again[i] = lz_malloc(IDLE_SIZE);
    CHECK(again[i] != NULL);
    back += (size_t)in_set(again[i], blocks, IDLE_N);
  }
  idle_back = back;
  for (size_t i = 0; i < IDLE_N + 4096 / 64; i++) lz_free(again[i]);
  lz_free(mine);
  return NULL;
}

static void test_idle_owner(void) {
  block_size = IDLE_SIZE;
  for (int round = 0; round < 5; round++) {
    CHECK(pthread_barrier_init(&bar, NULL, 2) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, owner, (void *)(size_t)IDLE_N) == 0);
    pthread_barrier_wait(&bar);
    /* The owner waits at the barrier: idle once FOREIGN_IDLE_MS passed
     * since its last tick (longer only makes it more so). */
    usleep((FOREIGN_IDLE_MS + 50) * 1000);
    run(free_idle_then_alloc, NULL);
    pthread_barrier_wait(&bar);
    CHECK(pthread_join(t, NULL) == 0);
    pthread_barrier_destroy(&bar);
    if (idle_back > IDLE_BOUND) break; /* else ticks' age flushes sent them home first: again */
  }
  block_size = SIZE;
  CHECKF(idle_back > IDLE_BOUND, "%zu of an idle owner's %d blocks came back, no more than the bound %d", idle_back,
         IDLE_N, IDLE_BOUND);
  printf("idle owner: %zu of its %d blocks reused by the freeing thread (bound %d)\n", idle_back, IDLE_N, IDLE_BOUND);
}

/* ---- 13. a waiting owner's blocks across threads that exit ------------- */
#define WAIT_SIZE 1024 /* a line multiple, installed (<= LZ_DIRECT_MAX); bound 128 blocks */
#define WAIT_N 1000
static void *wait_blocks[WAIT_N];
static heap_t *wait_heap[2];
static size_t wait_back;

static void *wait_owner(void *arg) {
  (void)arg;
  for (size_t i = 0; i < WAIT_N; i++) {
    wait_blocks[i] = lz_malloc(WAIT_SIZE);
    CHECK(wait_blocks[i] != NULL);
    memset(wait_blocks[i], 0x5a, WAIT_SIZE);
  }
  pthread_barrier_wait(&bar); /* blocks ready */
  pthread_barrier_wait(&bar); /* both rounds done */
  return NULL;
}

/* Allocates the class (so it keeps what it frees), frees every block of
 * the owner's and exits. */
static void *wait_free_all(void *arg) {
  (void)arg;
  void *mine = lz_malloc(WAIT_SIZE);
  CHECK(mine != NULL);
  for (size_t i = 0; i < WAIT_N; i++) lz_free(wait_blocks[i]);
  lz_free(mine);
  wait_heap[0] = lz_heap_tls;
  return NULL;
}

/* The next thread (the exited one's heap adopted) allocates WAIT_N
 * blocks: how many were the owner's? */
static void *wait_alloc_all(void *arg) {
  void **again = arg;
  size_t back = 0;
  for (size_t i = 0; i < WAIT_N; i++) {
    again[i] = lz_malloc(WAIT_SIZE);
    CHECK(again[i] != NULL);
    back += (size_t)in_set(again[i], wait_blocks, WAIT_N);
  }
  wait_heap[1] = lz_heap_tls;
  wait_back = back;
  return NULL;
}

static void test_waiting_owner(void) {
  static void *again[WAIT_N];
  unsigned cls = size_to_class(WAIT_SIZE);
  lz_stats_t st0;
  lz_stats_get(&st0);
  CHECK(pthread_barrier_init(&bar, NULL, 2) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, wait_owner, NULL) == 0);
  pthread_barrier_wait(&bar);
  usleep((FOREIGN_UNCOLLECTED_MS + 5) * 1000); /* the owner waits: past FOREIGN_UNCOLLECTED_MS, far below FOREIGN_IDLE_MS */
  run(wait_free_all, NULL);
  run(wait_alloc_all, again);
  lz_stats_t st;
  lz_stats_get(&st);
  pthread_barrier_wait(&bar);
  CHECK(pthread_join(t, NULL) == 0);
  pthread_barrier_destroy(&bar);
  CHECKF(wait_heap[0] == wait_heap[1], "the second thread did not adopt the first one's heap");
  /* Home before the owner counted as idle: the first chain (the one
   * that put a block on its xremote list), and the partial chain of the
   * owner's slab before it (the blocks are freed in the order they were
   * carved: a slab's after another's), sent at the first thread's exit. */
  size_t slabs = st.classes[cls].slabs;
  size_t home_most = 2 * LZ_REMOTE_BATCH - 1;
  CHECKF(wait_back + home_most >= WAIT_N, "%zu of a waiting owner's %d blocks reused after its freer exited (%zu slabs)",
         wait_back, WAIT_N, slabs);
  /* The class's slabs: the live blocks, the ones that went home and
   * were carved again, and a slab's rounding (the largest is 64 KiB). */
  size_t want_most = (WAIT_N + (WAIT_N - wait_back)) * (size_t)WAIT_SIZE + 64 * 1024;
  CHECKF(st.classes[cls].slab_bytes <= want_most, "%zu bytes of slabs of %d B for %d live blocks (at most %zu)",
         st.classes[cls].slab_bytes, WAIT_SIZE, WAIT_N, want_most);
  printf("waiting owner: %zu of its %d blocks reused by the thread after its freer exited; slabs of the class %zu KiB "
         "(%zu slabs) for %zu KiB live\n",
         wait_back, WAIT_N, st.classes[cls].slab_bytes >> 10, slabs, (size_t)WAIT_N * WAIT_SIZE >> 10);
  /* All freed: once collected, in use is back to the byte. */
  for (size_t i = 0; i < WAIT_N; i++) lz_free(again[i]);
  lz_trim(0);
  lz_stats_t st1;
  lz_stats_get(&st1);
  CHECKF(st1.in_use == st0.in_use, "in use %zu before, %zu after", st0.in_use, st1.in_use);
}

/* ---- 14. a list above half its bound keeps what it is handed ------------- */
#define HALF_SIZE 384 /* a line multiple no other part uses: bound 128 KiB / 384 = 341 */
#define HALF_BOUND (128 * 1024 / HALF_SIZE)
#define HALF_KEPT (HALF_BOUND * 6 / 10)
static size_t half_lost;

static void *keep_above_half(void *arg) {
  (void)arg;
  void *mine = lz_malloc(HALF_SIZE); /* this thread allocates the class: it keeps what it frees */
  CHECK(mine != NULL);
  for (size_t i = 0; i < HALF_KEPT; i++) lz_free(blocks[i]);
  size_t lost = 0;
  void *p = blocks[HALF_KEPT];
  for (size_t i = 0; i < HALF_BOUND; i++) {
    lz_free(p);
    void *q = lz_malloc(HALF_SIZE);
    CHECK(q != NULL);
    if (q != p) lost++;
    p = q;
  }
  half_lost = lost;
  lz_free(p);
  lz_free(mine);
  return NULL;
}

static void test_above_half(void) {
  block_size = HALF_SIZE;
  owner_ticks = true; /* an idle owner's blocks may pass the bound ("Idle owners") */
  owner_round(HALF_KEPT + 1, keep_above_half);
  owner_ticks = false;
  block_size = SIZE;
  CHECKF(half_lost == 0, "%zu of %d allocations did not return the block freed just before (%d kept of a bound of %d)",
         half_lost, HALF_BOUND, HALF_KEPT, HALF_BOUND);
  printf("a list above half its bound: %d blocks kept, %d more freed and taken again, the same block each time\n",
         HALF_KEPT, HALF_BOUND);
}

int main(void) {
  /* Every part here follows slab blocks of threads it starts, from their
   * first allocation: a new thread's first blocks are packed instead
   * (slab.c, "Packing armed"; test_internals' thread_pack tests that). */
  lz_pack_threads_off = true;
  /* Hardening level 2 (its usable size is the requested size) keeps no
   * foreign lists: every free goes through its quarantine instead. */
  void *probe = lz_malloc(1);
  int level2 = lz_usable_size(probe) == 1;
  lz_free(probe);
  if (level2) {
    printf("test_remote: skipped at hardening level 2 (no foreign lists)\n");
    return 0;
  }
  test_waiting_owner(); /* first: see 13 */
  test_reuse();
  test_no_false_sharing();
  test_overflow();
  test_bounded_delay();
  test_medium_home();
  test_refill_beside_foreign();
  test_heartbeat();
  test_foreign_above_direct();
  test_own_beside_foreign();
  test_reused_stay();
  test_idle_owner();
  test_above_half();
  if (!TU_SANITIZED) test_double_free(); /* sanitizers intercept the abort */
  if (!TU_SANITIZED) test_own_double_free();
  return 0;
}
