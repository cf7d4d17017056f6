/* Every result the OS layer returns is checked (fault injection, os.c):
 *   - pthread_key_create failing at start-up: a warning, and no thread ever
 *     writes the value of a key it does not own (key 0 is someone else's);
 *   - pthread_atfork failing: a warning;
 *   - mprotect refusing a guard page (as at vm.max_map_count) at hardening
 *     level 2: the large allocation fails with ENOMEM and nothing leaks,
 *     fresh mapping or cached one; with the kernel back, the guard faults;
 *   - madvise refusing a purge: the pages stay dirty and are not counted as
 *     purged; a later purge that works counts them once;
 *   - mprotect refusing the guard page of a small or medium block at level 2
 *     (a child run with LZMALLOC_SECURE=2): the allocation fails with
 *     ENOMEM, never a block without its guard, and nothing stays in use;
 *   - mprotect refusing to make a page of the chunk map writable (the
 *     commit limit reached: chunkmap.c, chunkmap_prepare): the caller is
 *     told, nothing is charged, and the page is made writable once the
 *     kernel agrees; a chunk of a heap's region that cannot be made
 *     writable: the heap maps a chunk of its own instead. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "internal.h"
#include "testutil.h"
#include "smaps.h"

static char log_path[] = "/tmp/lz_test_os_results.XXXXXX";
static int saved_stderr = -1;

/* Before lzmalloc's constructor (priority 101): thread hooks fail, and its
 * warnings go to a file. */
#pragma GCC diagnostic push
#if defined(__clang__)
#pragma GCC diagnostic ignored "-Wunknown-warning-option"
#else
#pragma GCC diagnostic ignored "-Wprio-ctor-dtor"
#endif
__attribute__((constructor(100))) static void before_lzmalloc(void) {
  int fd = mkstemp(log_path);
  if (fd < 0) abort();
  saved_stderr = dup(2);
  dup2(fd, 2);
  close(fd);
  os_fault_kinds(OS_FAULT_THREAD);
  os_fault_set(0, 1);
}
#pragma GCC diagnostic pop

static pthread_key_t their_key;
static _Atomic(void *) dtor_value;
static void their_dtor(void *v) { atomic_store(&dtor_value, v); }
static char sentinel;
static _Atomic(pid_t) thread_tid;

static void *thread_body(void *arg) {
  atomic_store(&thread_tid, (pid_t)syscall(SYS_gettid));
  CHECK(pthread_setspecific(their_key, &sentinel) == 0);
  void *p = lz_malloc(100); /* a new heap: lzmalloc would arm its exit hook */
  CHECK(p != NULL);
  lz_free(p);
  CHECK(pthread_getspecific(their_key) == &sentinel);
  return NULL;
}

