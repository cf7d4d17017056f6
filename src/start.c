/* start.c: the process's start-up.
 *
 * process_init runs once, from the first call that needs it (a thread's
 * first heap, malloc_trim, the validator) or from our constructor (api.c,
 * through init.c), whichever comes first: allocations can arrive before
 * main, from other libraries' constructors. It checks the page size, reads
 * the options, learns the NUMA topology, draws the secret key and sets up
 * hardening level 2; none of that allocates. Other threads arriving
 * meanwhile wait for it. It sets up the layers below heap.c, which is why
 * it sits just below heap.c (src/README.md).
 */
#include "internal.h"

lz_hot _Atomic(int) lz_initialized; /* 0: not yet, 1: in progress, 2: done */
static __thread bool init_running __attribute__((tls_model("initial-exec")));

/* Spans, purge and guard pages work in LZ_PAGE_SIZE units, which must be
 * the kernel's page (arch.h): refuse other kernels before any mapping. */
lz_text_hot void check_page_size(size_t kernel_page) {
  if (lz_likely(kernel_page == LZ_PAGE_SIZE)) return;
  lz_message("unsupported kernel page size (bytes): ", "", kernel_page, 2);
  lz_message("built for 4 KiB pages on " LZ_ARCH_NAME "; refusing to run", "", 0, 0);
  os_abort();
}

lz_text_hot void process_init(void) {
  int state = atomic_load_explicit(&lz_initialized, memory_order_acquire);
  if (lz_likely(state == 2)) return;
  if (init_running) return; /* a call made by our own set-up */
  int expect = 0;
  if (!atomic_compare_exchange_strong_explicit(&lz_initialized, &expect, 1, memory_order_acq_rel,
                                               memory_order_acquire)) {
    while (atomic_load_explicit(&lz_initialized, memory_order_acquire) != 2) os_yield();
    return;
  }
  init_running = true;
  check_page_size(os_page_size());
  chunkmap_init(); /* before any chunk */
  options_init();
  numa_init();
  security_init();
  secure_init(); /* level 2's keys, from the secret key */
  chunk_unit_source(large_cache_unit); /* chunks reuse cached large memory */
  atomic_store_explicit(&lz_initialized, 2, memory_order_release);
  init_running = false;
  if (opt_get(OPT_VERBOSE)) {
    lz_message("version " LZMALLOC_VERSION ", hardening level ", "", (uintptr_t)opt_get(OPT_SECURE), 2);
    if (opt_get(OPT_PURGE_DELAY) < 0) lz_message("purge delay: never", "", 0, 0);
    else lz_message("purge delay (ms): ", "", (uintptr_t)opt_get(OPT_PURGE_DELAY), 2);
    lz_message("large cache (bytes): ", "", (uintptr_t)opt_get(OPT_LARGE_CACHE), 2);
  }
}

