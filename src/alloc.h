/* alloc.h: the inlined fast paths of malloc and free.
 *
 * malloc(size <= LZ_DIRECT_MAX, 1040 B), 16 instructions (objdump of the release build,
 * x86-64, ret included): the heap (TLS, 2), size check and table index (4),
 * the span and its list head (2), the head screened (3, list_head_ok:
 * NULL, or a bad link left by the last pop), decode the next link (2),
 * store it, clear the block's link, return. An empty list or a corrupted
 * head goes to heap_malloc_refill (the span's own freed blocks, else the
 * slow path), anything else (larger size, uninitialised thread) to the
 * slow path. Up to LZ_SLAB_MAX, the class queue's first span, its index
 * read from lz_tls.queue_slot beside the heap pointer (internal.h: 1 load
 * in place of the class table's address, its load and the scaling).
 * free(p), 26 instructions at LZ_SECURE 1: p inside the calling thread's
 * heap's region (lz_tls_t beside the heap pointer, chunk.c "Regions": the
 * TLS offset, p copied, minus rbase, compared with rend, 5; every
 * committed chunk of the heap's region, not only its newest), page ->
 * list and span (5: the region's page map, indexed by p's offset in the
 * region, holds the address of the list the push takes, the span's
 * address plus its to_local flag: rmap_entry; the span is the entry
 * masked), block index
 * below the span's xfast_cap, the carved limit of a span that takes fast
 * frees, 0 for any other (6, sizeclass.h: a slab's rotation is a
 * constant), the double-free screen on the top 16 bits of the block's
 * first word, one 16-bit compare with a constant (the key's top bits,
 * LZ_KEY_TOP): it decodes to no address below 2^48 (3, and the key's
 * load for the push), push on the
 * entry's list, (&free)[to_local], and subtract to_local from used (7,
 * ret included: the free list of its
 * class queue's first span, uncounted, so the next malloc of the class
 * takes it back, LIFO; local_free of any other span, one count less;
 * indexed, not a branch: span.front). The heap is loaded only for
 * heap_free_last. A pointer outside the region (a chunk
 * outside it: the region full, a chunk taken from the pool or large.c's
 * cache; or the region has no page map yet: a heap in start-up, till
 * chunk_region_map) loads the heap and reads the chunk map byte, indexed
 * by the unit after p's, and compares it with the heap's fast_id (7:
 * lz_chunkmap_ends; a byte equal to it proves the chunk the caller's
 * heap's, internal.h) before the chunk's page map (6), and counts the
 * look-up (heap_t.rwait, 2: its wrap makes the region's page map, so a
 * program that stays in start-up, as a malloc(16)+free loop does, takes
 * the region after 256 frees while a small process writes no page of
 * the map): 38 instructions. Before regions a heap's newest chunk alone
 * (its "fast chunk") was tested first, 28 on a hit; a program whose
 * frees spread over several chunks missed it and mispredicted the test
 * (bench mleak 1 0.1: 784k of 1.14M frees missed, its blocks in 5 chunks;
 * callgrind's branch simulation: 359k mispredictions there), which the
 * region removes: all its chunks lie in its region.
 * No statistics: stats.c reads the spans' counts. Foreign, remote and full-span frees go slow; a
 * span's last block (a medium block is its span's one block) calls
 * heap_free_last.
 * A malloc(16) + free pair in a loop costs 53 instructions in bench/pairs
 * (the difference of N and 2N pairs under callgrind; loop and PLT
 * included; malloc 16, free 26), 1040 B 53, 4096 B 58. The list's
 * address comes with the map's load: the next malloc's load of that list's
 * head waits for the push's address, and with to_local loaded from the
 * span first (2 instructions fewer) the loop's chain was a load longer:
 * bench micro's same-thread 16 B pair took 6.03 ns, now 4.26 (tcmalloc
 * 4.28, mimalloc 6.62, glibc 7.58, in one bench/run).
 */
#ifndef LZ_ALLOC_H
#define LZ_ALLOC_H

