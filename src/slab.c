/* slab.c: small blocks (<= LZ_SLAB_MAX, 16 KiB) in slab spans, and the heap's class
 * queues of slabs.
 *
 * Allocation pops span->free (inline, alloc.h). When it is empty the slow
 * path here walks the class queue: for each span it takes local_free as the
 * new free list, else carves the next blocks of the untouched tail (lazy
 * bump-pointer initialisation, at most a page of blocks at a time), else
 * marks the span FULL and unlinks it. Installing a list charges all its
 * blocks to span->used at once, so the fast path counts nothing
 * (internal.h, span invariants; the statistics read the spans' counts,
 * heap_stats_t). The owner's fast free pushes a block of a queue's first
 * span on that span's `free` (LIFO: the class's next allocation takes the
 * block freed last, whose lines are still in the cache; span.to_local), and
 * a block of any other span on its local_free. A FULL span rejoins the queue when
 * one of its blocks is freed. A span whose last block is freed is retired
 * (its pages go back to the chunk) unless it is the queue's current span.
 * Only the heap's owner runs this code (see internal.h, Ownership).
 */
#include "security.h"
#include "sizeclass.h"

/* The fast paths' sentinels: the span of every direct[] entry whose queue
 * is empty (free == NULL: the fast path goes slow), and the heap of a
 * thread that has none yet (lz_heap_tls's first value, heap.c), whose
 * direct[] all name it and whose queues are empty (their NULLs are also
 * lz_fkeep_none's; internal.h: only those fields exist, in the RELRO page the loader writes anyway, not 3 KiB of .data
 * beside the hot variables, where the process's first heap lies: heap.c). */
lz_ro_hot const span_t lz_span_empty;
lz_ro_hot const heap_empty_t lz_heap_empty_direct = {
  .direct = {[0 ... LZ_DIRECT_SLOTS - 1] = LZ_SPAN_EMPTY},
  .slow_count = HEAP_TICK_EVERY - 1,
  .fast_id = CHUNK_HEAP_NONE,
};

static void slab_fast_sync(heap_t *heap, span_t *s);

/* The front of a queue moved (queue_remove, queue_push_front) in a heap
 * that keeps foreign lists, the only one whose spans are ever diverted
 * (remote.c, "Own blocks"): the new first span takes fast frees again if
 * it was diverted, the old one (NULL: none) is diverted if its class's
 * list is installed. */
lz_text_thread static lz_noinline void slab_front_moved(heap_t *heap, span_t *first, span_t *old) {
  if (first != NULL && atomic_load_explicit(&first->xfast_cap, memory_order_relaxed) == 0) slab_fast_sync(heap, first);
  if (old != NULL && span_diverted(heap, old)) slab_fast_sync(heap, old);
}

/* The first span of a queue holds one extra count in `used` (its pin), so
 * frees never retire the span malloc is carving from: a span whose count
 * reaches zero is never a queue's first. Its `to_local` 0 moves with the
 * pin: the free fast path pushes that span's blocks on its free list. */
/* Spare slabs. A slab whose last block comes back while it is not the
 * first of its queue is retired (slab_retire), unless its class is
 * churning: then it stays linked with all its blocks on local_free,
 * flagged SPAN_SPARE, and the class's next slab is taken from it by the
 * slow path's walk (slab_malloc_slow: its local_free at once) instead of
 * a new span carved again. A program that empties and fills the same
 * slabs round after round (bench glibc-simple: batches of 25 to 1600
 * blocks of one size) made, carved and retired slabs every round.
 * Churning: the class made SPARE_MIN_MADE slabs (a small process's
 * classes never do: this code stays out of the hot text) and took a slab
 * (new, or another of its queue moved to the front) since the heap's last
 * look (heap_t.slab_taken). Bounds: the heap's spares hold at most
 * SPARE_MAX_PAGES, and a chunk never holds only spares (chunk_t
 * .spare_pages): a slab that is the last other span of its chunk is
 * retired, and span_free releases a chunk's spares before it frees the
 * last other span there (lz_span_spares_release), so the chunk empties
 * (pages.c gives it back or keeps it whole) as it did without spares
 * (bench footprint measures right after its frees, before any look:
 * without this bound its freeall figure went 89.7 -> 451 MiB). A class
 * about to make a new slab has the other classes' spares released first,
 * so it takes their pages rather than new ones (slab_spares_yield).
 * Released otherwise: by the look (slab_spares_look) of the owner's purge
 * tick, of the janitor's pass and of an orphan's collection, when its
 * class took no slab since the look before (a program that stops keeps no
 * spare past two looks; one that goes quiet has the janitor give them
 * back); by a forced collect (malloc_trim, memory short, an orphan
 * collected whole). The janitor may unlink a spare holding the heap lock:
 * it is not the first of its queue, so no lock-free path reads it or its
 * links (internal.h, janitor protocol), and with no block out no free
 * reaches it. A spare stays open to the hole puncher as any slab that is
 * not the first. It stops being a spare when it leaves its queue or
 * becomes the first (queue_remove). Measured (callgrind, Ir per pair of
 * the bench loop; tcmalloc 86-89): 4096 B in batches of 25 / 100 / 400,
 * 160 / 203 / 204 -> 95 / 108 / 107; 1024 B in batches of 100 / 400,
 * 88 / 100 -> 70 / 74. One spare per class took only the batches of 25. */
#define SPARE_MAX_PAGES 1024 /* 4 MiB a heap */
#define SPARE_MIN_MADE 8
lz_text_late static lz_noinline void spare_clear(heap_t *heap, span_t *s) {
  s->flags &= (uint8_t)~SPAN_SPARE;
  heap->spare_pages[s->cls] = (uint16_t)(heap->spare_pages[s->cls] - s->npages);
  heap->spare_total -= s->npages;
  span_chunk(s)->spare_pages = (uint16_t)(span_chunk(s)->spare_pages - s->npages);
  if (heap->spare_pages[s->cls] == 0) heap->spare_classes &= ~(1ull << s->cls);
}

/* span_free is about to free a span of c that leaves only spares in it:
 * they go back first, so the chunk empties (pages.c gives it back or keeps
 * it whole) as it would have without them. Heap held. */
