/* exec_pages: the library code a small process maps, from exec to exit
 * (API).
 *
 * A script's commands are each a fresh process: the loader maps the
 * library (reading its headers and dynamic symbols), our constructor runs,
 * the program allocates a little and frees some, and at exit the
 * destructors run (ours, and the C runtime's). Each 64 KiB window of the
 * library's read-only segments (headers, code, read-only data: one
 * mapping, loaded 64 KiB aligned) that a process touches costs it a page
 * fault and up to 16 resident pages (the kernel's fault-around). The code
 * such a process runs is kept in the first window, with the headers
 * (src/internal.h, lz_text_hot; cmake/layout.ld), so it maps one:
 *   none   a process that never allocates (/bin/true);
 *   small  a process that allocates what a command starting up does
 *          (bench forkstorm's exec'd program: 200 blocks of 20 sizes from
 *          5 B to 4 KiB, a 128 KiB buffer), frees half of it and exits.
 *   binds  the loader looks up none of the library's own functions for
 *          it: its calls of its exported functions (calloc -> lz_calloc)
 *          are bound when it is linked (-Bsymbolic-functions), where each
 *          was a symbol lookup in every process (14 of 60) and an
 *          indirect jump in every call (checked in this process, from
 *          the library's dynamic relocations; any build); and it
 *          imports no system call wrapper but mmap, munmap and mremap
 *          (src/os.c calls the kernel itself), nor the C runtime start
 *          files' symbols (linked without them: CMakeLists.txt): only
 *          names of an allowed list, at most 26 lookups.
 *   hot    the hot code (.text.lzmalloc_hot, from the library file's
 *          section headers) ends in the first window.
 *   reserve the loader reserves the library's address range (its span
 *          plus its 64 KiB alignment) in a length that is a multiple of
 *          2 MiB, so the kernel (6.7 and later) places it on a 2 MiB
 *          boundary: the loader then unmaps no hole below it, and the
 *          next library it maps (libc, in a preloading process) ends at
 *          that boundary, run after run, instead of sometimes below the
 *          loader's cache file put in that hole: libc's code then lies
 *          in the 64 KiB windows it lies in without us, not 11 pages
 *          lower (e.g. a program's first call of a libc function mapped
 *          32 more pages of libc's code: cmake/layout.ld). Checked from
 *          this process's program headers and load address.
 * Measured at the very end: this test runs each as its own exec'd child
 * and traces it (PTRACE_O_TRACEEXIT stops the child in exit, after every
 * destructor and with its memory still mapped), then reads the child's
 * /proc/PID/maps and pagemap. Skipped (77) where the child cannot be
 * traced (a sandbox). Optimized builds only (a build without
 * optimization has no such layout); skipped at hardening level 2, whose
 * paths are not the hot ones.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "smaps.h"
#include "testutil.h"

static const size_t small_sizes[] = {5, 7, 8, 10, 26, 30, 33, 36, 40, 48, 56, 72, 96, 112, 160, 208, 472, 792, 1328, 4096};
#define NSMALL (sizeof small_sizes / sizeof small_sizes[0])

/* The exec'd child's work: what a small command allocates, written, half
 * freed (as bench/src/forkstorm.c's small_program). */
static int small_program(void) {
  void *p[200];
  for (size_t i = 0; i < 200; i++) {
    size_t n = small_sizes[(i * 7) % NSMALL];
    p[i] = malloc(n);
    if (p[i] == NULL) return 2;
    memset(p[i], (int)i, n);
  }
  char *buf = malloc(128 * 1024);
  if (buf == NULL) return 2;
  memset(buf, 1, 4096);
  for (size_t i = 0; i < 200; i++)
    if (((unsigned char *)p[i])[small_sizes[(i * 7) % NSMALL] - 1] != (unsigned char)i) return 3;
  for (size_t i = 0; i < 200; i += 2) free(p[i]);
  free(buf);
  return 0;
}

/* The library's read-only segments (headers and dynamic symbols, code,
 * read-only data: every PT_LOAD without PF_W; not the RELRO part of the
 * writable one), page aligned, relative to its load address: from this
 * process, which loads the same file. */
enum { RO_SEGS_MAX = 8 };
static struct {
  uintptr_t lo, hi;
} ro_segs[RO_SEGS_MAX];
static int ro_nsegs;

static char lib_path[4096]; /* the library's file (ro_segs_cb) */

