/* test_model.c: unit tests of layers.c and model.c.
 *
 * Layers: each oneDNN layer's forward against a naive double loop and its backward against
 * central finite differences of that loop (tolerances stated with the tests).
 * mlp: a naive double-precision MLP written here from the documented parameter layout (per
 * layer: weights (out, in) row-major, then bias (out)); gradients against central finite
 * differences of it for every parameter.
 * resnet20: a naive double-precision ResNet-20 written from docs/model.md; exact sizes of the
 * paper's configuration, forward and running statistics against it, gradients against its
 * finite differences, init, determinism, and a short training run. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "layers.h"
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
    float loss = model_forward_backward(m, params, NULL, grads, x, y, batch);
    CHECK_CLOSE(loss, ref, 1e-6, 1e-5);

    /* evaluate ADDS to its outputs */
    double loss_sum = 100.0;
    int64_t correct = 7;
    model_evaluate(m, params, NULL, x, y, batch, &loss_sum, &correct);
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
    model_evaluate(m, params, NULL, x, y, 4, &loss_sum, &correct);
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
        model_forward_backward(m, params, NULL, grads, x, y, 3);
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
    float l1 = model_forward_backward(m, p1, NULL, g1, x, y, 16);
    float l_other = model_forward_backward(m, p2, NULL, g_other, x, y, 16);
    float l2 = model_forward_backward(m, p1, NULL, g2, x, y, 16);
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
        model_evaluate(m, params, NULL, x + i * F, y + i, B, &before, &correct);
    for (int epoch = 0; epoch < 60; epoch++)
        for (int i = 0; i < N; i += B) {
            model_forward_backward(m, params, NULL, grads, x + i * F, y + i, B);
            for (size_t j = 0; j < n; j++) params[j] -= 0.2f * grads[j];
        }
    double after = 0;
    correct = 0;
    for (int i = 0; i < N; i += B)
        model_evaluate(m, params, NULL, x + i * F, y + i, B, &after, &correct);
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

// ---------------------------------------------------------------------------- layer tests

/* Each layer runs on its own layer_set; inputs go in through a reorder from plain NCHW (so
 * the blocked layouts the model uses are exercised) and outputs come back the same way.
 * The oracle is a naive double-precision loop over plain NCHW arrays; gradients are checked
 * against central differences of L = sum(R * output) for a random R, taken on that oracle.
 *
 * Tolerances (|got - want| <= atol + rtol |want|):
 *   forward of conv / pool / inner product / add / relu: 1e-5 + 1e-5: float rounding
 *     (~6e-8 per operation) over at most ~150 terms of size <= ~5.
 *   forward of batch norm: 1e-4 + 1e-4: the division by sqrt(var + eps) of a small-batch
 *     variance amplifies rounding ~10x.
 *   backward against finite differences, h = 1e-5 in double: truncation O(h^2) ~ 1e-10 and
 *     rounding ~1e-16 / h ~ 1e-11 in the oracle, so the budget is the layer's float error:
 *     1e-4 + 1e-4 for linear layers, 2e-4 + 1e-3 for batch norm. A wrong index, scale,
 *     transpose or missing term is off by O(1). */

#define FD_H 1e-5

typedef struct {
    layer_env env;
    layer_arena arena;
    layer_set set;
} harness;

static void harness_open(harness *h, int batch, int training) {
    ccdl_error err = {0};
    memset(h, 0, sizeof *h);
    if (layer_env_init(&h->env, &err)) {
        fprintf(stderr, "layer_env_init: %s\n", err.text);
        exit(1);
    }
    layer_set_init(&h->set, &h->env, batch, training);
}

static dnnl_memory_t harness_mem(harness *h, const dnnl_memory_desc_t *md) {
    dnnl_memory_t mem = NULL;
    ccdl_error err = {0};
    CHECK_MSG(layer_set_memory_new(&h->set, &mem, md, "test", &err) == 0, "%s", err.text);
    return mem;
}

static void harness_ready(harness *h) {
    ccdl_error err = {0};
    CHECK_MSG(layer_set_finish(&h->set, &err) == 0, "%s", err.text);
    layer_set_bind(&h->set, &h->arena);
}

static void harness_close(harness *h) {
    layer_set_destroy(&h->set);
    layer_arena_free(&h->arena);
    layer_env_free(&h->env);
}

/* Copy between a plain float array and mem, whatever mem's layout (to_mem: plain -> mem). */
static void plain_copy(harness *h, dnnl_memory_t mem, float *plain, int to_mem) {
    const dnnl_memory_desc_t *md = NULL;
    dnnl_memory_get_memory_desc(mem, &md);
    dnnl_memory_desc_t pmd;
    ccdl_error err = {0};
    int64_t dims[4];
    for (int i = 0; i < md->ndims; i++) dims[i] = md->dims[i];
    layer_md_plain(&pmd, md->ndims, dims, &err);
    dnnl_memory_t pmem = NULL;
    dnnl_memory_create(&pmem, &pmd, h->env.engine, plain);
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    const dnnl_memory_desc_t *from = to_mem ? &pmd : md, *to = to_mem ? md : &pmd;
    CHECK(dnnl_reorder_primitive_desc_create(&pd, from, h->env.engine, to, h->env.engine, NULL) ==
          dnnl_success);
    CHECK(dnnl_primitive_create(&prim, pd) == dnnl_success);
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, to_mem ? pmem : mem},
                               {DNNL_ARG_TO, to_mem ? mem : pmem}};
    CHECK(dnnl_primitive_execute(prim, h->env.stream, 2, args) == dnnl_success);
    dnnl_stream_wait(h->env.stream);
    dnnl_primitive_destroy(prim);
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_destroy(pmem);
}

static void put(harness *h, dnnl_memory_t mem, const float *plain) {
    plain_copy(h, mem, (float *)(uintptr_t)plain, 1);
}

static void get(harness *h, dnnl_memory_t mem, float *plain) {
    layer_wait(&h->set);
    plain_copy(h, mem, plain, 0);
}

static float *random_floats(size_t n, double scale, uint64_t seed) {
    float *v = xalloc_floats(n);
    rng_t r;
    rng_seed(&r, seed, RNG_TEST, 100, n);
    for (size_t i = 0; i < n; i++) v[i] = (float)(scale * rng_normal(&r));
    return v;
}

/* ---- the oracle: one layer in double on plain arrays */

typedef enum { OR_CONV, OR_BN, OR_RELU, OR_ADD, OR_POOL, OR_IP } oracle_kind;

typedef struct {
    oracle_kind kind;
    int n, c, h, w;              /* input (N, C, H, W); for the inner product c = features */
    int co, k, stride, pad;      /* conv: out channels, kernel; pool: kernel (0 = global) */
    int relu, max;               /* bn / add: fused ReLU; pool: max (else average) */
    int oh, ow;                  /* output spatial size (conv, pool) */
    double *x, *x2, *wt, *b, *R; /* inputs, second input (add), weights/scale, bias/shift */
    double *out;                 /* scratch for the output */
    size_t out_n;                /* output elements */
} oracle;

