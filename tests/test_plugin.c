/* A plugin for test_dlopen: allocates in its constructor, hands blocks to
 * the program, frees in its destructor. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

static void *held[32];

__attribute__((constructor)) static void plugin_init(void) {
  for (int i = 0; i < 32; i++) {
    held[i] = malloc((size_t)(64 << (i % 14)));
    if (held[i]) memset(held[i], 0x5a, 64);
  }
}

__attribute__((destructor)) static void plugin_fini(void) {
  for (int i = 0; i < 32; i++) free(held[i]);
}

/* Usable bytes of the blocks the constructor holds, as malloc sees them. */
size_t plugin_held_bytes(void) {
  size_t n = 0;
  for (int i = 0; i < 32; i++) n += held[i] ? malloc_usable_size(held[i]) : 0;
  return n;
}

void *plugin_make(size_t n, int fill) {
  void *p = malloc(n);
  if (p) memset(p, fill, n);
  return p;
}
