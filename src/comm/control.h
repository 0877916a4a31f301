/* control.h: consensus control, the paper's contribution (NOTES.md section 6).
 *
 * After the local step, a phase's policy decides the communication: exact average, one
 * gossip round, one round every H steps, or gossip rounds repeated until the consensus
 * distance (exact Xi or the estimate Theta) is at or below a target, up to a cap. Targets
 * are constant per phase (given to control_init: reference.h derives them from the
 * uncontrolled run's trace or a literal value) or adaptive (factor x an EMA of the mean
 * local gradient norm, reset at each phase).
 *
 * The configuration (control) is fixed for the run; what changes from step to step
 * (control_state) is kept apart, so a checkpoint saves it and a resume restores it. */
#ifndef CCDL_CONTROL_H
#define CCDL_CONTROL_H

#include <stdint.h>

#include "consensus.h"
#include "gossip.h"
#include "spec.h"
#include "traffic.h"

typedef struct {
    comm_policy policy[SPEC_MAX_DECAYS + 1]; /* per phase, index phase - 1 */
    int phases;
    int local_steps;
    struct spec_control cfg;
    double phase_target[SPEC_MAX_DECAYS + 1]; /* constant targets (NaN: none) */
    size_t d;                                 /* floats per mixed vector */
    traffic_model traffic;                    /* what a round sends (traffic.h) */
} control;

/* The resumable part: changes every step. Zero is the state before the first step. */
typedef struct {
    double phi;    /* adaptive: EMA of the mean gradient norm */
    int phi_phase; /* phase phi belongs to (0: none yet) */
    int64_t round; /* gossip rounds so far: time-varying topologies advance with it */
} control_state;

/* What one step's communication did. */
typedef struct {
    comm_policy policy;
    int rounds;    /* gossip rounds run */
    int capped;    /* 1 if the cap stopped the rounds above the target */
    double target; /* NaN when uncontrolled */
    double theta;  /* Theta of the last round (NaN if none) */
    double xi;     /* exact Xi after communication, if measured here (else NaN) */
    traffic sent;  /* what the workers sent (traffic.h) */
} control_result;

/* Resolve each phase's policy for vectors of d floats; phase_target[k] is the constant target
 * of phase k + 1 (NaN: none), as reference_phase_targets gives it. */
void control_init(control *c, const ccdl_spec *spec, size_t d, const double *phase_target);
void control_free(control *c);

/* One step's communication for the local workers' parameters gg->x[0] and the buffers
 * mixed with them (pointers may be swapped by gossip); the consensus distance and the
 * target are the parameters'. grad_norm is the mean over workers of ||g_i|| this step
 * (adaptive target). */
void control_communicate(const control *c, control_state *st, int phase, int64_t step,
                         double grad_norm, gossip_group *gg, consensus *cons, control_result *out);

#endif
