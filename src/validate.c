/* validate.c: the heap validator. Every invariant written beside a
 * structure in internal.h is checked here, each by one line tagged with the
 * invariant's name ("[chunk.free_pages]", ...), which is also the message
 * printed when it fails:
 *
 *   lzmalloc: lz_heap_validate(): [span.used] 0x7f...   (then abort)
 *
 * Entry points: lz_heap_validate() (the calling thread's heap, then every
 * orphan it can take), and automatically at thread exit and lz_trim when
 * LZMALLOC_VALIDATE=1 (the default in debug builds, LZ_DEBUG). The walk is
 * O(pages + free blocks) of each heap: a debugging tool, never on a fast
 * path. It reads only what the owner may read (internal.h, Ownership): a
 * heap's own structures (under its lock, against the janitor), its xremote
 * list (whose pushed part is immutable until the owner takes it), and
 * orphans it has taken (state BUSY).
 */
#include "alloc.h"

#define V(cond, tag, p) \
  do { \
    if (lz_unlikely(!(cond))) lz_fatal_pointer("[" tag "] broken", "lz_heap_validate", (const void *)(p)); \
  } while (0)

/* Blocks of one span seen so far, one bit per block index (2 KiB: a slab
 * holds at most LZ_SLAB_MAX_BYTES / LZ_ALIGN blocks). */
typedef struct seen_s {
  uint64_t bits[LZ_SLAB_MAX_BYTES / LZ_ALIGN / 64];
} seen_t;

/* Walks one free list of s: every link decodes to a block boundary below
 * capacity, and no block appears twice in the span's lists. */
static uint32_t list_check(const span_t *s, lz_block_t *head, seen_t *seen) {
  uint32_t n = 0;
  uintptr_t start = (uintptr_t)span_start(s);
  for (lz_block_t *b = head; b != NULL; b = block_next(b)) {
    uintptr_t off = (uintptr_t)b - start;
    V((uintptr_t)b >= start && off % s->block_size == 0, "span.list.boundary", b);
    size_t idx = off / s->block_size;
    V(idx < s->capacity, "span.list.carved", b);
    V(!bit_get(seen->bits, idx), "span.list.duplicate", b);
    bit_set(seen->bits, idx);
    n++;
  }
  return n;
}

static bool span_linked(const heap_t *heap, const span_t *s) {
  return s->next != NULL || s->prev != NULL || heap->queues[s->cls].first == s;
}

/* A slab span of heap. Returns its bytes in use (stats.c sums them). */
static int64_t slab_check(const heap_t *heap, const span_t *s, seen_t *seen) {
  V(s->cls >= 1 && s->cls < LZ_CLASSES, "span.cls", s);
  V(s->block_size == lz_class_size[s->cls], "span.block_size", s);
  V(s->inv == block_inv_slab(s->block_size) && s->ibase == (uint32_t)(uintptr_t)span_start(s) * s->inv, "span.inv", s);
  V(s->npages >= class_min_slab_pages(s->cls) && s->npages <= class_slab_pages(s->cls), "span.npages", s);
  V(s->reserved == ((size_t)s->npages << LZ_PAGE_SHIFT) / s->block_size, "span.reserved", s);
  V(s->reserved <= sizeof seen->bits * 8, "span.reserved", s);
  V(s->capacity <= s->reserved, "span.capacity", s);
  bool full = (s->flags & SPAN_FULL) != 0;
  bool linked = span_linked(heap, s);
  V(full != linked, "span.full_unlinked", s);
  bool first = heap->queues[s->cls].first == s;
  uint32_t xcap = atomic_load_explicit(&s->xfast_cap, memory_order_relaxed);
  V(xcap == (full || (s->flags & SPAN_HOLES) ? 0u : s->capacity) ||
        (xcap == 0 && first && atomic_load_explicit(&heap->xnudged, memory_order_relaxed)) ||
        (xcap == 0 && !first), /* diverted (remote.c, "Own blocks") */
    "span.xfast_cap", s);
  uint32_t pin = first ? 1 : 0;
  V(s->free == NULL || first, "span.free_only_first", s);
  V(s->to_local == (first ? 0 : 1), "span.front", s);
  V(!first || !(s->flags & SPAN_HOLES), "span.holes", s); /* slab.c, "Holes" */
  if (full) V(s->free == NULL && s->local_free == NULL && s->capacity == s->reserved, "span.full", s);
  for (size_t i = 0; i < (size_t)(s->capacity + 63) / 64; i++) seen->bits[i] = 0;
  uint32_t nfree = list_check(s, s->free, seen);
  uint32_t nlocal = list_check(s, s->local_free, seen);
  /* out + |free| + |local_free| + hole blocks == capacity, used == out +
   * |free| + pin; no listed block lies on a hole page */
  uint32_t nholes = slab_hole_blocks(s);
  V(nfree + nlocal + nholes <= s->capacity, "span.count", s);
  for (size_t i = 0; nholes > 0 && i < s->capacity; i++)
    V(!bit_get(seen->bits, i) || !slab_block_in_hole(s, i), "span.holes",
      span_start(s) + i * s->block_size);
  uint32_t out = s->capacity - nfree - nlocal - nholes;
  V(s->used == out + nfree + pin, "span.used", s);
  bool spare = (s->flags & SPAN_SPARE) != 0;
  V(first || s->used > 0 || spare, "span.empty_retired", s);
  V(!spare || (s->used == 0 && !first && linked && (heap->spare_classes >> s->cls & 1)), "span.spare", s);
  return (int64_t)(out + nfree) * s->block_size;
}