#include <errno.h>
#include <string.h>

#include "internal.h"
#include "security.h"
#include "sizeclass.h"

#define LZ_EXPORT __attribute__((visibility("default")))

/* Makes b (its link written) the head of *list, a span's local_free or
 * (the first span of its queue) free: a hole puncher holding the heap
 * lock reads a local_free chain from the head (slab.c, "Holes").
 * x86-64 keeps stores in order, so keeping the compiler's order is enough
 * (a compiler fence: no instruction, and the same code as without it);
 * elsewhere, and for ThreadSanitizer, the head is a release store. */
lz_inline void local_free_publish(lz_block_t **list, lz_block_t *b) {
#if defined(__x86_64__) && !LZ_TSAN
  __atomic_signal_fence(__ATOMIC_RELEASE);
  *list = b;
#else
  __atomic_store_n(list, b, __ATOMIC_RELEASE);
#endif
}

_Static_assert(sizeof(span_queue_t) == 2 * sizeof(span_t *) && offsetof(span_queue_t, first) == 0,
               "lz_tls.queue_slot indexes the queues' pointers");

lz_inline void *malloc_fast(size_t size) {
  heap_t *heap = lz_heap_tls;
  span_t *s;
  if (lz_likely(size <= LZ_DIRECT_MAX)) {
    s = heap->direct[(size + 15) >> 4];
    if (lz_likely(list_head_ok(s->free))) return span_pop(s);
  } else if (size <= LZ_SLAB_MAX) {
    s = ((span_t *const *)heap->queues)[lz_tls.queue_slot[(size - 1) >> 6]]; /* queues[class].first */
    if (lz_unlikely(s == NULL)) return heap_malloc_slow(size, heap, false);
    if (lz_likely(list_head_ok(s->free))) return span_pop(s);
  } else
    return heap_malloc_slow(size, heap, false);
  return heap_malloc_refill(size, heap, s);
}

/* The head of the list malloc's fast path pops for size (<= LZ_DIRECT_MAX)
 * taken, or NULL (an empty or corrupted head: the caller's slow path):
 * calloc's and the aligned allocations' fast paths (api.c). */
lz_inline void *direct_pop(heap_t *heap, size_t size) {
  span_t *s = heap->direct[(size + 15) >> 4];
  return lz_likely(list_head_ok(s->free)) ? span_pop(s) : NULL;
}

/* calloc's sizes zeroed inline (zero_small): beyond them, memset's
 * wider stores cost fewer instructions than four of these. */
#define LZ_CALLOC_INLINE_MAX 64
/* Zeroes the n bytes (n <= LZ_CALLOC_INLINE_MAX) of p, a block of a
 * direct[] list, rounded up to r, a multiple of 16: a block is 16-byte
 * aligned and its class size a multiple of 16 and at least 16, so [0, r)
 * and the first 16 bytes lie inside it. Up to four aligned 16-byte
 * stores, [0, 32) and [r - 32, r) overlapping, in place of a call through
 * the PLT to memset and its size dispatch (bench/pairs, calloc 16: 75 ->
 * 69 instructions a pair). */
lz_inline void *zero_small(void *p, size_t n) {
  typedef uint64_t lz_v16 __attribute__((vector_size(16), aligned(16)));
  const lz_v16 zero = {0, 0};
  uint8_t *b = (uint8_t *)p;
  size_t r = (n + 15) & ~(size_t)15;
  *(lz_v16 *)b = zero;
  if (r > 16) {
    *(lz_v16 *)(b + r - 16) = zero;
    if (r > 32) {
      *(lz_v16 *)(b + 16) = zero;
      *(lz_v16 *)(b + r - 32) = zero;
    }
  }
  return p;
}

/* calloc's fast path, inlined into calloc and lz_calloc: a product that
 * overflows, a size above LZ_DIRECT_MAX, fork handlers still to register
 * (os.c: the first pthread_create's DTV calloc) or an empty list go to
 * api_calloc_slow (api.c). Up to LZ_CALLOC_INLINE_MAX bytes are zeroed
 * here, larger ones by memset (a tail call: no frame). */
