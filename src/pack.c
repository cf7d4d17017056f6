/* pack.c: start-up's packed span, and a new thread's or a fork child's
 * (internal.h says what it is; slab.c, "Packing armed", when such a heap
 * has one).
 *
 * In start-up (heap_t.startup: the process's first heap, slab.c) every
 * size class has a slab of its own, a page at least, so a process that
 * allocates a few blocks of many sizes (a command starting up: its locale,
 * options, environment) touches a page per class it uses, mostly empty.
 * Here those blocks, up to LZ_PACK_MAX bytes, are carved one after another
 * from one span, as a bump allocator would: cat's first 200 blocks take
 * 4 pages instead of 8, and a process pays about a page fault per 4 KiB of
 * such blocks it uses.
 *
 * Its blocks take the slow paths (a bump or a list pop, no tick; frees
 * see below), so it hands out LZ_PACK_USES blocks at most: a program
 * allocating in a loop runs on the fast paths soon.
 *
 * A freed block is marked freed in the map, its granules leave `used`,
 * and while the span is open it joins its class's list (heap->pack_free,
 * encoded links: a write after free or an overflow into it is reported
 * when the list is next popped, as for a slab). The span is closed when
 * it is full, has handed out LZ_PACK_USES blocks or start-up ends (the
 * classes' slabs serve from then on; its
 * freed blocks are not handed out again), and goes back to its chunk once
 * closed and empty (the owner's free of its last block).
 *
 * Frees: the span takes no fast free (xfast_cap 0), so every free reaches heap.c's
 * slow paths, which check the map first (pack_check: a block start, not
 * freed). The owner's own frees come here at once (heap.c,
 * free_own_packed: no tick, no lock unless the span goes back); other
 * threads' go home in batches as any slab block's (remote.c: a packed
 * block is at least 16 bytes, two words), which the owner collects into
 * slab_free_chain, which hands them here. pack_free_chain marks them
 * freed, and reports a second free that the other thread's look at the
 * map could not see yet. Only the owner writes the map.
 */
#include <string.h>

#include "security.h"
#include "sizeclass.h"

/* A block listed in packed span s as a freed block of class cls. */
lz_text_hot static bool pack_listed(const span_t *s, const lz_block_t *b, unsigned cls) {
  uintptr_t start = (uintptr_t)span_start(s);
  return span_holds_slab(s, start, (uintptr_t)b) &&
         pack_entry(s, ((uintptr_t)b - start) / LZ_ALIGN) == (uint8_t)(cls | PACK_FREED);
}

/* A block of class cls from the heap's open packed span: a freed one
 * (its list checked as slab_pop_checked checks a slab's: the head and its
 * link freed blocks of the class in the span, else the list was
 * overwritten), else carved after the last; NULL if the span is full. */
lz_text_hot void *pack_take(heap_t *heap, unsigned cls) {
  span_t *s = heap->pack;
  uint8_t *start = span_start(s);
  uint32_t g = lz_class_size[cls] / LZ_ALIGN;
  lz_assert(cls < LZ_PACK_CLASSES);
  /* Its blocks take the slow paths: a program's first few hundred only. */
  if (lz_unlikely(++heap->pack_uses > LZ_PACK_USES)) return NULL;
  lz_block_t *b = heap->pack_free[cls];
  if (b != NULL) {
    lz_block_t *next = block_next(b);
    if (LZ_SECURE && lz_unlikely(!pack_listed(s, b, cls) || (next != NULL && !pack_listed(s, next, cls))))
      lz_fatal_pointer("corrupted free list", "malloc", b);
    heap->pack_free[cls] = next;
    b->enc_next = 0;
    __atomic_store_n(start + ((uint8_t *)b - start) / LZ_ALIGN, (uint8_t)cls, __ATOMIC_RELAXED);
    s->used = (uint16_t)(s->used + g);
    return b;
  }
  uint32_t at = s->capacity;
  if (at + g > s->reserved) return NULL;
  /* The entry before the capacity that covers it: another thread may
   * check the pointer as soon as it has it (pack_check). */
  __atomic_store_n(start + at, (uint8_t)cls, __ATOMIC_RELAXED);
  __atomic_store_n(&s->capacity, (uint16_t)(at + g), __ATOMIC_RELEASE);
  s->used = (uint16_t)(s->used + g);
  return start + (size_t)at * LZ_ALIGN;
}

/* Its pages back to the chunk (the heap lock taken: pack_close may run
 * outside the slow paths, remote.c's end of start-up). */
lz_text_hot static void pack_release(heap_t *heap, span_t *s) {
  lz_assert(s->used == 0 && s != heap->pack);
  heap_enter(heap);
  span_free(heap, s);
  heap_leave(heap);
}

