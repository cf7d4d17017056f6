/* purge.c: giving idle memory back to the kernel, with hysteresis.
 *
 * Pages freed inside a chunk stay resident ("dirty") so a heap that
 * allocates again soon reuses them for free. The first span freed in a
 * quiet chunk arms chunk->purge_at = now + LZMALLOC_PURGE_DELAY. When that
 * time comes, a chunk that also allocated spans meanwhile (hot: its free
 * pages are being reused) is re-armed instead of purged (hysteresis: memory
 * being churned is not given back just to be faulted in again); a chunk
 * that only freed has every free dirty run decommitted with
 * madvise(MADV_DONTNEED) (later reads see zeros). A delay of 0 purges at
 * once, -1 never (except malloc_trim). Empty chunks, cached medium spans
 * and cached large mappings age the same way in their caches. Ticks come
 * from the owner's slow paths, allocation and free (every 64th entry reads
 * the coarse clock), and malloc_trim forces everything.
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

void purge_chunk(chunk_t *c, bool force, uint64_t now) {
  if (!force) {
    long delay = opt_get(OPT_PURGE_DELAY);
    if (c->purge_at == 0 || now < c->purge_at || delay < 0) return;
    if (c->hot) { /* still being reused: look again after another delay */
      c->hot = 0;
      c->purge_at = now + (uint64_t)delay;
      return;
    }
  }
  purge_free_dirty(c);
}

/* Pages [first, first + n) of c were just freed. */
void purge_mark(chunk_t *c, size_t first, size_t n) {
  long delay = opt_get(OPT_PURGE_DELAY);
  if (delay == 0) {
    purge_run(c, first, n);
    return;
  }
  if (delay > 0 && c->purge_at == 0) {
    c->purge_at = os_now_ms() + (uint64_t)delay;
    c->hot = 0;
  }
}

void purge_tick(heap_t *heap) {
  uint64_t now = os_now_ms();
  heap->slow_clock = now;
  if (now < heap->purge_next) return;
  long delay = opt_get(OPT_PURGE_DELAY);
  heap->purge_next = now + (uint64_t)(delay > 1 ? delay / 2 : 1);
  if (delay < 0) return;
  medium_cache_flush(heap, false, now);
  for (chunk_t *c = heap->chunks; c != NULL; c = c->next) purge_chunk(c, false, now);
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
