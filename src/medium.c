/* medium.c: medium blocks (16 KiB < size <= 1 MiB), one block per span of
 * whole pages, and the heap's cache of recently freed medium spans.
 *
 * A medium block is a span of kind SPAN_MEDIUM (span.c), block_size its
 * bytes, used 1 while live, xfast_cap 1 while live: the owner's
 * free takes it by free's fast path as a slab's last block (alloc.h: the
 * index check passes only at the span's start, the block goes on
 * local_free, used drops to 0) and heap_free_last hands the span here
 * (medium_free_last), which makes it the front span of its page count
 * when it may ("Front spans" below: its block is then handed out again
 * and freed with no call at all); else a freed span is kept whole in the heap's cache
 * (used 0, its pages still in the span) for the next medium request of
 * about its size, within LZ_MEDIUM_CACHE spans and LZ_MEDIUM_CACHE_BYTES;
 * the cache goes back to the chunks when idle for the purge delay
 * (medium_cache_flush, from heap.c's heap_purge) or to make room. realloc
 * grows a live block into the free pages right after its span when it can
 * (medium_grow, which takes the heap lock itself). Hardening level 2
 * keeps its own medium spans (secure.c).
 *
 * The cache (heap_t.xmcache, the protocol beside it in internal.h): slots
 * that the heap's holder fills with a release store and that anyone
 * empties with an exchange, so the owner's malloc and free of a cached
 * size take no lock (heap.c's heap_malloc_slow with medium_cache_hit,
 * medium_free_last: one exchange on malloc, plain stores on free), while the janitor, holding the heap
 * lock, can still give an idle cache back: of the owner's take and the
 * janitor's flush, the one whose exchange comes first has the span, the
 * other finds the slot empty. The holder's own record of the slots
 * (mcache_mask, mcache_pages, mcache_bytes) is written by
 * the holder only; a slot the janitor emptied stays in it until the
 * holder finds it empty (a take, or mcache_resync when the cache looks
 * full), so it counts no fewer spans or bytes than the slots hold.
 * Everything else here (span_alloc, span_free, the flush, the returned
 * list of spans other threads freed beyond the cache's room: see
 * mreturn_push) runs with the heap lock held (the janitor protocol in
 * internal.h).
 */
#include <string.h>

#include "security.h"
#include "sizeclass.h"

/* A cached span serves a request of at least 1 / MEDIUM_CACHE_SLACK
 * fewer pages: at most a seventeenth of the span idle, while requests of
 * 64 KiB and more whose size wanders by a page or so still hit. The idle
 * pages were written by the span's last block, so they stay resident
 * under the smaller one, and the span is not given back to make room for
 * the request's exact size: with a quarter (a fifth idle), git log -p
 * peaked 0.25-0.4 MiB higher (24.9 against 24.5-24.7 MiB). */
#define MEDIUM_CACHE_SLACK 16

/* Every medium span may be kept (realloc grows one to LZ_MEDIUM_MAX at
 * most): one span takes at most half the cache, never the whole of it. */
_Static_assert(LZ_MEDIUM_MAX <= LZ_MEDIUM_CACHE_BYTES / 2, "a cached span fits twice in the cache");
_Static_assert(LZ_MEDIUM_CACHE <= 32, "mcache_mask holds a bit per slot");
_Static_assert(LZ_MEDIUM_FRONT_PAGES - LZ_MEDIUM_MIN_PAGES < 64, "mfront_mask holds a bit per page count");
#define MCACHE_FULL ((uint32_t)((1ull << LZ_MEDIUM_CACHE) - 1))

/* The holder takes slot i, of npages pages (mcache_pages[i]), out of its
 * record; returns the span the slot held, NULL if the janitor took it
 * first. */
lz_inline span_t *mcache_claim_pages(heap_t *heap, size_t i, size_t npages) {
  heap->mcache_mask &= ~(1u << i);
  heap->mcache_bytes -= npages << LZ_PAGE_SHIFT;
  return atomic_exchange_explicit(&heap->xmcache[i], NULL, memory_order_acquire);
}

static span_t *mcache_claim(heap_t *heap, unsigned i) { return mcache_claim_pages(heap, i, heap->mcache_pages[i]); }

/* The holder puts s (used 0, its fields final) in a slot its record has
 * free (mcache_mask not MCACHE_FULL): the release store publishes the
 * span to whoever empties the slot. */
