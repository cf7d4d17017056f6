/* options.c: runtime options, one table, read once from the environment.
 *
 * Each option is LZMALLOC_<NAME>=<value>. Values are integers with an
 * optional K/M/G suffix (powers of 1024) where the option is a size. A bad
 * value is reported once on stderr and the default kept. Reading never
 * allocates (the environment is scanned directly). An option may also
 * take words (LZMALLOC_NUMA=off): word i stands for the value i.
 */
#include "internal.h"

extern char **environ;

typedef struct option_desc_s {
  const char *name;   /* after the LZMALLOC_ prefix */
  long def;
  long min, max;
  bool is_size;
  const char *const *words; /* NULL, or names of the values 0, 1, ... */
} option_desc_t;

static const char *const numa_words[] = {"off", "auto", "interleave", "strict", NULL};
static const char *const huge_words[] = {"never", "auto", "always", NULL};
static const char *const background_words[] = {"0", "1", "auto", NULL};

/* The one table of options: name (after LZMALLOC_), default, accepted
 * range, size suffixes allowed, names of the values (or NULL). Raising the
 * hardening level at run time adds what needs no compiled code (level 2:
 * guard pages after large blocks); the compiled level's checks cannot be
 * removed, so a lower value is refused. BACKGROUND=1: a background thread
 * (janitor.c) gives idle memory back, started the first time there is
 * some; 0: only the allocating threads purge; auto (default): as 1, but
 * only in a process that runs threads of its own already (starting the
 * first extra thread would change how glibc treats the process: stdio
 * starts locking, and fork is no longer async-signal-safe). HUGEPAGES: transparent huge
 * pages for chunks: never (the default: with auto, a burst that fills
 * chunks and then frees most of them cost a second more system time);
 * auto (densely used chunks); always (every chunk, from its first touch). VALIDATE=1 runs the heap validator
 * (validate.c) at thread exit and in lz_trim; on by default in debug
 * builds. */
#define LZ_OPTIONS(X)                                                          \
  X(OPT_VERBOSE, "VERBOSE", 0, 0, 2, false, NULL)                              \
  X(OPT_SHOW_STATS, "SHOW_STATS", 0, 0, 1, false, NULL)                        \
  X(OPT_PURGE_DELAY, "PURGE_DELAY", LZ_PURGE_DELAY_MS, -1, 3600000, false, NULL) \
  X(OPT_LARGE_CACHE, "LARGE_CACHE", LZ_LARGE_CACHE_BYTES, 0, 64L << 30, true, NULL) \
  X(OPT_SECURE, "SECURE", LZ_SECURE, LZ_SECURE, 2, false, NULL)                \
  X(OPT_NUMA, "NUMA", NUMA_AUTO, NUMA_OFF, NUMA_STRICT, false, numa_words)     \
  X(OPT_BACKGROUND, "BACKGROUND", BACKGROUND_AUTO, BACKGROUND_OFF, BACKGROUND_AUTO, false, background_words) \
  X(OPT_HUGEPAGES, "HUGEPAGES", HUGE_NEVER, HUGE_NEVER, HUGE_ALWAYS, false, huge_words) \
  X(OPT_VALIDATE, "VALIDATE", LZ_DEBUG, 0, 1, false, NULL)

#define OPTION_DESC(id, name, def, min, max, size, words) [id] = {name, def, min, max, size, words},
#define OPTION_DEFAULT(id, name, def, min, max, size, words) [id] = def,
static const option_desc_t option_table[OPT_COUNT_] = {LZ_OPTIONS(OPTION_DESC)};
/* Defaults until options_init runs (it runs before the first allocation).
 * Every process reads them: with the hot variables (lz_hot), on the page
 * the loader writes anyway (cmake/layout.ld), not on the first data page,
 * which no other read of a small process maps. */
lz_hot long lz_opt_values[OPT_COUNT_] = {LZ_OPTIONS(OPTION_DEFAULT)};

static bool parse_word(const char *s, const char *const *words, long *out) {
  for (long i = 0; words != NULL && words[i] != NULL; i++) {
    const char *w = words[i], *v = s;
    while (*w && *v == *w) { w++; v++; }
    if (*w == 0 && *v == 0) {
      *out = i;
      return true;
    }
  }
  return false;
}

