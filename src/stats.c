/* stats.c: statistics, summed over all heaps when read.
 *
 * Each heap counts its own allocations in plain fields written only by its
 * owner (no shared writes, and nothing counted on the fast paths: the
 * bytes of slab blocks in use come from the spans' `used` counts, and each
 * class's slabs and their bytes from the spans themselves, summed here); global counters (chunks, large mappings, purges) are atomics
 * touched only on slow paths. A reader sums the heaps while their owners
 * run, so totals are a consistent-enough snapshot, not an instant; the
 * word-sized reads are tolerated races (hidden from TSan by no_sanitize).
 */
#include "internal.h"

#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 8)
#define LZ_NO_TSAN __attribute__((no_sanitize("thread")))
#else
#define LZ_NO_TSAN
#endif

/* Not inlined into stats_collect by every compiler: needs the attribute of
 * its own (another thread, an owner or the janitor, may be writing). */
LZ_NO_TSAN static inline size_t racy_read(const size_t *p) { return *(const volatile size_t *)p; }

/* The bytes of h's slab and medium blocks in use: every slab span's
 * used - pin blocks, every live medium span (used 1: internal.h,
 * heap_stats_t); and into st, each class's slab spans and their pages
 * (spares and level 2's slabs among them; start-up's packed span, of no
 * class, not). Walks h's chunks, which whoever holds h (see slab_bytes)
 * keeps still; `used` is read racily (the owner's frees change it without
 * a lock). Level 2 counts its blocks in stats.in_use itself: its bytes
 * here are 0. */
LZ_NO_TSAN static int64_t slab_bytes_walk(const heap_t *h, lz_stats_t *st) {
  int64_t n = 0;
  bool bytes = h->secure == NULL;
  for (const chunk_t *c = h->chunks; c != NULL; c = c->next) {
    for (size_t i = LZ_HEADER_PAGES; i < LZ_CHUNK_PAGES;) {
      if (bit_get(c->free_map, i)) {
        i++;
        continue;
      }
      const span_t *s = chunk_span_at((chunk_t *)c, i);
      if (s->kind == SPAN_SLAB && s->cls != 0) {
        st->classes[s->cls].slabs++;
        st->classes[s->cls].slab_bytes += (size_t)s->npages << LZ_PAGE_SHIFT;
      }
      if (bytes && s->kind == SPAN_SLAB) {
        int64_t used = *(const volatile uint16_t *)&s->used;
        n += (used - (h->queues[s->cls].first == s)) * (int64_t)s->block_size;
      } else if (bytes && s->kind == SPAN_MEDIUM) {
        /* A front span's parked block (medium.c) is counted in used. */
        int64_t used = *(const volatile uint16_t *)&s->used;
        if (s->to_local == 0 && *(lz_block_t *const volatile *)&s->free != NULL) used--;
        n += used * (int64_t)s->block_size;
      }
      i += s->npages > 0 ? s->npages : 1;
    }
  }
  return n;
}

/* As above, holding h: the owner holds its own heap, a DEAD heap is never
 * changed again, any other is held by its lock (tried for a while: a heap
 * that stays locked keeps its slabs out of this snapshot). */
LZ_NO_TSAN static int64_t slab_bytes(heap_t *h, lz_stats_t *st) {
  if (!LZ_STATS) return 0;
  if (LZ_HEAPS == 0 && h == lz_heap_tls) {
    heap_enter(h);
    int64_t n = slab_bytes_walk(h, st);
    if (h->secure == NULL) n -= (int64_t)heap_cached_bytes(h);
    heap_leave(h);
    return n;
  }
  if (atomic_load_explicit(&h->xstate, memory_order_acquire) == HEAP_DEAD) return slab_bytes_walk(h, st);
  for (unsigned tries = 0; !lz_trylock(&h->lock); tries++) {
    if (tries >= 1000) return 0;
    os_yield();
  }
  int64_t n = slab_bytes_walk(h, st);
  lz_unlock(&h->lock);
  return n;
}

