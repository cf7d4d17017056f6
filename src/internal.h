/* internal.h: lzmalloc's types and every cross-file declaration.
 *
 * Glossary
 *   chunk    2 MiB of address space, 2 MiB aligned, owned by one heap. Its
 *            first pages hold the chunk header (chunk_t); the rest are 4 KiB
 *            pages handed out as spans.
 *   page     4 KiB unit of a chunk; free pages are tracked in a bitmap.
 *   span     a run of pages inside a chunk with one descriptor (span_t):
 *              slab   carved into blocks of one small size class (<= 16 KiB,
 *                     LZ_SLAB_MAX);
 *              medium one block of whole pages (<= 1 MiB).
 *   large    a block > 1 MiB in its own page range (2 MiB aligned; at level 2
 *            after a guard page), its descriptor (large_t) out of band;
 *            freed ranges are cached.
 *   heap     per-thread allocation state (heap_t): class queues of slabs,
 *            the chunks it owns, and an atomic list of blocks other threads
 *            freed back to it.
 *   chunk map  one byte per 2 MiB of address space: which chunks are ours.
 *
 * Ownership: a heap (and everything reachable from it: its chunks, spans
 * and their free lists) is touched only by the thread that owns the heap,
 * or by a thread that holds the heap while it is an orphan (state BUSY).
 * The only fields other threads write are heap->xremote (lock-free push)
 * and the chunk map bytes. Atomic fields are prefixed with x.
 */
#ifndef LZ_INTERNAL_H
#define LZ_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch.h"
#include "config.h"
#include "lzmalloc.h"

/* Everything declared below is internal to the library: hidden, so calls
 * and data references bind locally (no GOT or PLT indirection). */
#pragma GCC visibility push(hidden)

/* ---------------------------------------------------------------------------
 * Compiler helpers
 * ------------------------------------------------------------------------- */
#define lz_likely(x) __builtin_expect(!!(x), 1)
#define lz_unlikely(x) __builtin_expect(!!(x), 0)
#define lz_noinline __attribute__((noinline))
#define lz_cold __attribute__((cold, noinline))
#define lz_inline static inline __attribute__((always_inline))
#define lz_hidden __attribute__((visibility("hidden")))
#define lz_noreturn __attribute__((noreturn))
/* Process-wide variables that every process which allocates touches: kept
 * together in .data, whose page the loader writes anyway (relocations, the
 * start of .bss), instead of scattered over .bss between the big zero-filled
 * tables (the chunk map, large.c's descriptors), where each would cost a
 * small process a page fault of its own and a fork child a page copy. */
#define lz_hot __attribute__((section(".data.lz_hot")))
/* Those of them that only allocation paths write (counters, the chunk pool,
 * the list of heaps), never the constructor: right after the first heap's
 * fields (cmake/layout.ld), on the page they share with the other hot
 * variables, which a process writes once it allocates, and a fork child
 * once it allocates or frees on a slow path (slab.c, "Packing armed"), so
 * that they stay on that page, whichever of the heap's fields and the
 * hot variables grow (tests/startup_bss.c). */
#define lz_hot_alloc __attribute__((section(".data.lz_hot_alloc")))
/* Zero-filled variables a small process never looks at (large.c's
 * descriptor directory, numa.c's per-node counts, os.c's fault hook and
 * test hooks): placed after the rest of .bss (x86-64's .lbss, which the
 * linker puts last), so that the chunk map comes right after the hot
 * variables (os.c's, the first file linked, would come before it) and its
 * first bytes, those free(NULL) and other low addresses read, share their
 * page instead of costing a process a page fault of their own
 * (tests/startup_bss.c). */
#if defined(__x86_64__) && !defined(__clang__)
#define lz_bss_late __attribute__((section(".lbss.lz_late")))
#else
/* clang makes a section of that name PROGBITS, not NOBITS, and the linker
 * then writes all of .bss before it (the chunk map: 64 MiB) into the
 * file: each test binary of the sanitizer builds was 77 MB. */
#define lz_bss_late
#endif
/* Code that every process, or a fork child, runs when it allocates a
 * little: start-up, the allocation and free paths of small and medium
 * blocks with their slow paths, realloc, the fork handlers, the purge
 * tick and the decay. The shared library's link puts it right after the
 * headers, dynamic symbols and PLT (cmake/layout.ld), so this code lies,
 * with them (one segment, loaded 64 KiB aligned: CMakeLists.txt), in the
 * first 64 KiB window of the library:
 * the kernel maps a file page fault's 64 KiB window around it, so a
 * process (and each fork child: file mappings are not copied by fork)
 * pays one fault and one window of resident text for it all, instead of
 * one per window its hot functions would otherwise be spread over. The
 * window is nearly full (tests/fork_pages.c fails when it overflows).
 * Mark a function only if small processes run it (measured: callgrind of
 * short programs, a fork+exec storm and their fork children). */
#define lz_text_hot __attribute__((section(".text.hot.lzmalloc")))
/* Code that a process runs only once it has a second thread, and all such
 * processes run: a thread's heap given back at its exit, frees of other
 * threads' blocks and their collection, the background thread and its
 * passes (measured: callgrind of the threaded bench workloads). The
 * shared library's link puts it at the end of its code segment, after
 * the read-only data (cmake/layout.ld), where the 64 KiB window of its
 * page faults is cut short by the mapping's end: a threaded process maps
 * a few pages for it, not a window of 16 pages of cold code
 * (tests/fork_pages.c, rodata_threads). */
#define lz_text_thread __attribute__((section(".text.thread.lzmalloc")))
/* Code past the hot window that a process which runs for a while runs
 * anyway: spare slabs kept and given back, a clean chunk populated, the
 * large-block cache's ranges (reuse of freed large blocks), the C++
 * operators (a C++ program's every allocation). Such a process has a
 * second thread, its own or the background one (started once memory is
 * freed), so it maps the last window (lz_text_thread's) already; linked
 * there too, after that code (cmake/layout.ld), this costs it a few pages
 * of that window instead of the 16 of the cold code's window between
 * (bench/textpages: 17 of its 20 workloads, threaded or not, mapped that
 * window for this code, 12 KiB of functions in all; tests/fork_pages.c,
 * rodata_threads). */
#define lz_text_late __attribute__((section(".text.late.lzmalloc")))
/* malloc's and free's entries: each fast path starts a cache line, so it
 * spans the fewest lines and decode windows whatever code comes before it
 * (bench micro, same thread 16 B: free at 0x...e0, three lines, ran a pair
 * 3-5 % slower than at a line's start, two). */
#define lz_entry_align __attribute__((aligned(64)))
/* Read-only tables those paths read (size classes): kept in the RELRO
 * page, which the loader writes anyway (relocations) and a fork child
 * shares without a fault, instead of .rodata, whose first read costs a
 * process a page fault and up to 64 KiB of resident file pages. */
#define lz_ro_hot __attribute__((section(".data.rel.ro.lz_hot")))

/* A relaxed load of an _Atomic scalar, written as a plain load so that the
 * compiler may fold it into the instruction using it (GCC never folds an
 * atomic or volatile load: a compare with memory becomes a load and a
 * compare). On x86-64 and aarch64 an aligned load of at most 8 bytes is
 * single-copy atomic, which is all a relaxed load promises; use it only
 * where the value is read once. Fast paths only; ThreadSanitizer builds
 * keep the atomic load, so the access stays visible to it. */
#if LZ_TSAN
#define lz_load_relaxed(p, T) atomic_load_explicit((p), memory_order_relaxed)
#else
#define lz_load_relaxed(p, T) (*(const T *)(const void *)(p))
#endif

#if LZ_DEBUG
#define lz_assert(c) ((c) ? (void)0 : lz_assert_fail(#c, __FILE__, __LINE__))
#else
#define lz_assert(c) ((void)0)
#endif

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* ---------------------------------------------------------------------------
 * Layout constants
 * ------------------------------------------------------------------------- */
#define LZ_PAGE_SHIFT 12
#define LZ_PAGE_SIZE ((size_t)1 << LZ_PAGE_SHIFT)
#define LZ_CHUNK_SHIFT 21
#define LZ_CHUNK_SIZE ((size_t)1 << LZ_CHUNK_SHIFT)
#define LZ_CHUNK_MASK (LZ_CHUNK_SIZE - 1)
#define LZ_CHUNK_PAGES (LZ_CHUNK_SIZE / LZ_PAGE_SIZE) /* 512 */
/* Regions (chunk.c, "Regions"): a heap with an id reserves
 * LZ_REGION_CHUNKS contiguous chunk-aligned units of address space, and
 * takes its chunks there first; its page map (LZ_REGION_MAP_BYTES, a span
 * pointer per page) lets free's fast path find the span of any pointer
 * into the region by one range check and one load (alloc.h). */
#define LZ_REGION_CHUNKS 32
#define LZ_REGION_BYTES (LZ_REGION_CHUNKS * LZ_CHUNK_SIZE)
_Static_assert(LZ_REGION_CHUNKS <= 32, "heap_t.rwaiting has a bit a region chunk");
#define LZ_REGION_MAP_BYTES (LZ_REGION_BYTES / LZ_PAGE_SIZE * sizeof(void *))
#define LZ_BITMAP_WORDS (LZ_CHUNK_PAGES / 64)          /* 8 */

#define LZ_ALIGN 16                        /* every block is 16-byte aligned */
#define LZ_SMALL_MAX ((size_t)32 * KiB)    /* largest size class */
#define LZ_MEDIUM_MAX ((size_t)1 * MiB)    /* largest medium span */
/* The largest block a slab serves: the sizes above it, up to LZ_MEDIUM_MAX,
 * take a medium span of whole pages, so that a freed one gives its pages
 * back to its chunk for any size to reuse, as glibc reuses such blocks,
 * instead of waiting in its class's slab (peak RSS, medians of 3: git log
 * -p 7064 -> 6844 KiB, git grep 6512 -> 6192 KiB; bench rows using these
 * sizes unchanged in CPU within noise, rptest peak RSS 58.3 -> 53.8 MiB).
 * Not lower: from 8 KiB, page rounding wastes up to half a block (python
 * threads' 8-16 KiB lists +380 KiB) and rptest's CPU rose 10-16 %. The
 * classes above it (LZ_SMALL_MAX is the class table's end) stay in the
 * tables, their queues empty: malloc's fast path finds no span there and
 * the slow path takes a medium span. */
#define LZ_SLAB_MAX ((size_t)16 * KiB)
/* Sizes served by heap->direct: up to 1040 B, the class of 1024 B plus a
 * small header (sizeclass.c), whose boundary the 64 B steps of the table
 * above it cannot hold. */
#define LZ_DIRECT_MAX ((size_t)1040)
#define LZ_DIRECT_SLOTS (LZ_DIRECT_MAX / 16 + 1)
#define LZ_CLASSES 54                      /* class 0 unused; 1..53 */
_Static_assert(LZ_CLASSES == LZ_STATS_CLASSES, "public class count");
#define LZ_SLAB_MAX_BYTES ((size_t)256 * KiB)
#define LZ_STARTUP_PAGES 64                /* slab pages a heap makes in start-up (slab.c) */
#define LZ_STARTUP_SLOW 512                /* slow-path entries of a heap in start-up (slab.c) */
#define LZ_PACK_PAGES 8                    /* start-up's packed span (pack.c) */
#define LZ_PACK_MAX ((size_t)1024)         /* its largest block */
#define LZ_PACK_CLASSES 29                 /* classes 1..28: up to LZ_PACK_MAX (sizeclass.c) */
#define LZ_PACK_USES 512                   /* blocks it hands out, at most (pack.c) */
#define LZ_MAX_ALLOC ((size_t)PTRDIFF_MAX - 2 * LZ_CHUNK_SIZE)
/* The largest alignment a large block takes: the range mapped for size +
 * align must stay below LZ_MAX_ALLOC, and a quarter leaves that room for
 * any size the alignment still makes sense for (heap.c, large.c). */
#define LZ_LARGE_ALIGN_MAX (LZ_MAX_ALLOC / 4)
#define LZ_USER_ADDR_BITS LZ_ARCH_VA_BITS /* chunk map range (arch.h) */
#define LZ_CHUNKMAP_SIZE ((size_t)1 << (LZ_USER_ADDR_BITS - LZ_CHUNK_SHIFT))

/* ---------------------------------------------------------------------------
 * Bitmaps (a chunk's pages, a slab's blocks, CPU and node masks): arrays
 * of 64-bit words, bit i in word i >> LZ_WORD_SHIFT. The one implementation
 * of bit and run operations: span.c's run search, chunk.c's, pages.c's and
 * purge.c's page maps, slab.c's holes, validate.c's checks and os.c's masks use it.
 * ------------------------------------------------------------------------- */
#define LZ_WORD_SHIFT 6                       /* 64 bits a word */
#define LZ_WORD_MASK ((1u << LZ_WORD_SHIFT) - 1)
static inline bool bit_get(const uint64_t *map, size_t i) { return (map[i >> LZ_WORD_SHIFT] >> (i & LZ_WORD_MASK)) & 1; }
static inline void bit_set(uint64_t *map, size_t i) { map[i >> LZ_WORD_SHIFT] |= 1ull << (i & LZ_WORD_MASK); }
static inline void bit_clear(uint64_t *map, size_t i) { map[i >> LZ_WORD_SHIFT] &= ~(1ull << (i & LZ_WORD_MASK)); }

/* Bits [first, first + n) of the word holding `first`, up to its end:
 * *take is how many (>= 1 when n >= 1). */
static inline uint64_t bits_in_word(size_t first, size_t n, size_t *take) {
  size_t bit = first & LZ_WORD_MASK;
  size_t room = (LZ_WORD_MASK + 1) - bit;
  *take = room < n ? room : n;
  return (*take == room ? ~0ull : ((1ull << *take) - 1)) << bit;
}

/* First index in [from, nbits) whose bit equals `set`, or nbits; nbits is
 * a multiple of 64. */
static inline size_t bitmap_next(const uint64_t *map, size_t nbits, size_t from, bool set) {
  if (from >= nbits) return nbits;
  size_t w = from >> LZ_WORD_SHIFT;
  uint64_t bits = (set ? map[w] : ~map[w]) & (~0ull << (from & LZ_WORD_MASK));
  while (bits == 0) {
    if (++w == nbits >> LZ_WORD_SHIFT) return nbits;
    bits = set ? map[w] : ~map[w];
  }
  return (w << LZ_WORD_SHIFT) + (size_t)__builtin_ctzll(bits);
}

/* Sets (or clears) bits [first, first + n). */
lz_text_late static inline void bitmap_assign(uint64_t *map, size_t first, size_t n, bool set) {
  while (n > 0) {
    size_t take;
    uint64_t mask = bits_in_word(first, n, &take);
    if (set) map[first >> LZ_WORD_SHIFT] |= mask;
    else map[first >> LZ_WORD_SHIFT] &= ~mask;
    first += take;
    n -= take;
  }
}

/* Set bits of x. __builtin_popcountll is a call into libgcc on x86-64
 * without POPCNT (the default target): that function lies outside the
 * library's hot text (lz_text_hot), so it is computed inline there, in
 * general registers: the empty asm keeps a loop of these (a chunk's
 * bitmaps) from being vectorized, whose masks the vector code would load
 * from .rodata, a segment no other path reads (its first read costs a
 * page fault and the segment's 20 KiB of resident file pages: fault-around). */
