/* startup_bss: the pages of the library's own zero-filled data (.bss) and
 * read-only data that a process which allocates a little makes resident
 * (API).
 *
 * The .bss holds large.c's descriptor directory (128 KiB) and whatever
 * small variable the linker puts around it. A small variable that
 * start-up, the first allocations or a fork child writes costs every
 * process a page fault and a page of its own (and a fork child a page
 * copy): those live with the hot variables in .data (lz_hot, internal.h).
 * So after start-up and blocks of a few sizes no page of the .bss is
 * touched at all (mincore, which also sees pages only read), free(NULL)
 * included.
 *
 * The chunk map (64 MiB of address space) is the library's last segment,
 * read-only zero-fill memory (src/chunkmap.c, cmake/layout.ld): of it,
 * the process touches and writes one page, the one holding the byte of
 * its one chunk (free(NULL) reads none).
 *
 * Commit: the library's memory counted against the system's commit limit
 * (smaps VmFlags "ac": writable private memory, resident or not) is its
 * writable segment and the map's pages written, nothing more: with the
 * map in .bss every process was charged 64 MiB, with the padding that
 * ends the library's span writable (at the end of .bss) 1.6 MiB; both are
 * read-only now, in the last segment. The map's pages are read-only, not
 * executable, but those written.
 *
 * Before its first allocation (and with no option set), a process has
 * written two of the library's file-backed writable pages: the RELRO page
 * (the loader's relocations) and the hot variables' page (the loader's
 * zeroing of the start of .bss, our constructor): not the options' page
 * (cmake/layout.ld). After its first allocations, still those two: the
 * first heap's fields share the hot variables' page (its remote batches
 * lie on the options' page, written only once it frees another thread's
 * blocks).
 *
 * Nor do they read the clock through the vDSO (its data page and libc's
 * code: two faults; a process's first reads are system calls, os.c).
 *
 * Nor do those paths read the library's .rodata (the size tables are in
 * the RELRO page: internal.h, lz_ro_hot), whose first read would cost a
 * fault and up to 16 KiB resident.
 *
 * Measured over the .bss's own addresses (from the library's program
 * headers: the anonymous mapping holding them may be merged with a
 * neighbour, such as the main thread's TLS block, smaps.h) with
 * /proc/self/pagemap and mincore, and with /proc/self/smaps (Rss of the
 * library's read-only data mapping). Nothing in the measurement allocates.
 * Hardening level 2 keeps state of its own (skipped there).
 *
 * Then a second thread: it allocates and frees 4 MiB and waits, idle,
 * so the background thread starts and gives its pages back (the
 * process's resident set drops). Neither the thread's heap and chunks,
 * its exit hook, the background thread's start nor its passes may touch
 * another page of the .bss than the chunk map's (two allowed: the
 * thread's chunks may have their bytes on the next page).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "smaps.h"
#include "testutil.h"

/* The library's .bss beyond its file-backed pages: [lo, hi). */
static void bss_range(uintptr_t *lo, uintptr_t *hi) {
  tu_lib_data_t d;
  CHECKF(tu_lib_data(&d), "liblzmalloc's writable segment not found");
  *lo = d.file_end;
  *hi = d.hi;
}

/* The chunk map's pages: [lo, hi). */
static void map_range(uintptr_t *lo, uintptr_t *hi) {
  CHECKF(tu_lib_section(".lzmalloc_map", lo, hi), "the library has no .lzmalloc_map section (cmake/layout.ld)");
}

/* The permissions of the mapping holding a ("r--p"...), from maps. */
static void perms_at(uintptr_t a, char perms[5]) {
  size_t n = tu_read_proc("/proc/self/maps");
  strcpy(perms, "none");
  for (const char *p = tu_proc_buf; p < tu_proc_buf + n;) {
    unsigned long lo, hi;
    char pr[5] = {0};
    if (sscanf(p, "%lx-%lx %4s", &lo, &hi, pr) == 3 && a >= lo && a < hi) {
      memcpy(perms, pr, 5);
      return;
    }
    const char *eol = strchr(p, '\n');
    if (eol == NULL) break;
    p = eol + 1;
  }
}

