/* gossip.c: see gossip.h. */
#include "gossip.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Elements mixed per block: the block of the output stays in L1 while each neighbour's
 * block streams past, so a round reads every input once and writes every output once. */
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
    g->cols = xmalloc(sizeof(int) * (size_t)(l->per_rank * g->max_row));
    g->weights = xmalloc(sizeof(double) * (size_t)(l->per_rank * g->max_row));
    g->row_len = xmalloc(sizeof(int) * (size_t)l->per_rank);
    g->needed = xmalloc((size_t)l->n);
    g->sendto = xmalloc((size_t)l->per_rank * (size_t)l->ranks);
    g->reqs = xmalloc(sizeof(MPI_Request) * 2 * (size_t)l->n);
    g->statuses = xmalloc(sizeof(MPI_Status) * 2 * (size_t)l->n);
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

static void mix_one(gossip *g, float **x, int w, double *theta2) {
    const layout *l = &g->lay;
    int len = g->row_len[w];
    const int *cols = g->cols + w * g->max_row;
    const double *wts = g->weights + w * g->max_row;
    const float *src[len];
    float wf[len];
    for (int k = 0; k < len; k++) {
        int j = cols[k];
        src[k] = layout_is_local(l, j) ? x[j - l->first] : g->remote[j];
        wf[k] = (float)wts[k];
    }
    float *out = g->out[w];
    const float *self = x[w];
    double t2 = 0;
    for (size_t lo = 0; lo < g->d; lo += MIX_BLOCK) {
        size_t hi = lo + MIX_BLOCK < g->d ? lo + MIX_BLOCK : g->d;
        /* ascending j, same arithmetic for local and remote: layout-independent bits */
        for (size_t i = lo; i < hi; i++) out[i] = wf[0] * src[0][i];
        for (int k = 1; k < len; k++) {
            const float *s = src[k];
            float c = wf[k];
            for (size_t i = lo; i < hi; i++) out[i] += c * s[i];
        }
        if (theta2)
            for (size_t i = lo; i < hi; i++) {
                double diff = (double)self[i] - (double)out[i];
                t2 += diff * diff;
            }
    }
    if (theta2) theta2[w] = t2;
}

void gossip_round(gossip *g, float **x, int64_t round, double *theta2) {
    const layout *l = &g->lay;
    for (int w = 0; w < l->per_rank; w++)
        g->row_len[w] = topology_row(&g->topo, round, l->first + w, g->cols + w * g->max_row,
                                     g->weights + w * g->max_row);
    int nreq = exchange_start(g, x);
    if (nreq) MPI_Waitall(nreq, g->reqs, g->statuses);
    for (int w = 0; w < l->per_rank; w++) mix_one(g, x, w, theta2);
    for (int w = 0; w < l->per_rank; w++) {
        float *t = x[w];
        x[w] = g->out[w];
        g->out[w] = t;
    }
}
