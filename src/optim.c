/* optim.c: see optim.h. */
#include "optim.h"

#include <math.h>

void sgd_step(const sgd_config *cfg, float lr, float *x, const float *grad, float *momentum_buf,
              size_t d) {
    const float mu = cfg->momentum, wd = cfg->weight_decay;
    if (mu == 0.0f) {
        for (size_t k = 0; k < d; k++) x[k] -= lr * (grad[k] + wd * x[k]);
        return;
    }
    for (size_t k = 0; k < d; k++) {
        float g = grad[k] + wd * x[k];
        float m = mu * momentum_buf[k] + g;
        momentum_buf[k] = m;
        x[k] -= lr * (cfg->nesterov ? g + mu * m : m);
    }
}

double vector_norm(const float *v, size_t d) {
    double s = 0;
    for (size_t k = 0; k < d; k++) s += (double)v[k] * (double)v[k];
    return sqrt(s);
}