static void oracle_forward(oracle *o) {
    const int n = o->n, c = o->c, h = o->h, w = o->w;
    switch (o->kind) {
    case OR_CONV:
        for (int i = 0; i < n; i++)
            for (int q = 0; q < o->co; q++)
                for (int y = 0; y < o->oh; y++)
                    for (int x = 0; x < o->ow; x++) {
                        double v = 0;
                        for (int p = 0; p < c; p++)
                            for (int ky = 0; ky < o->k; ky++)
                                for (int kx = 0; kx < o->k; kx++) {
                                    int iy = y * o->stride - o->pad + ky;
                                    int ix = x * o->stride - o->pad + kx;
                                    if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                    v += o->wt[((q * c + p) * o->k + ky) * o->k + kx] *
                                         o->x[((i * c + p) * h + iy) * w + ix];
                                }
                        o->out[((i * o->co + q) * o->oh + y) * o->ow + x] = v;
                    }
        break;
    case OR_BN:
        for (int p = 0; p < c; p++) {
            double mean = 0, var = 0, m = (double)n * h * w;
            for (int i = 0; i < n; i++)
                for (int s = 0; s < h * w; s++) mean += o->x[(i * c + p) * h * w + s];
            mean /= m;
            for (int i = 0; i < n; i++)
                for (int s = 0; s < h * w; s++) {
                    double d = o->x[(i * c + p) * h * w + s] - mean;
                    var += d * d;
                }
            var /= m; /* biased, as PyTorch normalises in training */
            for (int i = 0; i < n; i++)
                for (int s = 0; s < h * w; s++) {
                    size_t at = (size_t)(i * c + p) * h * w + s;
                    double v = (o->x[at] - mean) / sqrt(var + BN_EPSILON) * o->wt[p] + o->b[p];
                    o->out[at] = o->relu && v < 0 ? 0 : v;
                }
        }
        break;
    case OR_RELU:
    case OR_ADD:
        for (size_t i = 0; i < o->out_n; i++) {
            double v = o->x[i] + (o->kind == OR_ADD ? o->x2[i] : 0);
            o->out[i] = (o->kind == OR_RELU || o->relu) && v < 0 ? 0 : v;
        }
        break;
    case OR_POOL: {
        const int kh = o->k ? o->k : h, kw = o->k ? o->k : w;
        for (int i = 0; i < n * c; i++)
            for (int y = 0; y < o->oh; y++)
                for (int x = 0; x < o->ow; x++) {
                    double best = -1e300, sum = 0;
                    int count = 0;
                    for (int ky = 0; ky < kh; ky++)
                        for (int kx = 0; kx < kw; kx++) {
                            int iy = y * o->stride - o->pad + ky, ix = x * o->stride - o->pad + kx;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                            double v = o->x[(size_t)i * h * w + iy * w + ix];
                            if (v > best) best = v;
                            sum += v;
                            count++;
                        }
                    o->out[((size_t)i * o->oh + y) * o->ow + x] = o->max ? best : sum / count;
                }
        break;
    }
    case OR_IP:
        for (int i = 0; i < n; i++)
            for (int q = 0; q < o->co; q++) {
                double v = o->b[q];
                for (int f = 0; f < c; f++) v += o->wt[(size_t)q * c + f] * o->x[(size_t)i * c + f];
                o->out[(size_t)i * o->co + q] = v;
            }
        break;
    }
}

static double oracle_loss(oracle *o) {
    oracle_forward(o);
    double l = 0;
    for (size_t i = 0; i < o->out_n; i++) l += o->R[i] * o->out[i];
    return l;
}

/* Central differences of the oracle's L with respect to v[0..n), as floats. */
static float *oracle_fd(oracle *o, double *v, size_t n) {
    float *g = xalloc_floats(n);
    for (size_t i = 0; i < n; i++) {
        double keep = v[i];
        v[i] = keep + FD_H;
        double lp = oracle_loss(o);
        v[i] = keep - FD_H;
        double lm = oracle_loss(o);
        v[i] = keep;
        g[i] = (float)((lp - lm) / (2 * FD_H));
    }
    return g;
}

static float *oracle_output(oracle *o) {
    oracle_forward(o);
    float *y = xalloc_floats(o->out_n);
    for (size_t i = 0; i < o->out_n; i++) y[i] = (float)o->out[i];
    return y;
}

static void oracle_free(oracle *o) {
    free(o->x), free(o->x2), free(o->wt), free(o->b), free(o->R), free(o->out);
}

static const char *layout_name(int blocked) {
    return blocked ? "blocked" : "plain";
}

/* A 4-D descriptor: plain NCHW, nChw16c, or "any" (conv picks). */
static dnnl_memory_desc_t md4(int n, int c, int h, int w, int layout) {
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {n, c, h, w};
    static const dnnl_format_tag_t tags[] = {dnnl_nchw, dnnl_nChw16c, dnnl_format_tag_any,
                                             dnnl_nhwc};
    CHECK(dnnl_memory_desc_init_by_tag(&md, 4, dims, dnnl_f32, tags[layout]) == dnnl_success);
    return md;
}

/* 1. Convolution: 3x3 stride 1 and 2, 1x1 stride 2 (the shortcut), 16 channels (no padding
 * in the blocked layout, as in ResNet); the input plain (first layer) or as chosen. */
static void conv_case(int n, int c, int h, int w, int co, int k, int stride, int pad, int layout) {
    harness hs;
    harness_open(&hs, n, 1);
    ccdl_error err = {0};
    dnnl_memory_desc_t src_md = md4(n, c, h, w, layout);
    conv_layer cv;
    int rc = conv_layer_init(&cv, &hs.set, &src_md, co, k, stride, pad, 1, "conv", &err);
    CHECK_MSG(rc == 0, "conv_layer_init: %s", err.text);
    if (rc) {
        harness_close(&hs);
        return;
    }
    dnnl_memory_t src = harness_mem(&hs, &cv.src_md), dst = harness_mem(&hs, &cv.dst_md);
    dnnl_memory_t dsrc = harness_mem(&hs, &cv.src_md), ddst = harness_mem(&hs, &cv.dst_md);
    harness_ready(&hs);
    oracle o = {.kind = OR_CONV,
                .n = n,
                .c = c,
                .h = h,
                .w = w,
                .co = co,
                .k = k,
                .stride = stride,
                .pad = pad};
    o.oh = (h + 2 * pad - k) / stride + 1, o.ow = (w + 2 * pad - k) / stride + 1;
    CHECK(cv.dst_md.dims[2] == o.oh && cv.dst_md.dims[3] == o.ow);
    const size_t nx = (size_t)n * c * h * w, nw = (size_t)co * c * k * k;
    o.out_n = (size_t)n * co * o.oh * o.ow;
    float *x = random_floats(nx, 1, 1), *wt = random_floats(nw, 0.5, 2);
    float *R = random_floats(o.out_n, 1, 3);
    o.x = to_double(x, nx), o.wt = to_double(wt, nw), o.R = to_double(R, o.out_n);
    o.out = xmalloc(o.out_n * sizeof(double));

    float *y = xalloc_floats(o.out_n), *dx = xalloc_floats(nx), *dw = xalloc_floats(nw);
    put(&hs, src, x);
    conv_layer_forward(&hs.set, &cv, wt, src, dst);
    get(&hs, dst, y);
    float *want = oracle_output(&o);
    char label[96];
    snprintf(label, sizeof label, "conv %dx%d s%d c%d->%d %s forward", k, k, stride, c, co,
             layout ? "chosen" : "plain");
    check_tensor(y, want, o.out_n, 1e-5, 1e-5, label);
    put(&hs, ddst, R);
    conv_layer_backward(&hs.set, &cv, wt, dw, src, ddst, dsrc);
    get(&hs, dsrc, dx);
    float *fd_x = oracle_fd(&o, o.x, nx), *fd_w = oracle_fd(&o, o.wt, nw);
    snprintf(label, sizeof label, "conv %dx%d s%d c%d->%d d_src", k, k, stride, c, co);
    check_tensor(dx, fd_x, nx, 1e-4, 1e-4, label);
    snprintf(label, sizeof label, "conv %dx%d s%d c%d->%d d_weights", k, k, stride, c, co);
    check_tensor(dw, fd_w, nw, 1e-4, 1e-4, label);
    free(x), free(wt), free(R), free(y), free(dx), free(dw), free(want), free(fd_x), free(fd_w);
    oracle_free(&o);
    harness_close(&hs);
}

static void test_conv_layer(void) {
    conv_case(2, 3, 6, 6, 5, 3, 1, 1, 0);
    conv_case(2, 3, 6, 6, 5, 3, 1, 1, 2);
    conv_case(2, 4, 7, 7, 6, 3, 2, 1, 2);
    conv_case(2, 5, 6, 6, 3, 1, 2, 0, 2);
    conv_case(2, 16, 4, 4, 16, 3, 1, 1, 2);
    conv_case(2, 16, 4, 4, 32, 3, 2, 1, 2);
    conv_case(3, 4, 8, 8, 4, 3, 1, 1, 3);
    conv_case(3, 8, 4, 4, 16, 1, 2, 0, 3);
}

/* 2. Batch norm, training and inference, with and without the fused ReLU, in plain and
 * blocked layouts (C = 5 pads the blocked layout to 16 channels). */
