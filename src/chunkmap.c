/* chunkmap.c: which 2 MiB units of the address space are ours.
 *
 * One byte per 2 MiB of the user address space (LZ_ARCH_VA_BITS bits,
 * arch.h: 64 MiB of zero-fill address space for 47 bits, 128 MiB for 48;
 * only the pages covering units we use ever become resident). Lookup is
 * one load, lock-free; any thread may read at any time. A byte is written
 * only by the thread that holds the unit's memory:
 *   CHUNK_SPANS  a chunk of spans (header at the unit's base) whose heap has
 *                no id, or a pooled chunk; a chunk of a heap with an id
 *                holds the id instead (CHUNK_HEAP_FIRST .. CHUNK_HEAP_LAST,
 *                internal.h heap_t.map_id: free's fast path compares it
 *                with the thread's heap's fast_id), written by chunk_alloc and
 *                chunk_release as the chunk changes hands;
 *   CHUNK_LARGE  the first unit of a large block (or a unit inside a cached
 *                large range where a block once started; see large.c);
 *   CHUNK_NONE   anything else (foreign memory, freed units).
 */
#include "internal.h"

/* Unit i's byte is lz_chunkmap[i] == lz_chunkmap_ends[i + 1]: free's fast
 * path indexes the map by the unit after the pointer's (alloc.h), and
 * lz_chunkmap_ends[0], no unit's, stays CHUNK_NONE.
 *
 * Read-only until written, page by page. Writable private memory counts
 * against the system's commit limit (the whole of it, resident or not:
 * Committed_AS; with vm.overcommit_memory=2 the limit is enforced), so
 * the map in .bss charged every process 64 MiB it never uses. Read-only
 * zero-fill memory is charged nothing: the map is mapped read-only and a
 * page is made writable (one 4 KiB charge) when a unit it covers is first
 * obtained (chunkmap_prepare), before that unit's byte is written; a
 * process charges the 1 to 3 pages it writes. The shared library has the
 * map in a read-only zero-fill segment of its own (cmake/layout.ld: the
 * loader maps it read-only, not executable, charged nothing); other
 * builds (static, prefixed, the secure library's default layout) have it
 * in .bss and map it read-only over again at start-up (chunkmap_init).
 * Page-aligned and a whole number of pages either way. */
#if LZ_LAYOUT
#define LZ_STR_(x) #x
#define LZ_STR(x) LZ_STR_(x)
#define MAP_BYTES_ASM "((1 << (" LZ_STR(LZ_ARCH_VA_BITS) " - " LZ_STR(LZ_CHUNK_SHIFT) ")) + 4096)"
_Static_assert(LZ_CHUNKMAP_BYTES == ((size_t)1 << (LZ_ARCH_VA_BITS - LZ_CHUNK_SHIFT)) + 4096, "the map's size");
_Static_assert(LZ_PAGE_SIZE == 4096, "the map's alignment");
/* Allocated, neither writable nor in the file (no C attribute names
 * such a section): GNU ld places .lzmap after the segment's last file
 * bytes (cmake/layout.ld). */
__asm__(".pushsection .lzmap,\"a\",%nobits\n\t"
        ".balign 4096\n\t"
        ".globl lz_chunkmap_ends\n\t"
        ".hidden lz_chunkmap_ends\n\t"
        ".type lz_chunkmap_ends, %object\n\t"
        ".size lz_chunkmap_ends, " MAP_BYTES_ASM "\n"
        "lz_chunkmap_ends:\n\t"
        ".zero " MAP_BYTES_ASM "\n\t"
        ".popsection");
#else
lz_hidden __attribute__((aligned(4096))) _Atomic(uint8_t) lz_chunkmap_ends[LZ_CHUNKMAP_BYTES];
#endif

/* Pages of the map made writable: the first two in map_page_hot (their
 * index + 1; 0: none yet), every other as bit p of map_rw (the map's
 * page p), each recorded (release) after the page's mprotect returned,
 * never cleared (a fork child inherits them with the pages). Two threads
 * preparing one page both make it writable: harmless. A process's
 * chunks are rarely more than 8 GiB of address space apart (one map
 * page's), but their bytes fall on two pages whenever they straddle an 8
 * GiB boundary (tests/startup_bss.c, a second thread's chunks: 3 runs in
 * 300 with one slot). map_page_hot lies on the hot variables' page,
 * which every process writes anyway: a first write of map_rw (or read)
 * costs a page of the .bss. */
#define MAP_PAGES (LZ_CHUNKMAP_BYTES / LZ_PAGE_SIZE)
#define MAP_HOT 2
static _Atomic(uint64_t) map_rw[MAP_PAGES / 64 + 1];
lz_hot static _Atomic(uint32_t) map_page_hot[MAP_HOT];

/* The page holding the byte of the unit at chunk_base, counted from the
 * map's first page. */
static inline uintptr_t map_page_of(uintptr_t chunk_base) {
  return ((chunk_base >> LZ_CHUNK_SHIFT) + 1) >> LZ_PAGE_SHIFT;
}

