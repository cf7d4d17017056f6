#!/usr/bin/env bash
# scale_ulimit: a program preloaded with lzmalloc under `ulimit -v` (each
# limit of LZ_ULIMITS, KiB) allocates mixed sizes until malloc returns NULL
# and checks errno == ENOMEM, then small blocks until that fails too; frees
# half of everything, allocates the same sizes again (must all succeed, as
# under glibc at any limit), checks every block's contents, frees all and
# allocates once more. The script asserts exit status 0 and that the
# program reported hitting ENOMEM, at every limit: where the address space
# runs out decides which free runs are left, and first-fit slabs made a
# 100 KiB re-allocation fail at 290000, 342000 and 393216 (span.c,
# span_find_best), not at 262144. Then `threads`: 4 threads each hold a
# small block while the main thread allocates 100 MiB under 262144, which
# must succeed (as under glibc): no heap reserves address space far ahead
# of its use there.
#
# Environment (set by ctest): LZ_LIB = the preloadable liblzmalloc.so;
# LZ_ULIMITS = the limits to run the first program under (default below,
# about a second each).
set -u
lib=${LZ_LIB:-}
if [ -z "$lib" ] || [ ! -f "$lib" ]; then
  echo "scale_ulimit: LZ_LIB must name liblzmalloc.so (got '${lib}')" >&2
  exit 1