lz_text_late static void spares_chunk_release(heap_t *heap, chunk_t *c) {
  for (uint64_t m = heap->spare_classes; m != 0 && c->spare_pages != 0; m &= m - 1) {
    span_queue_t *q = &heap->queues[__builtin_ctzll(m)];
    for (span_t *s = q->first, *next; s != NULL; s = next) {
      next = s->next;
      if ((s->flags & SPAN_SPARE) && span_chunk(s) == c) {
        queue_remove(heap, q, s); /* clears the flag and counts it off */
        span_free(heap, s);
      }
    }
  }
}

/* The class's spares (if any) go back to their chunks. Heap held. */
void slab_spare_release(heap_t *heap, unsigned cls) {
  span_queue_t *q = &heap->queues[cls];
  for (span_t *s = q->first, *next; s != NULL && (heap->spare_classes & (1ull << cls)); s = next) {
    next = s->next;
    if (s->flags & SPAN_SPARE) {
      queue_remove(heap, q, s); /* clears the flag and counts it off */
      span_free(heap, s);
    }
  }
}

/* The look (heap held, see above), at heap time `now`: at most once per
 * purge delay, whoever looks (the owner's tick, the janitor), so a spare
 * goes back only once its class took no slab for a whole delay at least:
 * spares of classes that took none since the last look go back, and every
 * class starts a new period. Returns whether spares are left (the janitor
 * looks again). Not hot text: only heaps with spares come here. */
lz_text_late lz_noinline bool slab_spares_look(heap_t *heap, uint64_t now) {
  lz_assert(heap->spare_classes != 0); /* without spares heap_purge only starts a new period */
  if (now < heap->spare_look_at) return true;
  long delay = opt_get(OPT_PURGE_DELAY);
  heap->spare_look_at = now + (uint64_t)(delay > 0 ? delay : 0);
  uint64_t idle = heap->spare_classes & ~atomic_load_explicit(&heap->slab_taken, memory_order_relaxed);
  atomic_store_explicit(&heap->slab_taken, 0, memory_order_relaxed);
  while (idle != 0) {
    unsigned cls = (unsigned)__builtin_ctzll(idle);
    idle &= idle - 1;
    slab_spare_release(heap, cls);
  }
  return heap->spare_classes != 0;
}

/* A new slab of class cls is about to be made: the other classes' spares
 * go back first, so it may take their pages instead of touching new ones
 * (bench glibc-simple, one size at a time: each size's spares stayed until
 * the next look while the next sizes made slabs elsewhere; peak RSS 8.28
 * -> 10.53 MiB before this). Not hot text. */
lz_text_late static lz_noinline void slab_spares_yield(heap_t *heap, unsigned cls) {
  for (uint64_t m = heap->spare_classes & ~(1ull << cls); m != 0; m &= m - 1)
    slab_spare_release(heap, (unsigned)__builtin_ctzll(m));
}

/* Idle current slabs. The first span of a class queue holds the pin
 * (above), so no free retires it and the hole puncher leaves it alone
 * (below, "Holes"): a class a program used for a while and then left
 * kept its current slab resident for good, every page of it, with no
 * block out (a service that makes many sizes at start-up and few later:
 * 26 classes filled and freed, then 1.5 s of one other size, kept 1.4
 * MiB resident beyond the start, a slab of each). So the owner looks at
 * its classes' first spans at most every LZ_FIRSTS_LOOK_MS (the purge delay
 * if longer), and one found with no block out at two looks in a row goes
 * back to its chunk (its pages then decay as any free pages); the
 * class's next allocation makes a slab again, on free dirty pages first,
 * as after a trim, and small again (slabs_made, below). Looks a purge
 * delay apart (10 ms) released the slabs of classes that a working set
 * empties now and then and made them again, each time on pages that had
 * not decayed yet: bench glibc-thread-1 (sizes to 32 KiB, inverse-square:
 * the biggest classes hold a block or none) peaked at 2.59 MiB against
 * 2.46-2.53, thread-churn at 3.07-3.14 against 2.95-3.00; with 500 ms,
 * 2.46 and 2.95. Only the
 * owner, and only at an allocation slow path's entry (heap.c,
 * heap_tick_entry), where no caller holds a span: malloc's fast path pops
 * from the first span without the heap lock, so no other thread may
 * unlink it. A first span's count holds the blocks on its free list
 * (internal.h, span invariants), so the look gives that list back first
 * (slab_uncache: a walk of it, as trim and thread exit do) and reads the
 * exact count then; malloc takes the blocks back at its next refill in
 * O(1) (slab_take_local). A class left alone keeps its list empty, so
 * later looks cost a compare; a class in use pays a walk of its list,
 * at most once per delay. FIRSTS_LOOK_STEPS bounds the links walked by
 * one look: a class whose list would pass what is left of it is skipped
 * (its bit cleared, so it goes no sooner) and looked at again next time
 * (a span's list holds at most 4,096 blocks, so at least two classes'
 * lists fit). Start-up's packed span is no class's. */
#define FIRSTS_LOOK_STEPS 8192
lz_text_late lz_noinline void slab_firsts_look(heap_t *heap, uint64_t now) {
  heap->firsts_look_at = slab_firsts_next(now);
  if (heap->firsts_look_at == UINT64_MAX || heap->startup) return;
  uint32_t budget = FIRSTS_LOOK_STEPS;
  for (unsigned c = 1; c < LZ_CLASSES; c++) {
    span_queue_t *q = &heap->queues[c];
    span_t *s = q->first;
    uint64_t bit = 1ull << c;
    if (s == NULL || span_packed(s)) {
      heap->firsts_empty &= ~bit;
      continue;
    }
    if (s->free != NULL) {
      uint32_t listed = (uint32_t)s->used - 1u; /* at most */
      if (listed > budget) {
        heap->firsts_empty &= ~bit;
        continue;
      }
      budget -= listed;
      slab_uncache(heap, s);
    }
    if (s->used != 1) {
      heap->firsts_empty &= ~bit;
    } else if (!(heap->firsts_empty & bit)) {
      heap->firsts_empty |= bit; /* no block out: at the next look too, it goes */
    } else {
      heap->firsts_empty &= ~bit;
      queue_remove(heap, q, s); /* drops the pin: used == 0 */
      span_free(heap, s);
      /* Its next slab small again (slab_new): a class that goes idle and
       * comes back a little at a time (bench thread-churn: threads of
       * 200 blocks of 8 B to 4 KiB adopt the heaps of those that ended)
       * grew to full-size slabs, one made per return, 1.5 MiB more. */
      if (heap->slabs_made[c] > 1) heap->slabs_made[c] = 1;
    }
  }
}

