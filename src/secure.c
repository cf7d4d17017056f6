/* secure.c: hardening level 2 (LZMALLOC_SECURE=2, or a build with
 * LZ_SECURE=2 such as liblzmalloc-secure.so): every small and medium block
 * is served here, in the slow paths; large blocks keep large.c's layout
 * (a guard page before the block, canary bytes up to a guard page after
 * its last page, the requested size in their out-of-band descriptor,
 * freed ranges PROT_NONE in large.c's quarantine; checked by large.c and
 * by secure_check_size here). Faults in every guard page are reported by
 * secure_fault (below), through os.c's SIGSEGV handler.
 *
 * Level 2 never uses the inlined fast paths (alloc.h). Their contract:
 * malloc's fast path pops only from spans reachable through heap->direct[]
 * or heap->queues[c].first with a non-NULL `free` list, and free's fast
 * path only handles chunks whose map byte is the calling thread's heap id
 * (or its region, which a heap without an id never has) and spans
 * whose xfast_cap is not 0. Level-2
 * spans are never put in a heap's queues (heap->direct[] stays at
 * LZ_SPAN_EMPTY, queues stay empty), their `free` is NULL, their
 * xfast_cap 0 and their heap has no id (map_id CHUNK_SPANS), so every call
 * lands here through the slow paths.
 *
 * A slot (one block of a slab span; a medium span's pages between its two
 * guard pages) holds one block:
 *
 *   slot                 p - 16     p                p + size        slot end
 *   | canary (alignment) | header   | user bytes ... | tail canary ... |
 *
 *   header word 0: size ^ K_size ^ mix(p)     the requested size, encoded
 *   header word 1: K_head ^ p                 head canary and authenticator
 *   canary bytes:  byte i of the secret word C at address i (mod 8)
 *
 * p is slot + 16 in a slab, slot + 64 in a medium span, for alignments
 * <= 16 (the canonical position), else the first aligned address leaving
 * room for the header. A slab's slots start 64 bytes into the span (canary
 * bytes there too), so a small underflow of its first slot stays inside. The header is inside
 * the slot but keyed: an overflow or underflow that reaches it cannot forge
 * it, and any change is reported at free or realloc ("buffer underflow"
 * when word 1 is wrong at the canonical position); the tail canary is
 * checked at free and realloc ("buffer overflow"). malloc_usable_size is
 * the requested size, so the whole tail is canary.
 *
 * Freed blocks: the whole slot is filled with the secret word F (header
 * included: a header that reads F F is a freed block, "double free"; slots
 * never handed out hold another word, N, "invalid pointer"), then
 * the block waits in the freeing thread's quarantine (FIFO, at most
 * LZ_QUARANTINE_BYTES and LZ_QUARANTINE_ENTRIES) before its slot can be
 * reused. The fill is checked ("write after free") on the newest entry at
 * the thread's next level-2 call, when a medium block leaves quarantine,
 * and when a slab slot is handed out again.
 *
 * Out-of-band state: which slots of a slab are free is a bitmap in a
 * separate mapping (secure_heap_t's meta area), pointed to by the span's
 * `local_free` field (a medium span's holds its block's address); slots
 * are picked at random from it. Every slab span ends with a PROT_NONE
 * guard page, every medium span has one before and one after its block,
 * and every chunk's header ends with one (internal.h, LZ_HEADER_PAGES), so
 * no run from a block reaches a span descriptor or chunk header.
 *
 * Locking: a heap's level-2 spans and bitmaps are guarded by its
 * secure_heap_t lock, taken by the owner to allocate and by any thread
 * whose quarantine releases a block of that heap. Only the owner allocates
 * or releases spans (chunk state is the owner's): a slab emptied by another
 * thread is released by its owner later, a medium span is queued on
 * `pending`. The quarantine belongs to its heap's owner (no lock). Spans
 * are allocated and released under the owner's heap lock (heap_enter, the
 * janitor protocol in internal.h); a secure lock nests inside it (the
 * lock order is in src/README.md). No lock is held across fork: in the child, a heap
 * whose secure lock is taken was being changed by a thread that is gone
 * (or by the forking thread from a signal handler), so it is retired (DEAD,
 * heap.c) and never locked again: blocks of a DEAD heap leaving a
 * quarantine are leaked.
 */
#include <errno.h>
#include <string.h>

#include "security.h"
#include "sizeclass.h"


#define SLAB_BITMAP_WORDS 32 /* 2048 slots: the most a 64 KiB slab of 32-byte slots holds */
#define SLAB_SUMMARY SLAB_BITMAP_WORDS /* then a word whose bit w is set iff word w is not 0 */
#define HEADER 16
#define SLAB_LEAD 64         /* canary bytes before a slab's first slot */
/* Slot bitmaps are carved from regions of this size (never unmapped): 248
 * bitmaps of 264 bytes each, so a heap maps one for its first 248 slabs. */
