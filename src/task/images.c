/* images.c: image classification (see task.h): the dataset, the per-worker sampler, softmax
 * cross-entropy steps and top-1 accuracy on the test set. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "reduce.h"
#include "sampler.h"
#include "task_ops.h"

#define EVAL_BATCH 500

typedef struct {
    const ccdl_spec *spec;
    layout lay;
    dataset train, test;
    sampler samp;
    float *batch_x; /* (max batch, C, H, W) */
    int32_t *batch_y;
} images;

static int max_batch_of(const ccdl_spec *s) {
    return s->schedule.local_batch > EVAL_BATCH ? s->schedule.local_batch : EVAL_BATCH;
}

static void images_destroy(void *impl) {
    images *t = impl;
    if (!t) return;
    free(t->batch_x);
    free(t->batch_y);
    sampler_free(&t->samp);
    dataset_free(&t->train);
    dataset_free(&t->test);
    free(t);
}

static int images_load(images *t, ccdl_error *err) {
    const ccdl_spec *s = t->spec;
    if (dataset_load(s->data.dataset, s->data.path, 1, s->data.train_subset, &t->train, err))
        return -1;
    if (dataset_load(s->data.dataset, s->data.path, 0, s->data.test_subset, &t->test, err))
        return -1;
    /* e.g. ResNet-20 is the CIFAR variant: 28 x 28 images are zero-padded to 32 x 32 */
    const int pad_to = model_pad_images_to(s->model.kind);
    if (pad_to && t->train.height < pad_to &&
        (dataset_pad_to(&t->train, pad_to, err) || dataset_pad_to(&t->test, pad_to, err)))
        return -1;
    if (t->test.count < s->workers)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "data.test_subset: need at least one test sample per worker (%d)",
                         s->workers);
    if (sampler_init(&t->samp, &t->train, s->workers, t->lay.first, t->lay.per_rank,
                     s->schedule.local_batch, s->data.split == SPLIT_DIRICHLET,
                     s->data.dirichlet_alpha, s->data.augment, (uint64_t)s->seed, err))
        return -1;
    size_t sample = (size_t)t->train.channels * t->train.height * t->train.width;
    t->batch_x = xalloc_floats(size_mul(sample, (size_t)max_batch_of(s)));
    t->batch_y = xmalloc_array((size_t)max_batch_of(s), sizeof(int32_t));
    return 0;
}

static void *images_create(const ccdl_spec *s, const layout *l, ccdl_error *err) {
    images *t = xcalloc(1, sizeof *t);
    t->spec = s;
    t->lay = *l;
    if (images_load(t, err)) {
        images_destroy(t);
        return NULL;
    }
    return t;
}

static int images_model_config(const void *impl, model_config *mc, ccdl_error *err) {
    const images *t = impl;
    mc->in_channels = t->train.channels;
    mc->in_height = t->train.height;
    mc->in_width = t->train.width;
    mc->classes = t->train.classes;
    (void)err;
    return 0;
}

static int images_max_batch(const void *impl) {
    return max_batch_of(((const images *)impl)->spec);
}

static int64_t images_steps_per_epoch(const void *impl) {
    return ((const images *)impl)->samp.steps_per_epoch;
}

static double images_units_per_step(const void *impl) {
    const ccdl_spec *s = ((const images *)impl)->spec;
    return (double)s->workers * s->schedule.local_batch;
}

/* A uniform guess over the classes has loss ln(classes). */
static double images_uniform_loss(const void *impl) {
    return log((double)((const images *)impl)->train.classes);
}

static int images_seek(void *impl, int epoch, int64_t k, ccdl_error *err) {
    (void)err;
    sampler_seek(&((images *)impl)->samp, epoch, k);
    return 0;
}

static double images_step(void *impl, model *m, int w, int64_t k, int64_t step, float *params,
                          float *state, float *grads) {
    images *t = impl;
    (void)step;
    sampler_batch(&t->samp, w, k, t->batch_x, t->batch_y);
    return model_forward_backward(m, params, state, grads, t->batch_x, t->batch_y,
                                  t->spec->schedule.local_batch);
}

/* Loss sum and correct count of one model on test samples [lo, hi). */
static void evaluate_slice(images *t, model *m, const float *params, const float *state, int64_t lo,
                           int64_t hi, double *loss_sum, int64_t *correct) {
    int32_t idx[EVAL_BATCH];
    for (int64_t a = lo; a < hi; a += EVAL_BATCH) {
        int bsz = (int)(hi - a < EVAL_BATCH ? hi - a : EVAL_BATCH);
        for (int k = 0; k < bsz; k++) idx[k] = (int32_t)(a + k);
        dataset_fill_batch(&t->test, idx, bsz, t->batch_x, t->batch_y);
        model_evaluate(m, params, state, t->batch_x, t->batch_y, bsz, loss_sum, correct);
    }
}

/* The test set is split into n fixed slices, one per worker index, so the work spreads over
 * ranks while every sum stays canonical. */
static task_eval images_evaluate(void *impl, model *m, worker_state *ws, const model_buffers *mb,
                                 MPI_Comm comm) {
    images *t = impl;
    const int per = t->lay.per_rank, n = t->lay.n;
    float **params = worker_state_buffers(ws, mb->params);
    float **state = worker_state_buffers(ws, mb->state);
    const float *mean_params = ws->buf[mb->params].mean;
    const float *mean_state = ws->buf[mb->state].mean;
    double loss_sum[per], correct[per], own_correct[per];
    for (int w = 0; w < per; w++) {
        int64_t i = t->lay.first + w;
        int64_t lo = i * t->test.count / n, hi = (i + 1) * t->test.count / n, ok = 0, own = 0;
        double ls = 0, own_ls = 0;
        evaluate_slice(t, m, mean_params, mean_state, lo, hi, &ls, &ok);
        evaluate_slice(t, m, params[w], state[w], lo, hi, &own_ls, &own);
        loss_sum[w] = ls, correct[w] = (double)ok, own_correct[w] = (double)own;
    }
    task_eval e = {.val_bleu = NAN, .test_bleu = NAN, .test_ppl = NAN};
    double count = (double)t->test.count;
    e.test_loss = reduce_sum_scalars(&t->lay, comm, loss_sum) / count;
    e.test_acc = reduce_sum_scalars(&t->lay, comm, correct) / count;
    e.worker_test_acc = reduce_sum_scalars(&t->lay, comm, own_correct) / count;
    return e;
}

const task_ops images_task = {
    .create = images_create,
    .destroy = images_destroy,
    .model_config = images_model_config,
    .max_batch = images_max_batch,
    .steps_per_epoch = images_steps_per_epoch,
    .unit = "images",
    .units_per_step = images_units_per_step,
    .uniform_loss = images_uniform_loss,
    .seek = images_seek,
    .step = images_step,
    .evaluate = images_evaluate,
};
