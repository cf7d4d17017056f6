/* test_purge: pages given back inside live slabs (holes) and the decay of
 * free pages.
 *
 *   test_purge holes     one thread allocates blocks of 256 B, 2 KiB and
 *                        8 KiB, frees all but a few, and calls malloc_trim:
 *                        pages that hold no live block are no longer
 *                        resident (mincore), the live blocks are intact,
 *                        the validator passes; a slab with holes that
 *                        becomes the first of its queue has them filled;
 *                        calloc of the same blocks again gives zeroed
 *                        memory in the same slabs.
 *   test_purge janitor   the same burst in a thread that then makes no
 *                        call: the janitor punches the idle pages (polled
 *                        with mincore; generous timeout).
 *   test_purge decay     a chunk's free dirty pages follow the smoothstep
 *                        schedule (purge_heap driven with synthetic times):
 *                        none before purge_at, half at the middle of the
 *                        window, all at its end, highest pages first; a
 *                        chunk allocated from meanwhile is re-armed.
 *   test_purge decay_gaps  the same with the free pages in runs between
 *                        live spans, across the bitmaps' words: whole runs
 *                        from the top, live pages untouched.
 *   test_purge refault   pages taken back after a decay gave them away
 *                        double the heap's purge delay; a decay nobody
 *                        answers halves it again (synthetic times).
 *   test_purge holes_refault  holes filled again after a look punched
 *                        them double the heap's holes delay; a look that
 *                        no fill answered halves it again (synthetic
 *                        times, no janitor).
 *   test_purge orphan_holes  an orphan's slabs get no holes before it is
 *                        idle past its delay (it is expected back), even
 *                        with their look due; once idle they do (no
 *                        janitor).
 *   test_purge orphan    an orphan collected whole and then adopted waits
 *                        longer than that next time; one adopted at once
 *                        waits less (real time, no janitor).
 *   test_purge empty_keep  a heap's kept empty chunks go back on the
 *                        smoothstep schedule of their idle time, counted
 *                        from the allowance they had when they were left
 *                        (rounded up, not compounded per look): all kept
 *                        for the first hundredth of the window
 *                        (LZ_EMPTY_KEEP_MS), all back at its end
 *                        (synthetic times, no janitor).
 *   test_purge large_tick  kept empty chunks left unused past
 *                        LZ_EMPTY_KEEP_MS go back at the next large
 *                        allocation, with the slow-path count's own tick
 *                        not due (real time, no janitor).
 *   test_purge clock     the heap's clock leaves out the time its thread
 *                        waited for a CPU: pinned to one CPU beside a
 *                        busy thread, the thread spins for 300 ms; its
 *                        heap's lag grows by its runqueue wait (schedstat),
 *                        to the millisecond, and not at all while the heap
 *                        has nothing to purge, nor at a tick within
 *                        LZ_FREED_DUE_MS of pages being freed.
 *   test_purge orphan_stages  an orphan idle past its delay keeps its
 *                        pages (their decay is not due; counted as idle),
 *                        and is collected whole only a second later
 *                        (times set back, no janitor).
 *   test_purge orphan_busy  a thread that starts while the only orphan is
 *                        held for a moment (BUSY: a collector) waits for it
 *                        and adopts it: no new heap.
 *   test_purge spare_tick  a thread that empties and fills slabs of 4 KiB
 *                        blocks round after round keeps an emptied slab as
 *                        its class's spare; once the class takes no slab
 *                        for a while, the owner's own purge ticks (driven
 *                        by medium blocks' slow paths) give it back; the
 *                        validator passes throughout (no janitor).
 *   test_purge spare_janitor  the same churn in a thread that then makes no
 *                        call: the janitor gives its spare back (polled
 *                        under the heap's lock; generous timeout).
 *   test_purge holes_refused  as holes, with every batched decommit refused
 *                        (fault injection): the holes go back run by run.
 *   test_purge low_water  a chunk allocated from while its purge clock ran
 *                        (hot) gives back, at the look, the free pages
 *                        that stayed free all along (the low-water mark),
 *                        and keeps those a span took meanwhile (synthetic
 *                        times, no janitor).
 *   test_purge populate  a burst of 64 B blocks over 8 chunks freed, then
 *                        allocated again at once: each clean chunk the heap
 *                        takes again (but the last, which may get only what
 *                        is left of the budget) is resident whole as soon as
 *                        its first block is given (one MADV_POPULATE_WRITE,
 *                        not a page fault a page: getrusage counts both
 *                        alike, so mincore tells them apart); the first
 *                        burst (a heap that only grows) and one after
 *                        malloc_trim populate nothing (no janitor). With
 *                        no purge delay (config lean) nothing is populated
 *                        at all; skipped where MADV_POPULATE_WRITE does not
 *                        make a probe mapping resident (a kernel before
 *                        5.14, qemu-user).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* CPU sets, sched_getcpu */
#endif
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <sys/mman.h>

#include "alloc.h"
#include "testutil.h"

#define NSIZES 3
static const size_t sizes[NSIZES] = {256, 2048, 8192};
static const size_t counts[NSIZES] = {32768, 4096, 1024};
static const size_t keep_every[NSIZES] = {64, 8, 4};
static void *blocks[NSIZES][32768];
static sem_t burst_done, finish;

static bool kept(int k, size_t i) { return i % keep_every[k] == 0; }

static void burst(void) {
  for (int k = 0; k < NSIZES; k++)
    for (size_t i = 0; i < counts[k]; i++) {
      blocks[k][i] = lz_malloc(sizes[k]);
      CHECK(blocks[k][i] != NULL);
      tu_pattern_fill(blocks[k][i], sizes[k], i + 1000u * (size_t)k);
    }
  for (int k = 0; k < NSIZES; k++)
    for (size_t i = 0; i < counts[k]; i++)
      if (!kept(k, i)) lz_free(blocks[k][i]);
}

static int page_cmp(const void *a, const void *b) {
  uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
  return x < y ? -1 : x > y;
}

/* Pages that freed blocks touched and no kept block does: how many, and
 * how many of them are resident. */
static uintptr_t live_pages[65536], idle_pages[262144];
static void idle_resident(size_t *idle, size_t *resident) {
  size_t nl = 0, ni = 0;
  for (int k = 0; k < NSIZES; k++)
    for (size_t i = 0; i < counts[k]; i++) {
      uintptr_t a = (uintptr_t)blocks[k][i];
      for (uintptr_t p = a >> 12; p <= (a + sizes[k] - 1) >> 12; p++) {
        if (kept(k, i)) live_pages[nl++] = p;
        else idle_pages[ni++] = p;
      }
    }
  qsort(live_pages, nl, sizeof live_pages[0], page_cmp);
  qsort(idle_pages, ni, sizeof idle_pages[0], page_cmp);
  *idle = *resident = 0;
  size_t l = 0;
  for (size_t i = 0; i < ni; i++) {
    if (i > 0 && idle_pages[i] == idle_pages[i - 1]) continue;
    while (l < nl && live_pages[l] < idle_pages[i]) l++;
    if (l < nl && live_pages[l] == idle_pages[i]) continue;
    unsigned char v = 0;
    CHECK(mincore((void *)(idle_pages[i] << 12), 4096, &v) == 0);
    (*idle)++;
    *resident += v & 1;
  }
}

static void check_kept(void) {
  for (int k = 0; k < NSIZES; k++)
    for (size_t i = 0; i < counts[k]; i += keep_every[k])
      if (blocks[k][i] != NULL) CHECKF(tu_pattern_check(blocks[k][i], sizes[k], i + 1000u * (size_t)k) == SIZE_MAX, "kept block %zu of %zu B", i, sizes[k]);
}

/* The idle pages are gone: the classes' current slabs may keep theirs
 * (under 5 % here), and with the janitor each slab's free-list head (one
 * page per slab, two for 8 KiB blocks: 11 % here). */
static bool idle_gone(bool report, double bound) {
  size_t idle, resident;
  idle_resident(&idle, &resident);
  if (report) printf("idle pages %zu, still resident %zu\n", idle, resident);
  return idle > 1000 && (double)resident <= bound * (double)idle;
}

