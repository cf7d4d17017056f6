/* large.c: blocks > 1 MiB (and over-aligned blocks that do not fit a
 * chunk), and the lock-free cache of freed large ranges.
 *
 * Layout. A block is a range of whole pages [p, p + size) starting on a
 * 2 MiB boundary (on its alignment, if larger). With LZMALLOC_SECURE=2 the
 * range starts with a PROT_NONE head guard page and the block follows it
 * (after its alignment, if over 4 KiB and under 2 MiB; none for larger
 * alignments), the page after the block's last page is a PROT_NONE guard
 * (the rest of the range after it stays unused), the bytes between the
 * requested size and that page are canary bytes (security.c's pattern of
 * lz_canary), checked at free and realloc ("buffer overflow"), and the
 * usable size is the requested size; a freed block waits in a quarantine,
 * its range PROT_NONE, before the cache takes it (below). Its descriptor (large_t) is out of band,
 * in a side table indexed by p's 2 MiB unit and found through the chunk map
 * (internal.h): nothing in or next to the user's pages belongs to us, so a
 * program may underflow, mprotect or remap the pages around its block.
 * The table has two levels (2^14 pointers in .bss, leaves of 4096
 * descriptors mapped on first use and never unmapped), so a lookup is two
 * loads and no lock.
 *
 * Ranges. Every byte we map for large blocks is at every instant in exactly
 * one of: a live block, a cache slot, or the hands of one thread between
 * two atomic steps. lz_large_mapped is the sum of them all but the ranges
 * a thread took to unmap: those are counted out first (range_unmap), so
 * that a thread descheduled before its munmap (the janitor expiring a
 * range) never shows other threads, after malloc_trim or while they reuse
 * the cache, memory that nothing can use any more as still ours;
 * lz_large_in_use the sum of the live blocks' usable sizes.
 * Chunk map bytes: CHUNK_LARGE at the unit of every live block's base, and
 * at units inside cached ranges where a block once started (so a double
 * free is named as one); never at another unit of a live block. A unit's
 * byte is cleared before its pages are unmapped or moved away. Its
 * descriptor is left as it was: a block freed there is still named when
 * it is freed again after its range went back to the kernel (a trim, the
 * decay: any time after the first free, so a second free from another
 * thread would otherwise be named a double free or an invalid pointer by
 * timing alone). A block made over several units clears the descriptors of
 * its other units, so a pointer inside a live block is never named so.
 * A unit's descriptor is written only by the thread that holds the unit's
 * pages (the expiry hint aside): never after they are unmapped or moved
 * away, when another thread may map a block there at once (a realloc
 * that moves a block clears its old check word before the move).
 *
 * Reuse. A freed range joins the cache, merged with cached ranges that
 * touch it. An allocation takes a cached range that fits, the smallest (a
 * request of more than one unit: the one, and the units in it, with the
 * most resident pages for it, "Resident pages" below), and splits it
 * around the block, at the first 2 MiB boundary after the request (the
 * rest goes back); if none fits, it maps a new range and replaces its
 * pages by the cached units with the most resident pages, moved (mremap,
 * no copy) as far as they go (range_fill). realloc grows a block's range
 * by a cached range that follows it, by mapping the pages after it, or by
 * moving its pages into a fresh mapping of the new size, filled the same
 * way (and splits to shrink): it never copies; a shrink to a medium or
 * small size copies (at most 1 MiB) into a new block (heap.c,
 * realloc_large: but a block stays down to half its largest request, past
 * LZ_REALLOC_LARGE_MIN). Pages once
 * faulted in are thus reused by later blocks of any size. calloc zeroes
 * only the part that may hold old data, never fresh pages, and of that
 * clears in place only what is mostly resident; the rest it gives back
 * (large_zero). A heap that
 * needs a new chunk takes a whole unit of a cached range before it maps
 * one (large_cache_unit; chunk.c gives its pages back first), so freed
 * large memory serves small and medium blocks as well.
 *
 * The cache: LZ_LARGE_CACHE_ENTRIES atomic slots, each 0 or one range
 * encoded as (unit | pages << 26). Every operation takes effect at one CAS
 * on one slot: put (0 -> range), take (range -> 0). A slot's value names its
 * range completely, so a CAS that succeeds took exactly the range it read
 * (no ABA); nothing of a cached range is touched before it is taken, except
 * its descriptor's expiry time, read and written as a hint. No lock: fork
 * at any instant leaves the child every slot as it was (a range another
 * thread was moving is leaked there, never shared), and any thread may trim
 * at any time. Ranges go back to the kernel by age (decay, not a count): a
 * put reads no clock and leaves the expiry 0; the first large_cache_trim
 * (purge ticks, the janitor, malloc_trim) to see the range stamps it with
 * ten purge delays from then, and a later one unmaps it once that time has
 * passed. The cache holds at most max(LZMALLOC_LARGE_CACHE, the most large
 * bytes live within the current peak period, which trims restart every ten
 * purge delays) (so a program that cycles through a working set of large
 * blocks keeps its pages); a range put beyond that gives back its part
 * above the limit; LZMALLOC_LARGE_CACHE=0 or a purge delay of 0 disables
 * it.
 *
 * NUMA (numa.c): a new range is bound to the caller's node (or
 * interleaved) before its first touch, and its node is kept in the
 * descriptor of its first unit; ranges merge only with ranges of their
 * node, pages added to a range are bound to its node, and the cache hands
 * a range only to a caller on its node.
 */
#include <string.h>

#include "internal.h"

lz_hot_alloc _Atomic(size_t) lz_large_mapped;
lz_hot_alloc _Atomic(size_t) lz_large_in_use;
/* Live large blocks, and the most of them and of lz_large_in_use there
 * ever were: glibc's mmapped-chunk figures (mallinfo2's hblks, malloc_stats'
 * max mmap regions and bytes: override.c). Written on the large paths
 * only, which make a system call or take a cached range anyway. */
lz_hot_alloc _Atomic(size_t) lz_large_blocks;
lz_hot_alloc _Atomic(size_t) lz_large_blocks_max;
lz_hot_alloc _Atomic(size_t) lz_large_in_use_max;

static void note_max(_Atomic(size_t) *max, size_t v) {
  size_t m = atomic_load_explicit(max, memory_order_relaxed);
  while (v > m && !atomic_compare_exchange_weak_explicit(max, &m, v, memory_order_relaxed, memory_order_relaxed)) {
  }
}

/* ---------------------------------------------------------------------------
 * Descriptor table
 * ------------------------------------------------------------------------- */
#define DESC_LEAF_BITS 12
#define DESC_LEAF_SIZE ((size_t)1 << DESC_LEAF_BITS)
#define DESC_LEAVES (LZ_CHUNKMAP_SIZE >> DESC_LEAF_BITS)
_Static_assert(sizeof(large_t) == 48, "large_t size");
_Static_assert((DESC_LEAF_SIZE * sizeof(large_t)) % LZ_PAGE_SIZE == 0, "leaf of whole pages");

lz_bss_late static _Atomic(large_t *) desc_leaves[DESC_LEAVES];

static uintptr_t unit_of(uintptr_t a) { return a >> LZ_CHUNK_SHIFT; }

/* The descriptor of unit u, or NULL if its leaf was never made. */
static large_t *desc_get(uintptr_t u) {
  if (u >= LZ_CHUNKMAP_SIZE) return NULL;
  large_t *leaf = atomic_load_explicit(&desc_leaves[u >> DESC_LEAF_BITS], memory_order_acquire);
  return leaf == NULL ? NULL : &leaf[u & (DESC_LEAF_SIZE - 1)];
}

/* As desc_get, making the leaf if needed (NULL if out of memory). A
 * unit's descriptor is made before its chunk map byte is first written
 * (a block's first unit), so its map page is made writable here
 * (chunkmap.c): a leaf's units have their bytes on one map page but the
 * last, whose byte begins the next (the map is one byte on), so that page
 * when the leaf is made and the next one for the last unit. */
