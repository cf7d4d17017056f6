/* sh8bench-style churn, cross-thread: every thread allocates a batch of
 * mixed-size blocks, frees the first half itself in LIFO order and hands the
 * second half to the next thread in a ring, which frees it in reverse order.
 * Figure: malloc+free pairs per second. */
#include "shbench_common.h"

typedef struct {
  pthread_mutex_t m;
  pthread_cond_t c;
  void **batch; /* NULL when empty */
  char pad[64];
} mailbox_t;

static mailbox_t box[1024];
static int nthreads;
static uint64_t rounds;

static void put(int to, void **b) {
  mailbox_t *mb = &box[to];
  pthread_mutex_lock(&mb->m);
  while (mb->batch) pthread_cond_wait(&mb->c, &mb->m);
  mb->batch = b;
  pthread_cond_broadcast(&mb->c);
  pthread_mutex_unlock(&mb->m);
}

static void **take(int me) {
  mailbox_t *mb = &box[me];
  pthread_mutex_lock(&mb->m);
  while (!mb->batch) pthread_cond_wait(&mb->c, &mb->m);
  void **b = mb->batch;
  mb->batch = NULL;
  pthread_cond_broadcast(&mb->c);
  pthread_mutex_unlock(&mb->m);
  return b;
}

static void *worker(void *arg) {
  int id = (int)(uintptr_t)arg;
  rng_t r;
  rng_seed(&r, 0x5808 + (uint64_t)id);
  for (uint64_t k = 0; k < rounds; k++) {
    void **v = malloc(sizeof(void *) * BATCH);
    if (!v) bench_fail("malloc");
    sh_alloc_batch(&r, v, BATCH, (uint32_t)k);
    for (size_t i = BATCH / 2; i-- > 0;) blk_free(v[i], "sh8 local");
    put((id + 1) % nthreads, v);
    void **in = take(id);
    for (size_t i = BATCH; i-- > BATCH / 2;) blk_free(in[i], "sh8 remote");
    free(in);
  }
  return NULL;
}

int main(int argc, char **argv) {
  double scale;
  parse_args(argc, argv, &nthreads, &scale, 2);
  rounds = scaled(3000, scale, 2) / (uint64_t)nthreads;
  for (int i = 0; i < nthreads; i++) {
    pthread_mutex_init(&box[i].m, NULL);
    pthread_cond_init(&box[i].c, NULL);
  }
  pthread_t th[1024];
  double t0 = now_sec();
  for (int i = 0; i < nthreads; i++) bench_thread_start(&th[i], worker, (void *)(uintptr_t)i);
  for (int i = 0; i < nthreads; i++) bench_thread_join(th[i]);
  double t = now_sec() - t0;
  double pairs = (double)rounds * nthreads * BATCH;
  printf("sh8bench: %d threads, %.0f pairs in %.3f s\n", nthreads, pairs, t);
  report_result(pairs / t / 1e6, "Mpairs/s");
  return 0;
}
