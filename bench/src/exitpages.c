/* exitpages: not a workload; bench/filepages's probe.
 *   exitpages <outfile> <program> [args...]
 * Runs the program traced (ptrace), stops it in its exit (the first
 * process only: PTRACE_O_TRACEEXIT, after every destructor, its memory
 * still mapped) and prints one line per mapping of its /proc/PID/maps:
 *   <path or [anon]> <perms> <file page of the start> <pages present> <virtual page of the start>
 * from /proc/PID/pagemap (present: in the process's page table, which is
 * what Rss counts; a file page is present once a fault, or the kernel's
 * fault-around of a neighbour, mapped it) into outfile. Exits with the
 * program's status. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include "common.h"

static void dump(pid_t pid, FILE *out) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
  FILE *maps = fopen(path, "r");
  snprintf(path, sizeof path, "/proc/%d/pagemap", (int)pid);
  int pm = open(path, O_RDONLY);
  if (maps == NULL || pm < 0) {
    fprintf(stderr, "exitpages: cannot read %s\n", path);
    exit(70);
  }
  char line[4096];
  while (fgets(line, sizeof line, maps)) {
    unsigned long lo, hi, off;
    char perms[8], name[3000] = "";
    if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %2999[^\n]", &lo, &hi, perms, &off, name) < 4) continue;
    const char *n = name;
    while (*n == ' ') n++;
    long present = 0;
    for (unsigned long a = lo; a < hi; a += 4096) {
      uint64_t e = 0;
      if (pread(pm, &e, sizeof e, (off_t)(a / 4096 * 8)) == (ssize_t)sizeof e && (e >> 63)) present++;
    }
    fprintf(out, "%s %s %lx %ld %lx\n", *n ? n : "[anon]", perms, off / 4096, present, lo / 4096);
  }
  fclose(maps);
  close(pm);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: exitpages outfile program [args...]\n");
    return 64;
  }
  FILE *out = fopen(argv[1], "w");
  if (out == NULL) {
    perror(argv[1]);
    return 73;
  }
  pid_t child = fork();
  if (child < 0) return 71;
  if (child == 0) {
    if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0) _exit(126);
    raise(SIGSTOP);
    execvp(argv[2], argv + 2);
    _exit(127);
  }
  int st;
  if (waitpid(child, &st, 0) != child || !WIFSTOPPED(st)) return 70;
  ptrace(PTRACE_SETOPTIONS, child, NULL, (void *)(uintptr_t)(PTRACE_O_TRACEEXIT | PTRACE_O_TRACEEXEC));
  ptrace(PTRACE_CONT, child, NULL, NULL);
  int code = 70;
  for (;;) {
    pid_t w = waitpid(-1, &st, __WALL);
    if (w < 0) break;
    if (WIFEXITED(st) || WIFSIGNALED(st)) {
      if (w == child) {
        code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        break;
      }
      continue;
    }
    int sig = 0;
    if (w == child && st >> 8 == (SIGTRAP | (PTRACE_EVENT_EXIT << 8))) dump(child, out);
    else if (st >> 16 == 0 && WSTOPSIG(st) != SIGTRAP) sig = WSTOPSIG(st);
    ptrace(PTRACE_CONT, w, NULL, (void *)(uintptr_t)sig);
  }
  fclose(out);
  return code;
}