/* Start-up's packed span (pack.c; internal.h has its invariants). */
static void pack_span_check(const heap_t *heap, const span_t *s) {
  V(s->cls == 0 && s->block_size == LZ_ALIGN && s->npages == LZ_PACK_PAGES &&
        s->reserved == LZ_PACK_PAGES * LZ_PAGE_SIZE / LZ_ALIGN && s->capacity >= LZ_PACK_MAP / LZ_ALIGN &&
        s->capacity <= s->reserved && s->free == NULL && s->local_free == NULL &&
        atomic_load_explicit(&s->xfast_cap, memory_order_relaxed) == 0 && s->next == NULL && s->to_local == 1 &&
        s->prev == NULL && !(s->flags & (SPAN_FULL | SPAN_HOLES)),
    "pack.geometry", s);
  const uint8_t *map = span_start(s);
  size_t live = 0, g = 0;
  for (; g < LZ_PACK_MAP / LZ_ALIGN; g++) V(map[g] == 0, "pack.map", map + g);
  while (g < s->capacity) {
    uint8_t e = map[g];
    unsigned cls = e & (PACK_FREED - 1);
    V(cls >= 1 && cls < LZ_CLASSES && lz_class_size[cls] <= LZ_PACK_MAX, "pack.map", map + g);
    size_t n = lz_class_size[cls] / LZ_ALIGN;
    V(g + n <= s->capacity, "pack.map", map + g);
    for (size_t k = 1; k < n; k++) V(map[g + k] == 0, "pack.map", map + g + k);
    if (!(e & PACK_FREED)) live += n;
    g += n;
  }
  for (; g < s->reserved; g++) V(map[g] == 0, "pack.map", map + g);
  V(s->used == live, "pack.used", s);
  /* Its lists (only while open: the heap's lists are the open span's, a
   * closed span's blocks are never listed): freed blocks of their class,
   * each once. */
  if (heap->pack != s) return;
  uint64_t seen[LZ_PACK_PAGES * LZ_PAGE_SIZE / LZ_ALIGN / 64] = {0};
  for (unsigned c = 0; c < LZ_PACK_CLASSES; c++) {
    size_t n = 0;
    for (const lz_block_t *b = heap->pack_free[c]; b != NULL; b = block_next(b)) {
      V(c >= 1, "pack.list", b);
      V(span_holds(s, (uintptr_t)b) && n++ < s->capacity, "pack.list", b);
      size_t k = (size_t)((const uint8_t *)b - map) / LZ_ALIGN;
      V(map[k] == (c | PACK_FREED) && !bit_get(seen, k), "pack.list", b);
      bit_set(seen, k);
    }
  }
}

static bool mcache_holds(const heap_t *heap, const span_t *s) {
  for (unsigned i = 0; i < LZ_MEDIUM_CACHE; i++)
    if (atomic_load_explicit(&((heap_t *)heap)->xmcache[i], memory_order_relaxed) == s) return true;
  return false;
}

/* A medium span of heap: live (used 1), or cached (used 0) in mcache or
 * on the returned list. Returns 1 for the latter (heap_check counts them
 * against the list). */
