/* remote.c: frees that cross threads.
 *
 * A block freed by a thread that does not own its span goes back to the
 * owning heap (its chunk's heap). The freeing thread gathers such blocks in
 * short chains, one per span (heap->rbatch), and sends a whole chain with
 * one CAS onto the owner heap's xremote list: lock-free, many producers.
 * The owner takes the whole list with one atomic exchange (single consumer,
 * so no ABA) on its slow path.
 *
 * The xremote list is a list of chains ("batches"):
 *
 *   head --next--> ... --next--> tail --next--> head of the next batch ...
 *   head->word[1] = encoded (tail | (count - 1))      (blocks are >= 16 B)
 *
 * Every block of a batch belongs to one span, so the owner splices the
 * chain into the span's local_free list and subtracts `count` from its
 * used counter reading only the head and the tail: two cache misses per
 * batch instead of one per block. Heaps are never unmapped, so a heap
 * pointer read from a live block's chunk is always safe to push to, even
 * if that heap's thread has exited (the heap is then an orphan and whoever
 * holds it collects). A thread that only frees gets a heap of its own for
 * its batches (it is abandoned at thread exit like any other).
 */
#include "internal.h"
#include "security.h"

_Static_assert(LZ_REMOTE_BATCH <= LZ_ALIGN, "batch count lives in the tail pointer's alignment bits");

lz_inline lz_block_t *batch_meta_slot(lz_block_t *head) { return head + 1; }

/* Pushes the chain head..tail (linked, encoded) of `count` blocks of one
 * span onto dest->xremote. */
static void remote_send(heap_t *dest, lz_block_t *head, lz_block_t *tail, uint32_t count) {
  block_set_next(batch_meta_slot(head), (lz_block_t *)((uintptr_t)tail | (count - 1)));
  lz_block_t *old = atomic_load_explicit(&dest->xremote, memory_order_relaxed);
  do {
    if (lz_unlikely(old == head || old == tail)) lz_fatal_pointer("double free", "free", old);
    block_set_next(tail, old);
  } while (!atomic_compare_exchange_weak_explicit(&dest->xremote, &old, head, memory_order_release,
                                                  memory_order_relaxed));
}

static void batch_flush(heap_t *self, unsigned i) {
  remote_batch_t *rb = &self->rbatch[i];
  if (rb->count != 0) remote_send(span_chunk(rb->span)->heap, rb->head, rb->tail, rb->count);
  rb->span = NULL;
  rb->head = rb->tail = NULL;
  rb->count = 0;
  self->rbatch_pending &= ~(1u << i);
}

void remote_free(heap_t *self, span_t *s, lz_block_t *b) {
  if (lz_unlikely(self == &lz_heap_empty)) {
    /* A thread that only frees still batches: give it a heap. */
    self = heap_get_slow();
    if (self == NULL) {
      remote_send(span_chunk(s)->heap, b, b, 1);
      return;
    }
  }
  if (LZ_STATS) self->stats.remote_frees++;
  /* Span descriptors of consecutive slabs are 16+ pages apart: hash, do
   * not take the low bits. */
  unsigned slot = (unsigned)((((uintptr_t)s >> 6) * 0x9e3779b97f4a7c15ull) >> (64 - LZ_REMOTE_SLOT_BITS));
  remote_batch_t *rb = &self->rbatch[slot];
  if (rb->span != s) {
    if (rb->count != 0) batch_flush(self, slot);
    rb->span = s;
  }
  if (lz_unlikely(b == rb->head)) lz_fatal_pointer("double free", "free", b);
  if (rb->count == 0) rb->tail = b;
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
  lz_block_t *head = atomic_exchange_explicit(&heap->xremote, NULL, memory_order_acquire);
  size_t n = 0;
  while (head != NULL) {
    uintptr_t meta = (uintptr_t)block_next(batch_meta_slot(head));
    lz_block_t *tail = (lz_block_t *)(meta & ~(uintptr_t)(LZ_ALIGN - 1));
    uint32_t count = (uint32_t)(meta & (LZ_ALIGN - 1)) + 1;
    lz_block_t *next = block_next(tail);
    __builtin_prefetch(next, 1);
    chunk_t *c = (chunk_t *)((uintptr_t)head & ~LZ_CHUNK_MASK);
    span_t *s = &c->spans[c->pagemap[((uintptr_t)head >> LZ_PAGE_SHIFT) & (LZ_CHUNK_PAGES - 1)]];
    lz_assert(c->heap == heap);
    if (s->kind == SPAN_MEDIUM) {
      if (lz_unlikely(count != 1)) lz_fatal_pointer("double free", "free", head);
      medium_free(heap, s);
    } else {
      slab_free_chain(heap, s, head, tail, count);
    }
    head = next;
    n += count;
  }
  return n;
}
