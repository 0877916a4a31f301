/* test_model.c: unit tests of model.c (the oneDNN "mlp").
 *
 * The reference is a naive double-precision MLP written here from the documented parameter
 * layout (per layer: weights (out, in) row-major, then bias (out)), so a layout or indexing
 * mistake in the model shows up as a mismatch. Gradients are checked against central
 * finite differences of that reference for every parameter. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model.h"
#include "rng.h"
#include "util.h"

// ---------------------------------------------------------------------------- naive reference

typedef struct {
    int n_layers;
    int dim[MODEL_MAX_HIDDEN + 2]; /* dim[0] = C*H*W ... dim[n_layers] = classes */
} net_shape;

static net_shape shape_of(const model_config *cfg) {
    net_shape s = {.n_layers = cfg->n_hidden + 1};
    s.dim[0] = cfg->in_channels * cfg->in_height * cfg->in_width;
    for (int i = 0; i < cfg->n_hidden; i++) s.dim[i + 1] = cfg->hidden[i];
    s.dim[s.n_layers] = cfg->classes;
    return s;
}

static size_t shape_param_count(const net_shape *s) {
    size_t n = 0;
    for (int l = 0; l < s->n_layers; l++) n += (size_t)s->dim[l + 1] * (s->dim[l] + 1);
    return n;
}

/* Mean cross-entropy over the batch, in double. Optionally per-sample losses and argmax
 * predictions (lowest index on ties). */
static double naive_loss(const net_shape *s, const double *params, const float *x, const int32_t *y,
                         int batch, double *sample_loss, int *pred) {
    double a[2][1024];
    double total = 0;
    for (int i = 0; i < batch; i++) {
        for (int k = 0; k < s->dim[0]; k++) a[0][k] = x[(size_t)i * s->dim[0] + k];
        const double *p = params;
        int cur = 0;
        for (int l = 0; l < s->n_layers; l++) {
            int in = s->dim[l], out = s->dim[l + 1];
            const double *w = p, *b = p + (size_t)out * in;
            for (int o = 0; o < out; o++) {
                double v = b[o];
                for (int k = 0; k < in; k++) v += w[(size_t)o * in + k] * a[cur][k];
                if (l < s->n_layers - 1 && v < 0) v = 0;
                a[1 - cur][o] = v;
            }
            p += (size_t)out * (in + 1);
            cur = 1 - cur;
        }
        int classes = s->dim[s->n_layers];
        int arg = 0;
        for (int c = 1; c < classes; c++)
            if (a[cur][c] > a[cur][arg]) arg = c;
        double sum = 0;
        for (int c = 0; c < classes; c++) sum += exp(a[cur][c] - a[cur][arg]);
        double loss = a[cur][arg] + log(sum) - a[cur][y[i]];
        if (sample_loss) sample_loss[i] = loss;
        if (pred) pred[i] = arg;
        total += loss;
    }
    return total / batch;
}

static double *to_double(const float *v, size_t n) {
    double *d = xmalloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = v[i];
    return d;
}

// ---------------------------------------------------------------------------- fixtures

static model_config small_config(int n_hidden) {
    model_config cfg = {.kind = "mlp",
                        .n_hidden = n_hidden,
                        .hidden = {5, 3},
                        .in_channels = 1,
                        .in_height = 4,
                        .in_width = 4,
                        .classes = 4};
    return cfg;
}

/* Params from model_init_params, plus random biases (init makes them zero, which would
 * leave the bias path untested). */
static float *random_params(const model *m, const model_config *cfg, uint64_t seed) {
    size_t n = model_param_count(m);
    float *p = xalloc_floats(n);
    model_init_params(m, p, seed);
    net_shape s = shape_of(cfg);
    rng_t r;
    rng_seed(&r, seed, RNG_TEST, 1, 0);
    size_t off = 0;
    for (int l = 0; l < s.n_layers; l++) {
        off += (size_t)s.dim[l + 1] * s.dim[l];
        for (int o = 0; o < s.dim[l + 1]; o++) p[off + o] = (float)(0.5 * rng_normal(&r));
        off += s.dim[l + 1];
    }
    return p;
}

