/* commit: the memory a process counts against the system's commit limit:
 * the sum of its mappings whose VmFlags in /proc/self/smaps say "ac"
 * (accountable: private writable memory, resident or not). With
 * vm.overcommit_memory=2 the kernel refuses a mapping once the sum over
 * all processes would pass the limit; in any mode the sum is Committed_AS
 * in /proc/meminfo. (In modes 0 and 1 a mapping made with MAP_NORESERVE
 * counts nothing; in mode 2 it counts.)
 *   commit one|small|medium   KiB after keeping 1 block of 16 B, 100,000
 *                             of 100 B, or 100 of 100 KiB
 *   commit [threads] [scale]  bench/run: each case in a process of its own
 *                             (this program again, the same environment):
 *                             "metric: small|medium KiB" lines and
 *                             "result: <one> KiB" (lower is better) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

static unsigned long charged_kib(void) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (f == NULL) bench_fail("cannot read /proc/self/smaps");
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
  return total / 1024;
}

static unsigned long one_case(const char *which) {
  long n;
  size_t size;
  if (strcmp(which, "one") == 0) n = 1, size = 16;
  else if (strcmp(which, "small") == 0) n = 100000, size = 100;
  else if (strcmp(which, "medium") == 0) n = 100, size = 102400;
  else bench_fail("unknown case %s", which);
  void **keep = malloc((size_t)n * sizeof *keep);
  if (keep == NULL) bench_fail("malloc returned NULL");
  for (long i = 0; i < n; i++) {
    keep[i] = malloc(size);
    if (keep[i] == NULL) bench_fail("malloc returned NULL");
    memset(keep[i], 1, size);
  }
  unsigned long kib = charged_kib();
  for (long i = 0; i < n; i++) free(keep[i]);
  free(keep);
  return kib;
}

/* The case in a new process (this program, exec'd again): its figure. */
static unsigned long run_case(const char *which) {
  int fd[2];
  if (pipe(fd) != 0) bench_fail("pipe");
  pid_t pid = fork();
  if (pid < 0) bench_fail("fork");
  if (pid == 0) {
    dup2(fd[1], 1);
    close(fd[0]);
    close(fd[1]);
    execl("/proc/self/exe", "commit", which, (char *)NULL);
    _exit(127);
  }
  close(fd[1]);
  char buf[64] = {0};
  ssize_t got = read(fd[0], buf, sizeof buf - 1);
  close(fd[0]);
  int st;
  if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || got <= 0)
    bench_fail("case %s failed", which);
  return strtoul(buf, NULL, 10);
}

int main(int argc, char **argv) {
  if (argc == 2 && (argv[1][0] < '0' || argv[1][0] > '9')) {
    printf("%lu\n", one_case(argv[1]));
    return 0;
  }
  unsigned long one = run_case("one"), small = run_case("small"), medium = run_case("medium");
  printf("metric: small %lu KiB\n", small);
  printf("metric: medium %lu KiB\n", medium);
  printf("result: %lu KiB\n", one);
  return 0;
}
