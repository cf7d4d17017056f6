/* sizeclass.h: size -> class on the fast path.
 * Sizes <= 1024 use the lz_direct_class table ((size + 15) >> 4); larger
 * small sizes a clz formula, four classes per power of two. */
#ifndef LZ_SIZECLASS_H
#define LZ_SIZECLASS_H
#include "internal.h"

lz_inline unsigned size_to_class(size_t size) {
  if (size <= 128) return size == 0 ? 1 : (unsigned)((size + 15) >> 4);
  unsigned b = 63u - (unsigned)__builtin_clzll((unsigned long long)(size - 1));
  return 9u + (b - 7u) * 4u + (unsigned)(((size - 1) >> (b - 2)) & 3u);
}

/* Block index by multiplication. Write the block size d = odd << shift and
 * let inv = odd^-1 (mod 2^64). For an offset n < 2^32,
 *   block_index(n) = rotate_right(n * inv, shift)
 * is n / d when d divides n, and at least 2^64 / d otherwise (the low
 * `shift` bits of n * inv, nonzero unless 2^shift | n, land on top; if they
 * are zero, odd * q == n / 2^shift (mod 2^(64-shift)) has no small q).
 * So `block_index(n) < limit` checks "a block boundary, and below block
 * `limit`" in one compare, for any limit < 2^32 / d. */
lz_inline uint64_t block_inv_of(uint32_t d) {
  uint64_t odd = d >> __builtin_ctz(d);
  uint64_t x = odd; /* correct to 3 bits; each step doubles them */
  for (int i = 0; i < 5; i++) x *= 2 - odd * x;
  return x;
}
lz_inline uint8_t block_shift_of(uint32_t d) { return (uint8_t)__builtin_ctz(d); }
lz_inline uint64_t block_index(uint64_t n, uint64_t inv, unsigned shift) {
  uint64_t q = n * inv;
  return (q >> shift) | (q << ((64 - shift) & 63));
}

_Static_assert(LZ_CLASSES == 41, "class table size");
_Static_assert(LZ_CHUNK_SIZE <= ((uint64_t)1 << 32), "block_index needs offsets below 2^32");
#endif
