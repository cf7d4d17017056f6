/* large_remap: a program may remap the pages around its own large block
 * (as glibc's tst-free-errno does): free, realloc and malloc_usable_size of the
 * block must not care (the allocator keeps no metadata in or next to the
 * user's pages).
 *
 * For blocks from malloc (16 MiB - 256 bytes, as glibc's tst-free-errno),
 * calloc, aligned_alloc (64 KiB and 4 MiB) and one reused from the cache:
 *   1. fill the block's first and last pages with a pattern;
 *   2. map fresh zero pages over [page before the block, end of its last
 *      page), and over the page after it too (its contents saved and put
 *      back, since that page belongs to someone else), then copy back only
 *      the block's own first and last pages;
 *   3. malloc_usable_size >= size, realloc to twice the size keeps the
 *      edges, free.
 * Pages that belong to a file, a stack or a non-writable mapping are left
 * alone (only unmapped pages and anonymous read-write ones are touched), and
 * no other block of ours is live meanwhile. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "lzmalloc.h"
#include "testutil.h"

#define PAGE ((uintptr_t)4096)
#define MiB ((size_t)1 << 20)

static char maps[1 << 20];
static unsigned char save_first[PAGE], save_last[PAGE], save_after[PAGE];

/* 0: nothing mapped at page a; 1: anonymous private read-write; 2: other. */
static int page_kind(uintptr_t a) {
  int fd = open("/proc/self/maps", O_RDONLY);
  CHECK(fd >= 0);
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, maps + n, sizeof maps - 1 - n);
    if (r <= 0) break;
    n += (size_t)r;
  }
  close(fd);
  maps[n] = 0;
  for (char *line = maps; *line;) {
    char *end = strchr(line, '\n');
    if (end) *end = 0;
    unsigned long lo, hi, off, inode;
    char perms[8], dev[16];
    int pos = 0;
    if (sscanf(line, "%lx-%lx %7s %lx %15s %lu %n", &lo, &hi, perms, &off, dev, &inode, &pos) >= 6 &&
        a >= lo && a < hi) {
      const char *name = line + pos;
      return (strcmp(perms, "rw-p") == 0 && inode == 0 && *name == 0) ? 1 : 2;
    }
    if (!end) break;
    line = end + 1;
  }
  return 0;
}

static void remap_around(unsigned char *p, size_t size) {
  uintptr_t first = (uintptr_t)p & ~(PAGE - 1);
  uintptr_t last = ((uintptr_t)p + size - 1) & ~(PAGE - 1);
  uintptr_t lo = first - PAGE, hi = last + PAGE;
  int before = page_kind(lo), after = page_kind(hi);
  if (before == 2) lo = first;
  if (after != 2) hi += PAGE;
  memcpy(save_first, (void *)first, PAGE);
  memcpy(save_last, (void *)last, PAGE);
  if (after == 1) memcpy(save_after, (void *)(last + PAGE), PAGE);
  void *m = mmap((void *)lo, hi - lo, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  CHECKF(m == (void *)lo, "mmap over [%#lx, %#lx): %s", (unsigned long)lo, (unsigned long)hi, strerror(errno));
  memcpy((void *)first, save_first, PAGE);
  memcpy((void *)last, save_last, PAGE);
  if (after == 1) memcpy((void *)(last + PAGE), save_after, PAGE);
}

static void fill_edges(unsigned char *p, size_t size, uint64_t seed) {
  size_t head = PAGE - ((uintptr_t)p & (PAGE - 1));
  tu_pattern_fill_range(p, 0, head < size ? head : size, seed);
  size_t tail = ((uintptr_t)p + size) & (PAGE - 1);
  if (tail == 0) tail = PAGE;
  tu_pattern_fill_range(p, size > tail ? size - tail : 0, size, seed);
}

static void check_edges(unsigned char *p, size_t size, uint64_t seed) {
  size_t head = PAGE - ((uintptr_t)p & (PAGE - 1));
  size_t bad = tu_pattern_check_range(p, 0, head < size ? head : size, seed);
  CHECKF(bad == SIZE_MAX, "block %p: first page differs at %zu", (void *)p, bad);
  size_t tail = ((uintptr_t)p + size) & (PAGE - 1);
  if (tail == 0) tail = PAGE;
  bad = tu_pattern_check_range(p, size > tail ? size - tail : 0, size, seed);
  CHECKF(bad == SIZE_MAX, "block %p: last page differs at %zu", (void *)p, bad);
}

/* Remaps around p, then uses it. */
static void exercise(unsigned char *p, size_t size, uint64_t seed) {
  CHECK(p != NULL);
  fill_edges(p, size, seed);
  remap_around(p, size);
  CHECKF(lz_usable_size(p) >= size, "usable size %zu < %zu", lz_usable_size(p), size);
  check_edges(p, size, seed);
  unsigned char *q = lz_realloc(p, 2 * size);
  CHECK(q != NULL);
  CHECK(((uintptr_t)q & (PAGE - 1)) == ((uintptr_t)p & (PAGE - 1)));
  check_edges(q, size, seed); /* the pages the remap left with our data */
  CHECK(lz_usable_size(q) >= 2 * size);
  lz_free(q);
}

int main(void) {
  {
    size_t n = 16 * MiB - 256;
    exercise(lz_malloc(n), n, 1);
    n = 5 * MiB + 100;
    unsigned char *c = lz_calloc(1, n);
    CHECK(c != NULL && tu_all_zero(c, n));
    exercise(c, n, 2);
    n = 3 * MiB + 4000;
    exercise(lz_aligned_alloc(64 * 1024, n), n, 3);
    n = 6 * MiB;
    exercise(lz_aligned_alloc(4 * MiB, n), n, 4);
    /* A block made from a cached range. */
    lz_free(lz_malloc(12 * MiB));
    n = 7 * MiB + 12345;
    exercise(lz_malloc(n), n, 5);
    /* Realloc shrinking, after the remap. */
    n = 9 * MiB;
    unsigned char *s = lz_malloc(n);
    CHECK(s != NULL);
    remap_around(s, n);
    fill_edges(s, 4 * MiB, 6);
    s = lz_realloc(s, 4 * MiB);
    CHECK(s != NULL && lz_usable_size(s) >= 4 * MiB);
    check_edges(s, 4 * MiB, 6);
    lz_free(s);
  }
  lz_stats_t st;
  lz_stats_get(&st);
  CHECKF(st.large_in_use == 0, "large_in_use %zu after freeing everything", st.large_in_use);
  printf("large_remap: ok\n");
  return 0;
}
