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
 * os_map_aligned, os_map_at, os_move: out of memory, the default kind), OS_FAULT_DECOMMIT (os_decommit: madvise refused),
 * OS_FAULT_PROTECT (os_protect_none: mprotect out of mappings, as at
 * vm.max_map_count), OS_FAULT_THREAD (os_thread_exit_hook, os_atfork),
 * OS_FAULT_RANGES (os_decommit_ranges alone: a kernel without
 * process_madvise; OS_FAULT_DECOMMIT refuses it too), OS_FAULT_COMMIT
 * (os_protect_rw: memory made writable past the commit limit, with
 * vm.overcommit_memory=2).
 *
 * NUMA: the topology comes from sysfs (no libnuma), the calling thread's
 * CPU from the rseq area glibc registers (a load through the thread
 * pointer) or else getcpu, and placement from mbind. Tests inject a
 * topology (lz_os_numa_inject): then the CPU is the one the test set for
 * the thread and os_mbind records its calls instead of making them.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* System calls made here directly (arch_syscall6), not through libc's
 * wrappers: each wrapper the library imports is a symbol the loader looks
 * up in every process that loads it (about 850 instructions each; ten of
 * those below were about 8,000 of a small program's whole start, bench
 * forkstorm), and several are cancellation points, which an allocator's
 * file reads must not be. The names stay libc's, with libc's contract (-1
 * and errno), so the code below reads as before. mmap, munmap and mremap
 * stay libc's: tests replace them to stop a thread inside one
 * (large_unmap_held, large_realloc_moved). Sanitizer builds keep every
 * wrapper, which the sanitizers intercept. */
#if defined(__SANITIZE_ADDRESS__) || LZ_TSAN
#define OS_LIBC_CALLS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OS_LIBC_CALLS 1
#endif
#endif
#ifndef OS_LIBC_CALLS
#define OS_LIBC_CALLS 0
#endif

#if !OS_LIBC_CALLS
#define OS_SYS(n, a, b, c, d, e, f) \
  os_sys_result(arch_syscall6((long)(n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f)))
static inline long os_sys_result(long r) {
  if (lz_unlikely((unsigned long)r > -4096ul)) {
    errno = (int)-r;
    return -1;
  }
  return r;
}
static inline int sys_madvise(void *p, size_t n, int advice) { return (int)OS_SYS(SYS_madvise, p, n, advice, 0, 0, 0); }
static inline int sys_mprotect(void *p, size_t n, int prot) { return (int)OS_SYS(SYS_mprotect, p, n, prot, 0, 0, 0); }
static inline int sys_mincore(void *p, size_t n, unsigned char *vec) { return (int)OS_SYS(SYS_mincore, p, n, vec, 0, 0, 0); }
static inline int sys_open(const char *path, int flags) {
  return (int)OS_SYS(SYS_openat, AT_FDCWD, path, flags, 0, 0, 0);
}
static inline ssize_t sys_read(int fd, void *buf, size_t n) { return (ssize_t)OS_SYS(SYS_read, fd, buf, n, 0, 0, 0); }
static inline ssize_t sys_write(int fd, const void *buf, size_t n) {
  return (ssize_t)OS_SYS(SYS_write, fd, buf, n, 0, 0, 0);
}
static inline int sys_close(int fd) { return (int)OS_SYS(SYS_close, fd, 0, 0, 0, 0, 0); }
static inline int sys_nanosleep(const struct timespec *req, struct timespec *rem) {
  return (int)OS_SYS(SYS_nanosleep, req, rem, 0, 0, 0, 0);
}
static inline int sys_sched_yield(void) { return (int)OS_SYS(SYS_sched_yield, 0, 0, 0, 0, 0, 0); }
static inline int sys_prctl(int op, unsigned long a, unsigned long b, unsigned long c, unsigned long d) {
  return (int)OS_SYS(SYS_prctl, op, a, b, c, d, 0);
}
#define madvise sys_madvise
#define mprotect sys_mprotect
#define mincore sys_mincore
#define open sys_open
#define read sys_read
#define write sys_write
#define close sys_close
#define nanosleep sys_nanosleep
#define sched_yield sys_sched_yield
#define prctl sys_prctl
#define syscall_0(n) OS_SYS((n), 0, 0, 0, 0, 0, 0)
#define syscall_3(n, a, b, c) OS_SYS((n), (a), (b), (c), 0, 0, 0)
#define syscall_6(n, a, b, c, d, e, f) OS_SYS((n), (a), (b), (c), (d), (e), (f))
#else
#define syscall_0(n) syscall((n))
#define syscall_3(n, a, b, c) syscall((n), (a), (b), (c))
#define syscall_6(n, a, b, c, d, e, f) syscall((n), (a), (b), (c), (d), (e), (f))
#endif

#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif

lz_hot static _Atomic(long) fault_after = -1; /* calls left before failing; -1: off (read by every map) */
lz_hot static _Atomic(long) fault_every = 0;  /* once failing: fail 1 in `every` (1: all) */
lz_hot static _Atomic(long) fault_counter = 0;
static _Atomic(unsigned) fault_kinds = OS_FAULT_MAP; /* which primitives fail */
lz_bss_late static _Atomic(long) fault_injected = 0; /* failures made up so far */

void os_fault_set(long after, long every) {
  atomic_store(&fault_counter, 0);
  atomic_store(&fault_every, every < 1 ? 1 : every);
  atomic_store(&fault_after, after);
}

void os_fault_kinds(unsigned kinds) { atomic_store(&fault_kinds, kinds); }

long os_fault_injected(void) { return atomic_load(&fault_injected); }

/* Injection on (tests): whether this call of a primitive of `kind` fails.
 * Cold: no process but a test's runs it. */
