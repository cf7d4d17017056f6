/* scale_bigmem: several GiB through the large engine. TOTAL bytes (4 GiB)
 * are allocated as 1-64 MiB blocks (malloc, calloc, aligned_alloc, and
 * realloc growing or shrinking a live block with mremap) while at most LIVE
 * (2 GiB) are live; only one byte per page is touched, on a sample of the
 * pages (every SAMPLE-th page plus the first and last bytes), to keep it
 * fast, and each touched byte is checked before the block is freed or
 * reallocated. Then everything is freed and lz_trim(0) called: mapped must
 * drop back below start + 64 MiB, large_in_use to zero.
 *
 * LZ_TEST_SCALE multiplies TOTAL (at least 256 MiB); the live cap stays.
 */
#include "scale_common.h"

/* ---- the test ------------------------------------------------------------ */
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)
enum { MAXB = 4096, PAGE = 4096, SAMPLE = 16 };

typedef struct blk_s {
  unsigned char *p;
  size_t size;
  uint64_t id;
} blk_t;

static blk_t live[MAXB];
static size_t nlive, live_bytes;
static uint64_t next_id = 1;

static int trace; /* SCALE_TRACE=1: log every operation on stderr */
#define TRACE(...) do { if (trace) fprintf(stderr, __VA_ARGS__); } while (0)

static unsigned char tag(uint64_t id, size_t off) { return (unsigned char)((id * 131u) ^ (off >> 12) ^ 0x5a); }

/* Touches b on the sample from offset `from` on: page starts at multiples
 * of SAMPLE pages, plus the block's last byte (the end marker). */
static void touch(blk_t *b, size_t from) {
  for (size_t off = (from + SAMPLE * PAGE - 1) / (SAMPLE * PAGE) * (SAMPLE * PAGE); off < b->size;
       off += SAMPLE * PAGE)
    b->p[off] = tag(b->id, off);
  b->p[b->size - 1] = tag(b->id, b->size - 1); /* the end marker, always (a shrink moves it) */
}

/* Checks the sample on [0, upto), and the end marker at offset `last`
 * unless last == SIZE_MAX. */
static void verify(const blk_t *b, size_t upto, size_t last) {
  for (size_t off = 0; off < upto; off += SAMPLE * PAGE)
    if (b->p[off] != tag(b->id, off)) {
      fprintf(stderr, "block %p (id %llu, %zu MiB): byte at offset %zu is 0x%02x, expected 0x%02x\n", (void *)b->p,
              (unsigned long long)b->id, b->size >> 20, off, b->p[off], tag(b->id, off));
      CHECK(0);
    }
  if (last != SIZE_MAX && b->p[last] != tag(b->id, last)) {
    fprintf(stderr, "block %p (id %llu, size %zu): end marker at %zu is 0x%02x, expected 0x%02x\n", (void *)b->p,
            (unsigned long long)b->id, b->size, last, b->p[last], tag(b->id, last));
    CHECK(0);
  }
}

static void drop(size_t i) {
  blk_t *b = &live[i];
  verify(b, b->size, b->size - 1);
  CHECK(lz_usable_size(b->p) >= b->size);
  if (b->id & 1) lz_free(b->p);
  else lz_free_sized(b->p, b->size);
  TRACE("free id %llu %p size %zu\n", (unsigned long long)b->id, (void *)b->p, b->size);
  live_bytes -= b->size;
  live[i] = live[--nlive];
}

