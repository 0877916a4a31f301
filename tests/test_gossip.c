/* test_gossip.c (MPI; run by mpi_gossip.sh on 1, 2 and 4 ranks): gossip rounds, Xi, Theta and
 * the exact average against naive double-precision loops over all workers, and a printed
 * digest of every result bit that must be identical whatever the rank count. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "consensus.h"
#include "gossip.h"
#include "reduce.h"
#include "rng.h"

enum { N = 8 };

static void fill(float *x, size_t d, int worker) {
    rng_t r;
    rng_seed(&r, 99, RNG_TEST, (uint64_t)worker, 0);
    for (size_t k = 0; k < d; k++) x[k] = (float)rng_normal(&r) + (float)worker;
}

static uint64_t digest(const float *x, size_t d) {
    uint64_t h = 1469598103934665603ULL;
    const unsigned char *b = (const unsigned char *)x;
    for (size_t i = 0; i < d * sizeof(float); i++) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* Print every worker's digest in worker order (rank 0), plus a label. */
static void print_digests(const layout *l, float *const *x, size_t d, const char *label) {
    uint64_t local[l->per_rank], all[N];
    for (int w = 0; w < l->per_rank; w++) local[w] = digest(x[w], d);
    MPI_Gather(local, l->per_rank, MPI_UINT64_T, all, l->per_rank, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (l->rank == 0) {
        printf("%s", label);
        for (int i = 0; i < N; i++) printf(" %016llx", (unsigned long long)all[i]);
        printf("\n");
    }
}

/* Naive: all n vectors on every rank (regenerated), one round of W in double. */
static void naive_round(const topology *t, float **all, size_t d, int64_t round, double **out) {
    int m = topology_max_row(t), cols[N];
    double w[N];
    (void)m;
    for (int i = 0; i < N; i++) {
        int k = topology_row(t, round, i, cols, w);
        for (size_t e = 0; e < d; e++) {
            double s = 0;
            for (int a = 0; a < k; a++) s += w[a] * (double)all[cols[a]][e];
            out[i][e] = s;
        }
    }
}

static double naive_xi(float **all, size_t d) {
    double total = 0;
    for (size_t e = 0; e < d; e++) {
        double mean = 0;
        for (int i = 0; i < N; i++) mean += all[i][e];
        mean /= N;
        for (int i = 0; i < N; i++) total += (all[i][e] - mean) * (all[i][e] - mean);
    }
    return sqrt(total / N);
}

static void run_case(topology_kind kind, size_t d, const layout *l) {
    topology t = {kind, N, 1};
    float *all[N];
    double *want[N];
    for (int i = 0; i < N; i++) {
        all[i] = malloc(d * sizeof(float));
        want[i] = malloc(d * sizeof(double));
        fill(all[i], d, i);
    }
    float *x[l->per_rank];
    for (int w = 0; w < l->per_rank; w++) {
        x[w] = xalloc_floats(d);
        memcpy(x[w], all[l->first + w], d * sizeof(float));
    }
    gossip *g = gossip_create(l, &t, d, MPI_COMM_WORLD);
    consensus c;
    consensus_init(&c, l, MPI_COMM_WORLD, d);

    /* Xi before mixing against the naive loop */
    double xi = consensus_distance_exact(&c, x), xi0 = xi;
    CHECK_CLOSE(xi, naive_xi(all, d), 0, 1e-6);

    double theta2[l->per_rank];
    char label[64];
    for (int64_t round = 0; round < 3; round++) {
        naive_round(&t, all, d, round, want);
        gossip_round(g, x, round, theta2);
        /* all[] still holds every worker's input to this round */
        for (int w = 0; w < l->per_rank; w++) {
            int i = l->first + w;
            double t2 = 0;
            int ok = 1;
            for (size_t e = 0; e < d; e++) {
                ok &= fabs(x[w][e] - want[i][e]) <= 1e-5 * (1 + fabs(want[i][e]));
                double diff = (double)all[i][e] - (double)x[w][e];
                t2 += diff * diff;
            }
            CHECK_MSG(ok, "kind %d round %lld worker %d differs from naive W x", kind,
                      (long long)round, i);
            CHECK_CLOSE(theta2[w], t2, 0, 1e-12);
        }
        /* the actual new vectors of every worker become the naive input of the next round */
        for (int i = 0; i < N; i++) {
            int owner = layout_rank_of(l, i);
            if (owner == l->rank) memcpy(all[i], x[i - l->first], d * sizeof(float));
            MPI_Bcast(all[i], (int)d, MPI_FLOAT, owner, MPI_COMM_WORLD);
        }
        double theta = consensus_distance_estimate(&c, theta2);
        double xi_now = consensus_distance_exact(&c, x);
        snprintf(label, sizeof label, "kind %d d %zu round %lld", kind, d, (long long)round);
        print_digests(l, x, d, label);
        if (l->rank == 0) printf("  xi %a theta %a\n", xi_now, theta);
        if (kind == TOPO_COMPLETE)
            CHECK(xi_now < 1e-5 * xi0); /* complete mixes in one round */
        else if (kind == TOPO_RING)
            CHECK(xi_now < xi && xi_now > 0); /* ring contracts but keeps some */
        else
            CHECK(xi_now <= xi * (1 + 1e-6)); /* doubly stochastic mixing never raises Xi */
        xi = xi_now;
    }

    /* exact average: identical bits on every worker, Xi exactly 0, the naive mean */
    consensus_average(&c, x);
    int same = 1;
    for (int w = 0; w < l->per_rank; w++) same &= memcmp(x[w], x[0], d * sizeof(float)) == 0;
    CHECK(same);
    CHECK(consensus_distance_exact(&c, x) == 0.0);
    uint64_t h = digest(x[0], d), h0 = h;
    MPI_Bcast(&h0, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    CHECK(h == h0); /* every rank holds the same bits */
    for (size_t e = 0; e < d; e += 97) {
        double mean = 0;
        for (int i = 0; i < N; i++) mean += all[i][e];
        CHECK_CLOSE(x[0][e], mean / N, 1e-6, 1e-6);
    }
    print_digests(l, x, d, "average");

    for (int w = 0; w < l->per_rank; w++) free(x[w]);
    gossip_destroy(&g);
    consensus_free(&c);
    for (int i = 0; i < N; i++) free(all[i]), free(want[i]);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int ranks, rank;
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    layout l;
    ccdl_error err;
    CHECK(layout_init(&l, N, ranks, rank, &err) == 0);
    CHECK(layout_init(&l, N, 3, 0, &err) != 0 && strstr(err.text, "workers") != NULL);
    layout_init(&l, N, ranks, rank, &err);
    run_case(TOPO_RING, 5003, &l); /* odd length: the kernels' tails */
    for (int kind = 0; kind < TOPO_KIND_COUNT; kind++) run_case((topology_kind)kind, 1000, &l);
    run_case(TOPO_COMPLETE, 777, &l);

    /* canonical scalar sums: the same on every rank and for every layout */
    double local[l.per_rank];
    for (int w = 0; w < l.per_rank; w++) local[w] = 1.0 / (3.0 + l.first + w);
    double s = reduce_sum_scalars(&l, MPI_COMM_WORLD, local), want = 0;
    for (int i = 0; i < N; i++) want += 1.0 / (3.0 + i);
    CHECK(s == want); /* same left-to-right order as this loop: equal bits */

    int failed = check_failures, any;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0) printf("sum %a\n", s);
    int rc = check_exit();
    MPI_Finalize();
    return any ? 1 : rc;
}
