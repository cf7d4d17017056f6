/* test_janitor: the background thread that gives idle memory back.
 *
 *   test_janitor idle      a thread frees most of 64 MiB and then makes no
 *                          call: its heap's committed bytes come back down
 *                          to what it still holds (polling, generous
 *                          timeout); the blocks it kept are intact.
 *   test_janitor threads   a process that only allocates has no janitor
 *                          (threads named lz-janitor in /proc/self/task);
 *                          after frees that leave something to give back,
 *                          exactly one.
 *   test_janitor off       (run with LZMALLOC_BACKGROUND=0) the same frees
 *                          never start a thread, and the idle heap keeps
 *                          its pages.
 *   test_janitor lastexit  a process whose threads all end with pthread_exit
 *                          ends (the janitor does not keep it alive).
 *   test_janitor mcache    a thread's medium cache, empty while the janitor
 *                          looked (its blocks live), then filled by frees
 *                          after which the thread makes no call: given
 *                          back all the same (the janitor's watch,
 *                          medium.c).
 *   test_janitor fork      fork while the janitor runs (and while it is
 *                          purging): the child starts with one thread; a
 *                          young child that frees starts none (a pool's
 *                          short-lived workers pay no thread); one that
 *                          frees again after the child's wait
 *                          (janitor.c, JANITOR_CHILD_MS) gets a janitor of
 *                          its own, and its idle memory goes back; the
 *                          parent's janitor still works.
 */
#include <dirent.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>

#include "config.h"
#include "lzmalloc.h"
#include "testutil.h"

#define BLOCK (16 * 1024)          /* slabs of 8 blocks */
#define TOTAL ((size_t)64 << 20)
#define NBLOCKS (TOTAL / BLOCK)
#define KEEP_EVERY 128             /* about one kept block per chunk */
#define TIMEOUT_S 30.0

static void *blocks[NBLOCKS];
static sem_t freed, done;

/* Threads of this process named "lz-janitor" (a sanitizer may run threads
 * of its own, so they are not simply counted). */
static int count_janitors(void) {
  DIR *d = opendir("/proc/self/task");
  CHECK(d != NULL);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[300], comm[64] = {0};
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) continue;
    ssize_t r = read(fd, comm, sizeof comm - 1);
    close(fd);
    if (r > 0 && strncmp(comm, "lz-janitor", 10) == 0) n++;
  }
  closedir(d);
  return n;
}

static size_t committed(void) {
  lz_stats_t st;
  lz_stats_get(&st);
  return st.committed;
}

/* Allocates TOTAL in BLOCK blocks, frees all but every KEEP_EVERY-th. */
static void burst(void) {
  for (size_t i = 0; i < NBLOCKS; i++) {
    blocks[i] = lz_malloc(BLOCK);
    CHECK(blocks[i] != NULL);
    memset(blocks[i], (int)(i % 251) + 1, BLOCK);
  }
  for (size_t i = 0; i < NBLOCKS; i++)
    if (i % KEEP_EVERY != 0) {
      lz_free(blocks[i]);
      blocks[i] = NULL;
    }
}

static void check_kept(void) {
  for (size_t i = 0; i < NBLOCKS; i += KEEP_EVERY) {
    unsigned char *p = blocks[i];
    for (size_t k = 0; k < BLOCK; k += 512) CHECKF(p[k] == (unsigned char)(i % 251 + 1), "block %zu byte %zu", i, k);
  }
}

static void free_kept(void) {
  for (size_t i = 0; i < NBLOCKS; i += KEEP_EVERY) lz_free(blocks[i]);
}

/* The bytes the kept blocks justify: their slabs (128 KiB each), the chunk
 * headers, and 4 MiB of slack (caches, other heaps' partial slabs). */
static size_t kept_bound(void) { return (NBLOCKS / KEEP_EVERY) * (size_t)(128 * 1024) * 2 + ((size_t)4 << 20); }

/* Committed bytes read by the worker right after its frees: the main
 * thread may get the CPU back only after the janitor's purge delay on a
 * loaded machine, when the pages may already be gone. */
