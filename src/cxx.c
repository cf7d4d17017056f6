/* cxx.c: C++ operator new and delete, every form (plain, array, nothrow,
 * sized, aligned), with libstdc++'s semantics, written in C.
 *
 * Built into liblzmalloc.so and liblzmalloc.a (with the standard names of
 * override.c). The functions carry the Itanium C++ ABI's mangled names
 * (size_t is unsigned long, "m", on every 64-bit target we build for).
 *
 * Why C and not a C++ file: the library must stay loadable into C programs
 * that do not link libstdc++ (LD_PRELOAD into any process). A C++ file
 * that throws std::bad_alloc would make liblzmalloc.so depend on
 * libstdc++.so (loaded into every C process too, a few MiB and a slower
 * start). Instead this file refers to libstdc++'s own two entry points by
 * weak references:
 *   std::get_new_handler()   _ZSt15get_new_handlerv
 *   std::__throw_bad_alloc() _ZSt17__throw_bad_allocv
 * In a C++ program (the only kind that calls operator new) they resolve to
 * libstdc++ and behave exactly as libstdc++'s own operator new does: the
 * new_handler loop, then std::bad_alloc thrown by libstdc++ itself. The
 * exception unwinds through our frame, which has unwind tables
 * (-fexceptions, see CMakeLists.txt) and nothing to clean up. Without
 * libstdc++ (a program calling the mangled names by hand), a failed
 * throwing new reports and aborts.
 * One difference from libstdc++: its nothrow new runs the throwing new in a
 * try block, so a new_handler that throws makes it return NULL; here that
 * exception leaves the nothrow new (C cannot catch). The standard's
 * handlers that free memory, or throw from a throwing new, behave the same.
 *
 * Reports name the operator: "operator delete" for the scalar forms,
 * "operator delete[]" for the array forms (sized, aligned, nothrow alike),
 * e.g. "lzmalloc: operator delete[](): double free 0x...".
 * Sized delete: at hardening level 1 the size is not needed (the free
 * path finds the span from the pointer in any case), so sized forms are
 * plain deletes; at level 2 the size must be the one the block was
 * allocated with (secure.c keeps it; large.c for blocks over 1 MiB), else
 * the delete aborts with a message ("operator delete(): size mismatch").
 */
#include "alloc.h"

typedef void (*lz_new_handler_t)(void);
extern lz_new_handler_t _ZSt15get_new_handlerv(void) __attribute__((weak));
extern void _ZSt17__throw_bad_allocv(void) __attribute__((weak, noreturn));

/* Linked with the code of processes that run a while (internal.h,
 * lz_text_late): a C++ program allocates through these alone. */
#define LZ_CXX LZ_EXPORT lz_text_late
typedef struct lz_nothrow_s lz_nothrow_t; /* std::nothrow_t, passed by reference */

static void *cxx_alloc(size_t size, size_t align) {
  if (align <= LZ_ALIGN) return api_malloc(size);
  return lz_aligned_alloc(align, size);
}

/* The first attempt failed: libstdc++'s loop. */
static lz_cold void *cxx_new_retry(size_t size, size_t align, bool nothrow) {
  for (;;) {
    lz_new_handler_t h = _ZSt15get_new_handlerv ? _ZSt15get_new_handlerv() : NULL;
    if (h == NULL) {
      if (nothrow) return NULL;
      if (_ZSt17__throw_bad_allocv) _ZSt17__throw_bad_allocv();
      lz_message("operator new(): out of memory, and no std::bad_alloc to throw", "", 0, 0);
      os_abort();
    }
    h();
    void *p = cxx_alloc(size, align);
    if (p != NULL) return p;
  }
}

lz_inline void *cxx_new(size_t size) {
  void *p = api_malloc(size);
  if (lz_likely(p != NULL)) return p;
  return cxx_new_retry(size, 0, false);
}

lz_inline void *cxx_new_aligned(size_t size, size_t align, bool nothrow) {
  void *p = cxx_alloc(size, align);
  if (lz_likely(p != NULL)) return p;
  return cxx_new_retry(size, align, nothrow);
}

