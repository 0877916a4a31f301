/* test_tlayers.c: unit tests of the transformer layers (src/nn/tlayers.c).
 *
 * Oracles are written here from docs/transformer.md, independently of tlayers.c: a naive
 * double-precision model (plain loops) of every layer. Forwards are compared with it;
 * backwards with central finite differences of it, in double (step 1e-5: truncation error
 * ~1e-10, rounding ~1e-11, so the difference is the float implementation's own error).
 * The objective of every gradient check is L = sum_i r_i y_i with fixed random r, so the
 * backward runs with dy = r. Dropout masks in the naive model come from tl_dropout_mask with
 * the documented sites (the masks' determinism and statistics are tested on their own).
 *
 * Tolerances (f32 implementation vs double oracle, values and gradients of order 1):
 *   forward   |a - b| <= 2e-5 + 1e-4 |b|   (a few float roundings through <= 3 layer norms)
 *   gradients |a - b| <= 1e-4 + 1e-3 |b|   (float backward; measured worst ~1e-5 abs)
 * Mask tests compare bits: a masked position must contribute exactly nothing.
 *
 * `test_tlayers --bench` instead times one encoder and one decoder layer at the paper's
 * scale (not part of make check). */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rng.h"
#include "tlayers.h"
#include "util.h"

#define FWD_ATOL 2e-5
#define FWD_RTOL 1e-4
#define GRAD_ATOL 1e-4
#define GRAD_RTOL 1e-3
#define FD_STEP 1e-5

static layer_env env;
static layer_arena arena;

// ---------------------------------------------------------------------------- helpers

static void fill_uniform(rng_t *r, float *x, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * rng_uniform(r));
}

static double *to_double(const float *f, size_t n) {
    double *d = xmalloc_array(n ? n : 1, sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = f[i];
    return d;
}

static float *floats(size_t n) {
    return xalloc_floats(n ? n : 1);
}

/* check_tensor against a double reference. */
static int close_to(const float *a, const double *b, size_t n, double atol, double rtol,
                    const char *label) {
    float *bf = floats(n);
    for (size_t i = 0; i < n; i++) bf[i] = (float)b[i];
    int ok = check_tensor(a, bf, n, atol, rtol, label);
    free(bf);
    return ok;
}

/* Right padding: sentence b has len[b] real tokens. */
static uint8_t *pad_mask(int batch, int t, const int *len) {
    uint8_t *m = xmalloc_array((size_t)batch * t, 1);
    for (int b = 0; b < batch; b++)
        for (int i = 0; i < t; i++) m[(size_t)b * t + i] = i >= len[b];
    return m;
}

static void set_make(tl_set *s, int batch, int training_set) {
    tl_set_init(s, &env, batch, training_set);
}

static void set_ready(tl_set *s) {
    ccdl_error err = {0};
    if (tl_set_finish(s, &err)) ccdl_die("test: %s", err.text);
    tl_set_bind(s, &arena);
}

static void must(int rc, const ccdl_error *err) {
    if (rc) ccdl_die("test: %s", err->text);
}

// ---------------------------------------------------------------------------- naive model

static void nv_linear(const double *x, int rows, int in, const double *w, const double *b, int out,
                      double *y) {
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < out; o++) {
            double v = b[o];
            for (int k = 0; k < in; k++) v += w[(size_t)o * in + k] * x[(size_t)r * in + k];
            y[(size_t)r * out + o] = v;
        }
}

/* y = (x - mean) / sqrt(var + 1e-5) * g + b, biased variance over the row. */
static void nv_layernorm(const double *x, int rows, int dim, const double *g, const double *b,
                         double *y) {
    for (int r = 0; r < rows; r++) {
        const double *xr = x + (size_t)r * dim;
        double mean = 0, var = 0;
        for (int i = 0; i < dim; i++) mean += xr[i];
        mean /= dim;
        for (int i = 0; i < dim; i++) var += (xr[i] - mean) * (xr[i] - mean);
        var /= dim;
        for (int i = 0; i < dim; i++)
            y[(size_t)r * dim + i] = (xr[i] - mean) / sqrt(var + 1e-5) * g[i] + b[i];
    }
}

static void nv_dropout(double *x, size_t n, const tl_dropout_key *key, uint32_t site, double rate) {
    if (!key || rate <= 0) return;
    uint8_t *m = xmalloc_array(n, 1);
    tl_dropout_mask(key, site, (float)rate, n, m);
    for (size_t i = 0; i < n; i++) x[i] = m[i] ? x[i] / (1 - rate) : 0;
    free(m);
}

typedef struct {
    int batch, tq, tk, d, heads, causal;
    const uint8_t *key_pad;
    const tl_dropout_key *key;
    uint32_t site;
    double attn_dropout;
} nv_attn;

/* nn.MultiheadAttention: in_proj_weight (3d, d), in_proj_bias (3d), out_proj (d, d), (d). */
static void nv_mha(const nv_attn *a, const double *p, const double *xq, const double *xkv,
                   double *y) {
    const int B = a->batch, tq = a->tq, tk = a->tk, d = a->d, H = a->heads, dh = d / H;
    const size_t dd = (size_t)d * d;
    double *Q = xmalloc_array((size_t)B * tq * d, sizeof *Q);
    double *K = xmalloc_array((size_t)B * tk * d, sizeof *K);
    double *V = xmalloc_array((size_t)B * tk * d, sizeof *V);
    double *ctx = xmalloc_array((size_t)B * tq * d, sizeof *ctx);
    double *probs = xmalloc_array((size_t)B * H * tq * tk, sizeof *probs);
    nv_linear(xq, B * tq, d, p, p + 3 * dd, d, Q);
    nv_linear(xkv, B * tk, d, p + dd, p + 3 * dd + d, d, K);
    nv_linear(xkv, B * tk, d, p + 2 * dd, p + 3 * dd + 2 * d, d, V);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int q = 0; q < tq; q++) {
                double *pr = probs + (((size_t)b * H + h) * tq + q) * tk, top = -INFINITY, sum = 0;
                for (int k = 0; k < tk; k++) {
                    int masked =
                        (a->key_pad && a->key_pad[(size_t)b * tk + k]) || (a->causal && k > q);
                    double s = 0;
                    for (int j = 0; j < dh; j++)
                        s += Q[((size_t)b * tq + q) * d + h * dh + j] *
                             K[((size_t)b * tk + k) * d + h * dh + j];
                    pr[k] = masked ? -INFINITY : s / sqrt((double)dh);
                    if (pr[k] > top) top = pr[k];
                }
                for (int k = 0; k < tk; k++) sum += pr[k] = exp(pr[k] - top);
                for (int k = 0; k < tk; k++) pr[k] /= sum;
            }
    nv_dropout(probs, (size_t)B * H * tq * tk, a->key, a->site, a->attn_dropout);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int q = 0; q < tq; q++)
                for (int j = 0; j < dh; j++) {
                    double v = 0;
                    for (int k = 0; k < tk; k++)
                        v += probs[(((size_t)b * H + h) * tq + q) * tk + k] *
                             V[((size_t)b * tk + k) * d + h * dh + j];
                    ctx[((size_t)b * tq + q) * d + h * dh + j] = v;
                }
    nv_linear(ctx, B * tq, d, p + 3 * dd + 3 * d, p + 4 * dd + 3 * d, d, y);
    free(Q), free(K), free(V), free(ctx), free(probs);
}

