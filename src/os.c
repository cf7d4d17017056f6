/* os.c: the only door to the kernel (Linux). Every other file reaches
 * mmap, madvise, clocks, randomness and I/O through these primitives.
 *
 * Contract of every primitive: it never allocates, it leaves the caller's
 * errno as it found it, and it reports failure by its return value
 * (NULL, or an errno value, as documented in internal.h).
 *
 * Fault injection: os_fault_set(after, every) makes the primitives of the
 * kinds chosen with os_fault_kinds fail as the kernel or libc would, so
 * tests can prove that every caller checks: OS_FAULT_MAP (os_map,
 * os_map_aligned, os_remap, os_remap_inplace: out of memory, the default
 * kind), OS_FAULT_DECOMMIT (os_decommit: madvise refused),
 * OS_FAULT_PROTECT (os_protect_none: mprotect out of mappings, as at
 * vm.max_map_count), OS_FAULT_THREAD (os_thread_exit_hook, os_atfork).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif

static _Atomic(long) fault_after = -1; /* calls left before failing; -1: off */
static _Atomic(long) fault_every = 0;  /* once failing: fail 1 in `every` (1: all) */
static _Atomic(long) fault_counter = 0;
static _Atomic(unsigned) fault_kinds = OS_FAULT_MAP; /* which primitives fail */

void os_fault_set(long after, long every) {
  atomic_store(&fault_counter, 0);
  atomic_store(&fault_every, every < 1 ? 1 : every);
  atomic_store(&fault_after, after);
}

void os_fault_kinds(unsigned kinds) { atomic_store(&fault_kinds, kinds); }

static bool fault_now(unsigned kind) {
  long after = atomic_load_explicit(&fault_after, memory_order_relaxed);
  if (lz_likely(after < 0)) return false;
  if ((atomic_load_explicit(&fault_kinds, memory_order_relaxed) & kind) == 0) return false;
  long n = atomic_fetch_add_explicit(&fault_counter, 1, memory_order_relaxed);
  if (n < after) return false;
  long every = atomic_load_explicit(&fault_every, memory_order_relaxed);
  return ((n - after) % every) == 0;
}

void *os_map(size_t size) {
  if (fault_now(OS_FAULT_MAP)) return NULL;
  int e = errno;
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  errno = e;
  if (p == MAP_FAILED) return NULL;
  return p;
}

void *os_map_aligned(size_t size, size_t align) {
  if (align <= LZ_PAGE_SIZE) return os_map(size);
  if (size + align < size) return NULL;
  uint8_t *p = os_map(size + align);
  if (p == NULL) return NULL;
  uintptr_t a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
  size_t head = a - (uintptr_t)p;
  size_t tail = align - head;
  if (head) os_unmap(p, head);
  if (tail) os_unmap((uint8_t *)a + size, tail);
  return (void *)a;
}

void *os_reserve(size_t size) {
  int e = errno;
  void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  errno = e;
  return p == MAP_FAILED ? NULL : p;
}

int os_unmap(void *p, size_t size) {
  int e = errno;
  int r = munmap(p, size) == 0 ? 0 : errno;
  errno = e;
  return r;
}

int os_decommit(void *p, size_t size) {
  if (fault_now(OS_FAULT_DECOMMIT)) return EAGAIN;
  int e = errno;
  int r = madvise(p, size, MADV_DONTNEED) == 0 ? 0 : errno;
  errno = e;
  return r;
}

int os_protect_none(void *p, size_t size) {
  if (fault_now(OS_FAULT_PROTECT)) return ENOMEM;
  int e = errno;
  int r = mprotect(p, size, PROT_NONE) == 0 ? 0 : errno;
  errno = e;
  return r;
}

void *os_remap(void *p, size_t old_size, size_t new_size, void *fixed_to) {
  if (fault_now(OS_FAULT_MAP)) return NULL;
  int e = errno;
  void *r = fixed_to ? mremap(p, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, fixed_to)
                     : mremap(p, old_size, new_size, MREMAP_MAYMOVE);
  errno = e;
  return r == MAP_FAILED ? NULL : r;
}

int os_remap_inplace(void *p, size_t old_size, size_t new_size) {
  if (new_size > old_size && fault_now(OS_FAULT_MAP)) return ENOMEM;
  int e = errno;
  void *r = mremap(p, old_size, new_size, 0);
  int rc = r == MAP_FAILED ? errno : 0;
  errno = e;
  return rc;
}

/* The thread-exit hook: one pthread key, valid only once created, so a
 * failed creation never leaves another library's key in use. */
static pthread_key_t exit_key;
static _Atomic(bool) exit_key_ok;

int os_thread_exit_hook(void (*fn)(void *)) {
  if (fault_now(OS_FAULT_THREAD)) return EAGAIN;
  int e = errno;
  int r = pthread_key_create(&exit_key, fn);
  errno = e;
  if (r == 0) atomic_store_explicit(&exit_key_ok, true, memory_order_release);
  return r;
}

int os_thread_exit_arm(void *value) {
  if (!atomic_load_explicit(&exit_key_ok, memory_order_acquire)) return EINVAL;
  int e = errno;
  int r = pthread_setspecific(exit_key, value);
  errno = e;
  return r;
}

int os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void)) {
  if (fault_now(OS_FAULT_THREAD)) return ENOMEM;
  int e = errno;
  int r = pthread_atfork(prepare, parent, child);
  errno = e;
  return r;
}

size_t os_page_size(void) {
  int e = errno;
  long r = sysconf(_SC_PAGESIZE);
  errno = e;
  return r > 0 ? (size_t)r : 0;
}

uint64_t os_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void os_write(int fd, const char *s, size_t n) {
  int e = errno;
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      break;
    }
    s += w;
    n -= (size_t)w;
  }
  errno = e;
}

size_t os_random_bytes(void *buf, size_t n) {
  int e = errno;
  long r = syscall(SYS_getrandom, buf, n, 1 /* GRND_NONBLOCK */);
  errno = e;
  return r < 0 ? 0 : (size_t)r;
}

void os_yield(void) { sched_yield(); }

long os_read_file(const char *path, char *buf, size_t n) {
  int e = errno;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  long total = -1;
  if (fd >= 0) {
    total = 0;
    while ((size_t)total < n) {
      ssize_t r = read(fd, buf + total, n - (size_t)total);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      total += r;
    }
    close(fd);
  }
  errno = e;
  return total;
}

size_t os_resident_bytes(void) {
  char buf[128];
  long n = os_read_file("/proc/self/statm", buf, sizeof buf - 1);
  if (n <= 0) return 0;
  buf[n] = 0;
  const char *s = buf;
  while (*s && *s != ' ') s++; /* skip total size */
  while (*s == ' ') s++;
  size_t pages = 0;
  while (*s >= '0' && *s <= '9') pages = pages * 10 + (size_t)(*s++ - '0');
  return pages * LZ_PAGE_SIZE;
}

void os_abort(void) { abort(); }
