/* transformer.c: the "transformer" kind, an encoder-decoder transformer (Vaswani et al.
 * 2017) for translation, assembled from the layers of tlayers.h (docs/transformer.md,
 * "The network").
 *
 *   source ids -> sqrt(d) E_src[id] + PE -> dropout -> enc_layers encoder layers -> memory
 *   <bos> + target ids -> sqrt(d) E_tgt[id] + PE -> dropout -> dec_layers decoder layers
 *       (causal self-attention, cross-attention on the memory with the source padding mask)
 *   -> logits = h E_tgt^T (output projection tied to the target embedding, no bias)
 *   -> label-smoothed cross-entropy over the non-pad targets.
 *
 * Parameters, in buffer order: enc.embed.weight (src_vocab, d), enc.layers.<l>.* (one
 * tlayers encoder block each), dec.embed.weight (tgt_vocab, d), dec.layers.<l>.* (one
 * decoder block each). No state.
 *
 * Runtime: primitive sets per batch shape (B, T_src, T_tgt) and use (training, evaluation,
 * greedy encoding, greedy decoding step), made on first use and kept in a small LRU cache.
 * Everything a call needs between its own passes (layer inputs, saved activations, logits,
 * gradients of activations) sits in the model's shared arena, reserved by the set: a call
 * runs alone, so the arena is sized for the hungriest set and nothing survives a call. Only
 * greedy decoding keeps the encoder output across sets, in buffers of the runtime. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "model_kind.h"
#include "rng.h"
#include "tlayers.h"

/* Sets kept at once. A new shape costs ~1-2 ms of primitive creation (docs/transformer.md);
 * a training step at paper sizes costs hundreds, so evicting now and then is cheap, while a
 * cache of every shape ever seen would grow with the data. */
#define TF_CACHE_SETS 64
/* Greedy decoding runs the decoder on the prefix padded up to a multiple of this: the
 * prefix costs at most this many extra positions, and a source shape needs at most
 * max_len / TF_STEP_BUCKET + 1 decoder sets. */
#define TF_STEP_BUCKET 8
/* flops_per_sample: forward FLOPs per target token with sources and targets of this many
 * tokens (Multi30k: ~13 words + <eos> on either side), or max_len if smaller. */
#define TF_FLOPS_REF_LEN 16

// ---------------------------------------------------------------------------- description

typedef enum { INIT_XAVIER, INIT_EMBED, INIT_ZERO, INIT_ONE } tf_init;

/* One tensor as init_params needs it. */
typedef struct {
    size_t offset, count;
    int64_t rows, cols; /* cols 0: a vector */
    tf_init init;
} tf_param;

typedef struct {
    int d, src_vocab, tgt_vocab, enc_layers, dec_layers;
    tl_config layer;
    float emb_dropout;
    double label_smoothing;
    size_t src_embed, tgt_embed; /* tables; tgt_embed is also the output projection */
    size_t enc_base, enc_size;   /* encoder layer l at enc_base + l enc_size */
    size_t dec_base, dec_size;
    int n_params;
    tf_param p[]; /* every tensor, buffer order */
} tf_desc;

static size_t enc_layer_offset(const tf_desc *D, int l) {
    return D->enc_base + (size_t)l * D->enc_size;
}
static size_t dec_layer_offset(const tf_desc *D, int l) {
    return D->dec_base + (size_t)l * D->dec_size;
}

/* Dropout sites (tlayers.h: a layer uses TL_LAYER_SITES from its first): encoder layer l,
 * decoder layer l, then the two embeddings. */
static uint32_t enc_site(const tf_desc *D, int l) {
    (void)D;
    return (uint32_t)(TL_LAYER_SITES * l);
}
static uint32_t dec_site(const tf_desc *D, int l) {
    return (uint32_t)(TL_LAYER_SITES * (D->enc_layers + l));
}
static uint32_t src_embed_site(const tf_desc *D) {
    return (uint32_t)(TL_LAYER_SITES * (D->enc_layers + D->dec_layers));
}
static uint32_t tgt_embed_site(const tf_desc *D) {
    return src_embed_site(D) + 1;
}

static tl_config layer_config(const model_config *cfg) {
    const struct model_seq_config *q = &cfg->seq;
    return (tl_config){.d_model = q->d_model,
                       .heads = q->heads,
                       .d_ff = q->d_ff,
                       .dropout = (float)q->dropout,
                       .attn_dropout = (float)q->attn_dropout,
                       .relu_dropout = (float)q->relu_dropout};
}

