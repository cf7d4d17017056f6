/* api.c: the lz_ API (include/lzmalloc.h), with glibc's semantics.
 *
 * Edge cases, as glibc 2.36 has them: malloc(0) returns a unique block;
 * realloc(p, 0) frees p and returns NULL; realloc(NULL, n) is malloc(n);
 * calloc and reallocarray overflow give NULL with ENOMEM; a failing call
 * sets ENOMEM (EINVAL for a bad alignment) and a successful one leaves
 * errno alone; posix_memalign returns its error, leaves errno alone for
 * EINVAL and sets it to ENOMEM as well when out of memory;
 * memalign and aligned_alloc round an alignment that is not a power of two
 * up to one and fail with EINVAL only above SIZE_MAX / 2 + 1.
 *
 * Each exported function is api_enter / body / api_leave (alloc.h): no-ops
 * with per-thread heaps, the heap's lock with LZ_HEAPS > 0. Bodies call
 * each other only through the static *_body functions.
 */
#include <errno.h>
#include <string.h>

#include "alloc.h"

/* calloc's slow path (alloc.h, calloc_fast): the product's overflow,
 * fork handlers to register first (os.c: the first pthread_create's DTV
 * calloc), then an allocation that zeroes. */
lz_text_hot lz_noinline void *api_calloc_slow(size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  os_atfork_watch();
  return heap_malloc_slow(total, lz_heap_tls, true);
}

lz_text_hot static void *realloc_body(void *p, size_t size) {
  if (p == NULL) return malloc_fast(size);
  if (size == 0) {
    free_fast(p);
    return NULL;
  }
  void *r;
  size_t copy;
  if (heap_realloc_in_place(p, size, &r, &copy)) return r;
  void *n = copy < size ? heap_realloc_grown(size, copy) : NULL; /* growing: pages (heap.c) */
  if (n == NULL) n = malloc_fast(size);
  if (n == NULL) return NULL;
  memcpy(n, p, copy);
  /* Moved into a large block (heap_realloc_grown, or past 1 MiB). */
  if (lz_unlikely(copy >= LZ_MOVED_RELEASE_MIN && (size > LZ_MEDIUM_MAX || realloc_by_steps(copy, size))))
    heap_realloc_moved(p);
  else free_fast(p);
  return n;
}

/* The aligned allocations' slow path (alloc.h, aligned_fast; valloc and
 * pvalloc, whose page alignment no direct[] list serves): an alignment
 * above LZ_ALIGN, heap_malloc_aligned (inlined here, not into the fast
 * paths). */
lz_text_hot lz_noinline void *api_aligned_slow(size_t alignment, size_t size) {
  return heap_malloc_aligned(lz_heap_tls, size, alignment);
}

/* memalign's and aligned_alloc's alignment that is not a power of two
 * (api_memalign takes those that are, and 0): EINVAL above SIZE_MAX / 2 +
 * 1, else rounded up to one. */
lz_noinline void *api_memalign_odd(size_t alignment, size_t size) {
  if (alignment > SIZE_MAX / 2 + 1) {
    errno = EINVAL;
    return NULL;
  }
  size_t a = LZ_ALIGN;
  while (a < alignment) a <<= 1;
  return aligned_fast(a, size);
}

#define API_CALL(expr)            \
  do {                            \
    heap_t *h_ = api_enter();     \
    __typeof__(expr) r_ = (expr); \
    api_leave(h_);                \
    return r_;                    \
  } while (0)

lz_text_hot lz_entry_align LZ_EXPORT void *lz_malloc(size_t size) { return api_malloc(size); }

lz_text_hot lz_entry_align LZ_EXPORT void lz_free(void *p) { api_free(p); }

lz_text_hot LZ_EXPORT void *lz_calloc(size_t n, size_t size) { return api_calloc(n, size); }

/* realloc(NULL, n) is malloc's fast path before anything else: programs
 * whose allocator is a realloc callback (lua's, every new object) would
 * otherwise pay realloc_body's frame (six saved registers) for it. */
lz_text_hot LZ_EXPORT void *lz_realloc(void *p, size_t size) {
  if (LZ_HEAPS == 0 && p == NULL) return malloc_fast(size);
  API_CALL(realloc_body(p, size));
}

lz_text_hot LZ_EXPORT void *lz_reallocarray(void *p, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  API_CALL(realloc_body(p, total));
}

lz_text_hot LZ_EXPORT void lz_free_sized(void *p, size_t size) {
  (void)size;
  api_free(p);
}

LZ_EXPORT void lz_free_aligned_sized(void *p, size_t alignment, size_t size) {
  (void)alignment;
  (void)size;
  api_free(p);
}

/* As in glibc 2.36, aligned_alloc is memalign. */
lz_text_hot LZ_EXPORT void *lz_aligned_alloc(size_t alignment, size_t size) { return api_memalign(alignment, size); }

lz_text_hot LZ_EXPORT void *lz_memalign(size_t alignment, size_t size) { return api_memalign(alignment, size); }

lz_text_hot LZ_EXPORT int lz_posix_memalign(void **out, size_t alignment, size_t size) {
  return api_posix_memalign(out, alignment, size);
}

LZ_EXPORT void *lz_valloc(size_t size) { API_CALL(api_aligned_slow(LZ_PAGE_SIZE, size)); }

LZ_EXPORT void *lz_pvalloc(size_t size) {
  size_t rounded = (size + LZ_PAGE_SIZE - 1) & ~(LZ_PAGE_SIZE - 1);
  if (rounded < size) {
    errno = ENOMEM;
    return NULL;
  }
  if (rounded == 0) rounded = LZ_PAGE_SIZE;
  API_CALL(api_aligned_slow(LZ_PAGE_SIZE, rounded));
}

/* What usable_fast (alloc.h) does not answer. */
lz_noinline size_t api_usable_slow(const void *p) { API_CALL(heap_usable_size(p, "malloc_usable_size")); }

lz_text_hot LZ_EXPORT size_t lz_usable_size(const void *p) { return api_usable(p); }

LZ_EXPORT int lz_trim(size_t pad) {
  (void)pad;
  process_init();
  if (opt_get(OPT_VALIDATE)) lz_heap_validate();
  API_CALL(heaps_trim(true) > 0 ? 1 : 0);
}

/* The library's constructor and destructor: the process started with its
 * thread-exit hook and fork handlers (init.c); LZMALLOC_SHOW_STATS's report
 * at exit. */
__attribute__((constructor(101))) lz_text_hot static void lz_constructor(void) { process_start(); }

__attribute__((destructor(101))) lz_text_hot static void lz_destructor(void) {
  if (opt_get(OPT_SHOW_STATS)) lz_stats_print(2);
}
