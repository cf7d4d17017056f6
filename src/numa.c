/* numa.c: NUMA placement.
 *
 * At start-up the topology (each CPU's node) is read from sysfs into
 * static storage (os_numa_topology). With one node, no sysfs, or
 * LZMALLOC_NUMA=off, lz_numa_on stays false and nothing here runs: the
 * callers test that one flag on their slow paths only.
 *
 * With NUMA on:
 *   - every heap has a home node: the node its thread was running on when
 *     the heap was made (numa_heap_start);
 *   - chunks come from the home node's pool of empty chunks (chunk.c), and
 *     a new chunk is bound with mbind(MPOL_PREFERRED) to the home node
 *     (MPOL_BIND with LZMALLOC_NUMA=strict) before its first touch, so its
 *     pages land there whichever thread touches them first; a chunk never
 *     changes node and goes back to its own node's pool;
 *   - a large block is bound to the node its caller runs on, or with
 *     LZMALLOC_NUMA=interleave spread page by page over every node;
 *   - the node of the calling thread is read only on slow paths (heap
 *     creation, a large allocation, one in 64 slow-path entries), from the
 *     rseq area (a load) or getcpu (os_current_cpu).
 *
 * Home moves (numa_observe): a thread the scheduler moves to another node
 * for good should place there, but a short excursion must not move its
 * heap back and forth. The heap moves only after LZ_NUMA_MOVE_SAMPLES
 * consecutive observations on the same other node spanning at least
 * LZ_NUMA_MOVE_MS; one observation on the home node (or on a third node)
 * starts the count again. Observations are made one in 64 slow-path
 * entries (heap.c, with the purge tick). After a move the heap carves new
 * spans only from chunks on the new home (span_alloc) and gives back its
 * cached medium spans and empty current slabs (heap_collect); its chunks on
 * the old node stay where they are, serve the slabs with live blocks
 * already carved there, and go back to the old node's pool once empty.
 */
#include "internal.h"

lz_hot bool lz_numa_on;
lz_hot int lz_numa_nodes;
static uint8_t cpu_node[LZ_MAX_CPUS];
lz_hot static uint64_t all_nodes_mask;
lz_bss_late _Atomic(size_t) lz_numa_mapped[LZ_MAX_NODES];

lz_text_hot void numa_init(void) {
  lz_numa_on = false;
  lz_numa_nodes = 0;
  if (opt_get(OPT_NUMA) == NUMA_OFF) return; /* not even the topology */
  int n = os_numa_topology(cpu_node, LZ_MAX_CPUS);
  if (n > LZ_MAX_NODES) n = LZ_MAX_NODES;
  lz_numa_nodes = n;
  all_nodes_mask = n >= 64 ? ~0ull : (1ull << n) - 1;
  lz_numa_on = n > 1 && opt_get(OPT_NUMA) != NUMA_OFF;
  if (lz_numa_on && opt_get(OPT_VERBOSE)) lz_message("NUMA nodes: ", "", (uintptr_t)n, 2);
}

unsigned numa_current_node(void) {
  int cpu = os_current_cpu();
  return cpu >= 0 && cpu < LZ_MAX_CPUS ? cpu_node[cpu] : 0;
}

void numa_heap_start(heap_t *h) {
  h->numa_home = numa_current_node();
  h->numa_streak = 0;
}

bool numa_observe(heap_t *h) {
  unsigned node = numa_current_node();
  if (node == h->numa_home) {
    h->numa_streak = 0;
    return false;
  }
  uint64_t now = os_now_ms();
  if (h->numa_streak == 0 || node != h->numa_seen) {
    h->numa_seen = node;
    h->numa_seen_at = now;
    h->numa_streak = 1;
    return false;
  }
  if (++h->numa_streak >= LZ_NUMA_MOVE_SAMPLES && now - h->numa_seen_at >= LZ_NUMA_MOVE_MS) {
    h->numa_home = node;
    h->numa_streak = 0;
    if (opt_get(OPT_VERBOSE) >= 2) lz_message("a heap moved to NUMA node ", "", node, 2);
    return true;
  }
  return false;
}