static void check_thread_hooks(void) {
  dup2(saved_stderr, 2);
  close(saved_stderr);
  os_fault_set(-1, 1);
  os_fault_kinds(OS_FAULT_MAP);
  char buf[2048] = {0};
  int fd = open(log_path, O_RDONLY);
  CHECK(fd >= 0);
  ssize_t n = read(fd, buf, sizeof buf - 1);
  CHECK(n > 0);
  close(fd);
  unlink(log_path);
  CHECKF(strstr(buf, "warning: no thread-exit hook (pthread_key_create failed)") != NULL, "log: %s", buf);
  CHECKF(strstr(buf, "warning: no fork handlers (pthread_atfork failed)") != NULL, "log: %s", buf);

  /* lzmalloc holds no key: ours is probably key 0, which lzmalloc's would
   * be had it ignored the failure. */
  CHECK(pthread_key_create(&their_key, their_dtor) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, thread_body, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(atomic_load(&dtor_value) == &sentinel);
  /* Its heap (no exit hook) is abandoned by the first trim or malloc that
   * finds the thread gone from the kernel (os_thread_gone), which may be a
   * moment after pthread_join returned (the kernel clears the thread id
   * joins wait for before it drops the thread; qemu-user clears it
   * long before): wait for that, so that check_guard_pages' trim gives
   * the heap back, not its failing malloc (mapped one chunk less after it
   * than before, 11 in 200 runs under qemu-user and load). */
  for (int i = 0; i < 10000 && syscall(SYS_tgkill, (long)getpid(), (long)atomic_load(&thread_tid), 0L) == 0; i++)
    usleep(1000);
}

static size_t mapped(void) {
  lz_stats_t st;
  lz_stats_get(&st);
  return st.mapped;
}

static void check_guard_pages(void) {
  lz_opt_values[OPT_SECURE] = 2; /* guard pages after large blocks */
  const size_t size = 3 * MiB;
  /* Idle memory back first (the heap check_thread_hooks' thread left, its
   * exit hook missing, among it): the failed calls below may not give
   * back what was idle before them, only map nothing. */
  lz_trim(0);
  size_t mapped0 = mapped();

  os_fault_kinds(OS_FAULT_PROTECT);
  os_fault_set(0, 1);
  errno = 0;
  CHECK(lz_malloc(size) == NULL && errno == ENOMEM);
  CHECK(mapped() == mapped0);
  os_fault_set(-1, 1);

  char *p = lz_malloc(size);
  CHECK(p != NULL);
  size_t usable = lz_usable_size(p);
  CHECK(usable >= size);
  memset(p, 1, usable);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    signal(SIGSEGV, SIG_DFL); /* not a sanitizer's report: die of it */
    volatile char *q = (volatile char *)p + tu_opaque(usable);
    *q = 1; /* the guard page */
    _exit(0);
  }
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "status %#x", st);

  lz_free(p);
  if (mapped() > mapped0) { /* the mapping went to the large cache */
    os_fault_set(0, 1);
    errno = 0;
    CHECK(lz_malloc(size) == NULL && errno == ENOMEM);
    CHECK(mapped() == mapped0); /* the cached mapping was given back */
    os_fault_set(-1, 1);
  }
  os_fault_kinds(OS_FAULT_MAP);
  lz_opt_values[OPT_SECURE] = LZ_SECURE;
}

static uint64_t purged(void) {
  lz_stats_t st;
  lz_stats_get(&st);
  return st.pages_purged;
}

static void check_purge(void) {
  enum { N = 4 };
  const size_t size = 256 * KiB;
  void *keep = lz_malloc(size); /* keeps the chunk owned, not pooled */
  CHECK(keep != NULL);
  void *b[N];
  for (int i = 0; i < N; i++) {
    b[i] = lz_malloc(size);
    CHECK(b[i] != NULL);
    memset(b[i], 2, size);
  }
  lz_trim(0);
  uint64_t before = purged();
  os_fault_kinds(OS_FAULT_DECOMMIT);
  os_fault_set(0, 1);
  for (int i = 0; i < N; i++) lz_free(b[i]); /* a purge delay of 0 purges here */
  lz_trim(0);
  CHECK(purged() == before);
  os_fault_set(-1, 1);
  os_fault_kinds(OS_FAULT_MAP);
  lz_trim(0);
  uint64_t got = purged() - before;
  CHECKF(got >= N * size / LZ_PAGE_SIZE, "%llu pages purged", (unsigned long long)got);
  lz_free(keep);
  lz_trim(0);
}

/* In a child started with LZMALLOC_SECURE=2 (level 2's spans are fixed at
 * start-up). */
static int check_span_guards(void) {
  static const size_t sizes[] = {16, 100, 4096, 40000, 500000};
  lz_stats_t st;
  lz_stats_get(&st);
  size_t in_use0 = st.in_use;
  os_fault_kinds(OS_FAULT_PROTECT);
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    os_fault_set(0, 1);
    errno = 0;
    void *p = lz_malloc(sizes[i]);
    os_fault_set(-1, 1);
    CHECKF(p == NULL && errno == ENOMEM, "%zu bytes: %p without its guard page", sizes[i], p);
    lz_stats_get(&st);
    CHECK(st.in_use == in_use0);
    p = lz_malloc(sizes[i]); /* the kernel back: as usual */
    CHECK(p != NULL);
    lz_free(p);
  }
  os_fault_kinds(OS_FAULT_MAP);
  lz_heap_validate();
  printf("os results: level-2 span guards refused handled\n");
  return 0;
}

