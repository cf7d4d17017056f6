/* Thread-exit order: destructors of keys made after lzmalloc's run after
 * its heap was abandoned; they must still be able to free and allocate,
 * and nothing may leak across 2,000 such threads. */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lzmalloc.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); exit(1); } } while (0)

static pthread_key_t key;

struct payload {
  void *blocks[16];
};

static void dtor(void *v) {
  struct payload *pl = v;
  for (int i = 0; i < 16; i++) {
    CHECK(((unsigned char *)pl->blocks[i])[0] == (unsigned char)i);
    free(pl->blocks[i]);
  }
  /* Allocate and free again after the heap was given up. */
  for (int i = 0; i < 64; i++) {
    void *p = malloc((size_t)(i * 97 % 5000) + 1);
    CHECK(p != NULL);
    memset(p, 3, 1);
    free(p);
  }
  free(pl);
}

static void *thread_main(void *arg) {
  (void)arg;
  struct payload *pl = malloc(sizeof *pl);
  CHECK(pl != NULL);
  for (int i = 0; i < 16; i++) {
    pl->blocks[i] = malloc((size_t)(16 << (i % 12)));
    CHECK(pl->blocks[i] != NULL);
    memset(pl->blocks[i], i, 16);
  }
  pthread_setspecific(key, pl);
  return NULL;
}

int main(void) {
  void *warm = malloc(1); /* lzmalloc's own key exists before ours */
  free(warm);
  CHECK(pthread_key_create(&key, dtor) == 0);
  lz_stats_t before, after;
  malloc_trim(0);
  lz_stats_get(&before);
  for (int wave = 0; wave < 500; wave++) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, thread_main, NULL) == 0);
    for (int i = 0; i < 4; i++) CHECK(pthread_join(t[i], NULL) == 0);
  }
  malloc_trim(0);
  lz_stats_get(&after);
  printf("in use before %zu after %zu bytes; heaps %llu; mapped %zu\n", before.in_use, after.in_use,
         (unsigned long long)after.heaps, after.mapped);
  CHECK(after.in_use <= before.in_use + 64 * 1024);
  CHECK(after.heaps <= 16); /* heaps of exited threads are reused */
  return 0;
}