static uint32_t medium_check(const heap_t *heap, const span_t *s) {
  V(s->reserved == 1 && s->capacity == 1 && s->used <= 1, "medium.counts", s);
  V(s->block_size == (uint32_t)s->npages << LZ_PAGE_SHIFT, "medium.block_size", s);
  V((s->next == NULL || s->used == 0) && s->prev == NULL && s->cls == 0 && s->to_local <= 1, "medium.unqueued", s);
  if (s->to_local == 0) { /* a front span: its block out, or parked on free */
    V(s->npages <= LZ_MEDIUM_FRONT_PAGES && heap->mfront[s->npages] == s && s->used == 1 && s->next == NULL,
      "medium.front", s);
    V(s->free == NULL || (s->free == (lz_block_t *)span_start(s) && block_link_null(s->free)), "medium.front", s);
  } else {
    V(s->free == NULL, "medium.front", s);
  }
  V(atomic_load_explicit(&s->xfast_cap, memory_order_relaxed) == s->used, "span.xfast_cap", s);
  V(s->local_free == NULL, "medium.local_free", s);
  bool cached = mcache_holds(heap, s);
  V(!cached || s->used == 0, "medium.cached_unused", s);
  return s->used == 0 && !cached;
}

/* The returned list: medium spans of heap, unused, not in mcache, each
 * once, counted and their bytes summed; `unlisted` is every unused medium
 * span the chunk walk found outside mcache, so each of them is listed. */
static void mreturn_check(const heap_t *heap, uint32_t unlisted) {
  uint32_t n = 0;
  size_t bytes = 0;
  for (const span_t *s = heap->mreturn; s != NULL; s = s->next) {
    V(++n <= heap->mreturn_count, "mreturn.count", s);
    V(s->kind == SPAN_MEDIUM && s->used == 0 && span_chunk(s)->heap == heap && !mcache_holds(heap, s),
      "mreturn.span", s);
    const span_t *t = heap->mreturn;
    for (uint32_t k = 1; k < n; k++, t = t->next) V(t != s, "mreturn.span", s); /* the n - 1 before it */
    bytes += (size_t)s->npages << LZ_PAGE_SHIFT;
  }
  V(n == heap->mreturn_count, "mreturn.count", heap);
  V(heap->mreturn_low <= n, "mreturn.low", heap);
  V(bytes == heap->mreturn_bytes && bytes <= LZ_MEDIUM_RETURN_BYTES, "mreturn.bytes", heap);
  V(unlisted == n, "medium.cached_unused", heap);
}

typedef struct heap_totals_s {
  size_t linked;                     /* slab spans linked in queues */
  size_t spans;
  uint32_t empty_chunks;
  uint32_t medium_unlisted;          /* unused medium spans outside mcache */
} heap_totals_t;

/* One chunk of heap: bitmaps, pagemap and every span in it. Returns its
 * longest run of free pages. */
