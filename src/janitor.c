/* janitor.c: the background thread that gives idle memory back.
 *
 * Threads purge their own heaps on their slow paths (purge.c); a thread that
 * frees and then stops calling the allocator would keep its free pages for
 * ever, and so would orphan heaps, the chunk pool and the large cache in a
 * process that went quiet. The janitor is one thread per process that does
 * that work on a time-based schedule.
 *
 * Layering: this file sits in the base layer and names nothing above it.
 * The layers above call down into it: the engines and pages.c raise its
 * wake-up flag (janitor_notify), heap.c's entry points start the thread
 * (janitor_poll) and hand it the pass to run (heaps_background_pass, kept
 * in xpass: the one call that comes back up, through that pointer), init.c
 * tells it of thread exits and forks.
 *
 * Life:
 *   OFF      no thread. janitor_notify (something purgeable appeared: a
 *            purge armed, a span cached, a chunk pooled, a large mapping
 *            cached) moves OFF -> WANTED, unless LZMALLOC_BACKGROUND=0, or
 *            it is "auto" (the default) and the process has never run a
 *            second thread: the first extra thread would change how glibc
 *            treats the process (stdio starts locking; fork stops being
 *            async-signal-safe, so a fork from a signal handler that
 *            interrupted fork would deadlock), which must stay the
 *            program's own doing. Such a process purges on its own slow
 *            paths only, even with much dirty memory: measured with
 *            bench idle-burst's pattern in one thread (400 MiB, 90 %
 *            freed, 1.5 s of silence), 72 % of the peak stays resident
 *            (the frees' own purge ticks punched holes while they ran)
 *            against 37 % with LZMALLOC_BACKGROUND=1; the program that
 *            wants the rest back asks for the thread (or calls
 *            malloc_trim). bench idle-burst itself runs a worker thread,
 *            so auto starts the janitor there. A process that never
 *            frees never notifies, so never starts one; an idle janitor
 *            waits on its futex without a timeout.
 *   WANTED   the next allocator entry point to finish (janitor_poll, at a
 *            point where its heap is consistent and its heap lock is not
 *            held) starts the thread: the stack is ours (os_map, guard page
 *            at the bottom), every signal blocked (os_thread_start).
 *            pthread_create allocates the thread's DTV through malloc: the
 *            nested call is an ordinary allocation of the calling thread,
 *            and the STARTING state keeps it from starting another.
 *   CHILD    a fork child of a process that had a janitor (below): as
 *            OFF, but a notify only becomes WANTED once the child has had
 *            something to give back for JANITOR_CHILD_MS.
 *   RUNNING  the thread loops: take the pending flag, make a pass, then
 *            either sleep until the earliest time the pass said something
 *            falls due (never more often than every JANITOR_MIN_MS), or, if
 *            nothing is pending at all, wait on the futex without a timeout:
 *            an idle process sees no periodic wake-ups.
 *
 * Wake-up handshake (no lost wake-up, one syscall per idle period at most):
 *   notifier: xpending = 1 (exchange, seq_cst); if it was 0 and xidle == 1,
 *             futex_wake(xpending).
 *   janitor:  xidle = 1 (seq_cst); if xpending == 0, futex_wait(xpending, 0).
 * One of the two sees the other's store; futex_wait returns at once if
 * xpending already changed. A notifier that finds xpending == 1 does
 * nothing: a pass is scheduled already.
 *
 * The thread is detached; exit() does not wait for it. A program whose last
 * thread ends with pthread_exit() ends when every thread has: each thread
 * exit (init.c) wakes the janitor, which ends itself when it finds itself
 * alone (Threads: 1 in /proc/self/status) so the process can end. A
 * pass holds pass_lock; fork takes it first (init.c), so no pass is half
 * done at fork. In the child there is no janitor: state stays OFF if the
 * parent had none, else becomes CHILD: a child that has had something to
 * give back for JANITOR_CHILD_MS (counted from its first notify, so the
 * fork itself writes no page for it) starts one at the next notify and
 * entry point; one that ends sooner, as a process pool's or a prefork
 * server's short-lived children do, never pays for a thread. Started at
 * the child's first entry point, as before 2026-12-07 (the state went to
 * WANTED), the janitor cost every such child a thread (its clone, stack
 * mapping, guard and set-up): bench forkpool (a threaded parent forking
 * 300 workers that each write and free 200 blocks and a 100 KB buffer
 * and end 2 ms later), CPU per worker 1,150 us then, 919 now (glibc 824,
 * mimalloc 818; LZMALLOC_BACKGROUND=0 the same as now), 129.2 faults
 * then, 124.0 now. A child that gives memory back and goes quiet within
 * its first JANITOR_CHILD_MS keeps those pages until its next call or
 * its exit, as a single-threaded process does; python's
 * multiprocessing pools whose workers live under a second start none.
 * The old stack is
 * left mapped in the child (glibc's descriptor of the vanished thread sits
 * in it). ThreadSanitizer builds give the child no janitor (LZ_TSAN).
 * The thread is named "lz-janitor" (/proc/PID/task/TID/comm).
 */