static void bn_case(int n, int c, int h, int w, int relu, int blocked) {
    harness hs;
    harness_open(&hs, n, 1);
    ccdl_error err = {0};
    dnnl_memory_desc_t md = md4(n, c, h, w, blocked);
    bn_layer bn;
    int rc = bn_layer_init(&bn, &hs.set, &md, relu, "bn", &err);
    CHECK_MSG(rc == 0, "bn_layer_init: %s", err.text);
    if (rc) {
        harness_close(&hs);
        return;
    }
    dnnl_memory_t src = harness_mem(&hs, &md), dst = harness_mem(&hs, &md);
    dnnl_memory_t ddst = harness_mem(&hs, &md), dsrc = harness_mem(&hs, &md);
    harness_ready(&hs);
    const size_t nx = (size_t)n * c * h * w;
    oracle o = {.kind = OR_BN, .n = n, .c = c, .h = h, .w = w, .relu = relu, .out_n = nx};
    /* a shifted, scaled input so mean and variance are far from 0 and 1 */
    float *x = random_floats(nx, 2, 11), *scale = random_floats((size_t)c, 1, 12);
    float *shift = random_floats((size_t)c, 1, 13), *R = random_floats(nx, 1, 14);
    for (size_t i = 0; i < nx; i++) x[i] += 0.5f;
    o.x = to_double(x, nx), o.wt = to_double(scale, (size_t)c), o.b = to_double(shift, (size_t)c);
    o.R = to_double(R, nx);
    o.out = xmalloc(nx * sizeof(double));
    float running[2 * 32], want_running[2 * 32];
    for (int p = 0; p < c; p++) running[p] = 0.1f * p, running[c + p] = 1.0f + 0.2f * p;

    /* running statistics, by hand: r = 0.9 r + 0.1 batch (unbiased variance) */
    const double m = (double)n * h * w;
    for (int p = 0; p < c; p++) {
        double mean = 0, ss = 0;
        for (int i = 0; i < n; i++)
            for (int s = 0; s < h * w; s++) mean += o.x[(i * c + p) * h * w + s];
        mean /= m;
        for (int i = 0; i < n; i++)
            for (int s = 0; s < h * w; s++)
                ss += (o.x[(i * c + p) * h * w + s] - mean) * (o.x[(i * c + p) * h * w + s] - mean);
        want_running[p] = (float)(0.9 * running[p] + 0.1 * mean);
        want_running[c + p] = (float)(0.9 * running[c + p] + 0.1 * ss / (m - 1));
    }

    float *y = xalloc_floats(nx), *dx = xalloc_floats(nx);
    float dscale[32], dshift[32];
    put(&hs, src, x);
    bn_layer_forward_training(&hs.set, &bn, scale, shift, running, src, dst);
    get(&hs, dst, y);
    float *want = oracle_output(&o);
    char label[96];
    snprintf(label, sizeof label, "bn%s %s forward", relu ? "+relu" : "", layout_name(blocked));
    check_tensor(y, want, nx, 1e-4, 1e-4, label);
    check_tensor(running, want_running, 2 * (size_t)c, 1e-6, 1e-5, "bn running statistics");

    put(&hs, ddst, R);
    bn_layer_backward(&hs.set, &bn, scale, shift, dscale, dshift, src, ddst, dsrc);
    get(&hs, dsrc, dx);
    float *fd_x = oracle_fd(&o, o.x, nx), *fd_s = oracle_fd(&o, o.wt, (size_t)c);
    float *fd_b = oracle_fd(&o, o.b, (size_t)c);
    snprintf(label, sizeof label, "bn%s %s d_src", relu ? "+relu" : "", layout_name(blocked));
    check_tensor(dx, fd_x, nx, 2e-4, 1e-3, label);
    check_tensor(dscale, fd_s, (size_t)c, 2e-4, 1e-3, "bn d_scale");
    check_tensor(dshift, fd_b, (size_t)c, 2e-4, 1e-3, "bn d_shift");

    /* in place (diff_src == diff_dst), as the model runs it */
    float *dx2 = xalloc_floats(nx);
    put(&hs, ddst, R);
    bn_layer_backward(&hs.set, &bn, scale, shift, dscale, dshift, src, ddst, ddst);
    get(&hs, ddst, dx2);
    CHECK(memcmp(dx, dx2, nx * sizeof *dx) == 0);
    harness_close(&hs);

    /* inference: normalise with the running statistics, in place */
    harness_open(&hs, n, 0);
    rc = bn_layer_init(&bn, &hs.set, &md, relu, "bn", &err);
    CHECK_MSG(rc == 0, "bn_layer_init (inference): %s", err.text);
    dnnl_memory_t data = harness_mem(&hs, &md);
    harness_ready(&hs);
    put(&hs, data, x);
    bn_layer_forward_inference(&hs.set, &bn, scale, shift, running, data, data);
    get(&hs, data, y);
    for (int i = 0; i < n; i++)
        for (int p = 0; p < c; p++)
            for (int s = 0; s < h * w; s++) {
                size_t at = (size_t)(i * c + p) * h * w + s;
                double v = (o.x[at] - running[p]) / sqrt(running[c + p] + BN_EPSILON) * scale[p] +
                           shift[p];
                want[at] = (float)(relu && v < 0 ? 0 : v);
            }
    snprintf(label, sizeof label, "bn%s %s inference", relu ? "+relu" : "", layout_name(blocked));
    check_tensor(y, want, nx, 1e-4, 1e-4, label);
    harness_close(&hs);
    free(x), free(scale), free(shift), free(R), free(y), free(dx), free(dx2), free(want);
    free(fd_x), free(fd_s), free(fd_b);
    oracle_free(&o);
}

static void test_bn_layer(void) {
    /* a primitive oneDNN cannot make (int8 batch norm training) is a runtime error naming
     * the layer and the primitive, and leaves the set destroyable */
    harness hs;
    harness_open(&hs, 2, 1);
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {2, 4, 3, 3};
    CHECK(dnnl_memory_desc_init_by_tag(&md, 4, dims, dnnl_s8, dnnl_nchw) == dnnl_success);
    bn_layer bn;
    ccdl_error err = {0};
    CHECK(bn_layer_init(&bn, &hs.set, &md, 0, "s9b9.bn", &err) != 0);
    CHECK(err.kind == CCDL_ERR_RUNTIME);
    CHECK_MSG(strstr(err.text, "s9b9.bn: batch norm forward (batch 2)") != NULL, "%s", err.text);
    harness_close(&hs);

    bn_case(2, 5, 3, 3, 0, 0);
    bn_case(2, 5, 3, 3, 1, 0);
    bn_case(2, 5, 3, 3, 0, 1);
    bn_case(3, 16, 2, 2, 1, 1);
    bn_case(4, 16, 1, 1, 0, 1); /* 1x1 spatial: statistics over the batch only */
    bn_case(2, 4, 3, 3, 1, 3);
    bn_case(2, 8, 2, 2, 0, 3);
}

/* 3. ReLU and the residual add (plain and with ReLU): elementwise, in place. Inputs are
 * kept at least 0.05 away from the kink so finite differences are clean. */
