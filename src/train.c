/* train.c: the step loop (ARCHITECTURE.md "The step loop").
 *
 * Each rank hosts per_rank workers and trains them one after another through one model
 * object (shared activations, separate flat parameter/gradient/momentum buffers). After the
 * local steps the communication policy mixes the parameters, the consensus distance is
 * measured, and rank 0 appends the step's row to the trace. No policy logic lives here
 * beyond choosing the call for the spec's communication mode.
 *
 * Resumability: per-worker buffers live in the worker-state registry, every other scalar
 * that a run carries from step to step in run_progress (progress.h). Checkpoints are taken
 * at step boundaries only (periodically, and when SIGTERM, SIGINT or SIGUSR1 arrived on any
 * rank), so a resumed run repeats exactly the steps the stopped one had not finished. */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "collective.h"
#include "config.h"
#include "consensus.h"
#include "control.h"
#include "gossip.h"
#include "layout.h"
#include "model.h"
#include "optim.h"
#include "progress.h"
#include "reduce.h"
#include "reference.h"
#include "runlock.h"
#include "schedule.h"
#include "slowmo.h"
#include "task.h"
#include "trace.h"
#include "worker_state.h"

/* ---------------------------------------------------------------- run state */

typedef struct {
    const ccdl_spec *spec;
    layout lay;
    MPI_Comm comm;
    int node_ranks; /* ranks of comm sharing this rank's node (memory estimate) */
    task *task;     /* the data, a worker's step, the evaluation */
    model *net;
    size_t d;          /* parameters per worker */
    worker_state ws;   /* every per-worker buffer */
    model_buffers mb;  /* handles of the model's buffers in ws */
    float *decay_mask; /* [d] or NULL: which parameters get weight decay */
    optimizer opt;
    schedule sched;
    consensus cons;
    control ctl;
    slowmo slowmo;    /* off unless communication.slowmo.tau */
    gossip_group mix; /* the parameters and the buffers gossiped with them */
    trace *tr;
    run_progress prog; /* every resumable scalar */
    char *spec_json;   /* canonical spec */
    char ckpt_path[1100];
    double last_ckpt_s; /* wall_seconds() of the last checkpoint (or of the start) */
} run_state;

/* An output's directory must exist and be writable: found before hours of training. */
static int check_output_path(const char *path, const char *what, ccdl_error *err) {
    char dir[1100];
    path_directory(path, dir, sizeof dir);
    if (access(dir, W_OK | X_OK) != 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot write the %s there: %s", path, what,
                         strerror(errno));
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "%s: the %s path is not a regular file; refusing to write it", path, what);
    return 0;
}

/* Outputs are never clobbered: what is at the trace and checkpoint paths must be ours.
 * A completed trace is refused unless --force (a --resume leaves it alone instead). */
static int check_outputs(const char *trace_path, const char *ckpt_path, const train_options *opt,
                         ccdl_error *err) {
    if (check_output_path(trace_path, "trace", err) ||
        check_output_path(ckpt_path, "checkpoint", err))
        return -1;
    struct stat a, b;
    if (strcmp(trace_path, ckpt_path) == 0 ||
        (stat(trace_path, &a) == 0 && stat(ckpt_path, &b) == 0 && a.st_dev == b.st_dev &&
         a.st_ino == b.st_ino))
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: the trace and the checkpoint are one file",
                         trace_path);
    ccdl_error why;
    switch (trace_path_state(trace_path, &why)) {
    case TRACE_PATH_FOREIGN:
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s; refusing to overwrite it", why.text);
    case TRACE_PATH_COMPLETED:
        if (opt && !opt->force && !opt->resume)
            return ccdl_fail(err, CCDL_ERR_INPUT,
                             "%s: holds a completed run; --force overwrites it, --resume keeps it",
                             trace_path);
        break;
    default:
        break;
    }
    if (access(ckpt_path, F_OK) == 0 && !checkpoint_is_checkpoint(ckpt_path))
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "%s: exists and is not a ccdl checkpoint; refusing to overwrite it",
                         ckpt_path);
    return 0;
}

/* The per-worker state (parameters, gradients, a gossip copy, the optimizer's moments) of
 * every rank on this node must fit in its memory: refused here, by name, rather than as an
 * allocation failure and an MPI_Abort hours later or a kill by the OOM killer. A lower
 * bound: activations, data and libraries come on top. */