static inline unsigned lz_popcount64(uint64_t x) {
#if defined(__POPCNT__) || !defined(__x86_64__)
  return (unsigned)__builtin_popcountll(x);
#else
  __asm__("" : "+r"(x));
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return (unsigned)((x * 0x0101010101010101ull) >> 56);
#endif
}

/* Set bits in [first, first + n). */
lz_text_late static inline size_t bitmap_count(const uint64_t *map, size_t first, size_t n) {
  size_t count = 0;
  while (n > 0) {
    size_t take;
    count += lz_popcount64(map[first >> LZ_WORD_SHIFT] & bits_in_word(first, n, &take));
    first += take;
    n -= take;
  }
  return count;
}

/* chunk_t.huge: nothing asked; MADV_HUGEPAGE given (the chunk became
 * dense, or LZMALLOC_HUGEPAGES=always); the janitor collapsed it too. */
enum { CHUNK_HUGE_NONE = 0, CHUNK_HUGE_ADVISED = 1, CHUNK_HUGE_COLLAPSED = 2 };
/* A chunk is dense (worth a huge page: pages.c, purge.c) with at most an
 * eighth of its pages free: the huge page then costs at most that much
 * resident memory the spans do not use. */
#define LZ_DENSE_FREE_PAGES (LZ_USABLE_PAGES / 8)

/* Chunk map bytes (chunkmap.c): CHUNK_NONE, CHUNK_LARGE, and for a chunk
 * of spans its heap's map_id: CHUNK_SPANS, or one of the heap ids
 * CHUNK_HEAP_FIRST .. CHUNK_HEAP_LAST that free's fast path compares with
 * the calling thread's heap's fast_id (CHUNK_HEAP_NONE, which no byte
 * holds, for a heap without such an id and for LZ_HEAP_EMPTY). chunkmap_kind() reads every
 * chunk of spans as CHUNK_SPANS. */
enum { CHUNK_NONE = 0, CHUNK_LARGE = 1, CHUNK_SPANS = 2 };
#define CHUNK_HEAP_FIRST 3
#define CHUNK_HEAP_LAST 254
#define CHUNK_HEAP_NONE 255

/* ---------------------------------------------------------------------------
 * Blocks and free-list encoding (security.h holds the inline pair).
 * A free block's first word is the encoded address of the next free block.
 * ------------------------------------------------------------------------- */
typedef struct lz_block_s {
  uintptr_t enc_next;
} lz_block_t;

struct heap_s;
struct chunk_s;

/* ---------------------------------------------------------------------------
 * Spans (descriptors in the chunk header's slots, two halves of 32 bytes a
 * cache line apart: see chunk_t, "Descriptor pairs").
 *
 * Invariants (slab), with pin = 1 for the first span of its class queue
 * (see slab.c) and 0 otherwise; [tags] name the check in validate.c:
 *   out + |free| + |local_free| + hole blocks == capacity <= reserved,
 *        where out counts the blocks handed out, including those freed by
 *        other threads and still in transit (batched or in the owner's
 *        xremote list), and hole blocks are free blocks on pages given back
 *        while the slab lives (slab.c, "Holes") [span.count, span.capacity,
 *        span.holes];
 *   used == out + |free| + pin: malloc's fast path pops `free` without
 *        counting, because the slow path charged every block of a list to
 *        `used` when it installed the list; each free subtracts one
 *        [span.used];
 *   free != NULL only for the first span of its queue (a span leaves the
 *        front only with an empty free list), so for every other span
 *        used == out, and it is empty exactly when used reaches 0; such
 *        a span is retired, but its class's spares (SPAN_SPARE, slab.c)
 *        [span.free_only_first, span.empty_retired, span.spare];
 *   to_local == 0 exactly for the first span of its queue, else 1
 *        (slab.c's queue_remove and queue_push_front move it with the pin;
 *        span_alloc makes every span 1): the owner's fast free pushes a
 *        block on (&free)[to_local] and subtracts to_local from used, so
 *        a block of the first span goes on `free`, counting nothing (the
 *        block stays charged to used), and the next allocation of the
 *        class takes the block freed last, still in the cache, as a
 *        per-class LIFO cache does (bench mleak: L1 data misses 9.2M ->
 *        4.1M, tcmalloc 4.3M) [span.front];
 *   free lists hold decoded links to block boundaries below capacity (the
 *        bump region at index >= capacity was never handed out), no block
 *        twice [span.list.boundary, span.list.carved, span.list.duplicate];
 *   block_size, inv, ibase and reserved follow from cls, npages
 *        (between class_min_slab_pages and class_slab_pages) and the
 *        span's start (its first page, `page`) [span.cls, span.block_size,
 *        span.inv, span.npages, span.reserved];
 *   flags & SPAN_FULL  <=> the span is not linked in its class queue,
 *        and then free == local_free == NULL and capacity == reserved
 *        [span.full_unlinked, span.full];
 *   xfast_cap == capacity if kind == SPAN_SLAB, neither FULL nor with
 *        holes (slab.c, "Holes") and below hardening level 2 (or 0 for
 *        the first span of its queue while its heap is nudged: heap.c,
 *        "Heartbeat"; or 0 for a span that is not the first of its
 *        queue: diverted, its owner's frees going to the class's
 *        installed foreign list, or diverted once and not resynced yet:
 *        remote.c, "Own blocks"), or 1 if
 *        kind == SPAN_MEDIUM and live (below level 2), else 0: the
 *        owner's fast frees (alloc.h) test "allowed" and "a block boundary
 *        below the carved limit" in one compare; the chunk map byte
 *        proved the owner (chunk invariants) [span.xfast_cap].
 * Medium spans: kind == SPAN_MEDIUM, cls 0, reserved == capacity == 1,
 *   used == 1 while live, 0 while cached by the heap (in mcache or on
 *   its returned list, mreturn); never in a queue, prev
 *   NULL, next NULL but on mreturn [medium.counts, medium.block_size,
 *   medium.unqueued, medium.cached_unused]; xfast_cap 1 while live, 0
 *   while cached, so the owner's free takes the block by free's fast path
 *   as a slab block (its
 *   index check, span_slab_index < 1, holds only at the span's start: the
 *   pagemap names only its first page, and inv is odd) and a second free
 *   goes slow, where it is reported [span.xfast_cap]; local_free NULL
 *   (the fast path pushes the block there and heap_free_last, caching the
 *   span, clears it) [medium.local_free].
 *   A front span (heap_t.mfront[npages], medium.c) has to_local 0 and
 *   used 1 and xfast_cap 1 whether its block is out or not: the owner's
 *   fast free pushes the block on `free`, counting nothing (no call), and
 *   malloc pops it from there (heap_malloc_slow); `free` is NULL (out) or
 *   the block itself, its link an encoded NULL (parked). Every other
 *   medium span has to_local 1 and free NULL [medium.front].
 * A span's block_size, inv, ibase and page (and its chunk's heap, the owner of
 * every span in the chunk) are written only while it has no live block, so
 * any thread holding a live block may read them.
 * ------------------------------------------------------------------------- */
enum { SPAN_NONE = 0, SPAN_SLAB = 1, SPAN_MEDIUM = 2 };
/* SPAN_WARM: a slab whose pages were all dirty (may be resident) when
 * span_alloc took them, so carving its untouched tail writes no page that
 * was not touched before (slab_extend; the tail is never punched). */
/* SPAN_SPARE: a slab with no block out (used 0) left linked in its
 * class queue, not the first, so the class's next slab costs no span
 * (slab.c, "Spare slabs"); counted in heap_t.spare_pages of its class
 * (whose spare_classes bit is set while it is not 0), spare_total and its
 * chunk's spare_pages [span.spare, chunk.spare]. */
enum { SPAN_FULL = 1, SPAN_ZERO = 2, SPAN_HOLES = 8, SPAN_WARM = 16, SPAN_SPARE = 32, SPAN_GROWN = 128 }; /* flags (4 and 64: FOREIGN_INSTALLED and FOREIGN_KEPT, remote.c) */
/* SPAN_GROWN, of a medium span: realloc grew its block in place
 * (medium_grow) since medium_block handed it out, a hint only (a block
 * the front hands out again may keep it): such a block shrunk in place
 * keeps a tail of under an eighth of its pages (heap.c,
 * MEDIUM_SHRINK_SLACK). */

typedef struct span_s {
  /* The owner's half (s + 0): what its fast paths read and write. */
  lz_block_t *free;         /* owner: blocks ready to hand out */
  lz_block_t *local_free;   /* owner: blocks the owner freed (level 2:
                               a slab's out-of-band slot bitmap, a medium
                               span's block, secure.c) */
  _Atomic(uint32_t) xfast_cap; /* capacity while the owner may free fast,
                               else 0 (see the invariants above) */
  uint16_t used;            /* see the invariants above */
  uint8_t to_local;         /* owner: 0 for the first span of its class
                               queue, else 1 (see the invariants above) */
  uint8_t flags;            /* SPAN_FULL, SPAN_HOLES, SPAN_WARM (slab), SPAN_ZERO (memory known zero), SPAN_GROWN (medium) */
  struct span_s *prev;      /* owner: class queue links (slow paths) */
  /* Bytes 32..63 are the other slot's owner half (chunk_t, "Descriptor
   * pairs"): never touched through this span. */
  uint8_t pair_other_[32];
  /* The read-mostly half (s + 64): what other threads read to free a
   * block (heap_free_page, remote_free_fast), on a line of its own. */
  struct span_s *next;
  uint32_t inv;             /* block index check, see span_block_index() */
  uint32_t ibase;           /* span start * inv (mod 2^32), ditto */
  uint32_t block_size;      /* bytes per block (medium: the span's bytes) */
  uint16_t capacity;        /* blocks carved out so far */
  uint16_t reserved;        /* blocks that fit */
  uint16_t npages;          /* pages in the span */
  uint16_t page;            /* its first page in the chunk (span_start) */
  /* Whole bytes, not bit-fields: a remote free tests cls and indexes
   * its heap's tables with it unmasked (heap_free_page with
   * remote_free_fast: 59.3 -> 58.5 instructions a call, bench larson_chain
   * 1 0.1, callgrind). */
  uint8_t cls;              /* size class (slab), 0 for medium, a packed
                               slab (span_packed) and slot 0: nonzero only
                               in a slab [span.cls] */
  uint8_t kind;             /* SPAN_NONE / SPAN_SLAB / SPAN_MEDIUM */
  uint8_t unused_[2];
} span_t;
/* free's fast path indexes (&free)[to_local] from the span's address (alloc.h). */
_Static_assert(offsetof(span_t, free) == 0, "free first");
_Static_assert(offsetof(span_t, local_free) == offsetof(span_t, free) + sizeof(lz_block_t *), "free, local_free");
/* The two halves of a slot (chunk_t, "Descriptor pairs"). */
#define LZ_SPAN_HALF 32
#define LZ_SPAN_GEO (2 * LZ_SPAN_HALF)
_Static_assert(offsetof(span_t, pair_other_) == LZ_SPAN_HALF && offsetof(span_t, next) == LZ_SPAN_GEO &&
                   sizeof(span_t) == LZ_SPAN_GEO + LZ_SPAN_HALF && LZ_CACHE_LINE == LZ_SPAN_GEO,
               "a span's halves lie a cache line apart, each within its line");
_Static_assert(LZ_CLASSES <= 256, "span_t.cls holds a class in a byte");


/* ---------------------------------------------------------------------------
 * Chunks
 *
 *   +-----------------------------+ chunk (2 MiB aligned)
 *   | chunk_t header (9 pages)    |  links, bitmaps, pagemap, spans[512]
 *   | (level 2: a guard page)     |
 *   +-----------------------------+ page LZ_HEADER_PAGES
 *   | spans: runs of 4 KiB pages  |
 *   |  ...                        |
 *   +-----------------------------+ page 511
 *
 * Descriptor slots: a span's descriptor is slot k, for the lowest slot k
 * free when the span was made (slot_map), not the slot of its first page,
 * so the descriptors of a heap's spans lie together at the front of the
 * header: a process with up to 41 spans in a chunk touches one header page
 * (the fields, the pagemap and slots 0..41 share page 0), and a fork child
 * that frees and allocates in a few spans copies one descriptor page
 * instead of one per span. Slot 0 is never given out: pages of no span map
 * to it (pagemap 0), and it stays zero (kind SPAN_NONE, no owner).
 *
 * Descriptor pairs: slots 2j and 2j + 1 share 128 bytes, two cache lines:
 * the first holds their owner halves (span_t's first 32 bytes: the lists,
 * used, xfast_cap, to_local, flags, prev), the second their read-mostly
 * halves (next, the index check's inv and ibase, block size, capacity,
 * pages, class, kind: what free's fast path reads there is never written
 * while the span has a live block). So a span's descriptor is 96 bytes
 * whose middle 32 are the other slot's, and its read-mostly half lies
 * LZ_SPAN_GEO bytes after its owner half. The owner writes its half on
 * every free and most allocations; another thread freeing one of its
 * blocks reads the read-mostly half alone (heap_free_page,
 * remote_free_fast), which the owner writes only on slow paths (span
 * set-up, carving, queue moves), so such a free does not pull the line
 * the owner keeps writing away from its core (bench larson: two threads
 * freeing each other's blocks). Slot k's descriptor lies at
 * slot_offset(k) in spans[] [chunk.slot_map].
 *
 * Invariants ([tags]: the checks in validate.c):
 *   free_map bit i set  <=> page i belongs to no span (header pages never):
 *     walking the pages from LZ_HEADER_PAGES, each is free or starts a
 *     span (chunk_span_at(c, i)->kind != SPAN_NONE, page == i) whose
 *     npages pages are all used [chunk.header_pages, chunk.free_no_span,
 *     chunk.used_page_in_span, chunk.span_page, chunk.free_map];
 *   slot_map bit k set  <=> spans[k] is the descriptor of a span of the
 *     walk (bit 0 always set, spans[0] zero); a clear slot's kind is
 *     SPAN_NONE [chunk.slot_map, chunk.slot_zero, chunk.slot_free];
 *   free_pages == popcount(free_map) [chunk.free_pages];
 *   max_run_hint >= the longest run of free pages [chunk.max_run_hint];
 *   pagemap[i] == slot_offset(k) (pagemap_set), k the slot of the
 *     slab span holding page i, or of the medium span starting at page i
 *     (at hardening level 2, holding page i: secure.c maps them all), else
 *     0 [chunk.pagemap, chunk.pagemap.free];
 *   rmap != NULL (a chunk of a heap's region) => rmap[i] ==
 *     rmap_entry(chunk_span_at(c, i)) for every page i: the span's
 *     address plus LZ_MAP_LOCAL if its to_local is 1, so the entry is
 *     the list the owner's free fast path pushes on (alloc.h; slot 0's
 *     to_local is 0); the region's entries of a
 *     chunk waiting there (owned by none, its header maybe zero, rmap
 *     not read) all name its slot 0, which is zero, if it lies below the
 *     heap's rend [chunk.rmap];
 *   heap is the owner, and the chunk's chunk map byte is heap->map_id
 *     (CHUNK_SPANS or the heap's id; a pooled chunk's is CHUNK_SPANS), so
 *     a byte equal to the calling thread's heap's fast_id proves the chunk
 *     its heap's [chunk.heap, chunkmap.spans];
 *   dirty_map bit i set => page i may be resident (touched since its last
 *     purge); free and dirty pages are what purge gives back (not checked:
 *     a clear bit promises nothing the validator can read);
 *   hole_map bit i set => page i belongs to a slab span flagged SPAN_HOLES
 *     and no listed block overlaps it (slab.c, "Holes") [span.holes];
 *   decay_base counts the pages freed since purge_at was armed (pages.c
 *     arms it, purge.c's decay reads it; a hint, not checked);
 *   low_dirty is the fewest free dirty pages the chunk had when armed and
 *     at each span taken since (pages.c; purge.c gives that many back from
 *     a hot chunk; a hint, not checked).
 * All fields belong to the owning heap (see Ownership above).
 * ------------------------------------------------------------------------- */
