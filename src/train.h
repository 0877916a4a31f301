/* train.h: the step loop that ties data, model, optimizer, communication and trace. */
#ifndef CCDL_TRAIN_H
#define CCDL_TRAIN_H

#include <mpi.h>

#include "spec.h"
#include "util.h"

typedef struct {
    const char *trace_path; /* overrides spec->trace.path when not NULL */
    int quiet;              /* no progress lines at all */
    double progress_s;      /* seconds between progress lines within epochs; 0: none */
    int resume;             /* continue from the checkpoint if there is one (--resume) */
    int force;              /* overwrite a completed trace (--force) */
} train_options;

/* Run the experiment on all ranks of comm. Returns 0, or -1 with err on every rank
 * (CCDL_ERR_INPUT: bad input found before training, no trace written, or a checkpoint that
 * cannot be resumed, the trace untouched; CCDL_ERR_RUNTIME: failure while running, the
 * trace says completed = 0; CCDL_ERR_STOPPED: SIGTERM, SIGINT or SIGUSR1 arrived, a
 * checkpoint was written at the next step boundary and the run can be resumed).
 * With opt->resume: a completed trace is left as it is (returns 0), a checkpoint is
 * continued from, and without one the run starts fresh.
 * Outputs are never clobbered: a trace or checkpoint path holding anything but a ccdl trace
 * (checkpoint) or not a regular file is refused (CCDL_ERR_INPUT), and so is a completed
 * trace unless opt->force (or opt->resume, which leaves it alone). */
int train_run(const ccdl_spec *spec, const train_options *opt, MPI_Comm comm, ccdl_error *err);

/* Check everything train_run would check before training (spec against the rank count,
 * data files, outputs that are not ccdl's), without training. Same error contract. */
int train_validate(const ccdl_spec *spec, MPI_Comm comm, ccdl_error *err);

#endif