__attribute__((unused)) static int ro_segs_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  (void)arg;
  if (info->dlpi_name == NULL || strstr(info->dlpi_name, "liblzmalloc") == NULL) return 0;
  snprintf(lib_path, sizeof lib_path, "%s", info->dlpi_name);
  for (int i = 0; i < info->dlpi_phnum && ro_nsegs < RO_SEGS_MAX; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W)) continue;
    ro_segs[ro_nsegs].lo = ph->p_vaddr & ~(uintptr_t)4095;
    ro_segs[ro_nsegs].hi = (ph->p_vaddr + ph->p_filesz + 4095) & ~(uintptr_t)4095;
    ro_nsegs++;
  }
  return 1;
}

/* The end (address in the library) of section `name` of the ELF file at
 * path, from its section headers; 0 if it has none such. */
__attribute__((unused)) static uint64_t section_end(const char *path, const char *name) {
  FILE *f = fopen(path, "rb");
  CHECK(f != NULL);
  ElfW(Ehdr) eh;
  CHECK(fread(&eh, sizeof eh, 1, f) == 1 && eh.e_shentsize == sizeof(ElfW(Shdr)) && eh.e_shnum > 0 && eh.e_shnum < 256);
  ElfW(Shdr) sh[256];
  CHECK(fseek(f, (long)eh.e_shoff, SEEK_SET) == 0 && fread(sh, sizeof *sh, eh.e_shnum, f) == eh.e_shnum);
  const ElfW(Shdr) *names = &sh[eh.e_shstrndx];
  static char strtab[8192];
  size_t n = names->sh_size < sizeof strtab - 1 ? names->sh_size : sizeof strtab - 1;
  CHECK(fseek(f, (long)names->sh_offset, SEEK_SET) == 0 && fread(strtab, 1, n, f) == n);
  strtab[n] = 0;
  fclose(f);
  for (int i = 0; i < eh.e_shnum; i++)
    if (sh[i].sh_name < n && strcmp(strtab + sh[i].sh_name, name) == 0) return sh[i].sh_addr + sh[i].sh_size;
  return 0;
}

/* The child's load address of the library: the start of its mapping of
 * the file's offset 0 (from its maps); 0 if none. */
static uintptr_t lib_base(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
  size_t n = tu_read_proc(path);
  for (const char *p = tu_proc_buf; p < tu_proc_buf + n;) {
    const char *eol = strchr(p, '\n');
    if (eol == NULL) break;
    unsigned long a, b, off;
    char perms[5] = {0};
    if (memmem(p, (size_t)(eol - p), "liblzmalloc", 11) != NULL &&
        sscanf(p, "%lx-%lx %4s %lx", &a, &b, perms, &off) == 4 && off == 0)
      return a;
    p = eol + 1;
  }
  return 0;
}

/* Runs this program as `exec_pages MODE`, traced; at its exit stop counts
 * the pages of the library's read-only mappings present in it and the
 * 64 KiB windows they lie in. Returns 77 if it cannot trace. */
__attribute__((unused)) static int traced_run(const char *self, const char *mode, int *pages, int *windows) {
  int pipefd[2];
  CHECK(pipe(pipefd) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(pipefd[0]);
    char ok = ptrace(PTRACE_TRACEME, 0, NULL, NULL) == 0;
    if (write(pipefd[1], &ok, 1) != 1) _exit(126);
    close(pipefd[1]);
    if (!ok) _exit(0);
    raise(SIGSTOP);
    execl(self, self, mode, (char *)NULL);
    _exit(127);
  }
  close(pipefd[1]);
  char ok = 0;
  CHECK(read(pipefd[0], &ok, 1) == 1);
  close(pipefd[0]);
  int st;
  if (!ok) {
    CHECK(waitpid(pid, &st, 0) == pid);
    return 77;
  }
  CHECK(waitpid(pid, &st, 0) == pid && WIFSTOPPED(st));
  CHECK(ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)(uintptr_t)(PTRACE_O_TRACEEXIT | PTRACE_O_TRACEEXEC)) == 0);
  CHECK(ptrace(PTRACE_CONT, pid, NULL, NULL) == 0);
  int measured = 0;
  for (;;) {
    CHECK(waitpid(pid, &st, 0) == pid);
    if (WIFEXITED(st) || WIFSIGNALED(st)) break;
    CHECK(WIFSTOPPED(st));
    int sig = 0;
    if (st >> 8 == (SIGTRAP | (PTRACE_EVENT_EXIT << 8))) {
      uintptr_t base = lib_base(pid);
      CHECKF(base != 0, "%s: the library is not mapped at exit", mode);
      char path[64];
      snprintf(path, sizeof path, "/proc/%d/pagemap", (int)pid);
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      CHECK(fd >= 0);
      uintptr_t last_window = 0;
      *pages = *windows = 0;
      for (int i = 0; i < ro_nsegs; i++)
        for (uintptr_t a = base + ro_segs[i].lo; a < base + ro_segs[i].hi; a += 4096) {
          uint64_t e = 0;
          CHECK(pread(fd, &e, sizeof e, (off_t)(a / 4096 * 8)) == (ssize_t)sizeof e);
          if (!(e >> 63)) continue;
          (*pages)++;
          if (*windows == 0 || a >> 16 != last_window) (*windows)++;
          last_window = a >> 16;
        }
      close(fd);
      measured = 1;
    } else if (st >> 8 != (SIGTRAP | (PTRACE_EVENT_EXEC << 8)) && WSTOPSIG(st) != SIGTRAP) {
      sig = WSTOPSIG(st);
    }
    CHECK(ptrace(PTRACE_CONT, pid, NULL, (void *)(uintptr_t)sig) == 0);
  }
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: the child failed (status %#x)", mode, st);
  CHECKF(measured, "%s: no exit stop", mode);
  return 0;
}

