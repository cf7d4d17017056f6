/* fork_pages: what a fork child copies of the allocator's memory (API).
 *
 * A shell forks for every pipeline and command substitution; each page the
 * child (or the parent) writes after fork is a copy-on-write fault and a
 * page copied. Measured in the child with /proc/self/smaps (Private_Dirty:
 * pages this process alone maps and has written, so after fork exactly the
 * pages it wrote since):
 *   quiet  the fork handlers of a single-threaded process write nothing:
 *          right after fork the child has written no page of the library's
 *          data (its .data and the .bss behind it: the pages of its
 *          writable segment that /proc/self/pagemap shows present and
 *          mapped by the child alone);
 *   frees  a child that frees 8 small blocks the parent allocated (one
 *          slab page) and allocates 8 again copies at most 3 pages: the
 *          blocks' page, their span descriptor's page, the heap's page;
 *   sizes  a child of a process past its start-up, whose slabs of 8 sizes
 *          all have free blocks, that allocates one block of each size
 *          writes at most 6 pages (its first blocks come from a span of
 *          its own: its page, its descriptor's page, the heap's page, and
 *          now and then a page of chunk metadata more; 3 to 5 measured),
 *          not a page of the parent's slabs per size (9 pages);
 *   look   a child of a process whose look at idle slabs (slab.c) is
 *          overdue at fork writes no page of the parent's freed blocks
 *          in its first ticks: its own look comes a period after its
 *          first call;
 *   text   the library code a child runs to free and allocate, and the
 *          dynamic symbols a lookup in the library reads (its headers'
 *          segment), lie in one mapping and one fault-around window (one
 *          page fault maps them: the first segment holds the headers and
 *          the code, and the library loads 64 KiB aligned), also once
 *          the decay of its freed pages has run, and reads none of
 *          the library's .rodata; a child that runs a thread, empties
 *          slabs and cycles large blocks maps no page of the cold code's
 *          window (the hot window and the last one only).
 * Hardening level 2 keeps its own state on other pages: skipped there.
 * Nothing in the measurement allocates (open/read into a static buffer).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "smaps.h"
#include "testutil.h"

/* Private_Dirty (kB) of every mapping. */
static unsigned long private_dirty_kb(void) {
  size_t n = tu_read_proc("/proc/self/smaps");
  const char *at = tu_proc_buf;
  tu_smaps_entry_t e;
  unsigned long total = 0;
  while (tu_smaps_next(&at, n, &e)) total += tu_smaps_field_kb(&e, "Private_Dirty:");
  return total;
}

/* Dirties the next 32 kB of the stack below the caller's frame, so a call
 * that goes deeper than the code before it (a slow path) copies no stack
 * page of its own: the stack's top lies at a random offset in its page, and
 * a page crossed by chance is not the library's copy. */
static __attribute__((noinline)) void stack_prefault(void) {
  volatile char pad[32 * 1024];
  for (size_t i = 0; i < sizeof pad; i += 256) pad[i] = 1;
}

static int child_status(pid_t pid) {
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_quiet(void) {
  void *keep = malloc(100);
  CHECK(keep != NULL);
  tu_lib_data_t d;
  CHECK(tu_lib_data(&d));
  /* The parent's own written pages: found the segment. */
  CHECK(tu_pagemap_count(d.lo, d.hi, TU_PM_PRESENT | TU_PM_EXCLUSIVE) > 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    size_t pages = tu_pagemap_count(d.lo, d.hi, TU_PM_PRESENT | TU_PM_EXCLUSIVE);
    if (pages != 0) {
      fprintf(stderr, "quiet: the child wrote %zu of the library's data pages during fork\n", pages);
      _exit(1);
    }
    _exit(0);
  }
  CHECK(child_status(pid) == 0);
  free(keep);
}

static void test_frees(void) {
  void *b[8];
  for (int i = 0; i < 8; i++) {
    b[i] = malloc(64);
    CHECK(b[i] != NULL);
    memset(b[i], i, 64);
  }
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    memset(tu_proc_buf, 0, sizeof tu_proc_buf); /* the buffer's own pages, copied now */
    stack_prefault();
    /* b[] is on this frame's stack, which may lie on a page of its own: the
     * test's writes to it below are not the library's copies. */
    for (int i = 0; i < 8; i++) ((void *volatile *)b)[i] = b[i];
    unsigned long before = private_dirty_kb();
    for (int i = 0; i < 8; i++) free(b[i]);
    for (int i = 0; i < 8; i++) b[i] = malloc(64);
    unsigned long after = private_dirty_kb();
    for (int i = 0; i < 8; i++) free(b[i]);
    if (after - before > 3 * 4) {
      fprintf(stderr, "frees: the child copied %lu kB to free and allocate 8 blocks (at most 12 kB)\n",
              after - before);
      _exit(1);
    }
    _exit(0);
  }
  CHECK(child_status(pid) == 0);
  for (int i = 0; i < 8; i++) free(b[i]);
}