typedef struct chunk_s {
  struct heap_s *heap;          /* owner of every span here; NULL while pooled */
  struct chunk_s *next, *prev;  /* owner's chunk list or the pool */
  uint32_t free_pages;
  uint32_t max_run_hint;        /* >= longest free run */
  uint16_t node;                /* NUMA node (0 without NUMA, < LZ_MAX_NODES); never changes */
  uint16_t fit_epoch;           /* heap_t.fit_epoch when the heap's fit memo took it in */
  uint8_t hot;                  /* a span was allocated here since purge_at was armed */
  uint8_t decayed;              /* the decay gave pages back since the chunk last took clean ones */
  uint16_t low_dirty;           /* fewest free dirty pages since purge_at was armed (purge.c) */
  uint64_t purge_at;            /* when free dirty pages may be purged; 0: none */
  uint64_t free_map[LZ_BITMAP_WORDS];
  uint64_t dirty_map[LZ_BITMAP_WORDS];
  uint64_t slot_map[LZ_BITMAP_WORDS]; /* descriptor slots in use (see above) */
  uint16_t huge;                /* CHUNK_HUGE_*: transparent huge pages asked for (purge.c) */
  /* Pages of the spare slabs here (slab.c, "Spare slabs"): a chunk never
   * holds only spares, free_pages + spare_pages < LZ_USABLE_PAGES while
   * spare_pages > 0 [chunk.spare]. */
  uint16_t spare_pages;
  uint32_t decay_base;          /* free dirty pages the decay started from (purge.c) */
  uint64_t huge_at;             /* when MADV_HUGEPAGE was given (ms) */
  uint64_t hole_map[LZ_BITMAP_WORDS]; /* pages of live slabs given back (slab.c, "Holes") */
  /* A chunk of a heap's region (chunk.c, "Regions"): its 512 entries of
   * the region's page map, for ever (also while the chunk waits in the
   * region, owned by no heap); NULL for any other chunk. */
  _Atomic(span_t *) *rmap;
  uint8_t pad_rmap_[LZ_CACHE_LINE - sizeof(void *)]; /* spans[] stays cache aligned */
  uint16_t pagemap[LZ_CHUNK_PAGES];
  uint8_t spans[LZ_CHUNK_PAGES * LZ_SPAN_GEO]; /* descriptor pairs (see above): slot_offset */
  /* Slab starting at page i: 1 + the index of local_free's head when the
   * hole puncher last looked, 0 if never (a hint: slab.c, "Holes"). */
  uint16_t punch_seen[LZ_CHUNK_PAGES];
} chunk_t;

#define LZ_HEADER_BASE_PAGES ((sizeof(chunk_t) + LZ_PAGE_SIZE - 1) / LZ_PAGE_SIZE)
/* At hardening level 2 (lz_secure2, fixed at start-up) the header has one
 * more page, a PROT_NONE guard (chunk.c) between the chunk_t and the first
 * span, so that no underflow from a block reaches the span descriptors. */
#define LZ_HEADER_PAGES (LZ_HEADER_BASE_PAGES + (size_t)lz_secure2)
#define LZ_USABLE_PAGES (LZ_CHUNK_PAGES - LZ_HEADER_PAGES)
_Static_assert(LZ_HEADER_BASE_PAGES == 9, "chunk header layout changed");
_Static_assert(offsetof(chunk_t, spans) % LZ_CACHE_LINE == 0, "spans must be cache aligned");
/* Byte offset in chunk_t.spans of slot k's descriptor: pair k / 2, half
 * k % 2 (see above). */
lz_inline size_t slot_offset(size_t k) { return (k >> 1) * (2 * LZ_SPAN_GEO) + (k & 1) * LZ_SPAN_HALF; }
lz_inline span_t *chunk_slot(chunk_t *c, size_t k) { return (span_t *)(void *)(c->spans + slot_offset(k)); }
/* The slot of descriptor s (of a chunk, not a foreign list). */
lz_inline size_t span_slot(const span_t *s) {
  size_t off = (uintptr_t)s - (((uintptr_t)s & ~LZ_CHUNK_MASK) + offsetof(chunk_t, spans));
  return off / (2 * LZ_SPAN_GEO) * 2 + off % (2 * LZ_SPAN_GEO) / LZ_SPAN_HALF;
}
/* Slots 0..41 (both halves) share page 0 with the fields and the pagemap
 * (see above). */
#define LZ_SLOTS_FIRST_PAGE ((LZ_PAGE_SIZE - offsetof(chunk_t, spans)) / (2 * LZ_SPAN_GEO) * 2)
_Static_assert(LZ_SLOTS_FIRST_PAGE >= 40, "the first header page holds the first descriptors");

/* The page map holds byte offsets into spans[] (the free fast path adds
 * one to the chunk without a shift): */
_Static_assert(LZ_CHUNK_PAGES * LZ_SPAN_GEO <= UINT16_MAX, "pagemap offsets fit 16 bits");
/* A region's page map entry for span s: the address of the list free's
 * fast path pushes a block of s on, (&s->free)[s->to_local] (a span's
 * address has its low 5 bits clear, slot_offset), so that path needs no
 * load of to_local before its stores: the next malloc's load of the
 * list's head waits for the push's address, and a load there made the
 * malloc(16)+free loop's dependency chain a load longer (bench micro's
 * same-thread 16 B pair 6.03 ns with it, 4.26 without: alloc.h). The
 * entry changes with to_local (span_to_local_set). */
#define LZ_MAP_LOCAL ((uintptr_t)sizeof(lz_block_t *))
lz_inline span_t *rmap_entry(span_t *s) { return (span_t *)((uintptr_t)s + (s->to_local != 0 ? LZ_MAP_LOCAL : 0)); }
lz_inline void pagemap_set(chunk_t *c, size_t page, size_t slot) {
  c->pagemap[page] = (uint16_t)slot_offset(slot);
  /* The region's page map too (chunk invariants): relaxed, as free's fast
   * path may read the entry meanwhile (only for an invalid free: a
   * thread frees only blocks of live spans). */
  if (c->rmap != NULL) atomic_store_explicit(&c->rmap[page], rmap_entry(chunk_slot(c, slot)), memory_order_relaxed);
}
void pagemap_set_run(chunk_t *c, size_t first, size_t n, size_t slot); /* chunk.c */
void span_to_local_set(span_t *s, unsigned v); /* chunk.c: to_local and the region's map entries */
/* The descriptor of the span holding page `page` of c (a slab's every
 * page, a medium span's first), or spans[0] (kind SPAN_NONE). */
lz_inline span_t *chunk_span_at(chunk_t *c, size_t page) {
  return (span_t *)((uintptr_t)c->spans + c->pagemap[page]);
}
/* The descriptor pagemap names for the page holding address a of chunk c. */
lz_inline span_t *chunk_span_of(const chunk_t *c, uintptr_t a) {
  return (span_t *)((uintptr_t)c->spans + c->pagemap[(a >> LZ_PAGE_SHIFT) & (LZ_CHUNK_PAGES - 1)]);
}

/* ---------------------------------------------------------------------------
 * Large blocks: each a range of whole pages starting on a 2 MiB boundary,
 * with no metadata in or near the user's pages. The descriptor lives in a
 * side table (large.c) indexed by the 2 MiB unit of the block's address:
 *
 *   p (2 MiB aligned)                                   p + size
 *   | user block ...                          [guard]  |
 *   (level 2: base | guard | p: user block | canary | guard | rest ... |)
 *   chunk map[p >> 21] == CHUNK_LARGE  ->  large_t in the side table
 *
 * p is a live large block iff p is page aligned in the first 2 MiB of its
 * range (at the range's base, or at level 2 a head guard page and the
 * alignment after it), its chunk map byte is CHUNK_LARGE and xcheck ==
 * lz_key ^ p (lz_key ^ p ^ 1: freed; a descriptor outlives its range, so
 * a freed block whose range went back to the kernel is still named by it
 * while its unit's chunk map byte is CHUNK_NONE). Fields are
 * atomics (relaxed): a bogus free may read a descriptor another thread is
 * writing, and must see a mismatch, not a data race.
 * ------------------------------------------------------------------------- */
typedef struct large_s {
  _Atomic(uintptr_t) xcheck;  /* lz_key ^ p (live), lz_key ^ p ^ 1 (freed), 0 */
  _Atomic(size_t) xsize;      /* live: bytes of the block's range (guard included) */
  _Atomic(uint64_t) xexpire;  /* a cached range starting here: when it may go back */
  _Atomic(uint32_t) xnode;    /* NUMA node of the range starting here (numa.c) */
  _Atomic(uint32_t) xguard;   /* live: guard bytes (LZMALLOC_SECURE=2), else 0 */
  _Atomic(size_t) xreq;       /* live with a guard: the size asked for; the guard page
                                 follows its last page, canary bytes fill the rest of that page */
  _Atomic(uint32_t) xwritten; /* pages of this unit that blocks may have written since it was
                                 mapped (the pages under their requests): large.c, "Resident pages" */
} large_t;

/* ---------------------------------------------------------------------------
 * A minimal spinning lock (slow paths only; lock.c); never held across a
 * call that may take another lock except in the order in src/README.md.
 * ------------------------------------------------------------------------- */
typedef struct lz_lock_s {
  _Atomic(int) x;
} lz_lock_t;
#define LZ_LOCK_INIT {0}
void lz_lock(lz_lock_t *l);
lz_inline bool lz_trylock(lz_lock_t *l) {
  int expect = 0;
  return atomic_load_explicit(&l->x, memory_order_relaxed) == 0 &&
         atomic_compare_exchange_strong_explicit(&l->x, &expect, 1, memory_order_acquire, memory_order_relaxed);
}
lz_inline void lz_unlock(lz_lock_t *l) { atomic_store_explicit(&l->x, 0, memory_order_release); }
lz_inline void lz_lock_reset(lz_lock_t *l) { atomic_store_explicit(&l->x, 0, memory_order_relaxed); }

/* ---------------------------------------------------------------------------
 * Heaps
 * ------------------------------------------------------------------------- */
/* Slow-path entries (heap_t.slow_count) per tick (heap.c's heap_tick): a
 * power of two (a mask, no division), and 64 so that the tick's clock read
 * and walk of the batches cost under 2% of the cheapest slow path, while a
 * thread that only frees other heaps' blocks (every such free is a
 * slow-path entry) still sends them within 64 frees. */
#define HEAP_TICK_EVERY 64
_Static_assert((HEAP_TICK_EVERY & (HEAP_TICK_EVERY - 1)) == 0, "a power of two");

/* Remote frees waiting in the freeing heap: one chain per destination
 * span (LZ_REMOTE_WAYS-way set associative by the span's address), sent
 * to the span's heap with one CAS when it reaches LZ_REMOTE_BATCH blocks,
 * when another span needs a slot of its full set (the fullest goes), at the freeing thread's second sending tick
 * after it was started at the latest (a tick is every 64th slow-path
 * entry, allocation or free, and every remote free is one; every
 * LZ_REMOTE_AGE_TICKS-th tick sends), and when it exits or trims. A chain
 * is one span's blocks, so the owner splices it into the span's local_free
 * list in O(1) without touching the blocks in between (see remote.c).
 * Sending at every tick made chains of one or two blocks where a thread's
 * remote frees spread over a few dozen spans (bench larson: about 100k
 * chains for 1M replacements), and each chain costs its owner two cache
 * misses (head and tail, remote_collect) and the sender a CAS: at every
 * 8th, remote_collect's samples fell from about 190 to 75 (perf, larson
 * 2 1). */
#define LZ_REMOTE_AGE_TICKS 8
/* 64 slots: a thread freeing blocks of many spans (random sizes, as bench
 * rptest and mstress) filled the 32 it had before, and 76 % of rptest's
 * chains (115k of 152k, 3.8 blocks each) went home early, pushed out by
 * another span's; with 64, 99k chains (rptest 2 1), mstress 62k -> 48k;
 * 8 ways instead of 2 gained less again (87k, 41k). heap_t grows by 1 KiB
 * (at its end), touched only by threads that free other heaps' blocks. */
#ifndef LZ_REMOTE_SLOT_BITS
#define LZ_REMOTE_SLOT_BITS 6
#endif
#define LZ_REMOTE_SLOTS (1 << LZ_REMOTE_SLOT_BITS)
#ifndef LZ_REMOTE_WAYS
#define LZ_REMOTE_WAYS 2
#endif
_Static_assert(LZ_REMOTE_SLOTS <= 64, "heap_t.rbatch_pending has a bit per slot");
_Static_assert((LZ_REMOTE_WAYS & (LZ_REMOTE_WAYS - 1)) == 0 && LZ_REMOTE_WAYS >= 2 && LZ_REMOTE_WAYS <= LZ_REMOTE_SLOTS, "ways: a power of two");
#define LZ_MEDIUM_CACHE 8
#define LZ_MEDIUM_CACHE_BYTES ((size_t)4 * MiB)
/* The heap's front medium spans (heap_t.mfront, medium.c): one per page
 * count up to LZ_MEDIUM_FRONT_PAGES (256 KiB), LZ_MEDIUM_FRONT_BYTES in
 * all. Only their holder gives them back (the janitor cannot: malloc pops
 * them without the lock), so an idle thread keeps at most that much. */
#define LZ_MEDIUM_FRONT_PAGES 64
#define LZ_MEDIUM_FRONT_BYTES ((size_t)512 * KiB)
#ifndef LZ_MEDIUM_FRONT_SPANS
#define LZ_MEDIUM_FRONT_SPANS 1
#endif
/* The fewest pages a medium request takes: one past the largest slab block. */
#define LZ_MEDIUM_MIN_PAGES ((LZ_SLAB_MAX >> LZ_PAGE_SHIFT) + 1)
#define LZ_MEDIUM_RETURN_BYTES ((size_t)32 * MiB)
typedef struct remote_batch_s {
  span_t *span;
  lz_block_t *head, *tail;
  uint32_t count;
  bool suspect;             /* a block's first word looked free: owner confirms */
} remote_batch_t;

typedef struct span_queue_s {
  span_t *first;
  span_t *last;
} span_queue_t;

