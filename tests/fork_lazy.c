/* fork_lazy: a process gives libc its fork handlers at its first
 * allocation, once (API).
 *
 * Registering handlers costs a process libc's registration code and the
 * read-only data it reads (page faults, 64 KiB mapped around them), which
 * a process that allocates pays anyway; one that never allocates has
 * nothing for the handlers to do. So lzmalloc registers them when the
 * process makes its first heap (one thread: no fork can run beside the
 * registration, fork_first_alloc says why that matters) or creates its
 * second thread (in pthread_create's calloc, before that thread runs),
 * whichever comes first, and only then:
 *   quiet     start-up registers nothing;
 *   first     the first allocation registers them, once; a fork then
 *             works (the child allocates and frees);
 *   threaded  a second thread registers nothing more; a fork while that
 *             thread lives works too.
 * Observed by interposing __register_atfork (pthread_atfork's body in
 * glibc): this program's definition is the one lzmalloc's call binds to.
 * Hardening level 2 (and shared heaps, built at level 2) registers at
 * start-up: skipped there.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static atomic_int g_registered;

int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), void *dso);
int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), void *dso) {
  static int (*real)(void (*)(void), void (*)(void), void (*)(void), void *);
  if (real == NULL) real = (int (*)(void (*)(void), void (*)(void), void (*)(void), void *))dlsym(RTLD_NEXT, "__register_atfork");
  if (real == NULL) abort();
  atomic_fetch_add(&g_registered, 1);
  return real(prepare, parent, child, dso);
}

static void fork_and_allocate(const char *what) {
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    for (int i = 0; i < 100; i++) {
      void *p = malloc((size_t)(16 + i * 24));
      if (p == NULL) _exit(2);
      memset(p, i, (size_t)(16 + i * 24));
      free(p);
    }
    _exit(0);
  }
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: child status %#x", what, st);
}

static atomic_int g_registered_at_start = -1;

static void *worker(void *arg) {
  (void)arg;
  int expect = -1;
  atomic_compare_exchange_strong(&g_registered_at_start, &expect, atomic_load(&g_registered));
  void *p = malloc(100);
  CHECK(p != NULL);
  memset(p, 1, 100);
  free(p);
  return NULL;
}

static void *sleeper(void *arg) {
  worker(arg);
  usleep(200 * 1000);
  return NULL;
}

int main(void) {
  /* Nothing allocated yet (the test's own calls below are the first);
   * judged once the level is known: level 2 registers at start-up. */
  int quiet = atomic_load(&g_registered);
  void *b[64];
  for (int i = 0; i < 64; i++) {
    b[i] = malloc((size_t)(8 + i * 40));
    CHECK(b[i] != NULL);
  }
  int level2 = malloc_usable_size(b[0]) == 8; /* level 2 reports the requested size */
  for (int i = 0; i < 64; i++) free(b[i]);
  if (level2) {
    printf("fork_lazy: skipped at hardening level 2 (handlers registered at start-up)\n");
    return 0;
  }
  CHECKF(quiet == 0, "quiet: %d fork handler registration(s) before the first allocation", quiet);
  CHECKF(atomic_load(&g_registered) == 1, "first: %d fork handler registrations after the first allocations (want 1)",
         atomic_load(&g_registered));
  fork_and_allocate("first");
  CHECK(atomic_load(&g_registered) == 1);

  pthread_t t;
  CHECK(pthread_create(&t, NULL, worker, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  CHECKF(atomic_load(&g_registered_at_start) == 1,
         "threaded: %d registrations when the second thread started (want 1)", atomic_load(&g_registered_at_start));
  CHECKF(atomic_load(&g_registered) == 1, "threaded: %d registrations after a second thread allocated (want 1)",
         atomic_load(&g_registered));
  CHECK(pthread_create(&t, NULL, sleeper, NULL) == 0);
  fork_and_allocate("threaded");
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(atomic_load(&g_registered) == 1);
  printf("fork_lazy: no handler before the first allocation, then one registration\n");
  return 0;
}
