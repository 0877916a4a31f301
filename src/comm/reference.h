/* reference.h: constant consensus targets from the uncontrolled reference run.
 *
 * The paper's constant targets are factor x the max consensus distance Xi that the same
 * experiment reached in each phase when run uncontrolled (NOTES.md section 6). This module
 * reads that run's trace, checks it finished and describes the same experiment, and turns
 * its /phases/max_xi into plain per-phase targets for control_init. */
#ifndef CCDL_REFERENCE_H
#define CCDL_REFERENCE_H

#include "spec.h"
#include "util.h"

/* target[k] = the constant target of phase k + 1: communication.control.value if given,
 * else factor x the reference's max Xi of that phase, for controlled phases with a constant
 * target; NaN otherwise (and for every phase when factor is 1 without a value: uncontrolled).
 * spec_json is this run's canonical spec. -1 + err (CCDL_ERR_INPUT naming
 * communication.control.reference) for a missing, unfinished or foreign reference. */
int reference_phase_targets(const ccdl_spec *spec, const char *spec_json,
                            double target[SPEC_MAX_DECAYS + 1], ccdl_error *err);

#endif