enum { HEAP_ACTIVE = 0, HEAP_ORPHAN = 1, HEAP_BUSY = 2, HEAP_DEAD = 3 }; /* heap.c: life of a heap */

/* Written by the owner only; other threads read them racily (stats.c).
 * The heap's bytes in use are in_use plus those of its slab and medium
 * blocks, which no path counts here: stats.c sums every slab span's
 * used - pin blocks and every live medium span (used 1) when read (the
 * span counts already hold them: malloc's fast path pops blocks charged
 * to `used` when their list was installed, each free subtracts one), so
 * the free fast path counts nothing either. in_use holds the rest: level
 * 2's blocks and the foreign blocks' moves between heaps (remote.c). Blocks waiting in the free lists
 * of the class queues' first spans count as in use; heap_cached_bytes() is
 * that part, so a thread's own figure and an orphan's are exact
 * (heap_abandon gives the lists back). */
typedef struct heap_stats_s {
  int64_t in_use;       /* see above */
  uint64_t remote_frees;/* frees this thread sent to other heaps */
  uint64_t slow_allocs; /* allocations that took the slow path */
} heap_stats_t;

/* Invariants ([tags]: the checks in validate.c):
 *   direct[(s + 15) >> 4] is, for every s <= LZ_DIRECT_MAX and c =
 *     slab_class_for(size_to_class(s)) (the class itself, or in start-up
 *     its power of two), &foreign[c] when that list is installed, else the
 *     first span of queues[c], or LZ_SPAN_EMPTY when that queue is empty
 *     or c's size is above LZ_DIRECT_MAX (in start-up, 1025 to 1040 B go
 *     to the 2048 B class by the slow path), but LZ_SPAN_EMPTY for every c
 *     up to LZ_PACK_MAX while pack_armed [heap.direct]; in start-up no
 *     foreign list is mapped and the queues of the classes that are no
 *     power of two are empty [heap.startup];
 *   queues[c] is a doubly linked list of every slab span of class c the
 *     heap owns that is not FULL (SPAN_ZERO may be set; it matters only to
 *     medium spans) [queue.ends, queue.links, queue.last, queue.class,
 *     queue.owner, queue.spans_owned];
 *   chunks lists every chunk owned (heap->chunks, doubly linked), empty
 *     ones included until pages.c or purge.c gives them back, empty_count of them
 *     [heap.chunks.links, heap.chunks.cycle, heap.empty_count], and
 *     empty_count <= empty_keep (a chunk is kept only within the
 *     allowance, which shrinks only to what stays kept) [heap.empty_keep];
 *   fit_pages != 0 (span.c, the fit memo) => fit_first, then fit_last
 *     after it or itself, are in chunks, fit_pages <= LZ_USABLE_PAGES,
 *     and every chunk from fit_first to fit_last has fit_epoch ==
 *     heap->fit_epoch and no run of fit_pages free pages [heap.fit];
 *   decay_shift, orphan_shift and holes_shift are at most
 *     LZ_DECAY_SHIFT_MAX [heap.shifts];
 *   xmcache's non-NULL slots hold medium spans of this heap with used ==
 *     0, each slot's bit set in mcache_mask (LZ_MEDIUM_CACHE bits) and its
 *     pages in mcache_pages; mcache_bytes is the bytes of the pages of
 *     mcache_mask's slots (<= LZ_MEDIUM_CACHE_BYTES)
 *     [mcache.count, mcache.span, mcache.bytes];
 *   mreturn lists mreturn_count medium spans of this heap with used == 0,
 *     none of them in xmcache, none twice, mreturn_bytes the bytes of
 *     their pages (<= LZ_MEDIUM_RETURN_BYTES), mreturn_low <=
 *     mreturn_count; every medium span with used == 0 is in xmcache or
 *     mreturn [mreturn.span, mreturn.count, mreturn.bytes, mreturn.low,
 *     medium.cached_unused];
 *   rbatch_pending bit i <=> rbatch[i].count > 0; a pending batch is a
 *     chain of count < LZ_REMOTE_BATCH blocks of rbatch[i].span from head
 *     to tail, each marked in flight (LZ_SECURE), in one of the
 *     LZ_REMOTE_WAYS slots of its span's set (the hash of the span, any
 *     low bits), and no two pending batches have one span [rbatch.pending, rbatch.count,
 *     rbatch.in_span, rbatch.in_flight, rbatch.tail, rbatch.slot,
 *     rbatch.unique];
 *   xremote is a list of batches (remote.c), each of count <= the span's
 *     used blocks of one span of this heap, entered at its tail, whose
 *     word 1 names the head, each tail's link to the next batch's tail
 *     flagged REMOTE_LINK [xremote.owner, xremote.span,
 *     xremote.count, xremote.in_span, xremote.tail, xremote.link];
 *   foreign[c] (when mapped) is a list (`free`) of blocks of class c in
 *     other heaps' slab spans, of any chunks (remote.c, "Order"), and
 *     while installed also of this heap's own (remote.c, "Own blocks":
 *     counted as out by their spans) [foreign.own], each
 *     marked in flight (LZ_SECURE), each holding its depth in word 3
 *     (the blocks from it to the list's end, itself included: remote.c,
 *     "Depth") [foreign.depth], non-empty only for classes LZ_FOREIGN_OK
 *     allows (at most half a line at each end shared with another
 *     block: little passive false sharing); its length
 *     <= npages (the cap with idle owners' blocks, foreign_idle_cap;
 *     reserved is the bound for others'), used and page 0, and only
 *     classes <= LZ_DIRECT_MAX the heap has made a slab of
 *     (slabs_made[c] != 0, which never drops back: so an installed class
 *     is one foreign_wanted keeps) are installed, direct[] then pointing at
 *     foreign[c]; capacity counts malloc's refills that found the
 *     installed list empty with no block pushed since the previous one,
 *     at most FOREIGN_DRY_LOOKS, 0 unless installed (heap.c,
 *     refill_foreign_dry); a class above LZ_DIRECT_MAX is kept
 *     (FOREIGN_KEPT) only while its list holds blocks, and only one the
 *     heap has made a slab of (remote.c, "Kept lists") [foreign.class,
 *     foreign.line, foreign.installed, foreign.kept, foreign.length,
 *     foreign.block, foreign.in_flight, foreign.depth, foreign.used,
 *     foreign.cap, foreign.dry];
 *   stats.in_use == minus the bytes of its foreign lists that are neither
 *     installed nor kept (below level 2: remote.c moves foreign blocks' bytes
 *     between heaps' figures, out of the holder's at a push onto such a
 *     list, back at its installation or keeping, its take or its flush; an
 *     installed or kept list's blocks count as in use, popped
 *     uncounted), so
 *     the sum over heaps is exact, an orphan's too [stats.in_use];
 *   at hardening level 2 (secure != NULL) spans keep secure.c's own state
 *     (local_free is a bitmap, the links its lists): the validator checks
 *     their chunk-level invariants and page counts only.
 *
 * The janitor protocol (janitor.c reaches a live thread's idle pages):
 *   The heap lock guards the state that the fast paths never touch and the
 *   janitor may: the chunk list, every chunk header field but spans[] and
 *   pagemap (free_map, dirty_map, free_pages, max_run_hint, hot, purge_at,
 *   links), and the giving back of the medium cache's spans (its slots
 *   are filled and taken by the owner without the lock: protocol beside
 *   xmcache).
 *   The owner holds it (heap_enter/heap_leave, nesting counted in
 *   lock_depth) on every allocation slow path but the three short ways
 *   that touch none of that state (a slab's own freed blocks, a cached
 *   medium span, a large block), on the local branch of free's slow path
 *   (but the free of a medium block the cache has room for) and its purge
 *   tick, in
 *   slab_retire (the one slow call the inline free makes) and in
 *   heap_collect; the fast paths take nothing and touch only what the
 *   janitor never does: direct, queues, the lists and counters of live
 *   spans, stats. The janitor only try-locks (a heap
 *   whose owner is inside a slow path is looked at on its next pass) and
 *   then only purges what is due (heap.c, heap_purge): free dirty pages,
 *   empty chunks, cached medium spans, holes in slabs and spare slabs
 *   (unlinked: a spare is never the first of its queue, so no lock-free
 *   path reads it or its links; slab.c, "Spare slabs"); and it may
 *   nudge the heap (heap.c, "Heartbeat": xfast_cap 0 in its queues' first
 *   spans, which only it and the owner holding the lock write). Holes are the
 *   one place where it reads owner lists: the local_free chain of a slab
 *   that is not the first of its queue, from a head read with acquire (the
 *   free fast path publishes each push, alloc.h local_free_publish); it
 *   rewrites only links of blocks on that chain, which no thread touches
 *   without the lock, and never local_free itself (slab.c, "Holes", has
 *   the whole protocol). Orphans are taken whole (state BUSY). With
 *   LZ_HEAPS > 0 the same lock is the one every entry point holds.
 *
 * Hardening level 2 and the fast paths (the contract between alloc.h and
 * secure.c): malloc's fast path only pops from spans reachable through
 * direct[] or queues[c].first with a non-NULL `free` list, and free's fast
 * path only handles chunks whose map byte is the calling thread's heap's
 * fast_id and the chunks of its region. A heap at level 2 keeps every direct[] entry at
 * LZ_SPAN_EMPTY, its queues and foreign lists empty, its spans' `free`
 * lists NULL and xfast_cap 0, and has no heap id (map_id CHUNK_SPANS,
 * fast_id CHUNK_HEAP_NONE) nor region (secure.c keeps its own
 * state in `secure`), so every call reaches the slow paths, which hand
 * small and medium blocks to secure.c.
 */