/* slab_retire's: keeps s (empty, not first) as a spare of its class if
 * it may (above). Not hot text: only a class that made SPARE_MIN_MADE
 * slabs comes here, which a small process's classes do not. */
lz_text_late static lz_noinline bool spare_keep(heap_t *heap, span_t *s) {
  chunk_t *c = span_chunk(s);
  if (heap->spare_total + s->npages > SPARE_MAX_PAGES || c->free_pages + c->spare_pages + s->npages >= LZ_USABLE_PAGES)
    return false;
  if (heap->spare_classes == 0) janitor_notify(); /* an idle heap's go back all the same */
  lz_span_spares_release = spares_chunk_release;
  heap->spare_classes |= 1ull << s->cls;
  heap->spare_pages[s->cls] = (uint16_t)(heap->spare_pages[s->cls] + s->npages);
  heap->spare_total += s->npages;
  c->spare_pages = (uint16_t)(c->spare_pages + s->npages);
  s->flags |= SPAN_SPARE;
  return true;
}

lz_text_hot void queue_remove(heap_t *heap, span_queue_t *q, span_t *s) {
  bool was_first = q->first == s;
  if (lz_unlikely(s->flags & SPAN_SPARE)) spare_clear(heap, s);
  if (s->prev) s->prev->next = s->next; else q->first = s->next;
  if (s->next) s->next->prev = s->prev; else q->last = s->prev;
  s->next = s->prev = NULL;
  if (was_first) {
    s->used--;                         /* s loses the pin */
    span_to_local_set(s, 1);
    if (q->first) {                    /* its successor gains it */
      if (lz_unlikely(q->first->flags & SPAN_SPARE)) spare_clear(heap, q->first);
      q->first->used++;
      span_to_local_set(q->first, 0);
    }
    /* Both ends of the pin's move, as queue_push_front's: s is diverted
     * should it be linked again (slab_malloc_slow moves a dry first span
     * to the back of its queue). */
    if (lz_unlikely(heap->foreign != NULL)) slab_front_moved(heap, q->first, s);
    /* A first span has no holes (slab_malloc_local takes its local_free
     * as it is): its successor's are filled now. */
    if (q->first && lz_unlikely(q->first->flags & SPAN_HOLES)) slab_fill_holes(heap, q->first);
    heap_direct_update(heap, s->cls);
  }
}

lz_text_hot void queue_push_front(heap_t *heap, span_queue_t *q, span_t *s) {
  span_t *old = q->first;
  lz_assert(old == NULL || old->free == NULL); /* a span leaves the front only empty-handed */
  s->prev = NULL;
  s->next = old;
  if (old) old->prev = s; else q->last = s;
  q->first = s;
  /* The class churns (spare slabs, above). Writers hold the heap: a load
   * and a store, not a locked or. */
  uint64_t taken = atomic_load_explicit(&heap->slab_taken, memory_order_relaxed);
  atomic_store_explicit(&heap->slab_taken, taken | 1ull << s->cls, memory_order_relaxed);
  s->used++;
  span_to_local_set(s, 0);
  if (old) span_to_local_set(old, 1);
  if (lz_unlikely(heap->foreign != NULL)) slab_front_moved(heap, s, old);
  heap_direct_update(heap, s->cls);
  if (old && --old->used == 0) slab_retire(heap, old);
}

static void queue_push_back(heap_t *heap, span_queue_t *q, span_t *s) {
  if (q->first == NULL) { queue_push_front(heap, q, s); return; }
  s->next = NULL;
  s->prev = q->last;
  q->last->next = s;
  q->last = s;
}

/* Start-up (see heap_t.startup): small sizes come from the power-of-two
 * classes, each of which serves the sizes above the previous one, so a
 * small process touches a page or so per power of two where it would touch
 * one per class (cat uses some 20 classes: 17 slab pages, 8 in start-up).
 * Sizes above LZ_DIRECT_MAX that are no power of two take the slow path
 * meanwhile (the fast path looks at their own class's queue), which is
 * why start-up also ends after LZ_STARTUP_SLOW slow-path entries. The
 * bytes given away are bounded by the LZ_STARTUP_PAGES pages of slabs made
 * in start-up: then every size gets its own class again (blocks already
 * handed out stay where they are, and the power-of-two slabs go on serving
 * their own class). */
unsigned slab_class_for(const heap_t *heap, unsigned cls) {
  if (lz_likely(!heap->startup)) return cls;
  uint32_t size = lz_class_size[cls];
  uint32_t p2 = size <= 16 ? 16 : 1u << (32 - __builtin_clz(size - 1));
  return size_to_class(p2);
}

lz_text_hot void slab_startup_end(heap_t *heap) {
  if (!heap->startup) return;
  heap->startup = false;
  chunk_region_map(heap, false); /* free's fast path takes the region from now on (chunk.c, "Regions") */
  pack_close(heap);
  heap_direct_all(heap);
}

/* Packing armed: a heap's first blocks up to LZ_PACK_MAX, LZ_PACK_USES
 * at most, packed into a span of its own (pack.c), as start-up's are, for
 * two kinds of heap outside start-up:
 * - Fork children. A child's new blocks would come from its parent's
 *   slabs, one class's on one page and that page shared with the parent
 *   until written: a child that frees a few of the parent's blocks and
 *   allocates 8 of 8 sizes copied 7 pages for them (bench forkstorm,
 *   fork: glibc's carve theirs from one or two). Its first call takes back
 *   the heap the fork handler set aside (init.c; heap.c, heap_fork_resume)
 *   and arms this.
 * - A new thread's heap (heap.c, heap_get_slow; not an adopted orphan's,
 *   whose slabs are warm). A thread's first blocks of a few sizes took a
 *   page of a slab each: 400 threads that allocate 8 blocks of 8 classes
 *   and wait peaked at 20.3 MB, 47 KB a thread (glibc 5.7 MB, 11 KB),
 *   now 10.7 MB, 23 KB (the heap's page, its chunk's header, the span).
 *   Its heap_abandon closes a span still open.
 * The span opens on the first such malloc (a child that only frees opens
 * none); until it closes (full, or used up), direct[] sends those sizes
 * to the slow path, which serves them from the span, and
 * heap_direct_update leaves them so; small_malloc (heap.c) ends it once
 * the span is closed. Not for a heap still in start-up (its blocks are
 * packed or on power-of-two slabs already). Writes only the heap, whose
 * first page the child's slow path writes anyway. */
