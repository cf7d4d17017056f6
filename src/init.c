/* init.c: process start-up, thread exit, fork, and the spin lock.
 *
 * process_init runs once, from our constructor or from the first
 * allocation, whichever comes first (allocations can arrive before main,
 * from other libraries' constructors). It reads options, draws the secret
 * key, and registers the thread-exit key and the fork handlers; none of
 * that allocates. Other threads arriving meanwhile wait for it.
 *
 * Thread exit: a pthread key (os.c) whose destructor abandons the thread's
 * heap (heap.c, heap_thread_exit). Allocations and frees that come later
 * (other keys' destructors, __libc_thread_freeres) get no heap of their own
 * again (heap.c says how they are served), so nothing is left behind.
 *
 * Fork: lzmalloc holds no lock of its own across fork (an interposed
 * allocator's prepare handler runs before glibc takes its stdio locks, so a
 * lock held there can deadlock against a thread allocating under a FILE
 * lock, and a fork from a signal handler would wait for the interrupted
 * thread). Shared structures are lock-free, every operation taking effect
 * at one atomic step, so the child sees each one before or after it; the
 * child then leaks (never adopts) any heap that may have been mid-update.
 * One exception: the janitor's pass_lock (janitor.c), taken first, so that
 * no pass is half done in the child: it is held only by the janitor, whose
 * passes never wait for another thread and which runs with every signal
 * blocked, so fork waits one pass at most; and signals are blocked from
 * the prepare handler to the parent and child handlers, so a fork made by
 * a signal handler never lands while this thread holds it.
 */
#include "internal.h"

lz_hot _Atomic(int) lz_initialized; /* 0: not yet, 1: in progress, 2: done */
static __thread bool init_running __attribute__((tls_model("initial-exec")));

void lz_lock(lz_lock_t *l) {
  for (unsigned spins = 0;; spins++) {
    int expect = 0;
    if (atomic_load_explicit(&l->x, memory_order_relaxed) == 0 &&
        atomic_compare_exchange_weak_explicit(&l->x, &expect, 1, memory_order_acquire, memory_order_relaxed))
      return;
    if (spins < 64) arch_pause();
    else os_yield();
  }
}

/* Spans, purge and guard pages work in LZ_PAGE_SIZE units, which must be
 * the kernel's page (arch.h): refuse other kernels before any mapping. */
void check_page_size(size_t kernel_page) {
  if (lz_likely(kernel_page == LZ_PAGE_SIZE)) return;
  lz_message("unsupported kernel page size (bytes): ", "", kernel_page, 2);
  lz_message("built for 4 KiB pages on " LZ_ARCH_NAME "; refusing to run", "", 0, 0);
  os_abort();
}

static void thread_done(void *value) {
  if (opt_get(OPT_VALIDATE)) validate_heap((heap_t *)value);
  heap_thread_exit((heap_t *)value);
  janitor_thread_exit();
}

/* Signals stay blocked from here to the parent and child handlers: a fork
 * made by a signal handler cannot then land while this thread holds
 * pass_lock (it would wait for itself).
 * A process that has never run a second thread has no janitor (janitor.c)
 * and nobody to race with: the handlers then write nothing at all, neither
 * before fork nor after, so neither process pays a copy-on-write fault for
 * our pages (a shell forks for every pipeline). fork_locked says, in both
 * processes, whether the prepare handler did its work; only the handlers
 * that undo it write it. */
static __thread bool fork_locked __attribute__((tls_model("initial-exec")));

static void fork_prepare(void) {
  if (os_single_threaded()) return;
  os_fork_signals_block();
  janitor_fork_prepare();
  fork_locked = true;
}

static void fork_parent(void) {
  if (!fork_locked) return;
  fork_locked = false;
  janitor_fork_parent();
  os_fork_signals_restore();
}

static void fork_child(void) {
  janitor_fork_child(); /* writes only what changes */
  if (fork_locked) {
    fork_locked = false;
    os_fork_signals_restore();
  }
  secure_fork_child();
  if (LZ_HEAPS > 0) {
    heaps_fork_child_shared();
    return;
  }
  heap_t *self = lz_heap_tls;
  heaps_fork_child(self == &lz_heap_empty ? NULL : self);
}

void process_init(void) {
  int state = atomic_load_explicit(&lz_initialized, memory_order_acquire);
  if (lz_likely(state == 2)) return;
  if (init_running) return; /* an allocation made by our own set-up */
  int expect = 0;
  if (!atomic_compare_exchange_strong_explicit(&lz_initialized, &expect, 1, memory_order_acq_rel,
                                               memory_order_acquire)) {
    while (atomic_load_explicit(&lz_initialized, memory_order_acquire) != 2) os_yield();
    return;
  }
  init_running = true;
  check_page_size(os_page_size());
  options_init();
  numa_init();
  security_init();
  /* Neither failure stops the allocator; each degrades it, so say so. */
  int rc = os_thread_exit_hook(thread_done);
  if (rc != 0)
    lz_message("warning: no thread-exit hook (pthread_key_create failed), heaps of exited threads are given back late; "
               "error ", "", (uintptr_t)rc, 2);
  rc = os_atfork(fork_prepare, fork_parent, fork_child);
  if (rc != 0)
    lz_message("warning: no fork handlers (pthread_atfork failed), a fork while other threads allocate may "
               "deadlock the child; error ", "", (uintptr_t)rc, 2);
  atomic_store_explicit(&lz_initialized, 2, memory_order_release);
  init_running = false;
  if (opt_get(OPT_VERBOSE)) {
    lz_message("version " LZMALLOC_VERSION ", hardening level ", "", (uintptr_t)opt_get(OPT_SECURE), 2);
    if (opt_get(OPT_PURGE_DELAY) < 0) lz_message("purge delay: never", "", 0, 0);
    else lz_message("purge delay (ms): ", "", (uintptr_t)opt_get(OPT_PURGE_DELAY), 2);
    lz_message("large cache (bytes): ", "", (uintptr_t)opt_get(OPT_LARGE_CACHE), 2);
  }
}

void thread_register(heap_t *heap) {
  if (atomic_load_explicit(&lz_initialized, memory_order_acquire) == 2) os_thread_exit_arm(heap);
}

__attribute__((constructor(101))) static void lz_constructor(void) { process_init(); }

__attribute__((destructor(101))) static void lz_destructor(void) {
  if (opt_get(OPT_SHOW_STATS)) lz_stats_print(2);
}
