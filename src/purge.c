/* purge.c: when idle memory goes back to the kernel (the policy), with
 * hysteresis.
 *
 * Pages freed inside a chunk stay resident ("dirty") so a heap that
 * allocates again soon reuses them for free. The first span freed in a
 * quiet chunk arms chunk->purge_at = now + LZMALLOC_PURGE_DELAY. When that
 * time comes, a chunk that also allocated spans meanwhile (hot: its free
 * pages are being reused) is re-armed instead of purged (hysteresis: memory
 * being churned is not given back just to be faulted in again); a chunk
 * that only freed has every free dirty run decommitted with
 * madvise(MADV_DONTNEED) (later reads see zeros). A chunk that becomes
 * empty goes back to the chunk pool at once, unless its heap is churning
 * (see "Empty chunks" below): then it stays, mapped and resident, so a
 * program that frees everything and allocates it again (a burst, a loop)
 * does not fault its pages in every round. A delay of 0 purges at once,
 * -1 never (except malloc_trim and orphans collected whole). Cached medium
 * spans, pooled chunks and cached large mappings age the same way in their
 * caches.
 *
 * Who looks: the owner on its slow paths, allocation and free (every 64th
 * entry reads the coarse clock: purge_tick); the janitor thread for every
 * heap, orphan and cache on a schedule (purge_background, janitor.c); and
 * malloc_trim forces everything.
 */
#include "internal.h"

static void purge_run(chunk_t *c, size_t first, size_t n) {
  /* Refused by the kernel: the pages stay dirty and uncounted. */
  if (os_decommit((uint8_t *)c + (first << LZ_PAGE_SHIFT), n << LZ_PAGE_SHIFT) != 0) return;
  for (size_t i = first; i < first + n; i++) c->dirty_map[i >> 6] &= ~(1ull << (i & 63));
  atomic_fetch_add_explicit(&lz_pages_purged, n, memory_order_relaxed);
  atomic_fetch_add_explicit(&lz_bytes_decommitted, n << LZ_PAGE_SHIFT, memory_order_relaxed);
}

/* Decommits every page that is free and dirty, in maximal runs. */
static void purge_free_dirty(chunk_t *c) {
  size_t run = 0;
  for (size_t i = LZ_HEADER_PAGES; i <= LZ_CHUNK_PAGES; i++) {
    bool take = i < LZ_CHUNK_PAGES && (c->free_map[i >> 6] & c->dirty_map[i >> 6] & (1ull << (i & 63)));
    if (take) {
      run++;
    } else if (run) {
      purge_run(c, i - run, run);
      run = 0;
    }
  }
  c->purge_at = 0;
}

/* Empty chunks. A heap that needs a chunk again soon after it gave one
 * back is churning (a burst freed and allocated again, round after round):
 * it may keep one more empty chunk, mapped and resident, so the next round
 * costs neither a system call nor a page fault. Kept chunks go back (and
 * the allowance is halved) when the heap has left them unused for
 * PURGE_KEEP_MS (never with a purge delay of -1); a heap that frees
 * everything once keeps nothing, so other heaps can reuse its chunks. */
#define PURGE_CHURN_MS 1000
#define PURGE_KEEP_MS 1000
#define PURGE_KEEP_MAX 1024

static void chunk_give_back(heap_t *heap, chunk_t *c, uint64_t now) {
  heap->empty_released_at = now;
  chunk_release(heap, c);
  janitor_notify(); /* the pool trims it later */
}

/* span_alloc takes pages of c: a chunk just mapped or popped for the heap
 * (fresh), or one of its kept empty chunks. */
void purge_chunk_taken(heap_t *heap, chunk_t *c, bool fresh) {
  uint64_t now = os_now_ms();
  if (!fresh) {
    heap->empty_count--;
    heap->empty_used_at = now;
  } else if (heap->empty_released_at != 0 && now < heap->empty_released_at + PURGE_CHURN_MS &&
             heap->empty_keep < PURGE_KEEP_MAX) {
    heap->empty_keep++;
  }
  (void)c;
}

