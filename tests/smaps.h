/* smaps.h: reading /proc/self/{smaps,maps} without allocating (tests that
 * count the library's own pages: fork_pages, startup_bss). */
#ifndef LZ_TEST_SMAPS_H
#define LZ_TEST_SMAPS_H

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static char tu_proc_buf[1 << 20];

/* Reads a /proc file into tu_proc_buf (NUL-terminated); returns its length. */
static TU_UNUSED size_t tu_read_proc(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  CHECK(fd >= 0);
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, tu_proc_buf + n, sizeof tu_proc_buf - 1 - n);
    CHECK(r >= 0);
    if (r == 0) break;
    n += (size_t)r;
    CHECK(n < sizeof tu_proc_buf - 1);
  }
  close(fd);
  tu_proc_buf[n] = 0;
  return n;
}

/* One mapping of smaps: its header line "lo-hi perms ... [path]" at head,
 * its field lines up to end. */
typedef struct {
  const char *head, *end;
  const char *perms; /* the 4 permission characters */
  int is_lib;        /* a mapping of liblzmalloc */
  int anon;          /* no path */
} tu_smaps_entry_t;

/* Headers are the only lines whose first field holds a '-'. */
static TU_UNUSED int tu_smaps_is_header(const char *line) {
  const char *sp = strchr(line, ' ');
  const char *dash = strchr(line, '-');
  return dash != NULL && sp != NULL && dash < sp;
}

/* Steps *at (in tu_proc_buf, of length n) over one entry; 0 at the end. */
static TU_UNUSED int tu_smaps_next(const char **at, size_t n, tu_smaps_entry_t *e) {
  const char *p = *at, *lim = tu_proc_buf + n;
  if (p >= lim) return 0;
  const char *next = p;
  do {
    next = strchr(next, '\n');
    next = next ? next + 1 : lim;
  } while (next < lim && !tu_smaps_is_header(next));
  const char *eol = strchr(p, '\n');
  const char *sp = strchr(p, ' ');
  e->head = p;
  e->end = next;
  e->perms = sp != NULL ? sp + 1 : "----";
  e->is_lib = eol != NULL && memmem(p, (size_t)(eol - p), "liblzmalloc", 11) != NULL;
  e->anon = eol != NULL && eol[-1] == ' ';
  *at = next;
  return 1;
}

/* The value (kB) of field name ("Rss:") of entry e; 0 if absent. */
static TU_UNUSED unsigned long tu_smaps_field_kb(const tu_smaps_entry_t *e, const char *name) {
  size_t len = strlen(name);
  for (const char *p = e->head; p < e->end;) {
    if (strncmp(p, name, len) == 0) return strtoul(p + len, NULL, 10);
    const char *nl = strchr(p, '\n');
    if (nl == NULL) break;
    p = nl + 1;
  }
  return 0;
}

#endif
