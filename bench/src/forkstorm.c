/* forkstorm: short-lived processes, as a shell script or a process pool
 * makes them.
 *
 * The parent holds a shell-sized heap (3,000 blocks of 16..600 B) and runs,
 * 400 times each (x scale), interleaved:
 *   exec  fork + exec of this program as a small program (the allocations
 *         of a coreutils command starting up: about 200 blocks of 20 sizes
 *         from 5 B to 4 KiB, and a 128 KiB buffer; half freed; exit);
 *   fork  fork of a child that frees 8 of the parent's blocks, allocates 8
 *         and a 4 KiB buffer, and exits (a subshell).
 * The allocator reaches the exec'd program through LD_PRELOAD, as it
 * reaches every command of a script. Each child is waited for with wait4:
 * its minor faults and CPU time are its own. Figures (lower is better):
 *   result             CPU microseconds (user + sys) per child, both kinds
 *   metric exec_faults minor faults per exec'd child (loading included)
 *   metric fork_faults minor faults per fork child (copy-on-write)
 */
#include <sys/resource.h>
#include <sys/wait.h>

#include "common.h"

static const size_t small_sizes[] = {5, 7, 8, 10, 26, 30, 33, 36, 40, 48, 56, 72, 96, 112, 160, 208, 472, 792, 1328, 4096};
#define NSMALL (sizeof small_sizes / sizeof small_sizes[0])

/* The exec'd child: what a small command allocates, checked, half freed. */
static int small_program(void) {
  void *p[200];
  for (size_t i = 0; i < 200; i++) {
    size_t n = small_sizes[(i * 7) % NSMALL];
    p[i] = malloc(n);
    if (p[i] == NULL) return 2;
    fill_pattern(p[i], n, i);
  }
  char *buf = malloc(128 * 1024);
  if (buf == NULL) return 2;
  memset(buf, 1, 4096);
  for (size_t i = 0; i < 200; i++)
    if (check_pattern(p[i], small_sizes[(i * 7) % NSMALL], i) != 0) return 3;
  for (size_t i = 0; i < 200; i += 2) free(p[i]);
  free(buf);
  return 0;
}

static long cpu_us(const struct rusage *ru) {
  return (ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000000L + ru->ru_utime.tv_usec + ru->ru_stime.tv_usec;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "small") == 0) return small_program();
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 1);
  size_t rounds = scaled(400, scale, 10);
  report_maps();

  enum { HEAP = 3000 };
  static void *heap[HEAP];
  rng_t r;
  rng_seed(&r, 7);
  for (size_t i = 0; i < HEAP; i++) heap[i] = blk_new(rng_range(&r, 16, 600), (uint32_t)i);

  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) bench_fail("readlink /proc/self/exe");
  self[len] = 0;
  char *const small_argv[] = {self, "small", NULL};

  long faults[2] = {0, 0}, cpu[2] = {0, 0};
  for (size_t k = 0; k < rounds; k++) {
    for (int kind = 0; kind < 2; kind++) {
      pid_t pid = fork();
      if (pid < 0) bench_fail("fork");
      if (pid == 0) {
        if (kind == 0) {
          execv(self, small_argv);
          _exit(127);
        }
        /* A subshell: frees and allocates a little of the parent's heap. */
        for (size_t i = 0; i < 8; i++) blk_free(heap[(k * 37 + i * 101) % HEAP], "fork child");
        void *q[8];
        for (size_t i = 0; i < 8; i++) q[i] = blk_new(16 + i * 40, (uint32_t)i);
        char *buf = malloc(4096);
        if (buf == NULL) _exit(2);
        memset(buf, 0, 4096);
        for (size_t i = 0; i < 8; i++) blk_free(q[i], "fork child");
        free(buf);
        _exit(0);
      }
      int st;
      struct rusage ru;
      if (wait4(pid, &st, 0, &ru) != pid) bench_fail("wait4");
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bench_fail("%s child failed (status %#x)", kind ? "fork" : "exec", st);
      faults[kind] += ru.ru_minflt;
      cpu[kind] += cpu_us(&ru);
    }
    /* The parent's heap moves on between children, as a shell's does. */
    size_t i = (k * 13) % HEAP;
    blk_free(heap[i], "parent");
    heap[i] = blk_new(rng_range(&r, 16, 600), (uint32_t)i);
  }
  for (size_t i = 0; i < HEAP; i++) blk_free(heap[i], "parent");
  printf("metric: exec_faults %.1f faults\n", (double)faults[0] / (double)rounds);
  printf("metric: fork_faults %.1f faults\n", (double)faults[1] / (double)rounds);
  report_result((double)(cpu[0] + cpu[1]) / (double)(2 * rounds), "us");
  return 0;
}
