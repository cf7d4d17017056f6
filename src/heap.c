/* heap.c: thread heaps, the allocation and free slow paths, pointer
 * validation, realloc, and the life of heaps across threads and fork.
 *
 * Life of a heap: made on a thread's first allocation (or an orphan is
 * adopted whole), ACTIVE while its thread lives; when the thread exits the
 * heap is collected and becomes an ORPHAN that still owns its chunks, so
 * every block it handed out stays valid and can be freed from anywhere
 * (those frees queue on its xremote list). Live threads collect orphans
 * (state BUSY while they do) when they need memory or trim, and the next
 * thread to start adopts an orphan instead of making a new heap. Heaps are
 * never unmapped: a heap pointer read from a span is always safe to use.
 *
 *   ACTIVE --thread exits--> ORPHAN --adopted--> ACTIVE
 *                            ORPHAN <--collected-- BUSY  (CAS ORPHAN->BUSY)
 *   ACTIVE or BUSY in a child after fork (not the forking thread's) --> DEAD
 *
 * A DEAD heap may have been in the middle of an update when fork copied it
 * (its thread does not exist in the child), so nothing ever adopts or
 * collects it: it is leaked, and frees of its blocks only queue on its
 * xremote list. Only the forking thread's heap and heaps that were ORPHAN
 * (consistent: every change to an orphan is made while it is BUSY) live on.
 *
 * After the thread's own teardown (our key's destructor ran), the thread
 * never gets a heap of its own again: a free sends the block straight to
 * its owner, an allocation takes a heap (adopted or new) for the one call
 * and abandons it before returning, so late destructors and
 * __libc_thread_freeres leave nothing behind. A thread whose first call
 * comes after our key's last chance (the last destructor round) gets a
 * heap whose destructor never runs: it stays ACTIVE until another thread
 * finds its owner gone (heaps_reclaim_gone) and abandons it.
 *
 * No locks (LZ_HEAPS == 0): heaps are carved from the meta arena (the first
 * is a static one) with one CAS, the list of all heaps is push-only
 * (readers follow next_all), states change by CAS or by their holder's
 * store.
 */
#include <errno.h>
#include <string.h>

#include "alloc.h" /* free's fast path, for free_parked */
#include "security.h"
#include "sizeclass.h"

/* The thread-local block (internal.h, lz_tls_t): the heap, its region,
 * and malloc's constant queue slots beside it. */
#define QUEUE_SLOT(c) 2 * (c),
__thread lz_tls_t lz_tls __attribute__((tls_model("initial-exec"))) = {
    .heap = LZ_HEAP_EMPTY,
    .queue_slot = {LZ_CLASS_HIGH_SLAB(QUEUE_SLOT)},
};
#undef QUEUE_SLOT

/* The calling thread's copy of heap h's region (lz_tls_t; h NULL: none). */
lz_text_hot static lz_noinline void region_tls(const heap_t *h) {
  lz_tls.rbase = h != NULL ? h->rbase : 0;
  lz_tls.rend = h != NULL ? h->rend : 0;
  lz_tls.rmap = h != NULL ? h->rmap : NULL;
}

/* Free's fast path counted HEAP_RWAIT frees into chunks of the calling
 * thread's heap by the chunk map (heap_t.rwait): its region gets its page
 * map now, start-up or not (chunk_region_map), and the thread sees it.
 * Holding the heap: its lock if free, else (the janitor has it) after
 * another HEAP_RWAIT such frees; with shared heaps the caller holds it. */
lz_text_hot lz_noinline void heap_region_start(heap_t *heap) {
  heap->rwait = HEAP_RWAIT;
  if (heap->rbase == 0 || heap->rmap != NULL) return;
  bool held = LZ_HEAPS != 0 || heap->lock_depth != 0;
  if (!held && !lz_trylock(&heap->lock)) return;
  chunk_region_map(heap, true);
  if (!held) lz_unlock(&heap->lock);
  region_tls(heap);
}

/* The calling thread's heap becomes h (LZ_HEAP_EMPTY: none): the one
 * writer of lz_heap_tls, whose fast_id free's fast path trusts
 * (heap_t.map_id), and of its region beside it (lz_tls_t; slow_leave
 * raises rend). */
static void heap_tls_set(heap_t *h) {
  lz_heap_tls = h;
  region_tls(h == LZ_HEAP_EMPTY ? NULL : h);
}

/* A fork child's heap until its first call (heap_fork_park), else NULL. */
static __thread heap_t *fork_parked __attribute__((tls_model("initial-exec")));
static heap_t *heap_fork_resume(void);
static void free_parked(void *p);

/* Heap ids handed out (heap_t.map_id): the next is CHUNK_HEAP_FIRST + this. */
lz_hot_alloc static _Atomic(unsigned) heap_ids_given;

lz_hot_alloc static _Atomic(heap_t *) heaps_all;         /* every heap ever made */
lz_hot_alloc static _Atomic(long) orphan_count;          /* a hint: heaps that are ORPHAN or BUSY */
static __thread bool thread_done __attribute__((tls_model("initial-exec")));

/* Every heap is carved with its remote batches right before it
 * (internal.h, heap_rbatch). */
typedef struct heap_block_s {
  remote_batch_t rbatch[LZ_REMOTE_SLOTS];
  heap_t heap;
} heap_block_t;
_Static_assert(offsetof(heap_block_t, heap) == LZ_RBATCH_BYTES, "heap_rbatch: the batches end where the heap starts");
/* cmake/layout.ld places the first heap's batches so that they end on a
 * page boundary: it counts them as 0x800 bytes. */
_Static_assert(LZ_RBATCH_BYTES == 0x800, "cmake/layout.ld: the first heap's batches are 0x800 bytes");

/* The process's first heap (its main thread's, or the first shared heap)
 * is static, in .data with the hot variables (internal.h, lz_hot): their
 * page is written by every process that allocates, so a small process
 * maps no meta region and pays no page fault for its heap. The link puts
 * its batches at the end of the page before (cmake/layout.ld), its fields
 * at the start of the page they share with the hot variables and the
 * start of .bss, which the loader writes anyway: a process that allocates
 * writes that one page of the library's data (the options' page only if
 * one is set, the batches only once it frees other threads' blocks), and
 * so does a fork child that frees and allocates. Later heaps come from
 * the meta arena. */
__attribute__((section(".data.lz_hot_heap"))) static heap_block_t heap_first_block
    __attribute__((aligned(LZ_CACHE_LINE)));
#define heap_first (heap_first_block.heap)
lz_hot_alloc static _Atomic(bool) heap_first_taken;

/* The meta arena: heaps are carved from 64 KiB regions that are never
 * unmapped, one every HEAP_STRIDE bytes, each with its fields at the start
 * of a page (its batches at the end of the page before, HEAP_LEAD bytes
 * into its stride): a thread's first calls write the heap's fields, one
 * page, where a heap across a page boundary cost a new thread a second
 * page fault (and a page of resident memory). xmeta packs the current region's base (page aligned, as every
 * mapping is: one system call to make a region) with the number of heaps
 * carved from it (low bits): carving is one CAS on xmeta;
 * a thread that maps a new region installs it with one CAS and, losing a
 * race, unmaps it and carves from the winner's. */
#define META_REGION ((size_t)64 * KiB)
#define HEAP_LEAD (LZ_PAGE_SIZE - LZ_RBATCH_BYTES)
#define HEAP_STRIDE ((HEAP_LEAD + sizeof(heap_block_t) + LZ_PAGE_SIZE - 1) & ~(LZ_PAGE_SIZE - 1))
_Static_assert(sizeof(heap_t) <= LZ_PAGE_SIZE, "a heap's fields fit in one page");
#define META_HEAPS (META_REGION / HEAP_STRIDE)
_Static_assert(META_HEAPS >= 1 && META_HEAPS < LZ_PAGE_SIZE, "heap count fits below the page alignment");
lz_hot_alloc static _Atomic(uintptr_t) xmeta;

/* Owners looked at (one system call each) before a new heap is made: a
 * few, so that a process starting threads by the thousand pays a few
 * microseconds per thread, while heaps left by threads that ended unseen
 * are still found before they pile up (each new heap looks at the next
 * few in the list). */
#define HEAP_RECLAIM_BUDGET 8

/* realloc to a smaller size keeps the block in place down to 1 /
 * REALLOC_SHRINK_COPY of its usable size, and copies into a smaller block
 * below that: half, so that a block never wastes more than it holds (as
 * glibc, which splits off the tail only when worth a chunk of its own). */
#define REALLOC_SHRINK_COPY 2

/* A medium block that realloc grew in place and now shrinks in place
 * gives its last pages back when they are at least 1 / MEDIUM_SHRINK_SLACK
 * of its pages (heap_realloc_in_place): it keeps a tail of under an
 * eighth, as hysteresis against a size that goes back and forth. */
#define MEDIUM_SHRINK_SLACK 8

/* malloc_trim's wait for an orphan that another thread holds for a moment
 * (BUSY): yields, at most this many (far more than one collection takes,
 * so only a holder that stopped, not a slow one, is given up on). */
#define ORPHAN_WAIT_YIELDS 100000

/* LZ_HEAPS > 0: the shared heaps, made on first use. */
static _Atomic(heap_t *) shared_heaps[LZ_HEAPS > 0 ? LZ_HEAPS : 1];
static _Atomic(unsigned) shared_next;
static lz_lock_t shared_lock = LZ_LOCK_INIT;

/* Bytes in the free lists of the heap's current spans (owner only):
 * slab.c's lists and remote.c's installed and kept foreign lists. */
size_t heap_cached_bytes(const heap_t *heap) {
  size_t bytes = 0;
  for (unsigned cls = 1; cls < LZ_CLASSES; cls++) {
    const span_t *s = heap->queues[cls].first;
    if (s != NULL) bytes += (size_t)slab_cached(s) * s->block_size;
    s = heap->foreign != NULL ? &heap->foreign[cls] : NULL;
    if (s != NULL && (s->flags & FOREIGN_CHARGED)) /* charged when installed or kept (remote.c) */
      bytes += (size_t)foreign_count(heap, cls, UINT32_MAX) * s->block_size;
  }
  return bytes;
}

heap_t *heaps_first(void) { return atomic_load_explicit(&heaps_all, memory_order_acquire); }

/* ---------------------------------------------------------------------------
 * Heap creation, adoption, abandonment
 * ------------------------------------------------------------------------- */
static heap_t *meta_heap_alloc(void) {
  bool taken = false;
  if (!atomic_load_explicit(&heap_first_taken, memory_order_relaxed) &&
      atomic_compare_exchange_strong_explicit(&heap_first_taken, &taken, true, memory_order_relaxed,
                                              memory_order_relaxed))
    return &heap_first; /* zero, as fresh memory is */
  uintptr_t w = atomic_load_explicit(&xmeta, memory_order_acquire);
  for (;;) {
    uintptr_t base = w & ~(uintptr_t)(LZ_PAGE_SIZE - 1), used = w & (LZ_PAGE_SIZE - 1);
    if (base != 0 && used < META_HEAPS) {
      if (atomic_compare_exchange_weak_explicit(&xmeta, &w, w + 1, memory_order_acq_rel, memory_order_acquire))
        return &((heap_block_t *)(base + used * HEAP_STRIDE + HEAP_LEAD))->heap;
      continue;
    }
    uint8_t *m = os_map(META_REGION);
    if (m == NULL) return NULL;
    if (atomic_compare_exchange_strong_explicit(&xmeta, &w, (uintptr_t)m | 1, memory_order_acq_rel,
                                                memory_order_acquire))
      return &((heap_block_t *)(m + HEAP_LEAD))->heap; /* fresh memory: every field zero */
    os_unmap(m, META_REGION);
  }
}

/* owner: os_thread_ident of the thread whose own heap it is, 0 for a
 * temporary or shared heap (xowner in internal.h). */