static int check_memory(const run_state *r, ccdl_error *err) {
    const ccdl_spec *s = r->spec;
    uint64_t d = model_param_count(r->net);
    int moments = s->optimizer.kind == OPTIMIZER_ADAM ? 2 : s->optimizer.momentum > 0;
    /* parameters, gradients, the parameters' gossip copy, moments (and their gossip copies),
     * SlowMo's u and x0 */
    double per_worker = (double)d * sizeof(float) *
                        (3 + moments * (s->optimizer.gossip_moments ? 2 : 1) +
                         (s->communication.slowmo.tau ? 2 : 0));
    double need = per_worker * r->lay.per_rank * r->node_ranks;
    double have = (double)memory_limit_bytes();
    if (need <= have) return 0;
    return ccdl_fail(err, CCDL_ERR_INPUT,
                     "workers: %d workers of %llu parameters need %.1f GiB of worker state on "
                     "this node (%d rank%s x %d workers); its memory limit is %.1f GiB",
                     s->workers, (unsigned long long)d, need / (1 << 30), r->node_ranks,
                     r->node_ranks == 1 ? "" : "s", r->lay.per_rank, have / (1 << 30));
}

/* Everything that can fail because of the input, checked on every rank and agreed on. */
static int setup_checked(run_state *r, const char *trace_path, const train_options *opt,
                         ccdl_error *err) {
    const ccdl_spec *s = r->spec;
    int ranks, rank;
    MPI_Comm_size(r->comm, &ranks);
    MPI_Comm_rank(r->comm, &rank);
    if (layout_init(&r->lay, s->workers, ranks, rank, err)) return -1;
    if (s->checkpoint.path[0])
        snprintf(r->ckpt_path, sizeof r->ckpt_path, "%s", s->checkpoint.path);
    else
        checkpoint_default_path(trace_path, r->ckpt_path, sizeof r->ckpt_path);
    /* rank 0 reads the files; the verdict is agreed on with the rest of the setup */
    if (rank == 0 && check_outputs(trace_path, r->ckpt_path, opt, err)) return -1;
    r->task = task_create(s, &r->lay, err);
    if (!r->task) return -1;
    model_config mc = s->model;
    if (task_model_config(r->task, &mc, err)) return -1;
    r->net = model_create(&mc, task_max_batch(r->task), err);
    if (!r->net || check_memory(r, err)) return -1;
    /* build the training primitives now, so a oneDNN failure stops us before the trace */
    if (model_prepare(r->net, s->schedule.local_batch, 1, err)) return -1;
    r->spec_json = spec_canonical_json(s);
    double targets[SPEC_MAX_DECAYS + 1];
    if (reference_phase_targets(s, r->spec_json, targets, err)) return -1;
    control_init(&r->ctl, s, model_param_count(r->net), targets);
    return 0;
}

/* Every per-worker buffer is declared by its owner: the model its parameters, gradients
 * and batch-norm statistics, the optimizer its moments. */
