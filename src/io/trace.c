/* trace.c: the HDF5 trace writer and readers (see trace.h, docs/trace.md).
 *
 * Writer: rank 0 only, sec2 driver, latest file format. trace_create writes everything of a
 * fixed size (groups, empty datasets, every attribute) and closes the file. Each trace_flush
 * opens it, switches to SWMR write mode, appends the buffered rows, flushes and closes it
 * again. So between flushes the file on disk is a plain, closed HDF5 file that h5py and
 * h5dump open as they are; a kill during the few milliseconds of a flush leaves a file that
 * SWMR ordering keeps consistent (readable with h5py swmr=True, or after `h5clear -s`).
 * trace_flush keeps each column's metadata corked while it grows, and H5Fflush writes raw
 * chunks before metadata, so a column never shows rows that are not on disk.
 * trace_close reopens without SWMR for the final `completed` / `exit_reason` attributes.
 *
 * Readers: plain serial HDF5, any rank, no MPI; they turn every failure into one line naming
 * the file and the object.
 *
 * Left out: concurrent SWMR readers of a live run (possible, but nothing here refreshes
 * datasets), MPI-IO, and any column type other than int32 / int64 / float64. */
#include "trace.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "filespace.h"
#include "h5util.h"

/* ------------------------------------------------------------------ column tables */

/* Adding a column: one field in the row struct (trace.h) and one line in its table. */

typedef enum { COL_I32, COL_I64, COL_F64 } col_kind;

typedef struct {
    const char *name; /* dataset name = row struct field name */
    size_t offset;    /* offsetof(row struct, field) */
    col_kind kind;
    const char *units;
    const char *description;
    int wallclock; /* 1: depends on the machine and rank layout, not on the computation */
    /* 1: added after traces existed (float64 only): a resumed older trace lacks it, and its
     * earlier rows get NaN */
    int later;
} column_def;