typedef struct heap_s {
  span_t *direct[LZ_DIRECT_SLOTS];     /* fast path: size/16 -> span */
  uint64_t slow_count;                 /* slow-path entries (purge ticks) */
  /* map_id if that is an id, else CHUNK_HEAP_NONE [heap.map_id]: what
   * free's fast path compares the chunk map byte of a pointer outside the
   * thread's region with. */
  uint8_t fast_id;
  /* Counts free's look-ups of the heap's own chunks by the chunk map up
   * from HEAP_RWAIT (wrapping): at 0 the region gets its page map even in
   * start-up (heap_region_start). Only the holder of the heap writes it. */
  uint16_t rwait;
  span_queue_t queues[LZ_CLASSES];
  heap_stats_t stats;
  _Atomic(lz_block_t *) xremote;       /* blocks freed by other threads */
  /* slow_clock's low 32 bits at the owner's last purge tick, for other
   * threads (remote.c, "Idle owners"): written by the owner only. */
  _Atomic(uint32_t) xtick_ms;
  /* The heartbeat (heap.c, "Heartbeat"): xowed 1 while the heap may hold
   * blocks of other heaps that only its own tick sends (batches, foreign
   * lists; the owner raises it, its tick lowers it); xnudged 1 while the
   * janitor has taken its queues' first spans off free's fast path
   * (xfast_cap 0) so that the owner's next free ticks; nudges counts the
   * janitor's nudges since the owner's last tick (heap lock). */
  _Atomic(uint8_t) xowed;
  _Atomic(uint8_t) xnudged;
  uint8_t nudges;
  uint64_t rbatch_pending;             /* bit i set: rbatch[i] holds blocks */
  uint64_t rbatch_aged;                /* pending at the last tick: sent at the next */
  /* Blocks of other heaps' slabs that this thread freed, kept per class to
   * be handed out again here instead of travelling back to their owners
   * (remote.c, "foreign blocks"; only classes LZ_FOREIGN_OK allows). Only `free`, `used` (the count while not
   * installed), `reserved` (the bound), `npages` (the cap with idle
   * owners' blocks: foreign_idle_cap), `block_size`, `cls` and `flags`
   * (FOREIGN_INSTALLED) are used: while installed, direct[] points at it and malloc's fast path
   * pops its list like a span's. An array of LZ_CLASSES, mapped when the
   * heap first keeps a foreign block (so a thread that never frees another
   * thread's blocks, and the static empty heap, carry none); never unmapped,
   * like the heap. */
  span_t *foreign;
  /* fkeep[c]: &foreign[c] while that list is installed or kept
   * (FOREIGN_CHARGED), LZ_FOREIGN_OK allows its blocks, the heap has a
   * fast_id and NUMA is
   * off, else NULL (fkeep[0] always) [heap.fkeep]: remote_free_fast's one
   * test for "keep this block of class c here" (installed or kept implies
   * the rest of foreign_wanted, slabs_made[c] != 0 among it:
   * [foreign.installed], [foreign.kept]; remote.c). The array lies after
   * foreign[] in its mapping; lz_fkeep_none (all NULL) until that is
   * mapped. */
  span_t **fkeep;
  uint64_t foreign_flush_at;           /* when the foreign lists next go home (ms) */
  uint8_t slabs_made[LZ_CLASSES];      /* slabs made per class (saturating): their size grows */
  /* Spare slabs (slab.c, "Spare slabs"): bit cls of spare_classes: the
   * class's queue holds spares (SPAN_SPARE); of slab_taken: the class
   * took a slab since the last look, which is due at spare_look_at (heap
   * time; without spares every purge is a look), and lends no block
   * beyond a quarter of its size (slab.c, "Borrowing"). The owner's, or
   * the janitor's holding the heap lock; slab_taken is also read without
   * it by the owner's borrowing (malloc's short way, a hint), so its
   * accesses are relaxed atomics (plain moves on x86-64). */
  uint64_t spare_classes;
  _Atomic(uint64_t) slab_taken;
  uint64_t spare_look_at;
  /* Idle current slabs (slab.c, slab_firsts_look): when the owner next
   * looks (ms; UINT64_MAX: none set, purging off or a fork child's heap
   * before its first purge tick, heap.c); bit cls: the class's first span
   * had no block out at the last look. The owner's. */
  uint64_t firsts_look_at;
  uint64_t firsts_empty;
  uint32_t spare_total;                /* pages of all its spares (at most slab.c's SPARE_MAX_PAGES) */
  uint16_t spare_pages[LZ_CLASSES];    /* pages of the class's spares */
  /* Start-up (slab.c): the process's first heap serves small sizes from
   * the power-of-two classes only (16, 32, 64 ... 32768 B), so a process
   * that allocates a little touches one page per power of two, not one per
   * class; over once its slabs reach LZ_STARTUP_PAGES pages
   * (startup_pages counts them), after LZ_STARTUP_SLOW slow-path entries
   * (slow_count), or when the heap starts keeping foreign blocks
   * (remote.c). Never at hardening level 2 or with shared heaps. */
  bool startup;
  uint16_t startup_pages;
  /* Start-up's packed span (pack.c): blocks up to LZ_PACK_MAX of every
   * class carved one after another; NULL once closed (pack_done). */
  bool pack_done;
  /* A packed span outside start-up (slab.c, "Packing armed"): set for a
   * new thread's heap when it is made, and for a fork child's when its
   * first call takes it back (slab_pack_arm); cleared once that span is
   * closed; meanwhile direct[] sends every size whose class is up to
   * LZ_PACK_MAX to the slow path. Never with startup. */
  bool pack_armed;
  span_t *pack;
  lz_block_t *pack_free[LZ_PACK_CLASSES]; /* its freed blocks per class (pack.c) */
  uint32_t pack_uses;                  /* blocks it handed out */
  /* Recently freed medium spans kept whole for reuse (used == 0, pages
   * still in the span): at most LZ_MEDIUM_CACHE of them and
   * LZ_MEDIUM_CACHE_BYTES in all, given back when idle for the purge delay.
   * The medium cache protocol (medium.c): only the heap's holder fills a
   * slot (release store), without the lock; the holder takes one with an
   * exchange, without the lock; the janitor, holding the lock, empties
   * slots with an exchange and gives their spans back. The holder's record
   * (mask, pages, bytes) is the holder's alone: a superset of the
   * full slots, the janitor's emptied ones included until the holder finds
   * them empty. */
  /* Front medium spans (medium.c): mfront[n], if not NULL, is a span of
   * n pages (LZ_MEDIUM_MIN_PAGES <= n <= LZ_MEDIUM_FRONT_PAGES) of this
   * heap that stays this heap's with used 1 while its block comes and
   * goes (span invariants); mfront_bytes is the bytes of their pages
   * (<= LZ_MEDIUM_FRONT_BYTES) [mfront.span, mfront.bytes]. Holder only,
   * no lock: only a caller that holds the heap exclusively (its owner, an
   * orphan's holder: heap_purge's `exclusive`) gives the parked ones back:
   * at a purge look at least a purge delay after the last one
   * (mfront_looked_at, ms), on a miss (medium_malloc), or forced. */
  span_t *mfront[LZ_MEDIUM_FRONT_PAGES + 1];
  uint64_t mfront_mask;                /* bit n - LZ_MEDIUM_MIN_PAGES set iff mfront[n] != NULL */
  size_t mfront_bytes;
  uint32_t mfront_count;               /* their number (<= LZ_MEDIUM_FRONT_SPANS) */
  uint64_t mfront_looked_at;
  _Atomic(span_t *) xmcache[LZ_MEDIUM_CACHE];
  uint16_t mcache_pages[LZ_MEDIUM_CACHE]; /* holder: slot i's span's pages (bit i set) */
  uint32_t mcache_mask;                /* holder: slots it filled and has not seen emptied */
  _Atomic(uint8_t) xmcache_used;       /* 1: a span was cached since the last purge
                                          looked (the holder raises it, a purge
                                          lowers it by exchange) */
  _Atomic(uint8_t) xmcache_watch;      /* will the janitor look again? (medium.c) */
  size_t mcache_bytes;                 /* holder: bytes of those slots' spans */
  uint64_t mcache_used_at;             /* a purge saw a use since the last one (ms): the
                                          last use was no later */
  /* The returned list (medium.c): medium spans other threads freed (and
   * the owner's locked frees) that the cache had no room for, kept whole
   * (used 0) for the heap's next medium requests, linked by `next`, the
   * last returned first; at most LZ_MEDIUM_RETURN_BYTES. Each purge look
   * gives back the spans no request reached since the previous look
   * (mreturn_low: the fewest listed since then), a miss all of them.
   * Heap lock. */
  span_t *mreturn;
  uint32_t mreturn_count;              /* spans listed */
  uint32_t mreturn_low;                /* the fewest listed since the last purge look */
  size_t mreturn_bytes;                /* their bytes */
  uint64_t mreturn_looked_at;          /* the last purge look at a list not empty (ms) */
  _Atomic(uint64_t) xowner;            /* a thread's own heap: os_thread_ident of the
                                          thread, else 0 (heap.c, heaps_reclaim_gone) */
  chunk_t *chunks;                     /* chunks owned */
  /* The fit memo (span.c, span_alloc): fit_first .. fit_last, a run of
   * chunks, have no free run of fit_pages pages; 0: no memo. */
  chunk_t *fit_first, *fit_last;
  uint16_t fit_pages, fit_epoch;
  _Atomic(int) xstate;                 /* HEAP_ACTIVE / ORPHAN / BUSY / DEAD */
  uint64_t purge_next;                 /* time of the next purge check */
  uint64_t slow_clock;                 /* coarse time (ms) read at the last purge tick */
  uint64_t abandoned_at;               /* when it last became an orphan (ms) */
  /* Empty chunks kept mapped and resident (pages.c, purge.c): empty_count of the
   * chunks listed are empty, at most empty_keep (grown by churn, shrunk
   * with the kept chunks that idleness gives back). empty_idle_keep is
   * empty_keep when a kept chunk was last kept or reused (empty_used_at):
   * the base of the allowance's decay, so that looks do not compound. */
  uint32_t empty_keep, empty_count, empty_idle_keep;
  /* Populate (chunk.c): populate_budget is at most the pages the heap gave
   * back (resident pages decommitted, empty chunks released) since
   * malloc_trim last set it to 0 and within POPULATE_MS of each other,
   * the last at given_at (below), less those chunk_alloc populated since:
   * what a clean chunk taken before given_at + POPULATE_MS may be made
   * resident in one call. Heap lock. (Its fields in padding: the first
   * heap's fields end on the hot variables' page, tests/startup_bss.) */
  uint32_t populate_budget;
  uint64_t empty_used_at;              /* an empty chunk last kept or reused (ms) */
  uint64_t empty_released_at;          /* an empty chunk last given back (ms) */
  /* Holes in slabs (purge.c): armed when a full slab gets a block back,
   * for the heap's holes delay (holes_delay); holes_hot: a slab was
   * allocated from since the last look. holes_shift: that delay is
   * LZ_HOLES_AFTER_MS << holes_shift, raised when holes are filled again
   * (a refault), lowered by a look that punches while no hole was filled
   * since the last (purge.c, "Refaults"); holes_refilled: holes were
   * filled since the last look. Heap lock. */
  uint64_t holes_at;
  uint32_t holes_hot;
  uint8_t holes_shift, holes_refilled;
  /* An orphan is collected whole (heap.c) once abandoned for the purge
   * delay << orphan_shift; orphan_purged: that happened since it was last
   * adopted. Written by the heap's holder (owner, or BUSY). */
  uint8_t orphan_shift, orphan_purged;
  /* Its chunks' purge delay is the option's << decay_shift (purge.c,
   * "Refaults"). Heap lock. */
  uint8_t decay_shift;
  /* realloc last moved a medium block to a large one (heap clock, ms, mod
   * 2^16, odd; 0: never. medium.c, medium_free_moved; in padding). */
  uint16_t moved_at;
  uint32_t given_at;                   /* Populate: pages last given back (heap clock, ms, mod 2^32) */
  /* Growth by copying (medium.c, "Growth"), the holder's: grow_last, the
   * span medium_malloc last took from the chunks (NULL after a large
   * allocation); grow_prev, grow_last as it was at the latest such
   * allocation or large one, of grow_pages pages (NULL once freed);
   * cut_mask, bit k: a span of 2^k to 2^(k+1) - 1 pages was given back as
   * a growth's old buffer since cut_at (heap clock, ms, mod 2^16, odd; 0:
   * none; reset a second on). Spans compared, never read. */
  span_t *grow_last, *grow_prev;
  uint32_t grow_pages;
  uint16_t cut_at;
  uint16_t cut_mask;
  /* The heap's clock (purge.c, "Clock"), which every purge time of the heap
   * reads (purge_at, empty_used_at, holes_at, abandoned_at ...): heap_now()
   * = os_now_ms() - lag_ms. lag_ms only grows: the time the heap's owner
   * thread spent runnable but not running (waiting for a CPU) while the
   * heap had something to purge. wait_seen_ns: that thread's wait
   * (os_thread_wait_ns) at the last reading, 0: none to count from (a new
   * owner, an orphan, nothing pending). purge_wake: when (heap time) the
   * heap's purge next has something due, as its last look returned it, or
   * sooner when pages were freed since (the last tick's time plus
   * LZ_FREED_DUE_MS, pages_freed); UINT64_MAX: nothing. Heap lock; but
   * lag_ms is atomic: the owner reads its clock without the lock
   * (heap_abandon's last collect, pages.c), while the janitor may sync it. */
  _Atomic uint64_t lag_ms;
  uint64_t wait_seen_ns, purge_wake;
  /* Its region (chunk.c, "Regions"), reserved at its first chunk if it has
   * an id (never at level 2, nor with NUMA): rbase (0: none yet), rmap its
   * page map (NULL until the heap is out of start-up: chunk_region_map;
   * then the rmap of every chunk of the heap there points into it),
   * rcarved the chunks committed so far from rbase up, each of them one
   * of the heap's chunks or waiting (released, owned by no heap: bit k of
   * rwaiting for the chunk k units above rbase); rend (lz_tls_t.rend's
   * value) the bytes from rbase of the chunks whose map entries are
   * written, 0 while rmap is NULL, else every committed chunk but the
   * waiting ones at the top whose map page malloc_trim gave back
   * (chunk_region_trim); rfailed: the reservation or the map was refused,
   * not tried again. Written holding the heap; never given up (a heap is
   * never freed) [heap.region]. as_tight: address space is short (an
   * address-space limit seen at the first chunk, or a chunk's mapping
   * refused), so slabs are placed best fit (span.c, span_alloc); set
   * holding the heap, never cleared. */
  uintptr_t rbase;
  _Atomic(span_t *) *rmap;
  uintptr_t rend;
  uint32_t rwaiting;
  uint32_t rcarved;
  bool rfailed;
  bool as_tight;
  /* Its chunks' chunk map byte: an id CHUNK_HEAP_FIRST .. CHUNK_HEAP_LAST
   * of its own (the first heaps made below level 2, for ever: a heap is
   * never freed, an orphan keeps it for its next thread), else
   * CHUNK_SPANS. fast_id is it if it is an id, else CHUNK_HEAP_NONE
   * (heap.c, heap_new, the one place both are written). Never changes. */
  uint8_t map_id;
  struct heap_s *next_all;             /* global list of every heap ever made */
  struct secure_heap_s *secure;        /* level-2 state (secure.c), NULL below level 2 */
  lz_lock_t lock;                      /* the heap lock (protocol above) */
  uint32_t lock_depth;                 /* holder: heap_enter nesting (LZ_HEAPS == 0) */
  /* NUMA (numa.c; only with lz_numa_on): new chunks come from numa_home;
   * numa_seen/numa_streak/numa_seen_at track observations elsewhere. */
  uint32_t numa_home;
  uint32_t numa_seen;
  uint32_t numa_streak;
  uint64_t numa_seen_at;
} heap_t;

/* A heap's batches of its frees of other heaps' blocks (rbatch_pending's
 * bits): LZ_REMOTE_SLOTS of them right before the heap (heap_rbatch), not
 * in it, so that their 2 KiB, touched only by threads that free other
 * threads' blocks, split no page of its fields, and the first heap's
 * fields share one page with the hot variables and the start of .bss
 * (cmake/layout.ld): every heap is carved with them (heap.c,
 * heap_block_t). */
#define LZ_RBATCH_BYTES ((size_t)LZ_REMOTE_SLOTS * sizeof(remote_batch_t))
lz_inline remote_batch_t *heap_rbatch(const struct heap_s *h) {
  return (remote_batch_t *)(uintptr_t)h - LZ_REMOTE_SLOTS;
}

/* The owner's side of the janitor protocol (per-thread heaps; with shared
 * heaps every entry point holds the lock already). */
lz_inline void heap_enter(heap_t *h) {
  if (LZ_HEAPS == 0 && h->lock_depth++ == 0 && lz_unlikely(!lz_trylock(&h->lock))) lz_lock(&h->lock);
}
lz_inline void heap_leave(heap_t *h) {
  if (LZ_HEAPS == 0 && --h->lock_depth == 0) lz_unlock(&h->lock);
}

/* ===========================================================================
 * Cross-file declarations, grouped by the file that defines them.
 * =========================================================================*/

/* os.c: the only door to the kernel. Functions return 0 or an errno value
 * (or NULL) and leave the caller's errno unchanged. */
void *os_map(size_t size);                      /* read-write, zeroed, NULL on failure */
void *os_reserve_aligned(size_t size, size_t align); /* PROT_NONE, aligned */
bool os_address_space_limited(void);                 /* RLIMIT_AS finite */
bool os_map_hopeless(size_t size);                    /* refused whatever we give back */
void *os_map_aligned(size_t size, size_t align);/* as os_map, base aligned */
int os_map_at(void *p, size_t size);            /* as os_map at p, if nothing is mapped there */
int os_remap_readonly(void *p, size_t size); /* read-only zero-fill in place: 0 or errno */
int os_unmap(void *p, size_t size);
int os_decommit(void *p, size_t size);          /* contents become zero */
typedef struct os_range_s {
  void *base;
  size_t size;
} os_range_t;                                  /* laid out as struct iovec */
int os_decommit_ranges(const os_range_t *r, size_t n); /* as os_decommit, n runs at once */
int os_protect_none(void *p, size_t size);
int os_hugepage(void *p, size_t size, bool collapse); /* MADV_HUGEPAGE (+ MADV_COLLAPSE) */
int os_populate(void *p, size_t size);          /* MADV_POPULATE_WRITE: resident now, in one call */
int os_resident(void *p, size_t size, unsigned char *vec); /* mincore: bit 0 of vec[i], page i resident */
int os_protect_rw(void *p, size_t size);
int os_move(void *from, size_t size, void *to); /* the pages (not a copy) of [from, +size) to
                                                   `to`, replacing what is mapped there */
size_t os_page_size(void);                     /* the kernel's page size */
uint64_t os_now_ms(void);
bool os_clock_vdso(void); /* the clock read through the vDSO (after the first reads' system calls) */
void os_write(int fd, const char *s, size_t n);
size_t fmt_u64(char *buf, uint64_t v);      /* decimal; characters written */
size_t fmt_hex(char *buf, uint64_t v);      /* 0x and hex; characters written */
size_t os_random_bytes(void *buf, size_t n);
void os_yield(void);
void os_sleep_ms(uint64_t ms);
void os_futex_wait(_Atomic(uint32_t) *word, uint32_t expect); /* returns at once unless *word == expect */
void os_futex_wake(_Atomic(uint32_t) *word);                  /* wakes one waiter */
int os_thread_start(void *(*fn)(void *), void *stack, size_t size); /* 0 or an errno value */
void os_thread_name(const char *name);                        /* the calling thread's, <= 15 chars */
size_t os_resident_bytes(void);
long os_read_file(const char *path, char *buf, size_t n); /* bytes read or -1 */
uint64_t os_thread_wait_ns(uint32_t tid); /* runnable, not running (ns); tid 0: the caller */
lz_noreturn void os_abort(void);
/* Hardening level 2: a SIGSEGV handler that calls hook(address) for every
 * write or read of a PROT_NONE page (the hook reports and aborts if the
 * page is one of our guards, else returns); other faults, and those the
 * hook returns from, go to the action installed before ours (called with
 * the same arguments), or to the default action. A program that installs
 * its own handler later replaces ours. 0 or an errno value. */
int os_fault_hook(void (*hook)(uintptr_t addr));
/* Thread exit and fork (pthread keys and handlers, owned by os.c): the
 * hook fn(value) runs at the exit of a thread that armed it with a non-NULL
 * value; arming fails (EINVAL) when the hook could not be created. */