static void setup_buffers(run_state *r) {
    const ccdl_spec *s = r->spec;
    worker_state_init(&r->ws, r->lay.per_rank);
    r->d = model_param_count(r->net);
    model_declare_buffers(r->net, &r->ws, (uint64_t)s->seed, &r->mb);
    if (!s->optimizer.bn_weight_decay) {
        r->decay_mask = xalloc_floats(r->d);
        model_weight_decay_mask(r->net, 1, r->decay_mask);
    }
    r->opt.adam = s->optimizer.kind == OPTIMIZER_ADAM;
    r->opt.sgd = (sgd_config){(float)s->optimizer.momentum, s->optimizer.nesterov,
                              (float)s->optimizer.weight_decay};
    r->opt.adam_cfg = (adam_config){(float)s->optimizer.beta1, (float)s->optimizer.beta2,
                                    (float)s->optimizer.eps, (float)s->optimizer.weight_decay};
    r->opt.decay_mask = r->decay_mask;
    r->opt.gossip_moments = s->optimizer.gossip_moments;
    optimizer_declare(&r->opt, &r->ws, r->d);
    slowmo_declare(&r->slowmo, &s->communication.slowmo, &r->ws, r->d);
    schedule_init(&r->sched, s, task_steps_per_epoch(r->task));
    consensus_init(&r->cons, &r->lay, r->comm, r->d);
    slowmo_start(&r->slowmo, &r->ws, worker_state_buffers(&r->ws, r->mb.params), &r->cons);
    /* what communication mixes: the parameters first, then what else their owners marked */
    r->mix.n = 0;
    r->mix.x[r->mix.n++] = worker_state_buffers(&r->ws, r->mb.params);
    for (int h = 0; h < r->ws.n_buffers; h++)
        if (h != r->mb.params && (r->ws.buf[h].roles & WS_GOSSIPED)) {
            if (r->ws.buf[h].count != r->d || r->mix.n == GOSSIP_GROUP_MAX)
                ccdl_die("train: buffer %s cannot be gossiped with the parameters",
                         r->ws.buf[h].name);
            r->mix.x[r->mix.n++] = worker_state_buffers(&r->ws, h);
        }
    int gossips = 0;
    for (int k = 0; k < r->ctl.phases; k++) gossips += r->ctl.policy[k] != POLICY_ALLREDUCE;
    if (gossips) {
        topology t = {(topology_kind)s->topology.kind, s->workers, (uint64_t)s->seed};
        for (int k = 0; k < r->mix.n; k++) r->mix.g[k] = gossip_create(&r->lay, &t, r->d, r->comm);
    }
    progress_init(&r->prog);
}

static void teardown(run_state *r) {
    /* gossip owns the buffers it swapped out; free the registry's first, then its */
    worker_state_free(&r->ws);
    for (int k = 0; k < r->mix.n; k++) gossip_destroy(&r->mix.g[k]);
    free(r->decay_mask);
    free(r->spec_json);
    if (r->cons.mean) consensus_free(&r->cons);
    control_free(&r->ctl);
    model_destroy(&r->net);
    task_destroy(&r->task);
}

/* ---------------------------------------------------------------- stop signals */

/* The signal that asked us to stop (0: none). Set by the handler, read at step boundaries. */
static volatile sig_atomic_t stop_signal = 0;

static void on_stop_signal(int sig) {
    stop_signal = sig;
}

static const int stop_signals[] = {SIGTERM, SIGINT, SIGUSR1};
#define N_STOP_SIGNALS 3

static void catch_stop_signals(struct sigaction old[N_STOP_SIGNALS]) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; /* MPI and HDF5 calls go on; we stop at the next boundary */
    stop_signal = 0;
    for (int k = 0; k < N_STOP_SIGNALS; k++) sigaction(stop_signals[k], &sa, &old[k]);
}

static void restore_signals(const struct sigaction old[N_STOP_SIGNALS]) {
    for (int k = 0; k < N_STOP_SIGNALS; k++) sigaction(stop_signals[k], &old[k], NULL);
}

static const char *signal_name(int sig) {
    return sig == SIGTERM   ? "SIGTERM"
           : sig == SIGINT  ? "SIGINT"
           : sig == SIGUSR1 ? "SIGUSR1"
                            : "a signal";
}

/* Tests stop runs at exact points: CCDL_TEST_SIGNAL="TERM@12,KILL@40" makes rank 0 raise
 * SIGTERM (SIGKILL, SIGINT, SIGUSR1) to itself in the middle of step 12 (after the local
 * compute, before the step's communication). Read once per run. */
#define MAX_TEST_SIGNALS 16
typedef struct {
    int count;
    int sig[MAX_TEST_SIGNALS];
    int64_t step[MAX_TEST_SIGNALS];
} test_signals;

static void parse_test_signals(test_signals *t) {
    memset(t, 0, sizeof *t);
    const char *env = getenv("CCDL_TEST_SIGNAL");
    if (!env) return;
    static const struct {
        const char *name;
        int sig;
    } names[] = {{"TERM", SIGTERM}, {"KILL", SIGKILL}, {"INT", SIGINT}, {"USR1", SIGUSR1}};
    char buf[512];
    snprintf(buf, sizeof buf, "%s", env);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok && t->count < MAX_TEST_SIGNALS;
         tok = strtok_r(NULL, ",", &save)) {
        char *at = strchr(tok, '@');
        if (!at) continue;
        *at = '\0';
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
            if (strcmp(tok, names[k].name) == 0) {
                t->sig[t->count] = names[k].sig;
                t->step[t->count++] = strtoll(at + 1, NULL, 10);
            }
    }
}