#define SECURE_META_REGION ((size_t)64 * KiB)
#define MEDIUM_PAD 64        /* a medium block starts this far into its pages */
#define SECURE_EMPTY_KEEP 4  /* empty slabs kept per class before one is released */
#define SECURE_MEDIUM_CACHE 8
#define SECURE_MEDIUM_CACHE_BYTES ((size_t)4 * MiB)

typedef struct q_entry_s {
  uint8_t *p;      /* the user pointer freed */
  uint8_t *slot;
  uint8_t *end;    /* slot end (fill checked over [slot, end)) */
  span_t *span;    /* the slot's span */
} q_entry_t;

typedef struct secure_heap_s {
  lz_lock_t lock;
  span_t *avail[LZ_CLASSES];   /* slabs with a free slot (linked by next/prev) */
  span_t *pending;             /* medium spans released by other threads */
  uint64_t *bitmap_pool;       /* recycled bitmaps (first word: next) */
  uint16_t empty[LZ_CLASSES];  /* slabs with no slot taken, per class */
  uint8_t *meta_cur, *meta_end;
  uint64_t rng;
  /* Owner only: */
  span_t *mspans[SECURE_MEDIUM_CACHE]; /* freed medium spans, guards kept */
  uint32_t mcount;
  size_t mbytes;
  q_entry_t q[LZ_QUARANTINE_ENTRIES];
  uint32_t q_first, q_count;
  bool q_newest_checked;
  size_t q_bytes;
} secure_heap_t;

/* Written by every process's start-up: with the hot variables. */
lz_hot static uint64_t k_size, k_head, w_free, w_fresh;

static void secure_fault(uintptr_t a);

lz_text_hot void secure_init(void) {
  uint64_t x = lz_seed;
  uint64_t *outs[5] = {&k_size, &k_head, &lz_canary, &w_free, &w_fresh};
  for (int i = 0; i < 5; i++) {
    x += 0x9e3779b97f4a7c15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    *outs[i] = z ^ (z >> 31);
  }
  if (w_free == lz_canary) w_free ^= 1;
  if (w_fresh == w_free || w_fresh == lz_canary) w_fresh ^= 2;
  if (lz_secure2) {
    int rc = os_fault_hook(secure_fault);
    if (rc != 0) lz_message("warning: no SIGSEGV handler, guard-page faults are not reported; error ", "", (uintptr_t)rc, 2);
  }
}

lz_inline uint64_t mix(uintptr_t p) { return (uint64_t)p * 0xd6e8feb86659fd93ull; }


/* ---------------------------------------------------------------------------
 * Per-heap state
 * ------------------------------------------------------------------------- */
static secure_heap_t *secure_of(heap_t *heap) {
  if (heap->secure == NULL) {
    size_t size = (sizeof(secure_heap_t) + LZ_PAGE_SIZE - 1) & ~(LZ_PAGE_SIZE - 1);
    secure_heap_t *sh = os_map(size);
    if (sh == NULL) return NULL;
    sh->rng = lz_key ^ mix((uintptr_t)heap);
    heap->secure = sh;
  }
  return heap->secure;
}

static uint64_t rng_next(secure_heap_t *sh) {
  uint64_t x = sh->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return sh->rng = x;
}

static uint64_t *bitmap_alloc(secure_heap_t *sh) {
  uint64_t *b = sh->bitmap_pool;
  if (b != NULL) {
    sh->bitmap_pool = (uint64_t *)b[0];
    return b;
  }
  size_t bytes = (SLAB_BITMAP_WORDS + 1) * 8;
  if (sh->meta_cur == NULL || (size_t)(sh->meta_end - sh->meta_cur) < bytes) {
    uint8_t *m = os_map(SECURE_META_REGION);
    if (m == NULL) return NULL;
    sh->meta_cur = m;
    sh->meta_end = m + SECURE_META_REGION;
  }
  b = (uint64_t *)(void *)sh->meta_cur;
  sh->meta_cur += bytes;
  return b;
}

lz_inline uint64_t *span_bitmap(const span_t *s) { return (uint64_t *)(void *)s->local_free; }

/* ---------------------------------------------------------------------------
 * Slabs
 * ------------------------------------------------------------------------- */
static void avail_push(secure_heap_t *sh, span_t *s) {
  s->prev = NULL;
  s->next = sh->avail[s->cls];
  if (s->next) s->next->prev = s;
  sh->avail[s->cls] = s;
}