static void free_all(void) {
  for (int k = 0; k < NSIZES; k++)
    for (size_t i = 0; i < counts[k]; i++)
      if (kept(k, i) && blocks[k][i] != NULL) lz_free(blocks[k][i]);
}

static void run_holes(void) {
  burst();
  lz_heap_validate();
  CHECK(!idle_gone(true, 0.5)); /* dirty until purged (a purge delay of -1 here: by malloc_trim only) */
  lz_trim(0);
  CHECKF(idle_gone(true, 0.05), "idle pages of partly used slabs still resident after malloc_trim");
  check_kept();
  lz_heap_validate();
  /* The current slab of each class emptied and trimmed again: the next
   * slab, which has holes, becomes the first of its queue (its holes are
   * filled then: the first span's list is taken as it is). */
  size_t emptied = 0;
  for (int k = 0; k < NSIZES; k++) {
    span_t *first = lz_heap_tls->queues[size_to_class(sizes[k])].first;
    CHECK(first != NULL);
    for (size_t i = 0; i < counts[k]; i += keep_every[k]) {
      uintptr_t a = (uintptr_t)blocks[k][i];
      chunk_t *c = (chunk_t *)(a & ~LZ_CHUNK_MASK);
      if (chunk_span_of(c, a) != first) continue;
      lz_free(blocks[k][i]);
      blocks[k][i] = NULL;
      emptied++;
    }
  }
  CHECK(emptied > 0);
  check_kept();
  lz_trim(0);
  lz_heap_validate();
  check_kept();
  /* Reuse: the freed blocks come back zeroed from calloc, in the same
   * slabs (the holes are refilled). */
  lz_stats_t st;
  lz_stats_get(&st);
  size_t mapped = st.mapped;
  for (int k = 0; k < NSIZES; k++)
    for (size_t i = 0; i < counts[k]; i++) {
      if (kept(k, i) && blocks[k][i] != NULL) continue;
      unsigned char *p = lz_calloc(1, sizes[k]);
      CHECK(p != NULL);
      for (size_t j = 0; j < sizes[k]; j++) CHECKF(p[j] == 0, "calloc byte %zu of %zu B not zero", j, sizes[k]);
      if (kept(k, i)) tu_pattern_fill(p, sizes[k], i + 1000u * (size_t)k);
      else memset(p, 0x5a, sizes[k]);
      blocks[k][i] = p;
    }
  lz_stats_get(&st);
  CHECKF(st.mapped <= mapped + ((size_t)4 << 20), "mapped %zu -> %zu: holes not reused", mapped, st.mapped);
  check_kept();
  lz_heap_validate();
  for (int k = 0; k < NSIZES; k++)
    for (size_t i = 0; i < counts[k]; i++) lz_free(blocks[k][i]);
  lz_heap_validate();
  printf("holes: idle slab pages given back by malloc_trim, reused zeroed by calloc\n");
}

/* A kernel that refuses batched decommits (process_madvise: older than
 * Linux 6.13, or a sandbox): malloc_trim's holes still go back, run by
 * run. */
static void run_holes_refused(void) {
  burst();
  os_fault_kinds(OS_FAULT_RANGES);
  os_fault_set(0, 1);
  lz_trim(0);
  os_fault_set(-1, 1);
  os_fault_kinds(OS_FAULT_MAP);
  CHECKF(os_fault_injected() > 0, "no batch of holes was tried");
  CHECKF(idle_gone(true, 0.05), "idle pages of partly used slabs still resident after a refused batch");
  check_kept();
  lz_heap_validate();
  free_all();
  lz_heap_validate();
  printf("holes_refused: %ld batches refused, their holes given back one by one\n", os_fault_injected());
}

static void *janitor_worker(void *arg) {
  (void)arg;
  burst();
  sem_post(&burst_done);
  sem_wait(&finish); /* no allocator call until the main thread has looked */
  check_kept();
  free_all();
  return NULL;
}

static void run_janitor(void) {
  sem_init(&burst_done, 0, 0);
  sem_init(&finish, 0, 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, janitor_worker, NULL) == 0);
  sem_wait(&burst_done);
  double t0 = tu_now();
  bool gone = false;
  while (!(gone = idle_gone(false, 0.2)) && tu_now() - t0 < 30.0) usleep(20000);
  idle_gone(true, 0.2);
  CHECKF(gone, "idle slab pages of a quiet thread still resident after %.0f s", tu_now() - t0);
  printf("janitor: idle slab pages of a quiet thread given back in %.2f s\n", tu_now() - t0);
  sem_post(&finish);
  CHECK(pthread_join(t, NULL) == 0);
}

/* ---- decay --------------------------------------------------------------- */
static size_t free_dirty(const chunk_t *c, size_t *lowest_clean) {
  size_t n = 0;
  *lowest_clean = LZ_CHUNK_PAGES;
  for (size_t i = LZ_HEADER_PAGES; i < LZ_CHUNK_PAGES; i++) {
    bool f = (c->free_map[i >> 6] >> (i & 63)) & 1, d = (c->dirty_map[i >> 6] >> (i & 63)) & 1;
    n += f && d;
    if (f && !d && i < *lowest_clean) *lowest_clean = i;
  }
  return n;
}

/* 1 - smoothstep(x) of base, as the schedule promises. */
static double schedule(double base, double x) { return x >= 1 ? 0 : base * (1 - x * x * (3 - 2 * x)); }

static chunk_t *chunk_of(const void *p) { return (chunk_t *)((uintptr_t)p & ~LZ_CHUNK_MASK); }

/* The decay tests' set-up: *keep (which keeps the chunk owned) and the n
 * blocks of m, each of size bytes, written, all in one chunk, returned. */
static chunk_t *blocks_in_one_chunk(void **keep, void **m, int n, size_t size) {
  *keep = lz_malloc(size);
  CHECK(*keep != NULL);
  memset(*keep, 5, size);
  for (int i = 0; i < n; i++) {
    m[i] = lz_malloc(size);
    CHECK(m[i] != NULL);
    memset(m[i], 3, size);
  }
  chunk_t *c = chunk_of(*keep);
  for (int i = 0; i < n; i++) CHECK(chunk_of(m[i]) == c);
  return c;
}

/* Walks c's decay (armed at `at`, base free dirty pages) through the
 * given points of its window with purge_heap: each look leaves the
 * schedule's count within tol pages and no more than the look before,
 * given back from the top (no clean free page below a dirty one), and,
 * if live is given (the dirty pages that are not free, a word each), no
 * live page touched. Returns the pages left after the last point. */
static size_t decay_walk(heap_t *heap, chunk_t *c, uint64_t at, size_t base, const double *steps, size_t n,
                         double tol, const uint64_t *live) {
  size_t prev = base, lowest;
  for (size_t k = 0; k < n; k++) {
    purge_heap(heap, false, at + (uint64_t)(steps[k] * LZ_DECAY_MS));
    size_t left = free_dirty(c, &lowest);
    double want = schedule((double)base, steps[k]);
    printf("decay at %.2f of the window: %zu of %zu free pages dirty (schedule %.1f)\n", steps[k], left, base, want);
    CHECKF(left <= prev && left + tol >= want && left <= want + tol, "%zu dirty, schedule %.1f", left, want);
    for (size_t i = lowest; i < LZ_CHUNK_PAGES; i++)
      CHECKF(!(((c->free_map[i >> 6] & c->dirty_map[i >> 6]) >> (i & 63)) & 1), "page %zu dirty above %zu", i,
             lowest);
    for (size_t w = 0; live != NULL && w < LZ_BITMAP_WORDS; w++)
      CHECKF((c->dirty_map[w] & ~c->free_map[w]) == live[w], "word %zu of the live pages changed", w);
    prev = left;
  }
  return prev;
}