/* One chunk that holds spans, if due (or force): its free dirty pages are
 * decommitted, unless it allocated spans since it was armed (hot): then it
 * is re-armed. Returns when it next falls due, UINT64_MAX if never. */
static uint64_t purge_chunk(chunk_t *c, bool force, uint64_t now) {
  if (!force) {
    long delay = opt_get(OPT_PURGE_DELAY);
    if (c->purge_at == 0 || delay < 0) return UINT64_MAX;
    if (now < c->purge_at) return c->purge_at;
    if (c->hot) { /* still being reused: look again after another delay */
      c->hot = 0;
      c->purge_at = now + (uint64_t)delay;
      return c->purge_at;
    }
  }
  purge_free_dirty(c);
  return UINT64_MAX;
}

/* Everything of the heap that is due (all of it if force): cached medium
 * spans, kept empty chunks, then every chunk's free pages. The caller holds
 * the heap (lock or BUSY). Returns when something next falls due,
 * UINT64_MAX if nothing will. */
uint64_t purge_heap(heap_t *heap, bool force, uint64_t now) {
  long delay = opt_get(OPT_PURGE_DELAY);
  medium_cache_flush(heap, force, now);
  uint64_t next = UINT64_MAX;
  if (heap->mcache_count > 0 && delay >= 0) next = heap->mcache_used_at + (uint64_t)delay;
  bool drop_empty = force || (heap->empty_count > 0 && delay >= 0 && now >= heap->empty_used_at + PURGE_KEEP_MS);
  if (drop_empty) heap->empty_keep = force ? 0 : heap->empty_keep / 2;
  for (chunk_t *c = heap->chunks; c != NULL;) {
    chunk_t *following = c->next; /* c may be given back */
    if (c->free_pages == LZ_USABLE_PAGES) {
      if (drop_empty) {
        heap->empty_count--;
        chunk_give_back(heap, c, now);
      }
    } else {
      uint64_t due = purge_chunk(c, force, now);
      if (due < next) next = due;
    }
    c = following;
  }
  if (heap->empty_count > 0 && delay >= 0 && heap->empty_used_at + PURGE_KEEP_MS < next)
    next = heap->empty_used_at + PURGE_KEEP_MS;
  return next;
}

/* Pages [first, first + n) of c were just freed. */
void purge_mark(chunk_t *c, size_t first, size_t n) {
  heap_t *heap = c->heap;
  long delay = opt_get(OPT_PURGE_DELAY);
  if (c->free_pages == LZ_USABLE_PAGES) {
    uint64_t now = os_now_ms();
    if (delay != 0 && heap->empty_count < heap->empty_keep) {
      heap->empty_count++;
      heap->empty_used_at = now;
      janitor_notify(); /* it goes back if left unused */
    } else {
      chunk_give_back(heap, c, now);
    }
    return;
  }
  if (delay == 0) {
    purge_run(c, first, n);
    return;
  }
  if (delay > 0 && c->purge_at == 0) {
    c->purge_at = os_now_ms() + (uint64_t)delay;
    c->hot = 0;
    janitor_notify();
  }
}

/* Huge pages. A chunk is 2 MiB, 2 MiB aligned: one transparent huge page
 * maps it all with one TLB entry, but is resident whole. With
 * LZMALLOC_HUGEPAGES=auto only a densely used chunk (at most 1/8 of its
 * pages free) is advised (MADV_HUGEPAGE, once, from span_alloc); the
 * janitor collapses its pages into a huge page (MADV_COLLAPSE) once it has
 * stayed dense for COLLAPSE_AFTER_MS in a heap that is not freeing (no
 * purge armed), off the program's threads; without a janitor, the
 * kernel's khugepaged does it in its own time. Sparse chunks are never
 * advised. =always advises every chunk when it is mapped (chunk.c); =never
 * (the default, see options.c) none. */
#define DENSE_FREE_PAGES (LZ_USABLE_PAGES / 8)

#define COLLAPSE_AFTER_MS 1000 /* dense this long: not about to be freed */