static void avail_remove(secure_heap_t *sh, span_t *s) {
  if (s->prev) s->prev->next = s->next; else sh->avail[s->cls] = s->next;
  if (s->next) s->next->prev = s->prev;
  s->next = s->prev = NULL;
}

/* Guard pages: each splits a mapping, which the kernel refuses at
 * vm.max_map_count. A span whose guard cannot be made is not used (the
 * allocation fails as out of memory: never a block without its guard); a
 * guard that cannot be made accessible again keeps its span out of use for
 * good (leaked: its pages would fault). */
static span_t *slab_new_secure(heap_t *heap, secure_heap_t *sh, unsigned cls) {
  size_t pages = class_slab_pages(cls);
  uint32_t bs = lz_class_size[cls];
  uint64_t *bits = bitmap_alloc(sh);
  if (bits == NULL) return NULL;
  span_t *s = span_alloc(heap, pages, 1, SPAN_SLAB);
  if (s == NULL) {
    bits[0] = (uint64_t)sh->bitmap_pool;
    sh->bitmap_pool = bits;
    return NULL;
  }
  uint8_t *start = span_start(s);
  size_t usable = (pages - 1) << LZ_PAGE_SHIFT; /* last page: guard */
  if (os_protect_none(start + usable, LZ_PAGE_SIZE) != 0) {
    span_free(heap, s);
    bits[0] = (uint64_t)sh->bitmap_pool;
    sh->bitmap_pool = bits;
    return NULL;
  }
  uint32_t n = (uint32_t)((usable - SLAB_LEAD) / bs);
  lz_pattern_fill(start, start + SLAB_LEAD, lz_canary);
  lz_assert(n <= SLAB_BITMAP_WORDS * 64);
  span_set_block_size(s, bs);
  s->reserved = s->capacity = (uint16_t)n;
  s->cls = (uint8_t)cls;
  s->used = 0;
  bits[SLAB_SUMMARY] = 0;
  for (uint32_t w = 0; w < SLAB_BITMAP_WORDS; w++) {
    uint32_t lo = w * 64;
    bits[w] = lo >= n ? 0 : (n - lo >= 64 ? ~0ull : (1ull << (n - lo)) - 1);
    if (bits[w] != 0) bits[SLAB_SUMMARY] |= 1ull << w;
  }
  s->local_free = (lz_block_t *)(void *)bits;
  lz_pattern_fill(start + SLAB_LEAD, start + SLAB_LEAD + (size_t)n * bs, w_fresh); /* free slots hold F or N */
  sh->empty[cls]++;
  avail_push(sh, s);
  return s;
}

static void slab_release_secure(heap_t *heap, secure_heap_t *sh, span_t *s) {
  avail_remove(sh, s);
  sh->empty[s->cls]--;
  uint64_t *bits = span_bitmap(s);
  bits[0] = (uint64_t)sh->bitmap_pool;
  sh->bitmap_pool = bits;
  s->local_free = NULL;
  size_t usable = ((size_t)s->npages - 1) << LZ_PAGE_SHIFT;
  if (os_protect_rw(span_start(s) + usable, LZ_PAGE_SIZE) != 0) return; /* leaked (above) */
  span_free(heap, s);
}

/* A random free slot of the class (owner, under sh->lock). */
static uint8_t *slot_take(heap_t *heap, secure_heap_t *sh, unsigned cls) {
  span_t *s = sh->avail[cls];
  if (s == NULL) s = slab_new_secure(heap, sh, cls);
  if (s == NULL) return NULL;
  uint64_t *bits = span_bitmap(s);
  uint32_t nwords = ((uint32_t)s->reserved + 63) / 64;
  uint64_t r = rng_next(sh);
  /* The first word with a free slot from a random one on (the summary is
   * not 0: the slab is in avail). */
  uint64_t sum = bits[SLAB_SUMMARY], from = sum & (~0ull << (r % nwords));
  uint32_t w = (uint32_t)__builtin_ctzll(from ? from : sum);
  unsigned rot = (unsigned)(r >> 32) & LZ_WORD_MASK;
  uint64_t word = bits[w];
  uint64_t rotated = rot ? (word >> rot) | (word << (LZ_WORD_MASK + 1 - rot)) : word;
  unsigned bit = ((unsigned)__builtin_ctzll(rotated) + rot) & LZ_WORD_MASK;
  bits[w] &= ~(1ull << bit);
  if (bits[w] == 0) bits[SLAB_SUMMARY] &= ~(1ull << w);
  if (s->used++ == 0) sh->empty[cls]--;
  if (s->used == s->reserved) {
    avail_remove(sh, s);
    s->flags |= SPAN_FULL;
  }
  return span_start(s) + SLAB_LEAD + (size_t)(w * 64 + bit) * s->block_size;
}