static void random_batch(int features, int classes, int batch, uint64_t seed, float *x,
                         int32_t *y) {
    rng_t r;
    rng_seed(&r, seed, RNG_TEST, 2, 0);
    for (int i = 0; i < batch * features; i++) x[i] = (float)rng_normal(&r);
    for (int i = 0; i < batch; i++) y[i] = (int32_t)rng_below(&r, (uint64_t)classes);
}

/* Loss from model_forward_backward and model_evaluate against the naive loop. Relative
 * tolerance 1e-5 on losses: the model runs in float (rounding ~1e-7 per op, a few dozen
 * ops deep), the reference in double. */
static void check_against_naive(model *m, const model_config *cfg, const float *params,
                                const float *x, const int32_t *y, int batch) {
    net_shape s = shape_of(cfg);
    size_t n = model_param_count(m);
    double *pd = to_double(params, n);
    double sample_loss[64];
    int pred[64];
    double ref = naive_loss(&s, pd, x, y, batch, sample_loss, pred);
    double ref_sum = 0;
    int64_t ref_correct = 0;
    for (int i = 0; i < batch; i++) {
        ref_sum += sample_loss[i];
        ref_correct += pred[i] == y[i];
    }

    float *grads = xalloc_floats(n);
    float loss = model_forward_backward(m, params, grads, x, y, batch);
    CHECK_CLOSE(loss, ref, 1e-6, 1e-5);

    /* evaluate ADDS to its outputs */
    double loss_sum = 100.0;
    int64_t correct = 7;
    model_evaluate(m, params, x, y, batch, &loss_sum, &correct);
    CHECK_CLOSE(loss_sum - 100.0, ref_sum, 1e-6, 1e-5);
    CHECK_MSG(correct - 7 == ref_correct, "correct %lld vs naive %lld", (long long)(correct - 7),
              (long long)ref_correct);
    free(grads);
    free(pd);
}

// ---------------------------------------------------------------------------- tests

/* 1. Forward (loss, loss_sum, correct) against the naive loop, with and without hidden
 * layers; also the parameter count of the documented layout. */
static void test_forward_matches_naive(void) {
    for (int n_hidden = 0; n_hidden <= 2; n_hidden += 2) {
        model_config cfg = small_config(n_hidden);
        ccdl_error err = {0};
        model *m = model_create(&cfg, 3, &err);
        CHECK_MSG(m != NULL, "model_create: %s", err.text);
        if (!m) continue;
        net_shape s = shape_of(&cfg);
        CHECK(model_param_count(m) == shape_param_count(&s));
        if (n_hidden == 2) CHECK(model_param_count(m) == 16 * 5 + 5 + 5 * 3 + 3 + 3 * 4 + 4);
        float *params = random_params(m, &cfg, 11);
        float x[3 * 16];
        int32_t y[3];
        random_batch(16, 4, 3, 12, x, y);
        check_against_naive(m, &cfg, params, x, y, 3);

        /* correct count must see at least one hit and one miss to mean anything: force a
         * hit by relabelling sample 0 with the naive prediction, a miss on sample 1. */
        double *pd = to_double(params, model_param_count(m));
        int pred[3];
        naive_loss(&s, pd, x, y, 3, NULL, pred);
        y[0] = pred[0];
        y[1] = (pred[1] + 1) % 4;
        check_against_naive(m, &cfg, params, x, y, 3);
        free(pd);
        free(params);
        model_destroy(&m);
        CHECK(m == NULL);
    }
}

/* 1b. All-zero parameters make every logit equal: the loss is log(classes) per sample and
 * argmax ties go to the lowest index, so exactly the samples labelled 0 count as correct. */
