/* model.h: neural networks on oneDNN primitives, over flat per-worker buffers.
 *
 * A model object owns the network's shape, its oneDNN primitives and its activation
 * scratch; it does NOT own parameters. Parameters, gradients and batch-norm state are flat
 * float buffers that the caller owns (one of each per worker), so a rank hosting many workers
 * keeps one model object and runs the workers through it one after another: the activations
 * are shared, the parameters are not (llm.c style).
 *
 * Kinds (docs/model.md has the parameter layouts):
 *   "mlp":      inner-product layers with ReLU between them, softmax cross-entropy.
 *   "resnet20": He et al. 2016's CIFAR ResNet-20: 3x3 conv (width) + BN + ReLU, three stages
 *               of three basic blocks with widths w, 2w, 4w (stride 2 at stages 2 and 3;
 *               the shortcut across a shape change is a 1x1 stride-2 conv + BN, "option B"),
 *               global average pool, fully connected to the classes. Made for 32x32 inputs;
 *               any input size works.
 *   "transformer": Vaswani et al. 2017's encoder-decoder (post-norm), sizes in model_config.seq,
 *               target embedding tied to the output projection; reads token batches through
 *               the model_tokens_* calls (docs/transformer.md, "The network").
 *
 * Threads: oneDNN runs on the caller's OpenMP threads (omp_set_num_threads before calling);
 * results are bitwise reproducible for a fixed thread count, and may differ in the last bits
 * between thread counts. */
#ifndef CCDL_MODEL_H
#define CCDL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"
struct worker_state; /* worker_state.h */

#define MODEL_MAX_HIDDEN 8

typedef struct {
    char kind[16];                /* "mlp", "resnet20" or "transformer" */
    int hidden[MODEL_MAX_HIDDEN]; /* mlp: hidden layer widths */
    int n_hidden;                 /* mlp: number of hidden layers (0 = softmax regression) */
    int width;                    /* resnet20: base width w (16 in the paper); 0 means 16 */
    int in_channels, in_height, in_width; /* input image shape */
    int classes;
    struct model_seq_config {     /* transformer (encoder-decoder) */
        int d_model, heads, d_ff; /* model width, attention heads, feed-forward width */
        int enc_layers, dec_layers;
        double dropout, attn_dropout, relu_dropout; /* residual, attention weights, FFN */
        double label_smoothing;                     /* eps of the training loss */
        int src_vocab, tgt_vocab;                   /* filled from the data */
        int max_len; /* longest sentence in tokens (+ <eos>), positions and decoding */
    } seq;
} model_config;

typedef struct model model;

/* The kinds model_create knows, NULL-terminated (the spec's choices for model.kind). */
extern const char *const model_kind_names[];
/* The image size a kind wants its inputs zero-padded to (resnet20: 32, the CIFAR network on
 * 28 x 28 Fashion-MNIST), or 0; 0 for an unknown kind too. */
int model_pad_images_to(const char *kind);
/* 1 if the kind reads token sequences (data.dataset "text"), 0 if images or unknown. */
int model_kind_takes_tokens(const char *kind);

/* Create primitives for batches up to max_batch. NULL + err (CCDL_ERR_INPUT for a bad
 * config, CCDL_ERR_RUNTIME for a oneDNN failure) on error; frees everything it made.
 * Builds the inference primitives for max_batch now (so oneDNN problems surface here);
 * training primitives are built on first use, or now with model_prepare. */
model *model_create(const model_config *cfg, int max_batch, ccdl_error *err);
void model_destroy(model **m); /* sets *m = NULL; NULL-safe */

/* Build the primitives for one batch size now (training = 1: forward and backward; 0:
 * inference) instead of on first use. -1 + err (CCDL_ERR_RUNTIME) on a oneDNN failure.
 * Token kinds make a set per batch shape when it first comes: nothing to do, 0. */
int model_prepare(model *m, int batch, int training, ccdl_error *err);

/* Visit every oneDNN op of the set for (batch, training) with its implementation name
 * ("jit:avx512_core", "ref:any", ...), building the set if needed: how tests and users
 * check that no reference kernel runs. -1 + err (CCDL_ERR_RUNTIME) on a oneDNN failure. */
int model_kernels(model *m, int batch, int training,
                  void (*visit)(void *ctx, const char *what, const char *impl), void *ctx,
                  ccdl_error *err);

/* The parameter tensors, in buffer order: they tile the flat buffer without gaps. */
typedef enum {
    TENSOR_WEIGHT,     /* conv / inner-product / embedding weights */
    TENSOR_BIAS,       /* biases */
    TENSOR_NORM_SCALE, /* normalization scale (gamma) */
    TENSOR_NORM_SHIFT, /* normalization shift (beta) */
} tensor_role;

typedef struct {
    char name[48]; /* "s2b0.conv1.weight", "fc.bias" */
    tensor_role role;
    int ndims;
    int64_t shape[4];
    size_t offset, count; /* in floats, in the flat buffer */
} model_tensor;

