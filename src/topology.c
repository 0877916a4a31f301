/* topology.c: see topology.h. Issue 3 adds the time-varying and random kinds and the
 * spectral quantities; this file holds the static ones. */
#include "topology.h"

#include <stdlib.h>

const char *const topology_kind_names[] = {"complete", "ring", NULL};

int topology_check(topology_kind kind, int n, ccdl_error *err) {
    if (n < 1) return ccdl_fail(err, CCDL_ERR_INPUT, "workers: expected >= 1; got %d", n);
    if (kind == TOPO_RING && n < 2)
        return ccdl_fail(err, CCDL_ERR_INPUT, "topology.kind: ring needs workers >= 2; got %d", n);
    return 0;
}

int topology_max_row(const topology *t) {
    switch (t->kind) {
    case TOPO_COMPLETE:
        return t->n;
    case TOPO_RING:
        return t->n < 3 ? t->n : 3;
    default:
        return t->n;
    }
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int topology_row(const topology *t, int64_t round, int i, int *cols, double *weights) {
    (void)round;
    int n = t->n;
    switch (t->kind) {
    case TOPO_COMPLETE:
        for (int j = 0; j < n; j++) cols[j] = j, weights[j] = 1.0 / n;
        return n;
    case TOPO_RING: {
        if (n == 2) {
            cols[0] = 0, cols[1] = 1;
            weights[0] = weights[1] = 0.5;
            return 2;
        }
        cols[0] = (i + n - 1) % n, cols[1] = i, cols[2] = (i + 1) % n;
        qsort(cols, 3, sizeof(int), cmp_int);
        for (int k = 0; k < 3; k++) weights[k] = 1.0 / 3.0;
        return 3;
    }
    default:
        return 0;
    }
}
