/* tlayers.c: transformer layers (see tlayers.h and docs/transformer.md).
 *
 * Inner products, ReLU and residual adds are the layers.h wrappers; matmul (attention),
 * layer normalization and softmax are made here with the same pattern (created once per
 * shape, scratchpads in the arena, storage-less memory objects bound to the caller's
 * pointers on every call). Plain C does what no primitive does: embedding gather and
 * scatter-add, masks, dropout and the loss.
 *
 * Attention never transposes or copies a head: Q, K, V stay in the projection's output
 * (rows = tokens, columns = [q | k | v], head h at columns h dh ..) and every matmul reads
 * them through 4-D (B, H, T, dh) strided descriptors, transposed ones included. */
#include "tlayers.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl_debug.h>

// ---------------------------------------------------------------------------- checks

static int tl_ok(dnnl_status_t st, const char *call, const char *what, ccdl_error *err) {
    if (st == dnnl_success) return 0;
    return ccdl_fail(err, CCDL_ERR_RUNTIME, "oneDNN %s: %s: %s", what, call, dnnl_status2str(st));
}

// ---------------------------------------------------------------------------- sets

void tl_set_init(tl_set *s, layer_env *env, int batch, int training) {
    memset(s, 0, sizeof *s);
    layer_set_init(&s->base, env, batch, training);
}

void tl_set_destroy(tl_set *s) {
    if (!s) return;
    layer_set_destroy(&s->base); /* every op made here is registered there */
    memset(s, 0, sizeof *s);
}

int tl_set_finish(tl_set *s, ccdl_error *err) {
    return layer_set_finish(&s->base, err);
}

void tl_set_bind(tl_set *s, layer_arena *a) {
    layer_set_bind(&s->base, a);
    s->arena = a->buf;
}

static float *arena_floats(const tl_set *s, size_t offset) {
    return (float *)(void *)(s->arena + offset);
}

static size_t reserve_floats(tl_set *s, size_t count) {
    return layer_set_reserve(&s->base, count * sizeof(float));
}

static int training(const tl_set *s) {
    return s->base.training;
}

// ---------------------------------------------------------------------------- primitives

/* The ops of a tl_set are the base set's (layers.h's layer_op_make / layer_op_run). */
static int op_make(tl_set *s, layer_op *o, const_dnnl_op_desc_t desc,
                   const_dnnl_primitive_attr_t attr, const_dnnl_primitive_desc_t hint,
                   dnnl_primitive_desc_t *pd, const char *name, const char *kind, ccdl_error *err) {
    return layer_op_make(&s->base, o, desc, attr, hint, pd, name, kind, err);
}

static void op_run(tl_set *s, const layer_op *o, dnnl_exec_arg_t *args, int nargs) {
    layer_op_run(&s->base, o, args, nargs);
}

/* A memory object without storage, bound to a caller pointer on each call. */
static int mem_unbound(tl_set *s, dnnl_memory_t *m, const dnnl_memory_desc_t *md, const char *what,
                       ccdl_error *err) {
    return layer_set_memory(&s->base, m, md, SIZE_MAX, what, err);
}

static dnnl_memory_t bound(dnnl_memory_t m, const void *ptr) {
    layer_bind(m, ptr);
    return m;
}

static int md_rows(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, ccdl_error *err) {
    const int64_t dims[2] = {rows, cols};
    return layer_md_plain(md, 2, dims, err);
}

static int md_vec(dnnl_memory_desc_t *md, int64_t n, ccdl_error *err) {
    return layer_md_plain(md, 1, &n, err);
}

static int md_strided4(dnnl_memory_desc_t *md, const int64_t *dims, const int64_t *strides,
                       ccdl_error *err) {
    dnnl_dims_t d, st;
    for (int i = 0; i < 4; i++) d[i] = dims[i], st[i] = strides[i];
    return tl_ok(dnnl_memory_desc_init_by_strides(md, 4, d, dnnl_f32, st),
                 "dnnl_memory_desc_init_by_strides", "attention view", err);
}

// ---------------------------------------------------------------------------- dropout

void tl_dropout_mask(const tl_dropout_key *key, uint32_t site, float rate, size_t n,
                     uint8_t *mask) {
    if (!(rate >= 0 && rate < 1)) ccdl_die("dropout: rate %g is outside [0, 1)", (double)rate);
    rng_t r;
    rng_seed(&r, key->seed, TL_RNG_DROPOUT, key->step, (uint64_t)key->worker << 32 | site);
    /* one 64-bit draw per two elements (low half: even element, high half: odd), kept when
     * the 32-bit half is >= rate 2^32: the draws were 5% of a training step, one per element */
    const uint64_t threshold = (uint64_t)((double)rate * 4294967296.0);
    for (size_t i = 0; i < n; i += 2) {
        const uint64_t bits = rng_next(&r);
        mask[i] = (bits & 0xffffffffu) >= threshold;
        if (i + 1 < n) mask[i + 1] = (bits >> 32) >= threshold;
    }
}

void tl_dropout_apply(float *x, const uint8_t *mask, float rate, size_t n) {
    const float keep_scale = 1.0f / (1.0f - rate);
    for (size_t i = 0; i < n; i++) x[i] = mask[i] ? x[i] * keep_scale : 0.0f;
}

/* Does this call drop? Never in inference sets, without a key, or at rate 0. */
static int drops(const tl_set *s, const tl_dropout_key *key, float rate) {
    return training(s) && key && rate > 0;
}

/* Masks live in the float-typed saved buffer as bytes. */
static size_t bytes_as_floats(size_t bytes) {
    return (bytes + sizeof(float) - 1) / sizeof(float);
}

// ---------------------------------------------------------------------------- embedding

void tl_positional_encoding(int pos, int d, float *pe) {
    for (int i = 0; i < d; i += 2) {
        double angle = pos / pow(10000.0, (double)i / d);
        pe[i] = (float)sin(angle);
        if (i + 1 < d) pe[i + 1] = (float)cos(angle);
    }
}

void tl_embed_forward(const float *table, int vocab, int d, float scale, const int32_t *tokens,
                      int batch, int len, float *out) {
    for (size_t row = 0; row < (size_t)batch * len; row++)
        if (tokens[row] < 0 || tokens[row] >= vocab)
            ccdl_die("embedding: token %d of row %zu is outside 0..%d", tokens[row], row,
                     vocab - 1);
    /* each sinusoid once per position, for every sentence (no buffer: nothing allocates) */
    for (int t = 0; t < len; t++)
        for (int i = 0; i < d; i++) {
            const double angle = t / pow(10000.0, (double)(i - i % 2) / d);
            const float pe = (float)(i % 2 ? cos(angle) : sin(angle));
            for (int b = 0; b < batch; b++) {
                const size_t row = (size_t)b * len + t;
                out[row * d + i] = scale * table[(size_t)tokens[row] * d + i] + pe;
            }
        }
}

void tl_embed_backward(float *dtable, int vocab, int d, float scale, int pad, const int32_t *tokens,
                       int batch, int len, const float *dout) {
    /* rows in order: the sums of a repeated token have a fixed order, whatever the threads */
    for (size_t row = 0; row < (size_t)batch * len; row++) {
        int32_t tok = tokens[row];
        if (tok == pad) continue;
        if (tok < 0 || tok >= vocab)
            ccdl_die("embedding: token %d is outside 0..%d", tok, vocab - 1);
        float *g = dtable + (size_t)tok * d;
        const float *o = dout + row * d;
        for (int i = 0; i < d; i++) g[i] += scale * o[i];
    }
}

