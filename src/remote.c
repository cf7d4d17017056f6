/* remote.c: frees that cross threads.
 *
 * A block freed by a thread that does not own its span goes back to the
 * owning heap (its chunk's heap), unless the freeing thread keeps it for
 * reuse ("Foreign blocks" below: only blocks that share little or no
 * cache line with their neighbours).
 * The freeing thread gathers such blocks in short chains, one per span
 * (heap_rbatch, set associative), and sends a whole chain with one CAS onto
 * the owner heap's xremote list: lock-free, many producers, one atomic per
 * chain. Each span may use any slot of its set (LZ_REMOTE_WAYS ways). A
 * chain goes when full, when its set's slots are all wanted for other spans
 * (the fullest goes), and at
 * the latest at the freeing thread's second sending tick after it started
 * (every LZ_REMOTE_AGE_TICKS-th of heap.c's ticks, which come every 64th
 * slow-path entry; every remote free is one), so the delay before the
 * owner can see a block is bounded by the freeing thread's own activity
 * (1024 slow-path entries); thread exit and trim send them all.
 * A medium block goes at once, a chain of one: its span holds no other
 * block to wait for, and its owner reuses the pages. The owner takes the whole list with one atomic
 * exchange (single consumer, so no ABA) at the start of every allocation
 * slow path.
 *
 * The xremote list is a list of chains ("batches"), each entered at its
 * tail:
 *
 *   xremote --> tail --next|1--> tail of the next batch ...
 *   head --next--> ... --next--> tail
 *   tail->word[1] = encoded (head | (count - 1))      (blocks are >= 16 B)
 *
 * Every block of a batch belongs to one span, so the owner splices the
 * chain into the span's local_free list and subtracts `count` from its
 * used counter reading only the tail (whose line holds both the link to
 * the next batch and the head): one cache miss per batch instead of one
 * per block, and the walk from batch to batch waits for one line each,
 * not for the head's and then the tail's. The head, popped first by the
 * next allocation, is prefetched meanwhile. Heaps are never unmapped, so a heap
 * pointer read from a live block's chunk is always safe to push to, even
 * if that heap's thread has exited (the heap is then an orphan and whoever
 * holds it collects). A thread that only frees gets a heap of its own for
 * its batches from its caller (heap.c), abandoned at thread exit like any
 * other; without one (LZ_HEAP_EMPTY) each block is sent home at once.
 *
 * Double frees across threads (LZ_SECURE >= 1). A block in flight (in a
 * batch or on an xremote list) has both of its first two words encoded as
 * links into its own chunk: word 0 is the chain link, word 1 a link to
 * itself (the tail's word 1, once the batch is sent, is the batch's meta
 * word, which points at the head). A live block has word 0 cleared at allocation or user data, which
 * decodes into its chunk with probability ~2^-43 (the key is secret), so:
 *   - the freeing thread screens the block before linking it: both words
 *     in flight => it is in some chain already: "double free" at once;
 *     word 0 alone => it may sit on the owner's free lists, which only the
 *     owner may read: the batch is sent flagged REMOTE_SUSPECT;
 *   - the owner, collecting a flagged chain, confirms: it walks the chain
 *     (O(count), every link must stay in the span and reach the tail) and
 *     looks each block up in the span's lists (slab_contains_free) and in
 *     the rest of the chain: any hit is a "double free". Unflagged chains
 *     are spliced in O(1) as above, but for a span with holes: a block of
 *     a hole page reads zero, so no screen flags its second free; the
 *     owner looks each block of the chain up in the hole map (O(count));
 *   - the owner freeing a block itself (heap.c) finds a block in flight by
 *     the same two-word screen.
 * Every check reads words of the block being freed, so a correct program
 * pays one extra load and store per remote free (same cache line).
 */
#include "internal.h"
#include "security.h"
#include "sizeclass.h"

_Static_assert(LZ_REMOTE_BATCH <= LZ_ALIGN, "batch count lives in the tail pointer's alignment bits");

lz_inline lz_block_t *batch_meta_slot(lz_block_t *tail) { return tail + 1; }

/* In the meta word, above every user address: the chain needs confirming. */
#define REMOTE_SUSPECT ((uintptr_t)1 << 62)

bool remote_in_flight(const lz_block_t *b) {
  if (!block_maybe_free(b)) return false;
  uintptr_t d = ((uintptr_t)block_next(b + 1) & ~REMOTE_SUSPECT) >> LZ_CHUNK_SHIFT;
  return d == ((uintptr_t)b >> LZ_CHUNK_SHIFT);
}

/* A tail's link to the next batch's tail on an xremote list carries this
 * bit (the last batch's: the bit alone). Like every link it decodes to a user
 * address, so the owner's free fast path leaves a second free of the tail
 * to the slow path (alloc.h), which finds it in flight; should the link be
 * rewritten all the same (a write after free), the owner, collecting,
 * finds the bit gone ("double free" of the tail) before it lists the tail
 * again. The last tail links to its own chunk's base. */
#define REMOTE_LINK ((uintptr_t)1)

/* The tail's link to `next` (NULL: the end, written as the tail's own
 * chunk base, which is no block: a link into the tail's own chunk sends a
 * second free of the tail to the slow path, which finds it in flight). */
lz_inline uintptr_t remote_link_to(const lz_block_t *tail, const lz_block_t *next) {
  uintptr_t to = next != NULL ? (uintptr_t)next : (uintptr_t)tail & ~LZ_CHUNK_MASK;
  return to | REMOTE_LINK;
}

/* Pushes the chain head..tail (linked, encoded) of `count` blocks of one
 * span onto dest->xremote, entered at its tail. */
static void remote_send(heap_t *dest, lz_block_t *head, lz_block_t *tail, uint32_t count, bool suspect) {
  uintptr_t meta = (uintptr_t)head | (count - 1) | (suspect ? REMOTE_SUSPECT : 0);
  block_set_next(batch_meta_slot(tail), (lz_block_t *)meta);
  lz_block_t *old = atomic_load_explicit(&dest->xremote, memory_order_relaxed);
  do {
    if (lz_unlikely(old == head || old == tail)) lz_fatal_pointer("double free", "free", old);
    block_set_next(tail, (lz_block_t *)(remote_link_to(tail, old)));
  } while (!atomic_compare_exchange_weak_explicit(&dest->xremote, &old, tail, memory_order_release,
                                                  memory_order_relaxed));
}

/* self now holds blocks of other heaps that only its tick sends: the
 * janitor is told, so that it can make a thread that stops ticking tick
 * (heap.c, "Heartbeat"). Once per change of xowed, which its tick lowers. */
static void remote_owe(heap_t *self) {
  if (lz_likely(atomic_load_explicit(&self->xowed, memory_order_relaxed))) return;
  atomic_store_explicit(&self->xowed, 1, memory_order_relaxed);
  janitor_notify();
}

lz_text_thread static lz_noinline void batch_flush(heap_t *self, unsigned i) {
  remote_batch_t *rb = &heap_rbatch(self)[i];
  if (rb->count != 0) remote_send(span_chunk(rb->span)->heap, rb->head, rb->tail, rb->count, rb->suspect);
  rb->span = NULL;
  rb->head = rb->tail = NULL;
  rb->count = 0;
  rb->suspect = false;
  self->rbatch_pending &= ~((uint64_t)1 << i);
}

/* Does word 0 of b decode to NULL or to a block boundary of its slab s?
 * So it does for every block on the owner's lists (their links stay in
 * their span). A block handed out has word 0 cleared (or zero memory), so
 * user data decodes so only by chance, (reserved + 1) in 2^64 without the
 * key: the freeing thread aborts at once, never waiting for an owner that
 * may not collect for a long time. (Reads only fields fixed while the span
 * has a live block.) */