int os_thread_exit_hook(void (*fn)(void *));
int os_thread_exit_arm(void *value);
/* The calling thread's identity (process and kernel thread ids, never 0),
 * and whether the thread it names is known to have ended: false for a live
 * thread and for an identity from another process (a fork's parent). */
uint64_t os_thread_ident(void);
bool os_thread_gone(uint64_t ident);
/* Fork handlers, registered with libc at the process's first heap or once
 * it may have a second thread (eager: at once); 0 or an errno value. */
int os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), bool eager);
bool os_atfork_registered(void);                 /* given to libc already (tests) */
/* calloc's watch for the process's first pthread_create (os.c says why):
 * registers the handlers recorded by os_atfork once the process is
 * threaded: two loads and two branches in a single-threaded process, one
 * once registered. */
enum { ATFORK_NONE = 0, ATFORK_PENDING = 1, ATFORK_BUSY = 2, ATFORK_DONE = 3 };
extern _Atomic(int) lz_atfork_state;
bool os_single_threaded(void);                  /* the process has never had a second thread */
void os_atfork_threaded(void);
static inline void os_atfork_watch(void) {
  if (lz_unlikely(atomic_load_explicit(&lz_atfork_state, memory_order_relaxed) == ATFORK_PENDING) &&
      !os_single_threaded())
    os_atfork_threaded();
}
void os_fork_signals_block(void);   /* prepare handler: every signal blocked... */
void os_fork_signals_restore(void); /* ...until the parent and child handlers */
/* Fault injection (tests): the next `after` calls succeed, then calls fail
 * (every call when every == 1, or one in `every`); after = -1 disables.
 * Only primitives of the kinds set by os_fault_kinds fail (default: map). */
enum { OS_FAULT_MAP = 1, OS_FAULT_DECOMMIT = 2, OS_FAULT_PROTECT = 4, OS_FAULT_THREAD = 8, OS_FAULT_RANGES = 16, OS_FAULT_COMMIT = 32 };
void os_fault_set(long after, long every);
void os_fault_kinds(unsigned kinds);
long os_fault_injected(void); /* failures injected since the process started */
/* NUMA. Node ids below LZ_MAX_NODES, CPU ids below LZ_MAX_CPUS (others
 * count as node 0). */
#define LZ_MAX_NODES 64
#define LZ_MAX_CPUS 1024
enum { OS_MPOL_PREFERRED = 1, OS_MPOL_BIND = 2, OS_MPOL_INTERLEAVE = 3 }; /* mbind(2) modes */
/* Fills cpu_node[0..max_cpus) from sysfs; returns the highest online node
 * id + 1 (0: no NUMA information; with 1 cpu_node is left as it is).
 * Never allocates. */
int os_numa_topology(uint8_t *cpu_node, size_t max_cpus);
int os_current_cpu(void);                       /* -1 if unknown */
int os_mbind(void *p, size_t size, int policy, uint64_t nodemask);
/* Calls fn for each line of a file (without its newline; lines longer
 * than 4 KiB are skipped); returns the lines read, -1 if it cannot open. */
long os_read_lines(const char *path, void (*fn)(void *ctx, const char *line, size_t n), void *ctx);
/* Test hooks (never used by the library itself): a fake topology of
 * nnodes nodes; then os_current_cpu returns the CPU set for the calling
 * thread and os_mbind records its calls (the last 64) instead of making
 * them. */
typedef struct lz_os_bind_s {
  void *p;
  size_t size;
  int policy;
  uint64_t mask;
} lz_os_bind_t;
void lz_os_numa_inject(int nnodes, const uint8_t *cpu_node, size_t ncpus);
void lz_os_numa_inject_cpu(int cpu);
size_t lz_os_numa_binds(lz_os_bind_t *out, size_t max); /* returns how many were made in all */

/* start.c: the process's start-up (once, from the first call that needs
 * it or the constructor). */
void process_init(void);
void check_page_size(size_t kernel_page); /* aborts unless LZ_PAGE_SIZE */
extern _Atomic(int) lz_initialized;

/* options.c: runtime options read once from LZMALLOC_* variables. */
typedef enum {
  OPT_VERBOSE = 0,
  OPT_SHOW_STATS,
  OPT_PURGE_DELAY,
  OPT_LARGE_CACHE,
  OPT_SECURE,
  OPT_NUMA,       /* LZMALLOC_NUMA: off | auto | interleave | strict (numa.c) */
  OPT_BACKGROUND,
  OPT_HUGEPAGES,  /* LZMALLOC_HUGEPAGES: never | auto | always (purge.c) */
  OPT_VALIDATE,
  OPT_COUNT_
} lz_option_t;
enum { NUMA_OFF = 0, NUMA_AUTO = 1, NUMA_INTERLEAVE = 2, NUMA_STRICT = 3 };
enum { HUGE_NEVER = 0, HUGE_AUTO = 1, HUGE_ALWAYS = 2 };
enum { BACKGROUND_OFF = 0, BACKGROUND_ON = 1, BACKGROUND_AUTO = 2 };
void options_init(void);
extern long lz_opt_values[OPT_COUNT_];
lz_inline long opt_get(lz_option_t o) { return lz_opt_values[o]; }
/* When something idle since `since` (ms) is due to go back under the purge
 * delay (LZMALLOC_PURGE_DELAY: -1 never, 0 at once): UINT64_MAX if never. */
lz_inline uint64_t purge_due(uint64_t since) {
  long delay = opt_get(OPT_PURGE_DELAY);
  return delay < 0 ? UINT64_MAX : since + (uint64_t)delay;
}

/* security.c */
extern uintptr_t lz_key;
/* lz_key's bits 48-63, the same in every process: a link's top bits are
 * the key's whatever the address (every user address lies below 2^48), so
 * any free block's first word shows them and they hid nothing; fixed,
 * free's double-free screen compares them with a constant instead of
 * loading them (alloc.h: one instruction less). 10 in the top two bits
 * (security.c: the key lies in [2^63, 2^63 + 2^62)); no common value has
 * them (a double with these bits is about -1.3e-116; not ASCII nor a
 * well-known hashing constant), and a live block's word that has them
 * only costs a slow free, whose screen is exact. */
#define LZ_KEY_TOP 0xA7D3u
_Static_assert(LZ_KEY_TOP >> 14 == 2, "the key's top two bits are 10 (security.c)");
extern uint64_t lz_seed; /* the process's 64 random bits lz_key was made of */
extern uint64_t lz_canary; /* the secret canary word (hardening level 2) */
extern bool lz_secure2;    /* hardening level 2, fixed at start-up (security_init) */
/* Fills [from, to) with the pattern of word w (the byte at address a is
 * byte a & 7 of w); check returns the first byte that differs, or NULL. */
void lz_pattern_fill(uint8_t *from, uint8_t *to, uint64_t w);
uint8_t *lz_pattern_check(uint8_t *from, uint8_t *to, uint64_t w);
void security_init(void);
lz_cold lz_noreturn void lz_fatal_pointer(const char *what, const char *func, const void *p);
/* While not NULL, reports that name "free" name this instead: set by
 * cxx.c's deletes around their slow calls ("operator delete[]"). */
extern __thread const char *lz_free_as __attribute__((tls_model("initial-exec")));
lz_cold lz_noreturn void lz_assert_fail(const char *cond, const char *file, int line);
void lz_message(const char *a, const char *b, uintptr_t value, int number); /* number: 0 none, 1 hex, 2 decimal */

/* sizeclass.c */
extern const uint32_t lz_class_size[LZ_CLASSES];
extern const uint8_t lz_direct_class[LZ_DIRECT_SLOTS];
extern const uint8_t lz_class_high[LZ_SMALL_MAX / 64];
uint32_t class_slab_pages(unsigned cls);
uint32_t class_first_slab_pages(unsigned cls);
uint32_t class_min_slab_pages(unsigned cls);

/* chunkmap.c */
#define LZ_CHUNKMAP_BYTES (LZ_CHUNKMAP_SIZE + LZ_PAGE_SIZE) /* whole pages, [0] and the units' */
extern _Atomic(uint8_t) lz_chunkmap_ends[LZ_CHUNKMAP_BYTES]; /* [0]: none; [i + 1]: unit i */
#define lz_chunkmap (lz_chunkmap_ends + 1)
extern _Atomic(uintptr_t) lz_chunkmap_lo, lz_chunkmap_hi; /* units ever marked lie in [lo, hi] */
void chunkmap_init(void);
/* Before memory obtained at chunk_base (a 2 MiB unit) is marked: its map
 * page made writable. false: refused (out of memory: the caller gives
 * the memory back and fails). */
bool chunkmap_prepare(uintptr_t chunk_base);
void chunkmap_set(uintptr_t chunk_base, uint8_t kind);
/* The byte of a's unit as written (a heap id for a chunk of its spans). */
lz_inline uint8_t chunkmap_byte(uintptr_t a) {
  uintptr_t i = a >> LZ_CHUNK_SHIFT;
  if (lz_unlikely(i >= LZ_CHUNKMAP_SIZE)) return CHUNK_NONE;
  return atomic_load_explicit(&lz_chunkmap[i], memory_order_relaxed);
}
/* What a's unit is: CHUNK_NONE, CHUNK_LARGE or CHUNK_SPANS (any heap's). */
lz_inline uint8_t chunkmap_kind(uintptr_t a) {
  uint8_t k = chunkmap_byte(a);
  return k >= CHUNK_SPANS ? (uint8_t)CHUNK_SPANS : k;
}
/* chunkmap_kind for an address that may be anything (random bytes read as
 * a link): CHUNK_NONE outside the units ever marked, without reading the
 * map, whose pages such look-ups would otherwise make resident at random
 * (chunkmap.c). */
lz_inline uint8_t chunkmap_kind_any(uintptr_t a) {
  uintptr_t i = a >> LZ_CHUNK_SHIFT;
  if (i < atomic_load_explicit(&lz_chunkmap_lo, memory_order_acquire) ||
      i > atomic_load_explicit(&lz_chunkmap_hi, memory_order_acquire))
    return CHUNK_NONE;
  return chunkmap_kind(a);
}

/* chunk.c: chunks and the lock-free pool of empty ones. */
chunk_t *chunk_alloc(heap_t *heap);
/* Where chunk_alloc takes a 2 MiB unit (pages maybe resident, old data)
 * before it maps a new one: set once by start.c (large_cache_unit). */
void chunk_unit_source(uintptr_t (*fn)(unsigned node));
void chunk_release(heap_t *heap, chunk_t *c);
void chunk_gave_back(heap_t *heap, size_t pages); /* resident pages of the heap given back (Populate) */
void chunk_populate(heap_t *heap, chunk_t *c);     /* a clean chunk taken for a slab: resident at once (Populate) */
void chunk_region_map(heap_t *heap, bool now); /* the heap's region's page map, once out of start-up (or now) */
void chunk_region_trim(heap_t *heap); /* malloc_trim: waiting chunks' map pages at the region's top given back */
size_t chunk_pool_trim(bool force);
bool chunk_pool_empty(void);
extern _Atomic(size_t) lz_chunks_mapped;
extern _Atomic(uint64_t) lz_pages_purged;
extern _Atomic(size_t) lz_bytes_decommitted;

/* pages.c: the state of a chunk's pages below its spans (dirty or clean,
 * the purge clock, huge-page advice) and the heap's kept empty chunks. */
size_t pages_commit(chunk_t *c, size_t first, size_t n);
void pages_decommit(chunk_t *c, size_t first, size_t n);
/* Runs of pages to decommit, gathered and given back in one system call
 * (pages.c, "Batches"). */
#define PAGES_BATCH 64
typedef struct pages_batch_s {
  size_t n;
  os_range_t run[PAGES_BATCH];
} pages_batch_t;
void pages_decommit_later(pages_batch_t *b, chunk_t *c, size_t first, size_t n);
void pages_batch_flush(pages_batch_t *b);
size_t pages_taken(heap_t *heap, chunk_t *c, size_t first, size_t n, bool fresh);
void pages_freed(chunk_t *c, size_t first, size_t n);
void pages_freed_tail(chunk_t *c, size_t first, size_t n); /* the same, for span_shrink (pages.c) */
void pages_release_kept(heap_t *heap, chunk_t *c, uint64_t now);
size_t pages_free_dirty(const chunk_t *c);
uint64_t pages_purge_delay(const chunk_t *c, long delay);

/* span.c: runs of pages inside a heap's chunks. */
span_t *span_alloc(heap_t *heap, size_t npages, size_t align_pages, uint8_t kind);
span_t *span_alloc_fit(heap_t *heap, size_t npages, size_t min_pages, size_t align_pages, uint8_t kind);
void span_free(heap_t *heap, span_t *s);
extern void (*lz_span_spares_release)(heap_t *heap, chunk_t *c); /* span.c: slab.c's, see there */
bool span_grow(heap_t *heap, span_t *s, size_t more); /* medium: the following free pages */
void span_shrink(heap_t *heap, span_t *s, size_t npages); /* medium: its tail freed */
chunk_t *span_chunk(const span_t *s);
lz_inline uint8_t *span_start(const span_t *s) {
  return (uint8_t *)(((uintptr_t)s & ~LZ_CHUNK_MASK) + ((size_t)s->page << LZ_PAGE_SHIFT));
}

/* slab.c: small blocks inside slab spans. */
/* Makes slab s's own freed blocks its free list. free is empty, so
 * local_free holds every carved block not out (no holes: the caller filled
 * them), and the span invariants' used == out + |free| + pin becomes
 * capacity + pin. The one install of local_free: slab.c's slow paths and
 * heap_malloc_refill. */
lz_inline void slab_take_local(span_t *s, bool pinned) {
  s->free = s->local_free;
  s->local_free = NULL;
  s->used = (uint16_t)(s->capacity + pinned);
}
/* The heap of a thread that has none (lz_heap_tls's first value): the fast
 * paths read only its direct[] (every entry LZ_SPAN_EMPTY), queues[]
 * (empty) and fast_id (CHUNK_HEAP_NONE), and
 * remote_free_fast its slow_count (a tick due); the slow paths compare
 * addresses with it and take the thread's heap before they read anything
 * else (heap_malloc_slow, slow_enter). So only those fields exist,
 * read-only beside the size tables (slab.c). */
typedef struct heap_empty_s {
  span_t *direct[LZ_DIRECT_SLOTS];
  uint64_t slow_count; /* HEAP_TICK_EVERY - 1: its tick is always due (remote_free_fast) */
  uint8_t fast_id;
  span_queue_t queues[LZ_CLASSES];
} heap_empty_t;
extern const heap_empty_t lz_heap_empty_direct;
/* heap_t.fkeep of a heap without foreign lists: LZ_CLASSES NULLs, read
 * from the empty heap's queues (all NULL), so that the RELRO page holds
 * no second copy of them (tests/startup_bss.c: that page's data, the size
 * tables among them, fits one page). */
#define lz_fkeep_none ((span_t *const *)lz_heap_empty_direct.queues)
_Static_assert(sizeof(((heap_empty_t *)0)->queues) >= LZ_CLASSES * sizeof(span_t *), "lz_fkeep_none's NULLs");
#define LZ_HEAP_EMPTY ((heap_t *)(uintptr_t)&lz_heap_empty_direct)
_Static_assert(offsetof(heap_t, direct) == offsetof(heap_empty_t, direct) &&
                   offsetof(heap_t, slow_count) == offsetof(heap_empty_t, slow_count) &&
                   offsetof(heap_t, fast_id) == offsetof(heap_empty_t, fast_id) &&
                   offsetof(heap_t, queues) == offsetof(heap_empty_t, queues),
               "LZ_HEAP_EMPTY is a heap's first fields alone");
