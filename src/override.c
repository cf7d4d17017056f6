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

lz_text_hot LZ_EXPORT void *malloc(size_t size) { return api_malloc(size); }
lz_text_hot LZ_EXPORT void free(void *p) { api_free(p); }
lz_text_hot LZ_EXPORT void *calloc(size_t n, size_t size) { return lz_calloc(n, size); }
lz_text_hot LZ_EXPORT void *realloc(void *p, size_t size) { return lz_realloc(p, size); }
lz_text_hot LZ_EXPORT void *reallocarray(void *p, size_t n, size_t size) { return lz_reallocarray(p, n, size); }
lz_text_hot LZ_EXPORT void *aligned_alloc(size_t alignment, size_t size) { return lz_aligned_alloc(alignment, size); }
lz_text_hot LZ_EXPORT void *memalign(size_t alignment, size_t size) { return lz_memalign(alignment, size); }
lz_text_hot LZ_EXPORT int posix_memalign(void **out, size_t alignment, size_t size) {
  return lz_posix_memalign(out, alignment, size);
}
LZ_EXPORT void *valloc(size_t size) { return lz_valloc(size); }
LZ_EXPORT void *pvalloc(size_t size) { return lz_pvalloc(size); }
lz_text_hot LZ_EXPORT size_t malloc_usable_size(void *p) { return lz_usable_size(p); }
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

/* mallinfo: glibc's fields, filled from lzmalloc's counters.
 *   arena    bytes mapped for chunks (small and medium blocks)
 *   hblks    -, hblkhd  bytes mapped for large blocks
 *   uordblks bytes in live blocks, fordblks committed but free
 *   keepcost bytes that malloc_trim could release now (approximation: free
 *            committed bytes). */
static struct mallinfo2 info_collect(void) {
  lz_stats_t st;
  lz_stats_get(&st);
  struct mallinfo2 mi = {0};
  size_t large_mapped = atomic_load_explicit(&lz_large_mapped, memory_order_relaxed);
  mi.arena = st.mapped - large_mapped;
  mi.hblkhd = large_mapped;
  mi.uordblks = st.in_use;
  mi.fordblks = st.committed > st.in_use ? st.committed - st.in_use : 0;
  mi.keepcost = mi.fordblks;
  mi.ordblks = 1;
  return mi;
}

LZ_EXPORT struct mallinfo2 mallinfo2(void) { return info_collect(); }

LZ_EXPORT struct mallinfo mallinfo(void) {
  struct mallinfo2 m = info_collect();
  struct mallinfo r = {0};
#define CLAMP(x) ((int)((x) > 0x7fffffff ? 0x7fffffff : (x)))
  r.arena = CLAMP(m.arena);
  r.ordblks = CLAMP(m.ordblks);
  r.hblkhd = CLAMP(m.hblkhd);
  r.uordblks = CLAMP(m.uordblks);
  r.fordblks = CLAMP(m.fordblks);
  r.keepcost = CLAMP(m.keepcost);
#undef CLAMP
  return r;
}

/* malloc_stats: glibc's layout on stderr. */
LZ_EXPORT void malloc_stats(void) {
  lz_stats_t st;
  lz_stats_get(&st);
  char buf[512];
  size_t n = 0;
  const char *l1 = "Arena 0:\nsystem bytes     = ";
  while (*l1) buf[n++] = *l1++;
  n += fmt_u64(buf + n, st.committed);
  const char *l2 = "\nin use bytes     = ";
  while (*l2) buf[n++] = *l2++;
  n += fmt_u64(buf + n, st.in_use);
  const char *l3 = "\nTotal (incl. mmap):\nsystem bytes     = ";
  while (*l3) buf[n++] = *l3++;
  n += fmt_u64(buf + n, st.mapped);
  const char *l4 = "\nin use bytes     = ";
  while (*l4) buf[n++] = *l4++;
  n += fmt_u64(buf + n, st.in_use);
  const char *l5 = "\n";
  while (*l5) buf[n++] = *l5++;
  os_write(2, buf, n);
}

/* malloc_info: glibc's XML layout, one <size> element per small size class
 * holding slabs, and lzmalloc's totals. Formatted without allocating; the
 * one stdio call (fwrite to the caller's stream) runs outside every
 * allocator lock, so a stream that allocates its buffer is fine. */
