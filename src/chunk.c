/* chunk.c: 2 MiB chunks, their headers, and the pool of empty ones.
 *
 * A chunk belongs to one heap from chunk_alloc until chunk_release hands it
 * back empty (pages.c: when its heap may not keep it, or purge.c: when a
 * kept one has gone unused). Empty chunks wait in a chunk pool so a heap that grows again
 * soon needs no system call; pooled chunks idle longer than the purge delay
 * are unmapped by chunk_pool_trim.
 *
 * The pool (chunk_pool_t) is lock-free: a fixed array of slots, each NULL
 * or one empty chunk. Its three operations each take effect at one atomic
 * step on one slot:
 *   chunk_pool_push(pool, c)   CAS a NULL slot to c      (false: pool full)
 *   chunk_pool_pop(pool)       exchange a full slot with NULL (NULL: empty)
 *   chunk_pool_trim(force)     pop the chunks whose delay has passed (or
 *                              all) and unmap them
 * so a chunk is at every instant either in exactly one slot or owned by one
 * thread; fork at any instant leaves the child a consistent pool (a chunk a
 * vanished thread was moving is leaked, never shared). Nothing reads a
 * chunk it has not taken out of a slot (a chunk may be unmapped as soon as
 * another thread takes it), so there is no ABA and no use after unmap;
 * xdue[i] mirrors slot i's chunk's purge_at for trim's look before it takes.
 * Slots are scanned from 0, so the lowest ones (the most recently used
 * chunks) are reused first. There is one pool per NUMA node (only pool 0
 * without NUMA): a chunk is bound to its node when it is mapped, keeps it
 * (chunk_t.node) and always goes back to that node's pool; a heap takes
 * chunks from its home node's pool (numa.c). No lock anywhere, so fork
 * needs no handler here.
 */
#include <string.h>

#include "internal.h"

#define LZ_POOL_SLOTS (LZ_CHUNK_POOL_MAX > 0 ? LZ_CHUNK_POOL_MAX : 1)
typedef struct chunk_pool_s {
  _Atomic(chunk_t *) xslot[LZ_POOL_SLOTS];
  _Atomic(uint64_t) xdue[LZ_POOL_SLOTS]; /* purge_at of the chunk in slot i (a hint) */
} chunk_pool_t;

/* Node 0's pool (the only one without NUMA) is read by every chunk_alloc:
 * kept with the other hot variables, the other nodes' pools apart. */
lz_hot_alloc static chunk_pool_t pool_node0;
static chunk_pool_t pools_other[LZ_MAX_NODES - 1]; /* nodes 1.. */

static chunk_pool_t *pool_of(unsigned node) { return node == 0 ? &pool_node0 : &pools_other[node - 1]; }

static size_t pool_count(void) { return lz_numa_on ? (size_t)lz_numa_nodes : 1; }

static bool chunk_pool_push(chunk_pool_t *pool, chunk_t *c) {
  if (LZ_CHUNK_POOL_MAX == 0) return false;
  /* Read before the chunk is published: once it is, another thread may pop
   * it and rewrite it. */
  uint64_t due = c->purge_at;
  for (size_t i = 0; i < LZ_POOL_SLOTS; i++) {
    if (atomic_load_explicit(&pool->xslot[i], memory_order_relaxed) != NULL) continue;
    chunk_t *expect = NULL;
    if (atomic_compare_exchange_strong_explicit(&pool->xslot[i], &expect, c, memory_order_release,
                                                memory_order_relaxed)) {
      /* Written after the chunk is visible: a racing trim may see the
       * previous chunk's (earlier) time and look too early, never too late. */
      atomic_store_explicit(&pool->xdue[i], due, memory_order_relaxed);
      return true;
    }
  }
  return false;
}

static chunk_t *chunk_pool_pop(chunk_pool_t *pool) {
  for (size_t i = 0; i < LZ_POOL_SLOTS; i++) {
    if (atomic_load_explicit(&pool->xslot[i], memory_order_relaxed) == NULL) continue;
    chunk_t *c = atomic_exchange_explicit(&pool->xslot[i], NULL, memory_order_acquire);
    if (c != NULL) return c;
  }
  return NULL;
}

