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

/* Lemire's divisibility test: for n < 2^32, n % d == 0 iff
 * n * (UINT64_MAX / d + 1) (mod 2^64) < UINT64_MAX / d + 1. */
lz_inline uint64_t divcheck_of(uint32_t d) { return UINT64_MAX / d + 1; }
lz_inline bool divcheck_multiple(uint64_t n, uint64_t divcheck) { return n * divcheck < divcheck; }

_Static_assert(LZ_CLASSES == 41, "class table size");
_Static_assert(LZ_CHUNK_SIZE <= ((uint64_t)1 << 32), "divcheck needs offsets below 2^32");
#endif
