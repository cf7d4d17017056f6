/* misuse: death tests for heap misuse through the standard names (KIND API,
 * linked with liblzmalloc).
 *
 * Each case runs in a forked child whose stderr goes to a pipe. The child
 * first sends the exact message it expects (formatted with "%p", i.e.
 * 0x<lowercase hex>) through a second pipe, then commits the misuse. The
 * parent asserts that the child died of SIGABRT and that its stderr contains
 *     lzmalloc: free(): invalid pointer 0x...   (invalid / interior frees)
 *     lzmalloc: free(): double free 0x...       (double frees)
 * A child that survives the misuse exits with status 77 ("not detected").
 *     lzmalloc: malloc(): corrupted free list 0x... (a link overwritten after
 *                                        free or by an overflow: the bad link)
 * `misuse --extra` runs harder cases (double free of a 64-byte block after
 * another free of the same size, double frees of 100 KiB / 4 MiB blocks that
 * may report either message, a foreign 2 MiB-aligned mmap region, double
 * frees by the owner and by another thread of a block whose page went back
 * to the kernel inside a live slab: a "hole", whose first word reads zero;
 * realloc of a freed 64-byte block, to the same size and to 1000 bytes,
 * and of a freed 100 KiB block: "realloc(): double free").
 * `misuse --sized` runs each kind of level-1 catch at 8 B, 4 KiB and 256 KiB
 * (a slab block of the smallest class, a slab block carved one per page,
 * a medium span): double free, invalid free 4096 bytes in (the slot after
 * the carved limit of a slab), double frees across threads in every order
 * (two other threads; another thread twice; owner then other; other then
 * owner), and a free-list link overwritten after free (slabs only: a
 * medium span has no free list).
 * `misuse --audit` checks that level 1 never lists a block twice, at 8 B,
 * 48 B, 4 KiB, 32 KiB, 256 KiB, 1, 2 and 8 MiB: double frees in every
 * order and thread, including a second free while the first still waits
 * in another thread's batch or foreign list or on the owner's remote list
 * (there linked to another chunk, above or below the block's), after
 * the owner thread exited, after malloc_trim gave the freed memory back
 * (then freed by another thread or by the owner),
 * and in a fork child; frees
 * of interior, never-carved (also by another thread that keeps the
 * size's blocks), freed-span, cached-range and memalign'd
 * pointers, and malloc_usable_size of interior and never-carved
 * pointers. A case that survives, or hands an address out twice (exit
 * 78), fails. `misuse --cxx` checks that every operator delete form names
 * itself in its reports, for a block of the calling thread's and for one
 * another thread allocated (the remote free's path: heap_free_page).
 *
 * Against plain glibc this test fails by design (glibc's messages differ).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define MSG_INVALID "lzmalloc: free(): invalid pointer"
#define MSG_DOUBLE "lzmalloc: free(): double free"
#define MSG_CORRUPT "lzmalloc: malloc(): corrupted free list"
#define MSG_UAF "lzmalloc: malloc(): write after free"

/* Hardening level 2 (no free lists to corrupt: freed blocks are filled and
 * checked instead) reports the requested size as the usable size. */
static int secure_level2(void) {
  void *p = malloc(1);
  size_t u = malloc_usable_size(p);
  free(p);
  return u == 1;
}

static int g_expfd = -1;

/* Child: announce "<msg> <ptr>" (and optional alternative) to the parent. */
static void expect(const char *msg, const void *p, const char *alt_msg) {
  char buf[256];
  int n;
  if (alt_msg)
    n = snprintf(buf, sizeof buf, "%s %p\n%s %p\n", msg, p, alt_msg, p);
  else
    n = snprintf(buf, sizeof buf, "%s %p\n", msg, p);
  if (n > 0 && write(g_expfd, buf, (size_t)n) != n) _exit(70);
  close(g_expfd);
  g_expfd = -1;
}

/* ---- the cases (run in the child) ---------------------------------------- */

static void case_double_free_64(void) {
  char *p = malloc(64);
  if (!p) _exit(71);
  p[0] = 1;
  expect(MSG_DOUBLE, p, NULL);
  free(p);
  free(tu_opaque_ptr(p));
}

static void case_double_free_64_after_other(void) {
  /* Another block of the same size freed in between. */
  char *p = malloc(64), *q = malloc(64);
  if (!p || !q) _exit(71);
  expect(MSG_DOUBLE, p, NULL);
  free(p);
  free(q);
  free(tu_opaque_ptr(p));
}

static void case_double_free_medium(void) {
  char *p = malloc(100 * 1024);
  if (!p) _exit(71);
  /* Whether the allocator still knows the block was freed or only sees a
   * pointer it doesn't own, it must abort naming the pointer. */
  expect(MSG_DOUBLE, p, MSG_INVALID);
  free(p);
  free(tu_opaque_ptr(p));
}

/* realloc of a freed block: the block's first word is a free-list link
 * (an encoded NULL for a parked medium block), which realloc screens
 * before it resizes in place or copies (heap.c, realloc_screen). */
#define MSG_REALLOC_DOUBLE "lzmalloc: realloc(): double free"
static void realloc_freed(size_t size, size_t to, const char *alt) {
  /* Past start-up's packed span (src/pack.c), whose map would name the
   * freed block without the screen: 4096 blocks use it up. */
  for (int i = 0; i < 4096 && size <= 1024; i++)
    if (tu_opaque_ptr(malloc(size)) == NULL) _exit(70);
  char *p = malloc(size);
  if (!p) _exit(71);
  p[0] = 1;
  expect(MSG_REALLOC_DOUBLE, p, alt);
  free(p);
  (void)tu_opaque_ptr(realloc(tu_opaque_ptr(p), to));
}
static void case_realloc_freed_64(void) { realloc_freed(64, 64, NULL); }
static void case_realloc_freed_64_grow(void) { realloc_freed(64, 1000, NULL); }
static void case_realloc_freed_100k(void) { realloc_freed(100 * 1024, 120 * 1024, "lzmalloc: realloc(): invalid pointer"); }

static void case_double_free_large(void) {
  char *p = malloc(4 << 20);
  if (!p) _exit(71);
  expect(MSG_DOUBLE, p, MSG_INVALID);
  free(p);
  free(tu_opaque_ptr(p));
}

/* A slab block freed, its page given back by malloc_trim while the slab
 * keeps live blocks (a hole: the page reads zero), then freed again. */
static char *g_hole_block;
static char *hole_block(void) {
  enum { N = 4000, KEEP = 64, VICTIM = 1000 }; /* past start-up (its packed spans go back whole) */
  static char *v[N];
  for (int i = 0; i < N; i++)
    if (!(v[i] = malloc(1024))) _exit(71);
  for (int i = 0; i < N; i++)
    if (i % KEEP != 0) free(v[i]);
  malloc_trim(0);
  return v[VICTIM];
}

static void case_double_free_hole(void) {
  char *p = hole_block();
  expect(MSG_DOUBLE, p, NULL);
  free(tu_opaque_ptr(p));
}

static void *hole_free_thread(void *arg) {
  (void)arg;
  free(tu_opaque_ptr(g_hole_block));
  return NULL;
}

static void case_double_free_hole_xthread(void) {
  g_hole_block = hole_block();
  expect(MSG_DOUBLE, g_hole_block, NULL);
  pthread_t t;
  if (pthread_create(&t, NULL, hole_free_thread, NULL) != 0) _exit(72);
  pthread_join(t, NULL);
  for (int i = 0; i < 64; i++) free(malloc(1024)); /* the owner collects */
  malloc_trim(0);
}

static void case_invalid_stack(void) {
  _Alignas(64) char buf[512];
  tu_fill_byte(buf, 0, sizeof buf);
  char *p = (char *)tu_opaque_ptr(buf) + 64;
  expect(MSG_INVALID, p, NULL);
  free(p);
}