static void maybe_raise_test_signal(const test_signals *t, int rank, int64_t step) {
    for (int k = 0; rank == 0 && k < t->count; k++)
        if (t->step[k] == step) raise(t->sig[k]);
}

/* ---------------------------------------------------------------- one step */

typedef struct {
    double loss, grad_norm, xi;
    control_result comm;
    double compute_s, comm_s;
} step_result;

static step_result train_step(run_state *r, int64_t step_in_epoch, int64_t step, int phase,
                              const test_signals *ts) {
    const ccdl_spec *s = r->spec;
    const int per = r->lay.per_rank;
    const float lr = (float)schedule_lr(&r->sched, step);
    float **params = worker_state_buffers(&r->ws, r->mb.params);
    float **grads = worker_state_buffers(&r->ws, r->mb.grads);
    float **state = worker_state_buffers(&r->ws, r->mb.state);
    double loss[per], gnorm[per];
    step_result res = {0};
    double t0 = wall_seconds();
    for (int w = 0; w < per; w++) {
        loss[w] = task_step(r->task, r->net, w, step_in_epoch, step, params[w], state[w], grads[w]);
        gnorm[w] = vector_norm(grads[w], r->d);
        optimizer_step(&r->opt, lr, step + 1, w, params[w], grads[w], r->d);
    }
    double t1 = wall_seconds();
    res.loss = reduce_sum_scalars(&r->lay, r->comm, loss) / s->workers;
    res.grad_norm = reduce_sum_scalars(&r->lay, r->comm, gnorm) / s->workers;
    maybe_raise_test_signal(ts, r->lay.rank, step);
    control_communicate(&r->ctl, &r->prog.control, phase, step, res.grad_norm, &r->mix, &r->cons,
                        &res.comm);
    res.xi = res.comm.xi; /* measured by exact control already, else measured now */
    if (slowmo_due(&r->slowmo, step)) {
        slowmo_outer_step(&r->slowmo, &r->ws, &r->mix, &r->cons, lr,
                          res.comm.policy == POLICY_ALLREDUCE, &res.comm.sent);
        res.xi = NAN; /* control's Xi was before the outer step */
    }
    if (isnan(res.xi) && s->trace.measure_xi) res.xi = consensus_distance_exact(&r->cons, params);
    res.compute_s = t1 - t0;
    res.comm_s = wall_seconds() - t1;
    return res;
}

/* ---------------------------------------------------------------- evaluation */

/* The averaged model's evaluation (every rank): the means first, then the task's metrics. */
static task_eval evaluate(run_state *r) {
    worker_state_average(&r->ws, &r->lay, r->comm);
    return task_evaluate(r->task, r->net, &r->ws, &r->mb, r->comm);
}

/* ---------------------------------------------------------------- the loop */

static void print_progress(const run_state *r, int epoch, double lr, double train_loss,
                           const task_eval *ev, double xi, double elapsed) {
    int epochs = spec_total_epochs(r->spec);
    double eta = elapsed / (epoch + 1) * (epochs - epoch - 1);
    char metric[96];
    if (isnan(ev->test_bleu))
        snprintf(metric, sizeof metric, "test_acc %.4f", ev->test_acc);
    else
        snprintf(metric, sizeof metric, "test_ppl %.2f val_bleu %.2f test_bleu %.2f", ev->test_ppl,
                 ev->val_bleu, ev->test_bleu);
    fprintf(stderr,
            "ccdl: %s epoch %d/%d lr %.4g train_loss %.4f %s xi %.3g elapsed %.1fs eta %.1fs\n",
            r->spec->name, epoch + 1, epochs, lr, train_loss, metric, xi, elapsed, eta);
}

/* Rank 0's line every `every` seconds within long epochs. Everything on it is rank 0's
 * already (its clock, the step's reduced values), so it costs no communication and no bits
 * of the result depend on it. The ETA extrapolates the run's mean time per step over all
 * resumes (elapsed_s), so a resumed run's first lines rest on the whole run's pace. */