lz_text_hot void slab_pack_arm(heap_t *heap) {
  if (heap->startup || heap->pack != NULL || lz_secure2 || LZ_HEAPS > 0) return;
  /* Opaque to the compiler: stored side by side, the two flags become one
   * 16-bit store of a constant read from .rodata (a page fault). */
  bool on = true;
  __asm__("" : "+r"(on));
  heap->pack_armed = on;
  heap->pack_done = !on;
  heap->pack_uses = 0;
  /* The sizes of the classes up to LZ_PACK_MAX (a class's size). */
  for (size_t i = 0; i <= LZ_PACK_MAX / 16; i++) heap->direct[i] = LZ_SPAN_EMPTY;
}

lz_text_hot void slab_pack_end(heap_t *heap) {
  heap->pack_armed = false;
  heap_direct_all(heap);
}

/* direct[] made again for every size (its classes' own, out of start-up
 * or a fork child's packing). Not inlined: run once or twice in a
 * process, its code is better kept small (cmake/layout.ld, the hot code's
 * window). */
lz_text_hot lz_noinline void heap_direct_all(heap_t *heap) {
  for (unsigned cls = 1; cls < LZ_CLASSES && lz_class_size[cls] <= LZ_DIRECT_MAX; cls++)
    heap_direct_update(heap, cls);
}

lz_text_hot lz_noinline void heap_direct_update(heap_t *heap, unsigned cls) {
  uint32_t size = lz_class_size[cls];
  if (size > LZ_DIRECT_MAX) return;
  if (lz_unlikely(heap->pack_armed) && size <= LZ_PACK_MAX) return; /* packing armed (pack.c) */
  size_t lo = cls == 1 ? 0 : lz_class_size[cls - 1] / 16 + 1;
  if (lz_unlikely(heap->startup)) {
    if (slab_class_for(heap, cls) != cls) return; /* its sizes go to a power of two */
    lo = cls == 1 ? 0 : size / 32 + 1;              /* every size above size / 2 */
  }
  span_t *s = heap->queues[cls].first;
  if (heap->foreign != NULL && (heap->foreign[cls].flags & FOREIGN_INSTALLED)) s = &heap->foreign[cls];
  else if (s == NULL) s = LZ_SPAN_EMPTY;
  for (size_t i = lo; i <= size / 16; i++) heap->direct[i] = s;
}

/* Installs `n` blocks as the free list: they count as used until freed. */
/* Brings s->xfast_cap up to date with s's state (span invariants,
 * internal.h): after any change to capacity, SPAN_FULL or SPAN_HOLES. */
static void slab_fast_sync(heap_t *heap, span_t *s) {
  /* HOLES first: the janitor's calls (holes punched) read no more. */
  bool fast = !(s->flags & (SPAN_FULL | SPAN_HOLES)) && !lz_secure2 && !span_diverted(heap, s);
  atomic_store_explicit(&s->xfast_cap, fast ? s->capacity : 0u, memory_order_relaxed);
}

/* The owner, holding its heap: s's xfast_cap as its state says now (a
 * span whose class's list was uninstalled since: remote.c, "Own blocks"). */
void slab_fast_resync(heap_t *heap, span_t *s) { slab_fast_sync(heap, s); }

static void slab_charge(heap_t *heap, span_t *s, uint32_t n) {
  (void)heap;
  s->used = (uint16_t)(s->used + n);
}

/* Carves the next blocks of the untouched tail into the (empty) free list:
 * a page of blocks, so that a class used a little touches one page. Blocks
 * over a quarter page in a slab made of clean pages (SPAN_ZERO: never
 * touched, or given back since): those that start on the page where the
 * tail starts (one block from a page up), since linking a block writes its
 * first word, and a page written ahead that the program never asks for is
 * a page fault and a resident page for nothing (python's start-up: 8 page
 * faults fewer, git 3); the slow path per page costs little beside the
 * page fault the program takes there. Elsewhere as many as are carved
 * already, up to 4 (a class in use on resident pages takes a slow path per
 * 4 blocks, not per block). A slab on pages that were all resident when
 * it was made (SPAN_WARM: a program that empties its slabs and makes them
 * again, round after round) carves more at a time: it writes no page
 * that was not written before, and one slow path per carve replaces one
 * per page (bench glibc-simple, batches of 100 blocks of 1 KiB: a new slab
 * and 16 slow paths each round). At most SLAB_CARVE_WARM blocks and
 * SLAB_CARVE_WARM_BYTES: the carved links are read back by the pops that
 * follow, and the heads of blocks a power of two apart share few L1 sets
 * (4 KiB apart: one set of 8 ways). Callgrind's cache simulation, 4096 B
 * in batches of 25: 64 blocks a carve read-missed 369k times against
 * 257k at a page; 32 KiB 289k with 8.5M fewer instructions than 16 KiB
 * (CPU, glibc-simple scale 20: 1.10 s against 1.22 s and 64 blocks' 1.16). */
#define SLAB_CARVE_WARM 64
#define SLAB_CARVE_WARM_BYTES 32768
lz_text_hot void slab_extend(heap_t *heap, span_t *s) {
  lz_assert(s->free == NULL && s->capacity < s->reserved);
  size_t bs = s->block_size;
  uint8_t *start = span_start(s) + (size_t)s->capacity * bs;
  size_t n = LZ_PAGE_SIZE / bs;
  if (s->flags & SPAN_WARM) {
    size_t w = SLAB_CARVE_WARM_BYTES / bs;
    if (w > SLAB_CARVE_WARM) w = SLAB_CARVE_WARM;
    if (n < w) n = w;
  } else if (n < 4) {
    if (s->flags & SPAN_ZERO) n = (LZ_PAGE_SIZE - ((uintptr_t)start & (LZ_PAGE_SIZE - 1)) + bs - 1) / bs;
    else n = s->capacity < 4 ? (s->capacity > n ? s->capacity : (n > 0 ? n : 1)) : 4;
  }
  if (n > (size_t)(s->reserved - s->capacity)) n = s->reserved - s->capacity;
  lz_block_t *b = (lz_block_t *)start;
  for (size_t i = 0; i + 1 < n; i++) {
    lz_block_t *next = (lz_block_t *)((uint8_t *)b + bs);
    block_set_next(b, next);
    b = next;
  }
  block_set_next(b, NULL);
  s->free = (lz_block_t *)start;
  /* Other threads read capacity to validate pointers (heap.c): atomic. */
  __atomic_store_n(&s->capacity, (uint16_t)(s->capacity + n), __ATOMIC_RELAXED);
  slab_fast_sync(heap, s);
  slab_charge(heap, s, (uint32_t)n);
}

