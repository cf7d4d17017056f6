/* libc_malloc: a preloadable library that sends the malloc family to
 * glibc's own allocator (its __libc_* entry points), for programs that are
 * linked against another allocator. Debian's redis-server is linked with
 * libjemalloc, so without a preload it runs on jemalloc, not glibc; the
 * redis workload preloads this library in the glibc column so that column
 * measures glibc. Not a workload (bench/Makefile builds it as
 * out/lib/libc_malloc_shim.so).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>

extern void *__libc_malloc(size_t n);
extern void __libc_free(void *p);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t al, size_t n);
extern void *__libc_valloc(size_t n);
extern void *__libc_pvalloc(size_t n);

void *malloc(size_t n) { return __libc_malloc(n); }
void free(void *p) { __libc_free(p); }
void cfree(void *p) { __libc_free(p); }
void *calloc(size_t n, size_t m) { return __libc_calloc(n, m); }
void *realloc(void *p, size_t n) { return __libc_realloc(p, n); }
void *memalign(size_t al, size_t n) { return __libc_memalign(al, n); }
void *aligned_alloc(size_t al, size_t n) { return __libc_memalign(al, n); }
void *valloc(size_t n) { return __libc_valloc(n); }
void *pvalloc(size_t n) { return __libc_pvalloc(n); }

int posix_memalign(void **out, size_t al, size_t n) {
  if (al < sizeof(void *) || (al & (al - 1)) != 0) return EINVAL;
  int saved = errno;
  void *p = __libc_memalign(al, n);
  if (p == NULL) {
    errno = saved;
    return ENOMEM;
  }
  *out = p;
  return 0;
}

/* glibc's malloc_usable_size has no __libc_ name: looked up in libc.so.6
 * itself (never during the first allocations: callers ask for the size of
 * blocks they already have). */
size_t malloc_usable_size(void *p) {
  static size_t (*real)(void *);
  if (real == NULL) {
    void *h = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    if (h != NULL) real = (size_t(*)(void *))dlsym(h, "malloc_usable_size");
    if (real == NULL) return 0;
  }
  return real(p);
}
