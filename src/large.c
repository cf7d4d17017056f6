/* large.c: blocks > 1 MiB (and over-aligned blocks that do not fit a
 * chunk), each in its own mapping, with a small cache of freed mappings.
 *
 * Layout (see large_t in internal.h): the mapping's base is 2 MiB aligned
 * and holds the header; the user block starts `offset` bytes later
 * (one page, the alignment, or exactly 2 MiB for alignments >= 2 MiB), so
 * (p - 1) rounded down to 2 MiB is always the header. realloc moves or
 * grows the mapping with mremap, never copying.
 *
 * The cache keeps up to LZ_LARGE_CACHE_ENTRIES freed mappings (at most
 * LZMALLOC_LARGE_CACHE bytes); an entry unused for ten purge delays is
 * unmapped by large_cache_trim. Guarded by large_lock.
 *
 * NUMA (numa.c): a new mapping is bound to the caller's node (or
 * interleaved) before its first touch; the cache hands a mapping only to a
 * caller on the node it is bound to (large_t.node).
 */
#include <string.h>

#include "internal.h"

_Atomic(size_t) lz_large_mapped;
_Atomic(size_t) lz_large_in_use;

typedef struct cache_entry_s {
  large_t *base;
  size_t map_size;
  uint64_t expire;
} cache_entry_t;

static lz_lock_t large_lock = LZ_LOCK_INIT;
static cache_entry_t cache[LZ_LARGE_CACHE_ENTRIES > 0 ? LZ_LARGE_CACHE_ENTRIES : 1]; /* under large_lock */
static size_t cache_count, cache_bytes;                                               /* under large_lock */
static const size_t cache_entries = LZ_LARGE_CACHE_ENTRIES; /* a variable: no always-false warnings at 0 */

#define LARGE_FREED_TAG ((uintptr_t)1)
/* A cached mapping is dearer to rebuild (mmap plus a fault per page) than a
 * chunk page, so it waits ten purge delays before it is unmapped. */
#define LARGE_DELAY_FACTOR 10

static size_t page_round(size_t n) { return (n + LZ_PAGE_SIZE - 1) & ~(LZ_PAGE_SIZE - 1); }

static size_t guard_bytes(void) { return opt_get(OPT_SECURE) >= 2 ? LZ_PAGE_SIZE : 0; }

size_t large_usable(const large_t *l) { return l->map_size - l->offset - l->guard; }

static void large_unmap(large_t *l, size_t map_size) {
  chunkmap_set((uintptr_t)l, CHUNK_NONE);
  if (lz_unlikely(lz_numa_on)) numa_account((unsigned)l->node, -(ptrdiff_t)map_size);
  os_unmap(l, map_size);
  atomic_fetch_sub_explicit(&lz_large_mapped, map_size, memory_order_relaxed);
}

/* Takes a cached mapping of at least `need` bytes and not much more. */
static large_t *cache_take(size_t need) {
  large_t *found = NULL;
  size_t node = 0;
  if (lz_unlikely(lz_numa_on))
    node = opt_get(OPT_NUMA) == NUMA_INTERLEAVE ? NUMA_NODE_INTERLEAVED : numa_current_node();
  lz_lock(&large_lock);
  size_t best = SIZE_MAX;
  size_t best_i = 0;
  for (size_t i = 0; i < cache_count; i++) {
    size_t sz = cache[i].map_size;
    if (lz_unlikely(lz_numa_on) && cache[i].base->node != node) continue;
    if (sz >= need && sz - need <= need / 4 + LZ_CHUNK_SIZE && sz < best) {
      best = sz;
      best_i = i;
    }
  }
  if (best != SIZE_MAX) {
    found = cache[best_i].base;
    cache_bytes -= cache[best_i].map_size;
    cache[best_i] = cache[--cache_count];
  }
  lz_unlock(&large_lock);
  return found;
}

