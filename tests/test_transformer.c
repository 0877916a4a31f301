/* test_transformer.c: unit tests of the "transformer" model kind (src/nn/transformer.c)
 * through the public API of model.h only.
 *
 * The layers themselves are tested against a naive model in test_tlayers.c; here the
 * oracles are about the assembly: finite differences of the model's own loss (every tensor,
 * with and without dropout), the scaling of the mean, dropout keys, padding, the parameter
 * list against closed-form counts, greedy decoding against a trained copy task and against
 * the full-sequence forward, and the config errors. TF_VERBOSE=1 prints the measured
 * errors and timings (TF_H=step overrides the difference step, to measure its effect);
 * --bench [d heads d_ff layers vocab B T] times a bigger model. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "util.h"

enum { PAD = 0, UNK = 1, BOS = 2, EOS = 3, WORDS = 4 }; /* data/text.h's ids */
#define MAX_WORDS 16

static int verbose;

// ---------------------------------------------------------------------------- batches

typedef struct {
    int len;
    int32_t w[MAX_WORDS];
} sentence;

/* A padded batch in data/text.h's layout (src = words + <eos>, tgt_in = <bos> + words,
 * tgt_out = words + <eos>), with extra padding columns if asked. */
typedef struct {
    int batch, src_len, tgt_len;
    int32_t *src, *tgt_in, *tgt_out;
} text_batch;

static text_batch batch_make(const sentence *src, const sentence *tgt, int batch, int extra_src,
                             int extra_tgt) {
    text_batch t = {.batch = batch};
    for (int b = 0; b < batch; b++) {
        if (src[b].len + 1 > t.src_len) t.src_len = src[b].len + 1;
        if (tgt[b].len + 1 > t.tgt_len) t.tgt_len = tgt[b].len + 1;
    }
    t.src_len += extra_src, t.tgt_len += extra_tgt;
    t.src = xcalloc((size_t)batch * t.src_len, sizeof *t.src); /* PAD = 0 */
    t.tgt_in = xcalloc((size_t)batch * t.tgt_len, sizeof *t.tgt_in);
    t.tgt_out = xcalloc((size_t)batch * t.tgt_len, sizeof *t.tgt_out);
    for (int b = 0; b < batch; b++) {
        int32_t *s = t.src + (size_t)b * t.src_len, *ti = t.tgt_in + (size_t)b * t.tgt_len;
        int32_t *to = t.tgt_out + (size_t)b * t.tgt_len;
        for (int k = 0; k < src[b].len; k++) s[k] = src[b].w[k];
        s[src[b].len] = EOS;
        ti[0] = BOS;
        for (int k = 0; k < tgt[b].len; k++) ti[k + 1] = to[k] = tgt[b].w[k];
        to[tgt[b].len] = EOS;
    }
    return t;
}

static void batch_free(text_batch *t) {
    free(t->src), free(t->tgt_in), free(t->tgt_out);
    memset(t, 0, sizeof *t);
}

static model_tokens view(const text_batch *t) {
    return (model_tokens){.src = t->src,
                          .tgt_in = t->tgt_in,
                          .tgt_out = t->tgt_out,
                          .batch = t->batch,
                          .src_len = t->src_len,
                          .tgt_len = t->tgt_len,
                          .pad = PAD,
                          .bos = BOS,
                          .eos = EOS};
}

static int64_t count_tokens(const text_batch *t) {
    int64_t n = 0;
    for (size_t i = 0; i < (size_t)t->batch * t->tgt_len; i++) n += t->tgt_out[i] != PAD;
    return n;
}

static sentence random_sentence(rng_t *r, int len, int vocab) {
    sentence s = {.len = len};
    for (int k = 0; k < len; k++) s.w[k] = WORDS + (int32_t)rng_below(r, (uint64_t)(vocab - WORDS));
    return s;
}

// ---------------------------------------------------------------------------- models

static model_config tiny_config(double dropout) {
    model_config cfg = {.kind = "transformer"};
    cfg.seq = (struct model_seq_config){.d_model = 8,
                                        .heads = 2,
                                        .d_ff = 16,
                                        .enc_layers = 1,
                                        .dec_layers = 1,
                                        .dropout = dropout,
                                        .attn_dropout = dropout,
                                        .relu_dropout = dropout,
                                        .label_smoothing = 0.1,
                                        .src_vocab = 11,
                                        .tgt_vocab = 13,
                                        .max_len = 12};
    return cfg;
}

static model *make_model(const model_config *cfg) {
    ccdl_error err = {0};
    model *m = model_create(cfg, 64, &err);
    if (!m) {
        fprintf(stderr, "test_transformer: %s\n", err.text);
        exit(1);
    }
    return m;
}

/* Initial parameters, then every tensor nudged (biases and norms too, which start at 0
 * and 1) so that no gradient is zero by symmetry. */