// ---------------------------------------------------------------------------- linear

/* A 2-D descriptor, rows x cols with row stride ld and column stride cs; rows may be
 * DNNL_RUNTIME_DIM_VAL. */
static int md_2d(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, int64_t ld, int64_t cs,
                 ccdl_error *err) {
    const dnnl_dims_t dims = {rows, cols}, strides = {ld, cs};
    return tl_ok(dnnl_memory_desc_init_by_strides(md, 2, dims, dnnl_f32, strides),
                 "dnnl_memory_desc_init_by_strides", "linear", err);
}

/* One matmul made on descriptors with a run-time dimension; a, b, c are the concrete
 * descriptors of the memories it runs on. */
static int linear_matmul(tl_set *s, layer_op *op, const dnnl_memory_desc_t *a_rt,
                         const dnnl_memory_desc_t *b_rt, const dnnl_memory_desc_t *bias,
                         const dnnl_memory_desc_t *c_rt, const char *name, const char *kind,
                         ccdl_error *err) {
    dnnl_matmul_desc_t d;
    dnnl_primitive_desc_t pd = NULL;
    if (tl_ok(dnnl_matmul_desc_init(&d, a_rt, b_rt, bias, c_rt), "dnnl_matmul_desc_init", name,
              err) ||
        op_make(s, op, &d, NULL, NULL, &pd, name, kind, err))
        return -1;
    dnnl_primitive_desc_destroy(pd);
    return 0;
}

int tl_linear_init(tl_linear *l, tl_set *s, int rows, int in, int out, int need_dx,
                   const char *name, ccdl_error *err) {
    memset(l, 0, sizeof *l);
    l->rows = rows, l->in = in, l->out = out;
    const int64_t RT = DNNL_RUNTIME_DIM_VAL;
    dnnl_memory_desc_t x_rt, y_rt, x, y, w_t, bias;
    /* W (out, in) row-major read as the (in, out) matmul weights: strides (1, in) */
    if (md_2d(&x_rt, RT, in, in, 1, err) || md_2d(&y_rt, RT, out, out, 1, err) ||
        md_2d(&x, rows, in, in, 1, err) || md_2d(&y, rows, out, out, 1, err) ||
        md_2d(&w_t, in, out, 1, in, err) || md_2d(&bias, 1, out, out, 1, err) ||
        linear_matmul(s, &l->fwd, &x_rt, &w_t, &bias, &y_rt, name, "linear forward", err) ||
        mem_unbound(s, &l->x, &x, name, err) || mem_unbound(s, &l->w, &w_t, name, err) ||
        mem_unbound(s, &l->b, &bias, name, err) || mem_unbound(s, &l->y, &y, name, err))
        return -1;
    if (!training(s)) return 0;
    /* dW (out, in) = dy^T (out, rows) . x (rows, in): the row count is the reduction dim */
    dnnl_memory_desc_t dy_t_rt, x_k_rt, dy_t, w;
    if (md_2d(&dy_t_rt, out, RT, 1, out, err) || md_2d(&x_k_rt, RT, in, in, 1, err) ||
        md_2d(&dy_t, out, rows, 1, out, err) || md_2d(&w, out, in, in, 1, err) ||
        linear_matmul(s, &l->bwd_weights, &dy_t_rt, &x_k_rt, NULL, &w, name,
                      "linear backward weights", err) ||
        mem_unbound(s, &l->dy_t, &dy_t, name, err) || mem_unbound(s, &l->x_w, &x, name, err) ||
        mem_unbound(s, &l->dw, &w, name, err) || mem_unbound(s, &l->dy, &y, name, err))
        return -1;
    l->ar_colsum = layer_set_reserve(&s->base, (size_t)out * sizeof(double));
    if (!need_dx) return 0;
    return linear_matmul(s, &l->bwd_data, &y_rt, &w, NULL, &x_rt, name, "linear backward data",
                         err) ||
           mem_unbound(s, &l->w_plain, &w, name, err) || mem_unbound(s, &l->dx, &x, name, err);
}

void tl_linear_forward(tl_set *s, tl_linear *l, const float *w, const float *b, const float *x,
                       float *y) {
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, bound(l->x, x)},
                               {DNNL_ARG_WEIGHTS, bound(l->w, w)},
                               {DNNL_ARG_BIAS, bound(l->b, b)},
                               {DNNL_ARG_DST, bound(l->y, y)}};
    op_run(s, &l->fwd, args, 4);
}

/* db[o] = sum over rows of dy[r, o], in double, rows in order. */
static void bias_gradient(tl_set *s, const tl_linear *l, const float *dy, float *db) {
    layer_wait(&s->base); /* dy may come from a primitive */
    double *acc = (double *)(void *)(s->arena + l->ar_colsum);
    for (int o = 0; o < l->out; o++) acc[o] = 0;
    for (int r = 0; r < l->rows; r++) {
        const float *row = dy + (size_t)r * l->out;
        for (int o = 0; o < l->out; o++) acc[o] += row[o];
    }
    for (int o = 0; o < l->out; o++) db[o] = (float)acc[o];
}

void tl_linear_backward(tl_set *s, tl_linear *l, const float *w, float *dw, float *db,
                        const float *x, const float *dy, float *dx) {
    dnnl_exec_arg_t wargs[4] = {{DNNL_ARG_SRC, bound(l->dy_t, dy)},
                                {DNNL_ARG_WEIGHTS, bound(l->x_w, x)},
                                {DNNL_ARG_DST, bound(l->dw, dw)}};
    op_run(s, &l->bwd_weights, wargs, 3);
    bias_gradient(s, l, dy, db);
    if (!dx) return;
    if (!l->bwd_data.prim) ccdl_die("linear %s made without a data gradient", l->fwd.what);
    dnnl_exec_arg_t dargs[4] = {{DNNL_ARG_SRC, bound(l->dy, dy)},
                                {DNNL_ARG_WEIGHTS, bound(l->w_plain, w)},
                                {DNNL_ARG_DST, bound(l->dx, dx)}};
    op_run(s, &l->bwd_data, dargs, 3);
}

// ---------------------------------------------------------------------------- layer norm

