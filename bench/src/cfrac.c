/* cfrac: bignum factoring in the manner of the classic cfrac benchmark.
 *
 * Composite numbers of 90-100 bits (a product of three primes of 20-36 bits,
 * generated from a seed) are factored by Pollard's rho over arbitrary-
 * precision integers whose every operation returns a freshly allocated
 * result (add, subtract, multiply, divide with remainder, gcd), the
 * temporaries freed at once: a stream of small short-lived blocks of a few
 * sizes (12-40 bytes), as a computation with immutable bignums makes. The
 * factors found are checked: each is prime (Miller-Rabin over 64 bits) and
 * their product is the number. Figure: numbers factored per second.
 */
#include "common.h"

typedef struct {
  uint32_t n;   /* limbs used; 0 is zero */
  uint32_t d[]; /* little-endian 32-bit limbs, d[n-1] != 0 */
} bn_t;

static uint64_t nallocs;

static bn_t *bn_alloc(uint32_t n) {
  bn_t *b = malloc(sizeof(bn_t) + (size_t)(n ? n : 1) * sizeof(uint32_t));
  if (!b) bench_fail("malloc of a bignum returned NULL");
  nallocs++;
  b->n = n;
  return b;
}

static void bn_trim(bn_t *b) {
  while (b->n > 0 && b->d[b->n - 1] == 0) b->n--;
}

static bn_t *bn_from_u64(uint64_t v) {
  bn_t *b = bn_alloc(2);
  b->d[0] = (uint32_t)v;
  b->d[1] = (uint32_t)(v >> 32);
  bn_trim(b);
  return b;
}

static uint64_t bn_to_u64(const bn_t *b) {
  if (b->n > 2) bench_fail("bignum too large for 64 bits");
  uint64_t v = 0;
  for (uint32_t i = b->n; i-- > 0;) v = v << 32 | b->d[i];
  return v;
}

static int bn_cmp(const bn_t *a, const bn_t *b) {
  if (a->n != b->n) return a->n < b->n ? -1 : 1;
  for (uint32_t i = a->n; i-- > 0;)
    if (a->d[i] != b->d[i]) return a->d[i] < b->d[i] ? -1 : 1;
  return 0;
}

static bn_t *bn_add(const bn_t *a, const bn_t *b) {
  if (a->n < b->n) {
    const bn_t *t = a;
    a = b;
    b = t;
  }
  bn_t *r = bn_alloc(a->n + 1);
  uint64_t c = 0;
  for (uint32_t i = 0; i < a->n; i++) {
    c += (uint64_t)a->d[i] + (i < b->n ? b->d[i] : 0);
    r->d[i] = (uint32_t)c;
    c >>= 32;
  }
  r->d[a->n] = (uint32_t)c;
  bn_trim(r);
  return r;
}

static bn_t *bn_sub(const bn_t *a, const bn_t *b) { /* a >= b */
  bn_t *r = bn_alloc(a->n);
  int64_t br = 0;
  for (uint32_t i = 0; i < a->n; i++) {
    int64_t v = (int64_t)a->d[i] - (i < b->n ? b->d[i] : 0) - br;
    br = v < 0;
    r->d[i] = (uint32_t)(v + (br ? ((int64_t)1 << 32) : 0));
  }
  if (br) bench_fail("bn_sub underflow");
  bn_trim(r);
  return r;
}

static bn_t *bn_absdiff(const bn_t *a, const bn_t *b) {
  return bn_cmp(a, b) >= 0 ? bn_sub(a, b) : bn_sub(b, a);
}

static bn_t *bn_mul(const bn_t *a, const bn_t *b) {
  bn_t *r = bn_alloc(a->n + b->n);
  memset(r->d, 0, (size_t)r->n * sizeof(uint32_t));
  for (uint32_t i = 0; i < a->n; i++) {
    uint64_t c = 0;
    for (uint32_t j = 0; j < b->n; j++) {
      c += (uint64_t)a->d[i] * b->d[j] + r->d[i + j];
      r->d[i + j] = (uint32_t)c;
      c >>= 32;
    }
    r->d[i + b->n] = (uint32_t)c;
  }
  bn_trim(r);
  return r;
}

/* Shifted copy: a << s bits (0 <= s < 32), with one more limb. */
static bn_t *bn_shl_small(const bn_t *a, int s) {
  bn_t *r = bn_alloc(a->n + 1);
  uint32_t carry = 0;
  for (uint32_t i = 0; i < a->n; i++) {
    uint32_t v = a->d[i];
    r->d[i] = (v << s) | carry;
    carry = s ? v >> (32 - s) : 0;
  }
  r->d[a->n] = carry;
  return r; /* not trimmed: division wants the extra limb */
}

/* Quotient and remainder (either pointer may be NULL), Knuth's algorithm D
 * on 32-bit limbs. */
