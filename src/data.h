/* data.h: datasets, the per-epoch shuffle and the i.i.d. split over workers.
 *
 * Images are kept as the file's bytes (count, C, H, W) and normalised per channel when a
 * batch is filled, so a rank holds one copy of the raw data whatever its worker count.
 * Every epoch the whole training set is permuted by a pure function of (seed, epoch);
 * worker i of n takes the i-th of n equal slices (the remainder is left out that epoch). */
#ifndef CCDL_DATA_H
#define CCDL_DATA_H

#include <stdint.h>

#include "util.h"

typedef struct {
    int64_t count;
    int channels, height, width;
    int classes;
    uint8_t *pixels; /* (count, channels, height, width) */
    int32_t *labels; /* (count) */
    float mean[3];   /* per-channel normalisation, on the [0, 1] scale */
    float std[3];
} dataset;

/* Load split "train" or "test" of the named dataset from dir; keep the first `subset`
 * samples when subset > 0. -1 + err (CCDL_ERR_INPUT naming the file) on a missing or
 * malformed file. */
int dataset_load(const char *name, const char *dir, int train, int64_t subset, dataset *ds,
                 ccdl_error *err);
void dataset_free(dataset *ds);

/* Samples per worker per epoch: count / n. */
static inline int64_t data_shard_size(int64_t count, int n) {
    return count / n;
}

/* perm[0..count) = the epoch's permutation of sample indices. */
void data_epoch_permutation(uint64_t seed, int epoch, int64_t count, int32_t *perm);

/* x = normalised images (b, C, H, W), y = labels, for samples idx[0..b). */
void dataset_fill_batch(const dataset *ds, const int32_t *idx, int b, float *x, int32_t *y);

#endif