#include <errno.h>

#include "internal.h"

#define JANITOR_STACK ((size_t)256 * KiB)   /* glibc puts static TLS and its descriptor on it */
#define JANITOR_STACK_BIG ((size_t)8 * MiB)  /* retry when static TLS did not fit */
#define JANITOR_MIN_MS 50                    /* at most one pass per 50 ms */
#define JANITOR_MAX_FAILURES 8
#define JANITOR_CHILD_MS 1000                /* a fork child's wait before it starts one */

lz_hot _Atomic(int) lz_janitor_xstate;
#define xstate lz_janitor_xstate
lz_hot static _Atomic(uint32_t) xpending; /* futex word: a notify since the last pass began */
lz_hot static _Atomic(uint32_t) xidle;    /* the janitor waits without a timeout */
lz_hot static _Atomic(int) xfailures;
lz_hot static _Atomic(uint32_t) xexits;   /* threads exited since the janitor looked */
lz_hot static _Atomic(uint64_t) xchild_since; /* CHILD: ms of its first notify, 0 before */
lz_hot static lz_lock_t pass_lock = LZ_LOCK_INIT;
/* What a pass runs: handed down by the starter (janitor_poll), stored
 * before the thread starts (the same function every time). With the hot
 * variables: in the .bss it would cost every process that starts the
 * thread a page of its own (tests/startup_bss.c). */
lz_hot static _Atomic(uint64_t (*)(void)) xpass;
__thread bool lz_janitor_starting __attribute__((tls_model("initial-exec")));

/* The strings the thread reads (each pass after a thread exited, and its
 * name at its start): in the RELRO page (internal.h, lz_ro_hot), which the
 * loader wrote anyway, not .rodata, whose first read costs a page fault
 * and the segment's 20 KiB of resident pages (fault-around) in every
 * process that runs threads. */
lz_ro_hot static const char k_status_path[] = "/proc/self/status";
lz_ro_hot static const char k_threads[] = "\nThreads:";
lz_ro_hot static const char k_state[] = "\nState:";
lz_ro_hot static const char k_name[] = "lz-janitor";

/* The value after `key` in /proc/self/status text, or NULL. */
static const char *status_field(const char *buf, long n, const char *key) {
  for (long i = 0; i < n; i++) {
    long k = 0;
    while (key[k] && i + k < n && buf[i + k] == key[k]) k++;
    if (key[k]) continue;
    const char *s = buf + i + k;
    while (*s == ' ' || *s == '\t') s++;
    return s;
  }
  return NULL;
}

/* What /proc/self/status says of the threads left. It counts the
 * thread-group leader until the whole group is gone, so "alone" is one
 * thread, or two of which the leader is a zombie (it ended with
 * pthread_exit). While the leader lives the process ends when it does
 * (exit() takes the janitor along), so there is nothing to wait for. */