int tl_layernorm_init(tl_layernorm *n, tl_set *s, int rows, int dim, const char *name,
                      ccdl_error *err) {
    memset(n, 0, sizeof *n);
    n->rows = rows, n->dim = dim;
    dnnl_memory_desc_t data, stat, vec;
    if (md_rows(&data, rows, dim, err) || md_vec(&stat, rows, err) || md_vec(&vec, dim, err))
        return -1;
    const unsigned flags = dnnl_use_scale | dnnl_use_shift;
    dnnl_layer_normalization_desc_t d;
    dnnl_primitive_desc_t fwd_pd = NULL, bwd_pd = NULL;
    int rc = -1;
    if (tl_ok(dnnl_layer_normalization_forward_desc_init(
                  &d, training(s) ? dnnl_forward_training : dnnl_forward_inference, &data, &stat,
                  TL_LN_EPSILON, flags),
              "dnnl_layer_normalization_forward_desc_init", name, err) ||
        op_make(s, &n->fwd, &d, NULL, NULL, &fwd_pd, name, "layer norm forward", err))
        goto done;
    dnnl_memory_t *mems[] = {&n->x, &n->y, &n->mean, &n->var, &n->gamma, &n->beta};
    const dnnl_memory_desc_t *mds[] = {&data, &data, &stat, &stat, &vec, &vec};
    for (int i = 0; i < 6; i++)
        if (mem_unbound(s, mems[i], mds[i], name, err)) goto done;
    if (!training(s)) {
        rc = 0;
        goto done;
    }
    if (tl_ok(dnnl_layer_normalization_backward_desc_init(&d, dnnl_backward, &data, &data, &stat,
                                                          TL_LN_EPSILON, flags),
              "dnnl_layer_normalization_backward_desc_init", name, err) ||
        op_make(s, &n->bwd, &d, NULL, fwd_pd, &bwd_pd, name, "layer norm backward", err))
        goto done;
    dnnl_memory_t *dmems[] = {&n->dy, &n->dx, &n->dgamma, &n->dbeta};
    const dnnl_memory_desc_t *dmds[] = {&data, &data, &vec, &vec};
    for (int i = 0; i < 4; i++)
        if (mem_unbound(s, dmems[i], dmds[i], name, err)) goto done;
    rc = 0;
done:
    if (fwd_pd) dnnl_primitive_desc_destroy(fwd_pd);
    if (bwd_pd) dnnl_primitive_desc_destroy(bwd_pd);
    return rc;
}

void tl_layernorm_forward(tl_set *s, tl_layernorm *n, const float *gamma, const float *beta,
                          const float *x, float *y, float *mean, float *var) {
    dnnl_exec_arg_t args[7] = {{DNNL_ARG_SRC, bound(n->x, x)},
                               {DNNL_ARG_DST, bound(n->y, y)},
                               {DNNL_ARG_SCALE, bound(n->gamma, gamma)},
                               {DNNL_ARG_SHIFT, bound(n->beta, beta)}};
    int nargs = 4;
    if (training(s)) {
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_MEAN, bound(n->mean, mean)};
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_VARIANCE, bound(n->var, var)};
    }
    op_run(s, &n->fwd, args, nargs);
}

void tl_layernorm_backward(tl_set *s, tl_layernorm *n, const float *gamma, const float *beta,
                           float *dgamma, float *dbeta, const float *x, const float *mean,
                           const float *var, const float *dy, float *dx) {
    dnnl_exec_arg_t args[10] = {{DNNL_ARG_SRC, bound(n->x, x)},
                                {DNNL_ARG_MEAN, bound(n->mean, mean)},
                                {DNNL_ARG_VARIANCE, bound(n->var, var)},
                                {DNNL_ARG_DIFF_DST, bound(n->dy, dy)},
                                {DNNL_ARG_SCALE, bound(n->gamma, gamma)},
                                {DNNL_ARG_SHIFT, bound(n->beta, beta)},
                                {DNNL_ARG_DIFF_SRC, bound(n->dx, dx)},
                                {DNNL_ARG_DIFF_SCALE, bound(n->dgamma, dgamma)},
                                {DNNL_ARG_DIFF_SHIFT, bound(n->dbeta, dbeta)}};
    op_run(s, &n->bwd, args, 9);
}

// ---------------------------------------------------------------------------- matmul

/* c = scale a . b over the last two dims, batched over the first two. */
static int matmul_init(tl_set *s, tl_matmul *m, const dnnl_memory_desc_t *a,
                       const dnnl_memory_desc_t *b, const dnnl_memory_desc_t *c, float scale,
                       const char *name, const char *kind, ccdl_error *err) {
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_matmul_desc_t d;
    int rc = -1;
    if (scale != 1.0f && (tl_ok(dnnl_primitive_attr_clone(&attr, s->base.env->attr),
                                "dnnl_primitive_attr_clone", name, err) ||
                          tl_ok(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &scale),
                                "dnnl_primitive_attr_set_output_scales", name, err)))
        goto done;
    if (tl_ok(dnnl_matmul_desc_init(&d, a, b, NULL, c), "dnnl_matmul_desc_init", name, err) ||
        op_make(s, &m->op, &d, attr, NULL, &pd, name, kind, err) ||
        mem_unbound(s, &m->a, a, name, err) || mem_unbound(s, &m->b, b, name, err) ||
        mem_unbound(s, &m->c, c, name, err))
        goto done;
    rc = 0;
done:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return rc;
}

static void matmul_run(tl_set *s, tl_matmul *m, const float *a, const float *b, float *c) {
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, bound(m->a, a)},
                               {DNNL_ARG_WEIGHTS, bound(m->b, b)},
                               {DNNL_ARG_DST, bound(m->c, c)}};
    op_run(s, &m->op, args, 3);
}

// ---------------------------------------------------------------------------- attention

size_t tl_mha_param_count(int d) {
    return (size_t)3 * d * d + (size_t)3 * d + (size_t)d * d + d;
}

/* Views of one head per (b, h): tokens t of a (batch t, ld) buffer, columns h dh ..; as
 * (B, H, T, dh), or transposed (B, H, dh, T). */
static int md_heads(dnnl_memory_desc_t *md, int batch, int heads, int len, int dh, int64_t ld,
                    int transposed, ccdl_error *err) {
    const int64_t dims[4] = {batch, heads, transposed ? dh : len, transposed ? len : dh};
    const int64_t strides[4] = {len * ld, dh, transposed ? 1 : ld, transposed ? ld : 1};
    return md_strided4(md, dims, strides, err);
}

/* Attention weights (B, H, tq, tk) plain, or transposed to (B, H, tk, tq). */
static int md_probs(dnnl_memory_desc_t *md, int batch, int heads, int tq, int tk, int transposed,
                    ccdl_error *err) {
    const int64_t dims[4] = {batch, heads, transposed ? tk : tq, transposed ? tq : tk};
    const int64_t strides[4] = {(int64_t)heads * tq * tk, (int64_t)tq * tk, transposed ? 1 : tk,
                                transposed ? tk : 1};
    return md_strided4(md, dims, strides, err);
}

static size_t probs_count(const tl_mha *a) {
    return (size_t)a->batch * a->heads * a->tq * a->tk;
}

/* Row strides of the Q and K/V buffers (V sits d columns after K). */
static int64_t ld_q(const tl_mha *a) {
    return a->self ? 3 * (int64_t)a->d : a->d;
}
static int64_t ld_kv(const tl_mha *a) {
    return a->self ? 3 * (int64_t)a->d : 2 * (int64_t)a->d;
}

static int mha_matmuls(tl_mha *a, tl_set *s, const char *name, ccdl_error *err) {
    const int B = a->batch, H = a->heads, tq = a->tq, tk = a->tk, dh = a->d / a->heads;
    const float scale = (float)(1.0 / sqrt((double)dh));
    dnnl_memory_desc_t q, kt, k, v, vt, probs, probs_t, ctx;
    if (md_heads(&q, B, H, tq, dh, ld_q(a), 0, err) ||
        md_heads(&kt, B, H, tk, dh, ld_kv(a), 1, err) ||
        md_heads(&k, B, H, tk, dh, ld_kv(a), 0, err) ||
        md_heads(&v, B, H, tk, dh, ld_kv(a), 0, err) ||
        md_heads(&vt, B, H, tk, dh, ld_kv(a), 1, err) || md_probs(&probs, B, H, tq, tk, 0, err) ||
        md_probs(&probs_t, B, H, tq, tk, 1, err) || md_heads(&ctx, B, H, tq, dh, a->d, 0, err))
        return -1;
    if (matmul_init(s, &a->scores, &q, &kt, &probs, scale, name, "attention scores", err) ||
        matmul_init(s, &a->context, &probs, &v, &ctx, 1.0f, name, "attention context", err))
        return -1;
    if (!training(s)) return 0;
    /* gradients land in the projection-gradient buffers, laid out like Q / K / V */
    return matmul_init(s, &a->d_probs, &ctx, &vt, &probs, 1.0f, name, "d attention weights", err) ||
           matmul_init(s, &a->d_v, &probs_t, &ctx, &v, 1.0f, name, "d values", err) ||
           matmul_init(s, &a->d_q, &probs, &k, &q, scale, name, "d queries", err) ||
           matmul_init(s, &a->d_k, &probs_t, &q, &k, scale, name, "d keys", err);
}

