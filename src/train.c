/* train.c: the step loop (ARCHITECTURE.md "The step loop").
 *
 * Each rank hosts per_rank workers and trains them one after another through one model
 * object (shared activations, separate flat parameter/gradient/momentum buffers). After the
 * local steps the communication policy mixes the parameters, the consensus distance is
 * measured, and rank 0 appends the step's row to the trace. No policy logic lives here
 * beyond choosing the call for the spec's communication mode. */
#include "train.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "consensus.h"
#include "control.h"
#include "data.h"
#include "gossip.h"
#include "layout.h"
#include "model.h"
#include "optim.h"
#include "reduce.h"
#include "sampler.h"
#include "schedule.h"
#include "trace.h"

#define EVAL_BATCH 500

/* ---------------------------------------------------------------- errors across ranks */

/* Collective: agree whether any rank failed; the lowest failing rank's message is sent to
 * all, so every rank returns the same error and rank 0 can print it. */
static int agree(int rc, ccdl_error *err, MPI_Comm comm) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    int mine = rc ? rank : INT_MAX, first;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
    if (first == INT_MAX) return 0;
    struct {
        int kind;
        char text[sizeof err->text];
    } msg;
    if (rank == first) {
        msg.kind = err->kind;
        memcpy(msg.text, err->text, sizeof msg.text);
    }
    MPI_Bcast(&msg, (int)sizeof msg, MPI_BYTE, first, comm);
    err->kind = (ccdl_err_kind)msg.kind;
    memcpy(err->text, msg.text, sizeof msg.text);
    return -1;
}

/* ---------------------------------------------------------------- run state */

typedef struct {
    const ccdl_spec *spec;
    layout lay;
    MPI_Comm comm;
    dataset train, test;
    sampler samp;
    model *net;
    size_t d;          /* parameters per worker */
    size_t d_state;    /* batch-norm running statistics per worker (never gossiped) */
    float **params;    /* [per_rank][d] (gossip swaps these pointers) */
    float **grads;     /* [per_rank][d] */
    float **opt_m;     /* [per_rank][d] momentum (SGD) or first moment (Adam) */
    float **opt_v;     /* [per_rank][d] Adam second moment, NULL for SGD */
    float **state;     /* [per_rank][d_state] */
    float *mean_state; /* [d_state] average over workers, for evaluating xbar */
    float *decay_mask; /* [d] or NULL: which parameters get weight decay */
    optimizer opt;
    float *batch_x; /* (max batch, C, H, W) */
    int32_t *batch_y;
    schedule sched;
    consensus cons;
    control ctl;
    gossip *gsp;
    trace *tr;
} run_state;

static int max_batch_of(const ccdl_spec *s) {
    return s->schedule.local_batch > EVAL_BATCH ? s->schedule.local_batch : EVAL_BATCH;
}

static int setup_data(run_state *r, ccdl_error *err) {
    const ccdl_spec *s = r->spec;
    if (dataset_load(s->data.dataset, s->data.path, 1, s->data.train_subset, &r->train, err))
        return -1;
    if (dataset_load(s->data.dataset, s->data.path, 0, s->data.test_subset, &r->test, err))
        return -1;
    /* ResNet-20 is the CIFAR variant: 28 x 28 images are zero-padded to 32 x 32 */
    if (strcmp(s->model.kind, "resnet20") == 0 && r->train.height < 32 &&
        (dataset_pad_to(&r->train, 32, err) || dataset_pad_to(&r->test, 32, err)))
        return -1;
    if (r->test.count < s->workers)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "data.test_subset: need at least one test sample per worker (%d)",
                         s->workers);
    return sampler_init(&r->samp, &r->train, s->workers, r->lay.first, r->lay.per_rank,
                        s->schedule.local_batch, s->data.split == SPLIT_DIRICHLET,
                        s->data.dirichlet_alpha, s->data.augment, (uint64_t)s->seed, err);
}

/* The trace's directory must exist and be writable: found before hours of training. */
static int check_output_path(const char *path, ccdl_error *err) {
    char dir[1100];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (access(dir, W_OK | X_OK) != 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot write the trace there: %s", path,
                         strerror(errno));
    return 0;
}

