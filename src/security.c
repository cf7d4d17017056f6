/* security.c: the per-process secret, and fatal reports of misuse.
 *
 * Reports go to stderr through os_write with our own formatter: nothing
 * here allocates, so a report works even when the heap is corrupted.
 */
#include "internal.h"

lz_hot uintptr_t lz_key;
lz_hot uint64_t lz_seed;
lz_hot bool lz_secure2;
lz_hot uint64_t lz_canary; /* drawn by secure_init */

/* Patterns: the byte at address a is byte (a & 7) of the word w. The
 * bulk goes 16 bytes at a time (GCC's generic vectors: SSE2 on x86-64,
 * NEON on aarch64), the check 64 bytes per branch. */
typedef uint64_t pat_vec_t __attribute__((vector_size(16), may_alias));
typedef uint64_t pat_word_t __attribute__((may_alias));

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "patterns as words assume little-endian");
lz_inline uint8_t pat_byte(uint64_t w, uintptr_t a) { return (uint8_t)(w >> ((a & 7) * 8)); }

/* The pattern's 8 bytes from address a on, as a word (it repeats every 8). */
lz_inline uint64_t pat_at(uint64_t w, uintptr_t a) {
  unsigned sh = (unsigned)(a & 7) * 8;
  return sh ? (w >> sh) | (w << (64 - sh)) : w;
}

void lz_pattern_fill(uint8_t *from, uint8_t *to, uint64_t w) {
  if (to - from < 8) {
    for (; from < to; from++) *from = pat_byte(w, (uintptr_t)from);
    return;
  }
  /* Unaligned ends: one unaligned word each (overlapping what the aligned
   * stores write, with the same bytes). */
  uint64_t head = pat_at(w, (uintptr_t)from), tail = pat_at(w, (uintptr_t)(to - 8));
  __builtin_memcpy(from, &head, 8);
  __builtin_memcpy(to - 8, &tail, 8);
  from = (uint8_t *)(((uintptr_t)from + 7) & ~(uintptr_t)7);
  if (((uintptr_t)from & 8) && from + 8 <= to) {
    *(pat_word_t *)(void *)from = w;
    from += 8;
  }
  pat_vec_t v = {w, w};
  for (; from + 64 <= to; from += 64) {
    pat_vec_t *q = (pat_vec_t *)(void *)from;
    q[0] = v;
    q[1] = v;
    q[2] = v;
    q[3] = v;
  }
  for (; from + 16 <= to; from += 16) *(pat_vec_t *)(void *)from = v;
  if (from + 8 <= to) *(pat_word_t *)(void *)from = w;
}

/* Checks the bytes [from, to) that lie in the aligned word at q (q <= from
 * < q + 8; the word is read whole: it lies in one page). */
lz_inline uint8_t *pat_check_word(const uint8_t *q, const uint8_t *from, const uint8_t *to, uint64_t w) {
  size_t lo = (size_t)(from - q), hi = to - q < 8 ? (size_t)(to - q) : 8;
  uint64_t mask = (~0ull << (lo * 8)) & (hi == 8 ? ~0ull : (1ull << (hi * 8)) - 1);
  uint64_t diff = (*(const pat_word_t *)(const void *)q ^ w) & mask;
  return diff ? (uint8_t *)(uintptr_t)q + __builtin_ctzll(diff) / 8 : NULL;
}

uint8_t *lz_pattern_check(uint8_t *from, uint8_t *to, uint64_t w) {
  if (from >= to) return NULL;
  if ((uintptr_t)from & 7) { /* the head, to a word boundary */
    const uint8_t *q = (const uint8_t *)((uintptr_t)from & ~(uintptr_t)7);
    uint8_t *bad = pat_check_word(q, from, to, w);
    if (bad != NULL) return bad;
    from = (uint8_t *)(uintptr_t)q + 8;
  }
  if (((uintptr_t)from & 8) && from + 8 <= to) {
    if (*(const pat_word_t *)(const void *)from != w) return pat_check_word(from, from, to, w);
    from += 8;
  }
  pat_vec_t v = {w, w};
  for (; from + 64 <= to; from += 64) {
    const pat_vec_t *q = (const pat_vec_t *)(const void *)from;
    pat_vec_t x = (q[0] ^ v) | (q[1] ^ v) | (q[2] ^ v) | (q[3] ^ v);
    if (x[0] | x[1]) break; /* the words below find the byte */
  }
  for (; from + 8 <= to; from += 8)
    if (*(const pat_word_t *)(const void *)from != w) break;
  return from < to ? pat_check_word(from, from, to, w) : NULL;
}

lz_text_hot void security_init(void) {
  uintptr_t k = 0;
  if (os_random_bytes(&k, sizeof k) != sizeof k) {
    /* No getrandom: mix the clock, a stack address and our own address. */
    uintptr_t local = (uintptr_t)&k;
    k = (uintptr_t)os_now_ms() * 0x9e3779b97f4a7c15ull ^ (local << 17) ^ (uintptr_t)&lz_key;
    k ^= arch_cycles() * 0xbf58476d1ce4e5b9ull;
  }
  /* In [2^63, 2^63 + 2^62) (LZ_KEY_TOP's top bits 10): an encoded NULL
   * is never NULL and a cleared word never decodes to a small value or
   * into the block's own chunk (security.h). */
  lz_seed = k; /* all 64 random bits, for level 2's secrets (secure.c) */
  k = (k & (((uintptr_t)1 << 48) - 1)) | ((uintptr_t)LZ_KEY_TOP << 48);
  lz_key = k;
  lz_secure2 = opt_get(OPT_SECURE) >= 2;
}

static size_t append(char *buf, size_t n, size_t cap, const char *s) {
  while (s && *s && n < cap) buf[n++] = *s++;
  return n;
}

/* "lzmalloc: <a><b>[ 0x<hex> | <decimal>]\n"; number: 0 none, 1 hex, 2 decimal */
void lz_message(const char *a, const char *b, uintptr_t value, int number) {
  char buf[256];
  size_t n = append(buf, 0, sizeof buf - 24, "lzmalloc: ");
  n = append(buf, n, sizeof buf - 24, a);
  n = append(buf, n, sizeof buf - 24, b);
  if (number == 1) {
    buf[n++] = ' ';
    n += fmt_hex(buf + n, value);
  } else if (number == 2) {
    n += fmt_u64(buf + n, value);
  }
  buf[n++] = '\n';
  os_write(2, buf, n);
}

__thread const char *lz_free_as __attribute__((tls_model("initial-exec")));

static bool str_eq(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}

void lz_fatal_pointer(const char *what, const char *func, const void *p) {
  if (lz_free_as != NULL && str_eq(func, "free")) func = lz_free_as;
  char fn[64];
  size_t n = append(fn, 0, sizeof fn - 4, func);
  n = append(fn, n, sizeof fn, "(): ");
  fn[n] = 0;
  lz_message(fn, what, (uintptr_t)p, 1);
  os_abort();
}

void lz_assert_fail(const char *cond, const char *file, int line) {
  lz_message("assertion failed: ", cond, 0, 0);
  lz_message(file, ":", (uintptr_t)line, 2);
  os_abort();
}
