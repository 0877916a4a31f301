/* control.c: see control.h. */
#include "control.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"

/* ---------------------------------------------------------------- the reference */

/* Keys that must agree between a run and its reference: everything but how the workers
 * communicate and where the trace goes. */
static const char *const same_experiment_keys[] = {"workers",   "seed",     "data",     "model",
                                                   "optimizer", "schedule", "topology", NULL};

static int reference_fail(ccdl_error *err, const char *path, const char *why) {
    return ccdl_fail(err, CCDL_ERR_INPUT, "communication.control.reference: %s: %s", path, why);
}

/* Per-phase max Xi from the uncontrolled run's trace, after checking it is finished and
 * of the same experiment. */
static int read_reference(const char *path, const char *spec_json, int phases, double *max_xi,
                          ccdl_error *err) {
    ccdl_error rerr;
    long completed = 0;
    if (trace_read_attr_int(path, "completed", &completed, &rerr))
        return ccdl_fail(err, CCDL_ERR_INPUT, "communication.control.reference: %s", rerr.text);
    if (completed != 1) return reference_fail(err, path, "the reference run did not complete");
    char *ref_spec = NULL;
    if (trace_read_attr_string(path, "spec", &ref_spec, &rerr))
        return ccdl_fail(err, CCDL_ERR_INPUT, "communication.control.reference: %s", rerr.text);
    json_t *a = json_loads(ref_spec, 0, NULL), *b = json_loads(spec_json, 0, NULL);
    free(ref_spec);
    int rc = 0;
    if (!a || !b) {
        rc = reference_fail(err, path, "its spec attribute is not JSON");
    } else {
        for (int k = 0; same_experiment_keys[k] && rc == 0; k++) {
            const char *key = same_experiment_keys[k];
            if (!json_equal(json_object_get(a, key), json_object_get(b, key))) {
                char why[128];
                snprintf(why, sizeof why, "a trace of a different experiment (%s differs)", key);
                rc = reference_fail(err, path, why);
            }
        }
    }
    json_decref(a);
    json_decref(b);
    if (rc) return rc;
    double *col = NULL;
    size_t count = 0;
    if (trace_read_column(path, "phases", "max_xi", &col, &count, &rerr))
        return ccdl_fail(err, CCDL_ERR_INPUT, "communication.control.reference: %s", rerr.text);
    if ((int)count != phases) {
        free(col);
        return reference_fail(err, path, "its phase count differs");
    }
    for (int k = 0; k < phases; k++) max_xi[k] = col[k];
    free(col);
    return 0;
}

/* ---------------------------------------------------------------- setup */

int control_init(control *c, const ccdl_spec *spec, const char *spec_json, ccdl_error *err) {
    memset(c, 0, sizeof *c);
    c->phases = spec_phase_count(spec);
    c->local_steps = spec->communication.local_steps;
    c->cfg = spec->communication.control;
    for (int k = 0; k < c->phases; k++) {
        c->policy[k] = spec_phase_policy(spec, k + 1);
        c->phase_target[k] = NAN;
    }
    /* constant target with factor 1 and no literal value: uncontrolled, no reference */
    if (c->cfg.target != TARGET_CONSTANT || (c->cfg.value == 0 && c->cfg.factor == 1)) return 0;
    double ref_max[SPEC_MAX_DECAYS + 1];
    if (spec_needs_reference(spec) &&
        read_reference(c->cfg.reference, spec_json, c->phases, ref_max, err))
        return -1;
    for (int k = 0; k < c->phases; k++) {
        if (c->policy[k] != POLICY_CONTROLLED) continue;
        if (c->cfg.value > 0) {
            c->phase_target[k] = c->cfg.value;
            continue;
        }
        if (!(ref_max[k] > 0))
            return ccdl_fail(err, CCDL_ERR_INPUT,
                             "communication.control.reference: %s: phase %d has no positive max Xi "
                             "(was it run with trace.measure_xi and gossip in that phase?)",
                             c->cfg.reference, k + 1);
        c->phase_target[k] = c->cfg.factor * ref_max[k];
    }
    return 0;
}

/* ---------------------------------------------------------------- one step */

static double step_target(control *c, int phase, double grad_norm) {
    if (c->cfg.target == TARGET_CONSTANT) return c->phase_target[phase - 1];
    /* adaptive: phi is an EMA of the mean gradient norm within the phase */
    if (c->phi_phase != phase)
        c->phi = grad_norm, c->phi_phase = phase;
    else
        c->phi = c->cfg.ema * c->phi + (1 - c->cfg.ema) * grad_norm;
    return c->cfg.factor * c->phi;
}

static double gossip_once(control *c, float **x, gossip *g, consensus *cons, double *theta2) {
    gossip_round(g, x, c->round++, theta2);
    return consensus_distance_estimate(cons, theta2);
}

void control_communicate(control *c, int phase, int64_t step, double grad_norm, float **x,
                         gossip *g, consensus *cons, control_result *out) {
    double theta2[cons->lay.per_rank];
    out->policy = c->policy[phase - 1];
    out->rounds = 0;
    out->capped = 0;
    out->target = NAN;
    out->theta = NAN;
    out->xi = NAN;
    switch (out->policy) {
    case POLICY_ALLREDUCE:
        consensus_average(cons, x);
        break;
    case POLICY_GOSSIP:
        out->theta = gossip_once(c, x, g, cons, theta2);
        out->rounds = 1;
        break;
    case POLICY_LOCAL:
        if ((step + 1) % c->local_steps == 0) {
            out->theta = gossip_once(c, x, g, cons, theta2);
            out->rounds = 1;
        }
        break;
    case POLICY_CONTROLLED: {
        out->target = step_target(c, phase, grad_norm);
        int exact = c->cfg.metric == METRIC_EXACT;
        /* at least the step's own round, then more until the metric meets the target */
        for (;;) {
            out->theta = gossip_once(c, x, g, cons, theta2);
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
