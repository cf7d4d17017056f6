/* barnes: a Barnes-Hut n-body simulation in the manner of the classic
 * barnes benchmark.
 *
 * 8,000 bodies (Plummer-like cluster from a seed) for a number of steps;
 * every step builds an octree of malloc'd cells (one malloc of 112 bytes
 * per cell, about 1.4 cells per body), computes centres of mass, the
 * forces with an opening angle of 0.6, moves the bodies (leapfrog) and frees the whole
 * tree: mostly floating-point work with a tree of short-lived cells built
 * and torn down per step, so the allocator's cost is its speed on bursts of
 * equal-sized blocks and the locality of the cells it hands out.
 * Checks: every step the root holds every body and the total mass; total
 * momentum stays at its initial value (forces are pairwise symmetric up to
 * the approximation, so the drift must stay small).
 * Figure: body-steps per second (millions).
 */
#include <math.h>
#include "common.h"

typedef struct {
  double pos[3], vel[3], acc[3], mass;
} body_t;

typedef struct cell {
  struct cell *child[8];
  double com[3]; /* centre of mass */
  double mass;
  double size;
  int body;   /* the body of a leaf, -1 for an inner cell */
  int count;  /* bodies below */
} cell_t;

static body_t *bodies;
static int nbodies;
static uint64_t ncells;

static cell_t *cell_new(double size) {
  cell_t *c = malloc(sizeof *c);
  if (!c) bench_fail("malloc of a cell returned NULL");
  memset(c->child, 0, sizeof c->child);
  c->mass = 0;
  c->size = size;
  c->body = -1;
  c->count = 0;
  ncells++;
  return c;
}

static int octant(const double *p, const double *mid) {
  return (p[0] >= mid[0]) | (p[1] >= mid[1]) << 1 | (p[2] >= mid[2]) << 2;
}

static void child_mid(const double *mid, double size, int o, double *out) {
  for (int k = 0; k < 3; k++) out[k] = mid[k] + ((o >> k & 1) ? 0.25 : -0.25) * size;
}

/* Inserts body b into the subtree rooted at c (centre mid, side size). */
static void insert(cell_t *c, const double *mid, int b, int depth) {
  if (depth > 64) bench_fail("tree too deep (coincident bodies?)");
  c->count++;
  if (c->count == 1) {
    c->body = b;
    return;
  }
  if (c->body >= 0) { /* a leaf becomes an inner cell */
    int old = c->body;
    c->body = -1;
    int o = octant(bodies[old].pos, mid);
    double m2[3];
    child_mid(mid, c->size, o, m2);
    c->child[o] = cell_new(c->size / 2);
    insert(c->child[o], m2, old, depth + 1);
  }
  int o = octant(bodies[b].pos, mid);
  double m2[3];
  child_mid(mid, c->size, o, m2);
  if (!c->child[o]) c->child[o] = cell_new(c->size / 2);
  insert(c->child[o], m2, b, depth + 1);
}

static void summarize(cell_t *c) {
  if (c->body >= 0) {
    c->mass = bodies[c->body].mass;
    memcpy(c->com, bodies[c->body].pos, sizeof c->com);
    return;
  }
  double m = 0, s[3] = {0, 0, 0};
  for (int o = 0; o < 8; o++) {
    cell_t *k = c->child[o];
    if (!k) continue;
    summarize(k);
    m += k->mass;
    for (int i = 0; i < 3; i++) s[i] += k->mass * k->com[i];
  }
  c->mass = m;
  for (int i = 0; i < 3; i++) c->com[i] = s[i] / m;
}

#define EPS2 1e-4
#define THETA2 (0.6 * 0.6)

static void force(const cell_t *c, int b, double *acc) {
  const body_t *bd = &bodies[b];
  if (c->body == b) return;
  double d[3], r2 = EPS2;
  for (int i = 0; i < 3; i++) {
    d[i] = c->com[i] - bd->pos[i];
    r2 += d[i] * d[i];
  }
  if (c->body >= 0 || c->size * c->size < THETA2 * r2) {
    double inv = c->mass / (r2 * sqrt(r2));
    for (int i = 0; i < 3; i++) acc[i] += d[i] * inv;
    return;
  }
  for (int o = 0; o < 8; o++)
    if (c->child[o]) force(c->child[o], b, acc);
}

