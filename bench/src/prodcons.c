/* prodcons: one thread allocates, another frees (producer/consumer).
 * The producer allocates 64-byte blocks, writes its tag into each and
 * publishes them one at a time on a single-producer single-consumer ring
 * (lock-free, so the queue costs almost nothing and the figure is the
 * allocator's: every free is a free of another thread's block, and every
 * block the producer gets back was freed by the other thread). The
 * consumer checks each block before it frees it. With more than two
 * threads, the pairs run side by side, each with its own ring.
 * Figure: blocks per second (allocated and freed). */
#include <pthread.h>
#include <stdatomic.h>

#include "common.h"

#define BLOCK 64
#define RING 4096 /* a power of two */

typedef struct ring {
  _Alignas(64) _Atomic uint64_t head; /* written by the producer */
  _Alignas(64) _Atomic uint64_t tail; /* written by the consumer */
  _Alignas(64) void *slot[RING];
  uint64_t count;
  uint32_t id;
  uint64_t checked;
} ring_t;

static void *producer(void *arg) {
  ring_t *r = arg;
  uint64_t head = 0;
  for (uint64_t i = 0; i < r->count; i++) {
    uint64_t *p = malloc(BLOCK);
    if (!p) bench_fail("malloc(%d) returned NULL", BLOCK);
    p[0] = ((uint64_t)r->id << 40) | i;
    p[BLOCK / 8 - 1] = ~p[0];
    while (head - atomic_load_explicit(&r->tail, memory_order_acquire) == RING) sched_yield();
    r->slot[head & (RING - 1)] = p;
    atomic_store_explicit(&r->head, ++head, memory_order_release);
  }
  return NULL;
}

static void *consumer(void *arg) {
  ring_t *r = arg;
  uint64_t tail = 0;
  while (tail < r->count) {
    while (atomic_load_explicit(&r->head, memory_order_acquire) == tail) sched_yield();
    uint64_t *p = r->slot[tail & (RING - 1)];
    if (p[0] != (((uint64_t)r->id << 40) | tail) || p[BLOCK / 8 - 1] != ~p[0])
      bench_fail("prodcons: block %llu of pair %u corrupted", (unsigned long long)tail, r->id);
    free(p);
    atomic_store_explicit(&r->tail, ++tail, memory_order_release);
    r->checked++;
  }
  return NULL;
}

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 2);
  int pairs = threads < 2 ? 1 : threads / 2;
  uint64_t count = scaled(20000000, scale, 10000);
  ring_t *rings = aligned_alloc(64, sizeof(ring_t) * (size_t)pairs);
  if (!rings) bench_fail("rings");
  memset(rings, 0, sizeof(ring_t) * (size_t)pairs);
  pthread_t *t = xmalloc_or_fail(sizeof(pthread_t) * (size_t)pairs * 2);
  double t0 = now_sec();
  for (int i = 0; i < pairs; i++) {
    rings[i].count = count;
    rings[i].id = (uint32_t)i;
    if (pthread_create(&t[2 * i], NULL, consumer, &rings[i]) != 0 ||
        pthread_create(&t[2 * i + 1], NULL, producer, &rings[i]) != 0)
      bench_fail("pthread_create");
  }
  for (int i = 0; i < 2 * pairs; i++)
    if (pthread_join(t[i], NULL) != 0) bench_fail("pthread_join");
  double dt = now_sec() - t0;
  for (int i = 0; i < pairs; i++)
    if (rings[i].checked != count) bench_fail("prodcons: pair %d freed %llu of %llu", i,
                                              (unsigned long long)rings[i].checked, (unsigned long long)count);
  printf("pairs %d, %llu blocks of %d bytes each, %.3f s\n", pairs, (unsigned long long)count, BLOCK, dt);
  free(t);
  free(rings);
  report_result((double)count * pairs / dt / 1e6, "Mblocks/s");
  return 0;
}
