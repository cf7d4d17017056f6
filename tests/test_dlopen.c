/* dlopen/dlclose of a library that allocates in its constructor and
 * destructor; blocks it made outlive it and are freed by the program. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); exit(1); } } while (0)

int main(int argc, char **argv) {
  CHECK(argc == 2);
  void *kept[200];
  for (int round = 0; round < 200; round++) {
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
    void *(*make)(size_t, int) = (void *(*)(size_t, int))dlsym(h, "plugin_make");
    CHECK(make != NULL);
    kept[round] = make((size_t)(round * 37 + 1), round & 0xff);
    CHECK(kept[round] != NULL);
    CHECK(dlclose(h) == 0);
  }
  for (int round = 0; round < 200; round++) {
    for (int k = 0; k < round * 37 + 1; k++) CHECK(((unsigned char *)kept[round])[k] == (round & 0xff));
    free(kept[round]);
  }
  puts("dlopen/dlclose 200 rounds ok");
  return 0;
}
