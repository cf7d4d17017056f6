/* Shared body of cache-scratch and cache-thrash (after the Hoard papers'
 * description of the two false-sharing tests). Each thread repeatedly
 * allocates a small object, writes every byte of it many times, checks it and
 * frees it. If the allocator hands objects on one cache line to different
 * threads, the writes bounce the line between cores. */
#include <pthread.h>
#include "common.h"

#define OBJ_SIZE 8
#define WRITES 2000

static uint64_t iterations;
static char **handed; /* cache-scratch: objects the main thread allocated */

static void work_object(char *obj, uint64_t it) {
  volatile char *v = obj;
  for (int w = 0; w < WRITES; w++)
    for (int b = 0; b < OBJ_SIZE; b++) v[b] = (char)(v[b] + 1);
  for (int b = 0; b < OBJ_SIZE; b++)
    if (obj[b] != (char)(it + b + WRITES)) bench_fail("object %p contents wrong", (void *)obj);
}

static char *new_object(uint64_t it) {
  char *o = malloc(OBJ_SIZE);
  if (!o) bench_fail("malloc");
  for (int b = 0; b < OBJ_SIZE; b++) o[b] = (char)(it + b);
  return o;
}

static void *worker(void *arg) {
  uintptr_t id = (uintptr_t)arg;
  if (handed) {
    /* passive: free the object that was allocated by main next to others */
    char *o = handed[id];
    for (int b = 0; b < OBJ_SIZE; b++)
      if (o[b] != (char)(id + b)) bench_fail("handed object corrupted");
    free(o);
  }
  for (uint64_t it = 0; it < iterations; it++) {
    char *o = new_object(it);
    work_object(o, it);
    free(o);
  }
  return NULL;
}

static int cache_main(int argc, char **argv, int passive, const char *name) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 2);
  iterations = scaled(60000, scale, 10);
  if (passive) {
    handed = malloc(sizeof(char *) * (size_t)threads);
    if (!handed) bench_fail("malloc");
    for (int i = 0; i < threads; i++) handed[i] = new_object((uint64_t)i);
  }
  pthread_t th[1024];
  double t0 = now_sec();
  for (int i = 0; i < threads; i++) bench_thread_start(&th[i], worker, (void *)(uintptr_t)i);
  for (int i = 0; i < threads; i++) bench_thread_join(th[i]);
  double t = now_sec() - t0;
  free(handed);
  printf("%s: %d threads x %" PRIu64 " objects x %d writes in %.3f s\n", name, threads, iterations,
         WRITES, t);
  report_result((double)iterations * threads / t / 1e3, "Kobjects/s");
  return 0;
}