#define COL(type, field, kind, units, desc, wall)                                                  \
    { #field, offsetof(type, field), kind, units, desc, wall, 0 }
#define COL_LATER(type, field, units, desc)                                                        \
    { #field, offsetof(type, field), COL_F64, units, desc, 0, 1 }

static const column_def step_columns[] = {
    COL(trace_step_row, step, COL_I64, "1", "global step index, from 0", 0),
    COL(trace_step_row, epoch, COL_I32, "1", "epoch the step belongs to, from 0", 0),
    COL(trace_step_row, phase, COL_I32, "1", "learning-rate phase, from 1", 0),
    COL(trace_step_row, lr, COL_F64, "1", "learning rate used in this step", 0),
    COL(trace_step_row, loss, COL_F64, "nats",
        "mean over workers of the batch-mean softmax cross-entropy", 0),
    COL(trace_step_row, grad_norm, COL_F64, "1", "mean over workers of the L2 norm ||g_i||", 0),
    COL(trace_step_row, xi, COL_F64, "1",
        "exact consensus distance Xi = sqrt(mean_i ||xbar - x_i||^2) after communication "
        "(NaN if not measured)",
        0),
    COL(trace_step_row, theta, COL_F64, "1",
        "consensus estimate Theta = sqrt(mean_i ||x_i - x_i'||^2) of the last gossip round "
        "(NaN if none)",
        0),
    COL(trace_step_row, target, COL_F64, "1", "consensus target this step (NaN if uncontrolled)",
        0),
    COL(trace_step_row, policy, COL_I32, "1",
        "communication this step: 0 allreduce, 1 gossip, 2 local, 3 controlled", 0),
    COL(trace_step_row, rounds, COL_I32, "rounds", "gossip rounds this step (0: none)", 0),
    COL(trace_step_row, capped, COL_I32, "1", "1 if the gossip round cap was hit, else 0", 0),
    COL(trace_step_row, compute_s, COL_F64, "s", "wall-clock seconds of local compute", 1),
    COL(trace_step_row, comm_s, COL_F64, "s",
        "wall-clock seconds of communication and consensus measurement", 1),
    COL_LATER(trace_step_row, bytes_mean, "bytes",
              "bytes each worker sent this step, mean over workers, counted as if every worker "
              "were its own process: a gossip round sends d floats to each neighbour, an exact "
              "average is a ring all-reduce (2(n-1)/n x d floats), and consensus control's "
              "metric reductions count; trace.measure_xi's do not"),
    COL_LATER(trace_step_row, bytes_max, "bytes",
              "the busiest worker's bytes of each communication round this step, summed over "
              "the step's rounds (the critical path of synchronous rounds)"),
    COL_LATER(trace_step_row, messages_mean, "messages",
              "messages each worker sent this step, mean over workers (as bytes_mean)"),
    COL_LATER(trace_step_row, messages_max, "messages",
              "the busiest worker's messages of each round this step, summed over the rounds"),
};

static const column_def epoch_columns[] = {
    COL(trace_epoch_row, epoch, COL_I32, "1", "epoch index, from 0", 0),
    COL(trace_epoch_row, train_loss, COL_F64, "nats", "mean training loss over the epoch's steps",
        0),
    COL(trace_epoch_row, test_loss, COL_F64, "nats", "mean test loss of the averaged model", 0),
    COL(trace_epoch_row, test_acc, COL_F64, "1",
        "top-1 test accuracy of the averaged model, in [0, 1]", 0),
    COL(trace_epoch_row, xi_mean, COL_F64, "1", "mean consensus distance Xi over the epoch's steps",
        0),
    COL(trace_epoch_row, wall_s, COL_F64, "s", "wall-clock seconds since the start of training", 1),
    COL(trace_epoch_row, worker_test_acc, COL_F64, "1",
        "each worker's own model (parameters and BN statistics) on its fixed 1/n slice of the "
        "test set, correct answers pooled over workers: the mean of the workers' accuracies",
        0),
    COL_LATER(trace_epoch_row, val_bleu, "BLEU",
              "text: corpus BLEU-4 (sacreBLEU's default: 13a, exp smoothing) of the averaged "
              "model's greedy translations of the validation set, 0-100 (NaN for images)"),
    COL_LATER(trace_epoch_row, test_bleu, "BLEU",
              "text: the same on the test set (NaN for images)"),
    COL_LATER(trace_epoch_row, test_ppl, "1",
              "text: test perplexity exp(test_loss) of the averaged model, test_loss being the "
              "mean NLL per target token (NaN for images)"),
};

static const column_def phase_columns[] = {
    COL(trace_phase_row, phase, COL_I32, "1", "learning-rate phase index, from 1", 0),
    COL(trace_phase_row, start_step, COL_I64, "1", "first step of the phase", 0),
    COL(trace_phase_row, end_step, COL_I64, "1", "one past the last step of the phase", 0),
    COL(trace_phase_row, policy, COL_I32, "1",
        "the phase's policy: 0 allreduce, 1 gossip, 2 local, 3 controlled", 0),
    COL(trace_phase_row, max_xi, COL_F64, "1",
        "max consensus distance Xi over the phase's steps (NaN if none measured)", 0),
    COL(trace_phase_row, mean_rounds, COL_F64, "rounds", "mean gossip rounds per step", 0),
    COL(trace_phase_row, capped_steps, COL_I64, "1", "steps that hit the gossip round cap", 0),
    COL(trace_phase_row, target, COL_F64, "1",
        "constant consensus target of the phase (NaN if uncontrolled or adaptive)", 0),
    COL_LATER(trace_phase_row, bytes_mean, "bytes",
              "/steps/bytes_mean summed over the phase's steps: bytes each worker sent"),
    COL_LATER(trace_phase_row, bytes_max, "bytes",
              "/steps/bytes_max summed over the phase's steps"),
    COL_LATER(trace_phase_row, messages_mean, "messages",
              "/steps/messages_mean summed over the phase's steps"),
    COL_LATER(trace_phase_row, messages_max, "messages",
              "/steps/messages_max summed over the phase's steps"),
};

/* Run history: every column is wallclock = 1, so traces of a run resumed any number of
 * times compare equal to the uninterrupted run's (tests/compare_traces.py skips them). */
static const column_def resume_columns[] = {
    COL(trace_resume_row, step, COL_I64, "1", "first step run after resuming from a checkpoint", 1),
    COL(trace_resume_row, ranks, COL_I32, "1", "MPI ranks of the resumed run", 1),
    COL(trace_resume_row, unix_time, COL_F64, "s", "when the run resumed, seconds since 1970 (UTC)",
        1),
};

#undef COL

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

typedef struct {
    const char *name; /* group under the root */
    const column_def *columns;
    size_t n_columns;
    size_t row_size;
    hsize_t chunk_rows;
} group_def;

enum { GROUP_STEPS, GROUP_EPOCHS, GROUP_PHASES, GROUP_RESUMES, N_GROUPS };
_Static_assert((int)GROUP_STEPS == (int)TRACE_STEPS && (int)GROUP_EPOCHS == (int)TRACE_EPOCHS &&
                   (int)GROUP_PHASES == (int)TRACE_PHASES &&
                   (int)GROUP_RESUMES == (int)TRACE_RESULT_GROUPS,
               "result groups come first, in trace.h's order");

/* No compression: a compressed chunk changes size each time a flush rewrites it, lands at a
 * new address, and SWMR mode never reuses the old space. Flushing every 100 steps made a
 * 30k-step file 25 MB with deflate, 2.9 MB without. Uncompressed chunks are rewritten in
 * place. */
static const group_def groups[N_GROUPS] = {
    /* steps: many rows; 4096-row chunks (32 KiB of float64) keep the chunk index short */
    {"steps", step_columns, COUNT_OF(step_columns), sizeof(trace_step_row), 4096},
    /* epochs and phases: tens of rows; small chunks keep small files small */
    {"epochs", epoch_columns, COUNT_OF(epoch_columns), sizeof(trace_epoch_row), 64},
    {"phases", phase_columns, COUNT_OF(phase_columns), sizeof(trace_phase_row), 64},
    {"resumes", resume_columns, COUNT_OF(resume_columns), sizeof(trace_resume_row), 64},
};

/* Print the column tables as Markdown (for docs/trace.md and `ccdl trace-columns`). */
void trace_print_reference(void) {
    static const char *const kind_names[] = {"int32", "int64", "float64"};
    for (int gi = 0; gi < N_GROUPS; gi++) {
        printf("%s### /%s\n\n| column | dtype | units | meaning |\n|---|---|---|---|\n",
               gi ? "\n" : "", groups[gi].name);
        for (size_t c = 0; c < groups[gi].n_columns; c++) {
            const column_def *cd = &groups[gi].columns[c];
            printf("| `%s` | %s | %s | ", cd->name, kind_names[cd->kind], cd->units);
            for (const char *ch = cd->description; *ch; ch++) /* '|' would split the cell */
                fputs(*ch == '|' ? "\\|" : (char[2]){*ch, 0}, stdout);
            printf("%s |\n", cd->wallclock ? " (`wallclock = 1`)" : "");
        }
    }
}

/* ------------------------------------------------------------------ HDF5 helpers */

static hid_t mem_type(col_kind k) {
    switch (k) {
    case COL_I32:
        return H5T_NATIVE_INT32;
    case COL_I64:
        return H5T_NATIVE_INT64;
    case COL_F64:
        break;
    }
    return H5T_NATIVE_DOUBLE;
}

static size_t kind_size(col_kind k) {
    return k == COL_I32 ? 4 : 8;
}

/* ------------------------------------------------------------------ the writer */

typedef struct {
    hid_t group;
    hid_t *dsets;    /* one per column, in table order */
    char *rows;      /* buffered rows not yet in the file */
    size_t n_rows;   /* buffered */
    size_t cap_rows; /* allocated */
    hsize_t in_file; /* rows already written */
} group_state;

struct trace {
    char *path;
    hid_t file;
    group_state g[N_GROUPS];
    void *scratch; /* one column of the largest flush, gathered from the rows */
    size_t scratch_bytes;
    int failed; /* a flush failed: its rows are dropped, and no more are written */
};

/* Disk kept in reserve beyond the file's end between flushes, for the final attributes
 * (exit_reason, completed) of a run whose disk fills up. */
enum { FINAL_RESERVE = 64 * 1024 };

static void iso8601_utc_now(char out[32]) {
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Close every HDF5 handle of t, going on past failures so nothing stays open; -1 if any
 * close failed. */
static int close_handles(trace *t) {
    int rc = 0;
    for (int gi = 0; gi < N_GROUPS; gi++) {
        group_state *gs = &t->g[gi];
        if (gs->dsets)
            for (size_t c = 0; c < groups[gi].n_columns; c++)
                if (gs->dsets[c] >= 0 && H5Dclose(gs->dsets[c]) < 0) rc = -1;
        if (gs->group >= 0 && H5Gclose(gs->group) < 0) rc = -1;
        gs->group = -1;
        if (gs->dsets)
            for (size_t c = 0; c < groups[gi].n_columns; c++) gs->dsets[c] = -1;
    }
    if (t->file >= 0 && H5Fclose(t->file) < 0) rc = -1;
    t->file = -1;
    return rc;
}

static void free_trace(trace *t) {
    for (int gi = 0; gi < N_GROUPS; gi++) {
        free(t->g[gi].dsets);
        free(t->g[gi].rows);
    }
    free(t->scratch);
    free(t->path);
    free(t);
}

/* One column: 1-D, starts empty, unlimited, chunked, with its attributes. */
static hid_t create_column(hid_t group, const group_def *gd, const column_def *cd) {
    hsize_t dims = 0, maxdims = H5S_UNLIMITED, chunk = gd->chunk_rows;
    hid_t space = -1, dcpl = -1, dset = -1;
    int ok = 0;
    if ((space = H5Screate_simple(1, &dims, &maxdims)) < 0) goto done;
    if ((dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0) goto done;
    if (H5Pset_chunk(dcpl, 1, &chunk) < 0) goto done;
    dset = H5Dcreate2(group, cd->name, mem_type(cd->kind), space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dset < 0) goto done;
    if (h5_attr_write_string(dset, "units", cd->units, 1) < 0) goto done;
    if (h5_attr_write_string(dset, "description", cd->description, 1) < 0) goto done;
    if (cd->wallclock && h5_attr_write_int(dset, "wallclock", 1, 1) < 0) goto done;
    ok = 1;
done:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    if (!ok && dset >= 0) {
        H5Dclose(dset);
        dset = -1;
    }
    return dset;
}

/* created: the original creation time when a resume rewrites the file, else NULL (now). */
static int write_root_attrs(hid_t file, const trace_meta *meta, const char *created_at) {
    char created[32];
    iso8601_utc_now(created);
    if (created_at) snprintf(created, sizeof created, "%s", created_at);
    if (h5_attr_write_string(file, "format", TRACE_FORMAT, 1) < 0) return -1;
    if (h5_attr_write_int(file, "format_version", TRACE_FORMAT_VERSION, 1) < 0) return -1;
    if (h5_attr_write_string(file, "ccdl_version", meta->version, 1) < 0) return -1;
    if (h5_attr_write_string(file, "spec", meta->spec_json, 1) < 0) return -1;
    if (h5_attr_write_int(file, "n", meta->n_workers, 1) < 0) return -1;
    if (h5_attr_write_int(file, "ranks", meta->ranks, 1) < 0) return -1;
    if (h5_attr_write_int(file, "threads", meta->threads, 1) < 0) return -1;
    if (h5_attr_write_string(file, "created", created, 1) < 0) return -1;
    if (h5_attr_write_int(file, "completed", 0, 1) < 0) return -1;
    if (h5_attr_write_string(file, "exit_reason", "running", 1) < 0) return -1;
    if (meta->src_vocab && h5_attr_write_string(file, "src_vocab", meta->src_vocab, 1) < 0)
        return -1;
    if (meta->tgt_vocab && h5_attr_write_string(file, "tgt_vocab", meta->tgt_vocab, 1) < 0)
        return -1;
    return 0;
}

/* File access for the writer: the latest format (SWMR needs it) and no file locks. HDF5
 * locks a file for as long as a reader has it open; with locks, a notebook or `ccdl-sweep
 * status` reading the trace at the moment of a flush would make the flush, and the run,
 * fail. SWMR is the protocol that keeps readers consistent here, not the lock. */
static hid_t writer_fapl(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    if (H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0 ||
        H5Pset_file_locking(fapl, 0, 1) < 0) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

/* Reopen the file for one flush in SWMR write mode (only extents and raw data change, which
 * is what SWMR allows), then every group and column by name. */
static int open_handles(trace *t) {
    hid_t fapl = writer_fapl();
    if (fapl < 0) return -1;
    /* SWMR from the open itself: a plain RDWR open followed by H5Fstart_swmr_write would
     * leave a window where a kill marks the file "open for write" for every reader. */
    t->file = H5Fopen(t->path, H5F_ACC_RDWR | H5F_ACC_SWMR_WRITE, fapl);
    H5Pclose(fapl);
    if (t->file < 0) return -1;
    for (int gi = 0; gi < N_GROUPS; gi++) {
        const group_def *gd = &groups[gi];
        if ((t->g[gi].group = H5Gopen2(t->file, gd->name, H5P_DEFAULT)) < 0) return -1;
        for (size_t c = 0; c < gd->n_columns; c++)
            if ((t->g[gi].dsets[c] = H5Dopen2(t->g[gi].group, gd->columns[c].name, H5P_DEFAULT)) <
                0)
                return -1;
    }
    return 0;
}

/* Create path (truncating it) with every group and column, empty. */
static trace *create_file(const char *path, const trace_meta *meta, const char *created_at,
                          ccdl_error *err) {
    h5_quiet();
    char why[256];
    /* An open(2) first gives the user the real reason (ENOENT, EACCES, EISDIR...) that the
     * HDF5 error stack would bury; H5Fcreate then truncates the empty file. */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) {
        ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: cannot create trace file: %s", path, strerror(errno));
        return NULL;
    }
    close(fd);
    /* room for the empty trace and the final attributes, or a clear refusal */
    const size_t attrs = strlen(meta->spec_json ? meta->spec_json : "") +
                         strlen(meta->src_vocab ? meta->src_vocab : "") +
                         strlen(meta->tgt_vocab ? meta->tgt_vocab : "");
    if (filespace_reserve(path, 2 * FINAL_RESERVE + attrs)) {
        ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: no room to create the trace: %s", path,
                  strerror(errno));
        unlink(path);
        return NULL;
    }

    trace *t = xcalloc(1, sizeof *t);
    t->path = xstrdup(path);
    t->file = -1;
    for (int gi = 0; gi < N_GROUPS; gi++) {
        t->g[gi].group = -1;
        t->g[gi].dsets = xmalloc_array(groups[gi].n_columns, sizeof(hid_t));
        for (size_t c = 0; c < groups[gi].n_columns; c++) t->g[gi].dsets[c] = -1;
    }

    const char *stage = "cannot create file";
    /* SWMR needs the latest format (v3 superblock, extensible-array chunk indexes). */
    hid_t fapl = writer_fapl();
    if (fapl < 0) goto fail;
    t->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (t->file < 0) goto fail;

    stage = "cannot write root attributes";
    if (write_root_attrs(t->file, meta, created_at) < 0) goto fail;

    for (int gi = 0; gi < N_GROUPS; gi++) {
        stage = "cannot create groups and columns";
        const group_def *gd = &groups[gi];
        t->g[gi].group = H5Gcreate2(t->file, gd->name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (t->g[gi].group < 0) goto fail;
        for (size_t c = 0; c < gd->n_columns; c++) {
            t->g[gi].dsets[c] = create_column(t->g[gi].group, gd, &gd->columns[c]);
            if (t->g[gi].dsets[c] < 0) goto fail;
        }
    }

    /* Closed between flushes: a kill now leaves a plain, complete (empty) trace. */
    stage = "cannot close";
    if (close_handles(t) < 0) goto fail;
    return t;

fail:
    ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: %s (%s)", path, stage, h5_reason(why));
    close_handles(t);
    free_trace(t);
    return NULL;
}

trace *trace_create(const char *path, const trace_meta *meta, ccdl_error *err) {
    static const trace_meta no_meta = {0};
    return create_file(path, meta ? meta : &no_meta, NULL, err);
}

/* ------------------------------------------------------------------ appending */

static void append_row(group_state *gs, size_t row_size, const void *row) {
    if (gs->n_rows == gs->cap_rows) {
        gs->cap_rows = gs->cap_rows ? 2 * gs->cap_rows : 256;
        gs->rows = xrealloc(gs->rows, size_mul(gs->cap_rows, row_size));
    }
    memcpy(gs->rows + gs->n_rows * row_size, row, row_size);
    gs->n_rows++;
}

void trace_append_step(trace *t, const trace_step_row *row) {
    if (t) append_row(&t->g[GROUP_STEPS], sizeof *row, row);
}
void trace_append_epoch(trace *t, const trace_epoch_row *row) {
    if (t) append_row(&t->g[GROUP_EPOCHS], sizeof *row, row);
}
void trace_append_phase(trace *t, const trace_phase_row *row) {
    if (t) append_row(&t->g[GROUP_PHASES], sizeof *row, row);
}
void trace_append_resume(trace *t, const trace_resume_row *row) {
    if (t) append_row(&t->g[GROUP_RESUMES], sizeof *row, row);
}

void trace_row_counts(const trace *t, int64_t rows[TRACE_RESULT_GROUPS]) {
    for (int gi = 0; gi < TRACE_RESULT_GROUPS; gi++)
        rows[gi] = t ? (int64_t)(t->g[gi].in_file + t->g[gi].n_rows) : 0;
}

/* Extend one column by n rows and write them (gathered from the row buffer into scratch). */
static int write_column(trace *t, hid_t dset, const group_state *gs, size_t row_size,
                        const column_def *cd) {
    size_t n = gs->n_rows, esize = kind_size(cd->kind);
    if (t->scratch_bytes < n * esize) {
        t->scratch_bytes = n * esize;
        t->scratch = xrealloc(t->scratch, t->scratch_bytes);
    }
    char *dst = t->scratch;
    const char *src = gs->rows + cd->offset;
    for (size_t i = 0; i < n; i++) memcpy(dst + i * esize, src + i * row_size, esize);

    hsize_t start = gs->in_file, count = n, new_len = gs->in_file + n;
    hid_t fspace = -1, mspace = -1;
    int ok = 0;
    if (H5Dset_extent(dset, &new_len) < 0) goto done;
    if ((fspace = H5Dget_space(dset)) < 0) goto done;
    if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0) goto done;
    if ((mspace = H5Screate_simple(1, &count, NULL)) < 0) goto done;
    if (H5Dwrite(dset, mem_type(cd->kind), mspace, fspace, H5P_DEFAULT, t->scratch) < 0) goto done;
    ok = 1;
done:
    if (mspace >= 0 && H5Sclose(mspace) < 0) ok = 0;
    if (fspace >= 0 && H5Sclose(fspace) < 0) ok = 0;
    return ok ? 0 : -1;
}

/* An upper bound on the bytes the pending rows add to the file: every chunk they start,
 * whole, plus the chunk index and heap blocks HDF5 allocates for them. */
static uint64_t pending_bytes(const trace *t) {
    uint64_t bytes = 0;
    for (int gi = 0; gi < N_GROUPS; gi++) {
        const group_state *gs = &t->g[gi];
        if (gs->n_rows == 0) continue;
        hsize_t ch = groups[gi].chunk_rows;
        uint64_t new_chunks =
            (gs->in_file + gs->n_rows + ch - 1) / ch - (gs->in_file + ch - 1) / ch;
        bytes += groups[gi].n_columns * (new_chunks * ch * 8 + 4096);
    }
    return bytes + 64 * 1024;
}

/* After a failed write: put every growing column back at its old length, so the file
 * never shows rows whose data did not reach it. Best effort (the file may be failing). */
static void restore_lengths(trace *t) {
    for (int gi = 0; gi < N_GROUPS; gi++) {
        group_state *gs = &t->g[gi];
        if (gs->n_rows == 0 || gs->group < 0) continue;
        for (size_t c = 0; c < groups[gi].n_columns; c++)
            if (gs->dsets[c] >= 0) H5Dset_extent(gs->dsets[c], &gs->in_file);
    }
    H5Eclear2(H5E_DEFAULT);
}

/* A failed flush: its rows are dropped (they never reach the file) and the trace takes no
 * more; trace_close still writes the exit reason if the disk allows. */
static int flush_failed(trace *t, int restore) {
    if (restore) restore_lengths(t);
    close_handles(t);
    for (int gi = 0; gi < N_GROUPS; gi++) t->g[gi].n_rows = 0;
    t->failed = 1;
    return -1;
}

int trace_flush(trace *t, ccdl_error *err) {
    if (!t) return 0;
    char why[256];
    if (t->failed)
        return ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: an earlier write failed; no more rows",
                         t->path);
    int rc = 0, pending = 0;
    for (int gi = 0; gi < N_GROUPS; gi++) pending += t->g[gi].n_rows > 0;
    if (!pending) return 0;
    /* The disk first: a full disk or quota refuses the rows here, before any write, and
     * the reserve left over from the last flush still holds the final attributes. */
    uint64_t need = pending_bytes(t);
    if (filespace_reserve(t->path, need + FINAL_RESERVE) != 0) {
        rc = ccdl_fail(err, CCDL_ERR_RUNTIME,
                       "%s: no room for the next %llu step rows (%s: %llu bytes); the trace "
                       "keeps its first %llu",
                       t->path, (unsigned long long)t->g[GROUP_STEPS].n_rows, strerror(errno),
                       (unsigned long long)need, (unsigned long long)t->g[GROUP_STEPS].in_file);
        flush_failed(t, 0);
        return rc;
    }
    if (open_handles(t) < 0) {
        rc = ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: cannot reopen to append (%s)", t->path,
                       h5_reason(why));
        return flush_failed(t, 0);
    }
    /* Cork each growing column: its new extent must not reach the disk (by a cache eviction)
     * before its rows do. Uncorked only after every write, just before H5Fflush. */
    for (int gi = 0; gi < N_GROUPS && rc == 0; gi++) {
        if (t->g[gi].n_rows == 0) continue;
        for (size_t c = 0; c < groups[gi].n_columns && rc == 0; c++)
            if (H5Odisable_mdc_flushes(t->g[gi].dsets[c]) < 0)
                rc =
                    ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: cannot hold metadata of /%s/%s (%s)",
                              t->path, groups[gi].name, groups[gi].columns[c].name, h5_reason(why));
    }
    for (int gi = 0; gi < N_GROUPS && rc == 0; gi++) {
        group_state *gs = &t->g[gi];
        const group_def *gd = &groups[gi];
        if (gs->n_rows == 0) continue;
        for (size_t c = 0; c < gd->n_columns && rc == 0; c++)
            if (write_column(t, gs->dsets[c], gs, gd->row_size, &gd->columns[c]) < 0)
                rc = ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: cannot write /%s/%s (%s)", t->path,
                               gd->name, gd->columns[c].name, h5_reason(why));
    }
    /* A failed write: the old lengths go back while still corked, so no new length ever
     * reaches the disk. */
    if (rc < 0) restore_lengths(t);
    /* uncork everything corked above, also after a failure; enabling flushes of an object
     * that is not corked is an HDF5 error, hence the H5Oare_mdc_flushes_disabled test */
    for (int gi = 0; gi < N_GROUPS; gi++) {
        if (t->g[gi].n_rows == 0) continue;
        for (size_t c = 0; c < groups[gi].n_columns; c++) {
            hbool_t corked = 0;
            hid_t dset = t->g[gi].dsets[c];
            if (H5Oare_mdc_flushes_disabled(dset, &corked) < 0 ||
                (corked && H5Oenable_mdc_flushes(dset) < 0))
                if (rc == 0)
                    rc = ccdl_fail(err, CCDL_ERR_RUNTIME,
                                   "%s: cannot release metadata of /%s/%s (%s)", t->path,
                                   groups[gi].name, groups[gi].columns[c].name, h5_reason(why));
        }
    }
    if (rc < 0) return flush_failed(t, 1);
    /* H5Fflush writes raw chunks before metadata, so a kill inside it leaves each column at its
     * old or its new length with every visible row on disk. Columns may differ by this one
     * flush (their headers are written one by one). An I/O error inside it: the old lengths
     * go back before the close writes the remaining metadata. */
    if (H5Fflush(t->file, H5F_SCOPE_GLOBAL) < 0) {
        rc = ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: cannot flush (%s)", t->path, h5_reason(why));
        return flush_failed(t, 1);
    }
    for (int gi = 0; gi < N_GROUPS; gi++) {
        t->g[gi].in_file += t->g[gi].n_rows;
        t->g[gi].n_rows = 0;
    }
    /* closing ends SWMR mode and clears the superblock's open-for-write mark */
    if (close_handles(t) < 0) {
        t->failed = 1;
        return ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: cannot close after flush (%s)", t->path,
                         h5_reason(why));
    }
    return 0;
}