lz_text_hot static heap_t *heap_new(uint64_t owner) {
  heap_t *h = meta_heap_alloc();
  if (h == NULL) return NULL;
  for (size_t i = 0; i < LZ_DIRECT_SLOTS; i++) h->direct[i] = LZ_SPAN_EMPTY;
  h->map_id = CHUNK_SPANS;
  h->rwait = HEAP_RWAIT;
  h->fkeep = (span_t **)(uintptr_t)lz_fkeep_none; /* read only: foreign_init maps the heap's own */
  h->purge_wake = UINT64_MAX; /* nothing to purge yet: no clock reading (purge.c, "Clock") */
  if (!lz_secure2 && atomic_load_explicit(&heap_ids_given, memory_order_relaxed) <= CHUNK_HEAP_LAST - CHUNK_HEAP_FIRST) {
    unsigned id = CHUNK_HEAP_FIRST + atomic_fetch_add_explicit(&heap_ids_given, 1, memory_order_relaxed);
    if (id <= CHUNK_HEAP_LAST) h->map_id = (uint8_t)id;
  }
  h->fast_id = h->map_id >= CHUNK_HEAP_FIRST ? h->map_id : (uint8_t)CHUNK_HEAP_NONE;
  atomic_store_explicit(&h->xowner, owner, memory_order_relaxed);
  atomic_store_explicit(&h->xstate, HEAP_ACTIVE, memory_order_relaxed);
  heap_t *head = atomic_load_explicit(&heaps_all, memory_order_relaxed);
  do {
    h->next_all = head;
    /* Start-up classes (slab.c) for the process's first heap only: a
     * small program's, inherited by its fork children. */
    h->startup = head == NULL && LZ_HEAPS == 0 && !lz_secure2;
  } while (!atomic_compare_exchange_weak_explicit(&heaps_all, &head, h, memory_order_release,
                                                  memory_order_relaxed));
  return h;
}

/* Holding an orphan (ORPHAN -> BUSY, one CAS: whoever wins has it whole)
 * and giving it back (BUSY -> ORPHAN, after every change to it). */
bool heap_hold_orphan(heap_t *h) {
  int expect = HEAP_ORPHAN;
  return atomic_compare_exchange_strong_explicit(&h->xstate, &expect, HEAP_BUSY, memory_order_acquire,
                                                 memory_order_relaxed);
}

void heap_release_orphan(heap_t *h) { atomic_store_explicit(&h->xstate, HEAP_ORPHAN, memory_order_release); }

/* Thread churn. A thread that exits leaves its heap, warm, for the next
 * thread to start; an orphan nobody adopts within its delay is collected
 * whole (its pages purged, its current slabs freed). A program that runs
 * rounds of threads adopts its orphans again a little later each round
 * than a fixed delay allows, and would fault every page back in. So each
 * heap's delay as an orphan is the purge delay << orphan_shift: when it
 * was adopted after being collected whole (too short: the next thread
 * came), twice what that wait needed; one less when it was adopted within
 * a quarter of its delay (long enough by far); at most LZ_DECAY_SHIFT_MAX
 * (1.28 s by default). */
static uint64_t orphan_idle_at(const heap_t *h) {
  long delay = opt_get(OPT_PURGE_DELAY);
  return delay < 0 ? UINT64_MAX : h->abandoned_at + ((uint64_t)delay << h->orphan_shift);
}

/* The adopter holds h (BUSY). */
static void orphan_adopted(heap_t *h) {
  long delay = opt_get(OPT_PURGE_DELAY);
  if (delay <= 0 || (!h->orphan_purged && h->orphan_shift == 0)) return;
  uint64_t waited = heap_now(h) - h->abandoned_at;
  if (h->orphan_purged) {
    /* Long enough for this wait, with room to spare (one more shift). */
    h->orphan_purged = 0;
    while (h->orphan_shift < LZ_DECAY_SHIFT_MAX && ((uint64_t)delay << h->orphan_shift) <= waited) h->orphan_shift++;
    if (h->orphan_shift < LZ_DECAY_SHIFT_MAX) h->orphan_shift++;
  } else if (waited < ((uint64_t)delay << (h->orphan_shift - 1)) / 2) {
    h->orphan_shift--;
  }
}

/* An orphan that another thread holds (BUSY: the janitor or a purge tick
 * collecting it, a thread adopting it) when a thread starts is waited for,
 * up to ADOPT_WAIT_MS: a collection takes far less, and the heap made
 * instead would fault in pages of its own while the orphan's stay mapped
 * (mstress, threads started in rounds: one start in about 120 met its
 * orphan held by a collector, and each such run peaked 2-4 MiB higher). */
#define ADOPT_WAIT_MS 10
_Atomic(unsigned long) lz_adopt_waits;
uint64_t lz_adopt_wait_ms = ADOPT_WAIT_MS;
lz_hot_alloc bool lz_pack_threads_off; /* beside the hot variables: read by every new heap */

/* With NUMA, only an orphan at home on the caller's node: its chunks are
 * there. The heap passes through BUSY so that its new owner is published
 * (release) with the state ACTIVE: heaps_reclaim_gone reads them in that
 * order. */
lz_text_thread static lz_noinline heap_t *heap_adopt_orphan(uint64_t owner) {
  unsigned node = lz_unlikely(lz_numa_on) ? numa_current_node() : 0;
  uint64_t wait_until = 0;
  while (atomic_load_explicit(&orphan_count, memory_order_relaxed) > 0) {
    bool held = false;
    for (heap_t *h = heaps_first(); h != NULL; h = h->next_all) {
      if (lz_unlikely(lz_numa_on) && h->numa_home != node) continue;
      if (heap_hold_orphan(h)) {
        atomic_fetch_sub_explicit(&orphan_count, 1, memory_order_relaxed);
        orphan_adopted(h);
        h->purge_next = 0;
        /* No janitor pass looks at an orphan's cache: its next span notifies. */
        atomic_store_explicit(&h->xmcache_watch, 0, memory_order_relaxed);
        atomic_store_explicit(&h->xowner, owner, memory_order_relaxed);
        atomic_store_explicit(&h->xstate, HEAP_ACTIVE, memory_order_release);
        return h;
      }
      /* Held, or let go since the exchange failed (ORPHAN again: its
       * holder finished between the two reads): either way, try again. */
      int st = atomic_load_explicit(&h->xstate, memory_order_relaxed);
      held |= st == HEAP_BUSY || st == HEAP_ORPHAN;
    }
    if (!held) break;
    /* Yields for the first millisecond (a collection's usual length),
     * then sleeps: a holder descheduled by a loaded machine may take the
     * whole wait, which the waiter need not spend on the CPU. */
    uint64_t now = os_now_ms();
    if (wait_until == 0) {
      wait_until = now + lz_adopt_wait_ms;
      atomic_fetch_add_explicit(&lz_adopt_waits, 1, memory_order_relaxed);
    } else if (now >= wait_until) {
      break;
    }
    if (now + lz_adopt_wait_ms - 1 > wait_until) os_sleep_ms(1);
    else os_yield();
  }
  return NULL;
}

static heap_t *shared_heap_assign(void) {
  unsigned i = atomic_fetch_add_explicit(&shared_next, 1, memory_order_relaxed) % (LZ_HEAPS > 0 ? LZ_HEAPS : 1);
  heap_t *h = atomic_load_explicit(&shared_heaps[i], memory_order_acquire);
  if (h == NULL) {
    lz_lock(&shared_lock);
    h = atomic_load_explicit(&shared_heaps[i], memory_order_relaxed);
    if (h == NULL) {
      h = heap_new(0);
      if (h != NULL && lz_unlikely(lz_numa_on)) numa_heap_start(h);
      atomic_store_explicit(&shared_heaps[i], h, memory_order_release);
    }
    lz_unlock(&shared_lock);
  }
  return h;
}

/* The calling thread's heap, made or adopted on its first call; NULL if
 * none can be had (out of memory) or the thread is past its teardown. */
lz_text_hot heap_t *heap_get_slow(void) {
  heap_t *h = lz_heap_tls;
  if (h != LZ_HEAP_EMPTY) return h;
  process_init(); /* allocates nothing */
  if (lz_unlikely(fork_parked != NULL)) return heap_fork_resume(); /* a fork child's first call */
  if (LZ_HEAPS > 0) {
    h = shared_heap_assign();
    if (h != NULL) heap_tls_set(h);
    return h;
  }
  if (thread_done) return NULL;
  uint64_t self = os_thread_ident();
  /* Orphans only come from threads that ended (or a fork of a process
   * that had them): a process that never had a second thread does not run
   * that code (thread text). */
  h = atomic_load_explicit(&orphan_count, memory_order_relaxed) > 0 ? heap_adopt_orphan(self) : NULL;
  /* Before making one more heap: any of a thread that ended unseen? */
  if (h == NULL && heaps_reclaim_gone(HEAP_RECLAIM_BUDGET) > 0) h = heap_adopt_orphan(self);
  if (h == NULL) {
    h = heap_new(self);
    if (h == NULL) return NULL;
    if (lz_unlikely(lz_numa_on)) numa_heap_start(h);
    if (!h->startup && !lz_pack_threads_off) slab_pack_arm(h); /* its first blocks packed (slab.c, "Packing armed") */
  }
  heap_tls_set(h);
  /* Our thread-exit hook: in vain (EINVAL) before init.c made the key (a
   * call from a constructor before ours; this thread's heap is armed then,
   * another thread's is found by heaps_reclaim_gone once it has ended). */
  os_thread_exit_arm(h);
  return h;
}

/* A heap for one allocation by a thread past its teardown (abandoned again
 * by slow_leave). */
static heap_t *heap_take_temporary(void) {
  if (LZ_HEAPS > 0 || !thread_done) return NULL;
  heap_t *h = heap_adopt_orphan(0);
  if (h == NULL) {
    h = heap_new(0);
    if (h != NULL && lz_unlikely(lz_numa_on)) numa_heap_start(h);
  }
  return h;
}

/* How a purge treats holes in slabs (slab.c, "Holes"): not at all (an
 * orphan expected back soon: see orphan_collect), on their schedule
 * (purge_heap_holes), or every slab's idle pages now. */
enum { HOLES_NONE = 0, HOLES_DUE = 1, HOLES_ALL = 2 };

/* Everything of the heap that is due (all of it if force): idle cached
 * medium spans, holes in idle slabs (as `holes` says), kept empty chunks
 * and the chunks' free pages (purge.c has their timing, pages.c the page
 * state). The caller holds the heap
 * (lock or BUSY); exclusive: no other thread can be in the heap's fast
 * paths (the caller owns it, or it is an orphan, or a shared heap), so a
 * free list's head may be rewritten (slab.c, "Holes"). Returns when something next falls due,
 * UINT64_MAX if nothing will. */
lz_text_hot static uint64_t heap_purge(heap_t *heap, bool force, int holes, bool exclusive, uint64_t now) {
  bool holder = heap == lz_heap_tls;
  /* Spare slabs first: a chunk may empty (slab.c, "Spare slabs"). */
  if (heap->spare_classes != 0) slab_spares_look(heap, now);
  else atomic_store_explicit(&heap->slab_taken, 0, memory_order_relaxed);
  if (exclusive && !holder) medium_front_flush(heap, force, now); /* an orphan's (the holder's: below) */
  medium_cache_flush(heap, holder, force, now);
  uint64_t next = medium_cache_due(heap);
  uint64_t due = holes == HOLES_NONE ? UINT64_MAX : purge_heap_holes(heap, holes == HOLES_ALL, exclusive, now);
  if (due < next) next = due;
  due = purge_heap(heap, force, now);
  return due < next ? due : next;
}

/* ---------------------------------------------------------------------------
 * Heartbeat. A thread in a steady loop of one size never enters a slow
 * path (free pushes on the list malloc pops: span.front), so it never
 * ticks, and the blocks of other heaps it holds (its batches, its foreign
 * lists) would wait for as long as the loop lasts. The owner raises xowed
 * when it starts holding such blocks (remote.c) and its tick lowers it
 * when none are left. The janitor's pass nudges a heap it can lock that
 * owes blocks and has not ticked for LZ_HEARTBEAT_MS: xfast_cap 0 in the
 * first span of every class queue, so the owner's next free into one of
 * them goes slow (free_page_general), ticks there at once, sends all it
 * holds and restores them (heap_beat). The fast paths are unchanged: the
 * nudge uses the check free makes anyway. Only the janitor and the owner
 * holding the heap lock write a first span's xfast_cap. An owner that
 * does not call the allocator is nudged LZ_NUDGES times at most until it
 * ticks again (an idle process sees no periodic wake-ups). Bound: a
 * block waits at most LZ_HEARTBEAT_MS plus the janitor's latency (its
 * pass every JANITOR_MIN_MS at most) while its holder keeps freeing.
 * ------------------------------------------------------------------------- */
#define LZ_HEARTBEAT_MS 100
#define LZ_NUDGES 4

/* The janitor's, heap lock held: nudges h if due. Returns when to look
 * again (wall ms; UINT64_MAX: no need). */
