/* consensus_bench.c: see consensus_bench.h. */
#include "consensus_bench.h"

#include <hdf5.h>
#include <hdf5_hl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collective.h"
#include "consensus.h"
#include "gossip.h"
#include "rng.h"

/* Below this fraction of Xi_0 float rounding noise takes over (vectors are ~N(0, 1)). */
#define BENCH_FLOOR 1e-6

typedef struct {
    int kind;
    topology_mixing mix;
    double *xi;                       /* [rounds + 1] */
    double *theta;                    /* [rounds + 1], NaN at round 0 */
    int rounds;                       /* rounds run */
    int to_target[BENCH_MAX_TARGETS]; /* rounds to Xi <= target * Xi_0 (-1: not reached) */
    double contraction; /* measured per-round factor of Xi^2 (NaN when not measurable) */
} kind_result;

/* The settled contraction of Xi^2: over the last third of the rounds above the float
 * floor, where the slowest mode dominates. NaN when fewer than 3 such rounds exist. */
static double settled_contraction(const double *xi, int rounds) {
    int end = 0;
    while (end < rounds && xi[end + 1] >= BENCH_FLOOR * xi[0]) end++;
    int start = end - (end / 3 > 3 ? end / 3 : 3);
    if (start < 0 || end - start < 3 || xi[end] <= 0) return NAN;
    return pow(xi[end] * xi[end] / (xi[start] * xi[start]), 1.0 / (end - start));
}

static void run_kind(const consensus_bench_options *opt, const layout *l, MPI_Comm comm,
                     kind_result *res) {
    topology t = {(topology_kind)res->kind, opt->n, opt->seed};
    float *x[l->per_rank];
    for (int w = 0; w < l->per_rank; w++) {
        x[w] = xalloc_floats(opt->d);
        rng_t r;
        rng_seed(&r, opt->seed, RNG_TEST, (uint64_t)(l->first + w), 0);
        for (size_t k = 0; k < opt->d; k++) x[w][k] = (float)rng_normal(&r);
    }
    gossip *g = gossip_create(l, &t, opt->d, comm);
    consensus c;
    consensus_init(&c, l, comm, opt->d);
    double theta2[l->per_rank];
    double smallest = opt->targets[0];
    for (int k = 1; k < opt->n_targets; k++) smallest = fmin(smallest, opt->targets[k]);
    res->xi = xmalloc_array((size_t)(opt->max_rounds + 1), sizeof(double));
    res->theta = xmalloc_array((size_t)(opt->max_rounds + 1), sizeof(double));
    res->xi[0] = consensus_distance_exact(&c, x);
    res->theta[0] = NAN;
    int r = 0;
    /* run until every target and the float floor are reached, so the contraction can be
     * measured where the slowest mode dominates */
    while (r < opt->max_rounds && res->xi[r] > fmin(smallest, BENCH_FLOOR) * res->xi[0]) {
        gossip_round(g, x, r, theta2);
        r++;
        res->theta[r] = consensus_distance_estimate(&c, theta2);
        res->xi[r] = consensus_distance_exact(&c, x);
    }
    res->rounds = r;
    for (int k = 0; k < opt->n_targets; k++) {
        res->to_target[k] = -1;
        for (int q = 0; q <= r; q++)
            if (res->xi[q] <= opt->targets[k] * res->xi[0]) {
                res->to_target[k] = q;
                break;
            }
    }
    res->contraction = res->mix.period == 1 ? settled_contraction(res->xi, r) : NAN;
    for (int w = 0; w < l->per_rank; w++) free(x[w]);
    gossip_destroy(&g);
    consensus_free(&c);
}

/* ---------------------------------------------------------------- output */

static void print_table(const consensus_bench_options *opt, const kind_result *res) {
    printf("consensus averaging: n = %d, d = %zu, seed %llu\n", opt->n, opt->d,
           (unsigned long long)opt->seed);
    printf("%-22s %6s %10s", "kind", "degree", "p");
    for (int k = 0; k < opt->n_targets; k++) printf("  rounds<=%-7g", opt->targets[k]);
    printf(" %12s %12s %8s\n", "contraction", "1-p", "diff");
    for (int a = 0; a < opt->n_kinds; a++) {
        const kind_result *k = &res[a];
        printf("%-22s %6d %10.6f", topology_kind_names[k->kind], k->mix.degree, k->mix.p);
        for (int q = 0; q < opt->n_targets; q++) printf("  %15d", k->to_target[q]);
        if (isnan(k->contraction))
            printf(" %12s %12.8f %8s\n", "-", 1 - k->mix.p, "-");
        else
            printf(" %12.8f %12.8f %7.3f%%\n", k->contraction, 1 - k->mix.p,
                   100 * (k->contraction - (1 - k->mix.p)) / (1 - k->mix.p));
    }
}

