/* arch.h: everything that depends on the CPU architecture, in one place.
 *
 * Supported: x86-64 and aarch64 (Linux, 64-bit pointers); any other target
 * stops the build here. Generic code uses only what is below:
 *
 *   arch_pause()         spin-wait hint inside a busy loop
 *   arch_cycles()        a fast, monotonic-enough tick counter (used only
 *                        as an entropy fallback; never as a clock)
 *   LZ_CACHE_LINE        bytes of a cache line (alignment of hot structures)
 *   arch_syscall6()      a Linux system call: its result, or -errno
 *   LZ_ARCH_VA_BITS      bits of a user-space address the kernel hands out
 *                        without an explicit high hint (the chunk map
 *                        covers exactly this range, chunkmap.c)
 *
 * Address bits: x86-64 Linux gives user space 47 bits (4-level paging; with
 *   5-level paging mmap still stays below 2^47 unless passed a hint above
 *   it, which lzmalloc never does). aarch64 Linux gives 48 bits with 4 KiB
 *   pages (39-bit kernels are a subset; 52-bit kernels also stay below 2^48
 *   without a high hint). Under qemu-user an aarch64 guest's addresses are
 *   host mappings offset by qemu's guest base and kept below the guest's
 *   48-bit limit, so the same constant holds there.
 *
 * Page size (a kernel property, not the CPU's): lzmalloc's page (span and
 *   purge granularity, guard pages; LZ_PAGE_SHIFT) is 4 KiB and must equal
 *   the kernel's: with 16 or 64 KiB kernel pages
 *   (some aarch64 kernels) a 4 KiB madvise or mprotect would round to the
 *   whole kernel page and discard or protect live neighbours. Such kernels
 *   are refused at start-up with a clear message (start.c), not run.
 */
#ifndef LZ_ARCH_H
#define LZ_ARCH_H

#include <stdint.h>

#if defined(__x86_64__)

#define LZ_ARCH_NAME "x86-64"
#define LZ_CACHE_LINE 64
#define LZ_ARCH_VA_BITS 47

static inline __attribute__((always_inline)) void arch_pause(void) { __builtin_ia32_pause(); }
static inline __attribute__((always_inline)) uint64_t arch_cycles(void) { return __builtin_ia32_rdtsc(); }
static inline __attribute__((always_inline)) long arch_syscall6(long n, long a, long b, long c, long d, long e,
                                                                long f) {
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

#elif defined(__aarch64__)

#define LZ_ARCH_NAME "aarch64"
/* 64 bytes on every common core (Neoverse, Cortex-A); cores that fetch
 * pairs of lines only make false sharing across 128 bytes less likely. */
#define LZ_CACHE_LINE 64
#define LZ_ARCH_VA_BITS 48

static inline __attribute__((always_inline)) void arch_pause(void) { __asm__ volatile("yield" ::: "memory"); }
static inline __attribute__((always_inline)) uint64_t arch_cycles(void) {
  uint64_t v;
  __asm__ volatile("mrs %0, cntvct_el0" : "=r"(v));
  return v;
}
static inline __attribute__((always_inline)) long arch_syscall6(long n, long a, long b, long c, long d, long e,
                                                                long f) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  register long x5 __asm__("x5") = f;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory", "cc");
  return x0;
}

#else
#error "lzmalloc supports x86-64 and aarch64 only (src/arch.h)"
#endif

#if UINTPTR_MAX != UINT64_MAX
#error "lzmalloc needs 64-bit pointers (src/arch.h)"
#endif

#endif /* LZ_ARCH_H */