lz_hot_alloc _Atomic(size_t) lz_chunks_mapped;
lz_hot_alloc _Atomic(uint64_t) lz_pages_purged;
lz_hot_alloc _Atomic(size_t) lz_bytes_decommitted;      /* chunk pages known not resident */

static size_t bitmap_popcount_clean(const chunk_t *c) {
  /* Header pages are never marked dirty. */
  return LZ_CHUNK_PAGES - bitmap_count(c->dirty_map, 0, LZ_CHUNK_PAGES) - LZ_HEADER_PAGES;
}

/* Counted out before its munmap (as large.c's ranges): a thread
 * descheduled in between (the janitor trimming the pool) leaves no chunk
 * that nothing can use any more counted as mapped. */
static void chunk_unmap(chunk_t *c) {
  atomic_fetch_sub_explicit(&lz_chunks_mapped, 1, memory_order_relaxed);
  atomic_fetch_sub_explicit(&lz_bytes_decommitted, bitmap_popcount_clean(c) * LZ_PAGE_SIZE,
                            memory_order_relaxed);
  chunkmap_set((uintptr_t)c, CHUNK_NONE);
  if (lz_unlikely(lz_numa_on)) numa_account(c->node, -(ptrdiff_t)LZ_CHUNK_SIZE);
  os_unmap(c, LZ_CHUNK_SIZE);
}

/* Where a chunk comes from when the pool has none, before a new mapping:
 * large.c's cache of freed ranges (large_cache_unit), handed down by
 * start.c (this file names nothing above it). Set once at start-up. */
lz_hot static uintptr_t (*unit_source)(unsigned node);
void chunk_unit_source(uintptr_t (*fn)(unsigned node)) { unit_source = fn; }

/* A unit from unit_source, to be made an empty chunk: its header pages
 * are decommitted (they read zero, as a fresh mapping's, and a small heap
 * touches only the first again); its usable pages, which may be resident
 * and hold old data, are marked dirty and, free, decay like any freed
 * pages (armed now: purge_at, decay_base) unless the heap reuses them
 * first. NULL (the unit unmapped) if the kernel refuses. */
static chunk_t *chunk_from_unit(uintptr_t unit) {
  chunk_t *c = (chunk_t *)unit;
  if (os_decommit(c, LZ_HEADER_BASE_PAGES * LZ_PAGE_SIZE) != 0) {
    os_unmap(c, LZ_CHUNK_SIZE);
    return NULL;
  }
  bitmap_assign(c->dirty_map, LZ_HEADER_PAGES, LZ_USABLE_PAGES, true);
  long delay = opt_get(OPT_PURGE_DELAY);
  if (delay > 0) {
    c->purge_at = os_now_ms() + (uint64_t)delay;
    c->decay_base = LZ_USABLE_PAGES;
    janitor_notify();
  }
  return c;
}