int trace_close(trace **tp, int completed, const char *exit_reason, ccdl_error *err) {
    if (!tp || !*tp) return 0;
    trace *t = *tp;
    *tp = NULL;
    char why[256];
    /* After a failed flush the caller's reason already tells it; a flush failing now makes
     * its own error the reason. Either way the run is not complete. */
    int rc = 0;
    if (t->failed) {
        completed = 0;
    } else if (trace_flush(t, err) < 0) {
        rc = -1;
        completed = 0;
        exit_reason = err->text;
    }

    /* Reopen without SWMR for the two final values, only with room on disk for them: a
     * metadata write failing half way could break the file's root. A kill between the
     * flush above and the close below leaves completed = 0, which is true. */
    ccdl_error local;
    ccdl_error *e = rc < 0 ? &local : err; /* the first error is the one reported */
    if (filespace_reserve(t->path, FINAL_RESERVE) != 0) {
        int r = ccdl_fail(e, CCDL_ERR_RUNTIME, "%s: no room on disk to record the exit reason (%s)",
                          t->path, strerror(errno));
        free_trace(t);
        return r;
    }
    hid_t fapl = writer_fapl();
    hid_t file = fapl >= 0 ? H5Fopen(t->path, H5F_ACC_RDWR, fapl) : -1;
    if (fapl >= 0) H5Pclose(fapl);
    if (file < 0) {
        rc = ccdl_fail(e, CCDL_ERR_RUNTIME, "%s: cannot reopen to mark completion (%s)", t->path,
                       h5_reason(why));
    } else {
        /* exit_reason on disk first, so that completed = 1 always comes with its reason */
        if (h5_attr_write_string(file, "exit_reason", exit_reason, 0) < 0 ||
            H5Fflush(file, H5F_SCOPE_LOCAL) < 0 ||
            h5_attr_write_int(file, "completed", completed ? 1 : 0, 0) < 0)
            rc = ccdl_fail(e, CCDL_ERR_RUNTIME, "%s: cannot write completion attributes (%s)",
                           t->path, h5_reason(why));
        if (H5Fclose(file) < 0 && rc == 0)
            rc = ccdl_fail(e, CCDL_ERR_RUNTIME, "%s: cannot close (%s)", t->path, h5_reason(why));
    }
    filespace_release(t->path);
    free_trace(t);
    return rc;
}

