/* slab.c: small blocks (<= 32 KiB) in slab spans, and the heap's class
 * queues of slabs.
 *
 * Allocation pops span->free (inline, alloc.h). When it is empty the slow
 * path here walks the class queue: for each span it takes local_free as the
 * new free list, else carves the next blocks of the untouched tail (lazy
 * bump-pointer initialisation, at most a page of blocks at a time), else
 * marks the span FULL and unlinks it. Installing a list charges all its
 * blocks to span->used and the heap's in_use at once, so the fast path
 * counts nothing (internal.h, span invariants). A FULL span rejoins the queue when
 * one of its blocks is freed. A span whose last block is freed is retired
 * (its pages go back to the chunk) unless it is the queue's current span.
 * Only the heap's owner runs this code (see internal.h, Ownership).
 */
#include "alloc.h"

/* The first span of a queue holds one extra count in `used` (its pin), so
 * frees never retire the span malloc is carving from, and the free fast
 * path needs no "is it current?" test: a span whose count reaches zero is
 * never a queue's first. */
void queue_remove(heap_t *heap, span_queue_t *q, span_t *s) {
  bool was_first = q->first == s;
  if (s->prev) s->prev->next = s->next; else q->first = s->next;
  if (s->next) s->next->prev = s->prev; else q->last = s->prev;
  s->next = s->prev = NULL;
  if (was_first) {
    s->used--;                         /* s loses the pin */
    if (q->first) q->first->used++;    /* its successor gains it */
    heap_direct_update(heap, s->cls);
  }
}

void queue_push_front(heap_t *heap, span_queue_t *q, span_t *s) {
  span_t *old = q->first;
  lz_assert(old == NULL || old->free == NULL); /* a span leaves the front only empty-handed */
  s->prev = NULL;
  s->next = old;
  if (old) old->prev = s; else q->last = s;
  q->first = s;
  s->used++;
  heap_direct_update(heap, s->cls);
  if (old && --old->used == 0) slab_retire(heap, old);
}

static void queue_push_back(heap_t *heap, span_queue_t *q, span_t *s) {
  if (q->first == NULL) { queue_push_front(heap, q, s); return; }
  s->next = NULL;
  s->prev = q->last;
  q->last->next = s;
  q->last = s;
}

void heap_direct_update(heap_t *heap, unsigned cls) {
  uint32_t size = lz_class_size[cls];
  if (size > LZ_DIRECT_MAX) return;
  span_t *s = heap->queues[cls].first;
  if (heap->foreign != NULL && (heap->foreign[cls].flags & FOREIGN_INSTALLED)) s = &heap->foreign[cls];
  else if (s == NULL) s = &lz_span_empty;
  size_t lo = cls == 1 ? 0 : lz_class_size[cls - 1] / 16 + 1;
  for (size_t i = lo; i <= size / 16; i++) heap->direct[i] = s;
}

/* Installs `n` blocks as the free list: they count as used until freed. */
static void slab_charge(heap_t *heap, span_t *s, uint32_t n) {
  s->used = (uint16_t)(s->used + n);
  if (LZ_STATS) heap->stats.in_use += (int64_t)n * s->block_size;
}

/* Carves the next blocks of the untouched tail into the (empty) free list:
 * a page of blocks, or for blocks over a quarter page as many as are carved
 * already, up to 4 (a class used a little touches one page, a class in use
 * takes a slow path per 4 blocks, not per block). */
void slab_extend(heap_t *heap, span_t *s) {
  lz_assert(s->free == NULL && s->capacity < s->reserved);
  size_t bs = s->block_size;
  size_t n = LZ_PAGE_SIZE / bs;
  if (n < 4) n = s->capacity < 4 ? (s->capacity > n ? s->capacity : (n > 0 ? n : 1)) : 4;
  if (n > (size_t)(s->reserved - s->capacity)) n = s->reserved - s->capacity;
  uint8_t *start = span_start(s) + (size_t)s->capacity * bs;
  lz_block_t *b = (lz_block_t *)start;
  for (size_t i = 0; i + 1 < n; i++) {
    lz_block_t *next = (lz_block_t *)((uint8_t *)b + bs);
    block_set_next(b, next);
    b = next;
  }
  block_set_next(b, NULL);
  s->free = (lz_block_t *)start;
  /* Other threads read capacity to validate pointers (heap.c): atomic. */
  __atomic_store_n(&s->capacity, (uint16_t)(s->capacity + n), __ATOMIC_RELAXED);
  slab_charge(heap, s, (uint32_t)n);
}