static lz_cold bool fault_now_on(unsigned kind, long after) {
  if ((atomic_load_explicit(&fault_kinds, memory_order_relaxed) & kind) == 0) return false;
  long n = atomic_fetch_add_explicit(&fault_counter, 1, memory_order_relaxed);
  if (n < after) return false;
  long every = atomic_load_explicit(&fault_every, memory_order_relaxed);
  if ((n - after) % every != 0) return false;
  atomic_fetch_add_explicit(&fault_injected, 1, memory_order_relaxed);
  return true;
}

lz_inline bool fault_now(unsigned kind) {
  long after = atomic_load_explicit(&fault_after, memory_order_relaxed);
  return lz_unlikely(after >= 0) && fault_now_on(kind, after);
}

lz_text_hot lz_noinline void *os_map(size_t size) { /* one copy */
  if (fault_now(OS_FAULT_MAP)) return NULL;
  int e = errno;
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  errno = e;
  if (p == MAP_FAILED) return NULL;
  return p;
}

/* A size that is a multiple of the alignment is first mapped as it is:
 * Linux (6.7 and later) places such anonymous mappings on 2 MiB boundaries,
 * so one system call usually does; otherwise map more and trim. */
lz_text_hot lz_noinline void *os_map_aligned(size_t size, size_t align) { /* one copy */
  if (align <= LZ_PAGE_SIZE) return os_map(size);
  if (size + align < size) return NULL;
  if (size % align == 0) {
    uint8_t *p = os_map(size);
    if (p == NULL) return NULL;
    if (((uintptr_t)p & (align - 1)) == 0) return p;
    os_unmap(p, size);
  }
  uint8_t *p = os_map(size + align);
  if (p == NULL) return NULL;
  uintptr_t a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
  size_t head = a - (uintptr_t)p;
  size_t tail = align - head;
  if (head) os_unmap(p, head);
  if (tail) os_unmap((uint8_t *)a + size, tail);
  return (void *)a;
}

/* The process's address-space limit (RLIMIT_AS, `ulimit -v`) into *cur,
 * UINT64_MAX (RLIM64_INFINITY) for none; false if it could not be read.
 * Read by the system call itself (no import: exec_pages). */
lz_inline bool rlimit_as(uint64_t *cur) {
  struct {
    uint64_t cur, max;
  } r;
  if (syscall_6(SYS_prlimit64, 0L, (long)RLIMIT_AS, NULL, &r, 0L, 0L) != 0) return false;
  *cur = r.cur;
  return true;
}

/* Is the process's address space limited? A reservation counts against
 * that limit as mapped memory does, so a caller reserving far ahead of
 * use (chunk.c, Regions) leaves it alone; so does one that cannot tell. */
bool os_address_space_limited(void) {
  uint64_t cur;
  return !rlimit_as(&cur) || cur != UINT64_MAX;
}

/* vm.overcommit_memory as first read: '0' '1' '2', 'x' if unreadable, 0
 * before the first read. Read once (a change of mode after a process's
 * first refused large request is not seen; under mode 2, whose commit
 * limit is at most RAM plus swap unless overcommit_ratio is above 100, a
 * request above that is refused as under 0). */
lz_bss_late static _Atomic char overcommit_mode;

static char overcommit_read(void) {
  char m = atomic_load_explicit(&overcommit_mode, memory_order_relaxed);
  if (m != 0) return m;
  char buf[2] = {0, 0};
  int fd = open("/proc/sys/vm/overcommit_memory", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (read(fd, buf, sizeof buf) != 2 || buf[1] != '\n') buf[0] = 0;
    close(fd);
  }
  m = buf[0] >= '0' && buf[0] <= '2' ? buf[0] : 'x';
  atomic_store_explicit(&overcommit_mode, m, memory_order_relaxed);
  return m;
}

/* Would a mapping of `size` bytes be refused however little else were
 * mapped, so that giving cached memory back first gains nothing? Yes
 * above the address-space limit (RLIMIT_AS), and, under the kernel's
 * default overcommit heuristic (vm.overcommit_memory 0, which refuses any
 * single mapping larger than RAM plus swap), above RAM plus swap. Any
 * other mode (1: never refused for memory; 2: a commit limit that what
 * we give back lowers), or a value not read: no. System calls only (no
 * import: exec_pages); errno kept. */
lz_text_late bool os_map_hopeless(size_t size) {
  int e = errno;
  bool hopeless = false;
  uint64_t limit;
  struct sysinfo si;
  if (rlimit_as(&limit) && size > limit) { /* no limit: UINT64_MAX */
    hopeless = true;
  } else if (syscall_3(SYS_sysinfo, &si, 0L, 0L) == 0) {
    unsigned __int128 total = ((unsigned __int128)si.totalram + si.totalswap) * (si.mem_unit != 0 ? si.mem_unit : 1);
    hopeless = size > total && overcommit_read() == '0';
  }
  errno = e;
  return hopeless;
}

/* Address space only (PROT_NONE, nothing counted against the commit
 * limit): size bytes from an align-aligned base inside a reservation of
 * size + align (the slack is kept, inaccessible: one system call);
 * os_protect_rw makes parts of it usable. NULL if refused. */