static void run_decay(void) {
  enum { N = 6, SIZE = 200 * 1024 };
  if (opt_get(OPT_PURGE_DELAY) <= 0) { /* 0: purged at once (LZ_PURGE_DELAY_MS 0 builds); -1: never */
    printf("skipped: decay needs a purge delay (%ld here)\n", opt_get(OPT_PURGE_DELAY));
    return;
  }
  void *keep, *m[N];
  chunk_t *c = blocks_in_one_chunk(&keep, m, N, SIZE);
  heap_t *heap = lz_heap_tls;
  for (int i = 0; i < N; i++) lz_free(m[i]);
  heap_enter(heap);
  medium_cache_flush(heap, true, true, os_now_ms()); /* the spans go back to the chunk: armed */
  uint64_t at = c->purge_at;
  size_t lowest, base = free_dirty(c, &lowest);
  CHECK(at != 0 && c->hot == 0 && base >= N * SIZE / LZ_PAGE_SIZE && c->decay_base == base);
  purge_heap(heap, false, at - 1);
  CHECK(free_dirty(c, &lowest) == base);
  double steps[] = {0, 0.25, 0.5, 0.75, 0.99, 1.0};
  CHECK(decay_walk(heap, c, at, base, steps, sizeof steps / sizeof steps[0], 2, NULL) == 0 && c->purge_at == 0);
  /* A chunk allocated from while it decays is re-armed, not decayed: it
   * gives back only the pages that stayed free since it was armed (its
   * low-water mark; test_purge low_water). */
  heap_leave(heap);
  for (int i = 0; i < N; i++) lz_free(lz_malloc(SIZE)), m[i] = lz_malloc(SIZE), memset(m[i], 1, SIZE);
  for (int i = 0; i < N; i++) lz_free(m[i]);
  heap_enter(heap);
  medium_cache_flush(heap, true, true, os_now_ms());
  at = c->purge_at;
  base = free_dirty(c, &lowest);
  CHECK(at != 0 && base > 0);
  void *hot = lz_malloc(SIZE); /* a span allocated here: hot */
  CHECK(hot != NULL && chunk_of(hot) == c);
  size_t base2 = free_dirty(c, &lowest), low = c->low_dirty;
  CHECK(low < base2);
  purge_heap(heap, false, at + LZ_DECAY_MS / 2);
  CHECKF(free_dirty(c, &lowest) == base2 - low && c->purge_at > at, "%zu free dirty, %zu - %zu expected",
         free_dirty(c, &lowest), base2, low);
  heap_leave(heap);
  lz_free(hot);
  lz_free(keep);
  lz_heap_validate();
  printf("decay: free pages follow the smoothstep schedule\n");
}

/* Free dirty runs separated by live spans, crossing the bitmaps' 64-page
 * words: the decay gives back whole runs from the top down, to the page
 * the schedule keeps, and never a live page (its data intact). */
static void run_decay_gaps(void) {
  enum { N = 40, SIZE = 44 * 1024 }; /* 11 pages a span: runs straddle words */
  if (opt_get(OPT_PURGE_DELAY) <= 0) {
    printf("skipped: decay needs a purge delay (%ld here)\n", opt_get(OPT_PURGE_DELAY));
    return;
  }
  void *keep, *m[N];
  chunk_t *c = blocks_in_one_chunk(&keep, m, N, SIZE);
  heap_t *heap = lz_heap_tls;
  for (int i = 0; i < N; i += 2) lz_free(m[i]); /* every other span: 20 runs of 11 pages */
  heap_enter(heap);
  medium_cache_flush(heap, true, true, os_now_ms());
  uint64_t at = c->purge_at;
  size_t lowest, base = free_dirty(c, &lowest);
  CHECKF(at != 0 && base >= (N / 2) * (SIZE / LZ_PAGE_SIZE), "%zu free dirty pages", base);
  uint64_t live_dirty[LZ_BITMAP_WORDS];
  for (size_t w = 0; w < LZ_BITMAP_WORDS; w++) live_dirty[w] = c->dirty_map[w] & ~c->free_map[w];
  double steps[] = {0.1, 0.3, 0.5, 0.7, 0.9, 1.0};
  CHECK(decay_walk(heap, c, at, base, steps, sizeof steps / sizeof steps[0], 1, live_dirty) == 0 && c->purge_at == 0);
  heap_leave(heap);
  for (int i = 1; i < N; i += 2) {
    const unsigned char *b = m[i];
    for (size_t j = 0; j < SIZE; j += 512) CHECK(b[j] == 3);
    lz_free(m[i]);
  }
  lz_free(keep);
  lz_heap_validate();
  printf("decay_gaps: %zu free pages in runs between live spans, given back from the top\n", base);
}

/* ---- refaults ------------------------------------------------------------- */
/* The chunk's purge clock armed by the medium spans just freed: at the
 * heap's delay from the flush (the clock read around it). */
static uint64_t flush_armed(heap_t *heap, chunk_t *c, uint64_t want_delay) {
  uint64_t t0 = os_now_ms();
  medium_cache_flush(heap, true, true, t0);
  uint64_t t1 = os_now_ms(), at = c->purge_at;
  CHECKF(at >= t0 + want_delay && at <= t1 + want_delay, "purge_at %llu, armed in [%llu, %llu] + %llu",
         (unsigned long long)at, (unsigned long long)t0, (unsigned long long)t1, (unsigned long long)want_delay);
  return at;
}

static void decay_whole(heap_t *heap, chunk_t *c, uint64_t at) {
  size_t lowest;
  purge_heap(heap, false, at + LZ_DECAY_MS);
  CHECK(free_dirty(c, &lowest) == 0 && c->purge_at == 0 && c->decayed);
}

static void run_refault(void) {
  enum { N = 6, SIZE = 200 * 1024 };
  long delay = opt_get(OPT_PURGE_DELAY);
  if (delay <= 0) {
    printf("skipped: refaults need a purge delay (%ld here)\n", delay);
    return;
  }
  void *keep = lz_malloc(SIZE), *late = lz_malloc(SIZE);
  CHECK(keep != NULL && late != NULL);
  memset(keep, 5, SIZE);
  memset(late, 6, SIZE);
  void *m[N];
  for (int i = 0; i < N; i++) {
    m[i] = lz_malloc(SIZE);
    CHECK(m[i] != NULL);
    memset(m[i], 3, SIZE);
  }
  heap_t *heap = lz_heap_tls;
  chunk_t *c = chunk_of(keep);
  CHECK(chunk_of(late) == c);
  for (int i = 0; i < N; i++) CHECK(chunk_of(m[i]) == c);
  CHECK(heap->decay_shift == 0);
  for (int i = 0; i < N; i++) lz_free(m[i]);
  heap_enter(heap);
  decay_whole(heap, c, flush_armed(heap, c, (uint64_t)delay));
  heap_leave(heap);
  /* The pages the decay gave back are taken again: a refault. */
  for (int i = 0; i < N; i++) {
    m[i] = lz_malloc(SIZE);
    CHECK(m[i] != NULL && chunk_of(m[i]) == c);
    memset(m[i], 4, SIZE);
  }
  CHECKF(heap->decay_shift == 1, "decay_shift %u after a refault", heap->decay_shift);
  for (int i = 0; i < N; i++) lz_free(m[i]);
  heap_enter(heap);
  decay_whole(heap, c, flush_armed(heap, c, (uint64_t)delay << 1)); /* twice the delay */
  heap_leave(heap);
  /* Pages freed after a decay that nobody answered: the delay halves. */
  lz_free(late);
  heap_enter(heap);
  uint64_t at = flush_armed(heap, c, (uint64_t)delay);
  CHECKF(heap->decay_shift == 0, "decay_shift %u after an unanswered decay", heap->decay_shift);
  decay_whole(heap, c, at);
  heap_leave(heap);
  lz_free(keep);
  lz_heap_validate();
  printf("refault: pages taken back double the delay (%ld -> %ld ms), an unanswered decay halves it\n", delay,
         delay << 1);
}

/* ---- kept empty chunks -------------------------------------------------------- */
/* The least whole number >= x (x >= 0; no libm). */
static unsigned up(double x) { unsigned u = (unsigned)x; return u < x ? u + 1 : u; }

enum { KEEP_CHUNKS = 4 };

/* The calling thread's heap, held, with KEEP_CHUNKS empty chunks kept (its
 * allowance set as if it had churned chunks: pages.c, "Empty chunks"):
 * eight 1 MiB blocks allocated, written and freed, the medium cache
 * flushed to the chunks. */