static void case_invalid_mmap(void) {
  char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) _exit(72);
  p = tu_opaque_ptr(p);
  expect(MSG_INVALID, p, NULL);
  free(p);
}

static void case_invalid_mmap_2m_aligned(void) {
  /* A foreign region aligned like an allocator chunk (2 MiB): the allocator
   * must check ownership, not trust alignment or header contents. */
  size_t sz = 4u << 20;
  char *m = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) _exit(72);
  uintptr_t a = ((uintptr_t)m + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1);
  char *p = (char *)tu_opaque_ptr((void *)(a + 4096));
  expect(MSG_INVALID, p, NULL);
  free(p);
}

static void case_interior_small(void) {
  char *p = malloc(64);
  if (!p) _exit(71);
  char *q = (char *)tu_opaque_ptr(p) + 16;
  expect(MSG_INVALID, q, NULL);
  free(q);
}

static void case_interior_medium(void) {
  char *p = malloc(100 * 1024);
  if (!p) _exit(71);
  char *q = (char *)tu_opaque_ptr(p) + 8;
  expect(MSG_INVALID, q, NULL);
  free(q);
}

static void case_interior_large(void) {
  char *p = malloc(4 << 20);
  if (!p) _exit(71);
  char *q = (char *)tu_opaque_ptr(p) + 4096;
  expect(MSG_INVALID, q, NULL);
  free(q);
}

/* A 16-byte overflow of a 16-byte block over the link of the free block
 * above it, which malloc's inline pop hands out next: the flipped link it
 * leaves as the list's head decodes to ~(the block after) and must be
 * reported, not followed (the inline pop once did: a segfault). */
static void case_corrupted_inline(void) {
  enum { SIZE = 16 };
  /* Past start-up's packed span (src/pack.c: blocks carved one after
   * another, no list for the inline pop): 64 KiB of blocks fill it. */
  for (int i = 0; i < 4096; i++)
    if (tu_opaque_ptr(malloc(SIZE)) == NULL) _exit(70);
  char *a = malloc(SIZE), *b = malloc(SIZE), *c = NULL;
  /* Three blocks carved one after another, and two more free above them
   * on the same page: the list goes on with c + 16, then c + 32. */
  for (int i = 0; i < 100000 && c == NULL; i++) {
    char *n = malloc(SIZE);
    if (!a || !b || !n) _exit(71);
    if (b == a + SIZE && n == b + SIZE && ((uintptr_t)n & 4095) <= 4096 - 3 * SIZE) c = n;
    a = b;
    b = n;
  }
  if (c == NULL) _exit(72);
  volatile uint64_t *link = (volatile uint64_t *)tu_opaque_ptr(c + SIZE);
  expect(MSG_CORRUPT, (void *)~(uintptr_t)(c + 2 * SIZE), NULL);
  *link = ~*link;
  if (tu_opaque_ptr(malloc(SIZE)) != c + SIZE) _exit(73); /* the inline pop of c + 16 */
  (void)tu_opaque_ptr(malloc(SIZE));                       /* the head it left */
}

/* ---- level-1 catches at a given size (g_size, set before the fork) -------- */

static size_t g_size;

/* A thread that frees one block, then takes an allocation slow path (which
 * sends its batched remote frees on, with per-thread and shared heaps). */
static void *thread_free(void *p) {
  free(p);
  void *q = malloc(200000);
  free(q);
  return NULL;
}

static void free_in_thread(void *p) {
  pthread_t t;
  if (pthread_create(&t, NULL, thread_free, p) != 0) _exit(74);
  pthread_join(t, NULL);
}

/* The owner collects remote frees on its allocation slow path. */
static void owner_collect(void) {
  for (int i = 0; i < 4; i++) free(malloc(200000 + (size_t)i * 8192));
}

static char *sized_block(void) {
  char *p = malloc(g_size);
  if (!p) _exit(71);
  tu_fill_byte(p, 0x5a, g_size);
  return tu_opaque_ptr(p);
}

static void case_sized_double_free(void) {
  char *p = sized_block();
  expect(MSG_DOUBLE, p, NULL);
  free(p);
  free(tu_opaque_ptr(p));
}

/* The slot one page after the block: in the slab's span but past its carved
 * blocks (8 B, 4 KiB), or a medium span's second page (256 KiB). Accepting
 * it put an uncarved slot on a free list, later handed out twice. */
static void case_sized_invalid_plus_page(void) {
  char *p = sized_block();
  char *q = tu_opaque_ptr(p + 4096);
  expect(MSG_INVALID, q, NULL);
  free(q);
  /* Not caught: show the damage (the same address handed out twice). */
  for (int i = 0; i < 2000; i++) {
    char *a = malloc(g_size), *b = malloc(g_size);
    if (a == b) _exit(78);
  }
}

static void case_xthread_two_others(void) {
  char *p = sized_block();
  expect(MSG_DOUBLE, p, NULL);
  free_in_thread(p);
  free_in_thread(p);
  owner_collect();
}

static void case_xthread_owner_then_other(void) {
  char *p = sized_block();
  /* Medium: once the owner's cache gives the span back, the pointer is
   * no block at all. */
  expect(MSG_DOUBLE, p, g_size > 32768 ? MSG_INVALID : NULL);
  free(p);
  free_in_thread(p);
  owner_collect();
}

static void case_xthread_other_then_owner(void) {
  char *p = sized_block();
  expect(MSG_DOUBLE, p, NULL);
  free_in_thread(p);
  free(tu_opaque_ptr(p));
  owner_collect();
}

static void *thread_free_twice(void *p) {
  free(p);
  free(tu_opaque_ptr(p));
  return NULL;
}

static void case_xthread_same_thread_twice(void) {
  char *p = sized_block();
  expect(MSG_DOUBLE, p, NULL);
  pthread_t t;
  if (pthread_create(&t, NULL, thread_free_twice, p) != 0) _exit(74);
  pthread_join(t, NULL);
  owner_collect();
}

static void case_corrupted_list(void) {
  char *keep = sized_block(); /* the span stays live */
  char *p = sized_block();
  if (!secure_level2() && g_size > 1024) {
    /* A slab's block (start-up's packed span, src/pack.c, holds blocks up
     * to 1 KiB): freed on q, freed before it, at the head of its span's
     * free list, it is the next block handed out (the one freed last),
     * and the malloc after that finds the link it left bad and names it:
     * with its bits flipped, ~q. */
    char *q = sized_block();
    free(q);
    free(p);
    volatile uint64_t *w = (volatile uint64_t *)tu_opaque_ptr(p);
    expect(MSG_CORRUPT, (void *)~(uintptr_t)q, NULL);
    w[0] = ~w[0];
    if (tu_opaque_ptr(malloc(g_size)) != p) _exit(73);
    (void)tu_opaque_ptr(malloc(g_size)); /* the head it left */
    (void)keep;
    return;
  }
  expect(secure_level2() ? MSG_UAF : MSG_CORRUPT, p, NULL);
  free(p);
  /* Write after free over the block's free-list link. */
  volatile uint64_t *w = (volatile uint64_t *)tu_opaque_ptr(p);
  w[0] = 0x4141414141414141ull;
  for (int i = 0; i < 100000; i++) (void)tu_opaque_ptr(malloc(g_size));
  (void)keep;
}

/* ---- level-2 catches at a given size (LZMALLOC_SECURE=2 or the secure
 * library; `--memcpy`: the secure library's checked memcpy & co) --------- */

#define MSG_OVERFLOW "lzmalloc: free(): buffer overflow"
#define MSG_UNDERFLOW "lzmalloc: free(): buffer underflow"

/* libstdc++'s names, called from C. */
extern void *_Znwm(size_t size);
extern void _ZdlPvm(void *p, size_t size);
extern void _ZdaPvm(void *p, size_t size);
extern void *_Znam(size_t size);

static unsigned char g_buf[4 * 1024 * 1024];

/* Plain stores the compiler cannot turn into a memset call. */
static void poke(char *from, size_t n, int c) { tu_fill_byte(tu_opaque_ptr(from), c, n); }

