/* large_fork: fork while other threads are inside the large-block paths,
 * in the pattern of glibc bug 19431: no allocator lock may be held across
 * fork, or this deadlocks.
 *
 *   thread B: holds a FILE lock (flockfile) while it allocates and frees
 *             large blocks, in a loop;
 *   thread C: fflush(NULL) in a loop (takes the stdio list lock, then every
 *             FILE's lock);
 *   main:     forks 200 times (x LZ_TEST_SCALE, at most 20 s); each child
 *             allocates, fills and frees large blocks, then _exit(0)s.
 * If a fork handler held a lock that B waits for while B holds the FILE
 * lock, main's fork (waiting for the list lock held by C, which waits for
 * B's FILE) never returns: alarm() fails the test. A child that hangs or
 * fails fails it too. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>

#include "lzmalloc.h"
#include "testutil.h"

#define MiB ((size_t)1 << 20)

static atomic_int stop, b_ready;
static FILE *held;

static void *hammer(void *arg) {
  (void)arg;
  tu_rng_t r;
  tu_rng_seed(&r, 19431);
  while (!atomic_load(&stop)) {
    flockfile(held);
    for (int i = 0; i < 4; i++) {
      size_t n = (size_t)tu_rng_range(&r, MiB + 1, 6 * MiB);
      unsigned char *p = lz_malloc(n);
      CHECK(p != NULL);
      p[0] = p[n - 1] = 1;
      unsigned char *q = lz_realloc(p, n + MiB);
      CHECK(q != NULL && q[0] == 1);
      lz_free(q);
    }
    funlockfile(held);
    atomic_store(&b_ready, 1);
  }
  return NULL;
}

static void *flusher(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) fflush(NULL);
  return NULL;
}

static void child(void) {
  alarm(60); /* a hang, not a slow machine: 8 blocks of 2-9 MiB written */
  for (int i = 0; i < 8; i++) {
    size_t n = (size_t)(i + 2) * MiB + 100;
    unsigned char *p = lz_malloc(n);
    if (p == NULL) _exit(3);
    memset(p, i, n);
    p = lz_realloc(p, 2 * n);
    if (p == NULL || p[n - 1] != (unsigned char)i) _exit(4);
    lz_free(p);
  }
  _exit(0);
}

int main(void) {
  held = fopen("/dev/null", "w");
  CHECK(held != NULL);
  alarm(60); /* a deadlock fails the test rather than hanging it */
  pthread_t b, c;
  CHECK(pthread_create(&b, NULL, hammer, NULL) == 0);
  while (!atomic_load(&b_ready)) sched_yield();
  CHECK(pthread_create(&c, NULL, flusher, NULL) == 0);
  size_t forks = tu_scaled(200, 20);
  double t0 = tu_now();
  size_t done = 0;
  for (; done < forks && tu_now() - t0 < 20.0; done++) {
    alarm(90); /* each fork and its child's run: a loaded machine's wait does not add up */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) child();
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %zu: status %#x", done, status);
  }
  alarm(60);
  atomic_store(&stop, 1);
  CHECK(pthread_join(b, NULL) == 0);
  CHECK(pthread_join(c, NULL) == 0);
  fclose(held);
  printf("large_fork: %zu forks in %.2f s\n", done, tu_now() - t0);
  return 0;
}