static int write_h5(const consensus_bench_options *opt, const kind_result *res, ccdl_error *err) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fcreate(opt->out, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot create", opt->out);
    int ok = 1, n = opt->n;
    long long d = (long long)opt->d, seed = (long long)opt->seed;
    hsize_t nt = (hsize_t)opt->n_targets;
    ok &= H5LTset_attribute_int(f, "/", "n", &n, 1) >= 0;
    ok &= H5LTset_attribute_long_long(f, "/", "d", &d, 1) >= 0;
    ok &= H5LTset_attribute_long_long(f, "/", "seed", &seed, 1) >= 0;
    ok &= H5LTmake_dataset_double(f, "/targets", 1, &nt, opt->targets) >= 0;
    for (int a = 0; a < opt->n_kinds && ok; a++) {
        const kind_result *k = &res[a];
        char g[64];
        snprintf(g, sizeof g, "/%s", topology_kind_names[k->kind]);
        hid_t grp = H5Gcreate2(f, g, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        ok &= grp >= 0;
        hsize_t len = (hsize_t)k->rounds + 1;
        ok &= H5LTmake_dataset_double(grp, "xi", 1, &len, k->xi) >= 0;
        ok &= H5LTmake_dataset_double(grp, "theta", 1, &len, k->theta) >= 0;
        ok &= H5LTmake_dataset_int(grp, "rounds_to_target", 1, &nt, k->to_target) >= 0;
        ok &= H5LTset_attribute_int(grp, ".", "degree", &k->mix.degree, 1) >= 0;
        ok &= H5LTset_attribute_int(grp, ".", "period", &k->mix.period, 1) >= 0;
        ok &= H5LTset_attribute_double(grp, ".", "p", &k->mix.p, 1) >= 0;
        ok &= H5LTset_attribute_double(grp, ".", "spectral_gap", &k->mix.spectral_gap, 1) >= 0;
        ok &= H5LTset_attribute_double(grp, ".", "contraction", &k->contraction, 1) >= 0;
        if (grp >= 0) H5Gclose(grp);
    }
    if (H5Fclose(f) < 0) ok = 0;
    return ok ? 0 : ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: cannot write", opt->out);
}

/* ---------------------------------------------------------------- entry */

int consensus_bench_run(const consensus_bench_options *opt, MPI_Comm comm, ccdl_error *err) {
    int ranks, rank;
    MPI_Comm_size(comm, &ranks);
    MPI_Comm_rank(comm, &rank);
    layout l;
    if (layout_init(&l, opt->n, ranks, rank, err)) return -1;
    /* each worker's vector, the gossip's copy and its receive buffer, on every rank here */
    int node_ranks = ranks_on_node(comm);
    double need = (double)opt->d * sizeof(float) * 3 * l.per_rank * node_ranks,
           have = (double)memory_limit_bytes();
    if (need > have)
        return ccdl_fail(
            err, CCDL_ERR_INPUT,
            "--n %d x --d %zu needs %.1f GiB on this node; its memory limit is %.1f GiB", opt->n,
            opt->d, need / (1 << 30), have / (1 << 30));
    kind_result *res = xcalloc((size_t)opt->n_kinds, sizeof *res);
    int rc = 0;
    for (int a = 0; a < opt->n_kinds && rc == 0; a++) {
        res[a].kind = opt->kinds[a];
        topology t = {(topology_kind)opt->kinds[a], opt->n, opt->seed};
        rc = topology_mixing_stats(&t, &res[a].mix, err);
    }
    for (int a = 0; a < opt->n_kinds && rc == 0; a++) run_kind(opt, &l, comm, &res[a]);
    if (rc == 0 && rank == 0) {
        print_table(opt, res);
        if (opt->out) rc = write_h5(opt, res, err);
    }
    int any;
    MPI_Allreduce(&rc, &any, 1, MPI_INT, MPI_MIN, comm);
    for (int a = 0; a < opt->n_kinds; a++) free(res[a].xi), free(res[a].theta);
    free(res);
    return any;
}