/* out = LN(xq + dropout(mha)): sites a->site (weights), a->site + 1 (output). */
static void nv_attn_block(const nv_attn *a, double dropout, const double *p, const double *g,
                          const double *beta, const double *xq, const double *xkv, double *out) {
    const size_t n = (size_t)a->batch * a->tq * a->d;
    double *y = xmalloc_array(n, sizeof *y);
    nv_mha(a, p, xq, xkv, y);
    nv_dropout(y, n, a->key, a->site + 1, dropout);
    for (size_t i = 0; i < n; i++) y[i] += xq[i];
    nv_layernorm(y, a->batch * a->tq, a->d, g, beta, out);
    free(y);
}

/* out = LN(x + dropout(W2 dropout(relu(W1 x + b1)) + b2)): sites site, site + 1. */
static void nv_ffn_block(const tl_config *c, int rows, const double *p, const double *g,
                         const double *beta, const double *x, const tl_dropout_key *key,
                         uint32_t site, double *out) {
    const int d = c->d_model, f = c->d_ff;
    const size_t df = (size_t)d * f, n = (size_t)rows * d;
    double *h = xmalloc_array((size_t)rows * f, sizeof *h), *y = xmalloc_array(n, sizeof *y);
    nv_linear(x, rows, d, p, p + df, f, h);
    for (size_t i = 0; i < (size_t)rows * f; i++) h[i] = h[i] > 0 ? h[i] : 0;
    nv_dropout(h, (size_t)rows * f, key, site, c->relu_dropout);
    nv_linear(h, rows, f, p + df + f, p + 2 * df + f, d, y);
    nv_dropout(y, n, key, site + 1, c->dropout);
    for (size_t i = 0; i < n; i++) y[i] += x[i];
    nv_layernorm(y, rows, d, g, beta, out);
    free(h), free(y);
}

/* Parameter offsets of the PyTorch state-dict order, written out here independently. */
static size_t nv_attn_size(int d) {
    return (size_t)4 * d * d + 4 * d;
}
static size_t nv_ffn_size(const tl_config *c) {
    return (size_t)2 * c->d_model * c->d_ff + c->d_ff + c->d_model;
}

static void nv_encoder(const tl_config *c, int B, int T, const double *p, const double *x,
                       const uint8_t *pad, const tl_dropout_key *key, uint32_t site, double *y) {
    const int d = c->d_model;
    const double *ffn = p + nv_attn_size(d), *norms = ffn + nv_ffn_size(c);
    double *x1 = xmalloc_array((size_t)B * T * d, sizeof *x1);
    nv_attn a = {B, T, T, d, c->heads, 0, pad, key, site, c->attn_dropout};
    nv_attn_block(&a, c->dropout, p, norms, norms + d, x, x, x1);
    nv_ffn_block(c, B * T, ffn, norms + 2 * d, norms + 3 * d, x1, key, site + 2, y);
    free(x1);
}

static void nv_decoder(const tl_config *c, int B, int Tt, int Ts, const double *p, const double *x,
                       const uint8_t *tgt_pad, const double *enc, const uint8_t *src_pad,
                       const tl_dropout_key *key, uint32_t site, double *y) {
    const int d = c->d_model;
    const double *cross = p + nv_attn_size(d), *ffn = cross + nv_attn_size(d);
    const double *norms = ffn + nv_ffn_size(c);
    const size_t n = (size_t)B * Tt * d;
    double *x1 = xmalloc_array(n, sizeof *x1), *x2 = xmalloc_array(n, sizeof *x2);
    nv_attn self = {B, Tt, Tt, d, c->heads, 1, tgt_pad, key, site, c->attn_dropout};
    nv_attn_block(&self, c->dropout, p, norms, norms + d, x, x, x1);
    nv_attn crs = {B, Tt, Ts, d, c->heads, 0, src_pad, key, site + 2, c->attn_dropout};
    nv_attn_block(&crs, c->dropout, cross, norms + 2 * d, norms + 3 * d, x1, enc, x2);
    nv_ffn_block(c, B * Tt, ffn, norms + 4 * d, norms + 5 * d, x2, key, site + 4, y);
    free(x1), free(x2);
}

// ---------------------------------------------------------------------------- finite differences

/* What the naive model computes for a gradient check, on double copies of the inputs (the
 * finite differences perturb them in place). */
typedef enum { FD_LINEAR, FD_LAYERNORM, FD_MHA, FD_ENCODER, FD_DECODER } fd_kind;

typedef struct {
    fd_kind kind;
    tl_config c;
    nv_attn a;          /* FD_MHA */
    int rows, in, out;  /* FD_LINEAR, FD_LAYERNORM (in = dim) */
    int batch, tq, tk;  /* FD_ENCODER (tq), FD_DECODER */
    double *p, *x, *x2; /* parameters, input, second input (xkv / enc) */
    const uint8_t *pad, *pad2;
    const tl_dropout_key *key;
    uint32_t site;
    const float *r; /* dL/dy */
    size_t ny;
} fd_case;

static void fd_eval(const fd_case *f, double *y) {
    switch (f->kind) {
    case FD_LINEAR:
        nv_linear(f->x, f->rows, f->in, f->p, f->p + (size_t)f->in * f->out, f->out, y);
        break;
    case FD_LAYERNORM:
        nv_layernorm(f->x, f->rows, f->in, f->p, f->p + f->in, y);
        break;
    case FD_MHA:
        nv_mha(&f->a, f->p, f->x, f->x2 ? f->x2 : f->x, y);
        break;
    case FD_ENCODER:
        nv_encoder(&f->c, f->batch, f->tq, f->p, f->x, f->pad, f->key, f->site, y);
        break;
    case FD_DECODER:
        nv_decoder(&f->c, f->batch, f->tq, f->tk, f->p, f->x, f->pad, f->x2, f->pad2, f->key,
                   f->site, y);
        break;
    }
}

static double fd_objective(const fd_case *f) {
    double *y = xmalloc_array(f->ny, sizeof *y), l = 0;
    fd_eval(f, y);
    for (size_t i = 0; i < f->ny; i++) l += f->r[i] * y[i];
    free(y);
    return l;
}

/* Number of elements of `analytic` (the gradient of L by arr) outside the gradient
 * tolerance of central differences; reports the worst unless quiet. */
static int fd_mismatches(const fd_case *f, double *arr, size_t n, const float *analytic,
                         const char *label, int quiet) {
    int bad = 0;
    double worst = 0, worst_fd = 0, worst_an = 0, max_abs = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        const double save = arr[i];
        arr[i] = save + FD_STEP;
        const double lp = fd_objective(f);
        arr[i] = save - FD_STEP;
        const double lm = fd_objective(f);
        arr[i] = save;
        const double fd = (lp - lm) / (2 * FD_STEP), err = fabs(analytic[i] - fd);
        const double excess = err - (GRAD_ATOL + GRAD_RTOL * fabs(fd));
        if (err > max_abs) max_abs = err;
        if (excess > 0) bad++;
        if (excess > worst || i == 0)
            worst = excess, worst_i = i, worst_fd = fd, worst_an = analytic[i];
    }
    if (!quiet && bad)
        fprintf(stderr, "%s: %d of %zu gradients off; worst [%zu] analytic %.9g, fd %.9g\n", label,
                bad, n, worst_i, worst_an, worst_fd);
    if (!quiet && getenv("TL_VERBOSE"))
        fprintf(stderr, "%s: max |analytic - fd| = %.3g over %zu\n", label, max_abs, n);
    return bad;
}

