/* forkpool: short-lived workers forked by a threaded parent, as a process
 * pool makes them (python's multiprocessing with the fork start method, a
 * prefork server whose master runs threads of its own).
 *
 * The parent runs a thread of its own first (a pool's handler threads), so
 * an allocator that starts background threads only in threaded processes
 * (lzmalloc's LZMALLOC_BACKGROUND=auto) has one running, holds a working
 * set (3,000 blocks of 16..600 B, half of them freed, and a 300 KB buffer
 * written and freed: memory to give back), then forks 300 workers (x
 * scale), one after another. A worker runs a task: 200 blocks of 16 B to
 * 2 KiB written and freed, a 100 KB buffer written and freed, frees 8 of
 * the parent's blocks; then it waits 2 ms for its next task (none comes)
 * and exits. Each worker is waited for with wait4: its CPU time and minor
 * faults are its own. Figures (lower is better):
 *   result         CPU microseconds (user + sys) per worker
 *   metric faults  minor faults per worker (copy-on-write included)
 */
#include <pthread.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "common.h"

static void *noop(void *arg) { return arg; }

static long cpu_us(const struct rusage *ru) {
  return (ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000000L + ru->ru_utime.tv_usec + ru->ru_stime.tv_usec;
}

static int worker(void **heap, size_t nheap, size_t k) {
  void *v[200];
  for (size_t i = 0; i < 200; i++) {
    v[i] = blk_new(16 + (i * 53) % 2000, (uint32_t)i);
    if (v[i] == NULL) return 2;
  }
  for (size_t i = 0; i < 200; i++) blk_free(v[i], "pool worker");
  unsigned char *buf = malloc(100000);
  if (buf == NULL) return 2;
  memset(buf, 3, 100000);
  if (buf[99999] != 3) return 3;
  free(buf);
  for (size_t i = 0; i < 8; i++) {
    size_t j = (k * 37 + i * 101) % nheap;
    if (heap[j] != NULL) blk_free(heap[j], "pool worker parent block");
  }
  usleep(2000); /* waits for a next task */
  return 0;
}

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 1);
  size_t workers = scaled(300, scale, 10);
  report_maps();

  pthread_t t;
  if (pthread_create(&t, NULL, noop, NULL) != 0 || pthread_join(t, NULL) != 0) bench_fail("pthread");
  enum { HEAP = 3000 };
  static void *heap[HEAP];
  rng_t r;
  rng_seed(&r, 11);
  for (size_t i = 0; i < HEAP; i++) heap[i] = blk_new(rng_range(&r, 16, 600), (uint32_t)i);
  for (size_t i = 0; i < HEAP; i += 2) {
    blk_free(heap[i], "parent");
    heap[i] = NULL;
  }
  unsigned char *big = malloc(300000);
  if (big == NULL) bench_fail("malloc");
  memset(big, 1, 300000);
  free(big);
  usleep(100000); /* a background thread, if any, starts and settles */

  long faults = 0, cpu = 0;
  for (size_t k = 0; k < workers; k++) {
    pid_t pid = fork();
    if (pid < 0) bench_fail("fork");
    if (pid == 0) _exit(worker(heap, HEAP, k));
    int st;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) != pid) bench_fail("wait4");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bench_fail("worker failed (status %#x)", st);
    faults += ru.ru_minflt;
    cpu += cpu_us(&ru);
  }
  for (size_t i = 0; i < HEAP; i++)
    if (heap[i] != NULL) blk_free(heap[i], "parent");
  printf("metric: faults %.1f faults\n", (double)faults / (double)workers);
  report_result((double)cpu / (double)workers, "us");
  return 0;
}