static void mcache_put(heap_t *heap, span_t *s) {
  size_t i = (unsigned)__builtin_ctz(~heap->mcache_mask);
  heap->mcache_pages[i] = s->npages;
  heap->mcache_mask |= 1u << i;
  heap->mcache_bytes += (size_t)s->npages << LZ_PAGE_SHIFT;
  atomic_store_explicit(&heap->xmcache_used, 1, memory_order_relaxed);
  atomic_store_explicit(&heap->xmcache[i], s, memory_order_release);
}

/* The janitor's watch of the cache (heap_t.xmcache_watch): the owner
 * notifies it (janitor_notify) when a span enters an empty cache, unless
 * the watch says a janitor pass will look at the heap again anyway:
 *   MCACHE_WATCHED   the owner notified since the janitor last let go;
 *                    the janitor keeps looking (purge delay apart) while
 *                    it finds spans, and on finding none moves to
 *   MCACHE_LOOKED    and looks once more, a purge delay later, for a span
 *                    the owner cached while it looked (the owner read
 *                    WATCHED then: no notify); finding none again:
 *   MCACHE_UNWATCHED the next span cached notifies.
 * The owner stores WATCHED only after reading another value, and notifies
 * then; the janitor stores the others (medium_cache_watch). A notify
 * never goes missing: the janitor lets go only after two looks a purge
 * delay apart found the cache empty, and a span cached after the first
 * look's store reads LOOKED and notifies. With no janitor running the
 * notify does what it always does (may start one, whose first pass looks
 * at every heap). Without the watch, a loop of one medium block's malloc
 * and free notified on every free. */
enum { MCACHE_UNWATCHED = 0, MCACHE_WATCHED = 1, MCACHE_LOOKED = 2 };

lz_inline bool mcache_watch_arm(heap_t *heap) {
  if (atomic_load_explicit(&heap->xmcache_watch, memory_order_relaxed) == MCACHE_WATCHED) return false;
  atomic_store_explicit(&heap->xmcache_watch, MCACHE_WATCHED, memory_order_relaxed);
  janitor_notify();
  return true;
}

uint64_t medium_cache_watch(heap_t *heap, uint64_t now) {
  uint8_t w = atomic_load_explicit(&heap->xmcache_watch, memory_order_relaxed);
  if (medium_cache_any(heap)) {
    if (w != MCACHE_WATCHED) atomic_store_explicit(&heap->xmcache_watch, MCACHE_WATCHED, memory_order_relaxed);
    return medium_cache_due(heap);
  }
  if (w == MCACHE_WATCHED) {
    atomic_store_explicit(&heap->xmcache_watch, MCACHE_LOOKED, memory_order_relaxed);
    return purge_due(now);
  }
  if (w == MCACHE_LOOKED) atomic_store_explicit(&heap->xmcache_watch, MCACHE_UNWATCHED, memory_order_relaxed);
  return UINT64_MAX;
}

/* When the cache or the returned list wants its next look (heap lock
 * held, right after a look: heap_purge stamped mcache_used_at and
 * mreturn_looked_at), UINT64_MAX if both are empty. */
uint64_t medium_cache_due(heap_t *heap) {
  uint64_t due = heap->mreturn != NULL ? purge_due(heap->mreturn_looked_at) : UINT64_MAX;
  for (unsigned i = 0; i < LZ_MEDIUM_CACHE; i++)
    if (atomic_load_explicit(&heap->xmcache[i], memory_order_relaxed) != NULL) {
      uint64_t d = purge_due(heap->mcache_used_at);
      return d < due ? d : due;
    }
  return due;
}

/* The holder forgets the slots the janitor emptied. */
static void mcache_resync(heap_t *heap) {
  for (uint32_t m = heap->mcache_mask; m != 0; m &= m - 1) {
    unsigned i = (unsigned)__builtin_ctz(m);
    if (atomic_load_explicit(&heap->xmcache[i], memory_order_relaxed) == NULL) (void)mcache_claim(heap, i);
  }
}

bool medium_cache_any(heap_t *heap) {
  if (heap->mreturn != NULL) return true;
  for (unsigned i = 0; i < LZ_MEDIUM_CACHE; i++)
    if (atomic_load_explicit(&heap->xmcache[i], memory_order_relaxed) != NULL) return true;
  return false;
}

/* The holder takes a cached span of npages .. npages + npages /
 * MEDIUM_CACHE_SLACK pages, or NULL. No lock needed. */
lz_inline span_t *medium_cache_take(heap_t *heap, size_t npages) {
  for (uint32_t m = heap->mcache_mask; m != 0; m &= m - 1) {
    size_t i = (unsigned)__builtin_ctz(m);
    size_t n = heap->mcache_pages[i];
    if (n - npages <= npages / MEDIUM_CACHE_SLACK) { /* n below npages wraps */
      span_t *s = mcache_claim_pages(heap, i, n);
      if (lz_likely(s != NULL)) return s;
    }
  }
  return NULL;
}

