/* bench_model.c: training-core figures for `make bench` (printed, never asserted).
 *
 * - memory: one process hosting 32 ResNet-20 workers (batch 32; each with its own
 *   parameters, gradients, momentum and batch-norm state; one shared model object made with
 *   train.c's max_batch of 500) after two steps over all workers and one evaluation batch of
 *   500: VmRSS and VmHWM from /proc/self/status. Measured first, in a fresh process.
 * - throughput: ResNet-20 (width 16, 10 classes) training steps (forward + backward) at
 *   batch 32 on 3x32x32 inputs, with 1 and 2 OpenMP threads: images/s and GFLOP/s, counting
 *   2 x multiply-adds of the convolutions and the fc, forward, times 3 for training.
 * - the ceiling: a 2048^3 dnnl_sgemm's GFLOP/s with 1 and 2 threads.
 * Training windows of `steps` steps (default 5) alternate with sgemm calls, 8 rounds, best
 * of each: on a shared machine that is the rate while nobody else ran.
 * - cost per image, what sweeps/paper/README.md derives its core-hours from: milliseconds per
 *   training image per core (forward + backward + Nesterov SGD update with weight decay, at
 *   the paper's local batch, 1 thread) and per evaluated image (model_evaluate at the
 *   evaluation batch of 500 that src/task/images.c uses), for ResNet-20 width 16 on
 *   32x32x3 / 10 classes at batch 32 (CIFAR-10) and width 48 on 32x32x3 / 1000 classes at
 *   batch 64 (ImageNet-32, sweeps/paper/base/imagenet32-resnet20.json). Best of 8 windows.
 * Usage: bench_model [steps] | bench_model cost (the cost figures only, ~1 min). The load
 * average at the start is printed. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "bench_common.h"
#include "model.h"
#include "optim.h"
#include "rng.h"

enum { BATCH = 32, EVAL = 500, WORKERS = 32 };

static model *resnet_wc(int width, int classes, int max_batch) {
    model_config cfg = {.kind = "resnet20",
                        .width = width,
                        .in_channels = 3,
                        .in_height = 32,
                        .in_width = 32,
                        .classes = classes};
    ccdl_error err = {0};
    model *m = model_create(&cfg, max_batch, &err);
    if (!m) ccdl_die("model_create: %s", err.text);
    return m;
}

static model *resnet(int max_batch) {
    return resnet_wc(16, 10, max_batch);
}

static void random_batch_c(float *x, int32_t *y, int b, int classes, uint64_t seed) {
    rng_t r;
    rng_seed(&r, seed, RNG_TEST, 0, 0);
    for (size_t i = 0; i < (size_t)b * 3072; i++) x[i] = (float)rng_normal(&r);
    for (int i = 0; i < b; i++) y[i] = (int32_t)rng_below(&r, (uint64_t)classes);
}

static void random_batch(float *x, int32_t *y, int b, uint64_t seed) {
    random_batch_c(x, y, b, 10, seed);
}

static void bench_memory(void) {
    omp_set_num_threads(1);
    model *m = resnet(EVAL);
    const size_t d = model_param_count(m), ns = model_state_count(m);
    float *params[WORKERS], *grads[WORKERS], *mom[WORKERS], *state[WORKERS];
    for (int w = 0; w < WORKERS; w++) {
        params[w] = xalloc_floats(d), grads[w] = xalloc_floats(d);
        mom[w] = xalloc_floats(d), state[w] = xalloc_floats(ns);
        model_init_params(m, params[w], 1);
        model_init_state(m, state[w]);
    }
    float *mask = xalloc_floats(d), *x = xalloc_floats((size_t)EVAL * 3072);
    int32_t y[EVAL];
    model_weight_decay_mask(m, 1, mask);
    const sgd_config opt = {0.9f, 1, 1e-4f};
    double t0 = wall_seconds();
    for (int step = 0; step < 2; step++)
        for (int w = 0; w < WORKERS; w++) {
            random_batch(x, y, BATCH, (uint64_t)(step * WORKERS + w));
            model_forward_backward(m, params[w], state[w], grads[w], x, y, BATCH);
            sgd_step(&opt, 0.1f, params[w], grads[w], mom[w], d, mask);
        }
    double steps_s = wall_seconds() - t0;
    random_batch(x, y, EVAL, 99);
    double loss = 0;
    int64_t correct = 0;
    model_evaluate(m, params[0], state[0], x, y, EVAL, &loss, &correct);
    double rss, hwm;
    memory_status(&rss, &hwm);
    const double worker_mib = (double)WORKERS * (3.0 * d + ns) * sizeof(float) / 1048576.0;
    printf("memory: %d ResNet-20 workers (batch %d, eval batch %d, 1 thread), after 2 steps each "
           "(%.1f s) and one evaluation:\n",
           WORKERS, BATCH, EVAL, steps_s);
    printf("  VmRSS %.0f MiB, VmHWM %.0f MiB (limit 1024); of which worker buffers (params, "
           "grads, momentum, state) %.0f MiB\n",
           rss, hwm, worker_mib);
    for (int w = 0; w < WORKERS; w++) free(params[w]), free(grads[w]), free(mom[w]), free(state[w]);
    free(mask), free(x);
    model_destroy(&m);
}

/* Training images/s and the sgemm GFLOP/s at `threads`, timed in alternation (8 rounds of
 * one training window and one sgemm call, best of each) so both see the same machine. */