static int mha_softmax(tl_mha *a, tl_set *s, const char *name, ccdl_error *err) {
    dnnl_memory_desc_t md;
    if (md_rows(&md, (int64_t)a->batch * a->heads * a->tq, a->tk, err)) return -1;
    dnnl_softmax_v2_desc_t d;
    dnnl_primitive_desc_t fwd_pd = NULL, bwd_pd = NULL;
    int rc = -1;
    if (tl_ok(dnnl_softmax_v2_forward_desc_init(
                  &d, training(s) ? dnnl_forward_training : dnnl_forward_inference,
                  dnnl_softmax_accurate, &md, &md, 1),
              "dnnl_softmax_v2_forward_desc_init", name, err) ||
        op_make(s, &a->softmax_fwd, &d, NULL, NULL, &fwd_pd, name, "softmax forward", err) ||
        mem_unbound(s, &a->sm_dst, &md, name, err))
        goto done;
    if (training(s) &&
        (tl_ok(dnnl_softmax_v2_backward_desc_init(&d, dnnl_softmax_accurate, &md, &md, &md, 1),
               "dnnl_softmax_v2_backward_desc_init", name, err) ||
         op_make(s, &a->softmax_bwd, &d, NULL, fwd_pd, &bwd_pd, name, "softmax backward", err) ||
         mem_unbound(s, &a->sm_diff, &md, name, err)))
        goto done;
    rc = 0;
done:
    if (fwd_pd) dnnl_primitive_desc_destroy(fwd_pd);
    if (bwd_pd) dnnl_primitive_desc_destroy(bwd_pd);
    return rc;
}

/* Saved activations: projections, weights before and after dropout, context, dropout mask,
 * and one flag telling the backward whether the forward dropped. */
static void mha_layout(tl_mha *a, tl_set *s, int top) {
    const size_t rows_q = (size_t)a->batch * a->tq, rows_k = (size_t)a->batch * a->tk;
    const size_t d = a->d, np = probs_count(a);
    size_t n = 1; /* [0]: the dropout flag */
    a->off_qkv = n, n += rows_q * (a->self ? 3 * d : d);
    a->off_kv = n, n += a->self ? 0 : rows_k * 2 * d;
    a->off_probs = n, n += np;
    a->off_ctx = n, n += rows_q * d;
    if (a->attn_dropout > 0 && training(s)) {
        a->off_dropped = n, n += np;
        a->off_mask = n, n += bytes_as_floats(np);
    }
    a->saved_floats = n;
    if (!training(s)) {
        if (top) a->ar_saved = reserve_floats(s, n);
        return;
    }
    a->ar_dctx = reserve_floats(s, rows_q * d);
    a->ar_dprobs = reserve_floats(s, np);
    a->ar_dqkv = reserve_floats(s, rows_q * (a->self ? 3 * d : d));
    if (!a->self) {
        a->ar_dkv = reserve_floats(s, rows_k * 2 * d);
        a->ar_dxkv = reserve_floats(s, rows_k * d);
    }
}

/* top: made for the library's caller, who passes no saved buffer in inference sets (then
 * the arena holds the activations); nested modules get their parent's buffer. */
static int mha_init(tl_mha *a, tl_set *s, int batch, int tq, int tk, int d, int heads,
                    int self_attention, int causal, float attn_dropout, int top, const char *name,
                    ccdl_error *err) {
    memset(a, 0, sizeof *a);
    if (heads < 1 || d % heads != 0)
        return ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: d_model %d is not a multiple of %d heads",
                         name, d, heads);
    if (self_attention && tq != tk)
        return ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: self-attention with %d queries, %d keys", name,
                         tq, tk);
    if (!(attn_dropout >= 0 && attn_dropout < 1))
        return ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: attention dropout %g outside [0, 1)", name,
                         (double)attn_dropout);
    a->batch = batch, a->tq = tq, a->tk = tk, a->d = d, a->heads = heads;
    a->self = self_attention, a->causal = causal, a->attn_dropout = attn_dropout;
    const int rows_q = batch * tq, rows_k = batch * tk;
    if (self_attention) {
        if (tl_linear_init(&a->qkv, s, rows_q, d, 3 * d, 1, name, err)) return -1;
    } else if (tl_linear_init(&a->q, s, rows_q, d, d, 1, name, err) ||
               tl_linear_init(&a->kv, s, rows_k, d, 2 * d, 1, name, err)) {
        return -1;
    }
    if (tl_linear_init(&a->out, s, rows_q, d, d, 1, name, err) || mha_matmuls(a, s, name, err) ||
        mha_softmax(a, s, name, err))
        return -1;
    if (!self_attention && training(s)) {
        dnnl_memory_desc_t md;
        if (md_rows(&md, rows_k, d, err) ||
            add_layer_init(&a->acc_kv, &s->base, &md, NULL, 0, name, err) ||
            mem_unbound(s, &a->acc_dst, &md, name, err) ||
            mem_unbound(s, &a->acc_part, &md, name, err))
            return -1;
    }
    mha_layout(a, s, top);
    return 0;
}

int tl_mha_init(tl_mha *a, tl_set *s, int batch, int tq, int tk, int d, int heads,
                int self_attention, int causal, float attn_dropout, const char *name,
                ccdl_error *err) {
    return mha_init(a, s, batch, tq, tk, d, heads, self_attention, causal, attn_dropout, 1, name,
                    err);
}

/* -inf where the key is padding or (causal) later than the query: exp gives exactly 0. */
static void mask_scores(const tl_mha *a, float *scores, const uint8_t *key_pad) {
    if (!key_pad && !a->causal) return;
    for (int b = 0; b < a->batch; b++)
        for (int h = 0; h < a->heads; h++)
            for (int q = 0; q < a->tq; q++) {
                float *row = scores + (((size_t)b * a->heads + h) * a->tq + q) * a->tk;
                const uint8_t *pad = key_pad ? key_pad + (size_t)b * a->tk : NULL;
                for (int k = 0; k < a->tk; k++)
                    if ((pad && pad[k]) || (a->causal && k > q)) row[k] = -INFINITY;
            }
}

/* In inference sets the saved activations live in the arena. */
static float *saved_or_arena(const tl_set *s, float *saved, size_t ar_offset) {
    if (saved) return saved;
    if (training(s)) ccdl_die("transformer: a training set needs a saved-activation buffer");
    return arena_floats(s, ar_offset);
}

static void softmax_forward(tl_set *s, tl_mha *a, float *probs) {
    dnnl_memory_t m = bound(a->sm_dst, probs);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, m}, {DNNL_ARG_DST, m}};
    op_run(s, &a->softmax_fwd, args, 2);
}

