/* runstat: not a workload; the runner's process launcher.
 *   runstat <statfile> <preload|-> <program> [args...]
 * Runs the program with LD_PRELOAD set (only in the child, so this small
 * process itself never runs on the allocator under test) and writes
 *   <wall s> <user s> <sys s> <max RSS KiB> <exit code, or -signal> <minor faults>
 * to statfile (the process and the children it waited for). Launched from a small process, the child's peak RSS is not
 * inflated by the runner's own memory (Linux carries the pre-exec high-water
 * mark over execve). */
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include "common.h"

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: runstat statfile preload|- program [args...]\n");
    return 64;
  }
  double t0 = now_sec();
  pid_t pid = fork();
  if (pid < 0) return 71;
  if (pid == 0) {
    if (strcmp(argv[2], "-") != 0) setenv("LD_PRELOAD", argv[2], 1);
    else unsetenv("LD_PRELOAD");
    execv(argv[3], argv + 3);
    perror("execv");
    _exit(127);
  }
  int st;
  struct rusage ru;
  if (wait4(pid, &st, 0, &ru) < 0) return 71;
  double wall = now_sec() - t0;
  int code = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? -WTERMSIG(st) : 255;
  FILE *f = fopen(argv[1], "w");
  if (!f) return 73;
  fprintf(f, "%.6f %.6f %.6f %ld %d %ld\n", wall,
          (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6,
          (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6, ru.ru_maxrss, code,
          ru.ru_minflt);
  fclose(f);
  return 0;
}
