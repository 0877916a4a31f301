/* topology.c: see topology.h. Weights follow NOTES.md section 4: uniform over self and the
 * round's distinct neighbours (so 1/3 on a ring, 1/2-1/2 on a matching). Every kind here is
 * vertex-transitive or a matching, which makes uniform weights symmetric and doubly
 * stochastic. */
#include "topology.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

const char *const topology_kind_names[] = {"complete",
                                           "ring",
                                           "torus",
                                           "exponential",
                                           "one_peer_exponential",
                                           "bipartite_exponential",
                                           "random_matching",
                                           NULL};

int topology_kind_from_name(const char *name) {
    for (int k = 0; topology_kind_names[k]; k++)
        if (strcmp(topology_kind_names[k], name) == 0) return k;
    return -1;
}

/* ---------------------------------------------------------------- shapes */

static int floor_log2(int x) { /* x >= 1 */
    int k = 0;
    while ((x >> (k + 1)) > 0) k++;
    return k;
}

/* Torus rows: the largest divisor of n not above sqrt(n) (the squarest grid). */
static int torus_rows(int n) {
    int best = 1;
    for (int r = 2; (long)r * r <= n; r++)
        if (n % r == 0) best = r;
    return best;
}

/* Hops of the one-peer exponential graph cycle through 2^0 .. 2^(m-1). */
static int one_peer_period(int n) {
    return floor_log2(n - 1) + 1;
}

/* Bipartite offsets 2^k - 1 for k = 1 .. K, all below n. */
static int bipartite_period(int n) {
    return floor_log2(n);
}

int topology_check(topology_kind kind, int n, ccdl_error *err) {
    const char *name = kind >= 0 && kind < TOPO_KIND_COUNT ? topology_kind_names[kind] : "?";
    if (n < 1) return ccdl_fail(err, CCDL_ERR_INPUT, "workers: expected >= 1; got %d", n);
    switch (kind) {
    case TOPO_COMPLETE:
        return 0;
    case TOPO_TORUS:
        if (torus_rows(n) < 2)
            return ccdl_fail(
                err, CCDL_ERR_INPUT,
                "topology.kind: torus needs workers = rows x cols with rows, cols >= 2; "
                "got %d",
                n);
        return 0;
    case TOPO_BIPARTITE_EXPONENTIAL:
        if (n < 2 || n % 2)
            return ccdl_fail(err, CCDL_ERR_INPUT,
                             "topology.kind: bipartite_exponential needs an even number of workers "
                             ">= 2; got %d",
                             n);
        return 0;
    case TOPO_RING:
    case TOPO_EXPONENTIAL:
    case TOPO_ONE_PEER_EXPONENTIAL:
    case TOPO_RANDOM_MATCHING:
        if (n < 2)
            return ccdl_fail(err, CCDL_ERR_INPUT, "topology.kind: %s needs workers >= 2; got %d",
                             name, n);
        return 0;
    default:
        return ccdl_fail(err, CCDL_ERR_INPUT, "topology.kind: unknown kind %d", (int)kind);
    }
}

/* Rows are gathered with duplicates (a ring of 2 lists its neighbour twice) and then
 * deduplicated, so this bounds the raw count. */
int topology_max_row(const topology *t) {
    switch (t->kind) {
    case TOPO_COMPLETE:
        return t->n;
    case TOPO_RING:
    case TOPO_ONE_PEER_EXPONENTIAL:
        return 3;
    case TOPO_TORUS:
        return 5;
    case TOPO_EXPONENTIAL:
        return 2 * (floor_log2(t->n > 1 ? t->n - 1 : 1) + 1) + 1;
    case TOPO_BIPARTITE_EXPONENTIAL:
    case TOPO_RANDOM_MATCHING:
        return 2;
    default:
        return t->n;
    }
}

/* ---------------------------------------------------------------- rows */

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Sort, drop duplicates, and weight uniformly. */
static int uniform_row(int *cols, int count, double *weights) {
    qsort(cols, (size_t)count, sizeof(int), cmp_int);
    int k = 0;
    for (int a = 0; a < count; a++)
        if (k == 0 || cols[a] != cols[k - 1]) cols[k++] = cols[a];
    for (int a = 0; a < k; a++) weights[a] = 1.0 / k;
    return k;
}

static int mod(long a, int n) {
    return (int)(((a % n) + n) % n);
}

/* Partner of i in the round's uniform random matching; i itself if it idles (n odd). */
static int random_partner(const topology *t, int64_t round, int i) {
    int n = t->n;
    int32_t *perm = xmalloc_array((size_t)n, sizeof(int32_t));
    rng_t r;
    rng_seed(&r, t->seed, RNG_TOPOLOGY, (uint64_t)round, 0);
    for (int a = 0; a < n; a++) perm[a] = a;
    rng_shuffle_int32(&r, perm, n);
    int partner = i;
    for (int a = 0; a + 1 < n; a += 2) {
        if (perm[a] == i) partner = perm[a + 1];
        if (perm[a + 1] == i) partner = perm[a];
    }
    free(perm);
    return partner;
}

