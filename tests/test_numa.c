/* NUMA placement on an injected topology (this machine may have one node):
 * two nodes, CPUs 0 and 2 on node 0, CPUs 1 and 3 on node 1. The OS
 * layer's test hook (lz_os_numa_inject) makes each thread report the CPU
 * it set and records mbind calls instead of making them.
 *
 *   test_numa auto|off|interleave|strict
 *
 * auto: routing of chunks and large blocks to the caller's node, per-node
 * chunk pools (a freed chunk comes back only to its node), orphan heaps
 * adopted only on their node, the large cache per node, blocks freed
 * across nodes not reused on the freeing node, home moves after
 * a stay on another node but not for excursions or flapping, per-node
 * statistics. off: nothing bound, everything node 0. interleave: large
 * blocks interleaved over both nodes. strict: MPOL_BIND instead of
 * MPOL_PREFERRED. Also, without injection: os_current_cpu (rseq or
 * getcpu) agrees with sched_getcpu on every CPU this process may use.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "testutil.h"

static int mode; /* NUMA_OFF / NUMA_AUTO / NUMA_INTERLEAVE / NUMA_STRICT */
static const uint8_t topo[4] = {0, 1, 0, 1};

static chunk_t *chunk_of(const void *p) { return (chunk_t *)((uintptr_t)p & ~LZ_CHUNK_MASK); }
static large_t *large_of(const void *p) {
  bool freed;
  large_t *l = large_lookup((uintptr_t)p, &freed);
  CHECK(l != NULL);
  return l;
}
static unsigned large_node(const large_t *l) { return atomic_load(&l->xnode); }
static size_t large_size(const large_t *l) { return atomic_load(&l->xsize); }

/* The last mbind recorded for exactly [p, p + size), or NULL. */
static lz_os_bind_t rec;
static const lz_os_bind_t *bind_of(const void *p, size_t size) {
  lz_os_bind_t all[64];
  size_t n = lz_os_numa_binds(all, 64);
  if (n > 64) n = 64;
  for (size_t i = n; i-- > 0;)
    if (all[i].p == p && all[i].size == size) {
      rec = all[i];
      return &rec;
    }
  return NULL;
}
static size_t binds_made(void) { return lz_os_numa_binds(NULL, 0); }

/* ---- threads ------------------------------------------------------------ */
typedef struct job_s {
  int cpu;
  void (*fn)(struct job_s *);
  void *p, *q;
  chunk_t *chunk;
  large_t *large;
} job_t;

static void *job_main(void *arg) {
  job_t *j = arg;
  lz_os_numa_inject_cpu(j->cpu);
  j->fn(j);
  return NULL;
}

static void run(job_t *j) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, job_main, j) == 0);
  CHECK(pthread_join(t, NULL) == 0);
}

static unsigned want_node(int cpu) { return mode == NUMA_OFF ? 0 : topo[cpu]; }
static int want_policy(void) { return mode == NUMA_STRICT ? OS_MPOL_BIND : OS_MPOL_PREFERRED; }

/* A medium block in a chunk of its own; the heap gives the chunk back to
 * the pool when it is freed and the heap collected. */
static void medium_in_new_chunk(job_t *j) {
  size_t before = binds_made();
  j->p = lz_malloc(300 * KiB);
  CHECK(j->p != NULL);
  memset(j->p, 1, 300 * KiB);
  j->chunk = chunk_of(j->p);
  CHECKF(j->chunk->node == want_node(j->cpu), "cpu %d: chunk on node %u", j->cpu, j->chunk->node);
  if (mode == NUMA_OFF) {
    CHECK(binds_made() == before);
  } else if (binds_made() > before) { /* a fresh mapping: bound before use */
    const lz_os_bind_t *b = bind_of(j->chunk, LZ_CHUNK_SIZE);
    CHECK(b != NULL && b->policy == want_policy() && b->mask == 1ull << want_node(j->cpu));
  }
  lz_free(j->p);
  heap_collect(lz_heap_tls, true);
}

static void large_block(job_t *j) {
  size_t before = binds_made();
  j->p = lz_malloc(5 * MiB);
  CHECK(j->p != NULL);
  j->large = large_of(j->p);
  if (mode == NUMA_OFF) {
    CHECK(binds_made() == before);
  } else if (mode == NUMA_INTERLEAVE) {
    CHECK(large_node(j->large) == NUMA_NODE_INTERLEAVED);
    const lz_os_bind_t *b = bind_of(j->p, large_size(j->large));
    CHECK(binds_made() == before || (b != NULL && b->policy == OS_MPOL_INTERLEAVE && b->mask == 3));
  } else {
    CHECKF(large_node(j->large) == want_node(j->cpu), "cpu %d: large on node %u", j->cpu, large_node(j->large));
    const lz_os_bind_t *b = bind_of(j->p, large_size(j->large));
    CHECK(binds_made() == before || (b != NULL && b->policy == want_policy() && b->mask == 1ull << want_node(j->cpu)));
  }
  memset(j->p, 2, 5 * MiB);
}

static void free_p(job_t *j) { lz_free(j->p); }