static size_t chunk_check(const heap_t *heap, const chunk_t *c, heap_totals_t *t, seen_t *seen) {
  V(c->heap == heap, "chunk.heap", c);
  V(chunkmap_byte((uintptr_t)c) == heap->map_id, "chunkmap.spans", c);
  V(c->free_pages == bitmap_count(c->free_map, 0, LZ_CHUNK_PAGES), "chunk.free_pages", c);
  size_t run = 0, longest = 0;
  for (size_t i = 0; i < LZ_HEADER_PAGES; i++) V(!bit_get(c->free_map, i), "chunk.header_pages", c);
  size_t spans = 0, spare_pages = 0;
  for (size_t i = LZ_HEADER_PAGES; i < LZ_CHUNK_PAGES;) {
    if (bit_get(c->free_map, i)) {
      V(c->pagemap[i] == 0, "chunk.pagemap.free", (const uint8_t *)c + (i << LZ_PAGE_SHIFT));
      V(!bit_get(c->hole_map, i), "span.holes", (const uint8_t *)c + (i << LZ_PAGE_SHIFT));
      if (++run > longest) longest = run;
      i++;
      continue;
    }
    run = 0;
    const span_t *s = chunk_span_at((chunk_t *)c, i);
    size_t slot = span_slot(s);
    V(slot != 0 && bit_get(c->slot_map, slot), "chunk.slot_map", (const uint8_t *)c + (i << LZ_PAGE_SHIFT));
    V(s->kind == SPAN_SLAB || s->kind == SPAN_MEDIUM, "chunk.used_page_in_span", s);
    V(s->cls == 0 || s->kind == SPAN_SLAB, "span.cls", s); /* heap_free_page tests cls alone */
    V(s->page == i, "chunk.span_page", s);
    V(s->npages >= 1 && i + s->npages <= LZ_CHUNK_PAGES, "span.npages", s);
    for (size_t j = i; j < i + s->npages; j++) {
      V(!bit_get(c->free_map, j), "chunk.free_map", s);
      V(!bit_get(c->hole_map, j) || (s->kind == SPAN_SLAB && (s->flags & SPAN_HOLES)), "span.holes", s);
      bool mapped = s->kind == SPAN_SLAB || j == i || heap->secure != NULL; /* level 2 maps every page */
      V(c->pagemap[j] == (mapped ? slot_offset(slot) : 0), "chunk.pagemap", s);
    }
    if (heap->secure != NULL) {
      /* Level 2 (secure.c) keeps its own span state: chunk level only. */
    } else if (span_packed(s)) {
      pack_span_check(heap, s); /* in no class, no queue */
    } else if (s->kind == SPAN_SLAB) {
      slab_check(heap, s, seen); /* slab bytes are not in stats.in_use */
      if (s->flags & SPAN_SPARE) spare_pages += s->npages;
      if (!(s->flags & SPAN_FULL)) t->linked++;
    } else {
      t->medium_unlisted += medium_check(heap, s);
    }
    t->spans++;
    spans++;
    i += s->npages;
  }
  /* Descriptor slots: slot 0 zero, one slot per span of the walk (each
   * reached from its own first page above), every other slot unused. */
  const span_t *zero = chunk_slot((chunk_t *)c, 0);
  V(bit_get(c->slot_map, 0) && zero->kind == SPAN_NONE && zero->npages == 0, "chunk.slot_zero", c);
  V(bitmap_count(c->slot_map, 0, LZ_CHUNK_PAGES) == spans + 1, "chunk.slot_map", c);
  for (size_t k = 1; k < LZ_CHUNK_PAGES; k++) {
    const span_t *s = chunk_slot((chunk_t *)c, k);
    if (!bit_get(c->slot_map, k)) V(s->kind == SPAN_NONE, "chunk.slot_free", s);
    else V(s->page < LZ_CHUNK_PAGES && !bit_get(c->free_map, s->page), "chunk.free_no_span", s);
  }
  V(c->max_run_hint >= longest, "chunk.max_run_hint", c);
  V(c->spare_pages == spare_pages && (spare_pages == 0 || c->free_pages + spare_pages < LZ_USABLE_PAGES), "chunk.spare", c);
  return longest;
}

/* Class queues and the fast path's direct table. */
static void queues_check(const heap_t *heap, size_t linked) {
  size_t n = 0, spare_total = 0;
  for (unsigned cls = 1; cls < LZ_CLASSES; cls++) {
    const span_queue_t *q = &heap->queues[cls];
    V((q->first == NULL) == (q->last == NULL), "queue.ends", q);
    const span_t *prev = NULL;
    unsigned spares = 0; /* their pages */
    for (const span_t *s = q->first; s != NULL; prev = s, s = s->next) {
      V(++n <= linked, "queue.spans_owned", s); /* also stops a cycle */
      spares += (s->flags & SPAN_SPARE) ? s->npages : 0;
      V(s->prev == prev, "queue.links", s);
      V(s->kind == SPAN_SLAB && s->cls == cls && !(s->flags & SPAN_FULL), "queue.class", s);
      V(span_chunk(s)->heap == heap, "queue.owner", s);
    }
    V(prev == q->last, "queue.last", q);
    V(spares == heap->spare_pages[cls] && (spares != 0) == (heap->spare_classes >> cls & 1), "span.spare", q);
    spare_total += spares;
  }
  V(spare_total == heap->spare_total, "span.spare", heap);
  V(n == linked, "queue.spans_owned", heap);
  V(!heap->startup || heap->foreign == NULL, "heap.startup", heap);
  V(heap->pack == NULL || ((heap->startup || heap->pack_armed) && heap->pack_done && span_packed(heap->pack) &&
                            span_chunk(heap->pack)->heap == heap),
    "pack.open", heap);
  V(!heap->pack_armed || !heap->startup, "pack.fork", heap);
  if (heap->pack == NULL)
    for (unsigned c = 0; c < LZ_PACK_CLASSES; c++) V(heap->pack_free[c] == NULL, "pack.list", heap);
  V(heap->decay_shift <= LZ_DECAY_SHIFT_MAX && heap->orphan_shift <= LZ_DECAY_SHIFT_MAX &&
        heap->holes_shift <= LZ_DECAY_SHIFT_MAX,
    "heap.shifts", heap);
  if (heap->startup)
    for (unsigned cls = 1; cls < LZ_CLASSES; cls++)
      V(slab_class_for(heap, cls) == cls || heap->queues[cls].first == NULL, "heap.startup", heap);
  for (size_t size = 0; size <= LZ_DIRECT_MAX; size += 16) {
    unsigned cls = slab_class_for(heap, size_to_class(size));
    const span_t *want = lz_class_size[cls] > LZ_DIRECT_MAX ? NULL : heap->queues[cls].first;
    if (heap->foreign != NULL && (heap->foreign[cls].flags & FOREIGN_INSTALLED)) want = &heap->foreign[cls];
    if (heap->pack_armed && lz_class_size[cls] <= LZ_PACK_MAX) want = NULL; /* packing armed (slab.c) */
    V(heap->direct[(size + 15) >> 4] == (want ? want : LZ_SPAN_EMPTY), "heap.direct", heap);
  }
  V(heap->fkeep == (heap->foreign != NULL ? (span_t **)(heap->foreign + LZ_CLASSES) : (span_t **)(uintptr_t)lz_fkeep_none),
    "heap.fkeep", heap);
  for (unsigned cls = 0; cls < LZ_CLASSES; cls++) {
    const span_t *f = heap->foreign != NULL && cls != 0 ? &heap->foreign[cls] : NULL;
    bool fast = f != NULL && (f->flags & FOREIGN_CHARGED) && LZ_FOREIGN_OK(f->block_size) &&
                heap->fast_id != CHUNK_HEAP_NONE && !lz_numa_on;
    V(heap->fkeep[cls] == (fast ? f : NULL), "heap.fkeep", heap);
  }
}

