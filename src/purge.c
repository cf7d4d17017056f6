/* purge.c: when idle memory goes back to the kernel, chunk by chunk and
 * slab by slab (the mechanics and their timing; heap.c drives them: it
 * decides which heaps, caches and orphans are visited, and when).
 *
 * Pages freed inside a chunk stay resident ("dirty") so a heap that
 * allocates again soon reuses them for free. The first span freed in a
 * quiet chunk arms chunk->purge_at = now + LZMALLOC_PURGE_DELAY. From then
 * on the chunk's free dirty pages decay: at time purge_at + t the chunk
 * keeps at most decay_base * (1 - smoothstep(t / DECAY_MS)) of them, where
 * decay_base counts the pages freed since it was armed, and gives back the
 * rest with madvise(MADV_DONTNEED) (later reads see zeros), highest pages
 * first (span_alloc is first fit: low pages are reused first). By
 * purge_at + DECAY_MS all are back. A chunk that allocated spans meanwhile
 * (hot: its free pages are being reused) is re-armed instead (hysteresis:
 * memory being churned is not given back just to be faulted in again).
 * jemalloc's decay is the model (smoothstep over a window); its "muzzy"
 * stage (MADV_FREE first) is left out on purpose: MADV_FREE pages stay in
 * the process's RSS (and its cgroup's charge) until the kernel is short of
 * memory, so a program that went quiet would look as big as before, and
 * they may come back with their old contents, so calloc could not trust
 * them to be zero (jemalloc's own default on Linux has no muzzy stage).
 *
 * Pages inside live slabs that hold no live block become holes (slab.c,
 * "Holes") once the heap's slabs have been left alone for HOLES_AFTER_MS
 * after a full slab got a block back (purge_heap_holes).
 *
 * A chunk that becomes empty goes back to the chunk pool at once, unless
 * its heap is churning (see "Empty chunks" below): then it stays, mapped
 * and resident, so a program that frees everything and allocates it again
 * (a burst, a loop) does not fault its pages in every round. A delay of 0
 * purges at once, -1 never (except malloc_trim and orphans collected
 * whole).
 */
#include "internal.h"

#define DECAY_MS LZ_DECAY_MS
#define DECAY_STEPS 8     /* looks per window while a chunk decays */
#define HOLES_AFTER_MS LZ_HOLES_AFTER_MS

/* Of 1024, what a decay started `elapsed` ms ago still keeps:
 * 1 - smoothstep(elapsed / window), 0 from the window's end. */
static uint64_t decay_keep(uint64_t elapsed, uint64_t window) {
  if (elapsed >= window) return 0;
  uint64_t x = elapsed * 1024 / window; /* 0..1023 */
  return 1024 - x * x * (3 * 1024 - 2 * x) / (1024 * 1024);
}

/* Decommits pages [first, first + n) of c (one system call); those that
 * were dirty are counted. Refused by the kernel: they stay dirty and
 * uncounted. */
void purge_pages(chunk_t *c, size_t first, size_t n) {
  if (os_decommit((uint8_t *)c + (first << LZ_PAGE_SHIFT), n << LZ_PAGE_SHIFT) != 0) return;
  size_t dirty = 0;
  for (size_t i = first; i < first + n; i++) {
    dirty += bit_get(c->dirty_map, i);
    bit_clear(c->dirty_map, i);
  }
  atomic_fetch_add_explicit(&lz_pages_purged, dirty, memory_order_relaxed);
  atomic_fetch_add_explicit(&lz_bytes_decommitted, dirty << LZ_PAGE_SHIFT, memory_order_relaxed);
}

static bool free_dirty(const chunk_t *c, size_t i) {
  return bit_get(c->free_map, i) && bit_get(c->dirty_map, i);
}

static size_t count_free_dirty(const chunk_t *c) {
  size_t n = 0;
  for (size_t w = 0; w < LZ_BITMAP_WORDS; w++) n += (size_t)__builtin_popcountll(c->free_map[w] & c->dirty_map[w]);
  return n;
}

/* Decommits free dirty pages, in maximal runs from the top of the chunk
 * down, until at most `keep` remain. */
static void purge_free_dirty(chunk_t *c, size_t keep) {
  size_t dirty = count_free_dirty(c);
  for (size_t i = LZ_CHUNK_PAGES; i > LZ_HEADER_PAGES && dirty > keep;) {
    if (!free_dirty(c, i - 1)) {
      i--;
      continue;
    }
    size_t run = 0;
    while (i - run > LZ_HEADER_PAGES && free_dirty(c, i - run - 1) && dirty - run > keep) run++;
    purge_pages(c, i - run, run);
    dirty -= run;
    i -= run;
  }
  if (dirty == 0) {
    c->purge_at = 0;
    c->decay_base = 0;
  }
}

/* Empty chunks. A heap that needs a chunk again soon after it gave one
 * back is churning (a burst freed and allocated again, round after round):
 * it may keep one more empty chunk, mapped and resident, so the next round
 * costs neither a system call nor a page fault. The allowance decays like
 * pages do: a heap that has left its kept chunks unused for t ms may keep
 * empty_keep * (1 - smoothstep(t / PURGE_KEEP_MS)) of them, the others go
 * back (never with a purge delay of -1), and the allowance shrinks with
 * them; a heap that frees everything once keeps nothing, so other heaps can
 * reuse its chunks. */
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