static uint64_t heap_heartbeat(heap_t *h, uint64_t now) {
  if (!atomic_load_explicit(&h->xowed, memory_order_relaxed)) {
    h->nudges = 0;
    return UINT64_MAX;
  }
  if (h->nudges >= LZ_NUDGES) return UINT64_MAX;
  uint64_t at = h->slow_clock + LZ_HEARTBEAT_MS * (1u + h->nudges);
  if (now < at) return at;
  atomic_store_explicit(&h->xnudged, 1, memory_order_relaxed);
  for (unsigned cls = 1; cls < LZ_CLASSES; cls++) {
    span_t *s = h->queues[cls].first;
    if (s != NULL) atomic_store_explicit(&s->xfast_cap, 0, memory_order_relaxed);
  }
  h->nudges++;
  return h->nudges < LZ_NUDGES ? now + LZ_HEARTBEAT_MS : UINT64_MAX;
}

/* The owner's, heap lock held, at a tick of a nudged heap: all it holds
 * sent, the nudge undone. Out of line and out of the hot text. */
lz_text_thread static lz_noinline void heap_unnudge(heap_t *heap) {
  remote_flush_all(heap);
  atomic_store_explicit(&heap->xnudged, 0, memory_order_relaxed);
  for (unsigned cls = 1; cls < LZ_CLASSES; cls++) {
    span_t *s = heap->queues[cls].first;
    if (s != NULL)
      atomic_store_explicit(&s->xfast_cap, s->flags & (SPAN_FULL | SPAN_HOLES) ? 0u : s->capacity, memory_order_relaxed);
  }
}

/* The owner's, heap lock held, at a tick of a heap that owed blocks:
 * xowed lowered if none is left. */
lz_text_thread static lz_noinline void heap_owed_check(heap_t *heap) {
  heap->nudges = 0;
  if (heap->rbatch_pending == 0 && !foreign_any(heap)) atomic_store_explicit(&heap->xowed, 0, memory_order_relaxed);
}

/* At a tick (heap lock held): the heartbeat's part. */
lz_inline void heap_beat(heap_t *heap) {
  if (lz_unlikely(atomic_load_explicit(&heap->xnudged, memory_order_relaxed))) heap_unnudge(heap);
  if (lz_unlikely(atomic_load_explicit(&heap->xowed, memory_order_relaxed))) heap_owed_check(heap);
}

/* Collects remote frees, gives idle medium spans back, and purges what is
 * due at `now` (heap_purge; the heap's clock); with force, also flushes
 * our own remote batches, frees the (empty) current slab of each class and
 * purges everything. Returns when something next falls due (heap_purge). */
lz_text_thread static uint64_t collect(heap_t *heap, bool force, int holes, uint64_t now) {
  heap_enter(heap);
  if (force) {
    foreign_flush(heap, FOREIGN_FLUSH_ALL);
    remote_flush_all(heap);
  }
  if (lz_unlikely(heap->secure != NULL)) secure_collect(heap, force); /* cold text: not called for nothing */
  remote_collect(heap);
  for (unsigned cls = 1; cls < LZ_CLASSES; cls++) {
    span_queue_t *q = &heap->queues[cls];
    /* Only the first span (its pin) and the class's spare can be empty
     * and still linked. */
    if (force) slab_spare_release(heap, cls);
    span_t *s = q->first;
    if (force && s != NULL && s->used == 1 + slab_cached(s)) {
      slab_uncache(heap, s);
      queue_remove(heap, q, s); /* drops the pin: used == 0 */
      span_free(heap, s);
    }
  }
  uint64_t next = heap_purge(heap, force, holes, true, now);
  heap_leave(heap);
  return next;
}

/* With force, the slabs' holes are punched at once too (malloc_trim,
 * memory short); an idle orphan collected whole (collect) has them
 * punched on their own schedule: walking every free list on every tick
 * would cost more than it gives. */
void heap_collect(heap_t *heap, bool force) { collect(heap, force, force ? HOLES_ALL : HOLES_DUE, heap_now(heap)); }

/* The owning thread is exiting. Its memory is not purged here: a thread
 * starting soon adopts the heap with its pages still warm (thread churn
 * costs no system call), and live threads purge orphans left idle for
 * their delay (orphan_idle_at; heaps_collect_orphans from their purge
 * ticks). */
lz_text_thread void heap_abandon(heap_t *heap) {
  if (heap == NULL || heap == LZ_HEAP_EMPTY) return;
  lz_assert(atomic_load_explicit(&heap->xstate, memory_order_relaxed) != HEAP_ORPHAN);
  /* Free lists back to local_free, and foreign blocks home but those of
   * idle owners that are live threads' heaps, which the heap keeps for its
   * next thread (remote.c, "Idle owners"; they go home if the orphan is
   * collected whole). The figures stay exact (stats.in_use). */
  foreign_flush(heap, FOREIGN_FLUSH_EXIT);
  for (unsigned cls = 1; cls < LZ_CLASSES; cls++)
    if (heap->queues[cls].first != NULL) slab_uncache(heap, heap->queues[cls].first);
  remote_flush_all(heap);
  /* A packed span still open (slab.c, "Packing armed") closes: its pages
   * go back to the chunk with its last block, not with the heap's next
   * thread, whose warm heap needs no packing. */
  if (heap->pack_armed) {
    pack_close(heap);
    slab_pack_end(heap);
  }
  heap_enter(heap);
  heap_beat(heap); /* no nudge left in an orphan */
  heap_leave(heap);
  if (lz_unlikely(heap->secure != NULL)) secure_collect(heap, true); /* the quarantine is the thread's */
  collect(heap, false, HOLES_NONE, heap_now(heap)); /* holes: see orphan_collect */
  heap_enter(heap); /* the clock's fields are under the heap lock (the janitor syncs them) */
  heap->abandoned_at = heap_now(heap);
  heap->wait_seen_ns = 0; /* no owner: its clock runs with the wall clock */
  heap_leave(heap);
  if (lz_heap_tls == heap) heap_tls_set(LZ_HEAP_EMPTY);
  atomic_store_explicit(&heap->xowner, 0, memory_order_relaxed);
  atomic_fetch_add_explicit(&orphan_count, 1, memory_order_relaxed);
  atomic_store_explicit(&heap->xstate, HEAP_ORPHAN, memory_order_release);
}

/* Our thread key's destructor: from now on this thread makes no heap of
 * its own (see the top of the file). */
void heap_thread_exit(heap_t *heap) {
  thread_done = true;
  heap_abandon(heap);
}

/* A thread's own heap is abandoned by our thread key's destructor. A
 * thread whose first call comes too late for it (in the last round of key
 * destructors, or in __libc_thread_freeres after them) arms the key in
 * vain, and its heap would stay ACTIVE for ever. So a heap records its
 * owner (xowner); one still ACTIVE whose owner is gone is abandoned here on
 * its behalf (nothing of that thread can run any more) and becomes an
 * orphan like any other. Looks at the owners of at most `budget` heaps (a
 * system call each) from where the last look stopped, or of every heap if
 * budget is 0. Returns how many were abandoned. */
lz_text_hot size_t heaps_reclaim_gone(unsigned budget) {
  /* Heaps are never unmapped: always valid. With the hot variables (a
   * page of its own would cost every process a fault, and its write a
   * fork child a page copy), written only when it moves. */
  lz_hot_alloc static _Atomic(heap_t *) cursor;
  if (LZ_HEAPS > 0) return 0;
  heap_t *first = heaps_first();
  heap_t *seen = budget == 0 ? NULL : atomic_load_explicit(&cursor, memory_order_relaxed);
  heap_t *h = seen == NULL ? first : seen;
  heap_t *start = h;
  size_t n = 0;
  unsigned looked = 0;
  while (h != NULL && (budget == 0 || looked < budget)) {
    /* Acquire: the owner of an adopted heap was stored before its state. */
    uint64_t owner = 0;
    if (atomic_load_explicit(&h->xstate, memory_order_acquire) == HEAP_ACTIVE)
      owner = atomic_load_explicit(&h->xowner, memory_order_relaxed);
    if (owner != 0 && h != lz_heap_tls) {
      looked++;
      int expect = HEAP_ACTIVE;
      if (os_thread_gone(owner) &&
          atomic_compare_exchange_strong_explicit(&h->xstate, &expect, HEAP_BUSY, memory_order_acquire,
                                                  memory_order_relaxed)) {
        /* Held now (BUSY). Still that owner's, and still gone: not
         * abandoned and adopted again meanwhile, by a thread that may even
         * have been given the same id? Else it goes back as it was. */
        if (atomic_load_explicit(&h->xowner, memory_order_relaxed) == owner && os_thread_gone(owner)) {
          heap_abandon(h);
          n++;
        } else {
          expect = HEAP_BUSY;
          atomic_compare_exchange_strong_explicit(&h->xstate, &expect, HEAP_ACTIVE, memory_order_release,
                                                  memory_order_relaxed);
        }
      }
    }
    h = h->next_all;
    if (h == NULL && budget != 0 && start != first) h = first; /* wrap once */
    if (h == start) break;
  }
  if (budget != 0 && h != seen) atomic_store_explicit(&cursor, h, memory_order_relaxed);
  return n;
}

/* An orphan held by the caller, collected in three stages of its clock
 * (heap_now; an orphan's runs with the wall clock):
 *   within its delay (orphan_idle_at): remote frees, and its free pages
 *     decay on their own schedule (purge.c); its slabs are not looked at
 *     for holes: the orphan is expected back (its delay is the one its
 *     adoptions taught it, orphan_adopted), and the next thread would
 *     fault the punched pages in again while the orphan, which allocates
 *     nothing, could not tell the holes' own refault backoff (purge.c,
 *     "Refaults") that they were wanted;
 *   idle past it: the same, and holes on their schedule; counted as idle
 *     (orphan_purged: its next adoption lengthens the delay);
 *   idle ORPHAN_WHOLE_MS past it, or force (malloc_trim, memory short):
 *     collected whole (its current slabs freed, every free page and kept
 *     chunk given back; holes all punched if idle_holes or force).
 * Collecting an orphan whole as soon as its delay passed gave back pages
 * the next round of threads was about to take (rptest: 40-56 % of the
 * pages it purged were orphans' collected whole at 10 ms, a gap between
 * two rounds of threads that a loaded machine easily stretches); the
 * decay gives them back as it would a live heap's, and all of it goes
 * back within a second and a quarter of the idle stage anyway.
 * Returns when to look again (heap time), UINT64_MAX once collected whole. */
#define ORPHAN_WHOLE_MS 1000
lz_text_thread static uint64_t orphan_collect(heap_t *h, bool force, bool idle_holes, uint64_t now) {
  uint64_t idle_at = orphan_idle_at(h);
  bool idle = now >= idle_at;
  bool whole = force || (idle && now - idle_at >= ORPHAN_WHOLE_MS);
  int holes = whole && (force || idle_holes) ? HOLES_ALL : idle ? HOLES_DUE : HOLES_NONE;
  uint64_t next = collect(h, whole, holes, now);
  if (idle && !force) h->orphan_purged = 1;
  if (whole) {
    /* No thread sees an orphan's region (lz_tls_t): its waiting chunks'
     * map pages may go. */
    heap_enter(h);
    chunk_region_trim(h);
    heap_leave(h);
    return UINT64_MAX;
  }
  uint64_t stage = idle ? idle_at + ORPHAN_WHOLE_MS : idle_at;
  return stage < next ? stage : next;
}

/* heaps_collect_orphans' work once there are orphans: a process that
 * never ran a second thread has none (lz_text_thread). */
lz_text_thread static lz_noinline size_t orphans_collect(bool force) {
  size_t n = 0;
  for (heap_t *h = heaps_first(); h != NULL; h = h->next_all) {
    int st = atomic_load_explicit(&h->xstate, memory_order_relaxed);
    /* malloc_trim must not miss an orphan another thread (the janitor, a
     * purge tick) holds for a moment: wait for it, boundedly. */
    for (unsigned tries = 0; force && st == HEAP_BUSY && tries < ORPHAN_WAIT_YIELDS; tries++) {
      os_yield();
      st = atomic_load_explicit(&h->xstate, memory_order_relaxed);
    }
    if (st != HEAP_ORPHAN || !heap_hold_orphan(h)) continue;
    orphan_collect(h, force, false, heap_now(h));
    heap_release_orphan(h);
    n++;
  }
  return n;
}

/* Collects the remote frees and empty spans of every orphan heap nobody
 * holds; orphans idle past their delay (orphan_idle_at; or all, if force)
 * are purged completely. Returns how many orphans were collected. */
lz_text_hot size_t heaps_collect_orphans(bool force) {
  if (LZ_HEAPS > 0) {
    /* Shared heaps have no orphans; collect the ones nobody holds now. */
    size_t n = 0;
    for (int i = 0; i < LZ_HEAPS; i++) {
      heap_t *h = atomic_load_explicit(&shared_heaps[i], memory_order_acquire);
      if (h == NULL || h == lz_heap_tls || !lz_trylock(&h->lock)) continue;
      heap_collect(h, force);
      lz_unlock(&h->lock);
      n++;
    }
    return n;
  }
  if (atomic_load_explicit(&orphan_count, memory_order_relaxed) <= 0) return 0;
  return orphans_collect(force);
}