/* p is a block boundary below the carved limit of s (slab or medium). */
bool slab_holds(const span_t *s, const void *p) { return span_holds(s, (uintptr_t)p); }

/* span_pop for the slow paths: the block and the link it holds must lie in
 * the span, else the list was overwritten (a write after free): reported,
 * where following the link would crash. */
void *slab_pop_checked(span_t *s) {
  lz_block_t *b = s->free;
  if (LZ_SECURE) {
    lz_block_t *next = block_next(b);
    if (lz_unlikely(!span_holds(s, (uintptr_t)b) || (next != NULL && !span_holds(s, (uintptr_t)next))))
      lz_fatal_pointer("corrupted free list", "malloc", b);
    s->free = next;
    b->enc_next = 0;
    return b;
  }
  return span_pop(s);
}

/* Blocks waiting in the span's free list (walked: slow paths only). */
uint32_t slab_cached(const span_t *s) {
  uint32_t n = 0;
  for (lz_block_t *b = s->free; b != NULL && n <= s->capacity; b = block_next(b)) n++;
  return n;
}

/* Gives the span's free list back: its blocks join local_free and stop
 * counting as used (so an orphan's counts are exact, and a span may leave
 * the front of its queue). */
void slab_uncache(heap_t *heap, span_t *s) {
  if (s->free == NULL) return;
  uint32_t n = 1;
  lz_block_t *tail = s->free;
  for (lz_block_t *next; (next = block_next(tail)) != NULL; tail = next) n++;
  block_set_next(tail, s->local_free);
  s->local_free = s->free;
  s->free = NULL;
  s->used = (uint16_t)(s->used - n);
  if (LZ_STATS) heap->stats.in_use -= (int64_t)n * s->block_size;
}

/* Bytes in the free lists of the heap's current spans (owner only). */
size_t heap_cached_bytes(const heap_t *heap) {
  size_t bytes = 0;
  for (unsigned cls = 1; cls < LZ_CLASSES; cls++) {
    const span_t *s = heap->queues[cls].first;
    if (s != NULL) bytes += (size_t)slab_cached(s) * s->block_size;
    s = heap->foreign != NULL ? &heap->foreign[cls] : NULL;
    if (s != NULL && (s->flags & FOREIGN_INSTALLED)) /* charged when installed (remote.c) */
      for (lz_block_t *b = s->free; b != NULL; b = block_next(b)) bytes += s->block_size;
  }
  return bytes;
}

static span_t *slab_new(heap_t *heap, unsigned cls) {
  /* First slab small, then doubling up to the class's full slab. */
  size_t pages = (size_t)class_first_slab_pages(cls) << (heap->slabs_made[cls] < 7 ? heap->slabs_made[cls] : 7);
  if (pages > class_slab_pages(cls)) pages = class_slab_pages(cls);
  if (heap->slabs_made[cls] < UINT8_MAX) heap->slabs_made[cls]++;
  span_t *s = span_alloc(heap, pages, 1, SPAN_SLAB);
  if (s == NULL) return NULL;
  uint32_t bs = lz_class_size[cls];
  span_set_block_size(s, bs);
  s->reserved = (uint16_t)((pages << LZ_PAGE_SHIFT) / bs);
  s->cls = (uint8_t)cls;
  atomic_store_explicit(&s->xfast_owner, heap, memory_order_relaxed);
  if (LZ_STATS) {
    heap->stats.class_slabs[cls]++;
    heap->stats.class_pages[cls] += (uint32_t)pages;
  }
  return s;
}

/* The class's current span ran out of free blocks but holds blocks the
 * owner freed: they become its free list (no other slow-path work). A
 * thread that allocates and frees one block of a class with few blocks a
 * page (4 KiB and up: one block carved at a time) comes here on every
 * allocation. NULL if there are none. */