void *api_calloc_slow(size_t n, size_t size);
lz_inline void *calloc_fast(size_t n, size_t size) {
  size_t total;
  if (lz_likely(!__builtin_mul_overflow(n, size, &total)) && lz_likely(total <= LZ_DIRECT_MAX) &&
      lz_likely(atomic_load_explicit(&lz_atfork_state, memory_order_relaxed) != ATFORK_PENDING)) {
    void *p = direct_pop(lz_heap_tls, total);
    if (lz_likely(p != NULL)) return total <= LZ_CALLOC_INLINE_MAX ? zero_small(p, total) : memset(p, 0, total);
  }
  return api_calloc_slow(n, size);
}

/* free_fast_to: the free fast path, whose slow calls are heap.c's:
 * heap_free_own (a pointer into a chunk of the caller's heap, with the
 * span its page maps to), heap_free_page (into another of our chunks,
 * with the caller's heap) and heap_free_slow (anything else). `as` is the
 * function reports name instead of "free" (lz_free_as): NULL for free,
 * the operator's name for cxx.c's deletes, a constant at every use, set
 * by the slow calls only (the *_as forms; heap_free_page takes it), so the
 * fast path stays one implementation and a delete costs what a free does. */
lz_inline void free_fast_to(void *p, const char *as) {
  uintptr_t a = (uintptr_t)p;
  span_t *s;
  uintptr_t e; /* the list the push below takes: (&s->free)[s->to_local] */
  /* p inside the thread's heap's region (lz_tls_t, chunk.c "Regions"):
   * its span from the region's page map, one subtraction, compare and
   * load, no chunk map look-up. The entry is the list itself (rmap_entry:
   * no load of to_local on the way to the push's address). */
  uintptr_t rel = a - lz_tls.rbase;
  if (lz_likely(rel < lz_tls.rend)) {
    e = (uintptr_t)lz_load_relaxed(&lz_tls.rmap[rel >> LZ_PAGE_SHIFT], span_t *);
    s = (span_t *)(e & ~LZ_MAP_LOCAL);
  } else {
    /* free(NULL) reads no map page: the map's first page is not on a
     * page the process touches anyway (chunkmap.c). */
    if (lz_unlikely(a == 0)) return;
    heap_t *heap = lz_heap_tls;
    /* The unit after p's, whose base is the end of p's chunk: the map is
     * indexed by it (lz_chunkmap_ends: unit i's byte at i + 1). */
    uintptr_t ce = (a + LZ_CHUNK_SIZE) >> LZ_CHUNK_SHIFT;
    __asm__("" : "+r"(ce)); /* the chunk from ce (one shift), not from a (two instructions) */
#if defined(__x86_64__)
    /* Neither masked nor compared with the map's size: a pointer p below
     * the user range's end (2^47) reads its byte; one above it (never a
     * block: non-canonical, or the kernel's) reads a byte past the map, up
     * to 2^43 bytes on, or wraps below 2 MiB (the last 2 MiB of the address
     * space, whose units are no chunk of ours). That read may fault, as
     * glibc's free faults at the word below such a pointer; if it reads
     * this thread's heap id, the chunk it names is p's 2 MiB unit, which
     * cannot be read either, so free faults at its page map; any other
     * byte sends p to the slow paths, which report it (heap_free_own and
     * heap_free_page send it to heap_free_slow). Elsewhere (aarch64 ignores
     * a top byte tag when reading) the bound is compared. */
    uint8_t kind = lz_load_relaxed((const _Atomic(uint8_t) *)((uintptr_t)lz_chunkmap_ends + ce), uint8_t);
#else
    uint8_t kind = ce <= LZ_CHUNKMAP_SIZE ? lz_load_relaxed(&lz_chunkmap_ends[ce], uint8_t) : (uint8_t)CHUNK_NONE;
#endif
    /* The byte is this thread's heap id: a chunk of its heap outside its
     * region (internal.h, chunk invariants), so every span in it is the
     * caller's to free into while it allows fast frees (xfast_cap, one
     * compare below). */
    if (lz_unlikely(kind != heap->fast_id)) {
      /* Any other heap's chunk (CHUNK_SPANS and the ids lie above CHUNK_LARGE). */
      if (kind > CHUNK_LARGE) heap_free_page(p, heap, as);
      else if (as == NULL) heap_free_slow(p);
      else heap_free_slow_as(p, as);
      return;
    }
    chunk_t *c = (chunk_t *)((ce << LZ_CHUNK_SHIFT) - LZ_CHUNK_SIZE);
    s = (span_t *)((uintptr_t)c->spans + c->pagemap[(a >> LZ_PAGE_SHIFT) & (LZ_CHUNK_PAGES - 1)]);
    e = (uintptr_t)rmap_entry(s);
    if (lz_unlikely(++heap->rwait == 0)) goto own_slow; /* the region's page map (heap_free_own) */
  }
  {
    lz_block_t *b = (lz_block_t *)p;
    /* A block boundary below the carved limit of a span that takes fast
     * frees (one compare: sizeclass.h; xfast_cap is 0 for any other, and
     * 1 for a live medium block, whose start alone passes), before the
     * block is read. */
    if (LZ_SECURE) {
      if (lz_unlikely(span_slab_index(s, a) >= lz_load_relaxed(&s->xfast_cap, uint32_t))) goto own_slow;
    } else {
      bool off; /* only the allowed test: xfast_cap == 0 */
#if defined(__x86_64__) && !LZ_TSAN
      __asm__("cmpl $0, %1" : "=@ccz"(off) : "m"(s->xfast_cap)); /* GCC: a load and a test */
#else
      off = lz_load_relaxed(&s->xfast_cap, uint32_t) == 0;
#endif
      if (lz_unlikely(off)) goto own_slow;
    }
    uintptr_t enc = (uintptr_t)0;
    if (LZ_SECURE) {
      /* A block whose first word does not decode below 2^48 (to no user
       * address: not to NULL nor into any chunk, block_maybe_free:
       * probably on a free list, a foreign list's links lead to any
       * chunk: remote.c, "Order"): the word's top 16 bits differ from
       * lz_key's, LZ_KEY_TOP (internal.h: a constant, so one compare
       * with an immediate and no load). The rest of that range (a live
       * block's word has them equal 1 time in 2^16 for random bytes,
       * never for a pointer, integer, text or the zero malloc leaves: the
       * key's top bits are 10, security.h) costs only a slow free,
       * whose block_maybe_free is exact. */
      enc = lz_key;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
      /* Bytes 6-7 of the word alone (one compare with LZ_KEY_TOP; with
       * the key's bits loaded it took one instruction more, the shift of
       * the word's upper half two): a
       * program that wrote the first word as two 4-byte stores just
       * before the free (bench cfrac) would stall an 8-byte read until
       * both stores retire (no store forwarding), the hottest instruction
       * of its free, 1-2.5 % of its CPU; a 2-byte read inside the second
       * store is forwarded. */
      typedef uint16_t lz_u16_alias __attribute__((may_alias));
      if (lz_unlikely(((const lz_u16_alias *)b)[3] == LZ_KEY_TOP)) goto own_slow;
#else
      if (lz_unlikely((b->enc_next ^ enc) >> 48 == 0)) goto own_slow;
#endif
    }
    /* The first span of its queue (to_local 0: internal.h, span
     * invariants): on the list malloc pops, still charged to used (no
     * count, and the pin keeps the span); any other (to_local 1): on
     * local_free, one count less. Chosen by indexing, not by a branch: a
     * program freeing blocks of many spans in no order (bench
     * glibc-thread) mispredicted such a branch about one free in five
     * (callgrind --branch-sim: 248k mispredictions in 1M pairs, 45k
     * without it; CPU 0.20 against 0.15 s). The count takes to_local from
     * the entry (its LZ_MAP_LOCAL bit), not from the span: one load less
     * (bench micro batch 64 100, glibc-simple's pattern: 4.45 -> 4.22 ns
     * a pair). */
    bool last;
#if defined(__x86_64__) && !LZ_TSAN
    /* Written out: GCC computes the list's address apart and widens k
     * again for the count (three instructions more). The stores keep
     * their order (local_free_publish: b's link before the head). bt
     * copies the entry's LZ_MAP_LOCAL bit (bit 3) to the carry, which the
     * movs keep and sbb subtracts. */
    _Static_assert(LZ_MAP_LOCAL == 8, "bt $3: the entry's to_local bit");
#define LZ_PUSH_STORE "btq $3, %[e]\n\tmovq %[enc], (%[b])\n\tmovq %[b], (%[e])\n\tsbbw $0, %[used]"
    if (LZ_SECURE) /* the link: the head encoded with enc */
      __asm__("xorq (%[e]), %[enc]\n\t" LZ_PUSH_STORE
              : [enc] "+r"(enc), [used] "+m"(s->used), "=@ccz"(last)
              : [e] "r"(e), [b] "r"(b)
              : "memory", "cc");
    else /* the link: the head as it is */
      __asm__("movq (%[e]), %[enc]\n\t" LZ_PUSH_STORE
              : [enc] "=&r"(enc), [used] "+m"(s->used), "=@ccz"(last)
              : [e] "r"(e), [b] "r"(b)
              : "memory", "cc");
#undef LZ_PUSH_STORE
#else
    uintptr_t k = (e - (uintptr_t)s) / LZ_MAP_LOCAL; /* to_local, from the entry */
    lz_block_t **list = (lz_block_t **)e;
    b->enc_next = (uintptr_t)*list ^ enc;
    local_free_publish(list, b);
    s->used = (uint16_t)(s->used - k);
    last = s->used == 0;
#endif
    if (lz_unlikely(last)) heap_free_last(lz_heap_tls, s);
    return;
  own_slow:
    heap_free_own(p, s, as);
  }
}

