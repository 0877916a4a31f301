/* traffic.c: see traffic.h. */
#include "traffic.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Neighbours of worker i in W^t: the other workers with a non-zero weight in its row. */
static int row_degree(traffic_model *m, int64_t round, int i) {
    int k = topology_row(&m->topo, round, i, m->cols, m->weights), deg = 0;
    for (int a = 0; a < k; a++) deg += m->cols[a] != i && m->weights[a] != 0;
    return deg;
}

void traffic_model_init(traffic_model *m, const topology *t) {
    memset(m, 0, sizeof *m);
    m->topo = *t;
    m->n = t->n;
    int max_row = topology_max_row(t);
    m->cols = xmalloc_array((size_t)max_row, sizeof(int));
    m->weights = xmalloc_array((size_t)max_row, sizeof(double));
    int period = m->period = topology_period(t); /* at most log2(n) + 1 rounds */
    if (period) {
        m->degree = xmalloc_array((size_t)period * (size_t)m->n, sizeof(int));
        for (int r = 0; r < period; r++)
            for (int i = 0; i < m->n; i++) m->degree[(size_t)r * m->n + i] = row_degree(m, r, i);
    }
}

void traffic_model_free(traffic_model *m) {
    free(m->degree);
    free(m->cols);
    free(m->weights);
    memset(m, 0, sizeof *m);
}

void traffic_gossip_round(traffic_model *m, int64_t round, size_t d, int vectors, traffic *acc) {
    double sum = 0;
    int most = 0;
    for (int i = 0; i < m->n; i++) {
        int deg =
            m->period ? m->degree[(size_t)(round % m->period) * m->n + i] : row_degree(m, round, i);
        sum += deg;
        if (deg > most) most = deg;
    }
    double bytes = (double)d * sizeof(float) * vectors;
    acc->messages_mean += sum / m->n * vectors;
    acc->messages_max += (double)most * vectors;
    acc->bytes_mean += sum / m->n * bytes;
    acc->bytes_max += most * bytes;
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

void traffic_add(traffic *acc, const traffic *t) {
    acc->bytes_mean += t->bytes_mean;
    acc->bytes_max += t->bytes_max;
    acc->messages_mean += t->messages_mean;
    acc->messages_max += t->messages_max;
}
