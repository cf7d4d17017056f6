/* medium.c: medium blocks (32 KiB < size <= 1 MiB), one block per span of
 * whole pages, and the heap's cache of recently freed medium spans.
 *
 * A medium block is a span of kind SPAN_MEDIUM (span.c), block_size its
 * bytes, used 1 while live. A freed span is kept whole in heap->mcache
 * (used 0, its pages still in the span) for the next medium request of
 * about its size, within LZ_MEDIUM_CACHE spans and LZ_MEDIUM_CACHE_BYTES;
 * the cache goes back to the chunks when idle for the purge delay
 * (medium_cache_flush, from heap.c's heap_purge) or to make room. realloc
 * grows a live block into the free pages right after its span when it can
 * (medium_grow, which takes the heap lock itself). Hardening level 2
 * keeps its own medium spans (secure.c).
 * Only the holder of the heap calls these functions, with the heap lock
 * held (the cache is part of what the janitor may touch; see the janitor
 * protocol in internal.h).
 */
#include <string.h>

#include "sizeclass.h"

/* A cached span serves a request of at least 1 / MEDIUM_CACHE_SLACK
 * fewer pages: at most a fifth of the span idle, while requests whose
 * size wanders by a few pages (buffers grown by a margin) still hit. */
#define MEDIUM_CACHE_SLACK 4

/* The largest span kept: half the cache, so that one span never takes the
 * whole of it (with 1 MiB medium blocks and a 4 MiB cache, every span). */
#define MEDIUM_CACHE_SPAN_MAX (LZ_MEDIUM_CACHE_BYTES / 2)

/* The cache's two changes. mcache_count is also read without the lock,
 * as a hint (heap_malloc_slow): its stores are atomic. */
static void mcache_insert(heap_t *heap, span_t *s) {
  heap->mcache[heap->mcache_count] = s;
  __atomic_store_n(&heap->mcache_count, heap->mcache_count + 1, __ATOMIC_RELAXED);
  heap->mcache_bytes += (size_t)s->npages << LZ_PAGE_SHIFT;
}

/* Takes slot i's span out (the last slot's span moves into i). */
static span_t *mcache_remove(heap_t *heap, uint32_t i) {
  span_t *s = heap->mcache[i];
  uint32_t n = heap->mcache_count - 1;
  heap->mcache[i] = heap->mcache[n];
  __atomic_store_n(&heap->mcache_count, n, __ATOMIC_RELAXED);
  heap->mcache_bytes -= (size_t)s->npages << LZ_PAGE_SHIFT;
  return s;
}

/* A cached span of npages .. npages + npages / MEDIUM_CACHE_SLACK pages,
 * or NULL. */
static span_t *medium_cache_take(heap_t *heap, size_t npages) {
  for (uint32_t i = 0; i < heap->mcache_count; i++) {
    span_t *s = heap->mcache[i];
    if (s->npages >= npages && s->npages <= npages + npages / MEDIUM_CACHE_SLACK) {
      heap->mcache_uses++;
      return mcache_remove(heap, i);
    }
  }
  return NULL;
}

/* Gives cached spans back to their chunks: all if force, else if the cache
 * has been idle for the purge delay. Uses only count (no clock on the
 * block paths): a call that finds the count moved stamps mcache_used_at
 * with `now`, a bound the last use did not pass, and the spans go once a
 * later call finds the count unmoved the purge delay after that stamp. */
void medium_cache_flush(heap_t *heap, bool force, uint64_t now) {
  if (heap->mcache_count == 0) return;
  if (!force && heap->mcache_uses != heap->mcache_uses_seen) {
    heap->mcache_uses_seen = heap->mcache_uses;
    heap->mcache_used_at = now;
    return;
  }
  if (!force && now < purge_due(heap->mcache_used_at)) return;
  while (heap->mcache_count > 0) span_free(heap, mcache_remove(heap, heap->mcache_count - 1));
}

