/* override.c: the standard malloc family, replaced by lzmalloc.
 *
 * Built into liblzmalloc.so and liblzmalloc.a (not into the lz_-prefixed
 * test library). The hot entry points inline the same fast paths as the
 * lz_ API; the rest forward to it. The glibc-internal __libc_* names are
 * provided too, since some programs and libraries call them directly.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include "alloc.h"

/* malloc's and free's fast paths each start a cache line (lz_entry_align:
 * internal.h). */
lz_text_hot lz_entry_align LZ_EXPORT void *malloc(size_t size) { return api_malloc(size); }
lz_text_hot lz_entry_align LZ_EXPORT void free(void *p) { api_free(p); }
lz_text_hot LZ_EXPORT void *calloc(size_t n, size_t size) { return api_calloc(n, size); }
lz_text_hot LZ_EXPORT void *realloc(void *p, size_t size) { return lz_realloc(p, size); }
lz_text_hot LZ_EXPORT void *reallocarray(void *p, size_t n, size_t size) { return lz_reallocarray(p, n, size); }
lz_text_hot LZ_EXPORT void *aligned_alloc(size_t alignment, size_t size) { return api_memalign(alignment, size); }
lz_text_hot LZ_EXPORT void *memalign(size_t alignment, size_t size) { return api_memalign(alignment, size); }
lz_text_hot LZ_EXPORT int posix_memalign(void **out, size_t alignment, size_t size) {
  return api_posix_memalign(out, alignment, size);
}
LZ_EXPORT void *valloc(size_t size) { return lz_valloc(size); }
LZ_EXPORT void *pvalloc(size_t size) { return lz_pvalloc(size); }
lz_text_hot LZ_EXPORT size_t malloc_usable_size(void *p) { return api_usable(p); }
LZ_EXPORT int malloc_trim(size_t pad) { return lz_trim(pad); }
LZ_EXPORT void free_sized(void *p, size_t size) { lz_free_sized(p, size); }
LZ_EXPORT void free_aligned_sized(void *p, size_t alignment, size_t size) {
  lz_free_aligned_sized(p, alignment, size);
}
lz_text_hot LZ_EXPORT void cfree(void *p) { api_free(p); }

/* glibc's internal names. */
LZ_EXPORT void *__libc_malloc(size_t size) { return api_malloc(size); }
LZ_EXPORT void __libc_free(void *p) { api_free(p); }
LZ_EXPORT void *__libc_calloc(size_t n, size_t size) { return lz_calloc(n, size); }
LZ_EXPORT void *__libc_realloc(void *p, size_t size) { return lz_realloc(p, size); }
LZ_EXPORT void *__libc_memalign(size_t alignment, size_t size) { return lz_memalign(alignment, size); }
LZ_EXPORT void *__libc_valloc(size_t size) { return lz_valloc(size); }
LZ_EXPORT void *__libc_pvalloc(size_t size) { return lz_pvalloc(size); }

/* mallinfo: glibc's fields, filled from lzmalloc's counters, live large
 * blocks standing for glibc's mmapped chunks (as there, counted apart from
 * the arena's figures: the program's bytes are uordblks + hblkhd, and
 * everything mapped is arena + hblkhd).
 *   arena    bytes mapped for chunks, and for large ranges kept free
 *   hblks    live large blocks, hblkhd  their bytes
 *   uordblks bytes in live small and medium blocks, fordblks the rest of
 *            what is committed (free chunk pages, free large ranges)
 *   keepcost bytes that malloc_trim could release now (approximation:
 *            fordblks). */
static struct mallinfo2 info_collect(void) {
  lz_stats_t st;
  lz_stats_get(&st);
  struct mallinfo2 mi = {0};
  mi.hblks = atomic_load_explicit(&lz_large_blocks, memory_order_relaxed);
  mi.hblkhd = st.large_in_use;
  mi.arena = st.mapped > mi.hblkhd ? st.mapped - mi.hblkhd : 0;
  mi.uordblks = st.in_use - st.large_in_use;
  size_t committed = st.committed > mi.hblkhd ? st.committed - mi.hblkhd : 0;
  mi.fordblks = committed > mi.uordblks ? committed - mi.uordblks : 0;
  mi.keepcost = mi.fordblks;
  mi.ordblks = 1;
  return mi;
}