static float *nudged_params(const model *m, uint64_t seed, double amount) {
    const size_t n = model_param_count(m);
    float *p = xalloc_floats(n);
    model_init_params(m, p, seed);
    rng_t r;
    rng_seed(&r, seed, RNG_TEST, 1, 0);
    for (size_t i = 0; i < n; i++) p[i] += (float)(amount * (2 * rng_uniform(&r) - 1));
    return p;
}

/* Two sentences of different lengths: row 1 is padded on both sides. */
static text_batch tiny_batch(const model_config *cfg, int extra_src, int extra_tgt) {
    rng_t r;
    rng_seed(&r, 7, RNG_TEST, 2, 0);
    sentence src[2] = {random_sentence(&r, 4, cfg->seq.src_vocab),
                       random_sentence(&r, 2, cfg->seq.src_vocab)};
    sentence tgt[2] = {random_sentence(&r, 2, cfg->seq.tgt_vocab),
                       random_sentence(&r, 4, cfg->seq.tgt_vocab)};
    src[1].w[1] = src[1].w[0]; /* a repeated token: its gradient rows add */
    tgt[1].w[2] = UNK;
    return batch_make(src, tgt, 2, extra_src, extra_tgt);
}

static double mean_loss(model *m, const float *params, float *grads, const text_batch *t,
                        int64_t step) {
    const model_tokens b = view(t);
    model_token_loss l = model_tokens_forward_backward(m, params, grads, &b, 99, step, 0);
    return l.loss_sum / (double)l.tokens;
}

// ---------------------------------------------------------------------------- 1. gradient

/* Entries of every tensor: the first, the last and a few random ones. */
static int sample_entries(const model *m, rng_t *r, size_t *idx, int per_tensor) {
    int n = 0;
    for (int i = 0; i < model_tensor_count(m); i++) {
        const model_tensor *t = model_tensor_at(m, i);
        idx[n++] = t->offset;
        idx[n++] = t->offset + t->count - 1;
        for (int k = 2; k < per_tensor; k++) idx[n++] = t->offset + rng_below(r, t->count);
    }
    return n;
}

/* The gradient of the model's own mean loss (the same dropout key every call, so the same
 * masks) against central differences with step h = 1e-3. The loss is computed in f32, so
 * the difference carries ~1e-7 / h of rounding noise, and a step moving a ReLU input across
 * 0 breaks it: measured worst errors (1 thread, AVX-512) 4e-3 at h = 3e-3 (kinks), 1e-4 at
 * h = 1e-3, 4e-4 at h = 3e-4 (noise). Tolerance 4e-4 + 1e-2 |fd|, against gradients of
 * 1e-2..2e-1; a wrong term moves entries by tens of percent. */
static void fd_case(double dropout) {
    model_config cfg = tiny_config(dropout);
    model *m = make_model(&cfg);
    const size_t n = model_param_count(m);
    float *params = nudged_params(m, 3, 0.1), *grads = xalloc_floats(n),
          *scratch = xalloc_floats(n);
    text_batch t = tiny_batch(&cfg, 0, 0);
    mean_loss(m, params, grads, &t, 5);
    size_t idx[64 * 8];
    rng_t r;
    rng_seed(&r, 3, RNG_TEST, 3, 0);
    const int count = sample_entries(m, &r, idx, 6);
    const double h = getenv("TF_H") ? atof(getenv("TF_H")) : 1e-3;
    double worst = 0;
    for (int k = 0; k < count; k++) {
        const size_t i = idx[k];
        const float keep = params[i];
        params[i] = (float)(keep + h);
        const double up = mean_loss(m, params, scratch, &t, 5), step_up = params[i] - keep;
        params[i] = (float)(keep - h);
        const double down = mean_loss(m, params, scratch, &t, 5), step_down = keep - params[i];
        params[i] = keep;
        const double fd = (up - down) / (step_up + step_down); /* the steps f32 really took */
        const double err = fabs(grads[i] - fd);
        if (err > worst) worst = err;
        CHECK_MSG(err <= 4e-4 + 1e-2 * fabs(fd), "dropout %g, param %zu: grad %.8g, fd %.8g",
                  dropout, i, (double)grads[i], fd);
    }
    if (verbose)
        printf("gradient vs differences (dropout %g): %d entries, worst |error| %.3g\n", dropout,
               count, worst);
    batch_free(&t);
    free(params), free(grads), free(scratch);
    model_destroy(&m);
}

static void test_gradient(void) {
    fd_case(0);
    fd_case(0.2);
}

// ---------------------------------------------------------------------------- 2. mean

/* The gradient is that of the mean over target tokens: the batch twice over has the same
 * gradient and twice the sums. */