static bool link_in_span(const span_t *s, const lz_block_t *b) {
  uintptr_t d = (uintptr_t)block_next(b), start = (uintptr_t)span_start(s);
  if (d == 0) return true;
  if (d < start || d - start >= ((uintptr_t)s->npages << LZ_PAGE_SHIFT)) return false;
  return block_index(d - start, s->inv, span_shift(s)) < s->reserved;
}

/* Links b at the head of rb, the batch in `slot` for b's span (a block
 * already at its head is a double free); a full batch goes home. */
lz_inline void batch_link(heap_t *self, remote_batch_t *rb, unsigned slot, lz_block_t *b, bool suspect) {
  if (lz_unlikely(b == rb->head)) lz_fatal_pointer("double free", "free", b);
  if (suspect) rb->suspect = true;
  if (rb->count == 0) rb->tail = b;
  block_set_next(b, rb->head);
  rb->head = b;
  self->rbatch_pending |= (uint64_t)1 << slot;
  if (++rb->count >= LZ_REMOTE_BATCH) batch_flush(self, slot);
}

/* batch_add's other case: no pending batch of this heap is s's in slot's
 * place (the first slot of s's set). Out of line, so that batch_add's
 * common case, inlined into remote_free_home, calls nothing but its
 * closing flush (a tail call) and saves no register. */
lz_text_thread static lz_noinline void batch_add_new(heap_t *self, span_t *s, lz_block_t *b, bool suspect, unsigned slot) {
  if (s->kind == SPAN_MEDIUM) {
    /* A medium span holds one block: its chain is complete at once, and
     * waiting for the tick would only keep the span (up to 1 MiB of
     * resident pages) from its owner's next allocation. None is ever
     * batched. */
    remote_send(span_chunk(s)->heap, b, b, 1, suspect);
    return;
  }
  remote_owe(self);
  /* The set's other ways: the one holding s, else a free one, else the
   * fullest goes home (it saved its owner the most misses already) and s
   * takes its place. */
  unsigned set = slot, pick = slot, free_way = LZ_REMOTE_SLOTS;
  for (unsigned w = 0; w < LZ_REMOTE_WAYS; w++) {
    remote_batch_t *x = &heap_rbatch(self)[set + w];
    if (x->span == s && x->count != 0) {
      batch_link(self, x, set + w, b, suspect);
      return;
    }
    if (x->count == 0) {
      if (free_way == LZ_REMOTE_SLOTS) free_way = set + w;
    } else if (x->count > heap_rbatch(self)[pick].count) {
      pick = set + w;
    }
  }
  if (free_way != LZ_REMOTE_SLOTS) pick = free_way;
  else batch_flush(self, pick);
  remote_batch_t *rb = &heap_rbatch(self)[pick];
  rb->span = s;
  batch_link(self, rb, pick, b, suspect);
}

/* Links b into this heap's batch for its span (b already screened and
 * marked in flight). */
lz_inline void batch_add(heap_t *self, span_t *s, lz_block_t *b, bool suspect) {
  if (LZ_STATS) self->stats.remote_frees++;
  unsigned slot = remote_slot_of(s);
  remote_batch_t *rb = &heap_rbatch(self)[slot];
  if (rb->span != s) { /* always for a medium block: none is ever batched */
    batch_add_new(self, s, b, suspect, slot);
    return;
  }
  batch_link(self, rb, slot, b, suspect);
}

static lz_noinline bool foreign_push(heap_t *self, span_t *s, lz_block_t *b);

/* May this heap keep b of span s for reuse (see "Foreign blocks" below)?
 * A block of a size LZ_FOREIGN_OK allows, of a class the heap
 * allocates (has made a slab of). Never asked for the empty heap, which
 * has no slabs_made (remote_free and remote_free_fast send its blocks
 * home first), nor at level 2 (secure.c frees every block). The first
 * form for a span known to be a slab (remote_free_fast's: a class,
 * [span.cls]). */
lz_inline bool foreign_wanted_slab(const heap_t *self, const span_t *s) {
  return LZ_HEAPS == 0 && LZ_FOREIGN_OK(s->block_size) && self->slabs_made[s->cls] != 0;
}
lz_inline bool foreign_wanted(const heap_t *self, const span_t *s) {
  return s->kind == SPAN_SLAB && foreign_wanted_slab(self, s);
}

/* A block whose first word looks like a free link (LZ_SECURE): in a chain
 * already (both words in flight) or linked within its span (on the
 * owner's lists) is a double free; otherwise only the owner can tell, so
 * the batch goes flagged. self may be the empty heap (the caller could not
 * have one): the block goes home alone. */
static lz_noinline void remote_free_screened(heap_t *self, span_t *s, lz_block_t *b) {
  bool suspect = false;
  if (LZ_SECURE && block_maybe_free(b)) {
    if (remote_in_flight(b) || (s->kind == SPAN_SLAB && link_in_span(s, b))) lz_fatal_pointer("double free", "free", b);
    suspect = true;
  }
  if (LZ_SECURE) block_set_next(b + 1, b); /* word 1: in flight */
  if (self == LZ_HEAP_EMPTY) remote_send(span_chunk(s)->heap, b, b, 1, suspect);
  else batch_add(self, s, b, suspect);
}

/* b goes home: screened, marked in flight, batched (self is a heap). */
lz_inline void remote_batch(heap_t *self, span_t *s, lz_block_t *b) {
  if (LZ_SECURE) {
    if (lz_unlikely(block_maybe_free(b))) {
      remote_free_screened(self, s, b);
      return;
    }
    block_set_next(b + 1, b); /* word 1: in flight */
  }
  batch_add(self, s, b, false);
}

lz_text_thread void remote_free(heap_t *self, span_t *s, lz_block_t *b) {
  if (lz_unlikely(self == LZ_HEAP_EMPTY)) {
    /* No heap to batch in (the caller could not have one): straight home. */
    remote_free_screened(self, s, b);
    return;
  }
  if (foreign_wanted(self, s) && foreign_push(self, s, b)) return;
  remote_batch(self, s, b);
}

void remote_flush_all(heap_t *self) {
  while (self->rbatch_pending != 0) batch_flush(self, (unsigned)__builtin_ctzll(self->rbatch_pending));
  self->rbatch_aged = 0;
}

/* The tick's (heap.c), every LZ_REMOTE_AGE_TICKS-th time: sends the
 * batches that were pending at the previous such tick (each has waited
 * about LZ_REMOTE_AGE_TICKS ticks at least, none more than twice that), so
 * batches started since grow on. */
void remote_flush_aged(heap_t *self) {
  if ((self->slow_count / HEAP_TICK_EVERY) % LZ_REMOTE_AGE_TICKS != 0) return;
  uint64_t old = self->rbatch_pending & self->rbatch_aged;
  while (old != 0) {
    unsigned i = (unsigned)__builtin_ctzll(old);
    old &= old - 1;
    batch_flush(self, i);
  }
  self->rbatch_aged = self->rbatch_pending;
}

/* A flagged chain: every block must be reached by the links from head
 * within the span, none twice, and none may already be free in the span. */
static lz_cold void chain_confirm(span_t *s, lz_block_t *head, lz_block_t *tail, uint32_t count) {
  lz_block_t *seen[LZ_REMOTE_BATCH] = {0};
  lz_block_t *b = head;
  for (uint32_t i = 0; i < count; i++) {
    for (uint32_t j = 0; j < i; j++)
      if (seen[j] == b) lz_fatal_pointer("double free", "free", b);
    if (slab_contains_free(s, b)) lz_fatal_pointer("double free", "free", b);
    seen[i] = b;
    if (i + 1 == count) break;
    lz_block_t *next = block_next(b);
    /* A link that left the span: b was handed out again and its link
     * cleared or overwritten, i.e. b was freed twice. */
    if (!slab_holds(s, next)) lz_fatal_pointer("double free", "free", b);
    b = next;
  }
  if (b != tail) lz_fatal_pointer("corrupted free list", "free", head);
}

