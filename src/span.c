/* span.c: runs of 4 KiB pages inside a heap's chunks, found by bitmap.
 *
 * A span is a run of free pages taken from one chunk's free_map (first fit,
 * word at a time with ctz), optionally starting at a multiple of
 * align_pages. Freed spans go straight back to the bitmap, where they merge
 * with free neighbours by construction. What becomes of the pages (dirty
 * or clean, the purge clock, an empty chunk kept or given back) is
 * pages.c's, told of every run taken and freed.
 * Only the holder of the chunk's heap calls these functions, with the heap
 * lock held (see the janitor protocol in internal.h).
 */
#include "internal.h"

chunk_t *span_chunk(const span_t *s) { return (chunk_t *)((uintptr_t)s & ~LZ_CHUNK_MASK); }

/* Finds n free pages starting at a multiple of align; returns the first
 * page or 0 (page 0 is the header, never free). Updates the run hint. */
lz_text_hot static size_t chunk_find_run(chunk_t *c, size_t n, size_t align) {
  size_t longest = 0;
  size_t i = bitmap_next(c->free_map, LZ_CHUNK_PAGES, LZ_HEADER_PAGES, true);
  while (i < LZ_CHUNK_PAGES) {
    size_t end = bitmap_next(c->free_map, LZ_CHUNK_PAGES, i, false);
    size_t start = (i + align - 1) & ~(align - 1);
    if (end - i > longest) longest = end - i;
    if (start + n <= end) return start;
    i = bitmap_next(c->free_map, LZ_CHUNK_PAGES, end, true);
  }
  if (align == 1) c->max_run_hint = (uint32_t)longest;
  return 0;
}

lz_text_hot span_t *span_alloc(heap_t *heap, size_t npages, size_t align_pages, uint8_t kind) {
  lz_assert(npages > 0 && npages <= LZ_USABLE_PAGES);
  chunk_t *c;
  size_t first = 0;
  for (c = heap->chunks; c != NULL; c = c->next) {
    if (c->free_pages < npages || c->max_run_hint < npages) continue;
    if (lz_unlikely(lz_numa_on) && c->node != heap->numa_home) continue; /* see numa.c */
    first = chunk_find_run(c, npages, align_pages);
    if (first) break;
  }
  bool fresh = c == NULL;
  if (fresh) {
    c = chunk_alloc(heap);
    if (c == NULL) return NULL;
    first = chunk_find_run(c, npages, align_pages);
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
  if (kind == SPAN_SLAB)
    for (size_t i = first; i < first + npages; i++) pagemap_set(c, i, slot);
  else
    pagemap_set(c, first, slot);
  span_t *s = chunk_slot(c, slot);
  s->page = (uint16_t)first;
  size_t clean = pages_taken(heap, c, first, npages, fresh);
  s->free = NULL;
  s->local_free = NULL;
  atomic_store_explicit(&s->xfast_cap, 0, memory_order_relaxed);
  s->next = s->prev = NULL;
  s->to_local = 1;
  s->used = 0;
  s->capacity = 0;
  s->reserved = 0;
  s->npages = (uint16_t)npages;
  s->cls = 0;
  s->flags = clean == npages ? SPAN_ZERO : clean == 0 && kind == SPAN_SLAB ? SPAN_WARM : 0;
  s->kind = kind;
  return s;
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

lz_text_hot void span_free(heap_t *heap, span_t *s) {
  (void)heap;
  chunk_t *c = span_chunk(s);
  size_t first = s->page;
  size_t n = s->npages;
  uint8_t kind = s->kind;
  s->kind = SPAN_NONE;
  bit_clear(c->slot_map, span_slot(s));
  atomic_store_explicit(&s->xfast_cap, 0, memory_order_relaxed);
  s->flags = 0;
  if (kind == SPAN_SLAB) {
    for (size_t i = first; i < first + n; i++) c->pagemap[i] = 0;
    bitmap_assign(c->hole_map, first, n, false); /* holes are free, clean pages now */
  } else
    c->pagemap[first] = 0;
  bitmap_assign(c->free_map, first, n, true);
  c->free_pages += (uint32_t)n;
  c->max_run_hint = LZ_CHUNK_PAGES; /* unknown again: recomputed on the next miss */
  pages_freed(c, first, n);
}
