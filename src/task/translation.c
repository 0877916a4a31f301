/* translation.c: sentence-pair translation (see task.h): the corpus in the Multi30k layout
 * (data/text.h), token-budget batches spread over the n workers, a label-smoothed loss per
 * target token, and at each epoch end the averaged model's test loss and perplexity and its
 * corpus BLEU (data/bleu.h) by greedy decoding on the validation and test sets.
 *
 * Everything a worker sees depends on (seed, epoch, worker) only: the epoch's batch plan
 * does not depend on the rank layout, worker i takes batch k * n + i at step k, evaluation
 * batch j goes to worker j mod n, and the sums (tokens, losses, BLEU statistics) are reduced
 * in canonical worker order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bleu.h"
#include "reduce.h"
#include "task_ops.h"
#include "text.h"

/* Greedy decoding stops after the source length plus this many tokens (fairseq's default
 * max_len_b is 200; Multi30k sentences are short and a runaway decode costs every epoch). */
#define DECODE_EXTRA 10

typedef struct {
    const ccdl_spec *spec;
    layout lay;
    text_corpus corpus;
    text_plan plan; /* the current training epoch's batches */
    int plan_epoch; /* -1: none yet */
    int64_t steps;  /* per epoch, the same for every epoch (text_plan_train) */
    double mean_tokens_per_step;
    text_batch batch;
    text_plan val_plan, test_plan;
    char *vocab[2];   /* source and target vocabularies, serialized */
    int32_t *decoded; /* (rows, max decode length) */
    size_t decoded_cap;
} translation;

static void translation_destroy(void *impl) {
    translation *t = impl;
    if (!t) return;
    text_plan_free(&t->plan);
    text_plan_free(&t->val_plan);
    text_plan_free(&t->test_plan);
    text_batch_free(&t->batch);
    text_corpus_free(&t->corpus);
    free(t->decoded);
    free(t->vocab[0]);
    free(t->vocab[1]);
    free(t);
}

static int plan_epoch(translation *t, int epoch, ccdl_error *err) {
    if (t->plan_epoch == epoch) return 0;
    const ccdl_spec *s = t->spec;
    text_plan_free(&t->plan);
    if (text_plan_train(&t->corpus.train, s->data.tokens_per_batch, s->workers, (uint64_t)s->seed,
                        epoch, &t->plan, err))
        return -1;
    t->plan_epoch = epoch;
    const int64_t steps = text_plan_steps(&t->plan, s->workers);
    if (t->steps && steps != t->steps) /* cuts follow the sorted widths, not the shuffle */
        ccdl_die("translation: epoch %d has %lld steps, epoch 0 had %lld", epoch, (long long)steps,
                 (long long)t->steps);
    t->steps = steps;
    return 0;
}

static void *translation_create(const ccdl_spec *s, const layout *l, ccdl_error *err) {
    translation *t = xcalloc(1, sizeof *t);
    t->spec = s;
    t->lay = *l;
    t->plan_epoch = -1;
    text_config cfg;
    text_config_default(&cfg);
    cfg.dir = s->data.path;
    cfg.src_lang = s->data.src_lang;
    cfg.tgt_lang = s->data.tgt_lang;
    cfg.lowercase = s->data.lowercase;
    cfg.min_freq = s->data.min_freq;
    cfg.max_len = s->data.max_len;
    if (text_corpus_load(&cfg, &t->corpus, err)) goto fail;
    /* subsets: the first k pairs (as for images); the CSR starts stay valid */
    text_split *tr = &t->corpus.train, *te = &t->corpus.test;
    if (s->data.train_subset && s->data.train_subset < tr->count) tr->count = s->data.train_subset;
    if (s->data.test_subset && s->data.test_subset < te->count) te->count = s->data.test_subset;
    if (tr->count < s->workers || te->count < s->workers || t->corpus.val.count < s->workers) {
        ccdl_fail(err, CCDL_ERR_INPUT,
                  "%s: the train, val and test sets need at least one pair per worker (%d); "
                  "they have %lld, %lld, %lld",
                  s->data.path, s->workers, (long long)tr->count, (long long)t->corpus.val.count,
                  (long long)te->count);
        goto fail;
    }
    if (plan_epoch(t, 0, err)) goto fail;
    for (int k = 0; k < 2; k++) { /* as C strings: the trace stores them as attributes */
        size_t len;
        char *flat = text_vocab_serialize(k ? &t->corpus.tgt_vocab : &t->corpus.src_vocab, &len);
        t->vocab[k] = xrealloc(flat, len + 1);
        t->vocab[k][len] = '\0';
    }
    int64_t tokens = 0;
    for (int64_t i = 0; i < tr->count; i++) tokens += text_tgt_len(tr, i) + 1;
    t->mean_tokens_per_step = (double)tokens / (double)t->steps;
    text_plan_eval(&t->corpus.val, s->data.tokens_per_batch, &t->val_plan);
    text_plan_eval(&t->corpus.test, s->data.tokens_per_batch, &t->test_plan);
    return t;
fail:
    translation_destroy(t);
    return NULL;
}