static heap_t *keep_empty_chunks(void) {
  enum { N = 8, SIZE = 1 << 20 };
  CHECK(lz_malloc(16) != NULL); /* the heap, and its first chunk kept busy */
  heap_t *heap = lz_heap_tls;
  void *m[N];
  for (int i = 0; i < N; i++) {
    m[i] = lz_malloc(SIZE);
    CHECK(m[i] != NULL);
    memset(m[i], 3, SIZE);
  }
  heap_enter(heap);
  heap->empty_keep = KEEP_CHUNKS;
  heap_leave(heap);
  for (int i = 0; i < N; i++) lz_free(m[i]);
  heap_enter(heap); /* held from here: no purge tick of our own runs */
  medium_cache_flush(heap, true, true, os_now_ms());
  CHECKF(heap->empty_count == KEEP_CHUNKS, "%u empty chunks kept, allowance %u", heap->empty_count, heap->empty_keep);
  return heap;
}

static void run_empty_keep(void) {
  enum { KEEP = KEEP_CHUNKS, WINDOW = LZ_EMPTY_KEEP_MS };
  if (opt_get(OPT_PURGE_DELAY) <= 0) {
    printf("skipped: kept chunks need a purge delay (%ld here)\n", opt_get(OPT_PURGE_DELAY));
    return;
  }
  heap_t *heap = keep_empty_chunks();
  uint64_t t0 = heap->empty_used_at;
  /* Thousandths of the window. */
  unsigned steps[] = {0, 10, 20, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 950, 999, 1000, 1100};
  for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
    unsigned ms = steps[k] * WINDOW / 1000;
    purge_heap(heap, false, t0 + ms);
    double want = schedule((double)KEEP, ms / (double)WINDOW);
    printf("empty_keep at %4u ms idle: %u kept (schedule %.2f)\n", ms, heap->empty_count, want);
    CHECKF(heap->empty_count >= up(want - 0.01 > 0 ? want - 0.01 : 0) && heap->empty_count <= up(want + 0.01),
           "%u kept at %u ms, schedule %.2f", heap->empty_count, ms, want);
    CHECK(heap->empty_keep >= heap->empty_count);
  }
  CHECK(heap->empty_count == 0 && heap->empty_keep == 0);
  heap_leave(heap);
  lz_heap_validate();
  printf("empty_keep: kept empty chunks follow the smoothstep schedule of their idle time\n");
}

/* Kept empty chunks left unused past the window go back at the heap's
 * next large allocation, whatever its slow-path count (heap.c,
 * large_malloc_direct: a program that makes few slow calls but large
 * blocks purges on time). Real time, no janitor. */
static void run_large_tick(void) {
  enum { SIZE = 1 << 20 };
  if (opt_get(OPT_PURGE_DELAY) <= 0) {
    printf("skipped: kept chunks need a purge delay (%ld here)\n", opt_get(OPT_PURGE_DELAY));
    return;
  }
  heap_t *heap = keep_empty_chunks();
  slab_startup_end(heap); /* a small process's start-up reads no clock: past it */
  heap_leave(heap);
  /* Idle past the window (asleep: the heap's clock runs), with room for
   * a wait for a CPU after the wake-up, which the heap's clock leaves out
   * (purge.c, "Clock"): 100 ms of room failed once under make test's
   * parallel load (1 of 8 chunks kept). */
  usleep((LZ_EMPTY_KEEP_MS + 400) * 1000);
  CHECKF(heap->empty_count == KEEP_CHUNKS, "%u kept before the allocation (no tick meanwhile)", heap->empty_count);
  /* The count's own tick (every HEAP_TICK_EVERY-th slow entry) not due at
   * this allocation. */
  heap->slow_count = (heap->slow_count | (HEAP_TICK_EVERY - 1)) + 2;
  void *big = lz_malloc(4 * SIZE);
  CHECK(big != NULL);
  CHECKF(heap->empty_count == 0, "%u empty chunks still kept after a large allocation %u ms idle", heap->empty_count,
         (unsigned)LZ_EMPTY_KEEP_MS + 400);
  lz_free(big);
  lz_heap_validate();
  printf("large_tick: a large allocation ticks the heap: kept chunks idle past %u ms went back\n",
         (unsigned)LZ_EMPTY_KEEP_MS);
}

/* ---- growth by copying (medium.c, "Growth") ------------------------------------ */
static size_t range_resident(const void *p, size_t bytes) {
  unsigned char v[(LZ_MEDIUM_MAX >> LZ_PAGE_SHIFT) + 1];
  size_t n = (bytes + LZ_PAGE_SIZE - 1) >> LZ_PAGE_SHIFT, r = 0;
  CHECK(n <= sizeof v && mincore((void *)p, n << LZ_PAGE_SHIFT, v) == 0);
  for (size_t i = 0; i < n; i++) r += v[i] & 1;
  return r;
}

/* A buffer grown by copying, 32 KiB to 2 MiB doubling: n[k] of the old
 * buffer's pages still resident right after each free. */
static void grow_chain(size_t *n) {
  size_t size = 32 << 10;
  char *buf = lz_malloc(size);
  CHECK(buf != NULL);
  memset(buf, 1, size);
  for (int k = 0; size < LZ_MEDIUM_MAX; k++, size *= 2) {
    char *nb = lz_malloc(2 * size);
    CHECK(nb != NULL);
    memcpy(nb, buf, size);
    memset(nb + size, 2, size);
    lz_free(buf);
    n[k] = range_resident(buf, size);
    buf = nb;
  }
  lz_free(buf);
}

/* grow: the old buffers of a growth, 64 KiB and more, are not resident
 * right after their free (the 32 KiB one, below GROW_CUT_MIN_PAGES, is
 * kept); the same growth again at once (within GROW_CUT_WINDOW_MS) keeps
 * them all. */
static void run_grow(void) {
  enum { STEPS = 5 }; /* old buffers of 32 KiB to 512 KiB, the last freed for a large block */
  if (opt_get(OPT_PURGE_DELAY) <= 0) {
    printf("skipped: needs a purge delay (%ld here)\n", opt_get(OPT_PURGE_DELAY));
    return;
  }
  size_t first[STEPS], again[STEPS];
  grow_chain(first);
  grow_chain(again);
  for (int k = 0; k < STEPS; k++) {
    size_t pages = ((size_t)32 << 10 << k) >> LZ_PAGE_SHIFT;
    CHECKF(first[k] == (k == 0 ? pages : 0), "first growth: %zu of the %zu pages of its old buffer %d resident", first[k],
           pages, k);
    CHECKF(again[k] == pages, "growth again: %zu of the %zu pages of its old buffer %d resident", again[k], pages, k);
  }
  lz_heap_validate();
  printf("grow: a buffer grown by copying from 32 KiB to 1 MiB gave back its old buffers of 64 KiB and more at once; "
         "grown again at once, kept them\n");
}

/* ---- the heap's clock ------------------------------------------------------------ */
static _Atomic(bool) hog_stop;
static _Atomic(uint32_t) hog_tid;
static void *hog(void *arg) {
  (void)arg;
  atomic_store(&hog_tid, (uint32_t)os_thread_ident());
  while (!atomic_load_explicit(&hog_stop, memory_order_relaxed)) {
  }
  return NULL;
}

static void spin_ms(uint64_t ms) {
  uint64_t end = os_now_ms() + ms;
  while (os_now_ms() < end) {
  }
}

