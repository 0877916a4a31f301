/* optim.h: local optimizers on flat buffers (NOTES.md section 1).
 *
 * SGD with momentum and Nesterov momentum in PyTorch's torch.optim.SGD formulation:
 *   g = grad + wd * mask * x;  m = mu * m + g;  d = nesterov ? g + mu * m : m;  x -= lr * d
 * Adam in torch.optim.Adam's formulation (amsgrad off; weight decay as L2 added to the
 * gradient, not AdamW's decoupled decay):
 *   g = grad + wd * mask * x;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   x -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * mask (model_weight_decay_mask) is 0 for parameters exempt from weight decay (batch norm),
 * 1 otherwise; NULL decays everything. Optimizer state (momentum, m, v) is per worker and
 * never gossiped.
 *
 * Leaves out: learning-rate schedules (schedule.h), gradient clipping, AMSGrad. */
#ifndef CCDL_OPTIM_H
#define CCDL_OPTIM_H

#include <stddef.h>
#include <stdint.h>

struct worker_state; /* worker_state.h */

typedef struct {
    float momentum; /* mu; 0 = plain SGD */
    int nesterov;
    float weight_decay; /* wd */
} sgd_config;

/* One step over d floats. momentum_buf (zero before the first step) may be NULL when
 * momentum == 0. */
void sgd_step(const sgd_config *cfg, float lr, float *x, const float *grad, float *momentum_buf,
              size_t d, const float *decay_mask);

typedef struct {
    float beta1, beta2; /* PyTorch defaults 0.9, 0.999 */
    float eps;          /* 1e-8 */
    float weight_decay; /* L2, added to the gradient */
} adam_config;

/* One Adam step over d floats; step counts from 1 (bias correction); m and v are zero before
 * the first step. */
void adam_step(const adam_config *cfg, float lr, int64_t step, float *x, const float *grad,
               float *m, float *v, const float *decay_mask, size_t d);

/* The local optimizer of a run: SGD (with momentum / Nesterov) or Adam, with an optional
 * weight-decay mask shared by all workers (NULL: decay every parameter). Its per-worker
 * state lives in the worker-state registry (optimizer_declare). */
typedef struct {
    int adam; /* 0: sgd_step, 1: adam_step */
    sgd_config sgd;
    adam_config adam_cfg;
    const float *decay_mask;
    float **m; /* [per_rank] momentum (SGD, NULL if momentum is 0) or first moment (Adam) */
    float **v; /* [per_rank] Adam second moment, NULL for SGD */
    int gossip_moments; /* declare the moments WS_GOSSIPED: mixed like the parameters */
} optimizer;

/* Declare the optimizer's per-worker buffers of d floats (configure adam / sgd first):
 * "momentum" for SGD with momentum, "adam_m" and "adam_v" for Adam; checkpointed, and
 * gossiped with the parameters when gossip_moments is set. */
void optimizer_declare(optimizer *o, struct worker_state *ws, size_t d);

/* One step of the configured optimizer for local worker w; step counts from 1. */
void optimizer_step(const optimizer *o, float lr, int64_t step, int w, float *x, const float *grad,
                    size_t d);

/* ||v||_2 accumulated in double. */
double vector_norm(const float *v, size_t d);

#endif
