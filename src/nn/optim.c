/* optim.c: see optim.h. Loops are written so that a NULL mask and a mask of ones give the
 * same bits (wd * 1.0f == wd exactly), and no fused multiply-add is used anywhere (the
 * build passes -ffp-contract=off). */
#include "optim.h"

#include <math.h>

#include "worker_state.h"

void sgd_step(const sgd_config *cfg, float lr, float *x, const float *grad, float *momentum_buf,
              size_t d, const float *decay_mask) {
    const float mu = cfg->momentum, wd = cfg->weight_decay;
    if (mu == 0.0f) {
        for (size_t k = 0; k < d; k++) {
            const float wdk = decay_mask ? wd * decay_mask[k] : wd;
            x[k] -= lr * (grad[k] + wdk * x[k]);
        }
        return;
    }
    for (size_t k = 0; k < d; k++) {
        const float wdk = decay_mask ? wd * decay_mask[k] : wd;
        float g = grad[k] + wdk * x[k];
        float m = mu * momentum_buf[k] + g;
        momentum_buf[k] = m;
        x[k] -= lr * (cfg->nesterov ? g + mu * m : m);
    }
}

void adam_step(const adam_config *cfg, float lr, int64_t step, float *x, const float *grad,
               float *m, float *v, const float *decay_mask, size_t d) {
    const float b1 = cfg->beta1, b2 = cfg->beta2, wd = cfg->weight_decay, eps = cfg->eps;
    /* bias corrections in double, rounded once, as PyTorch computes them on the host */
    const double bc1 = 1.0 - pow((double)b1, (double)step);
    const double bc2 = 1.0 - pow((double)b2, (double)step);
    const float step_size = (float)(lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    for (size_t k = 0; k < d; k++) {
        const float wdk = decay_mask ? wd * decay_mask[k] : wd;
        const float g = grad[k] + wdk * x[k];
        m[k] = b1 * m[k] + (1.0f - b1) * g;
        v[k] = b2 * v[k] + (1.0f - b2) * g * g;
        const float denom = sqrtf(v[k]) / bc2_sqrt + eps;
        x[k] -= step_size * (m[k] / denom);
    }
}

double vector_norm(const float *v, size_t d) {
    double s = 0;
    for (size_t k = 0; k < d; k++) s += (double)v[k] * (double)v[k];
    return sqrt(s);
}

void optimizer_declare(optimizer *o, worker_state *ws, size_t d) {
    const unsigned roles = WS_CHECKPOINT | (o->gossip_moments ? WS_GOSSIPED : 0);
    o->m = o->v = NULL;
    if (o->adam) {
        o->m = worker_state_buffers(ws, worker_state_declare(ws, "adam_m", d, roles));
        o->v = worker_state_buffers(ws, worker_state_declare(ws, "adam_v", d, roles));
    } else if (o->sgd.momentum != 0.0f) {
        o->m = worker_state_buffers(ws, worker_state_declare(ws, "momentum", d, roles));
    }
}

void optimizer_step(const optimizer *o, float lr, int64_t step, int w, float *x, const float *grad,
                    size_t d) {
    if (o->adam)
        adam_step(&o->adam_cfg, lr, step, x, grad, o->m[w], o->v[w], o->decay_mask, d);
    else
        sgd_step(&o->sgd, lr, x, grad, o->m ? o->m[w] : NULL, d, o->decay_mask);
}
