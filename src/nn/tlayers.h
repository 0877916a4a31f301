/* tlayers.h: transformer layers (Vaswani et al. 2017) on oneDNN 2.x primitives, forward and
 * backward, for the paper's down-scaled Multi30k En-De transformer (Section 4.4, App. E.4).
 *
 * Same rules as layers.h, on which this builds: primitives are made once per shape and
 * reused; layers never own parameters (run functions take plain float pointers into the
 * caller's flat parameter / gradient buffers); per-call working memory comes from the
 * layer_arena; creation errors are ccdl_error, execution errors fatal.
 *
 * Tensors are plain row-major f32. Activations are (B, T, d) = (B * T rows, d): B sentences
 * padded to length T. Masks are bytes, 1 = padding. Primitives are made for fixed shapes: the
 * caller keeps one tl_set per batch shape (B, T_src, T_tgt) and one encoder and one decoder
 * layer object in it serve every layer of the stack (docs/transformer.md: why not runtime
 * dims, and what a new shape costs).
 *
 * Activations a layer's backward needs are written by its forward into a caller buffer
 * (`saved`, *_saved_floats of them per layer and shape); inference sets need no such
 * buffer (pass NULL: the arena holds them). Gradients of parameters are OVERWRITTEN by
 * backward (each parameter is used once per step), except the embedding's scatter-add and
 * the decoder's gradient of the encoder output, which ADD (several consumers).
 *
 * Leaves out: the network assembly (embedding scale, stacks, output projection, greedy
 * decoding are the model's), parameter initialisation, and incremental (cached key/value)
 * decoding: inference runs the decoder on the whole padded target and the causal mask makes
 * positions <= t independent of later ones, so a prefix of length t is read at t - 1. */
#ifndef CCDL_TLAYERS_H
#define CCDL_TLAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "layers.h"
#include "rng.h"

/* PyTorch's nn.LayerNorm default. */
#define TL_LN_EPSILON 1e-5f
/* rng_seed purpose of dropout masks (rng.h's purposes end at 6; to move there). */
#define TL_RNG_DROPOUT 7
/* Dropout sites one encoder or decoder layer uses: site .. site + TL_LAYER_SITES - 1. */
#define TL_LAYER_SITES 8

// ---------------------------------------------------------------------------- sets

/* A layer_set (memories, arena, and every op: layers.c's and the matmul, layer
 * normalization and softmax ops made here, all registered with it through layer_op_make)
 * plus the bound arena's address. */
typedef struct {
    layer_set base;
    char *arena; /* the bound arena's buffer (tl_set_bind) */
} tl_set;

/* batch: only for messages. training = 0: forward-inference primitives only. */
void tl_set_init(tl_set *s, layer_env *env, int batch, int training);
/* After every layer of the set is made. */
int tl_set_finish(tl_set *s, ccdl_error *err);
/* Before running: grow / re-point the arena (layer_set_bind), remember its buffer. */
void tl_set_bind(tl_set *s, layer_arena *a);
void tl_set_destroy(tl_set *s); /* NULL-safe; frees every layer made in the set */

// ---------------------------------------------------------------------------- dropout

/* Who draws: masks are a pure function of (seed, step, worker, site) and the element index,
 * never of the rank layout or the thread count (drawn sequentially in C). */
typedef struct {
    uint64_t seed, step;
    uint32_t worker;
} tl_dropout_key;

/* mask[i] = 1 (keep, probability 1 - rate) or 0; stream rng_seed(seed, TL_RNG_DROPOUT, step,
 * worker << 32 | site), 32 bits per element in order (element i: half i % 2 of draw i / 2),
 * kept when they are >= floor(rate 2^32). rate must be in [0, 1). */
void tl_dropout_mask(const tl_dropout_key *key, uint32_t site, float rate, size_t n, uint8_t *mask);
/* x[i] *= mask[i] / (1 - rate): the forward and the backward (on the gradient) alike. */
void tl_dropout_apply(float *x, const uint8_t *mask, float rate, size_t n);

// ---------------------------------------------------------------------------- embedding

/* out[b, t, :] = scale * table[tokens[b, t], :] + PE(t) with Vaswani's sinusoids
 * PE(t, 2i) = sin(t / 10000^(2i/d)), PE(t, 2i+1) = cos(t / 10000^(2i/d)), t from 0 (right
 * padding assumed: positions count from the first column). scale = sqrt(d) in Vaswani.
 * A token outside 0..vocab-1 is fatal. */
