/* sizeclass.h: size -> class (the fast path reaches a span for sizes up to
 * LZ_DIRECT_MAX through heap->direct[(size + 15) >> 4] without a class):
 * two tables of sizeclass.c, lz_direct_class by 16 B up to LZ_DIRECT_MAX
 * and lz_class_high by 64 B above (the classes are in sizeclass.c);
 * tests/test_sizeclass.c checks every size against lz_class_size. */
#ifndef LZ_SIZECLASS_H
#define LZ_SIZECLASS_H
#include "internal.h"

/* lz_class_high's entries (sizeclass.c), as X-lists: those up to
 * LZ_SLAB_MAX (256) and those above, so that malloc's queue slots
 * (internal.h, lz_tls_t) are made from the same list. */
#define LZ_CLASS_HIGH_SLAB(X) \
  X(4) X(8) X(10) X(12) X(14) X(16) X(18) X(20) X(21) X(22) X(23) X(24) X(25) X(26) X(27) X(28) \
  X(30) X(30) X(30) X(30) X(31) X(31) X(31) X(31) X(32) X(32) X(32) X(32) X(33) X(33) X(33) X(33) \
  X(34) X(34) X(34) X(34) X(35) X(35) X(35) X(35) X(36) X(36) X(36) X(36) X(36) X(36) X(36) X(36) \
  X(37) X(37) X(37) X(37) X(37) X(37) X(37) X(37) X(38) X(38) X(38) X(38) X(38) X(38) X(38) X(38) \
  X(39) X(39) X(39) X(39) X(39) X(40) X(40) X(40) X(40) X(40) X(40) X(40) X(40) X(40) X(40) X(40) \
  X(41) X(41) X(41) X(41) X(41) X(41) X(41) X(41) X(41) X(41) X(41) X(41) X(41) X(41) X(41) X(41) \
  X(42) X(42) X(42) X(42) X(42) X(42) X(42) X(42) X(42) X(42) X(42) X(42) X(42) X(42) X(42) X(42) \
  X(43) X(43) X(43) X(43) X(43) X(43) X(43) X(43) X(43) X(43) X(43) X(43) X(43) X(43) X(43) X(43) \
  X(44) X(44) X(44) X(44) X(44) X(44) X(44) X(44) X(44) X(44) X(44) X(44) X(44) X(44) X(44) X(44) \
  X(45) X(45) X(45) X(45) X(45) X(45) X(45) X(45) X(45) X(45) X(45) X(45) X(45) X(45) X(45) X(45) \
  X(46) X(46) X(46) X(46) X(46) X(46) X(46) X(46) X(46) X(46) X(46) X(46) X(46) X(46) X(46) X(46) \
  X(46) X(46) X(46) X(46) X(46) X(46) X(46) X(46) X(46) X(46) X(46) X(46) X(46) X(46) X(46) X(46) \
  X(47) X(47) X(47) X(47) X(47) X(47) X(47) X(47) X(47) X(47) X(47) X(47) X(47) X(47) X(47) X(47) \
  X(47) X(47) X(47) X(47) X(47) X(47) X(47) X(47) X(47) X(47) X(47) X(47) X(47) X(47) X(47) X(47) \
  X(48) X(48) X(48) X(48) X(48) X(48) X(48) X(48) X(48) X(48) X(48) X(48) X(48) X(48) X(48) X(48) \
  X(48) X(48) X(48) X(48) X(48) X(48) X(48) X(48) X(48) X(48) X(48) X(48) X(48) X(48) X(48) X(48)
#define LZ_CLASS_HIGH_ABOVE(X) \
  X(49) X(49) X(49) X(49) X(49) X(49) X(49) X(49) X(49) X(49) X(49) X(49) X(49) X(49) X(49) X(49) \
  X(49) X(49) X(49) X(49) X(49) X(49) X(49) X(49) X(49) X(49) X(49) X(49) X(49) X(49) X(49) X(49) \
  X(50) X(50) X(50) X(50) X(50) X(50) X(50) X(50) X(50) X(50) X(50) X(50) X(50) X(50) X(50) X(50) \
  X(50) X(50) X(50) X(50) X(50) X(50) X(50) X(50) X(50) X(50) X(50) X(50) X(50) X(50) X(50) X(50) \
  X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) \
  X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) \
  X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) \
  X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) X(51) \
  X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) \
  X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) \
  X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) \
  X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) X(52) \
  X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) \
  X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) \
  X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) \
  X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53) X(53)

lz_inline unsigned size_to_class(size_t size) {
  if (size <= LZ_DIRECT_MAX) return lz_direct_class[(size + 15) >> 4];
  return lz_class_high[(size - 1) >> 6];
}