lz_text_hot chunk_t *chunk_alloc(heap_t *heap) {
  unsigned node = lz_unlikely(lz_numa_on) ? heap->numa_home : 0;
  chunk_t *c = chunk_pool_pop(pool_of(node));
  if (c == NULL) {
    uintptr_t unit = unit_source != NULL ? unit_source(node) : 0;
    c = unit != 0 ? chunk_from_unit(unit) : NULL;
    if (c == NULL) {
      unit = 0;
      c = os_map_aligned(LZ_CHUNK_SIZE, LZ_CHUNK_SIZE);
      if (c == NULL) return NULL;
    }
    /* Level 2: the header's last page is a guard (internal.h); a chunk is
     * never used without it. */
    if (lz_secure2 && os_protect_none((uint8_t *)c + (LZ_HEADER_PAGES - 1) * LZ_PAGE_SIZE, LZ_PAGE_SIZE) != 0) {
      os_unmap(c, LZ_CHUNK_SIZE);
      return NULL;
    }
    /* Before the first touch, so that its faults take huge pages. */
    if (opt_get(OPT_HUGEPAGES) == HUGE_ALWAYS && os_hugepage(c, LZ_CHUNK_SIZE, false) == 0)
      c->huge = CHUNK_HUGE_ADVISED; /* huge_at 0: collapsed once dense */
    if (lz_unlikely(lz_numa_on)) numa_bind_chunk(c, node); /* before the header is written */
    c->node = node;
    /* Fresh memory (and a unit's decommitted header) is zero: pagemap,
     * spans and the bitmaps but a unit's dirty_map start cleared. */
    _Static_assert(LZ_HEADER_BASE_PAGES + 1 < 64, "the header pages lie in the bitmap's first word");
    for (size_t w = 0; w < LZ_BITMAP_WORDS; w++) c->free_map[w] = ~0ull;
    c->free_map[0] = ~0ull << LZ_HEADER_PAGES; /* every page free but the header's */
    c->slot_map[0] = 1; /* descriptor slot 0 is never given out (internal.h) */
    c->free_pages = LZ_USABLE_PAGES;
    if (unit == 0) /* a unit's usable pages are dirty */
      atomic_fetch_add_explicit(&lz_bytes_decommitted, LZ_USABLE_PAGES * LZ_PAGE_SIZE, memory_order_relaxed);
    atomic_fetch_add_explicit(&lz_chunks_mapped, 1, memory_order_relaxed);
  }
  lz_assert(c->free_pages == LZ_USABLE_PAGES && c->slot_map[0] == 1);
  c->max_run_hint = LZ_USABLE_PAGES;
  c->heap = heap;
  chunkmap_set((uintptr_t)c, heap->map_id); /* the heap's chunk from here (internal.h, chunk_t) */
  if (heap->map_id >= CHUNK_HEAP_FIRST && (heap->fc_mode == FC_FAST || heap->fc_mode == FC_TRIAL))
    fast_chunk_set(heap, c); /* the newest chunk is the likeliest */
  c->prev = NULL;
  c->next = heap->chunks;
  if (heap->chunks) heap->chunks->prev = c;
  heap->chunks = c;
  return c;
}

/* Whether free's fast path tries the fast chunk (heap_t.fast_chunk) at
 * all. A hit costs 5 instructions; a miss 5 more plus the chunk map's 10,
 * and, where the frees spread over several chunks in no order, a
 * mispredicted branch about every other free (bench mleak, one thread:
 * 69 % of 1.14M frees missed, its blocks in 5 chunks; callgrind's branch
 * simulation 359k mispredictions there). With no fast chunk (NONE, a
 * non-canonical address) every free misses, predictably, and takes the
 * chunk map (16 instructions). The owner's tick, every
 * FC_WINDOW_TICKS-th, reads fc_miss, the frees of the last window that
 * went by the chunk map, and sets the mode:
 *   FC_FAST   the fast chunk is the heap's newest (chunk_alloc,
 *             fast_chunk_drop). A window with at least FC_MISS_MIN misses
 *             (once fc_wait windows have passed) starts
 *   FC_PROBE  one window without a fast chunk, which counts every free:
 *             more than 1 / FC_MISS_SHARE of them missed in the last fast
 *             window -> FC_NONE; else FC_FAST, the next probe waits
 *             twice as many windows as the last (up to 2^(FC_SHIFT_MAX - 1)).
 *   FC_NONE   no fast chunk, for fc_wait windows, then
 *   FC_TRIAL  one window with the newest chunk: too many misses against
 *             the frees the last FC_NONE window counted -> FC_NONE again,
 *             waiting twice as long; else FC_FAST.
 * Every state keeps heap_t.fast_chunk's invariant (none, or one of the
 * heap's chunks); only the owner's tick changes the mode, holding the
 * heap. The constants: internal.h. */
lz_inline uint8_t fc_backoff(heap_t *heap) {
  uint8_t w = (uint8_t)(1u << heap->fc_shift);
  if (heap->fc_shift < FC_SHIFT_MAX - 1) heap->fc_shift++;
  return w;
}