static int rate_ok(double r) {
    return r >= 0 && r < 1; /* false for NaN */
}

static int tf_check(const model_config *cfg, ccdl_error *err) {
    const struct model_seq_config *q = &cfg->seq;
    const struct {
        const char *key;
        int value;
    } positive[] = {{"model.d_model", q->d_model},
                    {"model.heads", q->heads},
                    {"model.d_ff", q->d_ff},
                    {"model.enc_layers", q->enc_layers},
                    {"model.dec_layers", q->dec_layers}};
    for (size_t i = 0; i < sizeof positive / sizeof *positive; i++)
        if (positive[i].value < 1)
            return ccdl_fail(err, CCDL_ERR_INPUT, "%s: must be at least 1, got %d", positive[i].key,
                             positive[i].value);
    if (q->d_model % q->heads != 0)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "model.d_model: %d is not divisible by model.heads %d", q->d_model,
                         q->heads);
    const struct {
        const char *key;
        double value;
    } rates[] = {{"model.dropout", q->dropout},
                 {"model.attn_dropout", q->attn_dropout},
                 {"model.relu_dropout", q->relu_dropout},
                 {"model.label_smoothing", q->label_smoothing}};
    for (size_t i = 0; i < sizeof rates / sizeof *rates; i++)
        if (!rate_ok(rates[i].value))
            return ccdl_fail(err, CCDL_ERR_INPUT, "%s: %g is outside [0, 1)", rates[i].key,
                             rates[i].value);
    /* the 4 specials of data/text.h and at least one word */
    if (q->src_vocab < 5 || q->tgt_vocab < 5)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "data: the %s vocabulary has %d entries, need at least 5 (4 specials "
                         "and a word)",
                         q->src_vocab < 5 ? "source" : "target",
                         q->src_vocab < 5 ? q->src_vocab : q->tgt_vocab);
    if (q->max_len < 2)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "model.max_len: must be at least 2 (a word and <eos>), got %d",
                         q->max_len);
    return 0;
}

/* Role and initialisation of a tlayers tensor, from its shape and name. */
static void layer_tensor_kind(const tl_tensor *t, tensor_role *role, tf_init *init) {
    if (t->ndims == 2) {
        *role = TENSOR_WEIGHT, *init = INIT_XAVIER;
    } else if (strncmp(t->name, "norm", 4) == 0) {
        const int scale = strstr(t->name, ".weight") != NULL;
        *role = scale ? TENSOR_NORM_SCALE : TENSOR_NORM_SHIFT;
        *init = scale ? INIT_ONE : INIT_ZERO;
    } else {
        *role = TENSOR_BIAS, *init = INIT_ZERO;
    }
}

static void add_param(tf_desc *D, model_tensor_list *list, const char *name, tensor_role role,
                      int64_t rows, int64_t cols, tf_init init) {
    const int64_t shape[2] = {rows, cols};
    tf_param *p = &D->p[D->n_params++];
    p->offset = model_tensor_add(list, name, role, cols ? 2 : 1, shape);
    p->count = (size_t)rows * (size_t)(cols ? cols : 1);
    p->rows = rows, p->cols = cols, p->init = init;
}

/* Appends one layer block's tensors named prefix.<l>.<tlayers name>; returns its offset. */
static size_t add_layer_block(tf_desc *D, model_tensor_list *list, const char *prefix, int l,
                              const tl_tensor *t, int n) {
    size_t first = 0;
    for (int i = 0; i < n; i++) {
        char name[sizeof list->t[0].name];
        snprintf(name, sizeof name, "%s.%d.%s", prefix, l, t[i].name);
        tensor_role role;
        tf_init init;
        layer_tensor_kind(&t[i], &role, &init);
        add_param(D, list, name, role, t[i].dims[0], t[i].ndims == 2 ? t[i].dims[1] : 0, init);
        if (i == 0) first = D->p[D->n_params - 1].offset;
    }
    return first;
}

