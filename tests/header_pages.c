/* header_pages: the span descriptors of a heap's spans lie together at the
 * front of the chunk header, whatever pages the spans hold (API).
 *
 *   touch   a process that makes 40 spans spread over 400 pages of its
 *           first chunk (small blocks of 8 classes, 32 medium blocks of
 *           40 KiB that it never writes) has one page of the chunk's
 *           9-page header resident (mincore): fields, page map and the
 *           first 42 descriptors share it; with a descriptor per first
 *           page the spans' descriptors lay on 6 header pages;
 *   fork    a fork child that frees one block of each of those spans and
 *           allocates a block of each small class again has copied one
 *           header page (/proc/self/pagemap: pages mapped by this process
 *           alone, bit 56);
 *   heap    the process's first allocation maps its chunk (2 MiB) and
 *           nothing more: the first heap is static, in the library's hot
 *           .data page (no 64 KiB meta region, and its page fault).
 * Runs first thing in main: the process's first heap and first chunk, so
 * no other span lies in it. Hardening level 2 keeps its state elsewhere
 * and guards the header (skipped; so is the shared-heaps configuration,
 * built at level 2).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define CHUNK ((uintptr_t)2 << 20)
#define PAGE ((uintptr_t)4096)
#define HEADER_PAGES 9
#define NSMALL 8
#define NMEDIUM 32

static const size_t k_small[NSMALL] = {16, 32, 64, 128, 256, 512, 1024, 2048};

/* Resident pages of the chunk header holding p (mincore). */
static int header_resident(const void *p) {
  unsigned char vec[HEADER_PAGES];
  void *base = (void *)((uintptr_t)p & ~(CHUNK - 1));
  CHECK(mincore(base, HEADER_PAGES * PAGE, vec) == 0);
  int n = 0;
  for (int i = 0; i < HEADER_PAGES; i++) n += vec[i] & 1;
  return n;
}

/* Header pages of the chunk holding p that this process alone maps
 * (/proc/self/pagemap bit 56): in a fork child, the pages it copied. */
static int header_exclusive(const void *p) {
  uintptr_t base = (uintptr_t)p & ~(CHUNK - 1);
  uint64_t e[HEADER_PAGES];
  int fd = open("/proc/self/pagemap", O_RDONLY);
  if (fd < 0) return -1;
  ssize_t r = pread(fd, e, sizeof e, (off_t)(base / PAGE * sizeof(uint64_t)));
  close(fd);
  if (r != (ssize_t)sizeof e) return -1;
  int n = 0;
  for (int i = 0; i < HEADER_PAGES; i++) n += (int)((e[i] >> 63) & (e[i] >> 56) & 1);
  return n;
}

/* Bytes of every mapping of the process that can hold data
 * (/proc/self/maps, read without allocating): not address space reserved
 * inaccessible (---p), as a heap's region (src/chunk.c, "Regions"). */
static char maps_buf[1 << 18];
static size_t mapped_bytes(void) {
  int fd = open("/proc/self/maps", O_RDONLY);
  CHECK(fd >= 0);
  size_t n = 0;
  ssize_t r;
  while ((r = read(fd, maps_buf + n, sizeof maps_buf - 1 - n)) > 0) n += (size_t)r;
  close(fd);
  CHECK(n < sizeof maps_buf - 1);
  maps_buf[n] = 0;
  size_t total = 0;
  for (char *line = maps_buf; *line != 0;) {
    char *end = NULL;
    unsigned long lo = strtoul(line, &end, 16), hi = strtoul(end + 1, &end, 16);
    if (strncmp(end, " ---p", 5) != 0) total += hi - lo;
    char *nl = strchr(line, '\n');
    if (nl == NULL) break;
    line = nl + 1;
  }
  return total;
}

static void *small[NSMALL][4];
static void *medium[NMEDIUM];

int main(void) {
  size_t before = mapped_bytes();
  void *p = malloc(1);
  size_t grown = mapped_bytes() - before;
  int level2 = malloc_usable_size(p) == 1; /* level 2 reports the requested size */
  free(p);
  if (level2) {
    printf("header_pages: skipped at hardening level 2\n");
    return 0;
  }
  CHECKF(grown == CHUNK, "the first allocation mapped %zu KiB (want its chunk's %zu)", grown / 1024,
         (size_t)(CHUNK / 1024));
  for (int c = 0; c < NSMALL; c++)
    for (int k = 0; k < 4; k++) {
      small[c][k] = malloc(k_small[c]);
      CHECK(small[c][k] != NULL);
      memset(small[c][k], c, k_small[c]);
    }
  for (int i = 0; i < NMEDIUM; i++) {
    medium[i] = malloc(40 * 1024); /* a span of 10 pages each, never written */
    CHECK(medium[i] != NULL);
  }
  uintptr_t chunk = (uintptr_t)small[0][0] & ~(CHUNK - 1);
  int same = 0;
  for (int i = 0; i < NMEDIUM; i++) same += ((uintptr_t)medium[i] & ~(CHUNK - 1)) == chunk;
  CHECKF(same == NMEDIUM, "only %d of %d medium blocks in the first chunk", same, NMEDIUM);
  CHECKF((uintptr_t)medium[NMEDIUM - 1] - chunk >= 300 * PAGE, "the spans end at page %zu",
         (size_t)(((uintptr_t)medium[NMEDIUM - 1] - chunk) / PAGE));
  int resident = header_resident(small[0][0]);
  CHECKF(resident == 1, "%d + %d spans: %d header pages resident (want 1)", NSMALL, NMEDIUM, resident);

  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    for (int c = 0; c < NSMALL; c++) free(small[c][0]);
    for (int i = 0; i < NMEDIUM; i++) free(medium[i]);
    for (int c = 0; c < NSMALL; c++) {
      small[c][0] = malloc(k_small[c]);
      if (small[c][0] == NULL) _exit(2);
    }
    int copied = header_exclusive(small[0][1]);
    if (copied < 0) _exit(77); /* no pagemap: nothing to measure */
    if (copied != 1) {
      fprintf(stderr, "fork: the child copied %d header pages (want 1)\n", copied);
      _exit(1);
    }
    _exit(0);
  }
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECKF(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 77), "fork child status %#x", st);
  for (int i = 0; i < NMEDIUM; i++) free(medium[i]);
  for (int c = 0; c < NSMALL; c++)
    for (int k = 0; k < 4; k++) free(small[c][k]);
  printf("header_pages: first allocation mapped its chunk alone; %d spans, 1 header page resident%s\n", NSMALL + NMEDIUM,
         WEXITSTATUS(st) == 0 ? ", 1 copied by a fork child" : " (no pagemap: fork part not measured)");
  return 0;
}