/* An unflagged chain into a span with holes: every block of it was
 * screened by its freeing thread but a hole block (reading zero, on no
 * list: slab.c, "Holes"), so only the hole map can name a second free.
 * The links must stay in the span and reach the tail in count blocks.
 * O(count), where chain_confirm walks the span's lists for every block. */
lz_text_thread static lz_cold void chain_holes_check(span_t *s, lz_block_t *head, lz_block_t *tail, uint32_t count) {
  uint8_t *start = span_start(s);
  lz_block_t *b = head;
  for (uint32_t i = 0;; i++) {
    if (slab_block_in_hole(s, (size_t)((uint8_t *)b - start) / s->block_size))
      lz_fatal_pointer("double free", "free", b);
    if (i + 1 == count) break;
    lz_block_t *next = block_next(b);
    if (!slab_holds(s, next)) lz_fatal_pointer("double free", "free", b);
    b = next;
  }
  if (b != tail) lz_fatal_pointer("corrupted free list", "free", head);
}

lz_text_thread size_t remote_collect(heap_t *heap) {
  if (atomic_load_explicit(&heap->xremote, memory_order_relaxed) == NULL) return 0;
  lz_block_t *tail = atomic_exchange_explicit(&heap->xremote, NULL, memory_order_acquire);
  size_t n = 0;
  while (tail != NULL) {
    chunk_t *c = (chunk_t *)((uintptr_t)tail & ~LZ_CHUNK_MASK);
    if (LZ_SECURE && lz_unlikely(chunkmap_kind((uintptr_t)tail) != CHUNK_SPANS || c->heap != heap))
      lz_fatal_pointer("corrupted free list", "free", tail);
    span_t *s = chunk_span_of(c, (uintptr_t)tail);
    if (LZ_SECURE && lz_unlikely(s->kind == SPAN_NONE)) lz_fatal_pointer("double free", "free", tail);
    if (LZ_SECURE && lz_unlikely(!slab_holds(s, tail))) lz_fatal_pointer("corrupted free list", "free", tail);
    /* Both words of the tail: one line (blocks are LZ_ALIGN aligned). */
    uintptr_t meta = (uintptr_t)block_next(batch_meta_slot(tail));
    uintptr_t link = (uintptr_t)block_next(tail);
    lz_block_t *head = (lz_block_t *)(meta & ~(REMOTE_SUSPECT | (uintptr_t)(LZ_ALIGN - 1)));
    uint32_t count = (uint32_t)(meta & (LZ_ALIGN - 1)) + 1;
    if (LZ_SECURE && lz_unlikely(!slab_holds(s, head) || count > LZ_REMOTE_BATCH))
      lz_fatal_pointer("corrupted free list", "free", tail);
    if (lz_unlikely(!(link & REMOTE_LINK))) lz_fatal_pointer("double free", "free", tail);
    lz_block_t *next = (lz_block_t *)(link & ~REMOTE_LINK);
    if (((uintptr_t)next & LZ_CHUNK_MASK) == 0) next = NULL; /* a chunk base: the end */
    /* The next batch is ours, or the tail was freed again and handed out:
     * its link is user data. */
    if (LZ_SECURE && next != NULL &&
        lz_unlikely(chunkmap_kind((uintptr_t)next) != CHUNK_SPANS ||
                    ((chunk_t *)((uintptr_t)next & ~LZ_CHUNK_MASK))->heap != heap))
      lz_fatal_pointer("double free", "free", tail);
    if (s->kind == SPAN_MEDIUM) {
      if (lz_unlikely(count != 1 || head != tail)) lz_fatal_pointer("double free", "free", tail);
      medium_free(heap, s);
    } else {
      /* The head becomes local_free's, popped first: its line is on its
       * way while the walk goes on (only the tail is read here). */
      __builtin_prefetch(head, 1);
      /* Suspect chains are confirmed against the span's lists; others into
       * a span with holes against its hole map (a hole block reads zero:
       * no screen on the way could flag it). */
      if (LZ_SECURE && lz_unlikely(meta & REMOTE_SUSPECT)) chain_confirm(s, head, tail, count);
      else if (LZ_SECURE && lz_unlikely(s->flags & SPAN_HOLES)) chain_holes_check(s, head, tail, count);
      slab_free_chain(heap, s, head, tail, count);
    }
    tail = next;
    n += count;
  }
  return n;
}

/* ---------------------------------------------------------------------------
 * Foreign blocks: reuse here before sending back, where that shares no
 * cache line.
 *
 * A thread that frees blocks of other heaps' slabs often allocates blocks
 * of the same sizes soon (servers hand buffers between threads both ways,
 * as larson and the shbench family do), and the block it just freed is in
 * its cache, while on its way home it would cost the owner a transfer of
 * the line. So a freed block of another heap's slab may go to
 * heap->foreign[cls], a list of at most FOREIGN_BYTES (less above FOREIGN_BIG_MIN; 8 blocks at least),
 * and malloc hands those out again (the owner still counts them as out:
 * for its span nothing happened). Only when the list is full does a block
 * travel home through the batches above; the lists go home whole when the
 * thread exits or trims, and what malloc has not taken again within one
 * to two FOREIGN_MAX_AGE_MS (heap.c's tick; "Age" below) goes then.
 *
 * Only where reuse cannot make threads share more than a little of a
 * cache line (passive false sharing, the cache-scratch pattern: a block
 * handed out here next to blocks the owner's thread keeps writing), so
 * only blocks of the sizes LZ_FOREIGN_OK allows (internal.h: a multiple
 * of LZ_CACHE_LINE, each such block having its lines to itself as spans
 * are page aligned, or above 256 B a multiple of half a line), and only
 * of classes this thread allocates (its
 * heap has made a slab of the class, slabs_made: its queue may be empty
 * while all of its slabs are full, as a class of a few blocks a slab
 * often is; a thread that only frees, a consumer, sends every block home
 * at once). With NUMA on, a block on another node than the
 * heap's home goes home at once: reusing it would place this thread's
 * data remotely.
 *
 * Installed lists: for classes served by direct[] (<= LZ_DIRECT_MAX) a
 * block joining heap->foreign[cls] points direct[] at the list (or the
 * slow path does, finding it not empty), so the fast path pops foreign
 * blocks like a span's (uncounted: the list was charged to in_use at
 * installation), the block freed last first. A list's length is exact
 * all the same: each listed block holds its depth ("Depth" below), so
 * the length is the head's, and a push compares its block's with the
 * bound, `reserved`. When the list
 * runs dry, the next malloc of the class takes a block of the class's
 * span, and uninstalls the list only once no block was pushed during
 * several such mallocs in a row (heap.c, refill_foreign_dry; `capacity`
 * counts them, set to 0 by every push, and 0 while not installed): a thread handed blocks steadily
 * keeps its list installed, instead of paying an uninstall and an install
 * every few allocations. A larger class's list is popped by malloc's
 * refill once the class's span has no free list (heap.c, refill_foreign:
 * no lock, no slow-path entry), the block freed last first.
 *
 * Kept lists: a larger class's list (above LZ_DIRECT_MAX, never
 * installed) is kept (FOREIGN_KEPT) from the push that finds it empty,
 * which the slow side makes (remote_free_slab, foreign_push: remote_owe
 * first), to the pop or flush that empties it [foreign.kept]. While
 * kept it is charged to in_use as an installed list is (its pushes and
 * pops uncounted) and fkeep names it, so remote_free_fast pushes onto it
 * as onto an installed list. Before, every such free went the slow side
 * (bench rptest, whose blocks reach 8 KiB: 144k of its 534k remote frees,
 * 141 instructions each in heap_free_page, free_page_slab and
 * foreign_keep). The heap's xowed (heap.c, "Heartbeat") stays exact: a
 * kept list holds a block, so the tick does not lower xowed while it is
 * kept, and a list found empty again is kept again only by the slow
 * side, which raises it.
 *
 * The common remote free skips the general slow path: heap_free_page
 * tries remote_free_fast first, which takes only a block of another
 * heap's slab, at a block boundary, whose words pass the screens untouched:
 * for a class the heap allocates (slabs_made), one look at a table
 * (heap_t.fkeep, [heap.fkeep]) says whether the class's list is installed
 * here, and the block joins it; a class this heap does not keep
 * (foreign_wanted_slab: one it never allocated, the first look tells, or
 * blocks that share lines) goes home (remote_free_home: batched); the
 * other cases (a list not installed, a heap without a fast_id, NUMA) are
 * remote_free_slab's.
 * Anything else goes the general way (span_resolve, remote_free), and so
 * does every HEAP_TICK_EVERY-th remote free, which ticks the heap
 * (remote_free_fast counts the others in slow_count, as the tick does,
 * but cannot run the tick: heap.c's). bench larson-sized, one thread
 * (whose deletes are nearly all of main's blocks, kept and reused here,
 * so remote frees): 312.6 -> 295.5 instructions a replacement in all
 * (callgrind; tcmalloc 257.6), with the deletes' own changes (cxx.c);
 * 292.2 with slabs_made looked at before fkeep and own blocks turned away
 * from the list freed in foreign_free_own. fkeep looked at alone (it
 * implies slabs_made, [heap.fkeep]) saved 4 instructions of such a free
 * but cost 6 more to each free a consumer sends home (bench xmalloc: two
 * loads, fkeep and its entry, before the one of slabs_made that decides).
 *
 * Order: any. A block joins the front of the list (what malloc pops
 * next: the block this thread touched last), whatever chunk it lies in.
 * Every link leads to NULL or to a block in one of our chunks, so it
 * decodes below 2^LZ_USER_ADDR_BITS, and the owner's free fast path
 * leaves every block whose first word decodes so to the slow path
 * (alloc.h): it never lists a foreign-listed block (block_maybe_free
 * then names the link for the slow path's screens).
 *
 * Double frees (LZ_SECURE >= 1): a foreign-listed block has word 1 marked
 * in flight (a link to itself, as in the batches); by Order above a
 * second free of it by its owner reaches the slow path, which finds the
 * mark (remote_in_flight). A block freed with that
 * mark whose word 0 decodes to NULL or into one of our chunks is looked up
 * in the list (a block handed out again has word 0 cleared, or user data
 * that decodes so with probability ~2^-40, so the walk runs only for real
 * double frees); found there: "double free".
 * ------------------------------------------------------------------------- */