lz_text_late static lz_noinline large_t *desc_make_slow(uintptr_t u) {
  _Static_assert(DESC_LEAF_SIZE == LZ_PAGE_SIZE, "a map page holds the bytes of a leaf's units");
  uintptr_t first = u & ~(uintptr_t)(DESC_LEAF_SIZE - 1);
  if (u >= LZ_CHUNKMAP_SIZE || !chunkmap_prepare(u << LZ_CHUNK_SHIFT)) return NULL;
  large_t *d = desc_get(u);
  if (d != NULL) return d;
  if (!chunkmap_prepare(first << LZ_CHUNK_SHIFT)) return NULL; /* before the leaf is published */
  /* Between two inaccessible pages: the kernel places a mapping next to
   * the last one, so a leaf made for a new block would lie right below
   * it, and a program that maps fresh pages over the page before its own
   * block (glibc's tst-free-errno; tests/large_remap.c) would wipe the
   * descriptors on it, the block's among them when its unit is one of the
   * leaf's last 85 (large_remap failed so: "invalid pointer" from
   * malloc_usable_size). A guard page is no anonymous read-write page:
   * such a program leaves it alone. Address space only. */
  size_t bytes = DESC_LEAF_SIZE * sizeof(large_t);
  uint8_t *m = os_map(bytes + 2 * LZ_PAGE_SIZE);
  if (m == NULL) return NULL;
  if (os_protect_none(m, LZ_PAGE_SIZE) != 0 || os_protect_none(m + LZ_PAGE_SIZE + bytes, LZ_PAGE_SIZE) != 0) {
    os_unmap(m, bytes + 2 * LZ_PAGE_SIZE);
    return NULL;
  }
  large_t *leaf = (large_t *)(void *)(m + LZ_PAGE_SIZE);
  large_t *expect = NULL;
  if (!atomic_compare_exchange_strong_explicit(&desc_leaves[u >> DESC_LEAF_BITS], &expect, leaf,
                                               memory_order_acq_rel, memory_order_acquire)) {
    os_unmap(m, bytes + 2 * LZ_PAGE_SIZE); /* another thread made it first */
    leaf = expect;
  }
  return &leaf[u & (DESC_LEAF_SIZE - 1)];
}

static inline large_t *desc_make(uintptr_t u) {
  large_t *d = desc_get(u);
  return lz_likely(d != NULL && (u & (DESC_LEAF_SIZE - 1)) != DESC_LEAF_SIZE - 1) ? d : desc_make_slow(u);
}

large_t *large_lookup(uintptr_t a, bool *freed) {
  *freed = false;
  /* A block starts on its range's first unit: at its base, or a lead
   * below 2 MiB after it (level 2); the check word names the block. */
  if ((a & (LZ_PAGE_SIZE - 1)) != 0 || chunkmap_kind(a) != CHUNK_LARGE) return NULL;
  large_t *l = desc_get(unit_of(a));
  if (l == NULL) return NULL;
  uintptr_t check = atomic_load_explicit(&l->xcheck, memory_order_relaxed);
  if (check == (lz_key ^ a)) return l;
  *freed = check == (lz_key ^ a ^ 1);
  return NULL;
}

bool large_freed_gone(uintptr_t a) {
  if ((a & (LZ_PAGE_SIZE - 1)) != 0 || chunkmap_kind(a) != CHUNK_NONE) return false;
  large_t *l = desc_get(unit_of(a));
  return l != NULL && atomic_load_explicit(&l->xcheck, memory_order_relaxed) == (lz_key ^ a ^ 1);
}

/* a, a unit's first byte, was a large block, freed since: its unit may
 * have become a chunk (large_cache_unit) or gone back to the kernel. */
bool large_freed_unit(uintptr_t a) {
  large_t *l = desc_get(unit_of(a));
  return l != NULL && atomic_load_explicit(&l->xcheck, memory_order_relaxed) == (lz_key ^ a ^ 1);
}

/* ---------------------------------------------------------------------------
 * Ranges
 * ------------------------------------------------------------------------- */
#define LARGE_SLOTS (LZ_LARGE_CACHE_ENTRIES > 0 ? LZ_LARGE_CACHE_ENTRIES : 1)
#define SLOT_UNIT_BITS (LZ_USER_ADDR_BITS - LZ_CHUNK_SHIFT)
_Static_assert(((size_t)1 << SLOT_UNIT_BITS) == LZ_CHUNKMAP_SIZE, "slot encoding covers the chunk map");

static _Atomic(uint64_t) slots[LARGE_SLOTS];
/* Slots at and above xslots_seen have never held a range: scans stop
 * there (puts fill the lowest empty slot, so a few ranges scan a few
 * slots). Raised before a slot is first filled, never lowered. */
lz_hot_alloc static _Atomic(size_t) xslots_seen;

static size_t slots_seen(void) { return atomic_load_explicit(&xslots_seen, memory_order_relaxed); }

/* A cached range waits ten purge delays: it is dearer to rebuild (mmap
 * plus a fault per page) than a chunk page. */
#define LARGE_DELAY_FACTOR 10

static size_t page_round(size_t n) { return (n + LZ_PAGE_SIZE - 1) & ~(LZ_PAGE_SIZE - 1); }
static size_t chunk_round(size_t n) { return (n + LZ_CHUNK_MASK) & ~LZ_CHUNK_MASK; }
static size_t guard_bytes(void) { return opt_get(OPT_SECURE) >= 2 ? LZ_PAGE_SIZE : 0; }
/* Level 2: where a block of alignment `align` starts in its range, after
 * its head guard page (0: no head guard, the block at the base). */
static size_t lead_bytes(size_t align) {
  if (guard_bytes() == 0 || align >= LZ_CHUNK_SIZE) return 0;
  return align > LZ_PAGE_SIZE ? align : LZ_PAGE_SIZE;
}
static uintptr_t base_of(const void *p) { return (uintptr_t)p & ~LZ_CHUNK_MASK; }
static unsigned large_node(const large_t *l) { return atomic_load_explicit(&l->xnode, memory_order_relaxed); }
static bool quarantine_put(uintptr_t base, size_t size);
static bool quarantined(uintptr_t base);
static size_t quarantine_flush(void);

static uint64_t slot_encode(uintptr_t base, size_t size) {
  return (uint64_t)unit_of(base) | ((uint64_t)(size >> LZ_PAGE_SHIFT) << SLOT_UNIT_BITS);
}
static uintptr_t slot_base(uint64_t v) { return (uintptr_t)(v & (LZ_CHUNKMAP_SIZE - 1)) << LZ_CHUNK_SHIFT; }
static size_t slot_size(uint64_t v) { return (size_t)(v >> SLOT_UNIT_BITS) << LZ_PAGE_SHIFT; }

/* What the descriptor of a cached range's first unit says (hints until
 * the range is taken: written before it was put, read without owning it). */
static uint64_t slot_expire(uint64_t v) {
  large_t *d = desc_get(unit_of(slot_base(v)));
  return d == NULL ? 0 : atomic_load_explicit(&d->xexpire, memory_order_relaxed);
}
static unsigned slot_node(uint64_t v) {
  large_t *d = desc_get(unit_of(slot_base(v)));
  return d == NULL ? 0 : atomic_load_explicit(&d->xnode, memory_order_relaxed);
}

/* Slot value v is a cached range of `node` (any, without NUMA) of at
 * least `need` bytes: what every look at the slots for a take asks. */
static bool slot_holds(uint64_t v, size_t need, unsigned node) {
  return v != 0 && slot_size(v) >= need && (!lz_numa_on || slot_node(v) == node);
}

static bool slot_take(size_t i, uint64_t v) {
  if (!atomic_compare_exchange_strong_explicit(&slots[i], &v, 0, memory_order_acquire, memory_order_relaxed))
    return false;
  return true;
}

/* The node new large memory of the calling thread belongs to. */
static unsigned caller_node(void) {
  if (!lz_numa_on) return 0;
  return opt_get(OPT_NUMA) == NUMA_INTERLEAVE ? NUMA_NODE_INTERLEAVED : numa_current_node();
}

/* Clears the chunk map bytes of every unit of [base, base + size). */
lz_text_late static void units_clear(uintptr_t base, size_t size) {
  for (uintptr_t a = base; a < base + size; a += LZ_CHUNK_SIZE)
    if (chunkmap_kind(a) != CHUNK_NONE) chunkmap_set(a, CHUNK_NONE);
}

lz_text_late static void range_unmap(uintptr_t base, size_t size, unsigned node) {
  atomic_fetch_sub_explicit(&lz_large_mapped, size, memory_order_relaxed); /* first: see the top */
  units_clear(base, size); /* before: the address may be mapped again at once */
  if (lz_unlikely(lz_numa_on)) numa_account(node, -(ptrdiff_t)size);
  os_unmap((void *)base, size);
}

/* Pages just mapped for a range of `node`: bound there before their first
 * touch, and counted. */
static void range_added(void *p, size_t size, unsigned node) {
  if (lz_unlikely(lz_numa_on)) numa_bind_range(p, size, node);
  atomic_fetch_add_explicit(&lz_large_mapped, size, memory_order_relaxed);
}

/* The most live large bytes seen since xpeak_at (hints: racy updates can
 * only make the limit a little off for one decay period). */
lz_hot_alloc static _Atomic(size_t) xpeak;
lz_hot_alloc static _Atomic(uint64_t) xpeak_at;

