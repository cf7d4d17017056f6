/* Fault injection: when the kernel refuses memory, every entry point
 * returns NULL with ENOMEM (posix_memalign returns ENOMEM), nothing
 * already allocated is damaged, and allocation recovers with the kernel. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); exit(1); } } while (0)

enum { MAXB = 1 << 16 };
static unsigned char *blocks[MAXB];
static size_t sizes[MAXB];

static void check_all(size_t n) {
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < sizes[i]; k++) CHECK(blocks[i][k] == (unsigned char)i);
}

int main(void) {
  /* Some live blocks of every engine before the faults start. */
  size_t n = 0;
  size_t mix[] = {24, 700, 5000, 30000, 200000, 3u << 20};
  for (int r = 0; r < 20; r++)
    for (size_t k = 0; k < sizeof mix / sizeof mix[0]; k++, n++) {
      sizes[n] = mix[k];
      blocks[n] = lz_malloc(sizes[n]);
      CHECK(blocks[n] != NULL);
      memset(blocks[n], (int)(unsigned char)n, sizes[n]);
    }

  os_fault_set(0, 1); /* every mapping call fails from now on */
  errno = 0;
  CHECK(lz_malloc(8u << 20) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(lz_calloc(1, 5u << 20) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(lz_aligned_alloc(4u << 20, 4u << 20) == NULL && errno == ENOMEM);
  void *out = (void *)1;
  errno = 1234;
  CHECK(lz_posix_memalign(&out, 1u << 21, 3u << 20) == ENOMEM && errno == ENOMEM && out == (void *)1);
  /* Growing a large block in place may still work (mremap); moving it cannot. */
  errno = 0;
  void *big = lz_realloc(blocks[5], 64u << 20);
  if (big == NULL) CHECK(errno == ENOMEM);
  else blocks[5] = big;
  /* Small and medium allocations succeed from memory already mapped, then
   * fail cleanly when the chunks run out. */
  size_t got = 0;
  void **extra = malloc(sizeof(void *) * (1 << 20));
  CHECK(extra != NULL);
  for (;;) {
    errno = 0;
    void *p = lz_malloc(got % 3 == 0 ? 64 : (got % 3 == 1 ? 3000 : 70000));
    if (p == NULL) { CHECK(errno == ENOMEM); break; }
    CHECK(got < (1 << 20));
    extra[got++] = p;
  }
  check_all(n);

  os_fault_set(-1, 1); /* the kernel recovers */
  void *p = lz_malloc(8u << 20);
  CHECK(p != NULL);
  memset(p, 1, 8u << 20);
  lz_free(p);
  for (size_t i = 0; i < got; i++) lz_free(extra[i]);
  free(extra);
  check_all(n);
  for (size_t i = 0; i < n; i++) lz_free(blocks[i]);

  /* Intermittent failures: one mapping call in three fails. An allocation
   * that fails is retried once after reclaiming, so whether a failure
   * reaches the caller depends on how many mapping calls each attempt
   * makes (and on whether trim left a range to reuse): what must hold is
   * that failures were injected, every result is a block or ENOMEM, no
   * more allocations failed than failures were injected, and some
   * allocations succeed. */
  long injected = os_fault_injected();
  os_fault_set(0, 3);
  size_t ok = 0, failed = 0;
  for (int i = 0; i < 300; i++) {
    errno = 0;
    void *q = lz_malloc((size_t)(i % 7 + 1) << 20);
    if (q) { ok++; memset(q, 7, 4096); lz_free(q); lz_trim(0); }
    else { CHECK(errno == ENOMEM); failed++; }
  }
  os_fault_set(-1, 1);
  long made = os_fault_injected() - injected;
  CHECK(ok > 0 && made > 0 && (long)failed <= made);
  printf("faults: %zu small/medium blocks before exhaustion; intermittent: %zu ok, %zu ENOMEM\n", got, ok, failed);
  lz_trim(0);
  return 0;
}
