/* xmalloc: producer/consumer (after Lever & Boreham's xmalloc test).
 * Producer threads allocate batches of small blocks and publish them on a
 * bounded shared queue; consumer threads take the batches and free every
 * block. Every free is therefore a remote free. Figure: blocks per second. */
#include <pthread.h>
#include "common.h"

#define BATCH 256
#define QCAP 64

typedef struct batch { void *p[BATCH]; } batch_t;

static batch_t *queue[QCAP];
static size_t qhead, qtail, qcount;
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qnotfull = PTHREAD_COND_INITIALIZER, qnotempty = PTHREAD_COND_INITIALIZER;
static uint64_t batches_per_producer;
static int producers, consumers, producers_left;

static void put(batch_t *b) {
  pthread_mutex_lock(&qlock);
  while (qcount == QCAP) pthread_cond_wait(&qnotfull, &qlock);
  queue[qtail] = b;
  qtail = (qtail + 1) % QCAP;
  qcount++;
  pthread_cond_signal(&qnotempty);
  pthread_mutex_unlock(&qlock);
}

static batch_t *take(void) {
  pthread_mutex_lock(&qlock);
  while (qcount == 0 && producers_left > 0) pthread_cond_wait(&qnotempty, &qlock);
  batch_t *b = NULL;
  if (qcount > 0) {
    b = queue[qhead];
    qhead = (qhead + 1) % QCAP;
    qcount--;
    pthread_cond_signal(&qnotfull);
  }
  pthread_mutex_unlock(&qlock);
  return b;
}

static void *producer(void *arg) {
  uintptr_t id = (uintptr_t)arg;
  rng_t r;
  rng_seed(&r, 0x3a11 + id);
  for (uint64_t i = 0; i < batches_per_producer; i++) {
    batch_t *b = malloc(sizeof *b);
    if (!b) bench_fail("malloc batch");
    for (int k = 0; k < BATCH; k++)
      b->p[k] = blk_new((size_t)rng_range(&r, 8, 120), (uint32_t)(id << 20) + (uint32_t)k);
    put(b);
  }
  pthread_mutex_lock(&qlock);
  producers_left--;
  pthread_cond_broadcast(&qnotempty);
  pthread_mutex_unlock(&qlock);
  return NULL;
}

static _Atomic uint64_t freed;

static void *consumer(void *arg) {
  UNUSED(arg);
  batch_t *b;
  uint64_t n = 0;
  while ((b = take()) != NULL) {
    for (int k = 0; k < BATCH; k++) blk_free(b->p[k], "xmalloc");
    free(b);
    n += BATCH;
  }
  atomic_fetch_add(&freed, n);
  return NULL;
}

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 2);
  if (threads < 2) threads = 2;
  producers = threads / 2;
  consumers = threads - producers;
  producers_left = producers;
  batches_per_producer = scaled(40000, scale, 10) / (uint64_t)producers;
  pthread_t th[1024];
  double t0 = now_sec();
  for (int i = 0; i < producers; i++) bench_thread_start(&th[i], producer, (void *)(uintptr_t)i);
  for (int i = 0; i < consumers; i++) bench_thread_start(&th[producers + i], consumer, NULL);
  for (int i = 0; i < threads; i++) bench_thread_join(th[i]);
  double t = now_sec() - t0;
  uint64_t expect = batches_per_producer * (uint64_t)producers * BATCH;
  if (atomic_load(&freed) != expect)
    bench_fail("freed %" PRIu64 " blocks, expected %" PRIu64, atomic_load(&freed), expect);
  printf("%d producers, %d consumers, %" PRIu64 " blocks in %.3f s\n", producers, consumers, expect, t);
  report_result((double)expect / t / 1e6, "Mblocks/s");
  return 0;
}