/* ------------------------------------------------------------------ readers */

/* Open read-only. SWMR-read first: it is the only mode that opens a file whose SWMR writer
 * was killed (its superblock still says "open for SWMR write"); plain read-only for files
 * written without SWMR. Error names the file. */
static hid_t open_for_reading(const char *path, ccdl_error *err) {
    h5_quiet();
    if (check_input_file(path, err)) return -1;
    if (H5Fis_hdf5(path) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: not an HDF5 file", path);
    }
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
    if (file < 0) {
        H5Eclear2(H5E_DEFAULT);
        file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    }
    if (file < 0) {
        char why[256];
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot open HDF5 file (%s)", path,
                         h5_reason(why));
    }
    /* a trace of another format version is refused by every reader */
    if (H5Aexists(file, "format_version") > 0) {
        long version = 0;
        hid_t attr = h5_open_attr(file, path, "format_version", err);
        int ok = attr >= 0 && H5Aread(attr, H5T_NATIVE_LONG, &version) >= 0;
        if (attr >= 0) H5Aclose(attr);
        if (!ok || version != TRACE_FORMAT_VERSION) {
            H5Fclose(file);
            H5Eclear2(H5E_DEFAULT);
            return ok ? ccdl_fail(err, CCDL_ERR_INPUT,
                                  "%s: trace format version %ld; this ccdl reads version %d", path,
                                  version, TRACE_FORMAT_VERSION)
                      : ccdl_fail(err, CCDL_ERR_INPUT, "%s: unreadable format_version", path);
        }
    }
    H5Eclear2(H5E_DEFAULT);
    return file;
}

