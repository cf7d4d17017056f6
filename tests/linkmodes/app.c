/* app.c: the application every link-mode test builds (tests/linkmodes/).
 *
 * Built by the test scripts with the system cc, in one of two flavours:
 *   -DLZ_APP_DLSYM   the app knows nothing of lzmalloc at link time (the
 *                    LD_PRELOAD mode): it finds lz_stats_get at run time with
 *                    dlsym(RTLD_DEFAULT, ...) and fails if it is not there.
 *   (default)        the app calls lz_stats_get and lz_usable_size directly
 *                    (linked against liblzmalloc.so or liblzmalloc.a).
 * It proves that lzmalloc, not glibc, serves its allocations:
 *   1. malloc_usable_size(malloc(24)) == 32 (lzmalloc's 32-byte class; glibc
 *      says 24);
 *   2. lzmalloc's in_use statistic grows by at least 10 MiB while the app
 *      holds 10 MiB of live blocks from malloc/calloc/realloc, and falls
 *      back when they are freed (unless statistics are compiled out);
 *   3. every block of the family (calloc, realloc, reallocarray, memalign,
 *      aligned_alloc, posix_memalign, valloc, pvalloc) and blocks that libc
 *      allocates internally (strdup, getline, open_memstream, fopen, thread
 *      start-up) are lzmalloc's: lzmalloc's usable-size lookup accepts them
 *      (it aborts with "invalid pointer" for a block it does not own) and
 *      they are freed with free(); a forked child allocates too;
 *   4. malloc_trim, free_sized and free_aligned_sized reach lzmalloc.
 * Prints "lzmalloc-app: OK <mode>" and exits 0 on success; anything else is
 * a failure.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lzmalloc.h"

#ifdef LZ_APP_DLSYM
#include <dlfcn.h>
#endif

static void (*stats_get)(lz_stats_t *);

/* C23 names, not declared by glibc 2.36's headers (nor defined by its libc):
 * lzmalloc defines them. Without lzmalloc at link time, found with dlsym. */
#ifdef LZ_APP_DLSYM
static void (*free_sized)(void *, size_t);
static void (*free_aligned_sized)(void *, size_t, size_t);
#else
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t alignment, size_t size);
#endif

