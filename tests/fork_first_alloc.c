/* fork_first_alloc: a thread's first allocation, made under a FILE lock,
 * never deadlocks against a fork and an fflush(NULL) in other threads
 * (API).
 *
 * lzmalloc gives libc its fork handlers once the process has a second
 * thread. pthread_atfork waits for libc's lock on its handler list, which
 * fork holds from the end of its prepare handlers until it has taken the
 * stdio list lock; fflush(NULL) holds the list lock while it waits for
 * each FILE's lock. A thread that registered from inside its first malloc
 * while holding a FILE lock closed the cycle (fork_stdio hung so, about
 * once in seven runs of the lean build): the registration must be made
 * before a second thread runs, while no fork can be in progress.
 *
 * The cycle, step by step (sleeps order the steps; a watchdog turns the
 * deadlock into a failure):
 *   A  locks the FILE of a pipe (flockfile), no allocation yet;
 *   B  fflush(NULL): takes the stdio list lock, waits for A's FILE;
 *   F  fork(): this program's prepare handler says so, then fork takes the
 *      handler-list lock and waits for the stdio list lock;
 *   A  makes its first malloc, frees, unlocks: B, then F, go on.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define WATCHDOG_S 30

static FILE *g_fp;
static atomic_int g_a_locked, g_in_fork;

static void watchdog(int sig) {
  (void)sig;
  static const char msg[] =
      "fork_first_alloc: FAILED: deadlock (a thread's first malloc waited for the fork handler list)\n";
  ssize_t r = write(2, msg, sizeof msg - 1);
  (void)r;
  _exit(3);
}

static void prepare(void) { atomic_store(&g_in_fork, 1); }

static void *thread_a(void *arg) {
  (void)arg;
  flockfile(g_fp);
  atomic_store(&g_a_locked, 1);
  while (!atomic_load(&g_in_fork)) usleep(1000);
  usleep(200 * 1000); /* F is now waiting for the stdio list lock */
  void *p = malloc(100); /* this thread's first allocation */
  CHECK(p != NULL);
  memset(p, 1, 100);
  free(p);
  funlockfile(g_fp);
  return NULL;
}

static void *thread_b(void *arg) {
  (void)arg;
  fflush(NULL);
  return NULL;
}

static void *thread_f(void *arg) {
  (void)arg;
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) _exit(0);
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
  return NULL;
}

int main(void) {
  signal(SIGALRM, watchdog);
  alarm(WATCHDOG_S);
  int fds[2];
  CHECK(pipe(fds) == 0);
  g_fp = fdopen(fds[0], "r"); /* allocated by this thread: the allocator started */
  CHECK(g_fp != NULL);
  CHECK(pthread_atfork(prepare, NULL, NULL) == 0);
  pthread_t a, b, f;
  CHECK(pthread_create(&a, NULL, thread_a, NULL) == 0);
  while (!atomic_load(&g_a_locked)) usleep(1000);
  CHECK(pthread_create(&b, NULL, thread_b, NULL) == 0);
  usleep(200 * 1000); /* B now holds the stdio list lock, waiting for A's FILE */
  CHECK(pthread_create(&f, NULL, thread_f, NULL) == 0);
  CHECK(pthread_join(a, NULL) == 0);
  CHECK(pthread_join(b, NULL) == 0);
  CHECK(pthread_join(f, NULL) == 0);
  alarm(0);
  fclose(g_fp);
  close(fds[1]);
  printf("fork_first_alloc: a first malloc under a FILE lock during fork and fflush(NULL) completed\n");
  return 0;
}
