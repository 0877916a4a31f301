/* reference.c: see reference.h. */
#include "reference.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "trace.h"

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
                          int *has_steps, ccdl_error *err) {
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
    /* Rows by their phase number. A phase without steps (a short run whose decays fall
     * together or at the end) has start_step == end_step; traces written before empty
     * phases got rows leave them out. Either way its max Xi is NaN, and since the
     * controlled run has the same schedule, that phase has no steps there either. */
    double *col[3] = {NULL, NULL, NULL};
    size_t count[3] = {0, 0, 0};
    static const char *const names[3] = {"phase", "max_xi", "start_step"};
    for (int c = 0; c < 3 && rc == 0; c++)
        if (trace_read_column(path, "phases", names[c], &col[c], &count[c], &rerr))
            rc = ccdl_fail(err, CCDL_ERR_INPUT, "communication.control.reference: %s", rerr.text);
    double *end = NULL;
    size_t n_end = 0;
    if (rc == 0 && trace_read_column(path, "phases", "end_step", &end, &n_end, &rerr))
        rc = ccdl_fail(err, CCDL_ERR_INPUT, "communication.control.reference: %s", rerr.text);
    for (int k = 0; k < phases; k++) max_xi[k] = NAN, has_steps[k] = 0;
    for (size_t i = 0; rc == 0 && i < count[0]; i++) {
        double ph = col[0][i];
        if (count[1] != count[0] || count[2] != count[0] || n_end != count[0])
            rc = reference_fail(err, path, "its /phases columns differ in length");
        else if (!(ph >= 1 && ph <= phases) || ph != (int)ph)
            rc = reference_fail(err, path, "its phase count differs (a phase number out of range)");
        else if (end[i] > col[2][i])
            max_xi[(int)ph - 1] = col[1][i], has_steps[(int)ph - 1] = 1;
    }
    for (int c = 0; c < 3; c++) free(col[c]);
    free(end);
    return rc;
}

int reference_phase_targets(const ccdl_spec *spec, const char *spec_json,
                            double target[SPEC_MAX_DECAYS + 1], ccdl_error *err) {
    const struct spec_control *cfg = &spec->communication.control;
    const int phases = spec_phase_count(spec);
    for (int k = 0; k < phases; k++) target[k] = NAN;
    /* constant target with factor 1 and no literal value: uncontrolled, no reference */
    if (cfg->target != TARGET_CONSTANT || (cfg->value == 0 && cfg->factor == 1)) return 0;
    double ref_max[SPEC_MAX_DECAYS + 1];
    int ref_steps[SPEC_MAX_DECAYS + 1];
    if (spec_needs_reference(spec) &&
        read_reference(cfg->reference, spec_json, phases, ref_max, ref_steps, err))
        return -1;
    for (int k = 0; k < phases; k++) {
        if (spec_phase_policy(spec, k + 1) != POLICY_CONTROLLED) continue;
        if (cfg->value > 0) {
            target[k] = cfg->value;
            continue;
        }
        if (!ref_steps[k]) continue; /* a phase without steps: nothing to control */
        if (!(ref_max[k] > 0))
            return ccdl_fail(err, CCDL_ERR_INPUT,
                             "communication.control.reference: %s: phase %d has no positive max Xi "
                             "(was it run with trace.measure_xi and gossip in that phase?)",
                             cfg->reference, k + 1);
        target[k] = cfg->factor * ref_max[k];
    }
    return 0;
}