static void peak_note(size_t live) {
  if (live > atomic_load_explicit(&xpeak, memory_order_relaxed)) {
    atomic_store_explicit(&xpeak, live, memory_order_relaxed);
    atomic_store_explicit(&xpeak_at, os_now_ms(), memory_order_relaxed);
  }
}

static uint64_t decay_ms(void) { return (uint64_t)opt_get(OPT_PURGE_DELAY) * LARGE_DELAY_FACTOR; }

/* A new peak period once the last has lasted the decay time (trims do
 * this: puts read no clock). */
static void peak_age(uint64_t now) {
  if (opt_get(OPT_PURGE_DELAY) > 0 && now - atomic_load_explicit(&xpeak_at, memory_order_relaxed) > decay_ms()) {
    atomic_store_explicit(&xpeak, atomic_load_explicit(&lz_large_in_use, memory_order_relaxed), memory_order_relaxed);
    atomic_store_explicit(&xpeak_at, now, memory_order_relaxed);
  }
}

/* How much the cache may hold: LZMALLOC_LARGE_CACHE, or the most large
 * bytes live within the current peak period if more (a program whose live
 * set shrinks for a moment keeps its pages; one that stays smaller gives
 * them back). 0: no cache. */
static size_t cache_limit(void) {
  long opt = opt_get(OPT_LARGE_CACHE);
  long delay = opt_get(OPT_PURGE_DELAY);
  if (LZ_LARGE_CACHE_ENTRIES == 0 || opt <= 0 || delay == 0) return 0;
  size_t live = atomic_load_explicit(&lz_large_in_use, memory_order_relaxed);
  size_t peak = atomic_load_explicit(&xpeak, memory_order_relaxed);
  if (live > peak) peak = live;
  return peak > (size_t)opt ? peak : (size_t)opt;
}

/* When a cached range may go back: its descriptor says 0 until a trim
 * first sees it there and stamps it (so a put reads no clock). Unstamped
 * ranges are the newest. */
static uint64_t expire_order(uint64_t e) { return e == 0 ? UINT64_MAX : e; }

/* Unmaps the cached range that expires first (every slot is full). False
 * if there is none. */
static bool cache_evict_oldest(void) {
  for (int attempt = 0; attempt < 4; attempt++) {
    uint64_t best = 0, best_exp = UINT64_MAX;
    size_t best_i = 0;
    for (size_t i = 0, n = slots_seen(); i < n; i++) {
      uint64_t v = atomic_load_explicit(&slots[i], memory_order_relaxed);
      if (v == 0) continue;
      uint64_t e = expire_order(slot_expire(v));
      if (best == 0 || e < best_exp) {
        best = v;
        best_exp = e;
        best_i = i;
      }
    }
    if (best == 0) return false;
    if (slot_take(best_i, best)) {
      range_unmap(slot_base(best), slot_size(best), slot_node(best));
      return true;
    }
  }
  return true; /* others are busy with the cache: let the caller go on */
}

/* Gives the range [base, base + size) of `node` that the caller holds to
 * the cache, merged with cached ranges of its node that touch it, or back
 * to the kernel. */
lz_text_hot static void cache_put(uintptr_t base, size_t size, unsigned node) {
  size_t limit = cache_limit();
  if (limit == 0) {
    range_unmap(base, size, node);
    return;
  }
  size_t held = 0; /* what the other slots hold (as this scan saw it) */
  size_t empty = LARGE_SLOTS; /* the first empty slot it saw */
  for (size_t i = 0, n = slots_seen(); i < n; i++) {
    uint64_t v = atomic_load_explicit(&slots[i], memory_order_relaxed);
    if (v == 0) {
      if (empty == LARGE_SLOTS) empty = i;
      continue;
    }
    uintptr_t b = slot_base(v);
    size_t s = slot_size(v);
    held += s;
    if (lz_numa_on && slot_node(v) != node) continue;
    if ((b + s == base || base + size == b) && slot_take(i, v)) {
      held -= s;
      if (lz_unlikely(lz_numa_on) && slot_node(v) != node) { /* changed before we took it */
        cache_put(b, s, slot_node(v));
        continue;
      }
      if (b < base) base = b;
      size += s;
    }
  }
  /* Over the limit: the pages above it go back (the upper part of this
   * range, whole 2 MiB units; the cached ranges stay, to age out). */
  if (held + size > limit) {
    size_t keep = held >= limit ? 0 : (limit - held) & ~LZ_CHUNK_MASK;
    if (keep == 0) {
      range_unmap(base, size, node);
      return;
    }
    if (keep < size) {
      range_unmap(base + keep, size - keep, node);
      size = keep;
    }
  }
  large_t *d = desc_make(unit_of(base));
  if (d == NULL) {
    range_unmap(base, size, node);
    return;
  }
  atomic_store_explicit(&d->xexpire, 0, memory_order_relaxed); /* stamped by the next trim */
  atomic_store_explicit(&d->xnode, node, memory_order_relaxed);
  uint64_t v = slot_encode(base, size);
  uint64_t expect = 0;
  if (empty < LARGE_SLOTS && atomic_compare_exchange_strong_explicit(&slots[empty], &expect, v, memory_order_release,
                                                                     memory_order_relaxed))
    return;
  for (int attempt = 0; attempt < 2; attempt++) {
    for (size_t i = 0; i < LARGE_SLOTS; i++) {
      uint64_t expect = 0;
      if (atomic_load_explicit(&slots[i], memory_order_relaxed) != 0) continue;
      size_t seen = slots_seen();
      while (seen <= i && !atomic_compare_exchange_weak_explicit(&xslots_seen, &seen, i + 1, memory_order_relaxed,
                                                                 memory_order_relaxed)) {
      }
      if (atomic_compare_exchange_strong_explicit(&slots[i], &expect, v, memory_order_release,
                                                  memory_order_relaxed)) {
        return;
      }
    }
    if (!cache_evict_oldest()) break; /* every slot full: make room */
  }
  range_unmap(base, size, node);
}

/* Resident pages. A freed block leaves resident only the pages its
 * program touched, at most those under the size it asked for: the rest of
 * its last unit stays fresh. A block placed over such pages faults them
 * in while resident pages of other cached ranges wait for their decay, so
 * the process grows by what the cache already holds (bench/realprog
 * xz-d-12M: blocks of 12 MiB + 64 B, 2 MiB and 3.4 MB, freed and asked for
 * again by the next file; the second file's blocks faulted in 5 MB beside
 * idle resident ones, tests/large_reuse part 7). So each unit's descriptor
 * counts the pages that blocks may have written there since the unit was
 * mapped (xwritten: the pages under each block's request; 0 for pages
 * mapped fresh; moved with the pages), and a request of more than one
 * unit with a choice to make (several cached ranges fit, or one larger
 * than it needs) takes the window of whole units with the most such pages.
 * A hint, read without owning the range, and an upper bound (a program
 * may write less than it asked for); asking the kernel instead (mincore)
 * walked a page table entry a page, 4 % of bench large-reuse's CPU. */
#define RES_UNITS_MAX 512 /* units looked at per range (1 GiB); beyond, none counts as written */

static large_t *desc_of(uintptr_t a) { return desc_get(unit_of(a)); }

/* The pages of [a, a + len) were mapped fresh (their units' counts drop
 * to what lies before a in a's unit: an upper bound). */
lz_text_late static lz_noinline void written_fresh(uintptr_t a, size_t len) {
  for (uintptr_t u = a & ~LZ_CHUNK_MASK; u < a + len; u += LZ_CHUNK_SIZE) {
    large_t *d = desc_of(u);
    if (d == NULL) continue;
    uint32_t before = u < a ? (uint32_t)((a - u) >> LZ_PAGE_SHIFT) : 0;
    if (atomic_load_explicit(&d->xwritten, memory_order_relaxed) > before)
      atomic_store_explicit(&d->xwritten, before, memory_order_relaxed);
  }
}

/* A block may write [a, a + len): its units' counts rise to cover it.
 * The first unit's descriptor d is the caller's. Inline only the case of
 * a block within its first unit whose count is full already (a
 * malloc(2 MiB) + free loop: a load and two compares); the rest out of
 * line. */