#define CHECK_GRAD(f, arr, n, analytic, label)                                                     \
    CHECK_MSG(fd_mismatches((f), (arr), (n), (analytic), (label), 0) == 0, "%s", (label))

// ---------------------------------------------------------------------------- embedding

static void test_embedding(void) {
    const int V = 7, d = 6, B = 2, T = 4, pad = 1;
    const float scale = sqrtf((float)d);
    rng_t r;
    rng_seed(&r, 1, RNG_TEST, 100, 0);
    float *table = floats((size_t)V * d), *out = floats((size_t)B * T * d);
    fill_uniform(&r, table, (size_t)V * d, -1, 1);
    const int32_t tok[] = {3, 5, 3, 1, 0, 6, 1, 1}; /* token 3 twice, padding (1) at the ends */
    tl_embed_forward(table, V, d, scale, tok, B, T, out);
    double *want = xmalloc_array((size_t)B * T * d, sizeof *want);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < d; i++) {
                /* Vaswani: PE(t, 2k) = sin(t / 10000^(2k / d)), PE(t, 2k + 1) = cos(same) */
                double freq = pow(10000.0, -(double)(i - i % 2) / d);
                double pe = i % 2 ? cos(t * freq) : sin(t * freq);
                want[((size_t)b * T + t) * d + i] =
                    sqrt((double)d) * table[(size_t)tok[b * T + t] * d + i] + pe;
            }
    close_to(out, want, (size_t)B * T * d, 1e-6, 1e-6, "embedding forward");
    float pe0[6];
    tl_positional_encoding(0, d, pe0);
    CHECK(pe0[0] == 0 && pe0[1] == 1 && pe0[4] == 0 && pe0[5] == 1);

    /* backward: adds scale * dout into the rows of the tokens; repeated tokens sum; the
     * padding row and rows of absent tokens stay as they were */
    float *dout = floats((size_t)B * T * d), *dtab = floats((size_t)V * d);
    fill_uniform(&r, dout, (size_t)B * T * d, -1, 1);
    for (size_t i = 0; i < (size_t)V * d; i++) dtab[i] = 0.5f;
    tl_embed_backward(dtab, V, d, scale, pad, tok, B, T, dout);
    for (int v = 0; v < V; v++)
        for (int i = 0; i < d; i++) {
            double g = 0.5;
            for (int k = 0; k < B * T; k++)
                if (tok[k] == v && v != pad) g += scale * (double)dout[(size_t)k * d + i];
            CHECK_CLOSE(dtab[(size_t)v * d + i], g, 1e-6, 1e-6);
        }
    CHECK(dtab[(size_t)pad * d] == 0.5f && dtab[(size_t)2 * d] == 0.5f);
    free(table), free(out), free(want), free(dout), free(dtab);
}

// ---------------------------------------------------------------------------- linear, layer norm

static void test_linear(void) {
    const int rows = 7, in = 9, out = 5;
    ccdl_error err = {0};
    rng_t r;
    rng_seed(&r, 1, RNG_TEST, 101, 0);
    const size_t np = (size_t)out * in + out;
    float *p = floats(np), *x = floats((size_t)rows * in), *y = floats((size_t)rows * out);
    float *dy = floats((size_t)rows * out), *g = floats(np), *dx = floats((size_t)rows * in);
    fill_uniform(&r, p, np, -1, 1);
    fill_uniform(&r, x, (size_t)rows * in, -1, 1);
    fill_uniform(&r, dy, (size_t)rows * out, -1, 1);
    tl_set s;
    tl_linear l;
    set_make(&s, rows, 1);
    must(tl_linear_init(&l, &s, rows, in, out, 1, "linear", &err), &err);
    set_ready(&s);
    tl_linear_forward(&s, &l, p, p + (size_t)out * in, x, y);
    tl_linear_backward(&s, &l, p, g, g + (size_t)out * in, x, dy, dx);
    layer_wait(&s.base);
    fd_case f = {.kind = FD_LINEAR, .rows = rows, .in = in, .out = out, .r = dy};
    f.p = to_double(p, np), f.x = to_double(x, (size_t)rows * in), f.ny = (size_t)rows * out;
    double *want = xmalloc_array(f.ny, sizeof *want);
    fd_eval(&f, want);
    close_to(y, want, f.ny, FWD_ATOL, FWD_RTOL, "linear forward");
    CHECK_GRAD(&f, f.p, np, g, "linear d(weights, bias)");
    CHECK_GRAD(&f, f.x, (size_t)rows * in, dx, "linear dx");
    tl_set_destroy(&s);
    free(p), free(x), free(y), free(dy), free(g), free(dx), free(f.p), free(f.x), free(want);
}

static void test_layernorm(void) {
    const int rows = 6, dim = 12;
    ccdl_error err = {0};
    rng_t r;
    rng_seed(&r, 1, RNG_TEST, 102, 0);
    const size_t n = (size_t)rows * dim;
    float *p = floats(2 * dim), *x = floats(n), *y = floats(n), *dy = floats(n), *dx = floats(n);
    float *g = floats(2 * dim), *mean = floats(rows), *var = floats(rows);
    fill_uniform(&r, p, 2 * dim, 0.5, 1.5);
    fill_uniform(&r, x, n, -2, 2);
    fill_uniform(&r, dy, n, -1, 1);
    tl_set s;
    tl_layernorm ln;
    set_make(&s, rows, 1);
    must(tl_layernorm_init(&ln, &s, rows, dim, "layer norm", &err), &err);
    set_ready(&s);
    tl_layernorm_forward(&s, &ln, p, p + dim, x, y, mean, var);
    tl_layernorm_backward(&s, &ln, p, p + dim, g, g + dim, x, mean, var, dy, dx);
    layer_wait(&s.base);
    fd_case f = {.kind = FD_LAYERNORM, .rows = rows, .in = dim, .r = dy, .ny = n};
    f.p = to_double(p, 2 * dim), f.x = to_double(x, n);
    double *want = xmalloc_array(n, sizeof *want);
    fd_eval(&f, want);
    close_to(y, want, n, FWD_ATOL, FWD_RTOL, "layer norm forward");
    CHECK_GRAD(&f, f.p, 2 * dim, g, "layer norm d(gamma, beta)");
    CHECK_GRAD(&f, f.x, n, dx, "layer norm dx");
    tl_set_destroy(&s);
    free(p), free(x), free(y), free(dy), free(dx), free(g), free(mean), free(var), free(f.p);
    free(f.x), free(want);
}

// ---------------------------------------------------------------------------- attention

