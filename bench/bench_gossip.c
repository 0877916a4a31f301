/* bench_gossip.c: figures for `make bench` (printed, never asserted).
 *
 * - gossip round time for a d-float model over n workers on this run's ranks (ring);
 * - this machine's memory-copy bandwidth (memcpy of a large buffer);
 * - the round's time against the memory traffic it must move at that bandwidth: each worker
 *   reads its row's vectors once and writes its output once (theta is fused into that pass);
 *   all ranks copy at the same time when the bandwidth is measured, since they share the
 *   memory bus the round runs on;
 * - Theta's cost (one scalar reduction) as a fraction of a round;
 * - exact Xi (one vector reduction) per round for comparison. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consensus.h"
#include "gossip.h"
#include "reduce.h"
#include "rng.h"

/* Bytes per second one rank gets from memcpy (read + write counted) while every rank
 * copies at the same time. */
static double memcpy_bandwidth(size_t bytes, MPI_Comm comm) {
    char *a = malloc(bytes), *b = malloc(bytes);
    memset(a, 1, bytes);
    memset(b, 2, bytes);
    double best = 1e30;
    for (int rep = 0; rep < 10; rep++) {
        MPI_Barrier(comm);
        double t0 = wall_seconds();
        memcpy(b, a, bytes);
        double t = wall_seconds() - t0;
        if (t < best) best = t;
    }
    free(a);
    free(b);
    return 2.0 * (double)bytes / best;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int n = argc > 1 ? atoi(argv[1]) : 16;
    size_t d = argc > 2 ? (size_t)atol(argv[2]) : 270000;
    int reps = argc > 3 ? atoi(argv[3]) : 50;
    int ranks, rank;
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    layout l;
    ccdl_error err;
    if (layout_init(&l, n, ranks, rank, &err)) ccdl_die("%s", err.text);
    topology t = {TOPO_RING, n, 1};
    float *x[l.per_rank];
    for (int w = 0; w < l.per_rank; w++) {
        x[w] = xalloc_floats(d);
        rng_t r;
        rng_seed(&r, 1, RNG_TEST, (uint64_t)(l.first + w), 0);
        for (size_t k = 0; k < d; k++) x[w][k] = (float)rng_uniform(&r);
    }
    gossip *g = gossip_create(&l, &t, d, MPI_COMM_WORLD);
    consensus c;
    consensus_init(&c, &l, MPI_COMM_WORLD, d);
    double theta2[l.per_rank];
    gossip_round(g, x, 0, theta2); /* warm-up: first touch of buffers */
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = wall_seconds();
    for (int i = 0; i < reps; i++) gossip_round(g, x, i + 1, theta2);
    MPI_Barrier(MPI_COMM_WORLD);
    double round_s = (wall_seconds() - t0) / reps;
    t0 = wall_seconds();
    for (int i = 0; i < reps * 20; i++) consensus_distance_estimate(&c, theta2);
    double theta_s = (wall_seconds() - t0) / (reps * 20);
    t0 = wall_seconds();
    for (int i = 0; i < reps / 5 + 1; i++) consensus_distance_exact(&c, x);
    double xi_s = (wall_seconds() - t0) / (reps / 5 + 1);
    double bw = memcpy_bandwidth((size_t)256 << 20, MPI_COMM_WORLD);
    /* per worker per round: its row's vectors read once, its output written once */
    int cols[topology_max_row(&t)];
    double wts[topology_max_row(&t)];
    double streams = topology_row(&t, 0, 0, cols, wts) + 1;
    double bytes = (double)l.per_rank * (double)d * sizeof(float) * streams;
    if (rank == 0) {
        printf("gossip ring n=%d d=%zu ranks=%d: round %.3f ms (%d workers per rank)\n", n, d,
               ranks, round_s * 1e3, l.per_rank);
        printf("  memory-copy bandwidth %.2f GB/s per rank (all %d ranks copying); a round moves "
               "%.1f MB per rank -> %.3f ms at that bandwidth; round / that = %.2fx\n",
               bw / 1e9, ranks, bytes / 1e6, bytes / bw * 1e3, round_s / (bytes / bw));
        printf("  Theta (one scalar reduction) %.4f ms = %.2f%% of a round; exact Xi %.3f ms = "
               "%.0f%% of a round\n",
               theta_s * 1e3, 100 * theta_s / round_s, xi_s * 1e3, 100 * xi_s / round_s);
    }
    for (int w = 0; w < l.per_rank; w++) free(x[w]);
    gossip_destroy(&g);
    consensus_free(&c);
    MPI_Finalize();
    return 0;
}