static void softmax_backward(tl_set *s, tl_mha *a, const float *probs, float *diff) {
    dnnl_memory_t g = bound(a->sm_diff, diff);
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_DST, bound(a->sm_dst, probs)}, {DNNL_ARG_DIFF_DST, g}, {DNNL_ARG_DIFF_SRC, g}};
    op_run(s, &a->softmax_bwd, args, 3);
}

/* Parameter pointers of one attention (tlayers.h order). */
typedef struct {
    const float *in_w, *in_b, *out_w, *out_b;
} mha_params;
typedef struct {
    float *in_w, *in_b, *out_w, *out_b;
} mha_grads;

static mha_params mha_params_at(const float *p, int d) {
    const size_t dd = (size_t)d * d;
    return (mha_params){p, p + 3 * dd, p + 3 * dd + 3 * d, p + 4 * dd + 3 * d};
}
static mha_grads mha_grads_at(float *g, int d) {
    const size_t dd = (size_t)d * d;
    return (mha_grads){g, g + 3 * dd, g + 3 * dd + 3 * d, g + 4 * dd + 3 * d};
}

void tl_mha_forward(tl_set *s, tl_mha *a, const float *params, const float *xq, const float *xkv,
                    const uint8_t *key_pad, const tl_dropout_key *key, uint32_t site, float *y,
                    float *saved) {
    float *sv = saved_or_arena(s, saved, a->ar_saved);
    const mha_params p = mha_params_at(params, a->d);
    const size_t d = a->d, np = probs_count(a);
    float *qbuf = sv + a->off_qkv, *kbuf;
    if (a->self) {
        tl_linear_forward(s, &a->qkv, p.in_w, p.in_b, xq, qbuf);
        kbuf = qbuf + d;
    } else {
        kbuf = sv + a->off_kv;
        tl_linear_forward(s, &a->q, p.in_w, p.in_b, xq, qbuf);
        tl_linear_forward(s, &a->kv, p.in_w + d * d, p.in_b + d, xkv, kbuf);
    }
    float *probs = sv + a->off_probs, *weights = probs;
    matmul_run(s, &a->scores, qbuf, kbuf, probs);
    layer_wait(&s->base);
    mask_scores(a, probs, key_pad);
    softmax_forward(s, a, probs);
    sv[0] = 0; /* no dropout */
    if (drops(s, key, a->attn_dropout)) {
        layer_wait(&s->base);
        uint8_t *mask = (uint8_t *)(sv + a->off_mask);
        weights = sv + a->off_dropped;
        tl_dropout_mask(key, site, a->attn_dropout, np, mask);
        memcpy(weights, probs, np * sizeof *weights);
        tl_dropout_apply(weights, mask, a->attn_dropout, np);
        sv[0] = 1;
    }
    float *ctx = sv + a->off_ctx;
    matmul_run(s, &a->context, weights, kbuf + d, ctx);
    tl_linear_forward(s, &a->out, p.out_w, p.out_b, ctx, y);
}

void tl_mha_backward(tl_set *s, tl_mha *a, const float *params, float *grads, const float *xq,
                     const float *xkv, const float *saved, const float *dy, float *dxq,
                     float *dxkv) {
    const mha_params p = mha_params_at(params, a->d);
    const mha_grads g = mha_grads_at(grads, a->d);
    const size_t d = a->d, np = probs_count(a);
    const int dropped = saved[0] != 0;
    const float *qbuf = saved + a->off_qkv;
    const float *kbuf = a->self ? qbuf + d : saved + a->off_kv;
    const float *probs = saved + a->off_probs;
    const float *weights = dropped ? saved + a->off_dropped : probs;
    float *dctx = arena_floats(s, a->ar_dctx), *dprobs = arena_floats(s, a->ar_dprobs);
    float *dq = arena_floats(s, a->ar_dqkv);
    float *dk = a->self ? dq + d : arena_floats(s, a->ar_dkv);

    tl_linear_backward(s, &a->out, p.out_w, g.out_w, g.out_b, saved + a->off_ctx, dy, dctx);
    matmul_run(s, &a->d_probs, dctx, kbuf + d, dprobs);
    matmul_run(s, &a->d_v, weights, dctx, dk + d);
    if (dropped) {
        layer_wait(&s->base);
        tl_dropout_apply(dprobs, (const uint8_t *)(saved + a->off_mask), a->attn_dropout, np);
    }
    softmax_backward(s, a, probs, dprobs);
    matmul_run(s, &a->d_q, dprobs, kbuf, dq);
    matmul_run(s, &a->d_k, dprobs, qbuf, dk);
    if (a->self) {
        tl_linear_backward(s, &a->qkv, p.in_w, g.in_w, g.in_b, xq, dq, dxq);
        return;
    }
    tl_linear_backward(s, &a->q, p.in_w, g.in_w, g.in_b, xq, dq, dxq);
    float *part = dxkv ? arena_floats(s, a->ar_dxkv) : NULL;
    tl_linear_backward(s, &a->kv, p.in_w + d * d, g.in_w + d * d, g.in_b + d, xkv, dk, part);
    if (dxkv)
        add_layer_forward(&s->base, &a->acc_kv, bound(a->acc_dst, dxkv), bound(a->acc_part, part));
}

// ---------------------------------------------------------------------------- blocks

/* Residual sums and layer norms of a block: (rows, d) plain. */
static int block_rows_md(dnnl_memory_desc_t *md, int rows, int d, ccdl_error *err) {
    return md_rows(md, rows, d, err);
}

static int attn_block_init(tl_attn_block *b, tl_set *s, const tl_config *c, int batch, int tq,
                           int tk, int self, int causal, const char *name, ccdl_error *err) {
    memset(b, 0, sizeof *b);
    b->dropout = c->dropout, b->rows = batch * tq, b->d = c->d_model;
    dnnl_memory_desc_t md;
    if (!(c->dropout >= 0 && c->dropout < 1))
        return ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: dropout %g outside [0, 1)", name,
                         (double)c->dropout);
    if (mha_init(&b->mha, s, batch, tq, tk, c->d_model, c->heads, self, causal, c->attn_dropout, 0,
                 name, err) ||
        tl_layernorm_init(&b->ln, s, b->rows, b->d, name, err) ||
        block_rows_md(&md, b->rows, b->d, err) ||
        add_layer_init(&b->add, &s->base, &md, NULL, 0, name, err) ||
        mem_unbound(s, &b->acc, &md, name, err) || mem_unbound(s, &b->other, &md, name, err))
        return -1;
    const size_t rd = (size_t)b->rows * b->d;
    size_t n = b->mha.saved_floats;
    b->off_flag = n++;
    b->off_sum = n, n += rd;
    b->off_mean = n, n += b->rows;
    b->off_var = n, n += b->rows;
    if (c->dropout > 0 && training(s)) b->off_mask = n, n += bytes_as_floats(rd);
    b->saved_floats = n;
    if (!training(s)) return 0; /* inference: in the layer's arena region */
    b->ar_dsum = reserve_floats(s, rd);
    b->ar_dy = reserve_floats(s, rd);
    return 0;
}

/* out = LN(xq + dropout(attention(xq, xkv))). Dropout sites: site (attention weights),
 * site + 1 (the sublayer output). */
