/* fork_stdio: fork must not deadlock against threads that allocate while
 * holding stdio locks (the cycle of glibc bug 19431) (API).
 *
 * Three threads run for a bounded time (3 s x LZ_TEST_SCALE, and until
 * each has done its work once):
 *   forker    fork() in a loop; each child allocates a little and _exits;
 *   flusher   fflush(NULL) in a loop (takes the stdio list lock, then each
 *             FILE's lock);
 *   reader    getline() on a pipe whose other end a fourth thread feeds with
 *             lines of every length up to 3 MiB, the line buffer freed after
 *             each line, so getline allocates (small, medium and large
 *             blocks, fresh chunks and chunk releases) while it holds the
 *             pipe FILE's lock; between lines it also allocates and frees
 *             under flockfile() of the same FILE.
 * glibc's fork takes the stdio list lock after running the atfork prepare
 * handlers; an allocator that takes its own locks in a prepare handler then
 * waits for the list lock (held by the flusher), which waits for the FILE
 * lock (held by the reader), which waits inside malloc for the allocator's
 * lock: a deadlock. A watchdog turns a hang into a failure. Passes against
 * plain glibc too (build this file without lzmalloc).
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

#include "testutil.h"

#define WATCHDOG_S 120

static atomic_int g_stop;
static FILE *g_in;   /* read end of the pipe (the reader's FILE) */
static int g_wfd;    /* write end */
static atomic_long g_forks, g_flushes, g_lines;

static void watchdog(int sig) {
  (void)sig;
  static const char msg[] = "fork_stdio: FAILED: no progress within the watchdog time (deadlock at fork?)\n";
  ssize_t r = write(2, msg, sizeof msg - 1);
  (void)r;
  _exit(3);
}

static void *forker(void *arg) {
  (void)arg;
  while (!atomic_load(&g_stop)) {
    pid_t pid = fork();
    CHECKF(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
      void *p = malloc(100), *q = malloc(200000), *r = malloc(3 << 20);
      if (!p || !q || !r) _exit(1);
      free(p);
      free(q);
      free(r);
      _exit(0);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
    atomic_fetch_add(&g_forks, 1);
  }
  return NULL;
}

static void *flusher(void *arg) {
  (void)arg;
  while (!atomic_load(&g_stop)) {
    fflush(NULL);
    atomic_fetch_add(&g_flushes, 1);
  }
  return NULL;
}

/* Line lengths: mostly short, some medium and a few large. */
static size_t line_len(tu_rng_t *r) {
  uint64_t k = tu_rng_below(r, 100);
  if (k < 60) return (size_t)tu_rng_logrange(r, 1, 4096);
  if (k < 95) return (size_t)tu_rng_logrange(r, 4096, 1 << 20);
  return (size_t)tu_rng_logrange(r, 1 << 20, 3 << 20);
}

static void *writer(void *arg) {
  (void)arg;
  tu_rng_t r;
  tu_rng_seed(&r, 7);
  static char buf[(3 << 20) + 1];
  memset(buf, 'x', sizeof buf);
  for (;;) { /* until the reader's end is closed */
    size_t n = line_len(&r);
    buf[n] = '\n';
    size_t off = 0;
    while (off <= n) {
      ssize_t w = write(g_wfd, buf + off, n + 1 - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return NULL; /* reader gone */
      off += (size_t)w;
    }
    buf[n] = 'x';
  }
  return NULL;
}

static void *reader(void *arg) {
  (void)arg;
  tu_rng_t r;
  tu_rng_seed(&r, 11);
  while (!atomic_load(&g_stop)) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, g_in);
    CHECKF(n > 0, "getline: %zd", n);
    CHECK(line[n - 1] == '\n');
    free(line);
    atomic_fetch_add(&g_lines, 1);
    /* Allocate under the FILE lock directly, every size range. */
    flockfile(g_in);
    void *p = malloc(line_len(&r));
    CHECK(p != NULL);
    free(p);
    funlockfile(g_in);
  }
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGALRM, watchdog);
  signal(SIGPIPE, SIG_IGN);
  alarm(WATCHDOG_S);
  int fds[2];
  CHECK(pipe(fds) == 0);
  g_in = fdopen(fds[0], "r");
  CHECK(g_in != NULL);
  g_wfd = fds[1];
  double seconds = 3.0 * tu_scale();
  pthread_t th[4];
  void *(*fn[4])(void *) = {writer, reader, flusher, forker};
  for (int i = 0; i < 4; i++) CHECK(pthread_create(&th[i], NULL, fn[i], NULL) == 0);
  /* The threads run for `seconds`, and then until each has done its work
   * at least once: a loaded machine may give one of them no CPU for that
   * long (the watchdog still turns a deadlock into a failure). */
  double t0 = tu_now();
  while (tu_now() - t0 < seconds || atomic_load(&g_forks) == 0 || atomic_load(&g_flushes) == 0 ||
         atomic_load(&g_lines) == 0)
    usleep(100000);
  atomic_store(&g_stop, 1);
  /* The forker, flusher and reader stop by themselves; the writer writes
   * until the read end is closed. */
  CHECK(pthread_join(th[3], NULL) == 0);
  CHECK(pthread_join(th[2], NULL) == 0);
  CHECK(pthread_join(th[1], NULL) == 0);
  close(fds[0]); /* unblocks the writer (EPIPE) */
  CHECK(pthread_join(th[0], NULL) == 0);
  alarm(0);
  printf("fork_stdio: %ld forks, %ld fflush(NULL), %ld lines in %.1f s\n", atomic_load(&g_forks),
         atomic_load(&g_flushes), atomic_load(&g_lines), tu_now() - t0);
  CHECK(atomic_load(&g_forks) > 0 && atomic_load(&g_lines) > 0);
  return 0;
}