/* The janitor's visit of every heap: a live heap whose lock it can take
 * has what is due purged (see the janitor protocol in internal.h); an
 * orphan nobody holds is collected like heaps_collect_orphans does.
 * Returns when something next falls due (UINT64_MAX: nothing pending). */
static uint64_t heaps_purge_background(uint64_t now) {
  uint64_t next = UINT64_MAX;
  for (heap_t *h = heaps_first(); h != NULL; h = h->next_all) {
    uint64_t due = UINT64_MAX;
    int state = atomic_load_explicit(&h->xstate, memory_order_acquire);
    if (state == HEAP_ACTIVE) {
      /* Level 2: other threads change a live heap's spans under its secure
       * lock (secure.c); the janitor leaves live heaps to their owners. */
      if (lz_secure2) continue;
      if (!lz_trylock(&h->lock)) {
        due = now; /* its owner is in a slow path: next pass */
      } else {
        /* The owner's waits for a CPU delay its purge (purge.c, "Clock"). */
        uint32_t tid = (uint32_t)atomic_load_explicit(&h->xowner, memory_order_relaxed);
        if (tid != 0) purge_clock_sync(h, tid, now);
        uint64_t hnow = heap_time(h, now);
        due = heap_purge(h, false, HOLES_DUE, LZ_HEAPS > 0, hnow);
        h->purge_wake = due;
        /* Spare slabs: looked at again (not a purge: purge_wake, which
         * sets when the owner reads its clock, leaves them out). */
        if (h->spare_classes != 0 && h->spare_look_at < due) due = h->spare_look_at;
        uint64_t collapse = purge_heap_collapse(h, hnow);
        if (collapse < due) due = collapse;
        uint64_t watch = medium_cache_watch(h, hnow);
        if (watch < due) due = watch;
        due = heap_wall(h, due);
        uint64_t beat = heap_heartbeat(h, now);
        if (beat < due) due = beat;
        lz_unlock(&h->lock);
      }
    } else if (state == HEAP_ORPHAN) {
      if (!heap_hold_orphan(h)) continue;
      due = heap_wall(h, orphan_collect(h, false, true, heap_time(h, now)));
      heap_release_orphan(h);
    }
    if (due < next) next = due;
  }
  return next;
}

/* The janitor's pass (janitor.c): every heap it can take, then the pool and
 * the large cache. Returns when to look again, UINT64_MAX if nothing is
 * pending anywhere. */
lz_text_thread uint64_t heaps_background_pass(void) {
  long delay = opt_get(OPT_PURGE_DELAY);
  if (delay < 0) return UINT64_MAX;
  uint64_t now = os_now_ms();
  uint64_t next = heaps_purge_background(now);
  chunk_pool_trim(false);
  large_cache_trim(false);
  if ((!chunk_pool_empty() || !large_cache_empty()) && now + (uint64_t)delay < next) next = now + (uint64_t)delay;
  return next;
}

/* malloc_trim: everything idle that this thread may touch goes back.
 * Returns the bytes given back. */
size_t heaps_trim(bool force) {
  size_t before = (size_t)atomic_load(&lz_pages_purged);
  heap_t *heap = lz_heap_tls;
  /* First the heaps of threads that ended unseen: abandoning them sends
   * their batches home, some of them to us. */
  if (force) heaps_reclaim_gone(0);
  /* Orphans first too: they may keep blocks of this heap's (remote.c,
   * "Idle owners"), which collecting them whole sends home. */
  if (force) heaps_collect_orphans(force);
  if (heap != LZ_HEAP_EMPTY) {
    heap_collect(heap, force);
    if (force && heap->rmap != NULL) {
      heap_enter(heap);
      chunk_region_trim(heap);
      heap_leave(heap);
      region_tls(heap); /* rend lowered, before any free of this thread */
    }
  }
  heaps_collect_orphans(force);
  size_t freed = chunk_pool_trim(force) + large_cache_trim(force);
  if (force && heap != LZ_HEAP_EMPTY) { /* after its own give-backs (chunk.c, Populate) */
    heap_enter(heap);
    heap->populate_budget = 0;
    heap_leave(heap);
  }
  return freed + ((size_t)atomic_load(&lz_pages_purged) - before) * LZ_PAGE_SIZE;
}

/* The owner's purge tick (its heap lock held): what is due in its heap,
 * the pool, the large cache and the orphans, at most every half delay. */
lz_text_hot static void heap_purge_tick(heap_t *heap) {
  uint64_t now = os_now_ms();
  heap->slow_clock = now;
  atomic_store_explicit(&heap->xtick_ms, (uint32_t)now, memory_order_relaxed); /* remote.c, "Idle owners" */
  if (now < heap->purge_next) return;
  long delay = opt_get(OPT_PURGE_DELAY);
  heap->purge_next = now + (uint64_t)(delay > 1 ? delay / 2 : 1);
  if (delay < 0) return;
  /* None set (a fork child's heap: heap_fork_resume): a period from now. */
  if (lz_unlikely(heap->firsts_look_at == UINT64_MAX)) heap->firsts_look_at = slab_firsts_next(now);
  purge_clock_sync(heap, 0, now); /* purge.c, "Clock" */
  heap->purge_wake = heap_purge(heap, false, HOLES_DUE, true, heap_time(heap, now));
  chunk_pool_trim(false);
  large_cache_trim(false);
  heaps_collect_orphans(false);
}

/* In the child after fork: only the forking thread survives. Every other
 * heap that was ACTIVE or BUSY may have been mid-update at the instant of
 * fork: it becomes DEAD (leaked). Orphans were consistent and stay
 * adoptable. Runs without locks, so it may run in the child of a fork made
 * by a signal handler that interrupted this thread anywhere in lzmalloc:
 * self's own state is completed by the interrupted call when the handler
 * returns (a heap this thread was adopting or collecting at that instant is
 * marked DEAD here and then finished and used or released by it). */
void heaps_fork_child(heap_t *self) {
  long orphans = 0;
  for (heap_t *h = heaps_first(); h != NULL; h = h->next_all) {
    int st = atomic_load_explicit(&h->xstate, memory_order_relaxed);
    if (h != self && (st == HEAP_ACTIVE || st == HEAP_BUSY))
      atomic_store_explicit(&h->xstate, HEAP_DEAD, memory_order_relaxed);
    else if (st == HEAP_ORPHAN)
      orphans++;
  }
  /* Only if it changed: the child of a single-threaded process writes
   * nothing here, and its copy of this page stays shared. */
  if (atomic_load_explicit(&orphan_count, memory_order_relaxed) != orphans)
    atomic_store_explicit(&orphan_count, orphans, memory_order_relaxed);
}

/* In the child after fork, the handler's last step: the thread's heap is
 * set aside, the thread left with none, so that the child's first call
 * (any malloc or free: every path of a thread without a heap reaches
 * heap_get_slow before it needs one) takes it back and packs the child's
 * first blocks (slab.c, "Packing armed"). Only thread-local variables are
 * written: a child that calls nothing (an exec) copies no page of ours. */
void heap_fork_park(heap_t *self) {
  /* Only a heap whose first blocks the child would pack (slab.c,
   * slab_pack_arm): a heap still in start-up is left as it is, its first
   * call then on the fast path as in the parent. */
  if (LZ_HEAPS > 0 || lz_secure2 || self == NULL || self->startup || self->pack != NULL) return;
  fork_parked = self;
  heap_tls_set(LZ_HEAP_EMPTY);
}

/* The fork child's first call: its heap back, its first blocks packed. */
lz_text_hot static lz_noinline heap_t *heap_fork_resume(void) {
  heap_t *h = fork_parked;
  fork_parked = NULL;
  /* The idle-slab look (slab.c, slab_firsts_look) comes a whole period
   * after the child's first tick, by the child's clock (heap_purge_tick
   * sets the time then: UINT64_MAX is "none set"; the clock is not read
   * here, a child that never ticks reads it never). The parent's
   * schedule, overdue in a child whose parent last looked a period ago,
   * ran the look at the child's first ticks, which walked and wrote the
   * free lists of every class's first span, the parent's pages, copied
   * then (bench forkpool, a threaded parent's short-lived workers: 5.3 %
   * of the CPU samples in slab_firsts_look, the copies and faults beside;
   * fork_pages look). Before, the parent's look time was kept, moved up
   * to its clock when overdue, which a child's first tick passed all the
   * same (bench run --reps 5, 2026-12-08, before -> now: forkpool 906 ->
   * 858 us of CPU a worker, glibc 824; faults 123.7 -> 121.5, glibc
   * 123.4; forkstorm's fork children 31.9 faults either way). Nor does
   * the first tick run the late text of a look (fork_pages text_purge). */
  h->firsts_look_at = UINT64_MAX;
  heap_tls_set(h);
  slab_pack_arm(h);
  return h;
}

/* A free (of a block of our chunks: free_page_other) while the thread's
 * heap is set aside, in a fork child that has not allocated yet: made by
 * free's fast path with the heap in lz_tls for this call alone, so that
 * a child that frees and execs (a shell's) writes the blocks' pages and
 * their spans' as before, not the heap's page (its first allocation takes
 * the heap back and arms the packing, which writes it). */
lz_text_hot static lz_noinline void free_parked(void *p) {
  heap_t *h = fork_parked;
  heap_tls_set(h);
  free_fast(p);
  if (lz_heap_tls == h) heap_tls_set(LZ_HEAP_EMPTY);
}

heap_t *heap_fork_self(void) { return lz_heap_tls != LZ_HEAP_EMPTY ? lz_heap_tls : fork_parked; }

/* In the child after fork: h may have been mid-update (a lock of it was
 * taken at the instant of fork): DEAD for ever, and no longer this
 * thread's heap or a shared heap (a fresh one is made on demand). */
void heap_retire(heap_t *h) {
  atomic_store_explicit(&h->xstate, HEAP_DEAD, memory_order_relaxed);
  if (lz_heap_tls == h) heap_tls_set(LZ_HEAP_EMPTY);
#if LZ_HEAPS > 0 /* GCC's link-time pass warned of the empty loop's store */
  for (int i = 0; i < LZ_HEAPS; i++) {
    heap_t *expect = h;
    atomic_compare_exchange_strong_explicit(&shared_heaps[i], &expect, NULL, memory_order_relaxed,
                                            memory_order_relaxed);
  }
#endif
}

/* Level 2 in the child after fork: a heap whose secure lock was taken at
 * the instant of fork was being changed (secure.c, "Locking"): retired. */
void heaps_fork_child_secure(void) {
  for (heap_t *h = heaps_first(); h != NULL; h = h->next_all)
    if (secure_locked(h)) heap_retire(h);
}

/* Shared heaps (LZ_HEAPS > 0) in the child after fork. No lock is held
 * across fork, so a shared heap whose lock is taken in the child was being
 * changed by some thread at the instant of fork (a vanished one, or this
 * one from inside a signal handler): it is retired (DEAD, leaked; its slot
 * gets a fresh heap on next use) rather than unlocked, and this thread is
 * reassigned if it used it. A heap whose lock is free is consistent (every
 * change to it is made under its lock) and is kept. shared_lock only
 * orders the making of heaps, which takes effect at one store: reset. */
void heaps_fork_child_shared(void) {
#if LZ_HEAPS > 0 /* as in heap_retire */
  for (int i = 0; i < LZ_HEAPS; i++) {
    heap_t *h = atomic_load_explicit(&shared_heaps[i], memory_order_acquire);
    if (h != NULL && atomic_load_explicit(&h->lock.x, memory_order_relaxed) != 0) heap_retire(h);
  }
#endif
  if (atomic_load_explicit(&shared_lock.x, memory_order_relaxed) != 0) lz_lock_reset(&shared_lock);
}

/* ---------------------------------------------------------------------------
 * Allocation slow paths
 * ------------------------------------------------------------------------- */
/* One in 64 slow-path entries (allocation or free): where does the thread
 * run? A heap that moved to another node gives back what it kept for reuse
 * there (cached medium spans, empty current slabs); span_alloc skips its
 * chunks on the old node from now on. */
static lz_noinline void numa_tick(heap_t *heap) {
  if (numa_observe(heap)) heap_collect(heap, true);
}


/* Every HEAP_TICK_EVERY-th slow-path entry (allocation or free), and a
 * nudged heap's next free: remote batches that were pending at the
 * previous tick sent (a nudged heap's all), the coarse clock and purge,
 * foreign lists home when due, the home node. */
