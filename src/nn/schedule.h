/* schedule.h: learning rate and phase at a step (NOTES.md sections 5 and 8).
 *
 * lr_peak = lr * n * local_batch / base_batch under linear scaling (else lr). Warm-up goes
 * linearly from lr to lr_peak over the warm-up steps W; after it, by kind:
 *   step:         lr_peak x decay_factor^(decays passed)
 *   cosine:       lr_peak x (1 + cos(pi (t - W) / (T - W))) / 2
 *   inverse_sqrt: lr_peak x sqrt(max(W, 1) / t)     (Vaswani et al. 2017)
 * Phase k (from 1) runs from the (k-1)-th decay_at point to the k-th, whatever the kind;
 * warm-up belongs to phase 1. schedule.extra_epochs lengthens phases: the decays sit at
 * decay_at x schedule.epochs, each moved back by the extra epochs of the phases before it, and
 * training runs spec_total_epochs. */
#ifndef CCDL_SCHEDULE_H
#define CCDL_SCHEDULE_H

#include <stdint.h>

#include "spec.h"

typedef struct {
    int kind; /* schedule_kind */
    double lr_start, lr_peak;
    int64_t steps_per_epoch, total_steps, warmup_steps;
    int n_decay;
    int64_t decay_step[SPEC_MAX_DECAYS]; /* first step with the k-th decay applied */
    double decay_factor;
} schedule;

void schedule_init(schedule *s, const ccdl_spec *spec, int64_t steps_per_epoch);
double schedule_lr(const schedule *s, int64_t step);
int schedule_phase(const schedule *s, int64_t step); /* 1 .. n_decay + 1 */
static inline int schedule_phase_count(const schedule *s) {
    return s->n_decay + 1;
}
/* [start, end) steps of phase k. */
void schedule_phase_bounds(const schedule *s, int phase, int64_t *start, int64_t *end);

#endif
