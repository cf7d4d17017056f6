/* purge.c: when idle memory goes back to the kernel, chunk by chunk and
 * slab by slab (the timing; heap.c drives it: it decides which heaps,
 * caches and orphans are visited, and when). The state it reads is
 * written below it: pages.c keeps each chunk's dirty pages, purge clock
 * and the heap's kept empty chunks, slab.c arms the look for holes.
 *
 * Pages freed inside a chunk stay resident ("dirty") so a heap that
 * allocates again soon reuses them for free. The first span freed in a
 * quiet chunk arms chunk->purge_at = now + LZMALLOC_PURGE_DELAY (pages.c,
 * pages_freed). From then
 * on the chunk's free dirty pages decay: at time purge_at + t the chunk
 * keeps at most decay_base * (1 - smoothstep(t / DECAY_MS)) of them, where
 * decay_base counts the pages freed since it was armed, and gives back the
 * rest with madvise(MADV_DONTNEED) (later reads see zeros), highest pages
 * first (span_alloc is first fit: low pages are reused first). By
 * purge_at + DECAY_MS all are back. A chunk that allocated spans meanwhile
 * (hot: its free pages are being reused) is re-armed instead (hysteresis:
 * memory being churned is not given back just to be faulted in again),
 * after giving back the pages it did not reuse: as many as stayed free
 * and dirty all the time since it was armed (low_dirty, the low-water
 * mark pages.c keeps at each span taken). A heap that churns a few slabs
 * over a chunk with a surplus of free pages thus sheds the surplus a delay
 * at a time (sh8bench, mstress) and keeps what its churn needs.
 * jemalloc's decay is the model (smoothstep over a window); its "muzzy"
 * stage (MADV_FREE first) is left out on purpose: MADV_FREE pages stay in
 * the process's RSS (and its cgroup's charge) until the kernel is short of
 * memory, so a program that went quiet would look as big as before, and
 * they may come back with their old contents, so calloc could not trust
 * them to be zero (jemalloc's own default on Linux has no muzzy stage).
 *
 * Pages inside live slabs that hold no live block become holes (slab.c,
 * "Holes") once the heap's slabs have been left alone for holes_delay
 * after a full slab got a block back (purge_heap_holes).
 *
 * A chunk that becomes empty goes back to the chunk pool at once, unless
 * its heap is churning (pages.c, "Empty chunks"): then it stays, mapped
 * and resident, so a program that frees everything and allocates it again
 * (a burst, a loop) does not fault its pages in every round; the heap's
 * allowance shrinks here when its kept chunks go unused. A delay of 0
 * purges at once (pages.c), -1 never (except malloc_trim and orphans
 * collected whole).
 */
#include "internal.h"

#define DECAY_MS LZ_DECAY_MS
#define DECAY_STEPS 8     /* looks per window while a chunk decays */

/* Of 1024, what a decay started `elapsed` ms ago still keeps:
 * 1 - smoothstep(elapsed / window), 0 from the window's end. */
static uint64_t decay_keep(uint64_t elapsed, uint64_t window) {
  if (elapsed >= window) return 0;
  uint64_t x = elapsed * 1024 / window; /* 0..1023 */
  return 1024 - x * x * (3 * 1024 - 2 * x) / (1024 * 1024);
}

/* Word w of c's free dirty pages (free and dirty). */
lz_inline uint64_t free_dirty_word(const chunk_t *c, size_t w) { return c->free_map[w] & c->dirty_map[w]; }

/* The highest page below i (LZ_HEADER_PAGES < i <= LZ_CHUNK_PAGES) whose
 * bit in the free dirty pages equals `set`, a word at a time; -1 if none
 * at or above LZ_HEADER_PAGES (header pages are never free). */