lz_text_hot lz_noinline void *os_reserve_aligned(size_t size, size_t align) { /* one copy */
  if (fault_now(OS_FAULT_MAP) || size + align < size) return NULL;
  int e = errno;
  void *r = mmap(NULL, size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  errno = e;
  if (r == MAP_FAILED) return NULL;
  return (void *)(((uintptr_t)r + align - 1) & ~(uintptr_t)(align - 1));
}

lz_text_late lz_noinline int os_map_at(void *p, size_t size) { /* one copy */
  if (fault_now(OS_FAULT_MAP)) return ENOMEM;
  int e = errno;
  void *r = mmap(p, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  int rc = r == MAP_FAILED ? errno : 0;
  if (rc == 0 && r != p) { /* a kernel without MAP_FIXED_NOREPLACE took it as a hint */
    munmap(r, size);
    rc = EEXIST;
  }
  errno = e;
  return rc;
}

/* [p, p + size), page-aligned, replaced by read-only zero-fill memory
 * (writable private memory counts against the commit limit, resident or
 * not; this counts nothing): 0 or an errno value. */
int os_remap_readonly(void *p, size_t size) {
  int e = errno;
  void *r = mmap(p, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  int rc = r == MAP_FAILED ? errno : 0;
  errno = e;
  return rc;
}

/* A call that returns 0 or -1 with errno: 0 or its errno value, the
 * caller's errno left as it was (the contract above). */
#define OS_RESULT(call)                       \
  __extension__({                             \
    int saved_ = errno;                       \
    int result_ = (call) == 0 ? 0 : errno;    \
    errno = saved_;                           \
    result_;                                  \
  })

lz_text_hot int os_unmap(void *p, size_t size) { return OS_RESULT(munmap(p, size)); }

lz_text_hot lz_noinline int os_decommit(void *p, size_t size) {
  if (fault_now(OS_FAULT_DECOMMIT)) return EAGAIN;
  return OS_RESULT(madvise(p, size, MADV_DONTNEED));
}

/* Many runs in one call: process_madvise on the calling process (Linux
 * 6.13 takes any advice for itself, 6.14 names it PIDFD_SELF without a
 * file descriptor), which takes the address space's lock once and flushes
 * the TLBs once (Linux 6.16) for all of them: each madvise call flushes
 * on every CPU that runs a thread of the process (bench idle-burst's
 * janitor: 24k calls of 1-3 pages). os_range_t is laid out as struct
 * iovec. Returns 0 when every run was decommitted, else an errno value
 * (some runs may be done: the caller decommits them one by one). An older
 * kernel or a sandbox that refuses the call is not asked again. */
#define OS_PIDFD_SELF (-10000)
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif
static _Atomic(int) ranges_refused;
lz_text_thread int os_decommit_ranges(const os_range_t *r, size_t n) {
  if (fault_now(OS_FAULT_DECOMMIT | OS_FAULT_RANGES)) return EAGAIN;
  if (atomic_load_explicit(&ranges_refused, memory_order_relaxed)) return ENOSYS;
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += r[i].size;
  int e = errno;
  long done = syscall_6(SYS_process_madvise, OS_PIDFD_SELF, r, n, MADV_DONTNEED, 0, 0);
  int rc = done < 0 ? errno : (size_t)done == total ? 0 : EAGAIN;
  errno = e;
  if (rc == ENOSYS || rc == EINVAL || rc == EBADF || rc == EPERM || rc == ESRCH)
    atomic_store_explicit(&ranges_refused, 1, memory_order_relaxed);
  return rc;
}

/* Makes [p, p + size) resident and writable in one call
 * (MADV_POPULATE_WRITE, Linux 5.14): the page faults a program would take
 * there one by one, taken at once without a trap each. A kernel that does
 * not know the advice (EINVAL) is not asked again. */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
static _Atomic(int) populate_refused;
int os_populate(void *p, size_t size) {
  if (atomic_load_explicit(&populate_refused, memory_order_relaxed)) return ENOSYS;
  int r = OS_RESULT(madvise(p, size, MADV_POPULATE_WRITE));
  if (r == EINVAL || r == ENOSYS) atomic_store_explicit(&populate_refused, 1, memory_order_relaxed);
  return r;
}

/* Which pages of [p, p + size) (page aligned) are resident: bit 0 of
 * vec[i] for page i (mincore). A hint only: an anonymous page swapped out
 * reads 0 but holds data. */
int os_resident(void *p, size_t size, unsigned char *vec) { return OS_RESULT(mincore(p, size, vec)); }

/* Transparent huge pages for [p, p + size) (2 MiB aligned): MADV_HUGEPAGE,
 * and with collapse also MADV_COLLAPSE (Linux 6.1: the pages already there
 * are gathered into huge pages now rather than by khugepaged later). */
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
int os_hugepage(void *p, size_t size, bool collapse) {
  int r = OS_RESULT(madvise(p, size, MADV_HUGEPAGE));
  if (r == 0 && collapse) r = OS_RESULT(madvise(p, size, MADV_COLLAPSE));
  return r;
}

lz_text_thread lz_noinline int os_protect_none(void *p, size_t size) { /* one copy */
  if (fault_now(OS_FAULT_PROTECT)) return ENOMEM;
  return OS_RESULT(mprotect(p, size, PROT_NONE));
}

lz_text_hot lz_noinline int os_protect_rw(void *p, size_t size) { /* one copy */
  if (fault_now(OS_FAULT_COMMIT)) return ENOMEM;
  return OS_RESULT(mprotect(p, size, PROT_READ | PROT_WRITE));
}

/* mremap moves one mapping (VMA) at a time on kernels before 6.17: a range
 * that spans several (pieces mapped separately, or split by mprotect) fails
 * with EFAULT and is moved in halves. If a second half fails, the first is
 * put back. */
lz_text_late static int move_pieces(uint8_t *from, size_t size, uint8_t *to) {
  void *r = mremap(from, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, to);
  if (r != MAP_FAILED) return 0;
  int rc = errno;
  if (rc != EFAULT || size <= LZ_PAGE_SIZE) return rc;
  size_t half = (size / 2) & ~(LZ_PAGE_SIZE - 1);
  rc = move_pieces(from, half, to);
  if (rc != 0) return rc;
  rc = move_pieces(from + half, size - half, to + half);
  if (rc != 0 && move_pieces(to, half, from) != 0) os_abort(); /* those pages were just moved */
  return rc;
}

int os_move(void *from, size_t size, void *to) {
  if (fault_now(OS_FAULT_MAP)) return ENOMEM;
  int e = errno;
  int rc = move_pieces(from, size, to);
  errno = e;
  return rc;
}

static int atfork_register(void); /* fork handlers, below */

/* The thread-exit hook: one pthread key, valid only once created, so a
 * failed creation never leaves another library's key in use. */
lz_hot static pthread_key_t exit_key;
lz_hot static _Atomic(bool) exit_key_ok;

lz_text_hot int os_thread_exit_hook(void (*fn)(void *)) {
  if (fault_now(OS_FAULT_THREAD)) return EAGAIN;
  int e = errno;
  int r = pthread_key_create(&exit_key, fn);
  errno = e;
  if (r == 0) atomic_store_explicit(&exit_key_ok, true, memory_order_release);
  return r;
}

lz_text_hot int os_thread_exit_arm(void *value) {
  /* A thread's heap is about to be used: the fork handlers first (os_atfork). */
  if (atomic_load_explicit(&lz_atfork_state, memory_order_relaxed) == ATFORK_PENDING) atfork_register();
  if (!atomic_load_explicit(&exit_key_ok, memory_order_acquire)) return EINVAL;
  int e = errno;
  int r = pthread_setspecific(exit_key, value);
  errno = e;
  return r;
}

/* Process id in the high half, kernel thread id in the low half. */
lz_text_hot uint64_t os_thread_ident(void) {
  int e = errno;
  /* System calls made here, not getpid (its page of libc would be a page
   * fault of every process). */
  uint64_t id = (uint64_t)(uint32_t)syscall_0(SYS_getpid) << 32 | (uint32_t)syscall_0(SYS_gettid);
  errno = e;
  return id;
}

lz_text_thread bool os_thread_gone(uint64_t ident) {
  int e = errno;
  pid_t pid = (pid_t)syscall_0(SYS_getpid);
  bool gone = (uint32_t)(ident >> 32) == (uint32_t)pid &&
              syscall_3(SYS_tgkill, (long)pid, (long)(uint32_t)ident, 0L) != 0 && errno == ESRCH;
  errno = e;
  return gone;
}

/* glibc >= 2.32 clears it when the process first starts a thread; where
 * it is missing, the process counts as threaded. */
extern char __libc_single_threaded __attribute__((weak));

lz_text_hot bool os_single_threaded(void) { return &__libc_single_threaded != NULL && __libc_single_threaded != 0; }

/* Fork handlers: given to libc only once the process makes its first
 * heap, or may have a second thread. Before that they would have nothing
 * to do (init.c: the child handler sets the thread's heap aside, so that
 * the child's first blocks are packed), and registering them costs libc's
 * registration code and the read-only data it reads, which a process that
 * never allocates (/bin/true: 54 page faults against 55 registering in our
 * constructor) need not pay; one that allocates pays nothing more
 * (sh -c true, cat, git --version: the same faults either way).
 * os_atfork records them (and registers at once where the process has
 * threads already, or eager is asked).
 *
 * Where they are registered matters: pthread_atfork waits for libc's lock
 * on its list of handlers, which a fork in another thread holds from its
 * prepare handlers until after it has taken the stdio list lock. A thread
 * registering from inside malloc may hold a FILE lock (getline, or any
 * flockfile), and a third thread in fflush(NULL) holds the list lock and
 * waits for that FILE: the three wait for each other. So the registration
 * is made while the process has one thread and no fork can run beside it:
 * at its first heap (os_thread_exit_arm: a thread is given its heap), or
 * in the first pthread_create, whose DTV calloc (glibc: after it has
 * marked the process threaded, before the thread exists) reaches
 * os_atfork_watch in api_calloc_slow, whichever comes first.
 * os_thread_start (the janitor) registers too before it creates its
 * thread. os_thread_exit_arm is also the fallback for threads made
 * without pthread_create's calloc reaching us (prefixed builds, another
 * libc): there the race above is possible again. A fork racing with a registration is ordered by
 * libc's lock: before it, the handlers run; after it, the new heap or
 * thread did not exist at the fork. A real pthread_atfork failure found
 * late (ENOMEM) goes unreported; the fault injection fails the recording
 * call, as before.
 * lz_atfork_state: ATFORK_NONE until os_atfork, ATFORK_PENDING until the
 * registration starts, ATFORK_BUSY while one thread makes it, then
 * ATFORK_DONE for good. */
lz_hot _Atomic(int) lz_atfork_state;
lz_hot static void (*atfork_fn[3])(void);

/* What pthread_atfork calls: pthread_atfork itself is a stub that every
 * library links from libc_nonshared.a, which the linker puts after all of
 * our code, on the page the read-only data starts on (one mapping with the
 * code: CMakeLists.txt), so calling it would map the .rodata's window. */
extern int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), void *dso);
static char atfork_owner; /* names this library to libc (never unloaded: nodelete) */

lz_text_hot static int atfork_register(void) {
  int expect = ATFORK_PENDING;
  if (!atomic_compare_exchange_strong_explicit(&lz_atfork_state, &expect, ATFORK_BUSY, memory_order_acquire,
                                               memory_order_relaxed))
    return 0; /* none recorded, or done (or being done) by another thread */
  int e = errno;
  int r = __register_atfork(atfork_fn[0], atfork_fn[1], atfork_fn[2], &atfork_owner);
  errno = e;
  atomic_store_explicit(&lz_atfork_state, ATFORK_DONE, memory_order_release);
  return r;
}

void os_atfork_threaded(void) { atfork_register(); }

lz_text_hot int os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), bool eager) {
  if (fault_now(OS_FAULT_THREAD)) return ENOMEM;
  atfork_fn[0] = prepare;
  atfork_fn[1] = parent;
  atfork_fn[2] = child;
  atomic_store_explicit(&lz_atfork_state, ATFORK_PENDING, memory_order_release);
  if (eager || !os_single_threaded()) return atfork_register();
  return 0;
}

