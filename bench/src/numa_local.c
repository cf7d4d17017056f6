/* numa_local: page locality of threads working on their own data on a
 * two-node machine (run inside the two-node guest by bench/numa_run).
 *
 *   numa_local [MiB per worker, default 24] [passes, default 3]
 *
 * Worker i is pinned to CPU i (node i). Each worker allocates its data
 * (blocks of 64 B, 1 KiB, 16 KiB, 256 KiB and 4 MiB, a fifth of the bytes
 * each); a loader thread on CPU 0 initialises all of it (the common "one
 * thread loads, the workers compute" pattern), then each worker makes
 * `passes` read-modify-write passes over its own data. Then each worker
 * frees its data and allocates and initialises a new set itself (reuse).
 * Locality is measured with move_pages(2) after the load and after the
 * reuse: the fraction of each worker's pages on its own node.
 *
 * Output: "metric:<name> <value>" lines and "result: <local % after load,
 * both workers>". Emulated time (pass_ms) is not a NUMA latency figure.
 */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
static const size_t sizes[] = {64, 1024, 16384, 262144, 4194304};
enum { NSIZES = sizeof sizes / sizeof sizes[0] };

typedef struct worker_s {
  int cpu;
  void **blocks;
  size_t *bsize;
  size_t n;
  double pass_ms;
  size_t pages_load, pages_reuse, local_load, local_reuse;
} worker_t;

static size_t per_worker;
static int passes;
static worker_t workers[2];
static pthread_barrier_t bar;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void pin(int cpu) {
  cpu_set_t cs;
  CPU_ZERO(&cs);
  CPU_SET(cpu, &cs);
  if (pthread_setaffinity_np(pthread_self(), sizeof cs, &cs) != 0) {
    fprintf(stderr, "cannot pin to CPU %d\n", cpu);
    exit(1);
  }
  sched_yield();
}

static void allocate(worker_t *w) {
  size_t n = 0;
  for (int k = 0; k < NSIZES; k++) n += per_worker / NSIZES / sizes[k];
  w->blocks = malloc(n * sizeof *w->blocks);
  w->bsize = malloc(n * sizeof *w->bsize);
  w->n = 0;
  for (int k = 0; k < NSIZES; k++)
    for (size_t i = 0; i < per_worker / NSIZES / sizes[k]; i++) {
      void *p = malloc(sizes[k]);
      if (p == NULL) {
        fprintf(stderr, "malloc failed\n");
        exit(1);
      }
      w->blocks[w->n] = p;
      w->bsize[w->n++] = sizes[k];
    }
}

static void release(worker_t *w) {
  for (size_t i = 0; i < w->n; i++) free(w->blocks[i]);
  free(w->blocks);
  free(w->bsize);
  w->n = 0;
}

static void init_data(const worker_t *w, int value) {
  for (size_t i = 0; i < w->n; i++) memset(w->blocks[i], value, w->bsize[i]);
}

/* Pages of the worker's blocks on its node. */
static size_t count_local(worker_t *w, int node, size_t *npages) {
  size_t cap = 0;
  for (size_t i = 0; i < w->n; i++) cap += w->bsize[i] / PAGE + 2;
  void **pages = malloc(cap * sizeof *pages);
  int *status = malloc(cap * sizeof *status);
  size_t n = 0;
  for (size_t i = 0; i < w->n; i++) {
    uintptr_t a = (uintptr_t)w->blocks[i] & ~(uintptr_t)(PAGE - 1);
    for (; a < (uintptr_t)w->blocks[i] + w->bsize[i]; a += PAGE) {
      if (n > 0 && pages[n - 1] == (void *)a) continue;
      pages[n++] = (void *)a;
    }
  }
  size_t local = 0;
  if (syscall(SYS_move_pages, 0, (unsigned long)n, pages, NULL, status, 0) == 0)
    for (size_t i = 0; i < n; i++) local += status[i] == node;
  free(pages);
  free(status);
  *npages = n;
  return local;
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  pin(w->cpu);
  allocate(w);
  pthread_barrier_wait(&bar); /* allocated */
  pthread_barrier_wait(&bar); /* loaded by the loader */
  w->local_load = count_local(w, w->cpu, &w->pages_load);
  double t0 = now_ms();
  for (int p = 0; p < passes; p++)
    for (size_t i = 0; i < w->n; i++) {
      uint64_t *q = w->blocks[i];
      for (size_t j = 0; j < w->bsize[i] / 8; j += 8) q[j] += (uint64_t)p + j;
    }
  w->pass_ms = now_ms() - t0;
  pthread_barrier_wait(&bar);
  release(w);
  pthread_barrier_wait(&bar); /* both freed: their memory may be reused */
  allocate(w);
  init_data(w, 2);
  w->local_reuse = count_local(w, w->cpu, &w->pages_reuse);
  return NULL;
}

int main(int argc, char **argv) {
  per_worker = (argc > 1 ? (size_t)atol(argv[1]) : 24) << 20;
  passes = argc > 2 ? atoi(argv[2]) : 3;
  if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
    fprintf(stderr, "needs two CPUs\n");
    return 1;
  }
  pin(0); /* this thread is the loader */
  pthread_barrier_init(&bar, NULL, 3);
  pthread_t t[2];
  for (int i = 0; i < 2; i++) {
    workers[i].cpu = i;
    pthread_create(&t[i], NULL, worker_main, &workers[i]);
  }
  pthread_barrier_wait(&bar);
  double t0 = now_ms();
  for (int i = 0; i < 2; i++) init_data(&workers[i], 1);
  double load_ms = now_ms() - t0;
  pthread_barrier_wait(&bar);
  pthread_barrier_wait(&bar);
  pthread_barrier_wait(&bar);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  size_t pages_load = 0, pages_reuse = 0, load = 0, reuse = 0;
  for (int i = 0; i < 2; i++) {
    worker_t *w = &workers[i];
    printf("metric:local_load_w%d %.1f\n", i, 100.0 * (double)w->local_load / (double)w->pages_load);
    printf("metric:local_reuse_w%d %.1f\n", i, 100.0 * (double)w->local_reuse / (double)w->pages_reuse);
    printf("metric:pass_ms_w%d %.1f\n", i, w->pass_ms);
    pages_load += w->pages_load;
    pages_reuse += w->pages_reuse;
    load += w->local_load;
    reuse += w->local_reuse;
  }
  printf("metric:load_ms %.1f\n", load_ms);
  printf("metric:local_reuse %.1f\n", 100.0 * (double)reuse / (double)pages_reuse);
  printf("result: %.1f\n", 100.0 * (double)load / (double)pages_load);
  return 0;
}