lz_inline long free_dirty_prev(const chunk_t *c, size_t i, bool set) {
  while (i > LZ_HEADER_PAGES) {
    size_t w = (i - 1) >> LZ_WORD_SHIFT;
    uint64_t m = free_dirty_word(c, w);
    m = (set ? m : ~m) & (~0ull >> (LZ_WORD_MASK - ((i - 1) & LZ_WORD_MASK))); /* bits at or below i - 1 */
    if (m != 0) {
      size_t top = (w << LZ_WORD_SHIFT) + LZ_WORD_MASK - (size_t)__builtin_clzll(m);
      return top >= LZ_HEADER_PAGES ? (long)top : -1;
    }
    i = w << LZ_WORD_SHIFT;
  }
  return -1;
}

static size_t count_free_dirty(const chunk_t *c) { return pages_free_dirty(c); }

/* Refaults. A program whose demand for pages swings (rounds of threads,
 * phases that free and allocate again later) takes back pages the decay
 * has just given away, each costing a page fault and the decay's system
 * call. So each heap has its own delay, the option's shifted left by
 * decay_shift: pages_taken raises the shift when a chunk takes clean
 * pages after its decay gave some back (chunk decayed: most likely the
 * same pages: span_alloc is first fit and the decay takes the highest
 * first), and pages_freed lowers it when a chunk starts a new decay while
 * its last one was never answered so. A heap whose decays are mostly
 * answered ends up keeping free pages for 2^LZ_DECAY_SHIFT_MAX delays
 * before their decay starts; one whose pages stay given back returns to
 * the option's delay (pages.c, pages_purge_delay). A delay of 0 or -1 has
 * no decay to adapt.
 * Holes in slabs adapt the same way, per heap (holes_shift): the slabs
 * are looked at once left alone for LZ_HOLES_AFTER_MS << holes_shift
 * (holes_delay); filling holes back (slab_fill_holes: the blocks of the
 * punched pages are about to be used, each page faults in again) raises
 * the shift, at most once between two looks, and a look made while
 * nothing was filled since the previous one lowers it. A program
 * whose slabs drain and fill in rounds (threads adopting the heaps of
 * those before them, a garbage collector's sweeps) thus stops punching
 * pages it takes back a moment later, each costing an madvise call and a
 * page fault. Forced punches (malloc_trim, an idle orphan collected
 * whole) leave the shift as it is. */

/* Clock. Every delay above is the heap's own time, not the wall clock's:
 * heap_now() is wall time less the time the heap's owner thread spent
 * runnable but waiting for a CPU (its schedstat's second field, read by
 * purge_clock_sync). On a loaded machine a program runs a fraction of the
 * wall time, and a delay in wall time shrinks by that fraction in the
 * program's own terms: sqlite3 run with a CPU hog on its CPU took 31-34k
 * page faults against 25.7k alone, for the pages its next statement
 * wanted again. A thread that is blocked (sleeping, in I/O, idle) does not
 * wait for a CPU, so an idle heap's clock runs with the wall clock and
 * its memory goes back on time. The owner syncs at its purge ticks (its
 * own thread), the janitor before it purges a live heap (reading the
 * owner's thread): both only while the heap has something to purge
 * (purge_wake) and only once it may be due (a program with many threads
 * costs the janitor no reading per heap per pass), so a process with
 * nothing to give back reads nothing. An
 * orphan's clock runs with the wall clock (no owner: wait_seen_ns 0); its
 * next owner counts from its own first reading. Shared heaps
 * (LZ_HEAPS > 0) have no one owner: wall time. Hot text: purge ticks run
 * it in every program that frees pages (fork_pages, text_purge). */