lz_text_late static lz_noinline void written_slow(large_t *d, uintptr_t a, size_t len) {
  for (uintptr_t u = a & ~LZ_CHUNK_MASK; u < a + len; u += LZ_CHUNK_SIZE) {
    large_t *du = u == (a & ~LZ_CHUNK_MASK) ? d : desc_make(unit_of(u));
    if (du == NULL) continue;
    uintptr_t hi = a + len < u + LZ_CHUNK_SIZE ? a + len : u + LZ_CHUNK_SIZE;
    uint32_t w = (uint32_t)((hi - u + LZ_PAGE_SIZE - 1) >> LZ_PAGE_SHIFT);
    if (atomic_load_explicit(&du->xwritten, memory_order_relaxed) < w)
      atomic_store_explicit(&du->xwritten, w, memory_order_relaxed);
  }
}
lz_inline void written_block(large_t *d, uintptr_t a, size_t len) {
  if (lz_unlikely(atomic_load_explicit(&d->xwritten, memory_order_relaxed) != LZ_CHUNK_PAGES ||
                  (a & LZ_CHUNK_MASK) + len > LZ_CHUNK_SIZE))
    written_slow(d, a, len);
}

/* The pages of [from, from + len) (whole units, or a range's last) are to
 * move to `to` (a unit boundary), both held by the caller: their counts
 * go first (the old addresses are free once the pages have moved, and
 * another thread may make a block there at once). */
lz_text_late static void written_moved(uintptr_t from, size_t len, uintptr_t to) {
  for (size_t off = 0; off < len; off += LZ_CHUNK_SIZE) {
    large_t *s = desc_of(from + off), *d = desc_make(unit_of(to + off));
    uint32_t w = s == NULL ? 0 : atomic_load_explicit(&s->xwritten, memory_order_relaxed);
    if (s != NULL) atomic_store_explicit(&s->xwritten, 0, memory_order_relaxed);
    if (d != NULL) atomic_store_explicit(&d->xwritten, w, memory_order_relaxed);
  }
}

/* The written pages of each unit of [base, base + size) (at most
 * RES_UNITS_MAX units) into res; the number of units filled. */
static size_t range_residency(uintptr_t base, size_t size, uint16_t *res) {
  size_t units = (size + LZ_CHUNK_MASK) >> LZ_CHUNK_SHIFT;
  if (units > RES_UNITS_MAX) units = RES_UNITS_MAX;
  for (size_t u = 0; u < units; u++) {
    large_t *d = desc_of(base + (u << LZ_CHUNK_SHIFT));
    res[u] = d == NULL ? 0 : (uint16_t)atomic_load_explicit(&d->xwritten, memory_order_relaxed);
  }
  return units;
}

/* The unit offset in the cached range v where `need` bytes find the most
 * written pages, and its rank (*score): first the written pages under the
 * `need` bytes (all of the units they cover but the last, and of that one
 * no more than the block reaches), then the fewest written pages left
 * idle in the rest of the last unit (a block of 12 MiB + 64 B has 4 KiB of
 * its seventh unit: put there a unit that holds little, so that the
 * written ones go to the next request). One rank of the two, pages under
 * the request less pages left idle, did worse: the second round of
 * tests/large_reuse part 7 (then run after the other parts) grew the
 * resident set by 2-4 MB in each of 60 runs. */
#define RANK_IDLE 1024 /* more than the pages of a unit */
lz_text_late static size_t range_best_offset(uint64_t v, size_t need, size_t *score) {
  uint16_t res[RES_UNITS_MAX];
  size_t size = slot_size(v), pg = LZ_PAGE_SIZE;
  size_t units = range_residency(slot_base(v), size, res);
  size_t k = chunk_round(need) >> LZ_CHUNK_SHIFT, last = (size - need) >> LZ_CHUNK_SHIFT;
  lz_assert(k >= 2); /* more than a unit (cache_take) */
  size_t tail = (need - ((k - 1) << LZ_CHUNK_SHIFT) + pg - 1) / pg; /* pages of the last unit reached */
  size_t sum = 0, best = 0, best_o = 0; /* sum: res[o .. o + k - 2] */
  for (size_t o = 0; o <= last && o < units; o++) {
    if (o == 0)
      for (size_t u = 0; u + 1 < k && u < units; u++) sum += res[u];
    else {
      sum -= res[o - 1];
      if (o + k - 2 < units) sum += res[o + k - 2];
    }
    size_t r = o + k - 1 < units ? res[o + k - 1] : 0;
    size_t t = r < tail ? r : tail, idle = r - t < RANK_IDLE ? r - t : RANK_IDLE - 1;
    size_t rank = (sum + t) * RANK_IDLE + (RANK_IDLE - 1 - idle);
    if (o == 0 || rank > best) {
      best = rank;
      best_o = o;
    }
  }
  *score = best;
  return best_o << LZ_CHUNK_SHIFT;
}

/* Of the cached ranges of `node` that hold `need` bytes, the one (and
 * offset) with the most written pages (above); 0 if none. */
lz_text_late static lz_noinline uint64_t cache_pick_resident(size_t need, unsigned node, size_t *slot, size_t *off) {
  uint64_t pick = 0;
  size_t pick_score = 0;
  for (size_t i = 0, n = slots_seen(); i < n; i++) {
    uint64_t v = atomic_load_explicit(&slots[i], memory_order_relaxed);
    if (!slot_holds(v, need, node)) continue;
    size_t score, o = range_best_offset(v, need, &score);
    if (pick == 0 || score > pick_score || (score == pick_score && slot_size(v) < slot_size(pick))) {
      pick = v;
      pick_score = score;
      *slot = i;
      *off = o;
    }
  }
  return pick;
}

/* Of several cached ranges of `node` that hold `need` bytes, the smallest,
 * but first one that begins where a block began (its map byte kept: the
 * block's first bytes, most likely written) over one that begins inside a
 * block (the rest of its last unit, most likely never touched). */
lz_text_late static lz_noinline uint64_t cache_pick_head(size_t need, unsigned node, size_t *slot) {
  uint64_t fit = 0;
  bool fit_head = false;
  for (size_t i = 0, n = slots_seen(); i < n; i++) {
    uint64_t v = atomic_load_explicit(&slots[i], memory_order_relaxed);
    if (!slot_holds(v, need, node)) continue;
    if (fit != 0 && fit_head && slot_size(v) >= slot_size(fit)) continue; /* no better */
    bool head = chunkmap_kind(slot_base(v)) == CHUNK_LARGE;
    if (fit == 0 || head > fit_head || (head == fit_head && slot_size(v) < slot_size(fit))) {
      fit = v;
      *slot = i;
      fit_head = head;
    }
  }
  return fit;
}

/* Takes a cached range of `node` that holds `need` bytes: for a request of
 * more than a unit the one with the most written pages for it ("Resident
 * pages" above), else the smallest (cache_pick_head when there are
 * several); *off is where in it the block goes (0 but for the first).
 * False if none holds it (the caller maps a new range and fills it with
 * cached units, range_fill). */
static bool cache_take(size_t need, unsigned node, uintptr_t *base, size_t *size, size_t *off) {
  if (LZ_LARGE_CACHE_ENTRIES == 0) return false;
  for (int attempt = 0; attempt < 4; attempt++) {
    uint64_t fit = 0;
    size_t fit_i = 0, fits = 0;
    for (size_t i = 0, n = slots_seen(); i < n; i++) {
      uint64_t v = atomic_load_explicit(&slots[i], memory_order_relaxed);
      if (!slot_holds(v, need, node)) continue;
      fits++;
      if (fit == 0 || slot_size(v) < slot_size(fit)) {
        fit = v;
        fit_i = i;
      }
    }
    if (fit == 0) return false;
    uint64_t v = fit;
    size_t i = fit_i;
    *off = 0;
    if (need > LZ_CHUNK_SIZE && (fits > 1 || slot_size(fit) >= need + LZ_CHUNK_SIZE)) {
      uint64_t r = cache_pick_resident(need, node, &i, off);
      if (r != 0) v = r;
      else i = fit_i;
    } else if (fits > 1) {
      uint64_t r = cache_pick_head(need, node, &i);
      if (r != 0) v = r;
      else i = fit_i;
    }
    if (!slot_take(i, v)) continue;
    if (lz_unlikely(lz_numa_on) && slot_node(v) != node) { /* changed before we took it */
      cache_put(slot_base(v), slot_size(v), slot_node(v));
      continue;
    }
    *base = slot_base(v);
    *size = slot_size(v);
    return true;
  }
  return false;
}