static void test_ties(void) {
    model_config cfg = small_config(2);
    ccdl_error err = {0};
    model *m = model_create(&cfg, 4, &err);
    CHECK_MSG(m != NULL, "model_create: %s", err.text);
    if (!m) return;
    float *params = xalloc_floats(model_param_count(m)); /* zeroed */
    float x[4 * 16];
    int32_t y[4];
    random_batch(16, 4, 4, 13, x, y);
    y[0] = 0, y[1] = 1, y[2] = 3, y[3] = 0; /* two samples of class 0 */
    double loss_sum = 0;
    int64_t correct = 0;
    model_evaluate(m, params, x, y, 4, &loss_sum, &correct);
    CHECK_CLOSE(loss_sum, 4 * log(4.0), 1e-6, 1e-6);
    CHECK_MSG(correct == 2, "correct %lld, expected 2 (ties -> class 0)", (long long)correct);
    free(params);
    model_destroy(&m);
}

/* 2. Every gradient entry against central differences of the naive double loss.
 * Step h = 1e-4 in double: truncation error O(h^2) ~ 1e-8 and rounding ~1e-16/h ~ 1e-12,
 * both far below the model's float error. Tolerance |g - fd| <= 1e-5 + 1e-3 |fd|: the
 * model's float gradients carry ~1e-7 relative rounding; a wrong scale, sign, transpose
 * or missing ReLU gate is off by O(|g|) >> 1e-5. */
static void test_backward_finite_differences(void) {
    for (int n_hidden = 0; n_hidden <= 2; n_hidden += 2) {
        model_config cfg = small_config(n_hidden);
        ccdl_error err = {0};
        model *m = model_create(&cfg, 3, &err);
        CHECK_MSG(m != NULL, "model_create: %s", err.text);
        if (!m) continue;
        net_shape s = shape_of(&cfg);
        size_t n = model_param_count(m);
        float *params = random_params(m, &cfg, 21);
        float x[3 * 16];
        int32_t y[3];
        random_batch(16, 4, 3, 22, x, y);

        float *grads = xalloc_floats(n);
        model_forward_backward(m, params, grads, x, y, 3);
        float *fd = xalloc_floats(n);
        double *pd = to_double(params, n);
        const double h = 1e-4;
        for (size_t i = 0; i < n; i++) {
            double keep = pd[i];
            pd[i] = keep + h;
            double up = naive_loss(&s, pd, x, y, 3, NULL, NULL);
            pd[i] = keep - h;
            double down = naive_loss(&s, pd, x, y, 3, NULL, NULL);
            pd[i] = keep;
            fd[i] = (float)((up - down) / (2 * h));
        }
        check_tensor(grads, fd, n, 1e-5, 1e-3,
                     n_hidden ? "grads (hidden {5,3})" : "grads (n_hidden 0)");
        /* the check must not pass vacuously on an all-zero gradient */
        double norm = 0;
        for (size_t i = 0; i < n; i++) norm += fabs(fd[i]);
        CHECK(norm > 1e-2);
        free(pd);
        free(fd);
        free(grads);
        free(params);
        model_destroy(&m);
    }
}

/* 3. Bad configs: NULL and an input error naming the field. */
static void expect_bad(const model_config *cfg, int max_batch, const char *field) {
    ccdl_error err = {0};
    model *m = model_create(cfg, max_batch, &err);
    CHECK_MSG(m == NULL, "config with bad %s accepted", field);
    CHECK_MSG(err.kind == CCDL_ERR_INPUT, "bad %s: kind %d", field, (int)err.kind);
    CHECK_MSG(strstr(err.text, field) != NULL, "message \"%s\" does not name %s", err.text, field);
    model_destroy(&m);
}