/* The returned list (heap_t.mreturn; heap lock held). A producer whose
 * medium blocks another thread frees gets them back in bursts: as many
 * as the other thread freed since the producer's last slow path (one
 * exchange takes them all: remote.c), often more than the cache's slots
 * hold. Given back to their chunks at once, each would cost the next
 * allocation a span_alloc (the page bitmaps searched, the pages' state
 * recorded) and the free a span_free: 1,100 instructions per 32 KiB block
 * handed between two threads, where a slab class took 500. Listed here
 * instead, the producer's next requests of about their size take them
 * whole. They do not linger: every purge look (medium_cache_flush, from
 * the owner's purge tick or the janitor, at least every purge delay while
 * the list is not empty) gives back the spans that no request reached
 * since the previous look (the list never went below mreturn_low spans
 * since then), so a list left alone goes back within two looks; a miss
 * (medium_malloc) gives back the whole list first, as it does the cache,
 * so a request of another size takes their pages instead of new ones.
 * Requests take from the front (the span returned last, its pages the
 * warmest), looking at MEDIUM_RETURN_SCAN spans at most. */
#define MEDIUM_RETURN_SCAN 8

static void mreturn_push(heap_t *heap, span_t *s) {
  bool was_empty = heap->mreturn == NULL;
  s->next = heap->mreturn;
  heap->mreturn = s;
  heap->mreturn_count++;
  heap->mreturn_bytes += (size_t)s->npages << LZ_PAGE_SHIFT;
  /* The janitor looks at a list left alone (mcache_watch_arm's protocol
   * covers the list too: medium_cache_any). */
  if (was_empty) (void)mcache_watch_arm(heap);
}

/* A listed span of npages .. npages + npages / MEDIUM_CACHE_SLACK pages,
 * taken off the list, or NULL. */
lz_text_late static lz_noinline span_t *mreturn_take(heap_t *heap, size_t npages) {
  span_t **at = &heap->mreturn;
  for (unsigned k = 0; *at != NULL && k < MEDIUM_RETURN_SCAN; k++, at = &(*at)->next) {
    span_t *s = *at;
    if ((size_t)s->npages - npages <= npages / MEDIUM_CACHE_SLACK) { /* fewer pages wrap */
      *at = s->next;
      s->next = NULL;
      heap->mreturn_bytes -= (size_t)s->npages << LZ_PAGE_SHIFT;
      if (--heap->mreturn_count < heap->mreturn_low) heap->mreturn_low = heap->mreturn_count;
      return s;
    }
  }
  return NULL;
}

/* Gives back the listed spans beyond the first `keep`. */
static void mreturn_release(heap_t *heap, uint32_t keep) {
  span_t **at = &heap->mreturn;
  for (uint32_t k = 0; k < keep && *at != NULL; k++) at = &(*at)->next;
  span_t *s = *at;
  *at = NULL;
  while (s != NULL) {
    span_t *next = s->next;
    s->next = NULL;
    heap->mreturn_count--;
    heap->mreturn_bytes -= (size_t)s->npages << LZ_PAGE_SHIFT;
    span_free(heap, s);
    s = next;
  }
  heap->mreturn_low = heap->mreturn_count;
}

/* Gives cached spans back to their chunks: all if force, else if the cache
 * has been idle for the purge delay. Inserts only raise a flag (no clock
 * on the block paths): a call that finds it raised lowers it and stamps
 * mcache_used_at with `now`, a bound the last use did not pass, and the
 * spans go once a later call finds it still down the purge delay after
 * that stamp.
 * Heap lock held; by the holder (its record follows) or not (the janitor,
 * or a thread collecting an orphan: only the slots). */
lz_text_hot void medium_cache_flush(heap_t *heap, bool holder, bool force, uint64_t now) {
  if (holder) medium_front_flush(heap, force, now); /* the holder's own: exclusive */
  /* The returned list: the spans no request reached since the last look
   * (all if force). */
  if (heap->mreturn != NULL && (force || now >= purge_due(heap->mreturn_looked_at))) {
    mreturn_release(heap, force ? 0 : heap->mreturn_count - heap->mreturn_low);
    if (!force) heap->mreturn_looked_at = now;
  }
  if (!medium_cache_any(heap)) return;
  if (!force && atomic_load_explicit(&heap->xmcache_used, memory_order_relaxed) != 0 &&
      atomic_exchange_explicit(&heap->xmcache_used, 0, memory_order_relaxed) != 0) {
    heap->mcache_used_at = now;
    return;
  }
  if (!force && now < purge_due(heap->mcache_used_at)) return;
  for (unsigned i = 0; i < LZ_MEDIUM_CACHE; i++) {
    span_t *s = holder ? ((heap->mcache_mask >> i) & 1 ? mcache_claim(heap, i) : NULL)
                       : atomic_exchange_explicit(&heap->xmcache[i], NULL, memory_order_acquire);
    if (s != NULL) span_free(heap, s);
  }
}

