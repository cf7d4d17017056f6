/* pages.c: what becomes of a chunk's pages when span.c takes or frees
 * them: resident ("dirty") or given back, the decommit of page runs, the
 * chunk's purge clock, huge-page advice for dense chunks, and the heap's
 * empty chunks (kept for reuse or handed to the pool).
 *
 * span.c reports every run it takes (pages_taken) and frees (pages_freed);
 * slab.c gives back and takes again the pages of holes (pages_decommit,
 * pages_commit). What is recorded here is read later by purge.c, which
 * decides when free dirty pages and kept empty chunks go back; this file
 * only arms the clock and acts at once where no waiting is asked for (a
 * purge delay of 0, an empty chunk the heap may not keep).
 * Only the holder of the chunk's heap calls these functions, with the heap
 * lock held (see the janitor protocol in internal.h).
 */
#include "internal.h"

/* Empty chunks. A heap that needs a chunk again soon after it gave one
 * back is churning (a burst freed and allocated again, round after round):
 * it may keep one more empty chunk (empty_keep), mapped and resident, so
 * the next round costs neither a system call nor a page fault. A heap that
 * frees everything once keeps nothing, so other heaps can reuse its
 * chunks. purge.c shrinks the allowance of a heap that leaves its kept
 * chunks unused (and gives the chunks back). EMPTY_CHURN_MS: a chunk taken
 * within a second of the last one given back; EMPTY_KEEP_MAX bounds the
 * allowance at 2 GiB of chunks. */
#define EMPTY_CHURN_MS 1000
#define EMPTY_KEEP_MAX 1024

/* Pages [first, first + n) of c are about to be used: they become dirty.
 * Returns how many were clean (not resident: they read zero). */
lz_text_hot size_t pages_commit(chunk_t *c, size_t first, size_t n) {
  size_t clean = n - bitmap_count(c->dirty_map, first, n);
  bitmap_assign(c->dirty_map, first, n, true);
  if (clean) atomic_fetch_sub_explicit(&lz_bytes_decommitted, clean << LZ_PAGE_SHIFT, memory_order_relaxed);
  return clean;
}

/* Pages [first, first + n) of c were given back: those that were dirty
 * are counted, and all are clean now. */
lz_inline void pages_decommitted(chunk_t *c, size_t first, size_t n) {
  size_t dirty = bitmap_count(c->dirty_map, first, n);
  bitmap_assign(c->dirty_map, first, n, false);
  chunk_gave_back(c->heap, dirty);
  atomic_fetch_add_explicit(&lz_pages_purged, dirty, memory_order_relaxed);
  atomic_fetch_add_explicit(&lz_bytes_decommitted, dirty << LZ_PAGE_SHIFT, memory_order_relaxed);
}

/* Decommits pages [first, first + n) of c (one system call). Refused by
 * the kernel: they stay dirty and uncounted. */
lz_text_hot void pages_decommit(chunk_t *c, size_t first, size_t n) {
  if (os_decommit((uint8_t *)c + (first << LZ_PAGE_SHIFT), n << LZ_PAGE_SHIFT) == 0) pages_decommitted(c, first, n);
}

/* Batches. A pass that gives back many short runs (holes in slabs: one
 * to three pages each, thousands of them in a heap that freed most of its
 * small blocks) gathers them here and gives them back in one system call
 * per PAGES_BATCH runs (os_decommit_ranges), a run that continues the
 * last one merged into it. Until the batch is flushed its pages stay
 * counted dirty: the caller flushes before it lets go of the heap, and
 * nothing between reads or takes those pages (they are holes of the heap
 * it holds). A refused batch (an old kernel, a sandbox) goes run by run.
 * Thread text, as slab_punch_holes. */
lz_text_thread void pages_batch_flush(pages_batch_t *b) {
  size_t n = b->n;
  b->n = 0;
  bool done = n > 1 && os_decommit_ranges(b->run, n) == 0;
  for (size_t i = 0; i < n; i++) {
    chunk_t *c = (chunk_t *)((uintptr_t)b->run[i].base & ~LZ_CHUNK_MASK);
    size_t first = (size_t)((uint8_t *)b->run[i].base - (uint8_t *)c) >> LZ_PAGE_SHIFT;
    size_t pages = b->run[i].size >> LZ_PAGE_SHIFT;
    if (done) pages_decommitted(c, first, pages);
    else pages_decommit(c, first, pages);
  }
}