static void *tf_describe(const model_config *cfg, model_tensor_list *list, size_t *n_state) {
    const struct model_seq_config *q = &cfg->seq;
    const tl_config lc = layer_config(cfg);
    tl_tensor et[TL_MAX_TENSORS], dt[TL_MAX_TENSORS];
    const int ne = tl_encoder_layer_tensors(&lc, et), nd = tl_decoder_layer_tensors(&lc, dt);
    const size_t n_params = 2 + (size_t)q->enc_layers * ne + (size_t)q->dec_layers * nd;
    tf_desc *D = xcalloc(1, sizeof *D + n_params * sizeof D->p[0]);
    D->d = q->d_model, D->src_vocab = q->src_vocab, D->tgt_vocab = q->tgt_vocab;
    D->enc_layers = q->enc_layers, D->dec_layers = q->dec_layers;
    D->layer = lc;
    D->emb_dropout = (float)q->dropout; /* Vaswani's P_drop on the embedding sums too */
    D->label_smoothing = q->label_smoothing;
    D->enc_size = tl_encoder_layer_param_count(&lc);
    D->dec_size = tl_decoder_layer_param_count(&lc);

    add_param(D, list, "enc.embed.weight", TENSOR_WEIGHT, q->src_vocab, q->d_model, INIT_EMBED);
    D->src_embed = D->p[D->n_params - 1].offset;
    for (int l = 0; l < q->enc_layers; l++) {
        size_t off = add_layer_block(D, list, "enc.layers", l, et, ne);
        if (l == 0) D->enc_base = off;
    }
    add_param(D, list, "dec.embed.weight", TENSOR_WEIGHT, q->tgt_vocab, q->d_model, INIT_EMBED);
    D->tgt_embed = D->p[D->n_params - 1].offset;
    for (int l = 0; l < q->dec_layers; l++) {
        size_t off = add_layer_block(D, list, "dec.layers", l, dt, nd);
        if (l == 0) D->dec_base = off;
    }
    *n_state = 0;
    return D;
}

/* Each tensor its own stream rng_seed(seed, RNG_INIT, tensor index, 0): a tensor's values
 * depend on the seed and its place in the list only. */
static void tf_init_params(const void *desc, const model_config *cfg, float *params,
                           uint64_t seed) {
    (void)cfg;
    const tf_desc *D = desc;
    for (int i = 0; i < D->n_params; i++) {
        const tf_param *p = &D->p[i];
        float *x = params + p->offset;
        rng_t r;
        rng_seed(&r, seed, RNG_INIT, (uint64_t)i, 0);
        switch (p->init) {
        case INIT_XAVIER: { /* Glorot & Bengio: U(+-sqrt(6 / (fan_in + fan_out))) */
            const double bound = sqrt(6.0 / (double)(p->rows + p->cols));
            for (size_t k = 0; k < p->count; k++) x[k] = (float)(bound * (2 * rng_uniform(&r) - 1));
            break;
        }
        case INIT_EMBED: { /* fairseq: N(0, d^-1/2), so sqrt(d) E[id] has unit scale */
            const double std = 1 / sqrt((double)D->d);
            for (size_t k = 0; k < p->count; k++) x[k] = (float)(std * rng_normal(&r));
            break;
        }
        case INIT_ZERO:
        case INIT_ONE:
            for (size_t k = 0; k < p->count; k++) x[k] = p->init == INIT_ONE ? 1.0f : 0.0f;
            break;
        }
    }
}

/* Forward FLOPs per target token for sources and targets of L = min(16, max_len) tokens:
 * the encoder per source token (as many as target tokens), the decoder per target token,
 * the output projection 2 d V (tlayers' counting: 2 x multiply-adds of matrix products). */
static double tf_flops(const void *desc, const model_config *cfg) {
    const tf_desc *D = desc;
    const int len = cfg->seq.max_len < TF_FLOPS_REF_LEN ? cfg->seq.max_len : TF_FLOPS_REF_LEN;
    return D->enc_layers * tl_encoder_layer_flops(&D->layer, len) +
           D->dec_layers * tl_decoder_layer_flops(&D->layer, len, len) + 2.0 * D->d * D->tgt_vocab;
}

// ---------------------------------------------------------------------------- sets

typedef enum {
    SET_TRAIN,  /* forward + backward, full target */
    SET_EVAL,   /* inference forward, full target, all logits */
    SET_ENCODE, /* greedy: the encoder only */
    SET_STEP,   /* greedy: the decoder on a padded prefix, logits of one position per row */
} set_use;