lz_text_hot static lz_noinline void heap_tick_due(heap_t *heap) {
  heap_enter(heap);
  remote_flush_aged(heap);
  heap_purge_tick(heap);
  if (heap->foreign != NULL && heap->slow_clock >= heap->foreign_flush_at) {
    foreign_flush(heap, FOREIGN_FLUSH_AGED);
    heap->foreign_flush_at = heap->slow_clock + FOREIGN_MAX_AGE_MS;
  }
  if (lz_unlikely(lz_numa_on)) numa_tick(heap);
  heap_beat(heap); /* after the foreign lists: a nudged heap sends what they gave its batches */
  heap_leave(heap);
}

lz_inline void heap_tick(heap_t *heap) {
  if (lz_unlikely((++heap->slow_count & (HEAP_TICK_EVERY - 1)) == 0)) heap_tick_due(heap);
}

/* A tick at an allocation slow path's entry, where the caller holds no
 * span, and, when due by the clock the ticks keep, the owner's look at
 * its idle current slabs (slab.c, slab_firsts_look), which may unlink a
 * class's first span. Looked for at every such entry, not only at a
 * tick: a program whose allocations and frees alternate on the slow
 * paths (large blocks) has every tick fall on a free. Not in start-up
 * (slow_clock is 0 until the first tick: a small process touches no more
 * code). */
lz_text_late static lz_noinline void heap_firsts_due(heap_t *heap) {
  heap_enter(heap);
  slab_firsts_look(heap, heap->slow_clock);
  heap_leave(heap);
}
lz_inline void heap_tick_entry(heap_t *heap) {
  heap_tick(heap);
  if (lz_unlikely(heap->slow_clock > heap->firsts_look_at) && !heap->startup && heap == lz_heap_tls)
    heap_firsts_due(heap);
}

/* The thread's first call, or a call past its teardown: NULL (errno
 * ENOMEM) if no heap can be had. */
lz_text_hot static lz_noinline heap_t *slow_heap_get(void) {
  heap_t *heap = heap_get_slow();
  if (heap == NULL) heap = heap_take_temporary();
  if (heap == NULL) errno = ENOMEM;
  return heap;
}

/* Every allocation slow path starts here: the thread's heap (made on its
 * first call; a temporary one past the thread's teardown), its lock, then
 * the blocks other threads sent back and, now and then, a tick (our own
 * batches sent, purge). NULL (errno ENOMEM)
 * if no heap can be had. Paired with slow_leave. */
lz_inline heap_t *slow_enter(heap_t *heap) {
  if (lz_unlikely(heap == LZ_HEAP_EMPTY)) {
    heap = slow_heap_get();
    if (heap == NULL) return NULL;
  }
  heap_enter(heap);
  if (LZ_STATS) heap->stats.slow_allocs++;
  if (atomic_load_explicit(&heap->xremote, memory_order_relaxed) != NULL) remote_collect(heap);
  heap_tick_entry(heap);
  return heap;
}

/* Where an entry point finishes: the janitor's thread is started if it is
 * wanted, to run this file's pass; with shared heaps `held`'s lock (the
 * api's) is released around the start. */
lz_inline void poll_janitor(heap_t *held) {
  janitor_poll(LZ_HEAPS > 0 && held != NULL ? &held->lock : NULL, heaps_background_pass);
}

/* A temporary heap (never the thread's lz_heap_tls) is abandoned again. */
lz_inline void *slow_leave(heap_t *heap, void *p) {
  heap_leave(heap);
  bool temporary = heap != lz_heap_tls;
  if (lz_unlikely(temporary)) heap_abandon(heap);
  else if (lz_unlikely(lz_tls.rend != heap->rend))
    region_tls(heap); /* chunk_alloc committed a region chunk (chunk.c, "Regions") */
  if (p == NULL) errno = ENOMEM;
  poll_janitor(temporary ? NULL : heap); /* after errno: starting a thread leaves it alone */
  return p;
}

/* packable: any 16-byte aligned block will do (not an aligned allocation's
 * class). */
lz_text_hot static void *small_malloc(heap_t *heap, unsigned cls, bool zero, bool packable) {
  if (lz_unlikely(heap->startup | heap->pack_armed)) {
    if (heap->startup && heap->slow_count >= LZ_STARTUP_SLOW) slab_startup_end(heap);
    /* Start-up's packed span first, or an armed one (pack.c). */
    if (packable && lz_class_size[cls] <= LZ_PACK_MAX && (heap->pack != NULL || !heap->pack_done)) {
      void *p = pack_malloc(heap, cls);
      if (p != NULL) {
        if (zero) memset(p, 0, lz_class_size[cls]);
        return p;
      }
    }
    /* An armed span closed: its sizes back on the fast path. */
    if (lz_unlikely(heap->pack_armed) && heap->pack_done && heap->pack == NULL) slab_pack_end(heap);
  }
  cls = slab_class_for(heap, cls); /* start-up: its power of two */
  void *p = heap->foreign != NULL ? foreign_alloc(heap, cls) : NULL;
  span_t *s = heap->queues[cls].first;
  if (p == NULL) p = (s != NULL && s->free != NULL) ? slab_pop_checked(s) : slab_malloc_slow(heap, cls);
  if (p != NULL && zero) memset(p, 0, lz_class_size[cls]);
  return p;
}

/* Memory ran short for `size` bytes: collect orphans and idle caches,
 * then let the caller try once more (not for the janitor's own start: its
 * thread is not worth emptying every cache for; it is tried again later;
 * nor for a size the kernel refuses whatever we give back, os_map_hopeless:
 * a program probing for the largest buffer it can get, malloc(40 MiB)
 * then a failing malloc(2^46), 300 times, found its 40 MiB block's pages
 * given back each time). */
static bool reclaim_for_retry(heap_t *heap, size_t size) {
  if (size > LZ_MEDIUM_MAX && os_map_hopeless(size)) return false;
  size_t chunks = atomic_load_explicit(&lz_chunks_mapped, memory_order_relaxed);
  size_t got = heaps_collect_orphans(true);
  got += large_cache_trim(true);
  got += secure_collect(heap, true); /* level 2: the quarantine */
  heap_collect(heap, true); /* our empty chunks too */
  got += chunk_pool_trim(true);
  return got > 0 || atomic_load_explicit(&lz_chunks_mapped, memory_order_relaxed) < chunks;
}

/* Large blocks need nothing of the heap: a thread that has one goes
 * straight to large.c; the full slow path is for its first call and for a
 * retry when memory runs short. Every large allocation ticks the heap, not
 * every HEAP_TICK_EVERY-th slow entry: a program whose small blocks come
 * from elsewhere (python3's own arenas) or all from the fast paths enters
 * the slow paths a few dozen times in a second, so its purge never came
 * due while it grew, and its large allocations are what it still makes
 * (a dict's table resized). A tick that finds nothing due reads the clock
 * and returns: a malloc(2 MiB) + free pair served by the large cache
 * costs 55.6 ns instead of 46.9 (glibc 13: its mmap threshold follows
 * the freed size). Not in start-up (a small process reads no clock). */
static void *large_malloc_direct(heap_t *heap, size_t size, bool zero) {
  void *p = large_malloc(size, LZ_PAGE_SIZE, zero);
  if (lz_likely(p != NULL)) {
    /* A medium buffer that grows past LZ_MEDIUM_MAX by copying is freed
     * next: medium.c, "Growth" (the pages, or more than any span has). */
    heap->grow_prev = heap->grow_last;
    heap->grow_last = NULL;
    heap->grow_pages = size < ((size_t)UINT32_MAX << LZ_PAGE_SHIFT) ? (uint32_t)(size >> LZ_PAGE_SHIFT) : UINT32_MAX;
    heap_tick_entry(heap);
    if ((heap->slow_count & (HEAP_TICK_EVERY - 1)) != 0 && !heap->startup) heap_tick_due(heap);
    poll_janitor(heap);
  }
  return p;
}

/* Every size and level, and one retry after reclaiming when memory ran
 * short; `tried`: the small path failed already (no first attempt). */
lz_text_hot static lz_noinline void *malloc_general(heap_t *heap, size_t size, bool zero, bool tried) {
  void *p = NULL;
  for (int attempt = 0;; attempt++) {
    if (attempt > 0 || !tried) {
      if (lz_secure2 && size <= LZ_MEDIUM_MAX) p = secure_malloc(heap, size, LZ_ALIGN, zero);
      else if (size <= LZ_SLAB_MAX) p = small_malloc(heap, size_to_class(size), zero, true);
      else if (size <= LZ_MEDIUM_MAX) p = medium_malloc(heap, size, 1, zero);
      else if (size > LZ_MAX_ALLOC) p = NULL;
      else p = large_malloc(size, LZ_PAGE_SIZE, zero);
    }
    if (p != NULL || attempt > 0 || size > LZ_MAX_ALLOC || lz_janitor_starting || !reclaim_for_retry(heap, size)) break;
  }
  return p;
}

/* malloc's fast path found the free list of span s (heap->direct[]'s, or
 * the first of a class queue) empty or its head bad. The common case, a
 * thread that frees what it allocated, is taken here without the slow
 * path's entry: the span's own freed blocks (local_free) become its free
 * list, checked as slab_pop_checked checks (the head and its link a block
 * boundary of the span below its carved limit), and charged to used
 * (slab_malloc_local). Only while no other thread sent blocks back (the
 * slow path collects them first), and while the thread keeps no foreign
 * blocks of s's class (theirs come first: a list of a class up to
 * LZ_DIRECT_MAX is installed in direct[] while it has blocks, so s, a
 * real span with blocks in local_free, is then its queue's first; a
 * larger class's list is looked at here, and popped by refill_foreign
 * while it has blocks). Anything else, or a check that fails, goes to
 * heap_malloc_slow; an installed foreign list found empty to
 * refill_foreign_dry. */
lz_inline void *refill_local(heap_t *heap, span_t *s) {
  lz_block_t *b = s->local_free;
  if (lz_likely(s->free == NULL && b != NULL &&
                atomic_load_explicit(&heap->xremote, memory_order_relaxed) == NULL)) {
    lz_block_t *next = block_next(b);
    uintptr_t start = (uintptr_t)span_start(s);
    if (!LZ_SECURE || lz_likely(span_holds_slab(s, start, (uintptr_t)b) &&
                                (next == NULL || span_holds_slab(s, start, (uintptr_t)next)))) {
      lz_assert(heap->queues[s->cls].first == s && !(s->flags & SPAN_HOLES));
      slab_take_local(s, true);
      heap_tick(heap);
      return span_pop(s);
    }
  }
  return NULL;
}

/* heap_malloc_refill's: installed foreign list f (remote.c) is empty. It
 * stays installed, and the class's span serves this call, unless no block
 * came in during FOREIGN_DRY_LOOKS such calls in a row (f->capacity
 * counts them; every push sets it to 0: remote.c, foreign_link): then
 * the flow has stopped, and direct[] names the class's
 * span again. A thread that keeps being handed other threads' blocks
 * would otherwise uninstall and install its list again every few
 * allocations, while one that no longer is pays this call a few times.
 * Either way, the span's list is popped if it has blocks, or its own
 * freed blocks taken (refill_local). */
lz_text_thread static lz_noinline void *refill_foreign_dry(size_t size, heap_t *heap, span_t *f) {
  span_t *s;
  if (f->capacity < FOREIGN_DRY_LOOKS) {
    f->capacity++;
    s = heap->queues[f->cls].first;
    if (s == NULL) return heap_malloc_slow(size, heap, false);
  } else {
    foreign_uninstall(heap, f);
    s = heap->direct[(size + 15) >> 4];
  }
  if (lz_likely(list_head_ok(s->free))) {
    heap_tick(heap);
    void *p = span_pop(s);
    /* The block the next such call pops, whose link it reads: on a list
     * the owner's frees did not just push, a line not in this core's
     * cache (bench larson: 93 % of this function's samples sat on that
     * load). A prefetch never faults, whatever the link. */
    __builtin_prefetch(s->free, 1);
    return p;
  }
  void *p = refill_local(heap, s);
  return p != NULL ? p : heap_malloc_slow(size, heap, false);
}

/* heap_malloc_refill's: a class above LZ_DIRECT_MAX whose foreign list
 * (never installed: remote.c) has blocks. They come first, as in
 * small_malloc, but without the slow path's entry: they are other heaps'
 * blocks, so none of them can be among those sent home to this heap
 * (see malloc_slow's short ways), as for an installed list that malloc's
 * fast path pops. Ticks as the short ways do. */
