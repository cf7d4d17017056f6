/* lzmalloc: a fast, lean and hardened malloc for Linux servers.
 *
 * This is the whole public interface. Loading liblzmalloc (LD_PRELOAD or by
 * linking) also replaces the standard malloc family; the lz_ names below are
 * always available, with the same semantics as their standard counterparts
 * (glibc's, including errno and edge cases).
 */
#ifndef LZMALLOC_H
#define LZMALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LZMALLOC_VERSION_MAJOR 0
#define LZMALLOC_VERSION_MINOR 1
#define LZMALLOC_VERSION_PATCH 0
#define LZMALLOC_VERSION "0.2.0"

#if defined(__GNUC__)
#define LZ_ATTR_MALLOC __attribute__((malloc))
#define LZ_ATTR_ALLOC_SIZE(...) __attribute__((alloc_size(__VA_ARGS__)))
#define LZ_ATTR_NOTHROW __attribute__((nothrow))
#else
#define LZ_ATTR_MALLOC
#define LZ_ATTR_ALLOC_SIZE(...)
#define LZ_ATTR_NOTHROW
#endif

/* The allocation API (same contracts as malloc(3) and friends). */
void *lz_malloc(size_t size) LZ_ATTR_NOTHROW LZ_ATTR_MALLOC LZ_ATTR_ALLOC_SIZE(1);
void *lz_calloc(size_t n, size_t size) LZ_ATTR_NOTHROW LZ_ATTR_MALLOC LZ_ATTR_ALLOC_SIZE(1, 2);
void *lz_realloc(void *p, size_t size) LZ_ATTR_NOTHROW LZ_ATTR_ALLOC_SIZE(2);
void *lz_reallocarray(void *p, size_t n, size_t size) LZ_ATTR_NOTHROW LZ_ATTR_ALLOC_SIZE(2, 3);
void lz_free(void *p) LZ_ATTR_NOTHROW;
void lz_free_sized(void *p, size_t size) LZ_ATTR_NOTHROW;
void lz_free_aligned_sized(void *p, size_t alignment, size_t size) LZ_ATTR_NOTHROW;
void *lz_aligned_alloc(size_t alignment, size_t size) LZ_ATTR_NOTHROW LZ_ATTR_MALLOC LZ_ATTR_ALLOC_SIZE(2);
void *lz_memalign(size_t alignment, size_t size) LZ_ATTR_NOTHROW LZ_ATTR_MALLOC LZ_ATTR_ALLOC_SIZE(2);
int lz_posix_memalign(void **out, size_t alignment, size_t size) LZ_ATTR_NOTHROW;
void *lz_valloc(size_t size) LZ_ATTR_NOTHROW LZ_ATTR_MALLOC LZ_ATTR_ALLOC_SIZE(1);
void *lz_pvalloc(size_t size) LZ_ATTR_NOTHROW LZ_ATTR_MALLOC;
size_t lz_usable_size(const void *p) LZ_ATTR_NOTHROW;

/* Returns idle memory to the kernel; 1 if any was released, as malloc_trim. */
int lz_trim(size_t pad) LZ_ATTR_NOTHROW;

/* Size classes of small blocks (<= 32 KiB), for lz_stats_t.classes (47
 * before 0.2.0: lz_stats_t grew then, so a program built with an older
 * header must be rebuilt to call lz_stats_get). */
#define LZ_STATS_CLASSES 54

typedef struct lz_class_stats_s {
  size_t block_size;    /* bytes per block of this class (0: unused slot) */
  size_t slabs;         /* slab spans of this class held by all heaps */
  size_t slab_bytes;    /* bytes of those slabs (blocks plus tail) */
} lz_class_stats_t;

/* NUMA nodes reported one by one in lz_stats_t.nodes. */
#define LZ_STATS_NODES 8

typedef struct lz_node_stats_s {
  size_t mapped;        /* bytes of chunks and large blocks bound to the node */
  size_t resident;      /* bytes of lzmalloc's mappings resident on the node */
} lz_node_stats_t;

/* Process-wide statistics, summed over all heaps when read. */
typedef struct lz_stats_s {
  size_t in_use;        /* bytes in live blocks (usable sizes) */
  size_t mapped;        /* bytes of address space mapped from the kernel */
  size_t committed;     /* mapped bytes not known to be decommitted */
  size_t resident;      /* resident set size of the process, from the kernel */
  size_t large_in_use;  /* bytes in live blocks > 1 MiB */
  uint64_t slow_allocs; /* allocations that took the full slow path (not counted:
                           the inline path, a slab's own freed blocks, a cached
                           medium block, large blocks) */
  uint64_t remote_frees;/* frees of blocks owned by another thread's heap */
  uint64_t pages_purged;/* 4 KiB pages given back with madvise */
  uint64_t chunks;      /* 2 MiB chunks currently mapped */
  uint64_t heaps;       /* thread heaps created (live + pooled) */
  lz_class_stats_t classes[LZ_STATS_CLASSES]; /* per small size class */
  uint64_t numa_nodes;  /* nodes placed on: 0 when NUMA placement is off
                           (one node, no sysfs, or LZMALLOC_NUMA=off) */
  lz_node_stats_t nodes[LZ_STATS_NODES]; /* per node (the first LZ_STATS_NODES) */
} lz_stats_t;

void lz_stats_get(lz_stats_t *out) LZ_ATTR_NOTHROW;
/* Checks every internal invariant of the calling thread's heap and of every
 * heap of an exited thread (chunks, spans, free lists, class queues, remote
 * frees, counters); on a violation prints the invariant's tag and aborts.
 * Returns the number of spans checked. Slow (walks every page and free
 * block): for tests and debugging; LZMALLOC_VALIDATE=1 runs it at thread
 * exit and in lz_trim/malloc_trim (the default in debug builds). */
size_t lz_heap_validate(void) LZ_ATTR_NOTHROW;
/* Writes a human-readable report to a file descriptor (no allocation). */
void lz_stats_print(int fd) LZ_ATTR_NOTHROW;

#ifdef __cplusplus
}
#endif
#endif /* LZMALLOC_H */
