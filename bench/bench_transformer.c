/* bench_transformer.c: transformer figures for `make bench` (printed, never asserted).
 *
 * The model is the spec's default transformer (d_model 256, 4 heads, d_ff 1024, 3 + 3
 * layers) with the Debian corpus's vocabularies (5,893 source and 7,853 target tokens,
 * docs/corpus.md), so the output projection costs what it costs in results/.
 * - memory: one process hosting 16 workers (parameters, gradients, Adam's m and v each,
 *   as train.c declares them) after one training step of each on a 64 x 16 token batch:
 *   VmRSS and VmHWM from /proc/self/status. Measured first, in a fresh process.
 * - throughput: training steps (forward + backward, dropout 0.1, label smoothing 0.1) on
 *   64 sentence pairs of 15 tokens + <eos> (1,024 target tokens) with 1 and 2 OpenMP
 *   threads: target tokens/s and GFLOP/s, counting model_flops_per_sample (forward FLOPs per
 *   target token at length 16) times 3 for training.
 * - the ceiling: a 2048^3 dnnl_sgemm's GFLOP/s at the same thread count, timed in
 *   alternation with the training windows (8 rounds, best of each) so both see the same
 *   machine.
 * - cost per token, what sweeps/paper/README.md derives the transformer grid's core-hours from
 *   (1 thread): milliseconds per training target token (forward + backward + Adam update) at
 *   the grid's local batch of 512 padded tokens (32 pairs of 15 tokens + <eos>), and per
 *   sentence pair of greedy decoding (the per-epoch BLEU of the validation and test sets) at
 *   the same batch with translation.c's max_len of source length + 10; an untrained model
 *   never emits <eos>, so decoding runs to max_len: an upper bound. Best of 5 windows.
 * Usage: bench_transformer [steps] | bench_transformer cost (the cost figures only). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "bench_common.h"
#include "model.h"
#include "optim.h"
#include "rng.h"

enum { B = 64, T = 16, WORKERS = 16, SRC_VOCAB = 5893, TGT_VOCAB = 7853 };

static model *transformer(void) {
    model_config cfg = {.kind = "transformer"};
    cfg.seq = (struct model_seq_config){.d_model = 256,
                                        .heads = 4,
                                        .d_ff = 1024,
                                        .enc_layers = 3,
                                        .dec_layers = 3,
                                        .dropout = 0.1,
                                        .label_smoothing = 0.1,
                                        .src_vocab = SRC_VOCAB,
                                        .tgt_vocab = TGT_VOCAB,
                                        .max_len = 64};
    ccdl_error err = {0};
    model *m = model_create(&cfg, 4096, &err);
    if (!m) ccdl_die("model_create: %s", err.text);
    return m;
}

/* Random sentences of T - 1 tokens (ids >= 4: no specials) then <eos>. */
typedef struct {
    int32_t src[B * T], tgt_in[B * T], tgt_out[B * T];
    model_tokens b;
} token_batch;

static void random_batch_n(token_batch *tb, int rows, uint64_t seed) {
    rng_t r;
    rng_seed(&r, seed, RNG_TEST, 0, 0);
    for (int i = 0; i < rows; i++) {
        tb->tgt_in[i * T] = 2; /* <bos> */
        for (int t = 0; t < T - 1; t++) {
            tb->src[i * T + t] = 4 + (int32_t)rng_below(&r, SRC_VOCAB - 4);
            tb->tgt_out[i * T + t] = 4 + (int32_t)rng_below(&r, TGT_VOCAB - 4);
            tb->tgt_in[i * T + t + 1] = tb->tgt_out[i * T + t];
        }
        tb->src[i * T + T - 1] = tb->tgt_out[i * T + T - 1] = 3; /* <eos> */
    }
    tb->b = (model_tokens){tb->src, tb->tgt_in, tb->tgt_out, rows, T, T, 0, 2, 3};
}

static void random_batch(token_batch *tb, uint64_t seed) {
    random_batch_n(tb, B, seed);
}

static void bench_memory(token_batch *tb) {
    omp_set_num_threads(1);
    model *m = transformer();
    const size_t d = model_param_count(m);
    float *buf[WORKERS][4]; /* params, grads, adam m, adam v */
    for (int w = 0; w < WORKERS; w++) {
        for (int k = 0; k < 4; k++) buf[w][k] = xalloc_floats(d); /* zeroed: touched */
        model_init_params(m, buf[w][0], 1);
        model_tokens_forward_backward(m, buf[w][0], buf[w][1], &tb->b, 1, 0, w);
    }
    double rss, hwm;
    memory_status(&rss, &hwm);
    const double worker_mib = 4.0 * (double)d * sizeof(float) / (1 << 20);
    printf("memory: %d transformer workers (%zu parameters; params, grads, Adam m and v: %.1f "
           "MiB per worker), after one step each at %d x %d tokens: VmRSS %.0f MiB, VmHWM %.0f "
           "MiB (worker state %.0f MiB, the rest model object, activations, libraries)\n",
           WORKERS, d, worker_mib, B, T, rss, hwm, WORKERS * worker_mib);
    for (int w = 0; w < WORKERS; w++)
        for (int k = 0; k < 4; k++) free(buf[w][k]);
    model_destroy(&m);
}

