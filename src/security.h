/* security.h: the one inline encode/decode pair every free list uses, the
 * pop, and the cheap always-on pointer checks. The hardening level is LZ_SECURE
 * (config.h); at level 0 the pair is the identity.
 *
 * Encoding (links keyed with a secret): a link stored at address pos is
 *   enc = next ^ lz_key
 * so a leaked or overwritten link does not reveal or forge an address
 * without the per-process random key. The link does not depend on pos
 * (it did, next ^ (pos + lz_key), at one more instruction in malloc's
 * pop and in free's push: malloc(16)+free 59 -> 57). What pos added: a
 * link copied into another free block decoded elsewhere, but only in the
 * bits in which the two addresses differ, so a copy within a span still
 * decoded into that span and passed the screens below. lz_key lies in
 * [2^63, 2^63 + 2^62) (security.c): a cleared word (0) never decodes to
 * NULL, nor into any chunk, nor does an encoded NULL read as NULL.
 */
#ifndef LZ_SECURITY_H
#define LZ_SECURITY_H

#include "internal.h"

lz_inline uintptr_t block_encode(const lz_block_t *next) {
  if (LZ_SECURE == 0) return (uintptr_t)next;
  return (uintptr_t)next ^ lz_key;
}

lz_inline lz_block_t *block_decode(uintptr_t enc) {
  if (LZ_SECURE == 0) return (lz_block_t *)enc;
  return (lz_block_t *)(enc ^ lz_key);
}

lz_inline lz_block_t *block_next(const lz_block_t *b) { return block_decode(b->enc_next); }
lz_inline void block_set_next(lz_block_t *b, const lz_block_t *next) { b->enc_next = block_encode(next); }

/* Pops the head of a non-empty free list, a span's or an installed foreign
 * list (remote.c): the one pop, inlined by malloc's fast path and used by
 * the slow paths after their checks. Nothing is counted: the slow path
 * charged the whole list to span->used and the heap's statistics when it
 * installed it (internal.h, span invariants). */
lz_inline void *span_pop(span_t *s) {
  lz_block_t *b = s->free;
  s->free = block_next(b);
  if (LZ_SECURE) b->enc_next = 0;
  return b;
}

/* Whether b, the one block of a list that holds at most one (a front
 * medium span's: medium.c), still has the link it was freed with, an
 * encoded NULL: anything else was written after the free (the caller
 * reports a corrupted list). */
lz_inline bool block_link_null(const lz_block_t *b) { return LZ_SECURE == 0 || b->enc_next == block_encode(NULL); }

/* The parked block of front span s (medium.c, "Front spans") taken, or
 * NULL: the one pop, inlined by heap_malloc_slow and medium_malloc. */
lz_inline void *medium_front_pop(span_t *s) {
  lz_block_t *b = s->free;
  if (b == NULL) return NULL;
  if (lz_unlikely(!block_link_null(b))) medium_front_corrupt(b);
  s->free = NULL;
  if (LZ_SECURE) b->enc_next = 0;
  return b;
}

/* May word 0 of b be a link? Every link of a list decodes to a user
 * address (NULL included), below 2^LZ_USER_ADDR_BITS, so its top 16 bits
 * are the key's, LZ_KEY_TOP (internal.h): a block whose bits differ is on
 * no list; a live block's word has them only by chance (below), and
 * costs the general path then, whose screens are exact. As free's fast
 * path screens (alloc.h): one compare of bytes 6-7 with a constant, no
 * decoding (bench rptest 2 0.3: heap_free_page 56.2 -> 54.5
 * instructions a call), and a 2-byte read inside a program's last 4-byte
 * store to the word is forwarded where an 8-byte read would wait. */
lz_inline bool word_maybe_link(const lz_block_t *b) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  typedef uint16_t lz_u16_alias __attribute__((may_alias));
  return ((const lz_u16_alias *)b)[3] == LZ_KEY_TOP;
#else
  return (b->enc_next ^ lz_key) >> 48 == 0;
#endif
}
_Static_assert(LZ_USER_ADDR_BITS <= 48, "a link's top 16 bits are the key's");

/* A block whose first word decodes to NULL or to an address in its own
 * chunk or in any of our chunks is probably on a free list already: its
 * owner's lists link within the span, a foreign list (remote.c, "Order")
 * or a batch on its way home to blocks of any chunk. A block has its first
 * word cleared when handed out, and user data decodes so with probability
 * ~2^-40. The caller then confirms with a walk of the span's lists, or by
 * the block's second word (remote_in_flight). Slow paths only. */
lz_inline bool block_maybe_free(const lz_block_t *b) {
  if (LZ_SECURE == 0) return false;
  uintptr_t n = (uintptr_t)block_next(b);
  uintptr_t d = n >> LZ_CHUNK_SHIFT, own = (uintptr_t)b >> LZ_CHUNK_SHIFT;
  return d == 0 || d == own || chunkmap_kind_any(n) == CHUNK_SPANS;
}

/* Whether the fast path may pop b, the head of a free list: not NULL (the
 * end of the list) and, with LZ_SECURE, inside the range the chunk map
 * covers, 1 <= b < 2^LZ_USER_ADDR_BITS (one instruction more than a NULL
 * test). A link overwritten in a free block (an overflow from the block
 * below, a write after free) decodes outside it unless the word written
 * has its top 64 - LZ_USER_ADDR_BITS bits equal to lz_key's (1 in
 * 2^17 for random bytes on x86-64): a pointer, a small integer, text,
 * zeros, or the old link with its bits flipped always land outside. The
 * slow path (slab_pop_checked, foreign_alloc) then tells the end of a
 * list from a corrupted head and aborts with "corrupted free list"
 * instead of following the link. Not a test against the span's own
 * chunk: an installed foreign list (remote.c) holds blocks of any chunk,
 * and its descriptor lies in none. */
lz_inline bool list_head_ok(const lz_block_t *b) {
  if (LZ_SECURE == 0) return b != NULL;
  bool ok;
#if defined(__x86_64__)
  /* lea and shift: the shift's zero flag says (GCC would compare with a
   * 64-bit constant, two instructions more) */
  uintptr_t t;
  __asm__("lea -1(%2), %0\n\tshr %3, %0" : "=&r"(t), "=@ccz"(ok) : "r"(b), "i"(LZ_USER_ADDR_BITS));
#else
  ok = ((uintptr_t)b - 1) < ((uintptr_t)1 << LZ_USER_ADDR_BITS) - 1;
#endif
  return ok;
}

#endif /* LZ_SECURITY_H */
