/* chunkmap.c: which 2 MiB units of the address space are ours.
 *
 * One byte per 2 MiB of the 47-bit user address space (64 MiB of zero-fill
 * address space in .bss; only the pages covering units we use ever become
 * resident). Lookup is one load, lock-free; any thread may read at any
 * time. A byte is written only by the thread that maps or unmaps the unit:
 *   CHUNK_SPANS  a chunk of spans (header at the unit's base);
 *   CHUNK_LARGE  the base of a large block's mapping;
 *   CHUNK_NONE   anything else (foreign memory, freed units).
 */
#include "internal.h"

lz_hidden _Atomic(uint8_t) lz_chunkmap[LZ_CHUNKMAP_SIZE];

void chunkmap_set(uintptr_t chunk_base, uint8_t kind) {
  lz_assert((chunk_base & LZ_CHUNK_MASK) == 0);
  uintptr_t i = chunk_base >> LZ_CHUNK_SHIFT;
  if (i < LZ_CHUNKMAP_SIZE) atomic_store_explicit(&lz_chunkmap[i], kind, memory_order_release);
}