/* Gives a slot back (any thread, under the owner's sh->lock). */
static void slot_put(heap_t *self, heap_t *owner, secure_heap_t *sh, span_t *s, uint8_t *slot) {
  size_t idx = (size_t)(slot - span_start(s) - SLAB_LEAD) / s->block_size;
  uint64_t *bits = span_bitmap(s);
  bits[idx / 64] |= 1ull << (idx % 64);
  bits[SLAB_SUMMARY] |= 1ull << (idx / 64);
  if (s->flags & SPAN_FULL) {
    s->flags &= (uint8_t)~SPAN_FULL;
    avail_push(sh, s);
  }
  if (--s->used != 0) return;
  /* A few empty slabs stay (no guard-page and fill churn); the owner gives
   * the others back (secure_collect does for slabs others emptied). */
  if (++sh->empty[s->cls] > SECURE_EMPTY_KEEP && self == owner) slab_release_secure(owner, sh, s);
}

/* ---------------------------------------------------------------------------
 * Medium spans: [guard page][header + block + tail canary ...][guard page]
 * ------------------------------------------------------------------------- */
static size_t medium_offset(size_t align) {
  if (align <= LZ_ALIGN) return LZ_PAGE_SIZE + MEDIUM_PAD;
  if (align <= LZ_PAGE_SIZE) return LZ_PAGE_SIZE + align;
  return align;
}

static span_t *medium_cache_get(secure_heap_t *sh, size_t npages);

static uint8_t *medium_take(heap_t *heap, secure_heap_t *sh, size_t size, size_t align, uint8_t **slot,
                           uint8_t **end) {
  size_t off = medium_offset(align);
  size_t npages = (off + size + 1 + LZ_PAGE_SIZE - 1) / LZ_PAGE_SIZE + 1;
  if (npages > LZ_USABLE_PAGES) return NULL;
  span_t *s = align <= LZ_PAGE_SIZE ? medium_cache_get(sh, npages) : NULL;
  uint8_t *start;
  if (s != NULL) {
    start = span_start(s);
    s->used = 1;
  } else {
    s = span_alloc(heap, npages, align > LZ_PAGE_SIZE ? align >> LZ_PAGE_SHIFT : 1, SPAN_MEDIUM);
    if (s == NULL) return NULL;
    start = span_start(s);
    if (os_protect_none(start, LZ_PAGE_SIZE) != 0) { /* guards: see slab_new_secure */
      span_free(heap, s);
      return NULL;
    }
    if (os_protect_none(start + (npages - 1) * LZ_PAGE_SIZE, LZ_PAGE_SIZE) != 0) {
      if (os_protect_rw(start, LZ_PAGE_SIZE) == 0) span_free(heap, s);
      return NULL;
    }
    s->reserved = s->capacity = s->used = 1;
    s->block_size = (uint32_t)((npages - 2) << LZ_PAGE_SHIFT);
    chunk_t *c = span_chunk(s);
    size_t first = s->page, slot = span_slot(s);
    /* Every page finds the span (free, and the bounds of memcpy & co). */
    for (size_t i = first + 1; i < first + npages; i++) pagemap_set(c, i, slot);
  }
  uint8_t *p = start + off;
  s->local_free = (lz_block_t *)(void *)p; /* the block (guard-page reports) */
  *slot = start + LZ_PAGE_SIZE;
  *end = start + (npages - 1) * LZ_PAGE_SIZE;
  return p;
}

static void medium_release(heap_t *heap, span_t *s);

/* A cached span of exactly npages (its guards and pagemap in place). */
static span_t *medium_cache_get(secure_heap_t *sh, size_t npages) {
  for (uint32_t i = 0; i < sh->mcount; i++) {
    span_t *s = sh->mspans[i];
    if (s->npages == npages) {
      sh->mspans[i] = sh->mspans[--sh->mcount];
      sh->mbytes -= npages << LZ_PAGE_SHIFT;
      return s;
    }
  }
  return NULL;
}

/* The owner is done with a medium span: cached, or released. */
static void medium_put(heap_t *heap, secure_heap_t *sh, span_t *s) {
  size_t bytes = (size_t)s->npages << LZ_PAGE_SHIFT;
  s->used = 0;
  if (opt_get(OPT_PURGE_DELAY) != 0 && sh->mcount < SECURE_MEDIUM_CACHE &&
      sh->mbytes + bytes <= SECURE_MEDIUM_CACHE_BYTES) {
    sh->mspans[sh->mcount++] = s;
    sh->mbytes += bytes;
    return;
  }
  medium_release(heap, s);
}