lz_text_hot void purge_clock_sync(heap_t *heap, uint32_t tid, uint64_t wall) {
  if (LZ_HEAPS > 0) return;
  if (heap->purge_wake == UINT64_MAX) { /* nothing to purge: nothing to delay */
    heap->wait_seen_ns = 0;
    return;
  }
  /* The owner in its own thread with no base: a heap is made or adopted at
   * its thread's first allocation, so the thread's waits count from its
   * start (1: a base of 0 that is not "none"). No reading for the base: a
   * short-lived thread reads nothing (thread-churn: one /proc file open
   * per thread cost 28% of its threads a second). A thread that waited
   * before it took the heap delays the heap's purge by those waits. */
  if (heap->wait_seen_ns == 0 && tid == 0) heap->wait_seen_ns = 1;
  /* Nothing due even by the clock as it stands (a later reading only moves
   * it back): no reading now; the next one counts the waits since the last. */
  if (heap->wait_seen_ns != 0 && heap_time(heap, wall) < heap->purge_wake) return;
  uint64_t wait = os_thread_wait_ns(tid);
  if (wait == UINT64_MAX) return;
  if (heap->wait_seen_ns != 0 && wait >= heap->wait_seen_ns) {
    uint64_t ms = (wait - heap->wait_seen_ns) / 1000000u;
    atomic_fetch_add_explicit(&heap->lag_ms, ms, memory_order_relaxed);
    heap->wait_seen_ns += ms * 1000000u; /* the rest counts next time */
  } else {
    heap->wait_seen_ns = wait; /* a new owner, or a fork child's new thread */
  }
}

/* Decommits free dirty pages, in maximal runs from the top of the chunk
 * down, until at most `keep` remain; returns how many it decommitted. The
 * runs are found a bitmap word at a time (free_dirty_prev: read page by
 * page, a look cost 2,721 instructions in bench rptest, now 237).
 * Hot text: every program that frees pages runs it once their decay
 * starts (git log -p: the one function of its run outside that text,
 * which cost it the second 64 KiB window of the library's text). */
lz_text_hot static size_t purge_free_dirty(chunk_t *c, size_t keep) {
  size_t dirty = count_free_dirty(c), before = dirty;
  for (size_t i = LZ_CHUNK_PAGES; dirty > keep;) {
    long top = free_dirty_prev(c, i, true); /* the run's last page */
    if (top < 0) break;
    long below = free_dirty_prev(c, (size_t)top + 1, false); /* the page under the run */
    size_t lo = below < (long)LZ_HEADER_PAGES ? LZ_HEADER_PAGES : (size_t)below + 1;
    size_t run = (size_t)top + 1 - lo;
    if (run > dirty - keep) run = dirty - keep;
    i = (size_t)top + 1 - run;
    pages_decommit(c, i, run);
    dirty -= run;
  }
  if (dirty == 0) {
    c->purge_at = 0;
    c->decay_base = 0;
  }
  return before - dirty;
}

/* Kept empty chunks (pages.c, "Empty chunks"): their allowance decays
 * like pages do: a heap that has left its kept chunks unused for t ms may
 * keep empty_idle_keep * (1 - smoothstep(t / LZ_EMPTY_KEEP_MS)) of them,
 * rounded up, the others go back (never with a purge delay of -1), and
 * the allowance shrinks with them. The base is the allowance when the
 * chunks were last used, not the one the last look left: a decay from the
 * shrunk allowance would compound, look after look (every half purge
 * delay), and with rounding down it gave the first chunk back after 19 ms
 * and every other on the next looks, so a program that empties a few
 * chunks between two phases of its work (sqlite3 building an index after
 * a sort) faulted them in again each time. The window:
 * LZ_EMPTY_KEEP_MS (internal.h). */

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
    size_t dirty = count_free_dirty(c);
    size_t low = c->low_dirty < dirty ? c->low_dirty : dirty;
    if (low > 0 && purge_free_dirty(c, dirty - low) != 0) c->decayed = 1;
    if (c->purge_at == 0) return UINT64_MAX;
    c->purge_at = now + pages_purge_delay(c, delay);
    c->decay_base = (uint32_t)count_free_dirty(c);
    c->low_dirty = (uint16_t)c->decay_base;
    return c->purge_at;
  }
  uint64_t keep = decay_keep(now - c->purge_at, DECAY_MS);
  if (purge_free_dirty(c, (size_t)(c->decay_base * keep / 1024)) != 0) c->decayed = 1;
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
    uint32_t base = heap->empty_idle_keep;
    allowed = (uint32_t)((base * decay_keep(idle, LZ_EMPTY_KEEP_MS) + 1023) / 1024);
    if (allowed > heap->empty_keep) allowed = heap->empty_keep;
  }
  if (heap->empty_count > allowed) heap->empty_keep = allowed;
  for (chunk_t *c = heap->chunks; c != NULL;) {
    chunk_t *following = c->next; /* c may be given back */
    if (c->free_pages == LZ_USABLE_PAGES) {
      if (heap->empty_count > allowed) pages_release_kept(heap, c, now);
    } else {
      uint64_t due = purge_chunk(c, force, now);
      if (due < next) next = due;
    }
    c = following;
  }
  if (heap->empty_count > 0 && delay >= 0 && now + LZ_EMPTY_KEEP_MS / DECAY_STEPS < next)
    next = now + LZ_EMPTY_KEEP_MS / DECAY_STEPS;
  return next;
}

