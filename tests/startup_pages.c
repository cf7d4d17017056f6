/* startup_pages: a process that allocates a little touches few pages
 * (API): its first blocks up to 1 KiB share start-up's packed span
 * (src/pack.c), larger ones a slab per power of two, not one per class.
 *
 *   classes  the first blocks of the 20 classes up to 1 KiB lie on at most
 *            3 pages (6,400 bytes after the span's 2 KiB map), where one
 *            page per power of two took 7 and one per class 20;
 *   usable   meanwhile a block's usable size is its class's;
 *   reuse    a packed block freed is handed out again, by the slow
 *            paths: the span hands out 512 blocks at most;
 *   bounded  start-up ends once its spans reach 64 pages (256 KiB) or
 *            after 512 slow-path entries: within 300 blocks of 1 KiB,
 *            malloc(1100) has its own class again (2048 B before);
 *   packs    a fork child's 200 blocks of 16 to 952 B (97,600 bytes, every
 *            size class up to 1 KiB) lie on at most 30 pages: start-up's
 *            packed spans take them all, a new span each time one is
 *            full (28 pages: 24 of blocks, the spans' maps, the parent's
 *            blocks in the first); with one packed span and the rest
 *            rounded up to the start-up slabs' powers of two they lay on 43;
 *            then, a block of the open span freed (its class's list) while
 *            the closed ones hold blocks, the heap's invariants hold
 *            (lz_heap_validate);
 *   carve    blocks of a page or more are carved one at a time: three
 *            malloc(8192) never written leave the page of the next block
 *            of their slab untouched (mincore), where carving ahead wrote
 *            the link of every block carved.
 * Runs first thing in main: the process's first heap is the one in
 * start-up. Hardening level 2 has no start-up (skipped; so is the
 * shared-heaps configuration, built at level 2).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "lzmalloc.h"
#include "testutil.h"

/* Whether the page holding p is resident (mincore). */
static int resident(const void *p) {
  unsigned char v = 0;
  CHECK(mincore((void *)((uintptr_t)p & ~(uintptr_t)4095), 4096, &v) == 0);
  return v & 1;
}

/* Blocks of 8 KiB: the first slab of the class, on pages of the process's
 * first chunk that no span used before (first thing in main). */
static void check_carve(void) {
  enum { BIG = 8192 };
  char *big[3];
  for (int i = 0; i < 3; i++) {
    big[i] = malloc(BIG);
    CHECK(big[i] != NULL);
  }
  for (int i = 1; i < 3; i++)
    CHECKF(big[i] == big[i - 1] + BIG, "malloc(%d) #%d at %p, not right after %p", BIG, i, (void *)big[i],
           (void *)big[i - 1]);
  CHECK(resident(big[2])); /* malloc cleared its link: mincore sees it */
  CHECKF(!resident(big[2] + BIG), "three malloc(%d) touched the page of the next block", BIG);
  for (int i = 0; i < 3; i++) free(big[i]);
}

/* A packed block takes the slow paths, so the span hands out LZ_PACK_USES
 * (512) blocks at most: in a fork child (the parent's span stays open),
 * after 600 malloc(48)+free pairs malloc(48) comes from a power-of-two
 * slab (usable 64), not from the packed span's list. */
static void check_uses(void) {
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    for (int i = 0; i < 600; i++) {
      void *q = malloc(48);
      if (q == NULL) _exit(2);
      free(q);
    }
    _exit(malloc_usable_size(malloc(48)) == 64 ? 0 : 1);
  }
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "after 600 malloc(48)+free pairs the packed span still serves (%d)", st);
}

/* In a fork child (the parent's start-up goes on as it was): the pages
 * that 200 blocks of 16 to 952 B kept live lie on, counted block by block
 * (first to last byte). */