static void attn_block_forward(tl_set *s, tl_attn_block *b, const float *mha_p, const float *gamma,
                               const float *beta, const float *xq, const float *xkv,
                               const uint8_t *key_pad, const tl_dropout_key *key, uint32_t site,
                               float *out, float *saved) {
    float *sv = saved; /* the layer's buffer, or its arena region */
    float *sum = sv + b->off_sum;
    const size_t rd = (size_t)b->rows * b->d;
    tl_mha_forward(s, &b->mha, mha_p, xq, xkv, key_pad, key, site, sum, sv);
    sv[b->off_flag] = 0;
    if (drops(s, key, b->dropout)) {
        layer_wait(&s->base);
        uint8_t *mask = (uint8_t *)(sv + b->off_mask);
        tl_dropout_mask(key, site + 1, b->dropout, rd, mask);
        tl_dropout_apply(sum, mask, b->dropout, rd);
        sv[b->off_flag] = 1;
    }
    add_layer_forward(&s->base, &b->add, bound(b->acc, sum), bound(b->other, xq));
    tl_layernorm_forward(s, &b->ln, gamma, beta, sum, out, sv + b->off_mean, sv + b->off_var);
}

/* dxq overwritten; dxkv += (cross-attention only). */
static void attn_block_backward(tl_set *s, tl_attn_block *b, const float *mha_p, const float *gamma,
                                const float *beta, float *mha_g, float *dgamma, float *dbeta,
                                const float *xq, const float *xkv, const float *saved,
                                const float *dout, float *dxq, float *dxkv) {
    const size_t rd = (size_t)b->rows * b->d;
    float *dsum = arena_floats(s, b->ar_dsum);
    tl_layernorm_backward(s, &b->ln, gamma, beta, dgamma, dbeta, saved + b->off_sum,
                          saved + b->off_mean, saved + b->off_var, dout, dsum);
    const float *dy = dsum;
    if (saved[b->off_flag] != 0) {
        layer_wait(&s->base);
        float *t = arena_floats(s, b->ar_dy);
        memcpy(t, dsum, rd * sizeof *t);
        tl_dropout_apply(t, (const uint8_t *)(saved + b->off_mask), b->dropout, rd);
        dy = t;
    }
    tl_mha_backward(s, &b->mha, mha_p, mha_g, xq, xkv, saved, dy, dxq, dxkv);
    add_layer_forward(&s->base, &b->add, bound(b->acc, dxq), bound(b->other, dsum));
}

static int ffn_block_init(tl_ffn_block *f, tl_set *s, const tl_config *c, int rows,
                          const char *name, ccdl_error *err) {
    memset(f, 0, sizeof *f);
    f->dropout = c->dropout, f->relu_dropout = c->relu_dropout;
    f->rows = rows, f->d = c->d_model, f->d_ff = c->d_ff;
    if (!(c->relu_dropout >= 0 && c->relu_dropout < 1))
        return ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: relu dropout %g outside [0, 1)", name,
                         (double)c->relu_dropout);
    dnnl_memory_desc_t md, hmd;
    if (block_rows_md(&md, rows, f->d, err) || block_rows_md(&hmd, rows, f->d_ff, err) ||
        tl_linear_init(&f->ff1, s, rows, f->d, f->d_ff, 1, name, err) ||
        relu_layer_init(&f->relu, &s->base, &hmd, name, err) ||
        tl_linear_init(&f->ff2, s, rows, f->d_ff, f->d, 1, name, err) ||
        tl_layernorm_init(&f->ln, s, rows, f->d, name, err) ||
        add_layer_init(&f->add, &s->base, &md, NULL, 0, name, err) ||
        mem_unbound(s, &f->acc, &md, name, err) || mem_unbound(s, &f->other, &md, name, err) ||
        mem_unbound(s, &f->hidden, &hmd, name, err) || mem_unbound(s, &f->dhidden, &hmd, name, err))
        return -1;
    const size_t rd = (size_t)rows * f->d, rh = (size_t)rows * f->d_ff;
    size_t n = 0;
    f->off_flags = n, n += 2; /* [0]: the hidden layer dropped, [1]: the output dropped */
    f->off_hidden = n, n += rh;
    f->off_sum = n, n += rd;
    f->off_mean = n, n += rows;
    f->off_var = n, n += rows;
    if (c->dropout > 0 && training(s)) f->off_mask = n, n += bytes_as_floats(rd);
    f->saved_floats = n;
    if (!training(s)) return 0; /* inference: in the layer's arena region */
    /* the hidden layer's mask is not kept: see ffn_block_backward */
    if (c->relu_dropout > 0) f->ar_hmask = layer_set_reserve(&s->base, rh);
    f->ar_dsum = reserve_floats(s, rd);
    f->ar_df = reserve_floats(s, rd);
    f->ar_dh = reserve_floats(s, rh);
    return 0;
}

/* Feed-forward parameters, contiguous: linear1.weight (d_ff, d), linear1.bias (d_ff),
 * linear2.weight (d, d_ff), linear2.bias (d). */
typedef struct {
    const float *w1, *b1, *w2, *b2;
} ffn_params;

static ffn_params ffn_params_at(const float *p, int d, int d_ff) {
    const size_t dh = (size_t)d * d_ff;
    return (ffn_params){p, p + dh, p + dh + d_ff, p + 2 * dh + d_ff};
}

/* out = LN(x + dropout(W2 dropout(relu(W1 x + b1)) + b2)). Sites: site (hidden layer),
 * site + 1 (output). */
static void ffn_block_forward(tl_set *s, tl_ffn_block *f, const float *params, const float *gamma,
                              const float *beta, const float *x, const tl_dropout_key *key,
                              uint32_t site, float *out, float *saved) {
    float *sv = saved;
    const ffn_params p = ffn_params_at(params, f->d, f->d_ff);
    const size_t rd = (size_t)f->rows * f->d, rh = (size_t)f->rows * f->d_ff;
    float *h = sv + f->off_hidden, *sum = sv + f->off_sum, *flags = sv + f->off_flags;
    tl_linear_forward(s, &f->ff1, p.w1, p.b1, x, h);
    relu_layer_forward(&s->base, &f->relu, bound(f->hidden, h));
    flags[0] = flags[1] = 0;
    if (drops(s, key, f->relu_dropout)) {
        layer_wait(&s->base);
        uint8_t *mask = (uint8_t *)(s->arena + f->ar_hmask);
        tl_dropout_mask(key, site, f->relu_dropout, rh, mask);
        tl_dropout_apply(h, mask, f->relu_dropout, rh);
        flags[0] = 1;
    }
    tl_linear_forward(s, &f->ff2, p.w2, p.b2, h, sum);
    if (drops(s, key, f->dropout)) {
        layer_wait(&s->base);
        uint8_t *mask = (uint8_t *)(sv + f->off_mask);
        tl_dropout_mask(key, site + 1, f->dropout, rd, mask);
        tl_dropout_apply(sum, mask, f->dropout, rd);
        flags[1] = 1;
    }
    add_layer_forward(&s->base, &f->add, bound(f->acc, sum), bound(f->other, x));
    tl_layernorm_forward(s, &f->ln, gamma, beta, sum, out, sv + f->off_mean, sv + f->off_var);
}