lz_text_thread static lz_noinline void *refill_foreign(heap_t *heap, span_t *f) {
  void *p = foreign_take(heap, f);
  heap_tick(heap);
  return p;
}

lz_text_hot void *heap_malloc_refill(size_t size, heap_t *heap, span_t *s) {
  if (lz_unlikely(s->flags & FOREIGN_INSTALLED)) {
    if (s->free == NULL) return refill_foreign_dry(size, heap, s);
  } else if (s->local_free != NULL || size > LZ_DIRECT_MAX) {
    /* (LZ_HEAP_EMPTY's direct[] names LZ_SPAN_EMPTY: no local_free, its
     * heap not read; above LZ_DIRECT_MAX s is the first span of a queue
     * of a heap of the thread's own: malloc_fast) */
    span_t *f = heap->foreign != NULL ? &heap->foreign[s->cls] : NULL;
    if (f != NULL && f->free != NULL) {
      if (size > LZ_DIRECT_MAX) return refill_foreign(heap, f);
    } else if (s->local_free != NULL) {
      void *p = refill_local(heap, s);
      if (p != NULL) return p;
    }
  }
  return heap_malloc_slow(size, heap, false);
}

/* The short ways below (and heap_malloc_refill's and heap_malloc_slow's)
 * skip remote_collect, so
 * they are taken only while no other thread has sent blocks home: a block
 * freed here and then by another thread is named a double free when
 * collected, before it could be handed out again. */
lz_text_hot static lz_noinline void *malloc_slow(size_t size, heap_t *heap, bool zero) {
  /* LZ_HEAP_EMPTY has only direct[] and queues[] (internal.h): no short way. */
  bool none_sent = heap != LZ_HEAP_EMPTY && atomic_load_explicit(&heap->xremote, memory_order_relaxed) == NULL;
  bool large_tried = false;
  if (size <= LZ_SLAB_MAX) {
    /* The current slab's own freed blocks, when the thread keeps no
     * foreign blocks of the class (their lists come first) and is below
     * level 2. */
    unsigned cls = size_to_class(size);
    if (none_sent && (heap->foreign == NULL || heap->foreign[cls].free == NULL) && !lz_secure2) {
      /* Start-up's open packed span: a bump, no lock (pack.c), and no
       * tick (a small process's start-up reads no clock: its code and
       * data pages would be page faults). */
      if (lz_unlikely(heap->pack != NULL) && size <= LZ_PACK_MAX) {
        void *p = pack_take(heap, cls);
        if (p != NULL) {
          if (zero) memset(p, 0, lz_class_size[cls]);
          return p;
        }
      }
      /* With packing armed (a new thread's heap, a fork child's), packable
       * sizes wait for the packed span, which the general path opens and
       * closes (slab.c, "Packing armed"). */
      void *p = lz_unlikely(heap->pack_armed) && size <= LZ_PACK_MAX ? NULL : slab_malloc_short(heap, cls);
      if (p != NULL) {
        if (zero) memset(p, 0, lz_class_size[cls]);
        heap_tick(heap);
        return p;
      }
    }
  } else {
    void *p = NULL;
    if (size > LZ_MEDIUM_MAX && size <= LZ_MAX_ALLOC && lz_likely(heap != LZ_HEAP_EMPTY)) {
      p = large_malloc_direct(heap, size, zero);
      large_tried = true; /* failed: the general path retries after reclaiming only */
    }
    if (p != NULL) return p;
  }
  heap = slow_enter(heap);
  if (lz_unlikely(heap == NULL)) return NULL;
  void *p = NULL;
  bool small = size <= LZ_SLAB_MAX && !lz_secure2;
  if (lz_likely(small)) p = small_malloc(heap, size_to_class(size), zero, true);
  if (lz_unlikely(p == NULL)) p = malloc_general(heap, size, zero, small || large_tried);
  return slow_leave(heap, p);
}

/* heap_malloc_slow's cache hit for calloc, or on a tick: the rest of it. */
lz_text_hot static lz_noinline void *medium_hit_slow(size_t size, heap_t *heap, bool zero, span_t *s) {
  void *p = medium_cache_use(heap, s, size, zero);
  heap_tick(heap);
  poll_janitor(heap);
  return p;
}

/* heap_malloc_slow's medium request that the cache cannot serve without
 * the lock: blocks other threads freed wait in xremote (collected first:
 * see malloc_slow), or the cache missed (the returned list, else a new
 * span: medium.c). The slow path's entry and exit without its other
 * cases; a failure goes the general way (a retry after reclaiming). A
 * heap of the thread's own (not LZ_HEAP_EMPTY), below level 2. */
lz_text_hot static lz_noinline void *medium_slow(size_t size, heap_t *heap, bool zero) {
  heap_enter(heap);
  if (LZ_STATS) heap->stats.slow_allocs++;
  if (atomic_load_explicit(&heap->xremote, memory_order_relaxed) != NULL) remote_collect(heap);
  heap_tick_entry(heap);
  void *p = medium_malloc(heap, size, 1, zero);
  if (lz_unlikely(p == NULL)) p = malloc_general(heap, size, zero, true);
  return slow_leave(heap, p);
}

/* heap_malloc_slow's medium calloc. */
lz_text_hot static lz_noinline void *medium_hit_zero(size_t size, heap_t *heap) {
  span_t *s = medium_cache_hit(heap, size);
  if (s != NULL) return medium_hit_slow(size, heap, true, s);
  return lz_likely(!lz_secure2) ? medium_slow(size, heap, true) : malloc_slow(size, heap, true);
}

/* A medium block that the heap's cache holds is taken here, without the
 * lock (medium.c) and with no other slow-path work (a hit reuses memory;
 * remote frees wait for a miss or a small slow path); the rest in
 * medium_slow. Level 2 has medium spans of its own (the cache stays
 * empty): malloc_slow. A hit that neither zeroes nor ticks calls nothing
 * (no register saved). */
lz_text_hot static lz_noinline void *heap_malloc_slower(size_t size, heap_t *heap, bool zero) {
  if (size - (LZ_SLAB_MAX + 1) < LZ_MEDIUM_MAX - LZ_SLAB_MAX && heap != LZ_HEAP_EMPTY) {
    if (atomic_load_explicit(&heap->xremote, memory_order_relaxed) == NULL) {
      lz_assert(!lz_secure2 || heap->mcache_mask == 0);
      if (lz_unlikely(zero)) return medium_hit_zero(size, heap);
      span_t *s = medium_cache_hit(heap, size);
      if (lz_likely(s != NULL)) {
        if (lz_unlikely(((heap->slow_count + 1) & (HEAP_TICK_EVERY - 1)) == 0))
          return medium_hit_slow(size, heap, false, s);
        heap->slow_count++; /* heap_tick, not due */
        return medium_cache_use(heap, s, size, false);
      }
      return lz_likely(!lz_secure2) ? medium_slow(size, heap, false) : malloc_slow(size, heap, false);
    }
    if (lz_likely(!lz_secure2)) return medium_slow(size, heap, zero);
  }
  return malloc_slow(size, heap, zero);
}

/* heap_malloc_slow's front pop (b, of size bytes) on a tick. */
lz_text_hot static lz_noinline void *front_tick(size_t size, heap_t *heap, bool zero, lz_block_t *b) {
  heap_tick_due(heap);
  poll_janitor(heap);
  return zero ? medium_front_zero(b, size) : b;
}

/* The front pop (below) alone, so that its registers are its own: the
 * rest in heap_malloc_slower. */
lz_text_hot void *heap_malloc_slow(size_t size, heap_t *heap, bool zero) {
  /* The heap's front span of that many pages, its block parked (medium.c,
   * "Front spans"): popped as a slab's first span is, before anything
   * else. Not while blocks other threads freed wait (see malloc_slow). A
   * size near SIZE_MAX wraps to no page count in the range. */
  size_t npages = (size + LZ_PAGE_SIZE - 1) >> LZ_PAGE_SHIFT;
  if (npages - LZ_MEDIUM_MIN_PAGES <= LZ_MEDIUM_FRONT_PAGES - LZ_MEDIUM_MIN_PAGES && heap != LZ_HEAP_EMPTY) {
    span_t *s = heap->mfront[npages];
    if (s != NULL && atomic_load_explicit(&heap->xremote, memory_order_relaxed) == NULL) {
      void *b = medium_front_pop(s);
      if (lz_likely(b != NULL)) {
        /* A slow-path entry, counted as any other (heap_tick). */
        bool tick = (++heap->slow_count & (HEAP_TICK_EVERY - 1)) == 0;
        if (lz_unlikely(tick)) return front_tick(size, heap, zero, b);
        if (lz_unlikely(zero)) return medium_front_zero(b, size);
        return b;
      }
    }
  }
  return heap_malloc_slower(size, heap, zero);
}

/* realloc moving a block to a bigger size of REALLOC_PAGES_MIN to
 * LZ_SMALL_MAX: a medium span of whole pages, not a slab block. A buffer
 * grown step by step (python's lists, git's strbufs) would otherwise pass
 * through one class after another, each class's slab keeping the freed
 * block resident (python's threads each kept one in every class from 8 to
 * 32 KiB, 50 pages a thread; glibc grows such buffers in place); in a
 * medium span the next steps fill its last page, then grow into the free
 * pages after it (medium_grow), with no copy and no block left behind.
 * Only from REALLOC_PAGES_MIN, where rounding up to pages costs less than
 * a third of the block. */
#define REALLOC_PAGES_MIN (2 * LZ_PAGE_SIZE)

/* realloc growing a block past LZ_REALLOC_LARGE_MIN by a small step
 * (realloc_by_steps, internal.h) moves it into a large block (level 2: an
 * ordinary block, NULL here), which grows by its pages from then on
 * (realloc_large): a buffer grown step by step is copied once, at most
 * LZ_REALLOC_LARGE_MIN bytes, where a medium block grown in place to 1 MiB
 * was copied whole at the move past it (bench realloc-grow, 4 KiB to
 * 2 MiB by an eighth: about 930 KB a buffer, 1.6 times glibc's time,
 * which grows in place at the top of its heap; now glibc's). Small steps
 * alone: such a buffer has many more to make, while one that doubles
 * reaches its size in a few and is often freed soon (lua's tables and
 * string buffers: moved at any step past 256 KiB, their large blocks'
 * ranges went through the large cache and its decay, 1-3 MB more peak
 * and 3,000 more page faults in bench lua; as medium blocks they are
 * reused from the heap's freed spans). */
lz_text_late static lz_noinline void *realloc_to_large(size_t size) {
  return lz_secure2 ? NULL : large_malloc(size, LZ_ALIGN, false);
}

/* realloc of large block l (at p) to size: resized by its pages (true,
 * *out the block or NULL with ENOMEM) above LZ_MEDIUM_MAX, and above
 * LZ_REALLOC_LARGE_MIN down to half its largest request, as a span's
 * block down to half its size (REALLOC_SHRINK_COPY); false for anything smaller, which the caller
 * copies into a small or medium block, giving the whole range back
 * rather than keeping its resident pages. Any large block, also one
 * asked for more than 1 MiB: a block that went back and forth across 1
 * MiB was copied both ways each time (realloc between 1 MiB and 1 MiB +
 * 4 KiB, 20,000 times: 694 ms, a 1 MiB copy each; now 3.1-3.5 ms,
 * tcmalloc 2.6). */
lz_text_late static lz_noinline bool realloc_large(large_t *l, void *p, size_t size, void **out) {
  size_t req = large_requested(l);
  if (size <= LZ_MEDIUM_MAX && (size <= LZ_REALLOC_LARGE_MIN || size < req / REALLOC_SHRINK_COPY)) return false;
  *out = large_realloc(l, p, size);
  if (*out == NULL) errno = ENOMEM;
  return true;
}
void *heap_realloc_grown(size_t size, size_t old) {
  if (realloc_by_steps(old, size)) return realloc_to_large(size);
  if (size <= REALLOC_PAGES_MIN || size > LZ_SMALL_MAX || lz_secure2) return NULL;
  heap_t *heap = slow_enter(lz_heap_tls);
  if (lz_unlikely(heap == NULL)) return NULL;
  return slow_leave(heap, medium_malloc(heap, size, 1, false));
}