enum { THREADS_OTHERS, THREADS_ALONE, THREADS_LEADER_GONE, THREADS_UNKNOWN };
lz_text_thread static int threads_left(void) {
  char buf[2048];
  long n = os_read_file(k_status_path, buf, sizeof buf - 1);
  if (n <= 0) return THREADS_UNKNOWN;
  buf[n] = 0;
  const char *t = status_field(buf, n, k_threads);
  const char *st = status_field(buf, n, k_state);
  if (t == NULL || st == NULL) return THREADS_UNKNOWN;
  long threads = 0;
  while (*t >= '0' && *t <= '9') threads = threads * 10 + (*t++ - '0');
  if (threads == 1 || (threads == 2 && *st == 'Z')) return THREADS_ALONE;
  return *st == 'Z' ? THREADS_LEADER_GONE : THREADS_OTHERS;
}

/* A thread exited: if the program's last thread did (pthread_exit, not
 * exit), the process ends only when every thread has, the janitor too.
 * Once the leader is gone it looks for a while (the exiting thread takes a
 * moment to be gone); while the leader lives, one look is enough, so a
 * program that starts and ends threads all the time costs one read of
 * /proc/self/status per janitor wake-up, not a poll. */
static bool janitor_alone(void) {
  if (atomic_exchange(&xexits, 0) == 0) return false;
  for (int i = 0; i < 40; i++) {
    int left = threads_left();
    if (left == THREADS_ALONE) return true;
    if (left != THREADS_LEADER_GONE) return false;
    os_sleep_ms(5);
  }
  return false;
}

lz_text_thread static void *janitor_main(void *arg) {
  (void)arg;
  os_thread_name(k_name);
  for (;;) {
    if (janitor_alone()) {
      /* The last thread: give the process its end. A later start (there
       * is none: no thread is left to ask) would make a new one. */
      atomic_store_explicit(&xstate, JANITOR_OFF, memory_order_release);
      return NULL;
    }
    atomic_store_explicit(&xidle, 0, memory_order_relaxed);
    atomic_store(&xpending, 0);
    lz_lock(&pass_lock);
    uint64_t next = atomic_load_explicit(&xpass, memory_order_relaxed)();
    lz_unlock(&pass_lock);
    if (next == UINT64_MAX) {
      atomic_store(&xidle, 1);
      if (atomic_load(&xpending) == 0) os_futex_wait(&xpending, 0);
      continue;
    }
    uint64_t now = os_now_ms();
    uint64_t wait = next > now ? next - now : 0;
    os_sleep_ms(wait < JANITOR_MIN_MS ? JANITOR_MIN_MS : wait);
  }
  return NULL;
}

static void janitor_start(void) {
  int rc = ENOMEM;
  for (int i = 0; i < 2; i++) {
    /* Not an array of the two: its initializer would be read from .rodata
     * (a fault and the segment's pages, for this one read). */
    size_t size = i == 0 ? JANITOR_STACK : JANITOR_STACK_BIG;
    uint8_t *stack = os_map(size);
    if (stack == NULL) break;
    rc = os_protect_none(stack, LZ_PAGE_SIZE); /* never a stack without its guard */
    if (rc != 0) {
      os_unmap(stack, size);
      break;
    }
    lz_janitor_starting = true; /* its nested allocations never force a trim */
    rc = os_thread_start(janitor_main, stack, size);
    lz_janitor_starting = false;
    if (rc == 0) break;
    os_unmap(stack, size);
    if (rc != EINVAL) break; /* EINVAL: the static TLS did not fit */
  }
  if (rc == 0) {
    atomic_store_explicit(&xstate, JANITOR_RUNNING, memory_order_release);
    return;
  }
  /* No thread (out of memory, thread limit): the allocating threads still
   * purge; try again on a later notify, a few times. */
  int failed = atomic_fetch_add_explicit(&xfailures, 1, memory_order_relaxed) + 1;
  atomic_store_explicit(&xstate, failed >= JANITOR_MAX_FAILURES ? JANITOR_FAILED : JANITOR_OFF,
                        memory_order_release);
}