static void ffn_block_backward(tl_set *s, tl_ffn_block *f, const float *params, float *grads,
                               const float *gamma, const float *beta, float *dgamma, float *dbeta,
                               const float *x, const float *saved, const float *dout, float *dx) {
    const ffn_params p = ffn_params_at(params, f->d, f->d_ff);
    const size_t dff = (size_t)f->d * f->d_ff;
    float *gw1 = grads, *gb1 = grads + dff, *gw2 = gb1 + f->d_ff, *gb2 = gw2 + dff;
    const size_t rd = (size_t)f->rows * f->d, rh = (size_t)f->rows * f->d_ff;
    const float *h = saved + f->off_hidden, *flags = saved + f->off_flags;
    float *dsum = arena_floats(s, f->ar_dsum), *dh = arena_floats(s, f->ar_dh);
    tl_layernorm_backward(s, &f->ln, gamma, beta, dgamma, dbeta, saved + f->off_sum,
                          saved + f->off_mean, saved + f->off_var, dout, dsum);
    const float *df = dsum;
    if (flags[1] != 0) {
        layer_wait(&s->base);
        float *t = arena_floats(s, f->ar_df);
        memcpy(t, dsum, rd * sizeof *t);
        tl_dropout_apply(t, (const uint8_t *)(saved + f->off_mask), f->dropout, rd);
        df = t;
    }
    tl_linear_backward(s, &f->ff2, p.w2, gw2, gb2, h, df, dh);
    /* h is relu(.) with dropout applied: h > 0 exactly where the unit was both active and
     * kept, so the ReLU's gate on h is also the dropout mask; only the 1 / (1 - p) is left */
    relu_layer_backward(&s->base, &f->relu, bound(f->hidden, h), bound(f->dhidden, dh));
    if (flags[0] != 0) {
        layer_wait(&s->base);
        const float keep_scale = 1.0f / (1.0f - f->relu_dropout);
        for (size_t i = 0; i < rh; i++) dh[i] *= keep_scale;
    }
    tl_linear_backward(s, &f->ff1, p.w1, gw1, gb1, x, dh, dx);
    add_layer_forward(&s->base, &f->add, bound(f->acc, dx), bound(f->other, dsum));
}

// ---------------------------------------------------------------------------- tensor lists

static void tensor_add(tl_tensor *t, int *n, size_t *off, const char *name, int64_t rows,
                       int64_t cols, int decay) {
    tl_tensor x = {.name = name, .ndims = cols ? 2 : 1, .dims = {rows, cols}, .offset = *off};
    x.count = (size_t)rows * (size_t)(cols ? cols : 1);
    x.decay = decay;
    *off += x.count;
    if (t) t[*n] = x;
    (*n)++;
}

static void attn_tensors(tl_tensor *t, int *n, size_t *off, const tl_config *c, int cross) {
    const int64_t d = c->d_model;
    tensor_add(t, n, off, cross ? "multihead_attn.in_proj_weight" : "self_attn.in_proj_weight",
               3 * d, d, 1);
    tensor_add(t, n, off, cross ? "multihead_attn.in_proj_bias" : "self_attn.in_proj_bias", 3 * d,
               0, 0);
    tensor_add(t, n, off, cross ? "multihead_attn.out_proj.weight" : "self_attn.out_proj.weight", d,
               d, 1);
    tensor_add(t, n, off, cross ? "multihead_attn.out_proj.bias" : "self_attn.out_proj.bias", d, 0,
               0);
}

static void ffn_tensors(tl_tensor *t, int *n, size_t *off, const tl_config *c) {
    tensor_add(t, n, off, "linear1.weight", c->d_ff, c->d_model, 1);
    tensor_add(t, n, off, "linear1.bias", c->d_ff, 0, 0);
    tensor_add(t, n, off, "linear2.weight", c->d_model, c->d_ff, 1);
    tensor_add(t, n, off, "linear2.bias", c->d_model, 0, 0);
}

static void norm_tensors(tl_tensor *t, int *n, size_t *off, const tl_config *c, int count) {
    static const char *names[3][2] = {{"norm1.weight", "norm1.bias"},
                                      {"norm2.weight", "norm2.bias"},
                                      {"norm3.weight", "norm3.bias"}};
    for (int i = 0; i < count; i++) {
        tensor_add(t, n, off, names[i][0], c->d_model, 0, 0);
        tensor_add(t, n, off, names[i][1], c->d_model, 0, 0);
    }
}

/* PyTorch's state-dict order. */
int tl_encoder_layer_tensors(const tl_config *c, tl_tensor *t) {
    int n = 0;
    size_t off = 0;
    attn_tensors(t, &n, &off, c, 0);
    ffn_tensors(t, &n, &off, c);
    norm_tensors(t, &n, &off, c, 2);
    return n;
}

int tl_decoder_layer_tensors(const tl_config *c, tl_tensor *t) {
    int n = 0;
    size_t off = 0;
    attn_tensors(t, &n, &off, c, 0);
    attn_tensors(t, &n, &off, c, 1);
    ffn_tensors(t, &n, &off, c);
    norm_tensors(t, &n, &off, c, 3);
    return n;
}

static size_t tensors_end(const tl_tensor *t, int n) {
    return t[n - 1].offset + t[n - 1].count;
}

size_t tl_encoder_layer_param_count(const tl_config *c) {
    tl_tensor t[TL_MAX_TENSORS];
    return tensors_end(t, tl_encoder_layer_tensors(c, t));
}

size_t tl_decoder_layer_param_count(const tl_config *c) {
    tl_tensor t[TL_MAX_TENSORS];
    return tensors_end(t, tl_decoder_layer_tensors(c, t));
}

/* Per query token: projections 2 d^2 each (Q, out; K and V per key token), scores and
 * context 2 tk d each. */
static double attn_flops(double d, double tq, double tk) {
    return 4 * d * d + 4 * d * d * (tk / tq) + 4 * tk * d;
}

double tl_encoder_layer_flops(const tl_config *c, int len) {
    const double d = c->d_model;
    return attn_flops(d, len, len) + 4 * d * c->d_ff;
}

double tl_decoder_layer_flops(const tl_config *c, int tgt_len, int src_len) {
    const double d = c->d_model;
    return attn_flops(d, tgt_len, tgt_len) + attn_flops(d, tgt_len, src_len) + 4 * d * c->d_ff;
}

// ---------------------------------------------------------------------------- layers

static int config_check(const tl_config *c, const char *name, ccdl_error *err) {
    if (c->d_model < 1 || c->heads < 1 || c->d_ff < 1 || c->d_model % c->heads != 0)
        return ccdl_fail(err, CCDL_ERR_RUNTIME,
                         "%s: d_model %d, %d heads, d_ff %d: need positive sizes and heads "
                         "dividing d_model",
                         name, c->d_model, c->heads, c->d_ff);
    return 0;
}

int tl_encoder_layer_init(tl_encoder_layer *e, tl_set *s, const tl_config *c, int batch, int len,
                          const char *name, ccdl_error *err) {
    memset(e, 0, sizeof *e);
    e->c = *c, e->batch = batch, e->len = len;
    tl_encoder_layer_tensors(c, e->t);
    const int rows = batch * len;
    if (config_check(c, name, err) ||
        attn_block_init(&e->attn, s, c, batch, len, len, 1, 0, name, err) ||
        ffn_block_init(&e->ffn, s, c, rows, name, err))
        return -1;
    const size_t rd = (size_t)rows * c->d_model;
    e->off_x1 = e->attn.saved_floats;
    e->off_ffn = e->off_x1 + rd;
    e->saved_floats = e->off_ffn + e->ffn.saved_floats;
    if (!training(s))
        e->ar_saved = reserve_floats(s, e->saved_floats);
    else
        e->ar_dx1 = reserve_floats(s, rd);
    return 0;
}