typedef struct {
    double every;      /* seconds; 0: no lines */
    double last_s;     /* wall_seconds() of the last line (epoch lines too), or of the start */
    int64_t last_step; /* steps done at that time */
    double rounds;     /* gossip rounds since then */
    double xi;         /* last measured Xi (NaN: none yet) */
} ticker;

/* After each step but the last; epoch_line: the per-epoch line has just been printed, which
 * makes a progress line redundant and keeps the evaluation out of the next rate. */
static void ticker_step(ticker *t, const run_state *r, const step_result *res, double start,
                        int epoch_line) {
    t->rounds += res->comm.rounds;
    if (!isnan(res->xi)) t->xi = res->xi;
    if (t->every <= 0) return;
    const double now = wall_seconds();
    const int64_t done = r->prog.step, steps = done - t->last_step;
    if (!epoch_line) {
        if (now - t->last_s < t->every) return;
        const ccdl_spec *s = r->spec;
        const int64_t per_epoch = r->sched.steps_per_epoch,
                      total = per_epoch * spec_total_epochs(s);
        double units = (double)steps * task_units_per_step(r->task);
        double elapsed = now - start;
        fprintf(stderr,
                "ccdl: %s step %lld/%lld epoch %lld/%d (%lld/%lld) %s/s %.0f xi %.4g "
                "rounds/step %.2f elapsed %.1fs eta %.1fs\n",
                s->name, (long long)done, (long long)total, (long long)((done - 1) / per_epoch + 1),
                spec_total_epochs(s), (long long)((done - 1) % per_epoch + 1), (long long)per_epoch,
                task_unit(r->task), units / (now - t->last_s), t->xi, t->rounds / steps, elapsed,
                elapsed / done * (total - done));
    }
    t->last_s = now;
    t->last_step = done;
    t->rounds = 0;
}

static void phase_begin(phase_stats *p, int phase) {
    p->phase = phase;
    p->max_xi = NAN;
    p->rounds = 0;
    p->steps = p->capped = 0;
    memset(&p->sent, 0, sizeof p->sent);
}

static void phase_add(phase_stats *p, const step_result *res) {
    p->max_xi = fmax(p->max_xi, res->xi); /* fmax ignores NaN */
    p->rounds += res->comm.rounds;
    p->steps++;
    p->capped += res->comm.capped;
    traffic_add(&p->sent, &res->comm.sent);
}

/* Rank 0: the phase's trace row, and a warning if the round cap was hit. */
static void phase_end(run_state *r, const phase_stats *p) {
    int64_t a, b;
    schedule_phase_bounds(&r->sched, p->phase, &a, &b);
    trace_phase_row row = {p->phase,
                           a,
                           b,
                           r->ctl.policy[p->phase - 1],
                           p->max_xi,
                           p->steps ? p->rounds / p->steps : NAN,
                           p->capped,
                           r->ctl.phase_target[p->phase - 1],
                           p->sent.bytes_mean,
                           p->sent.bytes_max,
                           p->sent.messages_mean,
                           p->sent.messages_max};
    trace_append_phase(r->tr, &row);
    if (p->capped)
        fprintf(stderr,
                "ccdl: warning: phase %d: %lld of %lld steps hit the cap of %d gossip rounds "
                "before meeting the consensus target (see /steps/capped)\n",
                p->phase, (long long)p->capped, (long long)p->steps,
                r->spec->communication.control.max_rounds);
}

/* Rows for the phases after `from` up to `upto` (exclusive) that had no steps: a short run
 * whose decays fall on the same step, or past its last step. Explicit, so /phases has one
 * row per phase of the schedule. */
static void empty_phases(run_state *r, int from, int upto) {
    for (int k = from + 1; k < upto; k++) {
        phase_stats none;
        phase_begin(&none, k);
        phase_end(r, &none);
    }
}

/* ---------------------------------------------------------------- checkpoints */

/* Collective: flush the trace (rank 0), then write every checkpointed buffer and the
 * progress, whose trace row counts and wall time are rank 0's. */