/* Everything that can fail because of the input, checked on every rank and agreed on. */
static int setup_checked(run_state *r, const char *trace_path, ccdl_error *err) {
    const ccdl_spec *s = r->spec;
    int ranks, rank;
    MPI_Comm_size(r->comm, &ranks);
    MPI_Comm_rank(r->comm, &rank);
    if (layout_init(&r->lay, s->workers, ranks, rank, err)) return -1;
    if (check_output_path(trace_path, err)) return -1;
    if (setup_data(r, err)) return -1;
    model_config mc = s->model;
    mc.in_channels = r->train.channels;
    mc.in_height = r->train.height;
    mc.in_width = r->train.width;
    mc.classes = r->train.classes;
    r->net = model_create(&mc, max_batch_of(s), err);
    /* build the training primitives now, so a oneDNN failure stops us before the trace */
    if (!r->net || model_prepare(r->net, s->schedule.local_batch, 1, err)) return -1;
    char *canon = spec_canonical_json(s);
    int rc = control_init(&r->ctl, s, canon, err);
    free(canon);
    return rc;
}

static float **alloc_per_worker(int per, size_t count) {
    float **v = xcalloc((size_t)per, sizeof(float *));
    for (int w = 0; w < per; w++) v[w] = xalloc_floats(count);
    return v;
}

static void setup_buffers(run_state *r) {
    const ccdl_spec *s = r->spec;
    const int per = r->lay.per_rank, adam = strcmp(s->optimizer.kind, "adam") == 0;
    r->d = model_param_count(r->net);
    r->d_state = model_state_count(r->net);
    r->params = alloc_per_worker(per, r->d);
    r->grads = alloc_per_worker(per, r->d);
    r->opt_m = alloc_per_worker(per, r->d);
    r->opt_v = adam ? alloc_per_worker(per, r->d) : NULL;
    r->state = alloc_per_worker(per, r->d_state);
    r->mean_state = xalloc_floats(r->d_state);
    for (int w = 0; w < per; w++) {
        /* all workers start from the same model */
        model_init_params(r->net, r->params[w], (uint64_t)s->seed);
        model_init_state(r->net, r->state[w]);
    }
    if (!s->optimizer.bn_weight_decay) {
        r->decay_mask = xalloc_floats(r->d);
        model_weight_decay_mask(r->net, 1, r->decay_mask);
    }
    r->opt.adam = adam;
    r->opt.sgd = (sgd_config){(float)s->optimizer.momentum, s->optimizer.nesterov,
                              (float)s->optimizer.weight_decay};
    r->opt.adam_cfg = (adam_config){(float)s->optimizer.beta1, (float)s->optimizer.beta2,
                                    (float)s->optimizer.eps, (float)s->optimizer.weight_decay};
    r->opt.decay_mask = r->decay_mask;
    size_t sample = (size_t)r->train.channels * r->train.height * r->train.width;
    r->batch_x = xalloc_floats(sample * (size_t)max_batch_of(s));
    r->batch_y = xmalloc(sizeof(int32_t) * (size_t)max_batch_of(s));
    schedule_init(&r->sched, s, r->samp.steps_per_epoch);
    consensus_init(&r->cons, &r->lay, r->comm, r->d);
    int gossips = 0;
    for (int k = 0; k < r->ctl.phases; k++) gossips += r->ctl.policy[k] != POLICY_ALLREDUCE;
    if (gossips) {
        topology t = {(topology_kind)s->topology.kind, s->workers, (uint64_t)s->seed};
        r->gsp = gossip_create(&r->lay, &t, r->d, r->comm);
    }
}

static void free_per_worker(float **v, int per) {
    for (int w = 0; v && w < per; w++) free(v[w]);
    free(v);
}

static void teardown(run_state *r) {
    /* gossip owns the buffers it swapped out; free ours first, then its */
    int per = r->lay.per_rank;
    free_per_worker(r->params, per);
    free_per_worker(r->grads, per);
    free_per_worker(r->opt_m, per);
    free_per_worker(r->opt_v, per);
    free_per_worker(r->state, per);
    gossip_destroy(&r->gsp);
    free(r->mean_state);
    free(r->decay_mask);
    free(r->batch_x);
    free(r->batch_y);
    if (r->cons.mean) consensus_free(&r->cons);
    model_destroy(&r->net);
    sampler_free(&r->samp);
    dataset_free(&r->train);
    dataset_free(&r->test);
}

/* ---------------------------------------------------------------- one step */

typedef struct {
    double loss, grad_norm, xi;
    control_result comm;
    double compute_s, comm_s;
} step_result;