static void tree_free(cell_t *c) {
  for (int o = 0; o < 8; o++)
    if (c->child[o]) tree_free(c->child[o]);
  free(c);
}

int main(int argc, char **argv) {
  int threads;
  double scale;
  parse_args(argc, argv, &threads, &scale, 1);
  nbodies = 8000;
  int steps = (int)scaled(12, scale, 1);
  if (scale < 0.2) nbodies = 2000;
  bodies = xmalloc_or_fail(sizeof(body_t) * (size_t)nbodies);
  rng_t r;
  rng_seed(&r, 0xba27e5);
  double total_mass = 0, p0[3] = {0, 0, 0};
  for (int i = 0; i < nbodies; i++) {
    body_t *b = &bodies[i];
    /* Plummer radius distribution, random direction; small random velocities */
    double u = rng_unit(&r) * 0.99;
    double rad = 1.0 / sqrt(pow(u, -2.0 / 3.0) - 1.0);
    double z = 2 * rng_unit(&r) - 1, phi = 2 * M_PI * rng_unit(&r), s = sqrt(1 - z * z);
    b->pos[0] = rad * s * cos(phi);
    b->pos[1] = rad * s * sin(phi);
    b->pos[2] = rad * z;
    for (int k = 0; k < 3; k++) b->vel[k] = 0.1 * (rng_unit(&r) - 0.5);
    b->mass = 1.0 / nbodies;
    total_mass += b->mass;
    for (int k = 0; k < 3; k++) p0[k] += b->mass * b->vel[k];
  }
  const double dt = 0.01;
  double t0 = now_sec();
  for (int step = 0; step < steps; step++) {
    double lo = 1e30, hi = -1e30;
    for (int i = 0; i < nbodies; i++)
      for (int k = 0; k < 3; k++) {
        if (bodies[i].pos[k] < lo) lo = bodies[i].pos[k];
        if (bodies[i].pos[k] > hi) hi = bodies[i].pos[k];
      }
    double size = (hi - lo) * 1.0001 + 1e-9, mid[3] = {(lo + hi) / 2, (lo + hi) / 2, (lo + hi) / 2};
    cell_t *root = cell_new(size);
    for (int i = 0; i < nbodies; i++) insert(root, mid, i, 0);
    summarize(root);
    if (root->count != nbodies || fabs(root->mass - total_mass) > 1e-9)
      bench_fail("step %d: root holds %d bodies, mass %g", step, root->count, root->mass);
    for (int i = 0; i < nbodies; i++) {
      double acc[3] = {0, 0, 0};
      force(root, i, acc);
      memcpy(bodies[i].acc, acc, sizeof acc);
    }
    tree_free(root);
    for (int i = 0; i < nbodies; i++)
      for (int k = 0; k < 3; k++) {
        bodies[i].vel[k] += dt * bodies[i].acc[k];
        bodies[i].pos[k] += dt * bodies[i].vel[k];
      }
  }
  double t = now_sec() - t0;
  double p[3] = {0, 0, 0}, pabs = 0;
  for (int i = 0; i < nbodies; i++)
    for (int k = 0; k < 3; k++) {
      p[k] += bodies[i].mass * bodies[i].vel[k];
      pabs += fabs(bodies[i].mass * bodies[i].vel[k]);
    }
  double drift = sqrt((p[0] - p0[0]) * (p[0] - p0[0]) + (p[1] - p0[1]) * (p[1] - p0[1]) +
                      (p[2] - p0[2]) * (p[2] - p0[2]));
  if (!(drift < 0.05 * pabs + 1e-6)) bench_fail("momentum drifted by %g (of %g)", drift, pabs);
  free(bodies);
  printf("barnes: %d bodies, %d steps, %" PRIu64 " cells in %.3f s, momentum drift %.3g of %.3g\n", nbodies,
         steps, ncells, t, drift, pabs);
  report_result((double)nbodies * steps / t / 1e6, "Mbody-steps/s");
  return 0;
}