static void case_overflow_1(void) {
  char *p = sized_block();
  expect(MSG_OVERFLOW, p, NULL);
  p[g_size] = (char)~p[g_size];
  free(p);
}

static void case_overflow_32(void) {
  char *p = sized_block();
  expect(MSG_OVERFLOW, p, NULL);
  poke(p + g_size, 32, 0x41);
  free(p);
}

static void case_underflow_1(void) {
  char *p = sized_block();
  expect(MSG_UNDERFLOW, p, NULL);
  p[-1] = (char)~p[-1];
  free(p);
}

static void case_underflow_32(void) {
  char *p = sized_block();
  expect(MSG_UNDERFLOW, p, NULL);
  poke(p - 32, 32, 0x41);
  free(p);
}

static void case_write_after_free(void) {
  char *p = sized_block();
  expect(MSG_UAF, p, NULL);
  free(p);
  volatile char *q = tu_opaque_ptr(p);
  q[g_size / 2] = (char)~q[g_size / 2];
  (void)tu_opaque_ptr(malloc(g_size));
}

static void case_realloc_overflow(void) {
  char *p = sized_block();
  expect("lzmalloc: realloc(): buffer overflow", p, NULL);
  p[g_size] = (char)~p[g_size];
  (void)tu_opaque_ptr(realloc(p, g_size * 2));
}

static void case_sized_delete_mismatch(void) {
  char *p = tu_opaque_ptr(_Znwm(g_size));
  expect("lzmalloc: operator delete(): size mismatch", p, NULL);
  _ZdlPvm(p, g_size + 16);
}

static void case_sized_delete_array_mismatch(void) {
  char *p = tu_opaque_ptr(_Znam(g_size));
  expect("lzmalloc: operator delete[](): size mismatch", p, NULL);
  _ZdaPvm(p, g_size - 1);
}

static void case_memcpy_overflow(void) {
  char *p = sized_block();
  expect("lzmalloc: memcpy(): buffer overflow", p, NULL);
  memcpy(p, g_buf, tu_opaque(g_size + 1));
}

static void case_memcpy_overread(void) {
  char *p = sized_block();
  expect("lzmalloc: memcpy(): buffer over-read", p, NULL);
  memcpy(g_buf, p + 1, tu_opaque(g_size));
}

static void case_memmove_overflow(void) {
  char *p = sized_block();
  expect("lzmalloc: memmove(): buffer overflow", p, NULL);
  memmove(p + g_size / 2, g_buf, tu_opaque(g_size / 2 + 1));
}

static void case_memset_overflow(void) {
  char *p = sized_block();
  expect("lzmalloc: memset(): buffer overflow", p, NULL);
  memset(p, 0, tu_opaque(g_size + 32));
}

/* A run of 1 MiB off the block ends in a guard page: the SIGSEGV handler
 * of level 2 names the block. */
#define MSG_GUARD_OVERFLOW "lzmalloc: buffer overflow"
#define MSG_GUARD_UNDERFLOW "lzmalloc: buffer underflow"

static void case_overflow_1m(void) {
  char *p = sized_block();
  expect(MSG_GUARD_OVERFLOW, p, NULL);
  poke(p + g_size, 1 << 20, 0x41);
  free(p);
}

static void case_underflow_1m(void) {
  char *p = sized_block();
  expect(MSG_GUARD_UNDERFLOW, p, NULL);
  volatile char *v = tu_opaque_ptr(p);
  for (size_t i = 1; i <= (1u << 20); i++) v[-(ptrdiff_t)i] = 0x41;
  free(p);
}

/* Blocks over 1 MiB: an underflow hits the head guard page before the
 * block, a use after free the freed range (PROT_NONE in the quarantine). */
static void case_large_underflow_1(void) {
  char *p = sized_block();
  expect(MSG_GUARD_UNDERFLOW, p, NULL);
  p[-1] = (char)~p[-1];
  free(p);
}
static void case_large_underflow_32(void) {
  char *p = sized_block();
  expect(MSG_GUARD_UNDERFLOW, p, NULL);
  poke(p - 32, 32, 0x41);
  free(p);
}
static void case_large_memalign_underflow(void) {
  char *p = tu_opaque_ptr(memalign(64 * 1024, g_size));
  if (!p) _exit(71);
  expect(MSG_GUARD_UNDERFLOW, p, NULL);
  p[-1] = (char)~p[-1];
  free(p);
}
static void case_large_use_after_free(void) {
  char *p = sized_block();
  expect("lzmalloc: use after free", p, NULL);
  free(p);
  volatile char *q = tu_opaque_ptr(p);
  q[g_size / 2] = (char)~q[g_size / 2];
  (void)tu_opaque_ptr(malloc(g_size));
}
static void case_large_read_after_free(void) {
  char *p = sized_block();
  expect("lzmalloc: use after free", p, NULL);
  free(p);
  volatile char *q = tu_opaque_ptr(p);
  (void)q[0];
}

/* The first block of a fresh heap lies in the first span of its chunk,
 * right above the chunk header: an underflow from it runs into the guard
 * page that ends the header (a medium block: its own guard page), never
 * into the span descriptors (the header's last 2,816 bytes). */
static void *header_underflow_thread(void *arg) {
  (void)arg;
  char *p = sized_block();
  uintptr_t chunk = (uintptr_t)p & ~(uintptr_t)(2 * TU_MiB - 1);
  expect(MSG_GUARD_UNDERFLOW, p, NULL);
  volatile char *v = tu_opaque_ptr(p);
  uintptr_t stop = chunk + 9 * 4096 - 1000; /* inside the descriptors of the old layout */
  for (uintptr_t a = (uintptr_t)p - 1; a >= stop; a--) v[(ptrdiff_t)(a - (uintptr_t)p)] = 0x41;
  free(p);
  return NULL;
}

static void case_underflow_chunk_header(void) {
  pthread_t t;
  if (pthread_create(&t, NULL, header_underflow_thread, NULL) != 0) _exit(74);
  pthread_join(t, NULL);
}

/* Level 2's SIGSEGV handler keeps faults that are not in its guard pages
 * as they were: a write to the program's own PROT_NONE page still dies of
 * SIGSEGV (the default action), and a handler the program installs later
 * gets such faults. */
static sigjmp_buf g_jmp;
static void own_handler(int sig) {
  (void)sig;
  siglongjmp(g_jmp, 1);
}

static int foreign_faults(void) {
  char *m = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
    *(volatile char *)tu_opaque_ptr(m) = 1;
    _exit(0);
  }
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "status %#x", st);
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = own_handler;
  CHECK(sigaction(SIGSEGV, &sa, &old) == 0);
  int caught = 0;
  if (sigsetjmp(g_jmp, 1) == 0) *(volatile char *)tu_opaque_ptr(m) = 1;
  else caught = 1;
  CHECK(caught);
  CHECK(sigaction(SIGSEGV, &old, NULL) == 0);
  munmap(m, 4096);
  printf("ok   foreign_faults\n");
  return 1;
}

/* Not a death test: what level 2 promises to a correct program. */
static int level2_behaviour(int with_memcpy) {
  static const size_t sizes[] = {0, 1, 8, 15, 16, 17, 100, 4096, 5000, 40000, 262144, 1000000, 3 * TU_MiB + 5};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    char *p = malloc(n);
    CHECK(p != NULL && ((uintptr_t)p & 15) == 0);
    CHECKF(malloc_usable_size(p) == n, "usable %zu for %zu", malloc_usable_size(p), n);
    tu_fill_byte(p, 0x33, n);
    if (with_memcpy) {
      memset(p, 0x44, n);  /* exactly the block: allowed */
      memcpy(g_buf, p, n);
      memmove(p, g_buf, n);
    }
    p = realloc(p, n + 10);
    CHECK(p != NULL && malloc_usable_size(p) == n + 10);
    for (size_t j = 0; j < n; j++) CHECK(p[j] == (with_memcpy ? 0x44 : 0x33));
    free(p);
    for (size_t al = 32; al <= 65536; al *= 4) {
      void *q = NULL;
      CHECK(posix_memalign(&q, al, n + 1) == 0 && ((uintptr_t)q & (al - 1)) == 0);
      CHECK(malloc_usable_size(q) == n + 1);
      tu_fill_byte(q, 0x55, n + 1);
      free(q);
    }
  }
  /* Quarantine: a freed block is not handed out again at once. */
  char *a = malloc(64);
  free(a);
  char *b = malloc(64);
  CHECK(a != b);
  free(b);
  printf("ok   level2_behaviour\n");
  return 1;
}