static void bn_divmod(const bn_t *a, const bn_t *b, bn_t **q, bn_t **r) {
  if (b->n == 0) bench_fail("division by zero");
  if (bn_cmp(a, b) < 0) {
    if (q) *q = bn_alloc(0);
    if (r) {
      *r = bn_alloc(a->n);
      memcpy((*r)->d, a->d, (size_t)a->n * sizeof(uint32_t));
    }
    return;
  }
  if (b->n == 1) {
    bn_t *qq = bn_alloc(a->n);
    uint64_t rem = 0;
    for (uint32_t i = a->n; i-- > 0;) {
      uint64_t cur = rem << 32 | a->d[i];
      qq->d[i] = (uint32_t)(cur / b->d[0]);
      rem = cur % b->d[0];
    }
    bn_trim(qq);
    if (q) *q = qq;
    else free(qq);
    if (r) *r = bn_from_u64(rem);
    return;
  }
  int s = __builtin_clz(b->d[b->n - 1]);
  bn_t *u = bn_shl_small(a, s), *v = bn_shl_small(b, s);
  uint32_t n = b->n, m = a->n - b->n;
  bn_t *qq = bn_alloc(m + 1);
  for (uint32_t j = m + 1; j-- > 0;) {
    uint64_t num = (uint64_t)u->d[j + n] << 32 | u->d[j + n - 1];
    uint64_t qhat = num / v->d[n - 1], rhat = num % v->d[n - 1];
    while (qhat >> 32 || qhat * v->d[n - 2] > (rhat << 32 | u->d[j + n - 2])) {
      qhat--;
      rhat += v->d[n - 1];
      if (rhat >> 32) break;
    }
    int64_t borrow = 0;
    uint64_t carry = 0;
    for (uint32_t i = 0; i < n; i++) {
      uint64_t p = qhat * v->d[i] + carry;
      carry = p >> 32;
      int64_t t = (int64_t)u->d[i + j] - (int64_t)(uint32_t)p - borrow;
      borrow = t < 0;
      u->d[i + j] = (uint32_t)t;
    }
    int64_t t = (int64_t)u->d[j + n] - (int64_t)carry - borrow;
    u->d[j + n] = (uint32_t)t;
    if (t < 0) { /* added back: qhat was one too large */
      qhat--;
      uint64_t c = 0;
      for (uint32_t i = 0; i < n; i++) {
        c += (uint64_t)u->d[i + j] + v->d[i];
        u->d[i + j] = (uint32_t)c;
        c >>= 32;
      }
      u->d[j + n] += (uint32_t)c;
    }
    qq->d[j] = (uint32_t)qhat;
  }
  bn_trim(qq);
  if (q) *q = qq;
  else free(qq);
  if (r) {
    bn_t *rr = bn_alloc(n);
    for (uint32_t i = 0; i < n; i++)
      rr->d[i] = (u->d[i] >> s) | (s ? u->d[i + 1] << (32 - s) : 0);
    bn_trim(rr);
    *r = rr;
  }
  free(u);
  free(v);
}

static bn_t *bn_mod(const bn_t *a, const bn_t *m) {
  bn_t *r;
  bn_divmod(a, m, NULL, &r);
  return r;
}

static bn_t *bn_gcd(const bn_t *a, const bn_t *b) {
  bn_t *x = bn_add(a, &(bn_t){0}), *y = bn_add(b, &(bn_t){0}); /* copies */
  while (y->n) {
    bn_t *t = bn_mod(x, y);
    free(x);
    x = y;
    y = t;
  }
  free(y);
  return x;
}

/* ---- 64-bit helpers for generating and checking primes ---------------- */

static uint64_t mulmod64(uint64_t a, uint64_t b, uint64_t m) {
  return (uint64_t)((unsigned __int128)a * b % m);
}

static uint64_t powmod64(uint64_t a, uint64_t e, uint64_t m) {
  uint64_t r = 1;
  a %= m;
  while (e) {
    if (e & 1) r = mulmod64(r, a, m);
    a = mulmod64(a, a, m);
    e >>= 1;
  }
  return r;
}

static int is_prime64(uint64_t n) {
  if (n < 2) return 0;
  static const uint64_t bases[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
  for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
    if (n % bases[i] == 0) return n == bases[i];
  }
  uint64_t d = n - 1;
  int s = 0;
  while (!(d & 1)) {
    d >>= 1;
    s++;
  }
  for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
    uint64_t x = powmod64(bases[i], d, n);
    if (x == 1 || x == n - 1) continue;
    int ok = 0;
    for (int k = 1; k < s && !ok; k++) {
      x = mulmod64(x, x, n);
      ok = x == n - 1;
    }
    if (!ok) return 0;
  }
  return 1;
}