int trace_read_column(const char *path, const char *group, const char *name, double **out,
                      size_t *count, ccdl_error *err) {
    *out = NULL;
    *count = 0;
    hid_t file = open_for_reading(path, err);
    if (file < 0) return -1;
    char why[256], gpath[512], dpath[1024];
    snprintf(gpath, sizeof gpath, "/%s", group);
    snprintf(dpath, sizeof dpath, "/%s/%s", group, name);
    int rc = -1;
    hid_t dset = -1, space = -1, type = -1;
    /* H5Lexists on each level: H5Dopen on a missing path only says "not found" somewhere */
    if (H5Lexists(file, gpath, H5P_DEFAULT) <= 0) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: no group %s", path, gpath);
        goto done;
    }
    if (H5Lexists(file, dpath, H5P_DEFAULT) <= 0) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: no column %s", path, dpath);
        goto done;
    }
    if ((dset = H5Dopen2(file, dpath, H5P_DEFAULT)) < 0) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: %s is not a dataset (%s)", path, dpath, h5_reason(why));
        goto done;
    }
    if ((type = H5Dget_type(dset)) < 0 || (space = H5Dget_space(dset)) < 0) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot inspect %s (%s)", path, dpath, h5_reason(why));
        goto done;
    }
    H5T_class_t cls = H5Tget_class(type);
    if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: %s is not numeric", path, dpath);
        goto done;
    }
    if (H5Sget_simple_extent_ndims(space) != 1) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: %s is not one-dimensional", path, dpath);
        goto done;
    }
    hsize_t n = 0;
    if (H5Sget_simple_extent_dims(space, &n, NULL) < 0) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot inspect %s (%s)", path, dpath, h5_reason(why));
        goto done;
    }
    double *buf = xmalloc_array((size_t)n, sizeof(double));
    /* HDF5 converts any integer or float type to double on read */
    if (n > 0 && H5Dread(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        free(buf);
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot read %s (%s)", path, dpath, h5_reason(why));
        goto done;
    }
    *out = buf;
    *count = (size_t)n;
    rc = 0;
done:
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (dset >= 0) H5Dclose(dset);
    H5Fclose(file);
    H5Eclear2(H5E_DEFAULT);
    return rc;
}