/* reserve: the length the loader reserves for the library (glibc's
 * _dl_map_segments: the span of its PT_LOAD segments, page rounded, plus
 * their largest alignment beyond a page) and its load address. */
static size_t reserve_len;
static uintptr_t reserve_base;

__attribute__((unused)) static int reserve_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  (void)arg;
  if (info->dlpi_name == NULL || strstr(info->dlpi_name, "liblzmalloc") == NULL) return 0;
  uintptr_t lo = UINTPTR_MAX, hi = 0, align = 4096;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD) continue;
    if ((ph->p_vaddr & ~(uintptr_t)4095) < lo) lo = ph->p_vaddr & ~(uintptr_t)4095;
    if (ph->p_vaddr + ph->p_memsz > hi) hi = ph->p_vaddr + ph->p_memsz;
    if (ph->p_align > align) align = ph->p_align;
  }
  size_t span = ((hi + 4095) & ~(uintptr_t)4095) - lo;
  reserve_len = align <= 4096 ? span : span >= align ? span + align : 2 * align;
  reserve_base = info->dlpi_addr + lo;
  return 1;
}

/* dynamic: where the library's .dynamic lies: off its RELRO part, on the
 * last page of its writable segment's file data, the page the loader
 * writes first (it zeroes the rest of it) before it reads .dynamic and
 * relocates its addresses in place (CMakeLists.txt): on the RELRO page
 * those took two faults (a read, then the copy). */
static uintptr_t dyn_at, relro_lo, relro_hi, data_end;

__attribute__((unused)) static int dynamic_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  (void)arg;
  if (info->dlpi_name == NULL || strstr(info->dlpi_name, "liblzmalloc") == NULL) return 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type == PT_DYNAMIC) dyn_at = ph->p_vaddr;
    if (ph->p_type == PT_GNU_RELRO) {
      relro_lo = ph->p_vaddr;
      relro_hi = ph->p_vaddr + ph->p_memsz;
    }
    if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W) && ph->p_vaddr + ph->p_filesz > data_end)
      data_end = ph->p_vaddr + ph->p_filesz;
  }
  return 1;
}

/* Whether the running kernel is Linux `major`.`minor` or later. */
__attribute__((unused)) static int kernel_at_least(int major, int minor) {
  struct utsname u;
  int a = 0, b = 0;
  if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &a, &b) != 2) return 0;
  return a > major || (a == major && b >= minor);
}

/* Symbol relocations (GOT and PLT entries, words) of the library whose
 * symbol the library defines itself as a function: each is a lookup the
 * loader makes in every process. */
#if defined(__x86_64__)
#define RELOC_GOT 6    /* R_X86_64_GLOB_DAT */
#define RELOC_PLT 7    /* R_X86_64_JUMP_SLOT */
#define RELOC_WORD 1   /* R_X86_64_64 */
#elif defined(__aarch64__)
#define RELOC_GOT 1025 /* R_AARCH64_GLOB_DAT */
#define RELOC_PLT 1026 /* R_AARCH64_JUMP_SLOT */
#define RELOC_WORD 257 /* R_AARCH64_ABS64 */
#endif

static int own_binds, lookups;
static const char *own_bind_name, *foreign_name;

/* What the library may import: each name is a lookup the loader makes in
 * every process (about 850 instructions). The system's own calls go
 * through src/os.c's system calls; only these stay libc's. */