fi
limits=${LZ_ULIMITS:-262144 290000 342000 393216}
cc=${CC:-cc}
command -v "$cc" >/dev/null 2>&1 || { echo "SKIP: no C compiler"; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lzulimit.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/prog.c" <<'PROG'
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "prog: line %d: CHECK(%s) failed\n", __LINE__, #c); fflush(stderr); _exit(1); } } while (0)
enum { MAXB = 1 << 17 };
static unsigned char *blk[MAXB];
static size_t sz[MAXB];
static unsigned gen[MAXB];

static unsigned char pat(size_t i, unsigned g, size_t k) { return (unsigned char)(i * 31 + g * 7 + (k >> 9)); }
static void fill(size_t i) {
  for (size_t k = 0; k < sz[i]; k += 512) blk[i][k] = pat(i, gen[i], k);
  if (sz[i]) blk[i][sz[i] - 1] = pat(i, gen[i], sz[i] - 1);
}
static int ok(size_t i) {
  for (size_t k = 0; k < sz[i]; k += 512) if (blk[i][k] != pat(i, gen[i], k)) return 0;
  return sz[i] == 0 || blk[i][sz[i] - 1] == pat(i, gen[i], sz[i] - 1);
}

int main(void) {
  static const size_t mix[] = {48, 3000, 100 * 1024, 1536 * 1024, 5 * 1024 * 1024, 700};
  size_t n = 0, bytes = 0;
  /* Phase 1: mixed sizes until the first failure. */
  for (;;) {
    CHECK(n < MAXB);
    size_t s = mix[n % (sizeof mix / sizeof mix[0])];
    errno = 0;
    unsigned char *p = malloc(s);
    if (p == NULL) {
      CHECK(errno == ENOMEM);
      printf("hit ENOMEM (mixed) after %zu blocks, %zu MiB, failing size %zu\n", n, bytes >> 20, s);
      break;
    }
    CHECK(errno == 0);
    blk[n] = p; sz[n] = s; gen[n] = 1; fill(n); n++; bytes += s;
  }
  /* Phase 2: small blocks until they fail too (chunks run out). */
  size_t n_small = 0;
  for (;;) {
    CHECK(n < MAXB);
    errno = 0;
    unsigned char *p = malloc(4000);
    if (p == NULL) {
      CHECK(errno == ENOMEM);
      printf("hit ENOMEM (small) after %zu more blocks of 4000 bytes\n", n_small);
      break;
    }
    blk[n] = p; sz[n] = 4000; gen[n] = 1; fill(n); n++; n_small++; bytes += 4000;
  }
  /* calloc, realloc and posix_memalign fail cleanly too. */
  errno = 0;
  CHECK(calloc(1, 8u << 20) == NULL && errno == ENOMEM);
  void *out = &out;
  errno = 0;
  CHECK(posix_memalign(&out, 4096, 8u << 20) == ENOMEM && errno == ENOMEM && out == &out);
  for (size_t i = 0; i < n; i++) CHECK(ok(i));
  /* Free every other block, then allocate the same sizes again. */
  size_t freed = 0;
  for (size_t i = 0; i < n; i += 2) { free(blk[i]); blk[i] = NULL; freed += sz[i]; }
  size_t again = 0;
  for (size_t i = 0; i < n; i += 2) {
    errno = 0;
    blk[i] = malloc(sz[i]);
    if (blk[i] == NULL) {
      fprintf(stderr, "prog: re-allocation %zu of %zu bytes failed (errno %d) after freeing %zu MiB\n", i, sz[i], errno, freed >> 20);
      return 1;
    }
    gen[i] = 2; fill(i); again++;
  }
  for (size_t i = 0; i < n; i++) CHECK(ok(i));
  printf("freed %zu blocks (%zu MiB) and allocated them again; all %zu blocks intact\n", again, freed >> 20, n);
  for (size_t i = 0; i < n; i++) free(blk[i]);
  malloc_trim(0);
  unsigned char *big = malloc(64u << 20);
  CHECK(big != NULL);
  memset(big, 1, 64u << 20);
  free(big);
  printf("after freeing everything: a 64 MiB block works\n");
  return 0;
}
PROG

# -fno-builtin: gcc otherwise assumes posix_memalign leaves errno alone.
if ! "$cc" -O2 -fno-builtin -Wall -o "$tmp/prog" "$tmp/prog.c" 2>"$tmp/cc.log"; then
  cat "$tmp/cc.log"
  echo "scale_ulimit: could not compile the test program" >&2
  exit 1
fi

start=$(date +%s.%N)
for lim in $limits; do
  ( ulimit -v "$lim" && LD_PRELOAD="$lib" "$tmp/prog" ) >"$tmp/out" 2>&1
  rc=$?
  sed "s/^/[ulimit -v $lim] /" "$tmp/out"
  if [ "$rc" -ne 0 ]; then
    echo "scale_ulimit: FAILED under ulimit -v $lim: the program exited with status $rc" >&2
    exit 1
  fi
  if ! grep -q '^hit ENOMEM (mixed)' "$tmp/out" || ! grep -q '^hit ENOMEM (small)' "$tmp/out"; then
    echo "scale_ulimit: FAILED under ulimit -v $lim: the program did not report hitting ENOMEM" >&2
    exit 1
  fi
  if ! grep -q 'all [0-9]* blocks intact' "$tmp/out"; then
    echo "scale_ulimit: FAILED under ulimit -v $lim: no content check reported" >&2
    exit 1
  fi
done
end=$(date +%s.%N)
cat >"$tmp/threads.c" <<'PROG'
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
enum { T = 4 };
static pthread_barrier_t bar;
static void *worker(void *arg) {
  char *p = malloc(100);
  if (p != NULL) memset(p, 1, 100);
  pthread_barrier_wait(&bar); /* every thread holds its block */
  pthread_barrier_wait(&bar); /* till the big one was tried */
  free(p);
  return arg;
}
int main(void) {
  pthread_t t[T];
  pthread_barrier_init(&bar, NULL, T + 1);
  for (int i = 0; i < T; i++)
    if (pthread_create(&t[i], NULL, worker, NULL) != 0) return 2;
  pthread_barrier_wait(&bar);
  size_t big = (size_t)100 << 20;
  char *p = malloc(big);
  printf("threads: %d threads with a block each, malloc(100 MiB) %s\n", T, p != NULL ? "worked" : "failed");
  if (p != NULL) memset(p, 0, big);
  pthread_barrier_wait(&bar);
  for (int i = 0; i < T; i++) pthread_join(t[i], NULL);
  free(p);
  return p != NULL ? 0 : 1;
}
PROG
if ! "$cc" -O2 -pthread -Wall -o "$tmp/threads" "$tmp/threads.c" 2>"$tmp/cc.log"; then
  cat "$tmp/cc.log"
  echo "scale_ulimit: could not compile the threads program" >&2
  exit 1
fi
( ulimit -v 262144 && LD_PRELOAD="$lib" "$tmp/threads" ) >"$tmp/out" 2>&1
rc=$?
cat "$tmp/out"
if [ "$rc" -ne 0 ]; then
  echo "scale_ulimit: FAILED: threads exited with status $rc" >&2
  exit 1
fi

printf 'scale_ulimit: passed under ulimit -v %s in %.2f s\n' "$limits" "$(echo "$end - $start" | bc 2>/dev/null || echo 0)"
exit 0