int trace_read_attr_string(const char *path, const char *name, char **out, ccdl_error *err) {
    *out = NULL;
    hid_t file = open_for_reading(path, err);
    if (file < 0) return -1;
    int rc = h5_attr_read_string(file, path, name, out, err);
    H5Fclose(file);
    return rc;
}

int trace_read_attr_int(const char *path, const char *name, long *out, ccdl_error *err) {
    *out = 0;
    hid_t file = open_for_reading(path, err);
    if (file < 0) return -1;
    char why[256];
    int rc = -1;
    hid_t attr = -1, ftype = -1;
    if ((attr = h5_open_attr(file, path, name, err)) < 0) goto done;
    if ((ftype = H5Aget_type(attr)) < 0) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot inspect attribute %s (%s)", path, name,
                  h5_reason(why));
        goto done;
    }
    if (H5Tget_class(ftype) != H5T_INTEGER) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: attribute %s is not an integer", path, name);
        goto done;
    }
    long v = 0;
    if (H5Aread(attr, H5T_NATIVE_LONG, &v) < 0) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot read attribute %s (%s)", path, name,
                  h5_reason(why));
        goto done;
    }
    *out = v;
    rc = 0;
done:
    if (ftype >= 0) H5Tclose(ftype);
    if (attr >= 0) H5Aclose(attr);
    H5Fclose(file);
    H5Eclear2(H5E_DEFAULT);
    return rc;
}