/* ---- harness ------------------------------------------------------------ */

static size_t read_all(int fd, char *buf, size_t cap) {
  size_t len = 0;
  for (;;) {
    ssize_t r = read(fd, buf + len, cap - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += (size_t)r;
    if (len >= cap - 1) {
      /* Keep draining so the child never blocks on a full pipe. */
      char sink[4096];
      while (read(fd, sink, sizeof sink) > 0) {
      }
      break;
    }
  }
  buf[len] = '\0';
  return len;
}

/* ---- the level-1 audit (--audit): every way a block can be freed twice,
 * or a pointer that is no block freed, at 8 B .. 8 MiB (g_size) -------- */

#define MSG_EITHER MSG_DOUBLE, p, MSG_INVALID

/* A helper thread that frees what it is given when told, then waits to be
 * told again before it exits (its batches and foreign lists stay with it
 * until then). */
typedef struct helper_s {
  pthread_t t;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int step, done, ready;
  void *alloc_first; /* allocates (and keeps) one block of g_size first */
  void *to_free[2];
  void *got[64];      /* what it allocates when told to end */
} helper_t;

static void *helper_main(void *arg) {
  helper_t *h = arg;
  if (h->alloc_first) h->alloc_first = tu_opaque_ptr(malloc(g_size));
  pthread_mutex_lock(&h->mu);
  h->ready = 1;
  pthread_cond_broadcast(&h->cv);
  while (h->step < 1) pthread_cond_wait(&h->cv, &h->mu);
  pthread_mutex_unlock(&h->mu);
  for (int i = 0; i < 2; i++)
    if (h->to_free[i]) free(h->to_free[i]);
  pthread_mutex_lock(&h->mu);
  h->done = 1;
  pthread_cond_broadcast(&h->cv);
  while (h->step < 2) pthread_cond_wait(&h->cv, &h->mu);
  pthread_mutex_unlock(&h->mu);
  for (int i = 0; i < 64; i++) h->got[i] = malloc(g_size); /* its lists first */
  return NULL;
}

static void helper_start(helper_t *h, int alloc_first) {
  memset(h, 0, sizeof *h);
  pthread_mutex_init(&h->mu, NULL);
  pthread_cond_init(&h->cv, NULL);
  h->alloc_first = alloc_first ? (void *)1 : NULL;
  if (pthread_create(&h->t, NULL, helper_main, h) != 0) _exit(74);
  pthread_mutex_lock(&h->mu);
  while (!h->ready) pthread_cond_wait(&h->cv, &h->mu);
  pthread_mutex_unlock(&h->mu);
}

/* The helper frees a (then b) and stays alive holding what it batched. */
static void helper_free(helper_t *h, void *a, void *b) {
  pthread_mutex_lock(&h->mu);
  h->to_free[0] = a;
  h->to_free[1] = b;
  h->step = 1;
  pthread_cond_broadcast(&h->cv);
  while (!h->done) pthread_cond_wait(&h->cv, &h->mu);
  pthread_mutex_unlock(&h->mu);
}

/* The helper allocates 64 blocks and exits; p may be among them only if
 * the caller's blocks (mine, from alloc_many) did not hold it (exit 78:
 * handed out twice). */
static void helper_end(helper_t *h, const void *p, int mine_has_p) {
  pthread_mutex_lock(&h->mu);
  h->step = 2;
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
  pthread_join(h->t, NULL);
  int n = mine_has_p;
  for (int i = 0; i < 64; i++) n += h->got[i] == p;
  if (n > 1) _exit(78);
}

/* Allocates blocks of g_size (up to 64 MiB of them, kept): how many times
 * p was handed out; more than once exits 78. */
static int alloc_many(const void *p) {
  size_t n = (64 * TU_MiB) / g_size;
  if (n > 4096) n = 4096;
  if (n < 8) n = 8;
  int seen = 0;
  for (size_t i = 0; i < n; i++) {
    void *a = malloc(g_size);
    seen += a == p;
  }
  if (seen > 1) _exit(78);
  return seen;
}

/* A block whose span has free blocks too (so the owner's free fast path
 * may take it). */
static char *loose_block(void) {
  char *v[8];
  for (int i = 0; i < 8; i++) v[i] = sized_block();
  for (int i = 0; i < 8; i++)
    if (i != 3) free(v[i]);
  return v[3];
}

/* The first free is still in the helper's batch (or foreign list): the
 * owner frees again. */
static void case_audit_pending_owner(void) {
  char *p = loose_block();
  helper_t h;
  helper_start(&h, 1);
  expect(MSG_DOUBLE, p, g_size > 32768 ? MSG_INVALID : NULL);
  helper_free(&h, p, NULL);
  free(tu_opaque_ptr(p));
  int mine = alloc_many(p);
  owner_collect();
  helper_end(&h, p, mine);
  owner_collect();
}

/* ... and a third thread frees it again. */
static void case_audit_pending_other(void) {
  char *p = sized_block();
  helper_t h;
  helper_start(&h, 1);
  expect(MSG_DOUBLE, p, g_size > 32768 ? MSG_INVALID : NULL);
  helper_free(&h, p, NULL);
  free_in_thread(p);
  int mine = alloc_many(p);
  helper_end(&h, p, mine);
  owner_collect();
}

/* A block of another (live) heap is freed first in the helper, then p:
 * the helper's foreign list links p to another chunk; the owner frees p
 * while it is listed there. */
static void case_audit_foreign_linked_owner(void) {
  char *p = loose_block();
  helper_t other, h;
  helper_start(&other, 1); /* a live heap's block: q */
  char *q = other.alloc_first;
  helper_start(&h, 1);
  expect(MSG_DOUBLE, p, g_size > 32768 ? MSG_INVALID : NULL);
  helper_free(&h, q, p);
  free(tu_opaque_ptr(p));
  int mine = alloc_many(p);
  owner_collect();
  helper_end(&h, p, mine);
  owner_collect();
  helper_free(&other, NULL, NULL);
  helper_end(&other, NULL, 0);
}

/* ... and a third thread frees p while it is listed there (its link leads
 * to q's chunk, below p's or not). */
static void case_audit_foreign_linked_other(void) {
  char *p = sized_block();
  helper_t other, h;
  helper_start(&other, 1);
  char *q = other.alloc_first;
  helper_start(&h, 1);
  expect(MSG_DOUBLE, p, g_size > 32768 ? MSG_INVALID : NULL);
  helper_free(&h, q, p);
  free_in_thread(p);
  int mine = alloc_many(p);
  helper_end(&h, p, mine);
  owner_collect();
  helper_free(&other, NULL, NULL);
  helper_end(&other, NULL, 0);
}

/* The owner's blocks p and q in two chunks, q's above p's: the helper frees
 * q, then p, so its foreign list links p up to q's chunk (any order:
 * remote.c, "Order"); the owner frees p while it is listed there. Only for
 * the sizes a foreign list keeps (a multiple of the cache line, a slab's). */
static void case_audit_foreign_linked_up_owner(void) {
  static char *v[4096];
  size_t n = (4 * TU_MiB) / g_size, hi = 0;
  if (n > 4096) n = 4096;
  for (size_t i = 0; i < n && hi == 0; i++) {
    v[i] = sized_block();
    if (i > 0 && ((uintptr_t)v[i] >> 21) != ((uintptr_t)v[0] >> 21)) hi = i;
  }
  if (hi == 0) _exit(71);
  size_t pi = (uintptr_t)v[0] < (uintptr_t)v[hi] ? 0 : hi;
  char *p = v[pi], *q = v[pi == 0 ? hi : 0];
  for (size_t i = 0; i <= hi; i++) /* p's span gets free blocks: the fast path may take p */
    if (v[i] != p && v[i] != q) free(v[i]);
  helper_t h;
  helper_start(&h, 1);
  expect(MSG_DOUBLE, p, NULL);
  helper_free(&h, q, p);
  free(tu_opaque_ptr(p));
  int mine = alloc_many(p);
  owner_collect();
  helper_end(&h, p, mine);
  owner_collect();
}

/* Blocks of two chunks of the owner sent home by exiting threads, p last:
 * the remote list links p to the other chunk; the owner frees p before it
 * collects. */
static void case_audit_remote_linked_owner(void) {
  char *p = loose_block();
  char *far = NULL;
  /* A block of the owner in another chunk than p. */
  static char *keep[64];
  for (int i = 0; i < 64 && far == NULL; i++) {
    keep[i] = malloc(900 * 1024);
    if (keep[i] && ((uintptr_t)keep[i] >> 21) != ((uintptr_t)p >> 21)) far = keep[i];
  }
  if (far == NULL) _exit(71);
  expect(MSG_DOUBLE, p, g_size > 32768 ? MSG_INVALID : NULL);
  free_in_thread(far);
  free_in_thread(p);
  free(tu_opaque_ptr(p));
  int seen = alloc_many(p);
  owner_collect();
  if (seen + alloc_many(p) > 1) _exit(78);
}

/* ... and another thread frees p again instead. */
static void case_audit_remote_linked_other(void) {
  char *p = sized_block();
  char *far = NULL;
  static char *keep[64];
  for (int i = 0; i < 64 && far == NULL; i++) {
    keep[i] = malloc(900 * 1024);
    if (keep[i] && ((uintptr_t)keep[i] >> 21) != ((uintptr_t)p >> 21)) far = keep[i];
  }
  if (far == NULL) _exit(71);
  expect(MSG_DOUBLE, p, g_size > 32768 ? MSG_INVALID : NULL);
  free_in_thread(far);
  free_in_thread(p);
  free_in_thread(p);
  owner_collect();
  (void)alloc_many(p);
}

/* The owner thread has exited: its heap is an orphan. */
static void *alloc_exit_thread(void *arg) {
  (void)arg;
  return sized_block();
}
static void case_audit_owner_exited(void) {
  pthread_t t;
  void *p = NULL;
  if (pthread_create(&t, NULL, alloc_exit_thread, NULL) != 0) _exit(74);
  pthread_join(t, &p);
  expect(MSG_DOUBLE, p, g_size > 32768 ? MSG_INVALID : NULL);
  free(p);
  free_in_thread(p);
  free(tu_opaque_ptr(p));
  owner_collect();
}

static void case_audit_owner_exited_same(void) {
  pthread_t t;
  void *p = NULL;
  if (pthread_create(&t, NULL, alloc_exit_thread, NULL) != 0) _exit(74);
  pthread_join(t, &p);
  expect(MSG_DOUBLE, p, g_size > 32768 ? MSG_INVALID : NULL);
  free(p);
  free(tu_opaque_ptr(p));
  owner_collect();
}

/* Freed by another thread, everything idle given back, freed again by a
 * third: a large range is then unmapped, as its decay may do at any time
 * between two frees (xthread_two_others once met an unmapped range and
 * was told "invalid pointer"). A medium or small block's chunk may be
 * unmapped too, and that pointer is then no longer ours. */
static void case_audit_trimmed_then_other(void) {
  char *p = sized_block();
  expect(MSG_DOUBLE, p, g_size > 1024 * 1024 ? NULL : MSG_INVALID);
  free_in_thread(p);
  malloc_trim(0);
  free_in_thread(p);
  owner_collect();
}

/* Freed again by the owner after malloc_trim gave its memory back: a
 * chunk emptied in the heap's region waits there with its header and
 * its page of the region's map given back (src/chunk.c, "Regions"). The
 * thread first frees a few hundred blocks, so that its region has its
 * map (free's fast path reads it). */
static void case_audit_trimmed_then_owner(void) {
  for (int i = 0; i < 600; i++) free(tu_opaque_ptr(malloc(16)));
  char *p = sized_block();
  expect(MSG_DOUBLE, p, g_size > 1024 * 1024 ? NULL : MSG_INVALID);
  free(p);
  malloc_trim(0);
  free(p);
}

/* In a fork child: a block freed before the fork, freed again. */
static void in_child(void (*fn)(char *), char *p) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) _exit(74);
  if (pid == 0) {
    fn(p);
    _exit(77);
  }
  int st = 0;
  if (waitpid(pid, &st, 0) != pid) _exit(74);
  if (WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT) {
    signal(SIGABRT, SIG_DFL);
    abort();
  }
  _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 76);
}
static void child_free(char *p) {
  free(tu_opaque_ptr(p));
  owner_collect();
}
static void child_free_twice(char *p) {
  free(p);
  free(tu_opaque_ptr(p));
  owner_collect();
}
static void case_audit_fork_freed_before(void) {
  char *p = sized_block();
  expect(MSG_DOUBLE, p, g_size > 32768 ? MSG_INVALID : NULL);
  free(p);
  in_child(child_free, p);
}
static void case_audit_fork_twice(void) {
  char *p = sized_block();
  expect(MSG_DOUBLE, p, g_size > 32768 ? MSG_INVALID : NULL);
  in_child(child_free_twice, p);
}
static void child_free_in_thread(char *p) {
  free_in_thread(p);
  free(tu_opaque_ptr(p));
  owner_collect();
}
static void case_audit_fork_xthread(void) {
  char *p = sized_block();
  expect(MSG_DOUBLE, p, g_size > 32768 ? MSG_INVALID : NULL);
  in_child(child_free_in_thread, p);
}