/* p is a block boundary below the carved limit of s (slab or medium). */
lz_text_thread bool slab_holds(const span_t *s, const void *p) { return span_holds(s, (uintptr_t)p); }

/* span_pop for the slow paths: the block and the link it holds must lie in
 * the span, else the list was overwritten (a write after free, an overflow
 * from the block below): reported, where following the link would crash.
 * A head outside the span is named itself (malloc's fast path leaves the
 * bad link it popped as the head, alloc.h), before it is read. */
lz_text_hot void *slab_pop_checked(span_t *s) {
  if (LZ_SECURE) {
    lz_block_t *b = s->free;
    if (lz_unlikely(!span_holds(s, (uintptr_t)b))) lz_fatal_pointer("corrupted free list", "malloc", b);
    lz_block_t *next = block_next(b);
    if (lz_unlikely(next != NULL && !span_holds(s, (uintptr_t)next)))
      lz_fatal_pointer("corrupted free list", "malloc", b);
  }
  return span_pop(s);
}

/* Blocks waiting in the span's free list (walked: slow paths only). */
uint32_t slab_cached(const span_t *s) {
  uint32_t n = 0;
  for (lz_block_t *b = s->free; b != NULL && n <= s->capacity; b = block_next(b)) n++;
  return n;
}

/* Gives the span's free list back: its blocks join local_free and stop
 * counting as used (so an orphan's counts are exact, and a span may leave
 * the front of its queue). */
void slab_uncache(heap_t *heap, span_t *s) {
  (void)heap;
  if (s->free == NULL) return;
  uint32_t n = 1;
  lz_block_t *tail = s->free;
  for (lz_block_t *next; (next = block_next(tail)) != NULL; tail = next) n++;
  block_set_next(tail, s->local_free);
  s->local_free = s->free;
  s->free = NULL;
  s->used = (uint16_t)(s->used - n);
}

static span_t *slab_new(heap_t *heap, unsigned cls) {
  /* First slab small, then doubling up to the class's full slab; fewer
   * pages (down to one block's) where free dirty pages would otherwise
   * wait beside clean ones (span.c, span_alloc_fit). */
  size_t pages = (size_t)class_first_slab_pages(cls) << (heap->slabs_made[cls] < 7 ? heap->slabs_made[cls] : 7);
  if (pages > class_slab_pages(cls)) pages = class_slab_pages(cls);
  if (lz_unlikely(heap->startup)) {
    heap->startup_pages = (uint16_t)(heap->startup_pages + pages);
    if (heap->startup_pages >= LZ_STARTUP_PAGES) slab_startup_end(heap);
  }
  if (heap->slabs_made[cls] < UINT8_MAX) heap->slabs_made[cls]++;
  span_t *s = span_alloc_fit(heap, pages, class_min_slab_pages(cls), 1, SPAN_SLAB);
  if (s == NULL) return NULL;
  pages = s->npages;
  uint32_t bs = lz_class_size[cls];
  span_set_block_size(s, bs);
  s->reserved = (uint16_t)((pages << LZ_PAGE_SHIFT) / bs);
  s->cls = (uint8_t)cls;
  slab_fast_sync(heap, s);
  return s;
}

/* A block of the class's current span without other slow-path work: from
 * its free list (calloc comes here with one), else from the blocks the
 * owner freed, which become the free list. A thread that allocates and
 * frees one block of a class with few blocks a page comes here whenever
 * the list runs out. NULL if the span has neither. */
void *slab_malloc_local(heap_t *heap, unsigned cls) {
  span_t *s = heap->queues[cls].first;
  if (s == NULL) return NULL;
  if (s->free == NULL) {
    if (s->local_free == NULL) return NULL;
    slab_take_local(s, true); /* the first span holds the pin */
  }
  return slab_pop_checked(s);
}

/* Borrowing. Every class holds its own freed blocks, resident, so a
 * program that keeps a few blocks of many sizes (buffers grown step by
 * step) holds a freed block in each class it passed through. Before a
 * class above 512 B carves memory it never touched, it takes a block
 * already freed in a class at most a quarter bigger (from a page up: at
 * most twice its size, from a class that took no slab since the heap's
 * last look, below), if one waits at the front of its queue: the block
 * stays in its own
 * span and goes back there when freed. Only from a class whose block size
 * is a multiple of the requested class's largest power-of-two divisor, so
 * a block is aligned as its own class's would be (heap_malloc_aligned picks
 * classes by that); never in start-up (its classes are powers of two).
 * Beyond a quarter, only from an idle class (its bit of heap_t.slab_taken
 * clear): a program that frees a burst of blocks and allocates the same
 * mix again (a server's requests) would otherwise lend a 16 KiB class's
 * freed blocks to the 8 and 4 KiB classes, whose own freed pages then
 * wait unused while the 16 KiB class makes slabs on pages it never had,
 * a quarter to a half of each lent block resident and idle (bench
 * burst-repeat: 8 rounds of 10,000 blocks of 20 sizes, 8 B-16 KiB; with
 * span.c's look at 16 chunks, the peak grew from 19.2 MiB in round 0 to
 * 21.1-21.2 lending as before, 20.2-20.4 lending only from idle classes,
 * 20.2 never lending beyond a quarter; glibc's stayed at 19.3). A class
 * that allocates will want its freed blocks back; one that took no slab
 * for a look's period (a buffer size a program passed through) lends
 * them: git log -p peaked at 41.1-41.4 MiB so, 41.4-41.8 lending as
 * before, 41.5-42.9 never lending beyond a quarter. */
/* Classes up to 512 B are at most 64 B apart and a fresh slab of them costs
 * a page or two: borrowing would add a slow-path scan for little memory. */