static size_t committed_after_frees;

static void *idle_worker(void *arg) {
  (void)arg;
  burst();
  committed_after_frees = committed();
  sem_post(&freed);
  while (sem_wait(&done) != 0) {
  } /* silent: no allocator call until told */
  check_kept();
  free_kept();
  return NULL;
}

/* Waits until committed <= bound; returns the seconds it took, or -1. */
static double wait_committed(size_t bound, double timeout) {
  double t0 = tu_now();
  while (tu_now() - t0 < timeout) {
    if (committed() <= bound) return tu_now() - t0;
    usleep(10000);
  }
  return -1;
}

static void run_idle(bool expect_purge) {
  sem_init(&freed, 0, 0);
  sem_init(&done, 0, 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, idle_worker, NULL) == 0);
  while (sem_wait(&freed) != 0) {
  }
  size_t before = committed_after_frees;
  size_t bound = kept_bound();
  printf("after the frees: committed %zu KiB, bound %zu KiB\n", before >> 10, bound >> 10);
  CHECKF(before > bound + ((size_t)16 << 20), "the frees should leave dirty pages (committed %zu)", before);
  if (expect_purge) {
    double s = wait_committed(bound, TIMEOUT_S);
    CHECKF(s >= 0, "the idle thread's heap kept %zu KiB committed for %.0f s (bound %zu KiB)",
           committed() >> 10, TIMEOUT_S, bound >> 10);
    printf("idle heap purged in %.2f s: committed %zu KiB\n", s, committed() >> 10);
  } else {
    usleep(1500 * 1000);
    CHECKF(committed() > bound + ((size_t)16 << 20), "purged without a janitor: %zu KiB", committed() >> 10);
    CHECKF(count_janitors() == 0, "%d janitors with LZMALLOC_BACKGROUND=0", count_janitors());
  }
  sem_post(&done);
  CHECK(pthread_join(t, NULL) == 0);
}

static void run_threads(void) {
  /* Only allocations, of every kind: no janitor. */
  void *keep[64];
  for (int i = 0; i < 64; i++) {
    size_t sizes[] = {24, 700, 5000, 40000, 300000, 3u << 20};
    keep[i] = lz_malloc(sizes[i % 6]);
    CHECK(keep[i] != NULL);
    memset(keep[i], 1, sizes[i % 6]);
  }
  usleep(200 * 1000);
  CHECKF(count_janitors() == 0, "%d janitors in a process that never freed", count_janitors());
  /* Frees that leave memory to give back: a large block (cached) and a
   * medium one (cached). The janitor starts at the end of such a call. */
  for (int i = 0; i < 64; i++) lz_free(keep[i]);
  double t0 = tu_now();
  while (count_janitors() < 1 && tu_now() - t0 < TIMEOUT_S) usleep(10000);
  CHECKF(count_janitors() == 1, "%d janitors after frees (one expected)", count_janitors());
  /* Still one after more of the same. */
  for (int r = 0; r < 20; r++) lz_free(lz_malloc(3u << 20));
  usleep(100 * 1000);
  CHECKF(count_janitors() == 1, "%d janitors: one expected", count_janitors());
  printf("no thread while only allocating; one janitor after frees\n");
}