static int save_checkpoint(run_state *r, double start, ccdl_error *err) {
    int rc = r->lay.rank == 0 ? trace_flush(r->tr, err) : 0;
    if (agree(rc, err, r->comm)) return -1;
    run_progress *p = &r->prog;
    if (r->lay.rank == 0) {
        trace_row_counts(r->tr, p->trace_rows);
        p->elapsed_s = wall_seconds() - start;
    }
    MPI_Bcast(p->trace_rows, TRACE_RESULT_GROUPS, MPI_INT64_T, 0, r->comm);
    MPI_Bcast(&p->elapsed_s, 1, MPI_DOUBLE, 0, r->comm);
    rc = checkpoint_write(r->ckpt_path, r->spec_json, &r->ws, &r->lay, r->comm, p, err);
    r->last_ckpt_s = wall_seconds();
    return rc;
}

/* Collective, at a step boundary: the stop signal any rank got (0: none), and whether the
 * wall-clock interval is due (rank 0's clock decides for all). */
static void boundary_flags(run_state *r, int *sig, int *time_due) {
    double minutes = r->spec->checkpoint.every_minutes;
    int mine[2] = {stop_signal, 0}, all[2];
    if (r->lay.rank == 0 && minutes > 0) mine[1] = wall_seconds() - r->last_ckpt_s >= minutes * 60;
    MPI_Allreduce(mine, all, 2, MPI_INT, MPI_MAX, r->comm);
    *sig = all[0];
    *time_due = all[1];
}

/* ---------------------------------------------------------------- divergence */

/* A run has diverged when its mean training loss or gradient norm is not finite, or the
 * loss exceeds DIVERGED_LOSS_FACTOR x ln(classes) (per token: ln(target vocabulary)): that
 * is the loss of a uniform guess, and a mean loss 100 times that gives the right class a
 * probability below e^-230. Adam at a huge learning rate stays finite (loss ~1e9) and only the
 * second test catches it. Non-finite parameters show in the next step's loss. Both values are
 * reduced over all workers, so every rank decides alike. Documented in docs/cli.md. */
#define DIVERGED_LOSS_FACTOR 100.0

static int diverged(const run_state *r, int64_t step, const step_result *res, ccdl_error *err) {
    const double uniform = task_uniform_loss(r->task), bound = DIVERGED_LOSS_FACTOR * uniform;
    if (!isfinite(res->loss) || !isfinite(res->grad_norm))
        return ccdl_fail(err, CCDL_ERR_RUNTIME,
                         "diverged at step %lld: training loss %g, gradient norm %g",
                         (long long)step, res->loss, res->grad_norm);
    if (res->loss > bound)
        return ccdl_fail(err, CCDL_ERR_RUNTIME,
                         "diverged at step %lld: training loss %g exceeds %g (%g x %.4g, a "
                         "uniform guess's loss)",
                         (long long)step, res->loss, bound, DIVERGED_LOSS_FACTOR, uniform);
    return 0;
}

/* ---------------------------------------------------------------- the loop */

/* 0: finished. -1 + err: failed (CCDL_ERR_RUNTIME) or stopped by a signal after a
 * checkpoint (CCDL_ERR_STOPPED). Same result on every rank. */