/* Pages of [lo, hi) the process has touched, read or written (mincore). */
static long touched_pages(uintptr_t lo, uintptr_t hi) {
  static unsigned char vec[1 << 16];
  size_t pages = (hi - lo) / 4096;
  CHECKF(pages <= sizeof vec, "%zu pages to look at", pages);
  CHECK(mincore((void *)lo, hi - lo, vec) == 0);
  long touched = 0;
  for (size_t i = 0; i < pages; i++) touched += vec[i] & 1;
  return touched;
}

/* The library's span (its loadable segments): [lo, hi). */
static uintptr_t span_lo, span_hi;
static int span_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  (void)arg;
  if (info->dlpi_name == NULL || strstr(info->dlpi_name, "liblzmalloc") == NULL) return 0;
  span_lo = UINTPTR_MAX;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD) continue;
    uintptr_t a = info->dlpi_addr + ph->p_vaddr, b = a + ph->p_memsz;
    if (a < span_lo) span_lo = a & ~(uintptr_t)4095;
    if (b > span_hi) span_hi = (b + 4095) & ~(uintptr_t)4095;
  }
  return 1;
}

/* The commit check (see the top): the library's charged bytes against
 * its writable segment and the map's pages written. */
static void check_charged(const char *when) {
  CHECK(dl_iterate_phdr(span_cb, NULL) == 1);
  tu_lib_data_t d;
  CHECK(tu_lib_data(&d));
  uintptr_t elo, ehi, mlo, mhi;
  CHECKF(tu_lib_section(".bss.lzmalloc_end", &elo, &ehi), "the library has no .bss.lzmalloc_end section");
  map_range(&mlo, &mhi);
  size_t map_written = tu_pagemap_count(mlo, mhi, TU_PM_PRESENT | TU_PM_EXCLUSIVE);
  size_t charged = tu_charged_bytes(span_lo, span_hi), want = (ehi - d.lo) + map_written * 4096;
  CHECKF(charged <= want,
         "%s: %zu KiB of the library's memory counts against the commit limit (want at most %zu KiB: its "
         "writable segment, %zu KiB, and the chunk map's %zu pages written)",
         when, charged / 1024, want / 1024, (size_t)(ehi - d.lo) / 1024, map_written);
  printf("startup_bss: %s: %zu KiB charged (writable data %zu KiB, chunk map pages written %zu)\n", when,
         charged / 1024, (size_t)(ehi - d.lo) / 1024, map_written);
}

/* Resident kB of the .bss: pages written (present and this process's
 * own; a page only read maps the shared zero page). */
static long bss_rss_kb(void) {
  uintptr_t lo, hi;
  bss_range(&lo, &hi);
  return (long)tu_pagemap_count(lo, hi, TU_PM_PRESENT | TU_PM_EXCLUSIVE) * 4;
}

/* Pages of the .bss the process has touched, read or written (mincore:
 * a page only read maps the shared zero page, which Rss leaves out). */
static long bss_touched_pages(void) {
  uintptr_t lo, hi;
  bss_range(&lo, &hi);
  return touched_pages(lo, hi);
}

/* For a failure's message: the .bss pages touched, as offsets from the
 * library's base (`nm -n liblzmalloc.so` names what lies there). */
static const char *bss_touched_where(void) {
  static char buf[512];
  static unsigned char vec[1 << 16];
  uintptr_t lo, hi;
  bss_range(&lo, &hi);
  CHECK(dl_iterate_phdr(span_cb, NULL) == 1);
  size_t pages = (hi - lo) / 4096, n = 0;
  buf[0] = 0;
  if (pages > sizeof vec || mincore((void *)lo, hi - lo, vec) != 0) return "(mincore failed)";
  for (size_t i = 0; i < pages && n + 24 < sizeof buf; i++)
    if (vec[i] & 1) n += (size_t)snprintf(buf + n, sizeof buf - n, " 0x%lx", (unsigned long)(lo + i * 4096 - span_lo));
  return buf;
}

/* Pages of the library's writable segment up to its file's end that the
 * process has written: present and no longer the file's page (pagemap bit
 * 61, file page or shared: clear for a private copy); -1: no pagemap. */