/* free == NULL: sends the fast path to the slow path. Read-only, beside
 * the size tables (lz_ro_hot), not among the hot variables of .data, whose
 * page it would outgrow (tests/startup_bss.c): no path writes it, and the
 * paths that reach it through direct[] read only its owner half (free,
 * local_free, flags: heap_malloc_refill). */
extern const span_t lz_span_empty;
#define LZ_SPAN_EMPTY ((span_t *)(uintptr_t)&lz_span_empty)
void *slab_malloc_slow(heap_t *heap, unsigned cls);
void slab_spare_release(heap_t *heap, unsigned cls);
bool slab_spares_look(heap_t *heap, uint64_t now);
void slab_firsts_look(heap_t *heap, uint64_t now);
/* The owner's looks at its idle current slabs (slab_firsts_look) come
 * every LZ_FIRSTS_LOOK_MS, or the purge delay if longer: the time of the
 * next from now (ms), or never with purging off. */
#define LZ_FIRSTS_LOOK_MS 500
lz_inline uint64_t slab_firsts_next(uint64_t now) {
  long delay = opt_get(OPT_PURGE_DELAY);
  if (delay < 0) return UINT64_MAX; /* nothing goes back: no look */
  return now + (uint64_t)(delay > LZ_FIRSTS_LOOK_MS ? delay : LZ_FIRSTS_LOOK_MS);
}
void *slab_malloc_short(heap_t *heap, unsigned cls);
void *slab_malloc_local(heap_t *heap, unsigned cls);
void slab_free_chain(heap_t *heap, span_t *s, lz_block_t *head, lz_block_t *tail, uint32_t count);
void slab_extend(heap_t *heap, span_t *s);
void slab_fast_resync(heap_t *heap, span_t *s);
uint32_t slab_cached(const span_t *s);
void slab_uncache(heap_t *heap, span_t *s);
lz_cold void slab_retire(heap_t *heap, span_t *s);
void queue_remove(heap_t *heap, span_queue_t *q, span_t *s);
void queue_push_front(heap_t *heap, span_queue_t *q, span_t *s);
void heap_direct_update(heap_t *heap, unsigned cls);
void heap_direct_all(heap_t *heap);
void slab_pack_arm(heap_t *heap); /* a new thread's heap, a fork child's: its first blocks packed */
void slab_pack_end(heap_t *heap); /* its packed span closed: direct[] whole again */
unsigned slab_class_for(const heap_t *heap, unsigned cls); /* the class that serves cls (start-up) */
void slab_startup_end(heap_t *heap);
bool slab_contains_free(span_t *s, lz_block_t *b);
size_t slab_punch_holes(heap_t *heap, span_t *s, bool exclusive, pages_batch_t *batch);
void slab_fill_holes(heap_t *heap, span_t *s);
bool slab_block_in_hole(const span_t *s, size_t idx);
uint32_t slab_hole_blocks(const span_t *s);
bool slab_holds(const span_t *s, const void *p);
void *slab_pop_checked(span_t *s);

/* pack.c: start-up's packed span (and a fork child's). A slab span of class 0 (kind
 * SPAN_SLAB; span_packed) of LZ_PACK_PAGES pages whose 16-byte granules are
 * its "blocks" for the slab checks (block_size 16, capacity the granules
 * carved so far), and whose real blocks, of every class up to
 * LZ_PACK_MAX, are carved one after another, so a process's first blocks
 * of many sizes share pages. Its first LZ_PACK_MAP bytes are its map: one
 * byte per granule, the class of the block starting there (PACK_FREED
 * added once freed), 0 inside a block or not carved. While the span is
 * open its freed blocks wait in heap->pack_free[class] (encoded links, as
 * a slab's lists) and are handed out again; once closed they are not, and
 * the span goes back once its last block is freed. Invariants ([tags]: validate.c): cls 0, block_size 16,
 * npages LZ_PACK_PAGES, reserved its granules, LZ_PACK_MAP / 16 <=
 * capacity <= reserved, free and local_free NULL, xfast_cap 0 (every
 * free takes the slow path), never in a queue (to_local 1), never FULL nor with holes
 * [pack.geometry]; map entries 0 below LZ_PACK_MAP / 16 and from
 * capacity, blocks of the map back to back up to capacity, each of a class
 * up to LZ_PACK_MAX [pack.map]; used == the granules of its live blocks
 * [pack.used]; the heap's open one is heap->pack, and only the first heap
 * in start-up, or a heap while pack_armed (a new thread's, a fork
 * child's), has one
 * [pack.open]; pack_armed never in start-up [pack.fork]; pack_free[c]
 * lists, only while open,
 * blocks of class c freed in it (map entry c + PACK_FREED), each once
 * [pack.list]. */
#define LZ_PACK_MAP (LZ_PACK_PAGES * LZ_PAGE_SIZE / LZ_ALIGN) /* bytes */
#define PACK_FREED 0x80
_Static_assert(LZ_CLASSES <= PACK_FREED, "a class and the freed flag share a map byte");
void *pack_take(heap_t *heap, unsigned cls);   /* owner, open pack: a block or NULL (full, used up) */
void *pack_malloc(heap_t *heap, unsigned cls); /* owner, heap held, start-up: NULL if none */
void pack_close(heap_t *heap);                 /* owner, heap held */
void pack_free_chain(heap_t *heap, span_t *s, lz_block_t *head, uint32_t count); /* owner, held */
void pack_check(const span_t *s, const void *p, const char *func, bool freed_ok); /* any thread */
uint32_t pack_usable(const span_t *s, const void *p);
/* A packed span: class 0, which no other slab has. Its kind and class
 * are written only while the span has no live block (as its block size:
 * span_t), so any thread holding one of its blocks may ask; its flags
 * change under the heap lock (holes), which other threads must not read. */
lz_inline bool span_packed(const span_t *s) { return s->kind == SPAN_SLAB && s->cls == 0; }
/* The map byte of granule g of packed span s (any thread: relaxed). */
lz_inline uint8_t pack_entry(const span_t *s, size_t g) {
  return __atomic_load_n(span_start(s) + g, __ATOMIC_RELAXED);
}

/* medium.c: medium blocks (LZ_SLAB_MAX < size <= LZ_MEDIUM_MAX, and
 * from 8 KiB up for a block realloc grows: heap_realloc_grown), one per
 * span, and the heap's cache of freed medium spans (heap->mcache). */
void *medium_malloc(heap_t *heap, size_t size, size_t align_pages, bool zero); /* align_pages: 1 or a power of two */
span_t *medium_cache_hit(heap_t *heap, size_t size);  /* holder, no lock: a cached span for size, or NULL */
void *medium_cache_use(heap_t *heap, span_t *s, size_t size, bool zero); /* medium_cache_hit's span: the live block */
void medium_free(heap_t *heap, span_t *s);                  /* heap lock held */
void medium_free_local(heap_t *heap, span_t *s, void *p);   /* holder, own live block p of span s, no lock */
void medium_free_moved(heap_t *heap, span_t *s, void *p);   /* holder, own live block p realloc moved to a large one */
bool medium_free_last(heap_t *heap, span_t *s);             /* holder, free's fast path took s's block, no lock;
                                                               true: poll the janitor */
bool medium_cache_any(heap_t *heap);                        /* lock held: a slot or mreturn holds a span */
uint64_t medium_cache_watch(heap_t *heap, uint64_t now);    /* the janitor's look (lock held): when to look again */
uint64_t medium_cache_due(heap_t *heap);                    /* lock held: when the cache wants a look */
bool medium_grow(heap_t *heap, span_t *s, size_t size); /* live block of heap's, in place */
void medium_shrink(heap_t *heap, span_t *s, size_t size); /* live block of heap's, in place */
void medium_cache_flush(heap_t *heap, bool holder, bool force, uint64_t now); /* holder: the heap's own thread */
void medium_front_flush(heap_t *heap, bool force, uint64_t now); /* heap held exclusively, lock held */
lz_cold lz_noreturn void medium_front_corrupt(const lz_block_t *b); /* a parked block's link was overwritten: reports it */
void *medium_front_zero(void *p, size_t size);              /* calloc's front pop: p cleared */
void medium_front_drop(heap_t *heap, span_t *s);            /* holder, lock held: s is no front span any more */


/* large.c */
void *large_malloc(size_t size, size_t align, bool zero);
large_t *large_lookup(uintptr_t a, bool *freed);
bool large_freed_gone(uintptr_t a); /* a freed large block whose range went back */
bool large_freed_unit(uintptr_t a); /* a unit's first byte was a freed large block (any chunk map byte) */
void large_free(large_t *l, void *p);
void *large_realloc(large_t *l, void *p, size_t size);
size_t large_requested(const large_t *l);
size_t large_usable(const large_t *l);
/* Level 2, the fault hook: the block whose guard page (or quarantined
 * range, freed) holds a, and what was hit; 0 if none. */
enum { LARGE_FAULT_OVERFLOW = 1, LARGE_FAULT_UNDERFLOW = 2, LARGE_FAULT_FREED = 3 };
uintptr_t large_fault_owner(uintptr_t a, int *what);
/* Level 2: the live block holding a, if a lies in its range's first 2 MiB. */
bool large_block_bounds(uintptr_t a, const uint8_t **lo, const uint8_t **hi);
size_t large_cache_trim(bool force);   /* any thread, any time */
uintptr_t large_cache_unit(unsigned node); /* a cached unit for a chunk (chunk.c's source), or 0 */
bool large_cache_empty(void);
extern _Atomic(size_t) lz_large_mapped;
extern _Atomic(size_t) lz_large_in_use;
extern _Atomic(size_t) lz_large_blocks, lz_large_blocks_max, lz_large_in_use_max; /* large.c: glibc's mmap figures */

/* remote.c: frees that cross threads. */
/* Span flags of heap->foreign[c] (remote.c): FOREIGN_INSTALLED, a class
 * up to LZ_DIRECT_MAX whose list malloc's fast path pops; FOREIGN_KEPT, a
 * larger class's list while it holds blocks ("Kept lists"). Either way
 * the list is charged to in_use (its pushes and pops uncounted) and
 * fkeep names it. */
enum { FOREIGN_INSTALLED = 4, FOREIGN_KEPT = 64 };
#define FOREIGN_CHARGED (FOREIGN_INSTALLED | FOREIGN_KEPT)
/* May blocks of size bs wait on foreign lists (remote.c, "Foreign
 * blocks")? Those whose cache lines are their own (a multiple of
 * LZ_CACHE_LINE: spans start on a page), and those above 256 B that are a
 * multiple of half a line (the classes between 256 B and 1 KiB:
 * sizeclass.c), which share at most half a line at each end with their
 * neighbours, two lines of ten or more. Not the small ones of
 * cache-scratch's pattern. Without them (the strict rule), bench
 * larson-sized, whose deletes are mostly of other threads' blocks of
 * 24 to 1024 B, ran 4 % slower (medians of 9 runs: 47.2 against 49.2
 * Mops/s). */
#define LZ_FOREIGN_OK(bs) ((bs) % LZ_CACHE_LINE == 0 || ((bs) > 256 && (bs) % (LZ_CACHE_LINE / 2) == 0))
/* Foreign lists are looked at this often (heap.c's tick), and a block
 * that waited a whole period untaken goes home, so a block freed by
 * another thread reaches its owner within two periods even if the freeing
 * thread never fills its lists (remote.c, "Age"). */
#define FOREIGN_MAX_AGE_MS 100
/* A foreign list keeps up to this many times its bound of blocks whose
 * owner has not ticked for FOREIGN_IDLE_MS, or for FOREIGN_UNCOLLECTED_MS
 * with blocks waiting on its xremote list, or whose thread exited
 * (remote.c, "Idle owners"), */
#define FOREIGN_IDLE_MULT 8
#define FOREIGN_IDLE_MS (2 * FOREIGN_MAX_AGE_MS)
/* 20, not less: a busy owner that stays on malloc's fast path ticks
 * seldom, and others keeping its blocks beyond the bound held memory it
 * would have reused (bench mstress peak RSS 23.3 MiB, 26.0 at 1 ms, 23.6
 * at 5, 23.2 at 20; bench rptest pinned to one CPU 44.6 before, 33.6 at
 * 1 and 5 ms, 34.4 at 20). */
#define FOREIGN_UNCOLLECTED_MS 20
/* ... and at least this many bytes of them (foreign[c].npages holds the
 * cap in blocks: foreign_idle_cap). */
#define FOREIGN_IDLE_BYTES ((size_t)1 << 20)
lz_inline uint32_t foreign_idle_cap(const span_t *f) { return f->npages; }
/* An installed foreign list found empty by this many of malloc's refills
 * in a row, with no block pushed meanwhile, is uninstalled (heap.c,
 * refill_foreign_dry; foreign[c].capacity counts them). */
#define FOREIGN_DRY_LOOKS 16
/* Span s of heap (a slab of the heap's own) sends its owner's frees to
 * the heap's installed foreign list of its class, not its local_free: not
 * its queue's first, and that list installed (remote.c, "Own blocks"). */
lz_inline bool span_diverted(const heap_t *heap, const span_t *s) {
  return s->to_local != 0 && heap->foreign != NULL && (heap->foreign[s->cls].flags & FOREIGN_INSTALLED);
}
bool foreign_free_own(heap_t *heap, span_t *s, lz_block_t *b);
bool foreign_free_own_slow(heap_t *heap, span_t *s, lz_block_t *b, const char *as);
void *foreign_alloc(heap_t *heap, unsigned cls);
void *foreign_take(heap_t *heap, span_t *f);
uint32_t foreign_count(const heap_t *heap, unsigned cls, uint32_t limit);
bool foreign_any(const heap_t *heap);
/* foreign_flush's modes: every block home (trim, an orphan collected
 * whole), those that waited untaken (the tick), those of owners that are
 * not idle (thread exit: the heap's next thread reuses the rest). */
enum { FOREIGN_FLUSH_ALL = 0, FOREIGN_FLUSH_AGED = 1, FOREIGN_FLUSH_EXIT = 2 };
void foreign_flush(heap_t *heap, int how);
/* free's slow entry (heap_free_page) tries this first for p, a pointer
 * into one of our chunks, s, the descriptor its page maps to, a slab span
 * (kind SPAN_SLAB) but a packed one, and self, the calling thread's heap
 * (LZ_HEAP_EMPTY if none). REMOTE_DONE: p was a block of another heap's
 * slab whose class self keeps (fkeep) and is now on that list, counted as
 * a slow-path entry of self; REMOTE_HOME: such a block of a class self
 * does not keep (foreign_wanted_slab false), screened and counted, for
 * remote_free_home to send; REMOTE_SLAB: any other case of a block of
 * another heap's slab, for remote_free_slab (a tick not due);
 * REMOTE_GENERAL: the general path's (not validated), for LZ_HEAP_EMPTY,
 * level 2, every HEAP_TICK_EVERY-th entry (the general path ticks) and a
 * block the screens leave to it. Calls nothing but tail calls. */