lz_inline void free_fast(void *p) { free_fast_to(p, NULL); }

/* malloc_usable_size's fast path, for a block of any heap: true with p's
 * size when the chunk map names a chunk of spans and p is a block boundary
 * of the span its page maps to, below that span's carved limit (the
 * checks of free's slow path, ptr_resolve: a medium span's capacity is 1
 * and its start alone passes, as in free's fast path; spans[0] and a span
 * not in use have capacity 0). False for the rest, which api_usable_slow
 * (heap_usable_size) resolves or reports: NULL (unit 0 is never a chunk),
 * a large block, a packed span's granule (sizes of its own), level 2
 * (sizes from the slot's canary) and misuse. One cache line of the span
 * is read (inv, ibase, capacity, block_size, kind and class share it):
 * programs that ask the size of every block they allocate and free
 * (ruby's garbage collector's accounting) pay about as much as a free. */
lz_inline bool usable_fast(const void *p, size_t *size) {
  uintptr_t a = (uintptr_t)p;
  if (lz_unlikely(lz_secure2) || chunkmap_kind(a) != CHUNK_SPANS) return false;
  const span_t *s = chunk_span_of((const chunk_t *)(a & ~LZ_CHUNK_MASK), a);
  if (span_slab_index(s, a) >= __atomic_load_n(&s->capacity, __ATOMIC_RELAXED) || span_packed(s)) return false;
  *size = s->block_size;
  return true;
}
size_t api_usable_slow(const void *p); /* api.c: the rest */
/* malloc_usable_size and lz_usable_size. */
lz_inline size_t api_usable(const void *p) {
  size_t n;
  return lz_likely(usable_fast(p, &n)) ? n : api_usable_slow(p);
}