static step_result train_step(run_state *r, int64_t step_in_epoch, int64_t step, int phase) {
    const ccdl_spec *s = r->spec;
    const int per = r->lay.per_rank, b = s->schedule.local_batch;
    const float lr = (float)schedule_lr(&r->sched, step);
    double loss[per], gnorm[per];
    step_result res = {0};
    double t0 = wall_seconds();
    for (int w = 0; w < per; w++) {
        sampler_batch(&r->samp, w, step_in_epoch, r->batch_x, r->batch_y);
        loss[w] = model_forward_backward(r->net, r->params[w], r->state[w], r->grads[w], r->batch_x,
                                         r->batch_y, b);
        gnorm[w] = vector_norm(r->grads[w], r->d);
        optimizer_step(&r->opt, lr, step + 1, r->params[w], r->grads[w], r->opt_m[w],
                       r->opt_v ? r->opt_v[w] : NULL, r->d);
    }
    double t1 = wall_seconds();
    res.loss = reduce_sum_scalars(&r->lay, r->comm, loss) / s->workers;
    res.grad_norm = reduce_sum_scalars(&r->lay, r->comm, gnorm) / s->workers;
    control_communicate(&r->ctl, phase, step, res.grad_norm, r->params, r->gsp, &r->cons,
                        &res.comm);
    res.xi = res.comm.xi; /* measured by exact control already, else measured now */
    if (isnan(res.xi) && s->trace.measure_xi)
        res.xi = consensus_distance_exact(&r->cons, r->params);
    res.compute_s = t1 - t0;
    res.comm_s = wall_seconds() - t1;
    return res;
}

/* ---------------------------------------------------------------- evaluation */

typedef struct {
    double test_loss, test_acc; /* the averaged model xbar (parameters and BN statistics) */
    double worker_test_acc;     /* each worker's own model on its own test slice, pooled */
} eval_result;

/* Loss sum and correct count of one model on test samples [lo, hi). */
static void evaluate_slice(run_state *r, const float *params, const float *state, int64_t lo,
                           int64_t hi, double *loss_sum, int64_t *correct) {
    int32_t idx[EVAL_BATCH];
    for (int64_t a = lo; a < hi; a += EVAL_BATCH) {
        int bsz = (int)(hi - a < EVAL_BATCH ? hi - a : EVAL_BATCH);
        for (int k = 0; k < bsz; k++) idx[k] = (int32_t)(a + k);
        dataset_fill_batch(&r->test, idx, bsz, r->batch_x, r->batch_y);
        model_evaluate(r->net, params, state, r->batch_x, r->batch_y, bsz, loss_sum, correct);
    }
}

/* The test set is split into n fixed slices, one per worker index, so the work spreads over
 * ranks while every sum stays canonical. */
static eval_result evaluate(run_state *r) {
    const int per = r->lay.per_rank, n = r->lay.n;
    reduce_mean_vectors(&r->lay, r->comm, r->params, r->d, r->cons.mean, r->cons.scratch);
    if (r->d_state)
        reduce_mean_vectors(&r->lay, r->comm, r->state, r->d_state, r->mean_state, r->cons.scratch);
    double loss_sum[per], correct[per], own_correct[per];
    for (int w = 0; w < per; w++) {
        int64_t i = r->lay.first + w;
        int64_t lo = i * r->test.count / n, hi = (i + 1) * r->test.count / n, ok = 0, own = 0;
        double ls = 0, own_ls = 0;
        evaluate_slice(r, r->cons.mean, r->mean_state, lo, hi, &ls, &ok);
        evaluate_slice(r, r->params[w], r->state[w], lo, hi, &own_ls, &own);
        loss_sum[w] = ls, correct[w] = (double)ok, own_correct[w] = (double)own;
    }
    eval_result e;
    double count = (double)r->test.count;
    e.test_loss = reduce_sum_scalars(&r->lay, r->comm, loss_sum) / count;
    e.test_acc = reduce_sum_scalars(&r->lay, r->comm, correct) / count;
    e.worker_test_acc = reduce_sum_scalars(&r->lay, r->comm, own_correct) / count;
    return e;
}

/* ---------------------------------------------------------------- the loop */

static void print_progress(const run_state *r, int epoch, double lr, double train_loss,
                           double test_acc, double xi, double elapsed) {
    int epochs = r->spec->schedule.epochs;
    double eta = elapsed / (epoch + 1) * (epochs - epoch - 1);
    fprintf(stderr,
            "ccdl: %s epoch %d/%d lr %.4g train_loss %.4f test_acc %.4f xi %.3g elapsed %.1fs "
            "eta %.1fs\n",
            r->spec->name, epoch + 1, epochs, lr, train_loss, test_acc, xi, elapsed, eta);
}

/* Per-phase accumulators for the /phases row. */
typedef struct {
    int phase;
    double max_xi; /* NaN until a step measures Xi */
    double rounds;
    int64_t steps, capped;
} phase_stats;

static void phase_begin(phase_stats *p, int phase) {
    p->phase = phase;
    p->max_xi = NAN;
    p->rounds = 0;
    p->steps = p->capped = 0;
}

static void phase_add(phase_stats *p, const step_result *res) {
    p->max_xi = fmax(p->max_xi, res->xi); /* fmax ignores NaN */
    p->rounds += res->comm.rounds;
    p->steps++;
    p->capped += res->comm.capped;
}