static void run_fork(void) {
  /* Start the janitor and keep it busy: a churning thread in the parent. */
  lz_free(lz_malloc(3u << 20));
  double t0 = tu_now();
  while (count_janitors() < 1 && tu_now() - t0 < TIMEOUT_S) usleep(10000);
  CHECKF(count_janitors() == 1, "janitor did not start (%d)", count_janitors());
  alarm(240);
  int forks = (int)tu_scaled(20, 4);
  for (int f = 0; f < forks; f++) {
    /* Dirty pages for the janitor to be purging while we fork. */
    void *v[256];
    for (int i = 0; i < 256; i++) v[i] = lz_malloc(BLOCK);
    for (int i = 0; i < 256; i++) lz_free(v[i]);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      alarm(120);
      if (count_janitors() != 0) _exit(10);
      if (f == 0 && !TU_TSAN) { /* ThreadSanitizer: no threads after a multithreaded fork */
        /* Something to give back (a cached large range): the child's wait
         * begins, and no thread yet (unless these calls alone took the
         * whole wait, on a machine that stalled the child). */
        double t0 = tu_now();
        lz_free(lz_malloc(3u << 20));
        lz_free(lz_malloc(1000));
        if (count_janitors() != 0 && tu_now() - t0 < 0.9) _exit(13);
        usleep(1200 * 1000); /* past the wait (1 s) */
        /* The child's own idle thread gets purged by the child's janitor. */
        run_idle(true);
        if (count_janitors() != 1) _exit(11);
      } else {
        double t0 = tu_now();
        void *p = lz_malloc(100000);
        if (p == NULL) _exit(12);
        lz_free(p);
        lz_free(lz_malloc(3u << 20));
        lz_free(lz_malloc(1000)); /* entry points after the notifies */
        if (count_janitors() != 0 && tu_now() - t0 < 0.9) _exit(14);
      }
      _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d: status %d", f, status);
  }
  /* The parent's janitor still works. */
  run_idle(true);
  printf("%d forks with the janitor running; children purged their idle heaps\n", forks);
}

/* LZMALLOC_BACKGROUND=auto (the default): no janitor in a process that
 * never ran a thread of its own, however much it frees; one once it has. */
static void *noop(void *arg) { return arg; }