static int longest(const text_split *s) {
    int64_t most = 0;
    for (int64_t i = 0; i < s->count; i++) {
        if (text_src_len(s, i) > most) most = text_src_len(s, i);
        if (text_tgt_len(s, i) > most) most = text_tgt_len(s, i);
    }
    return (int)most;
}

static int translation_model_config(const void *impl, model_config *mc, ccdl_error *err) {
    const translation *t = impl;
    mc->seq.src_vocab = t->corpus.src_vocab.size;
    mc->seq.tgt_vocab = t->corpus.tgt_vocab.size;
    int most = longest(&t->corpus.train);
    if (longest(&t->corpus.val) > most) most = longest(&t->corpus.val);
    if (longest(&t->corpus.test) > most) most = longest(&t->corpus.test);
    /* positions: a sentence, its <bos> or <eos>, and the decoding allowance */
    mc->seq.max_len = most + 1 + DECODE_EXTRA;
    (void)err;
    return 0;
}

static int translation_max_batch(const void *impl) {
    return ((const translation *)impl)->spec->data.tokens_per_batch;
}

static int64_t translation_steps_per_epoch(const void *impl) {
    return ((const translation *)impl)->steps;
}

static double translation_units_per_step(const void *impl) {
    return ((const translation *)impl)->mean_tokens_per_step;
}

/* A uniform guess over the target vocabulary has loss ln(V) per token. */
static double translation_uniform_loss(const void *impl) {
    return log((double)((const translation *)impl)->corpus.tgt_vocab.size);
}

static const char *translation_vocab(const void *impl, int target) {
    return ((const translation *)impl)->vocab[target ? 1 : 0];
}

static int translation_seek(void *impl, int epoch, int64_t k, ccdl_error *err) {
    (void)k; /* batches are indexed by step: nothing to skip */
    return plan_epoch(impl, epoch, err);
}

static model_tokens tokens_of(const text_batch *b) {
    return (model_tokens){b->src,      b->tgt_in, b->tgt_out, b->rows, b->src_cols,
                          b->tgt_cols, TEXT_PAD,  TEXT_BOS,   TEXT_EOS};
}

static double translation_step(void *impl, model *m, int w, int64_t k, int64_t step, float *params,
                               float *state, float *grads) {
    translation *t = impl;
    (void)state;
    const int worker = t->lay.first + w;
    text_batch_fill(&t->corpus.train, &t->plan, text_plan_batch(t->spec->workers, worker, k),
                    &t->batch);
    model_tokens b = tokens_of(&t->batch);
    model_token_loss l =
        model_tokens_forward_backward(m, params, grads, &b, (uint64_t)t->spec->seed, step, worker);
    return l.loss_sum / (double)l.tokens;
}

/* BLEU statistics as BLEU_STATS_WORDS numbers, to reduce like any other sum. */
static void stats_to_words(const bleu_stats *s, double *w) {
    w[0] = (double)s->sys_len, w[1] = (double)s->ref_len;
    for (int k = 0; k < BLEU_ORDER; k++)
        w[2 + k] = (double)s->correct[k], w[2 + BLEU_ORDER + k] = (double)s->total[k];
}

/* Counts are exact in a double below 2^53. */
static void words_to_stats(const double *w, bleu_stats *s) {
    s->sys_len = (int64_t)w[0], s->ref_len = (int64_t)w[1];
    for (int k = 0; k < BLEU_ORDER; k++)
        s->correct[k] = (int64_t)w[2 + k], s->total[k] = (int64_t)w[2 + BLEU_ORDER + k];
}

