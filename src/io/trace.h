/* trace.h: the HDF5 trace of one run (layout in docs/trace.md).
 *
 *   /                 attrs: format, format_version, ccdl_version, spec, n, ranks, threads,
 *                     created, completed, exit_reason
 *   /steps/<column>   one row per training step
 *   /epochs/<column>  one row per epoch
 *   /phases/<column>  one row per learning-rate phase
 *   /resumes/<column> one row per resume from a checkpoint (run history, wallclock = 1)
 *
 * Only rank 0 writes (plain HDF5 calls, no MPI-IO). The file is written in SWMR mode so that
 * a run killed at any moment leaves a file h5py can read, holding every row up to the last
 * trace_flush(); `completed` becomes 1 only in trace_close(..., completed = 1, ...).
 * Every dataset carries `units` and `description` attributes; wall-clock columns also carry
 * `wallclock = 1` so comparisons across rank layouts can skip them. */
#ifndef CCDL_TRACE_H
#define CCDL_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Root attributes `format` and `format_version`. Readers refuse another version; a trace
 * without them predates versioning and has version 1's layout. */
#define TRACE_FORMAT "ccdl-trace"
#define TRACE_FORMAT_VERSION 1

typedef struct {
    const char *version;   /* ccdl version string */
    const char *spec_json; /* canonical spec JSON text */
    int n_workers;
    int ranks;
    int threads; /* oneDNN threads per worker */
    /* text runs: the source and target vocabularies (one token per line, ids in order),
     * root attributes src_vocab / tgt_vocab, checked on resume; NULL for image runs */
    const char *src_vocab, *tgt_vocab;
} trace_meta;

typedef struct {
    int64_t step;     /* global step index, from 0 */
    int32_t epoch;    /* epoch the step belongs to, from 0 */
    int32_t phase;    /* learning-rate phase, from 1 */
    double lr;        /* learning rate used */
    double loss;      /* mean training loss over workers */
    double grad_norm; /* mean over workers of ||g_i|| */
    double xi;        /* exact consensus distance after communication (NaN if not measured) */
    double theta;     /* estimator Theta of the last gossip round (NaN if none) */
    double target;    /* consensus target this step (NaN if uncontrolled) */
    int32_t policy;   /* comm_policy of the step's phase */
    int32_t rounds;   /* gossip rounds this step (0: none) */
    int32_t capped;   /* 1 if the round cap was hit */
    double compute_s; /* wall-clock: local compute */
    double comm_s;    /* wall-clock: communication and measurement */
    /* what each worker sent this step (traffic.h): mean over workers, and the sum over the
     * step's rounds of the busiest worker's */
    double bytes_mean, bytes_max, messages_mean, messages_max;
} trace_step_row;

typedef struct {
    int32_t epoch;          /* from 0 */
    double train_loss;      /* mean training loss over the epoch's steps */
    double test_loss;       /* mean test loss of the averaged model */
    double test_acc;        /* top-1 test accuracy of the averaged model, in [0, 1] */
    double xi_mean;         /* mean Xi over the epoch's steps */
    double wall_s;          /* wall-clock seconds since the start of training */
    double worker_test_acc; /* mean over workers of their own model's accuracy */
    double val_bleu;        /* text: BLEU of greedy decoding on the validation set (else NaN) */
    double test_bleu;       /* text: the same on the test set */
    double test_ppl;        /* text: exp(test_loss) */
} trace_epoch_row;

typedef struct {
    int32_t phase;        /* from 1 */
    int64_t start_step;   /* first step of the phase */
    int64_t end_step;     /* one past the last step */
    int32_t policy;       /* comm_policy of the phase */
    double max_xi;        /* max Xi over the phase's steps (NaN if none measured) */
    double mean_rounds;   /* mean gossip rounds per step */
    int64_t capped_steps; /* steps that hit the round cap */
    double target;        /* constant target of the phase (NaN if none) */
    /* the phase's steps' traffic, summed (NaN after resuming an older checkpoint) */
    double bytes_mean, bytes_max, messages_mean, messages_max;
} trace_phase_row;

typedef struct {
    int64_t step;     /* first step run after the resume */
    int32_t ranks;    /* MPI ranks of the resumed run */
    double unix_time; /* when it resumed, seconds since 1970 */
} trace_resume_row;

/* The groups of result rows, in the order of row counts passed around (trace_row_counts,
 * trace_resume); /resumes is history and is never cut back. */
enum { TRACE_STEPS, TRACE_EPOCHS, TRACE_PHASES, TRACE_RESULT_GROUPS };

typedef struct trace trace;

/* Create (truncate) path; root attrs written with completed = 0. NULL + err on failure. */
trace *trace_create(const char *path, const trace_meta *meta, ccdl_error *err);
/* Append rows to in-memory buffers (written by trace_flush). Never fail. */
void trace_append_step(trace *t, const trace_step_row *row);
void trace_append_epoch(trace *t, const trace_epoch_row *row);
void trace_append_phase(trace *t, const trace_phase_row *row);
void trace_append_resume(trace *t, const trace_resume_row *row);
/* Rows of each result group so far (written and buffered). */
void trace_row_counts(const trace *t, int64_t rows[TRACE_RESULT_GROUPS]);

/* What is at a trace's output path: TRACE_PATH_FREE (nothing), TRACE_PATH_RUNNING (a ccdl
 * trace not completed: failed, killed or stopped), TRACE_PATH_COMPLETED, or TRACE_PATH_FOREIGN
 * (anything else: not HDF5, HDF5 that no ccdl wrote, a trace of another format version, not
 * a regular file; *why then says which). Serial; no MPI. */
enum { TRACE_PATH_FREE, TRACE_PATH_RUNNING, TRACE_PATH_COMPLETED, TRACE_PATH_FOREIGN };
int trace_path_state(const char *path, ccdl_error *why);

/* Continue the trace at path after a resume: it must be a trace of meta->spec_json holding
 * at least rows[g] rows of each result group. Its first rows[g] rows (and every /resumes
 * row) are copied into a new file with the same root attributes, completed = 0 and
 * exit_reason "running", which then replaces path atomically (rename): a crash meanwhile
 * leaves the old trace as it was. Later appends continue after those rows. NULL + err
 * (CCDL_ERR_INPUT naming the file) if the trace is missing, foreign or too short. */
trace *trace_resume(const char *path, const trace_meta *meta,
                    const int64_t rows[TRACE_RESULT_GROUPS], ccdl_error *err);
/* Write buffered rows to the file and flush it to disk. */
int trace_flush(trace *t, ccdl_error *err);
/* Flush, set completed (0/1) and exit_reason, close, free; *t = NULL. NULL-safe. */
int trace_close(trace **t, int completed, const char *exit_reason, ccdl_error *err);

/* Print the column tables as Markdown (docs/trace.md embeds them). */
void trace_print_reference(void);

/* Readers (any rank, no MPI): for reference traces and tests. */
/* Read /group/name as doubles (any numeric type). *out malloc'd, caller frees. */
int trace_read_column(const char *path, const char *group, const char *name, double **out,
                      size_t *count, ccdl_error *err);
/* Read a root attribute: string (caller frees *out) or integer. */
int trace_read_attr_string(const char *path, const char *name, char **out, ccdl_error *err);
int trace_read_attr_int(const char *path, const char *name, long *out, ccdl_error *err);

#endif