int model_tensor_count(const model *m);
const model_tensor *model_tensor_at(const model *m, int i); /* NULL outside 0..count-1 */

/* Number of floats in the flat parameter (and gradient) buffer. */
size_t model_param_count(const model *m);

/* Floats of non-trainable per-worker state (batch-norm running mean and variance); 0 for
 * the mlp. Gossip does not touch it; average it over workers to evaluate an averaged model. */
size_t model_state_count(const model *m);

/* Handles of the model's per-worker buffers in the worker-state registry. */
typedef struct {
    int params; /* "params": model_param_count floats; gossiped, averaged, checkpointed */
    int grads;  /* "grads": the same count; scratch of one step */
    int state;  /* "bn_state": model_state_count floats; averaged, checkpointed */
} model_buffers;

/* Declare the three buffers and initialise every local worker's parameters and state (all
 * workers start from the same model, a pure function of seed). */
void model_declare_buffers(const model *m, struct worker_state *ws, uint64_t seed,
                           model_buffers *h);

/* Initialisation, a pure function of seed (docs/model.md):
 *   mlp:      weights He normal, fan_in (std sqrt(2 / in)); biases zero.
 *   resnet20: convs He normal, fan_out (std sqrt(2 / (C_out k k)), as torchvision); BN
 *             scale 1, shift 0; fc weights and bias uniform(+-1/sqrt(in)) (PyTorch's
 *             nn.Linear default).
 *   transformer: matrices Xavier uniform, embeddings normal(0, d^-1/2), biases 0, layer
 *             norms 1 and 0 (docs/transformer.md). */
void model_init_params(const model *m, float *params, uint64_t seed);
/* Running means 0, running variances 1 (PyTorch's). No-op for the mlp. */
void model_init_state(const model *m, float *state);

/* Kinds that read token sequences (the transformer) instead of images: the calls below
 * instead of model_forward_backward / model_evaluate. */
int model_takes_tokens(const model *m);

/* A batch of sentence pairs, row-major int32 (data/text.h's text_batch): src (batch,
 * src_len) = tokens + <eos>; tgt_in (batch, tgt_len) = <bos> + tokens; tgt_out = tokens +
 * <eos>; padded with pad. */
typedef struct {
    const int32_t *src, *tgt_in, *tgt_out;
    int batch, src_len, tgt_len;
    int pad, bos, eos;
} model_tokens;

typedef struct {
    double loss_sum; /* label-smoothed loss summed over non-pad target tokens */
    double nll_sum;  /* negative log-likelihood summed over them (perplexity exp(nll/tokens)) */
    int64_t tokens;  /* non-pad target tokens */
} model_token_loss;

/* Training forward + backward: grads OVERWRITTEN with the gradient of loss_sum / tokens
 * (the mean over the batch's target tokens). Dropout masks are keyed by (seed, step, worker)
 * so a run's bits do not depend on the rank layout. */
model_token_loss model_tokens_forward_backward(model *m, const float *params, float *grads,
                                               const model_tokens *b, uint64_t seed, int64_t step,
                                               int worker);
/* Inference (no dropout): the sums of the batch, added to *acc. */
void model_tokens_evaluate(model *m, const float *params, const model_tokens *b,
                           model_token_loss *acc);
/* Greedy decoding of b->src (tgt_* unused): out (batch, max_len) row-major, each row the
 * argmax token at each position after <bos>, ending with <eos> (then pad) or at max_len. */
void model_tokens_greedy(model *m, const float *params, const model_tokens *b, int max_len,
                         int32_t *out);

/* Forward + backward in training mode on x (batch, C, H, W) with labels y. Overwrites grads
 * with the gradient of the MEAN cross-entropy over the batch; returns that mean loss.
 * Batch norm normalises with batch statistics and updates the running statistics in state
 * (PyTorch: momentum 0.1, unbiased variance for the running estimate). state may be NULL
 * only when model_state_count is 0. 1 <= batch <= max_batch. */
float model_forward_backward(model *m, const float *params, float *state, float *grads,
                             const float *x, const int32_t *y, int batch);

/* Forward only, in inference mode (batch norm uses the running statistics in state): adds
 * the SUM of per-sample losses to *loss_sum and the number of correct top-1 predictions
 * (ties go to the lowest class) to *correct. 1 <= batch <= max_batch. */
void model_evaluate(model *m, const float *params, const float *state, const float *x,
                    const int32_t *y, int batch, double *loss_sum, int64_t *correct);

/* mask[k] = 0 for parameters that must not be weight-decayed, 1 otherwise; with exclude_bn,
 * normalization scales and shifts get 0 (everything else, including biases, 1). */
void model_weight_decay_mask(const model *m, int exclude_bn, float *mask);

/* Forward FLOPs per sample: 2 x multiply-adds of the convolutions and inner products
 * (batch norm, ReLU, pooling and the loss are not counted). Training ~ 3 x this. The
 * transformer: per target token, with sources and targets of min(16, max_len) tokens. */
double model_flops_per_sample(const model *m);

#endif