/* A 2 MiB unit of cached large memory of `node` for a new chunk
 * (chunk.c's unit source, handed down by start.c): a heap that needs a
 * chunk while freed large ranges wait here takes their address space and
 * gives their pages back (chunk.c decommits the unit) rather than leave
 * them resident beside the fresh ones of a new chunk (bench sqlite: its
 * sorter's realloc-grown buffers, 16 MiB and less, waited here while the
 * next statement's rows and cache pages faulted in new chunks: peak RSS
 * 58-65 MB against glibc's 50.4). Takes the smallest
 * cached range of at least a unit (the larger ones stay for large
 * blocks), keeps its first unit and caches the rest. The unit's chunk map
 * byte is CHUNK_NONE when it is returned (the chunk's own once chunk.c
 * has made its header); its descriptor keeps what it said (a freed
 * block's check word names a double free once the chunk has gone back).
 * (Taking instead the unit with the fewest written pages, a range's first
 * or last, left bench/realprog xz-d-12M's peak RSS 0.5 MB higher.) 0 if
 * no cached range holds a whole unit, and at level 2 (guard pages in
 * freed ranges). */
lz_text_late static lz_noinline uintptr_t cache_unit_take(unsigned node) {
  for (int attempt = 0; attempt < 4; attempt++) {
    uint64_t best = 0;
    size_t best_i = 0;
    for (size_t i = 0, n = slots_seen(); i < n; i++) {
      uint64_t v = atomic_load_explicit(&slots[i], memory_order_relaxed);
      if (!slot_holds(v, LZ_CHUNK_SIZE, node)) continue;
      if (best == 0 || slot_size(v) < slot_size(best)) {
        best = v;
        best_i = i;
      }
    }
    if (best == 0) return 0;
    if (!slot_take(best_i, best)) continue;
    uintptr_t base = slot_base(best);
    size_t size = slot_size(best);
    if (lz_unlikely(lz_numa_on) && slot_node(best) != node) { /* changed before we took it */
      cache_put(base, size, slot_node(best));
      continue;
    }
    /* Counted out as range_unmap does (chunk.c counts it in as a chunk). */
    atomic_fetch_sub_explicit(&lz_large_mapped, LZ_CHUNK_SIZE, memory_order_relaxed);
    units_clear(base, LZ_CHUNK_SIZE);
    written_fresh(base, LZ_CHUNK_SIZE); /* decommitted by chunk.c */
    if (lz_unlikely(lz_numa_on)) numa_account(node, -(ptrdiff_t)LZ_CHUNK_SIZE);
    if (size > LZ_CHUNK_SIZE) cache_put(base + LZ_CHUNK_SIZE, size - LZ_CHUNK_SIZE, node);
    return base;
  }
  return 0;
}

/* Every process's first chunk asks: the test of a cache that never held a
 * range is hot text (internal.h, lz_text_hot), the walk is not, so a
 * process that frees no large block runs no code beyond the hot window. */
lz_text_hot uintptr_t large_cache_unit(unsigned node) {
  if (LZ_LARGE_CACHE_ENTRIES == 0 || lz_secure2 || slots_seen() == 0) return 0;
  return cache_unit_take(node);
}

/* The caller holds [base, base + *size) with *size >= need: keeps the pages
 * up to the first 2 MiB boundary at or after `need` and caches the rest. */
static void range_trim(uintptr_t base, size_t *size, size_t need, unsigned node) {
  size_t keep = chunk_round(need);
  if (keep >= *size) return;
  cache_put(base + keep, *size - keep, node);
  *size = keep;
}

/* Fresh pages [start, end) just mapped for a range of `node` are replaced
 * by resident pages of other cached ranges of the node (moved, not
 * copied), as far as they go: pages once faulted in are reused instead of
 * staying cached, resident, beside new ones (bench large: a block that
 * fits no cached range grew the largest by fresh pages while the others
 * waited for their decay, peak RSS 784 MB where glibc's is 633). The
 * units with the most resident pages are taken out of their ranges and
 * moved first, so they come first, where the block's bytes begin (what is
 * left of a range goes back to the cache: runs of its units, each starting
 * on a unit as a cached range must); a unit with none stays where it is,
 * moving it would save no fault (bench/realprog xz-d-12M: units moved in
 * slot order put the untouched rests of blocks' last units first, and the
 * block faulted in 1.8 MB beside resident units moved behind them).
 * Returns the end of the moved pages (start if none): below it the range
 * may hold old data. */
#define FILL_MAX 64 /* units moved at most per fill (128 MiB) */
typedef struct fill_pick_s {
  uint64_t v;        /* the cached range, as its slot held it */
  uint32_t slot;     /* its slot */
  uint16_t unit;     /* the unit in it */
  uint16_t resident; /* its resident pages; 0 once moved */
} fill_pick_t;

static bool pick_before(const fill_pick_t *a, const fill_pick_t *b) { /* by range, then unit */
  return a->slot != b->slot ? a->slot < b->slot : a->unit < b->unit;
}

lz_text_late static lz_noinline uintptr_t range_fill(uintptr_t start, uintptr_t end, unsigned node) {
  uint16_t res[RES_UNITS_MAX];
  fill_pick_t pick[FILL_MAX];
  size_t want = (end - start + LZ_CHUNK_MASK) >> LZ_CHUNK_SHIFT;
  size_t npick = 0;
  if (want > FILL_MAX) want = FILL_MAX;
  /* The `want` units of the cached ranges with the most written pages
   * ("Resident pages" above), sorted by them, most first. */
  for (size_t i = 0, n = slots_seen(); i < n; i++) {
    uint64_t v = atomic_load_explicit(&slots[i], memory_order_relaxed);
    if (!slot_holds(v, 0, node)) continue;
    size_t units = range_residency(slot_base(v), slot_size(v), res);
    for (size_t u = 0; u < units; u++) {
      if (res[u] == 0 || (npick == want && res[u] <= pick[npick - 1].resident)) continue;
      size_t j = npick < want ? npick++ : want - 1;
      for (; j > 0 && pick[j - 1].resident < res[u]; j--) pick[j] = pick[j - 1];
      pick[j] = (fill_pick_t){.v = v, .slot = (uint32_t)i, .unit = (uint16_t)u, .resident = res[u]};
    }
  }
  /* Each range taken once (its picks dropped if it changed meanwhile). */
  for (size_t j = 0; j < npick; j++) {
    size_t k = 0;
    while (k < j && pick[k].slot != pick[j].slot) k++;
    if (k < j) { /* taken with an earlier pick, or dropped with it */
      if (pick[k].v == 0) pick[j].v = 0;
      continue;
    }
    uint64_t v = pick[j].v;
    if (!slot_take(pick[j].slot, v)) pick[j].v = 0;
    else if (lz_unlikely(lz_numa_on) && slot_node(v) != node) { /* changed before we took it */
      cache_put(slot_base(v), slot_size(v), slot_node(v));
      pick[j].v = 0;
    }
  }
  /* Moved most resident first, a unit (or a range's shorter last one)
   * while it fits. */
  uintptr_t at = start;
  for (size_t j = 0; j < npick; j++) {
    size_t k = 0;
    while (pick[k].slot != pick[j].slot) k++;
    if (pick[k].v == 0) continue;
    uintptr_t from = slot_base(pick[j].v) + ((uintptr_t)pick[j].unit << LZ_CHUNK_SHIFT);
    uintptr_t e = slot_base(pick[j].v) + slot_size(pick[j].v);
    size_t len = e - from < LZ_CHUNK_SIZE ? e - from : LZ_CHUNK_SIZE;
    if (len > end - at) continue;
    /* The units after it in the range, if they come next (as resident:
     * equal counts keep the order of the look), move with it. */
    size_t last = j;
    while (last + 1 < npick && pick[last + 1].slot == pick[j].slot && pick[last + 1].unit == pick[last].unit + 1 &&
           from + len < e && len + (e - (from + len) < LZ_CHUNK_SIZE ? e - (from + len) : LZ_CHUNK_SIZE) <= end - at) {
      last++;
      len += e - (from + len) < LZ_CHUNK_SIZE ? e - (from + len) : LZ_CHUNK_SIZE;
    }
    units_clear(from, len); /* before the move: the old addresses become free */
    written_moved(from, len, at);
    if (os_move((void *)from, len, (void *)at) != 0) {
      written_moved(at, len, from);
      break;
    }
    /* The fresh pages replaced were counted as mapped, and so were these. */
    if (lz_unlikely(lz_numa_on)) numa_account(node, -(ptrdiff_t)len);
    atomic_fetch_sub_explicit(&lz_large_mapped, len, memory_order_relaxed);
    at += len;
    for (; j < last; j++) pick[j].resident = 0;
    pick[j].resident = 0;
  }
  /* What is left of each range taken goes back: the runs between its
   * moved units. */
  for (size_t j = 1; j < npick; j++)
    for (size_t k = j; k > 0 && pick_before(&pick[k], &pick[k - 1]); k--) {
      fill_pick_t t = pick[k];
      pick[k] = pick[k - 1];
      pick[k - 1] = t;
    }
  for (size_t j = 0; j < npick;) {
    size_t first = j;
    bool taken = false;
    for (; j < npick && pick[j].slot == pick[first].slot; j++) taken |= pick[j].v != 0;
    if (!taken) continue;
    uint64_t v = 0;
    for (size_t k = first; k < j; k++) v = pick[k].v != 0 ? pick[k].v : v;
    uintptr_t b = slot_base(v), e = b + slot_size(v), cur = b;
    for (size_t k = first; k < j; k++) {
      if (pick[k].resident != 0) continue; /* not moved */
      uintptr_t from = b + ((uintptr_t)pick[k].unit << LZ_CHUNK_SHIFT);
      if (from > cur) cache_put(cur, from - cur, node);
      cur = from + LZ_CHUNK_SIZE < e ? from + LZ_CHUNK_SIZE : e;
    }
    if (cur < e) cache_put(cur, e - cur, node);
  }
  return at;
}

