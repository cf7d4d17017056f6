/* test_realloc_grow: realloc of a medium block (32 KiB < size <= 1 MiB)
 * to a bigger size grows it in place into the free pages that follow it.
 *
 * In a thread of its own (a fresh heap, whose chunk has free pages after
 * its first medium span): a 40000-byte block grown step by step by a
 * quarter up to LZ_REALLOC_LARGE_MIN keeps its address, its bytes, and
 * the heap's bytes in use are exactly its pages (no freed span left
 * behind, nothing counted twice); grown on by an eighth it moves once,
 * into a large block, which keeps its address up to nearly 2 MiB (and
 * through shrinks while it is 1 MiB or less, down to half its largest
 * request, not of its last), and
 * a shrink of it from past 1 MiB to a medium size below that half copies
 * into a medium block; a block moved back and forth across 1 MiB stays
 * in its large block; a block that
 * doubles past LZ_REALLOC_LARGE_MIN stays a medium block; a medium block
 * cut shorter gives its last pages back (its owner's cut; another
 * thread's keeps it whole); a block whose next pages hold another block moves (bytes kept);
 * a block grown past 1 MiB becomes a large block (bytes kept), and a
 * 900 KiB block moved so leaves none of its pages resident, but one moved
 * right after it keeps them all (for the next growth); a slab
 * block grown past 8 KiB moves into a medium span once and grows there;
 * after every free, bytes in use are back to where they started. The
 * validator passes after each step.
 */
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

/* Bytes in use, where the build counts them (LZ_STATS); else the checks
 * of them pass trivially. */
static size_t in_use(void) {
  lz_stats_t st;
  lz_stats_get(&st);
  return LZ_STATS ? st.in_use : 0;
}
#define EXPECT_IN_USE(n)                                                                      \
  CHECKF(!LZ_STATS || in_use() == (n), "in use %zu, expected %zu", in_use(), (size_t)(n))

static size_t pages_of(size_t size) { return (size + 4095) & ~(size_t)4095; }

/* Pages of [p, p + size) resident (mincore). */
static size_t resident_pages(const void *p, size_t size) {
  unsigned char vec[512];
  size_t n = pages_of(size) / 4096;
  CHECK(n <= sizeof vec && ((uintptr_t)p & 4095) == 0);
  CHECK(mincore((void *)p, n * 4096, vec) == 0);
  size_t r = 0;
  for (size_t i = 0; i < n; i++) r += vec[i] & 1;
  return r;
}

/* realloc of another thread's block (args: the block, the size): kept
 * in place, whole. */
static void *cut_thread(void *arg) {
  void **a = arg;
  CHECK(lz_realloc(a[0], (size_t)(uintptr_t)a[1]) == a[0]);
  return NULL;
}

