/* gossip.c: see gossip.h. */
#include "gossip.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Elements mixed per block in the blocked kernel (8 KiB of output, resident in L1). */
#define MIX_BLOCK 2048

struct gossip {
    layout lay;
    topology topo;
    size_t d;
    MPI_Comm comm;
    float **out;    /* [per_rank] buffers the next round writes into */
    float **remote; /* [n] receive buffers, allocated on first need */
    int max_row;
    int *cols;             /* [per_rank * max_row] this round's rows */
    double *weights;       /* [per_rank * max_row] */
    int *row_len;          /* [per_rank] */
    unsigned char *needed; /* [n] scratch: remote worker needed this round */
    unsigned char *sendto; /* [per_rank * ranks] scratch: local worker needed by rank q */
    MPI_Request *reqs;
    MPI_Status *statuses; /* a real array: gcc 12 warns on MPI_STATUSES_IGNORE */
};

gossip *gossip_create(const layout *l, const topology *t, size_t d, MPI_Comm comm) {
    gossip *g = xcalloc(1, sizeof *g);
    g->lay = *l;
    g->topo = *t;
    g->d = d;
    g->comm = comm;
    g->out = xcalloc((size_t)l->per_rank, sizeof(float *));
    for (int w = 0; w < l->per_rank; w++) g->out[w] = xalloc_floats(d);
    g->remote = xcalloc((size_t)l->n, sizeof(float *));
    g->max_row = topology_max_row(t);
    g->cols = xmalloc_array((size_t)l->per_rank * (size_t)g->max_row, sizeof(int));
    g->weights = xmalloc_array((size_t)l->per_rank * (size_t)g->max_row, sizeof(double));
    g->row_len = xmalloc_array((size_t)l->per_rank, sizeof(int));
    g->needed = xmalloc((size_t)l->n);
    g->sendto = xmalloc_array((size_t)l->per_rank, (size_t)l->ranks);
    g->reqs = xmalloc_array(2 * (size_t)l->n, sizeof(MPI_Request));
    g->statuses = xmalloc_array(2 * (size_t)l->n, sizeof(MPI_Status));
    return g;
}

void gossip_destroy(gossip **gp) {
    gossip *g = gp ? *gp : NULL;
    if (!g) return;
    for (int w = 0; w < g->lay.per_rank; w++) free(g->out[w]);
    for (int j = 0; j < g->lay.n; j++) free(g->remote[j]);
    free(g->out);
    free(g->remote);
    free(g->cols);
    free(g->weights);
    free(g->row_len);
    free(g->needed);
    free(g->sendto);
    free(g->reqs);
    free(g->statuses);
    free(g);
    *gp = NULL;
}

/* Post receives for every remote vector this rank's rows need and sends for every local
 * vector another rank's rows need. W is symmetric, so "rank q needs my worker i" is
 * "some row i on this rank has a column on q": no rank asks another what it needs. */
static int exchange_start(gossip *g, float **x) {
    const layout *l = &g->lay;
    int nreq = 0;
    memset(g->needed, 0, (size_t)l->n);
    memset(g->sendto, 0, (size_t)l->per_rank * (size_t)l->ranks);
    for (int w = 0; w < l->per_rank; w++)
        for (int k = 0; k < g->row_len[w]; k++) {
            int j = g->cols[w * g->max_row + k];
            if (layout_is_local(l, j)) continue;
            g->needed[j] = 1;
            g->sendto[w * l->ranks + layout_rank_of(l, j)] = 1;
        }
    for (int j = 0; j < l->n; j++) {
        if (!g->needed[j]) continue;
        if (!g->remote[j]) g->remote[j] = xalloc_floats(g->d);
        /* tag = source worker index: unique per (source rank, vector) in a round */
        MPI_Irecv(g->remote[j], (int)g->d, MPI_FLOAT, layout_rank_of(l, j), j, g->comm,
                  &g->reqs[nreq++]);
    }
    for (int w = 0; w < l->per_rank; w++)
        for (int q = 0; q < l->ranks; q++)
            if (g->sendto[w * l->ranks + q])
                MPI_Isend(x[w], (int)g->d, MPI_FLOAT, q, l->first + w, g->comm, &g->reqs[nreq++]);
    return nreq;
}

/* theta^2 accumulates in THETA_LANES independent doubles, element i in lane i % 4 (a single
 * running sum would be bound by the latency of one add per element), combined as
 * (l0 + l1) + (l2 + l3) in both kernels. */
#define THETA_LANES 4

/* Rows of 1 to 3 entries (matchings, ring, one-peer): one fused pass reads each input once
 * and writes the output once. The sum is ((w0 s0 + w1 s1) + w2 s2), the same order as the
 * blocked path below, so the kernel choice never changes a bit. Inlined with a constant
 * len, so the branches vanish. */