LZ_EXPORT struct mallinfo2 mallinfo2(void) { return info_collect(); }

/* mallinfo: mallinfo2's figures in int fields, converted as glibc 2.36
 * converts them (malloc/malloc.c, __libc_mallinfo: plain assignments, so a
 * figure of 2 GiB or more wraps modulo 2^32, as it does there);
 * __libc_mallinfo, which glibc exports too, is the same function. */
static struct mallinfo mallinfo_body(void) {
  struct mallinfo2 m = info_collect();
  struct mallinfo r = {0};
  r.arena = (int)m.arena;
  r.ordblks = (int)m.ordblks;
  r.smblks = (int)m.smblks;
  r.hblks = (int)m.hblks;
  r.hblkhd = (int)m.hblkhd;
  r.usmblks = (int)m.usmblks;
  r.fsmblks = (int)m.fsmblks;
  r.uordblks = (int)m.uordblks;
  r.fordblks = (int)m.fordblks;
  r.keepcost = (int)m.keepcost;
  return r;
}
LZ_EXPORT struct mallinfo mallinfo(void) { return mallinfo_body(); }
LZ_EXPORT struct mallinfo __libc_mallinfo(void) { return mallinfo_body(); }

/* Text built without stdio (it may allocate) into a fixed buffer: what
 * does not fit is cut, never written past the end (each caller's buffer
 * holds its largest output: every class and node listed, 20 digits a
 * number). */
typedef struct text_s {
  char *buf;
  size_t n, cap;
} text_t;

static void put(text_t *t, const char *s) {
  while (*s && t->n < t->cap) t->buf[t->n++] = *s++;
}

/* `before`, then v in decimal, quoted (an XML attribute's value). */
static void put_num(text_t *t, const char *before, uint64_t v) {
  char digits[24];
  digits[fmt_u64(digits, v)] = 0;
  put(t, before);
  put(t, "\"");
  put(t, digits);
  put(t, "\"");
}

/* A line of malloc_stats: the label, then v right-aligned in ten columns
 * (glibc's "%10u" and "%10lu"; the caller reduces v as glibc's casts do). */
static void put_col(text_t *t, const char *label, uint64_t v) {
  char digits[24];
  size_t n = fmt_u64(digits, v);
  digits[n] = 0;
  put(t, label);
  for (size_t i = n; i < 10; i++) put(t, " ");
  put(t, digits);
  put(t, "\n");
}

/* malloc_stats: glibc 2.36's text on stderr, line for line (one arena;
 * its "Total (incl. mmap)" adds the large blocks, as glibc adds its
 * mmapped chunks, and the two max mmap lines are the most live large
 * blocks and bytes in them there ever were). glibc prints each figure as
 * an unsigned int (modulo 2^32) but the last, as an unsigned long. */
LZ_EXPORT void malloc_stats(void) {
  struct mallinfo2 mi = info_collect();
  char buf[512];
  text_t t = {buf, 0, sizeof buf};
  put(&t, "Arena 0:\n");
  put_col(&t, "system bytes     = ", (uint32_t)mi.arena);
  put_col(&t, "in use bytes     = ", (uint32_t)mi.uordblks);
  put(&t, "Total (incl. mmap):\n");
  put_col(&t, "system bytes     = ", (uint32_t)(mi.arena + mi.hblkhd));
  put_col(&t, "in use bytes     = ", (uint32_t)(mi.uordblks + mi.hblkhd));
  put_col(&t, "max mmap regions = ", (uint32_t)atomic_load_explicit(&lz_large_blocks_max, memory_order_relaxed));
  put_col(&t, "max mmap bytes   = ", atomic_load_explicit(&lz_large_in_use_max, memory_order_relaxed));
  os_write(2, buf, t.n);
}