lz_cold lz_noreturn void medium_front_corrupt(const lz_block_t *b) {
  lz_fatal_pointer("corrupted free list", "malloc", b);
}

lz_text_hot void *medium_front_zero(void *p, size_t size) { return memset(p, 0, size); }

/* Makes s (cached: reserved and capacity 1 already, or new with its
 * geometry set) the live block. */
lz_inline void *medium_block(heap_t *heap, span_t *s, size_t size, bool zero) {
  s->used = 1;
  atomic_store_explicit(&s->xfast_cap, 1, memory_order_relaxed); /* free's fast path */
  uint8_t *p = span_start(s);
  /* Known zero only until handed out: a span freed again never is. Not
   * grown yet (SPAN_GROWN). */
  uint8_t f = s->flags;
  if (lz_unlikely(f & (SPAN_ZERO | SPAN_GROWN))) s->flags = (uint8_t)(f & ~(SPAN_ZERO | SPAN_GROWN));
  if (zero && !(f & SPAN_ZERO)) memset(p, 0, size);
  /* A live block's first word must not look like a free link (remote.c's
   * in-flight screen): the span's last free left one. */
  else if (LZ_SECURE && !(f & SPAN_ZERO)) ((lz_block_t *)p)->enc_next = 0;
  return p;
}

lz_text_hot void *medium_malloc(heap_t *heap, size_t size, size_t align_pages, bool zero) {
  size_t npages = (size + LZ_PAGE_SIZE - 1) >> LZ_PAGE_SHIFT;
  span_t *s = NULL;
  if (align_pages == 1) {
    /* The front first (heap_malloc_slow skips it while blocks wait in
     * xremote, collected by now). */
    if (npages - LZ_MEDIUM_MIN_PAGES <= LZ_MEDIUM_FRONT_PAGES - LZ_MEDIUM_MIN_PAGES && heap->mfront[npages] != NULL) {
      void *p = medium_front_pop(heap->mfront[npages]);
      if (p != NULL) {
        if (zero) memset(p, 0, size);
        return p;
      }
    }
    s = medium_cache_take(heap, npages);
    if (s == NULL && heap->mreturn != NULL) s = mreturn_take(heap, npages);
  }
  if (s == NULL) { /* a cached span keeps its geometry */
    /* A miss: the cached spans are the wrong size for what the heap now
     * asks. They go back to their chunks first, so the new span can take
     * their pages (resident already) instead of new ones: holding them
     * while mapping more raised peak RSS by up to the cache's size (git log
     * -p: 7.1 -> 10.9 MB). */
    if (heap->mcache_mask != 0 || heap->mreturn != NULL || heap->mfront_bytes != 0) medium_cache_flush(heap, true, true, 0);
    s = span_alloc(heap, npages, align_pages, SPAN_MEDIUM);
    if (s == NULL) return NULL;
    heap->grow_prev = heap->grow_last; /* "Growth" below */
    heap->grow_last = s;
    heap->grow_pages = (uint32_t)npages;
    span_set_block_size(s, (uint32_t)(npages << LZ_PAGE_SHIFT));
    /* Kept apart: merged, these 16-bit stores become a 32-bit constant
     * loaded from .rodata, whose first read costs a small process a page
     * fault of its own (internal.h, lz_ro_hot). */
    s->reserved = 1;
    __asm__("" ::: "memory");
    s->capacity = 1;
  }
  return medium_block(heap, s, size, zero);
}

lz_text_hot span_t *medium_cache_hit(heap_t *heap, size_t size) {
  return medium_cache_take(heap, (size + LZ_PAGE_SIZE - 1) >> LZ_PAGE_SHIFT);
}

lz_text_hot void *medium_cache_use(heap_t *heap, span_t *s, size_t size, bool zero) {
  return medium_block(heap, s, size, zero);
}