static int failures;
#define CHECK(cond, ...)                                        \
  do {                                                          \
    if (!(cond)) {                                              \
      fprintf(stderr, "lzmalloc-app: FAIL %s:%d: %s: ", __FILE__, \
              __LINE__, #cond);                                 \
      fprintf(stderr, __VA_ARGS__);                             \
      fputc('\n', stderr);                                      \
      failures++;                                               \
    }                                                           \
  } while (0)

static size_t in_use(void) {
  lz_stats_t st;
  memset(&st, 0, sizeof st);
  stats_get(&st);
  return st.in_use;
}

/* The block must be lzmalloc's: malloc_usable_size is lzmalloc's in every
 * mode (and aborts for a foreign pointer), and must say at least `size`. */
static void check_block(const char *what, void *p, size_t size, size_t align) {
  CHECK(p != NULL, "%s returned NULL", what);
  if (p == NULL) return;
  CHECK(((uintptr_t)p & (align - 1)) == 0, "%s: %p not %zu-aligned", what, p, align);
  size_t u = malloc_usable_size(p);
  CHECK(u >= size, "%s: usable size %zu < %zu", what, u, size);
#ifndef LZ_APP_DLSYM
  CHECK(lz_usable_size(p) == u, "%s: lz_usable_size %zu != malloc_usable_size %zu", what,
        lz_usable_size(p), u);
#endif
}

static void *thread_main(void *arg) {
  char *s = strdup((const char *)arg);
  check_block("strdup in a thread", s, strlen(arg) + 1, 16);
  return s; /* freed by the main thread: a cross-thread free */
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "?";
#ifdef LZ_APP_DLSYM
  *(void **)&stats_get = dlsym(RTLD_DEFAULT, "lz_stats_get");
  if (stats_get == NULL) {
    fprintf(stderr, "lzmalloc-app: FAIL: dlsym(RTLD_DEFAULT, \"lz_stats_get\"): %s\n", dlerror());
    return 1;
  }
  *(void **)&free_sized = dlsym(RTLD_DEFAULT, "free_sized");
  *(void **)&free_aligned_sized = dlsym(RTLD_DEFAULT, "free_aligned_sized");
  if (free_sized == NULL || free_aligned_sized == NULL) {
    fprintf(stderr, "lzmalloc-app: FAIL: dlsym(RTLD_DEFAULT, \"free_sized\" / \"free_aligned_sized\") not found\n");
    return 1;
  }
#else
  stats_get = lz_stats_get;
#endif

  /* 1. The size class of a 24-byte block. */
  void *p24 = malloc(24);
  size_t u24 = malloc_usable_size(p24);
  CHECK(u24 == 32, "malloc_usable_size(malloc(24)) = %zu, want 32 (lzmalloc's class; glibc says 24)", u24);
  free(p24);

  /* 2. 10 MiB of live blocks show up in lzmalloc's in_use. */
  enum { SMALL = 2048, SMALL_SIZE = 2048, MID = 16, MID_SIZE = 128 * 1024 };
  const size_t want = (size_t)SMALL * SMALL_SIZE + (size_t)MID * MID_SIZE + 4u * 1024 * 1024; /* 10 MiB */
  /* volatile: the compiler may not elide these malloc/free pairs. */
  static void *volatile small[SMALL], *volatile mid[MID];
  size_t before = in_use();
  for (int i = 0; i < SMALL; i++) {
    small[i] = (i & 1) ? malloc(SMALL_SIZE) : calloc(1, SMALL_SIZE);
    CHECK(small[i] != NULL, "small block %d", i);
    if (small[i]) memset(small[i], i, SMALL_SIZE);
  }
  for (int i = 0; i < MID; i++) {
    mid[i] = realloc(NULL, MID_SIZE / 2);
    mid[i] = realloc(mid[i], MID_SIZE);
    CHECK(mid[i] != NULL, "medium block %d", i);
  }
  void *volatile large = malloc(4u * 1024 * 1024);
  CHECK(large != NULL, "4 MiB block");
  size_t during = in_use();
  /* A build with LZ_STATS=0 counts nothing: then the size-class and
   * pointer-validation checks (1, 3) are the proof. */
  const int stats_on = during != 0 || before != 0;
  if (!stats_on) fprintf(stderr, "lzmalloc-app: note: statistics are disabled (LZ_STATS=0)\n");
  CHECK(!stats_on || during >= before + want, "in_use grew by %zu bytes, want >= %zu (before %zu, during %zu)",
        during - before, want, before, during);
  for (int i = 0; i < SMALL; i++) free(small[i]);
  for (int i = 0; i < MID; i++) free(mid[i]);
  free(large);
  size_t after = in_use();
  CHECK(!stats_on || after + want <= during, "in_use fell by %zu bytes after the frees, want >= %zu",
        during - after, want);

  /* 3. The rest of the family. */
  void *p;
  p = calloc(10, 100);
  check_block("calloc", p, 1000, 16);
  p = realloc(p, 5000);
  check_block("realloc", p, 5000, 16);
  p = reallocarray(p, 100, 100);
  check_block("reallocarray", p, 10000, 16);
  free(p);
  p = memalign(256, 100);
  check_block("memalign", p, 100, 256);
  free(p);
  p = aligned_alloc(4096, 8192);
  check_block("aligned_alloc", p, 8192, 4096);
  free(p);
  p = NULL;
  CHECK(posix_memalign(&p, 64, 1000) == 0, "posix_memalign failed");
  check_block("posix_memalign", p, 1000, 64);
  free(p);
  p = valloc(100);
  check_block("valloc", p, 100, 4096);
  free(p);
  p = pvalloc(100);
  check_block("pvalloc", p, 4096, 4096);
  free(p);
  p = malloc(100);
  check_block("malloc for free_sized", p, 100, 16);
  free_sized(p, 100);
  p = aligned_alloc(64, 128);
  check_block("aligned_alloc for free_aligned_sized", p, 128, 64);
  free_aligned_sized(p, 64, 128);
  (void)malloc_trim(0);

  /* Blocks that libc allocates itself, freed by the application. */
  char *s = strdup("lzmalloc link mode test");
  check_block("strdup", s, 24, 16);
  free(s);
  char *buf = NULL;
  size_t len = 0;
  FILE *ms = open_memstream(&buf, &len);
  CHECK(ms != NULL, "open_memstream");
  for (int i = 0; i < 1000; i++) fprintf(ms, "line %d of the memstream\n", i);
  fclose(ms);
  check_block("open_memstream buffer", buf, len + 1, 16);
  FILE *f = fmemopen(buf, len, "r");
  CHECK(f != NULL, "fmemopen");
  char *line = NULL;
  size_t cap = 0;
  int lines = 0;
  while (getline(&line, &cap, f) > 0) lines++;
  CHECK(lines == 1000, "getline read %d lines", lines);
  check_block("getline buffer", line, cap, 16);
  free(line);
  fclose(f);
  free(buf);
  pthread_t th;
  void *ret = NULL;
  CHECK(pthread_create(&th, NULL, thread_main, "from another thread") == 0, "pthread_create");
  CHECK(pthread_join(th, &ret) == 0, "pthread_join");
  check_block("strdup returned by a thread", ret, 20, 16);
  free(ret);

  /* fork: the child allocates, checks and frees through lzmalloc too. */
  pid_t pid = fork();
  if (pid == 0) {
    char *c = strdup("in the child");
    _exit(c != NULL && malloc_usable_size(c) == 16 && malloc_usable_size(malloc(24)) == 32 ? 0 : 3);
  }
  int status = -1;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
        "forked child: status 0x%x", status);

  if (failures) {
    fprintf(stderr, "lzmalloc-app: %d check(s) failed (%s)\n", failures, mode);
    return 1;
  }
  printf("lzmalloc-app: OK %s (in_use +%zu bytes with 10 MiB live, malloc_usable_size(malloc(24)) = %zu)\n",
         mode, during - before, u24);
  return 0;
}
