/* consensus.h: the consensus distance and the exact average (NOTES.md section 2).
 *
 *   xbar = (1/n) sum_i x_i,   Xi = sqrt((1/n) sum_i ||xbar - x_i||^2)
 *   Theta = sqrt((1/n) sum_i theta_i^2), theta_i^2 = ||x_i - x_i'||^2 from a gossip round
 *
 * Every sum over workers uses the canonical order of reduce.h, so Xi, Theta and xbar are
 * the same bits on every rank and for every rank layout. */
#ifndef CCDL_CONSENSUS_H
#define CCDL_CONSENSUS_H

#include <mpi.h>
#include <stddef.h>

#include "layout.h"

typedef struct {
    layout lay;
    MPI_Comm comm;
    size_t d;
    float *mean;     /* [d] xbar of the last call */
    double *scratch; /* [d] */
} consensus;

void consensus_init(consensus *c, const layout *l, MPI_Comm comm, size_t d);
void consensus_free(consensus *c);

/* Exact Xi of the local vectors x[0..per_rank); leaves xbar in c->mean. */
double consensus_distance_exact(consensus *c, float *const *x);

/* Theta from each local worker's theta_i^2 of one gossip round. */
double consensus_distance_estimate(consensus *c, const double *theta2);

/* All-Reduce: every worker's vector becomes xbar (identical bits everywhere). */
void consensus_average(consensus *c, float *const *x);

#endif