bool os_atfork_registered(void) { return atomic_load_explicit(&lz_atfork_state, memory_order_acquire) == ATFORK_DONE; }

/* fork's window between our prepare handler and our parent/child handler
 * runs with every signal blocked (the mask is restored in both processes),
 * so a signal handler's fork never nests inside a lock the prepare handler
 * took. */
static __thread sigset_t fork_saved_mask;

/* Every signal: pthread_sigmask leaves out the two libc keeps for itself
 * (as sigfillset would), so the set is filled here, not by libc's
 * sigfillset (a symbol the loader would look up in every process). */
static inline void signals_all(sigset_t *set) { memset(set, 0xff, sizeof *set); }

void os_fork_signals_block(void) {
  sigset_t all;
  signals_all(&all);
  int e = errno;
  pthread_sigmask(SIG_SETMASK, &all, &fork_saved_mask);
  errno = e;
}

void os_fork_signals_restore(void) {
  int e = errno;
  pthread_sigmask(SIG_SETMASK, &fork_saved_mask, NULL);
  errno = e;
}

/* From the auxiliary vector the kernel gave the process (a walk of a few
 * words the loader already holds): sysconf would take a jump table in
 * libc's read-only data, a page fault and the 64 KiB the kernel maps
 * around it, in a process that may never touch that data itself. Linux
 * always passes AT_PAGESZ (it is what sysconf reads too), so there is no
 * fallback to sysconf, whose symbol every process would look up: 0 means
 * no answer, and start-up refuses to run (start.c). */