/* realloc to a bigger size (<= LZ_MEDIUM_MAX) of live block s of this
 * heap: the span takes the free pages right after it, if there are enough,
 * and the block stays where it is (no copy, and no freed span left behind:
 * a buffer grown step by step would leave one in the cache per step, up to
 * the cache's size, resident). False if those pages are not free. */
bool medium_grow(heap_t *heap, span_t *s, size_t size) {
  size_t npages = (size + LZ_PAGE_SIZE - 1) >> LZ_PAGE_SHIFT;
  lz_assert(s->kind == SPAN_MEDIUM && s->used == 1 && npages > s->npages);
  heap_enter(heap);
  if (s->to_local == 0) medium_front_drop(heap, s); /* its page count changes */
  bool grown = span_grow(heap, s, npages - s->npages);
  if (grown) {
    span_set_block_size(s, (uint32_t)(npages << LZ_PAGE_SHIFT));
    s->flags |= SPAN_GROWN;
  }
  heap_leave(heap);
  return grown;
}

/* realloc to a smaller size (> LZ_SLAB_MAX) of live block s of this heap
 * that frees at least a page: the span gives its last pages back to its
 * chunk and the block stays where it is, as glibc splits the tail off a
 * chunk. Before, the block kept them down to half its size and was
 * copied below that: a buffer filled and then cut to its length (python's
 * strings, a read buffer sized to fit) kept its touched tail for as long
 * as it lived, where the next blocks now take those pages (bench
 * realloc-shrink). */
lz_text_late lz_noinline void medium_shrink(heap_t *heap, span_t *s, size_t size) {
  size_t npages = (size + LZ_PAGE_SIZE - 1) >> LZ_PAGE_SHIFT;
  lz_assert(s->kind == SPAN_MEDIUM && s->used == 1 && npages < s->npages && size > LZ_SLAB_MAX);
  heap_enter(heap);
  if (s->to_local == 0) medium_front_drop(heap, s); /* its page count changes */
  span_shrink(heap, s, npages);
  span_set_block_size(s, (uint32_t)(npages << LZ_PAGE_SHIFT));
  heap_leave(heap);
}

/* Whether freed span s may be cached: the purge delay is not 0 (give back
 * at once), and with NUMA, s is on the heap's home node. */
lz_inline bool medium_cacheable(const heap_t *heap, const span_t *s) {
  return opt_get(OPT_PURGE_DELAY) != 0 && !(lz_unlikely(lz_numa_on) && span_chunk(s)->node != heap->numa_home);
}

/* Front spans (heap_t.mfront): the span of each page count up to
 * LZ_MEDIUM_FRONT_PAGES freed last, while its count's slot is empty and
 * the front has room, stays its heap's as a slab stays the first of its
 * class queue: used 1, to_local 0, xfast_cap 1, so the owner's free pushes
 * the block on the span's `free` list (alloc.h: no count, no call) and the
 * next request of that many pages pops it (heap.c's heap_malloc_slow,
 * first thing: about 20 instructions with malloc's own, against some 90
 * through the cache, whose take is an exchange). Its block is parked
 * (on `free`, its link an encoded NULL) or out. The janitor never looks
 * at them (malloc pops without the lock): a heap's holder gives parked
 * ones back when no pop touched the front for the purge delay, on a miss
 * (medium_malloc) or forced (medium_front_flush), hence the small bound.
 * A second free of a parked block goes slow (free's screen reads the
 * encoded NULL) and is reported here; so is one that comes home from
 * another thread (medium_free). */
/* At most LZ_MEDIUM_FRONT_SPANS of them: each keeps its chunk from
 * going back empty, and a program that frees everything would keep those
 * chunks' free pages resident until the decay (bench footprint's RSS
 * right after freeing everything: 94.5 MiB without a front, 108.2 with a
 * span per page count, 96.4 with 2 spans, 88.8-94.6 with 1). */
lz_inline bool medium_front_room(const heap_t *heap, const span_t *s) {
  size_t n = s->npages;
  return n - LZ_MEDIUM_MIN_PAGES <= LZ_MEDIUM_FRONT_PAGES - LZ_MEDIUM_MIN_PAGES && heap->mfront[n] == NULL &&
         heap->mfront_count < LZ_MEDIUM_FRONT_SPANS &&
         heap->mfront_bytes + (n << LZ_PAGE_SHIFT) <= LZ_MEDIUM_FRONT_BYTES && medium_cacheable(heap, s);
}

/* s, whose block b (link written: an encoded NULL) is freed, becomes the
 * front span of its page count. */
