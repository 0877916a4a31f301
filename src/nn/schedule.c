/* schedule.c: see schedule.h. */
#include "schedule.h"

#include <math.h>

void schedule_init(schedule *s, const ccdl_spec *spec, int64_t steps_per_epoch) {
    double scale = 1.0;
    if (spec->schedule.scaling == LR_SCALE_LINEAR)
        scale = (double)spec->workers * spec->schedule.local_batch / spec->schedule.base_batch;
    s->kind = spec->schedule.kind;
    s->lr_start = spec->schedule.lr;
    s->lr_peak = spec->schedule.lr * scale;
    s->steps_per_epoch = steps_per_epoch;
    s->total_steps = steps_per_epoch * spec_total_epochs(spec);
    s->warmup_steps = (int64_t)llround(spec->schedule.warmup_epochs * (double)steps_per_epoch);
    s->n_decay = spec->schedule.n_decay;
    /* decay_at places the decays in the base schedule (schedule.epochs); each phase's extra
     * epochs then push its end, and every later boundary, back */
    const double base_steps = (double)steps_per_epoch * spec->schedule.epochs;
    int64_t extra = 0;
    for (int k = 0; k < s->n_decay; k++) {
        if (k < spec->schedule.n_extra) extra += spec->schedule.extra_epochs[k] * steps_per_epoch;
        s->decay_step[k] = (int64_t)llround(spec->schedule.decay_at[k] * base_steps) + extra;
    }
    s->decay_factor = spec->schedule.decay_factor;
}

int schedule_phase(const schedule *s, int64_t step) {
    int phase = 1;
    for (int k = 0; k < s->n_decay; k++)
        if (step >= s->decay_step[k]) phase = k + 2;
    return phase;
}

double schedule_lr(const schedule *s, int64_t step) {
    if (step < s->warmup_steps)
        return s->lr_start + (s->lr_peak - s->lr_start) * (double)step / (double)s->warmup_steps;
    switch (s->kind) {
    case SCHEDULE_COSINE: {
        double span = (double)(s->total_steps - s->warmup_steps);
        double frac = span > 0 ? (double)(step - s->warmup_steps) / span : 1.0;
        return s->lr_peak * 0.5 * (1.0 + cos(M_PI * frac));
    }
    case SCHEDULE_INVERSE_SQRT: {
        double w = s->warmup_steps > 0 ? (double)s->warmup_steps : 1.0;
        return s->lr_peak * sqrt(w / (double)(step > 0 ? step : 1));
    }
    default: {
        double lr = s->lr_peak;
        for (int k = 1; k < schedule_phase(s, step); k++) lr *= s->decay_factor;
        return lr;
    }
    }
}

void schedule_phase_bounds(const schedule *s, int phase, int64_t *start, int64_t *end) {
    *start = phase == 1 ? 0 : s->decay_step[phase - 2];
    *end = phase == s->n_decay + 1 ? s->total_steps : s->decay_step[phase - 1];
}
