/* span.c: runs of 4 KiB pages inside a heap's chunks, found by bitmap.
 *
 * A span is a run of free pages taken from one chunk's free_map (first fit,
 * or best fit for a slab while address space is short: span_find_best;
 * chunks newest first, word at a time with ctz, jumping the chunks a
 * memo says hold no run long enough: "The fit memo"; a slab whose first fit is
 * all clean pages, or a medium span whose first fit has any, takes free
 * dirty ones elsewhere if any fit), optionally starting at a multiple of
 * align_pages. Freed spans go straight back to the bitmap, where they merge
 * with free neighbours by construction. What becomes of the pages (dirty
 * or clean, the purge clock, an empty chunk kept or given back) is
 * pages.c's, told of every run taken and freed.
 * Only the holder of the chunk's heap calls these functions, with the heap
 * lock held (see the janitor protocol in internal.h).
 */
#include "internal.h"

chunk_t *span_chunk(const span_t *s) { return (chunk_t *)((uintptr_t)s & ~LZ_CHUNK_MASK); }

/* Finds n pages set in map (free_map, or free dirty pages) starting at a
 * multiple of align; returns the first page or 0 (page 0 is the header,
 * never free). First fit, or with `best` the first of the shortest free
 * runs that hold them (an exact fit ends the look; a miss looks at every
 * run either way). The longest run seen goes to *longest, the end of the
 * run found to *found_end. */
lz_text_hot static size_t map_find_run(const uint64_t *map, size_t n, size_t align, size_t *longest, bool best,
                                       size_t *found_end) {
  size_t i = bitmap_next(map, LZ_CHUNK_PAGES, LZ_HEADER_PAGES, true);
  size_t found = 0, found_run = SIZE_MAX;
  while (i < LZ_CHUNK_PAGES) {
    size_t end = bitmap_next(map, LZ_CHUNK_PAGES, i, false);
    size_t start = (i + align - 1) & ~(align - 1);
    if (end - i > *longest) *longest = end - i;
    if (start + n <= end && end - i < found_run) {
      found = start;
      found_run = end - i;
      *found_end = end;
      if (!best || found_run == n) break;
    }
    i = bitmap_next(map, LZ_CHUNK_PAGES, end, true);
  }
  return found;
}

/* map_find_run's first fit for an alignment above one page, a word at a
 * time: bit i of r becomes "pages i .. i + len - 1 all free" by ANDing r
 * with itself shifted down, len doubling up to n (log n passes over the
 * map's words), then only multiples of align may start. An aligned
 * request (aligned_alloc(64 KiB) of medium sizes, 1,000 alive) walked
 * every chunk's free runs, whose many short pieces (each block's pages
 * below its alignment's next multiple) the run hint does not rule out:
 * 75 % of that program's time. Returns the first page or 0. */
lz_text_late static lz_noinline size_t map_find_aligned(const uint64_t *map, size_t n, size_t align) {
  uint64_t r[LZ_BITMAP_WORDS];
  for (size_t w = 0; w < LZ_BITMAP_WORDS; w++) r[w] = map[w]; /* header pages never set [chunk.free_map] */
  for (size_t len = 1; len < n;) {
    size_t sh = len <= n - len ? len : n - len, ws = sh >> 6, bs = sh & 63;
    for (size_t w = 0; w < LZ_BITMAP_WORDS; w++) { /* r &= r >> sh, as one 512-bit number */
      uint64_t lo = w + ws < LZ_BITMAP_WORDS ? r[w + ws] : 0;
      uint64_t hi = w + ws + 1 < LZ_BITMAP_WORDS ? r[w + ws + 1] : 0;
      r[w] &= bs == 0 ? lo : (lo >> bs) | (hi << (64 - bs));
    }
    len += sh;
  }
  uint64_t starts = 1; /* bits at multiples of align within a word (align < 64) */
  for (size_t b = align; b < 64; b <<= 1) starts |= starts << b;
  for (size_t w = 0; w < LZ_BITMAP_WORDS; w++) {
    uint64_t m = align < 64 ? r[w] & starts : ((w << 6) & (align - 1)) == 0 ? r[w] & 1 : 0;
    if (m != 0) return (w << 6) + (size_t)__builtin_ctzll(m);
  }
  return 0;
}

/* Finds n free pages starting at a multiple of align (best fit: see
 * span_alloc); returns the first page or 0. Updates the run hint. */