static void eltwise_case(oracle_kind kind, int relu, int blocked, int other_layout) {
    const int n = 2, c = 5, h = 3, w = 3;
    const size_t nx = (size_t)n * c * h * w;
    harness hs;
    harness_open(&hs, n, 1);
    ccdl_error err = {0};
    dnnl_memory_desc_t md = md4(n, c, h, w, blocked), other_md = md4(n, c, h, w, other_layout);
    relu_layer rl;
    add_layer ad;
    int rc = kind == OR_RELU ? relu_layer_init(&rl, &hs.set, &md, "relu", &err)
                             : add_layer_init(&ad, &hs.set, &md, &other_md, relu, "add", &err);
    CHECK_MSG(rc == 0, "eltwise init: %s", err.text);
    if (rc) {
        harness_close(&hs);
        return;
    }
    dnnl_memory_t a = harness_mem(&hs, &md), b = harness_mem(&hs, &other_md);
    dnnl_memory_t diff = harness_mem(&hs, &md);
    harness_ready(&hs);
    oracle o = {.kind = kind, .n = n, .c = c, .h = h, .w = w, .relu = relu, .out_n = nx};
    float *x = random_floats(nx, 1, 21), *x2 = random_floats(nx, 1, 22);
    float *R = random_floats(nx, 1, 23);
    for (size_t i = 0; i < nx; i++) {
        float s = kind == OR_ADD ? x[i] + x2[i] : x[i];
        if (fabsf(s) < 0.05f) x[i] += 0.1f;
    }
    o.x = to_double(x, nx), o.x2 = to_double(x2, nx), o.R = to_double(R, nx);
    o.out = xmalloc(nx * sizeof(double));
    float *y = xalloc_floats(nx), *d = xalloc_floats(nx), *want = oracle_output(&o);
    put(&hs, a, x);
    put(&hs, b, x2);
    if (kind == OR_RELU)
        relu_layer_forward(&hs.set, &rl, a);
    else
        add_layer_forward(&hs.set, &ad, a, b);
    get(&hs, a, y);
    char label[64];
    snprintf(label, sizeof label, "%s %s forward",
             kind == OR_RELU ? "relu"
             : relu          ? "add+relu"
                             : "add",
             layout_name(blocked));
    check_tensor(y, want, nx, 1e-5, 1e-5, label);
    put(&hs, diff, R);
    if (kind == OR_RELU)
        relu_layer_backward(&hs.set, &rl, a, diff);
    else
        add_layer_backward(&hs.set, &ad, a, diff);
    get(&hs, diff, d);
    /* the sum passes the same gradient to both inputs */
    float *fd_x = oracle_fd(&o, o.x, nx);
    check_tensor(d, fd_x, nx, 1e-4, 1e-4, "eltwise d_input");
    if (kind == OR_ADD) {
        float *fd_x2 = oracle_fd(&o, o.x2, nx);
        check_tensor(d, fd_x2, nx, 1e-4, 1e-4, "add d_other");
        free(fd_x2);
    }
    free(x), free(x2), free(R), free(y), free(d), free(want), free(fd_x);
    oracle_free(&o);
    harness_close(&hs);
}

static void test_eltwise_layers(void) {
    for (int blocked = 0; blocked <= 3; blocked += blocked == 1 ? 2 : 1) {
        eltwise_case(OR_RELU, 1, blocked, blocked);
        eltwise_case(OR_ADD, 0, blocked, blocked);
        eltwise_case(OR_ADD, 1, blocked, blocked);
    }
    /* a shortcut in another layout than the main path (ResNet at widths below 16) */
    eltwise_case(OR_ADD, 1, 3, 1);
    eltwise_case(OR_ADD, 0, 1, 3);
}

/* 4. Pooling: max 2x2 stride 2, average 3x3 stride 2 with padding (padding excluded from
 * the count), and the global average ResNet ends with. */
static void pool_case(int max, int k, int stride, int pad, int c, int blocked) {
    const int n = 2, h = 6, w = 6;
    const size_t nx = (size_t)n * c * h * w;
    harness hs;
    harness_open(&hs, n, 1);
    ccdl_error err = {0};
    dnnl_memory_desc_t md = md4(n, c, h, w, blocked);
    pool_layer pl;
    int rc =
        pool_layer_init(&pl, &hs.set, &md, max ? POOL_MAX : POOL_AVG, k, stride, pad, "pool", &err);
    CHECK_MSG(rc == 0, "pool_layer_init: %s", err.text);
    if (rc) {
        harness_close(&hs);
        return;
    }
    dnnl_memory_t src = harness_mem(&hs, &pl.src_md), dst = harness_mem(&hs, &pl.dst_md);
    dnnl_memory_t dsrc = harness_mem(&hs, &pl.src_md), ddst = harness_mem(&hs, &pl.dst_md);
    harness_ready(&hs);
    oracle o = {.kind = OR_POOL, .n = n, .c = c, .h = h, .w = w, .k = k, .max = max};
    o.stride = k ? stride : 1, o.pad = k ? pad : 0;
    o.oh = k ? (h + 2 * pad - k) / stride + 1 : 1, o.ow = k ? (w + 2 * pad - k) / stride + 1 : 1;
    CHECK(pl.dst_md.dims[2] == o.oh && pl.dst_md.dims[3] == o.ow);
    o.out_n = (size_t)n * c * o.oh * o.ow;
    float *x = random_floats(nx, 1, 31), *R = random_floats(o.out_n, 1, 32);
    o.x = to_double(x, nx), o.R = to_double(R, o.out_n);
    o.out = xmalloc(o.out_n * sizeof(double));
    float *y = xalloc_floats(o.out_n), *dx = xalloc_floats(nx), *want = oracle_output(&o);
    put(&hs, src, x);
    pool_layer_forward(&hs.set, &pl, src, dst);
    get(&hs, dst, y);
    char label[64];
    snprintf(label, sizeof label, "%s pool k%d %s forward", max ? "max" : "avg", k,
             layout_name(blocked));
    check_tensor(y, want, o.out_n, 1e-5, 1e-5, label);
    put(&hs, ddst, R);
    pool_layer_backward(&hs.set, &pl, ddst, dsrc);
    get(&hs, dsrc, dx);
    float *fd_x = oracle_fd(&o, o.x, nx);
    snprintf(label, sizeof label, "%s pool k%d %s d_src", max ? "max" : "avg", k,
             layout_name(blocked));
    check_tensor(dx, fd_x, nx, 1e-4, 1e-4, label);
    free(x), free(R), free(y), free(dx), free(want), free(fd_x);
    oracle_free(&o);
    harness_close(&hs);
}

static void test_pool_layer(void) {
    pool_case(1, 2, 2, 0, 3, 0);
    pool_case(1, 2, 2, 0, 16, 1);
    pool_case(0, 3, 2, 1, 3, 0);
    pool_case(0, 0, 1, 0, 5, 0);
    pool_case(0, 0, 1, 0, 16, 1);
}

/* 5. Inner product on a 2-D plain input (the mlp) and on a 4-D blocked one (ResNet's fc
 * after the pool), with bias; weights (out, C*H*W) plain in the caller's buffer. */
static void ip_case(int n, int c, int h, int w, int out, int blocked4d) {
    harness hs;
    harness_open(&hs, n, 1);
    ccdl_error err = {0};
    dnnl_memory_desc_t md;
    if (blocked4d) {
        md = md4(n, c, h, w, 1);
    } else {
        const int64_t dims[2] = {n, (int64_t)c * h * w};
        layer_md_plain(&md, 2, dims, &err);
    }
    ip_layer ip;
    int rc = ip_layer_init(&ip, &hs.set, &md, out, 1, "ip", &err);
    CHECK_MSG(rc == 0, "ip_layer_init: %s", err.text);
    if (rc) {
        harness_close(&hs);
        return;
    }
    dnnl_memory_t src = harness_mem(&hs, &ip.src_md), dst = harness_mem(&hs, &ip.dst_md);
    dnnl_memory_t dsrc = harness_mem(&hs, &ip.src_md), ddst = harness_mem(&hs, &ip.dst_md);
    harness_ready(&hs);
    const int f = c * h * w;
    const size_t nx = (size_t)n * f, nw = (size_t)out * f;
    oracle o = {.kind = OR_IP, .n = n, .c = f, .h = 1, .w = 1, .co = out};
    o.out_n = (size_t)n * out;
    float *x = random_floats(nx, 1, 41), *wt = random_floats(nw, 0.5, 42);
    float *b = random_floats((size_t)out, 1, 43), *R = random_floats(o.out_n, 1, 44);
    o.x = to_double(x, nx), o.wt = to_double(wt, nw), o.b = to_double(b, (size_t)out);
    o.R = to_double(R, o.out_n);
    o.out = xmalloc(o.out_n * sizeof(double));
    float *y = xalloc_floats(o.out_n), *dx = xalloc_floats(nx), *dw = xalloc_floats(nw);
    float *db = xalloc_floats((size_t)out), *want = oracle_output(&o);
    put(&hs, src, x);
    ip_layer_forward(&hs.set, &ip, wt, b, src, dst);
    get(&hs, dst, y);
    const char *what = blocked4d ? "ip 4-D blocked" : "ip 2-D plain";
    check_tensor(y, want, o.out_n, 1e-5, 1e-5, what);
    put(&hs, ddst, R);
    ip_layer_backward(&hs.set, &ip, wt, dw, db, src, ddst, dsrc);
    get(&hs, dsrc, dx);
    float *fd_x = oracle_fd(&o, o.x, nx), *fd_w = oracle_fd(&o, o.wt, nw);
    float *fd_b = oracle_fd(&o, o.b, (size_t)out);
    check_tensor(dx, fd_x, nx, 1e-4, 1e-4, "ip d_src");
    check_tensor(dw, fd_w, nw, 1e-4, 1e-4, "ip d_weights");
    check_tensor(db, fd_b, (size_t)out, 1e-4, 1e-4, "ip d_bias");
    free(x), free(wt), free(b), free(R), free(y), free(dx), free(dw), free(db), free(want);
    free(fd_x), free(fd_w), free(fd_b);
    oracle_free(&o);
    harness_close(&hs);
}

