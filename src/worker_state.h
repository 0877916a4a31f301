/* worker_state.h: the registry of per-worker buffers.
 *
 * Every float buffer that each worker holds (parameters, gradients, optimizer moments,
 * batch-norm statistics, a future policy's own state) is declared once, by the module that
 * owns it, with a name, its floats per worker and its roles. The registry allocates one
 * buffer per local worker, and everything that must visit "all of a worker's state" walks
 * the registry instead of a hand-kept list: averaging for evaluation, checkpointing,
 * restoring, freeing. Adding a buffer is one worker_state_declare call in its owner.
 *
 * Pointers: buffers(ws, h) returns the registry's own array of per-worker pointers, so gossip
 * can swap them in place (gossip.h); whoever holds that array sees the swapped pointers.
 * Buffers gossip swapped out are gossip's to free (gossip_destroy), the ones in the array
 * are the registry's (worker_state_free). */
#ifndef CCDL_WORKER_STATE_H
#define CCDL_WORKER_STATE_H

#include <mpi.h>
#include <stddef.h>

#include "layout.h"

/* Roles of a buffer: what walks over it. */
enum {
    WS_GOSSIPED = 1u << 0,   /* mixed between workers by the communication policy */
    WS_EVAL_MEAN = 1u << 1,  /* averaged over workers to evaluate the averaged model */
    WS_CHECKPOINT = 1u << 2, /* saved in checkpoints and restored on resume */
};

#define WS_MAX_BUFFERS 16
#define WS_NAME_MAX 32

typedef struct {
    char name[WS_NAME_MAX]; /* checkpoint dataset name: [a-z0-9_] */
    size_t count;           /* floats per worker (0: declared, nothing allocated) */
    unsigned roles;
    float **w;   /* [per_rank] one zeroed buffer per local worker */
    float *mean; /* [count] WS_EVAL_MEAN: the average over all workers, else NULL */
} ws_buffer;

typedef struct worker_state {
    int per_rank;
    int n_buffers;
    ws_buffer buf[WS_MAX_BUFFERS];
    double *scratch; /* reduction scratch for worker_state_average */
    size_t scratch_count;
} worker_state;

/* Empty registry for per_rank local workers. */
void worker_state_init(worker_state *ws, int per_rank);

/* Declare a buffer and allocate it (zeroed) for every local worker; returns its handle.
 * A duplicate name or a full registry is a programming error (ccdl_die). */
int worker_state_declare(worker_state *ws, const char *name, size_t count, unsigned roles);

/* The per-worker pointer array of buffer h ([per_rank]). */
static inline float **worker_state_buffers(const worker_state *ws, int h) {
    return ws->buf[h].w;
}

/* Buffer by name, or -1. */
int worker_state_find(const worker_state *ws, const char *name);

/* Collective: mean over all n workers (canonical order, reduce.h) of every WS_EVAL_MEAN
 * buffer, into its ->mean. */
void worker_state_average(worker_state *ws, const layout *l, MPI_Comm comm);

/* Free every buffer; the registry is empty afterwards. NULL-safe. */
void worker_state_free(worker_state *ws);

#endif
