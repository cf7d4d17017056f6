/* init.c: the life of the process and of its threads as the allocator
 * sees it: the thread-exit hook, the fork handlers, and process_start, our
 * constructor's work (api.c holds the constructor: every program that
 * links lzmalloc links api.c, while a file nothing calls would be left out
 * of a static link). It drives the layers below (heap.c, janitor.c,
 * secure.c, validate.c); nothing calls up into it.
 *
 * process_start starts the process (process_init, start.c: options, key,
 * NUMA; calls that arrive before our constructor, from other libraries'
 * constructors, start it themselves) and registers the hook and the
 * handlers, once; a heap this thread made before that is armed then.
 * Neither registration allocates, except that pthread_atfork may: such a
 * call is served as usual, the process being started already.
 *
 * Thread exit: a pthread key (os.c) whose destructor abandons the thread's
 * heap (heap.c, heap_thread_exit); heap.c arms it when it gives a thread
 * its heap. Allocations and frees that come later (other keys'
 * destructors, __libc_thread_freeres) get no heap of their own again
 * (heap.c says how they are served, and what becomes of the heap of a
 * thread whose first call comes after our key's last round, or that was
 * made before the key), so nothing is left behind.
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
 * a signal handler never lands while this thread holds it. A process that
 * has never run a second thread has no janitor: there the handlers take
 * nothing and write nothing but thread-local variables (see fork_prepare),
 * and are not even given to libc before the process allocates (os.c,
 * os_atfork: registered at the first heap or the first pthread_create,
 * before the new thread runs; at once with shared heaps or at level 2).
 * The child's handler ends by setting the thread's heap aside (heap.c,
 * heap_fork_park): the child's first call takes it back and packs its
 * first blocks into a span of its own (slab.c, "Packing armed").
 */
#include "internal.h"

lz_text_thread static void thread_done(void *value) {
  if (opt_get(OPT_VALIDATE)) validate_heap((heap_t *)value);
  heap_thread_exit((heap_t *)value);
  janitor_thread_exit();
}

/* Signals stay blocked from here to the parent and child handlers: a fork
 * made by a signal handler cannot then land while this thread holds
 * pass_lock (it would wait for itself).
 * A process that has never run a second thread has no janitor (janitor.c)
 * and nobody to race with: the handlers then write nothing but the child's
 * thread-local variables (beside the thread's descriptor, which
 * the child's fork writes anyway), neither before fork nor after, so
 * neither process pays a copy-on-write fault for our pages (a shell forks
 * for every pipeline). fork_locked says, in both
 * processes, whether the prepare handler did its work; only the handlers
 * that undo it write it. */
static __thread bool fork_locked __attribute__((tls_model("initial-exec")));

lz_text_hot static void fork_prepare(void) {
  if (os_single_threaded()) return;
  os_fork_signals_block();
  janitor_fork_prepare();
  fork_locked = true;
}

lz_text_hot static void fork_parent(void) {
  if (!fork_locked) return;
  fork_locked = false;
  janitor_fork_parent();
  os_fork_signals_restore();
}

lz_text_hot static void fork_child(void) {
  janitor_fork_child(); /* writes only what changes */
  if (fork_locked) {
    fork_locked = false;
    os_fork_signals_restore();
  }
  heaps_fork_child_secure();
  if (LZ_HEAPS > 0) {
    heaps_fork_child_shared();
    return;
  }
  heap_t *self = heap_fork_self(); /* set aside already: a fork before the first call */
  heaps_fork_child(self);
  heap_fork_park(self); /* the first call takes it back (heap.c) */
}

/* Our constructor's work (api.c): the process started, the hook and the
 * handlers registered. */
lz_text_hot void process_start(void) {
  lz_hot static bool done; /* constructors run on one thread, once */
  process_init();
  if (done) return;
  done = true;
  /* Neither failure stops the allocator; each degrades it, so say so. */
  int rc = os_thread_exit_hook(thread_done);
  if (rc != 0)
    lz_message("warning: no thread-exit hook (pthread_key_create failed), heaps of exited threads are given back late; "
               "error ", "", (uintptr_t)rc, 2);
  /* Registered with libc at the first heap or once the process may have a
   * second thread (os.c): until then the handlers have nothing to do (a
   * heap made already, by an earlier constructor, is armed below, which
   * registers them). At once with shared heaps
   * or at hardening level 2, whose locks a fork from a signal handler may
   * find taken in a single-threaded process too. */
  rc = os_atfork(fork_prepare, fork_parent, fork_child, LZ_HEAPS > 0 || lz_secure2);
  if (rc != 0)
    lz_message("warning: no fork handlers (pthread_atfork failed), a fork while other threads allocate may "
               "deadlock the child; error ", "", (uintptr_t)rc, 2);
  /* A heap this thread made before (a call from an earlier constructor). */
  if (LZ_HEAPS == 0 && lz_heap_tls != LZ_HEAP_EMPTY) os_thread_exit_arm(lz_heap_tls);
}