static void test_sizes(void) {
  /* Past start-up (slab.c: 512 slow-path entries or 64 slab pages), with
   * blocks of each size free on many pages of its slabs. */
  enum { N = 4000, SIZES = 8 };
  static void *keep[N];
  for (int i = 0; i < N; i++) {
    size_t n = (size_t)(16 + (i % SIZES) * 40);
    keep[i] = malloc(n);
    CHECK(keep[i] != NULL);
    memset(keep[i], 1, n);
  }
  for (int i = 0; i < N; i += 2) free(keep[i]);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    memset(tu_proc_buf, 0, sizeof tu_proc_buf);
    stack_prefault();
    void *q[SIZES];
    unsigned long before = private_dirty_kb();
    for (int i = 0; i < SIZES; i++) {
      size_t n = (size_t)(16 + i * 40);
      ((void *volatile *)q)[i] = malloc(n);
      if (q[i] == NULL) _exit(2);
      memset(q[i], 2, n);
    }
    unsigned long after = private_dirty_kb();
    for (int i = 0; i < SIZES; i++) free(q[i]);
    if (after - before > 6 * 4) {
      fprintf(stderr, "sizes: the child wrote %lu kB to allocate %d blocks of %d sizes (at most 24 kB)\n",
              after - before, SIZES, SIZES);
      _exit(1);
    }
    _exit(0);
  }
  CHECK(child_status(pid) == 0);
  for (int i = 1; i < N; i += 2) free(keep[i]);
}

/* test_look's blocks: N of SIZES sizes, in rounds of one block a size;
 * every other round freed by the parent. */
enum { LOOK_N = 4800, LOOK_SIZES = 24 };
static void *look_keep[LOOK_N];
static size_t look_size(int i) { return (size_t)(16 + (i % LOOK_SIZES) * 48); }
static int look_freed(int i) { return (i / LOOK_SIZES) % 2 == 0; }

/* The parent's freed blocks on a page this process has written since
 * fork (present and mapped by it alone). */
static size_t look_blocks_copied(void) {
  size_t blocks = 0;
  for (int i = 0; i < LOOK_N; i++) {
    if (!look_freed(i)) continue;
    uintptr_t lo = (uintptr_t)look_keep[i] & ~(uintptr_t)4095;
    uintptr_t hi = ((uintptr_t)look_keep[i] + look_size(i) + 4095) & ~(uintptr_t)4095;
    blocks += tu_pagemap_count(lo, hi, TU_PM_PRESENT | TU_PM_EXCLUSIVE) != 0;
  }
  return blocks;
}

static void test_look(void) {
  /* The parent frees every other round of blocks of 24 sizes after its
   * last allocation (the frees go on the free lists of the classes' first
   * spans) and waits past the look's period (slab.c, 500 ms), then forks.
   * The child cycles large blocks, each allocation a tick of its heap
   * (heap.c, large_malloc_direct), and must not have written a page
   * of the parent's freed blocks: its look at idle slabs comes a whole
   * period after its first call, not at its first tick because the
   * parent's was overdue (a walk of those lists, each tail's page
   * copied). */
  for (int i = 0; i < LOOK_N; i++) {
    look_keep[i] = malloc(look_size(i));
    CHECK(look_keep[i] != NULL);
    memset(look_keep[i], 1, look_size(i));
  }
  for (int i = 0; i < LOOK_N; i++)
    if (look_freed(i)) free(look_keep[i]);
  usleep(700 * 1000);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    double t0 = tu_now();
    for (int i = 0; i < 8; i++) {
      void *m = malloc(4 << 20);
      if (m == NULL) _exit(2);
      ((volatile char *)m)[0] = 1;
      free(m);
    }
    double took = tu_now() - t0;
    size_t copied = look_blocks_copied();
    /* The period, by the child's clock: a machine that stalled the loop
     * that long lets the look come legitimately. */
    if (copied != 0 && took < 0.4) {
      fprintf(stderr, "look: the child wrote the pages of %zu of the parent's freed blocks at its first ticks\n",
              copied);
      _exit(1);
    }
    _exit(0);
  }
  CHECK(child_status(pid) == 0);
  for (int i = 0; i < LOOK_N; i++)
    if (!look_freed(i)) free(look_keep[i]);
}

