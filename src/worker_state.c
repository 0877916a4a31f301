/* worker_state.c: see worker_state.h. */
#include "worker_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reduce.h"
#include "util.h"

void worker_state_init(worker_state *ws, int per_rank) {
    memset(ws, 0, sizeof *ws);
    ws->per_rank = per_rank;
}

int worker_state_find(const worker_state *ws, const char *name) {
    for (int h = 0; h < ws->n_buffers; h++)
        if (strcmp(ws->buf[h].name, name) == 0) return h;
    return -1;
}

int worker_state_declare(worker_state *ws, const char *name, size_t count, unsigned roles) {
    if (ws->n_buffers == WS_MAX_BUFFERS)
        ccdl_die("worker_state: more than %d buffers", WS_MAX_BUFFERS);
    if (strlen(name) >= WS_NAME_MAX || worker_state_find(ws, name) >= 0)
        ccdl_die("worker_state: bad or duplicate buffer name '%s'", name);
    int h = ws->n_buffers++;
    ws_buffer *b = &ws->buf[h];
    snprintf(b->name, sizeof b->name, "%s", name);
    b->count = count;
    b->roles = roles;
    b->w = xcalloc((size_t)ws->per_rank, sizeof(float *));
    for (int w = 0; count && w < ws->per_rank; w++) b->w[w] = xalloc_floats(count);
    if ((roles & WS_EVAL_MEAN) && count) {
        b->mean = xalloc_floats(count);
        if (count > ws->scratch_count) {
            free(ws->scratch);
            ws->scratch = xcalloc(count, sizeof(double));
            ws->scratch_count = count;
        }
    }
    return h;
}

void worker_state_average(worker_state *ws, const layout *l, MPI_Comm comm) {
    for (int h = 0; h < ws->n_buffers; h++) {
        ws_buffer *b = &ws->buf[h];
        if ((b->roles & WS_EVAL_MEAN) && b->count)
            reduce_mean_vectors(l, comm, b->w, b->count, b->mean, ws->scratch);
    }
}

void worker_state_free(worker_state *ws) {
    if (!ws) return;
    for (int h = 0; h < ws->n_buffers; h++) {
        ws_buffer *b = &ws->buf[h];
        for (int w = 0; b->w && w < ws->per_rank; w++) free(b->w[w]);
        free(b->w);
        free(b->mean);
    }
    free(ws->scratch);
    worker_state_init(ws, ws->per_rank);
}