static long data_pages_written(void) {
  tu_lib_data_t d;
  CHECKF(tu_lib_data(&d), "liblzmalloc's writable segment not found");
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  long written = 0;
  for (uintptr_t a = d.lo; a < d.file_end; a += 4096) {
    uint64_t e = 0;
    if (pread(fd, &e, sizeof e, (off_t)(a / 4096 * sizeof e)) != (ssize_t)sizeof e) {
      close(fd);
      return -1;
    }
    written += (e >> 63 & 1) && !(e >> 61 & 1);
  }
  close(fd);
  return written;
}

/* An option set in the environment (the constructor then writes its
 * value); nothing allocates. */
static int option_set(void) {
  extern char **environ;
  for (char **e = environ; e != NULL && *e != NULL; e++)
    if (strncmp(*e, "LZMALLOC_", 9) == 0) return 1;
  return 0;
}

/* Resident pages of the process (/proc/self/statm; nothing allocates). */
static long resident_pages(void) {
  char buf[128];
  int fd = open("/proc/self/statm", O_RDONLY);
  CHECK(fd >= 0);
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  CHECK(n > 0);
  buf[n] = 0;
  long size = 0, res = 0;
  CHECK(sscanf(buf, "%ld %ld", &size, &res) == 2);
  return res;
}

enum { THREAD_BLOCKS = 256, THREAD_BLOCK = 16384 };
static sem_t thread_allocated, thread_free, thread_go;

static void *worker(void *arg) {
  (void)arg;
  static void *blk[THREAD_BLOCKS];
  for (int i = 0; i < THREAD_BLOCKS; i++) {
    blk[i] = malloc(THREAD_BLOCK);
    CHECK(blk[i] != NULL);
    memset(blk[i], 0x5a, THREAD_BLOCK);
  }
  sem_post(&thread_allocated);
  while (sem_wait(&thread_free) != 0) {
  }
  for (int i = 0; i < THREAD_BLOCKS; i++) free(blk[i]);
  while (sem_wait(&thread_go) != 0) {
  }
  return NULL;
}

static const size_t k_sizes[] = {8, 24, 40, 100, 200, 500, 1000, 3000, 5000};
#define NSIZES (sizeof k_sizes / sizeof k_sizes[0])

