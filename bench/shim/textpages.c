/* Preloaded after a malloc library by bench/textpages: at exit (a
 * destructor, after the program's), appends to the file TEXTPAGES_OUT one
 * line per process: the number of resident pages of the executable
 * mapping of the library whose path contains TEXTPAGES_LIB, then the
 * 64 KiB windows (from the mapping's start, in pages / 16) they lie in.
 * Read from /proc/self/maps and /proc/self/pagemap (present bit), with
 * open/read only: nothing here allocates. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((destructor)) static void textpages_report(void) {
  const char *want = getenv("TEXTPAGES_LIB"), *out = getenv("TEXTPAGES_OUT");
  if (want == NULL || out == NULL) return;
  static char maps[1 << 16];
  int fd = open("/proc/self/maps", O_RDONLY);
  if (fd < 0) return;
  ssize_t n = 0, r;
  while (n < (ssize_t)sizeof maps - 1 && (r = read(fd, maps + n, sizeof maps - 1 - (size_t)n)) > 0) n += r;
  close(fd);
  maps[n] = 0;
  int pm = open("/proc/self/pagemap", O_RDONLY);
  if (pm < 0) return;
  unsigned pages = 0;
  uint64_t windows = 0;
  for (char *line = maps, *end; *line; line = end + 1) {
    end = strchr(line, '\n');
    if (end == NULL) break;
    *end = 0;
    unsigned long lo, hi, off;
    char perm[5];
    if (strstr(line, want) == NULL || sscanf(line, "%lx-%lx %4s %lx", &lo, &hi, perm, &off) != 4 ||
        strcmp(perm, "r-xp") != 0)
      continue;
    for (unsigned long a = lo; a < hi; a += 4096) {
      uint64_t e;
      if (pread(pm, &e, sizeof e, (off_t)(a / 4096 * 8)) == (ssize_t)sizeof e && (e >> 63)) {
        pages++;
        windows |= (uint64_t)1 << (((a - lo + off) / 65536) & 63);
      }
    }
  }
  close(pm);
  char buf[256];
  int k = snprintf(buf, sizeof buf, "%u", pages);
  for (unsigned w = 0; w < 64; w++)
    if (windows >> w & 1) k += snprintf(buf + k, sizeof buf - (size_t)k, " %u", w);
  buf[k++] = '\n';
  fd = open(out, O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd < 0) return;
  if (write(fd, buf, (size_t)k) < 0) {
  }
  close(fd);
}