static void run_single(void) {
  for (int r = 0; r < 20; r++) lz_free(lz_malloc(3u << 20));
  void *v[64];
  for (int i = 0; i < 64; i++) CHECK((v[i] = lz_malloc(40000)) != NULL);
  for (int i = 0; i < 64; i++) lz_free(v[i]);
  usleep(200 * 1000);
  CHECKF(count_janitors() == 0, "%d janitors in a single-threaded process", count_janitors());
  pthread_t t;
  CHECK(pthread_create(&t, NULL, noop, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  for (int r = 0; r < 20; r++) lz_free(lz_malloc(3u << 20));
  double t0 = tu_now();
  while (count_janitors() < 1 && tu_now() - t0 < TIMEOUT_S) usleep(10000);
  CHECKF(count_janitors() == 1, "%d janitors once the process ran a thread (one expected)", count_janitors());
  printf("no janitor while single-threaded; one after the program's first thread\n");
}

/* A program whose threads all end with pthread_exit must end: the janitor
 * ends itself when it is the last thread. Runs in a child; the parent
 * waits (generously) for it to be gone. */
static void *last_worker(void *arg) {
  (void)arg;
  for (int i = 0; i < 100; i++) lz_free(lz_malloc(40000));
  usleep(100 * 1000);
  return NULL; /* the process's last thread but the janitor */
}

static void run_lastexit(void) {
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    lz_free(lz_malloc(3u << 20)); /* the janitor starts */
    double t0 = tu_now();
    while (count_janitors() < 1 && tu_now() - t0 < TIMEOUT_S) usleep(10000);
    if (count_janitors() != 1) _exit(10);
    pthread_t t;
    if (pthread_create(&t, NULL, last_worker, NULL) != 0) _exit(11);
    pthread_detach(t);
    pthread_exit(NULL); /* the main thread first */
  }
  double t0 = tu_now();
  int status = 0;
  pid_t r = 0;
  while ((r = waitpid(pid, &status, WNOHANG)) == 0 && tu_now() - t0 < TIMEOUT_S) usleep(10000);
  if (r == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  CHECKF(r == pid, "the process did not end after its last thread's pthread_exit (%.0f s)", TIMEOUT_S);
  CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
  printf("ended %.2f s after its threads did\n", tu_now() - t0 - 0.1);
}

/* mcache: a thread's medium cache, emptied while the janitor looked (its
 * blocks live), then filled by frees after which the thread makes no call:
 * the janitor still learns of it and gives it back (committed bytes fall
 * by most of the 4 MiB cached). */
#define MC_BLOCK ((size_t)1 << 20)
#define MC_N 4
static void *mcache_worker(void *arg) {
  (void)arg;
  void *v[MC_N];
  for (int r = 0; r < 50; r++) { /* the cache in use: spans in and out */
    for (int i = 0; i < MC_N; i++) CHECK((v[i] = lz_malloc(MC_BLOCK)) != NULL);
    for (int i = 0; i < MC_N; i++) memset(v[i], r + 1, MC_BLOCK);
    for (int i = 0; i < MC_N; i++) lz_free(v[i]);
  }
  for (int i = 0; i < MC_N; i++) CHECK((v[i] = lz_malloc(MC_BLOCK)) != NULL);
  /* The cache empty for three purge delays: the janitor's looks find it so. */
  usleep(3 * 1000 * (LZ_PURGE_DELAY_MS > 500 ? LZ_PURGE_DELAY_MS : 500));
  for (int i = 0; i < MC_N; i++) lz_free(v[i]);
  committed_after_frees = committed();
  sem_post(&freed);
  while (sem_wait(&done) != 0) {
  } /* silent */
  return NULL;
}

static void run_mcache(void) {
  sem_init(&freed, 0, 0);
  sem_init(&done, 0, 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, mcache_worker, NULL) == 0);
  while (sem_wait(&freed) != 0) {
  }
  size_t before = committed_after_frees;
  size_t bound = before - (size_t)3 * MC_BLOCK;
  double s = wait_committed(bound, TIMEOUT_S);
  CHECKF(s >= 0, "the idle thread's cached medium spans stayed: committed %zu KiB, was %zu KiB", committed() >> 10,
         before >> 10);
  printf("idle medium cache given back in %.2f s: committed %zu -> %zu KiB\n", s, before >> 10, committed() >> 10);
  sem_post(&done);
  CHECK(pthread_join(t, NULL) == 0);
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "idle";
  setvbuf(stdout, NULL, _IONBF, 0);
  void *probe = lz_malloc(1);
  bool level2 = lz_usable_size(probe) == 1; /* level 2 reports the requested size */
  lz_free(probe);
  if (level2 && strcmp(mode, "threads") != 0 && strcmp(mode, "lastexit") != 0) {
    /* Its slabs (guard pages, canary room) and quarantine keep more than
     * the bound below, which is level 1's geometry. */
    printf("skipped: %s: the committed-bytes bound is level 1's (hardening level 2 here)\n", mode);
    return 0;
  }
  if (LZ_PURGE_DELAY_MS == 0 && strcmp(mode, "threads") != 0 && strcmp(mode, "lastexit") != 0) {
    /* Built to purge at once: nothing is ever left for the janitor. */
    printf("skipped: %s needs a purge delay (LZ_PURGE_DELAY_MS is 0 in this build)\n", mode);
    return 0;
  }
  if (TU_TSAN && strcmp(mode, "lastexit") == 0) {
    /* ThreadSanitizer's own thread outlives the program's: the janitor is
     * never the last one. */
    printf("skipped: lastexit under ThreadSanitizer (its thread keeps the process)\n");
    return 0;
  }
  if (LZ_HEAPS > 0 && strcmp(mode, "lastexit") == 0) {
    /* Shared heaps register no thread-exit hook, so nothing wakes the
     * janitor when the last thread ends (a known limitation). */
    printf("skipped: lastexit with shared heaps (LZ_HEAPS > 0): no thread-exit hook wakes the janitor\n");
    return 0;
  }
  if (strcmp(mode, "idle") == 0) run_idle(true);
  else if (strcmp(mode, "off") == 0) run_idle(false);
  else if (strcmp(mode, "threads") == 0) run_threads();
  else if (strcmp(mode, "fork") == 0) run_fork();
  else if (strcmp(mode, "lastexit") == 0) run_lastexit();
  else if (strcmp(mode, "single") == 0) run_single();
  else if (strcmp(mode, "mcache") == 0) run_mcache();
  else {
    fprintf(stderr, "usage: test_janitor idle|off|threads|fork|lastexit|single|mcache\n");
    return 2;
  }
  printf("ok: %s\n", mode);
  return 0;
}
