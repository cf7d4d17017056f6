/* Calls that arrive before main (constructors of the program and of the
 * libraries it loads) and after it (atexit handlers, destructors), each
 * proved served by lzmalloc: its statistics count exactly the usable bytes
 * of the blocks, and its usable size agrees with malloc_usable_size. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lzmalloc.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); exit(1); } } while (0)

static char *early[64];

/* in_use is exact for the calling thread's heap with one heap per thread
 * (internal.h, heap_stats_t); shared heaps (LZ_HEAPS > 0) also count the
 * free lists they hold, so there it is only a bound. */
#ifndef LZ_HEAPS
#define LZ_HEAPS 0
#endif
#define EXACT (LZ_HEAPS == 0)

static size_t in_use(void) {
  lz_stats_t st;
  lz_stats_get(&st);
  return st.in_use;
}

__attribute__((constructor(101))) static void very_early(void) {
  size_t before = in_use(), sum = 0;
  for (int i = 0; i < 64; i++) {
    early[i] = malloc((size_t)(i * 131 + 1));
    CHECK(early[i] != NULL);
    memset(early[i], i, (size_t)(i * 131 + 1));
    CHECK(lz_usable_size(early[i]) == malloc_usable_size(early[i]));
    sum += malloc_usable_size(early[i]);
  }
  CHECK(EXACT ? in_use() == before + sum : in_use() >= sum);
}

static void *late;
static void at_exit(void) {
  size_t before = in_use(), late_bytes = malloc_usable_size(late);
  CHECK(before >= late_bytes);
  free(late);
  CHECK(!EXACT || in_use() == before - late_bytes);
  void *p = calloc(100, 100);
  CHECK(p != NULL);
  CHECK(lz_usable_size(p) == malloc_usable_size(p));
  CHECK(EXACT ? in_use() == before - late_bytes + malloc_usable_size(p) : in_use() >= malloc_usable_size(p));
  free(p);
}

int main(void) {
  for (int i = 0; i < 64; i++) {
    for (int k = 0; k < i * 131 + 1; k++) CHECK(early[i][k] == (char)i);
    free(early[i]);
  }
  late = malloc(12345);
  CHECK(late != NULL);
  CHECK(atexit(at_exit) == 0);
  puts("pre-main and post-main allocations ok");
  return 0;
}
