/* Helper program for test_options.sh: one action per argument, reporting
 * lzmalloc's statistics so the script can see what an option changed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lzmalloc.h"

int main(int argc, char **argv) {
  const char *what = argc > 1 ? argv[1] : "plain";
  lz_stats_t st;
  if (strcmp(what, "plain") == 0) {
    char *p = malloc(100);
    strcpy(p, "options ok");
    puts(p);
    free(p);
  } else if (strcmp(what, "purge") == 0) {
    /* A medium block freed: with purge delay 0 its pages go back at once.
     * (At hardening level 2 once it leaves the quarantine, at most 1 MiB:
     * the second block's free pushes it out.) */
    void *keep = malloc(40000);
    char *p = malloc(512 * 1024);
    char *q = malloc(600 * 1024);
    memset(p, 1, 512 * 1024);
    free(p);
    free(q);
    lz_stats_get(&st);
    printf("pages_purged %llu\n", (unsigned long long)st.pages_purged);
    free(keep);
  } else if (strcmp(what, "largecache") == 0) {
    char *p = malloc(4 << 20);
    memset(p, 1, 4096);
    lz_stats_get(&st);
    size_t before = st.mapped;
    free(p);
    lz_stats_get(&st);
    printf("mapped_dropped %d\n", st.mapped < before);
  } else if (strcmp(what, "overrun") == 0) {
    char *p = malloc(3 << 20);
    size_t n = lz_usable_size(p);
    memset(p, 1, n);
    puts("before overrun");
    fflush(stdout);
    ((volatile char *)p)[n] = 1; /* one byte past the usable size */
    puts("after overrun");
  }
  return 0;
}