/* One multi-head attention against the naive one, forward and every gradient. */
static void check_mha(int self, int causal, float attn_dropout, const char *label) {
    const int B = 3, tq = 5, tk = self ? 5 : 4, d = 8, H = 2;
    const int len_k[] = {tk, tk - 2, 1}; /* padded keys in two sentences */
    ccdl_error err = {0};
    rng_t r;
    rng_seed(&r, 1, RNG_TEST, 103, (uint64_t)self * 4 + causal * 2 + (attn_dropout > 0));
    const size_t np = tl_mha_param_count(d), nq = (size_t)B * tq * d, nk = (size_t)B * tk * d;
    float *p = floats(np), *xq = floats(nq), *xkv = floats(nk), *y = floats(nq), *dy = floats(nq);
    float *g = floats(np), *dxq = floats(nq), *dxkv = floats(nk);
    fill_uniform(&r, p, np, -0.5, 0.5);
    fill_uniform(&r, xq, nq, -1, 1);
    fill_uniform(&r, xkv, nk, -1, 1);
    fill_uniform(&r, dy, nq, -1, 1);
    for (size_t i = 0; i < nk; i++) dxkv[i] = 0.25f; /* the cross gradient adds to this */
    uint8_t *kpad = pad_mask(B, tk, len_k);
    tl_dropout_key key = {42, 3, 1};
    tl_set s;
    tl_mha a;
    set_make(&s, B, 1);
    must(tl_mha_init(&a, &s, B, tq, tk, d, H, self, causal, attn_dropout, label, &err), &err);
    set_ready(&s);
    float *saved = floats(a.saved_floats);
    tl_mha_forward(&s, &a, p, xq, self ? xq : xkv, kpad, &key, 5, y, saved);
    tl_mha_backward(&s, &a, p, g, xq, self ? xq : xkv, saved, dy, dxq, self ? NULL : dxkv);
    layer_wait(&s.base);

    fd_case f = {.kind = FD_MHA, .r = dy, .ny = nq};
    f.a = (nv_attn){B, tq, tk, d, H, causal, kpad, &key, 5, attn_dropout};
    f.p = to_double(p, np), f.x = to_double(xq, nq), f.x2 = self ? NULL : to_double(xkv, nk);
    double *want = xmalloc_array(nq, sizeof *want);
    fd_eval(&f, want);
    char what[128];
    snprintf(what, sizeof what, "%s forward", label);
    close_to(y, want, nq, FWD_ATOL, FWD_RTOL, what);
    snprintf(what, sizeof what, "%s d params", label);
    CHECK_GRAD(&f, f.p, np, g, what);
    snprintf(what, sizeof what, "%s d xq", label);
    CHECK_GRAD(&f, f.x, nq, dxq, what);
    if (!self) {
        for (size_t i = 0; i < nk; i++) dxkv[i] -= 0.25f;
        snprintf(what, sizeof what, "%s d xkv (added)", label);
        CHECK_GRAD(&f, f.x2, nk, dxkv, what);
    }
    tl_set_destroy(&s);
    free(p), free(xq), free(xkv), free(y), free(dy), free(g), free(dxq), free(dxkv), free(kpad);
    free(saved), free(f.p), free(f.x), free(f.x2), free(want);
}

static void test_mha(void) {
    check_mha(1, 0, 0, "self-attention, key padding");
    check_mha(1, 1, 0, "self-attention, causal + key padding");
    check_mha(0, 0, 0, "cross-attention, key padding");
    check_mha(1, 1, 0.3f, "self-attention, causal, dropout 0.3");
    check_mha(0, 0, 0.3f, "cross-attention, dropout 0.3");
}

// ---------------------------------------------------------------------------- layers

static tl_config small_config(float dropout) {
    return (tl_config){.d_model = 8,
                       .heads = 2,
                       .d_ff = 16,
                       .dropout = dropout,
                       .attn_dropout = dropout,
                       .relu_dropout = dropout};
}

static void check_encoder(float dropout, const char *label) {
    const tl_config c = small_config(dropout);
    const int B = 2, T = 5, d = c.d_model, len[] = {5, 3};
    ccdl_error err = {0};
    rng_t r;
    rng_seed(&r, 1, RNG_TEST, 104, dropout > 0);
    const size_t np = tl_encoder_layer_param_count(&c), n = (size_t)B * T * d;
    float *p = floats(np), *x = floats(n), *y = floats(n), *dy = floats(n), *g = floats(np);
    float *dx = floats(n);
    fill_uniform(&r, p, np, -0.5, 0.5);
    fill_uniform(&r, x, n, -1, 1);
    fill_uniform(&r, dy, n, -1, 1);
    uint8_t *pad = pad_mask(B, T, len);
    tl_dropout_key key = {7, 11, 2};
    tl_set s;
    tl_encoder_layer e;
    set_make(&s, B, 1);
    must(tl_encoder_layer_init(&e, &s, &c, B, T, label, &err), &err);
    set_ready(&s);
    float *saved = floats(e.saved_floats);
    tl_encoder_layer_forward(&s, &e, p, x, pad, &key, 16, y, saved);
    tl_encoder_layer_backward(&s, &e, p, g, x, saved, dy, dx);
    layer_wait(&s.base);
    fd_case f = {.kind = FD_ENCODER, .c = c, .batch = B, .tq = T, .pad = pad, .key = &key};
    f.site = 16, f.r = dy, f.ny = n, f.p = to_double(p, np), f.x = to_double(x, n);
    double *want = xmalloc_array(n, sizeof *want);
    fd_eval(&f, want);
    char what[128];
    snprintf(what, sizeof what, "%s forward", label);
    close_to(y, want, n, FWD_ATOL, FWD_RTOL, what);
    snprintf(what, sizeof what, "%s d params", label);
    CHECK_GRAD(&f, f.p, np, g, what);
    snprintf(what, sizeof what, "%s dx", label);
    CHECK_GRAD(&f, f.x, n, dx, what);
    tl_set_destroy(&s);
    free(p), free(x), free(y), free(dy), free(g), free(dx), free(pad), free(saved), free(f.p);
    free(f.x), free(want);
}

static void check_decoder(float dropout, const char *label) {
    const tl_config c = small_config(dropout);
    const int B = 2, Tt = 4, Ts = 5, d = c.d_model, tlen[] = {4, 2}, slen[] = {3, 5};
    ccdl_error err = {0};
    rng_t r;
    rng_seed(&r, 1, RNG_TEST, 105, dropout > 0);
    const size_t np = tl_decoder_layer_param_count(&c), n = (size_t)B * Tt * d;
    const size_t ne = (size_t)B * Ts * d;
    float *p = floats(np), *x = floats(n), *enc = floats(ne), *y = floats(n), *dy = floats(n);
    float *g = floats(np), *dx = floats(n), *denc = floats(ne);
    fill_uniform(&r, p, np, -0.5, 0.5);
    fill_uniform(&r, x, n, -1, 1);
    fill_uniform(&r, enc, ne, -1, 1);
    fill_uniform(&r, dy, n, -1, 1);
    uint8_t *tpad = pad_mask(B, Tt, tlen), *spad = pad_mask(B, Ts, slen);
    tl_dropout_key key = {7, 12, 3};
    tl_set s;
    tl_decoder_layer l;
    set_make(&s, B, 1);
    must(tl_decoder_layer_init(&l, &s, &c, B, Tt, Ts, label, &err), &err);
    set_ready(&s);
    float *saved = floats(l.saved_floats);
    tl_decoder_layer_forward(&s, &l, p, x, tpad, enc, spad, &key, 24, y, saved);
    tl_decoder_layer_backward(&s, &l, p, g, x, enc, saved, dy, dx, denc);
    layer_wait(&s.base);
    fd_case f = {.kind = FD_DECODER, .c = c, .batch = B, .tq = Tt, .tk = Ts, .pad = tpad};
    f.pad2 = spad, f.key = &key, f.site = 24, f.r = dy, f.ny = n;
    f.p = to_double(p, np), f.x = to_double(x, n), f.x2 = to_double(enc, ne);
    double *want = xmalloc_array(n, sizeof *want);
    fd_eval(&f, want);
    char what[128];
    snprintf(what, sizeof what, "%s forward", label);
    close_to(y, want, n, FWD_ATOL, FWD_RTOL, what);
    snprintf(what, sizeof what, "%s d params", label);
    CHECK_GRAD(&f, f.p, np, g, what);
    snprintf(what, sizeof what, "%s dx", label);
    CHECK_GRAD(&f, f.x, n, dx, what);
    snprintf(what, sizeof what, "%s d enc", label);
    CHECK_GRAD(&f, f.x2, ne, denc, what);
    tl_set_destroy(&s);
    free(p), free(x), free(enc), free(y), free(dy), free(g), free(dx), free(denc), free(tpad);
    free(spad), free(saved), free(f.p), free(f.x), free(f.x2), free(want);
}