static void run_clock(void) {
  if (os_thread_wait_ns(0) == UINT64_MAX) {
    printf("skipped: no schedstat here\n");
    return;
  }
  CHECK(lz_malloc(16) != NULL);
  heap_t *heap = lz_heap_tls;
  /* This thread and a busy one on one CPU: each waits while the other runs. */
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(sched_getcpu(), &one);
  CHECK(sched_setaffinity(0, sizeof one, &one) == 0);
  pthread_attr_t attr;
  CHECK(pthread_attr_init(&attr) == 0 && pthread_attr_setaffinity_np(&attr, sizeof one, &one) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, &attr, hog, NULL) == 0);
  CHECK(pthread_attr_destroy(&attr) == 0);
  while (atomic_load(&hog_tid) == 0) sched_yield();
  heap_enter(heap);
  /* Nothing to purge: nothing read, nothing counted. */
  heap->purge_wake = UINT64_MAX;
  uint64_t lag0 = heap->lag_ms;
  purge_clock_sync(heap, 0, os_now_ms());
  spin_ms(100);
  purge_clock_sync(heap, 0, os_now_ms());
  CHECKF(heap->lag_ms == lag0 && heap->wait_seen_ns == 0, "lag %llu -> %llu with nothing to purge",
         (unsigned long long)lag0, (unsigned long long)heap->lag_ms);
  /* Something to purge: the waits count. */
  heap->purge_wake = 0;
  purge_clock_sync(heap, 0, os_now_ms()); /* the base */
  uint64_t w0 = heap->wait_seen_ns, lag1 = heap->lag_ms, t0 = os_now_ms();
  CHECK(w0 != 0 || os_thread_wait_ns(0) == 0);
  spin_ms(150);
  /* Not due yet, even by the clock as it stands: no reading... */
  heap->purge_wake = heap_now(heap) + 100000;
  purge_clock_sync(heap, 0, os_now_ms());
  CHECK(heap->lag_ms == lag1 && heap->wait_seen_ns == w0);
  /* ... and the next one counts every wait since the base. */
  heap->purge_wake = 0;
  spin_ms(150);
  uint64_t other = os_thread_wait_ns(atomic_load(&hog_tid)); /* another thread's, as the janitor reads it */
  /* The sync reads this thread's waits between wa and w1, and on a CPU
   * shared with the busy thread a wait may come between any two reads:
   * the lag it counts lies between theirs. */
  uint64_t wa = os_thread_wait_ns(0);
  purge_clock_sync(heap, 0, os_now_ms());
  uint64_t w1 = os_thread_wait_ns(0), wall = os_now_ms() - t0, lag = heap->lag_ms - lag1;
  CHECK(other != UINT64_MAX && other > 0);
  CHECKF(lag >= (wa - w0) / 1000000u && lag <= (w1 - w0) / 1000000u, "lag %llu ms, waited %llu..%llu ms",
         (unsigned long long)lag, (unsigned long long)((wa - w0) / 1000000u),
         (unsigned long long)((w1 - w0) / 1000000u));
  /* Beside a busy thread, about half of the wall time was a wait. */
  CHECKF(lag >= wall / 4, "lag %llu ms in %llu ms beside a busy thread", (unsigned long long)lag,
         (unsigned long long)wall);
  CHECK(heap_now(heap) <= os_now_ms() - heap->lag_ms);
  /* Pages freed by a new owner (no base) that has waited: nothing they
   * hand the purge can fall due within LZ_FREED_DUE_MS (or the delay) of
   * the tick, so a tick before then reads nothing (a short-lived thread
   * whose pages go back reads no schedstat), and one after it counts the
   * waits. */
  long delay = opt_get(OPT_PURGE_DELAY);
  if (delay > 0) {
    spin_ms(50); /* waits beside the busy thread */
    heap->purge_wake = UINT64_MAX;
    purge_clock_sync(heap, 0, os_now_ms()); /* nothing to purge: no base */
    CHECK(heap->wait_seen_ns == 0);
    uint64_t tick = os_now_ms(), lag2 = heap->lag_ms;
    heap->slow_clock = tick;
    span_t *sp = span_alloc(heap, 1, 1, SPAN_SLAB);
    CHECK(sp != NULL);
    span_free(heap, sp); /* its page waits for the decay (pages_freed) */
    uint64_t soon = (uint64_t)(delay < LZ_FREED_DUE_MS ? delay : LZ_FREED_DUE_MS);
    purge_clock_sync(heap, 0, tick + soon - 1);
    CHECKF(heap->lag_ms == lag2, "pages freed: a tick %llu ms later read the clock (lag %llu -> %llu ms)",
           (unsigned long long)(soon - 1), (unsigned long long)lag2, (unsigned long long)heap->lag_ms);
    purge_clock_sync(heap, 0, tick + 1000 + heap->lag_ms);
    CHECKF(heap->lag_ms > lag2, "pages freed: a tick past their first due time counted no wait (lag %llu ms)",
           (unsigned long long)heap->lag_ms);
  }
  heap_leave(heap);
  atomic_store(&hog_stop, true);
  CHECK(pthread_join(t, NULL) == 0);
  lz_heap_validate();
  printf("clock: %llu ms of %llu ms waited for the CPU, left out of the heap's clock\n", (unsigned long long)lag,
         (unsigned long long)wall);
}

/* ---- refaults of holes ------------------------------------------------------ */
enum { HR_N = 16384, HR_SIZE = 256, HR_KEEP = 64, HR_FULL = 64, HR_FULL_SIZE = 2048 };
static void *hr_blocks[HR_N];

/* Slab spans of the class with holes. */
static size_t spans_with_holes(heap_t *heap, unsigned cls) {
  size_t n = 0;
  for (span_t *s = heap->queues[cls].first; s != NULL; s = s->next) n += (s->flags & SPAN_HOLES) != 0;
  return n;
}

/* All but every HR_KEEP-th block freed: full slabs get blocks back, the
 * look for holes is armed. */
static void hr_free_most(heap_t *heap) {
  for (size_t i = 0; i < HR_N; i++)
    if (i % HR_KEEP != 0) {
      lz_free(hr_blocks[i]);
      hr_blocks[i] = NULL;
    }
  CHECK(heap->holes_at != 0);
}

/* The look at its due time, the slabs left alone meanwhile (not hot). */
static void hr_look(heap_t *heap) {
  heap_enter(heap);
  heap->holes_hot = 0;
  uint64_t at = heap->holes_at;
  CHECK(purge_heap_holes(heap, false, true, at - 1) == at); /* not yet */
  purge_heap_holes(heap, false, true, at);
  CHECK(heap->holes_at == 0 && !heap->holes_refilled);
  heap_leave(heap);
}

static void run_holes_refault(void) {
  if (opt_get(OPT_PURGE_DELAY) < 0) {
    printf("skipped: holes need a purge delay (%ld here)\n", opt_get(OPT_PURGE_DELAY));
    return;
  }
  unsigned cls = size_to_class(HR_SIZE);
  for (size_t i = 0; i < HR_N; i++) {
    hr_blocks[i] = lz_malloc(HR_SIZE);
    CHECK(hr_blocks[i] != NULL);
    memset(hr_blocks[i], 1, HR_SIZE);
  }
  heap_t *heap = lz_heap_tls;
  /* Only this test looks for holes: the owner's purge tick would look
   * on its own once a slow run of the frees below outlasts the delay. */
  heap->purge_next = UINT64_MAX;
  CHECK(heap->holes_shift == 0 && holes_delay(heap) == LZ_HOLES_AFTER_MS);
  hr_free_most(heap);
  hr_look(heap);
  size_t holed = spans_with_holes(heap, cls);
  CHECKF(holed > 0, "no slab of %u B punched", HR_SIZE);
  CHECK(heap->holes_shift == 0);
  /* The punched blocks are taken again: their holes are filled, a refault. */
  for (size_t i = 0; i < HR_N; i++)
    if (hr_blocks[i] == NULL) {
      hr_blocks[i] = lz_malloc(HR_SIZE);
      CHECK(hr_blocks[i] != NULL);
      memset(hr_blocks[i], 2, HR_SIZE);
    }
  CHECK(spans_with_holes(heap, cls) < holed);
  CHECKF(heap->holes_shift == 1 && heap->holes_refilled, "holes_shift %u after a refault", heap->holes_shift);
  /* The next look waits twice as long (armed from the heap's coarse
   * clock, read at a tick since t_fill, or from the clock itself). */
  heap->slow_clock = 0;
  uint64_t t_fill = os_now_ms();
  hr_free_most(heap);
  uint64_t t_armed = os_now_ms();
  CHECKF(heap->holes_at >= t_fill + 2 * LZ_HOLES_AFTER_MS && heap->holes_at <= t_armed + 2 * LZ_HOLES_AFTER_MS,
         "holes_at %llu, armed in [%llu, %llu] + %u", (unsigned long long)heap->holes_at,
         (unsigned long long)t_fill, (unsigned long long)t_armed, 2 * LZ_HOLES_AFTER_MS);
  hr_look(heap); /* answered since the last: the shift stays */
  CHECK(heap->holes_shift == 1 && spans_with_holes(heap, cls) > 0);
  /* Slabs of another class freeing (a full one gets a block back) arm
   * the next look; nothing was filled since the last: the delay halves. */
  void *full[HR_FULL];
  for (int i = 0; i < HR_FULL; i++) {
    full[i] = lz_malloc(HR_FULL_SIZE);
    CHECK(full[i] != NULL);
  }
  lz_free(full[0]);
  CHECK(heap->holes_at != 0);
  hr_look(heap);
  CHECKF(heap->holes_shift == 0, "holes_shift %u after an unanswered look", heap->holes_shift);
  for (int i = 1; i < HR_FULL; i++) lz_free(full[i]);
  for (size_t i = 0; i < HR_N; i++) lz_free(hr_blocks[i]);
  lz_heap_validate();
  printf("holes_refault: holes filled again double the holes delay (%u -> %u ms), an unanswered look halves it\n",
         LZ_HOLES_AFTER_MS, 2 * LZ_HOLES_AFTER_MS);
}