/* Per class and heap: bounds what a thread keeps, FOREIGN_BYTES for
 * classes up to FOREIGN_BIG_MIN bytes, a quarter of it above (8 blocks at
 * least). bench larson (16-1024 B; main's 20000 blocks replaced by two
 * workers while main waits): with 32 KiB the workers' lists overflowed
 * and sent main's blocks home, where nothing reused them (peak RSS 24.1
 * MiB; 20.9 with 128 KiB, tcmalloc 21.2). bench sh8bench (8-4096 B
 * passed around a ring of threads) keeps more with 128 KiB for every
 * class (peak RSS 4.7 MiB at 32 KiB, 5.7-5.9 at 128, 5.3 with a quarter
 * of it above 1 KiB, where larson is unchanged at 19.7-19.9). Since idle
 * owners' blocks have room beyond the bound ("Idle owners" below), larson
 * no longer needs it (2026-12-07, medians of 5, peak RSS in MB at 128 /
 * 64 / 32 KiB): larson 19.2 / 18.4 / 18.2, larson-sized 20.4 / 19.9
 * / 19.4, sh8bench 5.5 / 5.5 / 5.1, rptest 38.3 / 35.7 / 35.0, mstress
 * 23.7 / 23.5 / 23.3, larson-chain 11.7 / 11.7 / 11.9; but more blocks
 * go home and are carved anew: instructions (callgrind, one thread, scale
 * 0.3) larson_chain 891.3 / 899.1 / 900.8 M, larson_sized 435.9 / 437.5 /
 * 439.3, mstress 521.9 / 520.0 / 520.8, sh8bench 591.7 / 591.8 / 591.6.
 * Kept at 128 KiB: the larson family is where we are slowest. Measured
 * again (2026-12-07 23:30; interleaved peak RSS in KiB, medians of 7, 128
 * / 32 KiB): larson 19,156 / 18,000, larson-sized 20,652 / 19,476,
 * sh8bench 5,660 / 5,076, larson-chain 12,060 / 12,116, thread-churn
 * 3,028 / 3,028, sh6bench 3,848 / 3,992 (11 runs); rptest, whose peak
 * swings with how far one thread's hand-offs run ahead of the other's
 * drain, 22.8-67.9 / 26.8-69.8 MiB over 18 runs, medians 37.6 / 45.2;
 * callgrind (2 threads) larson_chain 608.9 / 613.3 M, larson_sized
 * 161.1 / 162.1 M, thread_churn 350.6 / 347.2 M, the others within
 * 0.2 %. The same trade as before, no clearer: left. */
#define FOREIGN_BYTES ((size_t)128 * KiB)
#define FOREIGN_BIG_MIN 1024

/* Idle owners: a block whose owner has not ticked (heap.c's purge tick,
 * xtick_ms) for FOREIGN_IDLE_MS may join a list at its bound, up to
 * FOREIGN_IDLE_MULT times the bound (and the aged flush keeps as many).
 * Such an owner allocates nothing (a thread that allocates enters slow
 * paths, and ticks, far more often: every HEAP_TICK_EVERY-th), so a block
 * sent home would stay unused there, while this thread reuses it: bench
 * larson, whose main thread makes 20000 blocks and waits in pthread_join
 * while two workers replace them (the class bound sent main's blocks of
 * the larger classes home, and the workers carved new memory for them).
 * So may a block whose owner has not ticked for FOREIGN_UNCOLLECTED_MS
 * while blocks sent to it wait on its xremote list (collected at every
 * allocation slow path: it has not allocated since they came), or whose
 * owner is no thread's (an orphan, adopted whole by the next thread
 * only): bench rptest, whose main thread makes a working set and waits
 * while rounds of two threads replace it. Its blocks are freed within 3
 * ms of the first round's start, and again each time the rounds' threads,
 * which took them for their own allocations, free them; sent home they
 * stayed there unused to the end (8.9 of main's 10 MiB at the end, as
 * were most of them at the peak). Such blocks of a live thread's heap
 * also stay in a heap whose thread exits (foreign_flush's
 * FOREIGN_FLUSH_EXIT), for its next thread, instead of going home then.
 * Threads that both allocate (bench sh8bench's ring) keep no more than the
 * bound: each collects what the others sent it at its next slow path.
 * Only the slow side reads the owner's words: the fast path
 * (remote_free_fast) goes to foreign_keep_full at the bound, as before.
 * The age flush still sends home what waited untaken ("Age" below), so
 * the delay before an owner sees its blocks is unchanged.
 * The price: an idle owner's block kept and handed out again is still
 * that owner's, so each of its frees takes the remote path again, for as
 * long as it lives. bench larson-chain (larson as mimalloc-bench runs it:
 * the main thread makes every block, then waits while chains of threads
 * replace them): 63 % of the frees, and 0.63 of tcmalloc's speed. Sending
 * idle owners' blocks home from remote_free_fast instead (with a thread
 * taking over its predecessor's orphan) ran it at tcmalloc's speed, but
 * left the blocks unused at home where live threads replace the main
 * thread's: bench larson 18.7 -> 31.2 MiB peak RSS, larson-sized 21.1 ->
 * 32.2, 8-13 % slower (2026-12-07; README, "Benchmarks"). Making the
 * idle main thread's heap an orphan instead (heap_abandon on its behalf,
 * tried in a copy where nothing proved the thread blocked) changed
 * nothing: an orphan is an idle owner too, so its blocks go on
 * circulating, and a thread can own one heap only, while larson's array
 * holds blocks of main's heap and of every predecessor's: larson_chain 1
 * 0.1, 302.7 -> 314.0 M instructions (callgrind), 2 chains 2.5 MB more
 * peak RSS. Whose blocks circulate (counted in a copy, bench larson-chain
 * at scale 1): of 20.0 M frees with one chain, 12.3 M are of the main
 * thread's heap, 2.0 M of orphans, 0.04 M of other live heaps; with two
 * chains 26.8 M, 1.8 M and 0.5 M of 40.0 M. An adopted orphan merged into
 * its adopter's heap would end a tenth of it at most; the main thread's
 * share ends only if a live idle owner's memory changes hands (its fast
 * paths take no lock: a proof that it is parked, and a handshake, first)
 * or goes home unused (the RSS above: peak 11.9 MB against tcmalloc's
 * 15.2, mimalloc's 25.7 and glibc's 17.9 with two chains; 2026-12-07).
 * What the time goes to (2026-12-08, perf, two chains): 62 % of the
 * samples in the benchmark's own reads of the blocks it frees (mimalloc
 * 55 %, 5,019 samples against 2,919), the allocator's code about equal
 * (1.3 k samples against 1.1 k): the blocks' spread, not our paths. With
 * one chain, pages holding its blocks 1,100-1,211 (mimalloc 855-873;
 * no foreign lists at all: 888-919, and peak RSS 13.1 MB against 7.4-7.9):
 * about three quarters of the chain's blocks stay on the main thread's
 * slabs, where the warm-up put them, the rest on the chain's heaps' own,
 * carved whenever a class's list ran dry, so both sets are partly used.
 * Taking a block from the list of a class at most a quarter bigger
 * before carving (refill_foreign_dry, at most FOREIGN_DRY_LOOKS times a
 * dry spell): 1,003-1,034 pages, peak RSS 7.0-7.1 MB, 6 % more
 * instructions (948 against 894 M, callgrind, one chain, scale 0.3),
 * no change in time: left. */
