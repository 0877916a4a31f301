/* traffic.c: see traffic.h. */
#include "traffic.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Neighbours of worker i in W^t: the other workers with a non-zero weight in its row. */
static int row_degree(const topology *t, int64_t round, int i, int *cols, double *weights) {
    int k = topology_row(t, round, i, cols, weights), deg = 0;
    for (int a = 0; a < k; a++) deg += cols[a] != i && weights[a] != 0;
    return deg;
}

void traffic_model_init(traffic_model *m, const topology *t) {
    memset(m, 0, sizeof *m);
    const int n = t->n;
    /* complete and random matching in closed form: rows of n entries, and a fresh matching
     * every round, would cost O(n^2) per round; every matching has the same degrees (one
     * partner each, one worker idle when n is odd) */
    if (t->kind == TOPO_COMPLETE || t->kind == TOPO_RANDOM_MATCHING) {
        m->n = n;
        m->period = 1;
        m->sum = xmalloc_array(1, sizeof(double));
        m->most = xmalloc_array(1, sizeof(int));
        int complete = t->kind == TOPO_COMPLETE;
        m->sum[0] = complete ? (double)n * (n - 1) : (double)(n - n % 2);
        m->most[0] = complete ? n - 1 : n >= 2;
        return;
    }
    m->n = n;
    m->period = topology_period(t); /* 1, or log2(n)-ish for the time-varying kinds */
    m->sum = xmalloc_array((size_t)m->period, sizeof(double));
    m->most = xmalloc_array((size_t)m->period, sizeof(int));
    int max_row = topology_max_row(t);
    int *cols = xmalloc_array((size_t)max_row, sizeof(int));
    double *weights = xmalloc_array((size_t)max_row, sizeof(double));
    for (int r = 0; r < m->period; r++) {
        m->sum[r] = 0;
        m->most[r] = 0;
        for (int i = 0; i < n; i++) {
            int deg = row_degree(t, r, i, cols, weights);
            m->sum[r] += deg;
            if (deg > m->most[r]) m->most[r] = deg;
        }
    }
    free(cols);
    free(weights);
}

void traffic_model_free(traffic_model *m) {
    free(m->sum);
    free(m->most);
    memset(m, 0, sizeof *m);
}

void traffic_gossip_round(const traffic_model *m, int64_t round, size_t d, int vectors,
                          traffic *acc) {
    const int r = (int)(round % m->period);
    const double mean = m->sum[r] / m->n, bytes = (double)d * sizeof(float) * vectors;
    acc->messages_mean += mean * vectors;
    acc->messages_max += (double)m->most[r] * vectors;
    acc->bytes_mean += mean * bytes;
    acc->bytes_max += m->most[r] * bytes;
}

void traffic_allreduce(int n, size_t count, size_t size, traffic *acc) {
    if (n < 2) return;
    /* ring: n - 1 steps of reduce-scatter and n - 1 of all-gather, each one message of a
     * 1/n share; every worker sends the same */
    double messages = 2.0 * (n - 1), bytes = 2.0 * (n - 1) / n * (double)count * (double)size;
    acc->messages_mean += messages;
    acc->messages_max += messages;
    acc->bytes_mean += bytes;
    acc->bytes_max += bytes;
}

void traffic_reduce_scalars(int n, size_t count, traffic *acc) {
    if (n < 2) return;
    /* recursive doubling: ceil(log2 n) exchanges of the whole (small) vector */
    int steps = 0;
    while ((1L << steps) < n) steps++;
    double bytes = (double)steps * (double)count * sizeof(double);
    acc->messages_mean += steps;
    acc->messages_max += steps;
    acc->bytes_mean += bytes;
    acc->bytes_max += bytes;
}

void traffic_add(traffic *acc, const traffic *t) {
    acc->bytes_mean += t->bytes_mean;
    acc->bytes_max += t->bytes_max;
    acc->messages_mean += t->messages_mean;
    acc->messages_max += t->messages_max;
}
