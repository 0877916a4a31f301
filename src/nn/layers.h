/* layers.h: neural-network layers on oneDNN 2.x C-API primitives, forward and backward.
 *
 * A layer is a few oneDNN primitives made once for one batch size (and reused for every
 * call), plus the small amount of glue they need: weight reorders between the caller's
 * plain layout and the blocked layout oneDNN prefers, and batch-norm running statistics.
 * Layers never own parameters: the run functions take plain pointers into the caller's
 * flat parameter / gradient / state buffers (llm.c style), so one set of primitives serves
 * any number of workers one after another.
 *
 * Everything a batch size needs besides parameters (activations, gradients of activations,
 * blocked weight copies, batch statistics, scratchpads) lives in one layer_arena, a single
 * growable allocation shared by every layer_set of a model: sets run one after another and
 * nothing in the arena survives a call, so the arena is sized for the hungriest set, not the
 * sum. A set records where each of its memory objects sits in the arena and re-points them
 * only when the arena moved.
 *
 * Layouts: activations keep whatever layout their producing primitive chose
 * (dnnl_format_tag_any: nChw16c on AVX-512), consumers are created on that exact layout, and
 * gradients of activations use the layout of the activation. Only the network input (the
 * caller's plain NCHW batch) and the logits (plain (N, classes), read by the loss in C) are
 * fixed.
 *
 * Leaves out: the network structure (model.c), thread control (the caller sets OpenMP
 * threads before creating a set and must run it with the same count), and any error channel
 * while running: creation failures are ccdl_error (CCDL_ERR_RUNTIME naming the layer),
 * execution failures are fatal (ccdl_die), as they mean a broken installation. */
#ifndef CCDL_LAYERS_H
#define CCDL_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include <oneapi/dnnl/dnnl.h>

#include "util.h"

/* PyTorch's BatchNorm2d defaults. */
#define BN_EPSILON 1e-5f
#define BN_MOMENTUM 0.1f

// ---------------------------------------------------------------------------- environment

/* The oneDNN objects every layer shares: CPU engine, in-order stream, and primitive
 * attributes with a user-managed scratchpad (so executing never allocates one). */
typedef struct {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_primitive_attr_t attr;
} layer_env;

int layer_env_init(layer_env *env, ccdl_error *err); /* -1 + err on failure; env is cleaned */
void layer_env_free(layer_env *env);

/* One primitive and the scratchpad memory it executes with. */
typedef struct {
    dnnl_primitive_t prim;
    dnnl_memory_t scratch; /* NULL if the primitive needs none */
    char what[80];         /* "s2b1.conv1: convolution forward", for messages */
} layer_op;

// ---------------------------------------------------------------------------- sets and arena

/* The per-call working memory shared by a model's sets (see the header comment). */
typedef struct {
    char *buf; /* 64-byte aligned */
    size_t bytes;
} layer_arena;

void layer_arena_free(layer_arena *a);

/* All primitives and memory objects for one batch size and mode. Owns every primitive and
 * memory object made through it; layer_set_destroy frees them all. */
typedef struct {
    layer_env *env;
    int batch;
    int training; /* 1: forward_training + backward primitives; 0: forward_inference only */
    /* Layout of the 4-D activations producers create: dnnl_format_tag_any (the default) lets
     * each producer choose; a concrete tag forces it, for the networks where oneDNN's choice
     * under "any" lands on a reference kernel (model.c tries a few; see layer_set_reference). */
    dnnl_format_tag_t act_tag;
    size_t bytes; /* arena bytes this set needs */
    layer_op **ops;
    int n_ops, cap_ops;
    struct layer_mem {
        dnnl_memory_t mem;
        size_t offset; /* in the arena; SIZE_MAX: bound by the caller per call */
    } * mems;
    int n_mems, cap_mems;
    char *bound_base; /* arena buffer the arena memories point into; NULL = not yet */
    int finished;
} layer_set;

void layer_set_init(layer_set *s, layer_env *env, int batch, int training);
void layer_set_destroy(layer_set *s); /* NULL-safe; leaves s zeroed */

/* Reserve bytes (64-byte aligned) in the set's part of the arena; returns the offset. */
size_t layer_set_reserve(layer_set *s, size_t bytes);