static const char *const imports_allowed[] = {
    "mmap", "munmap", "mremap", /* tests replace them (large_unmap_held) */
    "getauxval", "__getauxval" /* aarch64: libgcc's outline atomics read AT_HWCAP */, "__errno_location", "abort", "fwrite", "environ", "__environ",
    "__libc_single_threaded", "__rseq_offset", "__rseq_size", "__register_atfork", "pthread_key_create",
    "pthread_setspecific", "pthread_create", "pthread_attr_init", "pthread_attr_destroy",
    "pthread_attr_setdetachstate", "pthread_attr_setstack", "pthread_sigmask", "sigaction", "memcpy", "memmove",
    "memset", "memcmp", /* memcmp: builds without optimization call it */
    "_ZSt15get_new_handlerv", "_ZSt17__throw_bad_allocv",
    /* (the secure library defines memcpy, memmove and memset itself) */
};

static int import_allowed(const char *name) {
  for (size_t i = 0; i < sizeof imports_allowed / sizeof imports_allowed[0]; i++)
    if (strcmp(name, imports_allowed[i]) == 0) return 1;
  return 0;
}

static int binds_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  (void)arg;
  if (info->dlpi_name == NULL || strstr(info->dlpi_name, "liblzmalloc") == NULL) return 0;
  const ElfW(Dyn) *dyn = NULL;
  for (int i = 0; i < info->dlpi_phnum; i++)
    if (info->dlpi_phdr[i].p_type == PT_DYNAMIC) dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
  CHECK(dyn != NULL);
  uintptr_t symtab = 0, strtab = 0, rela[2] = {0, 0};
  size_t relasz[2] = {0, 0};
  for (; dyn->d_tag != DT_NULL; dyn++) {
    if (dyn->d_tag == DT_SYMTAB) symtab = dyn->d_un.d_ptr;
    if (dyn->d_tag == DT_STRTAB) strtab = dyn->d_un.d_ptr;
    if (dyn->d_tag == DT_RELA) rela[0] = dyn->d_un.d_ptr;
    if (dyn->d_tag == DT_RELASZ) relasz[0] = dyn->d_un.d_val;
    if (dyn->d_tag == DT_JMPREL) rela[1] = dyn->d_un.d_ptr;
    if (dyn->d_tag == DT_PLTRELSZ) relasz[1] = dyn->d_un.d_val;
  }
  /* The loader may have relocated these entries in place, or not. */
  if (symtab < info->dlpi_addr) symtab += info->dlpi_addr;
  if (strtab < info->dlpi_addr) strtab += info->dlpi_addr;
  CHECK(symtab != 0 && strtab != 0);
  for (int t = 0; t < 2; t++) {
    if (rela[t] == 0) continue;
    if (rela[t] < info->dlpi_addr) rela[t] += info->dlpi_addr;
    const ElfW(Rela) *r = (const ElfW(Rela) *)rela[t];
    for (size_t i = 0; i < relasz[t] / sizeof *r; i++) {
      unsigned long type = ELF64_R_TYPE(r[i].r_info), sym = ELF64_R_SYM(r[i].r_info);
      if (sym == 0 || (type != RELOC_GOT && type != RELOC_PLT && type != RELOC_WORD)) continue;
      const ElfW(Sym) *st = (const ElfW(Sym) *)symtab + sym;
      lookups++;
      if (st->st_shndx == SHN_UNDEF && foreign_name == NULL && !import_allowed((const char *)strtab + st->st_name))
        foreign_name = (const char *)strtab + st->st_name;
      if (st->st_shndx == SHN_UNDEF || ELF64_ST_TYPE(st->st_info) != STT_FUNC) continue;
      own_binds++;
      own_bind_name = (const char *)strtab + st->st_name;
    }
  }
  return 1;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "none") == 0) return 0;
  if (argc > 1 && strcmp(argv[1], "small") == 0) return small_program();
#if defined(RELOC_GOT)
  CHECK(dl_iterate_phdr(binds_cb, NULL) == 1);
  CHECKF(own_binds == 0, "binds: %d relocations of the library look up a function it defines (%s, ...)", own_binds,
         own_bind_name);
  /* The kernel is called directly (src/os.c), not through libc's system
   * call wrappers but mmap, munmap and mremap: 34 lookups where there
   * were 44; without the C runtime's start files 30 (their weak
   * references, which every process looked up in every library in vain,
   * and __cxa_finalize); without sysconf, sigfillset and sigemptyset
   * (src/os.c) 27; without clock_gettime (src/os.c calls the vDSO's
   * function itself) 26. */
  CHECKF(foreign_name == NULL,
         "binds: the library imports %s, which is not in the allowed list (a lookup in every process: call the "
         "kernel through src/os.c, or add it to imports_allowed saying why)",
         foreign_name);