typedef struct {
    int batch, src_len, tgt_len;
    set_use use;
    uint64_t last_used;
    tl_set s;
    tl_encoder_layer enc; /* one layer object serves every layer of a stack */
    tl_decoder_layer dec;
    tl_linear proj; /* d -> tgt_vocab on the embedding table; its bias a zero vector */
    /* arena byte offsets */
    size_t src_pad, enc_x, enc_saved, dec_x, dec_saved, src_mask, tgt_mask;
    size_t logits, zero_bias, bias_grad, d_dec, d_enc, rows_at;
} tf_set;

typedef struct {
    const tf_desc *D;
    layer_env *env;
    layer_arena *arena;
    tf_set *sets[TF_CACHE_SETS];
    int n_sets;
    uint64_t clock;
    int threads; /* omp_get_max_threads() when the cached sets were made */
    /* greedy decoding: what outlives one set (the encoder output and its mask) */
    float *memory;
    uint8_t *memory_pad;
    int32_t *prefix;
    uint8_t *done;
    size_t memory_cap, pad_cap, prefix_cap, done_cap;
} tf_runtime;

static float *arena_f(const tf_set *S, size_t offset) {
    return (float *)(void *)(S->s.arena + offset);
}
static uint8_t *arena_b(const tf_set *S, size_t offset) {
    return (uint8_t *)(S->s.arena + offset);
}
static size_t reserve(tf_set *S, size_t bytes) {
    return layer_set_reserve(&S->s.base, bytes);
}
static size_t reserve_f(tf_set *S, size_t floats) {
    return reserve(S, size_mul(floats, sizeof(float)));
}

static int set_has_encoder(set_use u) {
    return u != SET_STEP;
}
static int set_has_decoder(set_use u) {
    return u != SET_ENCODE;
}

/* Primitives, then the arena regions the passes hand each other. Training keeps every
 * layer's input for the backward; inference alternates between two buffers per stack. */
static int set_make(tf_runtime *rt, tf_set *S, ccdl_error *err) {
    const tf_desc *D = rt->D;
    const int training = S->use == SET_TRAIN, B = S->batch, V = D->tgt_vocab;
    const size_t d = (size_t)D->d;
    const size_t src_n = (size_t)B * S->src_len * d, tgt_n = (size_t)B * S->tgt_len * d;
    tl_set *s = &S->s;
    tl_set_init(s, rt->env, B, training);
    if (set_has_encoder(S->use)) {
        if (tl_encoder_layer_init(&S->enc, s, &D->layer, B, S->src_len, "encoder", err)) return -1;
        S->src_pad = reserve(S, (size_t)B * S->src_len);
        S->enc_x = reserve_f(S, (size_t)(training ? D->enc_layers + 1 : 2) * src_n);
    }
    if (set_has_decoder(S->use)) {
        const int proj_rows = S->use == SET_STEP ? B : B * S->tgt_len;
        if (tl_decoder_layer_init(&S->dec, s, &D->layer, B, S->tgt_len, S->src_len, "decoder",
                                  err) ||
            tl_linear_init(&S->proj, s, proj_rows, D->d, V, training, "output projection", err))
            return -1;
        S->dec_x = reserve_f(S, (size_t)(training ? D->dec_layers + 1 : 2) * tgt_n);
        S->logits = reserve_f(S, (size_t)proj_rows * V);
        S->zero_bias = reserve_f(S, (size_t)V);
        if (S->use == SET_STEP) S->rows_at = reserve_f(S, (size_t)B * d);
    }
    if (training) {
        S->enc_saved = reserve_f(S, (size_t)D->enc_layers * S->enc.saved_floats);
        S->dec_saved = reserve_f(S, (size_t)D->dec_layers * S->dec.saved_floats);
        if (D->emb_dropout > 0) {
            S->src_mask = reserve(S, src_n);
            S->tgt_mask = reserve(S, tgt_n);
        }
        S->bias_grad = reserve_f(S, (size_t)V);
        S->d_dec = reserve_f(S, 2 * tgt_n);
        S->d_enc = reserve_f(S, 2 * src_n);
    }
    return tl_set_finish(s, err);
}

static void set_free(tf_set *S) {
    if (!S) return;
    tl_set_destroy(&S->s);
    free(S);
}

static void cache_clear(tf_runtime *rt) {
    for (int i = 0; i < rt->n_sets; i++) set_free(rt->sets[i]);
    rt->n_sets = 0;
}

/* The set for a shape and use, made on first use (failures are fatal, as in model.c's
 * set_get: they mean a broken oneDNN), bound to the arena. Evicts the least recently used
 * set when the cache is full. */