/* CHILD: the first notify starts the child's wait, one JANITOR_CHILD_MS
 * later makes it WANTED. */
lz_text_thread static lz_noinline void janitor_child_notify(void) {
  uint64_t now = os_now_ms();
  uint64_t since = atomic_load_explicit(&xchild_since, memory_order_relaxed);
  if (since == 0) {
    atomic_store_explicit(&xchild_since, now != 0 ? now : 1, memory_order_relaxed);
    return;
  }
  if (now - since < JANITOR_CHILD_MS) return;
  int expect = JANITOR_CHILD;
  atomic_compare_exchange_strong_explicit(&xstate, &expect, JANITOR_WANTED, memory_order_relaxed,
                                          memory_order_relaxed);
}

lz_text_hot void janitor_notify(void) {
  if (atomic_load_explicit(&xpending, memory_order_relaxed) != 0) return;
  int st = atomic_load_explicit(&xstate, memory_order_relaxed);
  if (st == JANITOR_OFF) {
    long bg = opt_get(OPT_BACKGROUND);
    if (bg == BACKGROUND_OFF || (bg == BACKGROUND_AUTO && os_single_threaded())) return;
    int expect = JANITOR_OFF;
    atomic_compare_exchange_strong_explicit(&xstate, &expect, JANITOR_WANTED, memory_order_relaxed,
                                            memory_order_relaxed);
    return;
  }
  if (st == JANITOR_CHILD) {
    janitor_child_notify();
    return;
  }
  if (st != JANITOR_RUNNING) return;
  if (atomic_exchange(&xpending, 1) == 0 && atomic_load(&xidle) != 0) os_futex_wake(&xpending);
}

void janitor_thread_exit(void) {
  if (atomic_load_explicit(&xstate, memory_order_relaxed) != JANITOR_RUNNING) return;
  atomic_fetch_add(&xexits, 1);
  atomic_store(&xpending, 1);
  if (atomic_load(&xidle) != 0) os_futex_wake(&xpending);
}

lz_text_thread void janitor_poll_slow(uint64_t (*pass)(void)) {
  int expect = JANITOR_WANTED;
  if (!atomic_compare_exchange_strong_explicit(&xstate, &expect, JANITOR_STARTING, memory_order_acquire,
                                               memory_order_relaxed))
    return;
  atomic_store_explicit(&xpass, pass, memory_order_relaxed); /* the thread start orders it */
  janitor_start();
}

void janitor_fork_prepare(void) { lz_lock(&pass_lock); }
void janitor_fork_parent(void) { lz_unlock(&pass_lock); }
/* Stores only what changes: a page the child does not write stays shared
 * with the parent (a fork storm copies no page for an idle janitor). */
void janitor_fork_child(void) {
  if (atomic_load_explicit(&pass_lock.x, memory_order_relaxed) != 0) lz_lock_reset(&pass_lock);
  int st = atomic_load_explicit(&xstate, memory_order_relaxed);
  if (atomic_load_explicit(&xpending, memory_order_relaxed) != 0) atomic_store_explicit(&xpending, 0, memory_order_relaxed);
  if (atomic_load_explicit(&xidle, memory_order_relaxed) != 0) atomic_store_explicit(&xidle, 0, memory_order_relaxed);
  int was = st;
  /* ThreadSanitizer's runtime dies on a thread started after a
   * multithreaded fork, whatever state the janitor was in. */
  if (LZ_TSAN) st = JANITOR_FAILED;
  else if (st == JANITOR_RUNNING || st == JANITOR_STARTING || st == JANITOR_WANTED) st = JANITOR_CHILD;
  if (st != was) atomic_store_explicit(&xstate, st, memory_order_relaxed);
  /* A child of a child in its wait waits from its own first notify. */
  if (st == JANITOR_CHILD && atomic_load_explicit(&xchild_since, memory_order_relaxed) != 0)
    atomic_store_explicit(&xchild_since, 0, memory_order_relaxed);
}