lz_text_hot static lz_noinline bool map_page_prepare(uintptr_t pg) {
  /* map_rw has no bit before both hot slots have their pages. */
  uint32_t last = atomic_load_explicit(&map_page_hot[MAP_HOT - 1], memory_order_acquire);
  if (last == pg + 1) return true;
  if (last != 0 && (atomic_load_explicit(&map_rw[pg / 64], memory_order_acquire) >> (pg % 64)) & 1) return true;
  if (os_protect_rw((void *)((uintptr_t)lz_chunkmap_ends + (pg << LZ_PAGE_SHIFT)), LZ_PAGE_SIZE) != 0) return false;
  for (unsigned i = 0; i < MAP_HOT; i++) {
    uint32_t none = 0;
    if (atomic_compare_exchange_strong_explicit(&map_page_hot[i], &none, (uint32_t)pg + 1, memory_order_release,
                                                memory_order_relaxed) ||
        none == pg + 1)
      return true;
  }
  atomic_fetch_or_explicit(&map_rw[pg / 64], (uint64_t)1 << (pg % 64), memory_order_release);
  return true;
}

lz_text_hot lz_noinline bool chunkmap_prepare(uintptr_t chunk_base) { /* one copy: a chunk's or a leaf's first use */
  if (lz_unlikely(chunk_base >> LZ_CHUNK_SHIFT >= LZ_CHUNKMAP_SIZE)) return true; /* chunkmap_set refuses it */
  uintptr_t pg = map_page_of(chunk_base);
  return lz_likely(pg + 1 == atomic_load_explicit(&map_page_hot[0], memory_order_acquire)) || map_page_prepare(pg);
}

lz_text_hot void chunkmap_init(void) {
#if !LZ_LAYOUT
  /* Nothing is marked yet (process_init runs before any chunk): the map
   * reads zero before and after. Refused, it stays in .bss, writable (and
   * chunkmap_prepare's mprotect changes nothing). */
  (void)os_remap_readonly(lz_chunkmap_ends, LZ_CHUNKMAP_BYTES);
#endif
}

/* The lowest and highest unit ever marked (anything but CHUNK_NONE): the
 * look-ups of addresses that may be anything (chunkmap_kind_any) answer CHUNK_NONE outside them
 * without reading the map. A free-list screen decodes a live block's
 * first word as a link (security.h, block_maybe_free): random bytes there
 * name a random unit, and each read of a map page never touched before
 * made it resident (bench cfrac, random 32-bit digits first in its
 * blocks: 180 such pages, 0.75 MiB of a 2.3 MiB peak). They only widen,
 * each before the unit's byte is written (release), so a reader that
 * sees the byte sees a range holding it. */
lz_hot _Atomic(uintptr_t) lz_chunkmap_lo = LZ_CHUNKMAP_SIZE;
lz_hot _Atomic(uintptr_t) lz_chunkmap_hi;

/* [lo, hi] takes in unit i (any thread: compare-and-swap). Hot text: a
 * small process's first chunk comes here. */
lz_text_hot static void chunkmap_widen(uintptr_t i) {
  uintptr_t lo = atomic_load_explicit(&lz_chunkmap_lo, memory_order_relaxed);
  while (i < lo && !atomic_compare_exchange_weak_explicit(&lz_chunkmap_lo, &lo, i, memory_order_release,
                                                          memory_order_relaxed)) {
  }
  uintptr_t hi = atomic_load_explicit(&lz_chunkmap_hi, memory_order_relaxed);
  while (i > hi && !atomic_compare_exchange_weak_explicit(&lz_chunkmap_hi, &hi, i, memory_order_release,
                                                          memory_order_relaxed)) {
  }
}

void chunkmap_set(uintptr_t chunk_base, uint8_t kind) {
  lz_assert(kind != CHUNK_HEAP_NONE);
  lz_assert((chunk_base & LZ_CHUNK_MASK) == 0);
  uintptr_t i = chunk_base >> LZ_CHUNK_SHIFT;
  if (lz_unlikely(i >= LZ_CHUNKMAP_SIZE)) {
    /* The kernel handed out an address beyond LZ_ARCH_VA_BITS: arch.h is
     * wrong for this system. Refuse loudly rather than lose track. */
    if (kind != CHUNK_NONE) lz_fatal_pointer("mapping beyond the chunk map's address range", "chunkmap_set",
                                             (void *)chunk_base);
    return;
  }
  /* A byte other than CHUNK_NONE is written only for memory obtained
   * after chunkmap_prepare; CHUNK_NONE only over another byte (its
   * callers look first: on a page never written, it would fault). */
  lz_assert(kind != CHUNK_NONE || atomic_load_explicit(&lz_chunkmap[i], memory_order_relaxed) != CHUNK_NONE);
  if (kind != CHUNK_NONE) chunkmap_widen(i);
  atomic_store_explicit(&lz_chunkmap[i], kind, memory_order_release);
}
