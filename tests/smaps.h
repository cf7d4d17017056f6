/* smaps.h: reading /proc/self/{smaps,maps,pagemap} without allocating
 * (tests that count the library's own pages: fork_pages, startup_bss). */
#ifndef LZ_TEST_SMAPS_H
#define LZ_TEST_SMAPS_H

#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static char tu_proc_buf[1 << 20];

/* Reads a /proc file into tu_proc_buf (NUL-terminated); returns its length. */
static TU_UNUSED size_t tu_read_proc(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  CHECK(fd >= 0);
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, tu_proc_buf + n, sizeof tu_proc_buf - 1 - n);
    CHECK(r >= 0);
    if (r == 0) break;
    n += (size_t)r;
    CHECK(n < sizeof tu_proc_buf - 1);
  }
  close(fd);
  tu_proc_buf[n] = 0;
  return n;
}

/* One mapping of smaps: its header line "lo-hi perms ... [path]" at head,
 * its field lines up to end. */
typedef struct {
  const char *head, *end;
  const char *perms; /* the 4 permission characters */
  int is_lib;        /* a mapping of liblzmalloc */
  int anon;          /* no path */
} tu_smaps_entry_t;

/* Headers are the only lines whose first field holds a '-'. */
static TU_UNUSED int tu_smaps_is_header(const char *line) {
  const char *sp = strchr(line, ' ');
  const char *dash = strchr(line, '-');
  return dash != NULL && sp != NULL && dash < sp;
}

/* Steps *at (in tu_proc_buf, of length n) over one entry; 0 at the end. */
static TU_UNUSED int tu_smaps_next(const char **at, size_t n, tu_smaps_entry_t *e) {
  const char *p = *at, *lim = tu_proc_buf + n;
  if (p >= lim) return 0;
  const char *next = p;
  do {
    next = strchr(next, '\n');
    next = next ? next + 1 : lim;
  } while (next < lim && !tu_smaps_is_header(next));
  const char *eol = strchr(p, '\n');
  const char *sp = strchr(p, ' ');
  e->head = p;
  e->end = next;
  e->perms = sp != NULL ? sp + 1 : "----";
  e->is_lib = eol != NULL && memmem(p, (size_t)(eol - p), "liblzmalloc", 11) != NULL;
  e->anon = eol != NULL && eol[-1] == ' ';
  *at = next;
  return 1;
}

/* The value (kB) of field name ("Rss:") of entry e; 0 if absent. */
static TU_UNUSED unsigned long tu_smaps_field_kb(const tu_smaps_entry_t *e, const char *name) {
  size_t len = strlen(name);
  for (const char *p = e->head; p < e->end;) {
    if (strncmp(p, name, len) == 0) return strtoul(p + len, NULL, 10);
    const char *nl = strchr(p, '\n');
    if (nl == NULL) break;
    p = nl + 1;
  }
  return 0;
}

/* The library's writable segment (its .data and .bss, from its program
 * headers): [lo, hi) page aligned, file_end the end of its file-backed
 * pages (the .bss beyond lies in an anonymous mapping). Measure these
 * addresses, not the mapping after the library's: the kernel merges that
 * mapping with an anonymous neighbour when one is adjacent, as the main
 * thread's TLS block and thread descriptor (mapped by the loader) may be,
 * and a fork parent writing its descriptor (errno, the kernel's rseq
 * updates) then shows in the child as a page "the child wrote". */
typedef struct {
  uintptr_t lo, file_end, hi;
} tu_lib_data_t;

static int tu_lib_data_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  tu_lib_data_t *d = arg;
  if (info->dlpi_name == NULL || strstr(info->dlpi_name, "liblzmalloc") == NULL) return 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W)) continue;
    uintptr_t start = info->dlpi_addr + ph->p_vaddr;
    d->lo = start & ~(uintptr_t)4095;
    d->file_end = (start + ph->p_filesz + 4095) & ~(uintptr_t)4095;
    d->hi = (start + ph->p_memsz + 4095) & ~(uintptr_t)4095;
    return 1;
  }
  return 0;
}

/* 1 if liblzmalloc is loaded (as a shared library) and *d filled. */
static TU_UNUSED int tu_lib_data(tu_lib_data_t *d) {
  memset(d, 0, sizeof *d);
  return dl_iterate_phdr(tu_lib_data_cb, d) == 1;
}

/* Pages of [lo, hi) whose /proc/self/pagemap entry has every bit of
 * `bits` set: present, and mapped by this process alone (after fork, a
 * page the child has written since; a page only read maps the shared
 * zero page, never exclusive). */