static size_t xml_put(char *buf, size_t n, const char *s) {
  while (*s) buf[n++] = *s++;
  return n;
}

static size_t xml_num(char *buf, size_t n, const char *before, uint64_t v) {
  n = xml_put(buf, n, before);
  buf[n++] = '"';
  n += fmt_u64(buf + n, v);
  buf[n++] = '"';
  return n;
}

LZ_EXPORT int malloc_info(int options, FILE *fp) {
  if (options != 0) return EINVAL;
  if (fp == NULL) return EINVAL;
  lz_stats_t st;
  lz_stats_get(&st);
  char buf[8192];
  size_t n = xml_put(buf, 0, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n");
  size_t slabs = 0, slab_bytes = 0;
  for (int c = 1; c < LZ_STATS_CLASSES; c++) {
    const lz_class_stats_t *k = &st.classes[c];
    if (k->slabs == 0) continue;
    slabs += k->slabs;
    slab_bytes += k->slab_bytes;
    n = xml_num(buf, n, "<size from=", c == 1 ? 1 : st.classes[c - 1].block_size + 1);
    n = xml_num(buf, n, " to=", k->block_size);
    n = xml_num(buf, n, " total=", k->slab_bytes);
    n = xml_num(buf, n, " count=", k->slabs);
    n = xml_put(buf, n, "/>\n");
  }
  n = xml_put(buf, n, "</sizes>\n");
  n = xml_num(buf, n, "<total type=\"fast\" count=\"0\" size=", 0);
  n = xml_put(buf, n, "/>\n");
  n = xml_num(buf, n, "<total type=\"rest\" count=", slabs);
  n = xml_num(buf, n, " size=", slab_bytes);
  n = xml_put(buf, n, "/>\n");
  n = xml_num(buf, n, "<system type=\"current\" size=", st.committed);
  n = xml_put(buf, n, "/>\n");
  n = xml_num(buf, n, "<aspace type=\"total\" size=", st.mapped);
  n = xml_put(buf, n, "/>\n</heap>\n");
  n = xml_num(buf, n, "<total type=\"mmap\" count=", st.large_in_use ? 1 : 0);
  n = xml_num(buf, n, " size=", st.large_in_use);
  n = xml_put(buf, n, "/>\n");
  n = xml_num(buf, n, "<system type=\"current\" size=", st.committed);
  n = xml_put(buf, n, "/>\n");
  n = xml_num(buf, n, "<aspace type=\"total\" size=", st.mapped);
  n = xml_put(buf, n, "/>\n");
  n = xml_num(buf, n, "<lzmalloc in_use=", st.in_use);
  n = xml_num(buf, n, " resident=", st.resident);
  n = xml_num(buf, n, " remote_frees=", st.remote_frees);
  n = xml_num(buf, n, " pages_purged=", st.pages_purged);
  n = xml_num(buf, n, " heaps=", st.heaps);
  n = xml_put(buf, n, "/>\n");
  for (unsigned i = 0; i < st.numa_nodes && i < LZ_STATS_NODES; i++) {
    n = xml_num(buf, n, "<node id=", i);
    n = xml_num(buf, n, " mapped=", st.nodes[i].mapped);
    n = xml_num(buf, n, " resident=", st.nodes[i].resident);
    n = xml_put(buf, n, "/>\n");
  }
  n = xml_put(buf, n, "</malloc>\n");
  fwrite(buf, 1, n, fp);
  return 0;
}

/* mallopt: glibc's tuning parameters belong to glibc's allocator; lzmalloc
 * is tuned by LZMALLOC_* variables. Known parameters are accepted (1) and
 * have no effect; unknown ones are rejected (0), as glibc does. */
LZ_EXPORT int mallopt(int param, int value) {
  (void)value;
  switch (param) {
    case M_MXFAST: case M_TRIM_THRESHOLD: case M_TOP_PAD: case M_MMAP_THRESHOLD:
    case M_MMAP_MAX: case M_CHECK_ACTION: case M_PERTURB: case M_ARENA_TEST: case M_ARENA_MAX:
      return 1;
    default:
      return 0;
  }
}