static void medium_release(heap_t *heap, span_t *s) {
  uint8_t *start = span_start(s);
  chunk_t *c = span_chunk(s);
  size_t first = s->page;
  for (size_t i = first + 1; i < first + s->npages; i++) c->pagemap[i] = 0;
  s->used = 0;
  /* A guard left inaccessible: the span is leaked (slab_new_secure). */
  if (os_protect_rw(start, LZ_PAGE_SIZE) != 0) return;
  if (os_protect_rw(start + ((size_t)s->npages - 1) * LZ_PAGE_SIZE, LZ_PAGE_SIZE) != 0) return;
  span_free(heap, s);
}

/* ---------------------------------------------------------------------------
 * Finding a block from a pointer
 * ------------------------------------------------------------------------- */
typedef struct block_info_s {
  span_t *span;
  uint8_t *slot, *end;  /* the slot holding p */
  size_t size;          /* requested size */
} block_info_t;

/* The slot holding address a of a span chunk, or false. */
static bool slot_find(uintptr_t a, block_info_t *bi) {
  chunk_t *c = (chunk_t *)(a & ~LZ_CHUNK_MASK);
  span_t *s = chunk_span_at(c, (a >> LZ_PAGE_SHIFT) & (LZ_CHUNK_PAGES - 1));
  if (s == chunk_slot(c, 0) || s->kind == SPAN_NONE) return false;
  uint8_t *start = span_start(s);
  bi->span = s;
  if (s->kind == SPAN_SLAB) {
    if (a < (uintptr_t)start + SLAB_LEAD) return false;
    size_t idx = (size_t)(a - (uintptr_t)start - SLAB_LEAD) / s->block_size;
    if (idx >= s->reserved) return false;
    bi->slot = start + SLAB_LEAD + idx * s->block_size;
    bi->end = bi->slot + s->block_size;
  } else {
    bi->slot = start + LZ_PAGE_SIZE;
    bi->end = bi->slot + s->block_size;
  }
  return a >= (uintptr_t)bi->slot && a < (uintptr_t)bi->end;
}

/* Where a block of alignment <= 16 starts in its slot. */
lz_inline uint8_t *slot_canonical(const block_info_t *bi) {
  return bi->slot + (bi->span->kind == SPAN_SLAB ? HEADER : MEDIUM_PAD);
}

/* Validates the live block p (header and, if `tail`, the tail canary);
 * reports and aborts naming `func` otherwise. */
static void block_resolve(const void *ptr, const char *func, bool tail, block_info_t *bi) {
  uint8_t *p = (uint8_t *)ptr;
  if (((uintptr_t)p & (LZ_ALIGN - 1)) != 0 || !slot_find((uintptr_t)p, bi) || p < bi->slot + HEADER)
    lz_fatal_pointer("invalid pointer", func, p);
  uint64_t *h = (uint64_t *)(void *)(p - HEADER);
  if (lz_unlikely(h[1] != (k_head ^ (uintptr_t)p))) {
    /* Where a block of p's alignment starts in the slot (secure_malloc):
     * a freed slot reads F there too. */
    uintptr_t al = (uintptr_t)p & -(uintptr_t)p;
    bool aligned_start = (((uintptr_t)bi->slot + HEADER + al - 1) & ~(al - 1)) == (uintptr_t)p;
    if (aligned_start && h[0] == w_free && h[1] == w_free) lz_fatal_pointer("double free", func, p);
    if (p != slot_canonical(bi)) lz_fatal_pointer("invalid pointer", func, p);
    if (h[0] == w_fresh && h[1] == w_fresh) lz_fatal_pointer("invalid pointer", func, p);
    lz_fatal_pointer("buffer underflow", func, p);
  }
  bi->size = h[0] ^ k_size ^ mix((uintptr_t)p);
  if (lz_unlikely(bi->size >= (size_t)(bi->end - p))) lz_fatal_pointer("buffer underflow", func, p);
  if (tail && lz_unlikely(lz_pattern_check(p + bi->size, bi->end, lz_canary) != NULL))
    lz_fatal_pointer("buffer overflow", func, p);
}

/* ---------------------------------------------------------------------------
 * Quarantine (owner of `sh` only)
 * ------------------------------------------------------------------------- */
static void fill_check(const q_entry_t *e, const char *func) {
  if (lz_pattern_check(e->slot, e->end, w_free) != NULL) lz_fatal_pointer("write after free", func, e->p);
}

