/* commit: the memory this process counts against the system's commit
 * limit, after allocating n blocks of size bytes (kept live): the sum of
 * its mappings whose VmFlags in /proc/self/smaps say "ac" (accountable:
 * private writable memory, resident or not). With vm.overcommit_memory=2
 * the kernel refuses a mapping once the sum over all processes would pass
 * the limit; in any mode it is Committed_AS in /proc/meminfo.
 *   commit <n> <size>      prints KiB
 * bench/commit runs it under each allocator. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: commit N SIZE\n");
    return 2;
  }
  long n = atol(argv[1]);
  size_t size = (size_t)atol(argv[2]);
  void **keep = n > 0 ? malloc((size_t)n * sizeof *keep) : NULL;
  for (long i = 0; i < n; i++) {
    keep[i] = malloc(size);
    if (keep[i] == NULL) {
      fprintf(stderr, "commit: allocation failed\n");
      return 1;
    }
    memset(keep[i], 1, size);
  }
  FILE *f = fopen("/proc/self/smaps", "r");
  if (f == NULL) {
    perror("commit: /proc/self/smaps");
    return 1;
  }
  char line[512];
  unsigned long lo = 0, hi = 0, total = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long a, b;
    char c;
    if (sscanf(line, "%lx-%lx %c", &a, &b, &c) == 3) {
      lo = a;
      hi = b;
    } else if (strncmp(line, "VmFlags:", 8) == 0 && strstr(line, " ac") != NULL) {
      total += hi - lo;
    }
  }
  fclose(f);
  printf("%lu\n", total / 1024);
  for (long i = 0; i < n; i++) free(keep[i]);
  free(keep);
  return 0;
}
