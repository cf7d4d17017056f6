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
lz_text_late static lz_noinline void chunk_unmap(chunk_t *c) { /* cold: not inlined into chunk_release */
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

/* A unit from unit_source, to be made an empty chunk: decommitted whole,
 * so it starts as a fresh mapping's would, clean and reading zero (not
 * resident). Its pages may be resident with old data; kept so, as dirty
 * free pages waiting for their decay, they stayed resident while the heap
 * used a few (bench/realprog xz-d-12M: a worker's heap took the unit of a
 * freed 3.4 MB input buffer and used a few hundred KiB of it; peak RSS
 * 45.6 MB against glibc's 41.0, now 41.3-42.6). A heap that fills the
 * chunk faults its pages in again: bench/realprog sqlite3, whose sorter's
 * freed buffers become the next statement's chunks, 25.0k faults against
 * 20.8k (glibc 22.5k), the same peak RSS (74.8 MB), a few ms of CPU.
 * Keeping the pages for a heap that held a chunk already, or 4 chunks,
 * kept xz-d-12M's peak at 43.5-44.7 MB: the heap that takes the unit
 * there is no small one. NULL (the unit unmapped) if the kernel refuses. */
lz_text_late static lz_noinline chunk_t *chunk_from_unit(uintptr_t unit) {
  chunk_t *c = (chunk_t *)unit;
  if (!chunkmap_prepare(unit) || os_decommit(c, LZ_CHUNK_SIZE) != 0) {
    os_unmap(c, LZ_CHUNK_SIZE);
    return NULL;
  }
  return c;
}

/* Regions. A heap with an id (below level 2, without NUMA) reserves at
 * its first chunk LZ_REGION_CHUNKS contiguous 2 MiB units of address
 * space (PROT_NONE: nothing resident, nothing counted against the commit
 * limit), and a page map for them (LZ_REGION_MAP_BYTES, once out of
 * start-up: chunk_region_map), and takes its chunks there before a new
 * mapping: a released one waiting in the region (rwaiting, the lowest
 * first) before any other source, else (the pool and large.c's cache
 * having none) the next unit above the committed ones, made read-write. A
 * region chunk never leaves its heap's region: released, its pages are
 * given back, header included (one madvise; its header reads zero then
 * and is set up again when the chunk is taken: region_take), and it
 * waits, owned by no heap (chunk map byte CHUNK_SPANS, as a pooled
 * chunk's), marked in the heap's rwaiting (nothing of a waiting chunk's
 * own memory is needed); it is never unmapped, so no other mapping ever
 * lies inside a region. So p - rbase below rend proves p inside a chunk
 * of the region, and the page map (span pointers, every entry of a chunk
 * below rend written when the chunk joins the map and mirrored by
 * pagemap_set since) names a span of the heap, or slot 0 (zero, so free
 * goes slow) for a page of no span or a waiting chunk: free's fast path
 * needs no chunk map look-up for any of them (bench mleak's blocks lie
 * in 5 chunks), one subtraction, one compare and one load (alloc.h).
 * rend covers the committed chunks but the waiting ones at the top whose
 * map pages malloc_trim gave back (chunk_region_trim: they read zero, a
 * NULL span, so free's fast path must not see them); a pointer there
 * takes the chunk map, whose byte (CHUNK_SPANS) sends it slow, to be
 * reported. A waiting chunk is taken lowest first, so the top of the
 * region empties first and a chunk taken at rend rejoins the map.
 * A full region (or a refused reservation, or none under an address-space
 * limit: os_address_space_limited) leaves the heap its other
 * chunks, found through the chunk map as before. Address space: 64 MiB
 * and 128 KiB a heap; resident: a page of the map per chunk below rend
 * once out of start-up, and nothing of a waiting chunk but that. The
 * thread's copy for free's fast path: lz_tls_t (heap.c). */
/* c's entries of the region's page map (chunk invariants): written
 * from its pagemap, then kept by pagemap_set. */
lz_text_hot static lz_noinline void region_map_chunk(heap_t *heap, chunk_t *c) {
  _Atomic(span_t *) *m = heap->rmap + (((uintptr_t)c - heap->rbase) >> LZ_PAGE_SHIFT);
  for (size_t i = 0; i < LZ_CHUNK_PAGES; i++) {
    __asm__("" : "+r"(i)); /* not vectorized: no masks from .rodata (lz_popcount64) */
    atomic_store_explicit(&m[i], rmap_entry(chunk_span_at(c, i)), memory_order_relaxed);
  }
  c->rmap = m;
}

/* A waiting chunk's entries (its header, which may read zero, neither
 * read nor written: region_take): all name its slot 0. */
lz_text_late lz_cold static void region_map_waiting(heap_t *heap, chunk_t *c) {
  _Atomic(span_t *) *m = heap->rmap + (((uintptr_t)c - heap->rbase) >> LZ_PAGE_SHIFT);
  for (size_t i = 0; i < LZ_CHUNK_PAGES; i++) atomic_store_explicit(&m[i], chunk_slot(c, 0), memory_order_relaxed);
}

/* pagemap_set for pages [first, first + n) of c (span.c's runs). */
lz_text_hot void pagemap_set_run(chunk_t *c, size_t first, size_t n, size_t slot) {
  uint16_t off = (uint16_t)slot_offset(slot);
  for (size_t i = first; i < first + n; i++) c->pagemap[i] = off;
  if (c->rmap != NULL) {
    span_t *e = rmap_entry(chunk_slot(c, slot));
    for (size_t i = first; i < first + n; i++) atomic_store_explicit(&c->rmap[i], e, memory_order_relaxed);
  }
}

/* Sets s's to_local (span invariants), and with it s's entries of its
 * region's page map (rmap_entry): the pages pagemap names s on, a slab's
 * every page, a medium span's first (at level 2, which maps a medium
 * span's every page, no heap has a region: region_commit). */
lz_text_hot lz_noinline void span_to_local_set(span_t *s, unsigned v) {
  chunk_t *c = (chunk_t *)((uintptr_t)s & ~LZ_CHUNK_MASK);
  if (s->to_local == v) return;
  s->to_local = (uint8_t)v;
  if (c->rmap == NULL) return;
  span_t *e = rmap_entry(s);
  _Atomic(span_t *) *m = c->rmap + s->page, *end = m + (s->kind == SPAN_SLAB ? s->npages : 1);
  do atomic_store_explicit(m, e, memory_order_relaxed); /* a store, an add, a compare a page */
  while (++m < end);
}

/* The region's page map, made once the heap has left start-up (slab.c)
 * or, now, after a few hundred frees by the chunk map (heap.c,
 * heap_region_start), so that a small process (start-up's packed span
 * and power-of-two slabs in one chunk, a few frees) writes no page of it:
 * till then free's fast path sees no region (lz_tls_t) and finds the
 * chunks by the chunk map. Refused by the kernel: the same, for good. */
lz_text_hot lz_noinline void chunk_region_map(heap_t *heap, bool now) {
  if (heap->rbase == 0 || heap->rmap != NULL || (heap->startup && !now) || heap->rfailed) return;
  _Atomic(span_t *) *map = os_map(LZ_REGION_MAP_BYTES);
  if (map == NULL) {
    heap->rfailed = true;
    return;
  }
  heap->rmap = map;
  for (uint32_t k = 0; k < heap->rcarved; k++) {
    chunk_t *c = (chunk_t *)(heap->rbase + ((uintptr_t)k << LZ_CHUNK_SHIFT));
    if (heap->rwaiting >> k & 1) region_map_waiting(heap, c);
    else region_map_chunk(heap, c);
  }
  heap->rend = (uintptr_t)heap->rcarved << LZ_CHUNK_SHIFT;
}

/* The next unit of the heap's region made usable (fresh: zero), the
 * region reserved first if it has none; NULL if there is none to have. */
lz_text_hot static lz_noinline chunk_t *region_commit(heap_t *heap) {
  if (heap->map_id < CHUNK_HEAP_FIRST || lz_numa_on || heap->rfailed) return NULL;
  if (heap->rbase == 0) {
    /* Under an address-space limit 66 MiB a heap reserved ahead of use
     * would take what the program's own mappings need (32 threads under
     * `ulimit -v 700000`: a malloc of 300 MiB failed): no region then. */
    bool limited = os_address_space_limited();
    if (limited) heap->as_tight = true;
    void *r = limited ? NULL : os_reserve_aligned(LZ_REGION_BYTES, LZ_CHUNK_SIZE);
    if (r == NULL) {
      heap->rfailed = true;
      return NULL;
    }
    heap->rbase = (uintptr_t)r;
  }
  if (heap->rcarved == LZ_REGION_CHUNKS) return NULL;
  chunk_t *c = (chunk_t *)(heap->rbase + ((uintptr_t)heap->rcarved << LZ_CHUNK_SHIFT));
  if (!chunkmap_prepare((uintptr_t)c) || os_protect_rw(c, LZ_CHUNK_SIZE) != 0) return NULL;
  return c;
}

/* c, committed by region_commit and its header set up, joins the region
 * (its page map entries, if the map is made; the thread sees it at its
 * slow path's end: heap.c, slow_leave). */
static void region_join(heap_t *heap, chunk_t *c) {
  heap->rcarved++;
  if (heap->rmap != NULL) {
    region_map_chunk(heap, c);
    heap->rend = (uintptr_t)heap->rcarved << LZ_CHUNK_SHIFT;
  } else if (!heap->startup)
    chunk_region_map(heap, false);
}

/* A new chunk's header (fresh memory, or a unit's or waiting region
 * chunk's header given back, reads zero: pagemap, spans and the bitmaps
 * start cleared, but a unit's dirty_map). Before it is written: huge
 * pages, NUMA binding. */
lz_inline void chunk_header_init(chunk_t *c, unsigned node) {
  /* Before the first touch, so that its faults take huge pages. */
  if (opt_get(OPT_HUGEPAGES) == HUGE_ALWAYS && os_hugepage(c, LZ_CHUNK_SIZE, false) == 0)
    c->huge = CHUNK_HUGE_ADVISED; /* huge_at 0: collapsed once dense */
  if (lz_unlikely(lz_numa_on)) numa_bind_chunk(c, node); /* before the header is written */
  c->node = node;
  _Static_assert(LZ_HEADER_BASE_PAGES + 1 < 64, "the header pages lie in the bitmap's first word");
  for (size_t w = 0; w < LZ_BITMAP_WORDS; w++) c->free_map[w] = ~0ull;
  c->free_map[0] = ~0ull << LZ_HEADER_PAGES; /* every page free but the header's */
  c->slot_map[0] = 1; /* descriptor slot 0 is never given out (internal.h) */
  c->free_pages = LZ_USABLE_PAGES;
}

/* The lowest chunk waiting in the heap's region, taken (see Regions): its
 * header set up again if its release gave it back (free_pages reads zero
 * then), its map entries written again if malloc_trim gave their page
 * back (the chunk at rend: the ones above wait too). Counted mapped all
 * along, its usable pages clean. */
lz_text_late lz_cold static chunk_t *region_take(heap_t *heap) {
  unsigned k = (unsigned)__builtin_ctz(heap->rwaiting);
  heap->rwaiting &= heap->rwaiting - 1;
  chunk_t *c = (chunk_t *)(heap->rbase + ((uintptr_t)k << LZ_CHUNK_SHIFT));
  if (c->free_pages == 0) chunk_header_init(c, 0);
  c->rmap = heap->rmap != NULL ? heap->rmap + ((uintptr_t)k << (LZ_CHUNK_SHIFT - LZ_PAGE_SHIFT)) : NULL;
  if (heap->rmap != NULL && ((uintptr_t)k << LZ_CHUNK_SHIFT) == heap->rend) {
    region_map_chunk(heap, c); /* the thread sees it at slow_leave */
    heap->rend += LZ_CHUNK_SIZE;
  }
  return c;
}

/* Populate. A heap that gave pages back and takes a clean chunk (every
 * usable page not resident) for a slab soon after is most likely refilling
 * what it gave back (a burst freed and allocated again, round after round: bench
 * fresh-churn, 1M blocks of 64 B a round): the chunk's usable pages are
 * made resident in one call (os_populate) instead of a page fault each,
 * about 500 (fresh-churn's second round: 15.4k minor faults). At most
 * populate_budget pages (heap_t): what the heap gave back within
 * POPULATE_MS before, so a heap that only grows never pre-faults, and the
 * pages populated never exceed those recently given back; malloc_trim sets
 * it to 0 (the program wants the memory gone). Only for a slab (span.c,
 * span_alloc: the class's next slabs fill the chunk page after page); a
 * chunk taken for a medium span may serve it a few pages (bench micro,
 * populated for either: peak RSS 15.0-17.0 -> 17.3-21.7 MiB over 5 runs;
 * slabs only: 15.5-17.3). Only with a purge delay
 * (> 0): the populated pages are
 * dirty, free and armed to decay, so those the heap
 * leaves unused go back as any freed pages. */
#define POPULATE_MS 1000
/* given_at is the heap clock mod 2^32, compared by signed difference: the
 * clock may step back (its lag grows by a wait longer than the time
 * elapsed, purge.c, "Clock"), which reads as within the window. */

lz_text_thread void chunk_gave_back(heap_t *heap, size_t pages) {
  if (pages == 0) return;
  uint32_t now = (uint32_t)heap_now(heap);
  if ((int32_t)(now - heap->given_at) >= POPULATE_MS) heap->populate_budget = 0;
  heap->given_at = now;
  uint64_t b = (uint64_t)heap->populate_budget + pages;
  heap->populate_budget = b > UINT32_MAX ? UINT32_MAX : (uint32_t)b;
}

lz_text_late lz_cold lz_noinline void chunk_populate(heap_t *heap, chunk_t *c) {
  long delay = opt_get(OPT_PURGE_DELAY);
  if (delay <= 0) return; /* 0: freed pages go back at once, -1: never (no decay) */
  if (bitmap_count(c->dirty_map, LZ_HEADER_PAGES, LZ_USABLE_PAGES) != 0) return; /* not clean */
  uint64_t now = heap_now(heap);
  if ((int32_t)((uint32_t)now - heap->given_at) >= POPULATE_MS) {
    heap->populate_budget = 0;
    return;
  }
  size_t n = heap->populate_budget < LZ_USABLE_PAGES ? heap->populate_budget : LZ_USABLE_PAGES;
  if (os_populate((uint8_t *)c + LZ_HEADER_PAGES * LZ_PAGE_SIZE, n << LZ_PAGE_SHIFT) != 0) return;
  heap->populate_budget -= (uint32_t)n;
  bitmap_assign(c->dirty_map, LZ_HEADER_PAGES, n, true);
  atomic_fetch_sub_explicit(&lz_bytes_decommitted, n << LZ_PAGE_SHIFT, memory_order_relaxed);
  c->purge_at = now + (uint64_t)delay;
  c->decay_base = (uint32_t)n;
  janitor_notify();
}

lz_text_hot chunk_t *chunk_alloc(heap_t *heap) {
  unsigned node = lz_unlikely(lz_numa_on) ? heap->numa_home : 0;
  /* A chunk waiting in the heap's region first, then one that is
   * resident or mapped already (the pool, large.c's cache), then a new
   * one of the region (see Regions). */
  chunk_t *c = NULL, *region = NULL;
  if (heap->rwaiting != 0) c = region_take(heap);
  else c = chunk_pool_pop(pool_of(node));
  if (c == NULL) {
    uintptr_t unit = unit_source != NULL ? unit_source(node) : 0;
    c = unit != 0 ? chunk_from_unit(unit) : NULL;
    if (c == NULL) c = region = region_commit(heap);
    if (c == NULL) {
      c = os_map_aligned(LZ_CHUNK_SIZE, LZ_CHUNK_SIZE);
      if (c != NULL && !chunkmap_prepare((uintptr_t)c)) {
        os_unmap(c, LZ_CHUNK_SIZE);
        c = NULL;
      }
      if (c == NULL) {
        heap->as_tight = true; /* slabs best fit from now on (span.c) */
        return NULL;
      }
    }
    /* Level 2: the header's last page is a guard (internal.h); a chunk is
     * never used without it. */
    if (lz_secure2 && os_protect_none((uint8_t *)c + (LZ_HEADER_PAGES - 1) * LZ_PAGE_SIZE, LZ_PAGE_SIZE) != 0) {
      os_unmap(c, LZ_CHUNK_SIZE);
      return NULL;
    }
    chunk_header_init(c, node);
    atomic_fetch_add_explicit(&lz_bytes_decommitted, LZ_USABLE_PAGES * LZ_PAGE_SIZE, memory_order_relaxed);
    atomic_fetch_add_explicit(&lz_chunks_mapped, 1, memory_order_relaxed);
    if (region != NULL) region_join(heap, c);
  }
  lz_assert(c->free_pages == LZ_USABLE_PAGES && c->slot_map[0] == 1);
  c->max_run_hint = LZ_USABLE_PAGES;
  c->heap = heap;
  chunkmap_set((uintptr_t)c, heap->map_id); /* the heap's chunk from here (internal.h, chunk_t) */
  c->prev = NULL;
  c->next = heap->chunks;
  if (heap->chunks) heap->chunks->prev = c;
  heap->chunks = c;
  return c;
}

/* Region chunk c, released empty, waits in its region (see Regions):
 * unless the purge delay is -1 (never: as pages_decommit), its pages are
 * given back, header included (it reads zero: region_take sets it up
 * again), in one call. */
lz_text_thread static lz_noinline void region_keep(heap_t *heap, chunk_t *c, long delay) {
  size_t dirty = bitmap_count(c->dirty_map, LZ_HEADER_PAGES, LZ_USABLE_PAGES);
  c->purge_at = 0;
  c->decay_base = 0;
  c->prev = c->next = NULL;
  if (delay >= 0 && os_decommit(c, LZ_CHUNK_SIZE) == 0) {
    atomic_fetch_add_explicit(&lz_pages_purged, dirty, memory_order_relaxed);
    atomic_fetch_add_explicit(&lz_bytes_decommitted, dirty << LZ_PAGE_SHIFT, memory_order_relaxed);
  }
  heap->rwaiting |= 1u << (((uintptr_t)c - heap->rbase) >> LZ_CHUNK_SHIFT);
}

/* malloc_trim's look at the heap's region, holding the heap, by its
 * owning thread (which then sees the new rend: heap.c) or by the holder
 * of an orphan (no thread sees its region): the map pages of the chunks
 * waiting at the region's top are given back and rend lowered below
 * them (see Regions). */
lz_text_thread lz_noinline void chunk_region_trim(heap_t *heap) {
  if (heap->rmap == NULL) return;
  uintptr_t end = heap->rend;
  while (end != 0 && (heap->rwaiting >> ((end >> LZ_CHUNK_SHIFT) - 1) & 1)) end -= LZ_CHUNK_SIZE;
  if (end == heap->rend) return;
  _Static_assert(LZ_CHUNK_PAGES * sizeof(span_t *) % LZ_PAGE_SIZE == 0, "a chunk's map entries fill pages");
  size_t per_chunk = LZ_CHUNK_PAGES * sizeof(span_t *);
  uintptr_t from = (uintptr_t)heap->rmap + (end >> LZ_CHUNK_SHIFT) * per_chunk;
  size_t bytes = ((heap->rend - end) >> LZ_CHUNK_SHIFT) * per_chunk;
  heap->rend = end;
  /* Failed, the entries stay as they are: rend lowered is enough. */
  (void)os_decommit((void *)from, bytes);
}

/* The chunk is empty (every usable page free): give it to the pool (to
 * its region if it has one). */
lz_text_hot void chunk_release(heap_t *heap, chunk_t *c) {
  lz_assert(c->free_pages == LZ_USABLE_PAGES);
  if (c->prev) c->prev->next = c->next; else heap->chunks = c->next;
  if (c->next) c->next->prev = c->prev;
  c->heap = NULL;
  chunkmap_set((uintptr_t)c, CHUNK_SPANS); /* no heap's fast frees */
  chunk_gave_back(heap, bitmap_count(c->dirty_map, LZ_HEADER_PAGES, LZ_USABLE_PAGES));
  long delay = opt_get(OPT_PURGE_DELAY);
  if ((uintptr_t)c - heap->rbase < LZ_REGION_BYTES) {
    region_keep(heap, c, delay);
    return;
  }
  c->purge_at = os_now_ms() + (uint64_t)(delay < 0 ? 0 : delay);
  c->prev = c->next = NULL;
  if (delay == 0 || !chunk_pool_push(pool_of(c->node), c)) chunk_unmap(c);
}

lz_text_late static lz_noinline size_t pool_trim(chunk_pool_t *pool, bool force, uint64_t now) {
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
  long delay = opt_get(OPT_PURGE_DELAY);
  /* The pools are empty while every heap's chunks lie in its region
   * (Regions): the trim itself is not hot text. */
  if ((!force && delay < 0) || chunk_pool_empty()) return 0;
  uint64_t now = os_now_ms();
  size_t freed = 0;
  for (size_t node = 0; node < pool_count(); node++) freed += pool_trim(pool_of((unsigned)node), force, now);
  return freed;
}

/* Is every node's pool empty? (a racy look: the janitor's schedule) */
lz_text_hot bool chunk_pool_empty(void) {
  for (size_t node = 0; node < pool_count(); node++)
    for (size_t i = 0; i < LZ_POOL_SLOTS; i++)
      if (atomic_load_explicit(&pool_of((unsigned)node)->xslot[i], memory_order_relaxed) != NULL) return false;
  return true;
}