/* align is a power of two > 16. */
lz_text_hot void *heap_malloc_aligned(heap_t *heap, size_t size, size_t align) {
  heap = slow_enter(heap);
  if (heap == NULL) return NULL;
  if (size == 0) size = 1;
  void *p = NULL;
  for (int attempt = 0;; attempt++) {
    if (lz_secure2 && size <= LZ_MEDIUM_MAX && align <= LZ_MEDIUM_MAX / 2) {
      p = secure_malloc(heap, size, align, false);
    } else if (size <= LZ_SLAB_MAX && align <= LZ_PAGE_SIZE) {
      /* The first class at least as big whose blocks are all aligned. */
      unsigned cls = size_to_class(size);
      while (lz_class_size[cls] % align != 0) cls++;
      p = small_malloc(heap, cls, false, false);
    } else if (size <= LZ_MEDIUM_MAX && align <= LZ_MEDIUM_MAX / 2 && size + align <= LZ_MEDIUM_MAX + LZ_PAGE_SIZE) {
      p = medium_malloc(heap, size, align > LZ_PAGE_SIZE ? align >> LZ_PAGE_SHIFT : 1, false);
    } else if (size <= LZ_MAX_ALLOC && align <= LZ_LARGE_ALIGN_MAX) {
      p = large_malloc(size, align, false);
    }
    if (p != NULL || attempt > 0 || size > LZ_MAX_ALLOC || lz_janitor_starting || !reclaim_for_retry(heap, size)) break;
  }
  return slow_leave(heap, p);
}

/* ---------------------------------------------------------------------------
 * Pointer validation and free slow path
 * ------------------------------------------------------------------------- */
typedef struct ptr_info_s {
  span_t *span;   /* block of a span, or */
  large_t *large; /* a large block */
} ptr_info_t;

/* p, in one of our chunks, is no block. A chunk's first byte that was a
 * large block, freed since, is that block freed again: its unit became
 * this chunk (large_cache_unit). */
static lz_cold lz_noreturn void span_check_failed(const void *p, const char *func) {
  uintptr_t a = (uintptr_t)p;
  if ((a & LZ_CHUNK_MASK) == 0 && large_freed_unit(a)) lz_fatal_pointer("double free", func, p);
  lz_fatal_pointer("invalid pointer", func, p);
}

/* That p, a pointer into one of our chunks, is a block of s, the span its
 * page maps to, below its carved limit (a slot never handed out is not a
 * block); else reports p (naming `func`) and aborts. */
lz_inline void span_check(const span_t *s, const void *p, const char *func) {
  /* Pages of no span map to spans[0], a slot never given out (kind
   * SPAN_NONE). */
  if (s->kind == SPAN_NONE || !slab_holds(s, p)) span_check_failed(p, func);
}

/* The span of p, a pointer into one of our chunks, after checking that p is
 * a block of it below its carved limit (a slot never handed out is not a
 * block); else reports p (naming `func`) and aborts. */
static span_t *span_resolve(const void *p, const char *func) {
  uintptr_t a = (uintptr_t)p;
  chunk_t *c = (chunk_t *)(a & ~LZ_CHUNK_MASK);
  span_t *s = chunk_span_of(c, a);
  span_check(s, p, func);
  return s;
}

/* Finds what p is, or reports it (naming `func`) and aborts. */
lz_text_hot static ptr_info_t ptr_resolve(const void *p, const char *func) {
  uintptr_t a = (uintptr_t)p;
  ptr_info_t info = {NULL, NULL};
  uint8_t kind = chunkmap_kind(a);
  if (kind == CHUNK_SPANS) {
    info.span = span_resolve(p, func);
    return info;
  }
  if (kind == CHUNK_LARGE) {
    bool freed;
    info.large = large_lookup(a, &freed);
    if (info.large != NULL) return info;
    if (freed) lz_fatal_pointer("double free", func, p);
  }
  /* A large block freed, its range since given back to the kernel. */
  if (kind == CHUNK_NONE && large_freed_gone(a)) lz_fatal_pointer("double free", func, p);
  lz_fatal_pointer("invalid pointer", func, p);
}

/* heap_free_last's slab: retired. */
lz_text_hot static lz_noinline void free_last_slab(heap_t *heap, span_t *s) {
  slab_retire(heap, s);
  if (LZ_HEAPS == 0 && heap->lock_depth == 0) poll_janitor(NULL);
}

/* heap_free_last's medium block: cached (medium.c). It goes through free's
 * fast path as a slab block does, and ticks no more than one: the cache
 * hit that takes it again does (heap_malloc_slow). */
lz_text_hot static lz_noinline __attribute__((hot)) void free_last_medium(heap_t *heap, span_t *s) {
  if (lz_unlikely(medium_free_last(heap, s))) poll_janitor(heap);
}

/* The inline free (alloc.h) took the last block of span s: its one slow
 * call. A slab is retired, a medium span (its one block) cached, and this
 * is where that entry point finishes (no heap lock held but with shared
 * heaps: the api's, kept). Only tail calls. */
lz_text_hot void heap_free_last(heap_t *heap, span_t *s) {
  /* Medium: the class, 0, is tested (one instruction, the kind's two bits
   * share its byte); a slab's is at least 1. */
  lz_assert((s->cls == 0) == (s->kind == SPAN_MEDIUM));
  if (s->cls == 0) free_last_medium(heap, s);
  else free_last_slab(heap, s);
}

/* The owner frees a block of one of its spans (already validated). */
void heap_free_local(heap_t *heap, span_t *s, lz_block_t *b) {
  if (s->kind == SPAN_MEDIUM) medium_free(heap, s);
  else slab_free_chain(heap, s, b, b, 1);
}

static void heap_free_span(void *p, span_t *s);

/* Frees of pointers outside our chunks: large blocks, NULL, invalid. */
lz_text_hot void heap_free_slow(void *p) {
  if (p == NULL) return;
  heap_t *self = lz_heap_tls;
  /* A thread that only frees must still give memory back. */
  if (self != LZ_HEAP_EMPTY) heap_tick(self);
  bool freed;
  large_t *l = large_lookup((uintptr_t)p, &freed);
  if (lz_likely(l != NULL)) {
    large_free(l, p);
  } else {
    ptr_info_t info = ptr_resolve(p, "free"); /* a span (a race with the fast path's look) or misuse */
    if (info.large != NULL) {
      large_free(info.large, p);
    } else {
      if (lz_unlikely(span_packed(info.span))) pack_check(info.span, p, "free", false);
      heap_free_span(p, info.span);
    }
  }
  poll_janitor(self == LZ_HEAP_EMPTY ? NULL : self);
}

/* heap_free_page's every case but the owner's medium block: another
 * heap's block, a full slab, a failed fast check, level 2. s is the span
 * p's page maps to (spans[0] if none), not yet checked. */
lz_text_hot static lz_noinline void free_page_general(void *p, span_t *s) {
  heap_t *heap = lz_heap_tls;
  /* The tick sends the batches at least every HEAP_TICK_EVERY-th
   * slow-path entry, so a thread that frees other heaps' blocks keeps them
   * from their owners briefly: remote_free_fast counts its frees as
   * entries and leaves every HEAP_TICK_EVERY-th to this path. */
  if (heap != LZ_HEAP_EMPTY) {
    if (lz_unlikely(atomic_load_explicit(&heap->xnudged, memory_order_relaxed))) heap_tick_due(heap);
    else heap_tick(heap);
  }
  if (lz_secure2) {
    /* Level 2: every small and medium block (a thread without a heap
     * gets one for its quarantine, if it can). */
    secure_free(heap != LZ_HEAP_EMPTY ? heap : heap_get_slow(), p, "free");
  } else {
    span_check(s, p, "free");
    if (lz_unlikely(span_packed(s))) pack_check(s, p, "free", false);
    /* Another heap's block, the usual reason to be here: batched home or
     * kept (remote.c). The owner of a live block's chunk is stable. */
    if (lz_likely(heap != LZ_HEAP_EMPTY && ((chunk_t *)((uintptr_t)p & ~LZ_CHUNK_MASK))->heap != heap))
      remote_free(heap, s, p);
    else
      heap_free_span(p, s);
  }
  poll_janitor(heap == LZ_HEAP_EMPTY ? NULL : heap);
}

/* The owner is about to free its own medium block p (free, realloc: `as`):
 * its heap, ticked. A block another thread freed and sent home (its
 * first words say so; not collected yet) is freed twice. Looked for only
 * while blocks wait in xremote: a medium block is sent at once
 * (remote.c), and until they are collected no path takes a cached span
 * (heap_malloc_slow). */
lz_inline heap_t *own_medium_enter(void *p, const char *as) {
  heap_t *heap = lz_heap_tls;
  heap_tick(heap);
  if (LZ_SECURE && atomic_load_explicit(&heap->xremote, memory_order_relaxed) != NULL &&
      block_maybe_free((lz_block_t *)p) && remote_in_flight((lz_block_t *)p))
    lz_fatal_pointer("double free", as, p);
  return heap;
}

/* The owner frees its own medium block p, the start of span s: the cache
 * takes it without the lock (medium.c). */
lz_text_hot static lz_noinline void free_own_medium(void *p, span_t *s) {
  heap_t *heap = own_medium_enter(p, "free");
  medium_free_local(heap, s, p);
  poll_janitor(heap);
}

/* The owner frees its own block p of start-up's packed span s (pack.c):
 * checked against the map, no tick (a small process's start-up reads no
 * clock), the lock only if the span goes back. */
lz_text_hot static lz_noinline void free_own_packed(void *p, span_t *s) {
  span_check(s, p, "free");
  pack_check(s, p, "free", false);
  /* Freed by another thread already, on its way home (remote.c). */
  if (LZ_SECURE && block_maybe_free((lz_block_t *)p) && remote_in_flight((lz_block_t *)p))
    lz_fatal_pointer("double free", "free", p);
  pack_free_chain(lz_heap_tls, s, (lz_block_t *)p, 1);
}

/* heap_free_own's cases but the foreign lists' (and the blocks those do
 * not take: free_own_foreign_slow), naming `as` in reports (NULL:
 * "free"). */
lz_text_hot lz_noinline void heap_free_own_rest(void *p, span_t *s, const char *as) {
  if (lz_unlikely(as != NULL)) {
    lz_free_as = as;
    heap_free_own_rest(p, s, NULL);
    lz_free_as = NULL;
  } else if (s->kind == SPAN_MEDIUM && (uintptr_t)p == (uintptr_t)span_start(s))
    free_own_medium(p, s);
  else if (lz_unlikely(span_packed(s)))
    free_own_packed(p, s);
  else
    free_page_general(p, s);
}

/* heap_free_own's block of a slab that is not its queue's first, of a
 * heap with foreign lists: onto its class's list (free_own_foreign:
 * remote.c's foreign_free_own, "Own blocks", inlined here at link time,
 * a leaf up to the push), else back into its span or the general way
 * (free_own_foreign_slow). */
lz_text_thread static lz_noinline void free_own_foreign_slow(heap_t *heap, span_t *s, void *p, const char *as) {
  if (!foreign_free_own_slow(heap, s, (lz_block_t *)p, as)) heap_free_own_rest(p, s, as);
}
lz_text_thread static lz_noinline void free_own_foreign(heap_t *heap, span_t *s, void *p, const char *as) {
  if (!foreign_free_own(heap, s, (lz_block_t *)p)) free_own_foreign_slow(heap, s, p, as);
}

/* heap_free_own's first look when the fast path's count wrapped
 * (heap_t.rwait): the region's page map, then the free (out of line:
 * heap_free_own keeps no register across a call). */
lz_text_hot static lz_noinline void free_own_rwait(void *p, span_t *s, const char *as) {
  heap_region_start(lz_heap_tls);
  heap_free_own(p, s, as);
}

/* Frees of pointers into chunks of the calling thread's heap that the fast
 * path did not finish (the heap's region, or a chunk whose map byte is
 * the heap's id, so the chunk's owner is the caller's heap, below level 2:
 * alloc.h): a
 * cached medium span's block (a double free), a medium block whose first
 * word looked free, a full span's or one with holes, a failed fast check. s is
 * the span p's page maps to, not yet checked; `as` names the function in
 * reports (NULL: "free"), carried down to where one may be made. Only
 * tail calls, and no frame: bench larson-sized, whose own blocks of a
 * slab behind its queue's first mostly go to the class's installed list
 * (one free in seven), spent 96 instructions on each in this function,
 * a wrapper that set lz_free_as around it, and foreign_free_own, 30 of
 * them saving, restoring and spilling registers around the calls. */
