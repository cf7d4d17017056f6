/* chunk.c: 2 MiB chunks, their headers, and the global pool of empty ones.
 *
 * A chunk belongs to one heap from chunk_alloc until chunk_release hands it
 * back empty. Empty chunks wait in the pool (LIFO, at most
 * LZ_CHUNK_POOL_MAX) so a heap that grows again soon needs no system call;
 * pooled chunks idle longer than the purge delay are unmapped by
 * chunk_pool_trim. The pool is the only shared structure here: guarded by
 * pool_lock (lock order: heaps_lock, then pool_lock, then large_lock).
 */
#include <string.h>

#include "internal.h"

static lz_lock_t pool_lock = LZ_LOCK_INIT;
static chunk_t *pool_first, *pool_last;    /* under pool_lock */
static size_t pool_count;                  /* under pool_lock */

_Atomic(size_t) lz_chunks_mapped;
_Atomic(uint64_t) lz_pages_purged;
_Atomic(size_t) lz_bytes_decommitted;      /* chunk pages known not resident */

static size_t bitmap_popcount_clean(const chunk_t *c) {
  size_t n = 0;
  for (size_t w = 0; w < LZ_BITMAP_WORDS; w++) n += (size_t)__builtin_popcountll(~c->dirty_map[w]);
  return n - LZ_HEADER_PAGES; /* header pages are never marked dirty */
}

static void chunk_unmap(chunk_t *c) {
  atomic_fetch_sub_explicit(&lz_bytes_decommitted, bitmap_popcount_clean(c) * LZ_PAGE_SIZE,
                            memory_order_relaxed);
  chunkmap_set((uintptr_t)c, CHUNK_NONE);
  os_unmap(c, LZ_CHUNK_SIZE);
  atomic_fetch_sub_explicit(&lz_chunks_mapped, 1, memory_order_relaxed);
}

static chunk_t *pool_pop(void) {
  lz_lock(&pool_lock);
  chunk_t *c = pool_first;
  if (c) {
    pool_first = c->next;
    if (pool_first) pool_first->prev = NULL; else pool_last = NULL;
    pool_count--;
  }
  lz_unlock(&pool_lock);
  return c;
}

chunk_t *chunk_alloc(heap_t *heap) {
  chunk_t *c = pool_pop();
  if (c == NULL) {
    c = os_map_aligned(LZ_CHUNK_SIZE, LZ_CHUNK_SIZE);
    if (c == NULL) return NULL;
    /* Fresh memory is zero: pagemap, spans and dirty_map start cleared. */
    for (size_t i = LZ_HEADER_PAGES; i < LZ_CHUNK_PAGES; i++) c->free_map[i >> 6] |= 1ull << (i & 63);
    c->free_pages = LZ_USABLE_PAGES;
    atomic_fetch_add_explicit(&lz_bytes_decommitted, LZ_USABLE_PAGES * LZ_PAGE_SIZE, memory_order_relaxed);
    atomic_fetch_add_explicit(&lz_chunks_mapped, 1, memory_order_relaxed);
    chunkmap_set((uintptr_t)c, CHUNK_SPANS);
  }
  lz_assert(c->free_pages == LZ_USABLE_PAGES);
  c->max_run_hint = LZ_USABLE_PAGES;
  c->heap = heap;
  c->prev = NULL;
  c->next = heap->chunks;
  if (heap->chunks) heap->chunks->prev = c;
  heap->chunks = c;
  return c;
}

/* The chunk is empty (every usable page free): give it to the pool. */
void chunk_release(heap_t *heap, chunk_t *c) {
  lz_assert(c->free_pages == LZ_USABLE_PAGES);
  if (c->prev) c->prev->next = c->next; else heap->chunks = c->next;
  if (c->next) c->next->prev = c->prev;
  c->heap = NULL;
  long delay = opt_get(OPT_PURGE_DELAY);
  c->purge_at = os_now_ms() + (uint64_t)(delay < 0 ? 0 : delay);
  chunk_t *victim = NULL;
  lz_lock(&pool_lock);
  c->prev = NULL;
  c->next = pool_first;
  if (pool_first) pool_first->prev = c; else pool_last = c;
  pool_first = c;
  if (++pool_count > LZ_CHUNK_POOL_MAX || delay == 0) {
    victim = pool_last;
    pool_last = victim->prev;
    if (pool_last) pool_last->next = NULL; else pool_first = NULL;
    pool_count--;
  }
  lz_unlock(&pool_lock);
  if (victim) chunk_unmap(victim);
}

/* Unmap pooled chunks idle past the purge delay (all of them if force).
 * Returns the bytes given back. */
size_t chunk_pool_trim(bool force) {
  uint64_t now = os_now_ms();
  long delay = opt_get(OPT_PURGE_DELAY);
  if (!force && delay < 0) return 0;
  size_t freed = 0;
  for (;;) {
    chunk_t *victim = NULL;
    lz_lock(&pool_lock);
    /* The oldest chunks are at the tail. */
    if (pool_last && (force || pool_last->purge_at <= now)) {
      victim = pool_last;
      pool_last = victim->prev;
      if (pool_last) pool_last->next = NULL; else pool_first = NULL;
      pool_count--;
    }
    lz_unlock(&pool_lock);
    if (victim == NULL) break;
    chunk_unmap(victim);
    freed += LZ_CHUNK_SIZE;
  }
  return freed;
}

void chunk_pool_fork_prepare(void) { lz_lock(&pool_lock); }
void chunk_pool_fork_parent(void) { lz_unlock(&pool_lock); }
void chunk_pool_fork_child(void) { lz_lock_reset(&pool_lock); }
