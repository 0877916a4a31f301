/* consensus.c: see consensus.h. */
#include "consensus.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reduce.h"
#include "util.h"

void consensus_init(consensus *c, const layout *l, MPI_Comm comm, size_t d) {
    c->lay = *l;
    c->comm = comm;
    c->d = d;
    c->mean = xalloc_floats(d);
    c->scratch = xmalloc_array((d ? d : 1), sizeof(double));
}

void consensus_free(consensus *c) {
    free(c->mean);
    free(c->scratch);
    c->mean = NULL;
    c->scratch = NULL;
}

double consensus_distance_exact(consensus *c, float *const *x) {
    reduce_mean_vectors(&c->lay, c->comm, x, c->d, c->mean, c->scratch);
    double local[c->lay.per_rank];
    for (int w = 0; w < c->lay.per_rank; w++) {
        double s = 0;
        for (size_t k = 0; k < c->d; k++) {
            double diff = (double)c->mean[k] - (double)x[w][k];
            s += diff * diff;
        }
        local[w] = s;
    }
    return sqrt(reduce_sum_scalars(&c->lay, c->comm, local) / c->lay.n);
}

double consensus_distance_estimate(consensus *c, const double *theta2) {
    return sqrt(reduce_sum_scalars(&c->lay, c->comm, theta2) / c->lay.n);
}

void consensus_average(consensus *c, float *const *x) {
    reduce_mean_vectors(&c->lay, c->comm, x, c->d, c->mean, c->scratch);
    for (int w = 0; w < c->lay.per_rank; w++) memcpy(x[w], c->mean, c->d * sizeof(float));
}