static void test_layers(void) {
    check_encoder(0, "encoder layer");
    check_encoder(0.25f, "encoder layer, dropout 0.25");
    check_decoder(0, "decoder layer");
    check_decoder(0.25f, "decoder layer, dropout 0.25");
}

/* The finite-difference oracle catches a wrong gradient: the linear layer's weight gradient
 * with one element's sign flipped must fail the comparison (quietly: not a test failure). */
static void test_fd_catches_errors(void) {
    const int rows = 4, in = 3, out = 2;
    rng_t r;
    rng_seed(&r, 1, RNG_TEST, 106, 0);
    const size_t np = (size_t)out * in + out;
    float p[8], x[12], dy[8], g[8];
    fill_uniform(&r, p, np, -1, 1);
    fill_uniform(&r, x, 12, -1, 1);
    fill_uniform(&r, dy, 8, -1, 1);
    /* exact gradient of sum dy * (x W^T + b) by hand: dW[o][k] = sum_r dy[r][o] x[r][k] */
    for (int o = 0; o < out; o++) {
        double gb = 0;
        for (int k = 0; k < in; k++) {
            double gw = 0;
            for (int q = 0; q < rows; q++) gw += dy[q * out + o] * x[q * in + k];
            g[o * in + k] = (float)gw;
        }
        for (int q = 0; q < rows; q++) gb += dy[q * out + o];
        g[out * in + o] = (float)gb;
    }
    fd_case f = {.kind = FD_LINEAR, .rows = rows, .in = in, .out = out, .r = dy, .ny = 8};
    f.p = to_double(p, np), f.x = to_double(x, 12);
    CHECK(fd_mismatches(&f, f.p, np, g, "hand gradient", 0) == 0);
    g[1] = -g[1];
    CHECK(fd_mismatches(&f, f.p, np, g, "sign-flipped gradient", 1) == 1);
    free(f.p), free(f.x);
}

// ---------------------------------------------------------------------------- masks

/* Changing target tokens after position t leaves the decoder's outputs at positions <= t
 * bitwise unchanged (embedding + decoder layer, training set, dropout on: the masks are
 * per element, so they are equal in both runs). */
static void test_causal_mask(void) {
    const tl_config c = small_config(0.2f);
    const int B = 2, Tt = 5, Ts = 4, d = c.d_model, V = 11, slen[] = {4, 2};
    ccdl_error err = {0};
    rng_t r;
    rng_seed(&r, 1, RNG_TEST, 107, 0);
    const size_t np = tl_decoder_layer_param_count(&c), n = (size_t)B * Tt * d;
    float *p = floats(np), *table = floats((size_t)V * d), *enc = floats((size_t)B * Ts * d);
    float *x = floats(n), *y0 = floats(n), *y1 = floats(n);
    fill_uniform(&r, p, np, -0.5, 0.5);
    fill_uniform(&r, table, (size_t)V * d, -1, 1);
    fill_uniform(&r, enc, (size_t)B * Ts * d, -1, 1);
    uint8_t *spad = pad_mask(B, Ts, slen);
    tl_dropout_key key = {9, 1, 0};
    tl_set s;
    tl_decoder_layer l;
    set_make(&s, B, 1);
    must(tl_decoder_layer_init(&l, &s, &c, B, Tt, Ts, "causal", &err), &err);
    set_ready(&s);
    float *saved = floats(l.saved_floats);
    int32_t tok[10], tok2[10];
    for (int i = 0; i < B * Tt; i++) tok[i] = (int32_t)rng_below(&r, V);
    tl_embed_forward(table, V, d, sqrtf((float)d), tok, B, Tt, x);
    tl_decoder_layer_forward(&s, &l, p, x, NULL, enc, spad, &key, 0, y0, saved);
    layer_wait(&s.base);
    int all_same = 1;
    for (int t = 0; t < Tt - 1; t++) {
        memcpy(tok2, tok, sizeof tok);
        for (int b = 0; b < B; b++)
            for (int u = t + 1; u < Tt; u++) tok2[b * Tt + u] = (tok[b * Tt + u] + 1 + u) % V;
        tl_embed_forward(table, V, d, sqrtf((float)d), tok2, B, Tt, x);
        tl_decoder_layer_forward(&s, &l, p, x, NULL, enc, spad, &key, 0, y1, saved);
        layer_wait(&s.base);
        for (int b = 0; b < B; b++) {
            const size_t at = (size_t)b * Tt * d, count = (size_t)(t + 1) * d;
            if (memcmp(y0 + at, y1 + at, count * sizeof *y0) != 0) all_same = 0;
            /* and the change is visible after t (the test can fail) */
            CHECK(memcmp(y0 + at + count, y1 + at + count, (Tt - t - 1) * d * sizeof *y0) != 0);
        }
    }
    CHECK_MSG(all_same, "decoder outputs at positions <= t changed with tokens after t");
    tl_set_destroy(&s);
    free(p), free(table), free(enc), free(x), free(y0), free(y1), free(spad), free(saved);
}

/* Changing the values at padded positions leaves every real position's output bitwise
 * unchanged: padded source rows for the encoder layer and for the decoder's cross-attention
 * (enc), with dropout on. */