static void test_mean_scaling(void) {
    model_config cfg = tiny_config(0);
    model *m = make_model(&cfg);
    const size_t n = model_param_count(m);
    float *params = nudged_params(m, 4, 0.1), *g1 = xalloc_floats(n), *g2 = xalloc_floats(n);
    text_batch t = tiny_batch(&cfg, 0, 0), t2 = t;
    t2.batch = 2 * t.batch;
    t2.src = xmalloc_array((size_t)t2.batch * t.src_len, sizeof *t2.src);
    t2.tgt_in = xmalloc_array((size_t)t2.batch * t.tgt_len, sizeof *t2.tgt_in);
    t2.tgt_out = xmalloc_array((size_t)t2.batch * t.tgt_len, sizeof *t2.tgt_out);
    const size_t ns = (size_t)t.batch * t.src_len, nt = (size_t)t.batch * t.tgt_len;
    for (int c = 0; c < 2; c++) {
        memcpy(t2.src + c * ns, t.src, ns * sizeof *t.src);
        memcpy(t2.tgt_in + c * nt, t.tgt_in, nt * sizeof *t.tgt_in);
        memcpy(t2.tgt_out + c * nt, t.tgt_out, nt * sizeof *t.tgt_out);
    }
    const model_tokens b1 = view(&t), b2 = view(&t2);
    model_token_loss l1 = model_tokens_forward_backward(m, params, g1, &b1, 1, 1, 0);
    model_token_loss l2 = model_tokens_forward_backward(m, params, g2, &b2, 1, 1, 0);
    CHECK(l1.tokens == 8 && l2.tokens == 16);
    CHECK_CLOSE(l2.loss_sum, 2 * l1.loss_sum, 1e-9, 1e-6);
    CHECK_CLOSE(l2.nll_sum, 2 * l1.nll_sum, 1e-9, 1e-6);
    CHECK(l1.nll_sum < l1.loss_sum); /* smoothing adds the uniform part */
    check_tensor(g2, g1, n, 1e-6, 1e-4, "gradient of the doubled batch");
    batch_free(&t), batch_free(&t2);
    free(params), free(g1), free(g2);
    model_destroy(&m);
}

// ---------------------------------------------------------------------------- 3. dropout

static int bitwise_equal(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof *a) == 0;
}

/* Same (seed, step, worker): the same bits; another worker, step or seed: other masks; no
 * dropout: the training loss is the evaluation loss. */
static void test_dropout(void) {
    model_config cfg = tiny_config(0.3);
    model *m = make_model(&cfg);
    const size_t n = model_param_count(m);
    float *params = nudged_params(m, 5, 0.1), *g[4];
    for (int i = 0; i < 4; i++) g[i] = xalloc_floats(n);
    text_batch t = tiny_batch(&cfg, 0, 0);
    const model_tokens b = view(&t);
    model_token_loss l0 = model_tokens_forward_backward(m, params, g[0], &b, 11, 3, 1);
    model_token_loss l1 = model_tokens_forward_backward(m, params, g[1], &b, 11, 3, 1);
    CHECK(l0.loss_sum == l1.loss_sum && bitwise_equal(g[0], g[1], n));
    model_token_loss l2 = model_tokens_forward_backward(m, params, g[2], &b, 11, 3, 2);
    CHECK(l2.loss_sum != l0.loss_sum && !bitwise_equal(g[0], g[2], n));
    model_token_loss l3 = model_tokens_forward_backward(m, params, g[3], &b, 11, 4, 1);
    CHECK(l3.loss_sum != l0.loss_sum);
    model_token_loss l4 = model_tokens_forward_backward(m, params, g[3], &b, 12, 3, 1);
    CHECK(l4.loss_sum != l0.loss_sum);
    /* evaluation never drops: deterministic, and unlike the training loss */
    model_token_loss e1 = {0}, e2 = {0};
    model_tokens_evaluate(m, params, &b, &e1);
    model_tokens_evaluate(m, params, &b, &e2);
    CHECK(e1.loss_sum == e2.loss_sum && e1.tokens == 8 && e1.loss_sum != l0.loss_sum);
    model_destroy(&m);

    cfg = tiny_config(0);
    m = make_model(&cfg);
    model_token_loss a = model_tokens_forward_backward(m, params, g[0], &b, 11, 3, 1);
    model_token_loss c = model_tokens_forward_backward(m, params, g[1], &b, 11, 3, 2);
    model_token_loss e = {0};
    model_tokens_evaluate(m, params, &b, &e);
    CHECK(a.loss_sum == c.loss_sum && bitwise_equal(g[0], g[1], n)); /* no draws at all */
    /* training and inference primitives (layer norm) may round differently */
    CHECK_CLOSE(e.loss_sum, a.loss_sum, 1e-9, 1e-6);
    CHECK_CLOSE(e.nll_sum, a.nll_sum, 1e-9, 1e-6);
    CHECK(e.tokens == a.tokens);
    if (verbose) printf("dropout 0: training loss %.9g, evaluation %.9g\n", a.loss_sum, e.loss_sum);
    batch_free(&t);
    for (int i = 0; i < 4; i++) free(g[i]);
    free(params);
    model_destroy(&m);
}

// ---------------------------------------------------------------------------- 4. padding

/* Ids under the target padding (beyond a row's length in tgt_in) change nothing: the
 * causal mask hides them, bitwise. More padding columns on either side change nothing but
 * rounding: the source mask hides the extra keys (without it their softmax weight would
 * move the loss by far more than the tolerance). */