int topology_row(const topology *t, int64_t round, int i, int *cols, double *weights) {
    int n = t->n, c = 0;
    cols[c++] = i;
    switch (t->kind) {
    case TOPO_COMPLETE:
        for (int j = 0; j < n; j++) cols[j] = j, weights[j] = 1.0 / n;
        return n;
    case TOPO_RING:
        cols[c++] = mod(i + 1, n);
        cols[c++] = mod(i - 1, n);
        break;
    case TOPO_TORUS: {
        int rows = torus_rows(n), width = n / rows, a = i / width, b = i % width;
        cols[c++] = mod(a + 1, rows) * width + b;
        cols[c++] = mod(a - 1, rows) * width + b;
        cols[c++] = a * width + mod(b + 1, width);
        cols[c++] = a * width + mod(b - 1, width);
        break;
    }
    case TOPO_EXPONENTIAL:
        for (long h = 1; h <= n - 1; h *= 2) {
            cols[c++] = mod(i + h, n);
            cols[c++] = mod(i - h, n);
        }
        break;
    case TOPO_ONE_PEER_EXPONENTIAL: {
        long h = 1L << (round % one_peer_period(n));
        cols[c++] = mod(i + h, n);
        cols[c++] = mod(i - h, n);
        break;
    }
    case TOPO_BIPARTITE_EXPONENTIAL: {
        long offset = (1L << (1 + round % bipartite_period(n))) - 1;
        cols[c++] = mod(i % 2 == 0 ? i + offset : i - offset, n);
        break;
    }
    case TOPO_RANDOM_MATCHING:
        cols[c++] = random_partner(t, round, i);
        break;
    default:
        break;
    }
    return uniform_row(cols, c, weights);
}

double *topology_dense(const topology *t, int64_t round) {
    int n = t->n, m = topology_max_row(t);
    double *W = xcalloc((size_t)n * (size_t)n, sizeof(double));
    int *cols = xmalloc_array((size_t)m, sizeof(int));
    double *w = xmalloc_array((size_t)m, sizeof(double));
    for (int i = 0; i < n; i++) {
        int k = topology_row(t, round, i, cols, w);
        for (int a = 0; a < k; a++) W[(size_t)i * n + cols[a]] = w[a];
    }
    free(cols);
    free(w);
    return W;
}

/* ---------------------------------------------------------------- mixing quality */

/* Eigenvalues (ascending) of the symmetric n x n matrix A (overwritten). */
static int symmetric_eigenvalues(double *A, int n, double *eig, ccdl_error *err) {
    lapack_int info = LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', n, A, n, eig);
    if (info != 0)
        return ccdl_fail(err, CCDL_ERR_RUNTIME, "LAPACKE_dsyev failed (info %d)", (int)info);
    return 0;
}

/* Random matching: W = (I + P) / 2 with P an involution, so W^T W = W and
 * E[W^T W] = (I + E[P]) / 2, E[P]_ij = Pr(j is i's partner), E[P]_ii = Pr(i idles). */
static double *random_matching_expectation(int n) {
    double *M = xcalloc((size_t)n * (size_t)n, sizeof(double));
    double partner = n % 2 ? 1.0 / n : 1.0 / (n - 1), idle = n % 2 ? 1.0 / n : 0.0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            M[(size_t)i * n + j] = ((i == j) + (i == j ? idle : partner)) / 2.0;
    return M;
}

int topology_period(const topology *t) {
    return t->kind == TOPO_ONE_PEER_EXPONENTIAL    ? one_peer_period(t->n)
           : t->kind == TOPO_BIPARTITE_EXPONENTIAL ? bipartite_period(t->n)
           : t->kind == TOPO_RANDOM_MATCHING       ? 0
                                                   : 1;
}

int topology_mixing_stats(const topology *t, topology_mixing *out, ccdl_error *err) {
    int n = t->n;
    memset(out, 0, sizeof *out);
    if (topology_check(t->kind, n, err)) return -1;
    out->period = topology_period(t);
    int *cols = xmalloc_array((size_t)topology_max_row(t), sizeof(int));
    double *w = xmalloc_array((size_t)topology_max_row(t), sizeof(double));
    for (int64_t r = 0; r < (out->period ? out->period : 1); r++)
        for (int i = 0; i < n; i++) {
            int deg = topology_row(t, r, i, cols, w) - 1;
            if (deg > out->degree) out->degree = deg;
        }
    free(cols);
    free(w);
    if (n == 1) {
        out->spectral_gap = out->p = 1.0;
        return 0;
    }
    double *eig = xmalloc_array((size_t)n, sizeof(double));
    double *M = NULL;
    int rc = 0;
    if (out->period == 1) {
        /* static: rho from W's own eigenvalues; p = 1 - (1 - rho)^2 */
        M = topology_dense(t, 0);
        rc = symmetric_eigenvalues(M, n, eig, err);
        if (rc == 0) {
            double worst = fmax(fabs(eig[n - 2]), fabs(eig[0]));
            out->spectral_gap = 1.0 - worst;
            out->p = 1.0 - worst * worst;
        }
    } else {
        /* in expectation: p = 1 - lambda_2(E[W^T W]), rho defined by p = 1 - (1 - rho)^2 */
        if (t->kind == TOPO_RANDOM_MATCHING) {
            M = random_matching_expectation(n);
        } else {
            M = xcalloc((size_t)n * (size_t)n, sizeof(double));
            for (int64_t r = 0; r < out->period; r++) {
                double *W = topology_dense(t, r);
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < n; j++) {
                        double s = 0; /* (W^T W)_ij = sum_k W_ki W_kj */
                        for (int k = 0; k < n; k++)
                            s += W[(size_t)k * n + i] * W[(size_t)k * n + j];
                        M[(size_t)i * n + j] += s / out->period;
                    }
                free(W);
            }
        }
        rc = symmetric_eigenvalues(M, n, eig, err);
        if (rc == 0) {
            out->p = 1.0 - eig[n - 2];
            out->spectral_gap = 1.0 - sqrt(fmax(0.0, 1.0 - out->p));
        }
    }
    free(M);
    free(eig);
    return rc;
}
