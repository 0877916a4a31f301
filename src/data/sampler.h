/* sampler.h: which training samples each local worker sees at each step.
 *
 * i.i.d. split (the paper): every epoch the whole training set is permuted by a function of
 * (seed, epoch) and worker i takes the i-th of n equal slices. Dirichlet split (beyond the
 * paper): a fixed label-skewed partition (data_partition_dirichlet), each worker's list
 * reshuffled every epoch and read cyclically, so every worker takes the same number of steps
 * per epoch as under the i.i.d. split: floor(count / n / batch). With augmentation each
 * worker draws its crops and flips from its own stream rng(seed, RNG_AUGMENT, epoch, worker).
 * Everything depends on the worker index, never on the rank. */
#ifndef CCDL_SAMPLER_H
#define CCDL_SAMPLER_H

#include <stdint.h>

#include "data.h"
#include "rng.h"

typedef struct {
    const dataset *ds;
    int n, first, local, batch; /* workers, first local worker, local workers, batch size */
    uint64_t seed;
    int64_t steps_per_epoch;
    int64_t shard; /* i.i.d.: samples per worker per epoch */
    int32_t *perm; /* i.i.d.: the epoch's permutation (count) */
    int dirichlet;
    data_partition part; /* dirichlet */
    int32_t **order;     /* dirichlet: [local] this epoch's order of the worker's samples */
    int32_t *idx;        /* (batch) scratch */
    augment_config aug;
    rng_t *rng; /* [local] augmentation streams of the epoch */
} sampler;

/* -1 + err (CCDL_ERR_INPUT) if the split cannot give every worker a batch. */
int sampler_init(sampler *s, const dataset *ds, int n, int first, int local, int batch,
                 int dirichlet, double alpha, int augment, uint64_t seed, ccdl_error *err);
void sampler_free(sampler *s);
/* Prepare an epoch (collective-free, same on every rank). */
void sampler_epoch(sampler *s, int epoch);
/* Prepare an epoch and move every augmentation stream to where it stands before step k
 * of it (sampler_epoch when k = 0): where a resumed run continues. */
void sampler_seek(sampler *s, int epoch, int64_t k);
/* Local worker w's batch for step k of the epoch: x (batch, C, H, W), y (batch). */
void sampler_batch(sampler *s, int w, int64_t k, float *x, int32_t *y);

#endif