static void test_ip_layer(void) {
    ip_case(3, 7, 1, 1, 4, 0);
    ip_case(2, 16, 2, 2, 5, 1);
    ip_case(4, 32, 1, 1, 10, 1);
}

/* 6. Softmax cross-entropy: the summed loss against a double loop, the gradient of the
 * mean loss against central differences of it (tolerance 1e-6 + 1e-4: float rounding of
 * probabilities ~1e-7). */
static double xent_mean(const double *z, const int32_t *y, int n, int k) {
    double total = 0;
    for (int i = 0; i < n; i++) {
        double zmax = z[i * k];
        for (int c = 1; c < k; c++) zmax = fmax(zmax, z[i * k + c]);
        double s = 0;
        for (int c = 0; c < k; c++) s += exp(z[i * k + c] - zmax);
        total += zmax + log(s) - z[i * k + y[i]];
    }
    return total / n;
}

static void test_softmax_xent(void) {
    enum { N = 4, K = 6 };
    float *z = random_floats(N * K, 3, 51), g[N * K], fd[N * K];
    int32_t y[N] = {0, 5, 2, 2};
    double *zd = to_double(z, N * K);
    int64_t correct = 0;
    double sum = softmax_xent(z, y, N, K, g, &correct);
    CHECK_CLOSE(sum / N, xent_mean(zd, y, N, K), 1e-6, 1e-6);
    for (int i = 0; i < N * K; i++) {
        double keep = zd[i];
        zd[i] = keep + FD_H;
        double lp = xent_mean(zd, y, N, K);
        zd[i] = keep - FD_H;
        double lm = xent_mean(zd, y, N, K);
        zd[i] = keep;
        fd[i] = (float)((lp - lm) / (2 * FD_H));
    }
    check_tensor(g, fd, N * K, 1e-6, 1e-4, "softmax_xent d_logits");
    int64_t want = 0;
    for (int i = 0; i < N; i++) {
        int arg = 0;
        for (int c = 1; c < K; c++)
            if (z[i * K + c] > z[i * K + arg]) arg = c;
        want += arg == y[i];
    }
    CHECK(correct == want);
    free(z);
    free(zd);
}

/* 7. The arena: a set re-points its memories when the arena grows (a bigger set ran in
 * between), and results do not change. */
static void test_arena_rebind(void) {
    layer_env env;
    ccdl_error err = {0};
    CHECK(layer_env_init(&env, &err) == 0);
    layer_arena arena = {0};
    layer_set small, big;
    relu_layer r1, r2;
    dnnl_memory_t m1, m2;
    dnnl_memory_desc_t md1 = md4(1, 3, 2, 2, 0), md2 = md4(64, 16, 16, 16, 0);
    layer_set_init(&small, &env, 1, 1);
    layer_set_init(&big, &env, 64, 1);
    CHECK(relu_layer_init(&r1, &small, &md1, "r1", &err) == 0);
    CHECK(layer_set_memory_new(&small, &m1, &md1, "m1", &err) == 0);
    CHECK(relu_layer_init(&r2, &big, &md2, "r2", &err) == 0);
    CHECK(layer_set_memory_new(&big, &m2, &md2, "m2", &err) == 0);
    CHECK(layer_set_finish(&small, &err) == 0 && layer_set_finish(&big, &err) == 0);
    layer_set_bind(&small, &arena);
    float *p1 = layer_data(m1);
    CHECK(p1 != NULL && (char *)p1 >= arena.buf && (char *)p1 < arena.buf + arena.bytes);
    layer_set_bind(&big, &arena);
    CHECK(arena.bytes >= big.bytes);
    layer_set_bind(&small, &arena);
    float *p1b = layer_data(m1);
    CHECK((char *)p1b >= arena.buf && (char *)p1b < arena.buf + arena.bytes);
    for (int i = 0; i < 12; i++) p1b[i] = (float)(i - 6);
    relu_layer_forward(&small, &r1, m1);
    layer_wait(&small);
    CHECK(p1b[0] == 0.0f && p1b[11] == 5.0f);
    layer_set_destroy(&small);
    layer_set_destroy(&big);
    layer_arena_free(&arena);
    layer_env_free(&env);
}

// ---------------------------------------------------------------------------- resnet20 tests

/* The naive ResNet-20 below is written from docs/model.md, not from model.c: parameters in
 * the order stem (conv (w, C, 3, 3), BN scale (w), BN shift (w)), then per block conv1, BN1,
 * conv2, BN2, and when the shape changes the shortcut 1x1 conv + BN, then fc weights
 * (classes, 4w) and bias (classes); state: per BN its running mean then running variance,
 * in the same order. */

typedef struct {
    int width, c, h, w, classes;
} rn_shape;

typedef struct {
    const rn_shape *s;
    const double *p; /* parameters */
    size_t off;      /* next parameter */
    double *state;   /* running statistics (NULL: training without updating them) */
    size_t soff;
    int training, n;
} rn_walk;

/* conv (no bias) + BN (+ ReLU) on x (n, c, h, w); returns a new (n, co, oh, ow) array. */
static double *rn_unit(rn_walk *r, const double *x, int c, int h, int w, int co, int k, int stride,
                       int relu, int *oh, int *ow) {
    const int n = r->n, pad = k / 2;
    *oh = (h + 2 * pad - k) / stride + 1, *ow = (w + 2 * pad - k) / stride + 1;
    oracle o = {.kind = OR_CONV,
                .n = n,
                .c = c,
                .h = h,
                .w = w,
                .co = co,
                .k = k,
                .stride = stride,
                .pad = pad,
                .oh = *oh,
                .ow = *ow};
    o.x = (double *)(uintptr_t)x;
    o.wt = (double *)(uintptr_t)(r->p + r->off);
    r->off += (size_t)co * c * k * k;
    const size_t ny = (size_t)n * co * *oh * *ow;
    o.out = xmalloc(ny * sizeof(double));
    oracle_forward(&o);
    const double *scale = r->p + r->off, *shift = r->p + r->off + co;
    r->off += 2 * (size_t)co;
    double *y = xmalloc(ny * sizeof(double));
    const int hw = *oh * *ow;
    for (int q = 0; q < co; q++) {
        double mean = 0, var = 0;
        const double m = (double)n * hw;
        for (int i = 0; i < n; i++)
            for (int t = 0; t < hw; t++) mean += o.out[(i * co + q) * hw + t];
        mean /= m;
        for (int i = 0; i < n; i++)
            for (int t = 0; t < hw; t++) {
                double d = o.out[(i * co + q) * hw + t] - mean;
                var += d * d;
            }
        double use_mean = mean, use_var = var / m;
        if (!r->training) {
            use_mean = r->state[r->soff + q];
            use_var = r->state[r->soff + co + q];
        } else if (r->state) {
            r->state[r->soff + q] = 0.9 * r->state[r->soff + q] + 0.1 * mean;
            r->state[r->soff + co + q] =
                0.9 * r->state[r->soff + co + q] + 0.1 * (m > 1 ? var / (m - 1) : 0);
        }
        for (int i = 0; i < n; i++)
            for (int t = 0; t < hw; t++) {
                size_t at = (size_t)(i * co + q) * hw + t;
                double v =
                    (o.out[at] - use_mean) / sqrt(use_var + BN_EPSILON) * scale[q] + shift[q];
                y[at] = relu && v < 0 ? 0 : v;
            }
    }
    r->soff += 2 * (size_t)co;
    free(o.out);
    return y;
}