static int bind_policy(void) { return opt_get(OPT_NUMA) == NUMA_STRICT ? OS_MPOL_BIND : OS_MPOL_PREFERRED; }

void numa_bind_chunk(chunk_t *c, unsigned node) {
  os_mbind(c, LZ_CHUNK_SIZE, bind_policy(), 1ull << node);
  atomic_fetch_add_explicit(&lz_numa_mapped[node], LZ_CHUNK_SIZE, memory_order_relaxed);
}

unsigned numa_bind_large(void *p, size_t size) {
  if (opt_get(OPT_NUMA) == NUMA_INTERLEAVE) {
    os_mbind(p, size, OS_MPOL_INTERLEAVE, all_nodes_mask);
    numa_account(NUMA_NODE_INTERLEAVED, (ptrdiff_t)size);
    return NUMA_NODE_INTERLEAVED;
  }
  unsigned node = numa_current_node();
  os_mbind(p, size, bind_policy(), 1ull << node);
  numa_account(node, (ptrdiff_t)size);
  return node;
}

void numa_bind_range(void *p, size_t size, unsigned node) {
  if (node == NUMA_NODE_INTERLEAVED) os_mbind(p, size, OS_MPOL_INTERLEAVE, all_nodes_mask);
  else os_mbind(p, size, bind_policy(), 1ull << node);
  numa_account(node, (ptrdiff_t)size);
}

void numa_account(unsigned node, ptrdiff_t bytes) {
  if (node == NUMA_NODE_INTERLEAVED) {
    ptrdiff_t share = bytes / lz_numa_nodes;
    for (int i = 0; i < lz_numa_nodes; i++)
      atomic_fetch_add_explicit(&lz_numa_mapped[i], (size_t)share, memory_order_relaxed);
    return;
  }
  atomic_fetch_add_explicit(&lz_numa_mapped[node], (size_t)bytes, memory_order_relaxed);
}

/* Resident bytes per node of lzmalloc's own mappings, from
 * /proc/self/numa_maps: each line is one mapping, "<start> <policy> ...
 * N<node>=<pages> ... kernelpagesize_kB=<k>"; a mapping is ours when the
 * chunk map knows its start. */
typedef struct resident_ctx_s {
  size_t *out;
  unsigned max;
} resident_ctx_t;

static uint64_t parse_num(const char **s, const char *end, unsigned base) {
  uint64_t v = 0;
  for (; *s < end; (*s)++) {
    char ch = **s;
    unsigned d = ch >= '0' && ch <= '9' ? (unsigned)(ch - '0')
                 : base == 16 && ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10) : 99;
    if (d >= base) break;
    v = v * base + d;
  }
  return v;
}

static void resident_line(void *ctx, const char *line, size_t n) {
  resident_ctx_t *r = ctx;
  const char *s = line, *end = line + n;
  uintptr_t start = (uintptr_t)parse_num(&s, end, 16);
  if (chunkmap_kind(start) == CHUNK_NONE) return;
  size_t pages[LZ_MAX_NODES] = {0};
  size_t page_kb = 4;
  while (s < end) {
    while (s < end && *s == ' ') s++;
    if (s < end && *s == 'N' && s + 1 < end && s[1] >= '0' && s[1] <= '9') {
      s++;
      uint64_t node = parse_num(&s, end, 10);
      if (s < end && *s == '=') {
        s++;
        uint64_t v = parse_num(&s, end, 10);
        if (node < LZ_MAX_NODES) pages[node] = v;
      }
    } else if (end - s > 17 && __builtin_memcmp(s, "kernelpagesize_kB=", 18) == 0) {
      s += 18;
      page_kb = (size_t)parse_num(&s, end, 10);
    }
    while (s < end && *s != ' ') s++;
  }
  for (unsigned i = 0; i < r->max && i < LZ_MAX_NODES; i++) r->out[i] += pages[i] * page_kb * KiB;
}

void numa_resident(size_t *out, unsigned max) {
  for (unsigned i = 0; i < max; i++) out[i] = 0;
  resident_ctx_t ctx = {out, max};
  os_read_lines("/proc/self/numa_maps", resident_line, &ctx);
}

/* Test hook: re-reads the (injected) topology and options. */
void lz_numa_reinit(void) { numa_init(); }