#define BORROW_MIN_SIZE 512
/* A borrowed block is at most 1/BORROW_NEAR_DIV bigger than asked: the
 * waste the class spacing allowed before the fifth class per power of two
 * (1.25x steps). From BORROW_FAR_MIN up, BORROW_FAR_TIMES the size: a
 * class of whole pages carves at least a page of memory that may never
 * have been touched, while a freed block of a class above it is resident
 * already; at a program's peak these classes' freed blocks are most of
 * what a segregated heap holds beyond a coalescing one (git log -p: 680
 * KiB of the 2-16 KiB classes' pages held no live block). Every borrowed
 * block costs a slow path (the class keeps no list of its own), which a
 * class of whole pages amortizes over the page it writes: from 2 KiB up,
 * bench mleak took 2.1 times the slow-path allocations, from 4 KiB 1.04
 * times. Four times the size lowered no peak further. */
#define BORROW_NEAR_DIV 4
#define BORROW_FAR_MIN 4096
#define BORROW_FAR_TIMES 2
lz_text_hot static void *slab_borrow(heap_t *heap, unsigned cls) {
  uint32_t size = lz_class_size[cls];
  if (size <= BORROW_MIN_SIZE || heap->startup) return NULL;
  uint32_t align = size & -size;
  uint32_t near = size + size / BORROW_NEAR_DIV;
  uint32_t limit = size >= BORROW_FAR_MIN ? size * BORROW_FAR_TIMES : near;
  uint64_t taken = atomic_load_explicit(&heap->slab_taken, memory_order_relaxed);
  for (unsigned c = cls + 1; c < LZ_CLASSES && lz_class_size[c] <= limit; c++) {
    if (lz_class_size[c] % align != 0) continue;
    if (lz_class_size[c] > near && (taken >> c & 1)) continue; /* far, and c allocates */
    span_t *s = heap->queues[c].first;
    if (s != NULL && (s->free != NULL || s->local_free != NULL)) return slab_malloc_local(heap, c);
  }
  return NULL;
}

/* malloc's short way (heap.c, malloc_slow: no lock, nothing sent home
 * waiting): a block of the class's current span (slab_malloc_local), else
 * a borrowed one where slab_malloc_slow would borrow first, before it
 * takes the lock's other work: the class has no span, or its current span
 * has nothing freed and an untouched tail, or is dry with no span behind
 * it (the walk would find nothing). A class that keeps borrowing
 * (its own blocks all out, a bigger class's freed) thus takes no lock per
 * allocation. NULL: the full slow path. */
void *slab_malloc_short(heap_t *heap, unsigned cls) {
  void *p = slab_malloc_local(heap, cls);
  if (p != NULL) return p;
  span_t *s = heap->queues[cls].first; /* NULL, or nothing freed */
  if (s != NULL && ((s->capacity >= s->reserved && s->next != NULL) || (s->flags & SPAN_HOLES))) return NULL;
  return slab_borrow(heap, cls); /* holes_hot is the lock's (purge.c): untouched, as slab_malloc_local */
}

void *slab_malloc_slow(heap_t *heap, unsigned cls) {
  span_queue_t *q = &heap->queues[cls];
  heap->holes_hot = 1; /* slabs are being allocated from (purge.c, holes) */
  span_t *s = q->first;
  while (s != NULL) {
    span_t *next = s->next;
    lz_assert(s->free == NULL); /* the first span's list ran out; others have none */
    if (lz_unlikely(s->flags & SPAN_HOLES)) slab_fill_holes(heap, s);
    if (s->local_free != NULL) {
      slab_take_local(s, s == q->first);
    } else if (s->capacity < s->reserved) {
      void *p = slab_borrow(heap, cls);
      if (p != NULL) return p;
      slab_extend(heap, s);
    }
    if (s->free != NULL) {
      if (s != q->first) {
        queue_remove(heap, q, s);
        queue_push_front(heap, q, s);
      }
      return slab_pop_checked(s);
    }
    /* Nothing left. The first span (malloc ran it dry) is not parked:
     * the frees of its blocks then stay on the fast path (on local_free)
     * and its last one retires it or keeps it as a spare, as for any slab
     * that is not the first. A program that fills and empties a few slabs
     * of a class round after round (bench glibc-simple) parked it here,
     * and each round's first free of it took the slow path to link it
     * again. If the next span has blocks to give (a spare, a slab
     * refilling), it goes to the back of the queue, behind the spans that
     * come back before it; else it stays first while the walk goes on
     * (the span the walk finds, or a new slab, is pushed in front of it).
     * A later walk that finds it dry and not first parks it, as the dry
     * spans behind the first are parked here: without the pin moving, so
     * a queue of them costs no page map writes (span_to_local_set). */
    if (s == q->first) {
      if (next != NULL && next->local_free != NULL) {
        queue_remove(heap, q, s); /* diverted there if the class's foreign list is installed */
        queue_push_back(heap, q, s);
      }
      s = next;
      continue;
    }
    /* Park it until one of its blocks comes back. */
    queue_remove(heap, q, s);
    s->flags |= SPAN_FULL;
    slab_fast_sync(heap, s);
    s = next;
  }
  void *p = slab_borrow(heap, cls);
  if (p != NULL) return p;
  if (lz_unlikely(heap->spare_classes & ~(1ull << cls))) slab_spares_yield(heap, cls);
  s = slab_new(heap, cls);
  if (s == NULL) return NULL;
  slab_extend(heap, s);
  queue_push_front(heap, q, s);
  return span_pop(s);
}

/* The span is empty (so not the current span of its queue, see the pin
 * above): give its pages back. Called by the inline free too (through
 * heap_free_last), so it takes the heap lock itself (nested inside the
 * slow paths). */
lz_text_hot void slab_retire(heap_t *heap, span_t *s) {
  heap_enter(heap); /* before flags: a hole puncher may be setting SPAN_HOLES */
  lz_assert(s->used == 0 && !(s->flags & SPAN_FULL)); /* FULL spans have every block out */
  lz_assert(heap->queues[s->cls].first != s);
  if (heap->slabs_made[s->cls] >= SPARE_MIN_MADE &&
      (atomic_load_explicit(&heap->slab_taken, memory_order_relaxed) >> s->cls & 1) && spare_keep(heap, s)) {
    heap_leave(heap);
    return;
  }
  queue_remove(heap, &heap->queues[s->cls], s);
  span_free(heap, s);
  heap_leave(heap);
}