static tf_set *set_get(tf_runtime *rt, int batch, int src_len, int tgt_len, set_use use) {
    /* oneDNN sizes work splits for the thread count at creation (see model.c) */
    const int threads = omp_get_max_threads();
    if (threads != rt->threads) cache_clear(rt), rt->threads = threads;
    rt->clock++;
    tf_set *S = NULL;
    for (int i = 0; i < rt->n_sets && !S; i++) {
        tf_set *c = rt->sets[i];
        if (c->batch == batch && c->src_len == src_len && c->tgt_len == tgt_len && c->use == use)
            S = c;
    }
    if (!S) {
        S = xcalloc(1, sizeof *S);
        S->batch = batch, S->src_len = src_len, S->tgt_len = tgt_len, S->use = use;
        ccdl_error err = {0};
        if (set_make(rt, S, &err))
            ccdl_die("transformer: set for batch %d, lengths %d -> %d: %s", batch, src_len, tgt_len,
                     err.text);
        int slot = rt->n_sets;
        if (rt->n_sets == TF_CACHE_SETS) {
            slot = 0;
            for (int i = 1; i < rt->n_sets; i++)
                if (rt->sets[i]->last_used < rt->sets[slot]->last_used) slot = i;
            set_free(rt->sets[slot]);
        } else {
            rt->n_sets++;
        }
        rt->sets[slot] = S;
    }
    S->last_used = rt->clock;
    tl_set_bind(&S->s, rt->arena);
    return S;
}

// ---------------------------------------------------------------------------- passes

static void check_batch(const model_tokens *b, int need_target) {
    if (b->batch < 1 || b->src_len < 1 || (need_target && b->tgt_len < 1))
        ccdl_die("transformer: empty batch (%d sentences, lengths %d -> %d)", b->batch, b->src_len,
                 b->tgt_len);
}

static void pad_mask(const int32_t *tokens, size_t n, int pad, uint8_t *mask) {
    for (size_t i = 0; i < n; i++) mask[i] = tokens[i] == pad;
}

static float embed_scale(const tf_desc *D) {
    return (float)sqrt((double)D->d);
}

/* out = dropout(sqrt(d) table[tokens] + PE); mask NULL or key NULL: no dropout. */
static void embed(const tf_desc *D, const float *table, int vocab, const int32_t *tokens, int batch,
                  int len, const tl_dropout_key *key, uint32_t site, uint8_t *mask, float *out) {
    tl_embed_forward(table, vocab, D->d, embed_scale(D), tokens, batch, len, out);
    if (!key || !mask) return;
    const size_t n = (size_t)batch * len * D->d;
    tl_dropout_mask(key, site, D->emb_dropout, n, mask);
    tl_dropout_apply(out, mask, D->emb_dropout, n);
}

/* The encoder stack on the embedded source at enc_x; returns its output (in the set). */
static const float *encode(tf_set *S, const tf_desc *D, const float *params, const uint8_t *pad,
                           const tl_dropout_key *key) {
    const int training = S->use == SET_TRAIN;
    const size_t n = (size_t)S->batch * S->src_len * D->d;
    float *x = arena_f(S, S->enc_x);
    for (int l = 0; l < D->enc_layers; l++) {
        float *in = x + (training ? (size_t)l : (size_t)(l % 2)) * n;
        float *out = x + (training ? (size_t)l + 1 : (size_t)((l + 1) % 2)) * n;
        float *saved = training ? arena_f(S, S->enc_saved) + (size_t)l * S->enc.saved_floats : NULL;
        tl_encoder_layer_forward(&S->s, &S->enc, params + enc_layer_offset(D, l), in, pad, key,
                                 enc_site(D, l), out, saved);
    }
    return x + (training ? (size_t)D->enc_layers : (size_t)(D->enc_layers % 2)) * n;
}

/* The decoder stack on the embedded target at dec_x, attending to memory; returns its
 * output. No target padding mask: the causal mask keeps real positions from reading the
 * right padding. */