/* The slabs of classes cls and above but the first of each queue: their
 * idle pages become holes, given back in batches (pages.c). Out of line,
 * in the text of threaded processes with slab_punch_holes: a look that
 * finds only first slabs (most small processes) runs none of it. */
lz_text_thread __attribute__((noinline)) static void purge_punch_from(heap_t *heap, unsigned from, bool exclusive) {
  pages_batch_t batch;
  batch.n = 0;
  for (unsigned cls = from; cls < LZ_CLASSES; cls++)
    for (span_t *s = heap->queues[cls].first; s != NULL; s = s->next)
      if (s != heap->queues[cls].first) slab_punch_holes(heap, s, exclusive, &batch);
  pages_batch_flush(&batch);
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
      heap->holes_at = now + holes_delay(heap);
      return heap->holes_at;
    }
    /* The last look's holes were never filled: it was right (Refaults). */
    if (!heap->holes_refilled && heap->holes_shift > 0) heap->holes_shift--;
    heap->holes_refilled = 0;
  }
  heap->holes_at = 0;
  for (unsigned cls = 1; cls < LZ_CLASSES; cls++)
    if (heap->queues[cls].first != NULL && heap->queues[cls].first->next != NULL) {
      purge_punch_from(heap, cls, exclusive);
      break;
    }
  return UINT64_MAX;
}

/* Huge pages. A chunk is 2 MiB, 2 MiB aligned: one transparent huge page
 * maps it all with one TLB entry, but is resident whole. With
 * LZMALLOC_HUGEPAGES=auto only a densely used chunk (at most
 * LZ_DENSE_FREE_PAGES free) is advised (MADV_HUGEPAGE, once, pages.c when
 * span_alloc takes its pages); the
 * janitor collapses its pages into a huge page (MADV_COLLAPSE) once it has
 * stayed dense for COLLAPSE_AFTER_MS in a heap that is not freeing (no
 * purge armed), off the program's threads; without a janitor, the
 * kernel's khugepaged does it in its own time. Sparse chunks are never
 * advised. =always advises every chunk when it is mapped (chunk.c); =never
 * (the default, see options.c) none. */
#define COLLAPSE_AFTER_MS 1000 /* dense this long: not about to be freed */

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
    if (c->huge != CHUNK_HUGE_ADVISED || c->free_pages > LZ_DENSE_FREE_PAGES) continue;
    if (now < c->huge_at + COLLAPSE_AFTER_MS) {
      if (c->huge_at + COLLAPSE_AFTER_MS < next) next = c->huge_at + COLLAPSE_AFTER_MS;
      continue;
    }
    c->huge = CHUNK_HUGE_COLLAPSED; /* tried once, whatever the kernel said */
    if (os_hugepage(c, LZ_CHUNK_SIZE, true) != 0) continue;
    /* The huge page made every page resident: none is clean any more
     * (header pages are never marked dirty). */
    pages_commit(c, LZ_HEADER_PAGES, LZ_USABLE_PAGES);
  }
  return next;
}