/* Pointers that are no block. */
static void case_audit_interior_8(void) {
  char *p = sized_block() + 8;
  expect(MSG_INVALID, p, NULL);
  free(tu_opaque_ptr(p));
}
static void case_audit_interior_half(void) {
  char *b = sized_block();
  char *p = b + ((g_size / 2) & ~(size_t)15);
  if (p == b) p += 8;
  expect(MSG_INVALID, p, NULL);
  free(tu_opaque_ptr(p));
}
static void case_audit_interior_page(void) {
  char *b = sized_block();
  char *p = b + 4096 + 16;
  expect(MSG_INVALID, p, NULL);
  free(tu_opaque_ptr(p));
}
/* Into a span's tail never carved: the slot after the last block made. */
static void case_audit_uncarved(void) {
  char *p = sized_block();
  size_t step = g_size <= 16 ? 16 : (g_size + 15) & ~(size_t)15;
  char *q = tu_opaque_ptr(p + (g_size > 32768 ? 4096 : 64 * step));
  expect(MSG_INVALID, q, g_size <= 32768 ? MSG_DOUBLE : NULL);
  free(q);
  for (int i = 0; i < 4000; i++) {
    char *a = malloc(g_size), *b = malloc(g_size);
    if (a == b) _exit(78);
  }
}
/* malloc_usable_size of a pointer that is no block: reported by name, as
 * free reports it, on its fast path (alloc.h, usable_fast: any heap's
 * slab or medium block) as on its slow one (large blocks). */
