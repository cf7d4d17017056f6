/* test_hugepages: densely used chunks are backed by transparent huge pages.
 *
 *   test_hugepages auto     (LZMALLOC_HUGEPAGES=auto) 64 MiB of 256-byte blocks
 *                           fill their chunks densely; after a free starts
 *                           the janitor, AnonHugePages of the mappings that
 *                           hold those blocks (/proc/self/smaps) reaches at
 *                           least half of them (polling, generous timeout).
 *   test_hugepages always   (LZMALLOC_HUGEPAGES=always) the same blocks are
 *                           in huge pages from their first touch.
 *   test_hugepages never    (LZMALLOC_HUGEPAGES=never, the default) none,
 *                           even after the janitor ran.
 * Exit status 77 (ctest: skipped, with the reason printed) where this
 * kernel has no transparent huge pages or no MADV_COLLAPSE (auto only),
 * and where the kernel itself failed to find free huge pages while the
 * test ran (memory fragmented on a busy machine: /proc/vmstat counts a
 * fault that fell back to small pages or a collapse that found none) for
 * all the huge pages missing, so the shortfall is the kernel's, not the
 * advice's.
 */
#include <stdbool.h>
#include <sys/mman.h>

#include "config.h"
#include "lzmalloc.h"
#include "testutil.h"

#define BLOCK 256
#define TOTAL ((size_t)64 << 20)
#define NBLOCKS (TOTAL / BLOCK)
#define CHUNK ((uintptr_t)2 << 20)
#define MAXCHUNKS 256

static void *blocks[NBLOCKS];
static uintptr_t chunks[MAXCHUNKS];
static int nchunks;

static void skip(const char *why) {
  printf("SKIPPED: %s\n", why);
  exit(77);
}

/* AnonHugePages (bytes) of the smaps entries that overlap our chunks. */
static size_t huge_bytes(void) {
  FILE *f = fopen("/proc/self/smaps", "r");
  CHECK(f != NULL);
  char line[512];
  bool ours = false;
  size_t total = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
      ours = false;
      for (int i = 0; i < nchunks; i++)
        if (chunks[i] < hi && chunks[i] + CHUNK > lo) ours = true;
      continue;
    }
    unsigned long kb;
    if (ours && sscanf(line, "AnonHugePages: %lu kB", &kb) == 1) total += kb << 10;
  }
  fclose(f);
  return total;
}

/* Huge pages the kernel failed to provide, in the whole system since it
 * started: page faults in an advised range that fell back to small pages,
 * and collapses that found no free huge page (one of either per 2 MiB
 * range at most before the range is retried). */
static unsigned long thp_refused(void) {
  FILE *f = fopen("/proc/vmstat", "r");
  if (f == NULL) return 0;
  char name[64];
  unsigned long v, n = 0;
  while (fscanf(f, "%63s %lu", name, &v) == 2)
    if (strcmp(name, "thp_fault_fallback") == 0 || strcmp(name, "thp_collapse_alloc_failed") == 0) n += v;
  fclose(f);
  return n;
}

static void fill(void) {
  for (size_t i = 0; i < NBLOCKS; i++) {
    blocks[i] = lz_malloc(BLOCK);
    CHECK(blocks[i] != NULL);
    memset(blocks[i], 7, BLOCK);
    uintptr_t c = (uintptr_t)blocks[i] & ~(CHUNK - 1);
    bool seen = false;
    for (int k = 0; k < nchunks && !seen; k++) seen = chunks[k] == c;
    if (!seen && nchunks < MAXCHUNKS) chunks[nchunks++] = c;
  }
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "auto";
  setvbuf(stdout, NULL, _IONBF, 0);
  void *probe = lz_malloc(1);
  bool level2 = lz_usable_size(probe) == 1; /* level 2 reports the requested size */
  lz_free(probe);
  if (level2) skip("hardening level 2: guard pages split chunks into 4 KiB mappings");
  char thp[256] = {0};
  FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (f == NULL || fgets(thp, sizeof thp, f) == NULL) skip("no /sys/kernel/mm/transparent_hugepage/enabled");
  fclose(f);
  if (strstr(thp, "[never]") != NULL) skip("transparent huge pages are disabled ([never])");
  bool system_always = strstr(thp, "[always]") != NULL;
  if (strcmp(mode, "auto") == 0) {
    /* MADV_COLLAPSE (Linux 6.1) on a scratch huge page's worth of memory. */
    size_t sz = 2 * CHUNK;
    uint8_t *m = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    uint8_t *a = (uint8_t *)(((uintptr_t)m + CHUNK - 1) & ~(CHUNK - 1));
    memset(a, 1, CHUNK);
    int rc = madvise(a, CHUNK, 25 /* MADV_COLLAPSE */);
    munmap(m, sz);
    if (rc != 0) skip("madvise(MADV_COLLAPSE) refused here: the janitor cannot collapse dense chunks");
  }
  if (strcmp(mode, "never") == 0 && system_always) skip("the system THP mode is [always]: 'never' only stops advising");

  unsigned long refused0 = thp_refused();
  fill();
  printf("%d chunks hold %zu MiB of %d-byte blocks; AnonHugePages there: %zu KiB\n", nchunks, TOTAL >> 20, BLOCK,
         huge_bytes() >> 10);
  /* A freed large block: the janitor starts (and passes over the heap). */
  lz_free(lz_malloc(3u << 20));
  size_t want = TOTAL / 2;
  if (strcmp(mode, "never") == 0) {
    usleep(500 * 1000);
    size_t h = huge_bytes();
    CHECKF(h == 0, "LZMALLOC_HUGEPAGES=never: %zu KiB in huge pages", h >> 10);
  } else {
    double t0 = tu_now();
    size_t h = huge_bytes();
    while (h < want && tu_now() - t0 < 30.0) {
      usleep(20 * 1000);
      h = huge_bytes();
    }
    unsigned long refused = thp_refused() - refused0;
    if (h < want && (want - h) <= refused * CHUNK) {
      printf("SKIPPED: %s: %zu KiB of %zu MiB in huge pages after %.0f s; the kernel failed to find %lu huge "
             "pages meanwhile (fragmented memory), at least the %zu missing\n",
             mode, h >> 10, TOTAL >> 20, tu_now() - t0, refused, (size_t)((want - h + CHUNK - 1) / CHUNK));
      exit(77);
    }
    CHECKF(h >= want, "%s: only %zu KiB of %zu MiB in huge pages after %.0f s (the kernel failed to find %lu meanwhile)",
           mode, h >> 10, TOTAL >> 20, tu_now() - t0, refused);
    printf("%s: %zu MiB in huge pages after %.2f s\n", mode, h >> 20, tu_now() - t0);
  }
  for (size_t i = 0; i < NBLOCKS; i++) {
    CHECK(((unsigned char *)blocks[i])[BLOCK - 1] == 7);
    lz_free(blocks[i]);
  }
  printf("ok: %s\n", mode);
  return 0;
}