static void check_packs(void) {
  enum { N = 200, MAXPAGES = 30 };
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    static uintptr_t seen[N * 2];
    size_t distinct = 0;
    for (int i = 0; i < N; i++) {
      size_t size = 16 + (size_t)(i % 40) * 24;
      char *q = malloc(size);
      if (q == NULL) _exit(255);
      memset(q, 1, size);
      for (uintptr_t pg = (uintptr_t)q >> 12; pg <= ((uintptr_t)q + size - 1) >> 12; pg++) {
        size_t j = 0;
        while (j < distinct && seen[j] != pg) j++;
        if (j == distinct && distinct < N * 2) seen[distinct++] = pg;
      }
      if (i == N - 1) {
        /* The open span lists a freed block while closed ones hold
         * blocks: the heap's invariants (aborts if broken). */
        free(q);
        if (lz_heap_validate() == 0) _exit(253);
      }
    }
    _exit(distinct > 254 ? 254 : (int)distinct);
  }
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) != 255 && WEXITSTATUS(st) != 253,
         "the child's malloc or lz_heap_validate failed (status %d)", st);
  CHECKF(WEXITSTATUS(st) <= MAXPAGES, "200 blocks of 16 to 952 B in start-up lie on %d pages (at most %d)",
         WEXITSTATUS(st), MAXPAGES);
  printf("startup_pages: 200 blocks of 16 to 952 B on %d pages\n", WEXITSTATUS(st));
}

static const size_t k_class[] = {16, 32, 48, 64, 80, 96, 112, 128, 160, 192,
                                 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024};
#define NCLASS (sizeof k_class / sizeof k_class[0])

static void *keep[400];

int main(void) {
  void *p = malloc(1);
  int level2 = malloc_usable_size(p) == 1; /* level 2 reports the requested size */
  free(p);
  if (level2) {
    printf("startup_pages: skipped at hardening level 2\n");
    return 0;
  }
  check_carve();
  void *b[NCLASS];
  uintptr_t pages[NCLASS];
  size_t distinct = 0;
  for (size_t i = 0; i < NCLASS; i++) {
    b[i] = malloc(k_class[i]);
    CHECK(b[i] != NULL);
    memset(b[i], 0x5a, k_class[i]);
    uintptr_t pg = (uintptr_t)b[i] >> 12;
    size_t j = 0;
    while (j < distinct && pages[j] != pg) j++;
    if (j == distinct) pages[distinct++] = pg;
  }
  CHECKF(distinct <= 3, "the first blocks of %zu classes lie on %zu pages (at most 3)", NCLASS, distinct);
  for (size_t i = 0; i < NCLASS; i++)
    CHECKF(malloc_usable_size(b[i]) == k_class[i], "start-up: malloc(%zu) has usable size %zu, not %zu", k_class[i],
           malloc_usable_size(b[i]), k_class[i]);
  void *r = b[5];
  free(r);
  b[5] = malloc(k_class[5]);
  CHECKF(b[5] == r, "a packed block freed (%p) is not handed out again (%p)", r, b[5]);
  check_uses();
  check_packs();
  /* Start-up (its packed spans, its power-of-two slabs) ends: malloc(1100)
   * comes from the 2048 B class meanwhile, from its own class after. */
  size_t n = 0;
  for (; n < sizeof keep / sizeof keep[0]; n++) {
    p = malloc(1100);
    CHECK(p != NULL);
    size_t us = malloc_usable_size(p);
    free(p);
    if (us < 2048) break;
    keep[n] = malloc(1024);
    CHECK(keep[n] != NULL);
    memset(keep[n], 1, 1024);
  }
  CHECKF(n <= 300, "start-up still on after %zu blocks of 1 KiB", n);
  for (size_t i = 0; i < n; i++) free(keep[i]);
  for (size_t i = 0; i < NCLASS; i++) free(b[i]);
  printf("startup_pages: %zu classes on %zu pages; start-up over after %zu blocks of 1 KiB\n", NCLASS, distinct, n);
  return 0;
}