lz_inline void medium_front_park(heap_t *heap, span_t *s, lz_block_t *b) {
  s->free = b;
  s->local_free = NULL;
  s->used = 1;
  span_to_local_set(s, 0);
  heap->mfront[s->npages] = s;
  heap->mfront_mask |= 1ull << (s->npages - LZ_MEDIUM_MIN_PAGES);
  heap->mfront_count++;
  heap->mfront_bytes += (size_t)s->npages << LZ_PAGE_SHIFT;
}

lz_text_hot void medium_front_drop(heap_t *heap, span_t *s) {
  lz_assert(s->to_local == 0 && heap->mfront[s->npages] == s);
  heap->mfront[s->npages] = NULL;
  heap->mfront_mask &= ~(1ull << (s->npages - LZ_MEDIUM_MIN_PAGES));
  heap->mfront_count--;
  heap->mfront_bytes -= (size_t)s->npages << LZ_PAGE_SHIFT;
  span_to_local_set(s, 1);
}

/* Front span s's block b comes back by a slow path (the owner's screened
 * free, a block another thread sent home, the general path). */
static void medium_front_free(span_t *s, lz_block_t *b) {
  if (lz_unlikely(s->free != NULL)) lz_fatal_pointer("double free", "free", b);
  block_set_next(b, NULL);
  s->free = b;
}

/* Gives the parked front spans back: all if force, else at most once a
 * purge delay (mfront_looked_at). Pops leave no trace (no store on their
 * path), so a span in steady use goes too, and the next request makes a
 * span again: about 1,000 instructions a purge delay, against a front
 * left resident while the heap allocates other sizes. The heap held
 * exclusively (no other thread in its fast paths: heap_purge's
 * `exclusive`) with its lock. A front span whose block is out stays. */
lz_text_hot void medium_front_flush(heap_t *heap, bool force, uint64_t now) {
  if (heap->mfront_bytes == 0) return;
  if (!force) {
    if (now < purge_due(heap->mfront_looked_at)) return;
    heap->mfront_looked_at = now;
  }
  for (uint64_t m = heap->mfront_mask; m != 0; m &= m - 1) {
    span_t *s = heap->mfront[LZ_MEDIUM_MIN_PAGES + (size_t)__builtin_ctzll(m)];
    if (s->free == NULL) continue;
    medium_front_drop(heap, s);
    s->free = NULL;
    s->used = 0;
    atomic_store_explicit(&s->xfast_cap, 0, memory_order_relaxed);
    span_free(heap, s);
  }
}

/* The rest of marking s freed, once its used count is 0 (SPAN_ZERO went
 * at the hand-out; stats.c counts live blocks by used). */
lz_inline void medium_unused(span_t *s) {
  atomic_store_explicit(&s->xfast_cap, 0, memory_order_relaxed); /* a second free goes slow */
}

/* Marks live block s freed (a second free is reported). */
lz_inline void medium_unuse(span_t *s) {
  if (lz_unlikely(s->used == 0)) lz_fatal_pointer("double free", "free", span_start(s));
  s->used = 0;
  medium_unused(s);
}

/* Caches freed span s (used 0) if it may be and there is room, making
 * room once by giving a span back; else gives s back. Heap lock held.
 * Hot text (internal.h, lz_text_hot) with medium_release_locked: every
 * program that frees more medium blocks than the cache holds runs them. */
lz_text_hot static lz_noinline void medium_release(heap_t *heap, span_t *s) { /* one copy */
  size_t bytes = (size_t)s->npages << LZ_PAGE_SHIFT;
  if (medium_cacheable(heap, s)) {
    if (heap->mcache_mask == MCACHE_FULL || heap->mcache_bytes + bytes > LZ_MEDIUM_CACHE_BYTES) {
      mcache_resync(heap);
      if (heap->mcache_mask == MCACHE_FULL || heap->mcache_bytes + bytes > LZ_MEDIUM_CACHE_BYTES) {
        span_t *old = mcache_claim(heap, (unsigned)__builtin_ctz(heap->mcache_mask)); /* make room */
        if (old != NULL) span_free(heap, old);
      }
    }
    if (heap->mcache_mask != MCACHE_FULL && heap->mcache_bytes + bytes <= LZ_MEDIUM_CACHE_BYTES) {
      bool was_empty = heap->mcache_mask == 0;
      mcache_put(heap, s);
      if (was_empty) (void)mcache_watch_arm(heap);
      return;
    }
  }
  span_free(heap, s);
}

lz_text_hot static lz_noinline void medium_release_locked(heap_t *heap, span_t *s) {
  heap_enter(heap);
  medium_release(heap, s);
  heap_leave(heap);
}