/* Block index by multiplication, in 32 bits. Write the block size
 * d = odd << shift and let inv = odd^-1 (mod 2^32). For an offset n < 2^21
 * (inside a chunk),
 *   block_index(n) = rotate_right32(n * inv, shift)
 * is n / d when d divides n, and at least 2^32 / d > 0xffff otherwise (the
 * low `shift` bits of n * inv, nonzero unless 2^shift | n, land on top; if
 * they are zero, odd * q == n / 2^shift (mod 2^(32-shift)) has no small q).
 * So `block_index(n) < limit` checks "a block boundary, and below block
 * `limit`" in one compare, for any limit <= 0xffff (test_sizeclass checks
 * every offset of a chunk for every class and medium size).
 *
 * Slab spans rotate by a constant instead (LZ_SLAB_ROT, so free's fast
 * path loads no shift): their inverse is scaled, inv << (16 - shift)
 * (block_inv_slab). For an offset n below the span's end (at most
 * LZ_SLAB_MAX_BYTES = 2^18), rotate_right32(n * inv_slab, 16) is then
 * n / d when d divides n, and at least the span's block count otherwise:
 * with 2^j the lowest bit of n, j < shift leaves a bit at or above
 * 2^(32 - shift) >= 2^17 after the rotation; j >= shift leaves
 * m * inv mod 2^16 for m = n >> shift < 2^14, which is q < reserved only
 * if m == odd * q (both sides below 2^14 < 2^16), i.e. n == q * d. Exact
 * only inside the span (a wrapped product repeats beyond 2^(16 + shift)
 * bytes): the callers look at the span's own pages (free's fast path
 * through the page map, span_holds by its bounds).
 *
 * A span keeps ibase = start * inv (mod 2^32), start its first byte, so the
 * free path gets the index of address a without computing the offset:
 * a * inv - ibase == (a - start) * inv (mod 2^32). */
#define LZ_SLAB_ROT 16
lz_inline uint32_t block_inv_of(uint32_t d) {
  uint32_t odd = d >> __builtin_ctz(d);
  uint32_t x = odd; /* correct to 3 bits; each step doubles them */
  for (int i = 0; i < 4; i++) x *= 2 - odd * x;
  return x;
}
lz_inline uint8_t block_shift_of(uint32_t d) { return (uint8_t)__builtin_ctz(d); }
/* The scaled inverse of a slab's block size d (d <= LZ_SMALL_MAX, a
 * multiple of 16: its shift is 4 .. 15). */
lz_inline uint32_t block_inv_slab(uint32_t d) { return block_inv_of(d) << (LZ_SLAB_ROT - block_shift_of(d)); }
lz_inline uint32_t block_rotate(uint32_t q, unsigned shift) {
  return (q >> shift) | (q << ((32 - shift) & 31));
}
lz_inline uint32_t block_index(uint64_t n, uint32_t inv, unsigned shift) {
  return block_rotate((uint32_t)n * inv, shift);
}
/* The rotation of span s's index check: LZ_SLAB_ROT for a slab (its inv
 * scaled), the block size's shift for a medium span. */
lz_inline unsigned span_shift(const span_t *s) {
  return s->kind == SPAN_SLAB ? LZ_SLAB_ROT : block_shift_of(s->block_size);
}
/* The index of address a, inside span s's pages (see above): a block
 * boundary below s->capacity iff the result is < s->capacity. */
lz_inline uint32_t span_block_index(const span_t *s, uintptr_t a) {
  return block_rotate((uint32_t)a * s->inv - s->ibase, span_shift(s));
}
/* The same for a slab span (free's fast path): the rotation a constant. */
lz_inline uint32_t span_slab_index(const span_t *s, uintptr_t a) {
  return block_rotate((uint32_t)a * s->inv - s->ibase, LZ_SLAB_ROT);
}
/* a is a block boundary of s below its carved limit (any a). */
lz_inline bool span_holds(const span_t *s, uintptr_t a) {
  return a - (uintptr_t)span_start(s) < ((uintptr_t)s->npages << LZ_PAGE_SHIFT) &&
         span_block_index(s, a) < __atomic_load_n(&s->capacity, __ATOMIC_RELAXED);
}
/* span_holds for a slab span whose first byte is start: an offset below
 * LZ_SLAB_MAX_BYTES whose index (scaled inverse, constant rotation: see
 * above) is below capacity is a block boundary below the carved limit, so
 * inside the span; the span's own size is not needed. */
lz_inline bool span_holds_slab(const span_t *s, uintptr_t start, uintptr_t a) {
  uintptr_t n = a - start;
  return n < LZ_SLAB_MAX_BYTES && block_rotate((uint32_t)n * s->inv, LZ_SLAB_ROT) < s->capacity;
}
/* Sets the block geometry of a span whose pages and kind are in place. */
lz_inline void span_set_block_size(span_t *s, uint32_t bs) {
  bool slab = s->kind == SPAN_SLAB;
  s->block_size = bs;
  s->inv = slab ? block_inv_slab(bs) : block_inv_of(bs);
  s->ibase = (uint32_t)(uintptr_t)span_start(s) * s->inv;
}

_Static_assert(LZ_CLASSES == 54, "class table size");
_Static_assert(LZ_CHUNK_SIZE <= ((uint64_t)1 << 21), "block_index needs offsets below 2^21");
_Static_assert(LZ_SLAB_MAX_BYTES <= ((size_t)1 << 18) && LZ_SMALL_MAX < ((size_t)1 << LZ_SLAB_ROT),
               "the slab index needs spans of at most 2^18 bytes and blocks below 2^16");
#endif
