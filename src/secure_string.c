/* secure_string.c: bounds-checked memcpy, memmove and memset, exported by
 * liblzmalloc-secure.so only (hardening level 2).
 *
 * A call whose destination (or, for memcpy and memmove, source) lies in a
 * live small or medium heap block and runs past that block's requested
 * size aborts with a message naming the block:
 *   lzmalloc: memcpy(): buffer overflow 0x...    (destination)
 *   lzmalloc: memcpy(): buffer over-read 0x...   (source)
 * Cost: one chunk-map load per pointer; the block's header only for heap
 * pointers (secure.c, secure_block_bounds). Large blocks (over 1 MiB) are
 * checked from their out-of-band descriptor when the pointer lies in the
 * first 2 MiB of the block's range (the chunk map marks only that unit);
 * a run from deeper inside stops at the guard page after the block. The copy itself is
 * glibc's (its __*_chk entry points, which call the optimised routines
 * directly), reached through volatile pointers so that the compiler cannot
 * turn them back into calls of our own memcpy.
 */
#include "alloc.h"

extern void *__memcpy_chk(void *dst, const void *src, size_t n, size_t dstlen);
extern void *__memmove_chk(void *dst, const void *src, size_t n, size_t dstlen);
extern void *__memset_chk(void *dst, int c, size_t n, size_t dstlen);

static void *(*volatile real_memcpy)(void *, const void *, size_t, size_t) = __memcpy_chk;
static void *(*volatile real_memmove)(void *, const void *, size_t, size_t) = __memmove_chk;
static void *(*volatile real_memset)(void *, int, size_t, size_t) = __memset_chk;

lz_inline void bounds_check(const void *a, size_t n, const char *what, const char *func) {
  if (lz_likely(chunkmap_kind((uintptr_t)a) == CHUNK_NONE) || n == 0 || !lz_secure2) return;
  const uint8_t *lo, *hi, *x = (const uint8_t *)a;
  if (secure_block_bounds(a, &lo, &hi) && x >= lo && x < hi && n > (size_t)(hi - x))
    lz_fatal_pointer(what, func, lo);
}

LZ_EXPORT void *memcpy(void *dst, const void *src, size_t n) {
  bounds_check(dst, n, "buffer overflow", "memcpy");
  bounds_check(src, n, "buffer over-read", "memcpy");
  return real_memcpy(dst, src, n, n);
}

LZ_EXPORT void *memmove(void *dst, const void *src, size_t n) {
  bounds_check(dst, n, "buffer overflow", "memmove");
  bounds_check(src, n, "buffer over-read", "memmove");
  return real_memmove(dst, src, n, n);
}

LZ_EXPORT void *memset(void *dst, int c, size_t n) {
  bounds_check(dst, n, "buffer overflow", "memset");
  return real_memset(dst, c, n, n);
}
