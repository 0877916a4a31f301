/* slowmo.c: see slowmo.h. */
#include "slowmo.h"

#include <string.h>

#include "reduce.h"

void slowmo_declare(slowmo *sm, const struct spec_slowmo *cfg, worker_state *ws, size_t d) {
    memset(sm, 0, sizeof *sm);
    sm->h_u = sm->h_x0 = -1;
    if (cfg->tau <= 0) return;
    sm->tau = cfg->tau;
    sm->alpha = (float)cfg->alpha;
    sm->beta = (float)cfg->beta;
    sm->d = d;
    sm->h_u = worker_state_declare(ws, "slowmo_u", d, WS_CHECKPOINT);
    sm->h_x0 = worker_state_declare(ws, "slowmo_x0", d, WS_CHECKPOINT);
}

void slowmo_start(const slowmo *sm, worker_state *ws, float *const *params, consensus *cons) {
    if (!sm->tau) return;
    reduce_mean_vectors(&cons->lay, cons->comm, params, sm->d, cons->mean, cons->scratch);
    float **x0 = worker_state_buffers(ws, sm->h_x0);
    for (int w = 0; w < ws->per_rank; w++) memcpy(x0[w], cons->mean, sm->d * sizeof(float));
}

void slowmo_outer_step(const slowmo *sm, worker_state *ws, gossip_group *gg, consensus *cons,
                       double lr, int averaged, traffic *sent) {
    for (int k = 0; k < gg->n && !averaged; k++) {
        consensus_average(cons, gg->x[k]);
        traffic_allreduce(cons->lay.n, sm->d, sizeof(float), sent);
    }
    const float gamma = (float)lr, a = sm->alpha, b = sm->beta;
    float **x = gg->x[0], **u = worker_state_buffers(ws, sm->h_u),
          **x0 = worker_state_buffers(ws, sm->h_x0);
    for (int w = 0; w < ws->per_rank; w++)
        for (size_t j = 0; j < sm->d; j++) {
            float xbar = x[w][j], delta = x0[w][j] - xbar;
            float correction = (1 - a) * delta - a * b * gamma * u[w][j];
            u[w][j] = b * u[w][j] + delta / gamma;
            /* alpha 1, beta 0: the correction is 0 and xbar keeps its bits (even -0.0) */
            float next = correction != 0 ? xbar + correction : xbar;
            x[w][j] = x0[w][j] = next;
        }
}