/* One chunk that holds spans, if due (or force): its free dirty pages
 * decay (see above), unless it allocated spans since it was armed (hot):
 * then it is re-armed. Returns when to look again, UINT64_MAX if never. */
static uint64_t purge_chunk(chunk_t *c, bool force, uint64_t now) {
  if (force) {
    purge_free_dirty(c, 0);
    return UINT64_MAX;
  }
  long delay = opt_get(OPT_PURGE_DELAY);
  if (c->purge_at == 0 || delay < 0) return UINT64_MAX;
  if (now < c->purge_at) return c->purge_at;
  if (c->hot) { /* still being reused: look again after another delay */
    c->hot = 0;
    c->purge_at = now + (uint64_t)delay;
    c->decay_base = (uint32_t)count_free_dirty(c);
    return c->purge_at;
  }
  uint64_t keep = decay_keep(now - c->purge_at, DECAY_MS);
  purge_free_dirty(c, (size_t)(c->decay_base * keep / 1024));
  if (c->purge_at == 0) return UINT64_MAX;
  return now + DECAY_MS / DECAY_STEPS;
}

/* Kept empty chunks (all of them if force) and every chunk's free pages
 * that are due. The caller holds the heap (lock or BUSY). Returns when
 * something next falls due, UINT64_MAX if nothing will. */
uint64_t purge_heap(heap_t *heap, bool force, uint64_t now) {
  long delay = opt_get(OPT_PURGE_DELAY);
  uint64_t next = UINT64_MAX;
  uint32_t allowed = heap->empty_keep;
  if (force) {
    allowed = 0;
  } else if (heap->empty_count > 0 && delay >= 0) {
    uint64_t idle = now > heap->empty_used_at ? now - heap->empty_used_at : 0;
    allowed = (uint32_t)(heap->empty_keep * decay_keep(idle, PURGE_KEEP_MS) / 1024);
  }
  if (heap->empty_count > allowed) heap->empty_keep = allowed;
  for (chunk_t *c = heap->chunks; c != NULL;) {
    chunk_t *following = c->next; /* c may be given back */
    if (c->free_pages == LZ_USABLE_PAGES) {
      if (heap->empty_count > allowed) {
        heap->empty_count--;
        chunk_give_back(heap, c, now);
      }
    } else {
      uint64_t due = purge_chunk(c, force, now);
      if (due < next) next = due;
    }
    c = following;
  }
  if (heap->empty_count > 0 && delay >= 0 && now + PURGE_KEEP_MS / DECAY_STEPS < next)
    next = now + PURGE_KEEP_MS / DECAY_STEPS;
  return next;
}

/* Pages [first, first + n) of c were just freed. */
void purge_mark(chunk_t *c, size_t first, size_t n) {
  heap_t *heap = c->heap;
  long delay = opt_get(OPT_PURGE_DELAY);
  if (c->free_pages == LZ_USABLE_PAGES) {
    uint64_t now = os_now_ms();
    c->purge_at = 0;
    c->decay_base = 0;
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
    purge_pages(c, first, n);
    return;
  }
  c->decay_base += (uint32_t)n;
  if (delay > 0 && c->purge_at == 0) {
    c->purge_at = os_now_ms() + (uint64_t)delay;
    c->hot = 0;
    janitor_notify();
  }
}

/* A full slab of the heap got a block back (the heap held): its slabs are
 * freeing, look for holes once they have been left alone. */
void purge_slabs_freeing(heap_t *heap) {
  if (heap->holes_at != 0 || opt_get(OPT_PURGE_DELAY) < 0 || heap->secure != NULL) return;
  heap->holes_at = os_now_ms() + HOLES_AFTER_MS;
  heap->holes_hot = 0;
  janitor_notify();
}

/* The slabs of the heap, if due (every slab if force): idle pages become
 * holes, except in slabs allocated from since the last look (hot: re-armed).
 * The first span of each queue is skipped (slab.c, "Holes"); exclusive:
 * see slab_punch_holes. Returns when
 * to look again, UINT64_MAX if never. */
uint64_t purge_heap_holes(heap_t *heap, bool force, bool exclusive, uint64_t now) {
  if (heap->secure != NULL) return UINT64_MAX; /* level 2: secure.c's own state */
  if (!force) {
    if (heap->holes_at == 0 || opt_get(OPT_PURGE_DELAY) < 0) return UINT64_MAX;
    if (now < heap->holes_at) return heap->holes_at;
    if (heap->holes_hot) {
      heap->holes_hot = 0;
      heap->holes_at = now + HOLES_AFTER_MS;
      return heap->holes_at;
    }
  }
  heap->holes_at = 0;
  for (unsigned cls = 1; cls < LZ_CLASSES; cls++)
    for (span_t *s = heap->queues[cls].first; s != NULL; s = s->next)
      if (s != heap->queues[cls].first) slab_punch_holes(heap, s, exclusive);
  return UINT64_MAX;
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