static const float *decode(tf_set *S, const tf_desc *D, const float *params, const float *memory,
                           const uint8_t *src_pad, const tl_dropout_key *key) {
    const int training = S->use == SET_TRAIN;
    const size_t n = (size_t)S->batch * S->tgt_len * D->d;
    float *x = arena_f(S, S->dec_x);
    for (int l = 0; l < D->dec_layers; l++) {
        float *in = x + (training ? (size_t)l : (size_t)(l % 2)) * n;
        float *out = x + (training ? (size_t)l + 1 : (size_t)((l + 1) % 2)) * n;
        float *saved = training ? arena_f(S, S->dec_saved) + (size_t)l * S->dec.saved_floats : NULL;
        tl_decoder_layer_forward(&S->s, &S->dec, params + dec_layer_offset(D, l), in, NULL, memory,
                                 src_pad, key, dec_site(D, l), out, saved);
    }
    return x + (training ? (size_t)D->dec_layers : (size_t)(D->dec_layers % 2)) * n;
}

/* logits = h E_tgt^T: the tied projection is a linear layer on the embedding table with a
 * zero bias (tl_linear always adds one). */
static float *project(tf_set *S, const tf_desc *D, const float *params, const float *h) {
    float *logits = arena_f(S, S->logits), *zero = arena_f(S, S->zero_bias);
    memset(zero, 0, (size_t)D->tgt_vocab * sizeof *zero); /* other sets share the arena */
    tl_linear_forward(&S->s, &S->proj, params + D->tgt_embed, zero, h, logits);
    layer_wait(&S->s.base);
    return logits;
}

static int64_t count_targets(const int32_t *target, size_t n, int pad) {
    int64_t count = 0;
    for (size_t i = 0; i < n; i++) count += target[i] != pad;
    return count;
}

static size_t param_count(const tf_desc *D) {
    const tf_param *last = &D->p[D->n_params - 1];
    return last->offset + last->count;
}

/* Full forward; returns the logits. key NULL: no dropout (and the set must not train). */
static float *forward(tf_set *S, const tf_desc *D, const float *params, const model_tokens *b,
                      const tl_dropout_key *key, const float **memory, const float **h) {
    const int B = b->batch, drop = key && D->emb_dropout > 0;
    uint8_t *pad = arena_b(S, S->src_pad);
    pad_mask(b->src, (size_t)B * b->src_len, b->pad, pad);
    embed(D, params + D->src_embed, D->src_vocab, b->src, B, b->src_len, key, src_embed_site(D),
          drop ? arena_b(S, S->src_mask) : NULL, arena_f(S, S->enc_x));
    *memory = encode(S, D, params, pad, key);
    embed(D, params + D->tgt_embed, D->tgt_vocab, b->tgt_in, B, b->tgt_len, key, tgt_embed_site(D),
          drop ? arena_b(S, S->tgt_mask) : NULL, arena_f(S, S->dec_x));
    *h = decode(S, D, params, *memory, pad, key);
    return project(S, D, params, *h);
}

/* Gradient of an embedding table from the gradient of its dropped-out output. */
static void embed_backward(const tf_desc *D, float *dtable, int vocab, int pad,
                           const int32_t *tokens, int batch, int len, const uint8_t *mask,
                           float *dout) {
    if (mask) tl_dropout_apply(dout, mask, D->emb_dropout, (size_t)batch * len * D->d);
    tl_embed_backward(dtable, vocab, D->d, embed_scale(D), pad, tokens, batch, len, dout);
}

