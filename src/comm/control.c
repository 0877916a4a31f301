/* control.c: see control.h. */
#include "control.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- setup */

void control_init(control *c, const ccdl_spec *spec, size_t d, const double *phase_target) {
    memset(c, 0, sizeof *c);
    c->d = d;
    c->phases = spec_phase_count(spec);
    c->local_steps = spec->communication.local_steps;
    c->cfg = spec->communication.control;
    int gossips = 0;
    for (int k = 0; k < c->phases; k++) {
        c->policy[k] = spec_phase_policy(spec, k + 1);
        c->phase_target[k] = phase_target[k];
        gossips += c->policy[k] != POLICY_ALLREDUCE;
    }
    /* the topology's degrees, only when some phase gossips (it may not suit n otherwise) */
    if (gossips) {
        topology t = {(topology_kind)spec->topology.kind, spec->workers, (uint64_t)spec->seed};
        traffic_model_init(&c->traffic, &t);
    }
}

void control_free(control *c) {
    traffic_model_free(&c->traffic);
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

/* One round of every mixed buffer; Theta of the parameters. Theta's reduction is traced
 * here whatever the policy, but only consensus control needs it (its traffic is counted
 * there). */
static double gossip_once(const control *c, control_state *st, gossip_group *gg, consensus *cons,
                          double *theta2, traffic *sent) {
    traffic_gossip_round(&c->traffic, st->round, c->d, gg->n, sent);
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
    memset(&out->sent, 0, sizeof out->sent);
    const int n = cons->lay.n;
    switch (out->policy) {
    case POLICY_ALLREDUCE:
        for (int k = 0; k < gg->n; k++) {
            consensus_average(cons, gg->x[k]);
            traffic_allreduce(n, c->d, sizeof(float), &out->sent);
        }
        break;
    case POLICY_GOSSIP:
        out->theta = gossip_once(c, st, gg, cons, theta2, &out->sent);
        out->rounds = 1;
        break;
    case POLICY_LOCAL:
        if ((step + 1) % c->local_steps == 0) {
            out->theta = gossip_once(c, st, gg, cons, theta2, &out->sent);
            out->rounds = 1;
        }
        break;
    case POLICY_CONTROLLED: {
        out->target = step_target(c, st, phase, grad_norm);
        /* the adaptive target needs the mean gradient norm: one scalar reduction */
        if (c->cfg.target == TARGET_ADAPTIVE) traffic_reduce_scalars(n, 1, &out->sent);
        int exact = c->cfg.metric == METRIC_EXACT;
        /* at least the step's own round, then more until the metric meets the target */
        for (;;) {
            out->theta = gossip_once(c, st, gg, cons, theta2, &out->sent);
            out->rounds++;
            /* the metric's reductions: Xi averages the model and sums squares, Theta sums
             * the theta_i^2 */
            if (exact) traffic_allreduce(n, c->d, sizeof(float), &out->sent);
            traffic_reduce_scalars(n, 1, &out->sent);
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