static void test_padding(void) {
    model_config cfg = tiny_config(0.2);
    model *m = make_model(&cfg);
    const size_t n = model_param_count(m);
    float *params = nudged_params(m, 6, 0.1), *g0 = xalloc_floats(n), *g1 = xalloc_floats(n);
    text_batch t = tiny_batch(&cfg, 0, 0);
    const model_tokens b = view(&t);
    model_token_loss l0 = model_tokens_forward_backward(m, params, g0, &b, 1, 2, 3);
    int changed = 0;
    for (size_t i = 0; i < (size_t)t.batch * t.tgt_len; i++)
        if (t.tgt_out[i] == PAD) t.tgt_in[i] = WORDS + (int32_t)(i % 5), changed++;
    CHECK(changed == 2);
    model_token_loss l1 = model_tokens_forward_backward(m, params, g1, &b, 1, 2, 3);
    CHECK(l0.loss_sum == l1.loss_sum && bitwise_equal(g0, g1, n));
    batch_free(&t);
    model_destroy(&m);

    cfg = tiny_config(0); /* dropout masks depend on the shape */
    m = make_model(&cfg);
    text_batch a = tiny_batch(&cfg, 0, 0), wide = tiny_batch(&cfg, 3, 2);
    const model_tokens ba = view(&a), bw = view(&wide);
    l0 = model_tokens_forward_backward(m, params, g0, &ba, 1, 2, 3);
    l1 = model_tokens_forward_backward(m, params, g1, &bw, 1, 2, 3);
    CHECK(l1.tokens == l0.tokens);
    CHECK_CLOSE(l1.loss_sum, l0.loss_sum, 1e-9, 1e-6);
    check_tensor(g1, g0, n, 1e-6, 1e-4, "gradient with more padding");
    model_token_loss e0 = {0}, e1 = {0};
    model_tokens_evaluate(m, params, &ba, &e0);
    model_tokens_evaluate(m, params, &bw, &e1);
    CHECK_CLOSE(e1.loss_sum, e0.loss_sum, 1e-9, 1e-6);
    /* the source mask matters: the same extra columns as words move the loss */
    for (int r = 0; r < wide.batch; r++)
        for (int k = wide.src_len - 3; k < wide.src_len; k++)
            wide.src[(size_t)r * wide.src_len + k] = WORDS;
    model_token_loss e2 = {0};
    model_tokens_evaluate(m, params, &bw, &e2);
    CHECK(fabs(e2.loss_sum - e0.loss_sum) > 1e-4);
    batch_free(&a), batch_free(&wide);
    free(params), free(g0), free(g1);
    model_destroy(&m);
}

// ---------------------------------------------------------------------------- 5. greedy

/* out's row r as a target sentence: the tokens before <eos> (or all max_len). */
static sentence decoded(const int32_t *out, int r, int max_len, int *ended) {
    sentence s = {0};
    *ended = 0;
    for (int k = 0; k < max_len; k++) {
        const int32_t tok = out[(size_t)r * max_len + k];
        if (tok == EOS) {
            *ended = 1;
            break;
        }
        s.w[s.len++] = tok;
    }
    return s;
}

/* Greedy decoding against the full-sequence forward on its own output: for each row and
 * position t, the token with the least -log p(token | source, out[< t]) (read through
 * model_tokens_evaluate on a one-row batch whose only target is that token; pad never a
 * candidate) must be out[t]. Near ties (within 1e-4 in log-probability: shapes differ, so
 * rounding may) accept either. Returns the positions checked. */
static int check_greedy_against_forward(model *m, const float *params, const text_batch *t,
                                        const int32_t *out, int max_len, int vocab) {
    int checked = 0;
    for (int r = 0; r < t->batch; r++) {
        int ended;
        sentence s = decoded(out, r, max_len, &ended);
        const int positions = s.len + ended;
        for (int k = positions; k < max_len; k++) CHECK(out[(size_t)r * max_len + k] == PAD);
        /* one row: the source of row r, tgt_in = <bos> + out[0..positions-2] */
        text_batch one = {.batch = 1, .src_len = t->src_len, .tgt_len = positions};
        one.src = t->src + (size_t)r * t->src_len;
        int32_t tgt_in[MAX_WORDS + 2], tgt_out[MAX_WORDS + 2];
        tgt_in[0] = BOS;
        for (int k = 1; k < positions; k++) tgt_in[k] = out[(size_t)r * max_len + k - 1];
        one.tgt_in = tgt_in, one.tgt_out = tgt_out;
        const model_tokens b = view(&one);
        for (int pos = 0; pos < positions; pos++) {
            double best = INFINITY, second = INFINITY;
            int32_t best_id = -1;
            for (int32_t c = 0; c < vocab; c++) {
                if (c == PAD) continue;
                for (int k = 0; k < positions; k++) tgt_out[k] = k == pos ? c : PAD;
                model_token_loss l = {0};
                model_tokens_evaluate(m, params, &b, &l);
                if (l.nll_sum < best)
                    second = best, best = l.nll_sum, best_id = c;
                else if (l.nll_sum < second)
                    second = l.nll_sum;
            }
            const int32_t got = out[(size_t)r * max_len + pos];
            CHECK_MSG(got == best_id || second - best < 1e-4,
                      "row %d position %d: greedy %d, forward argmax %d (margin %.3g)", r, pos, got,
                      best_id, second - best);
            checked++;
        }
    }
    return checked;
}