lz_text_hot size_t os_page_size(void) {
  int e = errno;
  unsigned long r = getauxval(AT_PAGESZ);
  errno = e;
  return (size_t)r;
}

/* A process's first OS_CLOCK_SYSCALLS clock reads are system calls (libc's
 * syscall, whose page start-up maps already): through libc's clock_gettime
 * and the vDSO, the first read costs two page faults, libc's page of that
 * code and the vDSO's data page, in a process that may read the clock once
 * or twice in its life (a short command whose freed slab arms its chunk's
 * purge clock, pages.c). A system call costs about 0.1 us, a fault several
 * times that; a process that reads the clock more often (every 64th
 * slow-path entry, heap.c's tick) soon takes the vDSO. The count is a hint:
 * two threads may both take the same value (relaxed, no read-modify-write). */
#define OS_CLOCK_SYSCALLS 16
lz_hot_alloc static _Atomic(unsigned) clock_syscalls;

/* The later reads call the vDSO's clock_gettime itself, found once in the
 * vDSO's own symbol table (the image the kernel maps into every process,
 * AT_SYSINFO_EHDR), not libc's clock_gettime: that wrapper's page of
 * libc's code, and the 64 KiB the kernel maps around it at its first
 * fault, stayed resident in every process that read the clock this way
 * and never called it itself (a probe of ours, two threads of small
 * blocks: VmHWM 2,384-2,392 -> 2,332-2,336 KiB, libc's code 944 -> 880
 * KiB of it; where libc's load address puts the kernel's windows, once
 * 2,336 before).
 * Without a vDSO (valgrind gives none) or its symbol, every read is a
 * system call. os_vdso_clock: NULL until looked up, VDSO_NONE if none. */
typedef int (*vdso_clock_fn)(clockid_t, struct timespec *);
#define VDSO_NONE ((vdso_clock_fn)(uintptr_t)1)
lz_hot_alloc static _Atomic(vdso_clock_fn) os_vdso_clock;
#if defined(__x86_64__)
#define VDSO_CLOCK_NAME "__vdso_clock_gettime"
#elif defined(__aarch64__)
#define VDSO_CLOCK_NAME "__kernel_clock_gettime"
#else
#define VDSO_CLOCK_NAME ""
#endif

/* The vDSO's function named VDSO_CLOCK_NAME: its symbol table walked
 * through DT_HASH's count (the kernel links its vDSO with a SysV hash
 * table on both architectures), or VDSO_NONE. Looked up once per process
 * (a fork child inherits the answer, and the vDSO's address with it), at
 * the first read past the system calls: late text, which such a process
 * has run already (the idle-slab looks its ticks make). */
