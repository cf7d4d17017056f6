/* larson-chain: the larson server simulation as Larson & Krishnan wrote it
 * and mimalloc-bench runs it (larsonN): each thread owns an array of
 * blocks and replaces random ones (free, then malloc of 8-1000 B); after a
 * generation of replacements it starts a successor thread that inherits
 * the array, and exits. The main thread makes every array first (its
 * "warm-up": each block allocated, the array shuffled, then four passes
 * of random replacements), then waits. So the blocks a thread frees were
 * mostly made by threads that have ended (its predecessors') or by the
 * main thread, which still runs but allocates nothing more: an allocator
 * that ties blocks to the heap of the thread that made them pays for
 * every such free, one that hands a thread's heap to its successor, or
 * keeps no owner, does not.
 *
 * Each block holds its size and a tag in its first 8 bytes and the tag's
 * low byte in its last byte (touched as larson touches its blocks),
 * checked before the free. Deterministic: every chain has its own seed.
 * Figure: replacements (a free and a malloc) per second, millions.
 * metric pages: the 4 KiB pages that hold a chain's live blocks at the
 * end (the first byte of each block; mean over the chains), counted after
 * the timing. The blocks are read at random, so every such page is a TLB
 * entry the chain's thread needs: an allocator that keeps a chain's
 * blocks dense needs fewer (5,000 blocks of 504 B on average fill at
 * least 616 pages). */
#include <pthread.h>
#include "common.h"

#define BLOCKS 5000          /* per thread (larson's chunks per thread) */
#define MIN_SZ 8
#define MAX_SZ 1000
#define GEN_OPS 500000       /* per generation (100 rounds of 5000) */

/* A chain's state, a cache line of its own (its thread writes the random
 * state back once a generation). */
typedef struct chain {
  _Alignas(64) void **array;
  rng_t rng;
  uint64_t gens_left;
  uint64_t ops;
  uint32_t id;
} chain_t;

static _Atomic int chains_running;

static int cmp_page(const void *a, const void *b) {
  uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
  return x < y ? -1 : x > y;
}

/* Distinct 4 KiB pages among the first bytes of array's blocks. */
static size_t pages_held(void *const *array) {
  static uintptr_t page[BLOCKS];
  for (size_t i = 0; i < BLOCKS; i++) page[i] = (uintptr_t)array[i] >> 12;
  qsort(page, BLOCKS, sizeof page[0], cmp_page);
  size_t n = 1;
  for (size_t i = 1; i < BLOCKS; i++) n += page[i] != page[i - 1];
  return n;
}

static void *block_new(rng_t *r, uint32_t tag) {
  size_t size = (size_t)rng_range(r, MIN_SZ, MAX_SZ);
  unsigned char *p = malloc(size);
  if (p == NULL) bench_fail("malloc(%zu) returned NULL", size);
  uint64_t h = (uint64_t)(uint32_t)size | (uint64_t)tag << 32;
  memcpy(p, &h, 8);
  p[size - 1] = (unsigned char)tag;
  return p;
}

static void block_free(void *p) {
  unsigned char *b = p;
  uint64_t h;
  memcpy(&h, b, 8);
  size_t size = (size_t)(uint32_t)h;
  if (size < MIN_SZ || size > MAX_SZ || b[size - 1] != (unsigned char)(h >> 32))
    bench_fail("larson-chain: block %p (size %zu) corrupted", p, size);
  free(p);
}

static void *worker(void *arg);

/* A thread for chain c, detached: nobody joins a generation. */
static void chain_start(chain_t *c) {
  pthread_t t;
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0 || pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) != 0 ||
      pthread_create(&t, &attr, worker, c) != 0)
    bench_fail("pthread_create");
  pthread_attr_destroy(&attr);
}

static void *worker(void *arg) {
  chain_t *c = arg;
  uint32_t tag = c->id << 24 | (uint32_t)(c->gens_left & 0xffff);
  rng_t r = c->rng;
  void **array = c->array;
  for (uint64_t i = 0; i < GEN_OPS; i++) {
    size_t victim = (size_t)rng_below(&r, BLOCKS);
    block_free(array[victim]);
    array[victim] = block_new(&r, tag);
  }
  c->rng = r;
  c->ops += GEN_OPS;
  if (--c->gens_left > 0)
    chain_start(c);
  else
    atomic_fetch_sub(&chains_running, 1);
  return NULL;
}

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 2);
  uint64_t gens = scaled(40, scale, 2);
  chain_t *chains = aligned_alloc(64, sizeof(chain_t) * (size_t)threads);
  if (chains == NULL) bench_fail("aligned_alloc");
  memset(chains, 0, sizeof(chain_t) * (size_t)threads);
  /* The warm-up, in the main thread. */
  for (int t = 0; t < threads; t++) {
    chain_t *c = &chains[t];
    c->array = malloc(sizeof(void *) * BLOCKS);
    if (c->array == NULL) bench_fail("malloc");
    rng_seed(&c->rng, 4141 + (uint64_t)t * 7919);
    c->gens_left = gens;
    c->id = (uint32_t)t;
    for (size_t i = 0; i < BLOCKS; i++) c->array[i] = block_new(&c->rng, 0);
    for (size_t i = BLOCKS; i > 1; i--) {
      size_t j = (size_t)rng_below(&c->rng, i);
      void *x = c->array[j];
      c->array[j] = c->array[i - 1];
      c->array[i - 1] = x;
    }
    for (size_t i = 0; i < 4 * BLOCKS; i++) {
      size_t victim = (size_t)rng_below(&c->rng, BLOCKS);
      block_free(c->array[victim]);
      c->array[victim] = block_new(&c->rng, 0);
    }
  }
  atomic_store(&chains_running, threads);
  double t0 = now_sec();
  for (int t = 0; t < threads; t++) chain_start(&chains[t]);
  while (atomic_load(&chains_running) > 0) usleep(200);
  double t = now_sec() - t0;
  uint64_t ops = 0;
  size_t pages = 0;
  for (int i = 0; i < threads; i++) pages += pages_held(chains[i].array);
  for (int i = 0; i < threads; i++) {
    ops += chains[i].ops;
    for (size_t j = 0; j < BLOCKS; j++) block_free(chains[i].array[j]);
    free(chains[i].array);
  }
  free(chains);
  printf("larson-chain: %d chains x %" PRIu64 " generations, %" PRIu64 " replacements in %.3f s\n", threads, gens,
         ops, t);
  printf("metric: pages %.1f pages\n", (double)pages / threads);
  report_result((double)ops / t / 1e6, "Mops/s");
  return 0;
}