static void test_padding_mask(void) {
    const tl_config c = small_config(0.2f);
    const int B = 3, T = 5, Tt = 3, d = c.d_model, len[] = {5, 2, 3};
    ccdl_error err = {0};
    rng_t r;
    rng_seed(&r, 1, RNG_TEST, 108, 0);
    const size_t npe = tl_encoder_layer_param_count(&c), npd = tl_decoder_layer_param_count(&c);
    const size_t n = (size_t)B * T * d, nt = (size_t)B * Tt * d;
    float *pe = floats(npe), *pd = floats(npd), *x = floats(n), *x2 = floats(n);
    float *y0 = floats(n), *y1 = floats(n), *xt = floats(nt), *z0 = floats(nt), *z1 = floats(nt);
    fill_uniform(&r, pe, npe, -0.5, 0.5);
    fill_uniform(&r, pd, npd, -0.5, 0.5);
    fill_uniform(&r, x, n, -1, 1);
    fill_uniform(&r, xt, nt, -1, 1);
    memcpy(x2, x, n * sizeof *x);
    for (int b = 0; b < B; b++)
        for (int t = len[b]; t < T; t++)
            for (int i = 0; i < d; i++) x2[((size_t)b * T + t) * d + i] = 100.0f + (float)(t + i);
    uint8_t *pad = pad_mask(B, T, len);
    tl_dropout_key key = {9, 2, 1};
    tl_set s;
    tl_encoder_layer e;
    tl_decoder_layer l;
    set_make(&s, B, 1);
    must(tl_encoder_layer_init(&e, &s, &c, B, T, "padding enc", &err), &err);
    must(tl_decoder_layer_init(&l, &s, &c, B, Tt, T, "padding dec", &err), &err);
    set_ready(&s);
    float *se = floats(e.saved_floats), *sd = floats(l.saved_floats);
    tl_encoder_layer_forward(&s, &e, pe, x, pad, &key, 0, y0, se);
    tl_encoder_layer_forward(&s, &e, pe, x2, pad, &key, 0, y1, se);
    tl_decoder_layer_forward(&s, &l, pd, xt, NULL, x, pad, &key, 8, z0, sd);
    tl_decoder_layer_forward(&s, &l, pd, xt, NULL, x2, pad, &key, 8, z1, sd);
    layer_wait(&s.base);
    int enc_same = 1;
    for (int b = 0; b < B; b++) {
        const size_t at = (size_t)b * T * d;
        if (memcmp(y0 + at, y1 + at, (size_t)len[b] * d * sizeof *y0) != 0) enc_same = 0;
    }
    CHECK_MSG(enc_same, "encoder outputs at real positions changed with padded inputs");
    CHECK(memcmp(y0 + (size_t)T * d + 2 * d, y1 + (size_t)T * d + 2 * d, d * sizeof *y0) != 0);
    CHECK_MSG(memcmp(z0, z1, nt * sizeof *z0) == 0,
              "decoder outputs changed with padded encoder rows");
    /* without the mask the change shows: the check can fail */
    tl_decoder_layer_forward(&s, &l, pd, xt, NULL, x2, NULL, &key, 8, z1, sd);
    layer_wait(&s.base);
    CHECK(memcmp(z0, z1, nt * sizeof *z0) != 0);
    tl_set_destroy(&s);
    free(pe), free(pd), free(x), free(x2), free(y0), free(y1), free(xt), free(z0), free(z1);
    free(pad), free(se), free(sd);
}

// ---------------------------------------------------------------------------- dropout

static void test_dropout(void) {
    enum { N = 100000 };
    uint8_t *a = xmalloc(N), *b = xmalloc(N);
    const tl_dropout_key k = {5, 17, 3}, other_worker = {5, 17, 4}, other_step = {5, 18, 3};
    tl_dropout_mask(&k, 2, 0.1f, N, a);
    tl_dropout_mask(&k, 2, 0.1f, N, b);
    CHECK(memcmp(a, b, N) == 0); /* same (seed, step, worker, site): same mask */
    tl_dropout_mask(&other_worker, 2, 0.1f, N, b);
    CHECK(memcmp(a, b, N) != 0);
    tl_dropout_mask(&other_step, 2, 0.1f, N, b);
    CHECK(memcmp(a, b, N) != 0);
    tl_dropout_mask(&k, 3, 0.1f, N, b);
    CHECK(memcmp(a, b, N) != 0);
    /* keep rate 0.9: binomial sd = sqrt(N 0.9 0.1) = 95; allow 5 sd */
    long kept = 0;
    for (int i = 0; i < N; i++) kept += a[i];
    CHECK_MSG(labs(kept - 90000) < 475, "kept %ld of %d at rate 0.1", kept, N);
    /* the first elements of a longer mask are the shorter mask (one draw per element) */
    tl_dropout_mask(&k, 2, 0.1f, 1000, b);
    CHECK(memcmp(a, b, 1000) == 0);
    tl_dropout_mask(&k, 2, 0.0f, N, b);
    kept = 0;
    for (int i = 0; i < N; i++) kept += b[i];
    CHECK(kept == N);
    float v[4] = {1, 2, 3, 4};
    const uint8_t m[4] = {1, 0, 1, 0};
    tl_dropout_apply(v, m, 0.5f, 4);
    CHECK(v[0] == 2 && v[1] == 0 && v[2] == 6 && v[3] == 0);

    /* in a layer: rate 0 with a key gives the bits of no key at all; rate > 0 changes the
     * output, identically for the same key, differently for another worker */
    const tl_config c0 = small_config(0), c1 = small_config(0.3f);
    const int B = 2, T = 4, d = c0.d_model;
    const size_t np = tl_encoder_layer_param_count(&c0), n = (size_t)B * T * d;
    ccdl_error err = {0};
    rng_t r;
    rng_seed(&r, 1, RNG_TEST, 109, 0);
    float *p = floats(np), *x = floats(n), *y0 = floats(n), *y1 = floats(n), *y2 = floats(n);
    fill_uniform(&r, p, np, -0.5, 0.5);
    fill_uniform(&r, x, n, -1, 1);
    tl_set s;
    tl_encoder_layer e0, e1;
    set_make(&s, B, 1);
    must(tl_encoder_layer_init(&e0, &s, &c0, B, T, "rate 0", &err), &err);
    must(tl_encoder_layer_init(&e1, &s, &c1, B, T, "rate 0.3", &err), &err);
    set_ready(&s);
    float *sv = floats(e1.saved_floats > e0.saved_floats ? e1.saved_floats : e0.saved_floats);
    tl_encoder_layer_forward(&s, &e0, p, x, NULL, NULL, 0, y0, sv);
    tl_encoder_layer_forward(&s, &e0, p, x, NULL, &k, 0, y1, sv);
    layer_wait(&s.base);
    CHECK(memcmp(y0, y1, n * sizeof *y0) == 0);
    tl_encoder_layer_forward(&s, &e1, p, x, NULL, NULL, 0, y1, sv); /* no key: no dropout */
    layer_wait(&s.base);
    CHECK(memcmp(y0, y1, n * sizeof *y0) == 0);
    tl_encoder_layer_forward(&s, &e1, p, x, NULL, &k, 0, y1, sv);
    tl_encoder_layer_forward(&s, &e1, p, x, NULL, &k, 0, y2, sv);
    layer_wait(&s.base);
    CHECK(memcmp(y0, y1, n * sizeof *y0) != 0);
    CHECK(memcmp(y1, y2, n * sizeof *y1) == 0);
    tl_encoder_layer_forward(&s, &e1, p, x, NULL, &other_worker, 0, y2, sv);
    layer_wait(&s.base);
    CHECK(memcmp(y1, y2, n * sizeof *y1) != 0);
    tl_set_destroy(&s);
    free(a), free(b), free(p), free(x), free(y0), free(y1), free(y2), free(sv);
}

// ---------------------------------------------------------------------------- loss