/* Loss sums and BLEU statistics of the model on this rank's batches of a split (batch j to
 * worker j mod n), per local worker so the reduction keeps the canonical order. */
typedef struct {
    double nll, tokens;
    double bleu[BLEU_STATS_WORDS];
} split_sums;

/* with_loss: also the loss sums (the test set's; the validation set gives BLEU only). */
static void evaluate_split(translation *t, model *m, const float *params, const text_split *split,
                           const text_plan *plan, int with_loss, int w, split_sums *out) {
    const int n = t->spec->workers, worker = t->lay.first + w;
    model_token_loss acc = {0};
    bleu_stats stats;
    bleu_stats_clear(&stats);
    for (int64_t j = worker; j < plan->count; j += n) {
        text_batch_fill(split, plan, j, &t->batch);
        model_tokens b = tokens_of(&t->batch);
        if (with_loss) model_tokens_evaluate(m, params, &b, &acc);
        const int max_len = t->batch.src_cols + DECODE_EXTRA;
        const size_t need = (size_t)t->batch.rows * (size_t)max_len;
        if (need > t->decoded_cap) {
            t->decoded = xrealloc(t->decoded, need * sizeof *t->decoded);
            t->decoded_cap = need;
        }
        model_tokens_greedy(m, params, &b, max_len, t->decoded);
        for (int r = 0; r < t->batch.rows; r++) {
            const int64_t pair = plan->pair[plan->start[j] + r];
            char *hyp =
                text_decode(&t->corpus.tgt_vocab, t->decoded + (size_t)r * max_len, max_len);
            bleu_stats_add(&stats, hyp, split->tgt_text[pair]);
            free(hyp);
        }
    }
    out->nll = acc.nll_sum;
    out->tokens = (double)acc.tokens;
    stats_to_words(&stats, out->bleu);
}

/* Reduce the local workers' sums in worker order; returns BLEU, and with nll (collective
 * alike on every rank) sets *nll and *tokens. */
static double reduce_split(translation *t, MPI_Comm comm, split_sums *local, double *nll,
                           double *tokens) {
    const int per = t->lay.per_rank;
    double v[per];
    memset(v, 0, sizeof v);
    if (nll) {
        for (int w = 0; w < per; w++) v[w] = local[w].nll;
        *nll = reduce_sum_scalars(&t->lay, comm, v);
        for (int w = 0; w < per; w++) v[w] = local[w].tokens;
        *tokens = reduce_sum_scalars(&t->lay, comm, v);
    }
    double words[BLEU_STATS_WORDS];
    for (int k = 0; k < BLEU_STATS_WORDS; k++) {
        for (int w = 0; w < per; w++) v[w] = local[w].bleu[k];
        words[k] = reduce_sum_scalars(&t->lay, comm, v);
    }
    bleu_stats total;
    words_to_stats(words, &total);
    return bleu_compute(&total).score;
}

static task_eval translation_evaluate(void *impl, model *m, worker_state *ws,
                                      const model_buffers *mb, MPI_Comm comm) {
    translation *t = impl;
    const int per = t->lay.per_rank;
    const float *mean_params = ws->buf[mb->params].mean;
    split_sums val[per], test[per];
    for (int w = 0; w < per; w++) {
        evaluate_split(t, m, mean_params, &t->corpus.val, &t->val_plan, 0, w, &val[w]);
        evaluate_split(t, m, mean_params, &t->corpus.test, &t->test_plan, 1, w, &test[w]);
    }
    task_eval e = {.test_acc = NAN, .worker_test_acc = NAN};
    double nll, tokens;
    e.val_bleu = reduce_split(t, comm, val, NULL, NULL);
    e.test_bleu = reduce_split(t, comm, test, &nll, &tokens);
    e.test_loss = nll / tokens;
    e.test_ppl = exp(e.test_loss);
    return e;
}

const task_ops translation_task = {
    .create = translation_create,
    .destroy = translation_destroy,
    .model_config = translation_model_config,
    .max_batch = translation_max_batch,
    .steps_per_epoch = translation_steps_per_epoch,
    .unit = "tokens",
    .units_per_step = translation_units_per_step,
    .uniform_loss = translation_uniform_loss,
    .vocab = translation_vocab,
    .seek = translation_seek,
    .step = translation_step,
    .evaluate = translation_evaluate,
};