enum { REMOTE_DONE = 0, REMOTE_HOME = 1, REMOTE_SLAB = 2, REMOTE_GENERAL = 3 };
int remote_free_fast(heap_t *self, void *p, span_t *s);
/* REMOTE_HOME's: p, marked in flight, joins self's batch for s. */
void remote_free_home(heap_t *self, span_t *s, void *p);
/* The same for REMOTE_SLAB: true if p is now kept on a foreign list of
 * self's or batched home, false for the general path. */
bool remote_free_slab(heap_t *self, void *p, span_t *s);
/* The same for p, another heap's medium block, the start of span s: sent
 * home at once. */
bool remote_free_medium(heap_t *self, void *p, span_t *s);
/* An installed foreign list ran dry (malloc's refill): direct[] points at
 * its class's span again. */
void foreign_uninstall(heap_t *heap, span_t *f);
/* The first slot of span s's set (LZ_REMOTE_WAYS slots) in heap_rbatch(heap): a hash of the
 * descriptor's address (descriptors are at least LZ_SPAN_HALF bytes apart
 * in their chunk's slots, and every chunk's slots lie at the same offset). */
lz_inline unsigned remote_slot_of(const span_t *s) {
  /* Descriptors are at least LZ_SPAN_HALF apart (their low bits carry nothing);
   * the multiplier is 2^64 / the golden ratio (Fibonacci hashing), whose
   * top bits spread consecutive descriptors over the slots. */
  return (unsigned)((((uintptr_t)s / LZ_SPAN_HALF) * 0x9e3779b97f4a7c15ull) >> (64 - LZ_REMOTE_SLOT_BITS)) & ~(unsigned)(LZ_REMOTE_WAYS - 1);
}
void remote_free(heap_t *self, span_t *s, lz_block_t *b);
void remote_flush_all(heap_t *self);
void remote_flush_aged(heap_t *self);
size_t remote_collect(heap_t *heap);
bool remote_in_flight(const lz_block_t *b);

/* heap.c */
/* The calling thread's thread-local block (heap.c): its heap
 * (LZ_HEAP_EMPTY until it has one; heap_tls_set is the one writer) and,
 * beside it, malloc's queue slots, constant (each thread's copy comes from
 * the initialised image, never written): queue_slot[(s - 1) >> 6] ==
 * 2 * size_to_class(s) for LZ_DIRECT_MAX < s <= LZ_SLAB_MAX, the index of
 * queues[class].first among the queues' pointers. Beside the heap
 * pointer, so malloc's fast path reads a slot from the thread pointer and
 * the offset it already holds for the heap: one load in place of the
 * class table's address, its load and the scaling (3). Not the sizes up
 * to LZ_DIRECT_MAX (a byte per size, 1041 B, would replace their
 * rounding, 2, by one load: but the thread-local image in the library's
 * data segment and each thread's block grow by as much: one page fault
 * more per process, /bin/true and sh -c true preloaded without address
 * randomisation 56 and 72 instead of 55 and 71). */
typedef struct lz_tls_s {
  heap_t *heap;
  /* The heap's region for free's fast path (alloc.h): rbase and rmap are
   * heap->rbase and heap->rmap, rend at most the bytes of the region
   * committed (heap->rend: 0 while rmap is NULL),
   * so p - rbase < rend proves p inside
   * a chunk of the heap's region, whose span rmap names (or slot 0 of a
   * chunk waiting in the region: zero, so free goes slow); rend 0 (no
   * pointer passes) for LZ_HEAP_EMPTY and a heap without a region.
   * heap_tls_set sets all three with the heap, and the end of an
   * allocation slow path (slow_leave) raises rend after chunk_alloc
   * committed a region chunk: till then, and for a thread sharing the
   * heap (LZ_HEAPS > 0) till its next slow path, free finds the new chunk
   * by the chunk map. Only the thread writes them. */
  uintptr_t rbase;
  uintptr_t rend;
  _Atomic(span_t *) *rmap;
  uint8_t queue_slot[LZ_SLAB_MAX / 64];
} lz_tls_t;
extern __thread lz_tls_t lz_tls __attribute__((tls_model("initial-exec")));

#define lz_heap_tls (lz_tls.heap)
heap_t *heap_get_slow(void);
/* Frees by the chunk map into the heap's own chunks before its region's
 * page map is made in start-up (heap_t.rwait; the one that wraps goes to
 * heap_free_own, which makes it): a small process (a few hundred frees)
 * writes no page of it. */
#define HEAP_RWAIT ((uint16_t)(UINT16_MAX - 255))
lz_noinline void heap_region_start(heap_t *heap);
lz_noinline void *heap_malloc_slow(size_t size, heap_t *heap, bool zero);
lz_noinline void *heap_malloc_refill(size_t size, heap_t *heap, span_t *s);
void *heap_malloc_aligned(heap_t *heap, size_t size, size_t align);
lz_noinline void heap_free_slow(void *p);
/* as: the function a report names instead of "free" (lz_free_as), NULL
 * for free. */
lz_noinline void heap_free_page(void *p, heap_t *self, const char *as);
lz_noinline void heap_free_own(void *p, span_t *s, const char *as);
lz_noinline void heap_free_own_rest(void *p, span_t *s, const char *as);
/* heap_free_slow naming `as` (as heap_free_page). */
lz_noinline void heap_free_slow_as(void *p, const char *as);
lz_cold void heap_free_last(heap_t *heap, span_t *s);
void heap_free_local(heap_t *heap, span_t *s, lz_block_t *b);
size_t heap_usable_size(const void *p, const char *func);
bool heap_realloc_in_place(void *p, size_t size, void **out, size_t *copy);
void *heap_realloc_grown(size_t size, size_t old); /* NULL: take an ordinary block */
/* realloc copied p, a block of at least LZ_MOVED_RELEASE_MIN bytes, into
 * a large block: frees p, giving its pages back (heap.c). Below that size
 * p is freed as free frees it: the code (late text, a window of pages a
 * single-threaded process may not map otherwise) would cost more than
 * the pages it gives back. */
#define LZ_MOVED_RELEASE_MIN ((size_t)128 * KiB)
/* realloc growing a block past this size by a small step (a quarter of
 * it at most: realloc_by_steps) moves it into a large block (heap.c,
 * realloc_to_large), which grows by its pages from then on. */
#define LZ_REALLOC_LARGE_MIN ((size_t)256 * KiB)
lz_inline bool realloc_by_steps(size_t old, size_t size) {
  return size > LZ_REALLOC_LARGE_MIN && size > old && size - old <= old / 4;
}
void heap_realloc_moved(void *p);
void heap_collect(heap_t *heap, bool force);
void heap_abandon(heap_t *heap);
void heap_thread_exit(heap_t *heap);
size_t heaps_collect_orphans(bool force);
uint64_t heaps_background_pass(void);
size_t heaps_trim(bool force);
size_t heaps_reclaim_gone(unsigned budget);
bool heap_hold_orphan(heap_t *h);      /* ORPHAN -> BUSY: true if this caller holds it */
void heap_release_orphan(heap_t *h);   /* BUSY -> ORPHAN */
void heaps_fork_child(heap_t *self);
void heap_fork_park(heap_t *self);  /* the child handler's last step: the heap set aside */
heap_t *heap_fork_self(void);       /* the thread's heap, set aside or not (NULL: none) */
void heap_retire(heap_t *h);
void heaps_fork_child_shared(void);
void heaps_fork_child_secure(void);
heap_t *heaps_first(void);
extern _Atomic(unsigned long) lz_adopt_waits; /* starts that waited for a held orphan (tests) */
extern uint64_t lz_adopt_wait_ms;              /* their bound, ADOPT_WAIT_MS (tests may raise it) */
extern bool lz_pack_threads_off;               /* a test hook: new threads' heaps not packed (slab.c) */
size_t heap_cached_bytes(const heap_t *heap);

/* secure.c: hardening level 2 (every small and medium block, slow paths). */
void secure_init(void);
void *secure_malloc(heap_t *heap, size_t size, size_t align, bool zero);
void secure_free(heap_t *self, void *p, const char *func); /* self: the caller's heap, or NULL */
size_t secure_usable(const void *p, const char *func, bool tail); /* tail: the canary checked too */
void secure_check_size(const void *p, size_t size, const char *func);
size_t secure_collect(heap_t *heap, bool force); /* blocks released */
bool secure_block_bounds(const void *a, const uint8_t **lo, const uint8_t **hi);
bool secure_locked(const heap_t *h);

/* purge.c: the timing of giving pages back; heap.c drives.
 * A chunk's free dirty pages decay over LZ_DECAY_MS from its purge_at
 * (smoothstep, purge.c); slabs left alone for LZ_HOLES_AFTER_MS have their
 * idle pages punched (slab.c, "Holes"). How the values were chosen: the
 * window is long enough that a program freeing and allocating again within
 * a quarter of a second keeps most of its pages, short enough that an idle
 * one is down to its live pages within half a second (bench idle-burst);
 * holes wait longer than the purge delay because refilling them costs a
 * page fault per page. */
#define LZ_DECAY_MS 250
#define LZ_HOLES_AFTER_MS 100
/* A heap's kept empty chunks (pages.c, "Empty chunks") go back over this
 * many ms of not being used (smoothstep from the allowance they had when
 * last used, purge.c), the same window as the pages' decay. A second
 * before: python3 serialising a dict to a 14 MiB json string and reading
 * it back (bench/realprog python-json) kept 7 chunks emptied by the
 * string's pieces while its own arenas grew, a peak 9 % above glibc's
 * (3-4 % now, with large allocations ticking: heap.c); sqlite3, whose
 * phases empty chunks and take them again 100-250 ms later, faults no
 * more (24.4k either way). */
#define LZ_EMPTY_KEEP_MS 250
/* A heap's purge delay doubles each time one of its chunks takes back
 * pages the decay gave away, at most this many times (128 delays: 1.28 s
 * by default), and halves each time a decay goes unanswered (purge.c,
 * "Refaults"); the same bound holds an orphan's delay (heap.c). */
#define LZ_DECAY_SHIFT_MAX 7
/* How long a heap's slabs must be left alone before their idle pages
 * become holes: LZ_HOLES_AFTER_MS, doubled per refault the same way and
 * within the same bound (heap_t.holes_shift). */
lz_inline uint64_t holes_delay(const heap_t *heap) { return (uint64_t)LZ_HOLES_AFTER_MS << heap->holes_shift; }
/* The heap's clock (ms): wall time less the waits of its owner for a CPU
 * (purge.c, "Clock"). */
lz_inline uint64_t heap_time(const heap_t *heap, uint64_t wall) {
  uint64_t lag = atomic_load_explicit(&heap->lag_ms, memory_order_relaxed);
  return wall > lag ? wall - lag : 0;
}
lz_inline uint64_t heap_now(const heap_t *heap) { return heap_time(heap, os_now_ms()); }
/* Nothing pages_freed hands the purge falls due sooner than this many ms
 * of the heap's clock after it (or than the purge delay, if shorter): a
 * decay waits the heap's delay, and a kept empty chunk's allowance
 * (purge.c, LZ_EMPTY_KEEP_MS) lets none go within its first 16 ms while
 * it is below 93 chunks (decay_keep: 1013 of 1024 kept then; a larger
 * allowance loses its first chunks a few ms later than its schedule). So
 * pages_freed moves purge_wake (heap_t) no earlier than
 * the last tick's time plus that, and an owner whose pages go back before
 * then reads no schedstat (thread-churn: one open per thread). */
#define LZ_FREED_DUE_MS 16
/* A time of the heap's clock as wall time (the janitor's schedule). */
lz_inline uint64_t heap_wall(const heap_t *heap, uint64_t t) {
  return t == UINT64_MAX ? t : t + atomic_load_explicit(&heap->lag_ms, memory_order_relaxed);
}
void purge_clock_sync(heap_t *heap, uint32_t tid, uint64_t wall); /* wall: os_now_ms() */
uint64_t purge_heap(heap_t *heap, bool force, uint64_t now);
uint64_t purge_heap_holes(heap_t *heap, bool force, bool exclusive, uint64_t now);
uint64_t purge_heap_collapse(heap_t *heap, uint64_t now);

/* janitor.c: the background purging thread (base layer: the layers above
 * wake it, heap.c starts it with the pass it runs). */
enum { JANITOR_OFF = 0, JANITOR_WANTED, JANITOR_STARTING, JANITOR_RUNNING, JANITOR_FAILED, JANITOR_CHILD };
extern _Atomic(int) lz_janitor_xstate;
extern __thread bool lz_janitor_starting; /* this thread is starting it */
void janitor_notify(void);
void janitor_thread_exit(void);
void janitor_poll_slow(uint64_t (*pass)(void));
void janitor_fork_prepare(void);
void janitor_fork_parent(void);
void janitor_fork_child(void);
/* Starts the thread if it is wanted, to run `pass` (heap.c's
 * heaps_background_pass: handed down, so janitor.c names nothing above
 * it). Called where an entry point finishes: no lock held, or `held`
 * (the shared heap's lock, NULL: none) released around the start. */
lz_inline void janitor_poll(lz_lock_t *held, uint64_t (*pass)(void)) {
  if (lz_likely(atomic_load_explicit(&lz_janitor_xstate, memory_order_relaxed) != JANITOR_WANTED)) return;
  if (held != NULL) lz_unlock(held);
  janitor_poll_slow(pass);
  if (held != NULL) lz_lock(held);
}

/* numa.c: NUMA placement; everything but numa_init runs only when
 * lz_numa_on (more than one node and LZMALLOC_NUMA not off). */
#define NUMA_NODE_INTERLEAVED 0xffffu
extern bool lz_numa_on;
extern int lz_numa_nodes;                       /* highest node id + 1 (0: unknown) */
extern _Atomic(size_t) lz_numa_mapped[LZ_MAX_NODES]; /* bytes mapped per node */
void numa_init(void);
unsigned numa_current_node(void);
void numa_heap_start(heap_t *h);                /* home = the calling thread's node */
bool numa_observe(heap_t *h);                   /* true if the home moved (see numa.c) */
void numa_bind_chunk(chunk_t *c, unsigned node);/* before the chunk's first touch */
unsigned numa_bind_large(void *p, size_t size); /* returns the node (or NUMA_NODE_INTERLEAVED) */
void numa_bind_range(void *p, size_t size, unsigned node); /* pages added to a large range of node */
void numa_account(unsigned node, ptrdiff_t bytes);
void numa_resident(size_t *out, unsigned max);  /* resident bytes of our mappings per node */
void lz_numa_reinit(void);                      /* tests: after lz_os_numa_inject */

/* validate.c: the heap validator (every invariant above; aborts with the
 * invariant's tag). Returns the spans checked. */
size_t validate_heap(heap_t *heap);

/* stats.c */
void stats_collect(lz_stats_t *out);

/* init.c: the process's and threads' life (thread exit, fork). */
void process_start(void);               /* our constructor's work */

/* api.c entry points used by override.c are the public lz_ functions. */

#pragma GCC visibility pop
#endif /* LZ_INTERNAL_H */