static void test_loss(void) {
    /* Hand example, V = 3, eps = 0.1, target 2: logits (0, 0, ln 2) give p = (1/4, 1/4, 1/2).
     *   nll = -ln(1/2) = ln 2;  sum_c -ln p_c = ln 4 + ln 4 + ln 2 = 5 ln 2
     *   loss = (1 - 0.1) ln 2 + (0.1 / 3) 5 ln 2 = (0.9 + 1/6) ln 2 = (16/15) ln 2
     *   dlogits = p - 0.9 onehot - 0.1/3 = (1/4 - 1/30, 1/4 - 1/30, 1/2 - 0.9 - 1/30)
     *           = (13/60, 13/60, -13/30)
     * Row 2 has the padding target (0): it counts nothing and gets a zero gradient. */
    const float z[6] = {0, 0, (float)log(2.0), 5, -3, 1};
    const int32_t y[2] = {2, 0};
    float g[6];
    tl_xent l = tl_smoothed_xent(z, y, 2, 3, 0, 0.1, 1.0, g);
    CHECK(l.tokens == 1);
    CHECK_CLOSE(l.nll, log(2.0), 1e-7, 0);
    CHECK_CLOSE(l.loss, 16.0 / 15.0 * log(2.0), 1e-7, 0);
    CHECK_CLOSE(g[0], 13.0 / 60, 1e-7, 0);
    CHECK_CLOSE(g[1], 13.0 / 60, 1e-7, 0);
    CHECK_CLOSE(g[2], -13.0 / 30, 1e-7, 0);
    CHECK(g[3] == 0 && g[4] == 0 && g[5] == 0);
    /* eps = 0 is plain cross-entropy; grad_scale scales the gradient only */
    l = tl_smoothed_xent(z, y, 2, 3, 0, 0.0, 0.5, g);
    CHECK_CLOSE(l.loss, log(2.0), 1e-7, 0);
    CHECK_CLOSE(g[2], 0.5 * (0.5 - 1), 1e-7, 0);

    /* gradient of the loss sum against central differences in double of the formula */
    enum { R = 4, V = 6 };
    rng_t r;
    rng_seed(&r, 1, RNG_TEST, 110, 0);
    float logits[R * V], d[R * V];
    fill_uniform(&r, logits, R * V, -3, 3);
    const int32_t t[R] = {1, 5, 0, 3}; /* pad = 0: row 2 ignored */
    tl_smoothed_xent(logits, t, R, V, 0, 0.1, 1.0, d);
    double *zd = to_double(logits, R * V);
    int bad = 0;
    for (int i = 0; i < R * V; i++) {
        double lp = 0, lm = 0;
        for (int side = 0; side < 2; side++) {
            const double save = zd[i];
            zd[i] = save + (side ? -FD_STEP : FD_STEP);
            double total = 0;
            for (int q = 0; q < R; q++) {
                if (t[q] == 0) continue;
                double top = -INFINITY, sum = 0;
                for (int c = 0; c < V; c++) top = fmax(top, zd[q * V + c]);
                for (int c = 0; c < V; c++) sum += exp(zd[q * V + c] - top);
                for (int c = 0; c < V; c++) {
                    double nlp = top + log(sum) - zd[q * V + c];
                    total += (c == t[q] ? 0.9 : 0) * nlp + 0.1 / V * nlp;
                }
            }
            zd[i] = save;
            *(side ? &lm : &lp) = total;
        }
        if (fabs(d[i] - (lp - lm) / (2 * FD_STEP)) > 1e-6) bad++;
    }
    CHECK_MSG(bad == 0, "%d loss gradients off", bad);
    free(zd);
}

// ---------------------------------------------------------------------------- tensors, FLOPs

static void test_tensors(void) {
    /* PyTorch: nn.TransformerEncoderLayer(512, 8, 2048) has 3,152,384 parameters,
     * nn.TransformerDecoderLayer(512, 8, 2048) 4,204,032. */
    tl_config big = {.d_model = 512, .heads = 8, .d_ff = 2048};
    CHECK(tl_encoder_layer_param_count(&big) == 3152384);
    CHECK(tl_decoder_layer_param_count(&big) == 4204032);
    tl_tensor t[TL_MAX_TENSORS];
    const tl_config c = small_config(0);
    static const char *enc_names[] = {"self_attn.in_proj_weight",
                                      "self_attn.in_proj_bias",
                                      "self_attn.out_proj.weight",
                                      "self_attn.out_proj.bias",
                                      "linear1.weight",
                                      "linear1.bias",
                                      "linear2.weight",
                                      "linear2.bias",
                                      "norm1.weight",
                                      "norm1.bias",
                                      "norm2.weight",
                                      "norm2.bias"};
    static const int64_t enc_dims[][2] = {{24, 8}, {24, 0}, {8, 8}, {8, 0}, {16, 8}, {16, 0},
                                          {8, 16}, {8, 0},  {8, 0}, {8, 0}, {8, 0},  {8, 0}};
    CHECK(tl_encoder_layer_tensors(&c, NULL) == 12);
    CHECK(tl_encoder_layer_tensors(&c, t) == 12);
    size_t off = 0;
    for (int i = 0; i < 12; i++) {
        CHECK_MSG(strcmp(t[i].name, enc_names[i]) == 0, "tensor %d is %s", i, t[i].name);
        CHECK(t[i].dims[0] == enc_dims[i][0] && t[i].dims[1] == enc_dims[i][1]);
        CHECK(t[i].ndims == (enc_dims[i][1] ? 2 : 1) && t[i].decay == (t[i].ndims == 2));
        CHECK(t[i].offset == off);
        off += t[i].count;
    }
    CHECK(off == tl_encoder_layer_param_count(&c));
    CHECK(tl_decoder_layer_tensors(&c, t) == 18);
    CHECK(strcmp(t[4].name, "multihead_attn.in_proj_weight") == 0);
    CHECK(strcmp(t[17].name, "norm3.bias") == 0);
    CHECK(t[8].offset == 2 * nv_attn_size(8) && t[12].offset == t[8].offset + nv_ffn_size(&c));

    /* FLOPs per token: encoder 8 d^2 (Q, K, V, out) + 4 T d (scores, context) + 4 d d_ff;
     * decoder adds the cross-attention: 4 d^2 (Q, out) + 4 d^2 Ts/Tt (K, V) + 4 Ts d */
    CHECK_CLOSE(tl_encoder_layer_flops(&big, 20),
                8.0 * 512 * 512 + 4.0 * 20 * 512 + 4.0 * 512 * 2048, 0, 1e-12);
    CHECK_CLOSE(tl_decoder_layer_flops(&big, 10, 20),
                8.0 * 512 * 512 + 4.0 * 10 * 512 + 4.0 * 512 * 512 + 8.0 * 512 * 512 +
                    4.0 * 20 * 512 + 4.0 * 512 * 2048,
                0, 1e-12);
}

// ---------------------------------------------------------------------------- inference

/* An inference set computes the training set's function (dropout off), without a saved
 * buffer; running the decoder on a padded target gives at position t - 1 what a decoder
 * made for the prefix of length t gives (greedy decoding's use). */