/* Heap lock held (remote frees collected, heap.c's locked free): cached
 * if the cache has room, else listed on the returned list if it has
 * room, else given back. Unlike the owner's own frees (medium_keep),
 * these come in bursts (remote.c): a full cache stays as it is. */
lz_text_thread void medium_free(heap_t *heap, span_t *s) {
  if (s->to_local == 0) {
    medium_front_free(s, (lz_block_t *)span_start(s));
    return;
  }
  medium_unuse(s);
  size_t bytes = (size_t)s->npages << LZ_PAGE_SHIFT;
  if (heap->mcache_mask != MCACHE_FULL && heap->mcache_bytes + bytes <= LZ_MEDIUM_CACHE_BYTES) {
    medium_release(heap, s); /* cached, as cacheable */
  } else if (heap->mreturn_bytes + bytes <= LZ_MEDIUM_RETURN_BYTES && medium_cacheable(heap, s)) {
    mreturn_push(heap, s);
  } else {
    span_free(heap, s);
  }
}

/* The holder caches freed span s (used 0), without the lock when the
 * cache has room for it; else medium_release under the lock. Returns
 * whether the janitor may have been asked for (the caller polls it). */
lz_inline bool medium_keep(heap_t *heap, span_t *s) {
  if (lz_likely(heap->mcache_mask != MCACHE_FULL &&
                heap->mcache_bytes + ((size_t)s->npages << LZ_PAGE_SHIFT) <= LZ_MEDIUM_CACHE_BYTES &&
                medium_cacheable(heap, s))) {
    bool was_empty = heap->mcache_mask == 0;
    mcache_put(heap, s);
    return was_empty && mcache_watch_arm(heap);
  }
  medium_release_locked(heap, s);
  return true;
}

/* Growth: a program that grows a buffer by copying it (a std::string or
 * std::vector that doubles: malloc of the bigger size, a copy, free of
 * the old) frees the old buffer, itself the span the previous such
 * allocation took, right after the medium or large allocation that took
 * new pages for the new one (heap_t.grow_prev: set by medium_malloc's
 * miss and heap.c's large_malloc_direct). Cached, parked or left dirty in
 * its chunk, every old buffer's pages would stay resident through the
 * whole growth (a std::string pushed to 1 MiB: peak RSS 6.0 MB, glibc's
 * 4.6, as glibc unmaps its blocks of 128 KiB and more at their free). So
 * the owner's free of grow_prev, a span of at least GROW_CUT_MIN_PAGES and
 * fewer pages than the allocation after it (but not under a quarter),
 * gives its pages back at once (as medium_free_moved does), unless a span
 * of the same power of two of pages went that way within
 * GROW_CUT_WINDOW_MS (cut_mask): a program that grows buffers over and
 * over (one per line it reads) would fault their pages in again each
 * time, so those are kept as any free keeps them, and go back by the
 * decay. Only grow_prev, and only as the first of the owner's medium frees
 * after the allocation (any other clears it). Only the frees of free's
 * fast path look (medium_free_last): its slow path's (medium_free_local,
 * every 256th free of the region and the screened ones) neither look nor
 * clear, as the hot code's window has no room for it (tests/exec_pages.c).
 * A program that allocates
 * three buffers and frees them in any order keeps them cached, as it may
 * ask for their sizes again (tests/test_internals.c, mcache_janitor). A purge
 * delay of -1 never gives pages back here, 0 does at every free anyway.
 * Large blocks are not cut: a std::string grown to 8 MB six times over,
 * its old large buffers unmapped in the first growth, left the large
 * cache's ranges so placed that the fourth growth mapped 6 MB more than
 * the first (peak 27.5 MB, 21.5 without the cut), and python3's dicts,
 * whose tables grow so, peaked no lower (realprog python-json 1.040 of
 * glibc's either way). */
#define GROW_CUT_MIN_PAGES 16
#define GROW_CUT_WINDOW_MS 1000

/* The free fast path took the owner's block of s, heap->grow_prev, a
 * span of at least GROW_CUT_MIN_PAGES (the caller's test, before the
 * call; used 0, the block on local_free): true if s was a growth's old
 * buffer and went back with its pages, else false (the caller frees it
 * as any other). */