static inline __attribute__((always_inline)) double mix_fused(const float *const *src,
                                                              const float *wf, const int len,
                                                              const float *restrict self,
                                                              float *restrict out, size_t d) {
    /* restrict: outputs never alias inputs (double buffering) */
    const float *restrict s0 = src[0], *restrict s1 = src[len > 1 ? 1 : 0],
                          *restrict s2 = src[len > 2 ? 2 : 0];
    const float w0 = wf[0], w1 = wf[len > 1 ? 1 : 0], w2 = wf[len > 2 ? 2 : 0];
    /* four named accumulators stay in registers (an indexed array went through memory) */
    double acc0 = 0, acc1 = 0, acc2 = 0, acc3 = 0;
#define MIX_LANE(k, acc)                                                                           \
    do {                                                                                           \
        float v = w0 * s0[k];                                                                      \
        if (len > 1) v += w1 * s1[k];                                                              \
        if (len > 2) v += w2 * s2[k];                                                              \
        out[k] = v;                                                                                \
        double diff = (double)self[k] - (double)v;                                                 \
        acc += diff * diff;                                                                        \
    } while (0)
    size_t i = 0;
    for (; i + THETA_LANES <= d; i += THETA_LANES) {
        MIX_LANE(i, acc0);
        MIX_LANE(i + 1, acc1);
        MIX_LANE(i + 2, acc2);
        MIX_LANE(i + 3, acc3);
    }
    for (; i < d; i++) { /* the tail: lane i % 4, as in the blocked kernel */
        if (i % THETA_LANES == 0)
            MIX_LANE(i, acc0);
        else if (i % THETA_LANES == 1)
            MIX_LANE(i, acc1);
        else
            MIX_LANE(i, acc2);
    }
#undef MIX_LANE
    return (acc0 + acc1) + (acc2 + acc3);
}

/* Longer rows (torus, exponential, complete): the output block stays in L1 while each
 * neighbour's block streams past, accumulating in ascending j. */
static double mix_blocked(const float *const *src, const float *wf, int len, const float *self,
                          float *out, size_t d) {
    double acc[THETA_LANES] = {0};
    for (size_t lo = 0; lo < d; lo += MIX_BLOCK) {
        size_t hi = lo + MIX_BLOCK < d ? lo + MIX_BLOCK : d;
        for (size_t i = lo; i < hi; i++) out[i] = wf[0] * src[0][i];
        for (int k = 1; k < len; k++) {
            const float *s = src[k];
            float c = wf[k];
            for (size_t i = lo; i < hi; i++) out[i] += c * s[i];
        }
        for (size_t i = lo; i < hi; i++) {
            double diff = (double)self[i] - (double)out[i];
            acc[i % THETA_LANES] += diff * diff;
        }
    }
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

static void mix_one(gossip *g, float **x, int w, double *theta2) {
    const layout *l = &g->lay;
    int len = g->row_len[w];
    const int *cols = g->cols + w * g->max_row;
    const double *wts = g->weights + w * g->max_row;
    const float *src[len + 1]; /* rows always hold the diagonal: len >= 1 */
    float wf[len + 1];
    src[0] = x[w], wf[0] = 1;
    for (int k = 0; k < len; k++) {
        int j = cols[k];
        src[k] = layout_is_local(l, j) ? x[j - l->first] : g->remote[j];
        wf[k] = (float)wts[k];
    }
    double t2;
    switch (len) {
    case 1:
        t2 = mix_fused(src, wf, 1, x[w], g->out[w], g->d);
        break;
    case 2:
        t2 = mix_fused(src, wf, 2, x[w], g->out[w], g->d);
        break;
    case 3:
        t2 = mix_fused(src, wf, 3, x[w], g->out[w], g->d);
        break;
    default:
        t2 = mix_blocked(src, wf, len, x[w], g->out[w], g->d);
        break;
    }
    if (theta2) theta2[w] = t2;
}

/* True if row w reads only vectors hosted on this rank. */
static int row_is_local(const gossip *g, int w) {
    for (int k = 0; k < g->row_len[w]; k++)
        if (!layout_is_local(&g->lay, g->cols[w * g->max_row + k])) return 0;
    return 1;
}

void gossip_group_round(gossip_group *gg, int64_t round, double *theta2) {
    for (int k = 0; k < gg->n; k++) gossip_round(gg->g[k], gg->x[k], round, k == 0 ? theta2 : NULL);
}

void gossip_round(gossip *g, float **x, int64_t round, double *theta2) {
    const layout *l = &g->lay;
    for (int w = 0; w < l->per_rank; w++)
        g->row_len[w] = topology_row(&g->topo, round, l->first + w, g->cols + w * g->max_row,
                                     g->weights + w * g->max_row);
    int nreq = exchange_start(g, x);
    /* rows that need nothing remote are mixed while the messages travel; MPI moves large
     * (rendezvous) messages only inside MPI calls, so each local row ends with a test */
    int done = nreq == 0;
    for (int w = 0; w < l->per_rank; w++)
        if (row_is_local(g, w)) {
            mix_one(g, x, w, theta2);
            if (!done) MPI_Testall(nreq, g->reqs, &done, g->statuses);
        }
    if (!done) MPI_Waitall(nreq, g->reqs, g->statuses);
    for (int w = 0; w < l->per_rank; w++)
        if (!row_is_local(g, w)) mix_one(g, x, w, theta2);
    for (int w = 0; w < l->per_rank; w++) {
        float *t = x[w];
        x[w] = g->out[w];
        g->out[w] = t;
    }
}