lz_text_thread void pages_decommit_later(pages_batch_t *b, chunk_t *c, size_t first, size_t n) {
  uint8_t *p = (uint8_t *)c + (first << LZ_PAGE_SHIFT);
  size_t size = n << LZ_PAGE_SHIFT;
  if (b->n > 0) {
    os_range_t *last = &b->run[b->n - 1];
    /* Not across chunks: a run's chunk is the one its start lies in. */
    if ((uint8_t *)last->base + last->size == p && ((uintptr_t)p & LZ_CHUNK_MASK) != 0) {
      last->size += size;
      return;
    }
  }
  if (b->n == PAGES_BATCH) pages_batch_flush(b);
  b->run[b->n].base = p;
  b->run[b->n].size = size;
  b->n++;
}

/* Huge pages (LZMALLOC_HUGEPAGES=auto): a chunk that became dense is
 * advised once (purge.c collapses it later). Refused (no THP in this
 * kernel): never asked again. */
static void pages_dense(chunk_t *c) {
  if (opt_get(OPT_HUGEPAGES) != HUGE_AUTO) return;
  c->huge = os_hugepage(c, LZ_CHUNK_SIZE, false) == 0 ? CHUNK_HUGE_ADVISED : CHUNK_HUGE_COLLAPSED;
  c->huge_at = heap_now(c->heap);
}

/* Free pages of c that may be resident (free and dirty). */
lz_text_hot size_t pages_free_dirty(const chunk_t *c) {
  size_t n = 0;
  for (size_t w = 0; w < LZ_BITMAP_WORDS; w++) n += lz_popcount64(c->free_map[w] & c->dirty_map[w]);
  return n;
}

/* Freed pages of the heap are due for a look: its purge tick comes within
 * the purge delay (at most LZ_FREED_DUE_MS) from now. */
lz_inline void pages_wake(heap_t *heap, long delay) {
  uint64_t wake = heap_time(heap, heap->slow_clock) + (uint64_t)(delay < LZ_FREED_DUE_MS ? delay : LZ_FREED_DUE_MS);
  if (wake < heap->purge_wake) heap->purge_wake = wake;
}

/* span_alloc took pages [first, first + n) of c (free_map and free_pages
 * updated); fresh: c came from chunk_alloc for it. Returns how many were
 * clean (n: the span reads zero; 0: every page was dirty). */
lz_text_hot size_t pages_taken(heap_t *heap, chunk_t *c, size_t first, size_t n, bool fresh) {
  if (c->free_pages + n == LZ_USABLE_PAGES) { /* c was empty */
    /* The clock only when it decides something: a process's first chunk
     * reads none (its first clock read costs page faults of its own). */
    if (!fresh) { /* one of the kept empty chunks */
      heap->empty_count--;
      heap->empty_used_at = heap_now(heap);
      heap->empty_idle_keep = heap->empty_keep;
      /* Its other pages stay free and dirty: their decay starts as if
       * they had just been freed (pages_freed), so a kept chunk that a
       * heap takes a span of and then leaves mostly unused gives them back
       * (they waited for a free in the chunk, which may never come: bench
       * glibc-simple held two such chunks, 480 pages each, while it took
       * new pages elsewhere). */
      long delay = opt_get(OPT_PURGE_DELAY);
      if (delay > 0 && c->purge_at == 0) {
        c->purge_at = heap_now(heap) + pages_purge_delay(c, delay);
        /* The chunk is hot (below): its first look re-arms the decay from
         * the free dirty pages then, after giving back those that stayed
         * free all along (low_dirty, set exactly below). */
        c->decay_base = 0;
        c->low_dirty = UINT16_MAX;
        pages_wake(heap, delay);
        janitor_notify();
      }
    } else if (heap->empty_released_at != 0 && heap->empty_keep < EMPTY_KEEP_MAX &&
               heap_now(heap) < heap->empty_released_at + EMPTY_CHURN_MS) {
      heap->empty_keep++;
    }
  }
  c->hot = 1;
  if (lz_unlikely(c->huge == CHUNK_HUGE_NONE) && c->free_pages <= LZ_DENSE_FREE_PAGES) pages_dense(c);
  size_t clean = pages_commit(c, first, n);
  if (c->purge_at != 0) { /* the low-water mark of a churning chunk (purge.c) */
    uint16_t fd = (uint16_t)pages_free_dirty(c);
    if (fd < c->low_dirty) c->low_dirty = fd;
  }
  /* Clean pages after a decay: most likely some it gave back (purge.c,
   * "Refaults"): the heap waits twice as long before the next. */
  if (clean != 0 && c->decayed) {
    c->decayed = 0;
    if (heap->decay_shift < LZ_DECAY_SHIFT_MAX) heap->decay_shift++;
  }
  return clean;
}