lz_text_hot static size_t chunk_find_run(chunk_t *c, size_t n, size_t align, bool best) {
  if (align > 1 && !best) return map_find_aligned(c->free_map, n, align);
  size_t longest = 0, end;
  size_t first = map_find_run(c->free_map, n, align, &longest, best, &end);
  if (first == 0 && align == 1) c->max_run_hint = (uint32_t)longest;
  return first;
}

/* Finds n free pages that are all dirty (resident: freed since their last
 * purge) in c; 0 if none. The end of their run of free dirty pages goes
 * to *end. */
lz_text_hot static size_t chunk_find_dirty_run(const chunk_t *c, size_t n, size_t align, size_t *end) {
  uint64_t map[LZ_BITMAP_WORDS];
  size_t count = 0, longest = 0;
  for (size_t w = 0; w < LZ_BITMAP_WORDS; w++) {
    map[w] = c->free_map[w] & c->dirty_map[w];
    count += (size_t)lz_popcount64(map[w]);
  }
  return count < n ? 0 : map_find_run(map, n, align, &longest, false, end);
}

/* Placement of a slab: first fit, unless its pages are all clean and a
 * run of free dirty pages fits in one of the heap's chunks (the first such
 * run, chunks newest first); of a medium span: the same, unless its first
 * fit is all dirty (git log -p peaked with 704 KiB of free dirty pages in
 * its chunks when medium spans took first fit, 548 with this). A chunk's
 * free pages stay resident until its decay gives them back (purge.c), so
 * a span put on clean pages while dirty ones wait elsewhere adds its
 * pages to the process's RSS on top of them: a program that frees a
 * structure and builds the next one (bench
 * barnes: an octree of 112 B cells a step) built each one in the newest
 * chunk's clean pages while the last one's pages waited in the older
 * chunk, and peaked at both (3.4 MiB of anonymous memory against glibc's
 * 2.2; 2.2 with this). Medium spans placed so in any chunk moved the
 * spans' ends of bench footprint into chunks that would have emptied
 * (rss_freeall 87.9 -> 92.0 MiB); in the newest four, 89.7 -> 88.8.
 * Only the newest chunks are looked at, DIRTY_LOOK_CHUNKS for a medium
 * span and DIRTY_LOOK_SLAB_CHUNKS for a slab: the pages a program freed
 * last lie there, the
 * look costs a few words per chunk whatever the heap's size, and the last
 * slabs of a class stay out of old chunks that are about to empty (slabs
 * put in any chunk: footprint's rss_freeall 88.9). Slabs look further:
 * a program that frees a burst of blocks of many sizes and allocates the
 * same mix again (a server's requests) leaves its freed slabs' pages in
 * every chunk it used, and a slab that took a chunk it had to make for a
 * class's new share (the mix shifts between rounds) pushed the chunks
 * holding them out of the four newest: 8 rounds of 10,000 blocks of 20
 * sizes, 8 B-16 KiB, 11 chunks, peaked with 2.3 MiB of free dirty pages
 * waiting in the older chunks from round 2 on in about half the runs
 * (22.1 MiB against 19.2 in round 0; with 16, 20.2 in every run; glibc
 * 19.3). A medium span's look stays at four: bench micro's 256 KiB
 * blocks freed by another thread make a span each, and this look was
 * most of span_alloc's cost there (about 280 instructions a call with
 * four chunks). With a purge delay,
 * only chunks whose free pages wait for the decay (purge_at armed, as a
 * kept empty chunk is once a span is taken from it: pages.c) or kept
 * empty ones hold free dirty pages worth a look.
 * Runs are kept for medium spans: a first fit in a free run shorter than
 * DIRTY_OPEN_RUN pages (a hole the span fits snugly) stays unless the
 * dirty run lies in a free run no longer than it. Under `ulimit -v`
 * (tests/scale_ulimit.sh), a 1-page slab put in a freed medium span's
 * 25-page run instead of a chunk's 7-page tail left a 100 KiB block no
 * room once the chunks had run out. While address space is short
 * (heap_t.as_tight) a slab's placement is best fit instead of first fit
 * (span_find_best), then the same look for dirty pages. */
#define DIRTY_LOOK_CHUNKS 4
#define DIRTY_LOOK_SLAB_CHUNKS 16
#define DIRTY_OPEN_RUN 128
lz_text_hot static chunk_t *span_find_dirty(heap_t *heap, size_t npages, size_t align_pages, unsigned chunks,
                                            size_t *first, size_t *end) {
  bool armed_only = opt_get(OPT_PURGE_DELAY) >= 0;
  unsigned looks = 0;
  for (chunk_t *c = heap->chunks; c != NULL && looks++ < chunks; c = c->next) {
    if (c->free_pages < npages || c->max_run_hint < npages) continue;
    if (armed_only && c->purge_at == 0 && c->free_pages != LZ_USABLE_PAGES) continue;
    if (lz_unlikely(lz_numa_on) && c->node != heap->numa_home) continue; /* see numa.c */
    *first = chunk_find_dirty_run(c, npages, align_pages, end);
    if (*first) return c;
  }
  return NULL;
}