/* The aligned allocations' fast path, for an alignment that is a power
 * of two or 0: up to LZ_ALIGN, malloc's; else, up to LZ_DIRECT_MAX, the
 * pop from the list of the size rounded up to a multiple of the
 * alignment: that size's class is the first at least as big that is a
 * multiple of the alignment (heap_malloc_aligned's choice too), and so is
 * the power of two start-up serves it with (tests/test_sizeclass.c checks
 * both for every alignment and size); a slab starts on a page, so each of
 * its blocks is aligned, and every list direct[] names holds blocks of
 * such slabs alone (internal.h, heap_t: a class's first span or its
 * foreign list; packed spans never). Anything else (size 0 too), or an
 * empty list: api_aligned_slow (api.c), for alignments above LZ_ALIGN. */
void *api_aligned_slow(size_t alignment, size_t size);
lz_inline void *aligned_fast(size_t alignment, size_t size) {
  if (alignment <= LZ_ALIGN) return malloc_fast(size);
  /* size rounded up to the alignment; 0 for size 0 and past SIZE_MAX */
  size_t r = ((size - 1) | (alignment - 1)) + 1;
  if (lz_likely(r - 1 < LZ_DIRECT_MAX)) {
    void *p = direct_pop(lz_heap_tls, r);
    if (lz_likely(p != NULL)) {
      lz_assert(((uintptr_t)p & (alignment - 1)) == 0);
      return p;
    }
  }
  return api_aligned_slow(alignment, size);
}

