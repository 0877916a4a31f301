/* control.c: see control.h. */
#include "control.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- setup */

void control_init(control *c, const ccdl_spec *spec, const double *phase_target) {
    memset(c, 0, sizeof *c);
    c->phases = spec_phase_count(spec);
    c->local_steps = spec->communication.local_steps;
    c->cfg = spec->communication.control;
    for (int k = 0; k < c->phases; k++) {
        c->policy[k] = spec_phase_policy(spec, k + 1);
        c->phase_target[k] = phase_target[k];
    }
}

/* ---------------------------------------------------------------- one step */

static double step_target(const control *c, control_state *st, int phase, double grad_norm) {
    if (c->cfg.target == TARGET_CONSTANT) return c->phase_target[phase - 1];
    /* adaptive: phi is an EMA of the mean gradient norm within the phase */
    if (st->phi_phase != phase)
        st->phi = grad_norm, st->phi_phase = phase;
    else
        st->phi = c->cfg.ema * st->phi + (1 - c->cfg.ema) * grad_norm;
    return c->cfg.factor * st->phi;
}

static double gossip_once(control_state *st, gossip_group *gg, consensus *cons, double *theta2) {
    gossip_group_round(gg, st->round++, theta2);
    return consensus_distance_estimate(cons, theta2);
}

void control_communicate(const control *c, control_state *st, int phase, int64_t step,
                         double grad_norm, gossip_group *gg, consensus *cons, control_result *out) {
    double theta2[cons->lay.per_rank];
    float **x = gg->x[0];
    out->policy = c->policy[phase - 1];
    out->rounds = 0;
    out->capped = 0;
    out->target = NAN;
    out->theta = NAN;
    out->xi = NAN;
    switch (out->policy) {
    case POLICY_ALLREDUCE:
        for (int k = 0; k < gg->n; k++) consensus_average(cons, gg->x[k]);
        break;
    case POLICY_GOSSIP:
        out->theta = gossip_once(st, gg, cons, theta2);
        out->rounds = 1;
        break;
    case POLICY_LOCAL:
        if ((step + 1) % c->local_steps == 0) {
            out->theta = gossip_once(st, gg, cons, theta2);
            out->rounds = 1;
        }
        break;
    case POLICY_CONTROLLED: {
        out->target = step_target(c, st, phase, grad_norm);
        int exact = c->cfg.metric == METRIC_EXACT;
        /* at least the step's own round, then more until the metric meets the target */
        for (;;) {
            out->theta = gossip_once(st, gg, cons, theta2);
            out->rounds++;
            double metric = exact ? (out->xi = consensus_distance_exact(cons, x)) : out->theta;
            if (isnan(out->target) || metric <= out->target) break;
            if (out->rounds >= c->cfg.max_rounds) {
                out->capped = 1;
                break;
            }
        }
        break;
    }
    default:
        break;
    }
}