/* The delay before c's free pages start to decay: the option's (delay >
 * 0), shifted by its heap's refault backoff (purge.c, "Refaults"). */
uint64_t pages_purge_delay(const chunk_t *c, long delay) { return (uint64_t)delay << c->heap->decay_shift; }

static void chunk_give_back(heap_t *heap, chunk_t *c, uint64_t now) {
  heap->empty_released_at = now;
  chunk_release(heap, c);
  janitor_notify(); /* the pool trims it later */
}

/* One of the heap's kept empty chunks goes back (purge.c). */
void pages_release_kept(heap_t *heap, chunk_t *c, uint64_t now) {
  heap->empty_count--;
  chunk_give_back(heap, c, now);
}

/* span_free gave pages [first, first + n) of c back to its free_map. An
 * empty chunk is kept (within the allowance) or given back at once; else
 * the pages wait for purge.c's decay: the first run freed in a quiet chunk
 * arms its purge clock (purge_at, hot cleared) and decay_base counts the
 * pages freed since (after the heap's own delay, pages_purge_delay). A
 * purge delay of 0 gives them back now. pages_freed and pages_freed_tail
 * (span_shrink's) are this one body: with one caller each, pages_freed
 * stays inlined in span_free's hot text (tests/exec_pages: a small
 * process maps one 64 KiB window of the library's code), where a second
 * caller made GCC place it apart, outside that window. */
static inline void pages_freed_in(chunk_t *c, size_t first, size_t n) {
  heap_t *heap = c->heap;
  long delay = opt_get(OPT_PURGE_DELAY);
  if (delay > 0) pages_wake(heap, delay); /* something to purge (purge.c, "Clock") */
  if (c->free_pages == LZ_USABLE_PAGES) {
    uint64_t now = heap_now(heap);
    c->purge_at = 0;
    c->decay_base = 0;
    c->decayed = 0;
    if (delay != 0 && heap->empty_count < heap->empty_keep) {
      heap->empty_count++;
      heap->empty_used_at = now;
      heap->empty_idle_keep = heap->empty_keep;
      janitor_notify(); /* it goes back if left unused */
    } else {
      chunk_give_back(heap, c, now);
    }
    return;
  }
  if (delay == 0) {
    pages_decommit(c, first, n);
    return;
  }
  c->decay_base += (uint32_t)n;
  if (delay > 0 && c->purge_at == 0) {
    /* A new decay while the last one's pages were never taken back: it
     * was right, the heap's delay halves (purge.c, "Refaults"). */
    if (c->decayed) {
      c->decayed = 0;
      if (heap->decay_shift > 0) heap->decay_shift--;
    }
    c->purge_at = heap_now(heap) + pages_purge_delay(c, delay);
    c->hot = 0;
    c->low_dirty = (uint16_t)pages_free_dirty(c);
    janitor_notify();
  }
}

void pages_freed(chunk_t *c, size_t first, size_t n) { pages_freed_in(c, first, n); }
lz_text_late void pages_freed_tail(chunk_t *c, size_t first, size_t n) { pages_freed_in(c, first, n); }