/* A full slab of the heap got a block back: its slabs are freeing. Arms
 * purge.c's look for holes (purge_heap_holes) once they have been left
 * alone for the heap's holes delay (slab_malloc_slow sets holes_hot). */
static void slab_holes_arm(heap_t *heap) {
  if (heap->holes_at != 0 || opt_get(OPT_PURGE_DELAY) < 0 || heap->secure != NULL) return;
  /* The clock of the heap's last purge tick when it has had one: a fork
   * child that frees a block of a full slab then reads no clock (whose
   * code and data pages it would fault in). */
  heap->holes_at = heap_time(heap, heap->slow_clock != 0 ? heap->slow_clock : os_now_ms()) + holes_delay(heap);
  heap->holes_hot = 0;
  janitor_notify();
}

/* Owner frees the chain head..tail of `count` blocks of a slab that may be
 * FULL (one block: head == tail, count 1). */
lz_text_hot void slab_free_chain(heap_t *heap, span_t *s, lz_block_t *head, lz_block_t *tail, uint32_t count) {
  if (lz_unlikely(span_packed(s))) {
    pack_free_chain(heap, s, head, count);
    return;
  }
  if (lz_unlikely(count > s->used)) lz_fatal_pointer("double free", "free", head);
  block_set_next(tail, s->local_free);
  s->local_free = head;
  if (s->flags & SPAN_FULL) {
    s->flags &= (uint8_t)~SPAN_FULL;
    slab_fast_sync(heap, s);
    queue_push_back(heap, &heap->queues[s->cls], s);
    slab_holes_arm(heap); /* its pages may become holes */
  }
  s->used = (uint16_t)(s->used - count);
  if (s->used == 0) slab_retire(heap, s);
}

/* Is b on the span's free or local_free list? (double-free confirmation)
 * A link out of the span, or a list longer than the span's blocks (a
 * cycle), is reported as a corrupted list. */
bool slab_contains_free(span_t *s, lz_block_t *b) {
  lz_block_t *lists[2] = {s->free, s->local_free};
  for (int l = 0; l < 2; l++) {
    size_t limit = s->capacity;
    for (lz_block_t *x = lists[l]; x != NULL; x = block_next(x)) {
      if (!slab_holds(s, x) || limit-- == 0) lz_fatal_pointer("corrupted free list", "free", x);
      if (x == b) return true;
    }
  }
  /* A block of a hole page is free too (its first word reads zero). */
  return slab_block_in_hole(s, (size_t)((uint8_t *)b - span_start(s)) / s->block_size);
}

/* ---------------------------------------------------------------------------
 * Holes: pages of a live slab given back to the kernel.
 *
 * A slab with a few live blocks keeps every page resident: its free blocks
 * are threaded through their own first words. A page that holds no live
 * block can go back only once no list runs through it, so the blocks
 * overlapping it leave the lists first: the page becomes a hole (its bit
 * in the chunk's hole_map, the span flagged SPAN_HOLES), and the blocks
 * overlapping any hole page of the span (hole blocks) are on no list and
 * not out:
 *   out + |free| + |local_free| + hole blocks == capacity [span.count];
 *   hole_map bits lie only on pages of slab spans flagged SPAN_HOLES, and
 *   no listed block overlaps a hole page [span.holes].
 * A span with holes takes no fast frees (xfast_cap 0): a hole block
 * reads zero, so only the hole map tells a second free of it, which the
 * slow free paths check [span.xfast_cap].
 * The allocation slow path fills a span's holes back (slab_fill_holes)
 * before it takes blocks from it, and so does queue_remove for a span that
 * becomes the first of its queue (the first span of a queue never has
 * holes: slab_malloc_local installs its local_free as it is): the hole
 * blocks join local_free and their pages are committed again by the first
 * touch. A span freed whole forgets
 * its holes (span_free).
 *
 * Who punches (slab_punch_holes): the owner, holding its heap, or the
 * janitor, holding the heap lock (internal.h, janitor protocol), and never
 * in the first span of a queue (malloc's fast path pops its `free` list
 * without the lock). The free fast path pushes on local_free without the
 * lock, so the puncher:
 *   - reads local_free's head once, with acquire (the fast path publishes
 *     each push with a release store, so every link below the head is
 *     visible); the chain below that head is frozen while the heap is held
 *     (only the slow paths take blocks off local_free), and blocks freed
 *     after that read count as live;
 *   - keeps the head block and its pages (the owner's next push links to
 *     it; only an exclusive puncher may move local_free) and relinks the rest of the chain without the hole blocks before
 *     the pages go;
 *   - never writes local_free, used, flags other than SPAN_HOLES, or a
 *     block off that chain.
 * A slab is walked again only when local_free's head has changed since the
 * last look (chunk_t.punch_seen), so repeated passes over idle slabs cost
 * one read each. Only whole carved blocks are punched: a page holding part
 * of a block not
 * yet carved (slab_extend writes there later) stays.
 * ------------------------------------------------------------------------- */
static size_t span_first_page(const span_t *s) { return s->page; }

static bool chunk_page_hole(const chunk_t *c, size_t page) { return bit_get(c->hole_map, page); }

/* Does block idx of s overlap a page set in map? map is the chunk's
 * hole_map with base the span's first page, or a mask with bit i for the
 * span's page i with base 0. */
static bool block_on_pages(const span_t *s, size_t idx, const uint64_t *map, size_t base) {
  size_t off = idx * s->block_size;
  for (size_t p = off >> LZ_PAGE_SHIFT; p <= (off + s->block_size - 1) >> LZ_PAGE_SHIFT; p++)
    if (bit_get(map, base + p)) return true;
  return false;
}

bool slab_block_in_hole(const span_t *s, size_t idx) {
  if (!(s->flags & SPAN_HOLES)) return false;
  return block_on_pages(s, idx, span_chunk(s)->hole_map, span_first_page(s));
}

uint32_t slab_hole_blocks(const span_t *s) {
  uint32_t n = 0;
  if (s->flags & SPAN_HOLES)
    for (size_t i = 0; i < s->capacity; i++) n += slab_block_in_hole(s, i);
  return n;
}

/* The owner is about to take blocks from s: its hole blocks join
 * local_free (in address order, ahead of it) and its pages are holes no
 * more. Their pages fault in again as the blocks are used: a refault,
 * which doubles the heap's holes delay, once per look (purge.c,
 * "Refaults"). */
