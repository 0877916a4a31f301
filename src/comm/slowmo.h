/* slowmo.h: SlowMo (Wang, Tantia, Ballas, Rabbat, ICLR 2020; the paper's Table 13).
 *
 * The workers run the phases' own policy (gossip, local steps, control, ...) and every tau
 * steps, after it, an outer step: they average exactly and take one slow momentum step from
 * the previous outer iterate x0 with the step's learning rate gamma:
 *   xbar = (1/n) sum_i x_i,   u <- beta u + (x0 - xbar) / gamma,   x0 <- x0 - alpha gamma u,
 * and every worker continues from x0. The new x0 is computed as
 *   x0 <- xbar + ((1 - alpha)(x0 - xbar) - alpha beta gamma u_old),
 * the same value written so that alpha = 1, beta = 0 leaves xbar's own bits: SlowMo with
 * tau = 1, alpha = 1, beta = 0 over local steps is All-Reduce SGD, bit for bit. The buffers
 * mixed with the parameters (gossiped moments) are averaged with them; the local optimizer's
 * moments otherwise stay local, as in All-Reduce runs.
 *
 * gamma is the learning rate of the outer step's own step: with a warm-up or a decay inside
 * the last tau steps, (x0 - xbar) / gamma divides a displacement made at several rates by the
 * latest one, as implementations of SlowMo with a schedule do.
 *
 * u and x0 are the same on every worker; each worker holds its own copy in the worker-state
 * registry (slowmo_u, slowmo_x0), so checkpoints save and restore them with the rest. */
#ifndef CCDL_SLOWMO_H
#define CCDL_SLOWMO_H

#include <stddef.h>
#include <stdint.h>

#include "consensus.h"
#include "gossip.h"
#include "spec.h"
#include "traffic.h"
#include "worker_state.h"

typedef struct {
    int tau; /* 0: off */
    float alpha, beta;
    size_t d;
    int h_u, h_x0; /* registry handles */
} slowmo;

/* Declare u and x0 (d floats per worker) when cfg->tau > 0; else the policy is off. */
void slowmo_declare(slowmo *sm, const struct spec_slowmo *cfg, worker_state *ws, size_t d);

/* Collective: x0 = the workers' mean of params, before the first step (a resume then restores
 * x0 and u from the checkpoint). No-op when off. */
void slowmo_start(const slowmo *sm, worker_state *ws, float *const *params, consensus *cons);

/* True after the steps at which the outer step runs: steps tau - 1, 2 tau - 1, ... */
static inline int slowmo_due(const slowmo *sm, int64_t step) {
    return sm->tau > 0 && (step + 1) % sm->tau == 0;
}

/* Collective: the outer step for every mixed buffer of gg (the parameters first), with the
 * step's learning rate; adds the exact averages to *sent. averaged: the step's own policy
 * has just averaged exactly (an All-Reduce phase), so the average is not made, nor paid for,
 * twice (averaging equal vectors would leave their bits anyway). */
void slowmo_outer_step(const slowmo *sm, worker_state *ws, gossip_group *gg, consensus *cons,
                       double lr, int averaged, traffic *sent);

#endif