#if defined(__OPTIMIZE__)
  enum { LOOKUPS_MAX = 26 };
#else
  enum { LOOKUPS_MAX = 27 }; /* and memcmp, which optimized code inlines */
#endif
  CHECKF(lookups <= LOOKUPS_MAX, "binds: the loader looks up %d symbols for the library (want at most %d)", lookups,
         LOOKUPS_MAX);
  printf("binds: %d symbol lookups, none of the library's own functions\n", lookups);
#endif
#if !defined(__OPTIMIZE__)
  printf("exec_pages: skipped (no hot-text layout without optimization)\n");
  return 77;
#else
  void *p = malloc(1);
  int level2 = malloc_usable_size(p) == 1; /* level 2 reports the requested size */
  free(p);
  if (level2) {
    printf("exec_pages: skipped at hardening level 2\n");
    return 77;
  }
  CHECK(dl_iterate_phdr(reserve_cb, NULL) == 1);
  enum { PMD = 2 << 20 };
  CHECKF(reserve_len % PMD == 0,
         "reserve: the loader reserves %#zx bytes for the library, not a multiple of 2 MiB (cmake/layout.ld pads "
         "its end): a hole it unmaps below the library moves libc's code by up to 15 pages", reserve_len);
  CHECK(dl_iterate_phdr(dynamic_cb, NULL) == 1 && dyn_at != 0 && data_end != 0);
  CHECKF((dyn_at < relro_lo || dyn_at >= relro_hi) && dyn_at >> 12 == (data_end - 1) >> 12,
         "dynamic: .dynamic at %#lx, RELRO %#lx-%#lx, the file's data ends at %#lx: want it off RELRO, on the last "
         "data page (the loader reads it, then writes it: on the RELRO page a read fault, then a copy)",
         (unsigned long)dyn_at, (unsigned long)relro_lo, (unsigned long)relro_hi, (unsigned long)data_end);
  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  CHECK(len > 0);
  self[len] = 0;
  CHECK(dl_iterate_phdr(ro_segs_cb, NULL) == 1 && ro_nsegs > 0);
  /* The hot code ends in the first window, with the headers: code added
   * there can push its last functions into the cold code's window, which
   * every process that runs them then maps too (the runs below see it
   * only if the small program runs those functions). */
  uint64_t hot_end = section_end(lib_path, ".text.lzmalloc_hot");
  CHECKF(hot_end != 0 && hot_end <= 0x10000,
         "hot: the library's hot code (.text.lzmalloc_hot) ends at %#llx, past its 64 KiB window (move code out of "
         "lz_text_hot: src/internal.h)", (unsigned long long)hot_end);
  printf("hot: the hot code ends at %#llx, %llu bytes below the end of its window\n", (unsigned long long)hot_end,
         (unsigned long long)(0x10000 - hot_end));
  const char *modes[] = {"none", "small"};
  for (int i = 0; i < 2; i++) {
    int pages = 0, windows = 0;
    if (traced_run(self, modes[i], &pages, &windows) == 77) {
      printf("exec_pages: skipped (cannot trace a child)\n");
      return 77;
    }
    printf("%s: %d pages of the library's read-only segments in %d windows of 64 KiB\n", modes[i], pages, windows);
    CHECKF(windows == 1 && pages <= 20,
           "%s: the process mapped %d pages of the library's code and read-only data in %d windows of 64 KiB "
           "(want one window: one fault maps 16 to 20 pages)",
           modes[i], pages, windows);
  }
  /* The kernel places an anonymous mapping whose length is a multiple of
   * 2 MiB on a 2 MiB boundary (6.7 and later, transparent huge pages
   * built in). Checked once the children could be traced: not under a
   * user-mode emulator (the aarch64 tests), which picks guest addresses
   * itself. */
  if (kernel_at_least(6, 7) && access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0)
    CHECKF(reserve_base % PMD == 0, "reserve: the library loaded at %#lx, not on a 2 MiB boundary",
           (unsigned long)reserve_base);
  printf("reserve: %#zx bytes, loaded at %#lx\n", reserve_len, (unsigned long)reserve_base);
  printf("exec_pages: ok\n");
  return 0;
#endif
}
