/* dlopen/dlclose of a library that allocates in its constructor and
 * destructor; blocks it made outlive it and are freed by the program.
 * lzmalloc's statistics prove it served the plugin: its constructor's
 * blocks appear in in_use and leave with dlclose, each block the plugin
 * makes counts exactly its usable size, and freeing them all gives back
 * exactly their bytes. */
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lzmalloc.h"

#define CHECKF(c, ...) do { if (!(c)) { fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); exit(1); } } while (0)
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); exit(1); } } while (0)

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

int main(int argc, char **argv) {
  CHECK(argc == 2);
  void *kept[200];
  for (int round = 0; round < 200; round++) {
    size_t before = in_use();
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
    size_t opened = in_use();
    void *(*make)(size_t, int) = (void *(*)(size_t, int))dlsym(h, "plugin_make");
    size_t (*held_bytes)(void) = (size_t (*)(void))dlsym(h, "plugin_held_bytes");
    CHECK(make != NULL && held_bytes != NULL);
    size_t held = held_bytes();
    CHECK(held >= 32 * 64);
    CHECK(EXACT ? opened >= before + held : opened >= held); /* the constructor's blocks (and ld.so's) */
    size_t made = in_use();
    kept[round] = make((size_t)(round * 37 + 1), round & 0xff);
    CHECK(kept[round] != NULL);
    CHECK(lz_usable_size(kept[round]) == malloc_usable_size(kept[round]));
    CHECK(!EXACT || in_use() == made + lz_usable_size(kept[round]));
    size_t closing = in_use();
    CHECK(dlclose(h) == 0);
    CHECK(!EXACT || in_use() + held <= closing); /* the destructor freed them */
  }
  /* The blocks the plugin made outlive it; freeing them gives back exactly
   * their usable bytes (the dynamic loader keeps a few blocks of its own
   * across dlclose, so the figure is not compared with the start). */
  size_t kept_bytes = 0, before_free = in_use();
  for (int round = 0; round < 200; round++) {
    for (int k = 0; k < round * 37 + 1; k++) CHECK(((unsigned char *)kept[round])[k] == (round & 0xff));
    kept_bytes += malloc_usable_size(kept[round]);
    free(kept[round]);
  }
  CHECKF(!EXACT || in_use() == before_free - kept_bytes, "in_use %zu, expected %zu", in_use(), before_free - kept_bytes);
  puts("dlopen/dlclose 200 rounds ok");
  return 0;
}