/* Bytes of the chunk map page holding unit u's byte that count against
 * the commit limit: 4096 once it is writable. */
/* A new thread's heap allocates and frees (run while os_protect_rw is
 * refused): 1 if every allocation succeeded. */
static void *region_refused(void *arg) {
  (void)arg;
  void *p[64];
  int ok = 1;
  for (int i = 0; i < 64; i++) {
    p[i] = lz_malloc(20000);
    if (p[i] == NULL) ok = 0;
    else memset(p[i], i, 20000);
  }
  for (int i = 0; i < 64; i++) lz_free(p[i]);
  return (void *)(uintptr_t)ok;
}

static size_t map_page_charged(uintptr_t u) {
  uintptr_t pg = ((uintptr_t)lz_chunkmap_ends + (u >> LZ_CHUNK_SHIFT) + 1) & ~(uintptr_t)4095;
  return tu_charged_bytes(pg, pg + 4096);
}

static void check_map_prepare(void) {
  /* A unit whose map page no chunk of this process has needed (2^45, 32
   * TiB: the kernel places mappings far above). */
  uintptr_t u = (uintptr_t)1 << 45;
  CHECK(map_page_charged(u) == 0);
  os_fault_kinds(OS_FAULT_COMMIT);
  os_fault_set(0, 1);
  CHECK(!chunkmap_prepare(u));
  os_fault_set(-1, 1);
  CHECK(map_page_charged(u) == 0);
  CHECK(chunkmap_prepare(u));
  CHECKF(map_page_charged(u) == 4096, "the map page charges %zu bytes once writable", map_page_charged(u));
  CHECK(chunkmap_prepare(u)); /* once made, the page is known: no system call */
  /* Every chunk made writable refused: a thread's first heap takes no
   * region chunk, maps a chunk of its own, and allocates. (Regions are
   * for a thread's own heap below level 2: with shared heaps, LZ_HEAPS >
   * 0, or at level 2 there is no refusal to see.) */
  /* The chunk it maps lands where the kernel puts the next mappings,
   * below the thread's stack: their chunk map pages made writable first
   * (a page covers 8 GiB, so an address that crosses into the next one
   * needed a commit too, refused: 2 runs in 100 failed). */
  void *probe = os_map_aligned(LZ_CHUNK_SIZE, LZ_CHUNK_SIZE);
  CHECK(probe != NULL);
  for (uintptr_t a = (uintptr_t)probe + 64 * MiB, n = 0; n < 256 && a >= LZ_CHUNK_SIZE; n++, a -= LZ_CHUNK_SIZE)
    CHECK(chunkmap_prepare(a));
  os_unmap(probe, LZ_CHUNK_SIZE);
  os_fault_set(0, 1);
  long injected = os_fault_injected();
  pthread_t t;
  CHECK(pthread_create(&t, NULL, region_refused, NULL) == 0);
  void *ok = NULL;
  CHECK(pthread_join(t, &ok) == 0);
  os_fault_set(-1, 1);
  os_fault_kinds(OS_FAULT_MAP);
  CHECKF(ok == (void *)1 && (LZ_HEAPS > 0 || lz_secure2 || os_fault_injected() > injected),
         "a heap whose region chunk could not be made writable: allocation %s, %ld refusals",
         ok == (void *)1 ? "succeeded" : "failed", os_fault_injected() - injected);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--span-guards") == 0) return check_span_guards();
  check_thread_hooks();
  check_guard_pages();
  check_purge();
  check_map_prepare();
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(saved_stderr, 2);
    setenv("LZMALLOC_SECURE", "2", 1);
    execl("/proc/self/exe", argv[0], "--span-guards", (char *)NULL);
    _exit(127);
  }
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  /* 127: the exec itself failed (under qemu-user /proc/self/exe cannot be
   * run again): the level-2 check is left to the native runs. */
  if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
    printf("os results: level-2 child not run (cannot exec /proc/self/exe here)\n");
  else
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the level-2 child: status %#x", st);
  printf("os results: thread hooks, guard pages, purge and commit failures handled\n");
  return 0;
}