/* Mean loss of the naive ResNet-20; per-sample losses and predictions if asked. */
static double rn_forward(const rn_shape *s, const double *p, double *state, int training,
                         const float *x, const int32_t *y, int n, double *sample_loss, int *pred,
                         size_t *params_used) {
    rn_walk r = {.s = s, .p = p, .state = state, .training = training, .n = n};
    size_t nx = (size_t)n * s->c * s->h * s->w;
    double *in = xmalloc(nx * sizeof(double));
    for (size_t i = 0; i < nx; i++) in[i] = x[i];
    int h, w, c = s->width;
    double *a = rn_unit(&r, in, s->c, s->h, s->w, c, 3, 1, 1, &h, &w);
    free(in);
    for (int st = 0; st < 3; st++)
        for (int b = 0; b < 3; b++) {
            const int co = s->width << st, stride = st > 0 && b == 0 ? 2 : 1;
            int h1, w1, h2, w2;
            double *u1 = rn_unit(&r, a, c, h, w, co, 3, stride, 1, &h1, &w1);
            double *u2 = rn_unit(&r, u1, co, h1, w1, co, 3, 1, 0, &h2, &w2);
            double *sc = a;
            if (stride != 1 || c != co) sc = rn_unit(&r, a, c, h, w, co, 1, stride, 0, &h2, &w2);
            for (size_t i = 0; i < (size_t)n * co * h1 * w1; i++) {
                double v = u2[i] + sc[i];
                u2[i] = v < 0 ? 0 : v;
            }
            if (sc != a) free(sc);
            free(a);
            free(u1);
            a = u2, c = co, h = h1, w = w1;
        }
    double total = 0;
    double *logits = xmalloc((size_t)s->classes * sizeof(double));
    const double *fw = p + r.off, *fb = p + r.off + (size_t)s->classes * c;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < s->classes; k++) logits[k] = fb[k];
        for (int q = 0; q < c; q++) {
            double pooled = 0;
            for (int t = 0; t < h * w; t++) pooled += a[((size_t)i * c + q) * h * w + t];
            pooled /= h * w;
            for (int k = 0; k < s->classes; k++) logits[k] += fw[(size_t)k * c + q] * pooled;
        }
        int arg = 0;
        for (int k = 1; k < s->classes; k++)
            if (logits[k] > logits[arg]) arg = k;
        double sum = 0;
        for (int k = 0; k < s->classes; k++) sum += exp(logits[k] - logits[arg]);
        double loss = logits[arg] + log(sum) - logits[y[i]];
        if (sample_loss) sample_loss[i] = loss;
        if (pred) pred[i] = arg;
        total += loss;
    }
    if (params_used) *params_used = r.off + (size_t)s->classes * (c + 1);
    free(logits);
    free(a);
    return total / n;
}

static model_config rn_config(int width, int c, int h, int w, int classes) {
    model_config cfg = {.kind = "resnet20",
                        .width = width,
                        .in_channels = c,
                        .in_height = h,
                        .in_width = w,
                        .classes = classes};
    return cfg;
}

static model *rn_create(int width, int c, int h, int w, int classes, int max_batch) {
    model_config cfg = rn_config(width, c, h, w, classes);
    ccdl_error err = {0};
    model *m = model_create(&cfg, max_batch, &err);
    CHECK_MSG(m != NULL, "model_create resnet20: %s", err.text);
    return m;
}

/* Initialised parameters plus noise everywhere (init's BN 1 / 0 would hide a swapped scale
 * and shift), and running statistics away from 0 / 1. */
static void rn_random(const model *m, uint64_t seed, float **params, float **state) {
    size_t n = model_param_count(m), ns = model_state_count(m);
    *params = xalloc_floats(n);
    *state = xalloc_floats(ns);
    model_init_params(m, *params, seed);
    model_init_state(m, *state);
    rng_t r;
    rng_seed(&r, seed, RNG_TEST, 7, 0);
    for (size_t k = 0; k < n; k++) (*params)[k] += (float)(0.1 * rng_normal(&r));
    for (size_t k = 0; k < ns; k++) (*state)[k] += (float)(0.2 * rng_uniform(&r));
}

/* 8. The paper's ResNet-20 (width 16, 3x32x32, 10 classes): exact sizes, by hand.
 *   parameters: stem 3*16*9 + 2*16 = 464; stage 1: 6 convs 16*16*9 + 6 BN * 32 = 14016;
 *     stage 2: 16*32*9 + 5*32*32*9 + shortcut 16*32 + 7 BN * 64 = 51648;
 *     stage 3: 32*64*9 + 5*64*64*9 + shortcut 32*64 + 7 BN * 128 = 205696; fc 64*10 + 10 = 650
 *     -> 272474 (0.27 M; option A shortcuts would give 269722).
 *   state: 2 * (16 + 6*16 + 7*32 + 7*64) = 1568.
 *   multiply-adds: stem 32*32*16*27 = 442368; stage 1: 6 * 32*32*16*16*9 = 14155776;
 *     stage 2: 16*16*32*16*9 + 5 * 16*16*32*32*9 + 16*16*32*16 = 13107200;
 *     stage 3: 8*8*64*32*9 + 5 * 8*8*64*64*9 + 8*8*64*32 = 13107200; fc 640
 *     -> 40813184, so 81626368 forward FLOPs per sample. */
static void test_resnet_sizes(void) {
    model *m = rn_create(16, 3, 32, 32, 10, 2);
    if (!m) return;
    CHECK(model_param_count(m) == 272474);
    CHECK(model_state_count(m) == 1568);
    CHECK_CLOSE(model_flops_per_sample(m), 81626368.0, 0, 0);
    size_t n = model_param_count(m), zeros = 0;
    float *mask = xalloc_floats(n);
    model_weight_decay_mask(m, 1, mask);
    for (size_t k = 0; k < n; k++) zeros += mask[k] == 0.0f;
    CHECK_MSG(zeros == 1568, "%zu parameters exempt from decay, expected 1568 (BN scale+shift)",
              zeros);
    /* the stem's BN follows its 432 conv weights; fc weights and bias decay */
    CHECK(mask[0] == 1.0f && mask[431] == 1.0f && mask[432] == 0.0f && mask[463] == 0.0f &&
          mask[464] == 1.0f && mask[n - 1] == 1.0f && mask[n - 650] == 1.0f &&
          mask[n - 651] == 0.0f);
    model_weight_decay_mask(m, 0, mask);
    zeros = 0;
    for (size_t k = 0; k < n; k++) zeros += mask[k] == 0.0f;
    CHECK(zeros == 0);
    free(mask);
    model_destroy(&m);

    /* width 0 means 16 */
    m = rn_create(0, 3, 32, 32, 10, 1);
    if (m) CHECK(model_param_count(m) == 272474);
    model_destroy(&m);

    /* the docs' layout walk (the naive model) uses exactly the model's parameter count, also
     * for other widths, input channels and classes */
    const rn_shape shapes[2] = {{8, 1, 8, 8, 7}, {64, 3, 8, 8, 1000}};
    for (int i = 0; i < 2; i++) {
        m = rn_create(shapes[i].width, shapes[i].c, shapes[i].h, shapes[i].w, shapes[i].classes, 1);
        if (!m) continue;
        size_t np = model_param_count(m), used = 0;
        double *p = xcalloc(np + 1, sizeof *p);
        float x[3 * 64] = {0};
        int32_t y[1] = {0};
        rn_forward(&shapes[i], p, NULL, 1, x, y, 1, NULL, NULL, &used);
        CHECK_MSG(used == np, "width %d: naive walk uses %zu parameters, model has %zu",
                  shapes[i].width, used, np);
        free(p);
        model_destroy(&m);
    }
}

/* 9. Forward against the naive ResNet: the training loss, the running statistics it
 * leaves, then the inference loss and predictions with those statistics. Width 4 pads the
 * blocked layouts (4 and 8 channels in 16-channel blocks); width 16 is the paper's.
 * Tolerance 1e-4 relative on losses and statistics: float through 20 layers with batch
 * norm, against double. */