lz_inline bool foreign_owner_idle(const heap_t *self, const span_t *s) {
  const heap_t *owner = span_chunk(s)->heap;
  uint32_t ticked = atomic_load_explicit(&owner->xtick_ms, memory_order_relaxed);
  /* Signed: this heap's own clock may be older (not ticked yet since it
   * was made or adopted), which says nothing. */
  int32_t since = (int32_t)((uint32_t)self->slow_clock - ticked);
  if (since > FOREIGN_IDLE_MS) return true;
  if (since >= FOREIGN_UNCOLLECTED_MS && atomic_load_explicit(&owner->xremote, memory_order_relaxed) != NULL)
    return true;
  return atomic_load_explicit(&owner->xstate, memory_order_relaxed) != HEAP_ACTIVE;
}

/* Room in f beyond its bound for b of span s, which would be at depth d
 * there: its owner idle. */
lz_inline bool foreign_idle_room(const heap_t *self, const span_t *s, const span_t *f, uint64_t d) {
  return d <= foreign_idle_cap(f) && foreign_owner_idle(self, s);
}

/* Age: word 2 of a listed block (blocks here are >= LZ_CACHE_LINE bytes,
 * and the list owns it) holds heap->foreign_flush_at as it was when the
 * block was pushed, so the stamps down a list never rise (each push goes
 * on the front, and foreign_flush_at only grows). An aged flush
 * (foreign_flush) sends home what was pushed before the last flush, the
 * list's tail below the blocks of the current stamp. */
lz_inline void foreign_stamp(const heap_t *self, lz_block_t *b) { b[2].enc_next = (uintptr_t)self->foreign_flush_at; }

/* Depth: word 3 of a listed block holds the number of blocks from it to
 * the list's end, itself included [foreign.depth], so the length of a
 * list is its head's depth: exact, though malloc's fast path pops an
 * installed list without a count (a pop leaves the next block, whose
 * depth is one less, at the head), and read with one load of a line this
 * thread wrote when it pushed that block. A push writes its block's depth
 * (foreign_next_depth); what cuts a list's tail (foreign_flush) numbers
 * the blocks it keeps again (foreign_renumber). Before, the owner of the
 * list counted pushes since it was last found empty, a bound on the
 * length from above that a list pushed and popped in turn reached while
 * short, and walked the list to count it again then (bench larson: 1.4 %
 * of its time, a cache miss a link, and pushes refused while the list
 * was at half its bound or more, their blocks sent home). */
typedef uint32_t lz_depth_word __attribute__((may_alias));
lz_inline uint64_t foreign_depth(const lz_block_t *b) { return ((const lz_depth_word *)&b[3])[0]; }
/* A 4-byte store (depths are below 2^16: foreign_idle_cap): GCC pairs
 * two 8-byte stores to adjacent words, the stamp's and this, into a
 * vector store that takes four instructions. */
lz_inline void foreign_set_depth(lz_block_t *b, uint64_t d) { ((lz_depth_word *)&b[3])[0] = (uint32_t)d; }

/* The depth a block pushed onto f now takes: 1 on an empty list, else
 * the head's depth plus one; past every bound for a head that malloc's
 * fast path would not follow either (list_head_ok: a link overwritten in
 * the block the last pop took, which the next malloc of the class
 * reports), which is not read. */
lz_inline uint64_t foreign_next_depth(const span_t *f) {
  const lz_block_t *h = f->free;
  if (lz_likely(list_head_ok(h))) return foreign_depth(h) + 1; /* false for NULL too */
  return h == NULL ? 1 : UINT64_MAX;
}

/* Writes the depths of f's first n blocks, the whole list: n down to 1. */
static void foreign_renumber(span_t *f, uint32_t n) {
  for (lz_block_t *b = f->free; b != NULL; b = block_next(b)) foreign_set_depth(b, n--);
}

/* Blocks in f's list (its head's depth; a head malloc would not follow
 * counts none). */
lz_inline uint32_t foreign_len(const span_t *f) {
  uint64_t d = foreign_next_depth(f) - 1;
  return d < UINT32_MAX ? (uint32_t)d : 0;
}

static bool foreign_listed(const span_t *f, const lz_block_t *b) {
  uint32_t limit = 2 * foreign_idle_cap(f) + 1;
  for (const lz_block_t *x = f->free; x != NULL && limit > 0; x = block_next(x), limit--)
    if (x == b) return true;
  return false;
}

/* Maps the heap's foreign lists on first use. */
lz_text_thread static lz_noinline bool foreign_init(heap_t *heap) {
  span_t *f = os_map(sizeof(span_t) * LZ_CLASSES + sizeof(span_t *) * LZ_CLASSES);
  if (f == NULL) return false;
  for (unsigned c = 1; c < LZ_CLASSES; c++) {
    size_t cap = (lz_class_size[c] <= FOREIGN_BIG_MIN ? FOREIGN_BYTES : FOREIGN_BYTES / 4) / lz_class_size[c];
    f[c].block_size = lz_class_size[c];
    f[c].cls = (uint8_t)c;
    f[c].reserved = (uint16_t)(cap < 8 ? 8 : cap);
    size_t idle = FOREIGN_IDLE_BYTES / lz_class_size[c];
    if (idle < FOREIGN_IDLE_MULT * (size_t)f[c].reserved) idle = FOREIGN_IDLE_MULT * (size_t)f[c].reserved;
    f[c].npages = (uint16_t)(idle < UINT16_MAX ? idle : UINT16_MAX);
  }
  heap->foreign = f;
  heap->fkeep = (span_t **)(f + LZ_CLASSES); /* all NULL: none installed */
  slab_startup_end(heap); /* foreign lists are per class: no start-up classes now */
  heap->foreign_flush_at = os_now_ms() + FOREIGN_MAX_AGE_MS;
  return true;
}