lz_text_late static lz_noinline vdso_clock_fn os_vdso_find(void) {
  int e = errno; /* getauxval sets ENOENT when there is no vDSO (valgrind) */
  uintptr_t base = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
  errno = e;
  static const char name[] = VDSO_CLOCK_NAME;
  if (base == 0 || name[0] == 0) return VDSO_NONE;
  const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64) return VDSO_NONE;
  const Elf64_Phdr *ph = (const Elf64_Phdr *)(base + eh->e_phoff);
  uintptr_t load = 0; /* what to add to a virtual address of the image */
  const Elf64_Dyn *dyn = NULL;
  bool loaded = false;
  for (unsigned i = 0; i < eh->e_phnum; i++) {
    if (ph[i].p_type == PT_LOAD && !loaded) {
      load = base + ph[i].p_offset - ph[i].p_vaddr;
      loaded = true;
    } else if (ph[i].p_type == PT_DYNAMIC) {
      dyn = (const Elf64_Dyn *)(base + ph[i].p_offset);
    }
  }
  if (!loaded || dyn == NULL) return VDSO_NONE;
  const Elf64_Sym *sym = NULL;
  const char *str = NULL;
  const Elf32_Word *hash = NULL;
  for (; dyn->d_tag != DT_NULL; dyn++) {
    if (dyn->d_tag == DT_SYMTAB) sym = (const Elf64_Sym *)(load + dyn->d_un.d_ptr);
    else if (dyn->d_tag == DT_STRTAB) str = (const char *)(load + dyn->d_un.d_ptr);
    else if (dyn->d_tag == DT_HASH) hash = (const Elf32_Word *)(load + dyn->d_un.d_ptr);
  }
  if (sym == NULL || str == NULL || hash == NULL) return VDSO_NONE;
  for (Elf32_Word i = 0; i < hash[1]; i++) { /* hash[1]: the number of symbols */
    if (ELF64_ST_TYPE(sym[i].st_info) != STT_FUNC || sym[i].st_shndx == SHN_UNDEF) continue;
    const char *n = str + sym[i].st_name;
    size_t k = 0;
    while (name[k] != 0 && n[k] == name[k]) k++;
    if (name[k] == 0 && n[k] == 0) return (vdso_clock_fn)(load + sym[i].st_value);
  }
  return VDSO_NONE;
}

/* os_vdso_clock, looked up if it was not yet (threads that race here
 * store the same answer). */
lz_text_late static lz_noinline vdso_clock_fn os_vdso_get(void) {
  vdso_clock_fn f = atomic_load_explicit(&os_vdso_clock, memory_order_relaxed);
  if (f == NULL) {
    f = os_vdso_find();
    atomic_store_explicit(&os_vdso_clock, f, memory_order_relaxed);
  }
  return f;
}

bool os_clock_vdso(void) { return os_vdso_get() != VDSO_NONE; }