/* Cross-node frees: blocks of node 0 freed on node 1 are not handed out
 * again on node 1. */
enum { NCROSS = 256 };
static void *cross[NCROSS];
static void cross_alloc(job_t *j) {
  for (int i = 0; i < NCROSS; i++) {
    cross[i] = lz_malloc(48);
    CHECK(cross[i] != NULL && chunk_of(cross[i])->node == want_node(j->cpu));
  }
}
static void cross_free_then_alloc(job_t *j) {
  lz_free(lz_malloc(16)); /* this thread's heap first */
  for (int i = 0; i < NCROSS; i++) lz_free(cross[i]);
  for (int i = 0; i < NCROSS; i++) {
    cross[i] = lz_malloc(48);
    CHECKF(cross[i] != NULL && chunk_of(cross[i])->node == want_node(j->cpu), "block %d on node %u", i,
           chunk_of(cross[i])->node);
  }
  for (int i = 0; i < NCROSS; i++) lz_free(cross[i]);
}

static void home_of(job_t *j) {
  lz_free(lz_malloc(16)); /* the thread's heap: made, or an orphan adopted */
  j->q = (void *)(uintptr_t)lz_heap_tls->numa_home;
}

/* 2n slow-path entries: each medium malloc is one (the free of the heap's
 * own medium block is not: free's fast path takes it). */
static void slow_paths(int n) {
  for (int i = 0; i < n; i++) {
    void *p = lz_malloc(200 * KiB), *q = lz_malloc(200 * KiB);
    CHECK(p != NULL && q != NULL);
    lz_free(p);
    lz_free(q);
  }
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* The heap moves after a stay on node 1, not before LZ_NUMA_MOVE_MS. */
static void migrate(job_t *j) {
  slow_paths(10);
  void *keep = lz_malloc(100); /* keeps a chunk on node 0 in the heap */
  CHECK(keep != NULL && chunk_of(keep)->node == 0);
  heap_t *h = lz_heap_tls;
  CHECK(h->numa_home == want_node(j->cpu));
  lz_os_numa_inject_cpu(1);
  uint64_t t0 = os_now_ms();
  uint64_t moved_at = 0;
  for (int round = 0; round < 1000 && moved_at == 0; round++) {
    slow_paths(16);
    if (h->numa_home != want_node(j->cpu)) moved_at = os_now_ms();
    sleep_ms(1);
  }
  if (mode == NUMA_OFF) {
    CHECK(moved_at == 0 && h->numa_home == 0);
    lz_free(keep);
    return;
  }
  CHECKF(moved_at != 0 && h->numa_home == 1, "home %u", h->numa_home);
  /* The first observation comes at the earliest 32 iterations in. */
  CHECKF(moved_at - t0 >= LZ_NUMA_MOVE_MS, "moved after %llu ms", (unsigned long long)(moved_at - t0));
  /* New spans come from node 1 now, not from the free pages of the old
   * chunk on node 0. */
  void *p = lz_malloc(100 * KiB);
  CHECK(p != NULL && chunk_of(p)->node == 1 && chunk_of(keep)->node == 0);
  lz_free(p);
  lz_free(keep);
}

/* Excursions shorter than the move rule, and flapping, never move it. */
static void no_flap(job_t *j) {
  slow_paths(10);
  heap_t *h = lz_heap_tls;
  unsigned home = h->numa_home;
  CHECK(home == want_node(j->cpu));
  uint64_t t0 = os_now_ms();
  /* Flapping: one observation in 64 slow-path entries, so one per 32
   * malloc/free pairs, alternating between the nodes. */
  for (int i = 0; os_now_ms() - t0 < 4 * LZ_NUMA_MOVE_MS || i < 400; i++) {
    lz_os_numa_inject_cpu(i % 2);
    slow_paths(32);
    CHECK(h->numa_home == home);
    if (i % 8 == 0) sleep_ms(1);
  }
  /* An excursion: fewer observations elsewhere than a move needs,
   * however long they take. */
  lz_os_numa_inject_cpu(1);
  slow_paths(32 * (LZ_NUMA_MOVE_SAMPLES - 1));
  lz_os_numa_inject_cpu(0);
  slow_paths(64);
  CHECK(h->numa_home == home);
}

static void check_stats_node(unsigned node, size_t expect_mapped) {
  lz_stats_t st;
  lz_stats_get(&st);
  if (mode == NUMA_OFF) {
    CHECK(st.numa_nodes == 0 && st.nodes[0].mapped == 0 && st.nodes[1].mapped == 0);
    return;
  }
  CHECK(st.numa_nodes == 2);
  CHECKF(st.nodes[node].mapped == expect_mapped, "node %u mapped %zu, expected %zu", node, st.nodes[node].mapped,
         expect_mapped);
}

static size_t node_mapped(unsigned node) {
  lz_stats_t st;
  lz_stats_get(&st);
  return st.nodes[node].mapped;
}

/* ---- without injection: the CPU the thread runs on ---------------------- */
static void check_current_cpu(void) {
  cpu_set_t all;
  CHECK(sched_getaffinity(0, sizeof all, &all) == 0);
  int tested = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE && tested < 8; cpu++) {
    if (!CPU_ISSET(cpu, &all)) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    CHECK(sched_setaffinity(0, sizeof one, &one) == 0);
    for (int k = 0; k < 100; k++) CHECKF(os_current_cpu() == cpu, "on CPU %d, os_current_cpu says %d", cpu, os_current_cpu());
    tested++;
  }
  CHECK(sched_setaffinity(0, sizeof all, &all) == 0);
  CHECK(tested > 0);
}