/* A memory object with layout md at arena offset `offset` (from layer_set_reserve), or,
 * with offset SIZE_MAX, without storage (the caller binds it with layer_bind per call). */
int layer_set_memory(layer_set *s, dnnl_memory_t *mem, const dnnl_memory_desc_t *md, size_t offset,
                     const char *what, ccdl_error *err);
/* Reserve room for md and make a memory object there. */
int layer_set_memory_new(layer_set *s, dnnl_memory_t *mem, const dnnl_memory_desc_t *md,
                         const char *what, ccdl_error *err);

/* After all layers are made: one scratchpad region, shared by the set's primitives (they run
 * one after another), sized for the hungriest. */
int layer_set_finish(layer_set *s, ccdl_error *err);

/* Before running a set: grow the arena if this set needs more, re-point its memories if the
 * arena moved. Allocation failure is fatal. */
void layer_set_bind(layer_set *s, layer_arena *a);

/* Point a storage-less memory at a caller buffer (oneDNN takes void *; inputs are only ever
 * read through it). */
void layer_bind(dnnl_memory_t mem, const void *ptr);
/* The buffer behind a memory object. */
float *layer_data(dnnl_memory_t mem);
/* Wait for every primitive queued so far (the CPU stream is in order; C code that reads an
 * output calls this first). */
void layer_wait(const layer_set *s);

// ---------------------------------------------------------------------------- descriptors

/* Plain f32 descriptor (nc, nchw, oihw, x by ndims) or "any" layout of the given dims. */
int layer_md_plain(dnnl_memory_desc_t *md, int ndims, const int64_t *dims, ccdl_error *err);
int layer_md_any(dnnl_memory_desc_t *md, int ndims, const int64_t *dims, ccdl_error *err);
/* A 4-D activation as the set's producers make it: "any", or the set's act_tag. */
int layer_md_act(const layer_set *s, dnnl_memory_desc_t *md, const int64_t dims[4],
                 ccdl_error *err);

// ---------------------------------------------------------------------------- kernels

/* For layer modules built on this one (tlayers.c): make o from an op descriptor (attr NULL:
 * the environment's) and register it with the set, which then places its scratchpad
 * (layer_set_finish), counts its kernel (layer_set_reference) and destroys it. On success
 * *pd is the primitive descriptor, for queries and as the hint of backward primitives; the
 * caller destroys it. */
int layer_op_make(layer_set *s, layer_op *o, const_dnnl_op_desc_t desc,
                  const_dnnl_primitive_attr_t attr, const_dnnl_primitive_desc_t hint,
                  dnnl_primitive_desc_t *pd, const char *name, const char *kind, ccdl_error *err);
/* Execute o; args has room for one more entry (the scratchpad). */
void layer_op_run(layer_set *s, const layer_op *o, dnnl_exec_arg_t *args, int nargs);

/* The implementation oneDNN chose for an op ("jit:avx512_core", "ref:any", ...). */
const char *layer_op_impl(const layer_op *o);
/* Visit every op of a set with its description and implementation name. */
void layer_set_each_op(const layer_set *s,
                       void (*visit)(void *ctx, const char *what, const char *impl), void *ctx);
/* How many ops run oneDNN's reference (naive C++) kernels: 10-20x slower than jit ones. */
int layer_set_reference(const layer_set *s);

/* A weight as one primitive wants it: the caller's plain view (bound per call) and, when
 * the primitive picked another layout, a copy in that layout in the arena plus the reorder
 * between them (user -> copy for inputs, copy -> user for gradients). */
typedef struct {
    dnnl_memory_t user;
    dnnl_memory_t inner; /* NULL: the primitive takes the plain layout itself */
    layer_op reorder;
} layer_weights;

// ---------------------------------------------------------------------------- convolution

/* 2-D convolution without bias (every conv in ResNet is followed by batch norm).
 * Weights: (c_out, c_in, k, k) row-major in the flat buffer. */