/* Entry and exit of every public function. Per-thread heaps (LZ_HEAPS 0):
 * nothing. Shared heaps: the calling thread's heap (assigned on first use)
 * is locked for the whole call, so the code inside runs as its owner. */
lz_inline heap_t *api_enter(void) {
  if (LZ_HEAPS == 0) return NULL;
  heap_t *h = lz_heap_tls;
  if (lz_unlikely(h == LZ_HEAP_EMPTY)) h = heap_get_slow();
  if (h != NULL) lz_lock(&h->lock);
  return h;
}

lz_inline void api_leave(heap_t *h) {
  if (LZ_HEAPS != 0 && h != NULL) lz_unlock(&h->lock);
}

lz_inline void *api_malloc(size_t size) {
  if (LZ_HEAPS == 0) return malloc_fast(size);
  heap_t *h = api_enter();
  void *p = malloc_fast(size);
  api_leave(h);
  return p;
}

lz_inline void *api_calloc(size_t n, size_t size) {
  heap_t *h = api_enter();
  void *p = calloc_fast(n, size);
  api_leave(h);
  return p;
}

/* memalign and aligned_alloc, as glibc: an alignment that is not a power
 * of two is rounded up to one (api_memalign_odd, api.c), EINVAL only
 * above SIZE_MAX / 2 + 1; 0 is malloc's. */
void *api_memalign_odd(size_t alignment, size_t size);
lz_inline void *api_memalign(size_t alignment, size_t size) {
  heap_t *h = api_enter();
  void *p = lz_likely((alignment & (alignment - 1)) == 0) ? aligned_fast(alignment, size)
                                                          : api_memalign_odd(alignment, size);
  api_leave(h);
  return p;
}

/* posix_memalign: EINVAL (errno left alone) for an alignment that is not
 * a power of two times sizeof(void *); ENOMEM, with errno set as well (as
 * glibc), when out of memory; *out written only on success. */
lz_inline int api_posix_memalign(void **out, size_t alignment, size_t size) {
  if (lz_unlikely(alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0 || alignment == 0))
    return EINVAL;
  heap_t *h = api_enter();
  void *p = aligned_fast(alignment, size);
  api_leave(h);
  if (lz_unlikely(p == NULL)) return ENOMEM;
  *out = p;
  return 0;
}

lz_inline void api_free_to(void *p, const char *as) {
  if (LZ_HEAPS == 0) {
    free_fast_to(p, as);
    return;
  }
  heap_t *h = api_enter();
  free_fast_to(p, as);
  api_leave(h);
}

lz_inline void api_free(void *p) { api_free_to(p, NULL); }

#endif /* LZ_ALLOC_H */