void *large_malloc(size_t size, size_t align, bool zero) {
  if (size > LZ_MAX_ALLOC || align > LZ_MAX_ALLOC / 4) return NULL;
  size_t offset = align <= LZ_PAGE_SIZE ? LZ_PAGE_SIZE : (align < LZ_CHUNK_SIZE ? align : LZ_CHUNK_SIZE);
  size_t guard = guard_bytes();
  size_t map_size = page_round(offset + size) + guard;
  large_t *l = NULL;
  if (offset == LZ_PAGE_SIZE && LZ_LARGE_CACHE_ENTRIES > 0) {
    l = cache_take(map_size);
    if (l != NULL) {
      map_size = l->map_size;
      if (guard && os_protect_none((uint8_t *)l + map_size - guard, guard) != 0) {
        large_unmap(l, map_size); /* no guard, no block: see below */
        return NULL;
      }
      if (zero) memset((uint8_t *)l + offset, 0, map_size - offset - guard);
    }
  }
  if (l == NULL) {
    if (align < LZ_CHUNK_SIZE) {
      l = os_map_aligned(map_size, LZ_CHUNK_SIZE);
    } else {
      /* Header at base, user block at base + 2 MiB aligned to `align`. */
      uint8_t *raw = os_map(map_size + align);
      if (raw == NULL) return NULL;
      uintptr_t user = ((uintptr_t)raw + LZ_CHUNK_SIZE + align - 1) & ~(uintptr_t)(align - 1);
      uint8_t *base = (uint8_t *)(user - LZ_CHUNK_SIZE);
      size_t head = (size_t)(base - raw);
      size_t tail = map_size + align - head - map_size;
      if (head) os_unmap(raw, head);
      if (tail) os_unmap(base + map_size, tail);
      l = (large_t *)base;
    }
    if (l == NULL) return NULL;
    /* A guard the kernel refuses (out of mappings at vm.max_map_count) is
     * out of memory: the block is not handed out unguarded. */
    if (guard && os_protect_none((uint8_t *)l + map_size - guard, guard) != 0) {
      os_unmap(l, map_size);
      return NULL;
    }
    if (lz_unlikely(lz_numa_on)) l->node = numa_bind_large(l, map_size); /* before the first touch */
    atomic_fetch_add_explicit(&lz_large_mapped, map_size, memory_order_relaxed);
    chunkmap_set((uintptr_t)l, CHUNK_LARGE);
  }
  uint8_t *p = (uint8_t *)l + offset;
  l->map_size = map_size;
  l->offset = offset;
  l->guard = guard;
  l->check = lz_key ^ (uintptr_t)p;
  atomic_fetch_add_explicit(&lz_large_in_use, large_usable(l), memory_order_relaxed);
  return p;
}

void large_free(large_t *l, void *p) {
  size_t map_size = l->map_size;
  atomic_fetch_sub_explicit(&lz_large_in_use, large_usable(l), memory_order_relaxed);
  l->check = lz_key ^ (uintptr_t)p ^ LARGE_FREED_TAG;
  long limit = opt_get(OPT_LARGE_CACHE);
  if (LZ_LARGE_CACHE_ENTRIES > 0 && l->offset == LZ_PAGE_SIZE && map_size <= (size_t)limit) {
    long delay = opt_get(OPT_PURGE_DELAY);
    uint64_t expire = delay < 0 ? UINT64_MAX : os_now_ms() + (uint64_t)delay * LARGE_DELAY_FACTOR;
    large_t *evict[2] = {NULL, NULL};
    size_t evict_size[2] = {0, 0};
    int nevict = 0;
    lz_lock(&large_lock);
    /* Make room: evict the oldest entries (at most two per insert). */
    while (nevict < 2 && cache_count > 0 &&
           (cache_count == cache_entries || cache_bytes + map_size > (size_t)limit)) {
      size_t oldest = 0;
      for (size_t i = 1; i < cache_count; i++)
        if (cache[i].expire < cache[oldest].expire) oldest = i;
      evict[nevict] = cache[oldest].base;
      evict_size[nevict++] = cache[oldest].map_size;
      cache_bytes -= cache[oldest].map_size;
      cache[oldest] = cache[--cache_count];
    }
    bool stored = false;
    if (cache_count < cache_entries && cache_bytes + map_size <= (size_t)limit) {
      cache[cache_count].base = l;
      cache[cache_count].map_size = map_size;
      cache[cache_count].expire = expire;
      cache_count++;
      cache_bytes += map_size;
      stored = true;
    }
    lz_unlock(&large_lock);
    for (int i = 0; i < nevict; i++) large_unmap(evict[i], evict_size[i]);
    if (stored) return;
  }
  large_unmap(l, map_size);
}

