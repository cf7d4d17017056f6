/* lock.c: the spin lock's wait (base layer; the lock itself, try and
 * release, is inline in internal.h). Slow paths only: a holder keeps it
 * for a short, bounded stretch of work, so a waiter spins a little, then
 * gives its CPU away between looks. */
#include "internal.h"

/* Looks with a pause (arch.h) between them before each look yields: the
 * holds are short (a heap's slow path, a secure slab), so a holder still
 * holding after that many is likely off its CPU. */
#define LOCK_SPINS 64

lz_text_late void lz_lock(lz_lock_t *l) {
  for (unsigned spins = 0;; spins++) {
    int expect = 0;
    if (atomic_load_explicit(&l->x, memory_order_relaxed) == 0 &&
        atomic_compare_exchange_weak_explicit(&l->x, &expect, 1, memory_order_acquire, memory_order_relaxed))
      return;
    if (spins < LOCK_SPINS) arch_pause();
    else os_yield();
  }
}