/* (b) on an untrained model (scaled up so its choices are not near ties): rows run to
 * max_len = 12, crossing the decoder's 8-position bucket, or stop at an <eos>. */
static void test_greedy_self_consistent(void) {
    model_config cfg = tiny_config(0.1); /* inference never drops */
    model *m = make_model(&cfg);
    const size_t n = model_param_count(m);
    float *params = nudged_params(m, 8, 0.1);
    for (size_t i = 0; i < n; i++) params[i] *= 3;
    rng_t r;
    rng_seed(&r, 8, RNG_TEST, 4, 0);
    sentence src[3];
    for (int i = 0; i < 3; i++) src[i] = random_sentence(&r, 2 + 2 * i, cfg.seq.src_vocab);
    text_batch t = batch_make(src, src, 3, 1, 0);
    const model_tokens b = view(&t);
    const int max_len = 12;
    int32_t out[3 * 12], again[3 * 12];
    model_tokens_greedy(m, params, &b, max_len, out);
    model_tokens_greedy(m, params, &b, max_len, again);
    CHECK(memcmp(out, again, sizeof out) == 0);
    const int checked =
        check_greedy_against_forward(m, params, &t, out, max_len, cfg.seq.tgt_vocab);
    CHECK(checked >= 12);
    if (verbose) {
        printf("greedy vs forward: %d positions; rows:", checked);
        for (int i = 0; i < 3 * max_len; i++) printf("%s%d", i % max_len ? " " : "\n  ", out[i]);
        printf("\n");
    }
    /* max_len 1: one token per row */
    int32_t first[3];
    model_tokens_greedy(m, params, &b, 1, first);
    for (int i = 0; i < 3; i++) CHECK(first[i] == out[i * max_len]);
    batch_free(&t);
    free(params);
    model_destroy(&m);
}

/* (a) a copy task (target = source) learnt to near-zero loss with Adam; greedy decoding
 * then reproduces every source exactly, <eos> included, and agrees with the forward. */
static void test_greedy_copy_task(void) {
    model_config cfg = tiny_config(0);
    cfg.seq.d_model = 32, cfg.seq.heads = 4, cfg.seq.d_ff = 64;
    cfg.seq.label_smoothing = 0;
    cfg.seq.src_vocab = cfg.seq.tgt_vocab = 14;
    model *m = make_model(&cfg);
    const size_t n = model_param_count(m);
    float *params = xalloc_floats(n), *grads = xalloc_floats(n);
    float *mom = xalloc_floats(n), *var = xalloc_floats(n);
    model_init_params(m, params, 21);
    enum { SENTENCES = 32 };
    sentence src[SENTENCES];
    rng_t r;
    rng_seed(&r, 21, RNG_TEST, 5, 0);
    for (int i = 0; i < SENTENCES; i++)
        src[i] = random_sentence(&r, 2 + (int)rng_below(&r, 5), cfg.seq.src_vocab);
    text_batch t = batch_make(src, src, SENTENCES, 0, 0);
    const model_tokens b = view(&t);
    const adam_config adam = {.beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-9f};
    const double start = wall_seconds();
    int steps = 0;
    double mean_nll = INFINITY;
    while (steps < 600 && !(mean_nll < 2e-3)) {
        model_token_loss l = model_tokens_forward_backward(m, params, grads, &b, 21, steps, 0);
        mean_nll = l.nll_sum / (double)l.tokens;
        steps++;
        adam_step(&adam, 3e-3f, steps, params, grads, mom, var, NULL, n);
    }
    const double seconds = wall_seconds() - start;
    CHECK_MSG(mean_nll < 2e-3, "copy task: nll %.4g after %d steps", mean_nll, steps);
    const int max_len = 10;
    int32_t out[SENTENCES * 10];
    model_tokens_greedy(m, params, &b, max_len, out);
    int exact = 0;
    for (int i = 0; i < SENTENCES; i++) {
        int ended, same;
        sentence s = decoded(out, i, max_len, &ended);
        same = ended && s.len == src[i].len && memcmp(s.w, src[i].w, sizeof *s.w * s.len) == 0;
        exact += same;
    }
    CHECK_MSG(exact == SENTENCES, "copy task: %d of %d sentences reproduced", exact, SENTENCES);
    /* the first four rows also against the forward */
    text_batch four = t;
    four.batch = 4;
    check_greedy_against_forward(m, params, &four, out, max_len, cfg.seq.tgt_vocab);
    if (verbose)
        printf("copy task: %d steps in %.2f s (%.0f target tokens/s, forward + backward + "
               "Adam), nll %.3g, %d/%d exact\n",
               steps, seconds, steps * (double)count_tokens(&t) / seconds, mean_nll, exact,
               SENTENCES);
    batch_free(&t);
    free(params), free(grads), free(mom), free(var);
    model_destroy(&m);
}

