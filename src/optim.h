/* optim.h: local optimizers on flat buffers (NOTES.md section 1).
 *
 * SGD with momentum and Nesterov momentum in PyTorch's formulation:
 *   g = grad + wd * x;  m = mu * m + g;  d = nesterov ? g + mu * m : m;  x -= lr * d
 * The momentum buffer is per worker and never gossiped. */
#ifndef CCDL_OPTIM_H
#define CCDL_OPTIM_H

#include <stddef.h>

typedef struct {
    float momentum; /* mu; 0 = plain SGD */
    int nesterov;
    float weight_decay; /* wd */
} sgd_config;

/* One step over d floats. momentum_buf may be NULL when momentum == 0. */
void sgd_step(const sgd_config *cfg, float lr, float *x, const float *grad, float *momentum_buf,
              size_t d);

/* ||v||_2 accumulated in double. */
double vector_norm(const float *v, size_t d);

#endif