#if defined(__OPTIMIZE__) /* test_text's helpers */
/* The library's executable mapping, from /proc/self/maps: 1 if found. */
__attribute__((unused)) /* optimized builds only: test_text */
static int lib_text(uintptr_t *lo, uintptr_t *hi) {
  size_t n = tu_read_proc("/proc/self/maps");
  for (const char *p = tu_proc_buf; p < tu_proc_buf + n;) {
    const char *eol = strchr(p, '\n');
    if (eol == NULL) break;
    unsigned long a, b;
    char perms[5] = {0};
    if (memmem(p, (size_t)(eol - p), "liblzmalloc", 11) != NULL && sscanf(p, "%lx-%lx %4s", &a, &b, perms) == 3 &&
        perms[2] == 'x') {
      *lo = a;
      *hi = b;
      return 1;
    }
    p = eol + 1;
  }
  return 0;
}

/* Pages of [lo, hi) mapped in this process (/proc/self/pagemap, bit 63:
 * present). */
__attribute__((unused)) /* optimized builds only: test_text */
static int text_pages(uintptr_t lo, uintptr_t hi) {
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  CHECK(fd >= 0);
  int pages = 0;
  for (uintptr_t a = lo; a < hi; a += 4096) {
    uint64_t e = 0;
    CHECK(pread(fd, &e, sizeof e, (off_t)(a / 4096 * 8)) == (ssize_t)sizeof e);
    pages += (int)(e >> 63);
  }
  close(fd);
  return pages;
}

/* The library's read-only segments (its headers and dynamic symbols, its
 * code, its read-only data: every PT_LOAD without PF_W), page aligned. */
enum { RO_SEGS_MAX = 8 };
static struct {
  uintptr_t lo, hi;
} ro_segs[RO_SEGS_MAX];
static int ro_nsegs;

static int ro_segs_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  (void)arg;
  if (info->dlpi_name == NULL || strstr(info->dlpi_name, "liblzmalloc") == NULL) return 0;
  for (int i = 0; i < info->dlpi_phnum && ro_nsegs < RO_SEGS_MAX; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W)) continue;
    ro_segs[ro_nsegs].lo = (info->dlpi_addr + ph->p_vaddr) & ~(uintptr_t)4095;
    ro_segs[ro_nsegs].hi = (info->dlpi_addr + ph->p_vaddr + ph->p_filesz + 4095) & ~(uintptr_t)4095;
    ro_nsegs++;
  }
  return 1;
}

/* How the pages of the library's read-only segments mapped in this process
 * spread: *segs segments and *windows 64 KiB-aligned windows (the kernel's
 * fault-around unit: a page fault maps the pages of its window that the
 * page cache holds, within its mapping) hold at least one. */
__attribute__((unused)) /* optimized builds only: test_text */
static void ro_spread(int *segs, int *windows) {
  ro_nsegs = 0;
  CHECK(dl_iterate_phdr(ro_segs_cb, NULL) == 1 && ro_nsegs > 0);
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  CHECK(fd >= 0);
  uintptr_t last_window = 0;
  *segs = *windows = 0;
  for (int i = 0; i < ro_nsegs; i++) {
    int seen = 0;
    for (uintptr_t a = ro_segs[i].lo; a < ro_segs[i].hi; a += 4096) {
      uint64_t e = 0;
      CHECK(pread(fd, &e, sizeof e, (off_t)(a / 4096 * 8)) == (ssize_t)sizeof e);
      if (!(e >> 63)) continue;
      seen = 1;
      if (*windows == 0 || a >> 16 != last_window) (*windows)++;
      last_window = a >> 16;
    }
    *segs += seen;
  }
  close(fd);
}

#endif

/* A fork child maps none of the library's code (fork copies no page
 * table of a file mapping): what it runs to free and allocate (small,
 * medium, zeroed, reallocated) comes in by page faults, each mapping 16
 * pages around it (the kernel's fault-around; a few more where a large
 * page-cache folio straddles the window's end). That code is kept together
 * (src/internal.h, lz_text_hot): one fault, at most 20 pages (spread over
 * the text as before, it took two faults and all 23 pages). The headers'
 * segment, which a symbol lookup reads, shares that mapping and window
 * (with the headers in a segment of their own, a lookup cost a second
 * fault). Optimized
 * builds only (a build without optimization has no such layout). */