static bool parse_value(const char *s, bool is_size, long *out) {
  bool neg = false;
  if (*s == '-') { neg = true; s++; }
  if (*s < '0' || *s > '9') return false;
  unsigned long v = 0;
  while (*s >= '0' && *s <= '9') {
    unsigned long d = (unsigned long)(*s++ - '0');
    if (v > (0x7ffffffffffffffful - d) / 10) return false;
    v = v * 10 + d;
  }
  if (is_size && *s) {
    unsigned shift = 0;
    switch (*s) {
      case 'k': case 'K': shift = 10; break;
      case 'm': case 'M': shift = 20; break;
      case 'g': case 'G': shift = 30; break;
      default: return false;
    }
    s++;
    if (*s == 'i') s++;
    if (*s == 'b' || *s == 'B') s++;
    if (v > (0x7ffffffffffffffful >> shift)) return false;
    v <<= shift;
  }
  if (*s) return false;
  *out = neg ? -(long)v : (long)v;
  return true;
}

static size_t fmt_signed(char *buf, long v) {
  if (v >= 0) return fmt_u64(buf, (uint64_t)v);
  buf[0] = '-';
  return 1 + fmt_u64(buf + 1, (uint64_t)-v);
}

/* Every option's value in the environment (NULL: not set; the first
 * LZMALLOC_<NAME>= of a name counts), in one pass over it. */
static void env_lookup(const char *found[OPT_COUNT_]) {
  static const char prefix[] = "LZMALLOC_";
  if (environ == NULL) return;
  for (char **e = environ; *e; e++) {
    const char *s = *e;
    size_t i = 0;
    while (prefix[i] && s[i] == prefix[i]) i++;
    if (prefix[i]) continue;
    s += i;
    for (int k = 0; k < OPT_COUNT_; k++) {
      const char *n = option_table[k].name, *v = s;
      while (*n && *v == *n) { v++; n++; }
      if (*n == 0 && *v == '=') {
        if (found[k] == NULL) found[k] = v + 1;
        break;
      }
    }
  }
}

/* The values found (some not NULL), each stored only where it changes
 * (their page: cmake/layout.ld). Cold code (not lz_text_hot): only a
 * process that sets an option runs it, and its 2 KiB kept the hot code's
 * window full. */
static lz_noinline void options_apply(const char *const found[OPT_COUNT_]) {
  for (int i = 0; i < OPT_COUNT_; i++) {
    const option_desc_t *d = &option_table[i];
    const char *v = found[i];
    long x = d->def;
    if (v == NULL || parse_word(v, d->words, &x) ||
        (parse_value(v, d->is_size, &x) && x >= d->min && x <= d->max)) {
      if (lz_opt_values[i] != x) lz_opt_values[i] = x;
    } else {
      if (lz_opt_values[i] != d->def) lz_opt_values[i] = d->def;
      /* "lzmalloc: warning: ignoring LZMALLOC_X=v (accepted: min..max); using the default d"
       * (words: "accepted: w0|w1|...", "the default <word>") */
      char buf[320];
      size_t n = 0;
      const char *parts[] = {"lzmalloc: warning: ignoring LZMALLOC_", d->name, "=", v, " (accepted: ", NULL};
      for (int k = 0; parts[k]; k++)
        for (const char *p = parts[k]; *p && n < 200; p++) buf[n++] = *p;
      if (d->words) {
        for (int k = 0; d->words[k]; k++) {
          if (k) buf[n++] = '|';
          for (const char *p = d->words[k]; *p; p++) buf[n++] = *p;
        }
      } else {
        n += fmt_signed(buf + n, d->min);
        buf[n++] = '.';
        buf[n++] = '.';
        n += fmt_signed(buf + n, d->max);
      }
      const char *tail = "); using the default ";
      while (*tail) buf[n++] = *tail++;
      if (d->words) {
        for (const char *p = d->words[d->def]; *p; p++) buf[n++] = *p;
      } else {
        n += fmt_signed(buf + n, d->def);
      }
      buf[n++] = '\n';
      os_write(2, buf, n);
    }
  }
}

/* The values start as the defaults, and a process that sets no option
 * writes none. */
lz_text_hot void options_init(void) {
  const char *found[OPT_COUNT_] = {NULL};
  env_lookup(found);
  for (int i = 0; i < OPT_COUNT_; i++)
    if (found[i] != NULL) {
      options_apply(found);
      return;
    }
}