lz_text_hot uint64_t os_now_ms(void) {
  struct timespec ts;
  unsigned n = atomic_load_explicit(&clock_syscalls, memory_order_relaxed);
  vdso_clock_fn f = VDSO_NONE;
  if (lz_likely(n >= OS_CLOCK_SYSCALLS)) {
    f = atomic_load_explicit(&os_vdso_clock, memory_order_relaxed);
    if (lz_unlikely(f == NULL)) f = os_vdso_get();
  } else {
    atomic_store_explicit(&clock_syscalls, n + 1, memory_order_relaxed);
  }
  long r;
  if (lz_likely(f != VDSO_NONE)) {
    r = f(CLOCK_MONOTONIC_COARSE, &ts);
  } else {
    int e = errno;
    r = syscall_3(SYS_clock_gettime, (long)CLOCK_MONOTONIC_COARSE, &ts, 0);
    errno = e;
  }
  return r == 0 ? (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u : 0;
}

/* Numbers as text for what os_write writes and for /proc paths (stdio
 * may allocate): decimal, and hex with 0x; return the characters written
 * (at most 20 and 18). */
size_t fmt_u64(char *buf, uint64_t v) {
  char tmp[24];
  size_t n = 0;
  do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
  for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
  return n;
}

size_t fmt_hex(char *buf, uint64_t v) {
  static const char digits[] = "0123456789abcdef";
  char tmp[20];
  size_t n = 0;
  do { tmp[n++] = digits[v & 15]; v >>= 4; } while (v);
  buf[0] = '0';
  buf[1] = 'x';
  for (size_t i = 0; i < n; i++) buf[2 + i] = tmp[n - 1 - i];
  return n + 2;
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
  long r = syscall_3(SYS_getrandom, buf, n, 1 /* GRND_NONBLOCK */);
  errno = e;
  return r < 0 ? 0 : (size_t)r;
}

void os_yield(void) { sched_yield(); }

void os_sleep_ms(uint64_t ms) {
  int e = errno;
  struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  errno = e;
}

void os_futex_wait(_Atomic(uint32_t) *word, uint32_t expect) {
  int e = errno;
  syscall_6(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expect, NULL, NULL, 0);
  errno = e;
}

void os_futex_wake(_Atomic(uint32_t) *word) {
  int e = errno;
  syscall_6(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
  errno = e;
}

void os_thread_name(const char *name) {
  int e = errno;
  prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
  errno = e;
}

/* pthread_create, not a raw clone(): the thread runs C code that uses TLS
 * (errno inside libc's syscall wrappers, the stack protector's canary,
 * lz_heap_tls), which a clone() without a TLS block of its own would share
 * with its creator. pthread_create with a stack of ours allocates only the
 * thread's DTV (calloc: our malloc when we are the process's malloc), so
 * callers start it where a nested allocation is safe. Every signal is
 * blocked in the new thread (it inherits the mask set around the call;
 * glibc keeps its internal SIGCANCEL/SIGSETXID unblockable, so setuid
 * across threads still works). Detached: nothing ever joins it. */
lz_text_thread int os_thread_start(void *(*fn)(void *), void *stack, size_t size) {
  atfork_register(); /* before the thread exists (no-op unless pending) */
  int e = errno;
  pthread_attr_t attr;
  int rc = pthread_attr_init(&attr);
  if (rc != 0) return rc;
  rc = pthread_attr_setstack(&attr, stack, size);
  if (rc == 0) rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (rc == 0) {
    sigset_t all, old;
    signals_all(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    rc = pthread_create(&t, &attr, fn, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
  }
  pthread_attr_destroy(&attr);
  errno = e;
  return rc;
}

lz_text_hot long os_read_file(const char *path, char *buf, size_t n) {
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

/* Time the thread has spent runnable but waiting for a CPU (ns), from the
 * second field of its schedstat: the calling thread's (tid 0) or, in this
 * process, thread tid's. UINT64_MAX if it cannot be read (no /proc, a
 * kernel without schedstat, a sandbox). The path strings sit with the hot
 * read-only data, the function with the hot text: purge ticks run them in
 * every process that frees (fork_pages, text_purge). */
lz_ro_hot static const char k_schedstat_self[] = "/proc/thread-self/schedstat";
lz_ro_hot static const char k_task[] = "/proc/self/task/";
lz_ro_hot static const char k_schedstat[] = "/schedstat";
lz_text_hot uint64_t os_thread_wait_ns(uint32_t tid) {
  char path[64], buf[96];
  const char *p = k_schedstat_self;
  if (tid != 0) {
    size_t n = 0;
    for (const char *s = k_task; *s; s++) path[n++] = *s;
    n += fmt_u64(path + n, tid);
    for (const char *s = k_schedstat; *s; s++) path[n++] = *s;
    path[n] = 0;
    p = path;
  }
  long n = os_read_file(p, buf, sizeof buf - 1);
  if (n <= 0) return UINT64_MAX;
  buf[n] = 0;
  const char *s = buf;
  while (*s >= '0' && *s <= '9') s++; /* time on the CPU */
  if (*s != ' ') return UINT64_MAX;
  s++;
  if (*s < '0' || *s > '9') return UINT64_MAX;
  uint64_t wait = 0;
  while (*s >= '0' && *s <= '9') wait = wait * 10 + (uint64_t)(*s++ - '0');
  return wait;
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

/* ---------------------------------------------------------------------------
 * Guard-page faults (hardening level 2)
 * ------------------------------------------------------------------------- */
/* The SIGSEGV action we replaced: a fault that is none of ours goes there.
 * Written once, before our handler is installed. */
lz_bss_late static struct sigaction segv_prev;
lz_bss_late static void (*segv_hook)(uintptr_t addr);

static void segv_handler(int sig, siginfo_t *si, void *ctx) {
  int saved = errno;
  /* A write to a PROT_NONE page is SEGV_ACCERR; the hook aborts if the
   * page is one of our guards. */
  if (si != NULL && si->si_code == SEGV_ACCERR && segv_hook != NULL) segv_hook((uintptr_t)si->si_addr);
  if (segv_prev.sa_flags & SA_SIGINFO) {
    if (segv_prev.sa_sigaction != NULL) {
      errno = saved;
      segv_prev.sa_sigaction(sig, si, ctx);
      return;
    }
  } else if (segv_prev.sa_handler != SIG_DFL && segv_prev.sa_handler != SIG_IGN) {
    errno = saved;
    segv_prev.sa_handler(sig);
    return;
  }
  /* No handler before ours: the previous action back, and the faulting
   * instruction runs again and dies as it would have without us. */
  sigaction(SIGSEGV, &segv_prev, NULL);
  errno = saved;
}

int os_fault_hook(void (*hook)(uintptr_t addr)) {
  int saved = errno;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = segv_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK; /* sa_mask empty: the memset */
  int rc = 0;
  segv_hook = hook;
  if (sigaction(SIGSEGV, NULL, &segv_prev) != 0 || sigaction(SIGSEGV, &sa, NULL) != 0) rc = errno;
  errno = saved;
  return rc;
}

/* ---------------------------------------------------------------------------
 * NUMA
 * ------------------------------------------------------------------------- */
/* Read by every process's start-up (os_numa_topology) and by the NUMA
 * paths: kept with the hot variables, apart from the injected table. */
lz_hot static _Atomic(int) inject_active;
lz_bss_late static struct {
  int nnodes;
  size_t ncpus;
  uint8_t cpu_node[LZ_MAX_CPUS];
  _Atomic(size_t) nbinds;
  lz_os_bind_t binds[64];
} inject;
static __thread int inject_cpu = -1;

void lz_os_numa_inject(int nnodes, const uint8_t *cpu_node, size_t ncpus) {
  if (ncpus > LZ_MAX_CPUS) ncpus = LZ_MAX_CPUS;
  inject.nnodes = nnodes;
  inject.ncpus = ncpus;
  for (size_t i = 0; i < ncpus; i++) inject.cpu_node[i] = cpu_node[i];
  atomic_store(&inject.nbinds, 0);
  atomic_store(&inject_active, nnodes > 0);
}

void lz_os_numa_inject_cpu(int cpu) { inject_cpu = cpu; }

size_t lz_os_numa_binds(lz_os_bind_t *out, size_t max) {
  size_t n = atomic_load(&inject.nbinds);
  size_t first = n > 64 ? n - 64 : 0;
  for (size_t i = first, k = 0; i < n && k < max; i++, k++) out[k] = inject.binds[i % 64];
  return n;
}

/* Parses a sysfs list ("0-3,8,10-11") into a bitmap of `bits` bits;
 * returns the highest member + 1 (0 for an empty list, -1 if malformed). */
static int parse_list(const char *s, uint64_t *map, size_t bits) {
  int top = 0;
  while (*s && *s != '\n') {
    if (*s < '0' || *s > '9') return -1;
    size_t a = 0, b;
    while (*s >= '0' && *s <= '9') a = a * 10 + (size_t)(*s++ - '0');
    b = a;
    if (*s == '-') {
      s++;
      if (*s < '0' || *s > '9') return -1;
      b = 0;
      while (*s >= '0' && *s <= '9') b = b * 10 + (size_t)(*s++ - '0');
    }
    if (*s == ',') s++;
    for (size_t i = a; i <= b && i < bits; i++) {
      bit_set(map, i);
      if ((int)i + 1 > top) top = (int)i + 1;
    }
  }
  return top;
}

lz_text_hot int os_numa_topology(uint8_t *cpu_node, size_t max_cpus) {
  if (atomic_load(&inject_active)) {
    for (size_t i = 0; i < max_cpus; i++) cpu_node[i] = i < inject.ncpus ? inject.cpu_node[i] : 0;
    return inject.nnodes;
  }
  /* The nodes this process may allocate on, in one system call: with one
   * (almost every machine) there is nothing to read from sysfs, whose
   * files cost every process's start-up an open, two reads and a close
   * (13 us). MPOL_F_MEMS_ALLOWED (4): the mask of mems_allowed; maxnode
   * counts one more bit than the kernel reads, as for mbind. */
  uint64_t allowed[LZ_MAX_NODES >> LZ_WORD_SHIFT] = {0};
  int e = errno;
  long r = syscall_6(SYS_get_mempolicy, NULL, allowed, (unsigned long)LZ_MAX_NODES + 1, NULL, 4ul, 0);
  errno = e;
  if (r == 0) {
    if (bitmap_count(allowed, 0, LZ_MAX_NODES) == 1) return 1;
  }
  static const char dir[] = "/sys/devices/system/node/";
  char path[96], buf[4096];
  size_t d = sizeof dir - 1;
  for (size_t i = 0; i < d; i++) path[i] = dir[i];
  const char online[] = "online";
  for (size_t i = 0; i < sizeof online; i++) path[d + i] = online[i];
  long n = os_read_file(path, buf, sizeof buf - 1);
  if (n <= 0) return 0;
  buf[n] = 0;
  uint64_t nodes[LZ_MAX_NODES / 64] = {0};
  int nnodes = parse_list(buf, nodes, LZ_MAX_NODES);
  if (nnodes <= 1) return nnodes < 0 ? 0 : nnodes; /* one node: no CPU map needed */
  for (size_t i = 0; i < max_cpus; i++) cpu_node[i] = 0;
  for (int node = 0; node < nnodes; node++) {
    if (!bit_get(nodes, (size_t)node)) continue;
    /* path = dir + "node<N>/cpulist" */
    size_t k = d;
    const char pre[] = "node";
    for (size_t i = 0; i < sizeof pre - 1; i++) path[k++] = pre[i];
    k += fmt_u64(path + k, (uint64_t)node);
    const char post[] = "/cpulist";
    for (size_t i = 0; i < sizeof post; i++) path[k + i] = post[i];
    n = os_read_file(path, buf, sizeof buf - 1);
    if (n <= 0) continue;
    buf[n] = 0;
    uint64_t cpus[LZ_MAX_CPUS / 64] = {0};
    if (parse_list(buf, cpus, max_cpus < LZ_MAX_CPUS ? max_cpus : LZ_MAX_CPUS) < 0) return 0;
    for (size_t c = 0; c < max_cpus && c < LZ_MAX_CPUS; c++)
      if (bit_get(cpus, c)) cpu_node[c] = (uint8_t)node;
  }
  return nnodes;
}

/* glibc (2.35 and later) exports where it registered the thread's rseq
 * area; weak, so an older glibc leaves them unresolved (NULL). */
extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));

int os_current_cpu(void) {
  if (lz_unlikely(atomic_load_explicit(&inject_active, memory_order_relaxed))) return inject_cpu;
#if defined(__x86_64__)
  /* struct rseq { u32 cpu_id_start; u32 cpu_id; ... } at tp + __rseq_offset;
   * the kernel keeps cpu_id current on every return to user space. */
  if (&__rseq_size != NULL && __rseq_size >= 8) {
    uintptr_t tp;
    __asm__("mov %%fs:0, %0" : "=r"(tp));
    int32_t cpu = *(volatile const int32_t *)(tp + (uintptr_t)__rseq_offset + 4);
    if (cpu >= 0) return cpu;
  }
#endif
  unsigned cpu = 0;
  int e = errno;
  long r = syscall_3(SYS_getcpu, &cpu, NULL, NULL);
  errno = e;
  return r == 0 ? (int)cpu : -1;
}

int os_mbind(void *p, size_t size, int policy, uint64_t nodemask) {
  if (atomic_load_explicit(&inject_active, memory_order_relaxed)) {
    size_t i = atomic_fetch_add(&inject.nbinds, 1);
    inject.binds[i % 64] = (lz_os_bind_t){p, size, policy, nodemask};
    return 0;
  }
  /* maxnode counts the bits the kernel may read, plus one (mbind(2)). */
  return OS_RESULT(syscall_6(SYS_mbind, p, size, policy, &nodemask, (unsigned long)LZ_MAX_NODES + 1, 0u));
}

long os_read_lines(const char *path, void (*fn)(void *ctx, const char *line, size_t n), void *ctx) {
  int e = errno;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    errno = e;
    return -1;
  }
  char buf[4096];
  size_t have = 0;
  long lines = 0;
  bool skipping = false; /* inside a line longer than buf: dropped */
  for (;;) {
    ssize_t r = read(fd, buf + have, sizeof buf - have);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    have += (size_t)r;
    size_t start = 0;
    for (size_t i = 0; i < have; i++) {
      if (buf[i] != '\n') continue;
      if (!skipping) {
        fn(ctx, buf + start, i - start);
        lines++;
      }
      skipping = false;
      start = i + 1;
    }
    if (start == 0 && have == sizeof buf) {
      skipping = true;
      have = 0;
    } else {
      memmove(buf, buf + start, have - start);
      have -= start;
    }
  }
  if (have > 0 && !skipping) {
    fn(ctx, buf, have);
    lines++;
  }
  close(fd);
  errno = e;
  return lines;
}