/* ---- orphans --------------------------------------------------------------- */
static heap_t *orphan_heap;
static uint64_t orphan_adopted_by; /* os_now_ms() just after the worker's first malloc took its heap */

static void *orphan_worker(void *arg) {
  size_t n = (size_t)(uintptr_t)arg;
  void *p[64];
  for (size_t i = 0; i < n; i++) {
    p[i] = lz_malloc(4096);
    CHECK(p[i] != NULL);
    if (i == 0) orphan_adopted_by = os_now_ms();
    memset(p[i], 7, 4096);
  }
  for (size_t i = 0; i < n; i += 2) lz_free(p[i]); /* the others outlive the thread */
  orphan_heap = lz_heap_tls;
  return NULL;
}

static heap_t *orphan_round(size_t n) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, orphan_worker, (void *)(uintptr_t)n) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  heap_t *h = orphan_heap;
  CHECK(atomic_load(&h->xstate) == HEAP_ORPHAN);
  return h;
}

static void run_orphan(void) {
  long delay = opt_get(OPT_PURGE_DELAY);
  if (delay <= 0 || LZ_HEAPS > 0) {
    printf("skipped: orphans need a purge delay (%ld here) and thread heaps\n", delay);
    return;
  }
  CHECK(lz_malloc(16) != NULL); /* the main thread's own heap: the orphan stays the only one */
  heap_t *h = orphan_round(64);
  CHECK(h->orphan_shift == 0 && !h->orphan_purged);
  /* Left alone well past the purge delay: collected whole. */
  usleep((useconds_t)(10 * delay * 1000));
  CHECK(heaps_collect_orphans(false) == 1 && h->orphan_purged);
  uint64_t waited = os_now_ms() - h->abandoned_at;
  /* ... and adopted by the next thread: its next delay covers that wait twice over. */
  CHECK(orphan_round(64) == h);
  unsigned s1 = h->orphan_shift;
  CHECKF(s1 == LZ_DECAY_SHIFT_MAX || ((uint64_t)delay << s1) >= 2 * waited, "orphan_shift %u after %llu ms", s1,
         (unsigned long long)waited);
  CHECK(s1 >= 4 && !h->orphan_purged);
  /* Collected at once: not idle, nothing purged whole. */
  heaps_collect_orphans(false);
  if (os_now_ms() - h->abandoned_at < ((uint64_t)delay << s1)) CHECK(!h->orphan_purged);
  /* Adopted within a quarter of its delay: one shift less; later: the same.
   * The adoption happens between `before` and the worker's first malloc
   * returning (orphan_adopted_by); a slow machine may put that quarter in
   * between, where either answer is right. */
  uint64_t abandoned = h->abandoned_at, quarter = ((uint64_t)delay << s1) / 4;
  uint64_t before = heap_now(h); /* heap time, like abandoned_at; wall time (adopted_by) runs ahead of it */
  CHECK(orphan_round(8) == h);
  if (orphan_adopted_by - abandoned < quarter)
    CHECKF(h->orphan_shift == s1 - 1, "orphan_shift %u, was %u, adopted within %llu ms", h->orphan_shift, s1,
           (unsigned long long)(orphan_adopted_by - abandoned));
  else if (before - abandoned >= quarter)
    CHECKF(h->orphan_shift == s1, "orphan_shift %u, was %u, adopted after %llu ms", h->orphan_shift, s1,
           (unsigned long long)(before - abandoned));
  else
    CHECK(h->orphan_shift == s1 - 1 || h->orphan_shift == s1);
  lz_heap_validate();
  printf("orphan: collected whole after %llu ms then adopted: delay %ld -> %ld ms; adopted at once: %ld ms\n",
         (unsigned long long)waited, delay, delay << s1, delay << h->orphan_shift);
}

/* ---- an orphan's stages ------------------------------------------------------------ */
static void *stages_blocks[8];
static uint64_t stages_freed_at; /* the worker's heap time just after its frees */
static void *orphan_stages_worker(void *arg) {
  (void)arg;
  for (int i = 0; i < 8; i++) {
    stages_blocks[i] = lz_malloc(64 * 1024);
    CHECK(stages_blocks[i] != NULL);
    memset(stages_blocks[i], 9, 64 * 1024);
  }
  for (int i = 0; i < 6; i++) lz_free(stages_blocks[i]); /* the last two outlive the thread */
  orphan_heap = lz_heap_tls;
  stages_freed_at = heap_now(lz_heap_tls);
  return NULL;
}

/* The heap a thread running worker (which sets orphan_heap) leaves behind. */
static heap_t *orphan_of(void *(*worker)(void *)) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, worker, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  return orphan_heap;
}

static void run_orphan_stages(void) {
  long delay = opt_get(OPT_PURGE_DELAY);
  if (delay <= 0 || LZ_HEAPS > 0) {
    printf("skipped: orphans need a purge delay (%ld here) and thread heaps\n", delay);
    return;
  }
  CHECK(lz_malloc(16) != NULL); /* the main thread's own heap: the orphan stays the only one */
  heap_t *h = orphan_of(orphan_stages_worker);
  CHECK(h->orphan_shift == 0 && !h->orphan_purged);
  /* The heap's clock is set back to the worker's frees, so none of its
   * freed pages falls due by its own delay (purge_at, holes_at) however
   * slow this run was; should a delay pass again before the looks end,
   * pages may go, and the checks of pages kept do not apply. */
  CHECK(heap_hold_orphan(h));
  uint64_t now = heap_now(h);
  if (now > stages_freed_at) atomic_fetch_add(&h->lag_ms, now - stages_freed_at);
  h->orphan_shift = LZ_DECAY_SHIFT_MAX; /* within its delay, however slow this run */
  heap_release_orphan(h);
  uint64_t purged = atomic_load(&lz_pages_purged);
  CHECK(heaps_collect_orphans(false) == 1 && !h->orphan_purged);
  /* Idle past its delay, by a millisecond: its pages stay. */
  CHECK(heap_hold_orphan(h));
  h->orphan_shift = 0;
  h->abandoned_at = heap_now(h) - (uint64_t)delay - 1;
  heap_release_orphan(h);
  CHECK(heaps_collect_orphans(false) == 1 && h->orphan_purged);
  if (heap_now(h) < stages_freed_at + (uint64_t)delay)
    CHECKF(atomic_load(&lz_pages_purged) == purged, "%llu pages of an orphan just idle purged",
           (unsigned long long)(atomic_load(&lz_pages_purged) - purged));
  /* A second later: collected whole. */
  CHECK(heap_hold_orphan(h));
  h->abandoned_at -= 1000;
  heap_release_orphan(h);
  CHECK(heaps_collect_orphans(false) == 1);
  CHECKF(atomic_load(&lz_pages_purged) > purged, "the orphan idle for a second kept its pages");
  for (int i = 6; i < 8; i++) lz_free(stages_blocks[i]);
  lz_heap_validate();
  printf("orphan_stages: idle orphan kept %s, collected whole a second later (%llu pages)\n", "its pages",
         (unsigned long long)(atomic_load(&lz_pages_purged) - purged));
}

/* ---- an orphan held while a thread starts ------------------------------------ */
static _Atomic(bool) busy_done;
static void *orphan_busy_worker(void *arg) {
  (void)arg;
  void *p = lz_malloc(64); /* the thread's first call: its heap */
  CHECK(p != NULL);
  orphan_heap = lz_heap_tls;
  lz_free(p);
  atomic_store(&busy_done, true);
  return NULL;
}