// ---------------------------------------------------------------------------- 6. shapes

/* More shapes than the cache holds (64): a shape evicted and made again gives the same
 * bits. */
static void test_shape_cache(void) {
    model_config cfg = tiny_config(0.2);
    model *m = make_model(&cfg);
    const size_t n = model_param_count(m);
    float *params = nudged_params(m, 9, 0.1), *g0 = xalloc_floats(n), *g1 = xalloc_floats(n);
    text_batch t = tiny_batch(&cfg, 0, 0);
    const model_tokens b = view(&t);
    model_token_loss l0 = model_tokens_forward_backward(m, params, g0, &b, 1, 1, 0), e0 = {0};
    model_tokens_evaluate(m, params, &b, &e0);
    const double start = wall_seconds();
    const int shapes = 40;
    for (int k = 1; k <= shapes; k++) { /* 80 new sets: training and evaluation */
        text_batch w = tiny_batch(&cfg, k, k % 3);
        const model_tokens bw = view(&w);
        model_token_loss e = {0};
        model_tokens_forward_backward(m, params, g1, &bw, 1, 1, 0);
        model_tokens_evaluate(m, params, &bw, &e);
        batch_free(&w);
    }
    const double per_shape = (wall_seconds() - start) / (2 * shapes);
    model_token_loss l1 = model_tokens_forward_backward(m, params, g1, &b, 1, 1, 0), e1 = {0};
    model_tokens_evaluate(m, params, &b, &e1);
    CHECK(l0.loss_sum == l1.loss_sum && bitwise_equal(g0, g1, n) && e0.loss_sum == e1.loss_sum);
    if (verbose)
        printf("tiny model: %.2f ms per call on a new shape (set made + run)\n", 1e3 * per_shape);
    batch_free(&t);
    free(params), free(g0), free(g1);
    model_destroy(&m);
}

// ---------------------------------------------------------------------------- 7. tensors

/* PyTorch's counts: an encoder layer 4d^2 + 4d (attention) + 2 d d_ff + d_ff + d
 * (feed-forward) + 4d (two norms); a decoder layer adds a cross-attention and a norm. */
static size_t closed_form_params(const struct model_seq_config *q) {
    const size_t d = (size_t)q->d_model, f = (size_t)q->d_ff;
    const size_t enc = 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d;
    const size_t dec = 8 * d * d + 8 * d + 2 * d * f + f + d + 6 * d;
    return (size_t)q->src_vocab * d + q->enc_layers * enc + (size_t)q->tgt_vocab * d +
           q->dec_layers * dec;
}

static model_config paper_like_config(void) {
    model_config cfg = {.kind = "transformer"};
    cfg.seq = (struct model_seq_config){.d_model = 256,
                                        .heads = 4,
                                        .d_ff = 1024,
                                        .enc_layers = 3,
                                        .dec_layers = 3,
                                        .dropout = 0.1,
                                        .attn_dropout = 0.1,
                                        .relu_dropout = 0.1,
                                        .label_smoothing = 0.1,
                                        .src_vocab = 5893,
                                        .tgt_vocab = 7853,
                                        .max_len = 40};
    return cfg;
}

static void check_name(const model *m, int i, const char *name, tensor_role role) {
    const model_tensor *t = model_tensor_at(m, i);
    CHECK_MSG(t && strcmp(t->name, name) == 0 && t->role == role,
              "tensor %d: %s (role %d), want %s", i, t ? t->name : "none", t ? (int)t->role : -1,
              name);
}

