/* arch.h: everything that depends on the CPU architecture, in one place.
 *
 * Supported: x86-64 and aarch64 (Linux, 64-bit pointers); any other target
 * stops the build here. Generic code uses only what is below:
 *
 *   arch_pause()         spin-wait hint inside a busy loop
 *   arch_cycles()        a fast, monotonic-enough tick counter (used only
 *                        as an entropy fallback; never as a clock)
 *   LZ_CACHE_LINE        bytes of a cache line (alignment of hot structures)
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

#else
#error "lzmalloc supports x86-64 and aarch64 only (src/arch.h)"
#endif

#if UINTPTR_MAX != UINT64_MAX
#error "lzmalloc needs 64-bit pointers (src/arch.h)"
#endif

#endif /* LZ_ARCH_H */