/* Rank 0: the phase's trace row, and a warning if the round cap was hit. */
static void phase_end(run_state *r, const phase_stats *p) {
    int64_t a, b;
    schedule_phase_bounds(&r->sched, p->phase, &a, &b);
    trace_phase_row row = {p->phase,  a,
                           b,         r->ctl.policy[p->phase - 1],
                           p->max_xi, p->steps ? p->rounds / p->steps : NAN,
                           p->capped, r->ctl.phase_target[p->phase - 1]};
    trace_append_phase(r->tr, &row);
    if (p->capped)
        fprintf(stderr,
                "ccdl: warning: phase %d: %lld of %lld steps hit the cap of %d gossip rounds "
                "before meeting the consensus target (see /steps/capped)\n",
                p->phase, (long long)p->capped, (long long)p->steps,
                r->spec->communication.control.max_rounds);
}

static int train_loop(run_state *r, const train_options *opt, ccdl_error *err) {
    const ccdl_spec *s = r->spec;
    const int rank0 = r->lay.rank == 0;
    const int64_t steps = r->sched.steps_per_epoch;
    phase_stats ph;
    phase_begin(&ph, 1);
    double start = wall_seconds();
    for (int epoch = 0; epoch < s->schedule.epochs; epoch++) {
        sampler_epoch(&r->samp, epoch);
        double loss_sum = 0, xi_sum = 0, lr = 0;
        for (int64_t k = 0; k < steps; k++) {
            int64_t step = (int64_t)epoch * steps + k;
            int phase = schedule_phase(&r->sched, step);
            if (phase != ph.phase) {
                if (rank0) phase_end(r, &ph);
                phase_begin(&ph, phase);
            }
            lr = schedule_lr(&r->sched, step);
            step_result res = train_step(r, k, step, phase);
            loss_sum += res.loss;
            xi_sum += res.xi;
            phase_add(&ph, &res);
            if (!isfinite(res.loss)) {
                ccdl_fail(err, CCDL_ERR_RUNTIME, "training diverged at step %lld (loss %g)",
                          (long long)step, res.loss);
                return -1;
            }
            if (rank0) {
                if (res.comm.capped && ph.capped == 1)
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
                                      res.comm_s};
                trace_append_step(r->tr, &row);
            }
        }
        eval_result ev = evaluate(r);
        double elapsed = wall_seconds() - start;
        if (rank0) {
            trace_epoch_row erow = {
                epoch,          loss_sum / steps, ev.test_loss,      ev.test_acc,
                xi_sum / steps, elapsed,          ev.worker_test_acc};
            trace_append_epoch(r->tr, &erow);
            if (epoch == s->schedule.epochs - 1) phase_end(r, &ph);
            if (trace_flush(r->tr, err)) return -1;
            if (!opt->quiet)
                print_progress(r, epoch, lr, loss_sum / steps, ev.test_acc, xi_sum / steps,
                               elapsed);
        }
    }
    return 0;
}

int train_validate(const ccdl_spec *spec, MPI_Comm comm, ccdl_error *err) {
    run_state r = {0};
    r.spec = spec;
    r.comm = comm;
    int rc = agree(setup_checked(&r, spec->trace.path, err), err, comm);
    teardown(&r);
    return rc;
}

int train_run(const ccdl_spec *spec, const train_options *opt, MPI_Comm comm, ccdl_error *err) {
    run_state r = {0};
    r.spec = spec;
    r.comm = comm;
    const char *path = opt->trace_path ? opt->trace_path : spec->trace.path;
    omp_set_num_threads(spec->threads);
    if (agree(setup_checked(&r, path, err), err, comm)) {
        teardown(&r);
        return -1;
    }
    setup_buffers(&r);
    int rc = 0;
    if (r.lay.rank == 0) {
        char *canon = spec_canonical_json(spec);
        trace_meta meta = {PACKAGE_VERSION, canon, spec->workers, r.lay.ranks, spec->threads};
        r.tr = trace_create(path, &meta, err);
        free(canon);
        if (!r.tr) {
            err->kind = CCDL_ERR_INPUT; /* an unwritable output path is bad input */
            rc = -1;
        }
    }
    if (agree(rc, err, comm)) {
        teardown(&r);
        return -1;
    }
    rc = train_loop(&r, opt, err);
    rc = agree(rc, err, comm);
    if (r.lay.rank == 0) {
        ccdl_error cerr;
        if (trace_close(&r.tr, rc == 0, rc == 0 ? "finished" : err->text, &cerr) && rc == 0) {
            *err = cerr;
            rc = -1;
        }
    }
    rc = agree(rc, err, comm);
    teardown(&r);
    return rc;
}