/* Lets malloc's fast path pop f, this heap's list of its class, and
 * diverts the owner's frees of the class's spans but the first to it
 * (xfast_cap 0: "Own blocks" below), the first FOREIGN_DIVERT_SPANS of
 * them (a span linked later is diverted by slab.c's slab_fast_sync). Only
 * 0 is written, which nothing else contradicts without the heap lock. */
#define FOREIGN_DIVERT_SPANS 32
/* heap->fkeep[f's class] from f's state (internal.h, [heap.fkeep]). */
lz_inline void foreign_fast_sync(heap_t *heap, span_t *f) {
  bool fast = (f->flags & FOREIGN_CHARGED) && LZ_FOREIGN_OK(f->block_size) &&
              heap->fast_id != CHUNK_HEAP_NONE && !lz_numa_on;
  heap->fkeep[f->cls] = fast ? f : NULL;
}

lz_text_thread static void foreign_install(heap_t *heap, span_t *f) {
  if (LZ_STATS) heap->stats.in_use += (int64_t)foreign_len(f) * f->block_size; /* charged: pops uncounted */
  f->flags |= FOREIGN_INSTALLED;
  foreign_fast_sync(heap, f);
  heap_direct_update(heap, f->cls);
  span_t *s = heap->queues[f->cls].first;
  for (unsigned n = 0; s != NULL && (s = s->next) != NULL && n < FOREIGN_DIVERT_SPANS; n++)
    atomic_store_explicit(&s->xfast_cap, 0, memory_order_relaxed);
}

/* Classes whose list malloc's fast path pops (direct[]'s). */
lz_inline bool foreign_installable(unsigned cls) {
  return lz_class_size[cls] <= LZ_DIRECT_MAX && opt_get(OPT_SECURE) < 2;
}

void foreign_uninstall(heap_t *heap, span_t *f) {
  f->flags &= (uint8_t)~FOREIGN_INSTALLED;
  f->capacity = 0;
  foreign_fast_sync(heap, f);
  heap_direct_update(heap, f->cls);
}

/* Puts b (screened) at the front of f, this heap's list of its class, at
 * depth d (foreign_next_depth): marked in flight, stamped, linked. */
lz_inline void foreign_push_front(const heap_t *self, span_t *f, lz_block_t *b, uint64_t d) {
  if (LZ_SECURE) block_set_next(b + 1, b);
  foreign_stamp(self, b);
  foreign_set_depth(b, d);
  block_set_next(b, f->free);
  f->free = b;
  f->capacity = 0; /* a block came in (refill_foreign_dry) */
}

/* A larger class's list, not kept, made kept ("Kept lists" above):
 * charged as foreign_install charges. */
lz_text_thread static void foreign_keep_start(heap_t *heap, span_t *f) {
  if (LZ_STATS) heap->stats.in_use += (int64_t)foreign_len(f) * f->block_size;
  f->flags |= FOREIGN_KEPT;
  foreign_fast_sync(heap, f);
}

/* f, kept, found empty: no longer kept (its charge is nothing). */
lz_inline void foreign_keep_end(heap_t *heap, span_t *f) {
  f->flags &= (uint8_t)~FOREIGN_KEPT;
  foreign_fast_sync(heap, f);
}

/* foreign_push_front, and f installed if it was not, so the next malloc
 * of the class takes b (kept, for a class above LZ_DIRECT_MAX). */
lz_inline void foreign_link(heap_t *self, span_t *f, lz_block_t *b, uint64_t d) {
  foreign_push_front(self, f, b, d);
  if (!(f->flags & FOREIGN_CHARGED)) {
    if (LZ_STATS) self->stats.in_use -= f->block_size; /* a charged list counts as in use */
    if (foreign_installable(f->cls)) foreign_install(self, f);
    else if (opt_get(OPT_SECURE) < 2) foreign_keep_start(self, f);
  }
}

lz_text_thread static lz_noinline bool foreign_push(heap_t *self, span_t *s, lz_block_t *b) {
  /* With NUMA, only blocks of our home node are worth keeping (numa.c). */
  if (lz_unlikely(lz_numa_on) && span_chunk(s)->node != self->numa_home) return false;
  if (lz_unlikely(self->foreign == NULL) && !foreign_init(self)) return false;
  span_t *f = &self->foreign[s->cls];
  uint64_t d = foreign_next_depth(f);
  if (d > f->reserved && !foreign_idle_room(self, s, f, d)) return false;
  if (LZ_SECURE) {
    if (block_next(b + 1) == b) {
      lz_block_t *n = block_next(b);
      if ((n == NULL || chunkmap_kind((uintptr_t)n) == CHUNK_SPANS) && foreign_listed(f, b))
        lz_fatal_pointer("double free", "free", b);
    }
    if (block_maybe_free(b)) return false; /* the batches screen it */
  }
  remote_owe(self);
  foreign_link(self, f, b, d);
  return true;
}

/* remote_free_slab's: b joins f, a list that is not installed (the
 * first block since the list was last uninstalled installs it), at
 * depth d. */
lz_text_thread static lz_noinline void foreign_keep(heap_t *self, span_t *f, lz_block_t *b, uint64_t d) {
  remote_owe(self);
  foreign_link(self, f, b, d);
}

/* remote_free_fast's: b (screened) for f, an installed list at its bound
 * (b would be at depth d): kept if its owner is idle (foreign_idle_room),
 * else batched. */
lz_text_thread static lz_noinline void foreign_keep_full(heap_t *self, span_t *s, span_t *f, lz_block_t *b, uint64_t d) {
  if (foreign_idle_room(self, s, f, d)) {
    foreign_link(self, f, b, d);
  } else {
    if (LZ_SECURE) block_set_next(b + 1, b); /* word 1: in flight */
    batch_add(self, s, b, false);
  }
}

/* The screens of a block b of span s, a slab, that another heap frees
 * without the general path: a block boundary below the carved limit (s is
 * the descriptor of b's page, heap_free_page's, so b lies in the slab's
 * pages, where its index alone says so: sizeclass.h, span_slab_index),
 * and a first word that is no link (a block in flight or listed has one:
 * the general path's screens). Every field read in s is in the
 * descriptor's read-mostly half (internal.h, "Descriptor pairs"), not on
 * the line the owner's frees keep writing. */
lz_inline bool remote_screen(const span_t *s, const lz_block_t *b) {
  if (span_slab_index(s, (uintptr_t)b) >= __atomic_load_n(&s->capacity, __ATOMIC_RELAXED)) return false;
  return !LZ_SECURE || !word_maybe_link(b);
}

/* remote_free_fast's every case but a class whose list fkeep names: a
 * list not installed, a block that goes home, a heap without a fast_id
 * (which may own p: its chunks' map byte is not its own), level 2, NUMA.
 * A tick is not due (remote_free_fast looked). False: the general path
 * must free p (heap.c). */
lz_text_thread bool remote_free_slab(heap_t *self, void *p, span_t *s) {
  chunk_t *c = (chunk_t *)((uintptr_t)p & ~LZ_CHUNK_MASK);
  lz_block_t *b = (lz_block_t *)p;
  /* Free's fast path sent p here for a chunk map byte other than self's
   * fast_id, and a heap with an id has it on every chunk of its own
   * (internal.h, [chunk.heap]): only a heap without one (fast_id
   * CHUNK_HEAP_NONE) reads the chunk's header for its owner, a line the
   * others' frees leave alone (bench larson: 1 remote free in 5 missed it
   * in L1 under callgrind's cache model). Screened as remote_free_fast
   * screens. */
  if ((self->fast_id == CHUNK_HEAP_NONE && c->heap == self) || lz_secure2 || !remote_screen(s, b) ||
      (foreign_wanted_slab(self, s) && (self->foreign == NULL || lz_numa_on))) /* foreign_push: first list, node */
    return false;
  self->slow_count++;
  if (foreign_wanted_slab(self, s)) {
    span_t *f = &self->foreign[s->cls];
    uint64_t d = foreign_next_depth(f);
    if (f->flags & FOREIGN_INSTALLED) {
      /* Installed, though fkeep does not name it: a heap without a
       * fast_id (not p's owner, tested above). */
      if (d <= f->reserved) foreign_link(self, f, b, d);
      else foreign_keep_full(self, s, f, b, d);
      return true;
    } else if (d <= f->reserved || foreign_idle_room(self, s, f, d)) {
      foreign_keep(self, f, b, d);
      return true;
    }
  }
  if (LZ_SECURE) block_set_next(b + 1, b); /* word 1: in flight */
  batch_add(self, s, b, false);
  return true;
}

