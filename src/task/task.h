/* task.h: what the workers learn: the data, one worker's local step, and the evaluation.
 *
 * The step loop (train.c) knows nothing of images or sentences: it asks the task for the
 * steps of an epoch, for each local worker's loss and gradient at a step, and for the
 * evaluation at the end of an epoch. Two tasks, one module each:
 *   images.c       image classification (Fashion-MNIST, CIFAR-10, ImageNet-32): samplers,
 *                  softmax cross-entropy, top-1 accuracy of the averaged model;
 *   translation.c  sentence pairs (data.dataset "text"): token-budget batches, label-smoothed
 *                  loss per token, perplexity and greedy-decoding BLEU of the averaged model.
 * The task follows from data.dataset; the model kind must read what the task gives
 * (model_takes_tokens). */
#ifndef CCDL_TASK_H
#define CCDL_TASK_H

#include <mpi.h>
#include <stdint.h>

#include "layout.h"
#include "model.h"
#include "spec.h"
#include "util.h"
#include "worker_state.h"

typedef struct task task;

/* The end-of-epoch evaluation of the averaged model (parameters and model state averaged
 * over all workers) and of each worker's own model. NaN where a task has no such metric. */
typedef struct {
    double test_loss;       /* mean per test sample (images) or per target token (text) */
    double test_acc;        /* top-1 accuracy (images); NaN (text) */
    double worker_test_acc; /* each worker's own model on its 1/n of the test set (images) */
    double val_bleu;        /* corpus BLEU-4 of greedy decoding on the validation set (text) */
    double test_bleu;       /* the same on the test set (text) */
    double test_ppl;        /* exp(test token NLL) (text) */
} task_eval;

/* Load and check the data for the local workers of layout l. NULL + err (CCDL_ERR_INPUT
 * naming the spec key or file). */
task *task_create(const ccdl_spec *s, const layout *l, ccdl_error *err);
void task_destroy(task **t); /* NULL-safe */

/* The data's side of the model config (input shape and classes, or vocabularies and the
 * longest sentence); -1 + err when the spec's model cannot read this task's data. */
int task_model_config(const task *t, model_config *mc, ccdl_error *err);
/* Largest batch a model set must take (model_create's max_batch). */
int task_max_batch(const task *t);
int64_t task_steps_per_epoch(const task *t);
/* What one training step of all workers processes, for progress lines: "images", "tokens". */
const char *task_unit(const task *t);
/* Units one step of all n workers processes on average (images/s, tokens/s). */
double task_units_per_step(const task *t);
/* The loss of a uniform guess: ln(classes), or ln(target vocabulary) per token (train.c
 * calls a run diverged far above it). */
double task_uniform_loss(const task *t);

/* Text runs: the source (target = 0) or target (1) vocabulary, serialized (text.h), owned
 * by the task; NULL for image runs. Stored in the trace and checked on resume. */
const char *task_vocab(const task *t, int target);

/* Position the data at step k of epoch (called at epoch starts and after a resume). */
int task_seek(task *t, int epoch, int64_t k, ccdl_error *err);
/* Local worker w's loss at step k of the current epoch (global step `step`): grads
 * overwritten with its gradient, state (BN statistics) updated. */
double task_step(task *t, model *m, int w, int64_t k, int64_t step, float *params, float *state,
                 float *grads);
/* Collective: evaluate the averaged model (ws means, after worker_state_average) and the
 * local workers' own models. */
task_eval task_evaluate(task *t, model *m, worker_state *ws, const model_buffers *mb,
                        MPI_Comm comm);

#endif