/* The oldest entry leaves: its slot becomes free (checked again on reuse). */
static void quarantine_evict(heap_t *self, secure_heap_t *sh, const char *func) {
  q_entry_t e = sh->q[sh->q_first];
  sh->q_first = (sh->q_first + 1) % LZ_QUARANTINE_ENTRIES;
  sh->q_count--;
  sh->q_bytes -= (size_t)(e.end - e.slot);
  if (sh->q_count == 0) sh->q_newest_checked = true;
  span_t *s = e.span;
  heap_t *owner = span_chunk(s)->heap;
  secure_heap_t *osh = owner->secure;
  if (s->kind == SPAN_MEDIUM) fill_check(&e, func);
  /* Only a fork child makes heaps DEAD, while it is single-threaded. */
  if (lz_unlikely(atomic_load_explicit(&owner->xstate, memory_order_relaxed) == HEAP_DEAD)) return;
  if (s->kind == SPAN_MEDIUM) {
    if (owner == self) {
      medium_put(self, self->secure, s);
    } else {
      lz_lock(&osh->lock);
      s->next = osh->pending;
      osh->pending = s;
      lz_unlock(&osh->lock);
    }
    return;
  }
  lz_lock(&osh->lock);
  slot_put(self, owner, osh, s, e.slot);
  lz_unlock(&osh->lock);
}

static void quarantine_check_newest(secure_heap_t *sh, const char *func) {
  if (sh->q_newest_checked || sh->q_count == 0) return;
  sh->q_newest_checked = true;
  fill_check(&sh->q[(sh->q_first + sh->q_count - 1) % LZ_QUARANTINE_ENTRIES], func);
}

static void quarantine_push(heap_t *self, secure_heap_t *sh, uint8_t *p, const block_info_t *bi) {
  uint8_t *slot = bi->slot, *end = bi->end;
  quarantine_check_newest(sh, "free");
  size_t bytes = (size_t)(end - slot);
  while (sh->q_count > 0 && (sh->q_count == LZ_QUARANTINE_ENTRIES || sh->q_bytes + bytes > LZ_QUARANTINE_BYTES))
    quarantine_evict(self, sh, "free");
  q_entry_t *e = &sh->q[(sh->q_first + sh->q_count) % LZ_QUARANTINE_ENTRIES];
  e->p = p;
  e->slot = slot;
  e->end = end;
  e->span = bi->span;
  sh->q_count++;
  sh->q_bytes += bytes;
  sh->q_newest_checked = false;
}

/* ---------------------------------------------------------------------------
 * Entry points (called from heap.c's slow paths)
 * ------------------------------------------------------------------------- */
/* Medium spans other threads released (owner). */
static void collect_pending(heap_t *heap, secure_heap_t *sh) {
  if (sh->pending == NULL) return;
  lz_lock(&sh->lock);
  span_t *s = sh->pending;
  sh->pending = NULL;
  lz_unlock(&sh->lock);
  while (s != NULL) {
    span_t *next = s->next;
    s->next = NULL;
    medium_put(heap, sh, s);
    s = next;
  }
}

/* Slabs other threads emptied, but the first of each class (owner). */
static void collect_empty_slabs(heap_t *heap, secure_heap_t *sh) {
  lz_lock(&sh->lock);
  for (unsigned cls = 1; cls < LZ_CLASSES; cls++) {
    span_t *s = sh->avail[cls];
    while (s != NULL) {
      span_t *next = s->next;
      if (s->used == 0 && s != sh->avail[cls]) slab_release_secure(heap, sh, s);
      s = next;
    }
  }
  lz_unlock(&sh->lock);
}

void *secure_malloc(heap_t *heap, size_t size, size_t align, bool zero) {
  secure_heap_t *sh = secure_of(heap);
  if (sh == NULL) return NULL;
  quarantine_check_newest(sh, "malloc");
  collect_pending(heap, sh);
  if (align < LZ_ALIGN) align = LZ_ALIGN;
  size_t need = size + HEADER + 1 + (align > LZ_ALIGN ? align - LZ_ALIGN : 0);
  uint8_t *slot, *end, *p;
  if (need <= LZ_SMALL_MAX && align <= LZ_PAGE_SIZE) {
    unsigned cls = size_to_class(need); /* room for p rounded up to align, and a canary byte */
    lz_lock(&sh->lock);
    slot = slot_take(heap, sh, cls);
    lz_unlock(&sh->lock);
    if (slot == NULL) return NULL;
    end = slot + lz_class_size[cls];
    uint64_t w = *(uint64_t *)(void *)slot == w_fresh ? w_fresh : w_free;
    if (lz_pattern_check(slot, end, w) != NULL) lz_fatal_pointer("write after free", "malloc", slot + HEADER);
    p = (uint8_t *)(((uintptr_t)slot + HEADER + align - 1) & ~(uintptr_t)(align - 1));
    lz_assert(p + size < end);
  } else {
    p = medium_take(heap, sh, size, align, &slot, &end);
    if (p == NULL) return NULL;
  }
  lz_pattern_fill(slot, p - HEADER, lz_canary);
  uint64_t *h = (uint64_t *)(void *)(p - HEADER);
  h[0] = size ^ k_size ^ mix((uintptr_t)p);
  h[1] = k_head ^ (uintptr_t)p;
  if (zero) memset(p, 0, size);
  lz_pattern_fill(p + size, end, lz_canary);
  if (LZ_STATS) heap->stats.in_use += (int64_t)size;
  return p;
}