/* Blocks of other heaps' slabs this heap keeps for reuse (remote.c).
 * Returns the bytes of its lists that are neither installed nor kept. */
static int64_t foreign_check(const heap_t *heap) {
  int64_t uninstalled = 0;
  if (heap->foreign == NULL) return 0;
  for (unsigned cls = 1; cls < LZ_CLASSES; cls++) {
    const span_t *f = &heap->foreign[cls];
    V(f->cls == cls && f->block_size == lz_class_size[cls], "foreign.class", f);
    bool installed = (f->flags & FOREIGN_INSTALLED) != 0;
    V(!installed || (lz_class_size[cls] <= LZ_DIRECT_MAX && heap->slabs_made[cls] != 0), "foreign.installed", f);
    /* Kept: a class above LZ_DIRECT_MAX whose list holds blocks (remote.c, "Kept lists"). */
    bool kept = (f->flags & FOREIGN_KEPT) != 0;
    V(!kept || (lz_class_size[cls] > LZ_DIRECT_MAX && f->free != NULL && heap->slabs_made[cls] != 0), "foreign.kept", f);
    /* Only blocks of the sizes LZ_FOREIGN_OK allows are kept. */
    V(f->free == NULL || LZ_FOREIGN_OK(lz_class_size[cls]), "foreign.line", f);
    uint32_t n = 0;
    for (const lz_block_t *b = f->free; b != NULL; b = block_next(b)) {
      V(++n <= 0xffff, "foreign.length", f); /* a cycle (the cap is remote.c's, far lower) */
      V(chunkmap_kind((uintptr_t)b) == CHUNK_SPANS, "foreign.block", b);
      const chunk_t *c = (const chunk_t *)((uintptr_t)b & ~LZ_CHUNK_MASK);
      const span_t *s = chunk_span_of(c, (uintptr_t)b);
      V(s->kind == SPAN_SLAB && s->cls == cls && slab_holds(s, b), "foreign.block", b);
      if (LZ_SECURE) V(block_next(b + 1) == b, "foreign.in_flight", b);
      V(c->heap != heap || installed, "foreign.own", b); /* remote.c, "Own blocks" */
    }
    /* Each block's depth: the blocks from it to the end (walked above). */
    uint32_t depth = n;
    for (const lz_block_t *b = f->free; b != NULL; b = block_next(b), depth--)
      V(*(const uint32_t *)(const void *)&b[3] == depth, "foreign.depth", b); /* word 3's first 4 bytes (remote.c) */
    V(f->used == 0 && f->page == 0, "foreign.used", f);
    V(n <= foreign_idle_cap(f), "foreign.cap", f);
    V(installed ? f->capacity <= FOREIGN_DRY_LOOKS : f->capacity == 0, "foreign.dry", f);
    if (!installed && !kept) uninstalled += (int64_t)n * f->block_size; /* uncharged */
  }
  return uninstalled;
}