/* The fit memo (heap_t.fit_*). First fit walks the chunks newest first,
 * and a heap whose oldest chunks are the ones freeing (a queue, a
 * producer whose blocks a consumer frees) walks past every full chunk in
 * front of them on each span it makes: bench micro's 256 KiB blocks
 * handed to another thread, 1,024 in flight, walked some 60 chunk
 * headers a span, a cache miss each (all lie on the same cache sets),
 * 58 % of the run's time. The walk's first chunks that did not serve
 * it are remembered with the longest free run they may hold (free_pages
 * and max_run_hint bound it): a later request of more pages jumps over
 * them, with the same first fit as the full walk. Chunks linked since
 * (new ones go in front) are looked at as before. A span freed in a
 * chunk of the memo that then has fit_pages free pages drops the memo
 * (span_free: the chunk's fit_epoch says whether it may be in it, in
 * one load of the header span_free reads anyway); taking pages only
 * shortens runs, and a chunk of the memo is never empty, so never
 * unlinked while in it. */
_Static_assert(LZ_MAX_NODES <= UINT16_MAX && LZ_CHUNK_PAGES <= UINT16_MAX, "chunk_t.node and fit_pages fit");

/* Best fit, for a slab while address space is short (heap_t.as_tight):
 * the first of the shortest free runs that hold npages in any of the
 * heap's chunks (an exact fit ends the walk); NULL if none. First fit put
 * a slab at the front of whatever free run came first, so a program that
 * freed medium blocks and asked for the same sizes again found the runs
 * they left one page short while short runs (chunks' tails) stayed free,
 * and with no address space for another chunk a 100 KiB block failed
 * with 35 pages free (tests/scale_ulimit.sh: under `ulimit -v` 290000,
 * 393216 and 13 of the 47 limits from 240000 to 516000 by 6000; none with
 * this). Every chunk is walked: only under a limit, where a
 * slab is a few pages among chunks that cannot grow in number. */
static lz_noinline chunk_t *span_find_best(heap_t *heap, size_t npages, size_t align_pages, size_t *first) {
  chunk_t *best = NULL;
  size_t best_run = SIZE_MAX;
  for (chunk_t *c = heap->chunks; c != NULL; c = c->next) {
    if (c->free_pages < npages || c->max_run_hint < npages) continue;
    if (lz_unlikely(lz_numa_on) && c->node != heap->numa_home) continue; /* see numa.c */
    size_t at = chunk_find_run(c, npages, align_pages, true);
    if (at == 0) continue;
    size_t run = bitmap_next(c->free_map, LZ_CHUNK_PAGES, at, false) - at;
    if (run < best_run) {
      best = c;
      best_run = run;
      *first = at;
      if (run == npages) break;
    }
  }
  return best;
}

/* span_alloc for a slab, whose size may give: when its pages would all be
 * clean (the first fit's, or a new chunk's, none fitting), it takes the
 * first run of at least min_pages free dirty pages in the chunks
 * span_find_dirty looks at, up to npages of it (the look span_alloc makes
 * for npages, with min_pages); the span's npages says how many it got.
 * A program whose blocks of many
 * sizes come and go leaves freed slabs' pages in short dirty runs
 * between live slabs, resident until the decay gives them back (purge.c),
 * while its new full-size slabs took clean pages beside them: bench
 * sh8bench peaked with 0.4-1.4 MiB of free dirty pages in its 5.3-5.9 MiB,
 * mstress with 0.9-2.4 MiB in 25-26.5 MiB. */