static int train_loop(run_state *r, const train_options *opt, ccdl_error *err) {
    const ccdl_spec *s = r->spec;
    const int rank0 = r->lay.rank == 0;
    const int64_t steps = r->sched.steps_per_epoch, total = steps * spec_total_epochs(s);
    run_progress *p = &r->prog;
    test_signals ts;
    parse_test_signals(&ts);
    const double start = wall_seconds() - p->elapsed_s;
    r->last_ckpt_s = wall_seconds();
    const int64_t first = p->step;
    ticker tick = {opt->quiet ? 0 : opt->progress_s, wall_seconds(), first, 0, NAN};
    for (int64_t step = first; step < total; step++) {
        const int epoch = (int)(step / steps);
        const int64_t k = step % steps;
        if ((k == 0 || step == first) && task_seek(r->task, epoch, k, err)) return -1;
        int phase = schedule_phase(&r->sched, step);
        if (phase != p->phase.phase) {
            if (rank0) {
                phase_end(r, &p->phase);
                empty_phases(r, p->phase.phase, phase);
            }
            phase_begin(&p->phase, phase);
        }
        double lr = schedule_lr(&r->sched, step);
        step_result res = train_step(r, k, step, phase, &ts);
        p->epoch_loss_sum += res.loss;
        p->epoch_xi_sum += res.xi;
        phase_add(&p->phase, &res);
        if (diverged(r, step, &res, err)) return -1;
        if (rank0) {
            if (res.comm.capped && p->phase.capped == 1)
                fprintf(stderr,
                        "ccdl: warning: step %lld: %d gossip rounds left the consensus "
                        "distance above the target %.4g\n",
                        (long long)step, res.comm.rounds, res.comm.target);
            trace_step_row row = {step,
                                  epoch,
                                  phase,
                                  lr,
                                  res.loss,
                                  res.grad_norm,
                                  res.xi,
                                  res.comm.theta,
                                  res.comm.target,
                                  res.comm.policy,
                                  res.comm.rounds,
                                  res.comm.capped,
                                  res.compute_s,
                                  res.comm_s,
                                  res.comm.sent.bytes_mean,
                                  res.comm.sent.bytes_max,
                                  res.comm.sent.messages_mean,
                                  res.comm.sent.messages_max};
            trace_append_step(r->tr, &row);
        }
        p->step = step + 1;
        const int epoch_end = k == steps - 1, last = step == total - 1;
        if (epoch_end) {
            task_eval ev = evaluate(r);
            if (!isfinite(ev.test_loss))
                return ccdl_fail(err, CCDL_ERR_RUNTIME,
                                 "diverged at step %lld: the averaged model's test loss is %g",
                                 (long long)step, ev.test_loss);
            double elapsed = wall_seconds() - start;
            int rc = 0;
            if (rank0) {
                trace_epoch_row erow = {epoch,
                                        p->epoch_loss_sum / steps,
                                        ev.test_loss,
                                        ev.test_acc,
                                        p->epoch_xi_sum / steps,
                                        elapsed,
                                        ev.worker_test_acc,
                                        ev.val_bleu,
                                        ev.test_bleu,
                                        ev.test_ppl};
                trace_append_epoch(r->tr, &erow);
                if (last) {
                    phase_end(r, &p->phase);
                    empty_phases(r, p->phase.phase, r->ctl.phases + 1);
                }
                rc = trace_flush(r->tr, err);
                if (rc == 0 && !opt->quiet)
                    print_progress(r, epoch, lr, p->epoch_loss_sum / steps, &ev,
                                   p->epoch_xi_sum / steps, elapsed);
            }
            /* a failed flush on rank 0 must stop every rank now, not at the end */
            if (agree(rc, err, r->comm)) return -1;
            p->epoch_loss_sum = p->epoch_xi_sum = 0;
        }
        if (last) break; /* the run is complete: nothing left to resume */
        if (rank0) ticker_step(&tick, r, &res, start, epoch_end);
        int sig, time_due;
        boundary_flags(r, &sig, &time_due);
        int every = s->checkpoint.every_epochs;
        if (sig || time_due || (epoch_end && every > 0 && (epoch + 1) % every == 0))
            if (save_checkpoint(r, start, err)) return -1;
        if (sig)
            return ccdl_fail(err, CCDL_ERR_STOPPED,
                             "stopped by %s at step %lld of %lld; resume with ccdl run --resume "
                             "(checkpoint %s)",
                             signal_name(sig), (long long)p->step, (long long)total, r->ckpt_path);
    }
    p->elapsed_s = wall_seconds() - start;
    if (s->checkpoint.keep) return save_checkpoint(r, start, err);
    return 0;
}

int train_validate(const ccdl_spec *spec, MPI_Comm comm, ccdl_error *err) {
    run_state r = {0};
    r.spec = spec;
    r.comm = comm;
    r.node_ranks = ranks_on_node(comm);
    int rc = agree(setup_checked(&r, spec->trace.path, NULL, err), err, comm);
    teardown(&r);
    return rc;
}

/* How a --resume run starts. */
enum { START_FRESH, START_FROM_CHECKPOINT, START_ALREADY_DONE };

/* Rank 0: a completed trace needs nothing; else a checkpoint, if there is one, continues. */
static int resume_mode(const char *trace_path, const char *ckpt_path) {
    long completed = 0;
    ccdl_error ignored;
    if (access(trace_path, F_OK) == 0 &&
        trace_read_attr_int(trace_path, "completed", &completed, &ignored) == 0 && completed == 1)
        return START_ALREADY_DONE;
    return access(ckpt_path, F_OK) == 0 ? START_FROM_CHECKPOINT : START_FRESH;
}