/* The heap's own outgoing batches: one span's chain each. */
static void batches_check(const heap_t *heap) {
  for (unsigned i = 0; i < LZ_REMOTE_SLOTS; i++) {
    const remote_batch_t *rb = &heap_rbatch(heap)[i];
    V(((heap->rbatch_pending >> i) & 1) == (rb->count != 0), "rbatch.pending", rb);
    if (rb->count == 0) continue;
    V(rb->count < LZ_REMOTE_BATCH && rb->span != NULL, "rbatch.count", rb);
    const lz_block_t *b = rb->head;
    for (uint32_t k = 1; k < rb->count; k++) {
      V(slab_holds(rb->span, b), "rbatch.in_span", b);
      if (LZ_SECURE) V(block_next(b + 1) == b, "rbatch.in_flight", b);
      b = block_next(b);
    }
    V(b == rb->tail && slab_holds(rb->span, b), "rbatch.tail", rb);
    V(remote_slot_of(rb->span) == (i & ~(unsigned)(LZ_REMOTE_WAYS - 1)), "rbatch.slot", rb);
    for (unsigned w = 1; w < LZ_REMOTE_WAYS; w++) {
      const remote_batch_t *other = &heap_rbatch(heap)[i ^ w];
      V(other->count == 0 || other->span != rb->span, "rbatch.unique", rb);
    }
  }
}

/* Blocks other threads sent back: batches of one span of this heap each,
 * every block handed out by that span (so counted in its used). */
static size_t xremote_check(const heap_t *heap) {
  size_t n = 0;
  lz_block_t *tail = atomic_load_explicit(&((heap_t *)heap)->xremote, memory_order_acquire);
  while (tail != NULL) {
    const chunk_t *c = (const chunk_t *)((uintptr_t)tail & ~LZ_CHUNK_MASK);
    V(chunkmap_kind((uintptr_t)tail) == CHUNK_SPANS && c->heap == heap, "xremote.owner", tail);
    const span_t *s = chunk_span_of(c, (uintptr_t)tail);
    V(s->kind != SPAN_NONE, "xremote.span", tail);
    uintptr_t meta = (uintptr_t)block_next(tail + 1);
    /* Meta word (remote.c): head | (count - 1), flags above the address bits. */
    uintptr_t addr_mask = (((uintptr_t)1 << LZ_USER_ADDR_BITS) - 1) & ~(uintptr_t)(LZ_ALIGN - 1);
    const lz_block_t *head = (const lz_block_t *)(meta & addr_mask);
    uint32_t count = (uint32_t)(meta & (LZ_ALIGN - 1)) + 1;
    V(count <= LZ_REMOTE_BATCH && count <= s->used, "xremote.count", tail);
    const lz_block_t *b = head;
    for (uint32_t k = 0; k < count; k++) {
      V(slab_holds(s, b), "xremote.in_span", b);
      if (k + 1 < count) b = block_next(b);
    }
    V(b == tail, "xremote.tail", tail);
    n += count;
    uintptr_t link = (uintptr_t)block_next(tail);
    V(link & 1, "xremote.link", tail); /* remote.c, REMOTE_LINK */
    tail = (lz_block_t *)(link & ~(uintptr_t)1);
    if (((uintptr_t)tail & LZ_CHUNK_MASK) == 0) tail = NULL; /* the end: a chunk base */
  }
  return n;
}

/* c's entries of its region's page map (chunk invariants, [chunk.rmap]):
 * where the region puts them, each naming the span pagemap names (slot 0
 * for a waiting chunk, whose header is not read). */
static void rmap_check(const heap_t *heap, const chunk_t *c, bool waiting) {
  size_t k = ((uintptr_t)c - heap->rbase) >> LZ_CHUNK_SHIFT;
  _Atomic(span_t *) *m = heap->rmap + (k << (LZ_CHUNK_SHIFT - LZ_PAGE_SHIFT));
  V(((uintptr_t)c & LZ_CHUNK_MASK) == 0 && (uintptr_t)c >= heap->rbase && k < heap->rcarved &&
        (waiting || c->rmap == m),
    "chunk.rmap", c);
  if (((uintptr_t)k << LZ_CHUNK_SHIFT) >= heap->rend) return; /* its map page given back */
  for (size_t i = 0; i < LZ_CHUNK_PAGES; i++)
    V(atomic_load_explicit(&m[i], memory_order_relaxed) == (waiting ? chunk_slot((chunk_t *)c, 0) : rmap_entry(chunk_span_at((chunk_t *)c, i))),
      "chunk.rmap", c);
}

