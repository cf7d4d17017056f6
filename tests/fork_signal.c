/* fork_signal: fork from a signal handler that interrupted fork, malloc or
 * free (PREFIXED; glibc makes fork async-signal-safe in a single-threaded
 * process, and the allocator's fork handlers must not break that).
 *
 * A single-threaded process loops: allocate blocks of every kind (small,
 * medium, large), fork (the child frees and allocates a little and
 * _exits), wait, free. A separate sender process sends SIGUSR1 to it every
 * few hundred microseconds (sender_interval_ns); the handler forks too
 * (its child _exits at once) and waits for its child. An allocator that takes a lock in its prepare
 * handler spins for ever when the signal lands while the interrupted fork
 * (or malloc) holds that lock. A watchdog turns a hang into a failure.
 *
 * glibc makes fork async-signal-safe only while the process has one
 * thread (with more, its own fork takes atfork_lock, and a handler's fork
 * inside another fork waits for it for ever), so lzmalloc must not make
 * the process multithreaded behind its back: with the default options
 * (LZMALLOC_BACKGROUND=auto) no janitor thread starts in a process that
 * never ran a thread of its own (test_janitor_single checks that). The
 * test runs with the defaults.
 *
 * The watchdog measures progress, not speed: re-armed at every iteration,
 * it fires when one iteration (a fork, its child's exit, the handler's
 * forks meanwhile) takes WATCHDOG_S. On a slow machine the loop ends
 * early once it has run LOOP_BUDGET_S and at least a tenth of its
 * iterations (a loaded run of 3000 took over 200 s).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lzmalloc.h"
#include "testutil.h"

#define WATCHDOG_S 60
#define LOOP_BUDGET_S 90.0

static volatile sig_atomic_t g_handler_forks;
static volatile sig_atomic_t g_iteration;

static void watchdog(int sig) {
  (void)sig;
  char msg[160] = "fork_signal: FAILED: iteration ";
  size_t n = strlen(msg);
  char digits[24];
  int d = 0;
  for (long v = g_iteration; d == 0 || v > 0; v /= 10) digits[d++] = (char)('0' + v % 10);
  while (d > 0) msg[n++] = digits[--d];
  static const char tail[] = " made no progress for the watchdog time (fork from a signal handler hung)\n";
  memcpy(msg + n, tail, sizeof tail - 1);
  ssize_t r = write(2, msg, n + sizeof tail - 1);
  (void)r;
  _exit(3);
}

static void on_usr1(int sig) {
  (void)sig;
  int saved = errno;
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  if (pid > 0) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    g_handler_forks++;
  }
  errno = saved;
}

/* The sender's interval: 300 us, or three times what a fork, its child's
 * exit and the wait take here if that is longer. A signal every 300 us
 * on a machine whose fork takes 800 us (a VM here: glibc alone 810-990 us)
 * kept the handler forking back to back, and the loop made 18 iterations
 * in two minutes: the test timed out without testing anything more. */
static long sender_interval_ns(void) {
  double t0 = tu_now();
  for (int i = 0; i < 16; i++) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) _exit(0);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
  }
  double per_fork_ns = (tu_now() - t0) / 16 * 1e9;
  long ns = (long)(3 * per_fork_ns);
  return ns < 300000 ? 300000 : ns > 999999999 ? 999999999 : ns;
}

static pid_t start_sender(pid_t target, long interval_ns) {
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    signal(SIGUSR1, SIG_IGN);
    struct timespec ts = {0, interval_ns};
    while (getppid() == target) {
      kill(target, SIGUSR1);
      nanosleep(&ts, NULL);
    }
    _exit(0);
  }
  return pid;
}

static void *alloc_kind(unsigned k) {
  static const size_t sizes[] = {24, 500, 3000, 40000, 300000, 3 << 20};
  void *p = lz_malloc(sizes[k % 6]);
  CHECK(p != NULL);
  memset(p, (int)k, 16);
  return p;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (TU_TSAN) {
    /* ThreadSanitizer's runtime allocates in the child of a fork made in a
     * signal handler and reports its own call as signal-unsafe. */
    printf("fork_signal: skipped under ThreadSanitizer\n");
    return 77;
  }
  signal(SIGALRM, watchdog);
  alarm(WATCHDOG_S);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
  lz_free(lz_malloc(1)); /* initialised before the signals start */
  long interval_ns = sender_interval_ns();
  pid_t sender = start_sender(getpid(), interval_ns);
  size_t iters = tu_scaled(TU_SANITIZED ? 300 : 3000, 100); /* fork is slow under sanitizers */
  double t0 = tu_now();
  size_t i = 0;
  for (; i < iters && (i < iters / 10 || tu_now() - t0 < LOOP_BUDGET_S); i++) {
    g_iteration = (sig_atomic_t)i;
    alarm(WATCHDOG_S);
    void *held[6];
    for (unsigned k = 0; k < 6; k++) held[k] = alloc_kind((unsigned)i + k);
    pid_t pid = fork();
    CHECKF(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
      lz_free(held[i % 6]);
      void *p = lz_malloc(100);
      if (p == NULL) _exit(1);
      lz_free(p);
      _exit(0);
    }
    for (unsigned k = 0; k < 6; k++) lz_free(held[k]);
    for (unsigned k = 0; k < 12; k++) lz_free(alloc_kind(k * 7 + (unsigned)i));
    int st;
    pid_t w;
    while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR) {
    }
    CHECK(w == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "iteration %zu: child status 0x%x", i, st);
  }
  kill(sender, SIGKILL);
  while (waitpid(sender, NULL, 0) < 0 && errno == EINTR) {
  }
  alarm(0);
  printf("fork_signal: %zu of %zu forks in the loop, %d from the SIGUSR1 handler (a signal every %ld us), %.1f s\n",
         i, iters, (int)g_handler_forks, interval_ns / 1000, tu_now() - t0);
  CHECKF(g_handler_forks > 0, "no signal arrived");
  return 0;
}