void purge_chunk_dense(chunk_t *c) {
  if (opt_get(OPT_HUGEPAGES) != HUGE_AUTO) return;
  /* Refused (no THP in this kernel): never asked again. */
  c->huge = os_hugepage(c, LZ_CHUNK_SIZE, false) == 0 ? CHUNK_HUGE_ADVISED : CHUNK_HUGE_COLLAPSED;
  c->huge_at = os_now_ms();
}

/* The janitor, holding the heap: collapse the advised chunks that have
 * stayed dense for COLLAPSE_AFTER_MS (a burst that frees them right after
 * would only split the huge page again). Returns when to look again. */
uint64_t purge_heap_collapse(heap_t *heap, uint64_t now) {
  uint64_t next = UINT64_MAX;
  if (opt_get(OPT_HUGEPAGES) == HUGE_NEVER) return next;
  /* A heap that is freeing (pages waiting for their purge) is not settled:
   * its dense chunks may be about to empty. */
  for (chunk_t *c = heap->chunks; c != NULL; c = c->next)
    if (c->purge_at != 0) return now + COLLAPSE_AFTER_MS;
  for (chunk_t *c = heap->chunks; c != NULL; c = c->next) {
    if (c->huge != CHUNK_HUGE_ADVISED || c->free_pages > DENSE_FREE_PAGES) continue;
    if (now < c->huge_at + COLLAPSE_AFTER_MS) {
      if (c->huge_at + COLLAPSE_AFTER_MS < next) next = c->huge_at + COLLAPSE_AFTER_MS;
      continue;
    }
    c->huge = CHUNK_HUGE_COLLAPSED; /* tried once, whatever the kernel said */
    if (os_hugepage(c, LZ_CHUNK_SIZE, true) != 0) continue;
    /* The huge page made every page resident: none is clean any more. */
    size_t clean = 0;
    for (size_t w = 0; w < LZ_BITMAP_WORDS; w++) {
      uint64_t usable = w == 0 ? ~0ull << LZ_HEADER_PAGES : ~0ull; /* header pages are never dirty */
      clean += (size_t)__builtin_popcountll(~c->dirty_map[w] & usable);
      c->dirty_map[w] |= usable;
    }
    atomic_fetch_sub_explicit(&lz_bytes_decommitted, clean * LZ_PAGE_SIZE, memory_order_relaxed);
  }
  return next;
}

/* The owner's tick (its heap lock held). */
void purge_tick(heap_t *heap) {
  uint64_t now = os_now_ms();
  heap->slow_clock = now;
  if (now < heap->purge_next) return;
  long delay = opt_get(OPT_PURGE_DELAY);
  heap->purge_next = now + (uint64_t)(delay > 1 ? delay / 2 : 1);
  if (delay < 0) return;
  purge_heap(heap, false, now);
  chunk_pool_trim(false);
  large_cache_trim(false);
  heaps_collect_orphans(false);
}

/* malloc_trim: everything idle that this thread may touch goes back. */
size_t purge_all(bool force) {
  size_t before = (size_t)atomic_load(&lz_pages_purged);
  heap_t *heap = lz_heap_tls;
  if (heap != &lz_heap_empty) heap_collect(heap, force);
  heaps_collect_orphans(force);
  size_t freed = chunk_pool_trim(force) + large_cache_trim(force);
  return freed + ((size_t)atomic_load(&lz_pages_purged) - before) * LZ_PAGE_SIZE;
}

/* The janitor's pass (janitor.c): every heap it can take, then the pool and
 * the large cache. Returns when to look again, UINT64_MAX if nothing is
 * pending anywhere. */
uint64_t purge_background(void) {
  long delay = opt_get(OPT_PURGE_DELAY);
  if (delay < 0) return UINT64_MAX;
  uint64_t now = os_now_ms();
  uint64_t next = heaps_purge_background(now);
  chunk_pool_trim(false);
  large_cache_trim(false);
  if ((!chunk_pool_empty() || !large_cache_empty()) && now + (uint64_t)delay < next) next = now + (uint64_t)delay;
  return next;
}
