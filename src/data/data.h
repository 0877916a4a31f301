/* data.h: datasets, the per-epoch shuffle, the i.i.d. and Dirichlet splits over workers,
 * padding and augmentation (docs/data.md has the file formats).
 *
 * Images are kept as the file's bytes (count, C, H, W) and normalised per channel when a
 * batch is filled, so a rank holds one copy of the raw data whatever its worker count.
 * Every epoch the whole training set is permuted by a pure function of (seed, epoch);
 * worker i of n takes the i-th of n equal slices (the remainder is left out that epoch).
 *
 * Datasets (dataset_load's name; dir holds the files):
 *   "fashion-mnist": the IDX files (gzip or plain), 1 x 28 x 28, 10 classes.
 *   "cifar10":       the official binary version: data_batch_1..5.bin, test_batch.bin;
 *                    records of 1 label byte + 3072 bytes (R, G, B planes of 32 x 32).
 *   "imagenet32":    ccdl's own layout (tools/imagenet32_convert.py writes it from the
 *                    official downsampled-ImageNet npz files): train_1..P.bin, val.bin, a
 *                    32-byte header then records of a 2-byte little-endian label 0..999 +
 *                    3072 bytes (R, G, B planes).
 * A missing, truncated or malformed file is a one-line CCDL_ERR_INPUT naming the file.
 *
 * Leaves out: decoding compressed images, streaming from disk (everything is loaded), and
 * any augmentation beyond pad-and-crop and horizontal flips. */
#ifndef CCDL_DATA_H
#define CCDL_DATA_H

#include <stdint.h>

#include "rng.h"
#include "util.h"

/* ImageNet-32 files as ccdl writes them. */
#define IMAGENET32_MAGIC "CCDLI32" /* 8 bytes with the terminating NUL */
#define IMAGENET32_VERSION 1
#define IMAGENET32_HEADER 32

typedef struct {
    int64_t count;
    int channels, height, width;
    int classes;
    uint8_t *pixels; /* (count, channels, height, width) */
    int32_t *labels; /* (count) */
    float mean[3];   /* per-channel normalisation, on the [0, 1] scale */
    float std[3];
} dataset;

/* Load split "train" (train = 1) or "test" of the named dataset from dir; keep the first
 * `subset` samples when subset > 0. -1 + err (CCDL_ERR_INPUT naming the file) on a missing
 * or malformed file. */
int dataset_load(const char *name, const char *dir, int train, int64_t subset, dataset *ds,
                 ccdl_error *err);
void dataset_free(dataset *ds);

/* Pad every image to size x size with background (pixel value 0: Fashion-MNIST's black),
 * centred: (size - H) / 2 rows on top, the rest below; the same for columns. For ResNet-20
 * on Fashion-MNIST (28 -> 32). The normalisation constants stay the unpadded data's. No-op
 * when the images already are size x size; -1 + err (CCDL_ERR_INPUT) if they are larger. */
int dataset_pad_to(dataset *ds, int size, ccdl_error *err);

/* Samples per worker per epoch: count / n. */
static inline int64_t data_shard_size(int64_t count, int n) {
    return count / n;
}

/* perm[0..count) = the epoch's permutation of sample indices. */
void data_epoch_permutation(uint64_t seed, int epoch, int64_t count, int32_t *perm);

/* x = normalised images (b, C, H, W), y = labels, for samples idx[0..b). */
void dataset_fill_batch(const dataset *ds, const int32_t *idx, int b, float *x, int32_t *y);

/* The standard CIFAR augmentation: crop_pad > 0 pads each image by crop_pad pixels of value
 * 0 on every side and takes a random H x W crop (offsets uniform in 0..2 crop_pad, as
 * torchvision's RandomCrop(H, padding=crop_pad)); flip mirrors it left-right with
 * probability 1/2. Padding pixels normalise to -mean/std like black pixels would. */
typedef struct {
    int crop_pad; /* 4 in the paper; 0 = no crop */
    int flip;     /* 1 = random horizontal flip */
} augment_config;

/* dataset_fill_batch with augmentation, deterministic given rng: per sample, in order, the
 * draws are the crop's row offset, its column offset (if crop_pad > 0) and the flip (if
 * flip), each by rng_below. Seed rng per (seed, epoch, worker) with RNG_AUGMENT and pass the
 * same rng to the worker's batches of that epoch in order. aug NULL or all zero: exactly
 * dataset_fill_batch, and rng is not touched (may be NULL). */
void dataset_fill_batch_augmented(const dataset *ds, const int32_t *idx, int b,
                                  const augment_config *aug, rng_t *rng, float *x, int32_t *y);

/* Advance rng exactly as dataset_fill_batch_augmented does for b samples, without filling
 * anything: a resumed run replays an epoch's draws up to its checkpointed step. */
void augment_skip(const augment_config *aug, rng_t *rng, int b);

/* A split of the training set over n workers with a possibly different number of samples
 * each. */
typedef struct {
    int n;
    int64_t *offset; /* (n + 1): worker i owns index[offset[i] .. offset[i + 1]) */
    int32_t *index;  /* (count): sample indices grouped by worker, ascending within one */
} data_partition;

/* Non-i.i.d. label split (Hsu, Qi, Brown 2019): for each class k, proportions
 * p_k ~ Dirichlet(alpha, ..., alpha) over the n workers; the class's samples, in a random
 * order, are cut into n consecutive runs of round(cumulative p_k * count_k) boundaries.
 * While some worker ends up with fewer than min_per_worker samples the whole split is drawn
 * again (at most 1000 attempts; then CCDL_ERR_INPUT). A pure function of (the labels, n,
 * alpha, min_per_worker, seed): attempt a, class k draws from
 * rng_seed(seed, RNG_PARTITION, a, k). Large alpha approaches an even split of every
 * class; alpha = 0.1 gives workers dominated by one or two classes. Caller frees with
 * data_partition_free. */
int data_partition_dirichlet(const dataset *ds, int n, double alpha, int64_t min_per_worker,
                             uint64_t seed, data_partition *part, ccdl_error *err);
void data_partition_free(data_partition *part);

/* out[0 .. worker's sample count) = the worker's samples in this epoch's order: its list
 * permuted by rng_seed(seed, RNG_SHUFFLE, epoch, 1 + worker). */
void data_partition_epoch_order(const data_partition *part, int worker, uint64_t seed, int epoch,
                                int32_t *out);

#endif
