/* remote.c: frees that cross threads.
 *
 * A block freed by a thread that does not own its span goes back to the
 * owning heap (its chunk's heap). The freeing thread first gathers such
 * blocks in short chains per destination (heap->rbatch) and sends a chain
 * with one CAS onto the destination's xremote list: lock-free, many
 * producers. The owner takes the whole list with one atomic exchange
 * (single consumer, so no ABA) and frees each block locally, on its slow
 * path. Heaps are never unmapped, so a heap pointer read from a live
 * block's chunk is always safe to push to, even if that heap's thread has
 * exited (the heap is then an orphan and whoever holds it collects).
 * A thread without a heap of its own sends each block at once.
 */
#include "internal.h"
#include "security.h"

/* Pushes the chain head..tail (linked, encoded) onto dest->xremote. */
static void remote_send(heap_t *dest, lz_block_t *head, lz_block_t *tail) {
  lz_block_t *old = atomic_load_explicit(&dest->xremote, memory_order_relaxed);
  do {
    if (lz_unlikely(old == head || old == tail)) lz_fatal_pointer("double free", "free", old);
    block_set_next(tail, old);
  } while (!atomic_compare_exchange_weak_explicit(&dest->xremote, &old, head, memory_order_release,
                                                  memory_order_relaxed));
}

static void batch_flush(heap_t *self, unsigned i) {
  remote_batch_t *rb = &self->rbatch[i];
  if (rb->count != 0) remote_send(rb->dest, rb->head, rb->tail);
  rb->dest = NULL;
  rb->head = rb->tail = NULL;
  rb->count = 0;
  self->rbatch_pending &= ~(1u << i);
}

void remote_free(heap_t *self, span_t *s, lz_block_t *b) {
  heap_t *owner = span_chunk(s)->heap;
  if (self == &lz_heap_empty) {
    remote_send(owner, b, b);
    return;
  }
  if (LZ_STATS) self->stats.remote_frees++;
  unsigned slot = (unsigned)(((uintptr_t)owner >> 6) % LZ_REMOTE_SLOTS);
  remote_batch_t *rb = &self->rbatch[slot];
  if (rb->dest != owner) {
    if (rb->count != 0) batch_flush(self, slot);
    rb->dest = owner;
  }
  if (lz_unlikely(b == rb->head)) lz_fatal_pointer("double free", "free", b);
  if (rb->count == 0) {
    rb->tail = b;
  }
  block_set_next(b, rb->head);
  rb->head = b;
  self->rbatch_pending |= 1u << slot;
  if (++rb->count >= LZ_REMOTE_BATCH) batch_flush(self, slot);
}

void remote_flush_all(heap_t *self) {
  while (self->rbatch_pending != 0) batch_flush(self, (unsigned)__builtin_ctz(self->rbatch_pending));
}

size_t remote_collect(heap_t *heap) {
  if (atomic_load_explicit(&heap->xremote, memory_order_relaxed) == NULL) return 0;
  lz_block_t *b = atomic_exchange_explicit(&heap->xremote, NULL, memory_order_acquire);
  size_t n = 0;
  while (b != NULL) {
    lz_block_t *next = block_next(b);
    __builtin_prefetch(next, 1); /* blocks come from another core's cache */
    chunk_t *c = (chunk_t *)((uintptr_t)b & ~LZ_CHUNK_MASK);
    span_t *s = &c->spans[c->pagemap[((uintptr_t)b >> LZ_PAGE_SHIFT) & (LZ_CHUNK_PAGES - 1)]];
    lz_assert(c->heap == heap);
    heap_free_local(heap, s, b);
    b = next;
    n++;
  }
  return n;
}
