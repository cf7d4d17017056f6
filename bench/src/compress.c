/* compress: the buffer pattern of a parallel compressor (pigz, xz -T, zstd
 * -T, lbzip2): a reader thread allocates each block's input buffer and
 * fills it, worker threads (the `threads` argument) each take a block,
 * allocate a zeroed scratch table (calloc) and an output buffer, write the
 * output, free the input and the table, and hand the output to the writer
 * (the main thread), which checks and frees it. Blocks are 128 KiB .. 4 MiB
 * (a third at most 1 MiB: medium, the rest large), so every buffer is
 * allocated in one thread and freed in another, of a size that changes from
 * block to block; at most 2 x threads blocks are in flight, as in the real
 * programs, so the live memory stays bounded and an allocator that reuses
 * what other threads freed faults each page about once.
 * Checked: every input block reaches its worker with its pattern, the
 * scratch table is zero, every output block reaches the writer, in order,
 * with the checksum of its input; pthread_create's results.
 * Figures: blocks per second (result) and minor page faults per block
 * (metric "faults", from getrusage). */
#include "common.h"

#define KiB ((size_t)1 << 10)
#define MAX_THREADS 64
#define SCRATCH (256 * KiB) /* a compressor's hash table: calloc'd per block */

typedef struct block_s {
  uint64_t seq;
  size_t n;        /* input bytes (a multiple of 8) */
  uint64_t *in;    /* reader -> worker */
  uint64_t *out;   /* worker -> writer */
  size_t out_words;
  uint64_t sum;
  struct block_s *next;
} block_t;

/* A FIFO of blocks guarded by one mutex; `room` bounds the blocks in flight. */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  block_t *head, *tail;
  int closed;
} queue_t;

static queue_t todo = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0};
static queue_t done = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0};
static pthread_mutex_t room_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t room_cv = PTHREAD_COND_INITIALIZER;
static int room;
static uint64_t nblocks;

static void q_push(queue_t *q, block_t *b) {
  pthread_mutex_lock(&q->mu);
  b->next = NULL;
  if (q->tail) q->tail->next = b;
  else q->head = b;
  q->tail = b;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
}

static block_t *q_pop(queue_t *q) {
  pthread_mutex_lock(&q->mu);
  while (q->head == NULL && !q->closed) pthread_cond_wait(&q->cv, &q->mu);
  block_t *b = q->head;
  if (b) {
    q->head = b->next;
    if (q->head == NULL) q->tail = NULL;
  }
  pthread_mutex_unlock(&q->mu);
  return b;
}

static void q_close(queue_t *q) {
  pthread_mutex_lock(&q->mu);
  q->closed = 1;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
}

/* Word i of block seq's input. */
static uint64_t pattern(uint64_t seq, size_t i) { return (seq << 40) ^ (i * 0x9e3779b97f4a7c15ull); }

static size_t block_size(uint64_t seq) {
  rng_t r;
  rng_seed(&r, 0xc0de + seq);
  if (rng_below(&r, 3) == 0) return (size_t)rng_range(&r, 128 * KiB, 1024 * KiB) & ~(size_t)7;
  return (size_t)rng_range(&r, 1024 * KiB + 8, 4096 * KiB) & ~(size_t)7;
}

static void *reader(void *arg) {
  (void)arg;
  for (uint64_t seq = 0; seq < nblocks; seq++) {
    pthread_mutex_lock(&room_mu);
    while (room == 0) pthread_cond_wait(&room_cv, &room_mu);
    room--;
    pthread_mutex_unlock(&room_mu);
    block_t *b = xmalloc_or_fail(sizeof *b);
    b->seq = seq;
    b->n = block_size(seq);
    b->in = xmalloc_or_fail(b->n);
    for (size_t i = 0; i < b->n / 8; i++) b->in[i] = pattern(seq, i); /* "read" the input */
    q_push(&todo, b);
  }
  q_close(&todo);
  return NULL;
}

static void *worker(void *arg) {
  (void)arg;
  block_t *b;
  while ((b = q_pop(&todo)) != NULL) {
    uint32_t *table = calloc(SCRATCH / sizeof(uint32_t), sizeof(uint32_t));
    if (!table) bench_fail("calloc(%zu) returned NULL", SCRATCH);
    size_t nw = b->n / 8, words = nw / 2 + 64; /* "compressed" to half, plus a margin */
    uint64_t *out = xmalloc_or_fail(words * sizeof(uint64_t));
    uint64_t sum = 0;
    for (size_t i = 0; i < nw; i++) {
      if (b->in[i] != pattern(b->seq, i)) bench_fail("block %" PRIu64 ": input word %zu changed", b->seq, i);
      sum = sum * 31 + b->in[i];
      if (i & 1) {
        size_t h = (size_t)(sum >> 40) & (SCRATCH / sizeof(uint32_t) - 1);
        /* The table holds 1 + the index of a word of this block, or 0. */
        if (table[h] > i) bench_fail("block %" PRIu64 ": scratch table not zero", b->seq);
        table[h] = (uint32_t)i + 1;
        out[i / 2] = sum;
      }
    }
    for (size_t w = nw / 2; w < words; w++) out[w] = sum ^ w;
    free(table);
    free(b->in);
    b->in = NULL;
    b->out = out;
    b->out_words = words;
    b->sum = sum;
    q_push(&done, b);
  }
  return NULL;
}

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 2);
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  nblocks = scaled(1500, scale, 40);
  room = 2 * threads;
  pthread_t rd, wk[MAX_THREADS];
  long f0 = minor_faults();
  double t0 = now_sec();
  bench_thread_start(&rd, reader, NULL);
  for (int t = 0; t < threads; t++) bench_thread_start(&wk[t], worker, NULL);
  /* The writer: blocks leave in input order (held back until their turn). */
  block_t *held = NULL;
  uint64_t next = 0, total = 0;
  while (next < nblocks) {
    block_t *b = q_pop(&done);
    if (b == NULL) bench_fail("output queue closed early");
    b->next = held;
    held = b;
    for (block_t **pp = &held; *pp;) {
      block_t *h = *pp;
      if (h->seq != next) {
        pp = &h->next;
        continue;
      }
      *pp = h->next;
      uint64_t sum = 0;
      for (size_t i = 0; i < h->n / 8; i++) sum = sum * 31 + pattern(h->seq, i);
      if (h->sum != sum || h->out[h->out_words - 1] != (sum ^ (h->out_words - 1)))
        bench_fail("block %" PRIu64 ": output does not match its input", h->seq);
      total += h->n;
      free(h->out);
      free(h);
      next++;
      pthread_mutex_lock(&room_mu);
      room++;
      pthread_cond_signal(&room_cv);
      pthread_mutex_unlock(&room_mu);
      pp = &held;
    }
  }
  bench_thread_join(rd);
  for (int t = 0; t < threads; t++) bench_thread_join(wk[t]);
  double t = now_sec() - t0;
  long faults = minor_faults() - f0;
  printf("compress: %d workers, %" PRIu64 " blocks (%.1f MiB) in %.3f s, %.1f minor faults per block\n", threads,
         nblocks, (double)total / (double)(KiB * KiB), t, (double)faults / (double)nblocks);
  printf("metric: faults %.1f faults/block\n", (double)faults / (double)nblocks);
  report_result((double)nblocks / t, "blocks/s");
  return 0;
}
