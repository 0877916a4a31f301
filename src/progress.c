/* progress.c: see progress.h. */
#include "progress.h"

#include <math.h>
#include <string.h>

void progress_init(run_progress *p) {
    memset(p, 0, sizeof *p);
    p->phase.phase = 1;
    p->phase.max_xi = NAN;
}

#define PF(type, member)                                                                           \
    { #member, type, offsetof(run_progress, member), 0 }
#define PF_LATER(member)                                                                           \
    { #member, PF_F64, offsetof(run_progress, member), 1 }

const progress_field progress_fields[] = {
    PF(PF_I64, step),
    PF(PF_F64, epoch_loss_sum),
    PF(PF_F64, epoch_xi_sum),
    PF(PF_F64, elapsed_s),
    PF(PF_I32, phase.phase),
    PF(PF_F64, phase.max_xi),
    PF(PF_F64, phase.rounds),
    PF(PF_I64, phase.steps),
    PF(PF_I64, phase.capped),
    PF_LATER(phase.sent.bytes_mean),
    PF_LATER(phase.sent.bytes_max),
    PF_LATER(phase.sent.messages_mean),
    PF_LATER(phase.sent.messages_max),
    PF(PF_F64, control.phi),
    PF(PF_I32, control.phi_phase),
    PF(PF_I64, control.round),
    {"trace_rows.steps", PF_I64, offsetof(run_progress, trace_rows[TRACE_STEPS]), 0},
    {"trace_rows.epochs", PF_I64, offsetof(run_progress, trace_rows[TRACE_EPOCHS]), 0},
    {"trace_rows.phases", PF_I64, offsetof(run_progress, trace_rows[TRACE_PHASES]), 0},
    {NULL, PF_I64, 0, 0},
};