static size_t heaps_made(void) {
  size_t n = 0;
  for (heap_t *h = heaps_first(); h != NULL; h = h->next_all) n++;
  return n;
}

static void run_orphan_busy(void) {
  if (LZ_HEAPS > 0) {
    printf("skipped: orphans need thread heaps\n");
    return;
  }
  CHECK(lz_malloc(16) != NULL); /* the main thread's own heap: the orphan stays the only one */
  heap_t *h = orphan_round(64);
  size_t heaps = heaps_made();
  /* Held as a collector holds it (heaps_collect_orphans, the janitor)
   * while the next thread makes its first call, released as soon as that
   * thread waits for it (or has finished without waiting: a failure). */
  CHECK(heap_hold_orphan(h));
  /* This thread's release may come late on a loaded machine: the bound
   * raised far past it, so that the wait, not its bound, is tested. */
  lz_adopt_wait_ms = 60000;
  unsigned long waits = atomic_load(&lz_adopt_waits);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, orphan_busy_worker, NULL) == 0);
  while (atomic_load(&lz_adopt_waits) == waits && !atomic_load(&busy_done)) sched_yield();
  heap_release_orphan(h);
  CHECK(pthread_join(t, NULL) == 0);
  CHECKF(orphan_heap == h, "the thread made a heap of its own (%zu heaps, %zu before; waits %lu)", heaps_made(), heaps, atomic_load(&lz_adopt_waits) - waits);
  CHECK(heaps_made() == heaps && atomic_load(&h->xstate) == HEAP_ORPHAN);
  lz_heap_validate();
  printf("orphan_busy: the held orphan was adopted (%zu heaps)\n", heaps);
}

/* ---- holes of orphans ------------------------------------------------------- */
static void *orphan_holes_worker(void *arg) {
  (void)arg;
  for (size_t i = 0; i < HR_N; i++) {
    hr_blocks[i] = lz_malloc(HR_SIZE);
    CHECK(hr_blocks[i] != NULL);
    memset(hr_blocks[i], 1, HR_SIZE);
  }
  orphan_heap = lz_heap_tls;
  orphan_heap->purge_next = UINT64_MAX; /* no look of its own (see run_holes_refault) */
  hr_free_most(orphan_heap);            /* the look for holes is armed */
  return NULL;
}

static void run_orphan_holes(void) {
  long delay = opt_get(OPT_PURGE_DELAY);
  if (delay <= 0 || LZ_HEAPS > 0) {
    printf("skipped: orphans' holes need a purge delay (%ld here) and thread heaps\n", delay);
    return;
  }
  CHECK(lz_malloc(16) != NULL); /* the main thread's own heap: the orphan stays the only one */
  heap_t *h = orphan_of(orphan_holes_worker);
  unsigned cls = size_to_class(HR_SIZE);
  CHECK(atomic_load(&h->xstate) == HEAP_ORPHAN && h->holes_at != 0 && spans_with_holes(h, cls) == 0);
  /* The look is due and the slabs were left alone, but the orphan is
   * within its delay (the longest), counted from now: the thread's exit may
   * lie further back on a loaded machine. Only a look made within the
   * delay tells (this thread may wait that long for a CPU in between). */
  h->orphan_shift = LZ_DECAY_SHIFT_MAX;
  h->holes_at = 1;
  h->holes_hot = 0;
  h->abandoned_at = heap_now(h);
  CHECK(heaps_collect_orphans(false) == 1);
  uint64_t looked = heap_now(h) - h->abandoned_at;
  if (looked < ((uint64_t)delay << LZ_DECAY_SHIFT_MAX)) {
    CHECK(!h->orphan_purged);
    CHECKF(spans_with_holes(h, cls) == 0, "%zu slabs of an orphan within its delay punched", spans_with_holes(h, cls));
  } else {
    printf("orphan_holes: the look came %llu ms after the orphan's time was set: not within its delay\n",
           (unsigned long long)looked);
  }
  /* Idle past its delay: collected whole, holes on their schedule. */
  h->abandoned_at = 0;
  CHECK(heaps_collect_orphans(false) == 1 && h->orphan_purged);
  CHECKF(spans_with_holes(h, cls) > 0, "no slab of an idle orphan punched");
  for (size_t i = 0; i < HR_N; i++) lz_free(hr_blocks[i]);
  lz_heap_validate();
  printf("orphan_holes: no holes in an orphan within its delay, holes once it is idle\n");
}

/* ---- low-water mark of a hot chunk ---------------------------------------- */
static void run_low_water(void) {
  enum { N = 6, SIZE = 200 * 1024 };
  if (opt_get(OPT_PURGE_DELAY) <= 0) {
    printf("skipped: needs a purge delay (%ld here)\n", opt_get(OPT_PURGE_DELAY));
    return;
  }
  void *keep, *m[N];
  chunk_t *c = blocks_in_one_chunk(&keep, m, N, SIZE);
  heap_t *heap = lz_heap_tls;
  heap_enter(heap); /* held from here: no purge tick of our own */
  for (int i = 0; i < N; i++) lz_free(m[i]);
  medium_cache_flush(heap, true, true, os_now_ms());
  uint64_t at = c->purge_at;
  size_t lowest, base = free_dirty(c, &lowest);
  CHECK(at != 0 && base >= N * SIZE / LZ_PAGE_SIZE);
  /* One block taken and given back while the clock runs: the chunk is hot,
   * and only that block's pages were ever needed. */
  void *p = lz_malloc(SIZE);
  CHECK(p != NULL && chunk_of(p) == c);
  memset(p, 1, SIZE);
  size_t used = base - free_dirty(c, &lowest);
  lz_free(p);
  medium_cache_flush(heap, true, true, os_now_ms());
  CHECK(free_dirty(c, &lowest) == base && c->hot);
  /* The first look gives back what stayed free since the clock was armed
   * (by the first span freed: the later ones were not free all along) and
   * re-arms the chunk; the next period starts from all that is left. */
  purge_heap(heap, false, at);
  CHECK(c->purge_at > at);
  at = c->purge_at;
  base = free_dirty(c, &lowest);
  CHECK(base > used);
  p = lz_malloc(SIZE);
  CHECK(p != NULL && chunk_of(p) == c);
  memset(p, 1, SIZE);
  lz_free(p);
  medium_cache_flush(heap, true, true, os_now_ms());
  CHECK(free_dirty(c, &lowest) == base && c->hot);
  purge_heap(heap, false, at);
  size_t left = free_dirty(c, &lowest);
  printf("low_water: %zu free dirty pages, %zu taken while the clock ran: %zu kept at the look\n", base, used, left);
  CHECKF(left == used, "%zu of %zu free dirty pages kept, %zu were taken meanwhile", left, base, used);
  CHECK(c->purge_at > at);
  heap_leave(heap);
  lz_free(keep);
  lz_heap_validate();
}

/* ---- spare slabs ---------------------------------------------------------- */
#define SPARE_SIZE 4096
#define SPARE_BATCH 40
static void *spare_blocks[200];
static sem_t spare_made, spare_done;
static heap_t *spare_heap;

/* The heap's spare bits, read holding its lock (the janitor writes them
 * holding it). */
static uint64_t spares_of(heap_t *h) {
  lz_lock(&h->lock);
  uint64_t m = h->spare_classes;
  lz_unlock(&h->lock);
  return m;
}

/* Rounds of SPARE_SIZE blocks allocated and freed until the class keeps a
 * spare (the first rounds big: the class's slabs grow, and only a class
 * that made a few slabs keeps one). */
static void spare_churn(void) {
  uint64_t bit = 1ull << size_to_class(SPARE_SIZE);
  for (int round = 0; round < 2000; round++) {
    int n = round < 16 ? 200 : SPARE_BATCH;
    for (int i = 0; i < n; i++) {
      spare_blocks[i] = lz_malloc(SPARE_SIZE);
      CHECK(spare_blocks[i] != NULL);
      memset(spare_blocks[i], i, SPARE_SIZE);
    }
    for (int i = 0; i < n; i++) lz_free(spare_blocks[i]);
    if (round >= 16 && (spares_of(lz_heap_tls) & bit)) {
      printf("spare: class of %d B keeps a spare after %d rounds\n", SPARE_SIZE, round + 1);
      lz_heap_validate();
      return;
    }
  }
  CHECKF(0, "no spare slab kept for blocks of %d B in batches of %d", SPARE_SIZE, SPARE_BATCH);
}