/* heap_t's region ([heap.region]): every committed chunk is one of the
 * heap's (with its page map entries) or waits (rwaiting), owned by none
 * (its header kept, empty, or given back, zero); rend covers every chunk
 * but waiting ones at the top. */
static void region_check(const heap_t *heap) {
  if (heap->rbase == 0) {
    V(heap->rcarved == 0 && heap->rwaiting == 0 && heap->rmap == NULL && heap->rend == 0, "heap.region", heap);
    return;
  }
  uint64_t carved = (1ull << heap->rcarved) - 1; /* rcarved <= 32 */
  V((heap->rbase & LZ_CHUNK_MASK) == 0 && heap->rcarved <= LZ_REGION_CHUNKS && heap->map_id >= CHUNK_HEAP_FIRST &&
        (heap->rwaiting & ~carved) == 0 && (heap->rend & LZ_CHUNK_MASK) == 0 &&
        heap->rend <= (uintptr_t)heap->rcarved << LZ_CHUNK_SHIFT && (heap->rmap != NULL || heap->rend == 0),
    "heap.region", heap);
  if (heap->rmap != NULL)
    for (uintptr_t k = heap->rend >> LZ_CHUNK_SHIFT; k < heap->rcarved; k++)
      V(heap->rwaiting >> k & 1, "heap.region.rend", heap);
  size_t n = 0;
  for (const chunk_t *c = heap->chunks; c != NULL; c = c->next) {
    if ((uintptr_t)c - heap->rbase >= LZ_REGION_BYTES) {
      V(c->rmap == NULL, "chunk.rmap", c);
      continue;
    }
    V(!(heap->rwaiting >> (((uintptr_t)c - heap->rbase) >> LZ_CHUNK_SHIFT) & 1), "heap.region.rwaiting", c);
    if (heap->rmap != NULL) rmap_check(heap, c, false);
    else V(c->rmap == NULL, "chunk.rmap", c);
    n++;
  }
  for (uint32_t k = 0; k < heap->rcarved; k++) {
    if (!(heap->rwaiting >> k & 1)) continue;
    const chunk_t *c = (const chunk_t *)(heap->rbase + ((uintptr_t)k << LZ_CHUNK_SHIFT));
    V(c->heap == NULL && (c->free_pages == LZ_USABLE_PAGES || (c->free_pages == 0 && c->slot_map[0] == 0)) &&
          chunkmap_kind((uintptr_t)c) == CHUNK_SPANS,
      "heap.region.waiting", c);
    if (heap->rmap != NULL) rmap_check(heap, c, true);
    n++;
  }
  V(n == heap->rcarved, "heap.region.count", heap);
}

