/* Compile-time configuration: every knob of lzmalloc in one place.
 * Each can be set from CMake (-DLZ_...=value) or the compiler command line.
 * Runtime options (LZMALLOC_* environment variables) live in options.c.
 */
#ifndef LZ_CONFIG_H
#define LZ_CONFIG_H

/* Hardening level.
 *   0  no checks beyond what correctness needs;
 *   1  (default) encoded free-list pointers, every freed pointer validated
 *      against the chunk map and its block boundary, double frees caught
 *      where a block is already on its span's free lists;
 *   2  level 1 plus, in the slow paths only (secure.c): keyed headers and
 *      canaries checked at free and realloc, the usable size equal to the
 *      requested size, freed blocks filled and checked on reuse after a
 *      quarantine, random slot order, guard pages after every slab,
 *      around every medium block, at the end of every chunk header and
 *      after every large block (whose canaries and requested size are
 *      kept too), and a SIGSEGV handler that names the block a run into a
 *      guard page came from. Also selected at run time by
 *      LZMALLOC_SECURE=2. */
#ifndef LZ_SECURE
#define LZ_SECURE 1
#endif

/* Level 2: freed small and medium blocks wait in their freeing thread's
 * quarantine (at most this many blocks and bytes) before reuse. */
#ifndef LZ_QUARANTINE_ENTRIES
#define LZ_QUARANTINE_ENTRIES 256
#endif
#ifndef LZ_QUARANTINE_BYTES
#define LZ_QUARANTINE_BYTES (1u << 20)
#endif

/* Internal assertions (debug builds). */
#ifndef LZ_DEBUG
#define LZ_DEBUG 0
#endif

/* Per-heap statistics counters on the fast path. */
#ifndef LZ_STATS
#define LZ_STATS 1
#endif

/* Large-block cache (large.c): slots for freed large ranges (neighbours
 * merge into one slot; 0 disables the cache), and the default of
 * LZMALLOC_LARGE_CACHE, the bytes it may hold even when few large blocks
 * are live (it may always hold as much as the live large blocks). Ranges
 * idle for ten purge delays go back to the kernel. */
#ifndef LZ_LARGE_CACHE_ENTRIES
#define LZ_LARGE_CACHE_ENTRIES 64
#endif
#ifndef LZ_LARGE_CACHE_BYTES
#define LZ_LARGE_CACHE_BYTES (64u << 20)
#endif

/* Small-object cache of remote frees: blocks of other threads' spans that
 * a thread keeps per span before sending them back in one atomic operation
 * (1 = send each at once; at most 16, the count is kept in a pointer's
 * alignment bits). */
#ifndef LZ_REMOTE_BATCH
#define LZ_REMOTE_BATCH 16
#endif

/* Empty chunks kept in the global pool before unmapping. */
#ifndef LZ_CHUNK_POOL_MAX
#define LZ_CHUNK_POOL_MAX 8
#endif

/* Delay before idle free pages are given back with madvise (milliseconds). */
#ifndef LZ_PURGE_DELAY_MS
#define LZ_PURGE_DELAY_MS 10
#endif

/* NUMA home moves (numa.c): a heap's home node follows its thread after
 * this many consecutive observations on another node spanning this long. */
#ifndef LZ_NUMA_MOVE_SAMPLES
#define LZ_NUMA_MOVE_SAMPLES 4
#endif
#ifndef LZ_NUMA_MOVE_MS
#define LZ_NUMA_MOVE_MS 20
#endif

/* Heaps: 0 = one heap per thread (default, lock-free fast path);
 * N > 0 = a fixed pool of N heaps shared by all threads, assigned
 * round-robin on a thread's first call, each guarded by a lock that every
 * entry point holds (lite-malloc's "engines": bounded memory per process
 * whatever the thread count, for programs with thousands of threads). */
#ifndef LZ_HEAPS
#define LZ_HEAPS 0
#endif

/* Override the standard malloc family (set by the build: 0 for the
 * lz_-prefixed test library). */
#ifndef LZ_OVERRIDE
#define LZ_OVERRIDE 1
#endif

/* Built with ThreadSanitizer (set by the compiler, not a knob): it cannot
 * start threads in the child of a multithreaded fork, so there the child
 * gets no janitor (janitor.c). */
#if defined(__SANITIZE_THREAD__)
#define LZ_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LZ_TSAN 1
#endif
#endif
#ifndef LZ_TSAN
#define LZ_TSAN 0
#endif

#if LZ_SECURE < 0 || LZ_SECURE > 2
#error "LZ_SECURE must be 0, 1 or 2"
#endif
#if LZ_QUARANTINE_ENTRIES < 1 || LZ_QUARANTINE_BYTES < 1
#error "the quarantine needs room for one block"
#endif
#if LZ_REMOTE_BATCH < 1 || LZ_REMOTE_BATCH > 16
#error "LZ_REMOTE_BATCH must be in 1..16"
#endif
#if LZ_HEAPS < 0 || LZ_HEAPS > 1024
#error "LZ_HEAPS must be in 0..1024"
#endif
#if LZ_LARGE_CACHE_ENTRIES < 0 || LZ_LARGE_CACHE_ENTRIES > 1024
#error "LZ_LARGE_CACHE_ENTRIES must be in 0..1024"
#endif
#if LZ_PURGE_DELAY_MS < 0
#error "LZ_PURGE_DELAY_MS must be >= 0"
#endif

#endif /* LZ_CONFIG_H */
