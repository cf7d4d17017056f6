/* The architecture layer (src/arch.h) on the machine the test runs on:
 * the cycle counter moves, the spin hint runs, every address lzmalloc
 * hands out is inside the chunk map's range and recorded there, the
 * kernel's page is lzmalloc's page, a kernel with another page size
 * is refused with a message instead of being run, and the clock (os.c)
 * reads the kernel's time, past its first system calls through the vDSO
 * wherever the kernel maps one (x86-64; valgrind maps none). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); exit(1); } } while (0)

/* The kernel's coarse monotonic clock in ms, by the system call. */
static uint64_t kernel_ms(void) {
  struct timespec ts;
  CHECK(syscall(SYS_clock_gettime, CLOCK_MONOTONIC_COARSE, &ts) == 0);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int main(void) {
  uint64_t t0 = arch_cycles(), t1 = t0;
  for (int i = 0; i < 1000000 && t1 == t0; i++) {
    arch_pause();
    t1 = arch_cycles();
  }
  CHECK(t1 != t0);

  CHECK(os_page_size() == LZ_PAGE_SIZE);
  /* Every read, the first ones' system calls and the later vDSO calls
   * alike, lies between two readings of the kernel's. */
  for (int i = 0; i < 64; i++) {
    uint64_t before = kernel_ms(), ms = os_now_ms(), after = kernel_ms();
    CHECK(before <= ms && ms <= after);
  }
#if defined(__x86_64__)
  CHECK(os_clock_vdso() == (getauxval(AT_SYSINFO_EHDR) != 0));
#endif
  size_t sizes[] = {16, 1000, 30000, 500000, 3u << 20};
  uintptr_t highest = 0;
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    void *p = lz_malloc(sizes[k]);
    CHECK(p != NULL);
    uintptr_t a = (uintptr_t)p;
    if (a > highest) highest = a;
    CHECK(a + sizes[k] <= ((uintptr_t)1 << LZ_ARCH_VA_BITS));
    /* a large block starts its own 2 MiB unit; a small one has its chunk's below */
    CHECK(sizes[k] > LZ_MEDIUM_MAX ? chunkmap_kind(a) == CHUNK_LARGE : chunkmap_kind(a - 1) == CHUNK_SPANS);
    lz_free(p);
  }

  /* A 64 KiB-page kernel is refused: message, then abort. */
  int fds[2];
  CHECK(pipe(fds) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 2);
    check_page_size(64 * 1024);
    _exit(0);
  }
  close(fds[1]);
  char buf[512] = {0};
  size_t n = 0;
  ssize_t r;
  while (n < sizeof buf - 1 && (r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)r;
  int status;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
  CHECK(strstr(buf, "unsupported kernel page size (bytes): 65536") != NULL);
  check_page_size(LZ_PAGE_SIZE); /* returns */

  printf("arch %s: cache line %d, %d-bit addresses (highest block %#lx), page %zu\n", LZ_ARCH_NAME, LZ_CACHE_LINE,
         LZ_ARCH_VA_BITS, (unsigned long)highest, os_page_size());
  return 0;
}