static size_t heap_check(const heap_t *heap, seen_t *seen) {
  heap_totals_t t = {0};
  /* heap_t.map_id: an id of its own below level 2 (another heap's? the
   * walk below), CHUNK_SPANS otherwise; the thread's copy of it. */
  V(heap->map_id == CHUNK_SPANS || (heap->map_id >= CHUNK_HEAP_FIRST && heap->map_id <= CHUNK_HEAP_LAST && !lz_secure2),
    "heap.map_id", heap);
  for (const heap_t *h = heaps_first(); h != NULL; h = h->next_all)
    V(h == heap || heap->map_id == CHUNK_SPANS || h->map_id != heap->map_id, "heap.map_id", heap);
  V(heap->fast_id == (heap->map_id == CHUNK_SPANS ? CHUNK_HEAP_NONE : heap->map_id), "heap.map_id", heap);
  const chunk_t *prev = NULL;
  size_t nchunks = 0;
  int fit = 0; /* the fit memo's chunks: 0 before them, 1 among them, 2 after */
  for (const chunk_t *c = heap->chunks; c != NULL; prev = c, c = c->next) {
    t.empty_chunks += c->free_pages == LZ_USABLE_PAGES;
    V(c->prev == prev, "heap.chunks.links", c);
    V(++nchunks <= ((size_t)1 << (LZ_USER_ADDR_BITS - LZ_CHUNK_SHIFT)), "heap.chunks.cycle", c);
    size_t longest = chunk_check(heap, c, &t, seen);
    if (heap->fit_pages == 0) continue;
    if (c == heap->fit_first) fit = 1;
    if (fit == 1) V(c->fit_epoch == heap->fit_epoch && longest < heap->fit_pages, "heap.fit", c);
    if (c == heap->fit_last && fit == 1) fit = 2;
  }
  V(heap->fit_pages == 0 || (fit == 2 && heap->fit_pages <= LZ_USABLE_PAGES), "heap.fit", heap);
  region_check(heap);
  V(t.empty_chunks == heap->empty_count, "heap.empty_count", heap);
  V(heap->empty_count <= heap->empty_keep, "heap.empty_keep", heap);
  queues_check(heap, t.linked);
  size_t mbytes = 0;
  for (unsigned i = 0; i < LZ_MEDIUM_CACHE; i++) {
    const span_t *s = atomic_load_explicit(&((heap_t *)heap)->xmcache[i], memory_order_relaxed);
    bool bit = (heap->mcache_mask >> i) & 1;
    if (bit) mbytes += (size_t)heap->mcache_pages[i] << LZ_PAGE_SHIFT;
    if (s == NULL) continue;
    V(bit && heap->mcache_pages[i] == s->npages, "mcache.span", s);
    V(s->kind == SPAN_MEDIUM && s->used == 0 && span_chunk(s)->heap == heap, "mcache.span", s);
  }
  V(heap->mcache_mask >> LZ_MEDIUM_CACHE == 0, "mcache.count", heap);
  V(mbytes == heap->mcache_bytes && mbytes <= LZ_MEDIUM_CACHE_BYTES, "mcache.bytes", heap);
  mreturn_check(heap, t.medium_unlisted);
  size_t fbytes = 0, fcount = 0;
  for (size_t n = 0; n <= LZ_MEDIUM_FRONT_PAGES; n++) {
    const span_t *s = heap->mfront[n];
    V((s != NULL) == (n >= LZ_MEDIUM_MIN_PAGES && (heap->mfront_mask >> (n - LZ_MEDIUM_MIN_PAGES) & 1)),
      "mfront.span", heap);
    if (s == NULL) continue;
    V(n >= LZ_MEDIUM_MIN_PAGES && s->kind == SPAN_MEDIUM && s->npages == n && s->to_local == 0 &&
          span_chunk(s)->heap == heap,
      "mfront.span", s);
    fbytes += n << LZ_PAGE_SHIFT;
    fcount++;
  }
  V(fbytes == heap->mfront_bytes && fbytes <= LZ_MEDIUM_FRONT_BYTES, "mfront.bytes", heap);
  V(fcount == heap->mfront_count && fcount <= LZ_MEDIUM_FRONT_SPANS, "mfront.bytes", heap);
  batches_check(heap);
  xremote_check(heap);
  int64_t uninstalled = foreign_check(heap);
  if (LZ_STATS) {
    /* Foreign blocks move bytes between heaps' figures (remote.c): those
     * of lists that are not installed are out of this heap's. */
    if (heap->secure == NULL) V(heap->stats.in_use == -uninstalled, "stats.in_use", heap);
  }
  return t.spans;
}

/* The owner (or the holder of the shared heap's lock) validates under the
 * heap lock, so the janitor (janitor.c) cannot purge meanwhile. */
size_t validate_heap(heap_t *heap) {
  if (heap == NULL || heap == LZ_HEAP_EMPTY) return 0;
  seen_t seen;
  if (LZ_HEAPS > 0) lz_lock(&heap->lock);
  else heap_enter(heap);
  size_t n = heap_check(heap, &seen);
  if (LZ_HEAPS > 0) lz_unlock(&heap->lock);
  else heap_leave(heap);
  return n;
}

LZ_EXPORT size_t lz_heap_validate(void) {
  process_init();
  size_t n = 0;
  if (LZ_HEAPS > 0) {
    for (heap_t *h = heaps_first(); h != NULL; h = h->next_all) n += validate_heap(h);
    return n;
  }
  n += validate_heap(lz_heap_tls);
  /* Orphans: taken one at a time, as a collecting thread takes them. */
  for (heap_t *h = heaps_first(); h != NULL; h = h->next_all) {
    if (!heap_hold_orphan(h)) continue;
    seen_t seen;
    n += heap_check(h, &seen);
    heap_release_orphan(h);
  }
  return n;
}