static void test_tensors(void) {
    model_config cfg = paper_like_config();
    const struct model_seq_config *q = &cfg.seq;
    model *m = make_model(&cfg);
    CHECK(model_takes_tokens(m) && model_state_count(m) == 0);
    CHECK(model_param_count(m) == closed_form_params(q));
    const int per_enc = 12, per_dec = 18, count = model_tensor_count(m);
    CHECK(count == 2 + q->enc_layers * per_enc + q->dec_layers * per_dec);
    size_t next = 0;
    int roles[4] = {0};
    for (int i = 0; i < count; i++) {
        const model_tensor *t = model_tensor_at(m, i);
        size_t c = 1;
        for (int k = 0; k < t->ndims; k++) c *= (size_t)t->shape[k];
        CHECK_MSG(t->offset == next && t->count == c, "tensor %d %s does not tile", i, t->name);
        next = t->offset + t->count;
        roles[t->role]++;
        CHECK((t->ndims == 2) == (t->role == TENSOR_WEIGHT));
    }
    CHECK(next == model_param_count(m) && model_tensor_at(m, count) == NULL);
    CHECK(roles[TENSOR_WEIGHT] == 2 + 4 * q->enc_layers + 6 * q->dec_layers);
    CHECK(roles[TENSOR_BIAS] == 4 * q->enc_layers + 6 * q->dec_layers);
    CHECK(roles[TENSOR_NORM_SCALE] == 2 * q->enc_layers + 3 * q->dec_layers);
    CHECK(roles[TENSOR_NORM_SHIFT] == roles[TENSOR_NORM_SCALE]);
    const int dec0 = 1 + per_enc * q->enc_layers;
    check_name(m, 0, "enc.embed.weight", TENSOR_WEIGHT);
    check_name(m, 1, "enc.layers.0.self_attn.in_proj_weight", TENSOR_WEIGHT);
    check_name(m, 2, "enc.layers.0.self_attn.in_proj_bias", TENSOR_BIAS);
    check_name(m, 9, "enc.layers.0.norm1.weight", TENSOR_NORM_SCALE);
    check_name(m, 1 + per_enc + 5, "enc.layers.1.linear1.bias", TENSOR_BIAS);
    check_name(m, dec0, "dec.embed.weight", TENSOR_WEIGHT);
    check_name(m, dec0 + 5, "dec.layers.0.multihead_attn.in_proj_weight", TENSOR_WEIGHT);
    check_name(m, dec0 + 1 + per_dec + 16, "dec.layers.1.norm3.weight", TENSOR_NORM_SCALE);
    check_name(m, count - 1, "dec.layers.2.norm3.bias", TENSOR_NORM_SHIFT);
    const model_tensor *e = model_tensor_at(m, dec0);
    CHECK(e->ndims == 2 && e->shape[0] == q->tgt_vocab && e->shape[1] == q->d_model);

    /* weight decay: with exclude_bn, exactly the norms' floats are exempt */
    const size_t n = model_param_count(m);
    float *mask = xalloc_floats(n);
    model_weight_decay_mask(m, 1, mask);
    size_t exempt = 0;
    for (size_t i = 0; i < n; i++) exempt += mask[i] == 0;
    CHECK(exempt == (size_t)(4 * q->enc_layers + 6 * q->dec_layers) * q->d_model);

    /* FLOPs per target token at 16 tokens a side (docs/transformer.md) */
    const double d = q->d_model, f = q->d_ff, L = 16;
    const double enc = 8 * d * d + 4 * L * d + 4 * d * f;
    const double dec = 8 * d * d + 4 * L * d + 4 * d * d + 4 * d * d + 4 * L * d + 4 * d * f;
    const double want = q->enc_layers * enc + q->dec_layers * dec + 2 * d * q->tgt_vocab;
    CHECK_CLOSE(model_flops_per_sample(m), want, 0, 1e-12);

    /* init: a pure function of the seed; Xavier bounds, embedding scale, zeros and ones */
    float *p = xalloc_floats(n), *p2 = xalloc_floats(n);
    model_init_params(m, p, 5);
    model_init_params(m, p2, 5);
    CHECK(bitwise_equal(p, p2, n));
    model_init_params(m, p2, 6);
    CHECK(!bitwise_equal(p, p2, n));
    for (int i = 0; i < count; i++) {
        const model_tensor *t = model_tensor_at(m, i);
        const float *x = p + t->offset;
        double sum = 0, sq = 0, most = 0;
        for (size_t k = 0; k < t->count; k++)
            sum += x[k], sq += (double)x[k] * x[k], most = fmax(most, fabs(x[k]));
        const double mean = sum / t->count, sd = sqrt(sq / t->count - mean * mean);
        if (strstr(t->name, "embed")) {
            CHECK_MSG(fabs(sd * sqrt(d) - 1) < 0.01 && fabs(mean) < 1e-3, "%s: sd %g", t->name, sd);
        } else if (t->role == TENSOR_WEIGHT) {
            const double bound = sqrt(6.0 / (double)(t->shape[0] + t->shape[1]));
            /* U(-a, a): sd a / sqrt(3) */
            CHECK_MSG(most <= bound && fabs(sd / (bound / sqrt(3)) - 1) < 0.02, "%s: sd %g",
                      t->name, sd);
        } else {
            const float want_v = t->role == TENSOR_NORM_SCALE ? 1.0f : 0.0f;
            size_t bad = 0;
            for (size_t k = 0; k < t->count; k++) bad += x[k] != want_v;
            CHECK_MSG(bad == 0, "%s: not all %g", t->name, (double)want_v);
        }
    }
    free(mask), free(p), free(p2);
    model_destroy(&m);
}

// ---------------------------------------------------------------------------- 8. configs

static void expect_bad(const model_config *cfg, const char *key) {
    ccdl_error err = {0};
    model *m = model_create(cfg, 8, &err);
    CHECK_MSG(m == NULL, "config with bad %s accepted", key);
    CHECK_MSG(err.kind == CCDL_ERR_INPUT, "bad %s: kind %d", key, (int)err.kind);
    CHECK_MSG(strstr(err.text, key) != NULL && !strchr(err.text, '\n'),
              "message \"%s\" does not name %s on one line", err.text, key);
    model_destroy(&m);
}