/* ------------------------------------------------------------------ resuming */

/* A text run's vocabulary must be the one the trace was started with: the same spec on
 * other data files would otherwise continue with other token ids. */
static int vocab_differs(hid_t old, const char *path, const char *name, const char *want,
                         ccdl_error *err) {
    if (!want) return 0;
    char *have = NULL;
    if (h5_attr_read_string(old, path, name, &have, err)) return -1;
    const int differs = strcmp(have, want) != 0;
    free(have);
    if (differs)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "%s: %s: the vocabulary built from data.path is not the run's (the "
                         "corpus changed since the run started); not resuming",
                         path, name);
    return 0;
}

/* The first n rows of column cd of an open trace, scattered into the group's row buffer. */
static int read_rows(trace *t, hid_t file, const char *path, int gi, const column_def *cd,
                     hsize_t n, ccdl_error *err) {
    const group_def *gd = &groups[gi];
    char dpath[256], why[256];
    snprintf(dpath, sizeof dpath, "/%s/%s", gd->name, cd->name);
    hid_t dset = -1, space = -1, mspace = -1;
    int rc = -1;
    hsize_t len = 0, start = 0;
    if (H5Lexists(file, dpath, H5P_DEFAULT) <= 0) {
        if (cd->later) { /* a trace from before the column: its rows did not have it */
            group_state *gs = &t->g[gi];
            const double nan = NAN;
            for (hsize_t i = 0; i < n; i++)
                memcpy(gs->rows + i * gd->row_size + cd->offset, &nan, sizeof nan);
            rc = 0;
            goto done;
        }
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: no column %s: not a ccdl trace of this version", path,
                  dpath);
        goto done;
    }
    if ((dset = H5Dopen2(file, dpath, H5P_DEFAULT)) < 0 || (space = H5Dget_space(dset)) < 0 ||
        H5Sget_simple_extent_ndims(space) != 1 ||
        H5Sget_simple_extent_dims(space, &len, NULL) < 0) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: %s is not a trace column (%s)", path, dpath,
                  h5_reason(why));
        goto done;
    }
    if (len < n) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: %s has %llu rows, the checkpoint needs %llu", path,
                  dpath, (unsigned long long)len, (unsigned long long)n);
        goto done;
    }
    if (n == 0) {
        rc = 0;
        goto done;
    }
    size_t esize = kind_size(cd->kind);
    if (t->scratch_bytes < n * esize) {
        t->scratch_bytes = n * esize;
        t->scratch = xrealloc(t->scratch, t->scratch_bytes);
    }
    if (H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, NULL, &n, NULL) < 0 ||
        (mspace = H5Screate_simple(1, &n, NULL)) < 0 ||
        H5Dread(dset, mem_type(cd->kind), mspace, space, H5P_DEFAULT, t->scratch) < 0) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot read %s (%s)", path, dpath, h5_reason(why));
        goto done;
    }
    group_state *gs = &t->g[gi];
    for (hsize_t i = 0; i < n; i++)
        memcpy(gs->rows + i * gd->row_size + cd->offset, (char *)t->scratch + i * esize, esize);
    rc = 0;