#define TU_PM_PRESENT (1ull << 63)
#define TU_PM_EXCLUSIVE (1ull << 56)
static TU_UNUSED size_t tu_pagemap_count(uintptr_t lo, uintptr_t hi, uint64_t bits) {
  static uint64_t ent[4096];
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  CHECK(fd >= 0);
  size_t count = 0;
  for (uintptr_t a = lo; a < hi;) {
    size_t n = (hi - a) / 4096;
    if (n > sizeof ent / sizeof ent[0]) n = sizeof ent / sizeof ent[0];
    CHECK(pread(fd, ent, n * sizeof ent[0], (off_t)(a / 4096 * sizeof ent[0])) == (ssize_t)(n * sizeof ent[0]));
    for (size_t i = 0; i < n; i++) count += (ent[i] & bits) == bits;
    a += n * 4096;
  }
  close(fd);
  return count;
}

/* Bytes of [lo, hi) counted against the system's commit limit: the
 * mappings there whose VmFlags (smaps) say "ac", accountable (private
 * writable memory, resident or not, and what was so when mapped). */
static TU_UNUSED size_t tu_charged_bytes(uintptr_t lo, uintptr_t hi) {
  size_t n = tu_read_proc("/proc/self/smaps"), total = 0;
  const char *at = tu_proc_buf;
  tu_smaps_entry_t e;
  while (tu_smaps_next(&at, n, &e)) {
    unsigned long a, b;
    if (sscanf(e.head, "%lx-%lx", &a, &b) != 2 || b <= lo || a >= hi) continue;
    const char *f = memmem(e.head, (size_t)(e.end - e.head), "VmFlags:", 8);
    if (f == NULL) continue;
    const char *eol = memchr(f, '\n', (size_t)(e.end - f));
    if (memmem(f, (size_t)((eol ? eol : e.end) - f), " ac", 3) == NULL) continue;
    total += (b < hi ? b : hi) - (a > lo ? a : lo);
  }
  return total;
}

/* The library's file and load address, from the loader: 1 if found. */
typedef struct {
  const char *path;
  uintptr_t base;
} tu_lib_file_t;

static int tu_lib_file_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  tu_lib_file_t *f = arg;
  if (info->dlpi_name == NULL || strstr(info->dlpi_name, "liblzmalloc") == NULL) return 0;
  f->path = info->dlpi_name;
  f->base = info->dlpi_addr;
  return 1;
}

/* Where section `name` of the library lies in memory, [lo, hi) rounded
 * out to whole pages (section headers read from its file with pread into
 * static buffers: nothing allocates); 1 if found. */
static TU_UNUSED int tu_lib_section(const char *name, uintptr_t *lo, uintptr_t *hi) {
  tu_lib_file_t f = {NULL, 0};
  if (dl_iterate_phdr(tu_lib_file_cb, &f) != 1) return 0;
  int fd = open(f.path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  static ElfW(Shdr) sh[128];
  static char names[4096];
  ElfW(Ehdr) eh;
  int found = 0;
  if (pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh && eh.e_shnum <= 128 && eh.e_shstrndx < eh.e_shnum &&
      pread(fd, sh, eh.e_shnum * sizeof sh[0], (off_t)eh.e_shoff) == (ssize_t)(eh.e_shnum * sizeof sh[0])) {
    const ElfW(Shdr) *strs = &sh[eh.e_shstrndx];
    size_t len = strs->sh_size < sizeof names - 1 ? strs->sh_size : sizeof names - 1;
    if (pread(fd, names, len, (off_t)strs->sh_offset) == (ssize_t)len) {
      names[len] = 0;
      for (int i = 0; i < eh.e_shnum && !found; i++) {
        if (sh[i].sh_name >= len || strcmp(names + sh[i].sh_name, name) != 0 || sh[i].sh_addr == 0) continue;
        *lo = (f.base + sh[i].sh_addr) & ~(uintptr_t)4095;
        *hi = (f.base + sh[i].sh_addr + sh[i].sh_size + 4095) & ~(uintptr_t)4095;
        found = 1;
      }
    }
  }
  close(fd);
  return found;
}

/* Pages of the library's read-only data (.rodata) mapped in this process
 * (/proc/self/pagemap: present; in a fork child, mapped by the child's
 * own page faults); -1 if not found. Its pages may share the mapping and
 * a page with the end of the code, and a page fault maps the 16 pages of
 * the 64 KiB window around it (the kernel's fault-around): a present page
 * here means a fault outside the hot code's window (src/internal.h,
 * lz_text_hot) as well as a read of .rodata itself. */
static TU_UNUSED long tu_rodata_pages(void) {
  uintptr_t lo, hi;
  if (!tu_lib_section(".rodata", &lo, &hi)) return -1;
  return (long)tu_pagemap_count(lo, hi, TU_PM_PRESENT);
}

#endif