static void bench_threads(int threads, int steps, const gemm_bufs *g, double *ips,
                          double *gemm_gflops) {
    omp_set_num_threads(threads);
    model *m = resnet(BATCH);
    const size_t d = model_param_count(m), ns = model_state_count(m);
    float *p = xalloc_floats(d), *gr = xalloc_floats(d), *s = xalloc_floats(ns);
    float *x = xalloc_floats((size_t)BATCH * 3072);
    int32_t y[BATCH];
    model_init_params(m, p, 1);
    model_init_state(m, s);
    random_batch(x, y, BATCH, 1);
    for (int i = 0; i < 3; i++) model_forward_backward(m, p, s, gr, x, y, BATCH); /* warm-up */
    sgemm_once(g);
    double best = 1e30, best_gemm = 1e30;
    for (int rep = 0; rep < 8; rep++) {
        double t0 = wall_seconds();
        for (int i = 0; i < steps; i++) model_forward_backward(m, p, s, gr, x, y, BATCH);
        double t = (wall_seconds() - t0) / steps, tg = sgemm_once(g);
        if (t < best) best = t;
        if (tg < best_gemm) best_gemm = tg;
    }
    free(p), free(gr), free(s), free(x);
    model_destroy(&m);
    *ips = BATCH / best;
    *gemm_gflops = sgemm_gflops(best_gemm);
}

/* Milliseconds per training image per core (forward + backward + SGD update at `batch`, 1
 * thread) and per evaluated image (batch EVAL): the best of 8 windows of `steps` steps (of 3
 * evaluations), so a burst of other work on a shared machine does not count. */
