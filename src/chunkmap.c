/* chunkmap.c: which 2 MiB units of the address space are ours.
 *
 * One byte per 2 MiB of the user address space (LZ_ARCH_VA_BITS bits,
 * arch.h: 64 MiB of zero-fill address space in .bss for 47 bits, 128 MiB
 * for 48; only the pages covering units we use ever become resident). Lookup is one load, lock-free; any thread may read at any
 * time. A byte is written only by the thread that holds the unit's memory:
 *   CHUNK_SPANS  a chunk of spans (header at the unit's base) whose heap has
 *                no id, or a pooled chunk; a chunk of a heap with an id
 *                holds the id instead (CHUNK_HEAP_FIRST .. CHUNK_HEAP_LAST,
 *                internal.h heap_t.map_id: free's fast path compares it
 *                with the thread's heap's fast_id), written by chunk_alloc and
 *                chunk_release as the chunk changes hands;
 *   CHUNK_LARGE  the first unit of a large block (or a unit inside a cached
 *                large range where a block once started; see large.c);
 *   CHUNK_NONE   anything else (foreign memory, freed units).
 */
#include "internal.h"

/* Unit i's byte is lz_chunkmap[i] == lz_chunkmap_ends[i + 1]: free's fast
 * path indexes the map by the unit after the pointer's (alloc.h), and
 * lz_chunkmap_ends[0], no unit's, stays CHUNK_NONE. First in .bss, on the
 * page of the hot variables (cmake/layout.ld). */
lz_hidden __attribute__((section(".bss.lz_chunkmap"))) _Atomic(uint8_t) lz_chunkmap_ends[LZ_CHUNKMAP_SIZE + 1];

/* The lowest and highest unit ever marked (anything but CHUNK_NONE): the
 * look-ups of addresses that may be anything (chunkmap_kind_any) answer CHUNK_NONE outside them
 * without reading the map. A free-list screen decodes a live block's
 * first word as a link (security.h, block_maybe_free): random bytes there
 * name a random unit, and each read of a map page never touched before
 * made it resident (bench cfrac, random 32-bit digits first in its
 * blocks: 180 such pages, 0.75 MiB of a 2.3 MiB peak). They only widen,
 * each before the unit's byte is written (release), so a reader that
 * sees the byte sees a range holding it. */
lz_hot _Atomic(uintptr_t) lz_chunkmap_lo = LZ_CHUNKMAP_SIZE;
lz_hot _Atomic(uintptr_t) lz_chunkmap_hi;

/* [lo, hi] takes in unit i (any thread: compare-and-swap). Hot text: a
 * small process's first chunk comes here. */
lz_text_hot static void chunkmap_widen(uintptr_t i) {
  uintptr_t lo = atomic_load_explicit(&lz_chunkmap_lo, memory_order_relaxed);
  while (i < lo && !atomic_compare_exchange_weak_explicit(&lz_chunkmap_lo, &lo, i, memory_order_release,
                                                          memory_order_relaxed)) {
  }
  uintptr_t hi = atomic_load_explicit(&lz_chunkmap_hi, memory_order_relaxed);
  while (i > hi && !atomic_compare_exchange_weak_explicit(&lz_chunkmap_hi, &hi, i, memory_order_release,
                                                          memory_order_relaxed)) {
  }
}

void chunkmap_set(uintptr_t chunk_base, uint8_t kind) {
  lz_assert(kind != CHUNK_HEAP_NONE);
  lz_assert((chunk_base & LZ_CHUNK_MASK) == 0);
  uintptr_t i = chunk_base >> LZ_CHUNK_SHIFT;
  if (lz_unlikely(i >= LZ_CHUNKMAP_SIZE)) {
    /* The kernel handed out an address beyond LZ_ARCH_VA_BITS: arch.h is
     * wrong for this system. Refuse loudly rather than lose track. */
    if (kind != CHUNK_NONE) lz_fatal_pointer("mapping beyond the chunk map's address range", "chunkmap_set",
                                             (void *)chunk_base);
    return;
  }
  if (kind != CHUNK_NONE) chunkmap_widen(i);
  atomic_store_explicit(&lz_chunkmap[i], kind, memory_order_release);
}