static void test_bad_configs(void) {
    const model_config good = tiny_config(0.1);
    model_config c;
#define BAD(field, value, key) (c = good, c.seq.field = (value), expect_bad(&c, key))
    BAD(d_model, 0, "model.d_model");
    BAD(d_model, 9, "model.d_model"); /* not divisible by 2 heads */
    BAD(heads, 0, "model.heads");
    BAD(heads, -1, "model.heads");
    BAD(d_ff, 0, "model.d_ff");
    BAD(enc_layers, 0, "model.enc_layers");
    BAD(dec_layers, 0, "model.dec_layers");
    BAD(dropout, 1.0, "model.dropout");
    BAD(dropout, -0.1, "model.dropout");
    BAD(attn_dropout, NAN, "model.attn_dropout");
    BAD(relu_dropout, 1.5, "model.relu_dropout");
    BAD(label_smoothing, 1.0, "model.label_smoothing");
    BAD(src_vocab, 4, "data");
    BAD(tgt_vocab, 0, "data");
    BAD(max_len, 1, "model.max_len");
#undef BAD
    c = good;
    ccdl_error err = {0};
    model *m = model_create(&c, 8, &err);
    CHECK(m != NULL);
    model_destroy(&m);
}

// ---------------------------------------------------------------------------- bench

/* --bench [d heads d_ff layers vocab B T]: tokens per second of forward + backward, and
 * what a new shape costs (the first call on it minus a steady call). */
static int bench(int argc, char **argv) {
    model_config cfg = paper_like_config();
    int B = 64, T = 24;
    if (argc >= 9) {
        cfg.seq.d_model = atoi(argv[2]), cfg.seq.heads = atoi(argv[3]);
        cfg.seq.d_ff = atoi(argv[4]), cfg.seq.enc_layers = cfg.seq.dec_layers = atoi(argv[5]);
        cfg.seq.src_vocab = cfg.seq.tgt_vocab = atoi(argv[6]);
        B = atoi(argv[7]), T = atoi(argv[8]);
    }
    model *m = make_model(&cfg);
    const size_t n = model_param_count(m);
    float *params = xalloc_floats(n), *grads = xalloc_floats(n);
    model_init_params(m, params, 1);
    rng_t r;
    rng_seed(&r, 1, RNG_TEST, 9, 0);
    sentence *src = xcalloc((size_t)B, sizeof *src), *tgt = xcalloc((size_t)B, sizeof *tgt);
    const int words = T - 1 < MAX_WORDS ? T - 1 : MAX_WORDS;
    for (int i = 0; i < B; i++) {
        src[i] = random_sentence(&r, words, cfg.seq.src_vocab);
        tgt[i] = random_sentence(&r, words, cfg.seq.tgt_vocab);
    }
    printf("d %d, %d heads, d_ff %d, %d + %d layers, vocab %d, %zu parameters, %d threads\n",
           cfg.seq.d_model, cfg.seq.heads, cfg.seq.d_ff, cfg.seq.enc_layers, cfg.seq.dec_layers,
           cfg.seq.src_vocab, n, omp_get_max_threads());
    for (int extra = 0; extra < 3; extra++) {
        text_batch t = batch_make(src, tgt, B, T - 1 - words - extra, T - 1 - words - extra);
        const model_tokens b = view(&t);
        double first = 0, steady = INFINITY;
        for (int k = 0; k < 4; k++) { /* the machine is shared: the best of three */
            const double s = wall_seconds();
            model_tokens_forward_backward(m, params, grads, &b, 1, k, 0);
            const double took = wall_seconds() - s;
            if (k == 0)
                first = took;
            else if (took < steady)
                steady = took;
        }
        const double tokens = (double)count_tokens(&t);
        printf("B %d, T %d -> %d: first call %.1f ms, steady %.1f ms (%.0f target tokens/s, "
               "%.1f GFLOP/s at 3 x forward); first - steady %.1f ms\n",
               B, t.src_len, t.tgt_len, 1e3 * first, 1e3 * steady, tokens / steady,
               3 * model_flops_per_sample(m) * tokens / steady / 1e9, 1e3 * (first - steady));
        int32_t *out = xmalloc_array((size_t)B * cfg.seq.max_len, sizeof *out);
        const double s = wall_seconds();
        model_tokens_greedy(m, params, &b, cfg.seq.max_len, out);
        printf("  greedy decoding to max_len %d: %.1f ms\n", cfg.seq.max_len,
               1e3 * (wall_seconds() - s));
        free(out);
        batch_free(&t);
    }
    free(src), free(tgt), free(params), free(grads);
    model_destroy(&m);
    return 0;
}

int main(int argc, char **argv) {
    verbose = getenv("TF_VERBOSE") && atoi(getenv("TF_VERBOSE")) > 0;
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) return bench(argc, argv);
    test_bad_configs();
    test_tensors();
    test_gradient();
    test_mean_scaling();
    test_dropout();
    test_padding();
    test_shape_cache();
    test_greedy_self_consistent();
    test_greedy_copy_task();
    return check_exit();
}
