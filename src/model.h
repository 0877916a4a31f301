/* model.h: neural networks on oneDNN primitives, over one flat parameter buffer.
 *
 * A model object owns the network's shape, its oneDNN primitives and its activation
 * scratch; it does NOT own parameters. Parameters and gradients are flat float buffers of
 * model_param_count() floats that the caller owns (one per worker), so a rank hosting many
 * workers keeps one model object and runs the workers through it one after another: the
 * activations are shared, the parameters are not (llm.c style).
 *
 * Kinds: "mlp" (inner-product layers with ReLU between them, softmax cross-entropy).
 * ResNet-20 and convolutional layers come later; the API stays. */
#ifndef CCDL_MODEL_H
#define CCDL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define MODEL_MAX_HIDDEN 8

typedef struct {
    char kind[16];                /* "mlp" */
    int hidden[MODEL_MAX_HIDDEN]; /* mlp: hidden layer widths */
    int n_hidden;                 /* mlp: number of hidden layers (0 = softmax regression) */
    int in_channels, in_height, in_width; /* input image shape */
    int classes;
} model_config;

typedef struct model model;

/* Create primitives for batches up to max_batch. NULL + err (CCDL_ERR_INPUT for a bad
 * config, CCDL_ERR_RUNTIME for a oneDNN failure) on error; frees everything it made. */
model *model_create(const model_config *cfg, int max_batch, ccdl_error *err);
void model_destroy(model **m); /* sets *m = NULL; NULL-safe */

/* Number of floats in the flat parameter (and gradient) buffer. */
size_t model_param_count(const model *m);

/* He (Kaiming) initialisation of weights, zero biases; a pure function of seed. */
void model_init_params(const model *m, float *params, uint64_t seed);

/* Forward + backward on x (batch, C, H, W) with labels y. Overwrites grads with the
 * gradient of the MEAN cross-entropy over the batch; returns that mean loss.
 * 1 <= batch <= max_batch. */
float model_forward_backward(model *m, const float *params, float *grads, const float *x,
                             const int32_t *y, int batch);

/* Forward only: adds the SUM of per-sample losses to *loss_sum and the number of correct
 * top-1 predictions to *correct. 1 <= batch <= max_batch. */
void model_evaluate(model *m, const float *params, const float *x, const int32_t *y, int batch,
                    double *loss_sum, int64_t *correct);

#endif
