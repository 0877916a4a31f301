/* reduce.c: see reduce.h. */
#include "reduce.h"

#include <stdlib.h>

#include "util.h"

/* Chunks let rank r+1 start adding while rank r still sums the rest (pipelining). */
#define REDUCE_CHUNK ((size_t)1 << 16)

static void add_local_block(float *const *local, int count, size_t lo, size_t hi, double *acc,
                            int start_fresh) {
    for (int w = 0; w < count; w++) {
        const float *x = local[w];
        if (start_fresh && w == 0)
            for (size_t k = lo; k < hi; k++) acc[k] = (double)x[k];
        else
            for (size_t k = lo; k < hi; k++) acc[k] += (double)x[k];
    }
}

void reduce_mean_vectors(const layout *l, MPI_Comm comm, float *const *local, size_t d, float *mean,
                         double *scratch) {
    int last = l->ranks - 1;
    for (size_t lo = 0; lo < d; lo += REDUCE_CHUNK) {
        size_t hi = lo + REDUCE_CHUNK < d ? lo + REDUCE_CHUNK : d;
        int count = (int)(hi - lo);
        if (l->rank > 0)
            MPI_Recv(scratch + lo, count, MPI_DOUBLE, l->rank - 1, 0, comm, MPI_STATUS_IGNORE);
        add_local_block(local, l->per_rank, lo, hi, scratch, l->rank == 0);
        if (l->rank < last) MPI_Send(scratch + lo, count, MPI_DOUBLE, l->rank + 1, 0, comm);
    }
    if (l->rank == last)
        for (size_t k = 0; k < d; k++) mean[k] = (float)(scratch[k] / l->n);
    /* Bcast moves bits unchanged: every rank ends with identical means. */
    for (size_t lo = 0; lo < d; lo += (size_t)1 << 28) {
        size_t hi = lo + ((size_t)1 << 28) < d ? lo + ((size_t)1 << 28) : d;
        MPI_Bcast(mean + lo, (int)(hi - lo), MPI_FLOAT, last, comm);
    }
}

void reduce_gather_scalars(const layout *l, MPI_Comm comm, const double *local, double *all) {
    MPI_Allgather(local, l->per_rank, MPI_DOUBLE, all, l->per_rank, MPI_DOUBLE, comm);
}

double sum_in_order(const double *v, int count) {
    double s = 0;
    for (int i = 0; i < count; i++) s += v[i];
    return s;
}

double reduce_sum_scalars(const layout *l, MPI_Comm comm, const double *local) {
    double *all = xmalloc_array((size_t)l->n, sizeof(double));
    reduce_gather_scalars(l, comm, local, all);
    double s = sum_in_order(all, l->n);
    free(all);
    return s;
}