LZ_NO_TSAN void stats_collect(lz_stats_t *out) {
  lz_stats_t st = {0};
  int64_t in_use = 0;
  for (heap_t *h = heaps_first(); h != NULL; h = h->next_all) {
    in_use += (int64_t)racy_read((const size_t *)&h->stats.in_use) + slab_bytes(h, &st);
    st.slow_allocs += racy_read((const size_t *)&h->stats.slow_allocs);
    st.remote_frees += racy_read((const size_t *)&h->stats.remote_frees);
    st.heaps++;
  }
  for (unsigned c = 1; c < LZ_CLASSES; c++) st.classes[c].block_size = lz_class_size[c];
  size_t large_in_use = atomic_load_explicit(&lz_large_in_use, memory_order_relaxed);
  size_t chunks = atomic_load_explicit(&lz_chunks_mapped, memory_order_relaxed);
  size_t large_mapped = atomic_load_explicit(&lz_large_mapped, memory_order_relaxed);
  size_t clean = atomic_load_explicit(&lz_bytes_decommitted, memory_order_relaxed);
  st.large_in_use = large_in_use;
  st.in_use = (in_use > 0 ? (size_t)in_use : 0) + large_in_use;
  st.mapped = chunks * LZ_CHUNK_SIZE + large_mapped;
  st.committed = st.mapped > clean ? st.mapped - clean : 0;
  st.resident = os_resident_bytes();
  st.pages_purged = atomic_load_explicit(&lz_pages_purged, memory_order_relaxed);
  st.chunks = chunks;
  if (lz_numa_on) {
    st.numa_nodes = (uint64_t)lz_numa_nodes;
    size_t resident[LZ_STATS_NODES];
    numa_resident(resident, LZ_STATS_NODES);
    for (unsigned i = 0; i < LZ_STATS_NODES && i < (unsigned)lz_numa_nodes; i++) {
      st.nodes[i].mapped = atomic_load_explicit(&lz_numa_mapped[i], memory_order_relaxed);
      st.nodes[i].resident = resident[i];
    }
  }
  *out = st;
}

__attribute__((visibility("default"))) void lz_stats_get(lz_stats_t *out) {
  if (out != NULL) stats_collect(out);
}

/* buf has room for 1024 bytes: a dozen lines of < 64 characters. */
static size_t put(char *buf, size_t n, const char *label, uint64_t v) {
  while (*label && n < 1000) buf[n++] = *label++;
  n += fmt_u64(buf + n, v);
  buf[n++] = '\n';
  return n;
}

__attribute__((visibility("default"))) void lz_stats_print(int fd) {
  lz_stats_t st;
  stats_collect(&st);
  char buf[1024];
  size_t n = 0;
  n = put(buf, n, "lzmalloc " LZMALLOC_VERSION " statistics\n  in use bytes:      ", st.in_use);
  n = put(buf, n, "  mapped bytes:      ", st.mapped);
  n = put(buf, n, "  committed bytes:   ", st.committed);
  n = put(buf, n, "  resident bytes:    ", st.resident);
  n = put(buf, n, "  large in use:      ", st.large_in_use);
  n = put(buf, n, "  slow-path allocs:  ", st.slow_allocs);
  n = put(buf, n, "  remote frees:      ", st.remote_frees);
  n = put(buf, n, "  pages purged:      ", st.pages_purged);
  n = put(buf, n, "  chunks:            ", st.chunks);
  n = put(buf, n, "  heaps:             ", st.heaps);
  os_write(fd, buf, n);
  /* One line per NUMA node: "  node <i>: mapped <bytes>, resident <bytes>" */
  for (unsigned i = 0; i < st.numa_nodes && i < LZ_STATS_NODES; i++) {
    n = 0;
    n = put(buf, n, "  node ", i) - 1;
    n = put(buf, n, ": mapped ", st.nodes[i].mapped) - 1;
    n = put(buf, n, ", resident ", st.nodes[i].resident);
    os_write(fd, buf, n);
  }
  /* One line per size class that holds slabs: "  class <size>: <slabs> slabs, <bytes> bytes" */
  for (unsigned c = 1; c < LZ_CLASSES; c++) {
    if (st.classes[c].slabs == 0) continue;
    n = 0;
    n = put(buf, n, "  class ", st.classes[c].block_size) - 1;
    n = put(buf, n, ": slabs ", st.classes[c].slabs) - 1;
    n = put(buf, n, ", bytes ", st.classes[c].slab_bytes);
    os_write(fd, buf, n);
  }
}
