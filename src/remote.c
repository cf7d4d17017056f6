/* remote.c: frees that cross threads.
 *
 * A block freed by a thread that does not own its span is pushed on the
 * owning heap's xremote list (lock-free, many producers). The owner takes
 * the whole list with one atomic exchange (single consumer, so no ABA) and
 * frees each block locally, in a batch, on its slow path. Heaps are never
 * unmapped, so a heap pointer read from a live block's span is always safe
 * to push to, even if that heap's thread has exited (the heap is then an
 * orphan and whoever holds it collects the list).
 */
#include "internal.h"
#include "security.h"

void remote_free(span_t *s, lz_block_t *b) {
  heap_t *owner = span_chunk(s)->heap;
  lz_block_t *head = atomic_load_explicit(&owner->xremote, memory_order_relaxed);
  do {
    if (lz_unlikely(head == b)) lz_fatal_pointer("double free", "free", b);
    block_set_next(b, head);
  } while (!atomic_compare_exchange_weak_explicit(&owner->xremote, &head, b, memory_order_release,
                                                  memory_order_relaxed));
  heap_t *self = lz_heap_tls;
  if (LZ_STATS && self != &lz_heap_empty) self->stats.remote_frees++;
}

size_t remote_collect(heap_t *heap) {
  if (atomic_load_explicit(&heap->xremote, memory_order_relaxed) == NULL) return 0;
  lz_block_t *b = atomic_exchange_explicit(&heap->xremote, NULL, memory_order_acquire);
  size_t n = 0;
  while (b != NULL) {
    lz_block_t *next = block_next(b);
    chunk_t *c = (chunk_t *)((uintptr_t)b & ~LZ_CHUNK_MASK);
    span_t *s = &c->spans[c->pagemap[((uintptr_t)b >> LZ_PAGE_SHIFT) & (LZ_CHUNK_PAGES - 1)]];
    lz_assert(c->heap == heap);
    heap_free_local(heap, s, b);
    b = next;
    n++;
  }
  return n;
}
