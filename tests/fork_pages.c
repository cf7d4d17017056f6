/* fork_pages: what a fork child copies of the allocator's memory (API).
 *
 * A shell forks for every pipeline and command substitution; each page the
 * child (or the parent) writes after fork is a copy-on-write fault and a
 * page copied. Measured in the child with /proc/self/smaps (Private_Dirty:
 * pages this process alone maps and has written, so after fork exactly the
 * pages it wrote since):
 *   quiet  the fork handlers of a single-threaded process write nothing:
 *          right after fork the child has written no page of the library's
 *          data (its .data and the .bss behind it);
 *   frees  a child that frees 8 small blocks the parent allocated (one
 *          slab page) and allocates 8 again copies at most 3 pages: the
 *          blocks' page, their span descriptor's page, the heap's page.
 * Hardening level 2 keeps its own state on other pages: skipped there.
 * Nothing in the measurement allocates (open/read into a static buffer).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static char g_buf[1 << 20];

/* Reads /proc/self/smaps into g_buf (NUL-terminated); returns its length. */
static size_t read_smaps(void) {
  int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
  CHECK(fd >= 0);
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, g_buf + n, sizeof g_buf - 1 - n);
    CHECK(r >= 0);
    if (r == 0) break;
    n += (size_t)r;
    CHECK(n < sizeof g_buf - 1);
  }
  close(fd);
  g_buf[n] = 0;
  return n;
}

static unsigned long field_kb(const char *entry, const char *end, const char *name) {
  size_t len = strlen(name);
  for (const char *p = entry; p < end; p = strchr(p, '\n') + 1) {
    if (strncmp(p, name, len) == 0) return strtoul(p + len, NULL, 10);
    if (strchr(p, '\n') == NULL) break;
  }
  return 0;
}

/* Entries start with a line "lo-hi perms ...": the only lines whose first
 * field holds a '-' between hex digits. */
static int is_header(const char *line) {
  const char *sp = strchr(line, ' ');
  const char *dash = strchr(line, '-');
  return dash != NULL && sp != NULL && dash < sp;
}

/* Private_Dirty (kB) of every mapping (lib_only 0), or of liblzmalloc's
 * mappings and the anonymous one right after them (its .bss). */
static unsigned long private_dirty_kb(int lib_only) {
  size_t n = read_smaps();
  unsigned long total = 0;
  int after_lib = 0;
  const char *p = g_buf;
  while (p < g_buf + n) {
    const char *next = p;
    do {
      next = strchr(next, '\n');
      next = next ? next + 1 : g_buf + n;
    } while (next < g_buf + n && !is_header(next));
    const char *eol = strchr(p, '\n');
    int is_lib = eol != NULL && memmem(p, (size_t)(eol - p), "liblzmalloc", 11) != NULL;
    int anon = eol != NULL && eol[-1] == ' ';
    int count = !lib_only || is_lib || (after_lib && anon);
    if (count) total += field_kb(p, next, "Private_Dirty:");
    after_lib = is_lib;
    p = next;
  }
  return total;
}

static int child_status(pid_t pid) {
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_quiet(void) {
  void *keep = malloc(100);
  CHECK(keep != NULL);
  CHECK(private_dirty_kb(1) > 0); /* the parent's own: found the mappings */
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    unsigned long kb = private_dirty_kb(1);
    if (kb != 0) {
      fprintf(stderr, "quiet: the child wrote %lu kB of the library's data during fork\n", kb);
      _exit(1);
    }
    _exit(0);
  }
  CHECK(child_status(pid) == 0);
  free(keep);
}

static void test_frees(void) {
  void *b[8];
  for (int i = 0; i < 8; i++) {
    b[i] = malloc(64);
    CHECK(b[i] != NULL);
    memset(b[i], i, 64);
  }
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    memset(g_buf, 0, sizeof g_buf); /* the buffer's own pages, copied now */
    unsigned long before = private_dirty_kb(0);
    for (int i = 0; i < 8; i++) free(b[i]);
    for (int i = 0; i < 8; i++) b[i] = malloc(64);
    unsigned long after = private_dirty_kb(0);
    for (int i = 0; i < 8; i++) free(b[i]);
    if (after - before > 3 * 4) {
      fprintf(stderr, "frees: the child copied %lu kB to free and allocate 8 blocks (at most 12 kB)\n",
              after - before);
      _exit(1);
    }
    _exit(0);
  }
  CHECK(child_status(pid) == 0);
  for (int i = 0; i < 8; i++) free(b[i]);
}

int main(void) {
  void *p = malloc(1);
  int level2 = malloc_usable_size(p) == 1; /* level 2 reports the requested size */
  free(p);
  if (level2) {
    printf("fork_pages: skipped at hardening level 2\n");
    return 0;
  }
  test_quiet();
  test_frees();
  printf("fork_pages: ok\n");
  return 0;
}