lz_text_hot span_t *span_alloc_fit(heap_t *heap, size_t npages, size_t min_pages, size_t align_pages, uint8_t kind) {
  lz_assert(npages > 0 && npages <= LZ_USABLE_PAGES && min_pages > 0 && min_pages <= npages);
  if (lz_unlikely(heap->as_tight)) min_pages = npages; /* best fit keeps runs for medium spans */
  chunk_t *c;
  size_t first = 0;
  if (lz_unlikely(heap->as_tight) && kind == SPAN_SLAB) { /* no memo: it only ever bounds runs */
    c = span_find_best(heap, npages, align_pages, &first);
    goto placed;
  }
  /* The memo is jumped when it holds no run of npages; a walk that
   * jumps it extends it (its epoch), else the chunks it passes make a
   * new one (the next epoch). The walk's failing run from the head: its
   * last chunk, the longest run it may hold, whether it still grows. */
  chunk_t *skip = heap->fit_pages != 0 && npages >= heap->fit_pages ? heap->fit_first : NULL;
  uint16_t epoch = (uint16_t)(heap->fit_epoch + (skip == NULL));
  chunk_t *last = NULL;
  size_t longest = 0;
  bool grows = true;
  for (c = heap->chunks; c != NULL; c = c->next) {
    if (c == skip) {
      c = heap->fit_last;
      if (grows) {
        last = c;
        if (heap->fit_pages - 1u > longest) longest = heap->fit_pages - 1u;
      }
      continue;
    }
    if (lz_unlikely(lz_numa_on) && c->node != heap->numa_home) { /* see numa.c */
      grows = false;
      continue;
    }
    if (c->free_pages >= npages && c->max_run_hint >= npages) {
      first = chunk_find_run(c, npages, align_pages, false);
      if (first) break;
    }
    if (grows) {
      size_t run = c->free_pages < c->max_run_hint ? c->free_pages : c->max_run_hint;
      if (run > longest) longest = run;
      if (c->fit_epoch != epoch) c->fit_epoch = epoch;
      last = c;
    }
  }
  if (last != NULL && longest < LZ_USABLE_PAGES) {
    heap->fit_first = heap->chunks;
    heap->fit_last = last;
    heap->fit_pages = (uint16_t)(longest + 1);
    heap->fit_epoch = epoch;
  }
placed:
  /* A slab whose first fit is all clean pages, or a medium span whose
   * first fit has any: dirty ones elsewhere? (None fit if no free run
   * does, unless a slab may take fewer pages: span_alloc_fit; the first
   * fit's run is then none, so the dirty run stays whatever its free
   * run.) */
  if (c != NULL ? (kind == SPAN_SLAB ? bitmap_count(c->dirty_map, first, npages) == 0
                                     : bitmap_count(c->dirty_map, first, npages) < npages)
                : min_pages < npages) {
    size_t dirty_first = 0, dirty_end = 0, run = c != NULL ? bitmap_next(c->free_map, LZ_CHUNK_PAGES, first, false) - first : DIRTY_OPEN_RUN;
    chunk_t *d = span_find_dirty(heap, min_pages, align_pages,
                                 kind == SPAN_SLAB ? DIRTY_LOOK_SLAB_CHUNKS : DIRTY_LOOK_CHUNKS, &dirty_first, &dirty_end);
    if (d != NULL && run < DIRTY_OPEN_RUN && bitmap_next(d->free_map, LZ_CHUNK_PAGES, dirty_first, false) - dirty_first > run)
      d = NULL;
    if (d != NULL) {
      c = d;
      first = dirty_first;
      if (dirty_end - first < npages) npages = dirty_end - first; /* the dirty run, up to npages */
    }
  }
  bool fresh = c == NULL;
  if (fresh) {
    c = chunk_alloc(heap);
    if (c == NULL) return NULL;
    if (lz_unlikely(heap->populate_budget != 0) && kind == SPAN_SLAB) chunk_populate(heap, c); /* chunk.c, Populate */
    first = chunk_find_run(c, npages, align_pages, false);
    if (first == 0) return NULL;
  }
  bitmap_assign(c->free_map, first, npages, false);
  c->free_pages -= (uint32_t)npages;
  /* Slab blocks lie on every page of the span; a medium block is only ever
   * freed by its first page, so its other pages stay unmapped (0) and a
   * pointer into them is reported as invalid. */
  /* The lowest free descriptor slot (internal.h, chunk_t): at most
   * LZ_USABLE_PAGES spans, so one is free; slot 0 never is. */
  size_t slot = bitmap_next(c->slot_map, LZ_CHUNK_PAGES, 1, false);
  lz_assert(slot > 0 && slot < LZ_CHUNK_PAGES);
  bit_set(c->slot_map, slot);
  span_t *s = chunk_slot(c, slot);
  s->to_local = 1; /* before the region's page map entries (rmap_entry) */
  if (kind == SPAN_SLAB)
    pagemap_set_run(c, first, npages, slot);
  else
    pagemap_set(c, first, slot);
  s->page = (uint16_t)first;
  size_t clean = pages_taken(heap, c, first, npages, fresh);
  s->free = NULL;
  s->local_free = NULL;
  atomic_store_explicit(&s->xfast_cap, 0, memory_order_relaxed);
  s->next = s->prev = NULL;
  s->used = 0;
  s->capacity = 0;
  s->reserved = 0;
  s->npages = (uint16_t)npages;
  s->cls = 0;
  s->flags = clean == npages ? SPAN_ZERO : clean == 0 && kind == SPAN_SLAB ? SPAN_WARM : 0;
  s->kind = kind;
  return s;
}