/* Resizes a large block in place or by moving its mapping (no copy).
 * Returns NULL when that is not possible (guard pages, or the kernel said
 * no); the caller then falls back to malloc + copy + free. */
void *large_realloc(large_t *l, void *p, size_t size) {
  if (size > LZ_MAX_ALLOC || l->guard) return NULL;
  size_t old_map = l->map_size;
  size_t new_map = page_round(l->offset + size);
  size_t old_usable = large_usable(l);
  if (new_map == old_map) return p;
  uint8_t *result = NULL;
  if (new_map < old_map) {
    if (os_remap_inplace(l, old_map, new_map) != 0) return p; /* keep the bigger mapping */
    result = p;
  } else if (os_remap_inplace(l, old_map, new_map) == 0) {
    result = p;
  } else {
    /* Move: reserve a 2 MiB-aligned range, then mremap onto it. */
    uint8_t *r = os_reserve(new_map + LZ_CHUNK_SIZE);
    if (r == NULL) return NULL;
    uintptr_t a = ((uintptr_t)r + LZ_CHUNK_MASK) & ~LZ_CHUNK_MASK;
    size_t head = a - (uintptr_t)r;
    if (head) os_unmap(r, head);
    if (LZ_CHUNK_SIZE - head) os_unmap((uint8_t *)a + new_map, LZ_CHUNK_SIZE - head);
    large_t *moved = os_remap(l, old_map, new_map, (void *)a);
    if (moved == NULL) {
      os_unmap((void *)a, new_map);
      return NULL;
    }
    chunkmap_set((uintptr_t)l, CHUNK_NONE);
    l = moved;
    chunkmap_set((uintptr_t)l, CHUNK_LARGE);
    result = (uint8_t *)l + l->offset;
  }
  if (lz_unlikely(lz_numa_on)) numa_account((unsigned)l->node, (ptrdiff_t)new_map - (ptrdiff_t)old_map);
  if (new_map > old_map)
    atomic_fetch_add_explicit(&lz_large_mapped, new_map - old_map, memory_order_relaxed);
  else
    atomic_fetch_sub_explicit(&lz_large_mapped, old_map - new_map, memory_order_relaxed);
  l->map_size = new_map;
  l->check = lz_key ^ (uintptr_t)result;
  atomic_fetch_sub_explicit(&lz_large_in_use, old_usable, memory_order_relaxed);
  atomic_fetch_add_explicit(&lz_large_in_use, large_usable(l), memory_order_relaxed);
  return result;
}

size_t large_cache_trim(bool force) {
  uint64_t now = os_now_ms();
  size_t freed = 0;
  for (;;) {
    large_t *victim = NULL;
    size_t size = 0;
    lz_lock(&large_lock);
    for (size_t i = 0; i < cache_count; i++) {
      if (force || cache[i].expire <= now) {
        victim = cache[i].base;
        size = cache[i].map_size;
        cache_bytes -= size;
        cache[i] = cache[--cache_count];
        break;
      }
    }
    lz_unlock(&large_lock);
    if (victim == NULL) break;
    large_unmap(victim, size);
    freed += size;
  }
  return freed;
}

void large_fork_prepare(void) { lz_lock(&large_lock); }
void large_fork_parent(void) { lz_unlock(&large_lock); }
void large_fork_child(void) { lz_lock_reset(&large_lock); }
