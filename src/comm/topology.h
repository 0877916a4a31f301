/* topology.h: the mixing matrix W^t of a topology, as sparse rows (NOTES.md sections 3-4).
 *
 * A topology is a pure function of (kind, n, round, seed): every rank computes the rows it
 * needs without communication, and random or time-varying schedules agree everywhere.
 * Rows list columns in ascending order with their weights; every W^t is symmetric and
 * doubly stochastic. Mixing quality (spectral gap, mixing rate p) is computed here with
 * LAPACKE. No MPI in here. */
#ifndef CCDL_TOPOLOGY_H
#define CCDL_TOPOLOGY_H

#include <stdint.h>

#include "util.h"

typedef enum {
    TOPO_COMPLETE = 0,
    TOPO_RING,
    TOPO_TORUS,
    TOPO_EXPONENTIAL,           /* static: neighbours i +- 2^k */
    TOPO_ONE_PEER_EXPONENTIAL,  /* time-varying: round r uses hop 2^(r mod m) only */
    TOPO_BIPARTITE_EXPONENTIAL, /* time-varying: even i matched with odd i + 2^k - 1 */
    TOPO_RANDOM_MATCHING,       /* a fresh uniform perfect matching every round */
    TOPO_KIND_COUNT
} topology_kind;

/* Names as used in specs, indexed by topology_kind, NULL-terminated. */
extern const char *const topology_kind_names[];

typedef struct {
    topology_kind kind;
    int n;
    uint64_t seed;
} topology;

typedef struct {
    int degree;          /* most neighbours (excluding self) any worker has in a round */
    int period;          /* rounds after which W^t repeats (0: random, never) */
    double spectral_gap; /* rho = 1 - max(|l2|, |ln|) of W; in expectation: 1 - sqrt(1 - p) */
    double p;            /* mixing rate: E||XW - Xbar||^2 <= (1 - p) ||X - Xbar||^2 */
} topology_mixing;

/* Check that the kind supports n workers; -1 + err (CCDL_ERR_INPUT, naming topology.kind)
 * if not. */
int topology_check(topology_kind kind, int n, ccdl_error *err);

/* Index of a kind's name, or -1. */
int topology_kind_from_name(const char *name);

/* Capacity a row buffer needs (>= the entries of any row of any round, diagonal included). */
int topology_max_row(const topology *t);

/* Row i of W at the given gossip round: writes cols[0..k) ascending and weights[0..k);
 * returns k. cols and weights hold at least topology_max_row(t) entries. */
int topology_row(const topology *t, int64_t round, int i, int *cols, double *weights);

/* Rounds after which W^t repeats: 1 for static kinds, 0 for random matching (never). */
int topology_period(const topology *t);

/* Dense W at a round, n x n row-major (caller frees). */
double *topology_dense(const topology *t, int64_t round);

/* Degree, spectral gap and mixing rate (NOTES.md section 3): from the eigenvalues of W for
 * static kinds; from lambda_2 of E[W^T W] over one period for time-varying kinds and over
 * the matching distribution for random matching. -1 + err if LAPACKE fails. */
int topology_mixing_stats(const topology *t, topology_mixing *out, ccdl_error *err);

#endif