lz_text_hot span_t *span_alloc(heap_t *heap, size_t npages, size_t align_pages, uint8_t kind) {
  return span_alloc_fit(heap, npages, npages, align_pages, kind);
}

/* Grows medium span s by the `more` pages that follow it, if all are free
 * (realloc in place, medium.c); returns false, changing nothing, if not.
 * The pages join the span like span_alloc's: taken from free_map (the run
 * hint stays an upper bound), told to pages.c; the pagemap still names
 * only the first page. */
bool span_grow(heap_t *heap, span_t *s, size_t more) {
  chunk_t *c = span_chunk(s);
  size_t from = (size_t)s->page + s->npages;
  if (from + more > LZ_CHUNK_PAGES || bitmap_count(c->free_map, from, more) != more) return false;
  bitmap_assign(c->free_map, from, more, false);
  c->free_pages -= (uint32_t)more;
  pages_taken(heap, c, from, more, false);
  s->npages = (uint16_t)(s->npages + more);
  return true;
}

/* Pages [first, first + n) of c, a span's, free in the chunk's maps
 * (span_free's and span_shrink's; pages_freed follows). */
lz_inline void span_pages_free(heap_t *heap, chunk_t *c, size_t first, size_t n) {
  bitmap_assign(c->free_map, first, n, true);
  c->free_pages += (uint32_t)n;
  c->max_run_hint = LZ_CHUNK_PAGES; /* unknown again: recomputed on the next miss */
  /* A chunk of the fit memo may hold a run of fit_pages now (before
   * pages_freed, which may unlink it if empty). */
  if (lz_unlikely(c->fit_epoch == heap->fit_epoch) && c->free_pages >= heap->fit_pages) heap->fit_pages = 0;
}

/* Medium span s keeps its first npages pages; the rest are freed (the
 * chunk's free and dirty pages, given back by the decay as any others).
 * Only s's first page maps to it (span_alloc), so no map entry changes;
 * the chunk keeps s, so it does not empty. */
lz_text_late lz_noinline void span_shrink(heap_t *heap, span_t *s, size_t npages) {
  chunk_t *c = span_chunk(s);
  lz_assert(s->kind == SPAN_MEDIUM && npages > 0 && npages < s->npages);
  size_t first = (size_t)s->page + npages, n = s->npages - npages;
  s->npages = (uint16_t)npages;
  span_pages_free(heap, c, first, n);
  pages_freed_tail(c, first, n);
}

/* Set by slab.c before it keeps its first spare slab: releases the spares
 * of a chunk (the one call from here that goes back up a layer). */
lz_hot void (*lz_span_spares_release)(heap_t *heap, chunk_t *c);

/* span_free's, in a chunk with spare slabs: they never keep it from
 * emptying (slab.c, "Spare slabs"), so if s is the last other span they
 * go first (s still counts as in use: none of their frees empties it). */
lz_text_late static lz_noinline void span_free_spares(heap_t *heap, chunk_t *c, span_t *s) {
  if (c->free_pages + c->spare_pages + s->npages >= LZ_USABLE_PAGES) lz_span_spares_release(heap, c);
}

lz_text_hot void span_free(heap_t *heap, span_t *s) {
  chunk_t *c = span_chunk(s);
  if (lz_unlikely(c->spare_pages != 0)) span_free_spares(heap, c, s);
  size_t first = s->page;
  size_t n = s->npages;
  uint8_t kind = s->kind;
  s->kind = SPAN_NONE;
  bit_clear(c->slot_map, span_slot(s));
  atomic_store_explicit(&s->xfast_cap, 0, memory_order_relaxed);
  s->flags = 0;
  if (kind == SPAN_SLAB) {
    pagemap_set_run(c, first, n, 0);
    bitmap_assign(c->hole_map, first, n, false); /* holes are free, clean pages now */
  } else
    pagemap_set(c, first, 0);
  span_pages_free(heap, c, first, n);
  pages_freed(c, first, n);
}
