/* traffic.h: what a step's communication sends, worker by worker.
 *
 * Accounting, not measurement: ccdl hosts many workers on a rank, so the bytes MPI carries
 * depend on the rank layout. What a decentralized deployment would send does not: here each
 * worker is its own process, and
 *   - a gossip round sends worker i's vector to each of its neighbours in W^t (one message of
 *     d floats per neighbour and per mixed buffer),
 *   - an exact average is a ring all-reduce: 2(n-1) messages of d/n floats per worker
 *     (reduce-scatter, then all-gather), 2(n-1)/n x d floats in all,
 *   - a reduction of s scalars (Theta, or Xi's sum of squares) is a ring all-reduce of s
 *     doubles.
 * Per step, the _mean fields are the mean over workers of what each sends; the _max fields
 * add, round by round, the most any one worker sends in that round: rounds are synchronous,
 * so the busiest worker of each round sets the step's communication time (the network cost
 * model of `ccdl-analyze cost`, docs/analysis.md). Only the policy's own communication counts:
 * trace.measure_xi's reductions are measurement, not training. */
#ifndef CCDL_TRAFFIC_H
#define CCDL_TRAFFIC_H

#include <stddef.h>
#include <stdint.h>

#include "topology.h"

typedef struct {
    double bytes_mean, bytes_max;       /* bytes sent per worker */
    double messages_mean, messages_max; /* messages sent per worker */
} traffic;

/* The neighbour counts of a topology's rounds, cached over its period (random matchings are
 * counted round by round). */
typedef struct {
    topology topo;
    int n;
    int period;  /* rounds cached in degree[] (0: none, count each round) */
    int *degree; /* [period * n] neighbours of worker i at round r: degree[r * n + i] */
    int *cols;   /* [max_row] scratch */
    double *weights;
} traffic_model;

void traffic_model_init(traffic_model *m, const topology *t);
void traffic_model_free(traffic_model *m);

/* Add one gossip round at the given round index, mixing `vectors` buffers of d floats. */
void traffic_gossip_round(traffic_model *m, int64_t round, size_t d, int vectors, traffic *acc);

/* Add one ring all-reduce of `count` elements of `size` bytes among n workers. */
void traffic_allreduce(int n, size_t count, size_t size, traffic *acc);

/* acc += t, field by field. */
void traffic_add(traffic *acc, const traffic *t);

#endif
