/* train.h: the step loop that ties data, model, optimizer, communication and trace. */
#ifndef CCDL_TRAIN_H
#define CCDL_TRAIN_H

#include <mpi.h>

#include "spec.h"
#include "util.h"

typedef struct {
    const char *trace_path; /* overrides spec->trace.path when not NULL */
    int quiet;              /* no per-epoch progress lines */
} train_options;

/* Run the experiment on all ranks of comm. Returns 0, or -1 with err on every rank
 * (CCDL_ERR_INPUT: bad input found before training, no trace written; CCDL_ERR_RUNTIME:
 * failure while running, the trace says completed = 0). */
int train_run(const ccdl_spec *spec, const train_options *opt, MPI_Comm comm, ccdl_error *err);

/* Check everything train_run would check before training (spec against the rank count,
 * data files), without training. Same error contract. */
int train_validate(const ccdl_spec *spec, MPI_Comm comm, ccdl_error *err);

#endif