static void *grow_thread(void *arg) {
  (void)arg;
  size_t base = in_use();
  size_t size = 40000;
  unsigned char *p = lz_malloc(size);
  CHECK(p != NULL);
  tu_pattern_fill(p, size, 7);
  EXPECT_IN_USE(base + pages_of(size));
  unsigned steps = 0;
  while (size + size / 4 <= LZ_REALLOC_LARGE_MIN) {
    size_t next = size + size / 4;
    unsigned char *q = lz_realloc(p, next);
    CHECK(q == p); /* in place: the pages after it were free */
    CHECK(SIZE_MAX == tu_pattern_check(q, size, 7));
    CHECKF(lz_usable_size(q) == pages_of(next), "%zu != %zu", (size_t)(lz_usable_size(q)), (size_t)(pages_of(next)));
    EXPECT_IN_USE(base + pages_of(next)); /* no freed span left, none counted twice */
    tu_pattern_fill(q, next, 7);
    size = next;
    steps++;
  }
  CHECK(steps >= 5);
  lz_heap_validate();
  /* Shrinking keeps it too (down to half its pages). */
  CHECK(lz_realloc(p, size - 4096) == p);
  CHECK(SIZE_MAX == tu_pattern_check(p, size - 4096, 7));
  size -= 4096;

  /* Past LZ_REALLOC_LARGE_MIN it moves once, into a large block, which
   * grows in place from then on, past 1 MiB too (no second copy of up to
   * 1 MiB where a medium block would end); a shrink to a medium size
   * copies into a block of its pages. */
  unsigned char *big = NULL;
  while (size < 2 * LZ_MEDIUM_MAX - 2 * LZ_REALLOC_LARGE_MIN) {
    size_t next = size + size / 8;
    unsigned char *q = lz_realloc(p, next);
    CHECK(q != NULL);
    CHECK(SIZE_MAX == tu_pattern_check(q, size, 7));
    if (big == NULL) {
      CHECK(q != p);
      big = q;
      CHECK(((uintptr_t)big & (LZ_CHUNK_SIZE - 1)) == 0); /* a large block starts its 2 MiB unit */
    }
    CHECKF(q == big, "%zu B moved again (%p, the large block %p)", next, (void *)q, (void *)big);
    if (next <= LZ_MEDIUM_MAX && next - next / 4 > LZ_REALLOC_LARGE_MIN) { /* a shrink keeps it too */
      CHECK(lz_realloc(q, next - next / 4) == q);
      CHECK(SIZE_MAX == tu_pattern_check(q, next - next / 4, 7));
      CHECK(lz_realloc(q, next) == q);
    }
    tu_pattern_fill(q, next, 7);
    p = q;
    size = next;
  }
  lz_heap_validate();
  unsigned char *q = lz_realloc(p, 600000);
  CHECK(q != NULL && q != p);
  CHECK(SIZE_MAX == tu_pattern_check(q, 600000, 7));
  CHECKF(lz_usable_size(q) == pages_of(600000), "usable %zu", (size_t)lz_usable_size(q));
  lz_free(q);
  EXPECT_IN_USE(base);
  /* Shrinks keep such a block down to half its largest request, not of
   * its last: 900,000 B, then 675,000 and 506,250 in place, then 420,000
   * copied into a medium block. */
  p = lz_malloc(250000);
  CHECK(p != NULL);
  size = 250000;
  while (size < 900000) {
    size_t next = size + size / 8 < 900000 ? size + size / 8 : 900000;
    p = lz_realloc(p, next);
    CHECK(p != NULL);
    size = next;
  }
  tu_pattern_fill(p, size, 3);
  CHECK(lz_realloc(p, 675000) == p);
  CHECK(lz_realloc(p, 506250) == p);
  q = lz_realloc(p, 420000);
  CHECK(q != NULL && q != p);
  CHECK(SIZE_MAX == tu_pattern_check(q, 420000, 3));
  CHECKF(lz_usable_size(q) == pages_of(420000), "usable %zu", (size_t)lz_usable_size(q));
  lz_free(q);
  EXPECT_IN_USE(base);
  /* A block that realloc moves back and forth across 1 MiB moves into a
   * large block once and stays there: a shrink to at least half its
   * largest request keeps it in place, also for a block asked for more
   * than 1 MiB (each crossing copied 1 MiB both ways). */
  p = lz_malloc(LZ_MEDIUM_MAX);
  CHECK(p != NULL);
  tu_pattern_fill(p, LZ_MEDIUM_MAX, 9);
  big = lz_realloc(p, LZ_MEDIUM_MAX + 4096);
  CHECK(big != NULL && big != p);
  for (int i = 0; i < 10; i++) {
    CHECKF(lz_realloc(big, LZ_MEDIUM_MAX) == big, "crossing %d: the shrink to 1 MiB moved the block", i);
    CHECKF(lz_realloc(big, LZ_MEDIUM_MAX + 4096) == big, "crossing %d: the growth past 1 MiB moved it", i);
  }
  CHECK(SIZE_MAX == tu_pattern_check(big, LZ_MEDIUM_MAX, 9));
  lz_free(big);
  EXPECT_IN_USE(base);
  /* A block that doubles past LZ_REALLOC_LARGE_MIN stays a medium block
   * (a block of its pages, not a 2 MiB range). */
  p = lz_malloc(200000);
  CHECK(p != NULL);
  tu_pattern_fill(p, 200000, 5);
  q = lz_realloc(p, 400000);
  CHECK(q != NULL);
  CHECK(SIZE_MAX == tu_pattern_check(q, 200000, 5));
  CHECKF(lz_usable_size(q) == pages_of(400000), "usable %zu", (size_t)lz_usable_size(q));
  lz_free(q);
  EXPECT_IN_USE(base);

  /* A shrink gives the block's last pages back to its chunk, the block
   * in place (medium.c, medium_shrink): 600,000 B filled and cut to
   * 400,000 keeps its address and bytes, counts 98 pages, not 147; the
   * next block of 47 pages takes the 49 freed ones; a cut within the last
   * page changes nothing, nor does one of less than an eighth of its
   * pages; another thread's cut keeps the block whole (the
   * span is its owner's to change). */
  p = lz_malloc(600000);
  CHECK(p != NULL);
  tu_pattern_fill(p, 600000, 13);
  CHECK(lz_realloc(p, 400000) == p);
  CHECK(SIZE_MAX == tu_pattern_check(p, 400000, 13));
  CHECKF(lz_usable_size(p) == pages_of(400000), "cut to 400000: usable %zu", (size_t)lz_usable_size(p));
  EXPECT_IN_USE(base + pages_of(400000));
  lz_heap_validate();
  q = lz_malloc(190000);
  CHECKF(q == p + pages_of(400000), "the freed tail %p not reused (%p)", (void *)(p + pages_of(400000)), (void *)q);
  CHECK(lz_realloc(p, 400000 - 100) == p && lz_usable_size(p) == pages_of(400000));
  lz_free(q);
  EXPECT_IN_USE(base + pages_of(400000));
  pthread_t t;
  void *cut_args[2] = {p, (void *)(uintptr_t)300000};
  CHECK(pthread_create(&t, NULL, cut_thread, cut_args) == 0 && pthread_join(t, NULL) == 0);
  CHECKF(lz_usable_size(p) == pages_of(400000), "cut by another thread: usable %zu", (size_t)lz_usable_size(p));
  CHECK(SIZE_MAX == tu_pattern_check(p, 300000, 13));
  lz_free(p);
  EXPECT_IN_USE(base);
  /* Once grown in place, a cut of less than an eighth of its pages keeps
   * them (hysteresis: a size that goes back and forth by a page does not
   * give the page back and take it again each time); a cut of an eighth
   * gives them back, as any cut of a block never grown does. */
  p = lz_malloc(100000);
  CHECK(p != NULL);
  CHECK(lz_realloc(p, 100000 - 4096) == p && lz_usable_size(p) == pages_of(100000) - 4096); /* not grown */
  q = lz_realloc(p, 120000);
  CHECK(q == p && lz_usable_size(q) == pages_of(120000)); /* 30 pages */
  p = q;
  tu_pattern_fill(p, 120000, 17);
  CHECK(lz_realloc(p, pages_of(120000) - 3 * 4096) == p);
  CHECKF(lz_usable_size(p) == pages_of(120000), "grown block cut by 3 of 30 pages: usable %zu (its pages given back)",
         (size_t)lz_usable_size(p));
  CHECK(lz_realloc(p, 120000) == p);
  CHECK(lz_realloc(p, pages_of(120000) - 4 * 4096) == p);
  CHECKF(lz_usable_size(p) == pages_of(120000) - 4 * 4096, "grown block cut by 4 of 30 pages: usable %zu",
         (size_t)lz_usable_size(p));
  CHECK(SIZE_MAX == tu_pattern_check(p, pages_of(120000) - 4 * 4096, 17));
  lz_free(p);
  EXPECT_IN_USE(base);
  lz_heap_validate();

  /* A block right after it: the pages are not free, the block moves. */
  unsigned char *a = lz_malloc(100000);
  unsigned char *b = lz_malloc(100000);
  CHECK(a != NULL && b != NULL);
  CHECK(b == a + pages_of(100000)); /* first fit in a fresh chunk */
  tu_pattern_fill(a, 100000, 9);
  unsigned char *c = lz_realloc(a, 150000);
  CHECK(c != NULL && c != a);
  CHECK(SIZE_MAX == tu_pattern_check(c, 100000, 9));
  EXPECT_IN_USE(base + pages_of(150000) + pages_of(100000));
  lz_heap_validate();

  /* Past 1 MiB: a large block, bytes kept. */
  tu_pattern_fill(c, 150000, 11);
  unsigned char *d = lz_realloc(c, 3 * LZ_MEDIUM_MAX);
  CHECK(d != NULL);
  CHECK(SIZE_MAX == tu_pattern_check(d, 150000, 11));
  lz_free(d);
  lz_free(b);
  EXPECT_IN_USE(base);
  lz_heap_validate();

  /* A medium block moved past 1 MiB leaves none of its pages resident:
   * the buffer grew past the medium sizes, its old span is not kept (a
   * cache of it held 900 KiB more than glibc at the end of such growth);
   * unless the heap moved another within the purge delay: then the span
   * stays for the next growth, which would fault its pages in again. The
   * delay is 500 ms here (core.cmake), so that the second move comes
   * within it even under ThreadSanitizer (about 36 ms a move of 900 KiB
   * on the 2-core VM; the default 10 ms made this check fail there). The
   * first check waits out any move before it (the heap's clock runs while
   * the thread sleeps). */
  long delay = opt_get(OPT_PURGE_DELAY);
  CHECKF(delay >= 100, "purge delay %ld ms: too short for two moves of 900 KiB under a sanitizer", delay);
  usleep((useconds_t)(delay + 50) * 1000);
  size_t msize = 900 * 1024;
  unsigned char *m[2], *l[2];
  size_t res[2];
  for (int k = 0; k < 2; k++) { /* both filled first: the moves follow each other at once, even under TSan */
    m[k] = lz_malloc(msize);
    CHECK(m[k] != NULL);
    tu_pattern_fill(m[k], msize, 17);
    CHECKF(resident_pages(m[k], msize) == pages_of(msize) / 4096, "%zu of %zu pages resident after the fill",
           resident_pages(m[k], msize), pages_of(msize) / 4096);
  }
  for (int k = 0; k < 2; k++) {
    l[k] = lz_realloc(m[k], LZ_MEDIUM_MAX + 4096);
    CHECK(l[k] != NULL && l[k] != m[k]);
    res[k] = resident_pages(m[k], msize);
  }
  for (int k = 0; k < 2; k++) {
    CHECK(SIZE_MAX == tu_pattern_check(l[k], msize, 17));
    size_t want = k == 0 ? 0 : pages_of(msize) / 4096; /* the second move follows the first at once */
    CHECKF(res[k] == want, "move %d: %zu of the moved block's %zu pages resident, want %zu", k + 1, res[k],
           pages_of(msize) / 4096, want);
  }
  lz_heap_validate();
  lz_free(l[0]);
  lz_free(l[1]);
  EXPECT_IN_USE(base);

  /* A slab block grown by an eighth at a time: past 8 KiB it moves once
   * into a medium span of whole pages (not from class to class, each
   * keeping the freed block), and stays there up to 64 KiB. */
  size = 3000;
  p = lz_malloc(size);
  CHECK(p != NULL);
  tu_pattern_fill(p, size, 13);
  unsigned char *moved = NULL;
  while (size < 65536) {
    size_t next = size + size / 8;
    unsigned char *q = lz_realloc(p, next);
    CHECK(q != NULL);
    CHECK(SIZE_MAX == tu_pattern_check(q, size, 13));
    if (next > 2 * 4096) {
      if (moved == NULL) moved = q;
      CHECKF(q == moved, "%zu B moved again (%p, first %p)", next, (void *)q, (void *)moved);
      CHECKF(lz_usable_size(q) == pages_of(next), "%zu B: usable %zu", next, (size_t)lz_usable_size(q));
    }
    tu_pattern_fill(q, next, 13);
    p = q;
    size = next;
  }
  lz_heap_validate();
  lz_free(p);
  EXPECT_IN_USE(base);
  lz_heap_validate();
  return NULL;
}

int main(void) {
#if LZ_HEAPS > 0 || LZ_SECURE >= 2
  return 77; /* shared heaps' in_use is not the thread's; level 2 always copies */
#endif
  pthread_t t;
  CHECK(pthread_create(&t, NULL, grow_thread, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  return 0;
}