/* REMOTE_HOME's (internal.h): out of line, which keeps the hot code's
 * window (cmake/layout.ld) for the keeping path. */
lz_text_thread lz_noinline void remote_free_home(heap_t *self, span_t *s, void *p) {
  lz_block_t *b = (lz_block_t *)p;
  if (LZ_SECURE) block_set_next(b + 1, b); /* word 1: in flight */
  batch_add(self, s, b, false);
}

lz_text_hot int remote_free_fast(heap_t *self, void *p, span_t *s) {
  lz_assert(s->kind == SPAN_SLAB && !span_packed(s));
  /* The empty heap (LZ_HEAP_EMPTY) has no fields beyond direct[], the
   * fast path's and queues[]: its slow_count says its tick is due, so the
   * general path takes this entry before fkeep is read. */
  uint64_t count = self->slow_count + 1;
  if ((count & (HEAP_TICK_EVERY - 1)) == 0) return REMOTE_GENERAL;
  /* The common cases. A class the heap allocates (slabs_made) whose list
   * fkeep names ([heap.fkeep]: installed here, so the class is one the
   * heap keeps, foreign_wanted_slab, and self has a fast_id, which p's
   * chunk map byte is not, so p is another heap's; level 1 at most, NUMA
   * off): the block joins that list, decided by these two looks (the
   * block size is not read: larson-sized's every free). A class the heap
   * does not keep (foreign_wanted_slab false: a class it never allocated,
   * a consumer's, decided by the first look alone, or blocks that share
   * cache lines) goes home, in remote_free_home, once the heap has an id
   * (it is not p's owner) and the screens pass. The rest is
   * remote_free_slab's. */
  lz_block_t *b = (lz_block_t *)p;
  span_t *f = self->slabs_made[s->cls] != 0 ? self->fkeep[s->cls] : NULL;
  if (f == NULL) {
    if (foreign_wanted_slab(self, s) || self->fast_id == CHUNK_HEAP_NONE || lz_secure2) return REMOTE_SLAB;
    if (!remote_screen(s, b)) return REMOTE_GENERAL;
    self->slow_count = count;
    return REMOTE_HOME;
  }
  if (!remote_screen(s, b)) return REMOTE_GENERAL;
  self->slow_count = count;
  uint64_t d = foreign_next_depth(f);
  if (lz_likely(d <= f->reserved)) {
    foreign_push_front(self, f, b, d); /* installed: nothing to charge */
  } else {
    foreign_keep_full(self, s, f, b, d); /* a tail call: no register saved here */
  }
  return REMOTE_DONE;
}

/* Another heap's medium block p, the start of its span s (heap.c's
 * free_page_other found it so): screened as remote_free_fast screens a
 * slab block and sent home at once (batch_add: a chain of one). False
 * for what the general path must see: no heap of the caller's own, level
 * 2, a tick due, a first word that may be a link. */
bool remote_free_medium(heap_t *self, void *p, span_t *s) {
  lz_assert(s->kind == SPAN_MEDIUM && p == span_start(s));
  if (self == LZ_HEAP_EMPTY || lz_secure2 || ((self->slow_count + 1) & (HEAP_TICK_EVERY - 1)) == 0) return false;
  lz_block_t *b = (lz_block_t *)p;
  if (LZ_SECURE && word_maybe_link(b)) return false;
  self->slow_count++;
  if (LZ_SECURE) block_set_next(b + 1, b); /* word 1: in flight */
  batch_add(self, s, b, false);
  return true;
}

/* Own blocks: heap_free_own's, for b, a block of s, a slab span of the
 * caller's heap that is not its queue's first (to_local 1): b joins the
 * class's installed list, as a foreign block would, and malloc hands it
 * out again next, still in the cache, wherever its span lies in the
 * queue (left on s's local_free it would wait until s came to the front
 * again, long gone from the cache: bench larson, 2 threads, 16-1024 B:
 * 17-19 % of the 513-1024 B allocations took a block freed over 1024 of
 * the thread's frees before, tcmalloc 4-6 %). s's count keeps b as out,
 * so s cannot be retired while b waits; the list's bound and its flush
 * (FOREIGN_MAX_AGE_MS, trim, thread exit: foreign_flush frees b into s)
 * bound that. Own blocks take at most half the bound (a list shorter
 * than reserved / 2), the rest
 * is kept for foreign blocks: an own block turned away waits in its
 * span, a foreign one goes home, where an owner that no longer allocates
 * the class (larson's main thread, which made the first 20000 blocks)
 * keeps it unused while this thread carves new memory (with the whole
 * bound for own blocks, larson's peak RSS grew from 23.8 to 28.6 MiB; with
 * half, 22.9). Screened as remote_free_fast screens a
 * block (a block boundary below the carved limit, a first word that is
 * no link) and marked in flight (word 1), so a second free of b finds
 * the mark on the general path (heap_free_span: remote_in_flight).
 * foreign_free_own takes b onto the list (inlined into heap.c at link
 * time: a leaf, no register saved); false for the rest, which go to
 * foreign_free_own_slow: an own block turned away goes back into s there
 * (`as` naming the function in its reports), and false from it sends b
 * the general way. A
 * span diverted while the list was installed (xfast_cap 0) whose list is
 * not installed any more takes fast frees again from here on. */
lz_text_thread lz_noinline bool foreign_free_own_slow(heap_t *heap, span_t *s, lz_block_t *b, const char *as) {
  span_t *f = &heap->foreign[s->cls];
  if (s->flags & SPAN_HOLES) {
    /* the general path's */
  } else if (!(f->flags & FOREIGN_INSTALLED)) {
    if (!(s->flags & SPAN_FULL) && atomic_load_explicit(&s->xfast_cap, memory_order_relaxed) == 0) {
      heap_enter(heap); /* a hole puncher sets SPAN_HOLES under the lock */
      slab_fast_resync(heap, s);
      heap_leave(heap);
    }
  } else if (remote_screen(s, b)) {
    /* The rest of the list is for foreign blocks: b goes back into s,
     * screened already (a block boundary below the carved limit, a first
     * word no list link has, so on none of s's lists), as the general
     * path would free it but without its second look (bench larson-sized:
     * one such free in five of these, 180 instructions each that way).
     * Holes are punched under the lock: looked for again under it. */
    heap_enter(heap);
    bool holes = (s->flags & SPAN_HOLES) != 0;
    if (!holes) {
      lz_free_as = as;
      slab_free_chain(heap, s, b, b, 1);
      lz_free_as = NULL;
    }
    heap_leave(heap);
    return !holes;
  }
  return false;
}

lz_text_thread bool foreign_free_own(heap_t *heap, span_t *s, lz_block_t *b) {
  lz_assert(span_chunk(s)->heap == heap && s->kind == SPAN_SLAB && s->to_local == 1 && heap->foreign != NULL);
  span_t *f = &heap->foreign[s->cls];
  if (lz_likely(!(s->flags & SPAN_HOLES) && (f->flags & FOREIGN_INSTALLED) && remote_screen(s, b))) {
    /* Own blocks take at most half the bound. */
    uint64_t d = foreign_next_depth(f);
    if (lz_likely(d <= f->reserved / 2)) {
      foreign_push_front(heap, f, b, d);
      return true;
    }
  }
  return false;
}

