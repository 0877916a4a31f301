/* task_ops.h: what one task provides to task.c (internal to src/task/). Each function is
 * task.h's of the same name, on the task's own state. */
#ifndef CCDL_TASK_OPS_H
#define CCDL_TASK_OPS_H

#include "task.h"

typedef struct {
    void *(*create)(const ccdl_spec *s, const layout *l, ccdl_error *err);
    void (*destroy)(void *impl);
    int (*model_config)(const void *impl, model_config *mc, ccdl_error *err);
    int (*max_batch)(const void *impl);
    int64_t (*steps_per_epoch)(const void *impl);
    const char *unit;
    double (*units_per_step)(const void *impl);
    double (*uniform_loss)(const void *impl);
    const char *(*vocab)(const void *impl, int target); /* NULL: no vocabularies */
    int (*seek)(void *impl, int epoch, int64_t k, ccdl_error *err);
    double (*step)(void *impl, model *m, int w, int64_t k, int64_t step, float *params,
                   float *state, float *grads);
    task_eval (*evaluate)(void *impl, model *m, worker_state *ws, const model_buffers *mb,
                          MPI_Comm comm);
} task_ops;

extern const task_ops images_task;
extern const task_ops translation_task;

#endif