static void resnet_forward_case(int width, int batch, uint64_t seed) {
    model *m = rn_create(width, 3, 8, 8, 5, batch);
    if (!m) return;
    const rn_shape shape = {width, 3, 8, 8, 5};
    size_t n = model_param_count(m), ns = model_state_count(m);
    float *params, *state;
    rn_random(m, seed, &params, &state);
    float *x = random_floats((size_t)batch * 3 * 64, 1, seed + 1), *grads = xalloc_floats(n);
    int32_t y[8];
    for (int i = 0; i < batch; i++) y[i] = (int32_t)((seed + 3 * i) % 5);
    double *pd = to_double(params, n), *sd = to_double(state, ns);

    float loss = model_forward_backward(m, params, state, grads, x, y, batch);
    double ref = rn_forward(&shape, pd, sd, 1, x, y, batch, NULL, NULL, NULL);
    char label[64];
    snprintf(label, sizeof label, "resnet w%d running statistics", width);
    CHECK_CLOSE(loss, ref, 1e-5, 1e-4);
    float *sf = xalloc_floats(ns);
    for (size_t k = 0; k < ns; k++) sf[k] = (float)sd[k];
    check_tensor(state, sf, ns, 1e-5, 1e-4, label);

    double sample_loss[8], ref_sum = 0, loss_sum = 0;
    int pred[8];
    int64_t ref_correct = 0, correct = 0;
    rn_forward(&shape, pd, sd, 0, x, y, batch, sample_loss, pred, NULL);
    for (int i = 0; i < batch; i++) ref_sum += sample_loss[i], ref_correct += pred[i] == y[i];
    model_evaluate(m, params, state, x, y, batch, &loss_sum, &correct);
    CHECK_CLOSE(loss_sum, ref_sum, 1e-5, 1e-4);
    CHECK(correct == ref_correct);
    /* relabel so that both a hit and a miss are counted */
    y[0] = pred[0];
    y[1] = (pred[1] + 1) % 5;
    loss_sum = 0, correct = 0;
    model_evaluate(m, params, state, x, y, batch, &loss_sum, &correct);
    rn_forward(&shape, pd, sd, 0, x, y, batch, sample_loss, pred, NULL);
    ref_correct = 0;
    for (int i = 0; i < batch; i++) ref_correct += pred[i] == y[i];
    CHECK(correct == ref_correct && correct >= 1 && correct < batch);
    free(params), free(state), free(x), free(grads), free(pd), free(sd), free(sf);
    model_destroy(&m);
}

static void test_resnet_forward(void) {
    resnet_forward_case(4, 3, 61);
    resnet_forward_case(16, 2, 62);
}

/* 10. Gradients against central differences of the naive ResNet's mean training loss
 * (batch statistics), for every batch-norm parameter and a spread of the others (every
 * 61st, which lands in every conv and the fc). h = 1e-6 in double: the naive net is smooth
 * except at ReLU kinks, and a step this small makes crossing one unlikely; rounding error
 * ~1e-16/h = 1e-10. Tolerance |g - fd| <= 1e-4 + 2e-3 |fd|: the float gradient through 20
 * layers of batch norm carries ~1e-5 relative error; a missing term or wrong slot is O(|g|). */
static void test_resnet_backward(void) {
    const int batch = 3, width = 4;
    model *m = rn_create(width, 3, 8, 8, 5, batch);
    if (!m) return;
    const rn_shape shape = {width, 3, 8, 8, 5};
    size_t n = model_param_count(m);
    float *params, *state;
    rn_random(m, 71, &params, &state);
    float *x = random_floats((size_t)batch * 3 * 64, 1, 72), *grads = xalloc_floats(n);
    int32_t y[3] = {1, 4, 0};
    model_forward_backward(m, params, state, grads, x, y, batch);
    float *mask = xalloc_floats(n);
    model_weight_decay_mask(m, 1, mask);
    double *pd = to_double(params, n);
    const double h = 1e-6;
    size_t checked = 0, bad = 0, worst = 0;
    double worst_excess = -1;
    for (size_t k = 0; k < n; k++) {
        if (mask[k] != 0.0f && k % 61 != 0 && k != n - 1) continue;
        double keep = pd[k];
        pd[k] = keep + h;
        double lp = rn_forward(&shape, pd, NULL, 1, x, y, batch, NULL, NULL, NULL);
        pd[k] = keep - h;
        double lm = rn_forward(&shape, pd, NULL, 1, x, y, batch, NULL, NULL, NULL);
        pd[k] = keep;
        double fd = (lp - lm) / (2 * h), excess = fabs(grads[k] - fd) - (1e-4 + 2e-3 * fabs(fd));
        checked++;
        if (excess > 0) bad++;
        if (excess > worst_excess) worst_excess = excess, worst = k;
    }
    CHECK_MSG(bad == 0, "%zu of %zu gradient entries off; worst [%zu] by %.3g", bad, checked, worst,
              worst_excess);
    CHECK(checked > 300);
    free(params), free(state), free(x), free(grads), free(mask), free(pd);
    model_destroy(&m);
}

/* 11. Initialisation: a pure function of the seed; conv weights N(0, 2 / (C_out k k)) (the
 * 64x64x3x3 convs of stage 3 have 36864 samples: the sample std is within ~0.4% of the
 * target at 1 sigma, 3% is loose); BN scale 1 and shift 0; fc inside +-1/sqrt(64) and not
 * all zero; state mean 0, variance 1. */
static void test_resnet_init(void) {
    model *m = rn_create(16, 3, 32, 32, 10, 1);
    if (!m) return;
    size_t n = model_param_count(m), ns = model_state_count(m);
    float *a = xalloc_floats(n), *b = xalloc_floats(n), *c = xalloc_floats(n);
    model_init_params(m, a, 5);
    model_init_params(m, b, 5);
    model_init_params(m, c, 6);
    CHECK(memcmp(a, b, n * sizeof *a) == 0);
    CHECK(memcmp(a, c, n * sizeof *a) != 0);
    /* the last block's conv2 sits just before the fc: (64, 64, 3, 3) then BN (128) */
    const size_t fc_w = n - 650, conv_w = fc_w - 128 - 36864;
    double ss = 0;
    for (size_t k = 0; k < 36864; k++) ss += (double)a[conv_w + k] * a[conv_w + k];
    CHECK_CLOSE(sqrt(ss / 36864), sqrt(2.0 / (64 * 9)), 0, 0.03);
    int bn_ok = 1;
    for (int k = 0; k < 64; k++) bn_ok &= a[fc_w - 128 + k] == 1.0f && a[fc_w - 64 + k] == 0.0f;
    CHECK(bn_ok);
    int fc_ok = 1, fc_nonzero = 0;
    for (size_t k = fc_w; k < n; k++) {
        fc_ok &= fabsf(a[k]) <= 0.125f;
        fc_nonzero += a[k] != 0.0f;
    }
    CHECK(fc_ok && fc_nonzero > 600);
    float *s = xalloc_floats(ns);
    model_init_state(m, s);
    CHECK(s[0] == 0.0f && s[16] == 1.0f && s[15] == 0.0f && s[31] == 1.0f && s[ns - 1] == 1.0f &&
          s[ns - 65] == 0.0f);
    free(a), free(b), free(c), free(s);
    model_destroy(&m);
}

/* 12. Bitwise determinism (also after another worker with its own buffers ran through the
 * same model), batch sizes below max_batch, and a change of thread count. */
static void test_resnet_determinism(void) {
    const int B = 4;
    model *m = rn_create(16, 3, 8, 8, 5, B);
    if (!m) return;
    const rn_shape shape = {16, 3, 8, 8, 5};
    size_t n = model_param_count(m), ns = model_state_count(m);
    float *p1, *s1, *p2, *s2;
    rn_random(m, 81, &p1, &s1);
    rn_random(m, 82, &p2, &s2);
    float *s1b = xalloc_floats(ns);
    memcpy(s1b, s1, ns * sizeof *s1);
    float *g1 = xalloc_floats(n), *g2 = xalloc_floats(n), *go = xalloc_floats(n);
    float *x = random_floats((size_t)B * 3 * 64, 1, 83);
    int32_t y[4] = {0, 1, 2, 3};
    float l1 = model_forward_backward(m, p1, s1, g1, x, y, B);
    float lo = model_forward_backward(m, p2, s2, go, x, y, B);
    double ls = 0;
    int64_t ok = 0;
    model_evaluate(m, p2, s2, x, y, B, &ls, &ok); /* the inference set in between */
    float l2 = model_forward_backward(m, p1, s1b, g2, x, y, B);
    CHECK(memcmp(&l1, &l2, sizeof l1) == 0);
    CHECK(memcmp(g1, g2, n * sizeof *g1) == 0);
    CHECK(memcmp(s1, s1b, ns * sizeof *s1) == 0);
    CHECK(lo != l1);

    /* smaller batches and a thread-count change, each against the naive model */
    double *pd = to_double(p1, n);
    const int batches[3] = {1, 3, 4};
    int threads = omp_get_max_threads();
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(threads + t);
        for (int i = t; i < 3; i += 1 + t) { /* one batch size is enough for the thread change */
            float loss = model_forward_backward(m, p1, s1, g1, x, y, batches[i]);
            double ref = rn_forward(&shape, pd, NULL, 1, x, y, batches[i], NULL, NULL, NULL);
            CHECK_CLOSE(loss, ref, 1e-5, 1e-4);
        }
    }
    omp_set_num_threads(threads);
    free(p1), free(s1), free(p2), free(s2), free(s1b), free(g1), free(g2), free(go), free(x);
    free(pd);
    model_destroy(&m);
}