/* Grows the range [base, base + *size) of `node` that the caller holds to
 * at least `need` bytes: by the cached ranges that follow it, else by
 * mapping the pages after it, else by moving its pages into a fresh
 * mapping. Returns the new base and updates *size and *dirty (the bytes
 * from the base that may hold old data: pages added by mapping are zero);
 * 0 if the kernel refuses, the range unchanged. The chunk map bytes of the
 * range's other units are left as they were (the caller clears them). */
lz_text_late static lz_noinline uintptr_t range_grow(uintptr_t base, size_t *size, size_t need, unsigned node, size_t *dirty) {
  size_t orig = *size;
  for (size_t i = 0, n = slots_seen(); i < n && *size < need; i++) {
    uint64_t v = atomic_load_explicit(&slots[i], memory_order_relaxed);
    if (v == 0 || slot_base(v) != base + *size || (lz_numa_on && slot_node(v) != node)) continue;
    if (!slot_take(i, v)) continue;
    if (lz_unlikely(lz_numa_on) && slot_node(v) != node) {
      cache_put(slot_base(v), slot_size(v), slot_node(v));
      continue;
    }
    *size += slot_size(v);
    *dirty = *size;
    i = (size_t)-1; /* look again after the new end */
  }
  if (*size >= need) {
    range_trim(base, size, need, node);
    if (*dirty > *size) *dirty = *size;
    return base;
  }
  size_t want = chunk_round(need);
  if (os_map_at((void *)(base + *size), want - *size) == 0) {
    range_added((void *)(base + *size), want - *size, node);
    written_fresh(base + *size, want - *size);
    uintptr_t moved = range_fill(base + *size, base + want, node);
    if (moved > base + *size) *dirty = moved - base;
    *size = want;
    return base;
  }
  uint8_t *to = os_map_aligned(want, LZ_CHUNK_SIZE);
  if (to != NULL && desc_make(unit_of((uintptr_t)to)) != NULL) {
    uint8_t mark = chunkmap_kind(base);
    units_clear(base, *size); /* before the move: the old addresses become free */
    written_fresh((uintptr_t)to, want);
    written_moved(base, *size, (uintptr_t)to);
    if (os_move((void *)base, *size, to) == 0) {
      range_added(to + *size, want - *size, node); /* the moved pages were counted */
      uintptr_t moved = range_fill((uintptr_t)to + *size, (uintptr_t)to + want, node);
      if (moved > (uintptr_t)to + *size) *dirty = moved - (uintptr_t)to;
      *size = want;
      return (uintptr_t)to;
    }
    written_moved((uintptr_t)to, *size, base);
    if (mark != CHUNK_NONE) chunkmap_set(base, mark);
  }
  if (to != NULL) os_unmap(to, want);
  if (*size > orig) cache_put(base + orig, *size - orig, node); /* what was absorbed goes back */
  *size = orig;
  return 0;
}

/* ---------------------------------------------------------------------------
 * Blocks
 * ------------------------------------------------------------------------- */
/* The most the live block was asked for since it was made or moved
 * (malloc, or a realloc that grew it; a shrink in place keeps it). */
size_t large_requested(const large_t *l) { return atomic_load_explicit(&l->xreq, memory_order_relaxed); }

size_t large_usable(const large_t *l) {
  if (atomic_load_explicit(&l->xguard, memory_order_relaxed) != 0) return atomic_load_explicit(&l->xreq, memory_order_relaxed);
  return atomic_load_explicit(&l->xsize, memory_order_relaxed);
}

/* The guard page of the live block at p described by l (with a guard). */
static uint8_t *guard_of(const large_t *l, void *p) {
  return (uint8_t *)p + page_round(atomic_load_explicit(&l->xreq, memory_order_relaxed));
}

/* Level 2: the canary bytes after the block are intact, or the block is
 * reported (naming func) and the process aborts. */
static void canary_check(const large_t *l, void *p, const char *func) {
  if (atomic_load_explicit(&l->xguard, memory_order_relaxed) == 0) return;
  uint8_t *end = (uint8_t *)p + atomic_load_explicit(&l->xreq, memory_order_relaxed);
  if (lz_unlikely(lz_pattern_check(end, guard_of(l, p), lz_canary) != NULL))
    lz_fatal_pointer("buffer overflow", func, p);
}

uintptr_t large_fault_owner(uintptr_t a, int *what) {
  /* Down from a's unit to the block's first (a bounded walk: this runs
   * only in a fault handler). */
  for (uintptr_t u = unit_of(a), steps = 0; u > 0 && steps < ((uintptr_t)1 << 16); u--, steps++) {
    uintptr_t base = u << LZ_CHUNK_SHIFT;
    uint8_t kind = chunkmap_kind(base);
    if (kind == CHUNK_SPANS) return 0;
    if (kind != CHUNK_LARGE) continue;
    large_t *l = desc_get(u);
    if (l == NULL || atomic_load_explicit(&l->xguard, memory_order_relaxed) == 0) return 0;
    uintptr_t w = atomic_load_explicit(&l->xcheck, memory_order_relaxed) ^ lz_key;
    uintptr_t p = w & ~(uintptr_t)1;
    if (base_of((void *)p) != base) return 0;
    uintptr_t g = (uintptr_t)guard_of(l, (void *)p);
    if (w & 1) { /* freed, in the quarantine: the whole range is PROT_NONE */
      if (!quarantined(base) || a >= base + atomic_load_explicit(&l->xsize, memory_order_relaxed)) return 0;
      *what = LARGE_FAULT_FREED;
      return p;
    }
    if (a >= g && a < g + LZ_PAGE_SIZE) *what = LARGE_FAULT_OVERFLOW;
    else if (p != base && a >= p - LZ_PAGE_SIZE && a < p) *what = LARGE_FAULT_UNDERFLOW;
    else return 0;
    return p;
  }
  return 0;
}

/* ---------------------------------------------------------------------------
 * Level 2: the quarantine of freed large blocks
 *
 * A freed block's whole range becomes PROT_NONE and waits here before it
 * joins the cache, so a read or write after free faults at once and is
 * reported ("write after free", secure.c's fault hook, which finds the
 * freed descriptor: its check word says freed). At most
 * LARGE_QUARANTINE_ENTRIES ranges and about LARGE_QUARANTINE_BYTES
 * (ranges larger than that are not held); each put takes one slot in turn
 * with one atomic exchange and releases what it held (PROT_READ|WRITE
 * again, then the cache), so FIFO order, no lock, and a fork child keeps
 * every slot as it was. A double free meanwhile is named by the
 * descriptor as for a cached range. With no cache (LZMALLOC_LARGE_CACHE=0
 * or a purge delay of 0: freed memory goes back at once) there is no
 * quarantine either: the range is unmapped, and a touch after free faults
 * without a message.
 * ------------------------------------------------------------------------- */
#define LARGE_QUARANTINE_ENTRIES 16
#define LARGE_QUARANTINE_BYTES ((size_t)64 * MiB)
static _Atomic(uint64_t) lq_slots[LARGE_QUARANTINE_ENTRIES];
static _Atomic(size_t) lq_next, lq_bytes;

static void quarantine_release(uint64_t v) {
  uintptr_t base = slot_base(v);
  size_t size = slot_size(v);
  atomic_fetch_sub_explicit(&lq_bytes, size, memory_order_relaxed);
  large_t *d = desc_get(unit_of(base));
  unsigned node = d != NULL ? large_node(d) : 0;
  if (os_protect_rw((void *)base, size) != 0) {
    range_unmap(base, size, node); /* cannot be reused: give it back */
    return;
  }
  cache_put(base, size, node);
}

static bool quarantined(uintptr_t base) {
  for (size_t i = 0; i < LARGE_QUARANTINE_ENTRIES; i++) {
    uint64_t v = atomic_load_explicit(&lq_slots[i], memory_order_relaxed);
    if (v != 0 && slot_base(v) == base) return true;
  }
  return false;
}

