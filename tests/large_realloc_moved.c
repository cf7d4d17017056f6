/* large_realloc_moved: a large block that realloc moves (its pages go to a
 * fresh mapping by mremap, since the pages after it are taken) leaves its
 * old addresses free at the mremap; a block another thread maps there at
 * once is live and stays so: lz_usable_size and lz_free accept it (the
 * moving realloc once cleared the check word of the descriptor of its old
 * address after the move, which by then was the new block's, and
 * stress_mt died with "malloc_usable_size(): invalid pointer" on a
 * 2 MiB-aligned address).
 *
 * The test's own mremap (it links the prefixed library statically, so
 * os.c's calls reach it) holds the reallocating thread just after its move
 * while a second thread allocates a large block, which the test's mmap
 * places at the freed address (a hint); not in sanitizer builds, whose
 * runtimes intercept these calls themselves. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lzmalloc.h"

#include "testutil.h"

#define MiB ((size_t)1 << 20)

static _Atomic(uintptr_t) moved_from; /* the block's old base, once moved */
static _Thread_local uintptr_t steer_to; /* where this thread's 4 MiB mmaps go */
static _Atomic(int) stop_in_mremap, other_ready, other_done, main_done;
static void *other_block;

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (addr == NULL && steer_to != 0 && len == 4 * MiB && (flags & MAP_ANONYMOUS))
    addr = (void *)steer_to; /* a hint: the kernel takes it when it is free */
  return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...) {
  void *to = NULL;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    to = va_arg(ap, void *);
    va_end(ap);
  }
  void *r = (void *)syscall(SYS_mremap, old, old_len, new_len, flags, to);
  if (r != MAP_FAILED && (flags & MREMAP_FIXED) && atomic_exchange(&stop_in_mremap, 0)) {
    /* The old pages are gone: another thread maps a block there now. */
    atomic_store(&moved_from, (uintptr_t)old);
    for (int i = 0; i < 60000 && !atomic_load(&other_done); i++) usleep(1000);
  }
  return r;
}

static void *other(void *arg) {
  (void)arg;
  lz_free(lz_malloc(100)); /* its heap made now, not in the freed range */
  atomic_store(&other_ready, 1);
  while (atomic_load(&moved_from) == 0)
    if (atomic_load(&main_done)) return NULL; /* no move */
    else usleep(1000);
  steer_to = atomic_load(&moved_from);
  other_block = lz_malloc(3 * MiB);
  atomic_store(&other_done, 1);
  return NULL;
}

int main(void) {
  lz_free(lz_malloc(100));
  char *p = lz_malloc(3 * MiB); /* a range of 4 MiB */
  CHECK(p != NULL);
  /* Its range's base (level 2: a guard page before the block). */
  char *base = (char *)((uintptr_t)p & ~(2 * MiB - 1));
  memset(p, 7, 3 * MiB);
  lz_trim(0); /* no cached range to grow into */
  /* The pages after the range are taken: realloc must move it. */
  void *after = (void *)syscall(SYS_mmap, base + 4 * MiB, 2 * MiB, PROT_NONE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (after != base + 4 * MiB) after = NULL; /* something of the process's is there */

  pthread_t t;
  CHECK(pthread_create(&t, NULL, other, NULL) == 0);
  while (!atomic_load(&other_ready)) usleep(1000); /* its heap made (however long a loaded machine takes) */
  atomic_store(&stop_in_mremap, 1);
  char *q = lz_realloc(p, 5 * MiB);
  atomic_store(&main_done, 1);
  CHECK(q != NULL);
  CHECK(pthread_join(t, NULL) == 0);
  if (atomic_load(&moved_from) != (uintptr_t)base) {
    printf("SKIP: realloc did not move the block\n");
    return 77;
  }
  CHECK(q != p);
  for (size_t i = 0; i < 3 * MiB; i += 4096) CHECK(q[i] == 7);
  char *o = other_block;
  CHECK(o != NULL);
  if (((uintptr_t)o & ~(2 * MiB - 1)) != (uintptr_t)base) {
    printf("SKIP: the kernel did not place the other block at the freed address %p (%p)\n", (void *)base, (void *)o);
    return 77;
  }
  /* The other thread's block is live wherever it lies. */
  CHECKF(lz_usable_size(o) >= 3 * MiB, "usable %zu", lz_usable_size(o));
  memset(o, 1, 3 * MiB);
  lz_free(o);
  CHECK(lz_usable_size(q) >= 5 * MiB);
  lz_free(q);
  if (after != NULL) syscall(SYS_munmap, after, 2 * MiB);
  printf("large_realloc_moved: ok\n");
  return 0;
}