/* Create the trace, or continue it from the checkpoint (--resume). Collective; 1 when
 * there is nothing to do (the trace is already completed). */
static int open_trace(run_state *r, const train_options *opt, const char *path, ccdl_error *err) {
    int rank0 = r->lay.rank == 0, mode = START_FRESH, rc = 0;
    if (opt->resume && rank0) mode = resume_mode(path, r->ckpt_path);
    MPI_Bcast(&mode, 1, MPI_INT, 0, r->comm);
    if (mode == START_ALREADY_DONE) {
        if (rank0) fprintf(stderr, "ccdl: %s: already completed; nothing to do\n", path);
        return 1;
    }
    trace_meta meta = {PACKAGE_VERSION,       r->spec_json,     r->spec->workers,
                       r->lay.ranks,          r->spec->threads, task_vocab(r->task, 0),
                       task_vocab(r->task, 1)};
    if (mode == START_FROM_CHECKPOINT) {
        if (checkpoint_read(r->ckpt_path, r->spec_json, &r->ws, &r->lay, r->comm, &r->prog, err))
            return -1;
        if (rank0) {
            r->tr = trace_resume(path, &meta, r->prog.trace_rows, err);
            if (r->tr) {
                trace_resume_row row = {r->prog.step, r->lay.ranks, (double)time(NULL)};
                trace_append_resume(r->tr, &row);
                if (!opt->quiet)
                    fprintf(stderr, "ccdl: %s: resuming at step %lld from %s\n", r->spec->name,
                            (long long)r->prog.step, r->ckpt_path);
            } else {
                rc = -1;
            }
        }
        return agree(rc, err, r->comm);
    }
    if (rank0) {
        r->tr = trace_create(path, &meta, err);
        if (!r->tr) {
            err->kind = CCDL_ERR_INPUT; /* an unwritable output path is bad input */
            rc = -1;
        }
    }
    return agree(rc, err, r->comm);
}

int train_run(const ccdl_spec *spec, const train_options *opt, MPI_Comm comm, ccdl_error *err) {
    run_state r = {0};
    r.spec = spec;
    r.comm = comm;
    const char *path = opt->trace_path ? opt->trace_path : spec->trace.path;
    omp_set_num_threads(spec->threads);
    /* caught from the start: a stop asked for during setup takes effect after the first step */
    struct sigaction old[N_STOP_SIGNALS];
    catch_stop_signals(old);
    r.node_ranks = ranks_on_node(comm);
    int rc = agree(setup_checked(&r, path, opt, err), err, comm);
    /* one writer per trace, from before it is touched until it is closed */
    int lock = -1;
    if (rc == 0) {
        if (r.lay.rank == 0) lock = runlock_acquire(path, err);
        rc = agree(lock == -1 && r.lay.rank == 0 ? -1 : 0, err, comm);
    }
    if (rc == 0) {
        setup_buffers(&r);
        rc = open_trace(&r, opt, path, err);
    }
    if (rc != 0) {
        runlock_release(lock, path);
        restore_signals(old);
        teardown(&r);
        return rc < 0 ? -1 : 0;
    }
    rc = train_loop(&r, opt, err);
    rc = agree(rc, err, comm);
    if (r.lay.rank == 0) {
        ccdl_error cerr;
        if (trace_close(&r.tr, rc == 0, rc == 0 ? "finished" : err->text, &cerr) && rc == 0) {
            *err = cerr;
            rc = -1;
        }
        /* the finished trace holds everything; a checkpoint is only kept on request */
        if (rc == 0 && !spec->checkpoint.keep) unlink(r.ckpt_path);
        runlock_release(lock, path);
    }
    rc = agree(rc, err, comm);
    /* After a stop, keep catching: the same signal may still be on its way to another rank
     * (Slurm and mpiexec signal each rank on its own), and would otherwise kill it during
     * MPI_Finalize, turning the clean exit 3 into a signal death. */
    if (!(rc != 0 && err->kind == CCDL_ERR_STOPPED)) restore_signals(old);
    teardown(&r);
    return rc;
}