void *slab_malloc_local(heap_t *heap, unsigned cls) {
  span_t *s = heap->queues[cls].first;
  if (s == NULL || s->local_free == NULL) return NULL;
  lz_assert(s->free == NULL);
  uint32_t out = (uint32_t)s->used - 1; /* the first span holds the pin */
  s->free = s->local_free;
  s->local_free = NULL;
  slab_charge(heap, s, s->capacity - out);
  return slab_pop_checked(s);
}

void *slab_malloc_slow(heap_t *heap, unsigned cls) {
  span_queue_t *q = &heap->queues[cls];
  span_t *s = q->first;
  while (s != NULL) {
    span_t *next = s->next;
    lz_assert(s->free == NULL); /* the first span's list ran out; others have none */
    if (s->local_free != NULL) {
      /* free is empty, so local_free holds every carved block not out. */
      uint32_t out = (uint32_t)s->used - (s == q->first);
      s->free = s->local_free;
      s->local_free = NULL;
      slab_charge(heap, s, s->capacity - out);
    } else if (s->capacity < s->reserved) {
      slab_extend(heap, s);
    }
    if (s->free != NULL) {
      if (s != q->first) {
        queue_remove(heap, q, s);
        queue_push_front(heap, q, s);
      }
      return slab_pop_checked(s);
    }
    /* Nothing left: park it until one of its blocks comes back. */
    queue_remove(heap, q, s);
    s->flags |= SPAN_FULL;
    atomic_store_explicit(&s->xfast_owner, NULL, memory_order_relaxed);
    s = next;
  }
  s = slab_new(heap, cls);
  if (s == NULL) return NULL;
  slab_extend(heap, s);
  queue_push_front(heap, q, s);
  return span_pop(s);
}

/* The span is empty (so not the current span of its queue, see the pin
 * above): give its pages back. Called by the inline free too, so it takes
 * the heap lock itself (nested inside the slow paths). */
void slab_retire(heap_t *heap, span_t *s) {
  lz_assert(s->used == 0 && !(s->flags & SPAN_FULL)); /* FULL spans have every block out */
  lz_assert(heap->queues[s->cls].first != s);
  heap_enter(heap);
  queue_remove(heap, &heap->queues[s->cls], s);
  slab_release(heap, s);
  heap_leave(heap);
  if (LZ_HEAPS == 0 && heap->lock_depth == 0) janitor_poll(NULL); /* from the inline free */
}

/* An empty slab already out of its queue goes back to its chunk. */
void slab_release(heap_t *heap, span_t *s) {
  if (LZ_STATS) {
    heap->stats.class_slabs[s->cls]--;
    heap->stats.class_pages[s->cls] -= s->npages;
  }
  span_free(heap, s);
}

/* Owner frees the chain head..tail of `count` blocks of a slab that may be
 * FULL (one block: head == tail, count 1). */
void slab_free_chain(heap_t *heap, span_t *s, lz_block_t *head, lz_block_t *tail, uint32_t count) {
  if (lz_unlikely(count > s->used)) lz_fatal_pointer("double free", "free", head);
  block_set_next(tail, s->local_free);
  s->local_free = head;
  if (LZ_STATS) heap->stats.in_use -= (int64_t)count * s->block_size;
  if (s->flags & SPAN_FULL) {
    s->flags &= (uint8_t)~SPAN_FULL;
    atomic_store_explicit(&s->xfast_owner, heap, memory_order_relaxed);
    queue_push_back(heap, &heap->queues[s->cls], s);
  }
  s->used = (uint16_t)(s->used - count);
  if (s->used == 0) slab_retire(heap, s);
}

/* Is b on the span's free or local_free list? (double-free confirmation)
 * A link out of the span, or a list longer than the span's blocks (a
 * cycle), is reported as a corrupted list. */
bool slab_contains_free(span_t *s, lz_block_t *b) {
  lz_block_t *lists[2] = {s->free, s->local_free};
  for (int l = 0; l < 2; l++) {
    size_t limit = s->capacity;
    for (lz_block_t *x = lists[l]; x != NULL; x = block_next(x)) {
      if (!slab_holds(s, x) || limit-- == 0) lz_fatal_pointer("corrupted free list", "free", x);
      if (x == b) return true;
    }
  }
  return false;
}