typedef struct {
    int c_in, c_out, k, stride, pad;
    dnnl_memory_desc_t src_md; /* (N, c_in, H, W) as given (or as chosen, if given "any") */
    dnnl_memory_desc_t dst_md; /* (N, c_out, OH, OW), OH = (H + 2 pad - k) / stride + 1 */
    layer_op fwd, bwd_data, bwd_weights;
    layer_weights w_fwd, w_bwd_data, w_diff;
    int bwd_data_reuses_fwd; /* bwd_data takes the same weight layout: reuse the fwd copy */
} conv_layer;

/* src_md: concrete layout, or "any" to let oneDNN choose (read it back from src_md).
 * need_diff_src = 0 skips the data gradient (first layer). */
int conv_layer_init(conv_layer *c, layer_set *s, const dnnl_memory_desc_t *src_md, int c_out, int k,
                    int stride, int pad, int need_diff_src, const char *name, ccdl_error *err);
void conv_layer_forward(layer_set *s, conv_layer *c, const float *w, dnnl_memory_t src,
                        dnnl_memory_t dst);
/* dw is overwritten. Must follow conv_layer_forward with the same w in the same set (the
 * blocked weight copy is reused). diff_src NULL: no data gradient. */
void conv_layer_backward(layer_set *s, conv_layer *c, const float *w, float *dw, dnnl_memory_t src,
                         dnnl_memory_t diff_dst, dnnl_memory_t diff_src);

// ---------------------------------------------------------------------------- batch norm

/* Batch normalization over (N, H, W) per channel, with scale (gamma) and shift (beta), and
 * optionally a fused ReLU. Training: normalizes with the batch mean and biased variance, and
 * updates the running statistics PyTorch's way: r = (1 - 0.1) r + 0.1 s, with the unbiased
 * variance (x n / (n - 1), n = N H W) for the running variance. Inference: normalizes with
 * the running statistics. Running statistics: mean (C) then variance (C), contiguous. */
typedef struct {
    int channels, relu;
    int64_t count; /* N * H * W values per channel */
    dnnl_memory_desc_t md;
    layer_op fwd, bwd;
    dnnl_memory_t scale, shift, diff_scale, diff_shift; /* (C), bound per call */
    dnnl_memory_t mean, var;                            /* (C) batch statistics, or running */
    dnnl_memory_t ws;                                   /* fused-ReLU mask; NULL if none */
} bn_layer;

int bn_layer_init(bn_layer *b, layer_set *s, const dnnl_memory_desc_t *md, int relu,
                  const char *name, ccdl_error *err);
/* Training sets. In place (dst == src) is allowed but src is needed by backward. */
void bn_layer_forward_training(layer_set *s, bn_layer *b, const float *scale, const float *shift,
                               float *running, dnnl_memory_t src, dnnl_memory_t dst);
/* Inference sets; in place is allowed. */
void bn_layer_forward_inference(layer_set *s, bn_layer *b, const float *scale, const float *shift,
                                const float *running, dnnl_memory_t src, dnnl_memory_t dst);
/* d_scale / d_shift are overwritten; diff_src may be diff_dst (in place). */
void bn_layer_backward(layer_set *s, bn_layer *b, const float *scale, const float *shift,
                       float *d_scale, float *d_shift, dnnl_memory_t src, dnnl_memory_t diff_dst,
                       dnnl_memory_t diff_src);

// ---------------------------------------------------------------------------- ReLU

/* In place; backward uses the output (relu_use_dst_for_bwd), so no input copy is kept. */
typedef struct {
    dnnl_memory_desc_t md;
    layer_op fwd, bwd;
} relu_layer;

int relu_layer_init(relu_layer *r, layer_set *s, const dnnl_memory_desc_t *md, const char *name,
                    ccdl_error *err);
void relu_layer_forward(layer_set *s, relu_layer *r, dnnl_memory_t data);
/* diff <- diff * (dst > 0), in place. */
void relu_layer_backward(layer_set *s, relu_layer *r, dnnl_memory_t dst, dnnl_memory_t diff);

// ---------------------------------------------------------------------------- residual add

/* acc <- acc + other, or relu(acc + other), in place (oneDNN binary add; the ReLU rides
 * along as a post-op where that is correct, see layers.c). other may have another layout
 * than acc (a shortcut from a layer that chose differently). Backward of the sum is the
 * identity to both inputs; with ReLU it gates the gradient by the output. The plain form
 * also accumulates gradients of a tensor with two consumers. */