lz_text_late static lz_noinline bool medium_free_grown(heap_t *heap, span_t *s) {
  heap->grow_prev = NULL;
  size_t n = s->npages, g = heap->grow_pages;
  if (n >= g || g / 4 > n || opt_get(OPT_PURGE_DELAY) <= 0) return false;
  uint16_t now = (uint16_t)(heap_now(heap) | 1);
  if (heap->cut_at == 0 || (uint16_t)(now - heap->cut_at) >= GROW_CUT_WINDOW_MS) {
    heap->cut_at = now;
    heap->cut_mask = 0;
  }
  uint16_t bit = (uint16_t)(1u << (31 - __builtin_clz((uint32_t)n))); /* medium: fewer than 2^16 pages */
  if (heap->cut_mask & bit) return false;
  heap->cut_mask |= bit;
  s->local_free = NULL;
  medium_unused(s);
  heap_enter(heap);
  pages_decommit(span_chunk(s), s->page, s->npages); /* before span_free: its pages are free and clean */
  span_free(heap, s);
  heap_leave(heap);
  return true;
}

/* The holder frees its own live block p, the start of span s (screened
 * by the caller for a block in flight from another thread), without the
 * lock when the cache has room for it. Parked as the front span of its
 * page count when the front has room, as the fast path's free parks it
 * (medium_free_last): the free's path (the fast one, or this one when
 * the fast one's region count wrapped, alloc.h) does not change where
 * the span goes. */
lz_text_hot void medium_free_local(heap_t *heap, span_t *s, void *p) {
  if (s->to_local == 0) {
    medium_front_free(s, (lz_block_t *)p);
    return;
  }
  if (lz_unlikely(s->used == 0)) lz_fatal_pointer("double free", "free", p);
  if (medium_front_room(heap, s)) {
    block_set_next((lz_block_t *)p, NULL);
    medium_front_park(heap, s, (lz_block_t *)p);
    return;
  }
  medium_unuse(s);
  (void)medium_keep(heap, s);
}

/* realloc moved the holder's own live block p, the start of span s, to a
 * large block: a buffer that grew past LZ_REALLOC_LARGE_MIN (a python
 * list, a git strbuf) has no use for a span of its old size, which the cache
 * would keep resident for the purge delay and more (bench realloc-grow's
 * first phase, a block grown by an eighth at a time to 2.6 MiB: 1049 KiB
 * resident beyond its size, 0.9 MiB more than under glibc, its last
 * medium span of 911 KiB; 141 KiB since). Its pages go
 * back at once instead, as glibc's trim gives back the top of its heap
 * that such a move frees; unless the heap moved another within the purge
 * delay (heap_t.moved_at): a program that grows a buffer past 1 MiB over and
 * over (one per file read, say) would fault the span's pages in again
 * each time (a loop growing a block from 4 KiB to 2 MiB and freeing it:
 * 229 page faults a round, 3.4 times the time), so it frees the span as
 * any free does, and the next growth takes its pages back. A purge delay
 * of -1 never gives pages back here (as nowhere but malloc_trim), 0
 * always. A front span's block (to_local 0, at most
 * LZ_MEDIUM_FRONT_PAGES) is parked as any free parks it. */
lz_text_late void medium_free_moved(heap_t *heap, span_t *s, void *p) {
  long delay = opt_get(OPT_PURGE_DELAY);
  uint16_t now = (uint16_t)(heap_now(heap) | 1); /* 0: no move yet */
  /* moved_at holds 16 bits: a delay beyond them always counts as churn,
   * and a move 65.5 s after the last may look recent (a span kept). */
  bool churn = delay < 0 || (delay > 0 && heap->moved_at != 0 &&
                             (delay > UINT16_MAX || (uint16_t)(now - heap->moved_at) < delay));
  heap->moved_at = now;
  if (s->to_local == 0 || churn) {
    medium_free_local(heap, s, p);
    return;
  }
  medium_unuse(s);
  heap_enter(heap);
  pages_decommit(span_chunk(s), s->page, s->npages); /* before span_free: its pages are free and clean */
  span_free(heap, s);
  heap_leave(heap);
}

/* The free fast path (alloc.h) took the holder's own live block of s, as
 * it takes a slab's: pushed it on local_free and counted used down to 0. */
lz_text_hot bool medium_free_last(heap_t *heap, span_t *s) {
  /* The size first: grow_prev may be an older span's descriptor reused
   * (compared, never read), whose free should not map the late code. */
  if (lz_unlikely(s == heap->grow_prev) && s->npages >= GROW_CUT_MIN_PAGES && medium_free_grown(heap, s)) return false;
  heap->grow_prev = NULL; /* the first free after the allocation, or none ("Growth") */
  if (medium_front_room(heap, s)) {
    medium_front_park(heap, s, s->local_free);
    return false;
  }
  s->local_free = NULL;
  medium_unused(s);
  return medium_keep(heap, s);
}