static void run_spare_tick(void) {
  spare_churn();
  heap_t *heap = lz_heap_tls;
  /* Slow paths that take no slab: a medium block's malloc and free tick
   * the heap (its purge tick at most every half delay). */
  int i;
  for (i = 0; i < 1000 && spares_of(heap) != 0; i++) {
    usleep(10000);
    for (int k = 0; k < 2 * HEAP_TICK_EVERY; k++) {
      void *p = lz_malloc(300 << 10);
      CHECK(p != NULL);
      lz_free(p);
    }
  }
  CHECKF(spares_of(heap) == 0, "spare slabs %#llx still kept after %d rounds of ticks", (unsigned long long)spares_of(heap), i);
  printf("spare_tick: the spare went back after %d rounds of ticks\n", i);
  lz_heap_validate();
}

static void *spare_worker(void *arg) {
  (void)arg;
  spare_churn();
  spare_heap = lz_heap_tls;
  sem_post(&spare_made);
  sem_wait(&spare_done); /* no allocator call until the main thread has looked */
  lz_heap_validate();
  return NULL;
}

static void run_spare_janitor(void) {
  sem_init(&spare_made, 0, 0);
  sem_init(&spare_done, 0, 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, spare_worker, NULL) == 0);
  sem_wait(&spare_made);
  double t0 = tu_now();
  while (spares_of(spare_heap) != 0 && tu_now() - t0 < 30.0) usleep(20000);
  CHECKF(spares_of(spare_heap) == 0, "a quiet thread's spare slabs %#llx still kept after %.0f s",
         (unsigned long long)spares_of(spare_heap), tu_now() - t0);
  printf("spare_janitor: a quiet thread's spare went back in %.2f s\n", tu_now() - t0);
  sem_post(&spare_done);
  CHECK(pthread_join(t, NULL) == 0);
}

/* ---- populate ------------------------------------------------------------------- */
enum { POP_CHUNKS = 8, POP_BLOCKS = POP_CHUNKS * (LZ_CHUNK_SIZE / 64) };
static void *pop_blocks[POP_BLOCKS];

static size_t chunk_resident(uintptr_t c) {
  static unsigned char v[LZ_CHUNK_PAGES];
  CHECK(mincore((void *)(c + LZ_HEADER_PAGES * LZ_PAGE_SIZE), LZ_USABLE_PAGES * LZ_PAGE_SIZE, v) == 0);
  size_t n = 0;
  for (size_t i = 0; i < LZ_USABLE_PAGES; i++) n += v[i] & 1;
  return n;
}

/* Allocates the burst; for each chunk its blocks enter after the first
 * (which may be the heap's busy first chunk), the resident usable pages
 * right after its first block: how many chunks were populated (nearly
 * all resident) and how many not (a few pages). */
static void pop_burst(const char *what, size_t *populated, size_t *faulted, size_t *chunks) {
  uintptr_t last = 0;
  size_t seen = 0;
  *populated = *faulted = *chunks = 0;
  for (size_t i = 0; i < POP_BLOCKS; i++) {
    pop_blocks[i] = lz_malloc(64);
    CHECK(pop_blocks[i] != NULL);
    uintptr_t c = (uintptr_t)pop_blocks[i] & ~(uintptr_t)LZ_CHUNK_MASK;
    if (c != last) {
      if (seen++ > 0) {
        size_t r = chunk_resident(c);
        if (r >= LZ_USABLE_PAGES - 2) (*populated)++;
        else if (r <= 16) (*faulted)++;
        else printf("%s: chunk %zu: %zu pages resident after its first block\n", what, seen, r);
        (*chunks)++;
      }
      last = c;
    }
    memset(pop_blocks[i], 1, 64);
  }
  printf("%s: %zu chunks entered, %zu populated, %zu faulted in\n", what, *chunks, *populated, *faulted);
}

static void pop_free(void) {
  for (size_t i = 0; i < POP_BLOCKS; i++) lz_free(pop_blocks[i]);
}

/* Whether this system makes pages resident with MADV_POPULATE_WRITE (a
 * kernel before 5.14 refuses it, qemu-user accepts it and does nothing). */
static bool populate_works(void) {
  enum { N = 4 };
  uint8_t *p = mmap(NULL, N * LZ_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(p != MAP_FAILED);
  unsigned char v[N];
  bool ok = madvise(p, N * LZ_PAGE_SIZE, 23 /* MADV_POPULATE_WRITE */) == 0 && mincore(p, N * LZ_PAGE_SIZE, v) == 0 &&
            (v[0] & v[1] & v[2] & v[3] & 1);
  munmap(p, N * LZ_PAGE_SIZE);
  return ok;
}

static void run_populate(void) {
  long delay = opt_get(OPT_PURGE_DELAY);
  if (delay < 0) {
    printf("skipped: nothing is given back with a purge delay of -1\n");
    return;
  }
  if (!populate_works()) {
    printf("skipped: MADV_POPULATE_WRITE makes no page resident here\n");
    return;
  }
  size_t populated, faulted, chunks;
  if (delay == 0) { /* freed pages go back at once: nothing to refill */
    pop_burst("first burst", &populated, &faulted, &chunks);
    pop_free();
    pop_burst("again at once", &populated, &faulted, &chunks);
    CHECKF(populated == 0 && chunks >= POP_CHUNKS - 1, "with no purge delay %zu of %zu chunks populated", populated,
           chunks);
    pop_free();
    printf("populate: nothing populated with no purge delay\n");
    return;
  }
  pop_burst("first burst", &populated, &faulted, &chunks);
  CHECKF(populated == 0 && chunks >= POP_CHUNKS - 1, "a growing heap populated %zu of %zu chunks", populated, chunks);
  pop_free();
  pop_burst("again at once", &populated, &faulted, &chunks);
  CHECKF(populated + 1 >= chunks && chunks >= POP_CHUNKS - 1, "%zu of %zu chunks taken again populated", populated,
         chunks);
  pop_free();
  lz_trim(0);
  pop_burst("after malloc_trim", &populated, &faulted, &chunks);
  CHECKF(populated == 0 && faulted == chunks, "after malloc_trim %zu of %zu chunks populated", populated, chunks);
  pop_free();
  lz_heap_validate();
  printf("populate: clean chunks taken again soon after are populated, within what was given back\n");
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "holes";
  if (LZ_SECURE == 2 || LZ_HEAPS > 0) {
    printf("skipped: level-1 per-thread heap geometry needed\n");
    return 0;
  }
  if (strcmp(mode, "holes") == 0) run_holes();
  else if (strcmp(mode, "holes_refused") == 0) run_holes_refused();
  else if (strcmp(mode, "janitor") == 0) run_janitor();
  else if (strcmp(mode, "decay") == 0) run_decay();
  else if (strcmp(mode, "decay_gaps") == 0) run_decay_gaps();
  else if (strcmp(mode, "refault") == 0) run_refault();
  else if (strcmp(mode, "holes_refault") == 0) run_holes_refault();
  else if (strcmp(mode, "orphan") == 0) run_orphan();
  else if (strcmp(mode, "orphan_holes") == 0) run_orphan_holes();
  else if (strcmp(mode, "orphan_busy") == 0) run_orphan_busy();
  else if (strcmp(mode, "empty_keep") == 0) run_empty_keep();
  else if (strcmp(mode, "large_tick") == 0) run_large_tick();
  else if (strcmp(mode, "grow") == 0) run_grow();
  else if (strcmp(mode, "clock") == 0) run_clock();
  else if (strcmp(mode, "orphan_stages") == 0) run_orphan_stages();
  else if (strcmp(mode, "low_water") == 0) run_low_water();
  else if (strcmp(mode, "spare_tick") == 0) run_spare_tick();
  else if (strcmp(mode, "spare_janitor") == 0) run_spare_janitor();
  else if (strcmp(mode, "populate") == 0) run_populate();
  else CHECKF(0, "unknown mode %s", mode);
  return 0;
}