lz_text_late void slab_fill_holes(heap_t *heap, span_t *s) {
  if (!heap->holes_refilled) {
    heap->holes_refilled = 1;
    if (heap->holes_shift < LZ_DECAY_SHIFT_MAX) heap->holes_shift++;
  }
  chunk_t *c = span_chunk(s);
  size_t first = span_first_page(s);
  uint8_t *start = span_start(s);
  lz_block_t *head = s->local_free;
  for (size_t i = s->capacity; i-- > 0;) {
    if (!block_on_pages(s, i, c->hole_map, first)) continue;
    lz_block_t *b = (lz_block_t *)(start + i * s->block_size);
    block_set_next(b, head);
    head = b;
  }
  s->local_free = head;
  /* Its pages other than holes are dirty already (only holes and free
   * pages are ever decommitted). */
  bitmap_assign(c->hole_map, first, s->npages, false);
  pages_commit(c, first, s->npages);
  s->flags &= (uint8_t)~SPAN_HOLES;
  slab_fast_sync(heap, s); /* frees take the fast path again */
}

/* Punches the pages of s that hold no live block (protocol above); with
 * exclusive (the caller is the owner, or no thread can run the heap's fast
 * paths: an orphan, a shared heap) the head block may go too. Returns the
 * pages that became holes, gathered in batch (the caller flushes it before
 * it lets go of the heap: pages.c, "Batches"). */
lz_text_thread size_t slab_punch_holes(heap_t *heap, span_t *s, bool exclusive, pages_batch_t *batch) {
  (void)heap;
  lz_block_t *head = __atomic_load_n(&s->local_free, __ATOMIC_ACQUIRE);
  if (head == NULL || s->npages > 64) return 0;
  size_t cap = __atomic_load_n(&s->capacity, __ATOMIC_RELAXED), bs = s->block_size;
  chunk_t *c = span_chunk(s);
  size_t first = span_first_page(s);
  size_t head_idx = (size_t)((uint8_t *)head - span_start(s)) / bs;
  /* Nothing freed since the last look (same head): nothing new to punch. */
  if (c->punch_seen[first] == head_idx + 1) return 0;
  c->punch_seen[first] = (uint16_t)(head_idx + 1);
  uint64_t freeb[LZ_SLAB_MAX_BYTES / LZ_ALIGN / 64];
  for (size_t w = 0; w < (cap + 63) / 64; w++) freeb[w] = 0;
  size_t n = 0, step = bs < 64 ? 64 : bs, prefetch_after = cap * bs / step / 32;
  if (prefetch_after < 4) prefetch_after = 4;
  for (lz_block_t *b = head; b != NULL; b = block_next(b)) {
    /* A long chain runs through blocks freed long ago, out of every cache:
     * followed link by link, each read waits for memory in turn (bench
     * idle-burst: 82 % of the janitor's time in this function on that
     * one load). Past a 32nd of the span's lines (4 links at least), the
     * span's block heads are asked for at once, in address order, so the
     * reads overlap (some 30 at a time: the prefetches cost about what
     * the links walked so far did); a shorter chain (a span with few free
     * blocks) is not worth them all. A prefetch never faults: a hole page
     * stays a hole. */
    if (n == prefetch_after)
      for (size_t off = 0; off < cap * bs; off += step) __builtin_prefetch(span_start(s) + off);
    /* A list the owner's checks would report: leave it to them. */
    if (!slab_holds(s, b) || n++ >= cap) return 0;
    size_t idx = (size_t)((uint8_t *)b - span_start(s)) / bs;
    if (bit_get(freeb, idx)) return 0;
    bit_set(freeb, idx);
  }
  size_t keep_lo = head_idx * bs >> LZ_PAGE_SHIFT, keep_hi = (head_idx * bs + bs - 1) >> LZ_PAGE_SHIFT;
  uint64_t punch = 0;
  for (size_t p = 0; p < s->npages; p++) {
    if ((!exclusive && p >= keep_lo && p <= keep_hi) || chunk_page_hole(c, first + p)) continue;
    size_t lo = (p << LZ_PAGE_SHIFT) / bs, hi = ((p << LZ_PAGE_SHIFT) + LZ_PAGE_SIZE - 1) / bs;
    if (hi >= s->reserved) hi = s->reserved - 1u;
    if (lo > hi || hi >= cap) continue; /* no whole block, or one not carved yet */
    bool idle = true;
    for (size_t i = lo; i <= hi && idle; i++)
      idle = bit_get(freeb, i) || slab_block_in_hole(s, i);
    if (idle) punch |= 1ull << p;
  }
  if (punch == 0) return 0;
  /* Off the chain first: the links of punched blocks are on those pages. */
  uint8_t *start = span_start(s);
  lz_block_t *keep = head, *new_head = head;
  lz_block_t *b = block_next(head);
  if (exclusive && block_on_pages(s, head_idx, &punch, 0)) { /* the head goes too */
    keep = new_head = NULL;
    b = head;
  }
  for (lz_block_t *next; b != NULL; b = next) {
    next = block_next(b);
    if (block_on_pages(s, (size_t)((uint8_t *)b - start) / bs, &punch, 0)) continue;
    if (keep != NULL) block_set_next(keep, b);
    else new_head = b;
    keep = b;
  }
  if (keep != NULL) block_set_next(keep, NULL);
  if (new_head != head) {
    s->local_free = new_head;
    c->punch_seen[first] = new_head == NULL ? 0 : (uint16_t)((size_t)((uint8_t *)new_head - start) / bs + 1);
  }
  size_t holes = 0;
  for (size_t p = 0; p < s->npages; p++) {
    if (!((punch >> p) & 1)) continue;
    size_t run = 1;
    while (p + run < s->npages && ((punch >> (p + run)) & 1)) run++;
    pages_decommit_later(batch, c, first + p, run);
    bitmap_assign(c->hole_map, first + p, run, true);
    holes += run;
    p += run - 1;
  }
  s->flags |= SPAN_HOLES;
  /* A hole block reads zero, which the fast path's double-free screen
   * cannot tell from a live block: frees of the span go the slow way
   * (heap_free_span and remote_collect look at the hole map) until the
   * holes are filled. A fast free already past its xfast_cap check pushes
   * as the protocol above allows. */
  slab_fast_sync(heap, s);
  return holes;
}