typedef struct {
    int relu;
    int fused; /* ReLU as a post-op of the add; else a separate in-place eltwise */
    dnnl_memory_desc_t md;
    layer_op fwd, relu_fwd, bwd; /* relu_fwd only when not fused; bwd only in training */
} add_layer;

/* other_md NULL: the same layout as md. */
int add_layer_init(add_layer *a, layer_set *s, const dnnl_memory_desc_t *md,
                   const dnnl_memory_desc_t *other_md, int relu, const char *name, ccdl_error *err);
void add_layer_forward(layer_set *s, add_layer *a, dnnl_memory_t acc, dnnl_memory_t other);
/* diff <- diff * (out > 0) in place; nothing to do without ReLU. */
void add_layer_backward(layer_set *s, add_layer *a, dnnl_memory_t out, dnnl_memory_t diff);

// ---------------------------------------------------------------------------- pooling

typedef enum { POOL_MAX, POOL_AVG } pool_kind;

/* Max or average pooling (average excludes padding, like PyTorch's count_include_pad=False;
 * ResNet uses no padding). kernel = 0 means global: the whole H x W, output 1 x 1. */
typedef struct {
    pool_kind kind;
    int kernel_h, kernel_w, stride, pad;
    dnnl_memory_desc_t src_md, dst_md;
    layer_op fwd, bwd;
    dnnl_memory_t ws; /* max pooling in training: argmax positions */
} pool_layer;

/* Layout conversion of an activation (the network input into a forced layout). */
typedef struct {
    layer_op op;
} reorder_layer;

int reorder_layer_init(reorder_layer *r, layer_set *s, const dnnl_memory_desc_t *from,
                       const dnnl_memory_desc_t *to, const char *name, ccdl_error *err);
void reorder_layer_forward(layer_set *s, reorder_layer *r, dnnl_memory_t src, dnnl_memory_t dst);

int pool_layer_init(pool_layer *p, layer_set *s, const dnnl_memory_desc_t *src_md, pool_kind kind,
                    int kernel, int stride, int pad, const char *name, ccdl_error *err);
void pool_layer_forward(layer_set *s, pool_layer *p, dnnl_memory_t src, dnnl_memory_t dst);
void pool_layer_backward(layer_set *s, pool_layer *p, dnnl_memory_t diff_dst,
                         dnnl_memory_t diff_src);

// ---------------------------------------------------------------------------- inner product

/* Fully connected: dst (N, out) plain = src . W^T + b, src (N, C) or (N, C, H, W) in any
 * layout. Weights: (out, C*H*W) row-major with the input flattened in C, H, W order, then
 * bias (out). */
typedef struct {
    int in, out;
    dnnl_memory_desc_t src_md, dst_md;
    layer_op fwd, bwd_data, bwd_weights;
    layer_weights w_fwd, w_bwd_data, w_diff;
    int bwd_data_reuses_fwd;
    dnnl_memory_t bias, diff_bias; /* (out), bound per call */
} ip_layer;

int ip_layer_init(ip_layer *l, layer_set *s, const dnnl_memory_desc_t *src_md, int out,
                  int need_diff_src, const char *name, ccdl_error *err);
void ip_layer_forward(layer_set *s, ip_layer *l, const float *w, const float *b, dnnl_memory_t src,
                      dnnl_memory_t dst);
/* dw, db are overwritten; same rules as conv_layer_backward. */
void ip_layer_backward(layer_set *s, ip_layer *l, const float *w, float *dw, float *db,
                       dnnl_memory_t src, dnnl_memory_t diff_dst, dnnl_memory_t diff_src);

// ---------------------------------------------------------------------------- loss

/* Softmax cross-entropy over plain logits (batch, classes), in C: it is tiny and its sums
 * belong in double. Returns the SUM of per-sample losses; if dlogits, writes
 * d(mean loss)/d(logits) = (softmax - onehot) / batch; if correct, adds the number of
 * samples whose argmax (lowest index on ties) is the label. A label outside 0..classes-1
 * is fatal. */
double softmax_xent(const float *logits, const int32_t *y, int batch, int classes, float *dlogits,
                    int64_t *correct);

#endif