lz_text_hot void fast_chunk_review(heap_t *heap) {
  if (heap->map_id < CHUNK_HEAP_FIRST || (heap->slow_count / HEAP_TICK_EVERY) % FC_WINDOW_TICKS != 0) return;
  uint32_t m = heap->fc_miss;
  heap->fc_miss = 0;
  switch (heap->fc_mode) {
  case FC_FAST:
    if (heap->fc_wait > 0) {
      heap->fc_wait--;
      return;
    }
    if (m < FC_MISS_MIN) return;
    heap->fc_rate = m; /* the misses, compared with the probe's frees */
    heap->fc_mode = FC_PROBE;
    fast_chunk_set(heap, (const chunk_t *)LZ_FAST_CHUNK_NONE);
    return;
  case FC_PROBE:
  case FC_TRIAL:
    if (heap->fc_mode == FC_PROBE ? (uint64_t)heap->fc_rate * FC_MISS_SHARE > m
                                  : (uint64_t)m * FC_MISS_SHARE > heap->fc_rate) {
      heap->fc_mode = FC_NONE;
      fast_chunk_set(heap, (const chunk_t *)LZ_FAST_CHUNK_NONE);
      heap->fc_wait = fc_backoff(heap);
      heap->fc_rate = m;
      return;
    }
    if (heap->fc_mode == FC_TRIAL) {
      heap->fc_shift = 0;
      heap->fc_wait = 0;
    } else
      heap->fc_wait = fc_backoff(heap);
    heap->fc_mode = FC_FAST;
    fast_chunk_set(heap, heap->chunks != NULL ? heap->chunks : (const chunk_t *)LZ_FAST_CHUNK_NONE);
    return;
  default: /* FC_NONE */
    heap->fc_rate = m; /* every free of the window */
    if (heap->fc_wait > 0 && --heap->fc_wait > 0) return;
    heap->fc_mode = FC_TRIAL;
    fast_chunk_set(heap, heap->chunks != NULL ? heap->chunks : (const chunk_t *)LZ_FAST_CHUNK_NONE);
    return;
  }
}

/* The chunk is empty (every usable page free): give it to the pool. */
lz_text_hot void chunk_release(heap_t *heap, chunk_t *c) {
  lz_assert(c->free_pages == LZ_USABLE_PAGES);
  if (c->prev) c->prev->next = c->next; else heap->chunks = c->next;
  if (c->next) c->next->prev = c->prev;
  fast_chunk_drop(heap, c);
  c->heap = NULL;
  chunkmap_set((uintptr_t)c, CHUNK_SPANS); /* no heap's fast frees */
  long delay = opt_get(OPT_PURGE_DELAY);
  c->purge_at = os_now_ms() + (uint64_t)(delay < 0 ? 0 : delay);
  c->prev = c->next = NULL;
  if (delay == 0 || !chunk_pool_push(pool_of(c->node), c)) chunk_unmap(c);
}

lz_text_hot static size_t pool_trim(chunk_pool_t *pool, bool force, uint64_t now) {
  size_t freed = 0;
  for (size_t i = 0; i < LZ_POOL_SLOTS; i++) {
    if (atomic_load_explicit(&pool->xslot[i], memory_order_relaxed) == NULL) continue;
    if (!force && atomic_load_explicit(&pool->xdue[i], memory_order_relaxed) > now) continue;
    chunk_t *c = atomic_exchange_explicit(&pool->xslot[i], NULL, memory_order_acquire);
    if (c == NULL) continue;
    /* Ours now: the hint may have belonged to an earlier chunk. */
    if (!force && c->purge_at > now && chunk_pool_push(pool, c)) continue;
    chunk_unmap(c);
    freed += LZ_CHUNK_SIZE;
  }
  return freed;
}

/* Unmap pooled chunks idle past the purge delay (all of them if force),
 * from every node's pool. Returns the bytes given back. */
lz_text_hot size_t chunk_pool_trim(bool force) {
  uint64_t now = os_now_ms();
  long delay = opt_get(OPT_PURGE_DELAY);
  if (!force && delay < 0) return 0;
  size_t freed = 0;
  for (size_t node = 0; node < pool_count(); node++) freed += pool_trim(pool_of((unsigned)node), force, now);
  return freed;
}

/* Is every node's pool empty? (a racy look: the janitor's schedule) */
bool chunk_pool_empty(void) {
  for (size_t node = 0; node < pool_count(); node++)
    for (size_t i = 0; i < LZ_POOL_SLOTS; i++)
      if (atomic_load_explicit(&pool_of((unsigned)node)->xslot[i], memory_order_relaxed) != NULL) return false;
  return true;
}