static model_token_loss tf_forward_backward(void *rtp, const void *desc, const model_config *cfg,
                                            const float *params, float *grads,
                                            const model_tokens *b, uint64_t seed, int64_t step,
                                            int worker) {
    (void)cfg;
    tf_runtime *rt = rtp;
    const tf_desc *D = desc;
    check_batch(b, 1);
    const int B = b->batch, V = D->tgt_vocab;
    const size_t src_n = (size_t)B * b->src_len * D->d, tgt_n = (size_t)B * b->tgt_len * D->d;
    const size_t tgt_rows = (size_t)B * b->tgt_len;
    model_token_loss r = {0, 0, count_targets(b->tgt_out, tgt_rows, b->pad)};
    if (r.tokens == 0) { /* nothing to learn from: the gradient of an empty mean is 0 */
        memset(grads, 0, param_count(D) * sizeof *grads);
        return r;
    }
    tf_set *S = set_get(rt, B, b->src_len, b->tgt_len, SET_TRAIN);
    tl_set *s = &S->s;
    const tl_dropout_key key = {seed, (uint64_t)step, (uint32_t)worker};
    const float *memory, *h;
    float *logits = forward(S, D, params, b, &key, &memory, &h);
    /* dlogits in place of the logits: tl_smoothed_xent reads each row before writing it */
    const tl_xent x = tl_smoothed_xent(logits, b->tgt_out, (int64_t)tgt_rows, V, b->pad,
                                       D->label_smoothing, 1.0 / (double)r.tokens, logits);
    r.loss_sum = x.loss, r.nll_sum = x.nll;

    /* projection: overwrites the target table's gradient, the embedding then adds to it */
    float *dcur = arena_f(S, S->d_dec), *dnext = dcur + tgt_n;
    tl_linear_backward(s, &S->proj, params + D->tgt_embed, grads + D->tgt_embed,
                       arena_f(S, S->bias_grad), h, logits, dcur);
    float *d_memory = arena_f(S, S->d_enc);
    memset(d_memory, 0, src_n * sizeof *d_memory); /* every decoder layer adds to it */
    const float *dec_x = arena_f(S, S->dec_x), *dec_saved = arena_f(S, S->dec_saved);
    for (int l = D->dec_layers - 1; l >= 0; l--) {
        const size_t off = dec_layer_offset(D, l);
        tl_decoder_layer_backward(s, &S->dec, params + off, grads + off, dec_x + (size_t)l * tgt_n,
                                  memory, dec_saved + (size_t)l * S->dec.saved_floats, dcur, dnext,
                                  d_memory);
        float *t = dcur;
        dcur = dnext, dnext = t;
    }
    layer_wait(&s->base);
    const int drop = D->emb_dropout > 0;
    embed_backward(D, grads + D->tgt_embed, V, b->pad, b->tgt_in, B, b->tgt_len,
                   drop ? arena_b(S, S->tgt_mask) : NULL, dcur);

    dcur = d_memory, dnext = d_memory + src_n;
    const float *enc_x = arena_f(S, S->enc_x), *enc_saved = arena_f(S, S->enc_saved);
    for (int l = D->enc_layers - 1; l >= 0; l--) {
        const size_t off = enc_layer_offset(D, l);
        tl_encoder_layer_backward(s, &S->enc, params + off, grads + off, enc_x + (size_t)l * src_n,
                                  enc_saved + (size_t)l * S->enc.saved_floats, dcur, dnext);
        float *t = dcur;
        dcur = dnext, dnext = t;
    }
    layer_wait(&s->base);
    float *d_src = grads + D->src_embed;
    memset(d_src, 0, (size_t)D->src_vocab * D->d * sizeof *d_src);
    embed_backward(D, d_src, D->src_vocab, b->pad, b->src, B, b->src_len,
                   drop ? arena_b(S, S->src_mask) : NULL, dcur);
    return r;
}

static void tf_evaluate(void *rtp, const void *desc, const model_config *cfg, const float *params,
                        const model_tokens *b, model_token_loss *acc) {
    (void)cfg;
    tf_runtime *rt = rtp;
    const tf_desc *D = desc;
    check_batch(b, 1);
    tf_set *S = set_get(rt, b->batch, b->src_len, b->tgt_len, SET_EVAL);
    const float *memory, *h;
    const float *logits = forward(S, D, params, b, NULL, &memory, &h);
    const tl_xent x = tl_smoothed_xent(logits, b->tgt_out, (int64_t)b->batch * b->tgt_len,
                                       D->tgt_vocab, b->pad, D->label_smoothing, 0, NULL);
    acc->loss_sum += x.loss, acc->nll_sum += x.nll, acc->tokens += x.tokens;
}

// ---------------------------------------------------------------------------- greedy decoding

static void *grow(void *p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return p;
    *cap = need;
    return xrealloc(p, size_mul(need, elem));
}

/* The best token of a row, lowest id on ties, never pad (fairseq's generator sets the pad
 * score to -inf: padding is not a word). */
static int32_t argmax_token(const float *z, int vocab, int pad) {
    int32_t best = pad == 0 ? 1 : 0;
    for (int32_t c = best + 1; c < vocab; c++)
        if (c != pad && z[c] > z[best]) best = c;
    return best;
}

