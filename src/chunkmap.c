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
  atomic_store_explicit(&lz_chunkmap[i], kind, memory_order_release);
}