void tl_embed_forward(const float *table, int vocab, int d, float scale, const int32_t *tokens,
                      int batch, int len, float *out);
/* dtable[tokens[b, t], :] += scale * dout[b, t, :], except for tokens equal to pad (their row
 * gets no gradient, like nn.Embedding's padding_idx). Adds: the caller zeroes dtable. */
void tl_embed_backward(float *dtable, int vocab, int d, float scale, int pad, const int32_t *tokens,
                       int batch, int len, const float *dout);
/* PE(pos, i) for i < d, computed in double. */
void tl_positional_encoding(int pos, int d, float *pe);

// ---------------------------------------------------------------------------- linear

/* y (rows, out) = x (rows, in) . W^T + b; W (out, in) row-major, then b (out): PyTorch's
 * nn.Linear. Three matmul primitives made with a run-time row count (so a new batch shape
 * costs no kernel generation, docs/transformer.md) reading W in place, no reorder; the bias
 * gradient is a column sum in C. */
typedef struct {
    int rows, in, out;
    layer_op fwd, bwd_data, bwd_weights;
    dnnl_memory_t x, w, b, y;      /* forward operands, bound per call */
    dnnl_memory_t dy, w_plain, dx; /* backward data: dx = dy . W */
    dnnl_memory_t dy_t, x_w, dw;   /* backward weights: dW = dy^T . x */
    size_t ar_colsum;              /* double column sums of the bias gradient */
} tl_linear;

int tl_linear_init(tl_linear *l, tl_set *s, int rows, int in, int out, int need_dx,
                   const char *name, ccdl_error *err);
void tl_linear_forward(tl_set *s, tl_linear *l, const float *w, const float *b, const float *x,
                       float *y);
/* dw, db overwritten; dx overwritten (NULL: not wanted; needs need_dx). */
void tl_linear_backward(tl_set *s, tl_linear *l, const float *w, float *dw, float *db,
                        const float *x, const float *dy, float *dx);

// ---------------------------------------------------------------------------- layer norm

/* y = (x - mean) / sqrt(var + eps) * gamma + beta over the last dim (biased variance),
 * eps = TL_LN_EPSILON: oneDNN's layer normalization. */
typedef struct {
    int rows, dim;
    layer_op fwd, bwd;
    dnnl_memory_t x, y, mean, var, gamma, beta, dy, dx, dgamma, dbeta; /* bound per call */
} tl_layernorm;

int tl_layernorm_init(tl_layernorm *n, tl_set *s, int rows, int dim, const char *name,
                      ccdl_error *err);
/* Training sets write mean and var (rows each) for the backward; inference sets ignore them
 * (may be NULL). y may be x. */
void tl_layernorm_forward(tl_set *s, tl_layernorm *n, const float *gamma, const float *beta,
                          const float *x, float *y, float *mean, float *var);
/* dgamma, dbeta, dx overwritten; dx may be dy. */
void tl_layernorm_backward(tl_set *s, tl_layernorm *n, const float *gamma, const float *beta,
                           float *dgamma, float *dbeta, const float *x, const float *mean,
                           const float *var, const float *dy, float *dx);

// ---------------------------------------------------------------------------- attention

/* One matmul primitive and its three operands (bound per call). */
typedef struct {
    layer_op op;
    dnnl_memory_t a, b, c;
} tl_matmul;

/* Multi-head scaled dot-product attention with its projections (PyTorch's
 * nn.MultiheadAttention, batch first):
 *   [Q K V] = [xq xkv xkv] . in_proj_weight^T + in_proj_bias   (head h: columns h dh ..)
 *   S = Q_h K_h^T / sqrt(dh) (+ -inf where the key is padding, or, causal, key t' > query t)
 *   P = dropout(softmax(S)),  ctx_h = P V_h,  y = ctx . out_proj.weight^T + out_proj.bias
 * Parameters, contiguous: in_proj_weight (3d, d), in_proj_bias (3d), out_proj.weight (d, d),
 * out_proj.bias (d). Self-attention (xq == xkv, one fused QKV inner product) or
 * cross-attention (Q from xq, K and V from xkv, e.g. the encoder output).
 * Every query row must see at least one key (true for right padding and non-empty
 * sentences): a fully masked row would be NaN. */