static void test_inference(void) {
    const tl_config c = small_config(0.1f);
    const int B = 2, Tt = 5, Ts = 4, d = c.d_model, slen[] = {4, 3};
    ccdl_error err = {0};
    rng_t r;
    rng_seed(&r, 1, RNG_TEST, 111, 0);
    const size_t np = tl_decoder_layer_param_count(&c), n = (size_t)B * Tt * d;
    const size_t ne = (size_t)B * Ts * d;
    float *p = floats(np), *x = floats(n), *enc = floats(ne), *y0 = floats(n), *y1 = floats(n);
    fill_uniform(&r, p, np, -0.5, 0.5);
    fill_uniform(&r, x, n, -1, 1);
    fill_uniform(&r, enc, ne, -1, 1);
    uint8_t *spad = pad_mask(B, Ts, slen);
    tl_set tr, inf, pre;
    tl_decoder_layer lt, li, lp;
    set_make(&tr, B, 1);
    set_make(&inf, B, 0);
    set_make(&pre, B, 0);
    must(tl_decoder_layer_init(&lt, &tr, &c, B, Tt, Ts, "train", &err), &err);
    must(tl_decoder_layer_init(&li, &inf, &c, B, Tt, Ts, "infer", &err), &err);
    must(tl_decoder_layer_init(&lp, &pre, &c, B, 3, Ts, "prefix", &err), &err);
    set_ready(&tr);
    set_ready(&inf);
    set_ready(&pre);
    float *saved = floats(lt.saved_floats);
    tl_set_bind(&tr, &arena);
    tl_decoder_layer_forward(&tr, &lt, p, x, NULL, enc, spad, NULL, 0, y0, saved);
    layer_wait(&tr.base);
    tl_set_bind(&inf, &arena);
    tl_dropout_key key = {1, 1, 1}; /* an inference set never drops */
    tl_decoder_layer_forward(&inf, &li, p, x, NULL, enc, spad, &key, 0, y1, NULL);
    layer_wait(&inf.base);
    check_tensor(y1, y0, n, 1e-5, 1e-5, "inference vs training forward");
    /* prefix of length 3: rows (b, 0..2) of x */
    float *xp = floats((size_t)B * 3 * d), *yp = floats((size_t)B * 3 * d);
    for (int b = 0; b < B; b++)
        memcpy(xp + (size_t)b * 3 * d, x + (size_t)b * Tt * d, 3 * d * sizeof *x);
    tl_set_bind(&pre, &arena);
    tl_decoder_layer_forward(&pre, &lp, p, xp, NULL, enc, spad, NULL, 0, yp, NULL);
    layer_wait(&pre.base);
    for (int b = 0; b < B; b++)
        check_tensor(yp + (size_t)b * 3 * d, y1 + (size_t)b * Tt * d, 3 * (size_t)d, 1e-5, 1e-5,
                     "prefix decoder vs padded decoder");
    tl_set_destroy(&tr), tl_set_destroy(&inf), tl_set_destroy(&pre);
    free(p), free(x), free(enc), free(y0), free(y1), free(spad), free(saved), free(xp), free(yp);
}

// ---------------------------------------------------------------------------- bench

/* Times an encoder and a decoder layer, forward + backward, at a paper-like scale; with
 * ONEDNN_VERBOSE=1 shows which kernels run. */
static int bench(int argc, char **argv) {
    tl_config c = {.d_model = 256,
                   .heads = 4,
                   .d_ff = 1024,
                   .dropout = 0.1f,
                   .attn_dropout = 0.1f,
                   .relu_dropout = 0.1f};
    int B = argc > 2 ? atoi(argv[2]) : 64, T = argc > 3 ? atoi(argv[3]) : 24;
    if (argc > 4) c.d_model = atoi(argv[4]), c.d_ff = 4 * c.d_model;
    ccdl_error err = {0};
    rng_t r;
    rng_seed(&r, 1, RNG_TEST, 112, 0);
    const size_t npe = tl_encoder_layer_param_count(&c), npd = tl_decoder_layer_param_count(&c);
    const size_t n = (size_t)B * T * c.d_model;
    float *pe = floats(npe), *pd = floats(npd), *ge = floats(npe), *gd = floats(npd);
    float *x = floats(n), *y = floats(n), *dx = floats(n), *denc = floats(n);
    fill_uniform(&r, pe, npe, -0.1, 0.1);
    fill_uniform(&r, pd, npd, -0.1, 0.1);
    fill_uniform(&r, x, n, -1, 1);
    tl_set s;
    tl_encoder_layer e;
    tl_decoder_layer l;
    double t0 = wall_seconds();
    set_make(&s, B, 1);
    must(tl_encoder_layer_init(&e, &s, &c, B, T, "enc", &err), &err);
    must(tl_decoder_layer_init(&l, &s, &c, B, T, T, "dec", &err), &err);
    set_ready(&s);
    double t_make = wall_seconds() - t0;
    float *se = floats(e.saved_floats), *sd = floats(l.saved_floats);
    tl_dropout_key key = {1, 0, 0};
    double best_e = 1e30, best_d = 1e30;
    for (int it = 0; it < 6; it++) {
        key.step = it;
        t0 = wall_seconds();
        tl_encoder_layer_forward(&s, &e, pe, x, NULL, &key, 0, y, se);
        tl_encoder_layer_backward(&s, &e, pe, ge, x, se, x, dx);
        layer_wait(&s.base);
        double t1 = wall_seconds();
        tl_decoder_layer_forward(&s, &l, pd, x, NULL, y, NULL, &key, 8, dx, sd);
        tl_decoder_layer_backward(&s, &l, pd, gd, x, y, sd, x, dx, denc);
        layer_wait(&s.base);
        double t2 = wall_seconds();
        if (t1 - t0 < best_e) best_e = t1 - t0;
        if (t2 - t1 < best_d) best_d = t2 - t1;
    }
    const double fe = 3 * tl_encoder_layer_flops(&c, T) * B * T;
    const double fdec = 3 * tl_decoder_layer_flops(&c, T, T) * B * T;
    printf("d %d heads %d d_ff %d, batch %d x %d tokens, %d thread(s)\n", c.d_model, c.heads,
           c.d_ff, B, T, omp_get_max_threads());
    printf("set creation %.1f ms; arena %.1f MiB; saved enc %.1f MiB dec %.1f MiB\n", 1e3 * t_make,
           arena.bytes / 1048576.0, e.saved_floats * 4 / 1048576.0, l.saved_floats * 4 / 1048576.0);
    printf("encoder layer fwd+bwd %.2f ms (%.1f GFLOP/s), decoder layer %.2f ms (%.1f GFLOP/s)\n",
           1e3 * best_e, fe / best_e / 1e9, 1e3 * best_d, fdec / best_d / 1e9);
    /* what a new shape costs: the same shape again (oneDNN's primitive cache), then others */
    const int shapes[][2] = {{B, T}, {B + 3, T + 5}, {B / 2, 2 * T}, {B, T}};
    for (int i = 0; i < 4; i++) {
        tl_set s2;
        t0 = wall_seconds();
        set_make(&s2, shapes[i][0], 1);
        must(tl_encoder_layer_init(&e, &s2, &c, shapes[i][0], shapes[i][1], "enc", &err), &err);
        must(tl_decoder_layer_init(&l, &s2, &c, shapes[i][0], shapes[i][1], shapes[i][1], "dec",
                                   &err),
             &err);
        if (tl_set_finish(&s2, &err)) ccdl_die("test: %s", err.text);
        const double t_made = wall_seconds() - t0;
        t0 = wall_seconds();
        tl_set_bind(&s2, &arena);
        printf("set for batch %d x %d made in %.1f ms, bound in %.1f ms (arena %.1f MiB)\n",
               shapes[i][0], shapes[i][1], 1e3 * t_made, 1e3 * (wall_seconds() - t0),
               arena.bytes / 1048576.0);
        tl_set_destroy(&s2);
    }
    tl_set_destroy(&s);
    free(pe), free(pd), free(ge), free(gd), free(x), free(y), free(dx), free(denc), free(se);
    free(sd);
    return 0;
}

int main(int argc, char **argv) {
    ccdl_error err = {0};
    if (layer_env_init(&env, &err)) {
        fprintf(stderr, "test_tlayers: %s\n", err.text);
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) return bench(argc, argv);
    test_embedding();
    test_linear();
    test_layernorm();
    test_mha();
    test_layers();
    test_fd_catches_errors();
    test_causal_mask();
    test_padding_mask();
    test_dropout();
    test_loss();
    test_tensors();
    test_inference();
    layer_arena_free(&arena);
    layer_env_free(&env);
    return check_exit();
}
