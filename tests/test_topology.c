/* test_topology.c: every row set is symmetric and doubly stochastic, with the degrees and
 * weights NOTES.md section 4 gives. */
#include <stdlib.h>

#include "check.h"
#include "topology.h"

/* Dense W from the rows, checking column order on the way. */
static double *dense(const topology *t, int64_t round) {
    int n = t->n, m = topology_max_row(t);
    double *W = calloc((size_t)n * n, sizeof(double));
    int cols[m];
    double w[m];
    for (int i = 0; i < n; i++) {
        int k = topology_row(t, round, i, cols, w);
        CHECK(k >= 1 && k <= m);
        for (int a = 0; a < k; a++) {
            if (a) CHECK(cols[a] > cols[a - 1]);
            CHECK(cols[a] >= 0 && cols[a] < n);
            W[i * n + cols[a]] = w[a];
        }
    }
    return W;
}

static void check_mixing(const topology *t, int64_t round) {
    int n = t->n;
    double *W = dense(t, round);
    for (int i = 0; i < n; i++) {
        double row = 0, col = 0;
        for (int j = 0; j < n; j++) {
            row += W[i * n + j], col += W[j * n + i];
            CHECK(W[i * n + j] >= 0);
            CHECK_CLOSE(W[i * n + j], W[j * n + i], 0, 0);
        }
        CHECK_CLOSE(row, 1.0, 1e-12, 0);
        CHECK_CLOSE(col, 1.0, 1e-12, 0);
    }
    free(W);
}

int main(void) {
    for (int n = 1; n <= 12; n++) {
        topology c = {TOPO_COMPLETE, n, 1};
        CHECK(topology_check(TOPO_COMPLETE, n, NULL) == 0);
        check_mixing(&c, 0);
        double *W = dense(&c, 0);
        CHECK_CLOSE(W[0], 1.0 / n, 1e-15, 0);
        free(W);
        if (n < 2) {
            ccdl_error err;
            CHECK(topology_check(TOPO_RING, n, &err) != 0);
            continue;
        }
        topology r = {TOPO_RING, n, 1};
        CHECK(topology_check(TOPO_RING, n, NULL) == 0);
        check_mixing(&r, 5);
        W = dense(&r, 0);
        if (n == 2) {
            CHECK_CLOSE(W[0], 0.5, 0, 0);
            CHECK_CLOSE(W[1], 0.5, 0, 0);
        } else {
            /* 1/3 on self and both ring neighbours, 0 elsewhere */
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) {
                    int d = abs(i - j);
                    int nb = d == 0 || d == 1 || d == n - 1;
                    CHECK_CLOSE(W[i * n + j], nb ? 1.0 / 3.0 : 0.0, 1e-15, 0);
                }
        }
        free(W);
    }
    return check_exit();
}
