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

lz_inline uint32_t class_magic(uint32_t block_size) {
  return (uint32_t)((((uint64_t)1 << LZ_MAGIC_SHIFT) + block_size - 1) / block_size);
}

_Static_assert(LZ_CLASSES == 41, "class table size");
_Static_assert(LZ_SLAB_MAX_BYTES * (uint64_t)LZ_SMALL_MAX <= ((uint64_t)1 << LZ_MAGIC_SHIFT),
               "block index by multiplication must stay exact");
#endif