static void bench_cost(int width, int classes, int batch, int steps, double *train_ms,
                       double *eval_ms, double *params) {
    omp_set_num_threads(1);
    model *m = resnet_wc(width, classes, batch > EVAL ? batch : EVAL);
    const size_t d = model_param_count(m), ns = model_state_count(m);
    float *p = xalloc_floats(d), *gr = xalloc_floats(d), *mom = xalloc_floats(d);
    float *s = xalloc_floats(ns), *mask = xalloc_floats(d);
    float *x = xalloc_floats((size_t)EVAL * 3072);
    int32_t y[EVAL];
    model_init_params(m, p, 1);
    model_init_state(m, s);
    model_weight_decay_mask(m, 1, mask);
    const sgd_config opt = {0.9f, 1, 1e-4f};
    random_batch_c(x, y, batch, classes, 1);
    for (int i = 0; i < 2; i++) { /* warm-up: primitives made, caches filled */
        model_forward_backward(m, p, s, gr, x, y, batch);
        sgd_step(&opt, 0.01f, p, gr, mom, d, mask);
    }
    double best = 1e30;
    for (int rep = 0; rep < 8; rep++) {
        double t0 = wall_seconds();
        for (int i = 0; i < steps; i++) {
            model_forward_backward(m, p, s, gr, x, y, batch);
            sgd_step(&opt, 0.01f, p, gr, mom, d, mask);
        }
        double t = (wall_seconds() - t0) / steps;
        if (t < best) best = t;
    }
    *train_ms = 1e3 * best / batch;
    random_batch_c(x, y, EVAL, classes, 2);
    double loss = 0, best_eval = 1e30;
    int64_t correct = 0;
    model_evaluate(m, p, s, x, y, EVAL, &loss, &correct); /* warm-up */
    for (int rep = 0; rep < 3; rep++) {
        double t0 = wall_seconds();
        model_evaluate(m, p, s, x, y, EVAL, &loss, &correct);
        double t = wall_seconds() - t0;
        if (t < best_eval) best_eval = t;
    }
    *eval_ms = 1e3 * best_eval / EVAL;
    *params = (double)d;
    free(p), free(gr), free(mom), free(s), free(mask), free(x);
    model_destroy(&m);
}

static void print_cost(void) {
    static const struct {
        const char *what;
        int width, classes, batch, steps;
    } cases[] = {{"CIFAR-10: ResNet-20 width 16, 32x32x3, 10 classes", 16, 10, 32, 4},
                 {"ImageNet-32: ResNet-20 width 48, 32x32x3, 1000 classes", 48, 1000, 64, 1}};
    printf("cost per image (1 thread; training = forward + backward + Nesterov SGD update at the "
           "paper's local batch; evaluation at batch %d):\n",
           EVAL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double train_ms, eval_ms, params;
        bench_cost(cases[i].width, cases[i].classes, cases[i].batch, cases[i].steps, &train_ms,
                   &eval_ms, &params);
        printf("  %s (%.0f parameters), batch %d: time per training image per core %.2f ms; "
               "per evaluated image %.2f ms\n",
               cases[i].what, params, cases[i].batch, train_ms, eval_ms);
    }
}

int main(int argc, char **argv) {
    const int cost_only = argc > 1 && strcmp(argv[1], "cost") == 0;
    const int steps = argc > 1 && !cost_only ? atoi(argv[1]) : 5; /* per timing window */
    double load[3] = {0};
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
        fclose(f);
    }
    printf("load average at start: %.2f (1 min); oneDNN %d.%d.%d\n", load[0], dnnl_version()->major,
           dnnl_version()->minor, dnnl_version()->patch);
    if (cost_only) {
        print_cost();
        return 0;
    }
    bench_memory();

    model *m = resnet(1);
    const double flops = model_flops_per_sample(m), params = (double)model_param_count(m);
    model_destroy(&m);
    printf("ResNet-20 (width 16, 10 classes): %.0f parameters, %.2f MFLOP forward per sample "
           "(2 x MACs of conv + fc), training counted as 3 x forward = %.1f MFLOP\n",
           params, flops / 1e6, 3 * flops / 1e6);
    gemm_bufs g;
    gemm_bufs_init(&g);
    for (int threads = 1; threads <= 2; threads++) {
        double ips, ceiling;
        bench_threads(threads, steps, &g, &ips, &ceiling);
        double gflops = ips * 3 * flops / 1e9;
        printf("  %d thread%s: training %.0f images/s at batch %d = %.1f GFLOP/s; "
               "dnnl_sgemm %d^3 %.1f GFLOP/s; ratio %.0f%%\n",
               threads, threads > 1 ? "s" : " ", ips, BATCH, gflops, SGEMM_N, ceiling,
               100 * gflops / ceiling);
    }
    gemm_bufs_free(&g);
    print_cost();
    return 0;
}