lz_inline void *cxx_new_nothrow(size_t size) {
  void *p = api_malloc(size);
  if (lz_likely(p != NULL)) return p;
  return cxx_new_retry(size, 0, true);
}

/* Deletes: free's fast path, whose slow calls name the operator in any
 * report ("lzmalloc: operator delete[](): double free 0x..."): the name is
 * set for the slow calls only (alloc.h, free_fast_to's `as`), so the fast
 * path costs what free's does. */
lz_inline void cxx_delete(void *p) { api_free_to(p, "operator delete"); }
lz_inline void cxx_delete_arr(void *p) { api_free_to(p, "operator delete[]"); }

/* Level 2 checks the size given first: out of line, so that the other
 * levels' sized deletes keep no register across a call (free's fast path
 * inlined, no frame). */
static lz_noinline void cxx_delete_sized_secure(void *p, size_t size) {
  if (p != NULL) secure_check_size(p, size, "operator delete");
  cxx_delete(p);
}
static lz_noinline void cxx_delete_arr_sized_secure(void *p, size_t size) {
  if (p != NULL) secure_check_size(p, size, "operator delete[]");
  cxx_delete_arr(p);
}

lz_inline void cxx_delete_sized(void *p, size_t size) {
  if (lz_unlikely(lz_secure2)) cxx_delete_sized_secure(p, size);
  else cxx_delete(p);
}
lz_inline void cxx_delete_arr_sized(void *p, size_t size) {
  if (lz_unlikely(lz_secure2)) cxx_delete_arr_sized_secure(p, size);
  else cxx_delete_arr(p);
}

/* new */
LZ_CXX void *_Znwm(size_t size) { return cxx_new(size); }
LZ_CXX void *_Znam(size_t size) { return cxx_new(size); }
LZ_CXX void *_ZnwmRKSt9nothrow_t(size_t size, const lz_nothrow_t *nt) { (void)nt; return cxx_new_nothrow(size); }
LZ_CXX void *_ZnamRKSt9nothrow_t(size_t size, const lz_nothrow_t *nt) { (void)nt; return cxx_new_nothrow(size); }
LZ_CXX void *_ZnwmSt11align_val_t(size_t size, size_t align) { return cxx_new_aligned(size, align, false); }
LZ_CXX void *_ZnamSt11align_val_t(size_t size, size_t align) { return cxx_new_aligned(size, align, false); }
LZ_CXX void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const lz_nothrow_t *nt) {
  (void)nt;
  return cxx_new_aligned(size, align, true);
}
LZ_CXX void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const lz_nothrow_t *nt) {
  (void)nt;
  return cxx_new_aligned(size, align, true);
}

/* delete */
LZ_CXX void _ZdlPv(void *p) { cxx_delete(p); }
LZ_CXX void _ZdaPv(void *p) { cxx_delete_arr(p); }
LZ_CXX void _ZdlPvm(void *p, size_t size) { cxx_delete_sized(p, size); }
LZ_CXX void _ZdaPvm(void *p, size_t size) { cxx_delete_arr_sized(p, size); }
LZ_CXX void _ZdlPvRKSt9nothrow_t(void *p, const lz_nothrow_t *nt) { (void)nt; cxx_delete(p); }
LZ_CXX void _ZdaPvRKSt9nothrow_t(void *p, const lz_nothrow_t *nt) { (void)nt; cxx_delete_arr(p); }
LZ_CXX void _ZdlPvSt11align_val_t(void *p, size_t align) { (void)align; cxx_delete(p); }
LZ_CXX void _ZdaPvSt11align_val_t(void *p, size_t align) { (void)align; cxx_delete_arr(p); }
LZ_CXX void _ZdlPvmSt11align_val_t(void *p, size_t size, size_t align) { (void)align; cxx_delete_sized(p, size); }
LZ_CXX void _ZdaPvmSt11align_val_t(void *p, size_t size, size_t align) { (void)align; cxx_delete_arr_sized(p, size); }
LZ_CXX void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const lz_nothrow_t *nt) {
  (void)align;
  (void)nt;
  cxx_delete(p);
}
LZ_CXX void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const lz_nothrow_t *nt) {
  (void)align;
  (void)nt;
  cxx_delete_arr(p);
}