void secure_free(heap_t *self, void *ptr, const char *func) {
  block_info_t bi;
  block_resolve(ptr, func, true, &bi);
  uint8_t *p = (uint8_t *)ptr;
  lz_pattern_fill(bi.slot, bi.end, w_free);
  if (self == NULL) return; /* no heap for a quarantine: the block stays out */
  if (LZ_STATS) self->stats.in_use -= (int64_t)bi.size;
  secure_heap_t *sh = secure_of(self);
  if (sh == NULL) return;
  heap_enter(self); /* releasing a span changes chunk state (janitor protocol) */
  quarantine_push(self, sh, p, &bi);
  heap_leave(self);
}

size_t secure_usable(const void *p, const char *func, bool tail) {
  block_info_t bi;
  block_resolve(p, func, tail, &bi);
  return bi.size;
}

void secure_check_size(const void *p, size_t size, const char *func) {
  if (chunkmap_kind((uintptr_t)p) != CHUNK_SPANS) {
    bool freed;
    large_t *l = large_lookup((uintptr_t)p, &freed);
    /* Large blocks with a guard keep the size asked for (large.c); the
     * free that follows reports anything else. */
    if (l != NULL && atomic_load_explicit(&l->xguard, memory_order_relaxed) != 0 && large_usable(l) != size)
      lz_fatal_pointer("size mismatch", func, p);
    return;
  }
  block_info_t bi;
  block_resolve(p, func, false, &bi);
  if (bi.size != size) lz_fatal_pointer("size mismatch", func, p);
}

/* The heap of an exiting thread (or a forced collect): its quarantine is
 * emptied, pending spans released. */
size_t secure_collect(heap_t *heap, bool force) {
  secure_heap_t *sh = heap->secure;
  if (sh == NULL) return 0;
  heap_enter(heap);
  size_t n = 0;
  if (force)
    for (; sh->q_count > 0; n++) quarantine_evict(heap, sh, "free");
  collect_pending(heap, sh);
  collect_empty_slabs(heap, sh);
  if (force)
    for (; sh->mcount > 0; n++) {
      span_t *s = sh->mspans[--sh->mcount];
      sh->mbytes -= (size_t)s->npages << LZ_PAGE_SHIFT;
      medium_release(heap, s);
    }
  heap_leave(heap);
  return n;
}

/* Bounds of the heap block holding address a: [*lo, *hi), or false if a
 * is not in a live level-2 block (one chunk-map lookup, then the header). */
bool secure_block_bounds(const void *a, const uint8_t **lo, const uint8_t **hi) {
  uint8_t kind = chunkmap_kind((uintptr_t)a);
  if (kind == CHUNK_LARGE) return large_block_bounds((uintptr_t)a, lo, hi);
  if (kind != CHUNK_SPANS) return false;
  block_info_t bi;
  if (!slot_find((uintptr_t)a, &bi)) return false;
  uint8_t *p = slot_canonical(&bi);
  uint64_t *h = (uint64_t *)(void *)(p - HEADER);
  if (h[1] == (k_head ^ (uintptr_t)p)) {
    size_t size = h[0] ^ k_size ^ mix((uintptr_t)p);
    if (size < (size_t)(bi.end - p)) {
      *lo = p;
      *hi = p + size;
      return true;
    }
  }
  *lo = bi.slot; /* an aligned block: its slot bounds it */
  *hi = bi.end;
  return true;
}

/* ---------------------------------------------------------------------------
 * Faults in guard pages (the SIGSEGV hook of os.c, installed at level 2)
 *
 * A write that runs off a block into a guard page faults there. The hook
 * finds the block it came from and reports it:
 *   lzmalloc: buffer overflow 0x<block> (guard page hit at 0x<address>)
 *   lzmalloc: buffer underflow 0x<block> (guard page hit at 0x<address>)
 *   lzmalloc: use after free 0x<block> (guard page hit at 0x<address>)
 * A run upwards enters a guard page at its low end, a run downwards at its
 * high end, so the half of the page hit says which way the write went (a
 * slab's guard page ends it, a medium span has one on each side, a chunk's
 * header ends with one). A large block has one on each side and large.c
 * says which was hit, or that the block's range is freed and quarantined
 * (large_fault_owner). The
 * block a run came from is the last one it did not reach: slots above it
 * (overflow) or below it (underflow, its own header included) no longer
 * start with a header, canary bytes or a free fill.
 * ------------------------------------------------------------------------- */
