/* Calls that arrive before main (constructors of the program and of the
 * libraries it loads) and after it (atexit handlers, destructors). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); exit(1); } } while (0)

static char *early[64];

__attribute__((constructor(101))) static void very_early(void) {
  for (int i = 0; i < 64; i++) {
    early[i] = malloc((size_t)(i * 131 + 1));
    CHECK(early[i] != NULL);
    memset(early[i], i, (size_t)(i * 131 + 1));
  }
}

static void *late;
static void at_exit(void) {
  free(late);
  void *p = calloc(100, 100);
  CHECK(p != NULL);
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