#define MSG_USABLE_INVALID "lzmalloc: malloc_usable_size(): invalid pointer"
static void case_audit_usable_interior_8(void) {
  char *p = sized_block() + 8;
  expect(MSG_USABLE_INVALID, p, NULL);
  if (malloc_usable_size(tu_opaque_ptr(p)) != 0) _exit(77);
}
static void case_audit_usable_interior_half(void) {
  char *b = sized_block();
  char *p = b + ((g_size / 2) & ~(size_t)15);
  if (p == b) p += 8;
  expect(MSG_USABLE_INVALID, p, NULL);
  if (malloc_usable_size(tu_opaque_ptr(p)) != 0) _exit(77);
}
/* The next slot of a slab that carves one block at a time (4 and 32 KiB:
 * slab.c, slab_extend), in its span but never handed out; a page on for
 * the small sizes (past their first slab, carved whole), a medium span's
 * second page or a large block's second. */
static void case_audit_usable_uncarved(void) {
  char *p = sized_block();
  char *q = tu_opaque_ptr(p + (g_size >= 4096 && g_size <= 32768 ? g_size : 4096));
  expect(MSG_USABLE_INVALID, q, NULL);
  if (malloc_usable_size(q) != 0) _exit(77);
}
/* A pointer that is no block, freed by another thread that allocates the
 * size and keeps the owner's blocks of it (its foreign lists mapped by the
 * owner's block it frees first): its own checks (remote.c,
 * remote_free_fast) must name the pointer, never keep it for reuse nor
 * send it home. */
static void xthread_no_block(char *bad, const char *alt) {
  char *good = sized_block();
  helper_t h;
  helper_start(&h, 1);
  expect(MSG_INVALID, bad, alt);
  helper_free(&h, good, bad);
  owner_collect();
  int mine = alloc_many(bad);
  helper_end(&h, bad, mine);
  owner_collect();
}
static void case_audit_xthread_interior(void) { xthread_no_block(tu_opaque_ptr(sized_block() + 8), NULL); }
static void case_audit_xthread_uncarved(void) {
  char *p = sized_block();
  size_t step = g_size <= 16 ? 16 : (g_size + 15) & ~(size_t)15;
  xthread_no_block(tu_opaque_ptr(p + (g_size > 32768 ? 4096 : 64 * step)), g_size <= 32768 ? MSG_DOUBLE : NULL);
}
/* Into a freed block's memory (medium: a freed span, cached or given
 * back; large: a cached range). */
static void case_audit_freed_interior(void) {
  char *b = sized_block();
  char *p = b + (g_size >= 8192 ? 4096 : 8);
  free(b);
  expect(MSG_INVALID, p, MSG_DOUBLE);
  free(tu_opaque_ptr(p));
}
/* A freed large range, partly reused: a pointer to its second unit. */
static void case_audit_cached_unit(void) {
  char *b = malloc(8 * TU_MiB);
  if (!b) _exit(71);
  free(b);
  char *q = malloc(g_size);
  (void)tu_opaque_ptr(q);
  char *p = b + 2 * TU_MiB;
  expect(MSG_INVALID, p, MSG_DOUBLE);
  free(tu_opaque_ptr(p));
}
/* Over-aligned blocks. */
static void case_audit_memalign_double(void) {
  size_t al = g_size >= 4096 ? 4096 : 64;
  char *p = memalign(al, g_size);
  if (!p) _exit(71);
  expect(MSG_DOUBLE, p, g_size > 32768 ? MSG_INVALID : NULL);
  free(p);
  free(tu_opaque_ptr(p));
}
static void case_audit_memalign_xthread(void) {
  size_t al = g_size >= 4096 ? 4096 : 64;
  char *p = memalign(al, g_size);
  if (!p) _exit(71);
  expect(MSG_DOUBLE, p, g_size > 32768 ? MSG_INVALID : NULL);
  free_in_thread(p);
  free(tu_opaque_ptr(p));
  owner_collect();
}
static void case_audit_memalign_interior(void) {
  size_t al = g_size >= 4096 ? 4096 : 64;
  char *p = memalign(al, g_size);
  if (!p) _exit(71);
  p += 16;
  expect(MSG_INVALID, p, NULL);
  free(tu_opaque_ptr(p));
}

/* ---- C++ deletes: every form names itself in its reports (level 1 and 2) */

typedef struct nothrow_s nothrow_t; /* std::nothrow_t, by reference */
extern void *_ZnwmSt11align_val_t(size_t size, size_t align);
extern void *_ZnamSt11align_val_t(size_t size, size_t align);
extern void _ZdlPv(void *p);
extern void _ZdaPv(void *p);
extern void _ZdlPvRKSt9nothrow_t(void *p, const nothrow_t *nt);
extern void _ZdaPvRKSt9nothrow_t(void *p, const nothrow_t *nt);
extern void _ZdlPvSt11align_val_t(void *p, size_t align);
extern void _ZdaPvSt11align_val_t(void *p, size_t align);
extern void _ZdlPvmSt11align_val_t(void *p, size_t size, size_t align);
extern void _ZdaPvmSt11align_val_t(void *p, size_t size, size_t align);
extern void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const nothrow_t *nt);
extern void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const nothrow_t *nt);

enum { CXX_PLAIN, CXX_SIZED, CXX_NOTHROW, CXX_ALIGN, CXX_SIZED_ALIGN, CXX_ALIGN_NOTHROW };
static int g_cxx_form, g_cxx_array, g_cxx_double, g_cxx_remote;
#define CXX_ALIGNMENT 64

static void cxx_delete_call(void *p) {
  size_t n = g_size, al = CXX_ALIGNMENT;
  switch (g_cxx_form * 2 + g_cxx_array) {
  case CXX_PLAIN * 2: _ZdlPv(p); break;
  case CXX_PLAIN * 2 + 1: _ZdaPv(p); break;
  case CXX_SIZED * 2: _ZdlPvm(p, n); break;
  case CXX_SIZED * 2 + 1: _ZdaPvm(p, n); break;
  case CXX_NOTHROW * 2: _ZdlPvRKSt9nothrow_t(p, NULL); break;
  case CXX_NOTHROW * 2 + 1: _ZdaPvRKSt9nothrow_t(p, NULL); break;
  case CXX_ALIGN * 2: _ZdlPvSt11align_val_t(p, al); break;
  case CXX_ALIGN * 2 + 1: _ZdaPvSt11align_val_t(p, al); break;
  case CXX_SIZED_ALIGN * 2: _ZdlPvmSt11align_val_t(p, n, al); break;
  case CXX_SIZED_ALIGN * 2 + 1: _ZdaPvmSt11align_val_t(p, n, al); break;
  case CXX_ALIGN_NOTHROW * 2: _ZdlPvSt11align_val_tRKSt9nothrow_t(p, al, NULL); break;
  default: _ZdaPvSt11align_val_tRKSt9nothrow_t(p, al, NULL); break;
  }
}

static void *cxx_new_call(void *arg) {
  (void)arg;
  int aligned = g_cxx_form >= CXX_ALIGN;
  return aligned ? (g_cxx_array ? _ZnamSt11align_val_t : _ZnwmSt11align_val_t)(g_size, CXX_ALIGNMENT)
                 : (g_cxx_array ? _Znam : _Znwm)(g_size);
}

/* A double delete, or a delete of the block's address + 8, through the
 * form chosen: "lzmalloc: operator delete[](): double free 0x...". With
 * g_cxx_remote, another thread (exited since) allocated the block. */
static void case_cxx_delete(void) {
  void *q = NULL;
  if (g_cxx_remote) {
    pthread_t t;
    if (pthread_create(&t, NULL, cxx_new_call, NULL) != 0 || pthread_join(t, &q) != 0) _exit(74);
  } else {
    q = cxx_new_call(NULL);
  }
  char *p = tu_opaque_ptr(q);
  char msg[96];
  snprintf(msg, sizeof msg, "lzmalloc: operator delete%s(): %s", g_cxx_array ? "[]" : "",
           g_cxx_double ? "double free" : "invalid pointer");
  if (g_cxx_double) {
    /* A large block's second delete may find its range gone already. */
    char alt[96];
    snprintf(alt, sizeof alt, "lzmalloc: operator delete%s(): invalid pointer", g_cxx_array ? "[]" : "");
    expect(msg, p, g_size > 1024 * 1024 ? alt : NULL);
    cxx_delete_call(p);
    cxx_delete_call(tu_opaque_ptr(p));
  } else {
    expect(msg, p + 8, NULL);
    cxx_delete_call(tu_opaque_ptr(p + 8));
  }
}

