/* progress.h: every resumable scalar of a run, in one struct.
 *
 * The per-worker buffers of a run live in the worker-state registry (worker_state.h); all
 * the rest that a resumed run needs to continue with the same bits is here: the next step,
 * the open epoch's and phase's accumulators, consensus control's state, the wall time
 * already spent and the trace's row counts. A checkpoint stores this struct field by field
 * through progress_fields, so adding a scalar is one field here and one line in progress.c.
 * Everything else (data order, augmentation streams, learning rate, random topologies) is a
 * pure function of the spec and the step. */
#ifndef CCDL_PROGRESS_H
#define CCDL_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#include "control.h"
#include "trace.h"

/* Accumulators of the open learning-rate phase, for its /phases row. */
typedef struct {
    int32_t phase;  /* from 1 */
    double max_xi;  /* NaN until a step measures Xi */
    double rounds;  /* gossip rounds so far */
    int64_t steps;  /* steps so far */
    int64_t capped; /* steps that hit the round cap */
    traffic sent;   /* the steps' traffic, summed */
} phase_stats;

typedef struct {
    int64_t step;          /* next step to run, from 0 */
    double epoch_loss_sum; /* open epoch: sum of the steps' mean losses so far */
    double epoch_xi_sum;   /* open epoch: sum of the steps' Xi so far */
    double elapsed_s;      /* training wall time spent so far, over all resumes */
    phase_stats phase;
    control_state control;
    int64_t trace_rows[TRACE_RESULT_GROUPS]; /* rows the trace holds at this point */
} run_progress;

/* The state before step 0. */
void progress_init(run_progress *p);

/* The struct's fields for checkpoints: name, type, place. Ends with name NULL. */
typedef enum { PF_I32, PF_I64, PF_F64 } progress_field_type;
typedef struct {
    const char *name;
    progress_field_type type;
    size_t offset;
    /* 1: added after checkpoints existed (PF_F64 only): an older checkpoint lacks it, and a
     * resume from it reads NaN */
    int later;
} progress_field;
extern const progress_field progress_fields[];

#endif