int main(void) {
  long idle_written = data_pages_written(); /* first: nothing allocated yet */
  void *p = malloc(1);
  CHECK(p != NULL);
  int level2 = malloc_usable_size(p) == 1; /* level 2 reports the requested size */
  free(p);
  if (level2) {
    printf("startup_bss: skipped at hardening level 2\n");
    return 0;
  }
  if (idle_written < 0 || option_set()) {
    printf("startup_bss: written data pages before the first allocation not checked (%s)\n",
           idle_written < 0 ? "no pagemap" : "an option is set");
  } else {
    CHECKF(idle_written <= 2,
           "before its first allocation the process wrote %ld of the library's file-backed writable pages (at most 2: "
           "the RELRO page and the hot variables')", idle_written);
    printf("startup_bss: %ld data pages written before the first allocation\n", idle_written);
  }
  void *b[NSIZES];
  for (size_t i = 0; i < NSIZES; i++) {
    b[i] = malloc(k_sizes[i]);
    CHECK(b[i] != NULL);
    memset(b[i], 0x5a, k_sizes[i]);
  }
  void *m = malloc(100000); /* a medium block */
  CHECK(m != NULL);
  memset(m, 1, 100000);
  void *r = realloc(b[0], 2000);
  CHECK(r != NULL);
  b[0] = r;
  void *z = calloc(3, 300);
  CHECK(z != NULL);
  free(z);
  free(m);
  for (size_t i = 0; i < NSIZES; i++) free(b[i]);
  /* A slab of page-sized blocks filled, then half of it freed: a full
   * slab given a block back arms its heap's look for holes, an emptied
   * one its chunk's purge clock. A process's first clock reads are system
   * calls (os.c): through the vDSO the first would map its pages, a
   * page fault or two. */
  enum { PAGE_BLOCKS = 12 };
  void *pb[PAGE_BLOCKS];
  for (int i = 0; i < PAGE_BLOCKS; i++) {
    pb[i] = malloc(4096);
    CHECK(pb[i] != NULL);
    memset(pb[i], 0x5a, 4096);
  }
  struct rusage ru0, ru1;
  CHECK(getrusage(RUSAGE_SELF, &ru0) == 0);
  for (int i = 0; i < PAGE_BLOCKS; i += 2) free(pb[i]);
  CHECK(getrusage(RUSAGE_SELF, &ru1) == 0);
  long faults = ru1.ru_minflt - ru0.ru_minflt;
  CHECKF(faults == 0, "freeing blocks of a full and of an emptied slab took %ld page faults (the clock read through the vDSO: its data page, libc's code)", faults);
  for (int i = 1; i < PAGE_BLOCKS; i += 2) free(pb[i]);
  void *volatile null = NULL; /* a call the compiler cannot drop */
  free(null); /* reads no page of the chunk map */
  if (idle_written >= 0 && !option_set()) {
    long busy_written = data_pages_written();
    CHECKF(busy_written <= 2,
           "after its first allocations the process wrote %ld of the library's file-backed writable pages (at most 2: "
           "the RELRO page and the one of the hot variables and the first heap's fields)", busy_written);
  }
#if defined(__OPTIMIZE__) /* a build without optimization reads constants from .rodata anywhere */
  long ro = tu_rodata_pages();
  CHECKF(ro == 0, "start-up and a few allocations mapped %ld pages of the library's .rodata (-1: not found)", ro);
#endif
  long kb = bss_rss_kb();
  CHECKF(kb == 0, "start-up and a few allocations made %ld kB of the library's .bss resident (want 0)", kb);
  long touched = bss_touched_pages();
  CHECKF(touched == 0, "start-up, a few allocations and free(NULL) touched %ld pages of the library's .bss (want 0):%s",
         touched, bss_touched_where());
  uintptr_t mlo, mhi;
  map_range(&mlo, &mhi);
  long map_touched = touched_pages(mlo, mhi);
  long map_written = (long)tu_pagemap_count(mlo, mhi, TU_PM_PRESENT | TU_PM_EXCLUSIVE);
  CHECKF(map_touched == 1 && map_written == 1,
         "start-up, a few allocations and free(NULL) touched %ld pages of the chunk map and wrote %ld (want 1 and 1: "
         "the page of the chunk's byte)", map_touched, map_written);
  char perms[5];
  perms_at(mlo, perms);
  CHECKF(strcmp(perms, "r--p") == 0, "the chunk map's first page is mapped %s (want r--p: read-only, not executable)",
         perms);
  printf("startup_bss: %ld kB of the .bss resident, %ld pages touched; chunk map: %ld page touched, mapped %s\n", kb,
         touched, map_touched, perms);
  check_charged("after a few allocations");

  CHECK(sem_init(&thread_allocated, 0, 0) == 0 && sem_init(&thread_free, 0, 0) == 0 &&
        sem_init(&thread_go, 0, 0) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, worker, NULL) == 0);
  while (sem_wait(&thread_allocated) != 0) {
  }
  long high = resident_pages(); /* with the 4 MiB written, before the frees */
  sem_post(&thread_free);
  double t0 = tu_now();
  /* The background thread gives most of the 4 MiB back after the purge
   * delay (counted in the idle thread's own time; a build without delay
   * at the frees): wait for the drop, however long a loaded machine
   * takes. */
  while (resident_pages() > high - THREAD_BLOCKS * THREAD_BLOCK / 4096 / 2) {
    CHECKF(tu_now() - t0 < 120, "the idle thread's 4 MiB were not given back in 120 s (resident %ld pages, %ld before its frees)",
           resident_pages(), high);
    usleep(10000);
  }
  touched = bss_touched_pages();
  CHECKF(touched == 0,
         "a thread's heap and the background thread's passes touched %ld pages of the library's .bss (want 0):%s",
         touched, bss_touched_where());
  map_touched = touched_pages(mlo, mhi);
  CHECKF(map_touched <= 2, "a thread's heap and the background thread's passes touched %ld pages of the chunk map (at most 2: the thread's chunks may have their bytes on the next page)", map_touched);
  check_charged("with a second thread");
  sem_post(&thread_go);
  CHECK(pthread_join(t, NULL) == 0);
  printf("startup_bss: with a second thread and the background thread, %ld pages of the .bss touched, %ld of the chunk map\n", touched, map_touched);
  return 0;
}