done:
    if (mspace >= 0) H5Sclose(mspace);
    if (space >= 0) H5Sclose(space);
    if (dset >= 0) H5Dclose(dset);
    H5Eclear2(H5E_DEFAULT);
    return rc;
}

/* Rows of an existing group (its first column's length; 0 if the group is missing). */
static hsize_t group_rows(hid_t file, int gi) {
    char dpath[256];
    snprintf(dpath, sizeof dpath, "/%s/%s", groups[gi].name, groups[gi].columns[0].name);
    hsize_t len = 0;
    if (H5Lexists(file, dpath, H5P_DEFAULT) > 0) {
        hid_t dset = H5Dopen2(file, dpath, H5P_DEFAULT);
        hid_t space = dset >= 0 ? H5Dget_space(dset) : -1;
        if (space < 0 || H5Sget_simple_extent_dims(space, &len, NULL) < 0) len = 0;
        if (space >= 0) H5Sclose(space);
        if (dset >= 0) H5Dclose(dset);
    }
    H5Eclear2(H5E_DEFAULT);
    return len;
}

int trace_path_state(const char *path, ccdl_error *why) {
    struct stat st;
    ccdl_fail(why, CCDL_ERR_INPUT, "%s: exists and is not a ccdl trace", path);
    if (stat(path, &st) != 0) return errno == ENOENT ? TRACE_PATH_FREE : TRACE_PATH_FOREIGN;
    if (!S_ISREG(st.st_mode)) return TRACE_PATH_FOREIGN;
    ccdl_error e;
    char *version = NULL;
    long completed = 0;
    int ours = trace_read_attr_string(path, "ccdl_version", &version, &e) == 0 &&
               trace_read_attr_int(path, "completed", &completed, &e) == 0;
    if (!ours && strstr(e.text, "format version")) *why = e; /* ours, but of another version */
    free(version);
    if (!ours) return TRACE_PATH_FOREIGN;
    return completed == 1 ? TRACE_PATH_COMPLETED : TRACE_PATH_RUNNING;
}

trace *trace_resume(const char *path, const trace_meta *meta,
                    const int64_t rows[TRACE_RESULT_GROUPS], ccdl_error *err) {
    hid_t old = open_for_reading(path, err);
    if (old < 0) {
        err->kind = CCDL_ERR_INPUT;
        return NULL;
    }
    char *spec = NULL, *created = NULL, tmp[1100];
    trace *t = NULL;
    if (h5_attr_read_string(old, path, "spec", &spec, err) ||
        h5_attr_read_string(old, path, "created", &created, err))
        goto fail;
    if (strcmp(spec, meta->spec_json) != 0) {
        ccdl_fail(err, CCDL_ERR_INPUT,
                  "%s: the trace belongs to another spec than the checkpoint; not resuming", path);
        goto fail;
    }
    if (vocab_differs(old, path, "src_vocab", meta->src_vocab, err) ||
        vocab_differs(old, path, "tgt_vocab", meta->tgt_vocab, err))
        goto fail;
    /* the copy goes beside the trace, so the rename stays on one file system */
    snprintf(tmp, sizeof tmp, "%s.resume-tmp", path);
    if (!(t = create_file(tmp, meta, created, err))) goto fail;
    for (int gi = 0; gi < N_GROUPS; gi++) {
        const group_def *gd = &groups[gi];
        group_state *gs = &t->g[gi];
        hsize_t n = gi < TRACE_RESULT_GROUPS ? (hsize_t)rows[gi] : group_rows(old, gi);
        gs->cap_rows = n ? n : 1;
        gs->rows = xrealloc(gs->rows, size_mul(gs->cap_rows, gd->row_size));
        memset(gs->rows, 0, gs->cap_rows * gd->row_size);
        for (size_t c = 0; c < gd->n_columns; c++)
            if (read_rows(t, old, path, gi, &gd->columns[c], n, err)) goto fail;
        gs->n_rows = n;
    }
    H5Fclose(old);
    old = -1;
    if (trace_flush(t, err)) goto fail;
    if (rename(tmp, path) != 0) {
        ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: cannot replace the trace: %s", path, strerror(errno));
        goto fail;
    }
    free(t->path);
    t->path = xstrdup(path);
    free(spec);
    free(created);
    return t;
fail:
    if (old >= 0) H5Fclose(old);
    if (t) {
        unlink(tmp);
        free_trace(t);
    }
    free(spec);
    free(created);
    H5Eclear2(H5E_DEFAULT);
    return NULL;
}