int main(int argc, char **argv) {
  const char *m = argc > 1 ? argv[1] : "auto";
  mode = strcmp(m, "off") == 0 ? NUMA_OFF : strcmp(m, "interleave") == 0 ? NUMA_INTERLEAVE
         : strcmp(m, "strict") == 0 ? NUMA_STRICT : NUMA_AUTO;

  check_current_cpu();
  if (LZ_HEAPS > 0) {
    puts("SKIP: shared heaps (LZ_HEAPS > 0) have no per-thread home node");
    return 77;
  }
  /* The real topology first: placement is on only with two nodes or more. */
  CHECK(lz_numa_on == (lz_numa_nodes > 1));

  setenv("LZMALLOC_NUMA", m, 1);
  setenv("LZMALLOC_PURGE_DELAY", "-1", 1); /* pooled chunks stay pooled */
  options_init();
  CHECK(opt_get(OPT_NUMA) == mode);
  lz_os_numa_inject(2, topo, 4);
  lz_numa_reinit();
  CHECK(lz_numa_on == (mode != NUMA_OFF));
  lz_os_numa_inject_cpu(0);

  /* Routing and per-node pools. */
  job_t a = {.cpu = 0, .fn = medium_in_new_chunk};
  run(&a);
  job_t b = {.cpu = 1, .fn = medium_in_new_chunk};
  run(&b);
  if (mode != NUMA_OFF) CHECK(b.chunk != a.chunk); /* node 1 never takes node 0's pooled chunk */
  size_t before = binds_made();
  job_t c = {.cpu = 2, .fn = medium_in_new_chunk};
  run(&c);
  CHECK(c.chunk == a.chunk); /* back from node 0's pool, not mapped again */
  job_t d = {.cpu = 3, .fn = medium_in_new_chunk};
  run(&d);
  CHECK(d.chunk == b.chunk);
  CHECK(binds_made() == before);

  /* Large blocks: on the caller's node, and the cache per node. */
  lz_trim(0);
  size_t mapped1 = node_mapped(1);
  job_t l1 = {.cpu = 1, .fn = large_block};
  run(&l1);
  if (mode == NUMA_AUTO || mode == NUMA_STRICT) check_stats_node(1, mapped1 + large_size(l1.large));
  if (mode == NUMA_OFF) check_stats_node(1, 0);
  l1.fn = free_p;
  run(&l1); /* into the large cache */
  job_t l0 = {.cpu = 0, .fn = large_block};
  run(&l0);
  if (mode == NUMA_AUTO || mode == NUMA_STRICT) CHECK(l0.large != l1.large); /* not node 1's cached mapping */
  job_t l3 = {.cpu = 3, .fn = large_block};
  run(&l3);
  if (mode == NUMA_AUTO || mode == NUMA_STRICT) CHECK(l3.large == l1.large); /* node 1's cached mapping */
  l0.fn = l3.fn = free_p;
  run(&l0);
  run(&l3);
  lz_trim(0);
  if (mode != NUMA_INTERLEAVE) check_stats_node(1, mode == NUMA_OFF ? 0 : mapped1);

  job_t x0 = {.cpu = 0, .fn = cross_alloc};
  run(&x0);
  job_t x1 = {.cpu = 1, .fn = cross_free_then_alloc};
  run(&x1);

  /* Orphans: a thread on node 1 does not adopt a heap at home on node 0. */
  job_t h0 = {.cpu = 0, .fn = home_of};
  run(&h0);
  job_t h1 = {.cpu = 1, .fn = home_of};
  run(&h1);
  CHECK((uintptr_t)h0.q == want_node(0) && (uintptr_t)h1.q == want_node(1));

  /* Home moves. */
  job_t mg = {.cpu = 0, .fn = migrate};
  run(&mg);
  job_t nf = {.cpu = 0, .fn = no_flap};
  if (mode != NUMA_OFF) run(&nf);

  /* Resident bytes per node come from /proc/self/numa_maps (on this
   * machine's real nodes): a touched block of ours is counted. */
  if (mode != NUMA_OFF) {
    char *p = lz_malloc(8 * MiB);
    CHECK(p != NULL);
    memset(p, 3, 8 * MiB);
    size_t res[LZ_STATS_NODES];
    numa_resident(res, LZ_STATS_NODES);
    size_t sum = 0;
    for (int i = 0; i < LZ_STATS_NODES; i++) sum += res[i];
    CHECKF(sum >= 8 * MiB, "resident per node sums to %zu", sum);
    lz_free(p);
  }
  printf("test_numa %s: ok\n", m);
  return 0;
}