static void test_bad_configs(void) {
    model_config cfg = small_config(2);
    strcpy(cfg.kind, "cnn");
    expect_bad(&cfg, 4, "model.kind");
    cfg = small_config(2);
    cfg.hidden[1] = 0;
    expect_bad(&cfg, 4, "model.hidden[1]");
    cfg = small_config(2);
    cfg.classes = 0;
    expect_bad(&cfg, 4, "model.classes");
    cfg = small_config(2);
    cfg.n_hidden = MODEL_MAX_HIDDEN + 1;
    expect_bad(&cfg, 4, "model.n_hidden");
    cfg = small_config(2);
    cfg.n_hidden = -1;
    expect_bad(&cfg, 4, "model.n_hidden");
    cfg = small_config(2);
    cfg.in_width = 0;
    expect_bad(&cfg, 4, "model.in_width");
    cfg = small_config(2);
    expect_bad(&cfg, 0, "max_batch");
    model_destroy(NULL); /* NULL-safe */
}

/* 4. max_batch and a smaller batch (as in evaluation's last batch) both agree with the
 * naive loop, also when switching back and forth between them. */
static void test_batch_sizes(void) {
    model_config cfg = small_config(2);
    ccdl_error err = {0};
    model *m = model_create(&cfg, 5, &err);
    CHECK_MSG(m != NULL, "model_create: %s", err.text);
    if (!m) return;
    float *params = random_params(m, &cfg, 31);
    float x[5 * 16];
    int32_t y[5];
    random_batch(16, 4, 5, 32, x, y);
    check_against_naive(m, &cfg, params, x, y, 5);
    check_against_naive(m, &cfg, params, x, y, 2);
    check_against_naive(m, &cfg, params, x, y, 5);
    check_against_naive(m, &cfg, params, x, y, 1);
    /* The caller may change the OpenMP thread count between calls; primitives made for
     * the old count must not be run with the new one. */
    int threads = omp_get_max_threads();
    omp_set_num_threads(threads + 1);
    check_against_naive(m, &cfg, params, x, y, 5);
    omp_set_num_threads(threads);
    check_against_naive(m, &cfg, params, x, y, 5);
    free(params);
    model_destroy(&m);
}

/* 5. Bitwise determinism: same inputs -> same gradient bits, also after another worker's
 * buffers went through the same model object; init is a pure function of the seed. */
static void test_determinism(void) {
    model_config cfg = {.kind = "mlp",
                        .n_hidden = 1,
                        .hidden = {64},
                        .in_channels = 1,
                        .in_height = 28,
                        .in_width = 28,
                        .classes = 10};
    ccdl_error err = {0};
    model *m = model_create(&cfg, 16, &err);
    CHECK_MSG(m != NULL, "model_create: %s", err.text);
    if (!m) return;
    size_t n = model_param_count(m);
    float *p1 = random_params(m, &cfg, 41), *p2 = random_params(m, &cfg, 42);
    float *g1 = xalloc_floats(n), *g2 = xalloc_floats(n), *g_other = xalloc_floats(n);
    float *x = xalloc_floats(16 * 784);
    int32_t y[16];
    random_batch(784, 10, 16, 43, x, y);
    float l1 = model_forward_backward(m, p1, g1, x, y, 16);
    float l_other = model_forward_backward(m, p2, g_other, x, y, 16);
    float l2 = model_forward_backward(m, p1, g2, x, y, 16);
    CHECK(memcmp(&l1, &l2, sizeof l1) == 0);
    CHECK(memcmp(g1, g2, n * sizeof *g1) == 0);
    CHECK(l_other != l1); /* the other worker's params were really used */

    float *a = xalloc_floats(n), *b = xalloc_floats(n), *c = xalloc_floats(n);
    model_init_params(m, a, 7);
    model_init_params(m, b, 7);
    model_init_params(m, c, 8);
    CHECK(memcmp(a, b, n * sizeof *a) == 0);
    CHECK(memcmp(a, c, n * sizeof *a) != 0);

    /* He init: layer 0 weights (64 x 784) have std sqrt(2/784); biases are zero. 50176
     * samples give the sample std within ~0.6% (1 sigma), so 3% is a loose bound. */
    size_t n_w = 64 * 784;
    double ss = 0;
    for (size_t i = 0; i < n_w; i++) ss += (double)a[i] * a[i];
    CHECK_CLOSE(sqrt(ss / n_w), sqrt(2.0 / 784), 0, 0.03);
    int bias_zero = 1;
    for (size_t i = n_w; i < n_w + 64; i++) bias_zero &= a[i] == 0.0f;
    CHECK(bias_zero);
    /* The documented stream: layer l draws from rng_seed(seed, RNG_INIT, l, 0), so a
     * layer's init does not depend on the layers before it. */
    int same_stream = 1;
    size_t off = 0;
    for (int l = 0; l < 2; l++) {
        int in = l == 0 ? 784 : 64, out = l == 0 ? 64 : 10;
        rng_t r;
        rng_seed(&r, 7, RNG_INIT, (uint64_t)l, 0);
        for (size_t i = 0; i < (size_t)in * out; i++)
            same_stream &= a[off + i] == (float)(sqrt(2.0 / in) * rng_normal(&r));
        off += (size_t)out * (in + 1);
    }
    CHECK(same_stream);
    free(a);
    free(b);
    free(c);
    free(x);
    free(g1);
    free(g2);
    free(g_other);
    free(p1);
    free(p2);
    model_destroy(&m);
}

