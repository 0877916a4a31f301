/* reduce.h: sums over workers in one canonical order, whatever the rank layout.
 *
 * MPI_Allreduce on floats promises neither a summation order nor equal bits on all ranks.
 * ccdl promises bitwise-identical traces for any layout, so every sum over workers is
 * defined as the left-to-right sum over worker indices 0..n-1 (in double), and MPI only
 * carries the partial sums along that order: rank 0 sums its block, passes the partial sum
 * to rank 1, ..., the last rank finishes and broadcasts the result. */
#ifndef CCDL_REDUCE_H
#define CCDL_REDUCE_H

#include <mpi.h>
#include <stddef.h>

#include "layout.h"

/* mean[k] = (float)((sum_{i=0..n-1} x_i[k]) / n), summed in worker order in double;
 * local[w] is the vector of local worker w (w = 0..per_rank-1). Every rank gets the same
 * bits. scratch holds d doubles. */
void reduce_mean_vectors(const layout *l, MPI_Comm comm, float *const *local, size_t d, float *mean,
                         double *scratch);

/* all[i] for i = 0..n-1 from each rank's local[0..per_rank); same array on every rank. */
void reduce_gather_scalars(const layout *l, MPI_Comm comm, const double *local, double *all);

/* Left-to-right sum of v[0..count). */
double sum_in_order(const double *v, int count);

/* sum_in_order of the gathered per-worker values: the canonical sum over workers. */
double reduce_sum_scalars(const layout *l, MPI_Comm comm, const double *local);

#endif