/* 13. Training: 30 momentum-SGD steps on one fixed batch of 16 random 8x8 images drive
 * the training-mode loss down by 10x (the net can memorise 16 samples). */
static void test_resnet_training(void) {
    const int B = 16;
    model *m = rn_create(16, 3, 8, 8, 4, B);
    if (!m) return;
    size_t n = model_param_count(m), ns = model_state_count(m);
    float *p = xalloc_floats(n), *s = xalloc_floats(ns), *g = xalloc_floats(n);
    float *mom = xalloc_floats(n);
    model_init_params(m, p, 91);
    model_init_state(m, s);
    float *x = random_floats((size_t)B * 3 * 64, 1, 92);
    int32_t y[16];
    for (int i = 0; i < B; i++) y[i] = i % 4;
    float first = 0, last = 0;
    for (int step = 0; step < 30; step++) {
        last = model_forward_backward(m, p, s, g, x, y, B);
        if (step == 0) first = last;
        for (size_t k = 0; k < n; k++) {
            mom[k] = 0.9f * mom[k] + g[k];
            p[k] -= 0.05f * mom[k];
        }
    }
    fprintf(stderr, "resnet training: loss %.4f -> %.4f\n", first, last);
    CHECK_MSG(last < first / 10, "loss %.4f -> %.4f", first, last);
    free(p), free(s), free(g), free(mom), free(x);
    model_destroy(&m);
}

static void test_resnet_bad_configs(void) {
    model_config cfg = rn_config(-1, 3, 32, 32, 10);
    expect_bad(&cfg, 4, "model.width");
    cfg = rn_config(16, 3, 32, 32, 0);
    expect_bad(&cfg, 4, "model.classes");
    cfg = rn_config(16, 3, 32, 32, 10);
    strcpy(cfg.kind, "resnet18");
    ccdl_error err = {0};
    model *m = model_create(&cfg, 1, &err);
    CHECK(m == NULL && strstr(err.text, "resnet20") != NULL);
    /* prepare builds a set now; a batch beyond max_batch is an error, not a crash */
    cfg = rn_config(4, 3, 8, 8, 10);
    m = model_create(&cfg, 2, &err);
    CHECK(m != NULL);
    if (!m) return;
    CHECK(model_prepare(m, 2, 1, &err) == 0);
    CHECK(model_prepare(m, 3, 1, &err) != 0 && strstr(err.text, "max_batch") != NULL);
    model_destroy(&m);
}

/* Run one test and say how long it took (the suite has a time budget). */
#define RUN(test)                                                                                  \
    do {                                                                                           \
        double t0_ = wall_seconds();                                                               \
        test();                                                                                    \
        fprintf(stderr, "%-28s %6.2f s\n", #test, wall_seconds() - t0_);                           \
    } while (0)

/* 14. No reference kernels: every training and inference primitive of ResNet-20 runs a
 * jit / gemm implementation at every width 1-64 with 1 or 3 input channels (oneDNN's
 * reference convolution is 10-20x slower; under "any" it was chosen at widths 4, 8, 12).
 * The oracle is oneDNN's own implementation name ("ref:any" and the like start "ref"). */
typedef struct {
    int refs;
    char first[160];
} ref_count;

static void count_reference(void *ctx, const char *what, const char *impl) {
    ref_count *c = ctx;
    if (strncmp(impl, "ref", 3) != 0) return;
    if (c->refs++ == 0) snprintf(c->first, sizeof c->first, "%s (%s)", what, impl);
}

static void test_resnet_kernels(void) {
    const int batches[2] = {32, 7}; /* a training batch and a short last evaluation batch */
    int configs = 0;
    for (int c = 1; c <= 3; c += 2)
        for (int width = 1; width <= 64; width++) {
            model *m = rn_create(width, c, 32, 32, 10, 32);
            if (!m) continue;
            for (int b = 0; b < 2; b++)
                for (int training = 0; training <= 1; training++) {
                    ref_count rc = {0};
                    ccdl_error err = {0};
                    CHECK_MSG(model_kernels(m, batches[b], training, count_reference, &rc, &err) ==
                                  0,
                              "%s", err.text);
                    CHECK_MSG(
                        rc.refs == 0,
                        "width %d, %d channel(s), batch %d, %s: %d reference kernel(s), first %s",
                        width, c, batches[b], training ? "training" : "inference", rc.refs,
                        rc.first);
                }
            configs++;
            model_destroy(&m);
        }
    CHECK(configs == 128);
}

/* 15. The tensor list tiles the flat buffer in order, without gaps, and names the tensors
 * docs/model.md lists: 21 conv + BN units (3 tensors each) and the fc (2) for ResNet-20; two
 * per layer for the mlp. Shapes multiply out to the counts. */
static void test_tensor_list(void) {
    model *m = rn_create(16, 3, 32, 32, 10, 2);
    if (!m) return;
    const int n = model_tensor_count(m);
    CHECK_MSG(n == 21 * 3 + 2, "%d tensors", n);
    size_t next = 0;
    int norm = 0;
    for (int i = 0; i < n; i++) {
        const model_tensor *t = model_tensor_at(m, i);
        size_t count = 1;
        for (int d = 0; d < t->ndims; d++) count *= (size_t)t->shape[d];
        CHECK_MSG(t->offset == next && t->count == count, "%s at %zu (expected %zu), %zu floats",
                  t->name, t->offset, next, t->count);
        next = t->offset + t->count;
        norm += t->role == TENSOR_NORM_SCALE || t->role == TENSOR_NORM_SHIFT;
    }
    CHECK(next == model_param_count(m));
    CHECK(norm == 42);
    CHECK(strcmp(model_tensor_at(m, 0)->name, "stem.conv.weight") == 0);
    CHECK(model_tensor_at(m, 0)->shape[0] == 16 && model_tensor_at(m, 0)->shape[1] == 3);
    CHECK(strcmp(model_tensor_at(m, n - 1)->name, "fc.bias") == 0);
    CHECK(model_tensor_at(m, n) == NULL && model_tensor_at(m, -1) == NULL);
    model_destroy(&m);

    model_config cfg = small_config(2);
    ccdl_error err = {0};
    m = model_create(&cfg, 4, &err);
    CHECK_MSG(m != NULL, "%s", err.text);
    if (!m) return;
    CHECK(model_tensor_count(m) == 6);
    CHECK(strcmp(model_tensor_at(m, 5)->name, "fc2.bias") == 0);
    CHECK(model_tensor_at(m, 5)->offset + model_tensor_at(m, 5)->count == model_param_count(m));
    model_destroy(&m);
}

int main(void) {
    RUN(test_forward_matches_naive);
    RUN(test_ties);
    RUN(test_backward_finite_differences);
    RUN(test_bad_configs);
    RUN(test_batch_sizes);
    RUN(test_determinism);
    RUN(test_training_reduces_loss);

    RUN(test_conv_layer);
    RUN(test_bn_layer);
    RUN(test_eltwise_layers);
    RUN(test_pool_layer);
    RUN(test_ip_layer);
    RUN(test_softmax_xent);
    RUN(test_arena_rebind);

    RUN(test_resnet_sizes);
    RUN(test_resnet_forward);
    RUN(test_resnet_backward);
    RUN(test_resnet_init);
    RUN(test_resnet_determinism);
    RUN(test_resnet_training);
    RUN(test_resnet_bad_configs);
    RUN(test_resnet_kernels);
    RUN(test_tensor_list);
    return check_exit();
}