/* Makes s (cached, or new with its geometry set) the live block. */
static void *medium_block(heap_t *heap, span_t *s, size_t size, bool zero) {
  /* Kept apart: merged, two of these 16-bit stores become a 32-bit
   * constant loaded from .rodata, whose first read costs a small process
   * a page fault of its own (internal.h, lz_ro_hot). */
  s->reserved = 1;
  __asm__("" ::: "memory");
  s->capacity = 1;
  __asm__("" ::: "memory");
  s->used = 1;
  uint8_t *p = span_start(s);
  if (zero && !(s->flags & SPAN_ZERO)) memset(p, 0, size);
  /* A live block's first word must not look like a free link (remote.c's
   * in-flight screen): the span's last remote free may have left one. */
  else if (LZ_SECURE && !(s->flags & SPAN_ZERO)) ((lz_block_t *)p)->enc_next = 0;
  if (LZ_STATS) heap->stats.in_use += s->block_size;
  return p;
}

lz_text_hot void *medium_malloc(heap_t *heap, size_t size, size_t align_pages, bool zero) {
  size_t npages = (size + LZ_PAGE_SIZE - 1) >> LZ_PAGE_SHIFT;
  span_t *s = align_pages == 1 ? medium_cache_take(heap, npages) : NULL;
  if (s == NULL) { /* a cached span keeps its geometry */
    /* A miss: the cached spans are the wrong size for what the heap now
     * asks. They go back to their chunks first, so the new span can take
     * their pages (resident already) instead of new ones: holding them
     * while mapping more raised peak RSS by up to the cache's size (git log
     * -p: 7.1 -> 10.9 MB). */
    if (heap->mcache_count != 0) medium_cache_flush(heap, true, 0);
    s = span_alloc(heap, npages, align_pages, SPAN_MEDIUM);
    if (s == NULL) return NULL;
    span_set_block_size(s, (uint32_t)(npages << LZ_PAGE_SHIFT));
  }
  return medium_block(heap, s, size, zero);
}

void *medium_malloc_cached(heap_t *heap, size_t size, bool zero) {
  span_t *s = medium_cache_take(heap, (size + LZ_PAGE_SIZE - 1) >> LZ_PAGE_SHIFT);
  return s != NULL ? medium_block(heap, s, size, zero) : NULL;
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
  uint32_t before = s->block_size;
  bool grown = span_grow(heap, s, npages - s->npages);
  if (grown) {
    span_set_block_size(s, (uint32_t)(npages << LZ_PAGE_SHIFT));
    if (LZ_STATS) heap->stats.in_use += s->block_size - before;
  }
  heap_leave(heap);
  return grown;
}

lz_text_hot void medium_free(heap_t *heap, span_t *s) {
  if (lz_unlikely(s->used == 0)) lz_fatal_pointer("double free", "free", span_start(s));
  if (LZ_STATS) heap->stats.in_use -= s->block_size;
  s->used = 0;
  size_t bytes = (size_t)s->npages << LZ_PAGE_SHIFT;
  /* With NUMA, spans off the heap's home node are not kept for reuse. */
  if (opt_get(OPT_PURGE_DELAY) != 0 && bytes <= MEDIUM_CACHE_SPAN_MAX &&
      !(lz_unlikely(lz_numa_on) && span_chunk(s)->node != heap->numa_home)) {
    if (heap->mcache_count == LZ_MEDIUM_CACHE || heap->mcache_bytes + bytes > LZ_MEDIUM_CACHE_BYTES)
      span_free(heap, mcache_remove(heap, 0)); /* make room: give one back */
    if (heap->mcache_count < LZ_MEDIUM_CACHE && heap->mcache_bytes + bytes <= LZ_MEDIUM_CACHE_BYTES) {
      s->flags &= (uint8_t)~SPAN_ZERO;
      mcache_insert(heap, s);
      heap->mcache_uses++;
      if (heap->mcache_count == 1) janitor_notify();
      return;
    }
  }
  span_free(heap, s);
}