void *foreign_alloc(heap_t *heap, unsigned cls) {
  if (heap->foreign == NULL) return NULL;
  span_t *f = &heap->foreign[cls];
  if (f->flags & FOREIGN_INSTALLED) {
    if (f->free != NULL) {
      /* malloc's fast path pops the installed list; it comes here with a
       * head it may not follow (alloc.h) */
      if (!list_head_ok(f->free)) lz_fatal_pointer("corrupted free list", "malloc", f->free);
    }
    /* Empty: it stays installed; heap_malloc_refill uninstalls it once no
     * block came in between two of its looks (refill_foreign_dry). */
    return NULL;
  }
  if (f->free == NULL) return NULL;
  if (!foreign_installable(cls)) return foreign_take(heap, f);
  foreign_install(heap, f); /* let the fast path pop the rest */
  return span_pop(f);
}

/* A block of f, this heap's list of a class that is never installed
 * (above LZ_DIRECT_MAX), not empty: its head screened as malloc's fast
 * path screens an installed list's (list_head_ok: a bad link left by the
 * last pop), charged to in_use. */
void *foreign_take(heap_t *heap, span_t *f) {
  lz_assert(f->free != NULL && !(f->flags & FOREIGN_INSTALLED));
  if (LZ_SECURE && lz_unlikely(!list_head_ok(f->free))) lz_fatal_pointer("corrupted free list", "malloc", f->free);
  if (!(f->flags & FOREIGN_KEPT)) {
    if (LZ_STATS) heap->stats.in_use += f->block_size;
    return span_pop(f);
  }
  void *p = span_pop(f); /* charged already */
  if (f->free == NULL) foreign_keep_end(heap, f);
  return p;
}

/* FOREIGN_FLUSH_EXIT's split of f's list: the blocks of idle owners
 * ("Idle owners" above) that are some thread's stay on it in their order
 * (so the stamps down the list still never rise), numbered again;
 * returns the others (own ones included), linked in their order: all of
 * the list, f->free, if none stays. An orphan's blocks go home: the next
 * thread to start adopts it and reuses them there, where they may empty
 * their slabs (bench mstress, rounds of threads that free each other's
 * blocks as they end: kept, they pinned slabs, peak RSS 23.3 -> 24.7
 * MiB). */
static lz_block_t *foreign_split_idle(heap_t *heap, span_t *f) {
  lz_block_t *keep = NULL, *keep_last = NULL, *send = NULL, *send_last = NULL;
  uint32_t n = 0;
  for (lz_block_t *b = f->free; b != NULL;) {
    lz_block_t *next = block_next(b);
    chunk_t *c = (chunk_t *)((uintptr_t)b & ~LZ_CHUNK_MASK);
    if (c->heap != heap && atomic_load_explicit(&c->heap->xstate, memory_order_relaxed) == HEAP_ACTIVE &&
        foreign_owner_idle(heap, chunk_span_of(c, (uintptr_t)b))) {
      if (keep_last != NULL) block_set_next(keep_last, b);
      else keep = b;
      keep_last = b;
      n++;
    } else {
      if (send_last != NULL) block_set_next(send_last, b);
      else send = b;
      send_last = b;
    }
    b = next;
  }
  if (send_last != NULL) block_set_next(send_last, NULL);
  if (keep == NULL) return f->free;
  block_set_next(keep_last, NULL);
  f->free = keep;
  foreign_renumber(f, n);
  return send;
}

/* Sends foreign blocks home (own ones back into their spans): every one
 * (FOREIGN_FLUSH_ALL: trim, an orphan collected whole), every one but
 * those of idle owners (FOREIGN_FLUSH_EXIT: thread exit; see "Idle
 * owners"), or (FOREIGN_FLUSH_AGED: heap.c's tick, every
 * FOREIGN_MAX_AGE_MS) those pushed before the previous aged flush (see
 * "Age" above), so a block that malloc does not take again waits one to
 * two periods, while the blocks a thread keeps reusing stay (its list's
 * front): in bench larson, main's first blocks freed by the workers came
 * back to them, instead of going home to a heap whose thread waits in
 * pthread_join, where they were lost until the end. A list that keeps
 * blocks keeps its state (its blocks numbered again: "Depth"). */
lz_text_thread void foreign_flush(heap_t *heap, int how) {
  if (heap->foreign == NULL) return;
  for (unsigned cls = 1; cls < LZ_CLASSES; cls++) {
    span_t *f = &heap->foreign[cls];
    bool installed = (f->flags & FOREIGN_INSTALLED) != 0;
    bool charged = (f->flags & FOREIGN_CHARGED) != 0; /* installed or kept */
    lz_block_t *b = f->free;
    if (b == NULL && !installed) continue;
    if (how == FOREIGN_FLUSH_EXIT && b != NULL) {
      b = foreign_split_idle(heap, f);
      if (b != f->free && charged) {
        /* Some stay, all foreign now: as an uninstalled list (the
         * statistics of a heap with no thread exact again: foreign_link),
         * which the next thread's malloc installs (foreign_alloc), or
         * takes from (foreign_take: a kept list is not kept now). */
        uint32_t kept = foreign_len(f);
        if (installed) foreign_uninstall(heap, f);
        else foreign_keep_end(heap, f);
        if (LZ_STATS) heap->stats.in_use -= (int64_t)kept * f->block_size;
      }
    } else if (how == FOREIGN_FLUSH_AGED && b != NULL) {
      lz_block_t *last = NULL;
      uint32_t n = 0;
      uint32_t most = foreign_idle_cap(f); /* "Idle owners" */
      while (b != NULL && b[2].enc_next == (uintptr_t)heap->foreign_flush_at && n < most) {
        last = b;
        b = block_next(b);
        n++;
      }
      if (last != NULL) {
        block_set_next(last, NULL);
        foreign_renumber(f, n);
      } else {
        b = f->free;
      }
    }
    if (b == f->free) {
      f->free = NULL;
      f->capacity = 0;
      f->flags &= (uint8_t)~FOREIGN_CHARGED;
      foreign_fast_sync(heap, f);
      if (installed) heap_direct_update(heap, cls);
    }
    while (b != NULL) {
      lz_block_t *next = block_next(b);
      /* The owner subtracts the block when it arrives home; this heap
       * subtracted it when the block joined an uncharged list (and
       * charged it back at installation or keeping), so give that back
       * here. */
      if (LZ_STATS && !charged) heap->stats.in_use += f->block_size;
      b->enc_next = 0; /* not in flight: remote_free screens it afresh */
      b[1].enc_next = 0;
      chunk_t *c = (chunk_t *)((uintptr_t)b & ~LZ_CHUNK_MASK);
      span_t *s = chunk_span_of(c, (uintptr_t)b);
      if (c->heap == heap) { /* own (foreign_free_own): back into its span */
        heap_enter(heap);
        slab_free_chain(heap, s, b, b, 1);
        heap_leave(heap);
      } else {
        remote_batch(heap, s, b);
      }
      b = next;
    }
  }
}

/* Does the heap keep any foreign block? */
bool foreign_any(const heap_t *heap) {
  if (heap->foreign == NULL) return false;
  for (unsigned cls = 1; cls < LZ_CLASSES; cls++)
    if (heap->foreign[cls].free != NULL) return true;
  return false;
}

/* Blocks in class cls's list (at most `limit`). */
uint32_t foreign_count(const heap_t *heap, unsigned cls, uint32_t limit) {
  uint32_t n = 0;
  for (const lz_block_t *x = heap->foreign[cls].free; x != NULL && n < limit; x = block_next(x)) n++;
  return n;
}