typedef struct {
    int batch, tq, tk, d, heads, self, causal;
    float attn_dropout;
    tl_linear qkv;    /* self: xq -> (rows, 3d) */
    tl_linear q, kv;  /* cross: xq -> (rows_q, d), xkv -> (rows_k, 2d) */
    tl_linear out;    /* ctx -> y */
    tl_matmul scores; /* Q K^T / sqrt(dh) */
    tl_matmul context;
    tl_matmul d_probs, d_v, d_q, d_k; /* backward */
    layer_op softmax_fwd, softmax_bwd;
    dnnl_memory_t sm_dst, sm_diff;
    add_layer acc_kv; /* cross: dxkv += this block's part */
    dnnl_memory_t acc_dst, acc_part;
    /* saved activations, float offsets in `saved` */
    size_t off_qkv, off_kv, off_probs, off_dropped, off_ctx, off_mask, saved_floats;
    /* arena byte offsets of per-call temporaries */
    size_t ar_saved, ar_dctx, ar_dprobs, ar_dqkv, ar_dkv, ar_dxkv;
} tl_mha;

int tl_mha_init(tl_mha *a, tl_set *s, int batch, int tq, int tk, int d, int heads,
                int self_attention, int causal, float attn_dropout, const char *name,
                ccdl_error *err);
/* key_pad: (batch, tk) bytes, 1 = padding key; NULL = none. key: NULL or attn_dropout 0 =
 * no dropout (inference sets never drop). site: this attention's dropout site. saved:
 * tl_mha.saved_floats floats in training sets; NULL in inference sets. y: (batch tq, d). */
void tl_mha_forward(tl_set *s, tl_mha *a, const float *params, const float *xq, const float *xkv,
                    const uint8_t *key_pad, const tl_dropout_key *key, uint32_t site, float *y,
                    float *saved);
/* grads: same layout as params, overwritten. dxq overwritten (self: the whole input
 * gradient). Cross: dxkv += the gradient of xkv (NULL: not wanted). */
void tl_mha_backward(tl_set *s, tl_mha *a, const float *params, float *grads, const float *xq,
                     const float *xkv, const float *saved, const float *dy, float *dxq,
                     float *dxkv);
size_t tl_mha_param_count(int d);

// ---------------------------------------------------------------------------- layers

/* The dimensions and dropout rates of one encoder / decoder layer. dropout: on each
 * sublayer's output before the residual add (Vaswani's P_drop); attn_dropout: on the
 * attention weights; relu_dropout: on the feed-forward hidden layer after the ReLU. */
typedef struct {
    int d_model, heads, d_ff;
    float dropout, attn_dropout, relu_dropout;
} tl_config;

/* One parameter tensor of a layer, in the layer's flat block. decay: 1 for weight matrices,
 * 0 for biases and layer-norm scales and shifts (a hint for the weight-decay mask). */
typedef struct {
    const char *name; /* PyTorch's nn.TransformerEncoderLayer / DecoderLayer state-dict name */
    int ndims;
    int64_t dims[2];
    size_t offset, count; /* floats, from the start of the layer's block */
    int decay;
} tl_tensor;

#define TL_MAX_TENSORS 18

/* Fills t (if not NULL, room for TL_MAX_TENSORS) and returns the tensor count. The block's
 * size is the last offset + count (tl_*_param_count). */
int tl_encoder_layer_tensors(const tl_config *c, tl_tensor *t);
int tl_decoder_layer_tensors(const tl_config *c, tl_tensor *t);
size_t tl_encoder_layer_param_count(const tl_config *c);
size_t tl_decoder_layer_param_count(const tl_config *c);
/* Forward FLOPs (2 x multiply-adds of the matrix products; softmax, norms, adds not
 * counted) per token of a batch whose sentences are padded to len (encoder), or per target
 * token with targets of tgt_len and sources of src_len (decoder: the cross-attention's K/V
 * projection of src_len source tokens shared by tgt_len target tokens). Training is about
 * 3 x this. */
double tl_encoder_layer_flops(const tl_config *c, int len);
double tl_decoder_layer_flops(const tl_config *c, int tgt_len, int src_len);

/* The sublayers below, post-norm as in Vaswani et al.: x + dropout(sublayer(x)) then
 * layer norm. */
typedef struct {
    tl_mha mha;
    tl_layernorm ln;
    add_layer add;
    float dropout;
    int rows, d;
    dnnl_memory_t acc, other;                                            /* bound per call */
    size_t off_flag, off_sum, off_mean, off_var, off_mask, saved_floats; /* in the block */
    size_t ar_dsum, ar_dy;
} tl_attn_block;