static void bench_threads(int threads, int steps, const gemm_bufs *g, token_batch *tb,
                          double *tokens_per_s, double *gemm_gflops) {
    omp_set_num_threads(threads);
    model *m = transformer();
    const size_t d = model_param_count(m);
    float *p = xalloc_floats(d), *gr = xalloc_floats(d);
    model_init_params(m, p, 1);
    model_token_loss l = {0};
    for (int i = 0; i < 2; i++) l = model_tokens_forward_backward(m, p, gr, &tb->b, 1, i, 0);
    sgemm_once(g);
    double best = 1e30, best_gemm = 1e30;
    for (int rep = 0; rep < 8; rep++) {
        double t0 = wall_seconds();
        for (int i = 0; i < steps; i++) model_tokens_forward_backward(m, p, gr, &tb->b, 1, i, 0);
        double t = (wall_seconds() - t0) / steps, tg = sgemm_once(g);
        if (t < best) best = t;
        if (tg < best_gemm) best_gemm = tg;
    }
    free(p), free(gr);
    model_destroy(&m);
    *tokens_per_s = (double)l.tokens / best;
    *gemm_gflops = sgemm_gflops(best_gemm);
}

enum { COST_ROWS = 32, DECODE_EXTRA = 10 }; /* 32 x 16 = 512 tokens; translation.c's extra */

/* ms per training target token (forward + backward + Adam step) and per decoded pair, 1 thread. */
static void bench_cost(double *train_ms, double *decode_ms) {
    omp_set_num_threads(1);
    static token_batch tb;
    random_batch_n(&tb, COST_ROWS, 3);
    model *m = transformer();
    const size_t d = model_param_count(m);
    float *p = xalloc_floats(d), *gr = xalloc_floats(d), *am = xalloc_floats(d),
          *av = xalloc_floats(d);
    model_init_params(m, p, 1);
    const adam_config opt = {0.9f, 0.98f, 1e-9f, 0.0f};
    model_token_loss l = {0};
    int64_t step = 0;
    for (int i = 0; i < 2; i++, step++) { /* warm-up: sets made */
        l = model_tokens_forward_backward(m, p, gr, &tb.b, 1, step, 0);
        adam_step(&opt, 1e-4f, step + 1, p, gr, am, av, NULL, d);
    }
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = wall_seconds();
        for (int i = 0; i < 3; i++, step++) {
            model_tokens_forward_backward(m, p, gr, &tb.b, 1, step, 0);
            adam_step(&opt, 1e-4f, step + 1, p, gr, am, av, NULL, d);
        }
        double t = (wall_seconds() - t0) / 3;
        if (t < best) best = t;
    }
    *train_ms = 1e3 * best / (double)l.tokens;
    const int max_len = T + DECODE_EXTRA;
    int32_t *out = xmalloc_array((size_t)COST_ROWS * max_len, sizeof(int32_t));
    model_tokens_greedy(m, p, &tb.b, max_len, out); /* warm-up */
    double best_dec = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = wall_seconds();
        model_tokens_greedy(m, p, &tb.b, max_len, out);
        double t = wall_seconds() - t0;
        if (t < best_dec) best_dec = t;
    }
    *decode_ms = 1e3 * best_dec / COST_ROWS;
    free(out), free(p), free(gr), free(am), free(av);
    model_destroy(&m);
}

static void print_cost(void) {
    double train_ms, decode_ms;
    bench_cost(&train_ms, &decode_ms);
    printf("cost (1 thread, %d pairs x %d tokens = %d padded tokens per batch): time per training "
           "target token per core %.3f ms (forward + backward + Adam update; %.1f ms per sentence "
           "pair of %d target tokens); greedy decoding %.1f ms per pair (max_len %d, untrained: "
           "never stops early)\n",
           COST_ROWS, T, COST_ROWS * T, train_ms, train_ms * T, T, decode_ms, T + DECODE_EXTRA);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "cost") == 0) {
        print_cost();
        return 0;
    }
    const int steps = argc > 1 ? atoi(argv[1]) : 3; /* per timing window */
    static token_batch tb;
    random_batch(&tb, 1);
    bench_memory(&tb);
    model *m = transformer();
    const double flops = model_flops_per_sample(m), params = (double)model_param_count(m);
    model_destroy(&m);
    printf("transformer (256/4/1024, 3 + 3 layers, vocabularies %d / %d, tied output): %.0f "
           "parameters, %.1f MFLOP forward per target token at length 16, training counted as "
           "3 x forward\n",
           SRC_VOCAB, TGT_VOCAB, params, flops / 1e6);
    gemm_bufs g;
    gemm_bufs_init(&g);
    for (int threads = 1; threads <= 2; threads++) {
        double tps, ceiling;
        bench_threads(threads, steps, &g, &tb, &tps, &ceiling);
        double gflops = tps * 3 * flops / 1e9;
        printf("  %d thread%s: training %.0f target tokens/s at %d x %d = %.1f GFLOP/s; "
               "dnnl_sgemm %d^3 %.1f GFLOP/s; ratio %.0f%%\n",
               threads, threads > 1 ? "s" : " ", tps, B, T, gflops, SGEMM_N, ceiling,
               100 * gflops / ceiling);
    }
    gemm_bufs_free(&g);
    print_cost();
    return 0;
}