/* A double delete[] of an own block that the first delete put on its
 * class's installed foreign list (remote.c, "Own blocks": a block of a
 * slab behind its queue's first, while this heap keeps another thread's
 * blocks of the class): the second delete is turned away by that list
 * and reaches the general path through heap_free_own_rest, which must
 * still name operator delete[] (heap.c carries the name down as an
 * argument). 64 B: a class whose blocks the lists keep (a multiple of
 * the cache line); enough blocks for several slabs past a fork child's
 * packed one. */
#define DIVERT_MINE 3000
#define DIVERT_THEIRS 64
static void *divert_theirs[DIVERT_THEIRS];
static void *divert_alloc(void *arg) {
  (void)arg;
  for (int i = 0; i < DIVERT_THEIRS; i++)
    if ((divert_theirs[i] = _Znam(64)) == NULL) _exit(75);
  return NULL;
}
static void case_cxx_delete_diverted(void) {
  static char *mine[DIVERT_MINE];
  for (int i = 0; i < DIVERT_MINE; i++)
    if ((mine[i] = _Znam(64)) == NULL) _exit(75);
  pthread_t t;
  if (pthread_create(&t, NULL, divert_alloc, NULL) != 0 || pthread_join(t, NULL) != 0) _exit(74);
  for (int i = 0; i < DIVERT_THEIRS; i++) _ZdaPv(divert_theirs[i]); /* kept here: the list */
  char *p = mine[DIVERT_MINE / 2];
  _ZdaPv(p); /* onto the list */
  expect("lzmalloc: operator delete[](): double free", p, NULL);
  _ZdaPv(tu_opaque_ptr(p));
}

