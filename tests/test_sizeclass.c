/* Size classes, slab geometry and the block-index multiplication, checked
 * exhaustively against plain arithmetic. */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "sizeclass.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); exit(1); } } while (0)

int main(void) {
  /* Every size maps to the smallest class that holds it. */
  for (size_t s = 0; s <= LZ_SMALL_MAX; s++) {
    unsigned c = size_to_class(s);
    CHECK(c >= 1 && c < LZ_CLASSES);
    CHECK(lz_class_size[c] >= (s ? s : 1));
    CHECK(c == 1 || lz_class_size[c - 1] < s);
    if (s <= LZ_DIRECT_MAX) CHECK(lz_direct_class[(s + 15) >> 4] == c);
    /* malloc's fast path: the thread-local queue slots (internal.h, lz_tls_t). */
    if (s > LZ_DIRECT_MAX && s <= LZ_SLAB_MAX) CHECK(lz_tls.queue_slot[(s - 1) >> 6] == 2 * c);
  }
  /* Aligned allocations' fast path (api.c, aligned_body): a size rounded
   * up to a multiple of an alignment above 16 B maps to a class that is a
   * multiple of it, and so does start-up's power of two for that class
   * (slab.c, slab_class_for), so every block of its slabs is aligned. */
  for (size_t a = 32; a <= LZ_DIRECT_MAX; a *= 2)
    for (size_t r = a; r <= LZ_DIRECT_MAX; r += a) {
      uint32_t bs = lz_class_size[lz_direct_class[(r + 15) >> 4]];
      uint32_t p2 = bs <= 16 ? 16 : 1u << (32 - __builtin_clz(bs - 1));
      CHECK(bs % a == 0 && lz_class_size[size_to_class(p2)] % a == 0);
    }
  /* A power of two plus sqlite's headers (its 1024 + 8 B records, its
   * 4096 + 272 B cache pages: tens of MB of them in bench sqlite) takes
   * at most 1 % and 2 % more. */
  CHECK(lz_class_size[size_to_class(1032)] * 100 <= 1032 * 101);
  CHECK(lz_class_size[size_to_class(4368)] * 100 <= 4368 * 102);
  for (unsigned c = 1; c < LZ_CLASSES; c++) {
    uint32_t bs = lz_class_size[c];
    CHECK(bs % 16 == 0);
    CHECK(c == 1 || bs > lz_class_size[c - 1]);
    /* Waste within a class is at most 25 % above 128 bytes, and 12.5 %
     * for a power of two above 512 plus a small header (1024 + 8 B must
     * not take a quarter more) ... */
    if (c > 8) CHECK((bs - lz_class_size[c - 1] - 1) * 4 <= lz_class_size[c - 1] + 1);
    /* ... and at most 12.5 % from 256 B to 1 KiB, where programs keep
     * hundreds of thousands of records (jq's 272 and 392 B values:
     * sizeclass.c). */
    if (bs > 256 && bs <= 1024) CHECK((bs - lz_class_size[c - 1] - 1) * 8 <= lz_class_size[c - 1] + 1);
    if (bs > 512 && (lz_class_size[c - 1] & (lz_class_size[c - 1] - 1)) == 0)
      CHECK((bs - lz_class_size[c - 1] - 1) * 8 <= lz_class_size[c - 1] + 1);
    size_t slab = (size_t)class_slab_pages(c) << LZ_PAGE_SHIFT;
    CHECK(slab <= LZ_SLAB_MAX_BYTES);
    CHECK(slab / bs >= 8 && slab / bs <= 0xffff);
    CHECK((slab % bs) * 16 <= slab); /* tail waste <= 1/16 */
    /* The classes sized for records programs keep tens of thousands of
     * (sqlite's 1024 + 8 B records and 4096 + 272 B cache pages:
     * sizeclass.c) lose at most 1/256 of a full slab to its tail. */
    if (bs == 1040 || bs == 4416) CHECK((slab % bs) * 256 <= slab);
    /* A heap's first slab of the class: at least 8 blocks, at most the full slab. */
    size_t first = (size_t)class_first_slab_pages(c) << LZ_PAGE_SHIFT;
    CHECK(first >= LZ_PAGE_SIZE && first <= slab && first / bs >= 8);
    /* The least a slab of the class may have (span_alloc_fit): one block's pages. */
    size_t least = (size_t)class_min_slab_pages(c) << LZ_PAGE_SHIFT;
    CHECK(least >= bs && least - bs < LZ_PAGE_SIZE && least <= first);
    /* The fast path's block index (a slab's scaled inverse, a constant
     * rotation) is exact for every offset a slab of the class can have:
     * the block number at a boundary, and at least the most blocks any
     * slab of that size holds elsewhere. */
    uint32_t inv = block_inv_slab(bs);
    for (size_t off = 0; off < LZ_SLAB_MAX_BYTES; off++) {
      uint64_t q = block_index(off, inv, LZ_SLAB_ROT);
      if (off % bs == 0) CHECK(q == off / bs);
      else CHECK(q >= LZ_SLAB_MAX_BYTES / bs);
    }
    /* The unscaled index with its own shift, for every offset in a chunk
     * (medium spans use it; so did slabs). */
    uint32_t inv1 = block_inv_of(bs);
    unsigned shift = block_shift_of(bs);
    for (size_t off = 0; off < LZ_CHUNK_SIZE; off += 8) {
      uint64_t q = block_index(off, inv1, shift);
      if (off % bs == 0) CHECK(q == off / bs);
      else CHECK(q > 0xffff);
    }
  }
  /* Medium spans: one block of n pages, n = 1 .. 511; offsets inside the
   * chunk other than 0 must never index block 0. */
  for (uint32_t n = 1; n < LZ_CHUNK_PAGES; n++) {
    uint32_t bs = n << LZ_PAGE_SHIFT;
    uint64_t inv = block_inv_of(bs);
    unsigned shift = block_shift_of(bs);
    CHECK(block_index(0, inv, shift) == 0);
    for (size_t off = 16; off < LZ_CHUNK_SIZE; off += 16) CHECK(block_index(off, inv, shift) != 0);
  }
  printf("size classes: %d classes, all sizes and offsets checked\n", LZ_CLASSES - 1);
  return 0;
}