/* Encodes the source once into the runtime's buffers (the step sets share the arena). */
static void greedy_encode(tf_runtime *rt, const float *params, const model_tokens *b) {
    const tf_desc *D = rt->D;
    const size_t src_tokens = (size_t)b->batch * b->src_len, n = src_tokens * D->d;
    tf_set *S = set_get(rt, b->batch, b->src_len, 0, SET_ENCODE);
    uint8_t *pad = arena_b(S, S->src_pad);
    pad_mask(b->src, src_tokens, b->pad, pad);
    embed(D, params + D->src_embed, D->src_vocab, b->src, b->batch, b->src_len, NULL, 0, NULL,
          arena_f(S, S->enc_x));
    const float *memory = encode(S, D, params, pad, NULL);
    layer_wait(&S->s.base);
    rt->memory = grow(rt->memory, &rt->memory_cap, n, sizeof *rt->memory);
    rt->memory_pad = grow(rt->memory_pad, &rt->pad_cap, src_tokens, 1);
    memcpy(rt->memory, memory, n * sizeof *rt->memory);
    memcpy(rt->memory_pad, pad, src_tokens);
}

/* Decoder on the prefix <bos> out[0..t-1] padded to a multiple of TF_STEP_BUCKET; writes
 * the scores of position t of every row (B, tgt_vocab) and returns them. The causal mask
 * makes position t independent of what follows it. */
static const float *greedy_step(tf_runtime *rt, const float *params, const model_tokens *b,
                                const int32_t *out, int max_len, int t) {
    const tf_desc *D = rt->D;
    const int B = b->batch, len = (t / TF_STEP_BUCKET + 1) * TF_STEP_BUCKET;
    rt->prefix = grow(rt->prefix, &rt->prefix_cap, (size_t)B * len, sizeof *rt->prefix);
    for (int r = 0; r < B; r++) {
        int32_t *row = rt->prefix + (size_t)r * len;
        row[0] = b->bos;
        for (int k = 1; k < len; k++) row[k] = k <= t ? out[(size_t)r * max_len + k - 1] : b->pad;
    }
    tf_set *S = set_get(rt, B, b->src_len, len, SET_STEP);
    embed(D, params + D->tgt_embed, D->tgt_vocab, rt->prefix, B, len, NULL, 0, NULL,
          arena_f(S, S->dec_x));
    const float *h = decode(S, D, params, rt->memory, rt->memory_pad, NULL);
    layer_wait(&S->s.base);
    float *at = arena_f(S, S->rows_at);
    for (int r = 0; r < B; r++)
        memcpy(at + (size_t)r * D->d, h + ((size_t)r * len + t) * D->d, (size_t)D->d * sizeof *at);
    return project(S, D, params, at);
}

static void tf_greedy(void *rtp, const void *desc, const model_config *cfg, const float *params,
                      const model_tokens *b, int max_len, int32_t *out) {
    (void)cfg, (void)desc;
    tf_runtime *rt = rtp;
    check_batch(b, 0);
    const int B = b->batch, V = rt->D->tgt_vocab;
    for (size_t i = 0; i < (size_t)B * (max_len > 0 ? max_len : 0); i++) out[i] = b->pad;
    if (max_len < 1) return;
    greedy_encode(rt, params, b);
    rt->done = grow(rt->done, &rt->done_cap, (size_t)B, 1);
    memset(rt->done, 0, (size_t)B);
    int left = B;
    for (int t = 0; t < max_len && left > 0; t++) {
        const float *scores = greedy_step(rt, params, b, out, max_len, t);
        for (int r = 0; r < B; r++) {
            if (rt->done[r]) continue;
            const int32_t tok = argmax_token(scores + (size_t)r * V, V, b->pad);
            out[(size_t)r * max_len + t] = tok;
            if (tok == b->eos) rt->done[r] = 1, left--;
        }
    }
}

// ---------------------------------------------------------------------------- runtime

static void *tf_runtime_new(const void *desc, const model_config *cfg, layer_env *env,
                            layer_arena *arena) {
    (void)cfg;
    tf_runtime *rt = xcalloc(1, sizeof *rt);
    rt->D = desc, rt->env = env, rt->arena = arena;
    rt->threads = omp_get_max_threads();
    return rt;
}

static void tf_runtime_free(void *p) {
    tf_runtime *rt = p;
    if (!rt) return;
    cache_clear(rt);
    free(rt->memory);
    free(rt->memory_pad);
    free(rt->prefix);
    free(rt->done);
    free(rt);
}

const model_kind transformer_kind = {
    .name = "transformer",
    .check = tf_check,
    .describe = tf_describe,
    .init_params = tf_init_params,
    .flops_per_sample = tf_flops,
    .tokens_runtime = tf_runtime_new,
    .tokens_runtime_free = tf_runtime_free,
    .tokens_forward_backward = tf_forward_backward,
    .tokens_evaluate = tf_evaluate,
    .tokens_greedy = tf_greedy,
};