static int run_case(const char *name, void (*fn)(void)) {
  int errp[2], expp[2];
  CHECK(pipe(errp) == 0 && pipe(expp) == 0);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(errp[0]);
    close(expp[0]);
    if (dup2(errp[1], 2) < 0) _exit(73);
    close(errp[1]);
    g_expfd = expp[1];
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl); /* no core dumps from the expected aborts */
    alarm(20);
    fn();
    _exit(77); /* survived: misuse not detected */
  }
  close(errp[1]);
  close(expp[1]);
  char expected[512], err[16384];
  read_all(expp[0], expected, sizeof expected);
  read_all(errp[0], err, sizeof err);
  close(expp[0]);
  close(errp[0]);
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);

  int ok = 1;
  char why[256] = "";
  /* expected: one or two lines "<msg> 0x..."; any of them must appear. */
  int matched = 0;
  char *save = NULL;
  for (char *line = strtok_r(expected, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
    if (*line && strstr(err, line)) matched = 1;
  if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT) {
    ok = 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
      snprintf(why, sizeof why, "misuse not detected (child survived)");
    else if (WIFEXITED(st))
      snprintf(why, sizeof why, "child exited with status %d, expected SIGABRT",
               WEXITSTATUS(st));
    else
      snprintf(why, sizeof why, "child killed by signal %d (%s), expected SIGABRT (%d)",
               WTERMSIG(st), strsignal(WTERMSIG(st)), SIGABRT);
  } else if (!strstr(err, "lzmalloc:")) {
    ok = 0;
    snprintf(why, sizeof why, "stderr lacks \"lzmalloc:\"");
  } else if (!matched) {
    ok = 0;
    snprintf(why, sizeof why, "stderr lacks the expected message");
  }
  if (ok) {
    printf("ok   %-28s\n", name);
  } else {
    printf("FAIL %-28s %s\n     expected: %s\n     stderr:   %s\n", name, why,
           expected[0] ? expected : "(nothing)", err[0] ? err : "(empty)");
  }
  return ok;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  /* The cases required of lzmalloc; "--extra" runs harder ones (registered
   * as the separate test misuse_extra). */
  struct {
    const char *name;
    void (*fn)(void);
  } core[] = {
      {"double_free_64", case_double_free_64},
      {"invalid_free_stack", case_invalid_stack},
      {"invalid_free_mmap", case_invalid_mmap},
      {"interior_free_64_plus_16", case_interior_small},
      {"interior_free_100k_plus_8", case_interior_medium},
      {"interior_free_4m_plus_4096", case_interior_large},
      {"corrupted_free_list_inline_pop", case_corrupted_inline},
  }, extra[] = {
      {"double_free_64_after_other", case_double_free_64_after_other},
      {"double_free_100k", case_double_free_medium},
      {"double_free_4m", case_double_free_large},
      {"invalid_free_mmap_2m_aligned", case_invalid_mmap_2m_aligned},
      {"double_free_hole", case_double_free_hole},
      {"double_free_hole_xthread", case_double_free_hole_xthread},
      {"realloc_freed_64", case_realloc_freed_64},
      {"realloc_freed_64_grow", case_realloc_freed_64_grow},
      {"realloc_freed_100k", case_realloc_freed_100k},
  };
  if (argc > 1 && strcmp(argv[1], "--sized") == 0) {
    static const size_t sizes[] = {8, 4096, 256 * 1024};
    struct {
      const char *name;
      void (*fn)(void);
      int slab_only;
    } kinds[] = {
        {"double_free", case_sized_double_free, 0},
        {"invalid_free_plus_4096", case_sized_invalid_plus_page, 0},
        {"xthread_two_others", case_xthread_two_others, 0},
        {"xthread_same_thread_twice", case_xthread_same_thread_twice, 0},
        {"xthread_owner_then_other", case_xthread_owner_then_other, 0},
        {"xthread_other_then_owner", case_xthread_other_then_owner, 0},
        {"corrupted_free_list", case_corrupted_list, 1},
    };
    int failed = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
      for (size_t i = 0; i < 3; i++) {
        if (kinds[k].slab_only && sizes[i] > 32768) continue;
        g_size = sizes[i];
        char name[64];
        snprintf(name, sizeof name, "%s_%zu", kinds[k].name, sizes[i]);
        if (!run_case(name, kinds[k].fn)) failed++;
      }
    }
    if (failed) {
      fprintf(stderr, "misuse --sized: %d case(s) failed\n", failed);
      return 1;
    }
    printf("misuse --sized: all passed\n");
    return 0;
  }
  if (argc > 1 && strcmp(argv[1], "--audit") == 0) {
    static const size_t sizes[] = {8, 48, 4096, 32768, 256 * 1024, 1024 * 1024, 2 * 1024 * 1024, 8 * 1024 * 1024};
    struct {
      const char *name;
      void (*fn)(void);
    } kinds[] = {
        {"double_free", case_sized_double_free},
        {"xthread_two_others", case_xthread_two_others},
        {"xthread_same_thread_twice", case_xthread_same_thread_twice},
        {"xthread_owner_then_other", case_xthread_owner_then_other},
        {"xthread_other_then_owner", case_xthread_other_then_owner},
        {"pending_then_owner", case_audit_pending_owner},
        {"pending_then_other", case_audit_pending_other},
        {"foreign_linked_then_owner", case_audit_foreign_linked_owner},
        {"foreign_linked_then_other", case_audit_foreign_linked_other},
        {"foreign_linked_up_then_owner", case_audit_foreign_linked_up_owner},
        {"remote_linked_then_owner", case_audit_remote_linked_owner},
        {"remote_linked_then_other", case_audit_remote_linked_other},
        {"owner_exited", case_audit_owner_exited},
        {"owner_exited_same", case_audit_owner_exited_same},
        {"trimmed_then_other", case_audit_trimmed_then_other},
        {"trimmed_then_owner", case_audit_trimmed_then_owner},
        {"fork_freed_before", case_audit_fork_freed_before},
        {"fork_twice", case_audit_fork_twice},
        {"fork_xthread", case_audit_fork_xthread},
        {"interior_8", case_audit_interior_8},
        {"interior_half", case_audit_interior_half},
        {"interior_page", case_audit_interior_page},
        {"uncarved", case_audit_uncarved},
        {"usable_interior_8", case_audit_usable_interior_8},
        {"usable_interior_half", case_audit_usable_interior_half},
        {"usable_uncarved", case_audit_usable_uncarved},
        {"xthread_interior", case_audit_xthread_interior},
        {"xthread_uncarved", case_audit_xthread_uncarved},
        {"freed_interior", case_audit_freed_interior},
        {"cached_unit", case_audit_cached_unit},
        {"memalign_double", case_audit_memalign_double},
        {"memalign_xthread", case_audit_memalign_xthread},
        {"memalign_interior", case_audit_memalign_interior},
    };
    const char *only = argc > 2 ? argv[2] : NULL;
    int direct = argc > 3 && strcmp(argv[3], "--no-fork") == 0; /* debugging: the first match, in this process */
    int failed = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
      for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        g_size = sizes[i];
        char name[80];
        snprintf(name, sizeof name, "%s_%zu", kinds[k].name, sizes[i]);
        if (only && !strstr(name, only)) continue;
        if (kinds[k].fn == case_audit_interior_page && g_size <= 4096) continue;
        if (kinds[k].fn == case_audit_foreign_linked_up_owner && (g_size % 64 != 0 || g_size > 32768)) continue;
        if (direct) {
          g_expfd = open("/dev/null", O_WRONLY);
          kinds[k].fn();
          return 77;
        }
        if (!run_case(name, kinds[k].fn)) failed++;
      }
    if (failed) {
      fprintf(stderr, "misuse --audit: %d case(s) failed\n", failed);
      return 1;
    }
    printf("misuse --audit: all passed\n");
    return 0;
  }
  if (argc > 1 && strcmp(argv[1], "--cxx") == 0) {
    static const size_t sizes[] = {8, 4096, 256 * 1024, 4 * 1024 * 1024};
    static const char *forms[] = {"plain", "sized", "nothrow", "align", "sized_align", "align_nothrow"};
    int failed = 0;
    for (int form = CXX_PLAIN; form <= CXX_ALIGN_NOTHROW; form++)
      for (int array = 0; array < 2; array++)
        for (int dbl = 0; dbl < 2; dbl++)
          for (int remote = 0; remote < 2; remote++)
            for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
              g_cxx_form = form;
              g_cxx_array = array;
              g_cxx_double = dbl;
              g_cxx_remote = remote;
              g_size = sizes[i];
              char name[96];
              snprintf(name, sizeof name, "delete%s_%s_%s%s_%zu", array ? "_array" : "", forms[form],
                       dbl ? "double" : "interior", remote ? "_remote" : "", sizes[i]);
              if (!run_case(name, case_cxx_delete)) failed++;
            }
    if (!run_case("delete_array_double_diverted_64", case_cxx_delete_diverted)) failed++;
    if (failed) {
      fprintf(stderr, "misuse --cxx: %d case(s) failed\n", failed);
      return 1;
    }
    printf("misuse --cxx: all passed\n");
    return 0;
  }
  if (argc > 1 && strcmp(argv[1], "--level2") == 0) {
    int with_memcpy = argc > 2 && strcmp(argv[2], "--memcpy") == 0;
    CHECKF(secure_level2(), "not running at hardening level 2");
    static const size_t sizes[] = {8, 4096, 256 * 1024};
    struct {
      const char *name;
      void (*fn)(void);
      int needs_memcpy;
    } kinds[] = {
        {"overflow_1", case_overflow_1, 0},
        {"overflow_32", case_overflow_32, 0},
        {"underflow_1", case_underflow_1, 0},
        {"underflow_32", case_underflow_32, 0},
        {"write_after_free", case_write_after_free, 0},
        {"realloc_overflow", case_realloc_overflow, 0},
        {"sized_delete_mismatch", case_sized_delete_mismatch, 0},
        {"sized_delete_array_mismatch", case_sized_delete_array_mismatch, 0},
        {"memcpy_overflow", case_memcpy_overflow, 1},
        {"memcpy_overread", case_memcpy_overread, 1},
        {"memmove_overflow", case_memmove_overflow, 1},
        {"memset_overflow", case_memset_overflow, 1},
        {"overflow_1m", case_overflow_1m, 0},
        {"underflow_1m", case_underflow_1m, 0},
        {"underflow_chunk_header", case_underflow_chunk_header, 0},
    };
    /* Blocks over 1 MiB: a guard page before the block and after its last
     * page, canary bytes up to the latter, the requested size kept out of
     * band, freed ranges PROT_NONE in a quarantine; the checked memcpy &
     * co. bound them too. */
    struct {
      const char *name;
      void (*fn)(void);
      int needs_memcpy;
    } large_kinds[] = {
        {"overflow_1", case_overflow_1, 0},
        {"overflow_32", case_overflow_32, 0},
        {"overflow_1m", case_overflow_1m, 0},
        {"underflow_1", case_large_underflow_1, 0},
        {"underflow_32", case_large_underflow_32, 0},
        {"underflow_1m", case_underflow_1m, 0},
        {"memalign_underflow", case_large_memalign_underflow, 0},
        {"use_after_free", case_large_use_after_free, 0},
        {"read_after_free", case_large_read_after_free, 0},
        {"realloc_overflow", case_realloc_overflow, 0},
        {"sized_delete_mismatch", case_sized_delete_mismatch, 0},
        {"sized_delete_array_mismatch", case_sized_delete_array_mismatch, 0},
        {"memcpy_overflow", case_memcpy_overflow, 1},
        {"memcpy_overread", case_memcpy_overread, 1},
        {"memmove_overflow", case_memmove_overflow, 1},
        {"memset_overflow", case_memset_overflow, 1},
    };
    int failed = level2_behaviour(with_memcpy) && foreign_faults() ? 0 : 1;
    for (size_t k = 0; k < sizeof large_kinds / sizeof large_kinds[0]; k++) {
      if (large_kinds[k].needs_memcpy && !with_memcpy) continue;
      g_size = 3 * TU_MiB + 8;
      char name[64];
      snprintf(name, sizeof name, "%s_%zu", large_kinds[k].name, g_size);
      if (!run_case(name, large_kinds[k].fn)) failed++;
    }
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
      if (kinds[k].needs_memcpy && !with_memcpy) continue;
      for (size_t i = 0; i < 3; i++) {
        g_size = sizes[i];
        char name[64];
        snprintf(name, sizeof name, "%s_%zu", kinds[k].name, sizes[i]);
        if (!run_case(name, kinds[k].fn)) failed++;
      }
    }
    if (failed) {
      fprintf(stderr, "misuse --level2: %d case(s) failed\n", failed);
      return 1;
    }
    printf("misuse --level2%s: all passed\n", with_memcpy ? " --memcpy" : "");
    return 0;
  }
  int use_extra = argc > 1 && strcmp(argv[1], "--extra") == 0;
  size_t n = use_extra ? sizeof(extra) / sizeof(extra[0]) : sizeof(core) / sizeof(core[0]);
  int failed = 0;
  for (size_t i = 0; i < n; i++) {
    /* Level 2 (LZ_SECURE=2 builds) keeps no free lists in the blocks. */
    if (!use_extra && core[i].fn == case_corrupted_inline && secure_level2()) {
      printf("skip %-28s (hardening level 2: no free lists to corrupt)\n", core[i].name);
      continue;
    }
    if (use_extra ? !run_case(extra[i].name, extra[i].fn) : !run_case(core[i].name, core[i].fn))
      failed++;
  }
  if (failed) {
    fprintf(stderr, "misuse: %d case(s) failed\n", failed);
    return 1;
  }
  printf("misuse%s: all passed\n", use_extra ? " --extra" : "");
  return 0;
}