lz_text_hot void heap_free_own(void *p, span_t *s, const char *as) {
  /* Past the user range: as heap_free_page. */
  if (lz_unlikely((uintptr_t)p >> LZ_CHUNK_SHIFT >= LZ_CHUNKMAP_SIZE)) {
    if (as == NULL) heap_free_slow(p);
    else heap_free_slow_as(p, as);
    return;
  }
  /* s is slot 0 (zero) for a page of a chunk waiting in the region
   * (chunk.c, "Regions"): owned by none, reported below (span_check). */
  lz_assert((span_chunk(s)->heap == lz_heap_tls || s->kind == SPAN_NONE) && !lz_secure2);
  heap_t *heap = lz_heap_tls;
  if (lz_unlikely(heap->rwait == 0)) { /* the fast path's count wrapped */
    free_own_rwait(p, s, as);
    return;
  }
  /* A slab that is not its queue's first, of a heap with foreign lists:
   * its class's list may take the block (remote.c, "Own blocks"; thread
   * text, not called in a process that never had a second thread). */
  if (s->to_local != 0 && s->cls != 0 && heap->foreign != NULL)
    free_own_foreign(heap, s, p, as);
  else
    heap_free_own_rest(p, s, as);
}

/* heap_free_page's every case but another heap's slab block that
 * remote_free_fast took: a medium block (the owner's, or another heap's
 * sent home by remote_free_medium), the owner's packed block, or the
 * general path. */
lz_text_hot static lz_noinline void free_page_other(void *p, span_t *s) {
  chunk_t *c = (chunk_t *)((uintptr_t)p & ~LZ_CHUNK_MASK);
  heap_t *self = lz_heap_tls;
  if (lz_unlikely(self == LZ_HEAP_EMPTY) && lz_unlikely(fork_parked != NULL)) {
    free_parked(p);
    return;
  }
  /* The chunk's owner is never LZ_HEAP_EMPTY; a live block's is stable. */
  if (s->kind == SPAN_MEDIUM && !lz_secure2 && (uintptr_t)p == (uintptr_t)c + ((uintptr_t)s->page << LZ_PAGE_SHIFT)) {
    if (c->heap == self) free_own_medium(p, s);
    else if (!remote_free_medium(self, p, s)) free_page_general(p, s);
  } else if (lz_unlikely(span_packed(s)) && c->heap == self)
    free_own_packed(p, s);
  else
    free_page_general(p, s);
}

/* free_page_other, naming `as` in reports (heap_free_page's). */
lz_text_hot static lz_noinline void free_other_as(void *p, span_t *s, const char *as) {
  if (lz_likely(as == NULL)) {
    free_page_other(p, s);
    return;
  }
  lz_free_as = as;
  free_page_other(p, s);
  lz_free_as = NULL;
}

/* remote_free_slab's classes (inlined here at link time), then the
 * general path (heap_free_page's REMOTE_SLAB). */
lz_text_thread static lz_noinline void free_page_slab(void *p, span_t *s, const char *as, heap_t *self) {
  if (!remote_free_slab(self, p, s)) free_other_as(p, s, as);
}

/* heap_free_slow naming `as` in reports (free_fast_to's slow calls for a
 * C++ delete). */
lz_noinline void heap_free_slow_as(void *p, const char *as) {
  lz_free_as = as;
  heap_free_slow(p);
  lz_free_as = NULL;
}

/* Frees of pointers into our chunks that the fast path did not finish:
 * another heap's block (a remote free), a full span, or a failed fast
 * check. The fast path found p in the chunk map already, its byte other
 * than the heap's fast_id (so a heap with an id does not own p's chunk:
 * remote_free_fast reads no header for that), and hands over
 * the caller's heap (lz_heap_tls, loaded there already). The common
 * remote free, a slab block of another heap (its span's class tested
 * first: nonzero only in a slab, and a packed span's is 0), ends in remote_free_fast
 * (inlined at link time), which calls nothing but tail calls, so no
 * register is saved; everything else is a tail call too. `as` (a C++
 * delete's name, else NULL) is set for the slow calls only. */
lz_text_hot void heap_free_page(void *p, heap_t *self, const char *as) {
  /* Past the user range: the fast path read a byte past the chunk map
   * (alloc.h); never ours. */
  if (lz_unlikely((uintptr_t)p >> LZ_CHUNK_SHIFT >= LZ_CHUNKMAP_SIZE)) {
    if (as == NULL) heap_free_slow(p);
    else heap_free_slow_as(p, as);
    return;
  }
  chunk_t *c = (chunk_t *)((uintptr_t)p & ~LZ_CHUNK_MASK);
  span_t *s = chunk_span_of(c, (uintptr_t)p);
  int how = s->cls != 0 ? remote_free_fast(self, p, s) : REMOTE_GENERAL;
  if (lz_likely(how == REMOTE_DONE)) return;
  if (how == REMOTE_HOME) remote_free_home(self, s, p);
  else if (how == REMOTE_SLAB) free_page_slab(p, s, as, self);
  else free_other_as(p, s, as);
}

/* Frees block p of span s (validated). */
lz_text_hot static void heap_free_span(void *p, span_t *s) {
  heap_t *heap = lz_heap_tls;
  lz_block_t *b = (lz_block_t *)p;
  /* A thread that only frees gets a heap too, for its foreign lists and
   * batches (it is abandoned at thread exit like any other), before the
   * owner is told: the heap it gets may be p's own (an orphan adopted).
   * Without one (past the thread's teardown, out of memory, or a shared
   * heap that api_enter could not assign: taking one here would use it
   * unlocked) remote_free sends the block home at once. */
  if (LZ_HEAPS == 0 && heap == LZ_HEAP_EMPTY) {
    heap_t *h = heap_get_slow();
    if (h != NULL) heap = h;
  }
  if (span_chunk(s)->heap == heap) {
    /* Only the owner can read the span's lists to confirm a double free;
     * a block in another thread's chain is known by its two words. */
    heap_enter(heap);
    if (LZ_SECURE && block_maybe_free(b) &&
        ((s->kind == SPAN_SLAB && slab_contains_free(s, b)) || remote_in_flight(b)))
      lz_fatal_pointer("double free", "free", p);
    /* A block of a hole page is free and reads zero (slab.c, "Holes"). */
    if (LZ_SECURE && s->kind == SPAN_SLAB && lz_unlikely(s->flags & SPAN_HOLES) &&
        slab_block_in_hole(s, (size_t)((uint8_t *)b - span_start(s)) / s->block_size))
      lz_fatal_pointer("double free", "free", p);
    heap_free_local(heap, s, b);
    heap_leave(heap);
  } else {
    remote_free(heap, s, b); /* kept for reuse here or batched home */
  }
}

/* realloc of a block whose first word has a link's top bits
 * (word_maybe_link): one that looks like a free-list link
 * (block_maybe_free) the owner confirms against its lists (as free does)
 * and reports. Out of line and out of the hot code: a live block's word
 * has those bits only by chance. */
lz_text_late static lz_noinline void realloc_screen(void *p, span_t *s) {
  heap_t *heap = lz_heap_tls;
  lz_block_t *b = (lz_block_t *)p;
  if (!block_maybe_free(b)) return;
  if (span_chunk(s)->heap != heap) {
    if (remote_in_flight(b)) lz_fatal_pointer("double free", "realloc", p);
    return;
  }
  heap_enter(heap);
  /* A medium block is free when its span is (used 0: cached) or when it
   * is parked on its front span's list (medium.c, "Front spans"). */
  bool medium_free = s->kind == SPAN_MEDIUM && (s->used == 0 || (s->to_local == 0 && s->free == b));
  if ((s->kind == SPAN_SLAB && slab_contains_free(s, b)) || medium_free || remote_in_flight(b))
    lz_fatal_pointer("double free", "realloc", p);
  heap_leave(heap);
}

/* malloc_usable_size of what usable_fast (alloc.h) left: NULL, large
 * blocks, packed spans, level 2; anything else is reported by
 * ptr_resolve. */
size_t heap_usable_size(const void *p, const char *func) {
  if (p == NULL) return 0;
  if (lz_secure2 && chunkmap_kind((uintptr_t)p) == CHUNK_SPANS) return secure_usable(p, func, false);
  ptr_info_t info = ptr_resolve(p, func);
  if (info.large != NULL) return large_usable(info.large);
  if (lz_unlikely(span_packed(info.span))) {
    pack_check(info.span, p, func, true);
    return pack_usable(info.span, p);
  }
  return info.span->block_size;
}

/* p's span when p is a block of the calling thread's heap in a span that
 * takes fast frees, by free's fast path's checks (alloc.h: the chunk map
 * byte is the thread's heap id, p a block boundary below xfast_cap, the
 * carved limit; a packed span, a full one, one with holes and level 2
 * never pass), without ptr_resolve's general lookup; else NULL. */
lz_inline span_t *realloc_own_span(const void *p) {
  uintptr_t a = (uintptr_t)p;
  if (chunkmap_byte(a) != lz_heap_tls->fast_id) return NULL;
  span_t *s = chunk_span_of((const chunk_t *)(a & ~LZ_CHUNK_MASK), a);
  return span_slab_index(s, a) < atomic_load_explicit(&s->xfast_cap, memory_order_relaxed) ? s : NULL;
}

/* realloc's part that needs the heap (api.c allocates, copies and frees).
 * True when done: *out is p, resized where it is, or a large block
 * resized by its pages (NULL, errno ENOMEM, if it could not be). False: a
 * new block must take over *copy bytes of p. */
lz_text_hot bool heap_realloc_in_place(void *p, size_t size, void **out, size_t *copy) {
  size_t usable;
  ptr_info_t info = {NULL, NULL};
  span_t *own = NULL;
  *out = p;
  if (lz_secure2 && chunkmap_kind((uintptr_t)p) == CHUNK_SPANS) {
    /* Level 2 checks the block whole (header and tail canary, naming
     * realloc) and always copies: the new block's canary follows its size. */
    usable = secure_usable(p, "realloc", true);
  } else if ((own = realloc_own_span(p)) == NULL && (info = ptr_resolve(p, "realloc")).large != NULL) {
    /* A large block is resized by its pages, never copied; only a shrink
     * to 1 MiB or less, below half its largest request, copies into a
     * smaller block (realloc_large). */
    if (realloc_large(info.large, p, size, out)) return true;
    usable = large_usable(info.large);
  } else {
    span_t *s = own != NULL ? own : info.span;
    usable = s->block_size;
    if (lz_unlikely(span_packed(s))) {
      pack_check(s, p, "realloc", false);
      usable = pack_usable(s, p);
    }
    /* A block that looks free is never handed back in place: its owner
     * confirms a double free here, else the caller's free screens it.
     * Every word block_maybe_free names has the key's top bits: their one
     * compare settles a live block's word, as on free's fast path (bench
     * mstress 1 0.1: realloc 133 -> 120 instructions a call). */
    if (LZ_SECURE && lz_unlikely(word_maybe_link((lz_block_t *)p))) realloc_screen(p, s);
    /* A medium block of the caller's own heap shrinks in place, down to
     * the medium sizes, its last pages freed (medium_shrink); once grown
     * in place (SPAN_GROWN), only when they are at least an eighth of its
     * pages (MEDIUM_SHRINK_SLACK): a block that went back and forth by a
     * page gave the page back and took it again each time (realloc
     * between 32,752 and 32,784 B: 405 instructions a call, tcmalloc
     * 67). A block cut once to its length (bench realloc-shrink) gives
     * back all it can: a slack for every block kept 2.5 % more there. */
    else if (size <= usable && size > LZ_SLAB_MAX && s->kind == SPAN_MEDIUM && span_chunk(s)->heap == lz_heap_tls) {
      size_t keep = (size + LZ_PAGE_SIZE - 1) >> LZ_PAGE_SHIFT;
      if (keep < s->npages && (!(s->flags & SPAN_GROWN) || (s->npages - keep) * MEDIUM_SHRINK_SLACK >= s->npages))
        medium_shrink(lz_heap_tls, s, size);
      return true;
    } else if (size <= usable && size >= usable / REALLOC_SHRINK_COPY) return true;
    /* A medium block of the caller's own heap grows into the free pages
     * after it when it can (medium_grow), unless the step moves it into a
     * large block (realloc_by_steps). */
    else if (size > usable && size <= LZ_MEDIUM_MAX && !realloc_by_steps(usable, size) && s->kind == SPAN_MEDIUM &&
             span_chunk(s)->heap == lz_heap_tls && medium_grow(lz_heap_tls, s, size))
      return true;
  }
  *copy = usable < size ? usable : size;
  return false;
}

/* realloc copied p into a large block: p is freed, its pages given back
 * at once if it is a medium block of the caller's heap taking fast frees
 * (realloc_own_span: the free fast path's checks; medium.c,
 * medium_free_moved), else as free frees it. */
lz_text_late lz_noinline void heap_realloc_moved(void *p) {
  span_t *s = realloc_own_span(p);
  if (s == NULL || s->kind != SPAN_MEDIUM || lz_secure2) {
    free_fast(p);
    return;
  }
  heap_t *heap = own_medium_enter(p, "realloc");
  medium_free_moved(heap, s, p);
  poll_janitor(heap);
}