/* 6. SGD on a linearly separable problem (labels = argmax of a random linear teacher)
 * drives the loss down by more than 10x and fits the training set. */
static void test_training_reduces_loss(void) {
    enum { N = 256, F = 8, K = 3, B = 16 };
    model_config cfg = {.kind = "mlp",
                        .n_hidden = 1,
                        .hidden = {16},
                        .in_channels = 2,
                        .in_height = 2,
                        .in_width = 2,
                        .classes = K};
    ccdl_error err = {0};
    model *m = model_create(&cfg, B, &err);
    CHECK_MSG(m != NULL, "model_create: %s", err.text);
    if (!m) return;
    static float x[N * F];
    static int32_t y[N];
    rng_t r;
    rng_seed(&r, 5, RNG_TEST, 6, 0);
    double teacher[K][F];
    for (int k = 0; k < K; k++)
        for (int f = 0; f < F; f++) teacher[k][f] = rng_normal(&r);
    for (int i = 0; i < N; i++) {
        double best = -1e300;
        for (int f = 0; f < F; f++) x[i * F + f] = (float)rng_normal(&r);
        for (int k = 0; k < K; k++) {
            double v = 0;
            for (int f = 0; f < F; f++) v += teacher[k][f] * x[i * F + f];
            if (v > best) best = v, y[i] = k;
        }
    }
    size_t n = model_param_count(m);
    float *params = xalloc_floats(n), *grads = xalloc_floats(n);
    model_init_params(m, params, 3);

    double before = 0;
    int64_t correct = 0;
    for (int i = 0; i < N; i += B)
        model_evaluate(m, params, x + i * F, y + i, B, &before, &correct);
    for (int epoch = 0; epoch < 60; epoch++)
        for (int i = 0; i < N; i += B) {
            model_forward_backward(m, params, grads, x + i * F, y + i, B);
            for (size_t j = 0; j < n; j++) params[j] -= 0.2f * grads[j];
        }
    double after = 0;
    correct = 0;
    for (int i = 0; i < N; i += B) model_evaluate(m, params, x + i * F, y + i, B, &after, &correct);
    before /= N;
    after /= N;
    fprintf(stderr, "training: loss %.4f -> %.4f, train accuracy %lld/%d\n", before, after,
            (long long)correct, N);
    CHECK_MSG(after < before / 10, "loss %.4f -> %.4f", before, after);
    CHECK(correct >= N * 95 / 100);
    free(params);
    free(grads);
    model_destroy(&m);
}

int main(void) {
    test_forward_matches_naive();
    test_ties();
    test_backward_finite_differences();
    test_bad_configs();
    test_batch_sizes();
    test_determinism();
    test_training_reduces_loss();
    return check_exit();
}