static void test_text(void) {
#if defined(__OPTIMIZE__)
  uintptr_t lo, hi;
  CHECK(lib_text(&lo, &hi));
  void *b[8];
  for (int i = 0; i < 8; i++) {
    b[i] = malloc((size_t)(24 + i * 100));
    CHECK(b[i] != NULL);
  }
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    for (int i = 0; i < 8; i++) free(b[i]);
    void *q[8];
    for (int i = 0; i < 8; i++) q[i] = malloc((size_t)(16 + i * 40));
    void *z = calloc(10, 100);
    void *m = malloc(100000);
    void *r = realloc(q[0], 3000);
    if (z == NULL || m == NULL || r == NULL) _exit(2);
    q[0] = r;
    for (int i = 0; i < 8; i++) free(q[i]);
    free(z);
    free(m);
    /* A symbol looked up in the library (as the lazy binding of a
     * function the child calls first is): its hash table and symbols. */
    if (dlsym(RTLD_DEFAULT, "lz_stats_get") == NULL) _exit(2);
    int n = text_pages(lo, hi), segs, windows;
    ro_spread(&segs, &windows);
    if (n > 20 || segs != 1 || windows != 1) {
      fprintf(stderr,
              "text: the child mapped %d pages of library code (one fault maps 16 to 20), pages of %d read-only "
              "segments of the library in %d windows of 64 KiB (want 1 and 1: one fault)\n",
              n, segs, windows);
      _exit(1);
    }
    _exit(0);
  }
  CHECK(child_status(pid) == 0);
  for (int i = 0; i < 8; i++) free(b[i]);
#endif
}

/* Pages of the n blocks of `size` at b[] resident (mincore; medium
 * blocks start on a page). */
__attribute__((unused)) /* optimized builds only: test_text_purge */
static long resident_pages(void *const *b, int n, size_t size) {
  static unsigned char vec[64];
  long pages = 0;
  for (int i = 0; i < n; i++) {
    CHECK(size / 4096 <= sizeof vec && mincore(b[i], size, vec) == 0);
    for (size_t k = 0; k < size / 4096; k++) pages += vec[k] & 1;
  }
  return pages;
}

/* The decay of freed pages (src/purge.c) runs in every program that frees
 * pages and keeps allocating: its code lies in the same window of hot text
 * (one fault, at most 20 pages), and it reads no .rodata (a vectorized
 * count of the chunk's bitmaps loaded its masks from there: the segment's
 * 20 KiB became resident, and the code, outside the hot text, cost a
 * second window: every page of the text). A fork child maps no library
 * page until it runs the code, so what it has mapped once its pages
 * decayed is what that takes. Optimized builds only, as test_text. */
static void test_text_purge(void) {
#if defined(__OPTIMIZE__)
  uintptr_t lo, hi;
  CHECK(lib_text(&lo, &hi));
  void *keep = malloc(100); /* the chunk never empties: its pages decay */
  CHECK(keep != NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    enum { N = 12, SIZE = 64 * 1024 };
    void *m[N];
    void *cycle = malloc(40000); /* then malloc and free of it reuse its span */
    if (cycle == NULL) _exit(2);
    for (int i = 0; i < N; i++) {
      m[i] = malloc(SIZE);
      if (m[i] == NULL) _exit(2);
      memset(m[i], 7, SIZE);
    }
    long resident0 = resident_pages(m, N, SIZE);
    for (int i = 0; i < N; i++) free(m[i]);
    /* Slow-path entries (every 64th ticks the purge) until the decay has
     * given back at least the pages of a block (mincore: no library code
     * runs to tell, as lz_stats_get's would). */
    long resident = resident0;
    for (int round = 0; round < 600 && resident > resident0 - SIZE / 4096; round++) {
      for (int k = 0; k < 200; k++) {
        free(cycle);
        cycle = malloc(40000);
        if (cycle == NULL) _exit(2);
      }
      usleep(10000);
      resident = resident_pages(m, N, SIZE);
    }
    if (resident > resident0 - SIZE / 4096) {
      fprintf(stderr, "text_purge: the decay gave back %ld of %ld pages in 6 s\n", resident0 - resident, resident0);
      _exit(3);
    }
    int n = text_pages(lo, hi);
    long ro = tu_rodata_pages();
    if (n > 20 || ro != 0) {
      fprintf(stderr, "text_purge: the decay mapped %d pages of library code (one fault maps 16 to 20) and %ld pages of its .rodata (want 0)\n", n, ro);
      _exit(1);
    }
    _exit(0);
  }
  CHECK(child_status(pid) == 0);
  free(keep);
#endif
}

/* How many threads the process runs. */
__attribute__((unused)) /* optimized builds only: test_rodata_threads */
static long status_threads(void) {
  size_t n = tu_read_proc("/proc/self/status");
  const char *t = strstr(tu_proc_buf, "\nThreads:");
  (void)n;
  return t != NULL ? strtol(t + 9, NULL, 10) : -1;
}

