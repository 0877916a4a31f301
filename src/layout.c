/* layout.c: see layout.h. */
#include "layout.h"

int layout_init(layout *l, int n, int ranks, int rank, ccdl_error *err) {
    if (n < 1) return ccdl_fail(err, CCDL_ERR_INPUT, "workers: expected >= 1; got %d", n);
    if (ranks < 1 || n % ranks != 0)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "workers: %d workers cannot be split evenly over %d MPI ranks (use a "
                         "rank count that divides workers)",
                         n, ranks);
    l->n = n;
    l->ranks = ranks;
    l->rank = rank;
    l->per_rank = n / ranks;
    l->first = rank * l->per_rank;
    return 0;
}