/* Holds the freed range [base, base + size) (its guards still PROT_NONE);
 * false if it does not go to the quarantine. */
static bool quarantine_put(uintptr_t base, size_t size) {
  if (size > LARGE_QUARANTINE_BYTES || os_protect_none((void *)base, size) != 0) return false;
  atomic_fetch_add_explicit(&lq_bytes, size, memory_order_relaxed);
  size_t i = atomic_fetch_add_explicit(&lq_next, 1, memory_order_relaxed) % LARGE_QUARANTINE_ENTRIES;
  uint64_t old = atomic_exchange_explicit(&lq_slots[i], slot_encode(base, size), memory_order_acq_rel);
  if (old != 0) quarantine_release(old);
  /* Over the bytes: the oldest go on (each turn takes the next slot). */
  for (int n = 0; n < LARGE_QUARANTINE_ENTRIES &&
                  atomic_load_explicit(&lq_bytes, memory_order_relaxed) > LARGE_QUARANTINE_BYTES; n++) {
    size_t j = atomic_fetch_add_explicit(&lq_next, 1, memory_order_relaxed) % LARGE_QUARANTINE_ENTRIES;
    uint64_t v = atomic_exchange_explicit(&lq_slots[j], 0, memory_order_acq_rel);
    if (v != 0) quarantine_release(v);
  }
  janitor_notify();
  return true;
}

/* Everything in the quarantine goes on to the cache (trims that force). */
static size_t quarantine_flush(void) {
  size_t n = 0;
  for (size_t i = 0; i < LARGE_QUARANTINE_ENTRIES; i++) {
    uint64_t v = atomic_exchange_explicit(&lq_slots[i], 0, memory_order_acq_rel);
    if (v != 0) {
      quarantine_release(v);
      n += slot_size(v);
    }
  }
  return n;
}



/* Makes [base, base + size) of `node` (held by the caller) the live block
 * described by d. If the kernel refuses its guard page: NULL when `strict`
 * (a new block is never handed out unguarded; the range is then the
 * caller's), else the block has no guard (realloc: the user's data was
 * already moved, and losing it is worse). */
lz_inline void *block_make(uintptr_t base, size_t size, size_t req, size_t lead, unsigned node, large_t *d,
                           bool strict) {
  size_t guard = guard_bytes();
  uint8_t *p = (uint8_t *)base + lead;
  uint8_t *g = p + page_round(req);
  lz_assert(!guard || (uintptr_t)g + guard <= base + size);
  if (guard && os_protect_none(g, guard) != 0) {
    if (strict) return NULL;
    guard = 0;
  }
  if (guard && lead && os_protect_none(p - LZ_PAGE_SIZE, LZ_PAGE_SIZE) != 0) {
    os_protect_rw(g, guard);
    if (strict) return NULL;
    guard = 0;
  }
  if (guard) lz_pattern_fill(p + req, g, lz_canary);
  if (size > LZ_CHUNK_SIZE) {
    units_clear(base + LZ_CHUNK_SIZE, size - LZ_CHUNK_SIZE);
    for (uintptr_t a = base + LZ_CHUNK_SIZE; a < base + size; a += LZ_CHUNK_SIZE) {
      large_t *u = desc_get(unit_of(a));
      if (u != NULL && atomic_load_explicit(&u->xcheck, memory_order_relaxed) != 0)
        atomic_store_explicit(&u->xcheck, 0, memory_order_relaxed);
    }
  }
  size_t usable = guard ? req : size;
  written_block(d, (uintptr_t)p, req);
  atomic_store_explicit(&d->xsize, size, memory_order_relaxed);
  atomic_store_explicit(&d->xreq, req, memory_order_relaxed);
  atomic_store_explicit(&d->xguard, (uint32_t)guard, memory_order_relaxed);
  atomic_store_explicit(&d->xnode, node, memory_order_relaxed);
  atomic_store_explicit(&d->xcheck, lz_key ^ (uintptr_t)p, memory_order_relaxed);
  chunkmap_set(base, CHUNK_LARGE);
  size_t live = atomic_fetch_add_explicit(&lz_large_in_use, usable, memory_order_relaxed) + usable;
  peak_note(live);
  note_max(&lz_large_in_use_max, live);
  return p;
}

/* Takes the smallest cached range of `node` that holds `need` bytes from
 * its first multiple of `align` (above a unit; cached ranges start on a
 * unit); *off is that start's offset in it. */
lz_text_late static lz_noinline bool cache_take_aligned(size_t need, size_t align, unsigned node, uintptr_t *base,
                                                        size_t *size, size_t *off) {
  for (int attempt = 0; attempt < 4; attempt++) {
    uint64_t fit = 0;
    size_t fit_i = 0, fit_off = 0;
    for (size_t i = 0, n = slots_seen(); i < n; i++) {
      uint64_t v = atomic_load_explicit(&slots[i], memory_order_relaxed);
      if (!slot_holds(v, need, node)) continue;
      size_t o = ((slot_base(v) + align - 1) & ~(uintptr_t)(align - 1)) - slot_base(v);
      if (slot_size(v) - need < o || (fit != 0 && slot_size(v) >= slot_size(fit))) continue;
      fit = v;
      fit_i = i;
      fit_off = o;
    }
    if (fit == 0) return false;
    if (!slot_take(fit_i, fit)) continue;
    *base = slot_base(fit);
    *size = slot_size(fit);
    *off = fit_off;
    return true;
  }
  return false;
}

/* A range of `node` for `need` bytes starting on a multiple of `align`
 * from the cache (split), or 0. An alignment above a unit takes a range
 * with such a start (cache_take_aligned; aligned_alloc of 4 MiB for 3 MiB,
 * 300 times, each mapped anew before: 2.4-5.9 ms, tcmalloc 0.2). */
static uintptr_t range_from_cache(size_t need, size_t align, unsigned node, size_t *size, size_t *dirty) {
  uintptr_t base;
  size_t off;
  if (!(align <= LZ_CHUNK_SIZE ? cache_take(need, node, &base, size, &off)
                               : LZ_LARGE_CACHE_ENTRIES != 0 && cache_take_aligned(need, align, node, &base, size, &off)))
    return 0;
  if (off != 0) { /* the units before the block stay cached */
    cache_put(base, off, node);
    base += off;
    *size -= off;
  }
  lz_assert(*size >= need && (base & (align - 1)) == 0);
  range_trim(base, size, need, node);
  *dirty = *size;
  return base;
}

/* calloc's zeros over reused pages [p, p + n) (p page aligned), a unit of
 * pages (2 MiB, the window) at a time: a window at least half resident is
 * cleared in place (memset), any other given back (MADV_DONTNEED: its
 * pages read zero, and fault in only where the program touches them, as
 * a fresh mapping's would). A cached range may hold pages its last block
 * asked for and never touched (xwritten counts what blocks asked for),
 * and a memset of the whole block made them all resident, a fault a page,
 * for a program that touches a few (a 590 MB calloc over such a range
 * took 678 ms, RSS up by as much; glibc's fresh mapping costs nothing
 * until touched). mincore (os_resident) only chooses the way: a page it
 * calls absent (or swapped out, with data) is cleared either way. Per
 * window, not per page: a program that touched one page in 16 left runs
 * of one page, a call each, and its resident pages, kept, added up over
 * the blocks placed there with other strides to every page (bench
 * calloc-sparse). A program that touches all it asked for finds its
 * windows resident: cleared in place, as before, without a fault.
 * Neighbouring windows of the same way go in one call (a large memset
 * streams past the cache: 64 MiB cleared as 32 memsets of 2 MiB took 1.5
 * times as long). The last partial page is cleared in place (level 2's
 * canary may follow the block's end on it). */
#define ZERO_WINDOW_PAGES (LZ_CHUNK_SIZE / LZ_PAGE_SIZE)
lz_inline void zero_run(uint8_t *a, size_t len, bool in_place) {
  if (len != 0 && (in_place || os_decommit(a, len) != 0)) memset(a, 0, len);
}
lz_text_late static lz_noinline void large_zero(uint8_t *p, size_t n) {
  unsigned char vec[ZERO_WINDOW_PAGES];
  size_t whole = n & ~(size_t)(LZ_PAGE_SIZE - 1);
  size_t run = 0;       /* the pending run: [run, off) */
  bool in_place = true; /* its way */
  for (size_t off = 0; off < whole; off += LZ_CHUNK_SIZE) {
    size_t len = whole - off < LZ_CHUNK_SIZE ? whole - off : LZ_CHUNK_SIZE, pages = len >> LZ_PAGE_SHIFT;
    size_t resident = pages;
    if (os_resident(p + off, len, vec) == 0) {
      const uint64_t ones = 0x0101010101010101u; /* bit 0 of eight pages' bytes */
      size_t i = 0;
      resident = 0;
      for (uint64_t w; i + 8 <= pages; i += 8) {
        memcpy(&w, vec + i, 8);
        resident += (size_t)__builtin_popcountll(w & ones);
      }
      for (; i < pages; i++) resident += vec[i] & 1;
    }
    bool dense = resident * 2 >= pages;
    if (dense != in_place) {
      zero_run(p + run, off - run, in_place);
      run = off;
      in_place = dense;
    }
  }
  zero_run(p + run, whole - run, in_place);
  if (n > whole) memset(p + whole, 0, n - whole);
}