/* malloc_info: glibc's XML layout, one <size> element per small size class
 * holding slabs, and lzmalloc's totals. Formatted without allocating; the
 * one stdio call (fwrite to the caller's stream) runs outside every
 * allocator lock, so a stream that allocates its buffer is fine. The
 * buffer: the fixed elements (under 1 KiB), a <size> line per class (39
 * characters and four numbers) and a <node> line per node (36 and three). */
#define INFO_FIXED_BYTES 1024
#define INFO_CLASS_BYTES (39 + 4 * 20)
#define INFO_NODE_BYTES (36 + 3 * 20)
LZ_EXPORT int malloc_info(int options, FILE *fp) {
  if (options != 0) return EINVAL;
  if (fp == NULL) return EINVAL;
  lz_stats_t st;
  lz_stats_get(&st);
  char buf[INFO_FIXED_BYTES + LZ_STATS_CLASSES * INFO_CLASS_BYTES + LZ_STATS_NODES * INFO_NODE_BYTES];
  text_t t = {buf, 0, sizeof buf};
  put(&t, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n");
  size_t slabs = 0, slab_bytes = 0;
  for (int c = 1; c < LZ_STATS_CLASSES; c++) {
    const lz_class_stats_t *k = &st.classes[c];
    if (k->slabs == 0) continue;
    slabs += k->slabs;
    slab_bytes += k->slab_bytes;
    put_num(&t, "<size from=", c == 1 ? 1 : st.classes[c - 1].block_size + 1);
    put_num(&t, " to=", k->block_size);
    put_num(&t, " total=", k->slab_bytes);
    put_num(&t, " count=", k->slabs);
    put(&t, "/>\n");
  }
  put(&t, "</sizes>\n");
  put_num(&t, "<total type=\"fast\" count=\"0\" size=", 0);
  put(&t, "/>\n");
  put_num(&t, "<total type=\"rest\" count=", slabs);
  put_num(&t, " size=", slab_bytes);
  put(&t, "/>\n");
  put_num(&t, "<system type=\"current\" size=", st.committed);
  put(&t, "/>\n");
  put_num(&t, "<aspace type=\"total\" size=", st.mapped);
  put(&t, "/>\n</heap>\n");
  put_num(&t, "<total type=\"mmap\" count=", atomic_load_explicit(&lz_large_blocks, memory_order_relaxed));
  put_num(&t, " size=", st.large_in_use);
  put(&t, "/>\n");
  put_num(&t, "<system type=\"current\" size=", st.committed);
  put(&t, "/>\n");
  put_num(&t, "<aspace type=\"total\" size=", st.mapped);
  put(&t, "/>\n");
  put_num(&t, "<lzmalloc in_use=", st.in_use);
  put_num(&t, " resident=", st.resident);
  put_num(&t, " remote_frees=", st.remote_frees);
  put_num(&t, " pages_purged=", st.pages_purged);
  put_num(&t, " heaps=", st.heaps);
  put(&t, "/>\n");
  for (unsigned i = 0; i < st.numa_nodes && i < LZ_STATS_NODES; i++) {
    put_num(&t, "<node id=", i);
    put_num(&t, " mapped=", st.nodes[i].mapped);
    put_num(&t, " resident=", st.nodes[i].resident);
    put(&t, "/>\n");
  }
  put(&t, "</malloc>\n");
  fwrite(buf, 1, t.n, fp);
  return 0;
}

/* mallopt: glibc's tuning parameters belong to glibc's allocator; lzmalloc
 * is tuned by LZMALLOC_* variables, so none has an effect here. The answer
 * is glibc 2.36's (malloc/malloc.c, __libc_mallopt): 1 for every
 * parameter, known or not, except M_MXFAST with a value outside
 * 0..MAX_FAST_SIZE (80 * sizeof(size_t) / 4), which it refuses with 0;
 * errno untouched (tests/api_conformance.c, mallopt). __libc_mallopt,
 * which glibc exports too, is the same function. */
LZ_EXPORT int mallopt(int param, int value) {
  if (param == M_MXFAST) return value >= 0 && value <= 80 * (int)sizeof(size_t) / 4;
  return 1;
}
LZ_EXPORT int __libc_mallopt(int param, int value) { return mallopt(param, value); }