enum { TT_BLOCKS = 64 };
static void *tt_blocks[TT_BLOCKS];

__attribute__((unused)) /* optimized builds only: test_rodata_threads */
static void *tt_thread(void *arg) {
  (void)arg;
  for (int i = 0; i < TT_BLOCKS; i++) {
    size_t size = i % 8 == 7 ? 40000 + (size_t)i * 1000 : 24 + (size_t)i * 60;
    tt_blocks[i] = malloc(size);
    if (tt_blocks[i] == NULL) return NULL;
    memset(tt_blocks[i], 3, size);
  }
  return tt_blocks;
}

/* Rounds that allocate many blocks and free them all (slabs emptied:
 * spares kept, looked at and given back), then large blocks of changing
 * sizes freed and allocated again (the large-block cache's ranges). */
__attribute__((unused)) /* optimized builds only: test_rodata_threads */
static int tt_late_work(void) {
  enum { N = 4000 };
  static void *v[N];
  for (int round = 0; round < 20; round++) {
    for (int i = 0; i < N; i++) {
      v[i] = malloc(64 + (size_t)(i % 5) * 32);
      if (v[i] == NULL) return -1;
      memset(v[i], 2, 64);
    }
    for (int i = 0; i < N; i++) free(v[i]);
    usleep(2000);
  }
  void *big[3] = {NULL, NULL, NULL};
  for (int round = 0; round < 30; round++) {
    free(big[round % 3]);
    size_t n = (size_t)(5 + (round * 7) % 20) << 20;
    big[round % 3] = malloc(n);
    if (big[round % 3] == NULL) return -1;
    memset(big[round % 3], 3, n);
  }
  for (int k = 0; k < 3; k++) free(big[k]);
  return 0;
}

/* A threaded process runs more of the library: frees of another
 * thread's blocks, a thread's exit, the background thread's start and
 * passes (which read /proc/self/status after a thread exited), and so
 * does a process that runs a while: spare slabs, the large-block cache
 * (tt_late_work). That code lies at the end of the code segment, a
 * window of its own (src/internal.h, lz_text_thread and lz_text_late),
 * which the segment's end cuts short: none of it runs in the cold code
 * between the hot code's window and that last window (16 pages, which
 * every threaded process used to map besides the last window's 11; 4 to
 * 12 KiB of spares, large-cache and C++ code took them). In a fork child,
 * as test_text_purge. */
static void test_rodata_threads(void) {
#if defined(__OPTIMIZE__)
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    pthread_t t;
    void *ret = NULL;
    if (pthread_create(&t, NULL, tt_thread, NULL) != 0 || pthread_join(t, &ret) != 0 || ret == NULL) _exit(2);
    for (int i = 0; i < TT_BLOCKS; i++) free(tt_blocks[i]); /* another thread's blocks */
    if (tt_late_work() != 0) _exit(2);
    /* Allocations (slow-path ticks) while the background thread, started
     * once there is memory to give back, makes its passes. */
    int seen = 0;
    for (int round = 0; round < 300 && seen < 30; round++) {
      for (int k = 0; k < 200; k++) {
        void *q = malloc(40000);
        if (q == NULL) _exit(2);
        free(q);
      }
      usleep(10000);
      if (seen > 0 || status_threads() >= 2) seen++;
    }
    /* (A build whose freed memory goes back at once never starts the
     * background thread: seen stays 0, and the rest is checked.) */
    uintptr_t lo, hi, tlo, thi;
    if (!lib_text(&lo, &hi) || !tu_lib_section(".text.lzmalloc_thread", &tlo, &thi)) _exit(2);
    uintptr_t last = tlo & ~(uintptr_t)0xffff; /* the last window's start */
    int middle = last > lo + 0x10000 ? text_pages(lo + 0x10000, last) : 0;
    if (middle != 0) {
      fprintf(stderr, "rodata_threads: a thread, its exit, frees of its blocks, emptied slabs, large blocks and %s mapped %d pages of the library's cold code (want 0: the hot window and the last one only)\n",
              seen ? "the background thread's passes" : "no background thread", middle);
      _exit(1);
    }
    _exit(0);
  }
  CHECK(child_status(pid) == 0);
#endif
}

int main(void) {
  void *p = malloc(1);
  int level2 = malloc_usable_size(p) == 1; /* level 2 reports the requested size */
  free(p);
  if (level2) {
    printf("fork_pages: skipped at hardening level 2\n");
    return 0;
  }
  test_quiet();
  test_frees();
  test_sizes();
  test_look();
  test_text();
  test_text_purge();
  test_rodata_threads();
  printf("fork_pages: ok\n");
  return 0;
}
