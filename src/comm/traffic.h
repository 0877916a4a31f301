/* traffic.h: what a step's communication sends, worker by worker.
 *
 * Accounting, not measurement: ccdl hosts many workers on a rank, so the bytes MPI carries
 * depend on the rank layout. What a decentralized deployment would send does not: here each
 * worker is its own process, and
 *   - a gossip round sends worker i's vector to each of its neighbours in W^t (one message of
 *     d floats per neighbour and per mixed buffer),
 *   - an exact average is a ring all-reduce: 2(n-1) messages of d/n floats per worker
 *     (reduce-scatter, then all-gather), 2(n-1)/n x d floats in all,
 *   - a reduction of s scalars (Theta, Xi's sum of squares, the mean gradient norm) is a
 *     recursive-doubling all-reduce, as MPI libraries do for small messages: ceil(log2 n)
 *     messages of s doubles per worker.
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

/* The neighbour counts of a topology's rounds over its period: their sum over the workers and
 * their maximum (complete graphs and random matchings in closed form). */
typedef struct {
    int n;
    int period;  /* rounds after which the counts repeat */
    double *sum; /* [period] neighbours summed over the workers at round r */
    int *most;   /* [period] the most neighbours any worker has at round r */
} traffic_model;

void traffic_model_init(traffic_model *m, const topology *t);
void traffic_model_free(traffic_model *m);

/* Add one gossip round at the given round index, mixing `vectors` buffers of d floats. */
void traffic_gossip_round(const traffic_model *m, int64_t round, size_t d, int vectors,
                          traffic *acc);

/* Add one ring all-reduce of `count` elements of `size` bytes among n workers. */
void traffic_allreduce(int n, size_t count, size_t size, traffic *acc);

/* Add one all-reduce of `count` doubles among n workers (recursive doubling). */
void traffic_reduce_scalars(int n, size_t count, traffic *acc);

/* acc += t, field by field. */
void traffic_add(traffic *acc, const traffic *t);

#endif
