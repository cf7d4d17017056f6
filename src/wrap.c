/* wrap.c: __wrap_ names of the standard malloc family, for the linker's
 * --wrap and --defsym link modes.
 *
 * Built into liblzmalloc.a only. Two ways to use it (see lzmalloc(3)):
 *   cc -static app.o liblzmalloc.a -Wl,--wrap,malloc -Wl,--wrap,free ...
 *       every reference to malloc (the application's and static libc's)
 *       becomes a reference to __wrap_malloc; glibc's own allocator stays
 *       linked but unused (reachable only as __real_malloc).
 *   cc app.o liblzmalloc.a -Wl,--defsym=malloc=__wrap_malloc ...
 *       the executable defines malloc as __wrap_malloc and exports it, so
 *       shared libraries (libc.so included) call lzmalloc too.
 * Each function forwards to the lz_ API; nothing else lives here.
 */
#include <stdlib.h>

#include "alloc.h"

LZ_EXPORT void *__wrap_malloc(size_t size) { return lz_malloc(size); }
LZ_EXPORT void __wrap_free(void *p) { lz_free(p); }
LZ_EXPORT void *__wrap_calloc(size_t n, size_t size) { return lz_calloc(n, size); }
LZ_EXPORT void *__wrap_realloc(void *p, size_t size) { return lz_realloc(p, size); }
LZ_EXPORT void *__wrap_reallocarray(void *p, size_t n, size_t size) { return lz_reallocarray(p, n, size); }
LZ_EXPORT void *__wrap_memalign(size_t alignment, size_t size) { return lz_memalign(alignment, size); }
LZ_EXPORT void *__wrap_aligned_alloc(size_t alignment, size_t size) { return lz_aligned_alloc(alignment, size); }
LZ_EXPORT int __wrap_posix_memalign(void **out, size_t alignment, size_t size) { return lz_posix_memalign(out, alignment, size); }
LZ_EXPORT void *__wrap_valloc(size_t size) { return lz_valloc(size); }
LZ_EXPORT void *__wrap_pvalloc(size_t size) { return lz_pvalloc(size); }
LZ_EXPORT size_t __wrap_malloc_usable_size(void *p) { return lz_usable_size(p); }
LZ_EXPORT int __wrap_malloc_trim(size_t pad) { return lz_trim(pad); }
LZ_EXPORT void __wrap_free_sized(void *p, size_t size) { lz_free_sized(p, size); }
LZ_EXPORT void __wrap_free_aligned_sized(void *p, size_t alignment, size_t size) { lz_free_aligned_sized(p, alignment, size); }