static uint64_t random_prime(rng_t *r, int bits) {
  for (;;) {
    uint64_t v = ((uint64_t)1 << (bits - 1)) | rng_below(r, (uint64_t)1 << (bits - 1)) | 1;
    if (is_prime64(v)) return v;
  }
}

/* ---- Pollard's rho over bignums ----------------------------------------- */

/* x -> (x*x + c) mod n, freeing x */
static bn_t *rho_step(bn_t *x, const bn_t *c, const bn_t *n) {
  bn_t *sq = bn_mul(x, x);
  free(x);
  bn_t *s = bn_add(sq, c);
  free(sq);
  bn_t *r = bn_mod(s, n);
  free(s);
  return r;
}

/* A non-trivial factor of the composite n (a new bignum). */
static bn_t *rho(const bn_t *n, uint64_t seed) {
  for (uint64_t c0 = seed % 97 + 1;; c0++) {
    bn_t *c = bn_from_u64(c0), *x = bn_from_u64(2), *y = bn_from_u64(2), *q = bn_from_u64(1);
    bn_t *g = NULL;
    for (uint64_t it = 1; it < 50000000; it++) {
      x = rho_step(x, c, n);
      y = rho_step(rho_step(y, c, n), c, n);
      bn_t *d = bn_absdiff(x, y);
      bn_t *p = bn_mul(q, d);
      free(d);
      free(q);
      q = bn_mod(p, n);
      free(p);
      if (it % 32 == 0 || q->n == 0) {
        g = bn_gcd(q->n ? q : n, n);
        if (g->n == 1 && g->d[0] == 1) {
          free(g);
          g = NULL;
          continue;
        }
        break;
      }
    }
    free(c);
    free(x);
    free(y);
    free(q);
    if (g && bn_cmp(g, n) != 0) return g;
    free(g); /* the cycle closed on n itself: another constant */
  }
}

typedef struct factor {
  struct factor *next;
  uint64_t p;
} factor_t;

/* Appends the prime factors of n to *list. */
static void factorize(const bn_t *n, factor_t **list, uint64_t seed, int depth) {
  if (depth > 8) bench_fail("factoring recursed too deep");
  if (n->n <= 2 && is_prime64(bn_to_u64(n))) {
    factor_t *f = xmalloc_or_fail(sizeof *f);
    f->p = bn_to_u64(n);
    f->next = *list;
    *list = f;
    return;
  }
  bn_t *a = rho(n, seed), *b;
  bn_divmod(n, a, &b, NULL);
  factorize(a, list, seed * 31 + 7, depth + 1);
  factorize(b, list, seed * 37 + 11, depth + 1);
  free(a);
  free(b);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 1);
  uint64_t count = scaled(40, scale, 2);
  rng_t r;
  rng_seed(&r, 0xcf4ac);
  double t0 = now_sec();
  for (uint64_t k = 0; k < count; k++) {
    uint64_t pr[3] = {random_prime(&r, 20 + (int)rng_below(&r, 6)), random_prime(&r, 30 + (int)rng_below(&r, 5)),
                      random_prime(&r, 32 + (int)rng_below(&r, 5))};
    bn_t *a = bn_from_u64(pr[0]), *b = bn_from_u64(pr[1]), *c = bn_from_u64(pr[2]);
    bn_t *ab = bn_mul(a, b), *n = bn_mul(ab, c);
    free(a);
    free(b);
    free(c);
    free(ab);
    factor_t *list = NULL;
    factorize(n, &list, k, 0);
    /* check: three primes, the ones we multiplied, product n */
    uint64_t got[3];
    int nf = 0;
    bn_t *prod = bn_from_u64(1);
    while (list) {
      factor_t *f = list;
      list = f->next;
      if (nf < 3) got[nf] = f->p;
      nf++;
      if (!is_prime64(f->p)) bench_fail("factor %" PRIu64 " is not prime", f->p);
      bn_t *fb = bn_from_u64(f->p), *np = bn_mul(prod, fb);
      free(fb);
      free(prod);
      prod = np;
      free(f);
    }
    if (nf != 3 || bn_cmp(prod, n) != 0) bench_fail("number %" PRIu64 ": %d factors, product differs", k, nf);
    qsort(got, 3, sizeof got[0], cmp_u64);
    qsort(pr, 3, sizeof pr[0], cmp_u64);
    if (memcmp(got, pr, sizeof pr) != 0) bench_fail("number %" PRIu64 ": wrong factors", k);
    free(prod);
    free(n);
  }
  double t = now_sec() - t0;
  printf("cfrac: %" PRIu64 " numbers factored, %" PRIu64 " bignums allocated in %.3f s\n", count, nallocs, t);
  report_result((double)count / t, "numbers/s");
  return 0;
}
