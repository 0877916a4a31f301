/* gossip.h: one mixing round x_i <- sum_j W_ij x_j for all workers hosted on this rank.
 *
 * Remote neighbours' vectors arrive by non-blocking MPI point-to-point, each needed vector
 * once per rank; local ones are read in place. The weighted sum runs over j in ascending
 * order with the same code for local and remote vectors, so the result does not depend on
 * the rank layout, bit for bit. As a by-product each worker gets
 * theta_i^2 = ||x_i - x_i'||^2 (NOTES.md section 2) for the cheap estimator. */
#ifndef CCDL_GOSSIP_H
#define CCDL_GOSSIP_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "topology.h"

typedef struct gossip gossip;

/* Vectors of d floats; the layout and topology are copied. */
gossip *gossip_create(const layout *l, const topology *t, size_t d, MPI_Comm comm);
void gossip_destroy(gossip **g);

/* One round at the given round index (time-varying topologies use it). x[w] is local
 * worker w's vector (w = 0..per_rank-1). The new vectors are written to internal buffers and
 * the POINTERS in x[] are swapped with them (double buffering, no copy): callers must
 * re-read x[w] after the call and must not free the arrays they get back before
 * gossip_destroy (which frees the buffers it holds at that time; the caller then owns
 * the ones in x[]). theta2[w] (may be NULL) receives ||x_w - x_w'||^2. */
void gossip_round(gossip *g, float **x, int64_t round, double *theta2);

/* Vectors mixed together with the same W^t: the parameters first, then any other buffer the
 * worker-state registry marks WS_GOSSIPED (the optimizer's moments when they are gossiped).
 * Each member has its own gossip object (double buffers); g[k] is NULL when the run never
 * gossips (exact averages only). */
#define GOSSIP_GROUP_MAX 4
typedef struct {
    int n;
    float **x[GOSSIP_GROUP_MAX]; /* the registry's per-worker pointer arrays */
    gossip *g[GOSSIP_GROUP_MAX];
} gossip_group;

/* One round of every member at the same round index; theta2 is the first member's. */
void gossip_group_round(gossip_group *gg, int64_t round, double *theta2);

#endif