/* Tensor indices in the encoder list: 0 self_attn.in_proj_weight, 4 linear1.weight,
 * 8 norm1.weight, 9 norm1.bias, 10 norm2.weight, 11 norm2.bias. */
void tl_encoder_layer_forward(tl_set *s, tl_encoder_layer *e, const float *params, const float *x,
                              const uint8_t *pad, const tl_dropout_key *key, uint32_t site,
                              float *y, float *saved) {
    const tl_tensor *t = e->t;
    float *sv = saved_or_arena(s, saved, e->ar_saved), *x1 = sv + e->off_x1;
    attn_block_forward(s, &e->attn, params + t[0].offset, params + t[8].offset,
                       params + t[9].offset, x, x, pad, key, site, x1, sv);
    ffn_block_forward(s, &e->ffn, params + t[4].offset, params + t[10].offset,
                      params + t[11].offset, x1, key, site + 2, y, sv + e->off_ffn);
}

void tl_encoder_layer_backward(tl_set *s, tl_encoder_layer *e, const float *params, float *grads,
                               const float *x, const float *saved, const float *dy, float *dx) {
    const tl_tensor *t = e->t;
    const float *x1 = saved + e->off_x1;
    float *dx1 = arena_floats(s, e->ar_dx1);
    ffn_block_backward(s, &e->ffn, params + t[4].offset, grads + t[4].offset, params + t[10].offset,
                       params + t[11].offset, grads + t[10].offset, grads + t[11].offset, x1,
                       saved + e->off_ffn, dy, dx1);
    attn_block_backward(s, &e->attn, params + t[0].offset, params + t[8].offset,
                        params + t[9].offset, grads + t[0].offset, grads + t[8].offset,
                        grads + t[9].offset, x, x, saved, dx1, dx, NULL);
}

int tl_decoder_layer_init(tl_decoder_layer *l, tl_set *s, const tl_config *c, int batch,
                          int tgt_len, int src_len, const char *name, ccdl_error *err) {
    memset(l, 0, sizeof *l);
    l->c = *c, l->batch = batch, l->tgt_len = tgt_len, l->src_len = src_len;
    tl_decoder_layer_tensors(c, l->t);
    const int rows = batch * tgt_len;
    if (config_check(c, name, err) ||
        attn_block_init(&l->self_attn, s, c, batch, tgt_len, tgt_len, 1, 1, name, err) ||
        attn_block_init(&l->cross_attn, s, c, batch, tgt_len, src_len, 0, 0, name, err) ||
        ffn_block_init(&l->ffn, s, c, rows, name, err))
        return -1;
    const size_t rd = (size_t)rows * c->d_model;
    l->off_x1 = l->self_attn.saved_floats;
    l->off_cross = l->off_x1 + rd;
    l->off_x2 = l->off_cross + l->cross_attn.saved_floats;
    l->off_ffn = l->off_x2 + rd;
    l->saved_floats = l->off_ffn + l->ffn.saved_floats;
    if (!training(s)) {
        l->ar_saved = reserve_floats(s, l->saved_floats);
    } else {
        l->ar_dx1 = reserve_floats(s, rd);
        l->ar_dx2 = reserve_floats(s, rd);
    }
    return 0;
}

/* Tensor indices in the decoder list: 0 self_attn.in_proj_weight, 4 multihead_attn.
 * in_proj_weight, 8 linear1.weight, 12..17 norm1..3 weight / bias. */
void tl_decoder_layer_forward(tl_set *s, tl_decoder_layer *l, const float *params, const float *x,
                              const uint8_t *tgt_pad, const float *enc, const uint8_t *src_pad,
                              const tl_dropout_key *key, uint32_t site, float *y, float *saved) {
    const tl_tensor *t = l->t;
    float *sv = saved_or_arena(s, saved, l->ar_saved);
    float *x1 = sv + l->off_x1, *x2 = sv + l->off_x2;
    attn_block_forward(s, &l->self_attn, params + t[0].offset, params + t[12].offset,
                       params + t[13].offset, x, x, tgt_pad, key, site, x1, sv);
    attn_block_forward(s, &l->cross_attn, params + t[4].offset, params + t[14].offset,
                       params + t[15].offset, x1, enc, src_pad, key, site + 2, x2,
                       sv + l->off_cross);
    ffn_block_forward(s, &l->ffn, params + t[8].offset, params + t[16].offset,
                      params + t[17].offset, x2, key, site + 4, y, sv + l->off_ffn);
}

void tl_decoder_layer_backward(tl_set *s, tl_decoder_layer *l, const float *params, float *grads,
                               const float *x, const float *enc, const float *saved,
                               const float *dy, float *dx, float *d_enc) {
    const tl_tensor *t = l->t;
    const float *x1 = saved + l->off_x1, *x2 = saved + l->off_x2;
    float *dx1 = arena_floats(s, l->ar_dx1), *dx2 = arena_floats(s, l->ar_dx2);
    ffn_block_backward(s, &l->ffn, params + t[8].offset, grads + t[8].offset, params + t[16].offset,
                       params + t[17].offset, grads + t[16].offset, grads + t[17].offset, x2,
                       saved + l->off_ffn, dy, dx2);
    attn_block_backward(s, &l->cross_attn, params + t[4].offset, params + t[14].offset,
                        params + t[15].offset, grads + t[4].offset, grads + t[14].offset,
                        grads + t[15].offset, x1, enc, saved + l->off_cross, dx2, dx1, d_enc);
    attn_block_backward(s, &l->self_attn, params + t[0].offset, params + t[12].offset,
                        params + t[13].offset, grads + t[0].offset, grads + t[12].offset,
                        grads + t[13].offset, x, x, saved, dx1, dx, NULL);
}

// ---------------------------------------------------------------------------- loss

tl_xent tl_smoothed_xent(const float *logits, const int32_t *target, int64_t rows, int vocab,
                         int pad, double eps, double grad_scale, float *dlogits) {
    tl_xent r = {0, 0, 0};
    const double uniform = eps / vocab;
    for (int64_t i = 0; i < rows; i++) {
        const float *z = logits + (size_t)i * vocab;
        float *g = dlogits ? dlogits + (size_t)i * vocab : NULL;
        const int32_t y = target[i];
        if (y == pad) {
            if (g) memset(g, 0, (size_t)vocab * sizeof *g);
            continue;
        }
        if (y < 0 || y >= vocab)
            ccdl_die("loss: target %d of row %lld is outside 0..%d", y, (long long)i, vocab - 1);
        double zmax = z[0], sum = 0, zsum = 0;
        for (int c = 1; c < vocab; c++)
            if (z[c] > zmax) zmax = z[c];
        for (int c = 0; c < vocab; c++) sum += exp((double)z[c] - zmax), zsum += z[c];
        const double log_norm = zmax + log(sum); /* -log p_c = log_norm - z_c */
        const double nll = log_norm - z[y];
        const double smooth = vocab * log_norm - zsum; /* sum_c -log p_c */
        r.nll += nll;
        r.loss += (1 - eps) * nll + uniform * smooth;
        r.tokens++;
        if (!g) continue;
        for (int c = 0; c < vocab; c++) {
            double p = exp((double)z[c] - log_norm);
            g[c] = (float)(grad_scale * (p - (1 - eps) * (c == y) - uniform));
        }
    }
    return r;
}
