/* task.c: the task of a run, chosen by data.dataset (see task.h). */
#include "task.h"

#include <stdlib.h>
#include <string.h>

#include "task_ops.h"

struct task {
    const task_ops *ops;
    void *impl;
};

task *task_create(const ccdl_spec *s, const layout *l, ccdl_error *err) {
    const task_ops *ops = strcmp(s->data.dataset, "text") == 0 ? &translation_task : &images_task;
    void *impl = ops->create(s, l, err);
    if (!impl) return NULL;
    task *t = xcalloc(1, sizeof *t);
    t->ops = ops;
    t->impl = impl;
    return t;
}

void task_destroy(task **t) {
    if (!t || !*t) return;
    (*t)->ops->destroy((*t)->impl);
    free(*t);
    *t = NULL;
}

int task_model_config(const task *t, model_config *mc, ccdl_error *err) {
    return t->ops->model_config(t->impl, mc, err);
}

int task_max_batch(const task *t) {
    return t->ops->max_batch(t->impl);
}

int64_t task_steps_per_epoch(const task *t) {
    return t->ops->steps_per_epoch(t->impl);
}

const char *task_unit(const task *t) {
    return t->ops->unit;
}

double task_units_per_step(const task *t) {
    return t->ops->units_per_step(t->impl);
}

double task_uniform_loss(const task *t) {
    return t->ops->uniform_loss(t->impl);
}

const char *task_vocab(const task *t, int target) {
    return t->ops->vocab ? t->ops->vocab(t->impl, target) : NULL;
}

int task_seek(task *t, int epoch, int64_t k, ccdl_error *err) {
    return t->ops->seek(t->impl, epoch, k, err);
}

double task_step(task *t, model *m, int w, int64_t k, int64_t step, float *params, float *state,
                 float *grads) {
    return t->ops->step(t->impl, m, w, k, step, params, state, grads);
}

task_eval task_evaluate(task *t, model *m, worker_state *ws, const model_buffers *mb,
                        MPI_Comm comm) {
    return t->ops->evaluate(t->impl, m, ws, mb, comm);
}