int main(void) {
  double scale = test_scale();
  size_t total = (size_t)((double)(4 * GiB) * scale);
  if (total < 256 * MiB) total = 256 * MiB;
  const size_t cap = 2 * GiB;
  uint64_t rng = 0x853c49e6748fea9bull;
  double t0 = now_s();
  trace = getenv("SCALE_TRACE") != NULL && getenv("SCALE_TRACE")[0] == '1';

  /* Warm up (first large allocation initialises everything), then trim and
   * take the baseline. */
  lz_free(lz_malloc(3 * MiB));
  lz_trim(0);
  lz_stats_t st0, st;
  lz_stats_get(&st0);

  size_t allocated = 0, peak_live = 0, peak_mapped = 0;
  unsigned n_malloc = 0, n_calloc = 0, n_aligned = 0, n_realloc = 0;
  while (allocated < total) {
    if (trace)
      for (size_t k = 0; k < nlive; k++)
        if (live[k].p[live[k].size - 1] != tag(live[k].id, live[k].size - 1))
          TRACE("  !! id %llu end marker lost\n", (unsigned long long)live[k].id);
    /* Log-uniform size in [1 MiB, 64 MiB], not page-rounded. */
    unsigned sh = (unsigned)(rng_next(&rng) % 7); /* 1..64 MiB */
    size_t size = (MiB << sh) + (size_t)(rng_next(&rng) % (MiB << sh));
    if (size > 64 * MiB) size = 64 * MiB - (size_t)(rng_next(&rng) % 4096);
    unsigned how = (unsigned)(rng_next(&rng) % 10);

    if (how == 9 && nlive > 0) { /* realloc a live block to the new size */
      size_t i = (size_t)(rng_next(&rng) % nlive);
      blk_t *b = &live[i];
      if (size > b->size)
        while (live_bytes + (size - b->size) > cap && nlive > 1) {
          size_t j = (size_t)(rng_next(&rng) % nlive);
          if (j == i) continue;
          drop(j);
          if (i == nlive) i = j; /* our block moved into slot j */
          b = &live[i];
        }
      if (size <= b->size || live_bytes + (size - b->size) <= cap) {
        size_t keep = b->size < size ? b->size : size;
        verify(b, b->size, b->size - 1);
        unsigned char *q = lz_realloc(b->p, size);
        CHECK(q != NULL);
        TRACE("realloc id %llu %p size %zu -> %p size %zu\n", (unsigned long long)b->id, (void *)b->p, b->size,
              (void *)q, size);
        b->p = q;
        size_t old = b->size;
        b->size = size;
        verify(b, keep, old - 1 < keep ? old - 1 : SIZE_MAX);
        /* The old last byte may lie past the new end, or inside the sample
         * gap: re-touch everything from `keep` on. */
        touch(b, keep);
        live_bytes = live_bytes - old + size;
        if (size > old) allocated += size - old;
        n_realloc++;
        continue;
      }
    }

    while (live_bytes + size > cap && nlive > 0) drop((size_t)(rng_next(&rng) % nlive));
    CHECK(nlive < MAXB);
    blk_t *b = &live[nlive];
    size_t align = 16;
    if (how < 5) {
      b->p = lz_malloc(size);
      n_malloc++;
    } else if (how < 7) {
      b->p = lz_calloc(1, size);
      n_calloc++;
      CHECK(b->p != NULL);
      for (size_t off = 0; off < size; off += SAMPLE * PAGE) CHECK(b->p[off] == 0);
      CHECK(b->p[size - 1] == 0);
    } else {
      align = (size_t)1 << (16 + rng_next(&rng) % 11); /* 64 KiB .. 64 MiB */
      b->p = lz_aligned_alloc(align, size);
      n_aligned++;
    }
    CHECK(b->p != NULL);
    CHECK(((uintptr_t)b->p & (align - 1)) == 0);
    CHECK(lz_usable_size(b->p) >= size);
    b->size = size;
    b->id = next_id++;
    TRACE("%s id %llu %p size %zu align %zu\n", how < 5 ? "malloc" : how < 7 ? "calloc" : "aligned_alloc",
          (unsigned long long)b->id, (void *)b->p, size, align);
    touch(b, 0);
    nlive++;
    live_bytes += size;
    allocated += size;
    if (live_bytes > peak_live) peak_live = live_bytes;
    if ((n_malloc + n_calloc + n_aligned) % 16 == 0) {
      lz_stats_get(&st);
      if (st.mapped > peak_mapped) peak_mapped = st.mapped;
      /* Mappings track the live set (plus the bounded cache). */
      CHECK(st.mapped <= live_bytes + live_bytes / 8 + nlive * 4 * MiB + 2 * (64 * MiB) + 512 * MiB);
    }
  }
  lz_stats_get(&st);
  CHECK(st.large_in_use >= live_bytes);
  while (nlive > 0) drop(nlive - 1);
  lz_stats_get(&st);
  size_t mapped_before_trim = st.mapped;
  lz_trim(0);
  lz_stats_get(&st);
  printf("scale_bigmem: %zu MiB allocated (%u malloc, %u calloc, %u aligned_alloc, %u realloc), peak live "
         "%zu MiB, peak mapped %zu MiB; after free: mapped %zu MiB, after trim %zu MiB (start %zu MiB), "
         "large_in_use %zu; %.2f s\n",
         allocated >> 20, n_malloc, n_calloc, n_aligned, n_realloc, peak_live >> 20, peak_mapped >> 20,
         mapped_before_trim >> 20, st.mapped >> 20, st0.mapped >> 20, st.large_in_use, now_s() - t0);
  CHECK(allocated >= total);
  CHECK(peak_live <= cap);
  CHECK(st.large_in_use == 0);
  CHECK(st.mapped < st0.mapped + 64 * MiB);
  /* And the process goes on allocating. */
  void *p = lz_malloc(8 * MiB);
  CHECK(p != NULL);
  ((unsigned char *)p)[8 * MiB - 1] = 1;
  lz_free(p);
  return 0;
}