/* Does the slot start as nothing ran over it? */
static bool slot_intact(const uint8_t *slot) {
  const uint64_t *w = (const uint64_t *)(const void *)slot;
  if (w[0] == w_free || w[0] == w_fresh || w[0] == lz_canary) return true;
  return w[1] == (k_head ^ (uintptr_t)(slot + HEADER));
}

/* The block in a slab slot: where a valid header says, else the canonical
 * position. */
static uint8_t *slot_block(uint8_t *slot, uint8_t *end) {
  for (size_t align = LZ_ALIGN; align <= LZ_PAGE_SIZE; align *= 2) {
    uint8_t *p = (uint8_t *)(((uintptr_t)slot + HEADER + align - 1) & ~(uintptr_t)(align - 1));
    if (p >= end) break;
    if (((uint64_t *)(void *)(p - HEADER))[1] == (k_head ^ (uintptr_t)p)) return p;
  }
  return slot + HEADER;
}

/* The block of span s a run left: upwards (overflow) or downwards. */
static uint8_t *run_origin(span_t *s, bool upwards) {
  if (s->kind == SPAN_MEDIUM) return (uint8_t *)s->local_free;
  uint8_t *base = span_start(s) + SLAB_LEAD;
  size_t bs = s->block_size, n = s->reserved;
  if (upwards) {
    for (size_t i = n; i-- > 0;)
      if (slot_intact(base + i * bs)) return slot_block(base + i * bs, base + (i + 1) * bs);
    return base + HEADER;
  }
  for (size_t i = 0; i < n; i++)
    if (slot_intact(base + i * bs)) return base + (i == 0 ? 0 : i - 1) * bs + HEADER;
  return base + (n - 1) * bs + HEADER;
}

lz_cold lz_noreturn static void guard_report(const char *what, const uint8_t *p, uintptr_t a) {
  char buf[160];
  size_t n = 0;
  for (const char *t = "lzmalloc: "; *t; t++) buf[n++] = *t;
  for (const char *t = what; *t && n < 64; t++) buf[n++] = *t;
  buf[n++] = ' ';
  n += fmt_hex(buf + n, (uintptr_t)p);
  for (const char *t = " (guard page hit at "; *t; t++) buf[n++] = *t;
  n += fmt_hex(buf + n, a);
  buf[n++] = ')';
  buf[n++] = '\n';
  os_write(2, buf, n);
  os_abort();
}

/* The first span at or above page i of c (free pages skipped), or NULL. */
static span_t *span_from(chunk_t *c, size_t i) {
  for (; i < LZ_CHUNK_PAGES; i++)
    if (!bit_get(c->free_map, i)) return chunk_span_at(c, i);
  return NULL;
}

static void secure_fault(uintptr_t a) {
  bool downwards = (a & (LZ_PAGE_SIZE - 1)) >= LZ_PAGE_SIZE / 2;
  if (chunkmap_kind(a) != CHUNK_SPANS) {
    int what = 0;
    uintptr_t p = large_fault_owner(a, &what);
    if (p != 0)
      guard_report(what == LARGE_FAULT_FREED      ? "use after free"
                   : what == LARGE_FAULT_UNDERFLOW ? "buffer underflow"
                                                   : "buffer overflow",
                   (uint8_t *)p, a);
    return;
  }
  chunk_t *c = (chunk_t *)(a & ~LZ_CHUNK_MASK);
  size_t page = (a >> LZ_PAGE_SHIFT) & (LZ_CHUNK_PAGES - 1);
  span_t *s = NULL;
  bool upwards = false;
  if (page == LZ_HEADER_PAGES - 1) { /* the chunk's guard: from the first span down */
    s = span_from(c, LZ_HEADER_PAGES);
  } else if (page >= LZ_HEADER_PAGES && c->pagemap[page] != 0) {
    span_t *t = chunk_span_at(c, page);
    size_t first = t->page, last = first + t->npages - 1;
    if (t->kind == SPAN_MEDIUM && page == first && downwards) s = t;
    else if (page == last && !downwards) s = t, upwards = true;
    else if (page == last) s = span_from(c, last + 1);
  }
  if (s == NULL || s->kind == SPAN_NONE) return; /* not a guard of ours */
  guard_report(upwards ? "buffer overflow" : "buffer underflow", run_origin(s, upwards), a);
}

/* In the child after fork (see Locking above): was a thread inside h's
 * secure lock at the instant of fork? (heaps_fork_child_secure) */
bool secure_locked(const heap_t *h) {
  return h->secure && atomic_load_explicit(&h->secure->lock.x, memory_order_relaxed) != 0;
}