typedef struct {
    tl_linear ff1, ff2;
    relu_layer relu;
    tl_layernorm ln;
    add_layer add;
    float dropout, relu_dropout;
    int rows, d, d_ff;
    size_t off_flags, off_hidden, off_sum, off_mean, off_var, off_mask, saved_floats;
    dnnl_memory_t acc, other, hidden, dhidden; /* bound per call */
    size_t ar_hmask, ar_dsum, ar_df, ar_dh;
} tl_ffn_block;

/* x (batch len, d) -> y: self-attention block, feed-forward block. */
typedef struct {
    tl_config c;
    int batch, len;
    tl_attn_block attn;
    tl_ffn_block ffn;
    tl_tensor t[TL_MAX_TENSORS];
    size_t off_x1, off_ffn, saved_floats;
    size_t ar_saved, ar_dx1;
} tl_encoder_layer;

/* x (batch tgt_len, d), enc (batch src_len, d) -> y: causal self-attention block,
 * cross-attention block (keys and values from enc), feed-forward block. */
typedef struct {
    tl_config c;
    int batch, tgt_len, src_len;
    tl_attn_block self_attn, cross_attn;
    tl_ffn_block ffn;
    tl_tensor t[TL_MAX_TENSORS];
    size_t off_x1, off_cross, off_x2, off_ffn, saved_floats;
    size_t ar_saved, ar_dx1, ar_dx2;
} tl_decoder_layer;

int tl_encoder_layer_init(tl_encoder_layer *e, tl_set *s, const tl_config *c, int batch, int len,
                          const char *name, ccdl_error *err);
/* pad: (batch, len) bytes, 1 = padding (NULL: none). key NULL: no dropout. Sites site ..
 * site + TL_LAYER_SITES - 1 (give every layer of the network its own range). saved:
 * e->saved_floats floats (training sets), NULL (inference sets). y must not alias x. */
void tl_encoder_layer_forward(tl_set *s, tl_encoder_layer *e, const float *params, const float *x,
                              const uint8_t *pad, const tl_dropout_key *key, uint32_t site,
                              float *y, float *saved);
/* grads overwritten; dx overwritten (must not alias dy). */
void tl_encoder_layer_backward(tl_set *s, tl_encoder_layer *e, const float *params, float *grads,
                               const float *x, const float *saved, const float *dy, float *dx);

int tl_decoder_layer_init(tl_decoder_layer *l, tl_set *s, const tl_config *c, int batch,
                          int tgt_len, int src_len, const char *name, ccdl_error *err);
/* tgt_pad (batch, tgt_len) may be NULL (the causal mask already hides right padding from
 * real positions); src_pad (batch, src_len). */
void tl_decoder_layer_forward(tl_set *s, tl_decoder_layer *l, const float *params, const float *x,
                              const uint8_t *tgt_pad, const float *enc, const uint8_t *src_pad,
                              const tl_dropout_key *key, uint32_t site, float *y, float *saved);
/* grads and dx overwritten; d_enc += the gradient of enc (the caller zeroes it once for the
 * whole decoder stack). */
void tl_decoder_layer_backward(tl_set *s, tl_decoder_layer *l, const float *params, float *grads,
                               const float *x, const float *enc, const float *saved,
                               const float *dy, float *dx, float *d_enc);

// ---------------------------------------------------------------------------- loss

typedef struct {
    double loss;    /* sum over non-padding targets of the smoothed loss */
    double nll;     /* sum of -log p(target): for perplexity */
    int64_t tokens; /* non-padding targets */
} tl_xent;

/* Label-smoothed cross-entropy over plain logits (rows, vocab), fairseq's
 * label_smoothed_nll_loss as of 2020 (eps_i = eps / V):
 *   loss_r = (1 - eps) (-log p_y) + (eps / V) sum_c (-log p_c)
 * for rows whose target y != pad (padding rows count nothing). If dlogits:
 *   dlogits[r, c] = grad_scale (p_c - (1 - eps) [c == y] - eps / V), 0 on padding rows
 * (grad_scale = 1 / tokens gives the gradient of the per-token mean). Sums in double. A
 * target outside 0..vocab-1 (other than pad) is fatal. dlogits may be logits (each row is
 * read in full before it is written): the model saves a (rows, vocab) buffer that way. */
tl_xent tl_smoothed_xent(const float *logits, const int32_t *target, int64_t rows, int vocab,
                         int pad, double eps, double grad_scale, float *dlogits);

#endif