lz_text_hot void *large_malloc(size_t size, size_t align, bool zero) {
  if (size > LZ_MAX_ALLOC || align > LZ_LARGE_ALIGN_MAX) return NULL;
  size_t lead = lead_bytes(align);
  size_t need = lead + page_round(size) + guard_bytes();
  size_t got = 0, dirty = 0;
  unsigned node = caller_node();
  uintptr_t base = range_from_cache(need, align, node, &got, &dirty);
  if (base == 0) {
    got = chunk_round(need);
    base = (uintptr_t)os_map_aligned(got, align > LZ_CHUNK_SIZE ? align : LZ_CHUNK_SIZE);
    if (base == 0) return NULL;
    if (lz_unlikely(lz_numa_on)) node = numa_bind_large((void *)base, got); /* before the first touch */
    atomic_fetch_add_explicit(&lz_large_mapped, got, memory_order_relaxed);
    written_fresh(base, got);
    /* No cached range holds it: their resident units replace its fresh
     * pages (range_fill; as the cache, not for an alignment above 2 MiB). */
    dirty = 0;
    if (align <= LZ_CHUNK_SIZE && slots_seen() != 0) dirty = range_fill(base, base + got, node) - base;
  }
  large_t *d = desc_make(unit_of(base));
  void *p = d != NULL ? block_make(base, got, size, lead, node, d, true) : NULL;
  if (p == NULL) {
    range_unmap(base, got, node);
    return NULL;
  }
  note_max(&lz_large_blocks_max, atomic_fetch_add_explicit(&lz_large_blocks, 1, memory_order_relaxed) + 1);
  if (zero && dirty > lead) large_zero(p, dirty - lead < size ? dirty - lead : size);
  return p;
}

lz_text_hot void large_free(large_t *l, void *p) {
  canary_check(l, p, "free");
  uintptr_t base = base_of(p);
  size_t size = atomic_load_explicit(&l->xsize, memory_order_relaxed);
  size_t guard = atomic_load_explicit(&l->xguard, memory_order_relaxed);
  atomic_fetch_sub_explicit(&lz_large_in_use, large_usable(l), memory_order_relaxed);
  atomic_fetch_sub_explicit(&lz_large_blocks, 1, memory_order_relaxed);
  atomic_store_explicit(&l->xcheck, lz_key ^ (uintptr_t)p ^ 1, memory_order_relaxed);
  if (guard && cache_limit() != 0 && quarantine_put(base, size)) return;
  if (guard) {
    os_protect_rw(guard_of(l, p), guard);
    if ((uintptr_t)p != base) os_protect_rw((uint8_t *)p - LZ_PAGE_SIZE, LZ_PAGE_SIZE);
  }
  cache_put(base, size, large_node(l));
  janitor_notify(); /* cached ranges expire even if nobody calls again */
}

/* Resizes a large block in place, by splitting or growing its range, or by
 * moving its pages (never a copy). NULL if the kernel refuses the memory
 * (or the new guard page): the block is then unchanged. */
void *large_realloc(large_t *l, void *p, size_t size) {
  if (size > LZ_MAX_ALLOC) return NULL;
  canary_check(l, p, "realloc");
  uintptr_t base = base_of(p);
  size_t lead = (uintptr_t)p - base; /* kept: the data stays where it is in the range */
  size_t old = atomic_load_explicit(&l->xsize, memory_order_relaxed);
  size_t old_guard = atomic_load_explicit(&l->xguard, memory_order_relaxed);
  size_t old_usable = large_usable(l);
  size_t need = lead + page_round(size) + guard_bytes();
  if (need <= old && chunk_round(need) >= old && old_guard == 0 && guard_bytes() == 0) {
    /* In place: the pages the block may write now, and its largest
     * request (heap.c's realloc_large copies a shrink below half of it). */
    written_block(l, (uintptr_t)p, size);
    if (size > atomic_load_explicit(&l->xreq, memory_order_relaxed)) atomic_store_explicit(&l->xreq, size, memory_order_relaxed);
    return p;
  }
  unsigned node = large_node(l);
  uint8_t *old_g = old_guard ? guard_of(l, p) : NULL;
  if (old_guard) os_protect_rw(old_g, old_guard);
  if (old_guard && lead) os_protect_rw((uint8_t *)p - LZ_PAGE_SIZE, LZ_PAGE_SIZE);
  size_t got = old, dirty = old;
  uintptr_t nb = base;
  if (need <= old) {
    range_trim(base, &got, need, node);
  } else {
    /* The old check word goes before range_grow: once it moves the pages,
     * their addresses are free, another thread may map a block there at
     * once, and l is then that block's descriptor. Written back if the
     * block stays (by block_make where it grew in place). */
    atomic_store_explicit(&l->xcheck, 0, memory_order_relaxed);
    nb = range_grow(base, &got, need, node, &dirty);
    if (nb == 0) {
      atomic_store_explicit(&l->xcheck, lz_key ^ (uintptr_t)p, memory_order_relaxed);
      if (old_guard) os_protect_none(old_g, old_guard);
      if (old_guard && lead) os_protect_none((uint8_t *)p - LZ_PAGE_SIZE, LZ_PAGE_SIZE);
      return NULL;
    }
  }
  atomic_fetch_sub_explicit(&lz_large_in_use, old_usable, memory_order_relaxed);
  /* A moved block's old descriptor is no longer ours to write. */
  large_t *d = nb != base ? desc_get(unit_of(nb)) /* made by range_grow */ : l;
  return block_make(nb, got, size, lead, node, d, false);
}

lz_text_hot size_t large_cache_trim(bool force) {
  size_t flushed = force && guard_bytes() ? quarantine_flush() : 0;
  if (LZ_LARGE_CACHE_ENTRIES == 0) return flushed;
  uint64_t now = os_now_ms();
  peak_age(now);
  long delay = opt_get(OPT_PURGE_DELAY);
  size_t freed = 0;
  for (size_t i = 0, n = slots_seen(); i < n; i++) {
    uint64_t v = atomic_load_explicit(&slots[i], memory_order_relaxed);
    if (v == 0) continue;
    if (!force) {
      uint64_t e = slot_expire(v);
      if (e == 0) { /* first seen: its decay starts now (a hint, see expire_order) */
        large_t *d = desc_get(unit_of(slot_base(v)));
        if (d != NULL) atomic_store_explicit(&d->xexpire, delay < 0 ? UINT64_MAX : now + decay_ms(), memory_order_relaxed);
        continue;
      }
      if (e > now) continue;
    }
    if (!slot_take(i, v)) continue;
    range_unmap(slot_base(v), slot_size(v), slot_node(v));
    freed += slot_size(v);
  }
  return freed + (LZ_LARGE_CACHE_ENTRIES == 0 ? flushed : 0);
}

/* Is the cache empty? (a racy look: the janitor's schedule) Only the
 * slots ever filled: a process that never cached a range reads none of
 * them (their page of the .bss, tests/startup_bss.c). */
bool large_cache_empty(void) {
  for (size_t i = 0, n = slots_seen(); i < n; i++)
    if (atomic_load_explicit(&slots[i], memory_order_relaxed) != 0) return false;
  return true;
}

bool large_block_bounds(uintptr_t a, const uint8_t **lo, const uint8_t **hi) {
  large_t *l = desc_get(unit_of(a));
  if (l == NULL || atomic_load_explicit(&l->xguard, memory_order_relaxed) == 0) return false;
  uintptr_t p = atomic_load_explicit(&l->xcheck, memory_order_relaxed) ^ lz_key;
  if ((p & 1) || base_of((void *)p) != base_of((void *)a)) return false; /* freed, or no block */
  size_t req = atomic_load_explicit(&l->xreq, memory_order_relaxed);
  if (a < p || a >= p + req) return false;
  *lo = (const uint8_t *)p;
  *hi = (const uint8_t *)p + req;
  return true;
}