/* A new open span for the heap (false: no pages). */
lz_text_hot static bool pack_open(heap_t *heap) {
  /* The constants opaque to the compiler: stored side by side (here, or
   * in span_alloc inlined with them) they become one wide store of a
   * constant read from .rodata, whose first read costs a process a page
   * fault (internal.h, lz_ro_hot). */
  size_t pages = LZ_PACK_PAGES;
  uint32_t reserved = LZ_PACK_PAGES * LZ_PAGE_SIZE / LZ_ALIGN, capacity = LZ_PACK_MAP / LZ_ALIGN;
  __asm__("" : "+r"(pages), "+r"(reserved), "+r"(capacity));
  span_t *s = span_alloc(heap, pages, 1, SPAN_SLAB);
  if (s == NULL) return false;
  span_set_block_size(s, LZ_ALIGN);
  s->reserved = (uint16_t)reserved;
  s->capacity = (uint16_t)capacity;
  s->cls = 0; /* what makes it packed (span_packed) */
  /* Reused pages may hold anything: the map must start clear. */
  if (!(s->flags & SPAN_ZERO)) memset(span_start(s), 0, LZ_PACK_MAP);
  heap->pack = s;
  if (heap->startup) heap->startup_pages = (uint16_t)(heap->startup_pages + LZ_PACK_PAGES);
  return true;
}

/* Start-up's blocks come from one open span at a time: the first opened
 * on the first call, another each time the open one is full, while
 * LZ_PACK_USES blocks have not been handed out and start-up's pages
 * (LZ_STARTUP_PAGES, packed spans counted) allow: a process whose first
 * few hundred blocks hold more than one span keeps them packed instead of
 * rounding the rest up to the start-up classes' powers of two (a slab per
 * power of two, a page per slab at least). pack_done: no span is opened
 * any more but a next one for a full one. */
lz_text_hot void *pack_malloc(heap_t *heap, unsigned cls) {
  /* Packing armed (slab.c): one span, closed when full. */
  if (heap->pack == NULL) {
    if (heap->pack_done || !(heap->startup || heap->pack_armed)) return NULL;
    heap->pack_done = true;
    if (!pack_open(heap)) return NULL;
  }
  void *p = pack_take(heap, cls);
  if (p == NULL && heap->startup && heap->pack_uses <= LZ_PACK_USES &&
      heap->startup_pages + LZ_PACK_PAGES <= LZ_STARTUP_PAGES) { /* full: the next */
    pack_close(heap);
    if (pack_open(heap)) p = pack_take(heap, cls);
  }
  if (p == NULL) pack_close(heap);
  return p;
}

/* The open span closes (full, or start-up over): an empty one goes back. */
lz_text_hot void pack_close(heap_t *heap) {
  span_t *s = heap->pack;
  heap->pack_done = true;
  if (s == NULL) return;
  heap->pack = NULL;
  for (unsigned c = 0; c < LZ_PACK_CLASSES; c++) heap->pack_free[c] = NULL; /* not reused now */
  if (s->used == 0) pack_release(heap, s);
}

/* p, a granule boundary below the capacity of packed span s (span_check
 * passed), must start a block, and one not freed unless freed_ok. */
lz_text_hot void pack_check(const span_t *s, const void *p, const char *func, bool freed_ok) {
  uint8_t e = pack_entry(s, (size_t)((const uint8_t *)p - span_start(s)) / LZ_ALIGN);
  if (e == 0) lz_fatal_pointer("invalid pointer", func, p);
  if ((e & PACK_FREED) && !freed_ok) lz_fatal_pointer("double free", func, p);
}

lz_text_hot uint32_t pack_usable(const span_t *s, const void *p) {
  uint8_t e = pack_entry(s, (size_t)((const uint8_t *)p - span_start(s)) / LZ_ALIGN);
  return lz_class_size[e & (PACK_FREED - 1)];
}

/* The owner frees `count` blocks of packed span s: head alone, or a chain
 * another thread sent (linked through the blocks' first words). */
lz_text_hot void pack_free_chain(heap_t *heap, span_t *s, lz_block_t *head, uint32_t count) {
  uint8_t *start = span_start(s);
  lz_block_t *b = head;
  for (uint32_t i = 0; i < count; i++) {
    lz_block_t *next = i + 1 < count ? block_next(b) : NULL;
    if (LZ_SECURE && next != NULL && !span_holds(s, (uintptr_t)next))
      lz_fatal_pointer("corrupted free list", "free", b);
    size_t g = (size_t)((uint8_t *)b - start) / LZ_ALIGN;
    uint8_t e = start[g];
    if (e == 0) lz_fatal_pointer("invalid pointer", "free", b);
    if (e & PACK_FREED) lz_fatal_pointer("double free", "free", b);
    __atomic_store_n(start + g, (uint8_t)(e | PACK_FREED), __ATOMIC_RELAXED);
    s->used = (uint16_t)(s->used - lz_class_size[e] / LZ_ALIGN);
    if (s == heap->pack) { /* open: handed out again */
      block_set_next(b, heap->pack_free[e]);
      heap->pack_free[e] = b;
    }
    b = next;
  }
  if (s->used == 0 && s != heap->pack) pack_release(heap, s);
}
