/* pairs: a loop of n allocate+free pairs of one kind, for instruction
 * counts under callgrind (bench/pairs runs it with n and 2n pairs and
 * takes the difference: start-up, exit and the first pairs cancel out).
 *   pairs <kind> <n> <size>
 * kinds: malloc, calloc (calloc(1, size)), realloc0 (realloc(NULL, size)),
 * aligned (aligned_alloc(64, size)), memalign (posix_memalign(64)). Each
 * pair ends in free(). The block is kept opaque to the compiler. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: pairs malloc|calloc|realloc0|aligned|memalign N SIZE\n");
    return 2;
  }
  const char *kind = argv[1];
  long n = atol(argv[2]);
  size_t size = (size_t)atol(argv[3]);
  int k = !strcmp(kind, "malloc") ? 0 : !strcmp(kind, "calloc") ? 1 : !strcmp(kind, "realloc0") ? 2
        : !strcmp(kind, "aligned") ? 3 : !strcmp(kind, "memalign") ? 4 : -1;
  if (k < 0) {
    fprintf(stderr, "pairs: unknown kind %s\n", kind);
    return 2;
  }
  /* One loop per kind, the kind chosen outside it: the loop holds the
   * call, the opaque use and free() only. */
#define PAIRS(ALLOC)                                 \
  for (long i = 0; i < n; i++) {                     \
    void *p = ALLOC;                                 \
    if (p == NULL) {                                 \
      fprintf(stderr, "pairs: allocation failed\n"); \
      return 1;                                      \
    }                                                \
    __asm__ volatile("" : : "r"(p) : "memory");      \
    free(p);                                         \
  }
  switch (k) {
  case 0: PAIRS(malloc(size)) break;
  case 1: PAIRS(calloc(1, size)) break;
  case 2: PAIRS(realloc(NULL, size)) break;
  case 3: PAIRS(aligned_alloc(64, size)) break;
  default: PAIRS(posix_memalign(&p, 64, size) == 0 ? p : NULL) break;
  }
  return 0;
}
